"""Fully connected layer with fused activation, and LeNet-5's fixed RBF output layer.

Weights are stored (D, U) — inputs by units — so that forward is, for each
input d, a contiguous multiply-add of the row w[d, :] into the output row:
the innermost loop runs over units, is contiguous and vectorises. Backward
keeps the same shape of loop everywhere:

- dw[d, :] += x[b, d] · δ[b, :]  (contiguous over units, batch summed in order),
- dbias[u] += δ[b, u]            (per block of units, batch summed in order),
- dx[b, :] += δ[b, u] · wᵀ[u, :]  (over a transposed copy of w, so the inner
  loop is contiguous too; the copy costs one pass over w, the product B passes).

A dot product in the innermost loop would be the natural way to write dx, but
without fastmath LLVM does not vectorise a floating-point reduction (it would
change the order of the additions); these axpy forms vectorise and keep a
fixed summation order, so results are bitwise deterministic for any thread
count. Parallel items are (sample, block of units/inputs) or (block of input
rows) so batch 1 still has parallelism for wide layers.
"""

import numpy as np
from numba import njit, prange, uint64

from .activations import activate_span, check_code, delta_span

# Units (or inputs) per parallel item: one item's slice of a weight row is a
# few cache lines, and layers of LeNet size give a handful of items per sample.
_BLOCK = 64
# Rows of dw per parallel item: each δ[b, :] row loaded is reused for this many
# weight rows before moving on.
_ROWS = 4


@njit(parallel=True, cache=True)
def dense_forward(x, w, bias, act):
    """a = act(x·w + bias) with x (B,D), w (D,U), bias (U,) → (B,U)."""
    check_code(act)
    B, D = x.shape
    if w.shape[0] != D or bias.size != w.shape[1]:
        raise ValueError("dense_forward: x, w and bias shapes disagree")
    U = w.shape[1]
    out = np.empty((B, U), dtype=x.dtype)
    flat = out.reshape(out.size)
    nblk = (U + _BLOCK - 1) // _BLOCK
    for it in prange(B * nblk):
        b = it // nblk
        u0 = (it - b * nblk) * _BLOCK
        u1 = min(u0 + _BLOCK, U)
        for u in range(u0, u1):
            out[b, uint64(u)] = bias[uint64(u)]
        for d in range(D):
            xv = x[b, d]
            for u in range(u0, u1):
                out[b, uint64(u)] += xv * w[d, uint64(u)]
        activate_span(flat, b * U + u0, b * U + u1, act)
    return out


@njit(parallel=True, cache=True)
def dense_backward(da, a, x, w, act, need_dx):
    """Returns (dx (B,D), dw (D,U), dbias (U,)) given da = ∂L/∂a and the output a.

    dx is a (0,0) array when need_dx is False, and that work is skipped.
    """
    check_code(act)
    B, U = da.shape
    D = x.shape[1]
    if a.shape != da.shape or x.shape[0] != B or w.shape[0] != D or w.shape[1] != U:
        raise ValueError("dense_backward: da, a, x and w shapes disagree")
    dt = x.dtype
    delta = np.empty((B, U), dtype=dt)
    dflat = delta.reshape(delta.size)
    daf = da.ravel()
    af = a.ravel()
    for b in prange(B):
        delta_span(daf, af, dflat, b * U, (b + 1) * U, act)

    nublk = (U + _BLOCK - 1) // _BLOCK
    dbias = np.empty(U, dtype=dt)
    for blk in prange(nublk):
        u0 = blk * _BLOCK
        u1 = min(u0 + _BLOCK, U)
        for u in range(u0, u1):
            dbias[uint64(u)] = 0
        for b in range(B):
            for u in range(u0, u1):
                dbias[uint64(u)] += delta[b, uint64(u)]

    dw = np.empty((D, U), dtype=dt)
    nrblk = (D + _ROWS - 1) // _ROWS
    for blk in prange(nrblk):
        d0 = blk * _ROWS
        d1 = min(d0 + _ROWS, D)
        for d in range(d0, d1):
            for u in range(U):
                dw[d, uint64(u)] = 0
        for b in range(B):
            for d in range(d0, d1):
                xv = x[b, d]
                for u in range(U):
                    dw[d, uint64(u)] += xv * delta[b, uint64(u)]

    if not need_dx:
        return np.empty((0, 0), dtype=dt), dw, dbias
    wt = np.ascontiguousarray(w.T)
    dx = np.empty((B, D), dtype=dt)
    ndblk = (D + _BLOCK - 1) // _BLOCK
    for it in prange(B * ndblk):
        b = it // ndblk
        d0 = (it - b * ndblk) * _BLOCK
        d1 = min(d0 + _BLOCK, D)
        for d in range(d0, d1):
            dx[b, uint64(d)] = 0
        for u in range(U):
            g = delta[b, u]
            for d in range(d0, d1):
                dx[b, uint64(d)] += g * wt[u, uint64(d)]
    return dx, dw, dbias


# ---------------------------------------------------------------- RBF output (LeNet-5)


@njit(parallel=True, cache=True)
def rbf_forward(x, centres):
    """y[b,u] = Σ_d (x[b,d] − centres[u,d])²: squared distance to each class's fixed centre."""
    B, D = x.shape
    U = centres.shape[0]
    if centres.shape[1] != D:
        raise ValueError("rbf_forward: centres must be (units, inputs)")
    y = np.empty((B, U), dtype=x.dtype)
    for it in prange(B * U):
        b = it // U
        u = it - b * U
        s = x.dtype.type(0)
        for d in range(D):
            t = x[b, uint64(d)] - centres[u, uint64(d)]
            s += t * t
        y[b, u] = s
    return y


@njit(parallel=True, cache=True)
def rbf_backward(dy, x, centres):
    """dx[b,d] = Σ_u dy[b,u] · 2(x[b,d] − centres[u,d]) (the centres are fixed: no other gradient)."""
    B, D = x.shape
    U = centres.shape[0]
    if centres.shape[1] != D or dy.shape[0] != B or dy.shape[1] != U:
        raise ValueError("rbf_backward: dy, x and centres shapes disagree")
    dx = np.empty((B, D), dtype=x.dtype)
    two = x.dtype.type(2)
    for b in prange(B):
        for d in range(D):
            dx[b, uint64(d)] = 0
        for u in range(U):
            g = two * dy[b, u]
            for d in range(D):
                dx[b, uint64(d)] += g * (x[b, uint64(d)] - centres[u, uint64(d)])
    return dx
