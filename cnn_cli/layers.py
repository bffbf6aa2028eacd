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

from .config import ConvSpec, DenseSpec, LayerShape, PoolSpec, RbfSpec
from .kernels import conv as conv_k
from .kernels import dense as dense_k
from .kernels import gemm_conv as gemm_k
from .kernels import pool as pool_k
from .kernels import second_order as so_k
from .kernels.activations import ACTIVATIONS
from .rbf_digits import digit_centres


class Layer:
    kind = "layer"

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
# read back. Measured at batch 64: conv2 of LeNet-5 (150) backward 1.03 -> 0.82 ms
# when kept; conv1 (25) forward 0.25 -> 0.37 ms when kept, backward no faster.
KEEP_COLUMNS_FROM = 100
# ... and when the kept columns of the whole batch fit in this many bytes. Past
# that they no longer stay in cache between forward and backward, and reading
# them back costs more than lowering again: lenet5's conv2 at batch 256 (15 MB)
# stepped 11.4 -> 10.7 ms without them, at batch 64 (3.8 MB) 2.8 -> 3.0 ms.
KEEP_COLUMNS_MAX_BYTES = 8 << 20


def _init_std(activation: str, fan_in: int) -> float:
    # He initialisation keeps ReLU activations' variance constant; LeCun's
    # 1/fan_in suits the saturating units (tanh, sigmoid, scaled tanh).
    return float(np.sqrt((2.0 if activation == "relu" else 1.0) / max(fan_in, 1)))


def _init_weights(init: str, shape, activation: str, fan_in, rng: np.random.Generator, dtype) -> np.ndarray:
    """he_normal: N(0, _init_std²); lecun_uniform: U(±2.4/F), LeCun et al. 1998's draw
    (appendix A), which keeps the scaled tanh's inputs in its region of largest
    gain. fan_in is a number, or one per entry of the first axis (a connection
    table's filters read different numbers of maps)."""
    if init == "lecun_uniform":
        bound = 2.4 / np.maximum(np.asarray(fan_in, dtype=np.float64), 1.0)
        bound = bound.reshape(bound.shape + (1,) * (len(shape) - bound.ndim))
        return (rng.uniform(-1.0, 1.0, shape) * bound).astype(dtype)
    return (rng.standard_normal(shape) * _init_std(activation, int(np.mean(fan_in)))).astype(dtype)


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

    kind = "conv"

    def __init__(self, shape: LayerShape, dtype, rng: np.random.Generator, init: str = "he_normal"):
        spec: ConvSpec = shape.spec
        super().__init__(spec.name, shape.in_shape, shape.out_shape, dtype)
        self.spec = spec
        channels = self.in_shape[0]
        fh, fw = spec.kernel
        if spec.connections is None:
            self.conn = conv_k.full_connections(channels, spec.filters)
            weight_shape = (spec.filters, channels, fh, fw)
        else:
            self.conn = conv_k.table_connections(np.array(spec.connections, dtype=bool))
            weight_shape = (len(self.conn[1]), fh, fw)
        self.connections = len(self.conn[1])
        # A table's weights go into the kernels' dense (K, C·Fh·Fw) matrix, and
        # their gradients come back out, through these positions (kernels/conv.py).
        self._dense_at = (None if spec.connections is None
                          else conv_k.dense_index(self.conn[1], self.conn[2], channels, fh, fw))
        fan_in = self.connections * fh * fw // spec.filters
        if (spec.init or init) == "lecun_uniform" and spec.connections is not None:
            # Each connection's weights get the fan-in of the filter they belong to.
            per_filter = np.diff(self.conn[0]) * fh * fw
            fan_in = per_filter[self.conn[2]]
        self.params["weight"] = _init_weights(spec.init or init, weight_shape, spec.activation, fan_in, rng,
                                              self.dtype)
        self.params["bias"] = np.zeros(spec.filters, dtype=self.dtype)
        self.act = ACTIVATIONS[spec.activation]
        self._cache_x = self._cache_y = self._cache_w2 = self._cache_cols = self._cache_argmax = None

    def _weight_matrix(self) -> np.ndarray:
        """The (K, C·Fh·Fw) weight matrix the GEMM kernels take."""
        w = self.params["weight"]
        if self._dense_at is None:
            return w.reshape(self.spec.filters, -1)
        return conv_k.dense_weights(w, self._dense_at, self.spec.filters, self.in_shape[0])

    @property
    def gemm_chunk(self) -> int:
        """Images per parallel chunk (kernels/gemm_conv.py chunk_images)."""
        return gemm_k.chunk_images(self.in_shape[0] * self.spec.kernel[0] * self.spec.kernel[1],
                                   self.out_shape[1] * self.out_shape[2])

    def forward(self, x, pool: int = 0):
        """a = f(conv(x) + b); with pool=2 (see ConvMaxPool) the 2×2, stride-2 max
        pooling of a instead, computed in the same kernel."""
        (sh, sw), (top, _, left, _) = self.spec.stride, self.spec.padding
        oh, ow = self.out_shape[1], self.out_shape[2]
        fh, fw = self.spec.kernel
        w2 = self._weight_matrix()
        kept_bytes = x.shape[0] * w2.shape[1] * oh * ow * self.dtype.itemsize
        keep = self.training and w2.shape[1] >= KEEP_COLUMNS_FROM and kept_bytes <= KEEP_COLUMNS_MAX_BYTES
        y, self._cache_cols, self._cache_argmax = gemm_k.conv_gemm_forward(
            x, w2, self.params["bias"], fh, fw, sh, sw, top, left, oh, ow, self.act, self.gemm_chunk, keep, pool)
        self._cache_x, self._cache_y, self._cache_w2 = x, y, w2  # a table's dense weights: built once a step
        return y

    def backward(self, dy):
        """dy is the gradient of what forward returned (the pooled output when fused)."""
        (sh, sw), (top, _, left, _) = self.spec.stride, self.spec.padding
        weight = self.params["weight"]
        fh, fw = self.spec.kernel
        dx, dw, db = gemm_k.conv_gemm_backward(
            dy, self._cache_y, self._cache_argmax, self._cache_x, self._cache_w2, self._cache_cols,
            fh, fw, sh, sw, top, left, self.out_shape[1], self.out_shape[2], self.act, self.need_dx, self.gemm_chunk,
        )
        if self._dense_at is not None:
            dw = conv_k.connected_weights(dw, self._dense_at, weight.shape)
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
        d2w = d2w.reshape(weight.shape) if self._dense_at is None else conv_k.connected_weights(
            d2w, self._dense_at, weight.shape)
        _curvature_sum(curv, "weight", d2w)
        _curvature_sum(curv, "bias", d2b)
        return d2x if self.need_dx else None


# ---------------------------------------------------------------- pooling


class MaxPool2D(Layer):
    kind = "pool"

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
        return self.conv.forward(x, pool=2)

    def backward(self, dy):
        return self.conv.backward(dy)

    def clear_cache(self):
        self.conv.clear_cache()


class MeanPool2D(Layer):
    kind = "pool"

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

    kind = "pool"

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

    kind = "subsample"

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

    kind = "dense"

    def __init__(self, shape: LayerShape, dtype, rng: np.random.Generator, init: str = "he_normal"):
        spec: DenseSpec = shape.spec
        super().__init__(spec.name, shape.in_shape, shape.out_shape, dtype)
        self.spec = spec
        fan_in = int(np.prod(self.in_shape))
        self.params["weight"] = _init_weights(spec.init or init, (fan_in, spec.units), spec.activation, fan_in, rng,
                                              self.dtype)
        self.params["bias"] = np.zeros(spec.units, dtype=self.dtype)
        self.act = ACTIVATIONS[spec.activation]
        self._cache_x = self._cache_y = self._cache_shape = None

    def forward(self, x):
        x2 = x.reshape(x.shape[0], -1)
        y = dense_k.dense_forward(x2, self.params["weight"], self.params["bias"], self.act)
        self._cache_x, self._cache_y, self._cache_shape = x2, y, x.shape
        return y

    def backward(self, dy):
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

    kind = "rbf"

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
    if spec.kind == "conv":
        return Conv2D(shape, dtype, rng, init)
    if spec.kind == "pool":
        return POOL_LAYERS[spec.pool](shape, dtype, rng)
    if spec.kind == "dense":
        return Dense(shape, dtype, rng, init)
    if spec.kind == "rbf":
        return RbfOutput(shape, dtype, rng)
    raise ValueError(f"unknown layer kind {spec.kind!r}")  # config validation makes this unreachable
