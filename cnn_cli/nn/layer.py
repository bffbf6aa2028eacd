"""Layers: each knows its shapes, owns its parameters, gradients and forward cache,
and calls the kernels. Forward and backward of a layer sit side by side.

Conventions shared by every layer:
- `params` holds trainable arrays, `grads` the matching gradients after
  `backward`, `fixed` arrays that are part of the model but never trained
  (the RBF centres). Optimizers update `params` in place. In a Model, params
  and grads are views into one flat buffer each (model.pack_parameters), so
  the optimizer updates every array in one pass; `set_grad` writes into them.
- `forward(x)` caches what `backward` needs; `backward(dy)` returns dL/dx, or
  None when `need_dx` is False (the first layer: nobody wants the image's
  gradient, so the kernels skip that work).
- Activations are fused into the kernels and differentiated through the
  layer's output, so no layer keeps its pre-activations.
"""

from __future__ import annotations

import numpy as np


class Layer:
    family = "layer"

    def __init__(self, name: str, in_shape: tuple[int, ...], out_shape: tuple[int, ...], dtype):
        self.name = name
        self.in_shape = tuple(in_shape)
        self.out_shape = tuple(out_shape)
        self.dtype = np.dtype(dtype)
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.fixed: dict[str, np.ndarray] = {}
        self.need_dx = True
        self.packed = False  # set by model.pack_parameters
        # Set by the model: True while a backward pass will follow; False for
        # inference (the conv layers then keep no im2col columns).
        self.training = True

    def set_grad(self, name: str, value: np.ndarray) -> None:
        """Store a gradient: copied into the array already held when the model packed
        the gradients into one buffer (unless the kernel wrote it there: grad_target),
        kept as it is otherwise (a layer on its own)."""
        if self.packed:
            target = self.grads[name]
            if not np.may_share_memory(target, value):
                target[...] = value
        else:
            self.grads[name] = value

    def grad_target(self, name: str) -> np.ndarray | None:
        """Where a kernel may write this gradient itself (the packed buffer's view),
        saving set_grad's copy; None for a layer on its own."""
        return self.grads[name] if self.packed else None

    def forward(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray | None:  # pragma: no cover - interface
        raise NotImplementedError

    def clear_cache(self):
        """Forget forward caches (they can hold a whole batch of activations)."""
        for attr in [a for a in vars(self) if a.startswith("_cache")]:
            setattr(self, attr, None)


def _init_std(activation: str, fan_in: int) -> float:
    # He initialisation keeps ReLU activations' variance constant; LeCun's
    # 1/fan_in suits the saturating units (tanh, sigmoid, scaled tanh).
    return float(np.sqrt((2.0 if activation == "relu" else 1.0) / max(fan_in, 1)))


def init_weight_bias(init: str, activation: str, fan_in, weight_shape, units: int, dtype,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) drawn as train.init (or the layer's own init) says.

    he_normal: normal weights, std √(2/fan_in) before ReLU, √(1/fan_in) otherwise; zero biases.
    pytorch: PyTorch's default for nn.Conv2d/nn.Linear (kaiming_uniform with a = √5):
    weights and biases uniform in ±1/√fan_in. Its smaller weights and non-zero
    biases are what closed the accuracy gap to PyTorch (benchmarks/experiments/gap.py).
    lecun_uniform: weights U(±2.4/F), LeCun et al. 1998's draw (appendix A), which
    keeps the scaled tanh's inputs in its region of largest gain; zero biases.
    fan_in is a number, or (lecun_uniform) one per entry of the weight's first
    axis: a connection table's filters read different numbers of maps.
    """
    if init == "pytorch":
        bound = 1.0 / np.sqrt(max(int(np.mean(fan_in)), 1))
        weight = rng.uniform(-bound, bound, weight_shape).astype(dtype)
        return weight, rng.uniform(-bound, bound, units).astype(dtype)
    if init == "lecun_uniform":
        bound = 2.4 / np.maximum(np.asarray(fan_in, dtype=np.float64), 1.0)
        bound = bound.reshape(bound.shape + (1,) * (len(weight_shape) - bound.ndim))
        return (rng.uniform(-1.0, 1.0, weight_shape) * bound).astype(dtype), np.zeros(units, dtype=dtype)
    std = _init_std(activation, int(np.mean(fan_in)))
    return (rng.standard_normal(weight_shape) * std).astype(dtype), np.zeros(units, dtype=dtype)


def add_curvature(curv: dict[str, np.ndarray], name: str, value: np.ndarray) -> None:
    """Add one batch's Σ of ∂²E/∂w² into the running sums of a second-order pass."""
    if name in curv:
        curv[name] += value
    else:
        curv[name] = np.array(value, dtype=np.float64)
