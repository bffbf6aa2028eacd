"""Distortions (kernels/augment.py, augment.py): exact identities, geometry against
NumPy, value range, thread-count independence, smoothing against SciPy."""

import numba
import numpy as np
import pytest

from cnn_cli.data.augment import Augmenter, inverse_maps, is_active
from cnn_cli.spec.config import AUGMENT_DEFAULTS
from cnn_cli.kernels.augment import (distort_batch, distort_drawn, gaussian_taps, raw_field, smooth_fields,
                                    smoothing_matrix)


def digits(n=8, size=28, seed=0):
    """uint8 images with a blank (0) border and strokes of every grey level."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size), dtype=np.uint8)
    b = max(1, size // 7)
    images[:, b:-b, b + 1:-b - 1] = rng.integers(0, 256, (n, size - 2 * b, size - 2 * b - 2), dtype=np.uint8)
    return images


def maps(n, size=28, ty=0.0, tx=0.0, rotate=0.0, scale=0.0, squeeze=0.0, shear=0.0):
    full = [np.full(n, float(v)) for v in (ty, tx, rotate, scale, squeeze, shear)]
    return inverse_maps((size, size), *full)


def settings(**overrides):
    a = {**AUGMENT_DEFAULTS, "elastic": dict(AUGMENT_DEFAULTS["elastic"])}
    for key, value in overrides.items():
        if key in ("alpha", "sigma"):
            a["elastic"][key] = value
        else:
            a[key] = value
    return a


def test_identity_returns_the_image_exactly():
    images = digits()
    out = distort_batch(images, maps(len(images)))
    assert out.dtype == np.float32 and np.array_equal(out, images)


@pytest.mark.parametrize("ty, tx", [(2, -3), (-1, 0), (0, 5), (27, 0)])
def test_whole_pixel_translation_is_a_shifted_array(ty, tx):
    images = digits()
    expected = np.zeros_like(images)
    h, w = images.shape[1:]
    expected[:, max(ty, 0):h + min(ty, 0), max(tx, 0):w + min(tx, 0)] = \
        images[:, max(-ty, 0):h - max(ty, 0), max(-tx, 0):w - max(tx, 0)]
    assert np.array_equal(distort_batch(images, maps(len(images), ty=ty, tx=tx)), expected)


@pytest.mark.parametrize("degrees, turns", [(90, 1), (-90, -1), (180, 2)])
def test_rotation_by_right_angles_is_rot90(degrees, turns):
    """Pixel centres at integer coordinates, rotation about ((H−1)/2, (W−1)/2),
    positive angles counter-clockwise as displayed: exactly np.rot90."""
    images = digits(size=28)
    out = distort_batch(images, maps(len(images), rotate=degrees))
    assert np.array_equal(out, np.rot90(images, turns, axes=(1, 2)))
    odd = digits(size=9)  # an odd size: the centre is a pixel centre
    assert np.array_equal(distort_batch(odd, maps(len(odd), size=9, rotate=degrees)),
                          np.rot90(odd, turns, axes=(1, 2)))


def test_scale_about_the_centre_keeps_the_centre_pixel():
    images = digits(size=9)
    out = distort_batch(images, maps(len(images), size=9, scale=0.3))
    assert np.array_equal(out[:, 4, 4], images[:, 4, 4])
    assert not np.array_equal(out, images)


@pytest.mark.parametrize("background", [0.0, 17.0])
def test_outputs_stay_within_the_input_range(background):
    rng = np.random.default_rng(3)
    images = digits(16)
    if background:
        images = np.clip(images, 17, 200).astype(np.uint8)
    a = Augmenter(settings(translate=4, rotate=40, scale=0.3, squeeze=0.3, shear=0.5, alpha=34, sigma=4),
                  background=background)
    out = a(images, rng)
    assert out.min() >= images.min() and out.max() <= images.max()
    assert not np.array_equal(out, images)


@pytest.mark.parametrize("alpha, sigma", [(0.0, 4.0), (100.0, 0.5), (100.0, 20.0)])
def test_the_largest_settings_stay_in_range(alpha, sigma):
    """Every bound at its validated maximum: points far outside the image (clamped in
    the kernel) read background, never memory outside the padded copy."""
    images = digits(24, size=11)
    a = Augmenter(settings(translate=14, rotate=180, scale=0.9, squeeze=0.9, shear=1.0, alpha=alpha, sigma=sigma),
                  background=9.0)
    out = a(images, np.random.default_rng(8))
    assert np.all(np.isfinite(out)) and out.min() >= 0 and out.max() <= images.max()
    assert np.any(out == 9.0)


def test_same_seed_same_batch_on_one_and_two_threads():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba was started with a single thread")
    images = digits(64)
    a = Augmenter(settings(translate=2, rotate=10, scale=0.1, squeeze=0.1, shear=0.15, alpha=34, sigma=4))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = a(images, np.random.default_rng(5))
        numba.set_num_threads(2)
        two = a(images, np.random.default_rng(5))
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(one, two)
    assert not np.array_equal(one, a(images, np.random.default_rng(6)))


def raw_values(raw):
    """The numbers a raw uint16 field stands for: (2u + 1)/65536 − 1."""
    return (2.0 * raw.astype(np.float64) + 1.0) / 65536.0 - 1.0


@pytest.mark.parametrize("sigma, shape", [(4.0, (5, 28, 28)), (3.0, (9, 28, 28)), (1.5, (3, 9, 13))])
def test_smoothing_is_scipys_truncated_gaussian(sigma, shape):
    """smooth_fields = gaussian_filter along rows and columns, zero outside the field,
    cut at 3σ (SciPy's radius int(truncate·σ + 0.5) is ceil(3σ) for these σ), to
    float32 precision; batches that are not a whole number of chunks included."""
    ndimage = pytest.importorskip("scipy.ndimage")
    B, H, W = shape
    raw = raw_field(11, 2 * B * H * W)
    smooth = smooth_fields(raw, shape, sigma)
    field = raw_values(raw).reshape(B, 2, H, W)  # any fixed order of the raw numbers would do; this is ours
    assert smooth.shape == (B, 2, H, W) and smooth.dtype == np.float32
    expected = ndimage.gaussian_filter(field, (0, 0, sigma, sigma), mode="constant", cval=0.0, truncate=3.0)
    np.testing.assert_allclose(smooth, expected, rtol=0, atol=2e-6)
    weights = np.exp(-0.5 * (np.arange(-int(np.ceil(3 * sigma)), int(np.ceil(3 * sigma)) + 1) / sigma) ** 2)
    by_hand = ndimage.correlate1d(ndimage.correlate1d(field, weights / weights.sum(), axis=2, mode="constant"),
                                  weights / weights.sum(), axis=3, mode="constant")
    np.testing.assert_allclose(smooth, by_hand, rtol=0, atol=2e-6)


def test_raw_field_is_uniform_in_minus_one_to_one():
    """65,536 equally likely values (2u + 1)/65536 − 1: symmetric, never ±1 or 0; the
    words are SplitMix64's (its published first output from seed 0)."""
    assert raw_field(0, 4).view(np.uint64)[0] == 0xE220A8397B1DCDAF
    v = raw_values(raw_field(2 ** 64 - 5, 2_000_000))
    assert v.min() == -1 + 2.0 ** -16 and v.max() == 1 - 2.0 ** -16 and not np.any(v == 0)
    assert abs(v.mean()) < 4 * (1 / np.sqrt(3)) / np.sqrt(v.size)
    counts = np.histogram(v, bins=16, range=(-1, 1))[0]
    assert np.all(np.abs(counts / (v.size / 16) - 1) < 0.01)
    assert abs(np.mean(v ** 2) - 1 / 3) < 0.002


def test_elastic_distortion_samples_at_the_smoothed_displacement():
    """The kernel's displacement = α · gaussian_filter(field, σ, zero outside, cut at 3σ):
    compared with bilinear sampling in NumPy at p + α·d(p)."""
    ndimage = pytest.importorskip("scipy.ndimage")
    images = digits(2)
    raw = raw_field(11, 2 * images.size)
    smooth = ndimage.gaussian_filter(raw_values(raw).reshape(2, 2, 28, 28), (0, 0, 3.0, 3.0), mode="constant",
                                     truncate=3.0)
    alpha = np.array([8.0, 8.0])
    out = distort_batch(images, maps(2), alpha, raw, sigma=3.0)
    rows, cols = np.meshgrid(np.arange(28), np.arange(28), indexing="ij")
    for i in range(2):
        sr, sc = rows + alpha[i] * smooth[i, 0], cols + alpha[i] * smooth[i, 1]
        r0, c0 = np.floor(sr).astype(int), np.floor(sc).astype(int)
        fr, fc = sr - r0, sc - c0
        padded = np.pad(images[i].astype(np.float64), 40)

        def at(r, c):
            return padded[r + 40, c + 40]

        expected = ((1 - fr) * ((1 - fc) * at(r0, c0) + fc * at(r0, c0 + 1))
                    + fr * ((1 - fc) * at(r0 + 1, c0) + fc * at(r0 + 1, c0 + 1)))
        np.testing.assert_allclose(out[i], expected, atol=1e-3)


def test_drawn_parameters_are_the_documented_maps():
    """distort_drawn (the Augmenter's path) = distort_batch with inverse_maps of the
    parameters bound·(2u − 1) and the raw field raw_field(key) (13 images: a last,
    partial chunk); images whose first draw is not below the probability are
    returned exactly, elastic distortion included."""
    images = digits(13)
    draws = np.random.default_rng(4).random((13, 7))
    bounds = np.array([0.6, 2.0, 3.0, 20.0, 0.1, 0.2, 0.3])
    params = bounds[1:] * (2 * draws[:, 1:] - 1)
    chosen = draws[:, 0] < bounds[0]
    inverse = inverse_maps((28, 28), *params.T)
    inverse[~chosen] = (1, 0, 0, 0, 1, 0)
    key = 0x0123456789ABCDEF
    alpha = np.where(chosen, 30.0, 0.0)
    expected = distort_batch(images, inverse, alpha, raw_field(key, 2 * images.size), sigma=4.0, background=3.0)
    out = distort_drawn(images, draws, bounds, 30.0, key, 4.0, 3.0)
    assert np.array_equal(out, expected)
    assert 0 < chosen.sum() < 13 and np.array_equal(out[~chosen], images[~chosen])
    assert not np.any(np.all(out[chosen] == images[chosen], axis=(1, 2)))


def test_gaussian_taps_sum_to_one_and_are_symmetric():
    taps = gaussian_taps(4.0)
    assert taps.size == 25 and abs(float(taps.sum()) - 1) < 1e-6 and np.array_equal(taps, taps[::-1])
    matrix = smoothing_matrix(4.0, 28)  # the kernel multiplies by it untransposed: it must be symmetric
    assert np.array_equal(matrix, matrix.T) and matrix[0, 12] == taps[24] and matrix[0, 13] == 0


def test_probability_zero_and_zero_bounds_change_nothing():
    images = digits()
    assert not is_active(settings())
    assert not is_active(settings(rotate=10, probability=0.0))
    assert is_active(settings(alpha=10))
    out = Augmenter(settings(rotate=30, translate=3, probability=0.0))(images, np.random.default_rng(0))
    assert np.array_equal(out, images)


def test_probability_half_distorts_about_half():
    images = np.repeat(digits(1), 400, axis=0)
    out = Augmenter(settings(rotate=30, probability=0.5))(images, np.random.default_rng(0))
    unchanged = np.all(out == images, axis=(1, 2)).mean()
    assert 0.4 < unchanged < 0.6


def test_bad_input_to_the_kernel_raises():
    images = digits(2)
    with pytest.raises(ValueError):
        distort_batch(images.astype(np.float32), maps(2))
    with pytest.raises(ValueError):
        distort_batch(images, maps(3))
    with pytest.raises(ValueError):
        distort_batch(images, maps(2), alpha=np.ones(2))
    with pytest.raises(ValueError):  # the raw field is 16-bit integers, 2·B·H·W of them
        distort_batch(images, maps(2), np.ones(2), np.zeros(2 * images.size, dtype=np.float32))
    with pytest.raises(ValueError):
        distort_batch(images, maps(2), np.ones(2), np.zeros(images.size, dtype=np.uint16))
