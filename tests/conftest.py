"""Shared fixtures: small generated MNIST folders, a tiny config, the real sample."""

from __future__ import annotations

from pathlib import Path

import pytest

from idx_fixtures import make_mnist_folder

REPO = Path(__file__).resolve().parents[1]
SHARED_SAMPLE = REPO.parent / "shared" / "mnist-sample"

TINY_CONFIG = """\
name: tiny
input: {channels: 1, height: 28, width: 28}
blocks:
  - convs: [{filters: 4, kernel: 5, stride: 2}]
    pools: [{kind: max, size: 2}]
fc:
  - {units: 10}
train: {epochs: 2, batch_size: 32, optimizer: adam, lr: 0.01, seed: 0}
data: {val_split: 0.2}
"""


@pytest.fixture(scope="session")
def small_mnist(tmp_path_factory):
    """600 train / 200 test learnable 28×28 digits in the official file names."""
    return make_mnist_folder(tmp_path_factory.mktemp("mnist"), n_train=600, n_test=200, seed=0)


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("configs") / "tiny.yaml"
    path.write_text(TINY_CONFIG)
    return path


@pytest.fixture
def shared_sample() -> Path:
    if not (SHARED_SAMPLE / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"the shared MNIST sample is not at {SHARED_SAMPLE} (it sits beside the repository in CI)")
    return SHARED_SAMPLE
