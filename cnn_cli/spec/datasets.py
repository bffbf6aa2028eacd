"""The datasets cnn-cli knows: official files, MD5s, mirrors, class names, statistics.

Plain Python, no NumPy: `cnn download --dataset ...` and config validation read
this table without loading anything heavy.

Sources: the file names, MD5s and mirrors are torchvision's (datasets/mnist.py
for MNIST, Fashion-MNIST and KMNIST); CIFAR-10 is the authors' *binary* version
(cifar-10-binary.tar.gz, MD5 from https://www.cs.toronto.edu/~kriz/cifar.html),
which NumPy reads directly, so nothing is ever unpickled. The statistics are the
per-channel mean and standard deviation of the training split's pixels scaled to
[0, 1] (the figures torchvision's examples and the datasets' papers quote).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from ..errors import UserError

__all__ = [
    "file_name",
    "DataFile",
    "DatasetSpec",
    "DatasetInfo",
    "DATASETS",
    "DATASET_NAMES",
    "DEFAULT_DATASET",
    "get_dataset",
    "dataset_dir",
    "info_from_meta",
]


@dataclass(frozen=True)
class DataFile:
    """One official file: its name, MD5, size in bytes (None: not known here), split and kind."""

    name: str
    md5: str
    size: Optional[int]
    split: str  # "train" | "test" | "both" (one archive holding both splits)
    kind: str  # "images" | "labels" | "archive"


@dataclass(frozen=True)
class DatasetSpec:
    """A built-in dataset (or `folder`, which has no files of its own)."""

    name: str
    title: str
    format: str  # "idx" | "cifar" | "folder"
    files: tuple[DataFile, ...]
    mirrors: tuple[str, ...]
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    shape: tuple[int, int, int]  # channels, height, width of the official images

    @property
    def channels(self) -> int:
        return self.shape[0]


@dataclass(frozen=True)
class DatasetInfo:
    """What a trained model must know about its data: saved in every checkpoint."""

    name: str
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_json(self) -> dict:
        return {"name": self.name, "classes": list(self.classes), "mean": list(self.mean), "std": list(self.std)}


def _idx_files(md5s: Sequence[str], sizes: Sequence[Optional[int]]) -> tuple[DataFile, ...]:
    names = (("train-images-idx3-ubyte.gz", "train", "images"), ("train-labels-idx1-ubyte.gz", "train", "labels"),
             ("t10k-images-idx3-ubyte.gz", "test", "images"), ("t10k-labels-idx1-ubyte.gz", "test", "labels"))
    return tuple(DataFile(n, m, s, split, kind) for (n, split, kind), m, s in zip(names, md5s, sizes))


CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "mnist", "MNIST", "idx",
            _idx_files(("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                        "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"),
                       (9_912_422, 28_881, 1_648_877, 4_542)),
            ("https://ossci-datasets.s3.amazonaws.com/mnist/",  # PyTorch project's S3 mirror
             "https://storage.googleapis.com/cvdf-datasets/mnist/",  # Google's CVDF mirror
             "http://yann.lecun.com/exdb/mnist/"),  # the original
            tuple(str(d) for d in range(10)), (0.1307,), (0.3081,), (1, 28, 28)),
        DatasetSpec(
            "fashion-mnist", "Fashion-MNIST", "idx",
            _idx_files(("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                        "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"),
                       (26_421_880, 29_515, 4_422_102, 5_148)),
            ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
             "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
            ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
             "Ankle boot"),
            (0.2860,), (0.3530,), (1, 28, 28)),
        DatasetSpec(
            "kmnist", "Kuzushiji-MNIST", "idx",
            _idx_files(("bdb82020997e1d708af4cf47b453dcf7", "e144d726b3acfaa3e44228e80efcd344",
                        "5c965bf0a639b31b8f53240b1b52f4d7", "7320c461ea6c1c855c0b718fb2a4b134"),
                       (None, None, None, None)),
            ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
            ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
            (0.1918,), (0.3483,), (1, 28, 28)),
        DatasetSpec(
            "cifar10", "CIFAR-10", "cifar",
            (DataFile(CIFAR10_ARCHIVE, "c32a1d4ab5d03f1284b67883e8d87530", 170_052_171, "both", "archive"),),
            ("https://www.cs.toronto.edu/~kriz/",),
            ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
            (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), (3, 32, 32)),
        DatasetSpec("folder", "a folder of images", "folder", (), (), (), (), (), (0, 0, 0)),
    )
}
DATASET_NAMES = tuple(DATASETS)
DEFAULT_DATASET = "mnist"


def get_dataset(name: str, where: str = "--dataset") -> DatasetSpec:
    """The spec of ``name``; an unknown name is one line with the nearest known one."""
    key = str(name).strip().lower()
    if key in DATASETS:
        return DATASETS[key]
    near = difflib.get_close_matches(key, DATASET_NAMES, n=1, cutoff=0.4)
    hint = f"did you mean {near[0]}? " if near else ""
    raise UserError(f"{where}: unknown dataset {name!r}; {hint}choose one of {', '.join(DATASET_NAMES)}")


def dataset_dir(data_root: Union[Path, str], name: str) -> Path:
    """Where a built-in dataset's files live: MNIST directly in the data folder (as
    before datasets existed, so existing `data/` files keep working), others in
    ``<data folder>/<name>/``."""
    root = Path(data_root)
    return root if name == DEFAULT_DATASET else root / name


def info_from_meta(meta: Optional[dict]) -> DatasetInfo:
    """A checkpoint's dataset; checkpoints written before datasets existed are MNIST's."""
    found = (meta or {}).get("dataset")
    if not isinstance(found, dict):
        spec = DATASETS[DEFAULT_DATASET]
        return DatasetInfo(spec.name, spec.classes, spec.mean, spec.std)
    return DatasetInfo(str(found["name"]), tuple(str(c) for c in found["classes"]),
                       tuple(float(v) for v in found["mean"]), tuple(float(v) for v in found["std"]))


def builtin_info(name: str) -> DatasetInfo:
    spec = DATASETS[name]
    return DatasetInfo(spec.name, spec.classes, spec.mean, spec.std)


def file_name(split: str, kind: str) -> str:
    """MNIST's official IDX file name for ``split`` ("train"/"test") and ``kind`` ("images"/"labels");
    the other IDX datasets use the same names in their own folders."""
    for f in DATASETS["mnist"].files:
        if f.split == split and f.kind == kind:
            return f.name
    raise ValueError(f"unknown MNIST split/kind {split!r}/{kind!r}")
