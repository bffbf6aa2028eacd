"""Fully connected layers: the dense layer and LeNet-5's RBF output."""

from __future__ import annotations

import numpy as np

from ..spec.config import DenseSpec, LayerShape, RbfSpec
from ..spec.rbf_digits import digit_centres
from ..kernels import dense as dense_k
from ..kernels import second_order as so_k
from ..kernels.activations import ACTIVATIONS
from .layer import Layer, add_curvature, init_weight_bias


class Dense(Layer):
    """z = x·W + b with W stored (inputs, units); flattens (C, H, W) inputs row-major."""

    family = "dense"

    def __init__(self, shape: LayerShape, dtype, rng: np.random.Generator, init: str = "he_normal"):
        spec: DenseSpec = shape.spec
        super().__init__(spec.name, shape.in_shape, shape.out_shape, dtype)
        self.spec = spec
        fan_in = int(np.prod(self.in_shape))
        self.params["weight"], self.params["bias"] = init_weight_bias(
            spec.init or init, spec.activation, fan_in, (fan_in, spec.units), spec.units, self.dtype, rng)
        self.act = ACTIVATIONS[spec.activation]
        self.dropout = spec.dropout
        # Inverted dropout's mask (B, units): 0 or 1/(1−p) per output, drawn by the
        # model for each training step; None: no dropout (inference, or no noise given).
        self.dropout_mask: np.ndarray | None = None
        self._cache_x = self._cache_y = self._cache_shape = None

    def forward(self, x):
        x2 = x.reshape(x.shape[0], -1)
        y = dense_k.dense_forward(x2, self.params["weight"], self.params["bias"], self.act)
        self._cache_x, self._cache_y, self._cache_shape = x2, y, x.shape
        if self.training and self.dropout_mask is not None:
            return y * self.dropout_mask
        return y

    def backward(self, dy):
        if self.dropout_mask is not None:
            dy = dy * self.dropout_mask
        dx, dw, db = dense_k.dense_backward(
            dy, self._cache_y, self._cache_x, self.params["weight"], self.act, self.need_dx,
            dw_out=self.grad_target("weight"),
        )
        self.set_grad("weight", dw)
        self.set_grad("bias", db)
        # Unflatten: the layer below gets its gradient in the shape it produced.
        return dx.reshape(self._cache_shape) if self.need_dx else None

    def backward2(self, d2y, curv: dict):
        d2a = so_k.through_activation(np.ascontiguousarray(d2y), self._cache_y, self.act)
        d2x, d2w, d2b = so_k.dense_second(d2a, self._cache_x, self.params["weight"], self.need_dx)
        add_curvature(curv, "weight", d2w)
        add_curvature(curv, "bias", d2b)
        return d2x.reshape(self._cache_shape) if self.need_dx else None


class RbfOutput(Layer):
    """Classic LeNet-5 output: squared Euclidean distance to fixed digit centres.

    It returns the NEGATED distances, so its outputs are logits like any other
    network's: the nearest centre has the largest logit, and softmax
    cross-entropy over them is the paper's criterion without its constant.
    """

    family = "rbf"

    def __init__(self, shape: LayerShape, dtype, rng=None):
        spec: RbfSpec = shape.spec
        super().__init__(spec.name, shape.in_shape, shape.out_shape, dtype)
        self.spec = spec
        self.fixed["centres"] = digit_centres().astype(self.dtype)
        self._cache_x = self._cache_shape = None

    def forward(self, x):
        x2 = x.reshape(x.shape[0], -1)
        self._cache_x, self._cache_shape = x2, x.shape
        return -dense_k.rbf_forward(x2, self.fixed["centres"])

    def backward(self, dy):
        if not self.need_dx:
            return None
        dx = dense_k.rbf_backward(-dy, self._cache_x, self.fixed["centres"])
        return dx.reshape(self._cache_shape)

    def backward2_loss(self, j: float):
        """∂²E/∂x² of the loss over this layer's distances (MAP with this j, or
        softmax cross-entropy with j = inf), RBF and loss taken together
        (kernels/second_order.py rbf_loss_second); it has no parameters."""
        d2x = so_k.rbf_loss_second(np.ascontiguousarray(self._cache_x), self.fixed["centres"], float(j))
        return d2x.reshape(self._cache_shape)
