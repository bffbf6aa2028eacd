"""A folder of your own images: one sub-folder per class, PNG/JPEG read with Pillow.

Two layouts (class names are the sub-folder names, sorted):

    PATH/train/<class>/*.png   and   PATH/test/<class>/*.jpg     (your own split)
    PATH/<class>/*.png                                             (data.test_split holds some out)

Images are converted to the config's channels (grayscale "L" for 1, "RGB" for 3)
and fitted to its height × width as ``data.fit`` says: ``pad`` (the default)
centres each image on a black canvas and never resamples, so an image larger than
the input is refused by name; ``resize`` scales every image to exactly the input
size (bilinear, aspect ratio not kept). Files Pillow cannot read are skipped and
reported by name, all of them, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from ..errors import UserError

__all__ = ["FolderImages", "scan_folder", "load_folder_split", "channel_stats", "require_pillow", "read_image"]

SPLIT_SEED = 0  # the held-out test files are the same for train and eval, whatever train.seed is
INSTALL = "pip install 'cnn-cli[images]' (or pip install pillow)"


def require_pillow():
    try:
        from PIL import Image
    except ImportError:
        raise UserError(f"data.dataset: folder reads PNG/JPEG files with Pillow, which is not installed; "
                        f"{INSTALL}") from None
    return Image


@dataclass
class FolderScan:
    root: Path
    classes: tuple[str, ...]
    files: dict[str, list[tuple[Path, int]]]  # split -> [(file, class index)]


@dataclass
class FolderImages:
    images: np.ndarray  # uint8 (N, H, W) for one channel, (N, C, H, W) otherwise
    labels: np.ndarray  # int64 (N,)
    classes: tuple[str, ...]
    skipped: list[str] = field(default_factory=list)  # "file (reason)" of every unreadable file


def _visible(entries) -> list[Path]:
    return sorted(p for p in entries if not p.name.startswith("."))


def _class_folders(folder: Path) -> dict[str, list[Path]]:
    """{class name: its files} for every sub-folder of ``folder`` holding at least one file."""
    found = {}
    for sub in _visible(p for p in folder.iterdir() if p.is_dir()):
        files = _visible(p for p in sub.rglob("*") if p.is_file())
        if files:
            found[sub.name] = files
    return found


def _check_classes(where: Path, classes: Sequence[str]) -> None:
    if not classes:
        raise UserError(f"data.folder {where}: holds no class sub-folders with images; put each class's images "
                        f"in a sub-folder named after it ({where}/cat/1.png, {where}/dog/2.jpg, …)")
    if len(classes) == 1:
        raise UserError(f"data.folder {where}: only one class ({classes[0]}); a classifier needs at least two "
                        f"class sub-folders")


def _hold_out(per_class: dict[str, list[Path]], fraction: float) -> tuple[list, list]:
    """Per class, a seeded ``fraction`` of its files for the test split (at least one when it has two)."""
    rng = np.random.default_rng(SPLIT_SEED)
    train, test = [], []
    for label, name in enumerate(sorted(per_class)):
        files = per_class[name]
        order = rng.permutation(len(files))
        n_test = int(round(len(files) * fraction))
        if fraction > 0 and n_test == 0 and len(files) > 1:
            n_test = 1
        test += [(files[i], label) for i in sorted(order[:n_test])]
        train += [(files[i], label) for i in sorted(order[n_test:])]
    return train, test


def scan_folder(root, test_split: float) -> FolderScan:
    """Find the classes and the files of each split; every layout problem is one UserError line."""
    root = Path(root).expanduser()
    if not root.exists():
        raise UserError(f"data.folder {root}: no such folder; point data.folder at a folder with one "
                        f"sub-folder per class")
    if not root.is_dir():
        raise UserError(f"data.folder {root}: is a file, not a folder of class sub-folders")
    train_dir, test_dir = root / "train", root / "test"
    if train_dir.is_dir() and test_dir.is_dir():
        train = _class_folders(train_dir)
        test = _class_folders(test_dir)
        _check_classes(train_dir, sorted(train))
        unknown = sorted(set(test) - set(train))
        if unknown:
            raise UserError(f"data.folder {test_dir}: class(es) {', '.join(unknown)} have no training images in "
                            f"{train_dir}; every test class needs a training sub-folder")
        if not test:
            raise UserError(f"data.folder {test_dir}: holds no class sub-folders with images")
        classes = tuple(sorted(train))
        index = {c: i for i, c in enumerate(classes)}
        files = {split: [(f, index[c]) for c in sorted(per) for f in per[c]]
                 for split, per in (("train", train), ("test", test))}
        return FolderScan(root, classes, files)
    per_class = _class_folders(root)
    _check_classes(root, sorted(per_class))
    train_files, test_files = _hold_out(per_class, test_split)
    if not test_files:
        raise UserError(f"data.folder {root}: data.test_split {test_split} holds out no test images; give "
                        f"a fraction such as 0.2, or train/ and test/ sub-folders")
    return FolderScan(root, tuple(sorted(per_class)), {"train": train_files, "test": test_files})


def _fit(image, height: int, width: int, fit: str, Image, source: Path) -> np.ndarray:
    if fit == "resize":
        if image.size != (width, height):
            image = image.resize((width, height), Image.BILINEAR)
        return np.asarray(image, dtype=np.uint8)
    w, h = image.size
    if w > width or h > height:
        raise UserError(f"data.folder: {source} is {w}×{h} pixels, larger than the config's {width}×{height} "
                        f"input; set data.fit: resize to scale the images, or raise input.height/width")
    pixels = np.asarray(image, dtype=np.uint8)
    canvas = np.zeros((height, width) + pixels.shape[2:], dtype=np.uint8)
    top, left = (height - h) // 2, (width - w) // 2
    canvas[top:top + h, left:left + w] = pixels
    return canvas


def load_folder_split(scan: FolderScan, split: str, channels: int, height: int, width: int,
                      fit: str) -> FolderImages:
    """The images of one split, converted and fitted; unreadable files are listed, not fatal."""
    Image = require_pillow()
    if channels not in (1, 3):
        raise UserError(f"input.channels {channels}: a folder of images gives 1 (grayscale) or 3 (RGB) channels")
    mode = "L" if channels == 1 else "RGB"
    images, labels, skipped = [], [], []
    for path, label in scan.files[split]:
        try:
            with Image.open(path) as opened:
                converted = opened.convert(mode)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            skipped.append(f"{path} ({str(error).splitlines()[0] if str(error) else type(error).__name__})")
            continue
        pixels = _fit(converted, height, width, fit, Image, path)
        images.append(pixels if channels == 1 else np.moveaxis(pixels, 2, 0))
        labels.append(label)
    if not images:
        raise UserError(f"data.folder {scan.root}: none of the {len(scan.files[split]):,} {split} files could be "
                        f"read as an image (e.g. {skipped[0] if skipped else 'none'})")
    return FolderImages(np.stack(images), np.asarray(labels, dtype=np.int64), scan.classes, skipped)


def read_image(path, channels: int, height: int, width: int, fit: str) -> np.ndarray:
    """One PNG/JPEG of your own as a training image of the folder loader: uint8 (H, W) or (C, H, W)."""
    Image = require_pillow()
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such image file; give the path of a PNG or JPEG")
    try:
        with Image.open(path) as opened:
            converted = opened.convert("L" if channels == 1 else "RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise UserError(f"{path}: Pillow cannot read it as an image ({str(error).splitlines()[0] if str(error) else type(error).__name__}); "
                        f"give a PNG or JPEG") from None
    pixels = _fit(converted, height, width, fit, Image, path)
    return pixels if channels == 1 else np.moveaxis(pixels, 2, 0)


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images scaled to [0, 1]."""
    x = images[:, None] if images.ndim == 3 else images
    means, stds = [], []
    for c in range(x.shape[1]):
        plane = x[:, c].astype(np.float64) / 255.0
        means.append(round(float(plane.mean()), 6))
        stds.append(round(max(float(plane.std()), 1e-3), 6))  # a blank channel must not divide by zero
    return tuple(means), tuple(stds)


def report_skipped(skipped: Sequence[str], say: Optional[Callable[[str], None]]) -> None:
    if skipped and say is not None:
        say(f"skipped {len(skipped)} unreadable file(s): " + "; ".join(skipped))
