"""The convolution layer, and its fusion with the 2×2 max pooling after it."""

from __future__ import annotations

import numpy as np

from ..spec import tables
from ..spec.config import ConvSpec, LayerShape
from ..spec.geometry import conv_geometry
from ..kernels import conv as conv_k
from ..kernels import second_order as so_k
from ..kernels import winograd as winograd_k
from ..kernels.activations import ACTIVATIONS
from .layer import Layer, add_curvature, init_weight_bias
from .pool_layers import MaxPool2D

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
        # 3×3 "same" convs run by Winograd's algorithm, with fewer multiplications: the side
        # of its output tiles (4 or 2), or 0 for im2col; the backward pass too over enough channels.
        self.winograd = winograd_k.winograd_tile(spec.kernel, spec.stride, spec.padding, self.out_shape[1:])
        self._cache_x = self._cache_y = self._cache_w2 = self._cache_cols = self._cache_argmax = None
        self._cache_filters = None  # U = G g Gᵀ of the Winograd forward pass, for its backward

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

    def winograd_chunk(self, backward: bool) -> int:
        """Images per parallel chunk of the Winograd kernels."""
        chunk_images = winograd_k.backward_chunk_images if backward else winograd_k.chunk_images
        return chunk_images(self.in_shape[0], self.spec.filters, *self.out_shape[1:], self.dtype.itemsize,
                            self.winograd)

    def _forward(self, x, pool: int):
        """forward, or with pool=2 (ConvMaxPool's fused step) the 2×2, stride-2 max
        pooling of a instead, computed in the same kernel."""
        w2 = self._weight_matrix()
        if self.winograd:
            filters = winograd_k.filter_transform(w2.reshape(self.spec.filters, self.in_shape[0], 3, 3), self.winograd)
            y, self._cache_argmax = winograd_k.winograd_forward(x, filters, self.params["bias"], self.act,
                                                                self.winograd_chunk(False), pool)
            self._cache_x, self._cache_y, self._cache_w2, self._cache_filters = x, y, w2, filters
            # No columns kept for an im2col backward pass: it lowers its input again.
            self._cache_cols = np.empty((0, w2.shape[1], 0), dtype=self.dtype)
            return y
        kept_bytes = x.shape[0] * w2.shape[1] * self.out_shape[1] * self.out_shape[2] * self.dtype.itemsize
        keep = self.training and w2.shape[1] >= KEEP_COLUMNS_FROM and kept_bytes <= KEEP_COLUMNS_MAX_BYTES
        y, self._cache_cols, self._cache_argmax = conv_k.conv_forward(
            x, w2, self.params["bias"], self.geometry, self.act, self.gemm_chunk, keep, pool)
        self._cache_x, self._cache_y, self._cache_w2 = x, y, w2  # a table's dense weights: built once a step
        return y

    def backward(self, dy):
        """dy is the gradient of what forward returned (the pooled output when fused)."""
        weight = self.params["weight"]
        if self.winograd and winograd_k.backward_on_winograd(self.in_shape[0]):
            dx, dw, db = self._winograd_backward(dy)
        else:
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

    def _winograd_backward(self, dy):
        """(dx, dw (K, C·9), dbias) through the Winograd kernels."""
        K, C = self.spec.filters, self.in_shape[0]
        dx, d_filters, db = winograd_k.winograd_backward(dy, self._cache_y, self._cache_argmax, self._cache_x,
                                                         self._cache_filters, self.act, self.need_dx,
                                                         self.winograd_chunk(True))
        dw = winograd_k.filter_gradient(d_filters, self.winograd, out=self.grad_target("weight"))
        return dx, dw.reshape(K, C * 9), db

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
        add_curvature(curv, "weight", d2w)
        add_curvature(curv, "bias", d2b)
        return d2x if self.need_dx else None


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
