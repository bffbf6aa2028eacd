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

from ..spec import tables
from ..spec.geometry import conv_geometry
from ..spec.config import ConvSpec, DenseSpec, LayerShape, PoolSpec, RbfSpec
from ..kernels import dense as dense_k
from ..kernels import conv as conv_k
from ..kernels import pool as pool_k
from ..kernels.activations import ACTIVATIONS
from ..spec.rbf_digits import digit_centres
from ..kernels import second_order as so_k


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
        the gradients into one buffer, kept as it is otherwise (a layer on its own)."""
        if self.packed:
            self.grads[name][...] = value
        else:
            self.grads[name] = value

    def forward(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray | None:  # pragma: no cover - interface
        raise NotImplementedError

    def clear_cache(self):
        """Forget forward caches (they can hold a whole batch of activations)."""
        for attr in [a for a in vars(self) if a.startswith("_cache")]:
            setattr(self, attr, None)


# Keep a conv's im2col columns from forward for backward when a column is at least
# this long (C·Fh·Fw); shorter ones are cheaper to recompute than to store and
# read back (lenet5 keeps conv2's 150-long columns, not conv1's 25-long ones;
# benchmarks/RESULTS.md, Design measurements).
KEEP_COLUMNS_FROM = 100
# ... and when the kept columns of the whole batch fit in this many bytes. Past
# that they no longer stay in cache between forward and backward, and reading
# them back costs more than lowering again (benchmarks/RESULTS.md, Design
# measurements).
KEEP_COLUMNS_MAX_BYTES = 8 << 20


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


def _curvature_sum(curv: dict[str, np.ndarray], name: str, value: np.ndarray) -> None:
    """Add one batch's Σ of ∂²E/∂w² into the running sums of a second-order pass."""
    if name in curv:
        curv[name] += value
    else:
        curv[name] = np.array(value, dtype=np.float64)


# ---------------------------------------------------------------- convolution


class Conv2D(Layer):
    """Cross-correlation with stride, padding and an optional connection table.

    Weights are stored (K, C, Fh, Fw) for a fully connected conv; with a
    connection table only the connected (input map, filter) pairs have weights,
    stored (connections, Fh, Fw) in the kernels' CSR order (filter-major).
    """

    family = "conv"

    def __init__(self, shape: LayerShape, dtype, rng: np.random.Generator, init: str = "he_normal"):
        spec: ConvSpec = shape.spec
        super().__init__(spec.name, shape.in_shape, shape.out_shape, dtype)
        self.spec = spec
        channels = self.in_shape[0]
        fh, fw = spec.kernel
        if spec.connections is None:
            self.conn = tables.full_connections(channels, spec.filters)
            weight_shape = (spec.filters, channels, fh, fw)
        else:
            self.conn = tables.table_connections(np.array(spec.connections, dtype=bool))
            weight_shape = (len(self.conn[1]), fh, fw)
        self.connections = len(self.conn[1])
        # A table's weights go into the kernels' dense (K, C·Fh·Fw) matrix, and
        # their gradients come back out, through these positions (spec/tables.py).
        self._dense_at = (None if spec.connections is None
                          else tables.dense_index(self.conn[1], self.conn[2], channels, fh, fw))
        fan_in = self.connections * fh * fw // spec.filters
        init = spec.init or init
        if init == "lecun_uniform" and spec.connections is not None:
            # Each connection's weights get the fan-in of the filter they belong to.
            per_filter = np.diff(self.conn[0]) * fh * fw
            fan_in = per_filter[self.conn[2]]
        self.params["weight"], self.params["bias"] = init_weight_bias(
            init, spec.activation, fan_in, weight_shape, spec.filters, self.dtype, rng)
        self.act = ACTIVATIONS[spec.activation]
        self.geometry = conv_geometry(spec.kernel, spec.stride, spec.padding, self.out_shape[1:])
        self._cache_x = self._cache_y = self._cache_w2 = self._cache_cols = self._cache_argmax = None

    def _weight_matrix(self) -> np.ndarray:
        """The (K, C·Fh·Fw) weight matrix the GEMM kernels take."""
        w = self.params["weight"]
        if self._dense_at is None:
            return w.reshape(self.spec.filters, -1)
        return tables.dense_weights(w, self._dense_at, self.spec.filters, self.in_shape[0])

    @property
    def gemm_chunk(self) -> int:
        """Images per parallel chunk (kernels/conv.py chunk_images)."""
        return conv_k.chunk_images(self.in_shape[0] * self.spec.kernel[0] * self.spec.kernel[1],
                                   self.out_shape[1] * self.out_shape[2])

    def forward(self, x):
        """a = f(conv(x) + b)."""
        return self._forward(x, pool=0)

    def _forward(self, x, pool: int):
        """forward, or with pool=2 (ConvMaxPool's fused step) the 2×2, stride-2 max
        pooling of a instead, computed in the same kernel."""
        w2 = self._weight_matrix()
        kept_bytes = x.shape[0] * w2.shape[1] * self.out_shape[1] * self.out_shape[2] * self.dtype.itemsize
        keep = self.training and w2.shape[1] >= KEEP_COLUMNS_FROM and kept_bytes <= KEEP_COLUMNS_MAX_BYTES
        y, self._cache_cols, self._cache_argmax = conv_k.conv_forward(
            x, w2, self.params["bias"], self.geometry, self.act, self.gemm_chunk, keep, pool)
        self._cache_x, self._cache_y, self._cache_w2 = x, y, w2  # a table's dense weights: built once a step
        return y

    def backward(self, dy):
        """dy is the gradient of what forward returned (the pooled output when fused)."""
        weight = self.params["weight"]
        # Kept columns come in the forward pass's chunks; recomputed ones may take wider chunks.
        chunk = self.gemm_chunk if self._cache_cols.shape[0] else conv_k.backward_chunk_images(
            self.in_shape[0] * self.spec.kernel[0] * self.spec.kernel[1], self.out_shape[1] * self.out_shape[2])
        dx, dw, db = conv_k.conv_backward(
            dy, self._cache_y, self._cache_argmax, self._cache_x, self._cache_w2, self._cache_cols,
            self.geometry, self.act, self.need_dx, chunk,
        )
        if self._dense_at is not None:
            dw = tables.connected_weights(dw, self._dense_at, weight.shape)
        self.set_grad("weight", dw.reshape(weight.shape))
        self.set_grad("bias", db)
        return dx if self.need_dx else None

    def backward2(self, d2y, curv: dict):
        """Second-order pass (kernels/second_order.py) after an unfused forward:
        adds Σ ∂²E/∂w² into curv, returns ∂²E/∂x² (None for the first layer)."""
        (sh, sw), (top, _, left, _) = self.spec.stride, self.spec.padding
        d2a = so_k.through_activation(np.ascontiguousarray(d2y), self._cache_y, self.act)
        d2x, d2w, d2b = so_k.conv_second(d2a, np.ascontiguousarray(self._cache_x), self._cache_w2,
                                         *self.spec.kernel, sh, sw, top, left, self.need_dx)
        weight = self.params["weight"]
        d2w = d2w.reshape(weight.shape) if self._dense_at is None else tables.connected_weights(
            d2w, self._dense_at, weight.shape)
        _curvature_sum(curv, "weight", d2w)
        _curvature_sum(curv, "bias", d2b)
        return d2x if self.need_dx else None


# ---------------------------------------------------------------- pooling


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


class ConvMaxPool:
    """A conv and the 2×2, stride-2 max pooling right after it, run as one kernel
    call: the conv's output plane is pooled while it is still in cache and never
    written to memory, and backward routes δ straight to each window's maximum.
    Same numbers, bit for bit, as the two layers one after the other (tested).

    Not a layer of the network: the model's execution plan runs it in place of
    the pair, which keep their names, parameters and their own forward and
    backward (cnn show and the per-layer benchmark call those one by one)."""

    def __init__(self, conv: Conv2D, pool: MaxPool2D):
        self.conv, self.pool = conv, pool
        self.name = f"{conv.name}+{pool.name}"

    @staticmethod
    def fits(conv: Layer, pool: Layer) -> bool:
        return (isinstance(conv, Conv2D) and isinstance(pool, MaxPool2D)
                and tuple(pool.spec.size) == (2, 2) and tuple(pool.spec.stride) == (2, 2))

    @property
    def training(self) -> bool:
        return self.conv.training

    @training.setter
    def training(self, value: bool):
        self.conv.training = value

    def forward(self, x):
        return self.conv._forward(x, pool=2)

    def backward(self, dy):
        return self.conv.backward(dy)

    def clear_cache(self):
        self.conv.clear_cache()


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
        _curvature_sum(curv, "beta", d2beta)
        _curvature_sum(curv, "bias", d2b)
        return d2x if self.need_dx else None


# ---------------------------------------------------------------- fully connected


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
            dy, self._cache_y, self._cache_x, self.params["weight"], self.act, self.need_dx
        )
        self.set_grad("weight", dw)
        self.set_grad("bias", db)
        # Unflatten: the layer below gets its gradient in the shape it produced.
        return dx.reshape(self._cache_shape) if self.need_dx else None

    def backward2(self, d2y, curv: dict):
        d2a = so_k.through_activation(np.ascontiguousarray(d2y), self._cache_y, self.act)
        d2x, d2w, d2b = so_k.dense_second(d2a, self._cache_x, self.params["weight"], self.need_dx)
        _curvature_sum(curv, "weight", d2w)
        _curvature_sum(curv, "bias", d2b)
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


POOL_LAYERS = {"max": MaxPool2D, "mean": MeanPool2D, "lp": LpPool2D, "subsample": Subsample2D}


def build_layer(shape: LayerShape, dtype, rng: np.random.Generator, init: str = "he_normal") -> Layer:
    """init: the config's train.init, for layers whose own init is not set."""
    spec = shape.spec
    if spec.family == "conv":
        return Conv2D(shape, dtype, rng, init)
    if spec.family == "pool":
        return POOL_LAYERS[spec.kind](shape, dtype, rng)
    if spec.family == "dense":
        return Dense(shape, dtype, rng, init)
    if spec.family == "rbf":
        return RbfOutput(shape, dtype, rng)
    raise ValueError(f"unknown layer kind {spec.family!r}")  # config validation makes this unreachable
