"""Optimizer updates, one fused pass over the parameters.

NumPy would make four to six passes (and temporaries) per array per step,
bookkeeping that weighs most at small batches. These loops read and write
each element once. A model hands its whole parameter buffer over in one call
(model.pack_parameters); Adam's square roots and divisions then spread over
the cores in chunks, enough work to repay the split, while SGD, a few
multiply-adds per number, stays serial (benchmarks/RESULTS.md, Design
measurements).
Optimizer state that decays (momentum, Adam's moments of a parameter whose
gradient stays 0) would sink into subnormal floats, which Intel cores compute
tens of times slower than normal ones; such values are flushed to 0 as they are
stored (a select the loops keep vectorised; NaN stays NaN), which moves a parameter by less than a subnormal amount.

Every array is 1-D: the Optimizer passes flat views of C-contiguous arrays
(optim._flat refuses others), so one compiled signature serves all parameters.
Constants are cast to the array's dtype so float32 training stays float32, and
indices are unsigned: Numba's wraparound test for negative indices would stop
LLVM from vectorising the loops.
"""

import numpy as np
from numba import njit, types, uint64

from .runtime.parallel import c_array, item_args, launch_address, native_item, parallel_for


def sgd_update(param, grad, velocity, lr, momentum, nesterov, weight_decay):
    """PyTorch's SGD: g += λw; v ← μv + g; w −= lr·(g + μv if nesterov else v) (μ = 0: w −= lr·g)."""
    _sgd_update(param, grad, velocity, lr, momentum, nesterov, weight_decay, float(np.finfo(param.dtype).tiny))


@njit(cache=True, error_model="numpy")
def _sgd_update(param, grad, velocity, lr, momentum, nesterov, weight_decay, smallest):
    p, g, v = param, grad, velocity
    T = p.dtype.type
    rate, mu, decay, tiny, zero = T(lr), T(momentum), T(weight_decay), T(smallest), T(0)
    if momentum == 0.0:
        for k in range(p.size):
            i = uint64(k)
            p[i] -= rate * (g[i] + decay * p[i])
    elif nesterov:
        for k in range(p.size):
            i = uint64(k)
            gi = g[i] + decay * p[i]
            vi = mu * v[i] + gi
            vi = zero if abs(vi) < tiny else vi
            v[i] = vi
            p[i] -= rate * (gi + mu * vi)
    else:
        for k in range(p.size):
            i = uint64(k)
            gi = g[i] + decay * p[i]
            vi = mu * v[i] + gi
            vi = zero if abs(vi) < tiny else vi
            v[i] = vi
            p[i] -= rate * vi


@njit(cache=True, error_model="numpy")
def sdlm_update(param, grad, curvature, lr, mu, weight_decay):
    """Stochastic diagonal Levenberg–Marquardt: g += λw; w −= lr·g/(μ + h), h the
    estimated diagonal second derivative of the loss for each parameter (h ≥ 0)."""
    p, g, h = param, grad, curvature
    T = p.dtype.type
    rate, damping, decay = T(lr), T(mu), T(weight_decay)
    for k in range(p.size):
        i = uint64(k)
        p[i] -= rate * (g[i] + decay * p[i]) / (damping + h[i])


# Numbers per parallel item of the Adam update: lenet5's 61,706 parameters make
# four items, so both cores get work; the elements are independent, so the
# result is the same for any thread count.
ADAM_CHUNK = 16384


@njit(cache=True, error_model="numpy")
def _adam_span(param, grad, m, v, lo, hi, beta1, beta2, eps, weight_decay, step_size, bias2_sqrt, smallest):
    """PyTorch's single-tensor Adam on elements [lo, hi) (L2 weight decay added to
    the gradient, ε after bias correction): g += λw; m ← m + (1−β1)·(g − m)
    (lerp); v ← β2·v + (1−β2)·g²; w −= step_size · m / (√v/bias2_sqrt + ε),
    with step_size = lr/(1−β1ᵗ) and bias2_sqrt = √(1−β2ᵗ) from adam_update.
    Constants such as 1−β are formed in float64 and then cast, as PyTorch does."""
    p, g, mm, vv = param, grad, m, v
    T = p.dtype.type
    b2 = T(beta2)
    c1, c2 = T(1.0 - beta1), T(1.0 - beta2)
    decay = T(weight_decay)
    rate = T(step_size)
    sqrt_bc2 = T(bias2_sqrt)
    epsilon = T(eps)
    tiny, zero = T(smallest), T(0)
    for k in range(lo, hi):
        i = uint64(k)
        gi = g[i] + decay * p[i]
        mi = mm[i] + c1 * (gi - mm[i])
        vi = b2 * vv[i] + c2 * gi * gi
        mi = zero if abs(mi) < tiny else mi
        vi = zero if vi < tiny else vi
        mm[i] = mi
        vv[i] = vi
        p[i] -= rate * (mi / (np.sqrt(vi) / sqrt_bc2 + epsilon))


@native_item(lambda f: (c_array(f, 1),) * 4 + (types.float64,) * 7 + (types.int64,))
@njit(cache=True, error_model="numpy")
def _adam_chunk(i, context):
    """One parallel item of adam_update: elements [i·chunk, (i+1)·chunk)."""
    p, g, m, v, beta1, beta2, eps, weight_decay, step_size, bias2_sqrt, smallest, chunk = item_args(context)
    lo = i * chunk
    _adam_span(p, g, m, v, lo, min(p.size, lo + chunk), beta1, beta2, eps, weight_decay, step_size, bias2_sqrt,
               smallest)


def adam_update(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step):
    """One Adam step on flat, C-contiguous arrays of one float type (see _adam_span).

    The bias corrections are computed here, in Python floats, exactly as
    PyTorch's Adam computes them (`beta ** step` and `** 0.5` are C's pow(); Numba's float ** int
    multiplies by squaring and differed from it in the last bit for about
    half of the steps tried), and Numba's power routine, a noticeable part of
    the cold compile, is not compiled at all."""
    step_size = float(lr) / (1.0 - float(beta1) ** int(step))
    bias2_sqrt = (1.0 - float(beta2) ** int(step)) ** 0.5
    _adam_update(launch_address(), _adam_chunk.native.address(param.dtype), param, grad, m, v, float(beta1),
                 float(beta2), float(eps), float(weight_decay), step_size, bias2_sqrt,
                 float(np.finfo(param.dtype).tiny))


@njit(cache=True, error_model="numpy")
def _adam_update(launch, chunk_fn, p, g, m, v, beta1, beta2, eps, weight_decay, step_size, bias2_sqrt, smallest):
    chunks = (p.size + ADAM_CHUNK - 1) // ADAM_CHUNK
    parallel_for(_adam_chunk, launch, chunk_fn, chunks, (p, g, m, v, beta1, beta2, eps, weight_decay, step_size,
                                                         bias2_sqrt, smallest, np.int64(ADAM_CHUNK)))
