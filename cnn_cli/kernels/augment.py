"""Distorting a batch of images: an affine map and an elastic displacement per image,
bilinear sampling.

Sampling convention: pixel (r, c) has its centre at coordinates (r, c), and the
affine maps act about the image centre ((H−1)/2, (W−1)/2) (cnn_cli/augment.py
builds them), so a rotation by 90° of a square image moves pixel centres onto
pixel centres and equals np.rot90. Output pixel (r, c) reads the input at

    src = M·(r, c) + o + α·d(r, c)

where (M, o) is the image's inverse affine map and d its random displacement
field (Simard et al. 2003) after Gaussian smoothing; the value there is the
bilinear interpolation of the four pixels around src, a pixel outside the
image counting as the background value. Every output is thus a convex
combination of input pixels and the background, within their range.

One parallel item per image, each writing only its own output (and its own
rows of the field and scratch arrays), so the result is the same for any
thread count.
"""

import functools
import math

import numpy as np
from numba import njit, types, uint64

from .runtime.parallel import c_array, item_args, launch_address, native_item, parallel_for


@functools.lru_cache(maxsize=8)
def gaussian_taps(sigma: float) -> np.ndarray:
    """The normalised 1-D Gaussian of standard deviation sigma, cut at 3σ (float32;
    cached: one training run uses one σ; callers must not write to it)."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (x / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    return taps


@njit(cache=True, error_model="numpy")
def _smooth(plane, tmp, taps):
    """Separable Gaussian smoothing of one (H, W) plane in place, zero outside it.
    Loops run tap by tap over whole rows, so the innermost loop walks contiguous
    memory; its indices are unsigned, as in kernels/optim.py, so that Numba's
    negative-index test does not stop LLVM from vectorising it."""
    H, W = plane.shape
    r = (taps.size - 1) // 2
    for y in range(H):
        out = tmp[y]
        src = plane[y]
        for x in range(W):
            out[uint64(x)] = 0.0
        for k in range(taps.size):
            t = taps[k]
            shift = k - r
            lo, hi = max(0, -shift), min(W, W - shift)
            for x in range(lo, hi):
                out[uint64(x)] += t * src[uint64(x + shift)]
    for y in range(H):
        out = plane[y]
        for x in range(W):
            out[uint64(x)] = 0.0
        for k in range(max(0, r - y), min(taps.size, H + r - y)):
            t = taps[k]
            src = tmp[y + k - r]
            for x in range(W):
                out[uint64(x)] += t * src[uint64(x)]


@njit(cache=True, error_model="numpy")
def _pixel(image, r, c, background):
    if 0 <= r < image.shape[0] and 0 <= c < image.shape[1]:
        return np.float64(image[r, c])
    return background


@native_item(lambda f: (c_array(types.uint8, 3), c_array(f, 3), c_array(types.float64, 2), c_array(f, 4),
                        c_array(f, 3), c_array(f, 1), c_array(types.float64, 1), types.float64))
@njit(cache=True, error_model="numpy")
def _distort_image(i, context):
    """One parallel item of distort_batch: image i, bilinear, neighbours outside the
    image counting as background."""
    images, out, inverse, field, scratch, taps, alpha, background = item_args(context)
    image = images[i]
    H, W = image.shape
    a = alpha[i]
    elastic = a != 0.0
    if elastic:
        _smooth(field[i, 0], scratch[i], taps)
        _smooth(field[i, 1], scratch[i], taps)
    m00, m01, m02 = inverse[i, 0], inverse[i, 1], inverse[i, 2]
    m10, m11, m12 = inverse[i, 3], inverse[i, 4], inverse[i, 5]
    for r in range(H):
        row = out[i, r]
        base_r = m00 * r + m02
        base_c = m10 * r + m12
        for c in range(W):
            sr = base_r + m01 * c
            sc = base_c + m11 * c
            if elastic:
                sr += a * field[i, 0, r, c]
                sc += a * field[i, 1, r, c]
            r0 = math.floor(sr)
            c0 = math.floor(sc)
            fr, fc = sr - r0, sc - c0
            if r0 >= 0 and c0 >= 0 and r0 < H - 1 and c0 < W - 1:  # all four inside: no tests
                y, x = uint64(r0), uint64(c0)
                p00, p01 = np.float64(image[y, x]), np.float64(image[y, x + 1])
                p10, p11 = np.float64(image[y + 1, x]), np.float64(image[y + 1, x + 1])
            elif r0 < -1 or c0 < -1 or r0 >= H or c0 >= W:  # all four outside
                row[uint64(c)] = background
                continue
            else:
                ir, ic = int(r0), int(c0)
                p00, p01 = _pixel(image, ir, ic, background), _pixel(image, ir, ic + 1, background)
                p10, p11 = _pixel(image, ir + 1, ic, background), _pixel(image, ir + 1, ic + 1, background)
            row[uint64(c)] = (1.0 - fr) * ((1.0 - fc) * p00 + fc * p01) + fr * ((1.0 - fc) * p10 + fc * p11)


@njit(cache=True, error_model="numpy")
def _distort(launch, item_fn, images, out, inverse, field, scratch, taps, alpha, background):
    parallel_for(_distort_image, launch, item_fn, images.shape[0],
                 (images, out, inverse, field, scratch, taps, alpha, background))


def distort_batch(images, inverse, alpha=None, field=None, sigma=4.0, background=0.0):
    """Distorted float32 copies (B, H, W) of uint8 images (B, H, W), in the same pixel units.

    inverse (B, 6): each image's inverse affine map, src_r = m0·r + m1·c + m2 and
    src_c = m3·r + m4·c + m5. alpha (B,) and field (B, 2, H, W): the elastic
    displacement, `field` raw random numbers smoothed here (in place) by a
    Gaussian of width sigma, then scaled by alpha (0: no elastic distortion for
    that image; field may then be None)."""
    images = np.ascontiguousarray(images)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"distort_batch expects uint8 images (B, H, W), got {images.dtype} {images.shape}")
    B, H, W = images.shape
    inverse = np.ascontiguousarray(inverse, dtype=np.float64)
    alpha = np.zeros(B) if alpha is None else np.ascontiguousarray(alpha, dtype=np.float64)
    if inverse.shape != (B, 6) or alpha.shape != (B,):
        raise ValueError("distort_batch: inverse must be (B, 6) and alpha (B,)")
    if field is None:
        if np.any(alpha != 0):
            raise ValueError("distort_batch: a non-zero alpha needs a displacement field")
        field = np.zeros((0, 2, H, W), dtype=np.float32)
        scratch = np.zeros((0, H, W), dtype=np.float32)
    else:
        if field.shape != (B, 2, H, W) or field.dtype != np.float32 or not field.flags.c_contiguous:
            raise ValueError("distort_batch: field must be C-contiguous float32 (B, 2, H, W)")
        scratch = np.empty((B, H, W), dtype=np.float32)
    out = np.empty((B, H, W), dtype=np.float32)
    _distort(launch_address(), _distort_image.native.address(np.float32), images, out, inverse, field, scratch,
             gaussian_taps(sigma), alpha, float(background))
    return out
