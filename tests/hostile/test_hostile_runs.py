"""Runs under attack: two runs in one folder, leftovers of killed runs, SIGTERM, doctored run folders,
the last-resort handler and messages that used to mislead."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnn_cli.errors import UserError
from cnn_cli.commands.runlock import LOCK_NAME, RunLock, read_owner
from hostile_kit import REPO, TINY, assert_nothing_new, cli, one_line, read_arrays, refuses, snapshot

TRAIN_FLAGS = ("--offline", "--quiet")


def write_lock(folder: Path, **fields) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    owner = {"pid": 1, "host": socket.gethostname(), "started": "2026-01-01 00:00:00", **fields}
    (folder / LOCK_NAME).write_text(json.dumps(owner))
    return folder / LOCK_NAME


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def sleeper():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


# ---------------------------------------------------------------- the lock


def test_live_lock_refuses_a_second_run(tmp_path, sleeper, tiny_yaml, data_dir):
    run_dir = tmp_path / "run"
    write_lock(run_dir, pid=sleeper.pid)
    before = snapshot(run_dir)
    line = refuses(cli("train", tiny_yaml, "--data-dir", data_dir, "--run-dir", run_dir, *TRAIN_FLAGS))
    assert f"pid {sleeper.pid}" in line and "another cnn train" in line
    assert_nothing_new(before, run_dir)
    assert read_owner(run_dir / LOCK_NAME)["pid"] == sleeper.pid, "the live owner's lock was touched"


def test_live_lock_refuses_a_resume(tmp_path, sleeper, run_copy, data_dir):
    write_lock(run_copy, pid=sleeper.pid)
    line = refuses(cli("train", "--resume", run_copy / "last.npz", "--data-dir", data_dir, *TRAIN_FLAGS))
    assert f"pid {sleeper.pid}" in line


def test_lock_of_another_host_is_respected(tmp_path, tiny_yaml, data_dir):
    run_dir = tmp_path / "run"
    write_lock(run_dir, pid=dead_pid(), host="some-other-host")
    refuses(cli("train", tiny_yaml, "--data-dir", data_dir, "--run-dir", run_dir, *TRAIN_FLAGS), "some-other-host")


@pytest.mark.parametrize("lock", ["dead-pid", "reused-pid", "garbage", "empty", "negative-pid"])
def test_stale_locks_are_taken_over(tmp_path, lock):
    run_dir = tmp_path / "run"
    if lock == "dead-pid":
        write_lock(run_dir, pid=dead_pid())
    elif lock == "reused-pid":  # a live pid, but not the process that started at the recorded time
        write_lock(run_dir, pid=os.getppid(), ticks=1)
    elif lock == "negative-pid":
        write_lock(run_dir, pid=-4)
    else:
        run_dir.mkdir()
        (run_dir / LOCK_NAME).write_bytes(b"" if lock == "empty" else b"\xff\x00{{{")
        old = time.time() - 60
        os.utime(run_dir / LOCK_NAME, (old, old))
    held = RunLock(run_dir).acquire()
    assert read_owner(run_dir / LOCK_NAME)["pid"] == os.getpid()
    held.release()
    assert not (run_dir / LOCK_NAME).exists()


def test_a_lock_is_exclusive_within_one_process_too(tmp_path, sleeper):
    write_lock(tmp_path, pid=sleeper.pid)
    with pytest.raises(UserError, match=f"pid {sleeper.pid}"):
        RunLock(tmp_path).acquire()


def test_stale_lock_leftovers_and_temp_files_are_cleaned_by_the_next_run(tmp_path, tiny_yaml, data_dir):
    """A run killed before its first checkpoint left config.yaml, its lock and a temp file: reuse the folder."""
    run_dir = tmp_path / "run"
    write_lock(run_dir, pid=dead_pid())
    (run_dir / "config.yaml").write_text(TINY)
    stale = run_dir / ".last.npz.k2j4h5.tmp"
    stale.write_bytes(b"\0" * 1000)
    result = cli("train", tiny_yaml, "--data-dir", data_dir, "--run-dir", run_dir, *TRAIN_FLAGS)
    assert result.exit_code == 0, result.output
    assert not stale.exists() and not (run_dir / LOCK_NAME).exists()
    assert sorted(p.name for p in run_dir.iterdir()) == ["best.npz", "config.yaml", "last.npz", "metrics.csv",
                                                         "summary.json"]


def test_resume_removes_stale_temp_files(run_copy, data_dir):
    stale = [run_copy / ".best.npz.abc.tmp", run_copy / ".metrics.csv.x1.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    result = cli("train", "--resume", run_copy / "last.npz", "--data-dir", data_dir, "--epochs", "2", *TRAIN_FLAGS)
    assert result.exit_code == 0, result.output
    assert not any(p.exists() for p in stale)
    assert not list(run_copy.glob(".*tmp")) and not (run_copy / LOCK_NAME).exists()


def test_folder_with_a_checkpoint_is_still_refused(run_copy, tiny_yaml, data_dir):
    before = snapshot(run_copy)
    refuses(cli("train", tiny_yaml, "--data-dir", data_dir, "--run-dir", run_copy, *TRAIN_FLAGS), "already holds")
    assert_nothing_new(before, run_copy)


def _cnn(*args, env=None):
    full_env = {**os.environ, "NO_COLOR": "1", "NUMBA_NUM_THREADS": "1", **(env or {})}
    return [sys.executable, "-m", "cnn_cli.cli", *map(os.fsdecode, args)], full_env


def test_two_runs_started_together_one_refuses(tmp_path, tiny_yaml, data_dir):
    run_dir = tmp_path / "run"
    argv, env = _cnn("train", tiny_yaml, "--data-dir", data_dir, "--run-dir", run_dir, "--epochs", "3", *TRAIN_FLAGS)
    first = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not (run_dir / LOCK_NAME).exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    second = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, timeout=120)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err.decode()
    line = one_line(second.stderr.decode(), 2, second.returncode)
    assert f"pid {first.pid}" in line or "already holds" in line
    assert not (run_dir / LOCK_NAME).exists()
    meta = json.loads(str(read_arrays(run_dir / "last.npz")["meta.json"]))
    assert meta["epoch"] == 3, "the first run's checkpoints were not overwritten"


# ---------------------------------------------------------------- signals


def test_sigterm_saves_and_exits_143_with_the_resume_command(tmp_path, tiny_yaml, data_dir):
    run_dir = tmp_path / "run"
    # Epochs take milliseconds here: enough of them that the signal lands in the training loop.
    argv, env = _cnn("train", tiny_yaml, "--data-dir", data_dir, "--run-dir", run_dir, "--epochs", "5000",
                     "--batch-size", "8", "--offline")
    process = subprocess.Popen(argv, env={**env, "COLUMNS": "200"}, cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if "1/5000" in line or "epoch" in line:
            break
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr and "--resume" in stderr
    assert read_arrays(run_dir / "last.npz")  # loads
    assert not list(run_dir.glob(".*tmp")) and not (run_dir / LOCK_NAME).exists()


def _bare_trainer(tmp_path, saving):
    from cnn_cli.commands.train import Trainer, TrainOptions

    trainer = object.__new__(Trainer)
    trainer.run_dir, trainer.options = tmp_path, TrainOptions(data_dir=Path("data"))
    trainer.interrupted, trainer.saving = signal.SIGINT, saving
    return trainer


@pytest.mark.parametrize("saving", [True, False])
@pytest.mark.parametrize("previous", [True, False])
def test_second_interrupt_says_what_happened(tmp_path, saving, previous):
    from cnn_cli.commands.train import TrainingAborted

    if previous:
        (tmp_path / "last.npz").write_bytes(b"x")
    trainer = _bare_trainer(tmp_path, tmp_path / "last.npz" if saving else None)
    with pytest.raises(TrainingAborted) as caught:
        trainer._on_signal(signal.SIGINT, None)
    message = str(caught.value)
    assert ("while writing last.npz" in message) == saving
    assert ("resume with" in message) == previous and ("no checkpoint was saved yet" in message) != previous
    assert caught.value.exit_code == 130


def test_disk_full_at_the_first_save_does_not_claim_a_previous_checkpoint(tmp_path, tiny_yaml, data_dir,
                                                                         monkeypatch):
    import cnn_cli.commands.train as train_module

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(train_module, "save_checkpoint", full)
    line = refuses(cli("train", tiny_yaml, "--data-dir", data_dir, "--run-dir", tmp_path / "run", *TRAIN_FLAGS),
                   "No space left")
    assert "none was written" in line and "intact" not in line


def test_lp_p_beyond_float32_is_refused_by_the_config(tmp_path, data_dir):
    config = tmp_path / "lp.yaml"
    config.write_text(TINY.replace("{kind: max, size: 2}", "{kind: lp, size: 2, p: 1.0e+308}"))
    refuses(cli("train", config, "--data-dir", data_dir, "--run-dir", tmp_path / "run", *TRAIN_FLAGS), "p: must be")
    assert not (tmp_path / "run").exists()


def test_lp_overflow_does_not_blame_the_learning_rate(tmp_path, data_dir):
    config = tmp_path / "lp.yaml"
    config.write_text(TINY.replace("{kind: max, size: 2}", "{kind: lp, size: 2, p: 1.0e+30}"))
    line = refuses(cli("train", config, "--data-dir", data_dir, "--run-dir", tmp_path / "run", *TRAIN_FLAGS),
                   code=1)
    assert "not because of the learning rate" in line and "pool1" in line and "--lr" not in line


# ---------------------------------------------------------------- cnn plot on doctored run folders


SUMMARY_DOCTORING = {
    "inf-best": '{"best_epoch": Infinity, "test_accuracy": 0.5}',
    "nan-accuracy": '{"best_epoch": 1, "test_accuracy": NaN}',
    "huge-best": '{"best_epoch": 1e308}',
    "text-fields": '{"best_epoch": "one", "test_accuracy": "high"}',
    "a-list": "[1, 2]",
    "nested": "[" * 100_000,
    "huge": '{"x": "' + "y" * 2_000_000 + '"}',
    "binary": "\udcff\udcfe",
}


@pytest.mark.parametrize("case", sorted(SUMMARY_DOCTORING))
def test_plot_with_a_doctored_summary_still_plots(run_copy, case):
    (run_copy / "summary.json").write_text(SUMMARY_DOCTORING[case], errors="surrogateescape")
    result = cli("plot", run_copy)
    assert result.exit_code == 0 and "Traceback" not in result.stderr, result.output
    assert (run_copy / "curves.png").is_file()


@pytest.mark.parametrize("case", ["laughs", "deep", "huge", "binary"])
def test_plot_with_a_doctored_config_yaml_still_plots(run_copy, case):
    text = {"laughs": "a: &a [1,1,1,1,1,1,1,1,1]\n" + "".join(
                f"a{i}: &a{i} [" + ",".join([f"*a{'' if i == 0 else i - 1}"] * 9) + "]\n" for i in range(9)),
            "deep": "[" * 100_000, "huge": "#" * (2 << 20), "binary": "\udcff"}[case]
    (run_copy / "config.yaml").write_text(text, errors="surrogateescape")
    result = cli("plot", run_copy)
    assert result.exit_code == 0 and "Traceback" not in result.stderr, result.output


METRICS_DOCTORING = {
    "inf": lambda rows: [rows[0], rows[1].replace(rows[1].split(",")[1], "inf", 1)],
    "text": lambda rows: [rows[0], "1,abc,0.5,0.5,0.5,0.1,1,1"],
    "negative-epoch": lambda rows: [rows[0], "-1" + rows[1][1:]],
    "header-only": lambda rows: [rows[0]],
    "empty": lambda rows: [],
    "missing-column": lambda rows: ["epoch,train_loss", "1,0.5"],
    "huge": lambda rows: rows + [rows[1]] * 300_000,
    "binary": lambda rows: ["\udcff\udcfe"],
}


@pytest.mark.parametrize("case", sorted(METRICS_DOCTORING))
def test_plot_with_doctored_metrics_is_one_line(run_copy, case):
    rows = (run_copy / "metrics.csv").read_text().splitlines()
    (run_copy / "metrics.csv").write_text("\n".join(METRICS_DOCTORING[case](rows)) + "\n", errors="surrogateescape")
    before = snapshot(run_copy)
    refuses(cli("plot", run_copy), "metrics.csv")
    assert_nothing_new(before, run_copy)


# ---------------------------------------------------------------- the last-resort handler


NET_CASES = {
    "oserror": (OSError(errno.EIO, "Input/output error"), 2, "Input/output error"),
    "memory": (MemoryError(), 2, "out of memory"),
    "recursion": (RecursionError("maximum recursion depth exceeded"), 2, "nested too deeply"),
    "unicode": (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), 2, "UnicodeDecodeError"),
    "bug-value": (ValueError("something internal"), 70, "this is a bug in cnn-cli"),
    "bug-key": (KeyError("x" * 10_000), 70, "this is a bug in cnn-cli"),
    "bug-zero": (ZeroDivisionError("division by zero"), 70, "this is a bug in cnn-cli"),
}


@pytest.mark.parametrize("case", sorted(NET_CASES))
def test_last_resort_is_one_line(tmp_path, monkeypatch, tiny_yaml, case):
    import tempfile

    import cnn_cli.commands.params as params_module

    error, code, needle = NET_CASES[case]

    def explode(*args, **kwargs):
        raise error

    monkeypatch.setattr(params_module, "params_report", explode)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    line = refuses(cli("params", tiny_yaml), needle, code=code)
    assert "cnn params" in line
    logs = list(tmp_path.glob("cnn-crash-*.log"))
    if code == 70:
        assert len(logs) == 1 and "Traceback" in logs[0].read_text() and str(logs[0]) in line
    else:
        assert not logs


def test_bug_during_training_logs_into_the_run_folder(tmp_path, monkeypatch, tiny_yaml, data_dir):
    import cnn_cli.commands.train as train_module

    def explode(self, lr):
        raise AssertionError("an internal invariant broke")

    monkeypatch.setattr(train_module.Trainer, "_finish_epoch", explode)
    run_dir = tmp_path / "run"
    line = refuses(cli("train", tiny_yaml, "--data-dir", data_dir, "--run-dir", run_dir, *TRAIN_FLAGS),
                   "this is a bug", code=70)
    logs = list(run_dir.glob("cnn-crash-*.log"))
    assert len(logs) == 1 and "an internal invariant broke" in logs[0].read_text()
    assert str(logs[0]) in line
    assert not (run_dir / LOCK_NAME).exists(), "the lock outlived the crash"


def test_non_utf8_run_dir_with_a_strict_utf8_stdout(tmp_path, tiny_yaml, data_dir):
    run_dir = os.fsencode(tmp_path) + b"/run-\xff\xfe"
    argv, env = _cnn("train", tiny_yaml, "--data-dir", data_dir, "--run-dir", run_dir, *TRAIN_FLAGS)
    argv[-len(argv) + 8] = run_dir  # the raw bytes, not their decoded form
    proc = subprocess.run(argv, env={**env, "PYTHONIOENCODING": "utf-8:strict"}, cwd=REPO, capture_output=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert b"run-\\xff\\xfe" in proc.stdout
    assert (Path(os.fsdecode(run_dir)) / "best.npz").is_file()
