"""Lowering a convolution's input to a column matrix (im2col) and its adjoint (col2im).

Layout: row r = (c·Fh + m)·Fw + n, column q = (b − b0)·P + i·ow + j, where
P = oh·ow and b0 is the first image of the chunk being lowered. Serial code:
conv.py's parallel items call these on their own chunk of images. Padding is
never stored: per tap, `taps` gives the output rows and columns that read real
pixels, and everything outside reads (or scatters to) nothing.
"""

import numpy as np
from numba import njit, uint64

from .runtime.vector import LANES, VECTOR, accumulate_taps3, copy8


@njit(cache=True, error_model="numpy")
def taps(geo, H, W):
    """(row_lo, row_hi, col_lo, col_hi): per tap, the output rows and columns that read real pixels."""
    row_lo, row_hi = tap_ranges(geo.fh, geo.oh, H, geo.sh, geo.pt)
    col_lo, col_hi = tap_ranges(geo.fw, geo.ow, W, geo.sw, geo.pl)
    return row_lo, row_hi, col_lo, col_hi


@njit(cache=True, error_model="numpy")
def tap_ranges(f, out_n, in_n, s, p):
    """For each tap m < f, the output positions [lo[m], hi[m]) whose tap m lands on a
    real input pixel: 0 ≤ i·s + m − p < in_n. Everything outside is padding."""
    lo = np.empty(f, dtype=np.int64)
    hi = np.empty(f, dtype=np.int64)
    for m in range(f):
        a = p - m  # need i·s ≥ a
        first = (a + s - 1) // s if a > 0 else 0
        b = in_n - 1 + p - m  # need i·s ≤ b
        last = b // s + 1 if b >= 0 else 0
        first = min(first, out_n)
        last = min(last, out_n)
        lo[m] = first
        hi[m] = max(last, first)
    return lo, hi


@njit(cache=True, error_model="numpy")
def im2col_into(x, b0, b1, cols, geo, row_lo, row_hi, col_lo, col_hi):
    """Fill cols (C·fh·fw, (b1−b0)·P) with the windows of images b0..b1−1 (serial)."""
    if geo.sw == 1 and geo.ow >= VECTOR:
        im2col_rows(x, b0, b1, cols, geo)
        return
    fh, fw, sh, sw, pt, pl, oh, ow = geo.fh, geo.fw, geo.sh, geo.sw, geo.pt, geo.pl, geo.oh, geo.ow
    C = x.shape[1]
    P = oh * ow
    zero = x.dtype.type(0)
    for r in range(C * fh * fw):
        c = r // (fh * fw)
        m = (r // fw) % fh
        n = r % fw
        i_lo, i_hi = row_lo[m], row_hi[m]
        j_lo, j_hi = col_lo[n], col_hi[n]
        row = cols[r]
        for b in range(b0, b1):
            for i in range(oh):
                dst = (b - b0) * P + i * ow
                if i < i_lo or i >= i_hi:
                    for j in range(ow):
                        row[uint64(dst + j)] = zero
                    continue
                src = x[b, c, i * sh + m - pt]
                for j in range(j_lo):
                    row[uint64(dst + j)] = zero
                for j in range(j_lo, j_hi):
                    row[uint64(dst + j)] = src[uint64(j * sw + n - pl)]
                for j in range(j_hi, ow):
                    row[uint64(dst + j)] = zero


@njit(cache=True, error_model="numpy")
def im2col_rows(x, b0, b1, cols, geo):
    """im2col_into for a column stride of 1 and output rows of at least 8: each
    row of a window is a few 8-wide copies (kernels/runtime/vector.py), the last one
    ending at the row's end, with no bounds to test. A padded conv first copies
    the chunk's images into a zero-bordered buffer, so every tap reads inside
    it, which costs less than testing bounds on every row (benchmarks/RESULTS.md,
    Design measurements)."""
    fh, fw, sh, pt, pl, oh, ow = geo.fh, geo.fw, geo.sh, geo.pt, geo.pl, geo.oh, geo.ow
    B, C, H, W = x.shape
    P = oh * ow
    Hp = max(H + pt, (oh - 1) * sh + fh)  # the rows and columns the taps reach
    Wp = max(W + pl, ow - 1 + fw)
    flat = x.reshape(x.size)
    source = flat
    first = b0
    if pt != 0 or pl != 0 or Hp != H or Wp != W:
        source = np.zeros((b1 - b0) * C * Hp * Wp, dtype=x.dtype)
        first = 0
        for plane in range((b1 - b0) * C):
            for h in range(H):
                src = ((b0 * C + plane) * H + h) * W
                dst = (plane * Hp + h + pt) * Wp + pl
                for w in range(W):
                    source[uint64(dst + w)] = flat[uint64(src + w)]
    # Where each 8-wide copy of one window goes, relative to the window's first
    # number: the same for every tap and image, so one flat loop does a window.
    per_row = (ow + VECTOR - 1) // VECTOR
    src_at = np.empty(oh * per_row, dtype=np.int64)
    dst_at = np.empty(oh * per_row, dtype=np.int64)
    for i in range(oh):
        for k in range(per_row):
            j = min(k * VECTOR, ow - VECTOR)
            src_at[i * per_row + k] = i * sh * Wp + j
            dst_at[i * per_row + k] = i * ow + j
    for r in range(C * fh * fw):
        c = r // (fh * fw)
        m = (r // fw) % fh
        n = r % fw
        row = cols[r]
        for b in range(b1 - b0):
            src = (((first + b) * C + c) * Hp + m) * Wp + n
            dst = b * P
            for k in range(oh * per_row):
                copy8(row, uint64(dst + dst_at[k]), source, uint64(src + src_at[k]))


@njit(cache=True, error_model="numpy")
def zero_columns(cols, start):
    """cols[:, start:] = 0 — the padding columns of a short last chunk. (A slice
    fill would compile Numba's shape-mismatch error path: seconds for nothing.)"""
    zero = cols.dtype.type(0)
    for r in range(cols.shape[0]):
        row = cols[r]
        for q in range(start, cols.shape[1]):
            row[q] = zero


@njit(cache=True, error_model="numpy")
def col2im_add(dcols, b0, b1, dx, geo, row_lo, row_hi, col_lo, col_hi):
    """dx[b0:b1] += the adjoint of im2col_into applied to dcols (serial, fixed order)."""
    if geo.sw == 1:
        col2im_gather(dcols, b0, b1, dx, geo)
        return
    fh, fw, sh, sw, pt, pl, oh, ow = geo.fh, geo.fw, geo.sh, geo.sw, geo.pt, geo.pl, geo.oh, geo.ow
    C = dx.shape[1]
    P = oh * ow
    for b in range(b0, b1):
        for c in range(C):
            plane = dx[b, c]
            for m in range(fh):
                i_lo, i_hi = row_lo[m], row_hi[m]
                for n in range(fw):
                    j_lo, j_hi = col_lo[n], col_hi[n]
                    row = dcols[(c * fh + m) * fw + n]
                    for i in range(i_lo, i_hi):
                        dst = plane[i * sh + m - pt]
                        src = (b - b0) * P + i * ow
                        for j in range(j_lo, j_hi):  # sw > 1 here: stride 1 took the gather path
                            dst[uint64(j * sw + n - pl)] += row[uint64(src + j)]


@njit(cache=True, error_model="numpy")
def col2im_gather(dcols, b0, b1, dx, geo):
    """col2im_add for a column stride of 1, in gather form (kernels/runtime/vector.py):
    each 16-wide segment of a dx row sums, in registers, every tap (m, n) that
    reads it, in the scatter's (m, n) order — the same sums, bit for bit — and is
    then added to dx once. Three planes at a time, so three chains of additions
    overlap."""
    fh, fw, sh, pt, pl, oh, ow = geo.fh, geo.fw, geo.sh, geo.pt, geo.pl, geo.oh, geo.ow
    C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
    P = oh * ow
    acc = np.empty(3 * LANES, dtype=dx.dtype)
    zero = dx.dtype.type(0)
    out = dx.reshape(dx.size)
    for b in range(b0, b1):
        for c0 in range(0, C, 3):
            planes = min(3, C - c0)
            for h in range(H):
                for t0 in range(0, W, LANES):
                    for t in range(3 * LANES):
                        acc[t] = zero
                    for m in range(fh):
                        # Output row i reads input row h through tap m when i·sh + m − pt = h.
                        num = h + pt - m
                        if num < 0 or num % sh != 0 or num // sh >= oh:
                            continue
                        first = (c0 * fh + m) * fw
                        base = (b - b0) * P + (num // sh) * ow
                        accumulate_taps3(acc, dcols, first, fh * fw, planes, base, -pl - t0, fw, ow)
                    for g in range(planes):
                        start = ((b * C + c0 + g) * H + h) * W + t0
                        for t in range(min(LANES, W - t0)):
                            out[uint64(start + t)] += acc[g * LANES + t]
