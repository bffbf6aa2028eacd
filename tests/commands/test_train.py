"""End to end: train, eval, resume bit for bit, Ctrl-C, NaN stop, bad options."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cnn_cli.cli import app

runner = CliRunner()


def train(*args: str):
    return runner.invoke(app, ["train", *map(str, args), "--offline", "--quiet"])


def weights(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files if k.endswith((".weight", ".bias", ".beta"))
                and not k.startswith("optimizer.")}


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys() and wa
    for key in wa:
        assert np.array_equal(wa[key], wb[key]), f"{key} differs"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, small_mnist, tiny_config):
    run_dir = tmp_path_factory.mktemp("runs") / "base"
    result = train(tiny_config, "--data-dir", small_mnist.folder, "--run-dir", run_dir)
    assert result.exit_code == 0, result.output
    return run_dir


def test_run_folder_contents(trained_run):
    for name in ("config.yaml", "metrics.csv", "last.npz", "best.npz", "summary.json"):
        assert (trained_run / name).is_file(), name
    rows = (trained_run / "metrics.csv").read_text().splitlines()
    assert rows[0].split(",") == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds",
                                  "images_per_s"]
    assert len(rows) == 3  # header + 2 epochs
    summary = json.loads((trained_run / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["test_samples"] == 200
    assert summary["train_samples"] == 480 and summary["val_samples"] == 120
    # The patterns are easy: two epochs of a tiny net learn them well.
    assert summary["test_accuracy"] > 0.8
    assert not list(trained_run.glob(".*tmp")), "temporary files left behind"


def test_checkpoint_readable_with_plain_numpy(trained_run):
    with np.load(trained_run / "best.npz") as data:
        assert data["conv1.weight"].shape == (4, 1, 5, 5)
        assert data["fc1.weight"].shape == (4 * 6 * 6, 10)
        assert int(data["format_version"]) == 1
        config = json.loads(str(data["config.json"]))
        meta = json.loads(str(data["meta.json"]))
    assert config["name"] == "tiny"
    assert meta["epoch"] in (1, 2) and "rng_state" in meta


def test_eval_json_shape(trained_run, small_mnist):
    result = runner.invoke(app, ["eval", str(trained_run / "best.npz"), "--data-dir", str(small_mnist.folder),
                                 "--json", "--offline"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"accuracy", "loss", "samples", "per_class", "confusion", "dataset", "classes"}
    assert report["dataset"] == "mnist" and report["classes"] == [str(d) for d in range(10)]
    assert report["samples"] == 200
    assert len(report["per_class"]) == 10
    confusion = np.array(report["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == 200
    assert report["accuracy"] == pytest.approx(np.trace(confusion) / 200)
    summary = json.loads((trained_run / "summary.json").read_text())
    assert report["accuracy"] == pytest.approx(summary["test_accuracy"])


def test_eval_table_and_train_split(trained_run, small_mnist):
    result = runner.invoke(app, ["eval", str(trained_run / "last.npz"), "--data-dir", str(small_mnist.folder),
                                 "--split", "train", "--offline"])
    assert result.exit_code == 0, result.output
    assert "confusion matrix" in result.stdout and "600" in result.stdout


def test_resume_is_bitwise_identical(tmp_path, trained_run, small_mnist, tiny_config):
    first = tmp_path / "first"
    assert train(tiny_config, "--data-dir", small_mnist.folder, "--run-dir", first, "--epochs", 1).exit_code == 0
    result = train("--resume", first / "last.npz", "--data-dir", small_mnist.folder, "--epochs", 2)
    assert result.exit_code == 0, result.output
    assert_same_weights(first / "last.npz", trained_run / "last.npz")
    rows = (first / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3


def test_ctrl_c_saves_and_resumes_bitwise(tmp_path, trained_run, small_mnist, tiny_config):
    run_dir = tmp_path / "interrupted"
    command = [sys.executable, "-m", "cnn_cli.cli", "train", str(tiny_config), "--data-dir", str(small_mnist.folder),
               "--run-dir", str(run_dir), "--offline", "--quiet", "--batch-size", "32"]
    # Small batches and a marker line per quarter epoch: interrupt at the first one.
    # The rest of the epoch takes ~30 ms on two threads; one thread (same results:
    # see test_determinism) doubles that window and leaves a core to this process,
    # which must read the marker and send the signal before the epoch ends.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "NO_COLOR": "1", "NUMBA_NUM_THREADS": "1"})
    for line in process.stdout:
        if "batch" in line:
            process.send_signal(signal.SIGINT)
            break
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    assert "resume with" in stderr and "--resume" in stderr
    assert (run_dir / "last.npz").is_file()
    meta = json.loads(str(np.load(run_dir / "last.npz")["meta.json"]))
    assert meta["epoch"] == 0 and 0 < meta["batch"], "interrupted inside the first epoch"
    resume = shlex.split(stderr.strip().splitlines()[-1])
    assert resume[:2] == ["cnn", "train"]
    result = runner.invoke(app, resume[1:] + ["--offline", "--quiet"])
    assert result.exit_code == 0, result.output
    assert_same_weights(run_dir / "last.npz", trained_run / "last.npz")


def test_nan_loss_stops_with_hint(tmp_path, small_mnist, tiny_config):
    run_dir = tmp_path / "nan"
    result = train(tiny_config, "--data-dir", small_mnist.folder, "--run-dir", run_dir,
                   "--optimizer", "sgd", "--lr", "1e30", "--set", "train.momentum=0")
    assert result.exit_code == 1
    assert "lower learning rate" in result.stderr
    # It blew up in the first epoch: no checkpoint exists, and the message says so.
    assert "no checkpoint was saved yet" in result.stderr
    assert not (run_dir / "last.npz").exists()
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args,message", [
    (["--epochs", "-1"], "train.epochs: must be positive"),
    (["--batch-size", "0"], "train.batch_size: must be positive"),
    (["--optimizer", "adamw"], "did you mean 'adam'"),
    (["--set", "train.momentun=0.9"], "does not exist"),
    (["--set", "fc.5.units=3"], "not an index"),
    (["--set", "train.lr=fast"], "train.lr: expected a number"),
    (["--set", "nonsense"], "expected key.path=value"),
    (["--threads", "0"], "--threads 0"),
])
def test_bad_options_exit_2_and_leave_nothing(tmp_path, small_mnist, tiny_config, args, message):
    run_dir = tmp_path / "never"
    result = train(tiny_config, "--data-dir", small_mnist.folder, "--run-dir", run_dir, *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not run_dir.exists()


def test_offline_names_missing_files(tmp_path, tiny_config):
    run_dir = tmp_path / "never"
    result = train(tiny_config, "--data-dir", tmp_path / "empty", "--run-dir", run_dir)
    assert result.exit_code == 2
    assert "t10k-images-idx3-ubyte.gz" in result.stderr or "train-images-idx3-ubyte.gz" in result.stderr
    assert not run_dir.exists()


def test_image_size_mismatch_is_one_line(tmp_path, small_mnist, tiny_config):
    result = train(tiny_config, "--data-dir", small_mnist.folder, "--run-dir", tmp_path / "r",
                   "--set", "input.height=32")
    assert result.exit_code == 2
    assert "height: 28" in result.stderr
    assert not (tmp_path / "r").exists()


def test_run_folder_numbered_when_taken(tmp_path, small_mnist, tiny_config, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "tiny").mkdir(parents=True)
    result = train(tiny_config, "--data-dir", small_mnist.folder, "--epochs", 1)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "tiny-2" / "summary.json").is_file()


# ---------------------------------------------------------------- checkpoints


def test_checkpoint_write_is_atomic(tmp_path, trained_run, monkeypatch):
    from cnn_cli.nn import checkpoint

    target = tmp_path / "last.npz"
    target.write_bytes((trained_run / "last.npz").read_bytes())
    before = target.read_bytes()

    def dies_half_way(handle, **arrays):
        handle.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # a kill in the middle of the write

    monkeypatch.setattr(checkpoint.np, "savez", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_checkpoint(target, {"w": np.zeros(3)}, {}, {}, {})
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.npz"]


@pytest.fixture
def bad_checkpoints(tmp_path, trained_run):
    good = (trained_run / "best.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(good[: len(good) // 2])
    (tmp_path / "text.npz").write_text("not numpy at all\n")
    np.savez(tmp_path / "foreign.npz", a=np.zeros(3))
    np.save(tmp_path / "array.npy", np.zeros(3))
    with np.load(trained_run / "best.npz") as data:
        arrays = {k: data[k] for k in data.files}
    config = json.loads(str(arrays["config.json"]))
    config["blocks"][0]["convs"][0]["filters"] = 5
    arrays["config.json"] = np.array(json.dumps(config))
    np.savez(tmp_path / "mismatch.npz", **arrays)
    return tmp_path


@pytest.mark.parametrize("name,message", [
    ("missing.npz", "no such checkpoint"),
    ("truncated.npz", "truncated or corrupt"),
    ("text.npz", "not a NumPy .npz"),
    ("foreign.npz", "not written by cnn train"),
    ("array.npy", "single NumPy array"),
    ("mismatch.npz", "does not match its config"),
])
def test_eval_bad_checkpoints(bad_checkpoints, small_mnist, name, message):
    result = runner.invoke(app, ["eval", str(bad_checkpoints / name), "--data-dir", str(small_mnist.folder),
                                 "--offline"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and name in lines[0]


# ---------------------------------------------------------------- real digits


def test_accuracy_on_shared_sample(tmp_path, shared_sample):
    """LeNet-5 on the class sample: 3,600 train / 400 validation digits, scored on its 1,000 test digits.

    Measured: 94.9 % after 3 epochs (seed 0); the floor leaves ~3 points of margin."""
    run_dir = tmp_path / "sample"
    result = train("lenet5", "--data-dir", shared_sample, "--run-dir", run_dir, "--epochs", 3)
    assert result.exit_code == 0, result.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["test_accuracy"] >= 0.92


# ---------------------------------------------------------------- what the review found


def test_test_images_of_another_size_are_refused(tmp_path, tiny_config):
    from idx_fixtures import make_mnist_folder, write_idx_images

    folder = make_mnist_folder(tmp_path / "mixed", n_train=50, n_test=20, seed=1).folder
    write_idx_images(folder / "t10k-images-idx3-ubyte.gz", np.zeros((20, 20, 20), dtype=np.uint8))
    result = train(tiny_config, "--data-dir", folder, "--run-dir", tmp_path / "r")
    assert result.exit_code == 2
    assert "t10k-images-idx3-ubyte.gz" in result.stderr and "1×20×20" in result.stderr
    assert not (tmp_path / "r").exists()


def test_eval_labels_beyond_the_output_units(tmp_path, trained_run):
    from idx_fixtures import make_mnist_folder, write_idx_labels

    folder = make_mnist_folder(tmp_path / "labels", n_train=20, n_test=20, seed=2).folder
    write_idx_labels(folder / "t10k-labels-idx1-ubyte.gz", np.full(20, 9, dtype=np.uint8))
    with np.load(trained_run / "best.npz") as data:
        arrays = {k: data[k] for k in data.files}
    config = json.loads(str(arrays["config.json"]))
    config["fc"][-1]["units"] = 5
    arrays["config.json"] = np.array(json.dumps(config))
    arrays["fc1.weight"] = arrays["fc1.weight"][:, :5]
    arrays["fc1.bias"] = arrays["fc1.bias"][:5]
    np.savez(tmp_path / "five.npz", **arrays)
    result = runner.invoke(app, ["eval", str(tmp_path / "five.npz"), "--data-dir", str(folder), "--offline"])
    assert result.exit_code == 2
    assert "5 units" in result.stderr and "go up to 9" in result.stderr


def test_run_dir_that_is_a_file_or_holds_a_run(tmp_path, small_mnist, tiny_config, trained_run):
    file = tmp_path / "file"
    file.write_text("x")
    result = train(tiny_config, "--data-dir", small_mnist.folder, "--run-dir", file)
    assert result.exit_code == 2 and "is a file" in result.stderr
    result = train(tiny_config, "--data-dir", small_mnist.folder, "--run-dir", trained_run)
    assert result.exit_code == 2 and "already holds files" in result.stderr and "--resume" in result.stderr


def test_resume_refuses_another_seed(tmp_path, trained_run, small_mnist):
    result = train("--resume", trained_run / "last.npz", "--data-dir", small_mnist.folder, "--run-dir",
                   tmp_path / "r", "--seed", 5)
    assert result.exit_code == 2
    assert "train.seed = 0, not 5" in result.stderr
    assert not (tmp_path / "r").exists()


def test_resume_into_a_new_folder_brings_best_along(tmp_path, trained_run, small_mnist):
    result = train("--resume", trained_run / "last.npz", "--data-dir", small_mnist.folder, "--run-dir",
                   tmp_path / "moved", "--epochs", 3)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "moved" / "best.npz").is_file()
    assert len((tmp_path / "moved" / "metrics.csv").read_text().splitlines()) == 4


def test_option_errors_are_one_line(tmp_path, tiny_config):
    result = train(tiny_config, "--epochs", "abc", "--run-dir", tmp_path / "r")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--epochs" in lines[0]


def test_checkpoints_get_ordinary_permissions(trained_run):
    umask = os.umask(0)
    os.umask(umask)
    assert (trained_run / "best.npz").stat().st_mode & 0o777 == 0o666 & ~umask


def test_eval_needs_only_the_test_files(tmp_path, trained_run, small_mnist):
    folder = tmp_path / "test-only"
    folder.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (folder / name).write_bytes((small_mnist.folder / name).read_bytes())
    result = runner.invoke(app, ["eval", str(trained_run / "best.npz"), "--data-dir", str(folder), "--offline",
                                 "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["samples"] == 200
    result = runner.invoke(app, ["eval", str(trained_run / "best.npz"), "--data-dir", str(folder), "--offline",
                                 "--split", "train"])
    assert result.exit_code == 2 and "train-images-idx3-ubyte.gz" in result.stderr


def test_resume_into_another_run_folder_is_refused(tmp_path, trained_run, small_mnist, tiny_config):
    other = tmp_path / "other"
    assert train(tiny_config, "--data-dir", small_mnist.folder, "--run-dir", other, "--epochs", 1).exit_code == 0
    before = (other / "best.npz").read_bytes()
    result = train("--resume", trained_run / "last.npz", "--data-dir", small_mnist.folder, "--run-dir", other)
    assert result.exit_code == 2 and "already holds files" in result.stderr
    assert (other / "best.npz").read_bytes() == before


def test_slow_kernel_loading_says_it_is_compiling(tmp_path, small_mnist, tiny_config, monkeypatch):
    """Training runs every kernel once before the clock starts; when that is slower than
    COMPILE_NOTICE_AFTER_S (Numba compiling) one line says why; the steps after say nothing."""
    import time

    from cnn_cli.commands import progress
    from cnn_cli.nn.model import Model

    monkeypatch.setattr(progress, "COMPILE_NOTICE_AFTER_S", 0.05)
    original = Model.loss_and_gradients
    calls = []

    def slow_first(self, x, y, *rest):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.5)
        return original(self, x, y, *rest)

    monkeypatch.setattr(Model, "loss_and_gradients", slow_first)
    result = train(tiny_config, "--data-dir", small_mnist.folder, "--run-dir", tmp_path / "run", "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert result.output.count(progress.COMPILE_NOTICE) == 1 and len(calls) > 1


def test_slow_kernel_loading_in_eval_is_said_on_stderr(trained_run, small_mnist, monkeypatch):
    """cnn eval runs one image through first; if that is slow (compiling) it says so on
    stderr, once, and --json output on stdout stays pure JSON."""
    import time

    from cnn_cli.commands import progress
    from cnn_cli.nn.model import Model

    monkeypatch.setattr(progress, "COMPILE_NOTICE_AFTER_S", 0.05)
    original = Model.forward
    calls = []

    def slow_first(self, x, training=False):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.5)
        return original(self, x, training)

    monkeypatch.setattr(Model, "forward", slow_first)
    result = runner.invoke(app, ["eval", str(trained_run / "best.npz"), "--data-dir", str(small_mnist.folder),
                                 "--json", "--offline"])
    assert result.exit_code == 0, result.output
    assert result.stderr.count(progress.COMPILE_NOTICE) == 1 and len(calls) > 1
    assert json.loads(result.stdout)["samples"] == 200
