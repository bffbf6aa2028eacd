"""A checkpoint's network as an ONNX graph (opset OPSET), built with onnx.helper.

Built from the config and the checkpoint's arrays alone, without the kernels, so
exporting loads no numba. The graph computes what `Model.forward` computes on the
input `prepare` makes, starting from raw pixels:

    pixels (N, 1, H, W) float32, grey levels 0-255, white digit on black
      → ÷255 → (x − mean) ÷ std (data.normalize) → zero Pad (input.pad)
      → the layers → `logits` (N, classes) and `probabilities` (softmax).

Each layer is written with the same float32 operations, in the same order, as
our kernels, so onnxruntime agrees with our forward pass to float32 round-off:

- conv: Conv with pads [top, left, bottom, right] (asymmetric padding is native
  to ONNX); a connection table becomes the dense (K, C, Fh, Fw) kernel with
  exact zeros where a filter does not read a map; then the activation.
- max / mean pooling: MaxPool / AveragePool (no padding: the floor rule).
- L_p pooling (Σ|x|^p)^(1/p): LpPool when p is a whole number (its attribute is
  an integer), else |x|^p summed by an all-ones depthwise Conv, then ^(1/p).
- subsample (LeNet-5's S2/S4): window sum by an all-ones depthwise Conv, × β,
  + b, then the activation: β·Σx + b as our kernel computes it.
- dense: Flatten + Gemm (our weight is stored (inputs, units), Gemm's B as is).
- rbf: −Σ(x − centre)², the negated squared distances our RbfOutput returns.
- scaled_tanh: 1.7159 · tanh((2/3) · z), constants rounded to float32 as ours are.
"""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..spec.config import Config, ConvSpec, DenseSpec, PoolSpec, RbfSpec
from ..data.loading import normalisation
from ..spec.datasets import DatasetInfo
from ..errors import UserError

OPSET = 17
INPUT_NAME, LOGITS_NAME, PROBS_NAME = "pixels", "logits", "probabilities"
LECUN_A, LECUN_S = 1.7159, 2.0 / 3.0  # kernels/activations.py (not imported: it loads numba)
F32 = np.float32


class GraphBuilder:
    """Collects nodes and initializers under unique names."""

    def __init__(self):
        self.nodes: list = []
        self.initializers: list = []
        self._names: set[str] = set()

    def name(self, base: str) -> str:
        name, i = base, 1
        while name in self._names:
            i += 1
            name = f"{base}_{i}"
        self._names.add(name)
        return name

    def const(self, base: str, array) -> str:
        name = self.name(base)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], base: str, **attrs) -> str:
        out = self.name(base)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def activation(g: GraphBuilder, x: str, kind: str, base: str) -> str:
    if kind == "identity":
        return x
    if kind == "relu":
        return g.op("Relu", [x], f"{base}.relu")
    if kind == "sigmoid":
        return g.op("Sigmoid", [x], f"{base}.sigmoid")
    if kind == "tanh":
        return g.op("Tanh", [x], f"{base}.tanh")
    if kind == "scaled_tanh":
        inner = g.op("Mul", [x, g.const(f"{base}.S", F32(LECUN_S))], f"{base}.Sz")
        tanh = g.op("Tanh", [inner], f"{base}.tanh")
        return g.op("Mul", [g.const(f"{base}.A", F32(LECUN_A)), tanh], f"{base}.scaled_tanh")
    raise ValueError(f"unknown activation {kind!r}")  # config validation makes this unreachable


# ---------------------------------------------------------------- the checkpoint's arrays


def table_order(connections) -> tuple[np.ndarray, np.ndarray]:
    """(filter, input map) of each stored table weight, in the kernels' filter-major order."""
    conn_k, conn_c = np.nonzero(np.array(connections, dtype=bool).T)
    return conn_k, conn_c


def expected_arrays(config: Config) -> dict[str, tuple[int, ...]]:
    """Name → shape of every array a checkpoint of this config holds (Model.state_dict's keys)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in config.layers:
        spec, name = layer.spec, layer.spec.name
        if isinstance(spec, ConvSpec):
            fh, fw = spec.kernel
            if spec.connections is None:
                shapes[f"{name}.weight"] = (spec.filters, layer.in_shape[0], fh, fw)
            else:
                shapes[f"{name}.weight"] = (len(table_order(spec.connections)[0]), fh, fw)
            shapes[f"{name}.bias"] = (spec.filters,)
        elif isinstance(spec, PoolSpec) and spec.kind == "subsample":
            shapes[f"{name}.beta"] = shapes[f"{name}.bias"] = (layer.in_shape[0],)
        elif isinstance(spec, DenseSpec):
            shapes[f"{name}.weight"] = (math.prod(layer.in_shape), spec.units)
            shapes[f"{name}.bias"] = (spec.units,)
        elif isinstance(spec, RbfSpec):
            shapes[f"{name}.centres"] = (spec.units, math.prod(layer.in_shape))
    return shapes


def checked_weights(config: Config, weights: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """The checkpoint's arrays as float32, after checking every name and shape against the config."""
    out = {}
    for key, shape in expected_arrays(config).items():
        if key not in weights:
            raise UserError(f"{source}: checkpoint lacks {key}; it was saved from another architecture")
        if tuple(weights[key].shape) != shape:
            raise UserError(f"{source}: {key} has shape {tuple(weights[key].shape)} but the config needs {shape}; "
                            f"the checkpoint does not match its config")
        out[key] = np.ascontiguousarray(weights[key], dtype=F32)
    return out


def dense_conv_kernel(spec: ConvSpec, channels: int, weight: np.ndarray) -> np.ndarray:
    """(K, C, Fh, Fw): a table's stored weights scattered in, exact zeros elsewhere."""
    if spec.connections is None:
        return weight
    conn_k, conn_c = table_order(spec.connections)
    full = np.zeros((spec.filters, channels, *spec.kernel), dtype=F32)
    full[conn_k, conn_c] = weight
    return full


# ---------------------------------------------------------------- layers


def window_sum(g: GraphBuilder, x: str, channels: int, spec: PoolSpec, base: str) -> str:
    """Σ over each pooling window, per map: a depthwise Conv whose kernels are all ones."""
    ones = g.const(f"{base}.ones", np.ones((channels, 1, *spec.size), dtype=F32))
    return g.op("Conv", [x, ones], f"{base}.sum", kernel_shape=list(spec.size), strides=list(spec.stride),
                group=channels)


def pool_layer(g: GraphBuilder, x: str, spec: PoolSpec, channels: int, w: dict) -> str:
    base, size, stride = spec.name, list(spec.size), list(spec.stride)
    if spec.kind == "max":
        return g.op("MaxPool", [x], base, kernel_shape=size, strides=stride)
    if spec.kind == "mean":
        return g.op("AveragePool", [x], base, kernel_shape=size, strides=stride)
    if spec.kind == "lp":
        if float(spec.p).is_integer():
            return g.op("LpPool", [x], base, kernel_shape=size, strides=stride, p=int(spec.p))
        powered = g.op("Pow", [g.op("Abs", [x], f"{base}.abs"), g.const(f"{base}.p", F32(spec.p))], f"{base}.pow")
        sums = window_sum(g, powered, channels, spec, base)
        return g.op("Pow", [sums, g.const(f"{base}.invp", F32(1.0) / F32(spec.p))], base)
    # subsample: β·Σx + b, then the activation
    sums = window_sum(g, x, channels, spec, base)
    scaled = g.op("Mul", [sums, g.const(f"{base}.beta", w[f"{base}.beta"].reshape(1, channels, 1, 1))], f"{base}.scaled")
    z = g.op("Add", [scaled, g.const(f"{base}.bias", w[f"{base}.bias"].reshape(1, channels, 1, 1))], f"{base}.z")
    return activation(g, z, spec.activation, base)


def conv_layer(g: GraphBuilder, x: str, spec: ConvSpec, channels: int, w: dict) -> str:
    top, bottom, left, right = spec.padding
    kernel = g.const(f"{spec.name}.weight", dense_conv_kernel(spec, channels, w[f"{spec.name}.weight"]))
    z = g.op("Conv", [x, kernel, g.const(f"{spec.name}.bias", w[f"{spec.name}.bias"])], f"{spec.name}.z",
             kernel_shape=list(spec.kernel), strides=list(spec.stride), pads=[top, left, bottom, right])
    return activation(g, z, spec.activation, spec.name)


def fc_layer(g: GraphBuilder, x: str, spec, w: dict) -> str:
    if isinstance(spec, RbfSpec):
        rows = g.op("Unsqueeze", [x, g.const(f"{spec.name}.axis", np.array([1], dtype=np.int64))], f"{spec.name}.rows")
        centres = g.const(f"{spec.name}.centres", w[f"{spec.name}.centres"][None])
        diff = g.op("Sub", [rows, centres], f"{spec.name}.diff")
        squares = g.op("Mul", [diff, diff], f"{spec.name}.squares")
        axes = g.const(f"{spec.name}.axes", np.array([2], dtype=np.int64))
        distances = g.op("ReduceSum", [squares, axes], f"{spec.name}.distances", keepdims=0)
        return g.op("Neg", [distances], spec.name)
    z = g.op("Gemm", [x, g.const(f"{spec.name}.weight", w[f"{spec.name}.weight"]),
                      g.const(f"{spec.name}.bias", w[f"{spec.name}.bias"])], f"{spec.name}.z")
    return activation(g, z, spec.activation, spec.name)


def _per_channel(values) -> np.ndarray:
    """One number, or one per channel shaped to broadcast over (N, C, H, W)."""
    array = np.asarray(values, dtype=F32).reshape(-1)
    return F32(array[0]) if array.size == 1 else array.reshape(1, -1, 1, 1)


def preprocessing(g: GraphBuilder, x: str, config: Config, norm) -> str:
    """÷255, normalisation and padding, as data.preprocess does them (float32, same order):
    (x − mean) ÷ std per channel, or a linear map of 0 and 255 onto a range whose
    background value then also fills the border."""
    x = g.op("Div", [x, g.const("scale", F32(255.0))], "scaled")
    border = F32(0.0)
    if isinstance(norm, dict):
        low, high = (float(v) for v in norm["range"])
        x = g.op("Mul", [x, g.const("span", F32(high - low))], "spanned")
        x = g.op("Add", [x, g.const("background", F32(low))], "ranged")
        border = F32(low)
    elif norm is not None:
        x = g.op("Sub", [x, g.const("mean", _per_channel(norm[0]))], "centred")
        x = g.op("Div", [x, g.const("std", _per_channel(norm[1]))], "normalised")
    pad = config.input.pad
    if pad:
        pads = g.const("pads", np.array([0, 0, pad, pad, 0, 0, pad, pad], dtype=np.int64))
        x = g.op("Pad", [x, pads, g.const("border", border)], "padded", mode="constant")
    return x


# ---------------------------------------------------------------- the model


def class_names(config: Config, info: DatasetInfo) -> list[str]:
    """The dataset's class names, one per output unit (the unit's index where the dataset has none)."""
    return [info.classes[i] if i < len(info.classes) else str(i) for i in range(config.num_classes)]


def _jsonable(norm):
    """The metadata's normalize: null, {"range": [...]}, [mean, std], or [[means], [stds]] per channel."""
    if norm is None or isinstance(norm, dict):
        return norm
    parts = [[float(v) for v in np.atleast_1d(part)] for part in norm]
    return [p[0] for p in parts] if all(len(p) == 1 for p in parts) else parts


def build_onnx(config: Config, weights: dict[str, np.ndarray], source: str, version: str,
               info: DatasetInfo) -> "onnx.ModelProto":
    """The checked ONNX model of a checkpoint (config + arrays + the dataset it was trained on);
    raises UserError on mismatched arrays."""
    w = checked_weights(config, weights, source)
    g = GraphBuilder()
    inp = config.input
    norm = normalisation(config, info)
    x = preprocessing(g, g.name(INPUT_NAME), config, norm)
    flat = False
    for layer in config.layers:
        spec = layer.spec
        if isinstance(spec, ConvSpec):
            x = conv_layer(g, x, spec, layer.in_shape[0], w)
        elif isinstance(spec, PoolSpec):
            x = pool_layer(g, x, spec, layer.in_shape[0], w)
        else:
            if not flat:  # row-major flattening of (C, H, W), as Dense and RbfOutput do
                x, flat = g.op("Flatten", [x], "flat", axis=1), True
            x = fc_layer(g, x, spec, w)
    logits = g.op("Identity", [x], LOGITS_NAME)
    probs = g.op("Softmax", [logits], PROBS_NAME, axis=1)
    classes = config.num_classes
    graph = helper.make_graph(
        g.nodes, config.name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", inp.channels, inp.height, inp.width])],
        [helper.make_tensor_value_info(logits, TensorProto.FLOAT, ["N", classes]),
         helper.make_tensor_value_info(probs, TensorProto.FLOAT, ["N", classes])],
        initializer=g.initializers,
    )
    model = helper.make_model(graph, producer_name="cnn-cli", producer_version=version,
                              opset_imports=[helper.make_opsetid("", OPSET)],
                              doc_string=f"{config.name} exported by cnn export from {source}")
    # onnxruntime releases accept IR versions up to a point; pin what opset 17 needs, not the newest onnx writes.
    model.ir_version = 8
    helper.set_model_props(model, {
        "class_names": json.dumps(class_names(config, info)),
        "dataset": info.name,
        "input": f"{INPUT_NAME}: float32 N×{inp.channels}×{inp.height}×{inp.width}, raw pixel values 0-255 "
                 f"as in the training files; normalisation and padding happen inside the graph",
        "normalize": json.dumps(_jsonable(norm)),
        "input_pad": str(inp.pad),
        "outputs": f"{LOGITS_NAME}: N×{classes} (our logits); {PROBS_NAME}: softmax of the logits",
        "config": json.dumps(config.resolved),
    })
    onnx.checker.check_model(model, full_check=True)
    return model
