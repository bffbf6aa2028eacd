"""Checkpoints written before the package moved into floors (commit 73720a8) still
load, resume-ready, and give the logits they gave then.

tests/fixtures/checkpoint-73720a8-classic-mini.npz: one epoch of
tests/fixtures/classic-mini.yaml (scaled tanh, trainable subsampling, the C3
table, max pooling, an RBF output) on generated digits; the .npy beside it
holds that commit's logits for four fixed random images.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from typer.testing import CliRunner

from cnn_cli.cli import app
from cnn_cli.commands.trained import load_trained
from cnn_cli.nn.checkpoint import load_checkpoint

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CHECKPOINT = FIXTURES / "checkpoint-73720a8-classic-mini.npz"


def fixed_images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)


def test_an_old_checkpoint_gives_the_same_logits():
    trained = load_trained(CHECKPOINT)
    logits = trained.model.forward(trained.prepare(fixed_images()))
    expected = np.load(FIXTURES / "checkpoint-73720a8-classic-mini-logits.npy")
    np.testing.assert_allclose(logits, expected, rtol=1e-6, atol=1e-4)


def test_an_old_checkpoint_resumes(small_mnist, tmp_path):
    ckpt = load_checkpoint(CHECKPOINT)
    assert ckpt.config["name"] == "classic-mini" and ckpt.meta["epoch"] == 1
    assert {f"{name}.velocity" for name in ckpt.weights if not name.endswith("centres")} == set(ckpt.optimizer) - {"steps"}
    run = tmp_path / "run"
    run.mkdir()
    for name in ("last.npz", "best.npz"):
        shutil.copy(CHECKPOINT, run / name)
    result = CliRunner().invoke(app, ["train", "--resume", str(run / "last.npz"), "--epochs", "2", "--data-dir",
                                      str(small_mnist.folder), "--offline", "--quiet"])
    assert result.exit_code == 0, result.output
    resumed = load_checkpoint(tmp_path / "run" / "last.npz")
    assert resumed.meta["epoch"] == 2
    assert not np.array_equal(resumed.weights["conv1.weight"], ckpt.weights["conv1.weight"])
