"""`cnn params`: parameter and connection counts of a config, from its shapes alone.

This answers the LeNet-5 homework (SPEC §7) for any config: the parameters of
every layer with the formula that gives them, which are trainable and which
fixed, the multiply-adds, the receptive field on the input, what each conv
layer would cost without local connections or without weight sharing, and how
the count grows with the input size against a fully connected network.

Everything here is computed from `Config.layers` (specs and shapes); nothing
imports numba, the kernels, `layers` or `model`, so the command answers at
once. The module computes plain data (`ParamsReport` and `to_json`); the Rich
rendering is params_render.py's `render_report`, and the --input/--sizes
parsing is in options.py.

Definitions
-----------
Parameters
    conv: filters·(in_maps·kh·kw + 1), or with a connection table
    Σ_filters(connected maps)·kh·kw + filters; subsample (LeNet's S2/S4): β
    and b per map; max/mean/Lp pooling: none; dense: units·(inputs + 1); RBF
    output: units·inputs centres, *fixed* (not trained), no bias.
Multiply-adds ("macs")
    Connections in LeCun et al.'s sense (SPEC §7): every use of a weight
    counts once, and a bias counts as one connection (an input fixed at 1).
    conv: output positions × the layer's parameters; subsample:
    outputs × (kh·kw + 1); dense: units·(inputs + 1); RBF: units·inputs.
    This is also what torchinfo's "Mult-Adds" counts for conv and linear.
    Parameter-free pooling (max, mean, Lp) multiplies nothing by a weight, so
    its macs are 0, like torchinfo's. Its work is given separately as "ops"
    with "ops_kind": max pooling does outputs·(kh·kw − 1) comparisons; mean
    pooling outputs·kh·kw ops (kh·kw − 1 adds and one scale); Lp pooling
    outputs·2·kh·kw ops (kh·kw powers, kh·kw − 1 adds, one root). Layers with
    weights have ops 0 (their work is their macs). Activation functions are
    not counted anywhere.
Receptive field
    Size and stride ("jump") on the network's input (after `input.pad`),
    per axis, by the standard recurrence r_out = r_in + (k − 1)·j_in,
    j_out = j_in·s starting from r = j = 1. Conv and pool layers report the
    recurrence's value, which may exceed the input when layers pad;
    "whole_input" says whether it covers all of it. Fully connected layers see
    the whole input: their size is the input's H×W and their stride the jump
    of the map they flatten (the step their outputs would take if the network
    were slid over a larger image, fully convolutionally).
Memory
    float32 (the training dtype in SPEC): 4 bytes per parameter; the
    activations of one image are the input plus every layer's output, as kept
    for one forward pass (training keeps them and as many gradients).
Input sizes
    `--input CxHxW` and `--sizes` give the *image* size; the config's
    `input.pad` is still added (the classic LeNet-5 pads 28×28 to 32×32). The
    fully connected network they are compared with reads the raw C·H·W pixels
    (padding carries no information) through dense layers of the config's fc
    widths, each with a bias: Σ (in·out + out).
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Optional

from ..spec.config import Config, ConvSpec, DenseSpec, LayerShape, PoolSpec, RbfSpec, validate_config
from ..errors import UserError
from .options import parse_input_option, parse_sizes_option
from ..limits import short_repr

DTYPE_NAME = "float32"
DTYPE_BYTES = 4
DEFAULT_CONFIG = "lenet5-classic"


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class ReceptiveField:
    size: tuple[int, int]  # (height, width) on the network's input
    stride: tuple[int, int]  # jump between neighbouring outputs, in input pixels
    whole_input: bool

    def to_json(self) -> dict[str, Any]:
        return {"size": list(self.size), "stride": list(self.stride), "whole_input": self.whole_input}


@dataclass(frozen=True)
class LayerReport:
    name: str
    type: str  # conv | subsample | max pool | mean pool | lp pool | dense | rbf
    detail: str  # e.g. "5×5", "5×5 /2 pad 2", "2×2", "table"
    activation: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int
    formula: str
    trainable_params: int
    fixed_params: int
    macs: int
    ops: int  # work of parameter-free pools (see module doc); 0 elsewhere
    ops_kind: Optional[str]
    receptive_field: ReceptiveField

    @property
    def trainable(self) -> bool:
        return self.trainable_params > 0

    @property
    def status(self) -> str:
        if self.trainable_params and self.fixed_params:
            return "mixed"
        if self.trainable_params:
            return "trainable"
        if self.fixed_params:
            return "fixed"
        return "none"

    @property
    def activation_count(self) -> int:
        return math.prod(self.output_shape)


@dataclass(frozen=True)
class ConvComparison:
    """One conv layer as fully connected, locally connected and convolutional (question 2)."""

    name: str
    fully_connected: int  # every output to every input, own weights, a bias per output
    fully_connected_formula: str
    locally_connected: int  # the conv's connections, own weights per position (no sharing)
    locally_connected_formula: str
    conv: int  # shared weights
    conv_formula: str
    connections: int  # multiply-adds of the local and the conv layer (sharing saves weights, not work)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fully_connected": {"params": self.fully_connected, "formula": self.fully_connected_formula,
                                "macs": self.fully_connected},
            "locally_connected": {"params": self.locally_connected, "formula": self.locally_connected_formula,
                                  "macs": self.connections},
            "conv": {"params": self.conv, "formula": self.conv_formula, "macs": self.connections},
        }


@dataclass(frozen=True)
class SizeRow:
    """The CNN at one input size against a dense network on the raw pixels (question 1)."""

    image_shape: tuple[int, int, int]  # as given, before input.pad
    input_shape: tuple[int, int, int]  # what the first layer sees
    cnn_params: int
    cnn_trainable_params: int
    conv_pool_params: int  # the same at every size
    first_fc: str
    first_fc_params: int
    dense_widths: tuple[int, ...]  # C·H·W, then the config's fc widths
    dense_params: int

    def to_json(self) -> dict[str, Any]:
        return {
            "image_shape": list(self.image_shape),
            "input_shape": list(self.input_shape),
            "cnn_params": self.cnn_params,
            "cnn_trainable_params": self.cnn_trainable_params,
            "conv_pool_params": self.conv_pool_params,
            "first_fc": self.first_fc,
            "first_fc_params": self.first_fc_params,
            "dense_widths": list(self.dense_widths),
            "dense_params": self.dense_params,
        }


@dataclass
class ParamsReport:
    config: str  # the config's name
    source: str
    image_shape: tuple[int, int, int]
    pad: int
    input_shape: tuple[int, int, int]
    layers: list[LayerReport]
    conv_comparisons: list[ConvComparison]
    sizes: Optional[list[SizeRow]] = field(default=None)

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def trainable_params(self) -> int:
        return sum(layer.trainable_params for layer in self.layers)

    @property
    def fixed_params(self) -> int:
        return sum(layer.fixed_params for layer in self.layers)

    @property
    def total_macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def total_ops(self) -> int:
        return sum(layer.ops for layer in self.layers)

    @property
    def param_bytes(self) -> int:
        return self.total_params * DTYPE_BYTES

    @property
    def activation_bytes(self) -> int:
        """One image: the (padded) input plus every layer's output."""
        return (math.prod(self.input_shape) + sum(layer.activation_count for layer in self.layers)) * DTYPE_BYTES

    def share(self, layer: LayerReport) -> float:
        return layer.params / self.total_params if self.total_params else 0.0

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "config": self.config,
            "image_shape": list(self.image_shape),
            "input_pad": self.pad,
            "input_shape": list(self.input_shape),
            "layers": [
                {
                    "name": layer.name,
                    "type": layer.type,
                    "output_shape": list(layer.output_shape),
                    "params": layer.params,
                    "formula": layer.formula,
                    "trainable": layer.trainable,
                    "macs": layer.macs,
                    "receptive_field": layer.receptive_field.to_json(),
                    "detail": layer.detail,
                    "activation": layer.activation,
                    "input_shape": list(layer.input_shape),
                    "trainable_params": layer.trainable_params,
                    "fixed_params": layer.fixed_params,
                    "ops": layer.ops,
                    "ops_kind": layer.ops_kind,
                    "share": self.share(layer),
                }
                for layer in self.layers
            ],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "fixed_params": self.fixed_params,
            "total_macs": self.total_macs,
            "total_ops": self.total_ops,
            "dtype": DTYPE_NAME,
            "param_bytes": self.param_bytes,
            "activation_bytes": self.activation_bytes,
            "conv_comparison": [c.to_json() for c in self.conv_comparisons],
        }
        if self.sizes is not None:
            result["sizes"] = [row.to_json() for row in self.sizes]
        return result


# ---------------------------------------------------------------- options


def with_input(config: Config, channels: int, height: int, width: int) -> Config:
    """The same config for another image size, validated again (a map may shrink to nothing)."""
    resolved = copy.deepcopy(config.resolved)
    resolved["input"].update({"channels": channels, "height": height, "width": width})
    return validate_config(resolved, f"{config.source} (input {channels}×{height}×{width})")


# ---------------------------------------------------------------- counting


def _n(value: int) -> str:
    return f"{value:,}"


def _fan_ins(spec: ConvSpec, in_maps: int) -> list[int]:
    """Input maps each filter reads: all of them, or its column of the connection table."""
    if spec.connections is None:
        return [in_maps] * spec.filters
    return [sum(row[k] for row in spec.connections) for k in range(spec.filters)]


def conv_params(spec: ConvSpec, in_shape: tuple[int, ...]) -> tuple[int, str]:
    kh, kw = spec.kernel
    fan_ins = _fan_ins(spec, in_shape[0])
    params = sum(fan_ins) * kh * kw + spec.filters
    if spec.connections is None:
        formula = f"{spec.filters}·({in_shape[0]}·{kh}·{kw}+1) = {_n(params)}"
    else:
        groups = sorted(Counter(fan_ins).items())
        terms = "+".join(f"{count}·{fan_in}" for fan_in, count in groups)
        formula = f"({terms})·{kh * kw}+{spec.filters} = {_n(params)}"
    return params, formula


def _conv_detail(spec: ConvSpec) -> str:
    kh, kw = spec.kernel
    parts = [f"{kh}×{kw}"]
    if spec.stride != (1, 1):
        parts.append(f"/{spec.stride[0]}" if spec.stride[0] == spec.stride[1] else f"/{spec.stride[0]}×{spec.stride[1]}")
    if any(spec.padding):
        t, b, l, r = spec.padding
        parts.append(f"pad {t}" if len({t, b, l, r}) == 1 else f"pad {t},{b},{l},{r}")
    if spec.connections is not None:
        parts.append("table")
    return " ".join(parts)


def _pool_detail(spec: PoolSpec) -> str:
    (ph, pw), (sh, sw) = spec.size, spec.stride
    text = f"{ph}×{pw}"
    if (sh, sw) != (ph, pw):
        text += f" /{sh}" if sh == sw else f" /{sh}×{sw}"
    if spec.kind == "lp":
        text += f" p={spec.p:g}"
    return text


def _layer_report(layer: LayerShape, rf: ReceptiveField) -> LayerReport:
    spec = layer.spec
    in_shape, out_shape = tuple(layer.in_shape), tuple(layer.out_shape)
    outputs = math.prod(out_shape)
    ops, ops_kind = 0, None
    trainable = fixed = 0
    if isinstance(spec, ConvSpec):
        params, formula = conv_params(spec, in_shape)
        trainable = params
        macs = out_shape[1] * out_shape[2] * params
        kind, detail, activation = "conv", _conv_detail(spec), spec.activation
    elif isinstance(spec, PoolSpec):
        window = spec.size[0] * spec.size[1]
        detail, activation = _pool_detail(spec), spec.activation
        if spec.kind == "subsample":
            kind = "subsample"
            params = 2 * in_shape[0]
            formula = f"{in_shape[0]}·2 = {_n(params)}"
            trainable = params
            macs = outputs * (window + 1)
        else:
            kind = f"{spec.kind} pool"
            params, formula, macs = 0, "0", 0
            if spec.kind == "max":
                ops, ops_kind = outputs * (window - 1), "comparisons"
            elif spec.kind == "mean":
                ops, ops_kind = outputs * window, "adds and scales"
            else:
                ops, ops_kind = outputs * 2 * window, "powers, adds and roots"
    elif isinstance(spec, DenseSpec):
        fan_in = math.prod(in_shape)
        params = spec.units * (fan_in + 1)
        formula = f"{spec.units}·({fan_in}+1) = {_n(params)}"
        trainable = params
        macs = params
        kind, detail, activation = "dense", "", spec.activation
    elif isinstance(spec, RbfSpec):
        fan_in = math.prod(in_shape)
        params = spec.units * fan_in
        formula = f"{spec.units}·{fan_in} = {_n(params)}"
        fixed = params
        macs = params
        kind, detail, activation = "rbf", f"{spec.centres} centres", "-distance²"
    else:  # pragma: no cover - config.py knows no other kinds
        raise TypeError(f"unknown layer spec {spec!r}")
    return LayerReport(
        name=spec.name, type=kind, detail=detail, activation=activation, input_shape=in_shape,
        output_shape=out_shape, params=params, formula=formula, trainable_params=trainable,
        fixed_params=fixed, macs=macs, ops=ops, ops_kind=ops_kind, receptive_field=rf,
    )


def receptive_fields(config: Config) -> list[ReceptiveField]:
    _, height, width = config.input.shape
    (rh, rw), (jh, jw) = (1, 1), (1, 1)
    fields = []
    for layer in config.layers:
        spec = layer.spec
        if isinstance(spec, (ConvSpec, PoolSpec)):
            kh, kw = spec.kernel if isinstance(spec, ConvSpec) else spec.size
            sh, sw = spec.stride
            rh, rw = rh + (kh - 1) * jh, rw + (kw - 1) * jw
            jh, jw = jh * sh, jw * sw
            fields.append(ReceptiveField((rh, rw), (jh, jw), rh >= height and rw >= width))
        else:
            fields.append(ReceptiveField((height, width), (jh, jw), True))
    return fields


def conv_comparison(layer: LayerShape) -> ConvComparison:
    spec: ConvSpec = layer.spec
    c, h, w = layer.in_shape
    f, oh, ow = layer.out_shape
    params, formula = conv_params(spec, layer.in_shape)
    inputs, outputs = c * h * w, f * oh * ow
    full = inputs * outputs + outputs
    local = oh * ow * params
    return ConvComparison(
        name=spec.name,
        fully_connected=full,
        fully_connected_formula=f"({c}·{h}·{w})·({f}·{oh}·{ow})+{f}·{oh}·{ow} = {_n(full)}",
        locally_connected=local,
        locally_connected_formula=f"{oh}·{ow}·{_n(params)} = {_n(local)}",
        conv=params,
        conv_formula=formula,
        connections=local,
    )


def _first_fc(report_layers: list[LayerReport]) -> LayerReport:
    return next(layer for layer in report_layers if layer.type in ("dense", "rbf"))


def size_row(config: Config, height: int, width: int) -> SizeRow:
    """The config at image size C×height×width against a dense net on those raw pixels."""
    channels = config.input.channels
    sized = with_input(config, channels, height, width)
    layers = [_layer_report(layer, rf) for layer, rf in zip(sized.layers, receptive_fields(sized))]
    first = _first_fc(layers)
    widths = (channels * height * width,) + tuple(l.spec.units for l in sized.layers
                                                 if isinstance(l.spec, (DenseSpec, RbfSpec)))
    dense = sum(a * b + b for a, b in zip(widths, widths[1:]))
    return SizeRow(
        image_shape=(channels, height, width),
        input_shape=sized.input.shape,
        cnn_params=sum(l.params for l in layers),
        cnn_trainable_params=sum(l.trainable_params for l in layers),
        conv_pool_params=sum(l.params for l in layers if l.type not in ("dense", "rbf")),
        first_fc=first.name,
        first_fc_params=first.params,
        dense_widths=widths,
        dense_params=dense,
    )


def default_sizes(config: Config) -> list[tuple[int, int]]:
    """The config's own image size, doubled and quadrupled."""
    return [(config.input.height * m, config.input.width * m) for m in (1, 2, 4)]


def build_report(config: Config, sizes: Optional[list[tuple[int, int]]] = None) -> ParamsReport:
    layers = [_layer_report(layer, rf) for layer, rf in zip(config.layers, receptive_fields(config))]
    comparisons = [conv_comparison(layer) for layer in config.layers if isinstance(layer.spec, ConvSpec)]
    report = ParamsReport(
        config=config.name,
        source=config.source,
        image_shape=(config.input.channels, config.input.height, config.input.width),
        pad=config.input.pad,
        input_shape=config.input.shape,
        layers=layers,
        conv_comparisons=comparisons,
    )
    if sizes is not None:
        report.sizes = [size_row(config, h, w) for h, w in sizes]
    return report


def params_report(config_name: Optional[str] = None, input_shape: Optional[str] = None,
                  sizes: Optional[str] = None, sizes_default: bool = False) -> ParamsReport:
    """What `cnn params` computes: load, resize if asked, count.

    `sizes_default` fills in `default_sizes` when no --sizes was given (the
    table view shows question 1 always; JSON only when asked).
    """
    from ..spec.config import load_config

    wanted = parse_input_option(input_shape) if input_shape is not None else None
    size_list = parse_sizes_option(sizes) if sizes is not None else None
    config = load_config(config_name or DEFAULT_CONFIG)
    if wanted is not None:
        config = with_input(config, *wanted)
    if size_list is None and sizes_default:
        size_list = default_sizes(config)
    return build_report(config, size_list)
