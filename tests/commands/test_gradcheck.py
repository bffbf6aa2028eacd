"""`cnn gradcheck`: the built-in suite and each shipped network pass; failures are caught."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from cnn_cli.commands import gradcheck
from cnn_cli.cli import app

runner = CliRunner()


def test_builtin_suite_passes_and_covers_every_case():
    result = runner.invoke(app, ["gradcheck", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] is True
    names = [case["name"] for case in report["cases"]]
    for stride in (1, 2, 3):
        for padding in ("valid", "same", "int1", "asym"):
            assert f"conv stride {stride} padding {padding}" in names
    for kind in ("max", "mean", "lp", "subsample"):
        assert any(n.startswith(f"{kind} pool") and "overlapping" in n for n in names)
    for act in ("identity", "relu", "sigmoid", "tanh", "scaled_tanh"):
        assert f"conv activation {act}" in names and f"dense activation {act}" in names
    assert any("connection table" in n for n in names)
    assert "conv 3x3 same 8 channels (Winograd F(4x4))" in names and "conv 3x3 same 8 channels (Winograd F(2x2))" in names
    conv_cases = [c for c in report["cases"] if c["layer"] == "conv"]
    assert all(set(c["checked"]) == {"input", "weight", "bias"} for c in conv_cases)
    assert all(c["max_rel_error"] < 1e-6 for c in report["cases"])


@pytest.mark.parametrize("config", ["lenet5", "lenet5-classic", "caffe-lenet"])
def test_shipped_networks_pass_end_to_end(config):
    result = runner.invoke(app, ["gradcheck", config, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] is True
    assert any(case["layer"] == "input" for case in report["cases"])


def test_a_wrong_gradient_fails(monkeypatch):
    """The check must be able to fail: corrupt the conv weight gradient by 1e-3."""
    from cnn_cli.nn import layers

    original = layers.Conv2D.backward

    def corrupted(self, dy):
        dx = original(self, dy)
        self.grads["weight"] = self.grads["weight"] * (1 + 1e-3)
        return dx

    monkeypatch.setattr(layers.Conv2D, "backward", corrupted)
    result = runner.invoke(app, ["gradcheck", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["passed"] is False
    failed = {c["name"] for c in report["cases"] if not c["passed"]}
    assert failed and all(name.startswith("conv") for name in failed)


def test_relative_error_definition():
    a = np.array([1.0, -2.0, 0.0])
    assert gradcheck.relative_error(a, a) == 0.0
    assert gradcheck.relative_error(a, a + np.array([0, 2e-6, 0])) == pytest.approx(1e-6)
    assert gradcheck.relative_error(np.zeros(3), np.zeros(3)) == 0.0


def test_bad_config_is_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("input: {channels: 1, height: 28, width: 28}\nfc: [{units: 0}]\n")
    result = runner.invoke(app, ["gradcheck", str(path)])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "fc[0].units" in result.stderr


@pytest.mark.parametrize("tile", [4, 2])
def test_the_winograd_cases_run_winograd(tile):
    """The suite's Winograd cases are what their names say, so the finite
    differences check those kernels, not the im2col ones."""
    from cnn_cli.nn.layers import build_layer

    shapes = dict(gradcheck.builtin_cases())
    layer = build_layer(shapes[f"conv 3x3 same 8 channels (Winograd F({tile}x{tile}))"], np.float64,
                        np.random.default_rng(0))
    assert layer.winograd == tile
