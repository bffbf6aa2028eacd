"""Optimizer updates, one fused pass per parameter array.

NumPy would make four to six passes (and temporaries) per array per step;
at batch 1 that bookkeeping cost as much as the whole backward pass. These
loops read and write each element once. They are serial: the largest LeNet
array has 48k entries, a few microseconds of work, less than a parallel launch.
Every array is 1-D: the Optimizer passes flat views of C-contiguous arrays
(optim._flat refuses others), so one compiled signature serves all parameters.
Constants are cast to the array's dtype so float32 training stays float32, and
indices are unsigned: Numba's wraparound test for negative indices would stop
LLVM from vectorising the loops (measured 2.4 ns per element before, see below).
"""

import math

import numpy as np
from numba import njit, uint64


@njit(cache=True, error_model="numpy")
def sgd_update(param, grad, velocity, lr, momentum, nesterov, weight_decay):
    """PyTorch's SGD: g += λw; v ← μv + g; w −= lr·(g + μv if nesterov else v) (μ = 0: w −= lr·g)."""
    p, g, v = param, grad, velocity
    T = p.dtype.type
    rate, mu, decay = T(lr), T(momentum), T(weight_decay)
    if momentum == 0.0:
        for k in range(p.size):
            i = uint64(k)
            p[i] -= rate * (g[i] + decay * p[i])
    elif nesterov:
        for k in range(p.size):
            i = uint64(k)
            gi = g[i] + decay * p[i]
            vi = mu * v[i] + gi
            v[i] = vi
            p[i] -= rate * (gi + mu * vi)
    else:
        for k in range(p.size):
            i = uint64(k)
            gi = g[i] + decay * p[i]
            vi = mu * v[i] + gi
            v[i] = vi
            p[i] -= rate * vi


@njit(cache=True, error_model="numpy")
def adam_update(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step):
    """PyTorch's single-tensor Adam, step by step (L2 weight decay added to the
    gradient, ε after bias correction): g += λw; m ← m + (1−β1)·(g − m) (lerp);
    v ← β2·v + (1−β2)·g²; w −= lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε).
    Constants such as 1−β are formed in float64 and then cast, as PyTorch does."""
    p, g, mm, vv = param, grad, m, v
    T = p.dtype.type
    b2 = T(beta2)
    c1, c2 = T(1.0 - beta1), T(1.0 - beta2)
    decay = T(weight_decay)
    step_size = T(lr / (1.0 - beta1**step))
    sqrt_bc2 = T(math.sqrt(1.0 - beta2**step))
    epsilon = T(eps)
    for k in range(p.size):
        i = uint64(k)
        gi = g[i] + decay * p[i]
        mi = mm[i] + c1 * (gi - mm[i])
        vi = b2 * vv[i] + c2 * gi * gi
        mm[i] = mi
        vv[i] = vi
        p[i] -= step_size * (mi / (np.sqrt(vi) / sqrt_bc2 + epsilon))
