"""Network configs: YAML schema, validation and shape inference.

A config describes `Input → [Conv×N → Pool×M]×L → FC×K`. Everything is checked
here, before any array is allocated or any kernel compiled: a bad config
becomes one `UserError` line naming the file, the field and the fix. This module
imports neither numba nor the kernels, so `cnn params` stays instant.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from ..errors import UserError
from .activations import NAMES as ACTIVATIONS
from .datasets import DATASET_NAMES
from .geometry import conv_output_size, same_padding
from .tables import NAMED_TABLES
from ..limits import short_repr
from .safe_yaml import BoundedSafeLoader, YamlTooLarge, read_config_text

POOL_KINDS = ("max", "mean", "lp", "subsample")
FC_KINDS = ("dense", "rbf")
OPTIMIZERS = ("sgd", "adam", "sdlm")
SCHEDULES = ("constant", "step", "cosine")
RBF_CENTRES = ("digits",)
FLOAT32_MAX = 3.4028234663852886e38
# softmax: cross-entropy of softmax(logits); map: LeCun et al. 1998's MAP criterion
# for RBF outputs, E = y_correct + log(e^(−j) + Σ_i e^(−y_i)) (kernels/loss.py).
LOSSES = ("softmax", "map")
# he_normal: normal, std √(2/F) for relu and √(1/F) otherwise; pytorch: PyTorch's
# default, uniform ±1/√F for weights and biases; lecun_uniform: U(±2.4/F), the
# 1998 paper's. F is the unit's own fan-in.
INITS = ("he_normal", "pytorch", "lecun_uniform")
# Pooling kinds the second-order (sdlm) pass can go through.
SDLM_POOLS = ("max", "mean", "subsample")

# Layer names become checkpoint keys (`conv1.weight`); these would collide with
# the checkpoint's own entries.
RESERVED_NAMES = ("optimizer", "config", "meta", "format_version")

# The only shipped configs; a bare name on the command line resolves to these.
SHIPPED_DIR = Path(__file__).parent.parent / "configs"

TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "batch_size": 64,
    "optimizer": "adam",
    "lr": 0.001,
    "momentum": 0.9,
    "nesterov": False,
    "weight_decay": 0.0,
    "schedule": "constant",
    "step_size": 5,
    "gamma": 0.1,
    "seed": 0,
    # PyTorch's default init: He-normal weights with zero biases trailed it by ~0.4
    # points on lenet5 (benchmarks/experiments/gap.py, RESULTS-gap.md).
    "init": "pytorch",
    "label_smoothing": 0.0,
    "patience": None,  # epochs without a better validation accuracy before stopping; None: never stop early
    "loss": "softmax",
    "map_j": 10.0,
    "sdlm_mu": 0.02,
    "sdlm_samples": 500,
    "track_test": False,
}
# Distortions of each training image (augment.py); zero bounds leave the images as they are.
AUGMENT_DEFAULTS: dict[str, Any] = {
    "translate": 0.0, "rotate": 0.0, "scale": 0.0, "squeeze": 0.0, "shear": 0.0,
    "elastic": {"alpha": 0.0, "sigma": 4.0}, "probability": 1.0,
}
# Allowed ranges (low, high) and units, for validation and its messages.
AUGMENT_RANGES: dict[str, tuple[float, float, str]] = {
    "translate": (0.0, 14.0, " pixels"), "rotate": (0.0, 180.0, " degrees"), "scale": (0.0, 0.9, ""),
    "squeeze": (0.0, 0.9, ""), "shear": (0.0, 1.0, ""), "probability": (0.0, 1.0, ""),
}
ELASTIC_RANGES: dict[str, tuple[float, float, str]] = {"alpha": (0.0, 100.0, " pixels"), "sigma": (0.5, 20.0, " pixels")}
DATA_DEFAULTS: dict[str, Any] = {"dataset": "mnist", "normalize": True, "val_split": 0.1,
                                 "folder": None, "fit": "pad", "test_split": 0.2, "augment": AUGMENT_DEFAULTS}
FITS = ("pad", "resize")  # how a folder's images are brought to the input size (cnn_cli/data/folder.py)

# ---------------------------------------------------------------- specs


@dataclass(frozen=True)
class InputSpec:
    channels: int
    height: int
    width: int
    pad: int = 0  # zero padding added to every image (classic LeNet-5: 28×28 → 32×32)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height + 2 * self.pad, self.width + 2 * self.pad)


@dataclass(frozen=True)
class ConvSpec:
    name: str
    filters: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, bottom, left, right, resolved against the input
    padding_text: str  # as written: "valid", "same", "2", "[0, 1, 0, 1]"
    activation: str
    connections: Optional[tuple[tuple[bool, ...], ...]] = None  # (in maps) × (filters)
    family: str = "conv"
    init: Optional[str] = None  # None: train.init


@dataclass(frozen=True)
class PoolSpec:
    name: str
    kind: str  # max | mean | lp | subsample, as in the YAML
    size: tuple[int, int]
    stride: tuple[int, int]
    p: float = 2.0  # lp only
    activation: str = "identity"  # subsample only
    family: str = "pool"


@dataclass(frozen=True)
class DenseSpec:
    name: str
    units: int
    activation: str
    dropout: float = 0.0  # inverted dropout of the layer's outputs while training
    family: str = "dense"
    init: Optional[str] = None  # None: train.init


@dataclass(frozen=True)
class RbfSpec:
    name: str
    units: int
    centres: str
    family: str = "rbf"


@dataclass(frozen=True)
class LayerShape:
    """A layer spec with the shapes it maps between (C, H, W) or (D,)."""

    spec: Any
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    path: str  # where in the config it came from, e.g. "blocks[0].convs[0]"


@dataclass
class Config:
    name: str
    source: str  # file the config came from, for messages
    input: InputSpec
    layers: list[LayerShape]
    train: dict[str, Any]
    data: dict[str, Any]
    resolved: dict[str, Any] = field(repr=False)  # the config with every default filled in

    @property
    def num_classes(self) -> int:
        return self.layers[-1].out_shape[0]


# ---------------------------------------------------------------- loading


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A path to a YAML file, or the bare name of a shipped config (`lenet5`)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = SHIPPED_DIR / f"{path.name}.yaml" if path.suffix == "" else SHIPPED_DIR / path.name
    if len(path.parts) == 1 and shipped.is_file():
        return shipped
    names = ", ".join(sorted(p.stem for p in SHIPPED_DIR.glob("*.yaml")))
    raise UserError(f"{name_or_path}: no such config file; give a YAML path or a shipped name ({names})")


def load_config(name_or_path: str | Path, sets: list[tuple[list[str], Any]] | None = None) -> Config:
    """Read, validate and shape-check a config, then apply `--set` overrides and check again."""
    path = resolve_config_path(name_or_path)
    text = read_config_text(path)
    config = parse_config(text, str(path))
    if sets:
        config = validate_config(apply_overrides(config.resolved, sets), f"{path} (after --set)")
    return config


class _Loader(BoundedSafeLoader):
    """The bounded SafeLoader (safe_yaml.py) that also reads `1e-3` as a float (YAML 1.1 wants `1.0e-3`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+|\.[0-9_]+(?:[eE][-+]?[0-9]+)?|\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"""),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def parse_yaml(text: str, source: str) -> Any:
    try:
        return load_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        kind = "YAML too large" if isinstance(error, YamlTooLarge) else "YAML syntax error"
        raise UserError(f"{source}:{where}: {kind}: {str(problem)[:200]}; "
                        f"fix the YAML there") from None
    except ValueError as error:  # e.g. an integer of more digits than Python converts
        raise UserError(f"{source}: unreadable value in the YAML ({short_repr(str(error), 120)}); fix it") from None


def parse_config(text: str, source: str) -> Config:
    raw = parse_yaml(text, source)
    return validate_config(raw, source)


# ---------------------------------------------------------------- field readers


class _Reader:
    """Reads fields of one mapping and reports errors with the file and dotted path."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, problem: str) -> UserError:
        return UserError(f"{self.source}: {path}: {problem}")

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...]) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping with keys {', '.join(allowed)}, got {_describe(value)}")
        for key in value:
            if key not in allowed:
                near = difflib.get_close_matches(str(key)[:100], allowed, n=1)
                hint = f"did you mean '{near[0]}'?" if near else f"allowed keys: {', '.join(allowed)}"
                raise self.fail(_join(path, short_repr(key) if not isinstance(key, str) or len(key) > 60 else key),
                                f"unknown key; {hint}")
        return value

    def required(self, mapping: dict, key: str, path: str) -> Any:
        if key not in mapping or mapping[key] is None:
            raise self.fail(_join(path, key), "missing; this field is required")
        return mapping[key]

    def integer(self, value: Any, path: str, minimum: int = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected an integer, got {_describe(value)}")
        if value < minimum:
            what = "positive" if minimum == 1 else f"at least {minimum}"
            raise self.fail(path, f"must be {what}, got {short_repr(value)}")
        return value

    def number(self, value: Any, path: str, low: float | None = None, high: float | None = None,
               low_open: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(path, f"expected a number, got {_describe(value)}")
        if low is not None and (value < low or (low_open and value == low)):
            bound = f"> {low}" if low_open else f">= {low}"
            raise self.fail(path, f"must be {bound}, got {short_repr(value)}")
        if high is not None and value > high:
            raise self.fail(path, f"must be <= {high}, got {short_repr(value)}")
        return float(value)

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"expected true or false, got {_describe(value)}")
        return value

    def choice(self, value: Any, path: str, choices: tuple[str, ...]) -> str:
        if not isinstance(value, str) or value not in choices:
            near = difflib.get_close_matches(str(value), choices, n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"choose one of {', '.join(choices)}"
            raise self.fail(path, f"unknown value {short_repr(value)}; {hint}")
        return value

    def pair(self, value: Any, path: str, minimum: int = 1) -> tuple[int, int]:
        """An int n (meaning n×n) or a list [height, width]."""
        if isinstance(value, list):
            if len(value) != 2:
                raise self.fail(path, f"expected an integer or [height, width], got a list of {len(value)}")
            return (self.integer(value[0], f"{path}[0]", minimum), self.integer(value[1], f"{path}[1]", minimum))
        n = self.integer(value, path, minimum)
        return (n, n)

    def name(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value or not value.replace("_", "").replace("-", "").isalnum():
            raise self.fail(path, f"expected a name of letters, digits, '_' or '-', got {_describe(value)}")
        return value


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {short_repr(value)}"
    if isinstance(value, str):
        return f"the text {short_repr(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


# ---------------------------------------------------------------- validation

TOP_KEYS = ("name", "input", "blocks", "fc", "train", "data")
INPUT_KEYS = ("channels", "height", "width", "pad")
BLOCK_KEYS = ("convs", "pools")
CONV_KEYS = ("name", "filters", "kernel", "stride", "padding", "activation", "connections", "init")
POOL_KEYS = ("name", "kind", "size", "stride", "p", "activation")
FC_KEYS = ("name", "kind", "units", "activation", "centres", "dropout", "init")
TRAIN_KEYS = tuple(TRAIN_DEFAULTS)
DATA_KEYS = tuple(DATA_DEFAULTS)


def validate_config(raw: Any, source: str) -> Config:
    r = _Reader(source)
    if raw is None:
        raise UserError(f"{source}: the file is empty; see configs/lenet5.yaml for the format")
    top = r.mapping(raw, "", TOP_KEYS)
    name = r.name(top.get("name", Path(source).stem), "name")

    inp = r.mapping(r.required(top, "input", ""), "input", INPUT_KEYS)
    input_spec = InputSpec(
        channels=r.integer(r.required(inp, "channels", "input"), "input.channels"),
        height=r.integer(r.required(inp, "height", "input"), "input.height"),
        width=r.integer(r.required(inp, "width", "input"), "input.width"),
        pad=r.integer(inp.get("pad", 0), "input.pad", minimum=0),
    )

    blocks = top.get("blocks", [])
    if blocks is None:
        blocks = []
    if not isinstance(blocks, list):
        raise r.fail("blocks", f"expected a list of {{convs: [...], pools: [...]}}, got {_describe(blocks)}")

    shape: tuple[int, ...] = input_spec.shape
    layers: list[LayerShape] = []
    counters = {"conv": 0, "pool": 0, "fc": 0}
    resolved_blocks = []

    for bi, block in enumerate(blocks):
        bpath = f"blocks[{bi}]"
        block = r.mapping(block, bpath, BLOCK_KEYS)
        convs = block.get("convs")
        if not isinstance(convs, list) or not convs:
            raise r.fail(f"{bpath}.convs", "a block needs at least one conv layer: convs: [{filters: ..., kernel: ...}]")
        pools = block.get("pools", []) or []
        if not isinstance(pools, list):
            raise r.fail(f"{bpath}.pools", f"expected a list of pooling layers, got {_describe(pools)}")
        resolved_convs, resolved_pools = [], []
        for ci, conv in enumerate(convs):
            path = f"{bpath}.convs[{ci}]"
            counters["conv"] += 1
            spec, resolved = _conv_spec(r, conv, path, shape, f"conv{counters['conv']}")
            out = _conv_output_shape(r, spec, path, shape)
            layers.append(LayerShape(spec, shape, out, path))
            resolved_convs.append(resolved)
            shape = out
        for pi, pool in enumerate(pools):
            path = f"{bpath}.pools[{pi}]"
            counters["pool"] += 1
            spec, resolved = _pool_spec(r, pool, path, f"pool{counters['pool']}")
            out = _pool_output_shape(r, spec, path, shape)
            layers.append(LayerShape(spec, shape, out, path))
            resolved_pools.append(resolved)
            shape = out
        resolved_blocks.append({"convs": resolved_convs, "pools": resolved_pools})

    fcs = top.get("fc")
    if not isinstance(fcs, list) or not fcs:
        raise r.fail("fc", "at least one fully connected layer is required, e.g. fc: [{units: 10}]")
    flat = (math.prod(shape),)
    shape = flat
    resolved_fc = []
    for fi, fc in enumerate(fcs):
        path = f"fc[{fi}]"
        counters["fc"] += 1
        last = fi == len(fcs) - 1
        spec, resolved = _fc_spec(r, fc, path, f"fc{counters['fc']}", last, shape)
        out = (spec.units,)
        layers.append(LayerShape(spec, shape, out, path))
        resolved_fc.append(resolved)
        shape = out

    seen: dict[str, str] = {}
    for layer in layers:
        if layer.spec.name in RESERVED_NAMES:
            raise r.fail(f"{layer.path}.name", f"'{layer.spec.name}' is reserved (checkpoints use it); choose another name")
        if layer.spec.name in seen:
            raise r.fail(f"{layer.path}.name", f"layer name '{layer.spec.name}' is already used by {seen[layer.spec.name]}; names must be unique")
        seen[layer.spec.name] = layer.path

    train = _section(r, top.get("train"), "train", TRAIN_DEFAULTS)
    data = _section(r, top.get("data"), "data", DATA_DEFAULTS)
    validate_train(r, train)
    validate_data(r, data)
    if train["patience"] is not None and data["val_split"] == 0:
        raise r.fail("train.patience", "early stopping watches validation accuracy; set data.val_split > 0 "
                                       "or remove patience")
    check_training_fits_network(r, train, layers)

    resolved = {
        "name": name,
        "input": {"channels": input_spec.channels, "height": input_spec.height,
                  "width": input_spec.width, "pad": input_spec.pad},
        "blocks": resolved_blocks,
        "fc": resolved_fc,
        "train": train,
        "data": data,
    }
    return Config(name, source, input_spec, layers, train, data, resolved)


def _section(r: _Reader, value: Any, path: str, defaults: dict[str, Any]) -> dict[str, Any]:
    given = {} if value is None else r.mapping(value, path, tuple(defaults))
    merged = dict(defaults)
    merged.update(given)
    return merged


def validate_train(r: _Reader, t: dict[str, Any]) -> None:
    r.integer(t["epochs"], "train.epochs")
    r.integer(t["batch_size"], "train.batch_size")
    r.choice(t["optimizer"], "train.optimizer", OPTIMIZERS)
    r.number(t["lr"], "train.lr", low=0.0, low_open=True)
    r.number(t["momentum"], "train.momentum", low=0.0, high=1.0)
    r.boolean(t["nesterov"], "train.nesterov")
    r.number(t["weight_decay"], "train.weight_decay", low=0.0)
    if isinstance(t["schedule"], dict):
        _piecewise(r, t["schedule"])
    else:
        r.choice(t["schedule"], "train.schedule", SCHEDULES)
    r.integer(t["step_size"], "train.step_size")
    r.number(t["gamma"], "train.gamma", low=0.0, high=1.0, low_open=True)
    r.integer(t["seed"], "train.seed", minimum=0)
    r.choice(t["init"], "train.init", INITS)
    _in_range(r, t["label_smoothing"], "train.label_smoothing", 0.0, 1.0, high_open=True)
    if t["patience"] is not None:
        r.integer(t["patience"], "train.patience")
    r.choice(t["loss"], "train.loss", LOSSES)
    r.number(t["map_j"], "train.map_j", low=0.0)
    r.number(t["sdlm_mu"], "train.sdlm_mu", low=0.0, low_open=True)
    r.integer(t["sdlm_samples"], "train.sdlm_samples")
    r.boolean(t["track_test"], "train.track_test")


def _in_range(r: _Reader, value: Any, path: str, low: float, high: float, unit: str = "",
              high_open: bool = False, low_open: bool = False) -> float:
    """A number in [low, high] (or open at either end); the message names the range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise r.fail(path, f"expected a number, got {_describe(value)}")
    if value < low or value > high or (high_open and value == high) or (low_open and value == low):
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        raise r.fail(path, f"must be in {left}{low:g}, {high:g}{right}{unit}, got {value:g}")
    return float(value)


def validate_augment(r: _Reader, value: Any) -> dict[str, Any]:
    """data.augment with every default filled in (the resolved form is always complete,
    so --set data.augment.elastic.alpha=34 finds its section)."""
    given = {} if value is None else r.mapping(value, "data.augment", tuple(AUGMENT_DEFAULTS))
    merged = copy.deepcopy(AUGMENT_DEFAULTS)
    merged.update({k: v for k, v in given.items() if k != "elastic"})
    for key, (low, high, unit) in AUGMENT_RANGES.items():
        merged[key] = _in_range(r, merged[key], f"data.augment.{key}", low, high, unit)
    elastic = given.get("elastic")
    elastic = {} if elastic is None else r.mapping(elastic, "data.augment.elastic", tuple(ELASTIC_RANGES))
    merged["elastic"].update(elastic)
    for key, (low, high, unit) in ELASTIC_RANGES.items():
        merged["elastic"][key] = _in_range(r, merged["elastic"][key], f"data.augment.elastic.{key}", low, high, unit)
    return merged


def _piecewise(r: _Reader, schedule: dict) -> None:
    """schedule: {piecewise: [[epochs, lr], ...]}: each lr for that many epochs, the last one after."""
    r.mapping(schedule, "train.schedule", ("piecewise",))
    pieces = schedule.get("piecewise")
    if not isinstance(pieces, list) or not pieces:
        raise r.fail("train.schedule.piecewise", "expected a list of [epochs, lr] pairs, e.g. [[2, 5e-4], [3, 2e-4]]")
    for i, piece in enumerate(pieces):
        path = f"train.schedule.piecewise[{i}]"
        if not isinstance(piece, list) or len(piece) != 2:
            raise r.fail(path, f"expected [epochs, lr], got {_describe(piece)}")
        r.integer(piece[0], f"{path}[0]")
        r.number(piece[1], f"{path}[1]", low=0.0, low_open=True)


def check_training_fits_network(r: _Reader, t: dict[str, Any], layers: list[LayerShape]) -> None:
    """The loss and the optimizer need pieces of the network: say which field lacks what."""
    last = layers[-1]
    if t["loss"] == "map" and last.spec.family != "rbf":
        raise r.fail("train.loss", f"map needs an RBF output layer, but {last.path}.kind is {last.spec.family}; "
                                   f"set {last.path}.kind: rbf or train.loss: softmax")
    if t["loss"] == "map" and t["label_smoothing"]:
        raise r.fail("train.label_smoothing", "label smoothing mixes softmax targets; with train.loss: map set it "
                                              "to 0, or use train.loss: softmax")
    if t["optimizer"] == "sdlm":
        for layer in layers:
            if layer.spec.family == "pool" and layer.spec.kind not in SDLM_POOLS:
                raise r.fail("train.optimizer", f"sdlm needs second derivatives, which {layer.path}.kind: "
                                                f"{layer.spec.kind} has none; use {', '.join(SDLM_POOLS)} pooling "
                                                f"there or another train.optimizer")


def validate_data(r: _Reader, d: dict[str, Any]) -> None:
    d["dataset"] = r.choice(str(d["dataset"]).lower() if isinstance(d["dataset"], str) else d["dataset"],
                            "data.dataset", DATASET_NAMES)
    folder = d["folder"]
    if d["dataset"] == "folder" and (not isinstance(folder, str) or not folder.strip()):
        raise r.fail("data.folder", f"data.dataset is folder, so data.folder must be the path of a folder with one "
                                    f"sub-folder per class, got {_describe(folder)}")
    if folder is not None and not isinstance(folder, str):
        raise r.fail("data.folder", f"expected the path of a folder, got {_describe(folder)}")
    r.choice(d["fit"], "data.fit", FITS)
    r.number(d["test_split"], "data.test_split", low=0.0, high=0.9)
    norm = d["normalize"]
    if isinstance(norm, dict):
        r.mapping(norm, "data.normalize", ("range",))
        span = norm.get("range")
        if not isinstance(span, list) or len(span) != 2:
            raise r.fail("data.normalize.range", "expected [background, ink], e.g. [-0.1, 1.175]")
        low = r.number(span[0], "data.normalize.range[0]")
        if r.number(span[1], "data.normalize.range[1]") == low:
            raise r.fail("data.normalize.range", "background and ink must differ")
    elif isinstance(norm, list):
        if len(norm) != 2:
            raise r.fail("data.normalize", "expected true, false, [mean, std] or {range: [background, ink]}")
        r.number(norm[0], "data.normalize[0]")
        r.number(norm[1], "data.normalize[1]", low=0.0, low_open=True)
    elif not isinstance(norm, bool):
        raise r.fail("data.normalize", f"expected true, false, [mean, std] or {{range: [background, ink]}}, "
                                       f"got {_describe(norm)}")
    r.number(d["val_split"], "data.val_split", low=0.0, high=0.9)
    d["augment"] = validate_augment(r, d["augment"])


# ---------------------------------------------------------------- layers


def _conv_spec(r: _Reader, conv: Any, path: str, in_shape, default_name: str):
    conv = r.mapping(conv, path, CONV_KEYS)
    name = r.name(conv.get("name", default_name), f"{path}.name")
    filters = r.integer(r.required(conv, "filters", path), f"{path}.filters")
    kernel = r.pair(r.required(conv, "kernel", path), f"{path}.kernel")
    stride = r.pair(conv.get("stride", 1), f"{path}.stride")
    activation = r.choice(conv.get("activation", "relu"), f"{path}.activation", ACTIVATIONS)
    padding_raw = conv.get("padding", "valid")
    padding = _padding(r, padding_raw, f"{path}.padding", in_shape, kernel, stride)
    connections = None
    if conv.get("connections") is not None:
        connections = _connections(r, conv["connections"], f"{path}.connections", in_shape[0], filters)
    init = r.choice(conv["init"], f"{path}.init", INITS) if conv.get("init") is not None else None
    spec = ConvSpec(name, filters, kernel, stride, padding, _padding_text(padding_raw), activation, connections,
                    init=init)
    resolved = {"name": name, "filters": filters, "kernel": list(kernel), "stride": list(stride),
                "padding": padding_raw, "activation": activation}
    if init is not None:
        resolved["init"] = init
    if conv.get("connections") is not None:
        resolved["connections"] = conv["connections"]
    return spec, resolved


def _padding_text(raw: Any) -> str:
    return str(raw) if not isinstance(raw, list) else "[" + ", ".join(map(str, raw)) + "]"


def _padding(r: _Reader, raw: Any, path: str, in_shape, kernel, stride) -> tuple[int, int, int, int]:
    _, h, w = in_shape
    if raw == "valid":
        return (0, 0, 0, 0)
    if raw == "same":
        top, bottom = same_padding(h, kernel[0], stride[0])
        left, right = same_padding(w, kernel[1], stride[1])
        return (top, bottom, left, right)
    if isinstance(raw, list):
        if len(raw) != 4:
            raise r.fail(path, "expected valid, same, an integer, or [top, bottom, left, right]")
        return tuple(r.integer(v, f"{path}[{i}]", minimum=0) for i, v in enumerate(raw))  # type: ignore
    if isinstance(raw, int) and not isinstance(raw, bool):
        p = r.integer(raw, path, minimum=0)
        return (p, p, p, p)
    raise r.fail(path, f"expected valid, same, an integer, or [top, bottom, left, right], got {_describe(raw)}")


def _connections(r: _Reader, raw: Any, path: str, channels: int, filters: int):
    if isinstance(raw, str):
        if raw not in NAMED_TABLES:
            near = difflib.get_close_matches(raw, tuple(NAMED_TABLES), n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"named tables: {', '.join(NAMED_TABLES)}"
            raise r.fail(path, f"unknown connection table {short_repr(raw)}; {hint}, or give rows like 'X..X'")
        raw = list(NAMED_TABLES[raw])
    if not isinstance(raw, list) or not raw:
        raise r.fail(path, "expected a named table or a list of rows, one per input map, like 'XX..X'")
    rows = []
    for i, row in enumerate(raw):
        if isinstance(row, str):
            if set(row) - set("X.x"):
                raise r.fail(f"{path}[{i}]", f"row {short_repr(row)} may hold only 'X' (connected) and '.' (not)")
            rows.append(tuple(ch in "Xx" for ch in row))
        elif isinstance(row, list) and all(v in (0, 1) and not isinstance(v, float) for v in row):
            rows.append(tuple(bool(v) for v in row))
        else:
            raise r.fail(f"{path}[{i}]", "each row is a string of 'X'/'.' or a list of 0/1")
    if len(rows) != channels or any(len(row) != filters for row in rows):
        widths = sorted({len(row) for row in rows})
        raise r.fail(path, f"table is {len(rows)}×{'/'.join(map(str, widths))} but must be {channels}×{filters} "
                           f"(one row per input map, one column per filter)")
    for k in range(filters):
        if not any(row[k] for row in rows):
            raise r.fail(path, f"filter {k} reads no input map; connect it to at least one")
    return tuple(rows)


def _conv_output_shape(r: _Reader, spec: ConvSpec, path: str, in_shape) -> tuple[int, int, int]:
    _, h, w = in_shape
    top, bottom, left, right = spec.padding
    ph, pw = h + top + bottom, w + left + right
    if spec.kernel[0] > ph or spec.kernel[1] > pw:
        raise r.fail(f"{path}.kernel", f"{spec.name}: kernel {spec.kernel[0]}×{spec.kernel[1]} is larger than its "
                                       f"padded input {ph}×{pw}; use a smaller kernel, more padding or fewer pools before it")
    oh = conv_output_size(h, spec.kernel[0], spec.stride[0], top, bottom)
    ow = conv_output_size(w, spec.kernel[1], spec.stride[1], left, right)
    return (spec.filters, oh, ow)


def _pool_spec(r: _Reader, pool: Any, path: str, default_name: str):
    pool = r.mapping(pool, path, POOL_KEYS)
    name = r.name(pool.get("name", default_name), f"{path}.name")
    kind = r.choice(pool.get("kind", "max"), f"{path}.kind", POOL_KINDS)
    size = r.pair(pool.get("size", 2), f"{path}.size")
    stride = r.pair(pool.get("stride", list(size)), f"{path}.stride")
    resolved: dict[str, Any] = {"name": name, "kind": kind, "size": list(size), "stride": list(stride)}
    p = 2.0
    if "p" in pool:
        if kind != "lp":
            raise r.fail(f"{path}.p", "p is only for kind: lp")
        p = r.number(pool["p"], f"{path}.p", low=1.0, high=FLOAT32_MAX)  # the kernels compute in float32
    if kind == "lp":
        resolved["p"] = p
    activation = "identity"
    if "activation" in pool:
        if kind != "subsample":
            raise r.fail(f"{path}.activation", "only kind: subsample pooling has an activation")
        activation = r.choice(pool["activation"], f"{path}.activation", ACTIVATIONS)
    elif kind == "subsample":
        activation = "sigmoid"  # the paper's choice for S2/S4
    if kind == "subsample":
        resolved["activation"] = activation
    return PoolSpec(name, kind, size, stride, p, activation), resolved


def _pool_output_shape(r: _Reader, spec: PoolSpec, path: str, in_shape) -> tuple[int, int, int]:
    c, h, w = in_shape
    if spec.size[0] > h or spec.size[1] > w:
        raise r.fail(f"{path}.size", f"{spec.name}: window {spec.size[0]}×{spec.size[1]} is larger than its input "
                                     f"{h}×{w}, so the map would shrink to nothing; use a smaller window or remove the pool")
    return (c, conv_output_size(h, spec.size[0], spec.stride[0], 0, 0), conv_output_size(w, spec.size[1], spec.stride[1], 0, 0))


def _fc_spec(r: _Reader, fc: Any, path: str, default_name: str, last: bool, in_shape):
    fc = r.mapping(fc, path, FC_KEYS)
    name = r.name(fc.get("name", default_name), f"{path}.name")
    kind = r.choice(fc.get("kind", "dense"), f"{path}.kind", FC_KINDS)
    units = r.integer(r.required(fc, "units", path), f"{path}.units")
    if kind == "rbf":
        if not last:
            raise r.fail(f"{path}.kind", "an rbf layer can only be the output (last fc) layer")
        if "activation" in fc:
            raise r.fail(f"{path}.activation", "an rbf layer has no activation; its outputs are squared distances")
        if "dropout" in fc:
            raise r.fail(f"{path}.dropout", "dropout is for dense layers; an rbf layer has no units to drop")
        if "init" in fc:
            raise r.fail(f"{path}.init", "an rbf layer has no trainable weights to initialise; remove init")
        centres = r.choice(fc.get("centres", "digits"), f"{path}.centres", RBF_CENTRES)
        if units != 10 or in_shape != (84,):
            raise r.fail(path, f"centres: digits are 10 bitmaps of 7×12, so units must be 10 and the layer "
                               f"before must have 84 units (got units {units}, input {in_shape[0]})")
        return RbfSpec(name, units, centres), {"name": name, "kind": "rbf", "units": units, "centres": centres}
    if "centres" in fc:
        raise r.fail(f"{path}.centres", "centres are only for kind: rbf")
    dropout = _in_range(r, fc.get("dropout", 0.0), f"{path}.dropout", 0.0, 1.0, high_open=True)
    # Hidden layers default to relu; the last layer's outputs are logits.
    activation = r.choice(fc.get("activation", "identity" if last else "relu"), f"{path}.activation", ACTIVATIONS)
    init = r.choice(fc["init"], f"{path}.init", INITS) if fc.get("init") is not None else None
    resolved = {"name": name, "units": units, "activation": activation}
    if dropout:
        resolved["dropout"] = dropout
    if init is not None:
        resolved["init"] = init
    return DenseSpec(name, units, activation, dropout, init=init), resolved


# ---------------------------------------------------------------- overrides


def parse_set_option(text: str) -> tuple[list[str], Any]:
    """`train.momentum=0.95` → (["train", "momentum"], 0.95); the value is read as YAML."""
    if "=" not in text:
        raise UserError(f"--set {short_repr(text)}: expected key.path=value, e.g. --set train.momentum=0.95")
    key, value = text.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not key.strip() or any(not p for p in parts):
        raise UserError(f"--set {short_repr(text)}: empty key; expected key.path=value, e.g. --set fc.0.units=100")
    try:
        parsed = load_yaml(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    return parts, parsed


def apply_overrides(resolved: dict[str, Any], sets: list[tuple[list[str], Any]], label: str = "--set") -> dict[str, Any]:
    """Return a copy of a resolved config with each (path, value) replaced; the path must exist."""
    result = copy.deepcopy(resolved)
    for parts, value in sets:
        node: Any = result
        for depth, part in enumerate(parts):
            where = ".".join(parts[: depth + 1])
            last = depth == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise UserError(f"{label} {'.'.join(parts)}: '{where}' is not an index of a {len(node)}-element list")
                part_key: Any = int(part)
            elif isinstance(node, dict):
                allowed = _settable_keys(parts[:depth], node)
                if part not in allowed:
                    near = difflib.get_close_matches(part, allowed, n=1)
                    hint = f"; did you mean '{near[0]}'?" if near else ""
                    raise UserError(f"{label} {'.'.join(parts)}: '{where}' does not exist{hint}")
                part_key = part
            else:
                raise UserError(f"{label} {'.'.join(parts)}: '{'.'.join(parts[:depth])}' is a value, not a section")
            if last:
                node[part_key] = value
            else:
                if isinstance(node, dict) and part_key not in node:
                    node[part_key] = {}
                node = node[part_key]
    return result


def _settable_keys(parent: list[str], node: dict) -> tuple[str, ...]:
    """Keys an override may set: what is there plus the optional keys of that section."""
    keys = set(node)
    if not parent:
        keys |= set(TOP_KEYS)
    elif parent == ["train"]:
        keys |= set(TRAIN_KEYS)
    elif parent == ["data"]:
        keys |= set(DATA_KEYS)
    elif parent == ["data", "augment"]:
        keys |= set(AUGMENT_DEFAULTS)
    elif parent == ["data", "augment", "elastic"]:
        keys |= set(ELASTIC_RANGES)
    elif parent == ["input"]:
        keys |= set(INPUT_KEYS)
    elif len(parent) == 3 and parent[0] == "blocks":
        keys |= set(CONV_KEYS if parent[2] == "convs" else POOL_KEYS)
    elif len(parent) == 2 and parent[0] == "fc":
        keys |= set(FC_KEYS)
    return tuple(sorted(keys))


def dump_yaml(resolved: dict[str, Any]) -> str:
    return yaml.safe_dump(resolved, sort_keys=False, default_flow_style=None)
