"""Activation functions, fused into every layer kernel through their outputs.

Each layer keeps only its output `a = f(z)`, never the pre-activation `z`: every
activation used here has a derivative that is a function of its own output
(relu: a > 0, sigmoid: a(1−a), tanh: 1−a², LeCun's scaled tanh
(2/3)/1.7159·(1.7159²−a²)), so backward computes `δ = ∂L/∂a · f'(a)` without a
second activation-sized buffer per layer.

Codes are the plain ints of spec/activations.py, so one compiled
specialisation serves every activation.

Constants are built with `type(z)(...)` / `v.dtype.type(...)`: a bare Python float
literal is float64 in Numba and would silently promote float32 training math to
float64 (slower, and different from what a float32 reference computes).

Array indices in the inner loops are cast to uint64: Numba emits negative-index
wraparound (`i < 0 ? i + n : i`) for signed indices, which stops LLVM from seeing
consecutive addresses and so from vectorising the loop.
"""

import numpy as np
from numba import njit, types, uint64

from .runtime.parallel import c_array, item_args, launch_address, native_item, parallel_for

# Codes and constants live with the names (spec/activations.py); re-exported for the kernels' callers.
from ..spec.activations import (  # noqa: F401
    CODES as ACTIVATIONS, IDENTITY, LECUN_A, LECUN_S, RELU, SCALED_TANH, SIGMOID, TANH,
)

# Elements handled by one parallel item of the standalone activation kernels:
# large enough that scheduling overhead is negligible, small enough that a
# LeNet-sized batch still splits across cores.
_CHUNK = 4096


@njit(cache=True, error_model="numpy")
def check_code(code):
    """Reject unknown activation codes before any parallel loop starts."""
    if code < IDENTITY or code > SCALED_TANH:
        raise ValueError("unknown activation code")


@njit(cache=True, error_model="numpy")
def activate(z, code):
    """f(z) for one scalar, in z's own precision."""
    T = type(z)
    if code == RELU:
        # `z <= 0` is False for NaN, so a diverged value stays NaN instead of
        # being hidden as 0.
        return T(0) if z <= T(0) else z
    if code == SIGMOID:
        # exp(−z) overflows to inf for z ≪ 0, giving 1/inf = 0: no NaN.
        return T(1) / (T(1) + np.exp(-z))
    if code == TANH:
        return np.tanh(z)
    if code == SCALED_TANH:
        return T(LECUN_A) * np.tanh(T(LECUN_S) * z)
    return z


@njit(cache=True, error_model="numpy")
def activation_derivative_from_output(a, code):
    """f'(z) expressed through a = f(z)."""
    T = type(a)
    if code == RELU:
        return T(1) if a > T(0) else T(0)
    if code == SIGMOID:
        return a * (T(1) - a)
    if code == TANH:
        return T(1) - a * a
    if code == SCALED_TANH:
        # f = A·tanh(S z) ⇒ f' = A·S·(1 − tanh²) = (S/A)·(A² − f²)
        return T(LECUN_S / LECUN_A) * (T(LECUN_A * LECUN_A) - a * a)
    return T(1)


@njit(cache=True, error_model="numpy")
def activate_span(v, lo, hi, code):
    """In place v[lo:hi] = f(v[lo:hi]) on a 1-D array.

    The branch on `code` sits outside the loops so each loop body is
    branch-free; relu (the common case) then vectorises. Callers pass a zero
    `lo` as np.int64(0): a literal 0 would make Numba compile a second copy
    of this function (and of delta_span) specialised on the constant.
    """
    T = v.dtype.type
    if code == RELU:
        zero = T(0)
        for t in range(lo, hi):
            z = v[uint64(t)]
            v[uint64(t)] = zero if z <= zero else z
    elif code == SIGMOID:
        one = T(1)
        for t in range(lo, hi):
            v[uint64(t)] = one / (one + np.exp(-v[uint64(t)]))
    elif code == TANH:
        for t in range(lo, hi):
            v[uint64(t)] = np.tanh(v[uint64(t)])
    elif code == SCALED_TANH:
        amp = T(LECUN_A)
        s = T(LECUN_S)
        for t in range(lo, hi):
            v[uint64(t)] = amp * np.tanh(s * v[uint64(t)])


@njit(cache=True, error_model="numpy")
def delta_span(da, a, out, lo, hi, code):
    """out[lo:hi] = da[lo:hi] · f'(a[lo:hi]) on 1-D arrays (branch outside the loops)."""
    T = out.dtype.type
    if code == RELU:
        zero = T(0)
        for t in range(lo, hi):
            u = uint64(t)
            out[u] = da[u] if a[u] > zero else zero
    elif code == SIGMOID:
        one = T(1)
        for t in range(lo, hi):
            u = uint64(t)
            out[u] = da[u] * (a[u] * (one - a[u]))
    elif code == TANH:
        one = T(1)
        for t in range(lo, hi):
            u = uint64(t)
            out[u] = da[u] * (one - a[u] * a[u])
    elif code == SCALED_TANH:
        g = T(LECUN_S / LECUN_A)
        a2 = T(LECUN_A * LECUN_A)
        for t in range(lo, hi):
            u = uint64(t)
            out[u] = da[u] * (g * (a2 - a[u] * a[u]))
    else:
        for t in range(lo, hi):
            u = uint64(t)
            out[u] = da[u]


@native_item(lambda f: (c_array(f, 1), c_array(f, 1), types.int64))
@njit(cache=True, error_model="numpy")
def _activate_chunk(ch, context):
    """Elements [ch·_CHUNK, (ch+1)·_CHUNK) of out = f(src): one parallel item of activation_forward."""
    src, out, code = item_args(context)
    lo = ch * _CHUNK
    hi = min(lo + _CHUNK, src.size)
    for t in range(lo, hi):
        out[uint64(t)] = src[uint64(t)]
    activate_span(out, lo, hi, code)


def activation_forward(z, code):
    """a = f(z) for an array of any shape; returns a new array of z's dtype and shape."""
    z = np.ascontiguousarray(z)
    out = _activation_forward(launch_address(), _activate_chunk.native.address(z.dtype), z.reshape(-1), code)
    return out.reshape(z.shape)


@njit(cache=True, error_model="numpy")
def _activation_forward(launch, chunk_fn, src, code):
    check_code(code)
    out = np.empty(src.size, dtype=src.dtype)
    parallel_for(_activate_chunk, launch, chunk_fn, (src.size + _CHUNK - 1) // _CHUNK, (src, out, code))
    return out


@native_item(lambda f: (c_array(f, 1), c_array(f, 1), c_array(f, 1), types.int64))
@njit(cache=True, error_model="numpy")
def _delta_chunk(ch, context):
    """Elements [ch·_CHUNK, (ch+1)·_CHUNK) of out = da·f'(a): one parallel item of activation_backward."""
    da, a, out, code = item_args(context)
    lo = ch * _CHUNK
    delta_span(da, a, out, lo, min(lo + _CHUNK, da.size), code)


def activation_backward(da, a, code):
    """dz = da · f'(a), with f' read from the output a; shape and dtype of da."""
    if da.shape != a.shape:
        raise ValueError("activation_backward: da and a shapes differ")
    da, a = np.ascontiguousarray(da), np.ascontiguousarray(a, dtype=da.dtype)
    delta = _activation_backward(launch_address(), _delta_chunk.native.address(da.dtype), da.reshape(-1),
                                 a.reshape(-1), code)
    return delta.reshape(da.shape)


@njit(cache=True, error_model="numpy")
def _activation_backward(launch, chunk_fn, da, a, code):
    check_code(code)
    out = np.empty(da.size, dtype=da.dtype)
    parallel_for(_delta_chunk, launch, chunk_fn, (da.size + _CHUNK - 1) // _CHUNK, (da, a, out, code))
    return out
