"""Convolution as matrix products: the helpers around a BLAS GEMM.

The direct kernels in conv.py are the reference (and the path for connection
tables). For a fully connected convolution the layer instead lowers the input
to a column matrix once (im2col), lets NumPy's BLAS do the three products

    forward      Z  = W · cols                  (K, B·P)
    weight grad  dW = δ · colsᵀ                 (K, C·Fh·Fw)
    input grad   dcols = Wᵀ · δ, then col2im    (C·Fh·Fw, B·P)

and uses the kernels below for everything around them, each fusing what would
otherwise be a separate pass (bias, activation, the NCHW transpose, δ = ∂L/∂a·f'(a)).
Measured on LeNet-5's conv2 at batch 64 this is ~3× faster forward and ~5×
backward than the direct loops: BLAS blocks for registers and cache, which
short 10-wide rows never let the direct loops do.

Layout: column r = (c·Fh + m)·Fw + n, column index q = b·P + i·ow + j, where
P = oh·ow. The batch sits inside the columns so that one GEMM covers the whole
batch (one large product beats B small ones).

Determinism: every parallel item writes its own rows/planes and sums in a fixed
order, and the model holds BLAS to one thread (model.use_single_threaded_blas),
so each GEMM is the same sequence of operations on every run.
"""

import numpy as np
from numba import njit, prange, uint64

from .activations import activate_span, check_code, delta_span
from .conv import _tap_ranges


@njit(parallel=True, cache=True)
def im2col(x, fh, fw, sh, sw, pt, pl, oh, ow):
    """cols[(c·fh+m)·fw+n, b·P + i·ow + j] = x_pad[b, c, i·sh+m, j·sw+n]; padding reads 0."""
    B, C, H, W = x.shape
    P = oh * ow
    rows = C * fh * fw
    cols = np.empty((rows, B * P), dtype=x.dtype)
    zero = x.dtype.type(0)
    row_lo, row_hi = _tap_ranges(fh, oh, H, sh, pt)
    col_lo, col_hi = _tap_ranges(fw, ow, W, sw, pl)
    for r in prange(rows):
        c = r // (fh * fw)
        m = (r // fw) % fh
        n = r % fw
        i_lo, i_hi = row_lo[m], row_hi[m]
        j_lo, j_hi = col_lo[n], col_hi[n]
        row = cols[r]
        for b in range(B):
            for i in range(oh):
                dst = b * P + i * ow
                if i < i_lo or i >= i_hi:
                    for j in range(ow):
                        row[uint64(dst + j)] = zero
                    continue
                src = x[b, c, i * sh + m - pt]
                for j in range(j_lo):
                    row[uint64(dst + j)] = zero
                if sw == 1:
                    off = n - pl
                    for j in range(j_lo, j_hi):
                        row[uint64(dst + j)] = src[uint64(j + off)]
                else:
                    for j in range(j_lo, j_hi):
                        row[uint64(dst + j)] = src[uint64(j * sw + n - pl)]
                for j in range(j_hi, ow):
                    row[uint64(dst + j)] = zero
    return cols


@njit(parallel=True, cache=True)
def col2im(dcols, B, C, H, W, fh, fw, sh, sw, pt, pl, oh, ow):
    """The adjoint of im2col: dx[b, c, h, w] = Σ of the column entries that read x[b, c, h, w].

    Entries that read padding are dropped; overlapping windows add up. Each
    (b, c) plane is one parallel item, summed in a fixed (m, n, i, j) order."""
    P = oh * ow
    dx = np.zeros((B, C, H, W), dtype=dcols.dtype)
    row_lo, row_hi = _tap_ranges(fh, oh, H, sh, pt)
    col_lo, col_hi = _tap_ranges(fw, ow, W, sw, pl)
    for bc in prange(B * C):
        b = bc // C
        c = bc % C
        plane = dx[b, c]
        for m in range(fh):
            i_lo, i_hi = row_lo[m], row_hi[m]
            for n in range(fw):
                j_lo, j_hi = col_lo[n], col_hi[n]
                row = dcols[(c * fh + m) * fw + n]
                for i in range(i_lo, i_hi):
                    dst = plane[i * sh + m - pt]
                    src = b * P + i * ow
                    if sw == 1:
                        off = n - pl
                        for j in range(j_lo, j_hi):
                            dst[uint64(j + off)] += row[uint64(src + j)]
                    else:
                        for j in range(j_lo, j_hi):
                            dst[uint64(j * sw + n - pl)] += row[uint64(src + j)]
    return dx


@njit(parallel=True, cache=True)
def bias_activation_to_nchw(z, bias, B, oh, ow, act):
    """a[b, k] = f(z[k, b·P:(b+1)·P] + bias[k]) reshaped to (B, K, oh, ow)."""
    check_code(act)
    K = z.shape[0]
    P = oh * ow
    a = np.empty((B, K, P), dtype=z.dtype)
    for bk in prange(B * K):
        b = bk // K
        k = bk % K
        dst = a[b, k]
        src = z[k]
        beta = bias[k]
        base = b * P
        for p in range(P):
            dst[uint64(p)] = src[uint64(base + p)] + beta
        activate_span(dst, 0, P, act)
    return a.reshape((B, K, oh, ow))


@njit(parallel=True, cache=True)
def delta_to_columns(da, a, act):
    """δ = ∂L/∂a · f'(a) laid out (K, B·P) for the GEMMs, and ∂L/∂bias = Σ δ per filter."""
    check_code(act)
    B, K, oh, ow = da.shape
    P = oh * ow
    da3 = da.reshape((B, K, P))
    a3 = a.reshape((B, K, P))
    delta = np.empty((K, B, P), dtype=da.dtype)
    for kb in prange(K * B):
        k = kb // B
        b = kb % B
        delta_span(da3[b, k], a3[b, k], delta[k, b], 0, P, act)
    dbias = np.empty(K, dtype=da.dtype)
    for k in prange(K):
        # Element-wise accumulation into a P-long row vectorises; the row is
        # then added up in order (a scalar reduction would not vectorise
        # without fastmath, and fastmath would give up the fixed order).
        acc = np.zeros(P, dtype=da.dtype)
        for b in range(B):
            row = delta[k, b]
            for p in range(P):
                acc[uint64(p)] += row[uint64(p)]
        total = da.dtype.type(0)
        for p in range(P):
            total += acc[p]
        dbias[k] = total
    return delta.reshape((K, B * P)), dbias
