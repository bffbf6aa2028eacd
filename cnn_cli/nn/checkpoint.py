"""Checkpoints: `.npz` files that plain NumPy can read.

Layout (format version 1):
- `<layer>.<param>`: the weights under their layer names (`conv1.weight`, ...),
  fixed arrays too (`output.centres`);
- `optimizer.<layer>.<param>.<slot>` and `optimizer.steps`: optimizer state;
- `config.json`: the resolved config; `meta.json`: epoch, position, RNG state,
  running sums and anything else training needs to resume;
- `format_version`.

Writes are atomic: the file is written under a temporary name in the same folder
and renamed over the target, so a kill at any moment leaves the previous
checkpoint whole.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..io import write_atomically

FORMAT_VERSION = 1
OPTIMIZER_PREFIX = "optimizer."


@dataclass
class Checkpoint:
    weights: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]
    config: dict[str, Any]
    meta: dict[str, Any]


def save_checkpoint(path: Path, weights: dict[str, np.ndarray], optimizer: dict[str, np.ndarray],
                    config: dict[str, Any], meta: dict[str, Any]) -> None:
    arrays: dict[str, np.ndarray] = dict(weights)
    arrays.update({OPTIMIZER_PREFIX + k: v for k, v in optimizer.items()})
    arrays["config.json"] = np.array(json.dumps(config))
    arrays["meta.json"] = np.array(json.dumps(meta))
    arrays["format_version"] = np.array(FORMAT_VERSION)
    write_atomically(path, lambda handle: np.savez(handle, **arrays))


def require_checkpoint_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file; give the path of a .npz written by cnn train "
                        f"(runs/<name>/best.npz or last.npz)")
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and sanity-check a checkpoint; every failure is one UserError line."""
    from .checkpoint_checks import check_finite, inspect_npz, parse_json_member

    path = require_checkpoint_file(path)
    try:
        is_zip = zipfile.is_zipfile(path)
    except OSError as error:
        raise UserError(f"{path}: cannot read it ({error.strerror or error})") from None
    if is_zip:
        inspect_npz(path)  # sizes and dtypes from the zip directory and .npy headers, before loading
    try:
        if not is_zip:
            with open(path, "rb") as handle:
                head = handle.read(6)
            if head.startswith(b"PK\x03\x04"):  # a zip whose end (the directory) is missing
                raise UserError(f"{path}: truncated or corrupt checkpoint (its zip directory is missing); use another "
                                f"checkpoint (last.npz or best.npz) or train again")
            raise UserError(f"{path}: a single NumPy array, not a checkpoint; give a .npz written by cnn train"
                            if head == b"\x93NUMPY" else f"{path}: not a NumPy .npz checkpoint (not a zip file); "
                            f"give a file written by cnn train")
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise UserError(f"{path}: a single NumPy array, not a checkpoint; give a .npz written by cnn train")
        with data:
            arrays = {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, EOFError, zlib.error) as error:
        raise UserError(f"{path}: truncated or corrupt checkpoint ({str(error)[:100]}); use another checkpoint "
                        f"(last.npz or best.npz) or train again") from None
    except (ValueError, OSError) as error:
        raise UserError(f"{path}: not a NumPy .npz checkpoint ({(str(error).splitlines() or [''])[0][:100]}); "
                        f"give a file written by cnn train") from None
    if "format_version" not in arrays or "config.json" not in arrays:
        raise UserError(f"{path}: this .npz was not written by cnn train (no format_version/config.json); "
                        f"give a checkpoint from a run folder")
    try:
        version = int(arrays.pop("format_version"))
    except (TypeError, ValueError):
        version = None
    if version != FORMAT_VERSION:
        raise UserError(f"{path}: checkpoint format {version} is not supported (this cnn reads {FORMAT_VERSION})")
    config = parse_json_member(str(arrays.pop("config.json")), "config.json", path)
    meta = parse_json_member(str(arrays.pop("meta.json", np.array("{}"))), "meta.json", path)
    if not isinstance(meta, dict):
        raise UserError(f"{path}: meta.json inside the checkpoint is not a mapping; the file is damaged")
    check_finite(arrays, path)
    optimizer = {k[len(OPTIMIZER_PREFIX):]: v for k, v in arrays.items() if k.startswith(OPTIMIZER_PREFIX)}
    weights = {k: v for k, v in arrays.items() if not k.startswith(OPTIMIZER_PREFIX)}
    return Checkpoint(weights, optimizer, config, meta)
