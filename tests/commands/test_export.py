"""`cnn export`: the ONNX graph and the PyTorch state_dict compute our logits.

Every shipped config and random configs of the grammar get random weights (non-zero
biases and β too), are saved as checkpoints, exported through the CLI and run in
onnxruntime on real test digits (the shared sample when present, generated digits
otherwise). Agreement means max |theirs − ours| ≤ 1e-5 · max(1, max |ours|): float32
round-off of differently ordered sums, relative to the logits' scale (the classic
LeNet-5's RBF logits reach −150). Skipped when the onnx extra or PyTorch is absent.
"""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cnn_cli.nn.checkpoint import save_checkpoint
from cnn_cli.cli import app
from cnn_cli.spec.config import SHIPPED_DIR, load_config, validate_config
from cnn_cli.data import load_split, make_preparer
from cnn_cli.errors import UserError
from cnn_cli.spec.datasets import builtin_info
from cnn_cli.nn.model import Model
from idx_fixtures import make_digits

SHARED_SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "mnist-sample"
SHIPPED = sorted(p.stem for p in SHIPPED_DIR.glob("*.yaml"))
TOLERANCE = 1e-5
RANDOM_CONFIGS = 16
ACTIVATIONS = ["identity", "relu", "sigmoid", "tanh", "scaled_tanh"]
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """40 real test digits (4 of each class) from the shared sample, else 40 generated ones."""
    if (SHARED_SAMPLE / "t10k-images-idx3-ubyte.gz").is_file():
        images, labels = load_split(SHARED_SAMPLE, "test")
        return np.concatenate([images[labels == c][:4] for c in range(10)])
    return make_digits(40, seed=5)[0]


def onnx_modules():
    onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed: pip install 'cnn-cli[onnx]'")
    ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install 'cnn-cli[onnx]'")
    return onnx, ort


def random_model(config, seed: int) -> Model:
    """Random weights, and biases and β moved off their initial zeros / 1/window."""
    model = Model(config, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for layer in model.layers:
        for name, array in layer.params.items():
            if name in ("bias", "beta"):
                array += (0.2 * rng.standard_normal(array.shape)).astype(array.dtype)
    return model


def save(model: Model, path: Path) -> Path:
    """As training saves it: with the record of the dataset the config names (statistics, class names)."""
    info = builtin_info(model.config.data.get("dataset", "mnist"))
    save_checkpoint(path, model.state_dict(), {}, model.config.resolved, {"dataset": info.to_json()})
    return path


def images_for(config, digits: np.ndarray) -> np.ndarray:
    """uint8 images of the config's input size from the digits: zero-padded or cropped to H×W,
    and for colour inputs three different channels (each a scaled copy)."""
    h, w = config.input.height, config.input.width
    canvas = np.zeros((len(digits), h, w), dtype=np.uint8)
    ch, cw = min(h, digits.shape[1]), min(w, digits.shape[2])
    canvas[:, :ch, :cw] = digits[:, :ch, :cw]
    if config.input.channels == 1:
        return canvas
    return np.stack([(canvas * (c + 1) // config.input.channels).astype(np.uint8)
                     for c in range(config.input.channels)], axis=1)


def assert_same_logits(theirs: np.ndarray, ours: np.ndarray) -> None:
    assert theirs.shape == ours.shape
    scale = max(1.0, float(np.abs(ours).max()))
    error = float(np.abs(theirs - ours).max())
    assert error <= TOLERANCE * scale, f"max |onnx − ours| = {error:.3g} at logit scale {scale:.3g}"


def check_onnx_export(config, seed: int, digits: np.ndarray, folder: Path) -> None:
    onnx, ort = onnx_modules()
    model = random_model(config, seed)
    ckpt = save(model, folder / "model.npz")
    result = invoke("export", ckpt, "--out", folder / "model.onnx")
    assert result.exit_code == 0, result.output
    assert "opset 17" in result.output
    exported = onnx.load(str(folder / "model.onnx"))
    onnx.checker.check_model(exported, full_check=True)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    images = images_for(config, digits)
    pixels = images.astype(np.float32)  # raw pixel values; the graph normalises and pads
    if pixels.ndim == 3:
        pixels = pixels[:, None]
    logits, probs = session.run(["logits", "probabilities"], {"pixels": pixels})
    info = builtin_info(config.data.get("dataset", "mnist"))
    ours = model.forward(make_preparer(config, info)(images))
    assert_same_logits(logits, ours)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    props = {p.key: p.value for p in exported.metadata_props}
    n = config.num_classes
    assert json.loads(props["class_names"]) == [info.classes[i] if i < len(info.classes) else str(i) for i in range(n)]
    assert props["dataset"] == info.name


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_export_to_onnx_with_our_logits(name, digits, tmp_path):
    check_onnx_export(load_config(name), seed=1, digits=digits, folder=tmp_path)


# ---------------------------------------------------------------- random configs of the grammar


def random_padding(rng):
    choice = rng.integers(4)
    if choice == 0:
        return "valid"
    if choice == 1:
        return "same"
    if choice == 2:
        return int(rng.integers(0, 3))
    return [int(v) for v in rng.integers(0, 3, size=4)]  # [top, bottom, left, right], often asymmetric


def random_pair(rng, low: int, high: int):
    return int(rng.integers(low, high + 1)) if rng.random() < 0.6 else [int(v) for v in rng.integers(low, high + 1, 2)]


def random_table(rng, channels: int, filters: int) -> list[str]:
    table = rng.random((channels, filters)) < 0.5
    table[rng.integers(channels, size=filters), np.arange(filters)] = True  # every filter reads a map
    return ["".join("X" if v else "." for v in row) for row in table]


def random_pool(rng) -> dict:
    kind = str(rng.choice(["max", "mean", "lp", "subsample"]))
    pool = {"kind": kind, "size": random_pair(rng, 1, 3)}
    if rng.random() < 0.3:
        pool["stride"] = 1  # overlapping windows
    if kind == "lp":
        pool["p"] = float(rng.choice([1.0, 2.0, 3.0, 2.5]))
    if kind == "subsample":
        pool["activation"] = str(rng.choice(ACTIVATIONS))
    return pool


def random_raw_config(rng) -> dict:
    blocks, channels = [], 1
    for _ in range(int(rng.integers(1, 3))):
        convs = []
        for _ in range(int(rng.integers(1, 3))):
            filters = int(rng.integers(2, 7))
            conv = {"filters": filters, "kernel": random_pair(rng, 1, 5), "stride": random_pair(rng, 1, 2),
                    "padding": random_padding(rng), "activation": str(rng.choice(ACTIVATIONS))}
            if channels > 1 and rng.random() < 0.4:
                conv["connections"] = random_table(rng, channels, filters)
            convs.append(conv)
            channels = filters
        blocks.append({"convs": convs, "pools": [random_pool(rng) for _ in range(int(rng.integers(0, 3)))]})
    fc = [{"units": int(rng.integers(5, 20)), "activation": str(rng.choice(ACTIVATIONS))}
          for _ in range(int(rng.integers(0, 2)))]
    if rng.random() < 0.25:
        fc += [{"units": 84, "activation": "scaled_tanh"}, {"kind": "rbf", "units": 10}]
    else:
        fc.append({"units": 10, "activation": str(rng.choice(ACTIVATIONS))})
    normalize = [True, False, [0.5, 0.25]][int(rng.integers(3))]
    return {"input": {"channels": 1, "height": 28, "width": 28, "pad": int(rng.integers(0, 3))},
            "blocks": blocks, "fc": fc, "data": {"normalize": normalize}}


def random_config(seed: int):
    """A valid random config (draws again when the shapes shrink to nothing)."""
    rng = np.random.default_rng(seed)
    for _ in range(100):
        try:
            return validate_config(random_raw_config(rng), f"random-{seed}.yaml")
        except UserError:
            continue
    raise AssertionError(f"seed {seed}: no valid config in 100 draws")


@pytest.mark.parametrize("seed", range(RANDOM_CONFIGS))
def test_random_configs_export_to_onnx_with_our_logits(seed, digits, tmp_path):
    check_onnx_export(random_config(seed), seed=seed, digits=digits, folder=tmp_path)


def test_random_configs_cover_every_layer_kind():
    """The seeds above exercise every pooling kind, activation, tables, asymmetric padding and rbf."""
    seen = set()
    for seed in range(RANDOM_CONFIGS):
        for layer in random_config(seed).layers:
            spec = layer.spec
            seen.add(spec.family if spec.family != "pool" else f"pool:{spec.kind}")
            seen.add(f"act:{getattr(spec, 'activation', 'none')}")
            if spec.family == "pool" and spec.kind == "lp":
                seen.add("lp:fractional" if not float(spec.p).is_integer() else "lp:whole")
            if spec.family == "conv":
                top, bottom, left, right = spec.padding
                seen.add("asymmetric" if (top != bottom or left != right) else "symmetric")
                seen.add("table" if spec.connections else "full")
    needed = {"conv", "dense", "rbf", "pool:max", "pool:mean", "pool:lp", "pool:subsample", "lp:fractional",
              "lp:whole", "asymmetric", "table", *(f"act:{a}" for a in ACTIVATIONS)}
    assert needed <= seen, f"not covered: {sorted(needed - seen)}"


# ---------------------------------------------------------------- what the graph holds


def test_graph_holds_preprocessing_tables_and_metadata(tmp_path):
    onnx, _ = onnx_modules()
    from onnx import numpy_helper

    config = load_config("lenet5-classic")
    ckpt = save(random_model(config, 0), tmp_path / "classic.npz")
    result = invoke("export", ckpt)  # default: classic.onnx beside the checkpoint
    assert result.exit_code == 0, result.output
    exported = onnx.load(str(tmp_path / "classic.onnx"))
    ops = [node.op_type for node in exported.graph.node]
    assert ops[:4] == ["Div", "Sub", "Div", "Pad"]  # ÷255, normalise, pad 28 → 32
    assert exported.opset_import[0].version == 17
    dims = [d.dim_value or d.dim_param for d in exported.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 1, 28, 28]
    kernel = {i.name: numpy_helper.to_array(i) for i in exported.graph.initializer}["C3.weight"]
    table = np.array([[ch == "X" for ch in row] for row in
                      ("X...XXX..XXXX.XX", "XX...XXX..XXXX.X", "XXX...XXX..X.XXX", ".XXX..XXXX..X.XX",
                       "..XXX..XXXX.XX.X", "...XXX..XXXX.XXX")])
    assert kernel.shape == (16, 6, 5, 5)
    assert (kernel[~table.T] == 0).all() and (kernel[table.T] != 0).all()
    props = {p.key: p.value for p in exported.metadata_props}
    assert json.loads(props["normalize"]) == [0.1307, 0.3081] and props["input_pad"] == "2"
    assert validate_config(json.loads(props["config"]), "metadata").name == "lenet5-classic"


# ---------------------------------------------------------------- PyTorch


@pytest.mark.parametrize("name", SHIPPED)
def test_torch_export_round_trips_to_our_logits(name, digits, tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: pip install torch==2.13.0")
    from cnn_cli.reference.torch_model import build_torch_model

    config = load_config(name)
    model = random_model(config, 2)
    ckpt = save(model, tmp_path / "m.npz")
    result = invoke("export", ckpt, "--format", "torch", "--out", tmp_path / "m.pt")
    assert result.exit_code == 0, result.output
    net = build_torch_model(config)
    net.load_state_dict(torch.load(tmp_path / "m.pt"))
    inputs = make_preparer(config)(images_for(config, digits))
    with torch.no_grad():
        theirs = net(torch.from_numpy(inputs)).numpy()
    assert_same_logits(theirs, model.forward(inputs))


# ---------------------------------------------------------------- user errors


def one_line_error(result, needle: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and needle in result.output and "Traceback" not in result.output


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    return save(random_model(load_config("lenet5"), 0), tmp_path / "ok.npz")


def test_not_our_checkpoint(tmp_path):
    pytest.importorskip("onnx", reason="the onnx extra is not installed: pip install 'cnn-cli[onnx]'")
    (tmp_path / "text.npz").write_text("not a checkpoint")
    one_line_error(invoke("export", tmp_path / "text.npz"), "not a NumPy .npz checkpoint")
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    one_line_error(invoke("export", tmp_path / "other.npz"), "was not written by cnn train")
    one_line_error(invoke("export", tmp_path / "missing.npz"), "no such checkpoint file")


def test_mismatched_weights(checkpoint, tmp_path):
    pytest.importorskip("onnx", reason="the onnx extra is not installed: pip install 'cnn-cli[onnx]'")
    model = random_model(load_config("lenet5"), 0)
    state = model.state_dict()
    state["fc1.weight"] = np.zeros((3, 3), dtype=np.float32)
    save_checkpoint(tmp_path / "bad.npz", state, {}, model.config.resolved, {})
    one_line_error(invoke("export", tmp_path / "bad.npz"), "fc1.weight has shape (3, 3)")


def test_out_in_missing_folder_and_bad_format(checkpoint, tmp_path):
    one_line_error(invoke("export", checkpoint, "--out", tmp_path / "nope" / "m.onnx"), "does not exist")
    one_line_error(invoke("export", checkpoint, "--format", "keras"), "choose onnx or torch")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.npz"]  # nothing half-written


@pytest.mark.parametrize("fmt,module,needle", [
    ("onnx", "onnx", "pip install 'cnn-cli[onnx]'"), ("torch", "torch", "pip install torch")])
def test_missing_extra_names_the_install_command(fmt, module, needle, checkpoint, tmp_path, monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == module or name.startswith(module + "."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    one_line_error(invoke("export", checkpoint, "--format", fmt), needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.npz"]


def test_onnx_export_loads_no_numba(checkpoint, tmp_path):
    """Exporting needs no kernel: the graph is built from the config and the arrays alone."""
    pytest.importorskip("onnx", reason="the onnx extra is not installed: pip install 'cnn-cli[onnx]'")
    import subprocess
    import sys

    code = ("import sys; from cnn_cli.commands.export import run_export; "
            f"run_export({str(checkpoint)!r}, 'onnx', {str(tmp_path / 'm.onnx')!r}); print('numba' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False" and (tmp_path / "m.onnx").is_file()
