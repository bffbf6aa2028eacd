"""Config validation and shape inference: a raw YAML mapping in, a `Config` out.

Everything is checked here, before any array is allocated or any kernel
compiled; each layer's output shape is inferred as its spec is read
(validate_layers.py), so a map that would shrink to nothing is caught by name.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any


from ..errors import UserError
from .datasets import DATASET_NAMES

from .schema import (
    AUGMENT_DEFAULTS, AUGMENT_RANGES, BLOCK_KEYS, Config, DATA_DEFAULTS, ELASTIC_RANGES,
    FITS, INITS, INPUT_KEYS, InputSpec, LOSSES, LayerShape,
    OPTIMIZERS, RESERVED_NAMES, SCHEDULES, SDLM_POOLS, TOP_KEYS, TRAIN_DEFAULTS,
)
from .reader import _Reader, _describe, _in_range
from .validate_layers import _conv_output_shape, _conv_spec, _fc_spec, _pool_output_shape, _pool_spec

# ---------------------------------------------------------------- validation



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
