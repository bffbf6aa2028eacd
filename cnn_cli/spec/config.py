"""Network configs: where they come from and where they go.

A config describes `Input → [Conv×N → Pool×M]×L → FC×K`. This module finds and
parses one (a YAML path or a shipped name), applies `--set` overrides and
writes the resolved form; the schema is schema.py, the checks validate.py.
Everything a config module exported before is importable from here. No numba.
"""

from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError
from ..limits import short_repr
from .geometry import conv_output_size, same_padding  # noqa: F401  (re-exported)
from .safe_yaml import BoundedSafeLoader, YamlTooLarge, read_config_text
from .schema import (  # noqa: F401  (re-exported: every name config.py had before the split)
    AUGMENT_DEFAULTS, AUGMENT_RANGES, BLOCK_KEYS, CONV_KEYS, Config, ConvSpec,
    DATA_DEFAULTS, DATA_KEYS, DenseSpec, ELASTIC_RANGES, FC_KEYS, FC_KINDS,
    FITS, FLOAT32_MAX, INITS, INPUT_KEYS, InputSpec, LOSSES,
    LayerShape, OPTIMIZERS, POOL_KEYS, POOL_KINDS, PoolSpec, RBF_CENTRES,
    RESERVED_NAMES, RbfSpec, SCHEDULES, SDLM_POOLS, SHIPPED_DIR, TOP_KEYS,
    TRAIN_DEFAULTS, TRAIN_KEYS,
)
from .validate import validate_config  # noqa: F401

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
