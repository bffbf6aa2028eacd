"""The package's floors (README, Layout) hold: no module imports a floor above its
own, there is no import cycle, and the plain-Python floors never load Numba.
The contracts themselves are in pyproject.toml ([tool.importlinter])."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_import_contracts_hold():
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(lint).exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    done = subprocess.run([lint, "--config", str(REPO / "pyproject.toml")], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "BROKEN" not in done.stdout


def test_no_import_cycles_between_modules():
    """Module-level imports between cnn_cli modules form no cycle (import-linter's layers
    contract would not see one inside a floor)."""
    grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (pip install -e '.[test]')")
    graph = grimp.build_graph("cnn_cli")
    modules = sorted(graph.modules)
    cycles = [(a, b) for a in modules for b in modules
              if a < b and graph.direct_import_exists(importer=a, imported=b)
              and graph.chain_exists(importer=b, imported=a)]
    assert not cycles, cycles
