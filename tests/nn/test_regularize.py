"""Generalisation tools: train.init, dropout, label smoothing, early stopping, and the
noise stream they share with data.augment (deterministic, resumable bit for bit)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from cnn_cli.cli import app
from cnn_cli.spec.config import DenseSpec, LayerShape, load_config, parse_config, parse_set_option
from cnn_cli.errors import UserError
from cnn_cli.commands.gradcheck import numeric_gradient, relative_error
from cnn_cli.kernels.loss import softmax_cross_entropy
from cnn_cli.nn.layers import Dense
from cnn_cli.nn.model import Model, smoothed_cross_entropy
from cnn_cli.commands.progress import PlainReporter
from cnn_cli.commands.train import TrainingInterrupted, TrainOptions, prepare_run

runner = CliRunner()

NOISY = ["data.augment.translate=2", "data.augment.rotate=15", "data.augment.elastic.alpha=20",
         "fc.0.dropout=0.3", "train.label_smoothing=0.1"]

DROPOUT_CONFIG = """\
name: drop
input: {channels: 1, height: 28, width: 28}
blocks:
  - convs: [{filters: 4, kernel: 5, stride: 2}]
    pools: [{kind: max, size: 2}]
fc:
  - {units: 16, dropout: 0.3}
  - {units: 10}
train: {epochs: 2, batch_size: 32, optimizer: adam, lr: 0.01, seed: 0}
data: {val_split: 0.2}
"""


@pytest.fixture(scope="module")
def drop_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("configs") / "drop.yaml"
    path.write_text(DROPOUT_CONFIG)
    return path


# ---------------------------------------------------------------- init


def test_pytorch_init_is_uniform_within_one_over_sqrt_fan_in():
    config = load_config("lenet5", [(["train", "init"], "pytorch")])
    model = Model(config)
    fans = {"conv1": 25, "conv2": 150, "fc1": 400, "fc2": 120, "fc3": 84}
    for layer in model.layers:
        if layer.name in fans:
            bound = 1 / np.sqrt(fans[layer.name])
            for name in ("weight", "bias"):
                p = layer.params[name]
                assert np.abs(p).max() <= bound and np.abs(p).max() > 0.8 * bound, (layer.name, name)
            # Uniform on ±b has variance b²/3.
            assert abs(layer.params["weight"].var() / (bound ** 2 / 3) - 1) < 0.3


def test_he_normal_init_unchanged():
    """he_normal draws exactly what the layers drew before train.init existed."""
    config = load_config("lenet5", [(["train", "init"], "he_normal")])
    model = Model(config)
    rng = np.random.default_rng(config.train["seed"])
    expected = (rng.standard_normal((6, 1, 5, 5)) * np.sqrt(2 / 25)).astype(np.float32)
    assert np.array_equal(model.layers[0].params["weight"], expected)
    assert not model.layers[0].params["bias"].any()


# ---------------------------------------------------------------- dropout


def _dense(p, dtype=np.float64):
    layer = Dense(LayerShape(DenseSpec("fc", 6, "relu", p), (5,), (6,), "t"), dtype, np.random.default_rng(0))
    layer.params["bias"][...] = np.random.default_rng(1).uniform(-1, 1, 6)
    return layer


def test_dropout_gradient_check_with_a_fixed_mask():
    rng = np.random.default_rng(2)
    layer = _dense(0.5)
    x = rng.standard_normal((4, 5))
    layer.dropout_mask = (rng.random((4, 6)) >= 0.5) * 2.0
    assert 0 < (layer.dropout_mask == 0).sum() < layer.dropout_mask.size
    r = rng.standard_normal((4, 6))

    def loss():
        return float(np.sum(layer.forward(x) * r))

    loss()
    dx = layer.backward(r)
    for name in ("weight", "bias"):
        assert relative_error(layer.grads[name], numeric_gradient(loss, layer.params[name])) < 1e-6
    assert relative_error(dx, numeric_gradient(loss, x)) < 1e-6
    # The dropped units pass no gradient to their weights.
    dropped_everywhere = (layer.dropout_mask == 0).all(axis=0)
    assert not layer.grads["weight"][:, dropped_everywhere].any()


def test_dropout_is_inverted_and_only_in_training():
    config = parse_config(DROPOUT_CONFIG, "drop.yaml")
    model = Model(config, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((256, 1, 28, 28))
    plain = model.forward(x)  # inference: no mask, no scaling
    model.draw_dropout_masks(256, np.random.default_rng(3))
    mask = model.layers[2].dropout_mask
    assert set(np.unique(mask)) == {0.0, 1 / 0.7} and abs((mask == 0).mean() - 0.3) < 0.02
    assert np.array_equal(model.forward(x), plain), "inference ignores the mask"
    assert not np.array_equal(model.forward(x, training=True), plain)
    model.draw_dropout_masks(256, None)
    assert np.array_equal(model.forward(x, training=True), plain), "no noise stream: no dropout"


# ---------------------------------------------------------------- label smoothing


def _smoothed_numpy(logits, labels, eps):
    """PyTorch's definition, written out: targets (1−ε)·onehot + ε/K, mean over the batch."""
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    target = np.full(logits.shape, eps / logits.shape[1])
    target[np.arange(len(labels)), labels] += 1 - eps
    return float(-(target * logp).sum(axis=1).mean())


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
def test_label_smoothing_loss_and_gradient(eps):
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((5, 10)) * 3
    labels = rng.integers(0, 10, 5)
    loss, d = softmax_cross_entropy(logits, labels)
    smoothed, grad = smoothed_cross_entropy(logits, labels, eps, float(loss), d)
    assert abs(smoothed - _smoothed_numpy(logits, labels, eps)) < 1e-10
    numeric = numeric_gradient(lambda: _smoothed_numpy(logits, labels, eps), logits)
    assert relative_error(grad, numeric) < 1e-6


def test_label_smoothing_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((7, 10)).astype(np.float32) * 2
    labels = rng.integers(0, 10, 7)
    t = torch.tensor(logits, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(t, torch.tensor(labels), label_smoothing=0.1)
    expected.backward()
    loss, d = softmax_cross_entropy(logits, labels)
    smoothed, grad = smoothed_cross_entropy(logits, labels, 0.1, float(loss), d)
    assert abs(smoothed - expected.item()) < 1e-5
    np.testing.assert_allclose(grad, t.grad.numpy(), atol=1e-6)


# ---------------------------------------------------------------- training: determinism, resume, patience


def _trainer(config, data_dir, run_dir, resume=None):
    options = TrainOptions(data_dir=Path(data_dir), run_dir=run_dir, resume=resume, offline=True)
    return prepare_run(config, options, PlainReporter(Console(file=io.StringIO())))


def _weights(path):
    with np.load(path) as data:
        return {k: data[k] for k in data.files if k.endswith((".weight", ".bias"))}


def test_noisy_run_resumes_bit_for_bit_from_the_middle_of_an_epoch(tmp_path, small_mnist, drop_config):
    config = load_config(drop_config, [parse_set_option(s) for s in NOISY])
    whole = _trainer(config, small_mnist.folder, tmp_path / "whole")
    whole.run()

    stopped = _trainer(config, small_mnist.folder, tmp_path / "cut")
    original = stopped.reporter.batch

    def interrupt_at_third(done, *rest):
        original(done, *rest)
        if stopped.position.epoch == 1 and done == 3:
            stopped.interrupted = True

    stopped.reporter.batch = interrupt_at_third
    with pytest.raises(TrainingInterrupted):
        stopped.run()
    resumed = _trainer(config, small_mnist.folder, tmp_path / "cut", resume=tmp_path / "cut" / "last.npz")
    assert resumed.position.epoch == 1 and resumed.position.batch == 3
    resumed.run()
    a, b = _weights(tmp_path / "whole" / "last.npz"), _weights(tmp_path / "cut" / "last.npz")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)

    # The noise does something: without it the weights differ.
    quiet = _trainer(load_config(drop_config), small_mnist.folder, tmp_path / "quiet")
    quiet.run()
    c = _weights(tmp_path / "quiet" / "last.npz")
    assert not all(np.array_equal(a[k], c[k]) for k in a)


def test_patience_stops_and_best_still_scores_the_test_set(tmp_path, small_mnist, drop_config):
    # lr 0 never improves on epoch 1, so patience 2 stops after epoch 3 of 10.
    config = load_config(drop_config, [(["train", "lr"], 1e-12), (["train", "epochs"], 10)])
    result = runner.invoke(app, ["train", str(drop_config), "--data-dir", str(small_mnist.folder), "--run-dir",
                                 str(tmp_path / "run"), "--offline", "--quiet", "--patience", "2",
                                 "--lr", "1e-12", "--epochs", "10"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stopped"] == "patience" and summary["epochs"] == 3 and summary["best_epoch"] == 1
    assert len((tmp_path / "run" / "metrics.csv").read_text().splitlines()) == 4
    assert "stopping early" in result.output
    assert config.train["epochs"] == 10


def test_a_run_without_patience_says_it_ran_its_epochs(tmp_path, small_mnist, drop_config):
    result = runner.invoke(app, ["train", str(drop_config), "--data-dir", str(small_mnist.folder), "--run-dir",
                                 str(tmp_path / "run"), "--offline", "--quiet", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["stopped"] == "epochs"


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("setting, expected", [
    ("data.augment.rotate=400", "data.augment.rotate: must be in [0, 180] degrees, got 400"),
    ("data.augment.translate=-1", "data.augment.translate: must be in [0, 14] pixels"),
    ("data.augment.elastic.sigma=0", "data.augment.elastic.sigma: must be in [0.5, 20] pixels, got 0"),
    ("data.augment.elastic.alpha=-1", "data.augment.elastic.alpha: must be in [0, 100] pixels, got -1"),
    ("data.augment.probability=1.5", "data.augment.probability: must be in [0, 1]"),
    ("data.augment.scale=abc", "data.augment.scale: expected a number"),
    ("data.augment.shearr=1", "'data.augment.shearr' does not exist; did you mean 'shear'?"),
    ("fc.0.dropout=1.0", "fc[0].dropout: must be in [0, 1), got 1"),
    ("fc.0.dropout=-0.1", "fc[0].dropout: must be in [0, 1), got -0.1"),
    ("train.patience=0", "train.patience: must be positive, got 0"),
    ("train.label_smoothing=1", "train.label_smoothing: must be in [0, 1), got 1"),
    ("train.init=glorot", "train.init: unknown value 'glorot'"),
])
def test_bad_settings_are_one_line_exit_2_and_no_run_folder(tmp_path, small_mnist, tiny_config, setting, expected):
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", str(tiny_config), "--data-dir", str(small_mnist.folder), "--run-dir",
                                 str(run_dir), "--offline", "--quiet", "--set", setting])
    assert result.exit_code == 2
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not run_dir.exists()


def test_patience_option_zero_and_patience_without_validation(tmp_path, small_mnist, tiny_config):
    result = runner.invoke(app, ["train", str(tiny_config), "--data-dir", str(small_mnist.folder), "--run-dir",
                                 str(tmp_path / "run"), "--offline", "--quiet", "--patience", "0"])
    assert result.exit_code == 2 and "train.patience: must be positive" in result.stderr
    with pytest.raises(UserError, match="train.patience: early stopping watches validation accuracy"):
        load_config(tiny_config, [parse_set_option("train.patience=2"), parse_set_option("data.val_split=0")])


def test_dropout_on_an_rbf_layer_is_refused():
    text = Path(load_config("lenet5-classic").source).read_text().replace("kind: rbf", "kind: rbf, dropout: 0.2")
    with pytest.raises(UserError, match="dropout is for dense layers"):
        parse_config(text, "classic.yaml")


def test_augment_section_is_complete_in_the_resolved_config():
    config = load_config("lenet5", [parse_set_option("data.augment.elastic.alpha=34")])
    augment = config.resolved["data"]["augment"]
    assert augment["elastic"] == {"alpha": 34.0, "sigma": 4.0} and augment["rotate"] >= 0


def test_checkpoints_from_before_the_noise_stream_still_resume(tmp_path, small_mnist, tiny_config):
    """A checkpoint whose meta and config lack the new fields (noise_state, stopped,
    train.init, data.augment...) resumes, and ends as a run that never stopped."""
    config = load_config(tiny_config, [(["train", "epochs"], 1)])
    first = _trainer(config, small_mnist.folder, tmp_path / "old")
    first.run()
    path = tmp_path / "old" / "last.npz"
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta.json"]))
    saved_config = json.loads(str(arrays["config.json"]))
    for key in ("noise_state", "stopped"):
        del meta[key]
    for key in ("init", "label_smoothing", "patience"):
        del saved_config["train"][key]
    del saved_config["data"]["augment"]
    arrays["meta.json"], arrays["config.json"] = np.array(json.dumps(meta)), np.array(json.dumps(saved_config))
    np.savez(path, **arrays)
    result = runner.invoke(app, ["train", "--resume", str(path), "--data-dir", str(small_mnist.folder), "--epochs", "2",
                                 "--offline", "--quiet"])
    assert result.exit_code == 0, result.output
    whole = _trainer(load_config(tiny_config), small_mnist.folder, tmp_path / "whole")
    whole.run()
    a, b = _weights(path), _weights(tmp_path / "whole" / "last.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a)
