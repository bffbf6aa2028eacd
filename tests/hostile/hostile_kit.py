"""Shared pieces of the hostile-input battery: run the CLI, check the one-line promise.

Every case asserts the same contract (issue 20): the exit status, stderr is ONE
line without "Traceback", and nothing half-written is left behind. Bombs run
in a subprocess under RLIMIT_AS, so a regression shows as a MemoryError (or a
kill), not as a machine that swaps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
from typer.testing import CliRunner

from cnn_cli.cli import app

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()

# A normal `cnn train` of the tiny config (numba and llvmlite loaded, kernels from
# the cache) runs under a 1.0 GB address-space limit; 1.5 GB leaves room, and is far
# below what the bombs need when a size check is missing.
ADDRESS_LIMIT = 1_500_000_000

TINY = """\
name: tiny
input: {channels: 1, height: 28, width: 28}
blocks:
  - convs: [{filters: 4, kernel: 5, stride: 2}]
    pools: [{kind: max, size: 2}]
fc:
  - {units: 10}
train: {epochs: 1, batch_size: 32, optimizer: adam, lr: 0.01, seed: 0}
data: {val_split: 0.2}
"""


def cli(*args, env: Optional[dict] = None):
    return runner.invoke(app, [os.fspath(a) if isinstance(a, Path) else str(a) for a in args], env=env)


def one_line(stderr: str, code: int, exit_code: int, needle: Optional[str] = None, where: str = "") -> str:
    """Assert the contract on (stderr, exit status); return the line."""
    assert "Traceback" not in stderr, f"{where}: traceback:\n{stderr[-3000:]}"
    lines = stderr.strip().splitlines()
    assert exit_code == code, f"{where}: exit {exit_code}, expected {code}; stderr: {stderr[-2000:]}"
    assert len(lines) == 1, f"{where}: {len(lines)} lines on stderr: {stderr[-2000:]}"
    assert len(lines[0]) < 1000, f"{where}: a {len(lines[0]):,}-character 'one line'"
    assert lines[0].startswith("error: "), lines[0]
    if needle is not None:
        assert needle in lines[0], f"{where}: {needle!r} not in {lines[0]!r}"
    return lines[0]


def refuses(result, needle: Optional[str] = None, code: int = 2) -> str:
    """A CliRunner result that must be a one-line refusal."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"uncaught {type(result.exception).__name__}: {result.exception}")
    return one_line(result.stderr, code, result.exit_code, needle)


def snapshot(*folders: Path) -> set:
    """Every file under the folders, to compare before and after a command."""
    found = set()
    for folder in folders:
        if Path(folder).is_dir():
            found |= {p for p in Path(folder).rglob("*")}
    return found


def assert_nothing_new(before: set, *folders: Path) -> None:
    new = snapshot(*folders) - before
    assert not new, f"left behind: {sorted(map(str, new))[:5]}"


def run_limited(args: Iterable, limit: int = ADDRESS_LIMIT, env: Optional[dict] = None, timeout: float = 120,
                cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    """`cnn ARGS` in a fresh interpreter under RLIMIT_AS (bytes); None → no limit."""
    code = ("import resource, sys\n"
            f"limit = {limit!r}\n"
            "if limit: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
            "sys.argv = ['cnn'] + sys.argv[1:]\n"
            "from cnn_cli.cli import app\n"
            "app()\n")
    full_env = {**os.environ, "NO_COLOR": "1", "NUMBA_NUM_THREADS": "1", **(env or {})}
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    argv = [sys.executable, "-c", code, *[os.fsencode(a) if isinstance(a, (Path, bytes)) else str(a) for a in args]]
    return subprocess.run(argv, capture_output=True, timeout=timeout, env=full_env, cwd=cwd)


def refuses_limited(proc: subprocess.CompletedProcess, needle: Optional[str] = None, code: int = 2) -> str:
    stderr = proc.stderr.decode("utf-8", "replace")
    assert "MemoryError" not in stderr, stderr[-2000:]
    return one_line(stderr, code, proc.returncode, needle, where="subprocess")


# ---------------------------------------------------------------- checkpoints


def read_arrays(path: Path) -> dict:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def tampered(source: Path, target: Path, **changes) -> Path:
    """A copy of a checkpoint with arrays replaced (None removes one); meta/config given as dicts are JSON-encoded."""
    arrays = read_arrays(source)
    for key, value in changes.items():
        key = key.replace("__", ".")
        if value is None:
            arrays.pop(key, None)
        elif key in ("config.json", "meta.json") and not isinstance(value, (str, np.ndarray)):
            arrays[key] = np.array(json.dumps(value))
        else:
            arrays[key] = value
    np.savez(target, **arrays)
    return target


def meta_of(path: Path) -> dict:
    return json.loads(str(read_arrays(path)["meta.json"]))
