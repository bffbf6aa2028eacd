"""Datasets: reading the official files (IDX, CIFAR-10 binary, a folder of images),
downloading them, and fitting them to a config.

Modules: registry (the table of datasets), idx (MNIST-format files and
preprocessing), cifar, folder, download + fetch (pooch), loading (what the
commands call). This package re-exports what the rest of cnn-cli imports.
"""

from .idx import (IMAGES_MAGIC, LABELS_MAGIC, MNIST_MEAN, MNIST_STD, load_split, preprocess, read_idx,
                  split_paths, train_val_split)
from .loading import check_fits_config, check_same_dataset, load_split_for, load_training_data, make_preparer
from ..spec.datasets import DATASET_NAMES, DATASETS, DatasetInfo, dataset_dir, get_dataset, info_from_meta

__all__ = [
    "IMAGES_MAGIC", "LABELS_MAGIC", "MNIST_MEAN", "MNIST_STD", "load_split", "preprocess", "read_idx",
    "split_paths", "train_val_split", "check_fits_config", "check_same_dataset", "load_split_for",
    "load_training_data", "make_preparer", "DATASET_NAMES", "DATASETS", "DatasetInfo", "dataset_dir", "get_dataset",
    "info_from_meta",
]
