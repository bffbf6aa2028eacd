"""Fully connected layer with fused activation, and LeNet-5's fixed RBF output layer.

Weights are stored (D, U) — inputs by units. The dense products (x·w, xᵀ·δ,
δ·wᵀ) are BLAS calls through np.dot, single-threaded (kernels/blas.py holds every BLAS
to one thread; Numba's pool owns the cores), so each is one fixed sequence of
operations: bitwise repeatable for any thread count. The loops around them
(bias, activation, δ = ∂L/∂a·f'(a), the bias gradient summed in batch order)
are contiguous over units and vectorise. Hand-written axpy loops did the
products before; BLAS is 2-3× faster on fc1 of LeNet-5 (400×120) at batch 64.
"""

import numpy as np
from numba import njit, prange, uint64

from .activations import activate_span, check_code, delta_span
from .blas import use_single_threaded_blas
from .jit import prange_only

use_single_threaded_blas()  # these kernels call BLAS inside parallel loops

@njit(parallel=prange_only(), cache=True, error_model="numpy")
def dense_forward(x, w, bias, act):
    """a = act(x·w + bias) with x (B,D), w (D,U), bias (U,) → (B,U).

    The product is one BLAS call (np.dot, single-threaded: see blas.py); bias
    and activation follow row by row in parallel."""
    check_code(act)
    B, D = x.shape
    if w.shape[0] != D or bias.size != w.shape[1]:
        raise ValueError("dense_forward: x, w and bias shapes disagree")
    U = w.shape[1]
    out = np.dot(np.ascontiguousarray(x), w)
    flat = out.reshape(out.size)
    for b in prange(B):
        row = out[b]
        for u in range(U):
            row[uint64(u)] += bias[uint64(u)]
        activate_span(flat, b * U, (b + 1) * U, act)
    return out


@njit(parallel=prange_only(), cache=True, error_model="numpy")
def dense_backward(da, a, x, w, act, need_dx):
    """Returns (dx (B,D), dw (D,U), dbias (U,)) given da = ∂L/∂a and the output a.

    δ = ∂L/∂a·f'(a); dw = xᵀ·δ and dx = δ·wᵀ are BLAS products, dbias = Σ_b δ in
    batch order. dx is a (0,0) array when need_dx is False, and that work is skipped.
    """
    check_code(act)
    B, U = da.shape
    D = x.shape[1]
    if a.shape != da.shape or x.shape[0] != B or w.shape[0] != D or w.shape[1] != U:
        raise ValueError("dense_backward: da, a, x and w shapes disagree")
    dt = x.dtype
    delta = np.empty((B, U), dtype=dt)
    dflat = delta.reshape(delta.size)
    daf = np.ascontiguousarray(da).ravel()
    af = np.ascontiguousarray(a).ravel()
    for b in prange(B):
        delta_span(daf, af, dflat, b * U, (b + 1) * U, act)
    dbias = np.zeros(U, dtype=dt)
    for b in range(B):
        row = delta[b]
        for u in range(U):
            dbias[uint64(u)] += row[uint64(u)]
    xc = np.ascontiguousarray(x)
    dw = np.dot(xc.T, delta)
    if not need_dx:
        return np.empty((0, 0), dtype=dt), dw, dbias
    return np.dot(delta, w.T), dw, dbias


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
