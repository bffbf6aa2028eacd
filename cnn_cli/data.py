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
import struct
import zlib
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from .errors import UserError

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
    "load_mnist",
]

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions (count, rows, cols)
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension (count)
_MAGIC = {"images": IMAGES_MAGIC, "labels": LABELS_MAGIC}
_KIND_OF_MAGIC = {v: k for k, v in _MAGIC.items()}
_REFETCH = "fetch it again (`cnn download --force`) or replace it"


def _read_bytes(path: Path, display: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise UserError(f"{display}: file not found; run `cnn download` or point --data-dir at your IDX files") from None
    except IsADirectoryError:
        raise UserError(f"{display}: is a folder, not an IDX file") from None
    except OSError as error:
        raise UserError(f"{display}: cannot read it ({error.strerror or error})") from None
    if raw[:2] == b"\x1f\x8b":  # gzip magic: decompress whatever the file is called
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise UserError(f"{display}: broken gzip data ({error}); the file is truncated or corrupt, {_REFETCH}") from None
    return raw


def read_idx(path: Union[Path, str], kind: Optional[str] = None, *, name: Optional[str] = None) -> np.ndarray:
    """Read a gzipped or plain IDX file of unsigned bytes and return it as a uint8 array.

    ``kind`` ("images" or "labels") demands magic 2051 (N×H×W) or 2049 (N); with
    ``kind=None`` either is accepted. Checks the magic number, that the header's
    dimensions account for exactly the payload, and for labels that every value
    is in 0-9. ``name`` replaces the path in messages (used for temporary files).
    """
    path = Path(path)
    display = name if name is not None else str(path)
    if kind is not None and kind not in _MAGIC:
        raise ValueError(f"kind must be 'images', 'labels' or None, not {kind!r}")
    raw = _read_bytes(path, display)

    if len(raw) < 8:
        raise UserError(
            f"{display}: only {len(raw)} bytes, too short for an IDX header; the file is truncated or empty, {_REFETCH}"
        )
    magic = int.from_bytes(raw[:4], "big")
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

    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{display}: header cut short ({len(raw)} bytes, needs {header}); {_REFETCH}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    need = math.prod(dims)
    have = len(raw) - header
    shape_text = "×".join(f"{d:,}" for d in dims)
    if have != need:
        what = "truncated or corrupt" if have < need else "has extra bytes after the data"
        raise UserError(
            f"{display}: header says {shape_text} = {need:,} bytes of {kind} but the file holds {have:,}; "
            f"the file is {what}, {_REFETCH}"
        )
    if kind == "images" and (dims[1] == 0 or dims[2] == 0):
        raise UserError(f"{display}: header says images of {dims[1]}×{dims[2]} pixels; an image needs at least 1×1")

    array = np.frombuffer(raw, dtype=np.uint8, count=need, offset=header).reshape(dims).copy()
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
    from .download import file_name  # no numba, no network: only the name table

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


def _normalize_arg(normalize) -> Optional[Tuple[float, float]]:
    if normalize is None or normalize is False:
        return None
    if normalize is True:
        return (MNIST_MEAN, MNIST_STD)
    try:
        mean, std = (float(v) for v in normalize)
    except (TypeError, ValueError):
        raise UserError(f"normalize: expected [mean, std] (or true for MNIST's {MNIST_MEAN}, {MNIST_STD}), got {normalize!r}") from None
    if not (math.isfinite(mean) and math.isfinite(std)) or std <= 0:
        raise UserError(f"normalize: std must be a positive number and mean finite, got mean={mean}, std={std}")
    return mean, std


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
    """uint8 (N, H, W) → float32 (N, 1, H+2·pad, W+2·pad).

    Scale to [0, 1] (÷255) first, then ``(x − mean) / std`` when ``normalize`` is
    ``(mean, std)`` (``True`` means MNIST's 0.1307, 0.3081), then zero padding of
    ``pad`` pixels on every side (the classic LeNet-5 takes 32×32: ``pad=2``).
    ``{"range": [background, ink]}`` maps pixel 0 to background and 255 to ink
    linearly (LeCun et al. 1998: −0.1 and 1.175, mean ≈ 0 and variance ≈ 1 over
    MNIST), and pads with the background value: the border is blank paper.
    """
    span = _range_arg(normalize)
    if span is not None:
        return _preprocess_range(images, span, pad)
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"preprocess expects uint8 images, got {images.dtype}")
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim != 3:
        raise ValueError(f"preprocess expects images of shape (N, H, W), got {images.shape}")
    if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0:
        raise UserError(f"pad: expected a whole number of pixels ≥ 0, got {pad!r}")
    pad = int(pad)
    stats = _normalize_arg(normalize)

    n, h, w = images.shape
    out = np.zeros((n, 1, h + 2 * pad, w + 2 * pad), dtype=np.float32)
    inner = out[:, 0, pad : pad + h, pad : pad + w]
    np.divide(images, np.float32(255.0), out=inner, dtype=np.float32)
    if stats is not None:
        mean, std = stats
        inner -= np.float32(mean)
        inner /= np.float32(std)
    return out


def _preprocess_range(images: np.ndarray, span: Tuple[float, float], pad: int) -> np.ndarray:
    low, high = span
    out = preprocess(images, normalize=None, pad=pad)
    n, _, h, w = out.shape
    p = (h - images.shape[-2]) // 2
    inner = out[:, 0, p:h - p, p:w - p]
    inner *= np.float32(high - low)
    inner += np.float32(low)
    if p:  # the border: blank paper, as the scaled images' own background
        out[:, 0, :p, :] = out[:, 0, h - p:, :] = np.float32(low)
        out[:, 0, :, :p] = out[:, 0, :, w - p:] = np.float32(low)
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


def load_mnist(
    data_dir: Union[Path, str],
    split: str,
    *,
    normalize: Union[None, bool, Sequence[float]] = None,
    pad: int = 0,
) -> Tuple[np.ndarray, np.ndarray]:
    """``load_split`` then ``preprocess``: float32 (N, 1, H', W') inputs and int64 labels."""
    images, labels = load_split(data_dir, split)
    return preprocess(images, normalize=normalize, pad=pad), labels


# ---------------------------------------------------------------- fitting a config


def make_preparer(config):
    """uint8 (B, H, W) → float32 (B, 1, H+2p, W+2p), as the config's data section says."""
    norm = config.data["normalize"]
    stats = norm if isinstance(norm, dict) else (MNIST_MEAN, MNIST_STD) if norm is True else (
        tuple(norm) if norm else None)
    pad = config.input.pad

    def prepare(images: np.ndarray) -> np.ndarray:
        return preprocess(images, normalize=stats, pad=pad)

    return prepare


def check_fits_config(config, images: np.ndarray, labels: np.ndarray, data_dir, split: str) -> None:
    """The images must have the config's input size and the labels fit its output units."""
    h, w = images.shape[1:]
    inp = config.input
    images_file, _ = split_paths(data_dir, split)
    if inp.channels != 1 or (h, w) != (inp.height, inp.width):
        raise UserError(
            f"{images_file}: images are 1×{h}×{w} but {config.source} expects input "
            f"{inp.channels}×{inp.height}×{inp.width}; set input: {{channels: 1, height: {h}, width: {w}}} "
            f"(input.pad pads them) or use files of that size")
    classes = config.num_classes
    if len(labels) and int(labels.max()) >= classes:
        raise UserError(f"{config.source}: the last layer has {classes} units but the {split} labels in {data_dir} "
                        f"go up to {int(labels.max())}; give it one unit per class")


def load_split_for(config, data_dir, split: str, offline: bool, console=None):
    """A split's images and labels, downloading missing files, checked against the config."""
    from .download import ensure_mnist

    if split not in ("test", "train"):
        raise UserError(f"--split {split}: choose test or train")
    # Only this split's two files: scoring the test set needs no training files.
    ensure_mnist(Path(data_dir), offline=offline, console=console, names=[p.name for p in split_paths(data_dir, split)])
    images, labels = load_split(data_dir, split)
    check_fits_config(config, images, labels, data_dir, split)
    return images, labels
