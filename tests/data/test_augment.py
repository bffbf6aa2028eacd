"""Distortions (kernels/augment.py, augment.py): exact identities, geometry against
NumPy, value range, thread-count independence, smoothing against SciPy."""

import numba
import numpy as np
import pytest

from cnn_cli.data.augment import Augmenter, inverse_maps, is_active
from cnn_cli.spec.config import AUGMENT_DEFAULTS
from cnn_cli.kernels.augment import distort_batch, gaussian_taps


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


def test_elastic_smoothing_is_scipys_gaussian():
    """The kernel's displacement = α · gaussian_filter(field, σ, zero outside, cut at 3σ)."""
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(1)
    images = digits(2)
    field = rng.uniform(-1, 1, (2, 2, 28, 28)).astype(np.float32)
    smooth = ndimage.gaussian_filter(field.astype(np.float64), (0, 0, 3.0, 3.0), mode="constant", truncate=3.0)
    alpha = np.array([8.0, 8.0])
    out = distort_batch(images, maps(2), alpha, field.copy(), sigma=3.0)
    # Reference: bilinear sampling at p + α·d(p), in NumPy.
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


def test_gaussian_taps_sum_to_one_and_are_symmetric():
    taps = gaussian_taps(4.0)
    assert taps.size == 25 and abs(float(taps.sum()) - 1) < 1e-6 and np.array_equal(taps, taps[::-1])


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
