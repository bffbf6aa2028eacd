"""The kernel cache (kernels/runtime/cache.py) cannot go stale and cannot stop a run.

Each case runs a fresh Python on a copy of the package, with its own cache
home, and computes one dense layer whose activation (LeCun's scaled tanh)
comes from another file than the kernel: the case Numba's own cache gets wrong.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import numpy as np
from cnn_cli.kernels import dense
from cnn_cli.spec.activations import SCALED_TANH
x = np.array([[0.5, -1.0]]); w = np.eye(2); b = np.zeros(2)
print(repr(dense.dense_forward(x, w, b, SCALED_TANH).tolist()))
"""


@pytest.fixture
def package_copy(tmp_path):
    root = tmp_path / "pkg"
    shutil.copytree(REPO / "cnn_cli", root / "cnn_cli", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def run(package_root: Path, cache_home: Path, tmp: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CACHE")}
    env.update(PYTHONPATH=str(package_root), XDG_CACHE_HOME=str(cache_home), PYTHONDONTWRITEBYTECODE="1")
    # tempfile.tempdir is taken as it is, so the temp fallback can be pointed anywhere (root writes /tmp).
    prefix = "" if tmp is None else f"import tempfile; tempfile.tempdir = {str(tmp)!r}\n"
    done = subprocess.run([sys.executable, "-c", prefix + SCRIPT], env=env, capture_output=True, text=True,
                          timeout=300, cwd=package_root)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def result(done) -> np.ndarray:
    return np.array(eval(done.stdout.strip().splitlines()[-1]))


def cache_folders(cache_home: Path) -> list[Path]:
    return sorted((cache_home / "cnn-cli" / "numba").glob("numba-*"))


def test_editing_a_helper_in_another_file_recompiles(package_copy, tmp_path):
    home = tmp_path / "cache"
    first = result(run(package_copy, home))
    np.testing.assert_allclose(first, 1.7159 * np.tanh(2 / 3 * np.array([[0.5, -1.0]])), rtol=1e-12)
    assert len(cache_folders(home)) == 1 and list(cache_folders(home)[0].rglob("*.nbc"))

    # Change a constant the kernel inlines, in a file the kernel's own source does not contain.
    spec = package_copy / "cnn_cli" / "spec" / "activations.py"
    spec.write_text(spec.read_text().replace("LECUN_A = 1.7159", "LECUN_A = 2.0"))
    second = result(run(package_copy, home))
    np.testing.assert_allclose(second, 2.0 * np.tanh(2 / 3 * np.array([[0.5, -1.0]])), rtol=1e-12)
    assert len(cache_folders(home)) == 2


def test_a_corrupt_cache_entry_is_recompiled(package_copy, tmp_path):
    home = tmp_path / "cache"
    first = result(run(package_copy, home))
    entries = list(cache_folders(home)[0].rglob("*.nbc"))
    for path in entries:
        path.write_bytes(path.read_bytes()[:40])  # truncated
    again = run(package_copy, home)
    assert np.array_equal(result(again), first)
    notices = [line for line in again.stderr.splitlines() if "unreadable kernel cache entry" in line]
    assert len(notices) == 1


def test_no_writable_cache_compiles_in_memory(package_copy, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folders would go")
    done = run(package_copy, blocker / "cache", tmp=blocker / "tmp")
    np.testing.assert_allclose(result(done), 1.7159 * np.tanh(2 / 3 * np.array([[0.5, -1.0]])), rtol=1e-12)
    assert "kernels compile in memory" in done.stderr
    assert not list((package_copy / "cnn_cli").rglob("*.nbi")), "fell back to the package's __pycache__"


def test_an_unwritable_user_cache_falls_back_to_the_temp_folder(package_copy, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the user's cache would go")
    done = run(package_copy, blocker / "cache", tmp=tmp_path / "tmp")
    assert done.stderr == ""
    assert list((tmp_path / "tmp").rglob("*.nbc"))
