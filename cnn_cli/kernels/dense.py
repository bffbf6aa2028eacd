"""Fully connected layer with fused activation, and LeNet-5's fixed RBF output layer.

Weights are stored (D, U) — inputs by units. The dense products (x·w, xᵀ·δ,
δ·wᵀ) are BLAS calls through np.dot, single-threaded (kernels/blas.py holds every BLAS
to one thread; Numba's pool owns the cores), so each is one fixed sequence of
operations: bitwise repeatable for any thread count. The loops around them
(bias, activation, δ = ∂L/∂a·f'(a), the bias gradient summed in batch order)
are contiguous over units and vectorise; blocks of rows spread over the cores. Hand-written axpy loops did the
products before; BLAS is 2-3× faster on fc1 of LeNet-5 (400×120) at batch 64.
"""

import numpy as np
from numba import njit, prange, uint64

from .activations import activate_span, check_code, delta_span
from .blas import use_single_threaded_blas
from .jit import prange_only

use_single_threaded_blas()  # these kernels call BLAS inside parallel loops

# The batch is cut into row blocks of at least ROWS_PER_BLOCK rows (at most
# MAX_BLOCKS), one BLAS call per block and per parallel item. The cut depends on
# the batch size only, never on the thread count, so every product is the same
# sequence of operations on any machine setting. Measured on lenet5's fc1 at
# batch 256: one call for the whole batch left a core idle for 0.27 + 0.59 ms.
ROWS_PER_BLOCK = 32
MAX_BLOCKS = 8


@njit(cache=True, error_model="numpy")
def _row_block(B, blocks, i):
    """Rows [lo, hi) of block i when B rows are cut into `blocks` near-equal blocks."""
    return i * B // blocks, (i + 1) * B // blocks


@njit(cache=True, error_model="numpy")
def _block_count(B):
    return max(1, min(MAX_BLOCKS, B // ROWS_PER_BLOCK))


@njit(parallel=prange_only(), cache=True, error_model="numpy")
def dense_forward(x, w, bias, act):
    """a = act(x·w + bias) with x (B,D), w (D,U), bias (U,) → (B,U).

    Per row block: one BLAS product (np.dot, single-threaded: see blas.py), then
    bias and activation while the block is in cache."""
    check_code(act)
    B, D = x.shape
    if w.shape[0] != D or bias.size != w.shape[1]:
        raise ValueError("dense_forward: x, w and bias shapes disagree")
    U = w.shape[1]
    xc = np.ascontiguousarray(x)
    out = np.empty((B, U), dtype=x.dtype)
    blocks = _block_count(B)
    for i in prange(blocks):
        lo, hi = _row_block(B, blocks, i)
        rows = out[lo:hi]
        np.dot(xc[lo:hi], w, rows)
        for b in range(hi - lo):
            row = rows[b]
            for u in range(U):
                row[uint64(u)] += bias[uint64(u)]
            activate_span(row, 0, U, act)
    return out


@njit(parallel=prange_only(), cache=True, error_model="numpy")
def dense_backward(da, a, x, w, act, need_dx):
    """Returns (dx (B,D), dw (D,U), dbias (U,)) given da = ∂L/∂a and the output a.

    δ = ∂L/∂a·f'(a); per row block, dx = δ·wᵀ and a partial dw = xᵀ·δ (BLAS);
    the partials are then added in block order and dbias = Σ_b δ in batch order,
    so the sums are fixed. dx is a (0,0) array when need_dx is False, and that
    work is skipped.
    """
    check_code(act)
    B, U = da.shape
    D = x.shape[1]
    if a.shape != da.shape or x.shape[0] != B or w.shape[0] != D or w.shape[1] != U:
        raise ValueError("dense_backward: da, a, x and w shapes disagree")
    dt = x.dtype
    dac = np.ascontiguousarray(da)
    ac = np.ascontiguousarray(a)
    xc = np.ascontiguousarray(x)
    delta = np.empty((B, U), dtype=dt)
    blocks = _block_count(B)
    dw_parts = np.empty((blocks, D, U), dtype=dt)
    dx = np.empty((B if need_dx else 0, D if need_dx else 0), dtype=dt)
    for i in prange(blocks):
        lo, hi = _row_block(B, blocks, i)
        for b in range(lo, hi):
            delta_span(dac[b], ac[b], delta[b], 0, U, act)
        np.dot(xc[lo:hi].T, delta[lo:hi], dw_parts[i])
        if need_dx:
            np.dot(delta[lo:hi], w.T, dx[lo:hi])
    dbias = np.zeros(U, dtype=dt)
    for b in range(B):
        row = delta[b]
        for u in range(U):
            dbias[uint64(u)] += row[uint64(u)]
    if blocks == 1:
        return dx, dw_parts[0], dbias
    # Serial: at most 8 × D·U additions (0.1 ms for fc1 at batch 256), and a
    # second parallel loop would add ~0.5 s of compile.
    dw = np.empty((D, U), dtype=dt)
    for d in range(D):
        for u in range(U):
            dw[d, uint64(u)] = dw_parts[0, d, uint64(u)]
        for i in range(1, blocks):
            for u in range(U):
                dw[d, uint64(u)] += dw_parts[i, d, uint64(u)]
    return dx, dw, dbias


# ---------------------------------------------------------------- RBF output (LeNet-5)


@njit(parallel=prange_only(), cache=True, error_model="numpy")
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


@njit(parallel=prange_only(), cache=True, error_model="numpy")
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
