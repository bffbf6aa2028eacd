"""`cnn augment`: the digit and its distortions in the terminal and as a PNG grid."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cnn_cli.cli import app

runner = CliRunner()


def augment(*args):
    return runner.invoke(app, ["augment", *map(str, args), "--offline"])


def test_terminal_panels_and_png_grid(tmp_path, small_mnist, tiny_config):
    pytest.importorskip("matplotlib")
    out = tmp_path / "grid.png"
    result = augment(tiny_config, "--data-dir", small_mnist.folder, "--count", 5, "--index", 3,
                     "--set", "data.augment.rotate=20", "--set", "data.augment.elastic.alpha=10", "--out", out)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "train digit 3" in text and "rotate ±20°" in text and "elastic α 10 σ 4" in text
    assert "original" in text and "#5" in text and "#6" not in text
    assert text.count("┌") == 6  # the original and five distortions, framed
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "grid: " in text


def test_same_seed_same_pictures_and_another_seed_differs(small_mnist, tiny_config):
    args = [tiny_config, "--data-dir", small_mnist.folder, "--count", 3, "--set", "data.augment.rotate=30"]
    first, again, other = augment(*args), augment(*args), augment(*args, "--seed", 1)
    assert first.exit_code == 0 and first.stdout == again.stdout and first.stdout != other.stdout


@pytest.mark.parametrize("extra, needle", [
    ([], "data.augment changes nothing"),
    (["--set", "data.augment.rotate=20", "--index", 100000], "--index 100000: the train split has"),
    (["--set", "data.augment.rotate=20", "--count", 0], "--count 0: must be at least 1"),
    (["--set", "data.augment.rotate=20", "--out", "grid.jpg"], "give a file name ending in .png"),
    (["--set", "data.augment.rotate=500"], "data.augment.rotate: must be in [0, 180] degrees"),
])
def test_bad_requests_are_one_line_exit_2(small_mnist, tiny_config, extra, needle):
    result = augment(tiny_config, "--data-dir", small_mnist.folder, *extra)
    assert result.exit_code == 2 and needle in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1
