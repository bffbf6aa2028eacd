"""Fixtures of the hostile battery: tiny data, one trained run to tamper with."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hostile_kit import TINY, cli
from idx_fixtures import make_mnist_folder


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return make_mnist_folder(tmp_path_factory.mktemp("hostile-mnist"), n_train=200, n_test=60, seed=1).folder


@pytest.fixture(scope="session")
def tiny_yaml(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hostile-configs") / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="session")
def trained(tmp_path_factory, data_dir, tiny_yaml) -> Path:
    """A finished one-epoch run of the tiny config: last.npz, best.npz, metrics.csv, summary.json."""
    run_dir = tmp_path_factory.mktemp("hostile-runs") / "base"
    result = cli("train", tiny_yaml, "--data-dir", data_dir, "--run-dir", run_dir, "--offline", "--quiet")
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.fixture
def run_copy(tmp_path, trained) -> Path:
    """A private copy of the trained run folder, free to doctor."""
    target = tmp_path / "run"
    shutil.copytree(trained, target)
    return target
