"""`cnn bench` and the PyTorch reference network. No timing assertions: the machine is shared."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from cnn_cli.commands.bench import BenchOptions, parse_batch_sizes
from cnn_cli.commands.bench_render import render_bench
from cnn_cli.cli import app
from cnn_cli.spec.config import load_config
from cnn_cli.errors import UserError

try:
    import torch
except ImportError:  # pragma: no cover - depends on the environment
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch not installed: pip install torch==2.13.0 for reference checks")
SHIPPED = ["lenet5", "lenet5-classic", "caffe-lenet", "cifar10"]


def run(*args):
    return CliRunner().invoke(app, ["bench", *args])


def one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------- the PyTorch network


def _pair(name, seed=3):
    from cnn_cli.nn.model import Model
    from cnn_cli.reference.torch_model import build_torch_model, copy_weights

    config = load_config(name)
    ours = Model(config, seed=seed)
    theirs = build_torch_model(config, threads=1)
    copy_weights(ours, theirs)
    return config, ours, theirs


def _close(a, b, tol=1e-4):
    scale = max(float(np.abs(b).max()), 1.0)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale)


@needs_torch
@pytest.mark.parametrize("name", SHIPPED)
def test_torch_reference_gives_our_logits(name):
    config, ours, theirs = _pair(name)
    assert [n for n, _ in theirs.layers.named_children()] == [layer.name for layer in ours.layers]
    x = np.random.default_rng(1).standard_normal((7,) + config.input.shape).astype(np.float32)
    _close(ours.forward(x), theirs(torch.from_numpy(x)).detach().numpy())


def _as_ours(layer, key, value, theirs_tensor):
    """A PyTorch parameter (or its gradient) in our layout."""
    t = theirs_tensor.detach().numpy()
    if layer.family == "dense" and key == "weight":
        t = t.T
    elif layer.family == "conv" and key == "weight" and value.ndim == 3:  # connection table: (connections, Fh, Fw)
        t = t[layer.conn[2], layer.conn[1]]
    return t.reshape(value.shape)


@needs_torch
@pytest.mark.parametrize("name", SHIPPED)
def test_torch_reference_gradients_and_optimizer(name):
    """Same gradients; then, fed the same gradients, the same optimizer (Adam; SGD with
    momentum and weight decay for caffe-lenet).

    The optimizers are fed random gradients of 0.05 to 0.2 rather than the network's own:
    PyTorch adds ε to √v̂ (bias-corrected), we add it to √v (Kingma & Ba's ε̂ form), so where
    a gradient is ≲ 1e-7 — many of lenet5-classic's F6 weights — the two take visibly
    different steps. Both are Adam; the test checks the update rule where ε does not matter.
    """
    from cnn_cli.nn.optim import make_optimizer
    from cnn_cli.reference.torch_model import make_torch_optimizer

    config, ours, theirs = _pair(name)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5,) + config.input.shape).astype(np.float32)
    y = rng.integers(0, 10, 5).astype(np.uint8)
    ours.loss_and_gradients(x, y)
    torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(y.astype(np.int64))).backward()
    modules = dict(theirs.layers.named_children())
    for layer in ours.layers:
        for key, grad in layer.grads.items():
            _close(grad, _as_ours(layer, key, grad, getattr(modules[layer.name], key).grad))

    optimizer = make_optimizer(config.train, [(n, p) for n, p, _ in ours.parameters()])
    torch_optimizer = make_torch_optimizer(config.train, theirs)
    for _ in range(3):
        for layer in ours.layers:
            for key, value in layer.params.items():
                # |g| in [0.05, 0.2]: far from where ε matters (see above).
                grad = (rng.choice([-1, 1], value.shape) * rng.uniform(0.05, 0.2, value.shape)).astype(np.float32)
                layer.grads[key] = grad
                parameter = getattr(modules[layer.name], key)
                mapped = torch.zeros_like(parameter)
                if layer.family == "dense" and key == "weight":
                    mapped.copy_(torch.from_numpy(grad.T.copy()))
                elif layer.family == "conv" and key == "weight" and value.ndim == 3:  # connection table
                    mapped[layer.conn[2], layer.conn[1]] = torch.from_numpy(grad)
                else:
                    mapped.copy_(torch.from_numpy(grad.reshape(parameter.shape)))
                parameter.grad = mapped
        optimizer.step(list(ours.parameters()), config.train["lr"])
        torch_optimizer.step()
    for layer in ours.layers:
        for key, value in layer.params.items():
            _close(value, _as_ours(layer, key, value, getattr(modules[layer.name], key)), tol=1e-6)


@needs_torch
def test_connection_table_weights_stay_absent():
    config, ours, theirs = _pair("lenet5-classic")
    c3 = dict(theirs.layers.named_children())["C3"]
    assert c3.mask.sum().item() == 60  # the paper's 60 connections
    assert (c3.weight.detach()[c3.mask.expand_as(c3.weight) == 0] == 0).all()


# ---------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def bench_json():
    args = ["--json", "--batch-sizes", "2", "--repeat", "1", "--min-time", "0.01",
            "--inference-batch", "8", "--layer-batch", "4", "--threads", "1"]
    if torch is not None:
        args += ["--against", "torch"]
    result = run(*args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _positive(value):
    return isinstance(value, (int, float)) and value > 0


def test_bench_json_has_the_documented_figures(bench_json):
    r = bench_json
    for key in ("config", "command", "threads", "settings", "machine", "train", "inference", "layers", "compile"):
        assert key in r, key
    assert r["config"] == "lenet5" and r["threads"] == 1
    assert r["command"].startswith("cnn bench lenet5 --batch-sizes 2 --threads 1")
    for key in ("cpu", "cores", "numba", "numpy", "python", "date", "loadavg_before"):
        assert key in r["machine"], key
    assert [row["batch_size"] for row in r["train"]] == [2]
    assert [row["batch_size"] for row in r["inference"]] == [2, 8]
    for row in r["train"] + r["inference"]:
        ours = row["ours"]
        assert _positive(ours["images_per_s"]) and _positive(ours["ms_per_batch"])
        assert len(ours["repetitions"]) == 1 and all(map(_positive, ours["repetitions"]))
        if torch is not None:
            assert _positive(row["torch"]["images_per_s"]) and _positive(row["ratio"])
        else:
            assert row["torch"] is None and row["ratio"] is None
    layers = r["layers"]
    assert layers["batch_size"] == 4
    augment = [row for row in layers["rows"] if row["kind"] == "augment"]
    names = [(row["name"], row["pass"]) for row in layers["rows"] if row["kind"] != "augment"]
    for name in ("conv1", "pool1", "conv2", "pool2", "fc1", "fc2", "fc3", "conv1+pool1", "conv2+pool2"):
        assert (name, "forward") in names and (name, "backward") in names
    assert names[-3:] == [("loss", "loss"), ("optimizer", "update"), ("step", "step")]
    for row in layers["rows"]:
        assert _positive(row["ours_ms"])
        assert (row["torch_ms"] is None) == (torch is None or row["kind"] == "augment")
    # lenet5's own distortions are the affine ones: no third row. Each as a share of the step.
    assert [row["name"] for row in augment] == ["augment affine", "augment affine+elastic"]
    step_ms = layers["rows"][[r["name"] for r in layers["rows"]].index("step")]["ours_ms"]
    for row in augment:
        assert row["pass"] == "distort" and abs(row["step_fraction"] - row["ours_ms"] / step_ms) < 1e-12
    c = r["compile"]
    for key in ("cold_s", "cache_load_s", "cold_process_s", "cached_process_s", "import_s",
                "first_batch_after_launch_s"):
        assert _positive(c[key]), key
    # Every kernel compiled in the cold process (names are module.function).
    for kernel in ("conv._conv_forward", "conv._forward_chunk", "pool._pool_forward", "pool._pool_backward",
                   "pool._window_norms", "pool._scatter_norms", "pool._subsample_param_grads",
                   "dense._rbf_backward", "dense._rbf_backward_row",
                   "loss.softmax_cross_entropy", "loss.softmax"):
        assert kernel in c["kernels"], kernel


def test_bench_renders_tables(bench_json):
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=160)
    for renderable in render_bench(bench_json):
        console.print(renderable)
    text = buffer.getvalue()
    assert "training step" in text and "inference" in text and "per layer at batch 4" in text
    assert "compile: cold" in text
    assert "augment affine+elastic:" in text and "% of the training step (target ≤ 15 %)" in text
    if torch is not None:
        assert "ours ÷ torch" in text and "×" in text


def test_bench_without_torch_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    line = one_line_error(run("--against", "torch", "--no-compile", "--batch-sizes", "1"), "--against torch",
                          "PyTorch is not installed", "pip install torch==2.13.0")
    assert line.startswith("error: ")


@pytest.mark.parametrize("sizes", ["1,x", "0", "", "16,-1", "1.5"])
def test_bad_batch_sizes_exit_2_in_one_line(sizes):
    one_line_error(run("--batch-sizes", sizes, "--no-compile"), "--batch-sizes", "positive integers")


@pytest.mark.parametrize("args,needle", [
    (["--against", "tensorflow"], "--against tensorflow"),
    (["--repeat", "0"], "--repeat 0"),
    (["--min-time", "0"], "--min-time 0"),
    (["--threads", "999"], "--threads 999"),
    (["--inference-batch", "0"], "--inference-batch 0"),
    (["no-such-config"], "no such config"),
])
def test_bad_options_exit_2_in_one_line(args, needle):
    one_line_error(run(*args, "--no-compile", "--batch-sizes", "1"), needle)


def test_parse_batch_sizes():
    assert parse_batch_sizes("1, 16,64,16") == (1, 16, 64)
    with pytest.raises(UserError):
        parse_batch_sizes("a")


def test_command_reproduces_the_options():
    options = BenchOptions(batch_sizes=(1, 64), threads=2, against="torch", repeat=5, min_time=1.0)
    assert options.command() == ("cnn bench lenet5 --batch-sizes 1,64 --threads 2 --against torch --repeat 5 "
                                 "--min-time 1 --inference-batch 1000 --layer-batch 64")
