"""Fully connected layer with fused activation, and LeNet-5's fixed RBF output layer.

Weights are stored (D, U) — inputs by units. The dense products (x·w, xᵀ·δ,
δ·wᵀ) are BLAS calls through blas.matmul, single-threaded (kernels/runtime/blas.py
holds every BLAS to one thread; Numba's pool owns the cores), so each is one
fixed sequence of operations: bitwise repeatable for any thread count. The
loops around them (bias, activation, δ = ∂L/∂a·f'(a), the bias gradient summed
in batch order) are contiguous over units and vectorise; blocks of rows spread
over the cores. BLAS does the products because it blocks for registers and
cache, which hand-written loops do not (benchmarks/RESULTS.md, Design
measurements).
"""

import numpy as np
from numba import njit, types, uint64

from .activations import activate_span, check_code, delta_span
from .runtime.blas import matmul, matmul_strided, use_single_threaded_blas
from .runtime.parallel import c_array, item_args, launch_address, native_item, parallel_for

I64 = types.int64

use_single_threaded_blas()  # these kernels call BLAS inside parallel loops

# The batch is cut into row blocks of at least ROWS_PER_BLOCK rows (at most
# MAX_BLOCKS), one BLAS call per block and per parallel item. The cut depends on
# the batch size only, never on the thread count, so every product is the same
# sequence of operations on any machine setting. Blocks rather than one call
# for the whole batch, because a single-threaded BLAS call leaves the other
# cores idle (benchmarks/RESULTS.md, Design measurements).
ROWS_PER_BLOCK = 32
MAX_BLOCKS = 8
# Wide inputs (CIFAR-10's 2,048 features) cut the backward pass by input columns
# instead, at least this many a block: each block's rows of dw are then summed
# over the whole batch by one product, and no per-block copies of dw (D·U
# numbers each) are added up afterwards.
INPUTS_PER_BLOCK = 256


@njit(cache=True, error_model="numpy")
def _row_block(B, blocks, i):
    """Rows [lo, hi) of block i when B rows are cut into `blocks` near-equal blocks."""
    return i * B // blocks, (i + 1) * B // blocks


@njit(cache=True, error_model="numpy")
def _block_count(B):
    return max(1, min(MAX_BLOCKS, B // ROWS_PER_BLOCK))


@native_item(lambda f: (c_array(f, 2), c_array(f, 2), c_array(f, 1), c_array(f, 2), I64, I64))
@njit(cache=True, error_model="numpy")
def _dense_forward_block(i, context):
    """One parallel item of dense_forward: rows of block i."""
    x, w, bias, out, blocks, act = item_args(context)
    B, U = out.shape
    lo, hi = _row_block(B, blocks, i)
    rows = out[lo:hi]
    matmul(x[lo:hi], np.bool_(False), w, np.bool_(False), rows)
    for b in range(hi - lo):
        row = rows[b]
        for u in range(U):
            row[uint64(u)] += bias[uint64(u)]
        activate_span(row, np.int64(0), U, act)


def dense_forward(x, w, bias, act):
    """a = act(x·w + bias) with x (B,D), w (D,U), bias (U,) → (B,U).

    Per row block: one BLAS product (blas.matmul, single-threaded), then
    bias and activation while the block is in cache."""
    x, w, bias = np.ascontiguousarray(x), np.ascontiguousarray(w), np.ascontiguousarray(bias)
    return _dense_forward(launch_address(), _dense_forward_block.native.address(x.dtype), x, w, bias, act)


@njit(cache=True, error_model="numpy")
def _dense_forward(launch, block_fn, x, w, bias, act):
    check_code(act)
    B, D = x.shape
    if w.shape[0] != D or bias.size != w.shape[1]:
        raise ValueError("dense_forward: x, w and bias shapes disagree")
    out = np.empty((B, w.shape[1]), dtype=x.dtype)
    blocks = _block_count(B)
    parallel_for(_dense_forward_block, launch, block_fn, blocks, (x, w, bias, out, blocks, act))
    return out


@native_item(lambda f: (c_array(f, 2), c_array(f, 2), c_array(f, 2), c_array(f, 2), c_array(f, 2), c_array(f, 3),
                        c_array(f, 2), I64, I64, types.boolean))
@njit(cache=True, error_model="numpy")
def _dense_backward_block(i, context):
    """One parallel item of dense_backward: δ, dx and a partial dw for the rows of block i."""
    da, a, x, w, delta, dw_parts, dx, blocks, act, need_dx = item_args(context)
    dw_part = dw_parts[i]
    B, U = da.shape
    lo, hi = _row_block(B, blocks, i)
    for b in range(lo, hi):
        delta_span(da[b], a[b], delta[b], np.int64(0), U, act)
    matmul(x[lo:hi], np.bool_(True), delta[lo:hi], np.bool_(False), dw_part)
    if need_dx:
        matmul(delta[lo:hi], np.bool_(False), w, np.bool_(True), dx[lo:hi])


@native_item(lambda f: (c_array(f, 2), c_array(f, 2), c_array(f, 2), c_array(f, 2), c_array(f, 2), I64,
                        types.boolean))
@njit(cache=True, error_model="numpy")
def _dense_backward_columns(i, context):
    """One parallel item of dense_backward for wide inputs: input columns d0 … d1 − 1
    of block i, dw[d0:d1] = x[:, d0:d1]ᵀ·δ and dx[:, d0:d1] = δ·w[d0:d1]ᵀ."""
    x, w, delta, dw, dx, blocks, need_dx = item_args(context)
    B, D = x.shape
    U = delta.shape[1]
    d0, d1 = _row_block(D, blocks, i)
    matmul_strided(x.reshape(x.size)[d0:], np.bool_(True), D, delta.reshape(delta.size), np.bool_(False), U,
                   dw.reshape(dw.size)[d0 * U:], U, d1 - d0, U, B)
    if need_dx:
        matmul_strided(delta.reshape(delta.size), np.bool_(False), U, w.reshape(w.size)[d0 * U:], np.bool_(True), U,
                       dx.reshape(dx.size)[d0:], D, B, d1 - d0, U)


def dense_backward(da, a, x, w, act, need_dx, dw_out=None):
    """Returns (dx (B,D), dw (D,U), dbias (U,)) given da = ∂L/∂a and the output a.

    δ = ∂L/∂a·f'(a); per row block, dx = δ·wᵀ and a partial dw = xᵀ·δ (BLAS);
    the partials are then added in block order and dbias = Σ_b δ in batch order,
    so the sums are fixed. dx is a (0,0) array when need_dx is False, and that
    work is skipped. dw is written into dw_out when it is given (C-contiguous,
    w's shape and type) and more than one block's sum makes it.
    """
    da, a, x, w = (np.ascontiguousarray(v) for v in (da, a, x, w))
    if dw_out is None or not dw_out.flags.c_contiguous or dw_out.shape != w.shape or dw_out.dtype != w.dtype:
        dw_out = np.empty((0, 0), dtype=w.dtype)  # none given: the kernel allocates dw
    return _dense_backward(launch_address(), _dense_backward_block.native.address(x.dtype),
                           _dense_backward_columns.native.address(x.dtype), da, a, x, w, act, need_dx, dw_out)


@njit(cache=True, error_model="numpy")
def _dense_backward(launch, block_fn, columns_fn, da, a, x, w, act, need_dx, dw_out):
    check_code(act)
    B, U = da.shape
    D = x.shape[1]
    if a.shape != da.shape or x.shape[0] != B or w.shape[0] != D or w.shape[1] != U:
        raise ValueError("dense_backward: da, a, x and w shapes disagree")
    dt = x.dtype
    delta = np.empty((B, U), dtype=dt)
    column_blocks = min(MAX_BLOCKS, D // INPUTS_PER_BLOCK)
    if column_blocks >= 2:
        delta_span(da.reshape(da.size), a.reshape(a.size), delta.reshape(delta.size), np.int64(0), B * U, act)
        dw = dw_out if dw_out.shape[0] == D else np.empty((D, U), dtype=dt)
        dx = np.empty((B if need_dx else 0, D if need_dx else 0), dtype=dt)
        parallel_for(_dense_backward_columns, launch, columns_fn, column_blocks,
                     (x, w, delta, dw, dx, column_blocks, need_dx))
        return dx, dw, _bias_gradient(delta)
    blocks = _block_count(B)
    dw_parts = np.empty((blocks, D, U), dtype=dt)
    dx = np.empty((B if need_dx else 0, D if need_dx else 0), dtype=dt)
    parallel_for(_dense_backward_block, launch, block_fn, blocks, (da, a, x, w, delta, dw_parts, dx, blocks, act,
                                                                   need_dx))
    dbias = _bias_gradient(delta)
    if blocks == 1:
        return dx, dw_parts[0], dbias
    # Serial: at most 8 × D·U additions, too little work to repay a second
    # parallel loop's compile time (benchmarks/RESULTS.md, Design measurements).
    dw = dw_out if dw_out.shape[0] == D else np.empty((D, U), dtype=dt)
    for d in range(D):
        for u in range(U):
            dw[d, uint64(u)] = dw_parts[0, d, uint64(u)]
        for i in range(1, blocks):
            for u in range(U):
                dw[d, uint64(u)] += dw_parts[i, d, uint64(u)]
    return dx, dw, dbias


@njit(cache=True, error_model="numpy")
def _bias_gradient(delta):
    """Σ_b δ[b] in batch order."""
    B, U = delta.shape
    dbias = np.zeros(U, dtype=delta.dtype)
    for b in range(B):
        row = delta[b]
        for u in range(U):
            dbias[uint64(u)] += row[uint64(u)]
    return dbias


# ---------------------------------------------------------------- RBF output (LeNet-5)


@native_item(lambda f: (c_array(f, 2), c_array(f, 2), c_array(f, 2)))
@njit(cache=True, error_model="numpy")
def _rbf_row(b, context):
    """y[b,u] for every unit u: one parallel item of rbf_forward."""
    x, centres, y = item_args(context)
    for u in range(centres.shape[0]):
        s = x.dtype.type(0)
        for d in range(x.shape[1]):
            t = x[b, uint64(d)] - centres[u, uint64(d)]
            s += t * t
        y[b, u] = s


def rbf_forward(x, centres):
    """y[b,u] = Σ_d (x[b,d] − centres[u,d])²: squared distance to each class's fixed centre."""
    x, centres = np.ascontiguousarray(x), np.ascontiguousarray(centres)
    return _rbf_forward(launch_address(), _rbf_row.native.address(x.dtype), x, centres)


@njit(cache=True, error_model="numpy")
def _rbf_forward(launch, row_fn, x, centres):
    B, D = x.shape
    if centres.shape[1] != D:
        raise ValueError("rbf_forward: centres must be (units, inputs)")
    y = np.empty((B, centres.shape[0]), dtype=x.dtype)
    parallel_for(_rbf_row, launch, row_fn, B, (x, centres, y))
    return y


@native_item(lambda f: (c_array(f, 2), c_array(f, 2), c_array(f, 2), c_array(f, 2)))
@njit(cache=True, error_model="numpy")
def _rbf_backward_row(b, context):
    """dx[b] for one row: one parallel item of rbf_backward."""
    dy, x, centres, dx = item_args(context)
    D = x.shape[1]
    two = x.dtype.type(2)
    for d in range(D):
        dx[b, uint64(d)] = 0
    for u in range(centres.shape[0]):
        g = two * dy[b, u]
        for d in range(D):
            dx[b, uint64(d)] += g * (x[b, uint64(d)] - centres[u, uint64(d)])


def rbf_backward(dy, x, centres):
    """dx[b,d] = Σ_u dy[b,u] · 2(x[b,d] − centres[u,d]) (the centres are fixed: no other gradient)."""
    dy, x, centres = np.ascontiguousarray(dy), np.ascontiguousarray(x), np.ascontiguousarray(centres)
    return _rbf_backward(launch_address(), _rbf_backward_row.native.address(x.dtype), dy, x, centres)


@njit(cache=True, error_model="numpy")
def _rbf_backward(launch, row_fn, dy, x, centres):
    B, D = x.shape
    U = centres.shape[0]
    if centres.shape[1] != D or dy.shape[0] != B or dy.shape[1] != U:
        raise ValueError("rbf_backward: dy, x and centres shapes disagree")
    dx = np.empty((B, D), dtype=x.dtype)
    parallel_for(_rbf_backward_row, launch, row_fn, B, (dy, x, centres, dx))
    return dx
