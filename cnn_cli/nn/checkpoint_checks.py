"""What a checkpoint file may hold, checked before and after NumPy reads it.

A checkpoint is a file users pass around, so it is hostile input: a member may
be a zip bomb or claim a shape of terabytes, an array may hold strings, the
JSON inside may be nested 100,000 deep, meta.json's fields may be anything.
`inspect_npz` reads only the zip directory and each member's .npy header (a
few hundred bytes) and refuses before anything large is allocated;
`check_meta` type- and range-checks every field resuming uses.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..limits import MAX_JSON_BYTES, MAX_JSON_DEPTH, human_bytes, require_memory, short_repr

MAX_MEMBERS = 10_000  # a checkpoint holds ~3 arrays per parameter
JSON_MEMBERS = ("config.json", "meta.json")
NUMERIC_KINDS = "fiub"  # float, int, unsigned, bool: never strings or objects
_CORRUPT = "use another checkpoint (last.npz or best.npz) or train again"


def inspect_npz(path: Path) -> None:
    """Refuse a .npz whose members are not plain numeric arrays of sizes the file and memory can hold."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_MEMBERS:
                raise UserError(f"{path}: holds {len(infos):,} members, far more than a checkpoint; {_CORRUPT}")
            total = 0
            for info in infos:
                total += _member_bytes(path, archive, info)
    except UserError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError, NotImplementedError) as error:
        raise UserError(f"{path}: truncated or corrupt checkpoint ({short_repr(str(error), 80)[1:-1]}); "
                        f"{_CORRUPT}") from None
    require_memory(total, f"{path}: loading the checkpoint", "this checkpoint is too large for this machine")


def _member_bytes(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> int:
    """The bytes a member's array will take, from its .npy header; UserError when it cannot be a checkpoint's."""
    name = info.filename
    label = f"{path}: member {short_repr(name, 50)}"
    if not name.endswith(".npy"):
        raise UserError(f"{label} is not a NumPy array; this .npz was not written by cnn train")
    with archive.open(info) as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise UserError(f"{label}: .npy format {version} is not supported; {_CORRUPT}")
    key = name[: -len(".npy")]
    if key in JSON_MEMBERS:
        if dtype.kind != "U" or shape != ():
            raise UserError(f"{label} must be a JSON text, not an array of {dtype}; {_CORRUPT}")
        if dtype.itemsize > 4 * MAX_JSON_BYTES:
            raise UserError(f"{label} is {human_bytes(dtype.itemsize / 4)} of text, far more than a checkpoint's "
                            f"(at most {human_bytes(MAX_JSON_BYTES)}); {_CORRUPT}")
    elif dtype.hasobject or dtype.kind not in NUMERIC_KINDS or dtype.fields is not None:
        raise UserError(f"{label} holds {dtype} values, not numbers; a checkpoint stores only numeric arrays — "
                        f"{_CORRUPT}")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > info.file_size:
        raise UserError(f"{label} claims shape {short_repr(shape, 40)} ({human_bytes(nbytes)}) but holds only "
                        f"{human_bytes(info.file_size)}; the checkpoint is truncated or corrupt, {_CORRUPT}")
    return nbytes


def parse_json_member(text: str, name: str, path: Path) -> Any:
    if len(text) > MAX_JSON_BYTES:
        raise UserError(f"{path}: {name} inside the checkpoint is {len(text):,} characters, more than "
                        f"{MAX_JSON_BYTES:,}; {_CORRUPT}")
    return parse_json_text(text, f"{path}: {name} inside the checkpoint", _CORRUPT)


def parse_json_text(text: str, what: str, fix: str) -> Any:
    """json.loads with nesting bounded before parsing (the parser recurses) and errors as one line."""
    depth = 0
    in_string = escaped = False
    for char in text:  # bracket depth outside strings, in one linear pass
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise UserError(f"{what}: JSON nested more than {MAX_JSON_DEPTH} levels deep; {fix}")
        elif char in "]}":
            depth -= 1
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise UserError(f"{what}: damaged JSON ({short_repr(str(error), 100)[1:-1]}); {fix}") from None


def check_finite(arrays: dict[str, np.ndarray], path: Path) -> None:
    """NaN or infinite weights never come from cnn train (it refuses to save them): the file was damaged."""
    for key, array in arrays.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise UserError(f"{path}: {short_repr(key, 50)[1:-1]} holds NaN or infinite values; cnn train never "
                            f"saves such weights, so the file is damaged — {_CORRUPT}")


# ---------------------------------------------------------------- meta.json


def _count(meta: dict, key: str, path: Path, upper: float = 2 ** 62) -> int:
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= upper:
        raise _bad_field(path, key, value, "a whole number >= 0")
    return value


def _real(meta: dict, key: str, path: Path, low: float = -math.inf, high: float = math.inf,
          label: str = "") -> float:
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        expected = "a finite number" + (f" in [{low}, {high}]" if math.isfinite(low) or math.isfinite(high) else "")
        raise _bad_field(path, label + key, value, expected)
    return float(value)


def _bad_field(path: Path, key: str, value: Any, expected: str) -> UserError:
    shown = "missing" if value is None else short_repr(value)
    return UserError(f"{path}: meta.json field {key} is {shown}, expected {expected}; the checkpoint was "
                     f"damaged or edited — {_CORRUPT}")


def check_meta(meta: Any, path: Path, steps_per_epoch: int) -> None:
    """Every field resuming reads, type- and range-checked against the run it continues."""
    if not isinstance(meta, dict):
        raise UserError(f"{path}: meta.json is {short_repr(meta)}, not a mapping; {_CORRUPT}")
    epoch = _count(meta, "epoch", path)
    _count(meta, "batch", path, steps_per_epoch)
    _count(meta, "step", path)
    _count(meta, "correct", path)
    seen = _count(meta, "seen", path)
    _count(meta, "best_epoch", path, max(epoch, 0))
    _real(meta, "loss_sum", path, 0.0)
    _real(meta, "seconds", path, 0.0)
    _real(meta, "best_val_acc", path, -1.0, max(1.0, float(epoch)))
    if meta["correct"] > seen:
        raise _bad_field(path, "correct", meta["correct"], f"at most seen ({seen})")
    _check_rng_state(meta.get("rng_state"), path)
    history = meta.get("history")
    if not isinstance(history, list) or len(history) != epoch:
        raise _bad_field(path, "history", history if not isinstance(history, list) else f"a list of {len(history)}",
                         f"a list of one row per finished epoch ({epoch})")
    for i, row in enumerate(history):
        if not isinstance(row, dict):
            raise _bad_field(path, f"history[{i}]", row, "a mapping of epoch figures")
        for key in ("epoch", "train_loss", "train_acc", "lr", "seconds", "images_per_s"):
            _real(row, key, path, label=f"history[{i}].")
        for key in ("val_loss", "val_acc"):
            if row.get(key) is not None:
                _real(row, key, path, label=f"history[{i}].")


def _check_rng_state(state: Any, path: Path) -> None:
    """Only a PCG64 state is ever saved; anything else would be handed to NumPy unchecked."""
    ok = (isinstance(state, dict) and state.get("bit_generator") == "PCG64" and isinstance(state.get("state"), dict)
          and all(isinstance(state["state"].get(k), int) and not isinstance(state["state"].get(k), bool)
                  and 0 <= state["state"][k] < 2 ** 128 for k in ("state", "inc"))
          and isinstance(state.get("has_uint32"), int) and isinstance(state.get("uinteger"), int))
    if not ok:
        raise _bad_field(path, "rng_state", state, "a PCG64 generator state as NumPy writes it")
    try:
        np.random.default_rng().bit_generator.state = state
    except (TypeError, ValueError, OverflowError, KeyError):
        raise _bad_field(path, "rng_state", state, "a PCG64 generator state as NumPy writes it") from None
