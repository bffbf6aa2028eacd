"""Helpers that write small MNIST-style IDX files for tests (no internet needed).

    from idx_fixtures import make_mnist_folder, write_idx_images, write_idx_labels

    info = make_mnist_folder(tmp_path / "mnist", n_train=600, n_test=200, seed=0)
    images, labels = load_split(info.folder, "train")

``make_mnist_folder`` writes the four official-named gzipped files. With
``pattern=True`` each class is a distinct simple stroke pattern (ring, bar,
diagonal, cross, blob...) randomly shifted by up to ±2 pixels, with random
intensity and noise: a tiny CNN learns it to well above 90 % in an epoch or two.
With ``pattern=False`` images are pure noise and labels random (not learnable).

The returned ``MnistFolder.md5`` maps each file name to its MD5, ready for
``download_mnist(..., expected=info.md5)``; ``MnistFolder.official_files()``
returns a replacement for ``cnn_cli.data.download.OFFICIAL_FILES`` (for CLI tests
via ``monkeypatch.setattr``).
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Union

import numpy as np

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
NAMES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
    """Raw (uncompressed) IDX bytes: big-endian magic, dimensions, then uint8 payload."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def _write(path: Union[str, Path], raw: bytes, gz: bool) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0: the same arrays always give the same bytes (and the same MD5).
    path.write_bytes(gzip.compress(raw, mtime=0) if gz else raw)
    return path


def write_idx_images(path: Union[str, Path], array_uint8_NHW: np.ndarray, gz: bool = True) -> Path:
    """Write a (N, H, W) uint8 array as an IDX images file (magic 2051)."""
    array = np.asarray(array_uint8_NHW)
    if array.ndim != 3:
        raise ValueError(f"images must be (N, H, W), got shape {array.shape}")
    return _write(path, idx_bytes(2051, array.astype(np.uint8)), gz)


def write_idx_labels(path: Union[str, Path], labels, gz: bool = True) -> Path:
    """Write a 1-D sequence of labels as an IDX labels file (magic 2049)."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    return _write(path, idx_bytes(2049, labels.astype(np.uint8)), gz)


def md5_file(path: Union[str, Path]) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------- patterns


def class_templates(size: int = 28) -> np.ndarray:
    """Ten distinct float templates in [0, 1], shape (10, size, size); fixed, seed-independent."""
    t = np.zeros((10, size, size), dtype=np.float32)
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = np.hypot(yy - c, xx - c)
    s = size / 28.0  # scale the geometry with the image size
    lo, hi = int(round(6 * s)), int(round(size - 6 * s))  # drawing box
    th = max(1, int(round(1.5 * s)))  # half stroke thickness
    mid = size // 2

    t[0] = (np.abs(r - 8 * s) <= th).astype(np.float32)  # ring
    t[1, lo:hi, mid - th : mid + th] = 1  # vertical bar
    t[2, mid - th : mid + th, lo:hi] = 1  # horizontal bar
    box = (yy >= lo) & (yy < hi) & (xx >= lo) & (xx < hi)
    t[3] = (box & (np.abs(yy - xx) <= th)).astype(np.float32)  # diagonal \
    t[4] = (box & (np.abs(yy + xx - (size - 1)) <= th)).astype(np.float32)  # diagonal /
    t[5] = np.maximum(t[1], t[2])  # plus
    t[6] = ((np.hypot(yy - 9 * s, xx - 9 * s) <= 4.5 * s)).astype(np.float32)  # blob top-left
    t[7] = ((np.hypot(yy - (size - 10 * s), xx - (size - 10 * s)) <= 4.5 * s)).astype(np.float32)  # blob bottom-right
    t[8] = np.maximum(t[3], t[4])  # X
    frame = box & ~((yy >= lo + 2 * th) & (yy < hi - 2 * th) & (xx >= lo + 2 * th) & (xx < hi - 2 * th))
    t[9] = frame.astype(np.float32)  # square outline
    return t


def make_digits(n: int, seed: int, size: int = 28, pattern: bool = True, class_sorted: bool = False):
    """(images uint8 (n, size, size), labels uint8 (n,)), balanced over the ten classes."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    if class_sorted:
        labels = np.sort(labels)
    else:
        rng.shuffle(labels)
    if not pattern:
        return rng.integers(0, 256, size=(n, size, size), dtype=np.uint8), rng.permutation(labels)
    templates = class_templates(size)
    images = np.empty((n, size, size), dtype=np.uint8)
    for i, label in enumerate(labels):
        dy, dx = rng.integers(-2, 3, size=2)
        img = np.roll(templates[label], (int(dy), int(dx)), axis=(0, 1))
        img = img * rng.uniform(0.7, 1.0) * 255.0 + rng.uniform(0.0, 40.0, size=(size, size))
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
    return images, labels


@dataclass
class MnistFolder:
    folder: Path
    md5: Dict[str, str]  # file name -> MD5 of the written (gzipped) file
    size: Dict[str, int]  # file name -> bytes
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    paths: Dict[str, Path] = field(default_factory=dict)

    def official_files(self):
        """A stand-in for ``cnn_cli.data.download.OFFICIAL_FILES`` with this folder's MD5s and sizes."""
        from dataclasses import replace

        from cnn_cli.data.download import OFFICIAL_FILES

        return {n: replace(f, md5=self.md5[n], size=self.size[n]) for n, f in OFFICIAL_FILES.items()}


def make_mnist_folder(
    folder: Union[str, Path],
    n_train: int,
    n_test: int,
    seed: int,
    pattern: bool = True,
    size: int = 28,
    class_sorted: bool = False,
) -> MnistFolder:
    """Write the four official-named gzipped IDX files into ``folder``; return what was written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tr_x, tr_y = make_digits(n_train, seed, size, pattern, class_sorted)
    te_x, te_y = make_digits(n_test, seed + 1_000_003, size, pattern, class_sorted)
    paths = {
        TRAIN_IMAGES: write_idx_images(folder / TRAIN_IMAGES, tr_x),
        TRAIN_LABELS: write_idx_labels(folder / TRAIN_LABELS, tr_y),
        TEST_IMAGES: write_idx_images(folder / TEST_IMAGES, te_x),
        TEST_LABELS: write_idx_labels(folder / TEST_LABELS, te_y),
    }
    return MnistFolder(
        folder=folder,
        md5={n: md5_file(p) for n, p in paths.items()},
        size={n: p.stat().st_size for n, p in paths.items()},
        train_images=tr_x,
        train_labels=tr_y,
        test_images=te_x,
        test_labels=te_y,
        paths=paths,
    )
