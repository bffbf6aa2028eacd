"""Load MNIST-style IDX files and prepare them for training.

Everything that can be wrong with a file the user supplies (missing, not gzip,
truncated, wrong magic number, header dimensions that disagree with the
payload, image/label counts that disagree, labels outside 0-9) raises a
:class:`UserError` whose one-line message names the file — never a traceback or
a NumPy reshape error.

No numba here: commands that need no kernels must not load it.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import UserError

__all__ = [
    "MNIST_MEAN",
    "MNIST_STD",
    "IMAGES_MAGIC",
    "LABELS_MAGIC",
    "read_idx",
    "split_paths",
    "load_split",
    "preprocess",
    "train_val_split",
    "normalization",
]

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions (count, rows, cols)
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension (count)
_MAGIC = {"images": IMAGES_MAGIC, "labels": LABELS_MAGIC}
_KIND_OF_MAGIC = {v: k for k, v in _MAGIC.items()}
_REFETCH = "fetch it again (`cnn download --force`) or replace it"


def _open_stream(path: Path, display: str):
    """The file opened for reading, decompressing on the fly when it is gzip (whatever it is called)."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise UserError(f"{display}: file not found; run `cnn download` or point --data-dir at your IDX files") from None
    except IsADirectoryError:
        raise UserError(f"{display}: is a folder, not an IDX file") from None
    except OSError as error:
        raise UserError(f"{display}: cannot read it ({error.strerror or error})") from None
    if handle.read(2) == b"\x1f\x8b":  # gzip magic
        handle.seek(0)
        return gzip.GzipFile(fileobj=handle, mode="rb"), handle
    handle.seek(0)
    return handle, handle


def _read_at_most(stream, n: int, display: str) -> bytes:
    """Up to n bytes: a gzip bomb is never inflated past what the header promised."""
    try:
        return stream.read(n)
    except (OSError, EOFError, zlib.error) as error:
        raise UserError(f"{display}: broken gzip data ({error}); the file is truncated or corrupt, {_REFETCH}") from None


def _read_bytes(path: Path, display: str, kind: Optional[str]) -> tuple[bytes, tuple[int, ...], int, str]:
    """(header + payload bytes, dims, header length, kind), reading no more than the header declares (+1 byte)."""
    from ..limits import available_memory, human_bytes

    stream, raw_handle = _open_stream(path, display)
    with raw_handle, stream:
        head = _read_at_most(stream, 4, display)
        if len(head) < 4:
            raise UserError(
                f"{display}: only {len(head)} bytes, too short for an IDX header; the file is truncated or empty, {_REFETCH}"
            )
        magic = int.from_bytes(head, "big")
        kind = _check_magic(magic, kind, display)
        ndim = head[3]
        header = 4 + 4 * ndim
        rest = _read_at_most(stream, header - 4, display)
        if len(head) + len(rest) < 8:
            raise UserError(f"{display}: only {len(head) + len(rest)} bytes, too short for an IDX header; "
                            f"the file is truncated or empty, {_REFETCH}")
        if len(rest) < header - 4:
            raise UserError(f"{display}: header cut short ({len(head) + len(rest)} bytes, needs {header}); {_REFETCH}")
        dims = struct.unpack(f">{ndim}I", rest)
        need = math.prod(dims)
        limit = need + 1
        if stream is raw_handle:  # a plain file: never ask for more than it holds
            limit = min(limit, os.fstat(raw_handle.fileno()).st_size - header + 1)
        room = available_memory()
        if room is not None and 2 * limit > room:  # the bytes plus their uint8 copy
            raise UserError(f"{display}: header says {_shape_text(dims)} = {need:,} bytes of {kind}, more than the "
                            f"{human_bytes(room)} of memory available; the file is truncated or corrupt, or too "
                            f"large for this machine; {_REFETCH}")
        payload = _read_at_most(stream, max(limit, 0), display)
    have = len(payload)
    if have != need:
        what = "is truncated or corrupt" if have < need else "has extra bytes after the data"
        held = f"{have:,}" if have < need else "more"
        raise UserError(
            f"{display}: header says {_shape_text(dims)} = {need:,} bytes of {kind} but the file holds {held}; "
            f"the file {what}, {_REFETCH}"
        )
    return payload, dims, header, kind


def _shape_text(dims) -> str:
    return "×".join(f"{d:,}" for d in dims)


def _check_magic(magic: int, kind: Optional[str], display: str) -> str:
    if kind is not None and magic != _MAGIC[kind]:
        other = _KIND_OF_MAGIC.get(magic)
        why = f"it looks like {'an' if other == 'images' else 'a'} {other} file" if other else "not an MNIST IDX file"
        raise UserError(
            f"{display}: magic number {magic} (0x{magic:08x}), expected {_MAGIC[kind]} for {kind}; "
            f"{why} — check the file name and contents"
        )
    if kind is None:
        if magic not in _KIND_OF_MAGIC:
            raise UserError(
                f"{display}: magic number {magic} (0x{magic:08x}), expected {IMAGES_MAGIC} (images) "
                f"or {LABELS_MAGIC} (labels); not an MNIST IDX file"
            )
        kind = _KIND_OF_MAGIC[magic]
    return kind


def read_idx(path: Union[Path, str], kind: Optional[str] = None, *, name: Optional[str] = None) -> np.ndarray:
    """Read a gzipped or plain IDX file of unsigned bytes and return it as a uint8 array.

    ``kind`` ("images" or "labels") demands magic 2051 (N×H×W) or 2049 (N); with
    ``kind=None`` either is accepted. Checks the magic number, that the header's
    dimensions account for exactly the payload, and for labels that every value
    is in 0-9. ``name`` replaces the path in messages (used for temporary files).
    The header is read first and the payload only up to the size it declares, so
    a decompression bomb or a lying header costs at most that much memory.
    """
    path = Path(path)
    display = name if name is not None else str(path)
    if kind is not None and kind not in _MAGIC:
        raise ValueError(f"kind must be 'images', 'labels' or None, not {kind!r}")
    payload, dims, header, kind = _read_bytes(path, display, kind)
    need = len(payload)
    if kind == "images" and (dims[1] == 0 or dims[2] == 0):
        raise UserError(f"{display}: header says images of {dims[1]}×{dims[2]} pixels; an image needs at least 1×1")

    array = np.frombuffer(payload, dtype=np.uint8, count=need).reshape(dims).copy()
    if kind == "labels" and array.size:
        bad = np.flatnonzero(array > 9)
        if bad.size:
            i = int(bad[0])
            raise UserError(
                f"{display}: label {int(array[i])} at index {i:,} is outside 0–9 "
                f"({bad.size:,} bad label{'s' if bad.size != 1 else ''}); is this an MNIST labels file?"
            )
    return array


def split_paths(data_dir: Union[Path, str], split: str) -> Tuple[Path, Path]:
    """(images path, labels path) of ``split`` ("train" or "test") under ``data_dir``."""
    from ..spec.datasets import file_name

    if split not in ("train", "test"):
        raise UserError(f"split must be 'train' or 'test', not {split!r}")
    data_dir = Path(data_dir)
    return data_dir / file_name(split, "images"), data_dir / file_name(split, "labels")


def load_split(data_dir: Union[Path, str], split: str) -> Tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, H, W) and labels int64 (N,) of ``split`` from the data folder.

    Checks structure, not checksums: any well-formed IDX pair with official names works.
    """
    images_path, labels_path = split_paths(data_dir, split)
    for p in (images_path, labels_path):
        if not p.is_file():
            raise UserError(
                f"{p}: file not found; run `cnn download --data-dir {Path(data_dir)}` "
                f"or copy the MNIST files there (see data/README.md)"
            )
    images = read_idx(images_path, kind="images")
    labels = read_idx(labels_path, kind="labels")
    if images.shape[0] != labels.shape[0]:
        raise UserError(
            f"{images_path} holds {images.shape[0]:,} images but {labels_path} holds {labels.shape[0]:,} labels; "
            f"the two files must come from the same set"
        )
    if images.shape[0] == 0:
        raise UserError(f"{images_path}: holds no images; the {split} split needs at least one")
    return images, labels.astype(np.int64)


def _normalize_arg(normalize) -> Optional[Tuple[Tuple[float, ...], Tuple[float, ...]]]:
    """(means, stds) per channel (one value: every channel), or None for no normalisation."""
    if normalize is None or normalize is False:
        return None
    if normalize is True:
        return (MNIST_MEAN,), (MNIST_STD,)
    try:
        mean, std = normalize
        means = tuple(float(v) for v in (mean if isinstance(mean, (list, tuple)) else [mean]))
        stds = tuple(float(v) for v in (std if isinstance(std, (list, tuple)) else [std]))
    except (TypeError, ValueError):
        raise UserError(f"normalize: expected [mean, std] (or true for MNIST's {MNIST_MEAN}, {MNIST_STD}), got {normalize!r}") from None
    if not all(math.isfinite(m) for m in means) or not all(math.isfinite(s) and s > 0 for s in stds):
        raise UserError(f"normalize: std must be a positive number and mean finite, got mean={mean}, std={std}")
    return means, stds


def normalization(normalize) -> Optional[Tuple[Tuple[float, ...], Tuple[float, ...]]]:
    """The checked (means, stds) that ``preprocess`` applies for a ``normalize`` argument."""
    return _normalize_arg(normalize)


def _range_arg(normalize) -> Optional[Tuple[float, float]]:
    """(background, ink) of ``{"range": [background, ink]}``, else None."""
    if not isinstance(normalize, dict):
        return None
    try:
        low, high = (float(v) for v in normalize["range"])
    except (KeyError, TypeError, ValueError):
        raise UserError(f"normalize: expected {{range: [background, ink]}}, got {normalize!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low == high:
        raise UserError(f"normalize: range needs two different finite numbers, got {normalize['range']!r}")
    return low, high


def preprocess(
    images: np.ndarray,
    *,
    normalize: Union[None, bool, Sequence[float], dict] = None,
    pad: int = 0,
) -> np.ndarray:
    """uint8 (N, H, W) or (N, C, H, W) → float32 (N, C, H+2·pad, W+2·pad) (C = 1 for the first).

    Scale to [0, 1] (÷255) first, then ``(x − mean) / std`` per channel when
    ``normalize`` is ``(mean, std)`` — numbers, or one number per channel
    (``True`` means MNIST's 0.1307, 0.3081) — then zero padding of ``pad``
    pixels on every side (the classic LeNet-5 takes 32×32: ``pad=2``).
    ``{"range": [background, ink]}`` maps pixel 0 to background and 255 to ink
    linearly (LeCun et al. 1998: −0.1 and 1.175, mean ≈ 0 and variance ≈ 1 over
    MNIST), and pads with the background value: the border is blank paper.
    """
    span = _range_arg(normalize)
    if span is not None:
        return _preprocess_range(images, span, pad)
    images = np.asarray(images)
    # float32 in the same 0-255 units: distorted training batches (kernels/augment.py).
    if images.dtype not in (np.uint8, np.float32):
        raise ValueError(f"preprocess expects uint8 (or float32 0-255) images, got {images.dtype}")
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise ValueError(f"preprocess expects images of shape (N, H, W) or (N, C, H, W), got {images.shape}")
    if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0:
        raise UserError(f"pad: expected a whole number of pixels ≥ 0, got {pad!r}")
    pad = int(pad)
    stats = _normalize_arg(normalize)

    n, c, h, w = images.shape
    out = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=np.float32)
    inner = out[:, :, pad : pad + h, pad : pad + w]
    np.divide(images, np.float32(255.0), out=inner, dtype=np.float32)
    if stats is not None:
        means, stds = stats
        if len(means) not in (1, c) or len(stds) not in (1, c):
            raise UserError(f"normalize: {len(means)} mean(s) and {len(stds)} std(s) for images of {c} channel(s); "
                            f"give one value or one per channel")
        inner -= np.asarray(means, dtype=np.float32).reshape(1, -1, 1, 1)
        inner /= np.asarray(stds, dtype=np.float32).reshape(1, -1, 1, 1)
    return out


def _preprocess_range(images: np.ndarray, span: Tuple[float, float], pad: int) -> np.ndarray:
    low, high = span
    out = preprocess(images, normalize=None, pad=pad)
    n, _, h, w = out.shape
    p = (h - images.shape[-2]) // 2
    inner = out[:, :, p:h - p, p:w - p]
    inner *= np.float32(high - low)
    inner += np.float32(low)
    if p:  # the border: blank paper, as the scaled images' own background
        out[:, :, :p, :] = out[:, :, h - p:, :] = np.float32(low)
        out[:, :, :, :p] = out[:, :, :, w - p:] = np.float32(low)
    return out


def train_val_split(n: int, val_fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Seeded random split of ``range(n)`` into (train indices, validation indices), int64.

    MNIST samples are often class-sorted (the course sample is), so the split is
    a seeded permutation, never a slice. The validation set holds
    ``round(n · val_fraction)`` samples (at least one when ``val_fraction > 0``);
    ``val_fraction = 0`` gives an empty validation set and all of ``range(n)`` (shuffled) for training.
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be ≥ 0, got {n}")
    try:
        frac = float(val_fraction)
    except (TypeError, ValueError):
        raise UserError(f"val_fraction: expected a number in [0, 1), got {val_fraction!r}") from None
    if not (0.0 <= frac < 1.0):
        raise UserError(f"val_fraction: expected a number in [0, 1), got {val_fraction!r}")
    n_val = int(round(n * frac))
    if frac > 0 and n_val == 0 and n > 1:
        n_val = 1
    if n > 0 and n_val >= n:
        raise UserError(f"val_fraction: {frac} of {n} samples leaves nothing to train on; use a smaller fraction")
    perm = np.random.default_rng(seed).permutation(n).astype(np.int64)
    return perm[n_val:], perm[:n_val]

