"""Validation of the layers of a config: each spec read and its output shape inferred."""

from __future__ import annotations

import difflib
from typing import Any


from ..limits import short_repr
from .activations import NAMES as ACTIVATIONS
from .geometry import conv_output_size, same_padding
from .tables import NAMED_TABLES

from .schema import (
    CONV_KEYS, ConvSpec, DenseSpec, FC_KEYS, FC_KINDS, FLOAT32_MAX,
    INITS, POOL_KEYS, POOL_KINDS, PoolSpec, RBF_CENTRES, RbfSpec,
)
from .reader import _Reader, _describe, _in_range


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
