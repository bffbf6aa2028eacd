"""Distorting a batch of images: an affine map and an elastic displacement per image,
bilinear sampling.

Sampling convention: pixel (r, c) has its centre at coordinates (r, c), and the
affine maps act about the image centre ((H−1)/2, (W−1)/2) (augment_geometry.py
builds them), so a rotation by 90° of a square image moves pixel centres onto
pixel centres and equals np.rot90. Output pixel (r, c) reads the input at

    src = M·(r, c) + o + α·d(r, c)

where (M, o) is the image's inverse affine map and d its random displacement
field (Simard et al. 2003) after Gaussian smoothing; the value there is the
bilinear interpolation of the four pixels around src, a pixel outside the
image counting as the background value. Every output is thus a convex
combination of input pixels and the background, within their range.

The raw field is uniform 16-bit integers u, four to a 64-bit word, each the
number (2u + 1)/65536 − 1: uniform on 65,536 points of (−1, 1), symmetric
about 0. Either given (distort_batch), or made here from one 64-bit key drawn
from the run's noise stream (distort_drawn): word j is SplitMix64's output
number j + 1 started from the key (Steele, Lea & Flood 2014; java.util's
SplittableRandom), a pure function of (key, j). So each parallel item makes
the words of its own images, the same on any thread count, instead of NumPy
making 2·H·W numbers per image on one thread before the kernel starts.

Smoothing is a true Gaussian of width σ cut at 3σ, zero outside the field:
two small matrix products per chunk of images (banded Toeplitz matrices of
the taps, through single-threaded BLAS). Sampling is explicit vector code
(augment_sample.py) on a copy of the image padded with background.

One parallel item per chunk of CHUNK images (a constant, never the thread
count), each writing only its own output, so the result is the same bits for
any thread count.
"""

import functools
import math

import numpy as np
from numba import njit, types, uint64

from .augment_geometry import inverse_from_draws
from .augment_sample import sample_row
from .runtime.blas import matmul
from .runtime.parallel import c_array, item_args, launch_address, native_item, parallel_for

CHUNK = 8  # images per parallel item: BLAS products big enough to run near full speed
RAW_SCALE, RAW_OFFSET = 2.0 ** -15, 2.0 ** -16 - 1.0  # u → (2u + 1)/65536 − 1, exact in float32


@functools.lru_cache(maxsize=8)
def gaussian_taps(sigma: float) -> np.ndarray:
    """The normalised 1-D Gaussian of standard deviation sigma, cut at 3σ (float32;
    cached: one training run uses one σ; callers must not write to it)."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (x / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    return taps


@functools.lru_cache(maxsize=8)
def smoothing_matrix(sigma: float, n: int) -> np.ndarray:
    """(n, n) float32 S with S[i, j] = taps[j − i + radius] inside the band, 0 outside:
    S·v is the Gaussian smoothing of a length-n vector v, zero outside it (cached;
    callers must not write to it)."""
    taps = gaussian_taps(sigma)
    radius = (taps.size - 1) // 2
    offset = np.arange(n)[None, :] - np.arange(n)[:, None] + radius
    inside = (offset >= 0) & (offset < taps.size)
    matrix = np.where(inside, taps[np.clip(offset, 0, taps.size - 1)], np.float32(0)).astype(np.float32)
    return matrix


GAMMA, MIX1, MIX2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


@njit(cache=True, error_model="numpy")
def splitmix_words(key, first_word, out):
    """out[j] = SplitMix64 word first_word + j of the stream started from key (uint64)."""
    for j in range(out.size):
        z = key + np.uint64(first_word + j + 1) * GAMMA
        z = (z ^ (z >> np.uint64(30))) * MIX1
        z = (z ^ (z >> np.uint64(27))) * MIX2
        out[uint64(j)] = z ^ (z >> np.uint64(31))


def raw_field(key, count: int) -> np.ndarray:
    """The first count raw 16-bit numbers (uint16) made from key (see the module docstring)."""
    words = np.empty((count + 3) // 4, dtype=np.uint64)
    splitmix_words(np.uint64(key), 0, words)
    return words.view(np.uint16)[:count]


@njit(cache=True, error_model="numpy")
def _raw_of_chunk(raw, key, first, n):
    """(numbers, offset): raw numbers first … first + n − 1 are numbers[offset …]; made
    from key when raw is empty."""
    if raw.size > 0:
        return raw, first
    w0 = first // 4
    words = np.empty((first + n + 3) // 4 - w0, dtype=np.uint64)
    splitmix_words(key, w0, words)
    return words.view(np.uint16), first - 4 * w0


@njit(cache=True, error_model="numpy")
def _smooth_chunk(raw, first, count, rows, columns, fields, scratch):
    """Smooth the raw fields raw[first : first + count·H·W], (count, H, W) in that order
    (count = 2 per image), into fields (H, count·W): field f at (y, x) is fields[y, f·W + x].
    Rows first (one product over every row of every field), then columns (one
    product over all fields side by side)."""
    H, W = rows.shape[0], columns.shape[0]
    for f in range(count):
        for y in range(H):
            src = first + (f * H + y) * W
            row = fields[y]
            for x in range(W):
                row[uint64(f * W + x)] = (np.float32(raw[uint64(src + x)]) * np.float32(RAW_SCALE)
                                          + np.float32(RAW_OFFSET))
    # (H·count, W) · columnsᵀ: each row of each field smoothed along x. The matrix is
    # symmetric (so are the taps), and OpenBLAS's kernel for an untransposed one is faster.
    matmul(fields.reshape(H * count, W), np.bool_(False), columns, np.bool_(False), scratch.reshape(H * count, W))
    # rows (H, H) · (H, count·W): every column of every field smoothed along y.
    matmul(rows, np.bool_(False), scratch, np.bool_(False), fields)


@njit(cache=True, error_model="numpy")
def _pad(image, padded, background):
    """padded (H + 3, W + 3) float32: the image at offset (1, 1), background around it
    (one row and column before, two after), so clamped coordinates need no tests."""
    H, W = image.shape
    flat = padded.reshape(-1)
    for i in range(flat.size):
        flat[uint64(i)] = background
    for r in range(H):
        row = padded[r + 1]
        src = image[r]
        for c in range(W):
            row[uint64(c + 1)] = np.float32(src[uint64(c)])


@njit(cache=True, error_model="numpy")
def _sample_image(padded, out, m, alpha, fields, first, H, W):
    """out (H, W) = the padded image sampled at m·(r, c) + o + alpha·(dy, dx)[r, c], dy
    and dx the fields at columns first and first + W of `fields` (see sample_row).

    Coordinates are clamped to [−1, H] × [−1, W]: past that, every neighbour is
    background in the true image as in the padded one (the clamped point lands
    on a background row or column with weight 1). Interpolation in the form
    a + f·(b − a), which returns a exactly when f = 0 or b = a."""
    flat = padded.reshape(-1)
    for r in range(H):
        row = fields[r]
        sample_row(flat, W + 3, out[r], row[first:first + W], row[first + W:first + 2 * W], m[0] * r + m[2],
                   m[3] * r + m[5], m[1], m[4], alpha, np.float64(H), np.float64(W))


@native_item(lambda f: (c_array(types.uint8, 3), c_array(f, 3), c_array(types.float64, 2),
                        c_array(types.float64, 1), c_array(types.uint16, 1), types.uint64, types.boolean,
                        c_array(f, 2), c_array(f, 2), types.float64))
@njit(cache=True, error_model="numpy")
def _distort_chunk(ch, context):
    """One parallel item of distort_batch: images ch·CHUNK up to (ch + 1)·CHUNK."""
    images, out, inverse, alpha, raw, key, elastic, rows, columns, background = item_args(context)
    B, H, W = images.shape
    lo, hi = ch * CHUNK, min(B, (ch + 1) * CHUNK)
    count = 2 * (hi - lo)
    fields = np.empty((H, count * W if elastic else 2 * W), dtype=np.float32)  # affine alone reads none of it
    if elastic:
        scratch = np.empty((H, count * W), dtype=np.float32)
        numbers, offset = _raw_of_chunk(raw, key, lo * 2 * H * W, count * H * W)
        _smooth_chunk(numbers, offset, count, rows, columns, fields, scratch)
    padded = np.empty((H + 3, W + 3), dtype=np.float32)
    for j in range(hi - lo):
        i = lo + j
        _pad(images[i], padded, np.float32(background))
        if elastic:
            _sample_image(padded, out[i], inverse[i], alpha[i], fields, 2 * j * W, H, W)
        else:  # a version of the sampler that reads no field
            _sample_image(padded, out[i], inverse[i], None, fields, 0, H, W)


@njit(cache=True, error_model="numpy")
def _distort(launch, item_fn, images, out, inverse, alpha, raw, key, elastic, rows, columns, background):
    chunks = (images.shape[0] + CHUNK - 1) // CHUNK
    parallel_for(_distort_chunk, launch, item_fn, chunks,
                 (images, out, inverse, alpha, raw, key, elastic, rows, columns, background))


@njit(cache=True, error_model="numpy")
def _distort_drawn(launch, item_fn, images, out, draws, bounds, alpha, key, elastic, rows, columns, background):
    """distort_batch with the inverse maps and α made here from uniform draws."""
    B, H, W = images.shape
    inverse = np.empty((B, 6))
    alphas = np.empty(B)
    for i in range(B):
        chosen = inverse_from_draws(draws[i], bounds, H, W, inverse[i])
        alphas[i] = alpha if chosen else 0.0
    _distort(launch, item_fn, images, out, inverse, alphas, np.zeros(0, dtype=np.uint16), key, elastic, rows,
             columns, background)


def _checked(images, raw):
    images = np.ascontiguousarray(images)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"distort_batch expects uint8 images (B, H, W), got {images.dtype} {images.shape}")
    if raw is None:
        raw = np.zeros(0, dtype=np.uint16)
    elif raw.dtype != np.uint16 or raw.ndim != 1 or raw.size < 2 * images.size or not raw.flags.c_contiguous:
        raise ValueError("distort_batch: raw must be a contiguous uint16 vector of 2·B·H·W numbers")
    return images, raw


def distort_batch(images, inverse, alpha=None, raw=None, sigma=4.0, background=0.0):
    """Distorted float32 copies (B, H, W) of uint8 images (B, H, W), in the same pixel units.

    inverse (B, 6): each image's inverse affine map, src_r = m0·r + m1·c + m2 and
    src_c = m3·r + m4·c + m5. alpha (B,) and raw (2·B·H·W,) uint16, in (B, 2, H, W)
    order: the elastic displacement, raw numbers (see the module docstring) smoothed here by a
    Gaussian of width sigma, then scaled by alpha (0: none for that image; raw
    may then be None). Image i's fields are those of smooth_fields."""
    images, raw = _checked(images, raw)
    B, H, W = images.shape
    inverse = np.ascontiguousarray(inverse, dtype=np.float64)
    alpha = np.zeros(B) if alpha is None else np.ascontiguousarray(alpha, dtype=np.float64)
    if inverse.shape != (B, 6) or alpha.shape != (B,):
        raise ValueError("distort_batch: inverse must be (B, 6) and alpha (B,)")
    if raw.size == 0 and np.any(alpha != 0):
        raise ValueError("distort_batch: a non-zero alpha needs a displacement field")
    out = np.empty((B, H, W), dtype=np.float32)
    _distort(launch_address(), _distort_chunk.native.address(np.float32), images, out, inverse, alpha, raw,
             np.uint64(0), raw.size > 0, smoothing_matrix(sigma, H), smoothing_matrix(sigma, W), float(background))
    return out


def distort_drawn(images, draws, bounds, alpha, key, sigma, background):
    """distort_batch from uniform draws (B, 7) in [0, 1) and bounds (7,) (see
    augment_geometry.inverse_from_draws); chosen images get elastic strength alpha
    (if > 0) with the raw field raw_field(key, 2·B·H·W)."""
    images = np.ascontiguousarray(images)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"distort_drawn expects uint8 images (B, H, W), got {images.dtype} {images.shape}")
    B, H, W = images.shape
    out = np.empty((B, H, W), dtype=np.float32)
    _distort_drawn(launch_address(), _distort_chunk.native.address(np.float32), images, out, draws, bounds,
                   float(alpha), np.uint64(key), alpha > 0, smoothing_matrix(sigma, H), smoothing_matrix(sigma, W),
                   float(background))
    return out


@njit(cache=True, error_model="numpy")
def _smooth_all(raw, B, rows, columns, out):
    H, W = rows.shape[0], columns.shape[0]
    for lo in range(0, B, CHUNK):
        count = 2 * (min(B, lo + CHUNK) - lo)
        fields = np.empty((H, count * W), dtype=np.float32)
        _smooth_chunk(raw, lo * 2 * H * W, count, rows, columns, fields, np.empty_like(fields))
        for f in range(count):
            out[lo * 2 + f] = fields[:, f * W:(f + 1) * W]


def smooth_fields(raw, shape, sigma):
    """The smoothed displacement fields (B, 2, H, W) float32 that distort_batch uses for
    raw (2·B·H·W,) uint16 and images of shape (B, H, W) (for tests and inspection)."""
    B, H, W = shape
    out = np.empty((2 * B, H, W), dtype=np.float32)
    _smooth_all(raw, B, smoothing_matrix(sigma, H), smoothing_matrix(sigma, W), out)
    return out.reshape(B, 2, H, W)
