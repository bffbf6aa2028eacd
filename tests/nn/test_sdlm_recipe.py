"""LeCun et al. 1998's recipe as general features: the MAP loss, the sdlm optimizer,
the piecewise schedule, lecun_uniform initialisation, range input scaling, the
test set tracked per epoch (and drawn), and the config errors that guard them."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from cnn_cli.cli import app
from cnn_cli.spec.config import load_config, parse_config
from cnn_cli.data import make_preparer, preprocess
from cnn_cli.errors import UserError
from cnn_cli.kernels.loss import loss_curvature, map_loss, softmax_cross_entropy
from cnn_cli.kernels.optim import sdlm_update
from cnn_cli.nn.model import Model
from cnn_cli.nn.optim import SDLM, learning_rate, make_optimizer

SMALL_RBF = """
name: small-rbf
input: {channels: 1, height: 28, width: 28}
blocks:
  - convs: [{filters: 4, kernel: 5, stride: 2, activation: scaled_tanh}]
    pools: [{kind: subsample, size: 2, activation: scaled_tanh}]
fc:
  - {units: 84, activation: scaled_tanh}
  - {kind: rbf, units: 10, centres: digits}
train: {epochs: 2, batch_size: 4, optimizer: sdlm, lr: 0.0005, loss: map, map_j: 10.0, sdlm_samples: 50,
        schedule: {piecewise: [[1, 5.0e-4], [1, 2.0e-4]]}, track_test: true, seed: 0}
data: {normalize: {range: [-0.1, 1.175]}, val_split: 0.2}
"""


def config_error(text: str) -> str:
    with pytest.raises(UserError) as info:
        parse_config(text, "bad.yaml")
    return str(info.value)


# ---------------------------------------------------------------- config errors


def test_sdlm_on_lp_pooling_names_both_fields():
    message = config_error(SMALL_RBF.replace("kind: subsample, size: 2, activation: scaled_tanh", "kind: lp, size: 2"))
    assert "train.optimizer" in message and "blocks[0].pools[0].kind" in message and "lp" in message


def test_map_loss_without_rbf_output_names_both_fields():
    message = config_error(SMALL_RBF.replace("{kind: rbf, units: 10, centres: digits}", "{units: 10}"))
    assert "train.loss" in message and "fc[1].kind" in message and "rbf" in message


def test_bad_training_config_exits_2_with_one_line(tmp_path, small_mnist):
    path = tmp_path / "bad.yaml"
    path.write_text(SMALL_RBF.replace("{kind: rbf, units: 10, centres: digits}", "{units: 10}"))
    result = CliRunner().invoke(app, ["train", str(path), "--data-dir", str(small_mnist.folder),
                                      "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "train.loss" in result.output and "fc[1].kind" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("schedule, where", [
    ("{piecewise: []}", "train.schedule.piecewise"),
    ("{piecewise: [[2, 0.001], [0, 0.001]]}", "train.schedule.piecewise[1][0]"),
    ("{piecewise: [[2, -1]]}", "train.schedule.piecewise[0][1]"),
    ("{piecewise: [3]}", "train.schedule.piecewise[0]"),
    ("{pieces: [[1, 0.1]]}", "train.schedule.pieces"),
])
def test_bad_piecewise_schedules(schedule, where):
    assert where in config_error(SMALL_RBF.replace("schedule: {piecewise: [[1, 5.0e-4], [1, 2.0e-4]]}",
                                                   f"schedule: {schedule}"))


@pytest.mark.parametrize("normalize, where", [
    ("{range: [1, 1]}", "data.normalize.range"), ("{range: [0]}", "data.normalize.range"),
    ("{span: [0, 1]}", "data.normalize.span"), ("{range: [0, abc]}", "data.normalize.range[1]"),
])
def test_bad_ranges(normalize, where):
    assert where in config_error(SMALL_RBF.replace("{range: [-0.1, 1.175]}", normalize))


def test_bad_init_and_new_train_fields():
    assert "train.init" in config_error(SMALL_RBF.replace("seed: 0}", "seed: 0, init: xavier}"))
    assert "fc[0].init" in config_error(SMALL_RBF.replace("{units: 84,", "{init: glorot, units: 84,"))
    assert "train.sdlm_mu" in config_error(SMALL_RBF.replace("seed: 0}", "seed: 0, sdlm_mu: 0}"))
    assert "train.map_j" in config_error(SMALL_RBF.replace("map_j: 10.0", "map_j: -1"))


def test_shipped_lenet5_1998_is_the_papers_recipe():
    config = load_config("lenet5-1998")
    t = config.train
    assert (t["batch_size"], t["epochs"], t["optimizer"], t["loss"], t["sdlm_mu"], t["sdlm_samples"]) == (
        1, 20, "sdlm", "map", 0.02, 500)
    assert config.input.shape == (1, 32, 32)
    assert config.data["normalize"] == {"range": [-0.1, 1.175]}
    rates = [learning_rate(t, epoch, 1) for epoch in range(20)]
    assert rates == [5e-4] * 2 + [2e-4] * 3 + [1e-4] * 3 + [5e-5] * 4 + [1e-5] * 8
    assert config.layers[-1].spec.family == "rbf" and t["track_test"] is True


# ---------------------------------------------------------------- schedule, loss


def test_piecewise_rate_by_epoch_and_after_the_list():
    train = {"lr": 1.0, "schedule": {"piecewise": [[2, 0.5], [1, 0.25]]}, "epochs": 9}
    assert [learning_rate(train, step, 10) for step in (0, 19, 20, 29, 30, 95)] == [0.5, 0.5, 0.25, 0.25, 0.25, 0.25]


def test_map_loss_value_and_gradient():
    rng = np.random.default_rng(0)
    z = -rng.uniform(0, 6, (4, 10))  # negated distances
    labels = np.array([1, 0, 9, 4])
    j = 2.0
    loss, d = map_loss(z, labels, j)
    expected = np.mean([-z[b, labels[b]] + np.log(np.exp(-j) + np.exp(z[b]).sum()) for b in range(4)])
    assert loss == pytest.approx(expected, rel=1e-12)
    numeric = np.zeros_like(z)
    for index in np.ndindex(z.shape):
        up, down = z.copy(), z.copy()
        up[index] += 1e-6
        down[index] -= 1e-6
        numeric[index] = (map_loss(up, labels, j)[0] - map_loss(down, labels, j)[0]) / 2e-6
    np.testing.assert_allclose(d, numeric, rtol=1e-6, atol=1e-9)


def test_map_loss_with_infinite_j_is_softmax_cross_entropy_and_stable():
    z = np.array([[-300.0, -2.0, -5000.0], [1e4, -1e4, 0.0]])
    labels = np.array([1, 0])
    np.testing.assert_allclose(map_loss(z, labels, math.inf)[1], softmax_cross_entropy(z, labels)[1])
    loss, d = map_loss(z, labels, 1000.0)
    assert math.isfinite(loss) and np.isfinite(d).all()
    # Far from every centre, e^(−j) dominates: the gradient is y_c's alone.
    far, _ = map_loss(np.array([[-500.0, -600.0]]), np.array([0]), 1.0), None
    assert far[0] == pytest.approx(500.0 + math.log(math.exp(-1.0) + math.exp(-500.0)), rel=1e-12)


def test_loss_curvature_is_the_diagonal_of_the_logits_hessian():
    z = np.array([[0.5, -1.0, 2.0]])
    for j in (math.inf, 0.5):
        q = np.exp(z) / ((0 if j == math.inf else math.exp(-j)) + np.exp(z).sum())
        np.testing.assert_allclose(loss_curvature(z, j), q * (1 - q), rtol=1e-12)


def test_model_gradient_under_map_loss_matches_finite_differences():
    config = parse_config(SMALL_RBF.replace("height: 28, width: 28", "height: 9, width: 9")
                          .replace("kernel: 5, stride: 2", "kernel: 3, stride: 1"), "t.yaml")
    model = Model(config, dtype=np.float64, seed=1)
    rng = np.random.default_rng(1)
    x, labels = rng.standard_normal((3, 1, 9, 9)), np.array([2, 5, 7])
    model.loss_and_gradients(x, labels)
    for name, param, grad in model.parameters():
        flat, g = param.reshape(-1), grad.reshape(-1).copy()
        for i in rng.choice(flat.size, min(4, flat.size), replace=False):
            keep = flat[i]
            flat[i] = keep + 1e-6
            up = model.loss(model.forward(x), labels)[0]
            flat[i] = keep - 1e-6
            down = model.loss(model.forward(x), labels)[0]
            flat[i] = keep
            assert g[i] == pytest.approx((up - down) / 2e-6, rel=1e-5, abs=1e-7), name


# ---------------------------------------------------------------- init, input scaling


def test_lecun_uniform_bounds_follow_each_units_fan_in():
    config = load_config("lenet5-1998", [(["train", "init"], "lecun_uniform")])
    model = Model(config, seed=3)
    layers = {layer.name: layer for layer in model.layers}
    c3 = layers["C3"]
    counts = np.diff(c3.conn[0])  # input maps per C3 filter: 3, 4 or 6
    assert set(counts) == {3, 4, 6}
    for k in range(16):
        w = c3.params["weight"][c3.conn[0][k]:c3.conn[0][k + 1]]
        bound = 2.4 / (counts[k] * 25)
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    f6 = layers["F6"].params["weight"]
    assert np.abs(f6).max() <= 2.4 / 120 and f6.std() == pytest.approx(2.4 / 120 / math.sqrt(3), rel=0.05)


def test_layer_init_overrides_the_default_and_he_normal_is_unchanged():
    text = SMALL_RBF.replace("{units: 84,", "{init: lecun_uniform, units: 84,").replace("train: {", "train: {init: he_normal, ")
    model = Model(parse_config(text, "t.yaml"), seed=0)
    conv, f6 = model.layers[0], model.layers[2]
    assert np.abs(f6.params["weight"]).max() <= 2.4 / f6.in_shape[0]
    # The conv keeps he_normal, drawn exactly as before (std √(1/F) for a tanh unit).
    expected = np.random.default_rng(0).standard_normal((4, 1, 5, 5)) * math.sqrt(1 / 25)
    np.testing.assert_array_equal(conv.params["weight"], expected.astype(np.float32))


def test_range_scaling_maps_background_and_ink_and_pads_with_background():
    images = np.array([[[0, 255], [51, 0]]], dtype=np.uint8)
    out = preprocess(images, normalize={"range": [-0.1, 1.175]}, pad=2)
    assert out.shape == (1, 1, 6, 6) and out.dtype == np.float32
    inner = out[0, 0, 2:4, 2:4]
    np.testing.assert_allclose(inner, [[-0.1, 1.175], [-0.1 + 0.2 * 1.275, -0.1]], rtol=1e-6)
    border = np.ones((6, 6), bool)
    border[2:4, 2:4] = False
    np.testing.assert_allclose(out[0, 0][border], -0.1, rtol=1e-6)
    prepare = make_preparer(load_config("lenet5-1998"))
    assert prepare(np.zeros((1, 28, 28), np.uint8)).max() == pytest.approx(-0.1)


# ---------------------------------------------------------------- the optimizer


def test_sdlm_update_kernel_is_the_formula():
    rng = np.random.default_rng(0)
    p, g, h = rng.standard_normal(50), rng.standard_normal(50), rng.uniform(0, 3, 50)
    expected = p - 0.1 * (g + 0.01 * p) / (0.02 + h)
    sdlm_update(p, g, h, 0.1, 0.02, 0.01)
    np.testing.assert_allclose(p, expected, rtol=1e-14)


def test_sdlm_steps_the_model_with_its_curvature_in_one_packed_buffer():
    config = parse_config(SMALL_RBF, "t.yaml")
    model = Model(config, seed=0)
    optimizer = make_optimizer(config.train, [(n, p) for n, p, _ in model.parameters()])
    assert isinstance(optimizer, SDLM) and optimizer._params is model.flat_params
    x = make_preparer(config)(np.random.default_rng(0).integers(0, 256, (6, 28, 28), dtype=np.uint8))
    labels = np.arange(6)
    curvature = model.curvature(x, labels)
    optimizer.set_curvature(curvature)
    model.loss_and_gradients(x, labels)
    before = model.flat_params.copy()
    h = np.concatenate([c.reshape(-1) for _, c in curvature])
    optimizer.step(list(model.parameters()), 5e-4)
    np.testing.assert_allclose(model.flat_params, before - np.float32(5e-4) * model.flat_grads / (0.02 + h),
                               rtol=1e-5, atol=1e-9)
    assert "output.centres" not in dict(curvature)
    assert {f"{n}.curvature" for n, _, _ in model.parameters()} <= set(optimizer.state_dict())


# ---------------------------------------------------------------- training end to end


@pytest.fixture(scope="module")
def sdlm_run(tmp_path_factory, small_mnist):
    folder = tmp_path_factory.mktemp("sdlm")
    config = folder / "small-rbf.yaml"
    config.write_text(SMALL_RBF)
    run_dir = folder / "run"
    result = CliRunner().invoke(app, ["train", str(config), "--data-dir", str(small_mnist.folder), "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    return run_dir


def test_sdlm_run_learns_and_tracks_the_test_set(sdlm_run):
    with open(sdlm_run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert [float(row["lr"]) for row in rows] == [5e-4, 2e-4]
    assert all(0 <= float(row["test_acc"]) <= 1 and float(row["test_loss"]) > 0 for row in rows)
    assert float(rows[-1]["val_acc"]) > 0.5  # ten classes: chance is 0.1


def test_metrics_without_track_test_have_no_test_columns(tmp_path):
    from cnn_cli.commands.rundir import write_metrics

    row = {"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "val_loss": None, "val_acc": None, "lr": 0.1,
           "seconds": 1.0, "images_per_s": 10.0}
    write_metrics(tmp_path / "m.csv", [row])
    assert "test_acc" not in (tmp_path / "m.csv").read_text()
    write_metrics(tmp_path / "t.csv", [dict(row, test_loss=0.3, test_acc=0.9)])
    assert (tmp_path / "t.csv").read_text().splitlines()[0].endswith("test_loss,test_acc")


def test_plot_draws_the_error_per_pass_panel(sdlm_run):
    pytest.importorskip("matplotlib")
    from cnn_cli.commands.plot import CURVES_WITH_TEST_SIZE, error_curves, plot_curves, read_metrics

    written = plot_curves(sdlm_run)
    assert written.size == CURVES_WITH_TEST_SIZE and written.path.stat().st_size > 1000
    m = read_metrics(sdlm_run)
    train_err, test_err = error_curves(m)
    np.testing.assert_allclose(test_err, 100 * (1 - m["test_acc"]))
    np.testing.assert_allclose(train_err, 100 * (1 - m["train_acc"]))


def test_sdlm_run_resumed_after_an_epoch_ends_bit_for_bit(sdlm_run, tmp_path, small_mnist):
    """The curvature is re-estimated from the epoch's own permutation, so the resumed
    run draws the same 50 patterns and ends with the same weights."""
    config = tmp_path / "small-rbf.yaml"
    config.write_text(SMALL_RBF)
    first = tmp_path / "first"
    runner = CliRunner()
    data = ["--data-dir", str(small_mnist.folder), "--quiet"]
    assert runner.invoke(app, ["train", str(config), *data, "--run-dir", str(first), "--epochs", "1"]).exit_code == 0
    result = runner.invoke(app, ["train", "--resume", str(first / "last.npz"), *data, "--epochs", "2"])
    assert result.exit_code == 0, result.output
    with np.load(first / "last.npz") as a, np.load(sdlm_run / "last.npz") as b:
        keys = [k for k in a.files if k.endswith((".weight", ".bias", ".beta", ".curvature"))]
        assert any(k.endswith(".curvature") for k in keys)
        for key in keys:
            assert np.array_equal(a[key], b[key]), key


def test_cnn_gradcheck_of_a_map_config_checks_the_map_loss(monkeypatch):
    """check_network differentiates the config's own loss: break the MAP gradient and it fails."""
    from cnn_cli.nn import model as model_module
    from cnn_cli.commands.gradcheck import check_network

    config = parse_config(SMALL_RBF.replace("height: 28, width: 28", "height: 9, width: 9")
                          .replace("kernel: 5, stride: 2", "kernel: 3, stride: 1"), "t.yaml")
    assert all(max(r.errors.values()) < 1e-6 for r in check_network(config))
    monkeypatch.setattr(model_module, "map_loss", lambda z, y, j: softmax_cross_entropy(z, y))
    results = check_network(config)  # analytic softmax gradient against the numeric one of the same: still equal
    assert all(max(r.errors.values()) < 1e-6 for r in results)
    monkeypatch.setattr(model_module, "map_loss", lambda z, y, j: (map_loss(z, y, j)[0], 2 * map_loss(z, y, j)[1]))
    assert any(max(r.errors.values()) > 1e-3 for r in check_network(config))


def test_tracking_the_test_set_changes_no_weight_and_no_choice(sdlm_run, tmp_path, small_mnist):
    config = tmp_path / "untracked.yaml"
    config.write_text(SMALL_RBF.replace("track_test: true", "track_test: false"))
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(config), "--data-dir", str(small_mnist.folder), "--quiet",
                                      "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "test_acc" not in (run_dir / "metrics.csv").read_text()
    for name in ("best.npz", "last.npz"):
        with np.load(run_dir / name) as a, np.load(sdlm_run / name) as b:
            for key in (k for k in a.files if k.endswith((".weight", ".bias", ".beta"))):
                assert np.array_equal(a[key], b[key]), (name, key)
    assert json.loads((run_dir / "summary.json").read_text())["best_epoch"] == \
        json.loads((sdlm_run / "summary.json").read_text())["best_epoch"]
