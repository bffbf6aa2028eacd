"""Pooling layers: max, mean, Lp and LeNet-5's trainable subsampling."""

from __future__ import annotations

import numpy as np

from ..spec.config import LayerShape, PoolSpec
from ..kernels import pool as pool_k
from ..kernels import second_order as so_k
from ..kernels.activations import ACTIVATIONS
from .layer import Layer, add_curvature


class MaxPool2D(Layer):
    family = "pool"

    def __init__(self, shape: LayerShape, dtype, rng=None):
        super().__init__(shape.spec.name, shape.in_shape, shape.out_shape, dtype)
        self.spec: PoolSpec = shape.spec
        self._cache_argmax = None

    def forward(self, x):
        (ph, pw), (sh, sw) = self.spec.size, self.spec.stride
        y, self._cache_argmax = pool_k.maxpool2d_forward(x, ph, pw, sh, sw)
        return y

    def backward(self, dy):
        if not self.need_dx:
            return None
        return pool_k.maxpool2d_backward(dy, self._cache_argmax, self.in_shape[1], self.in_shape[2])

    def backward2(self, d2y, curv: dict):
        if not self.need_dx:
            return None
        return so_k.maxpool_second(np.ascontiguousarray(d2y), self._cache_argmax, *self.in_shape[1:])


class MeanPool2D(Layer):
    family = "pool"

    def __init__(self, shape: LayerShape, dtype, rng=None):
        super().__init__(shape.spec.name, shape.in_shape, shape.out_shape, dtype)
        self.spec: PoolSpec = shape.spec

    def forward(self, x):
        (ph, pw), (sh, sw) = self.spec.size, self.spec.stride
        return pool_k.meanpool2d_forward(x, ph, pw, sh, sw)

    def backward(self, dy):
        if not self.need_dx:
            return None
        (ph, pw), (sh, sw) = self.spec.size, self.spec.stride
        return pool_k.meanpool2d_backward(dy, self.in_shape[1], self.in_shape[2], ph, pw, sh, sw)

    def backward2(self, d2y, curv: dict):
        if not self.need_dx:
            return None
        (ph, pw), (sh, sw) = self.spec.size, self.spec.stride
        return so_k.meanpool_second(np.ascontiguousarray(d2y), *self.in_shape[1:], ph, pw, sh, sw)


class LpPool2D(Layer):
    """(Σ_window |x|^p)^(1/p): p = 1 is sum pooling, p → ∞ approaches max pooling."""

    family = "pool"

    def __init__(self, shape: LayerShape, dtype, rng=None):
        super().__init__(shape.spec.name, shape.in_shape, shape.out_shape, dtype)
        self.spec: PoolSpec = shape.spec
        self._cache_x = self._cache_y = None

    def forward(self, x):
        (ph, pw), (sh, sw) = self.spec.size, self.spec.stride
        y = pool_k.lppool2d_forward(x, self.spec.p, ph, pw, sh, sw)
        self._cache_x, self._cache_y = x, y
        return y

    def backward(self, dy):
        if not self.need_dx:
            return None
        (ph, pw), (sh, sw) = self.spec.size, self.spec.stride
        return pool_k.lppool2d_backward(dy, self._cache_x, self._cache_y, self.spec.p, ph, pw, sh, sw)


class Subsample2D(Layer):
    """LeNet-5's S2/S4: y = f(β·Σ_window x + b) with a trainable β and b per map."""

    family = "subsample"

    def __init__(self, shape: LayerShape, dtype, rng=None):
        super().__init__(shape.spec.name, shape.in_shape, shape.out_shape, dtype)
        self.spec: PoolSpec = shape.spec
        channels = self.in_shape[0]
        ph, pw = self.spec.size
        # Start as mean pooling: β = 1/window, b = 0.
        self.params["beta"] = np.full(channels, 1.0 / (ph * pw), dtype=self.dtype)
        self.params["bias"] = np.zeros(channels, dtype=self.dtype)
        self.act = ACTIVATIONS[self.spec.activation]
        self._cache_y = self._cache_sums = None

    def forward(self, x):
        (ph, pw), (sh, sw) = self.spec.size, self.spec.stride
        y, sums = pool_k.subsample_forward(x, self.params["beta"], self.params["bias"], ph, pw, sh, sw, self.act)
        self._cache_y, self._cache_sums = y, sums
        return y

    def backward(self, dy):
        (ph, pw), (sh, sw) = self.spec.size, self.spec.stride
        dx, dbeta, db = pool_k.subsample_backward(
            dy, self._cache_y, self._cache_sums, self.params["beta"], self.in_shape[1], self.in_shape[2],
            ph, pw, sh, sw, self.act, self.need_dx,
        )
        self.set_grad("beta", dbeta)
        self.set_grad("bias", db)
        return dx if self.need_dx else None

    def backward2(self, d2y, curv: dict):
        (ph, pw), (sh, sw) = self.spec.size, self.spec.stride
        d2a = so_k.through_activation(np.ascontiguousarray(d2y), self._cache_y, self.act)
        d2x, d2beta, d2b = so_k.subsample_second(d2a, self._cache_sums, self.params["beta"], *self.in_shape[1:],
                                                 ph, pw, sh, sw, self.need_dx)
        add_curvature(curv, "beta", d2beta)
        add_curvature(curv, "bias", d2b)
        return d2x if self.need_dx else None
