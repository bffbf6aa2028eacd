"""A config's dataset, loaded and checked against the network: what train, eval,
predict and show call. Images stay uint8 as on disk — (N, H, W) for one channel,
(N, C, H, W) for more — and ``make_preparer`` turns a batch into the model's input.

No numba here: commands that need no kernels must not load it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Tuple

import numpy as np

from ..errors import UserError
from .idx import load_split, preprocess, split_paths
from ..spec.datasets import DATASETS, DatasetInfo, builtin_info, dataset_dir

__all__ = ["make_preparer", "check_fits_config", "load_split_for", "load_training_data", "check_same_dataset"]

Say = Optional[Callable[[str], None]]


def normalisation(config, info: Optional[DatasetInfo] = None):
    """What data.normalize means for this config: None, (means, stds) per channel (or one
    of each), or {"range": [background, ink]}. ``normalize: true`` uses the dataset's
    statistics (``info``, from the checkpoint or computed on a folder's training split;
    else the built-in's). The one reading of the field, for training and for export."""
    norm = config.data["normalize"]
    if isinstance(norm, dict):
        return norm
    if norm is True:
        info = info if info is not None else builtin_info(config.data.get("dataset", "mnist"))
        return (tuple(info.mean), tuple(info.std))
    return (norm[0], norm[1]) if norm else None


def make_preparer(config, info: Optional[DatasetInfo] = None):
    """uint8 images → float32 (B, C, H+2p, W+2p), as the config's data section says."""
    stats = normalisation(config, info)
    pad = config.input.pad

    def prepare(images: np.ndarray) -> np.ndarray:
        return preprocess(images, normalize=stats, pad=pad)

    return prepare


def _shape(images: np.ndarray) -> tuple[int, int, int]:
    return (1,) + images.shape[1:] if images.ndim == 3 else images.shape[1:]


def check_fits_config(config, images: np.ndarray, labels: np.ndarray, where, split: str,
                      classes: Optional[tuple] = None) -> None:
    """The images must have the config's input shape, and the last layer a unit per label (per class of ``classes``)."""
    c, h, w = _shape(images)
    inp = config.input
    if (c, h, w) != (inp.channels, inp.height, inp.width):
        raise UserError(
            f"{where}: images are {c}×{h}×{w} but {config.source} expects input "
            f"{inp.channels}×{inp.height}×{inp.width}; set input: {{channels: {c}, height: {h}, width: {w}}} "
            f"(input.pad pads them) or use data of that size")
    units = config.num_classes
    if classes is not None and len(classes) > units:
        raise UserError(f"{config.source}: the last layer has {units} units but {config.data['dataset']} has "
                        f"{len(classes)} classes; give it one unit per class")
    if len(labels) and int(labels.max()) >= units:
        raise UserError(f"{config.source}: the last layer has {units} units but the {split} labels in {where} "
                        f"go up to {int(labels.max())}; give it one unit per class")


def check_same_dataset(trained_on: DatasetInfo, requested: Optional[str], source) -> None:
    """Refuse to score a checkpoint on a dataset it was not trained for, naming both."""
    if requested is not None and requested != trained_on.name:
        raise UserError(f"{source}: was trained on {trained_on.name}, not {requested}; drop --dataset (the "
                        f"checkpoint knows its dataset) or give a checkpoint trained on {requested}")


def _read_builtin(name: str, data_root, split: str, offline: bool, console) -> Tuple[np.ndarray, np.ndarray, str]:
    from .download import ensure_dataset

    spec = DATASETS[name]
    folder = dataset_dir(data_root, name)
    if spec.format == "cifar":
        from .cifar import read_cifar10

        archive = spec.files[0].name
        ensure_dataset(name, data_root, offline=offline, console=console, names=[archive])
        images, labels = read_cifar10(folder / archive, split)
        return images, labels, str(folder / archive)
    names = [p.name for p in split_paths(folder, split)]  # only this split's files: eval needs no training files
    ensure_dataset(name, data_root, offline=offline, console=console, names=names)
    images, labels = load_split(folder, split)
    return images, labels, str(split_paths(folder, split)[0])


def _read_folder(config, splits, say: Say):
    from .folder import load_folder_split, scan_folder

    d, inp = config.data, config.input
    scan = scan_folder(d["folder"], d["test_split"])
    loaded = {s: load_folder_split(scan, s, inp.channels, inp.height, inp.width, d["fit"]) for s in splits}
    skipped = [f for s in splits for f in loaded[s].skipped]
    if skipped and say is not None:  # every unreadable file, once, in one line
        say(f"skipped {len(skipped)} unreadable file(s) in {scan.root}: " + "; ".join(skipped))
    return scan, loaded


def load_split_for(config, data_dir, split: str, offline: bool, console=None, info: Optional[DatasetInfo] = None,
                   say: Say = None):
    """A split's images and labels, downloading missing files, checked against the config.

    ``info`` is the checkpoint's dataset: a folder's class sub-folders must still be the ones it was trained on.
    """
    if split not in ("test", "train"):
        raise UserError(f"--split {split}: choose test or train")
    name = config.data.get("dataset", "mnist")
    if DATASETS[name].format == "folder":
        scan, loaded = _read_folder(config, [split], say)
        if info is not None and tuple(scan.classes) != tuple(info.classes):
            raise UserError(f"data.folder {scan.root}: classes {', '.join(scan.classes)} are not the "
                            f"{', '.join(info.classes)} the checkpoint was trained on")
        images, labels, where = loaded[split].images, loaded[split].labels, str(scan.root)
    else:
        images, labels, where = _read_builtin(name, Path(data_dir), split, offline, console)
    folder_classes = info.classes if info is not None and name == "folder" else None
    check_fits_config(config, images, labels, where, split, folder_classes)
    return images, labels


def load_training_data(config, data_dir, offline: bool, console=None, say: Say = None):
    """(train images, train labels, test images, test labels, DatasetInfo) for `cnn train`."""
    from .folder import channel_stats

    name = config.data.get("dataset", "mnist")
    if DATASETS[name].format == "folder":
        scan, loaded = _read_folder(config, ["train", "test"], say)
        train, test = loaded["train"], loaded["test"]
        # Statistics of the training split only: the test images must not leak into the model.
        mean, std = channel_stats(train.images)
        info = DatasetInfo("folder", scan.classes, mean, std)
        parts = [(train.images, train.labels, str(scan.root / "train") if (scan.root / "train").is_dir() else str(scan.root)),
                 (test.images, test.labels, str(scan.root))]
    else:
        info = builtin_info(name)
        parts = [_read_builtin(name, Path(data_dir), s, offline, console) for s in ("train", "test")]
    for (images, labels, where), split in zip(parts, ("train", "test")):
        # A folder's classes are its sub-folders, each needs a unit; a built-in's files may hold fewer classes.
        check_fits_config(config, images, labels, where, split, info.classes if name == "folder" else None)
    (tx, ty, _), (vx, vy, _) = parts
    return tx, ty, vx, vy, info
