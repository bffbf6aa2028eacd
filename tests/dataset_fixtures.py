"""Small files in the exact official formats of the other datasets, made by the tests.

- ``make_cifar_archive``: a cifar-10-binary.tar.gz holding
  cifar-10-batches-bin/data_batch_1..5.bin, test_batch.bin and batches.meta.txt,
  a few 3,073-byte records each (label byte, then 1,024 R, 1,024 G, 1,024 B bytes).
- ``make_image_folder``: one sub-folder per class of PNG and JPEG files, either
  directly (split by data.test_split) or under train/ and test/.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CIFAR_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass
class CifarArchive:
    path: Path
    md5: str
    train_images: np.ndarray  # (N, 3, 32, 32) uint8, in file order
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def cifar_records(images: np.ndarray, labels: np.ndarray) -> bytes:
    """The binary version's records: label byte, then the red, green and blue planes row by row."""
    table = np.concatenate([labels.astype(np.uint8)[:, None], images.reshape(len(labels), -1)], axis=1)
    return table.astype(np.uint8).tobytes()


def _learnable(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Class c: a bright square in one of ten places, colour by class, on noise."""
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 60, (n, 3, 32, 32)).astype(np.uint8)
    for i, c in enumerate(labels):
        top, left = 4 + (c // 5) * 14, 2 + (c % 5) * 6
        images[i, c % 3, top:top + 10, left:left + 5] = 250
    return images, labels.astype(np.int64)


def make_cifar_archive(folder, per_batch: int = 6, test: int = 8, seed: int = 0,
                       drop: str | None = None, cut: int = 0) -> CifarArchive:
    """Write ``folder``/cifar-10-binary.tar.gz; ``drop`` leaves one member out, ``cut`` trims bytes off a batch."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    batches = [_learnable(per_batch, rng) for _ in range(5)]
    test_x, test_y = _learnable(test, rng)
    members = {f"cifar-10-batches-bin/data_batch_{i + 1}.bin": cifar_records(*b) for i, b in enumerate(batches)}
    members["cifar-10-batches-bin/test_batch.bin"] = cifar_records(test_x, test_y)
    members["cifar-10-batches-bin/batches.meta.txt"] = ("\n".join(CIFAR_NAMES) + "\n").encode()
    if cut:
        key = "cifar-10-batches-bin/data_batch_3.bin"
        members[key] = members[key][:-cut]
    path = folder / "cifar-10-binary.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            if name.endswith(drop or "\0"):
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return CifarArchive(path, hashlib.md5(path.read_bytes()).hexdigest(),
                        np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]),
                        test_x, test_y)


def make_image_folder(root, classes=("cat", "dog", "owl"), per_class: int = 12, size=(16, 16),
                      split_folders: bool = False, mode: str = "RGB", seed: int = 0) -> Path:
    """PNG (even files) and JPEG (odd files) images: class k is bright in quarter k of the image."""
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    for split in (("train", "test") if split_folders else ("",)):
        for k, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            n = per_class if split != "test" else max(2, per_class // 3)
            for i in range(n):
                h, w = size
                pixels = rng.integers(0, 40, (h, w, 3)).astype(np.uint8)
                top, left = (k // 2) * (h // 2), (k % 2) * (w // 2)
                pixels[top:top + h // 2, left:left + w // 2] = 230
                image = Image.fromarray(pixels, "RGB").convert(mode)
                image.save(folder / (f"{i}.png" if i % 2 == 0 else f"{i}.jpg"))
    return root
