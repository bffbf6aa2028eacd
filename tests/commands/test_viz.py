"""Tests for looking inside: cnn predict (terminal digits), cnn plot / eval --plot / show (PNGs),
cnn params --receptive (window-coverage heat map).

Terminal drawings are compared with stored expectations in tests/data/; after an
intended change of the drawing, rewrite them with CNN_UPDATE_EXPECTED=1 and
review the diff. PNGs are checked by their signature and IHDR size.
"""

from __future__ import annotations

import builtins
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cnn_cli.cli import app
from cnn_cli.spec.config import load_config, parse_config
from cnn_cli.errors import UserError
from cnn_cli.data.mnist_style import mnist_style
from cnn_cli.commands.predict import (area_resize, bar, digit_lines, framed, prediction_panel, probability_lines,
                             read_png, side_by_side, to_digit)
from cnn_cli.commands.receptive import (coverage_lines, heatmap_lines, layer_coverage, legend_lines, repeating_gap,
                               window_counts, window_counts_1d)

sys.path.insert(0, str(Path(__file__).parents[1]))
from idx_fixtures import make_mnist_folder  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parents[1] / "fixtures"
UPDATE = os.environ.get("CNN_UPDATE_EXPECTED") == "1"
runner = CliRunner()

# ---------------------------------------------------------------- helpers


def expect_lines(name: str, lines: list[str]) -> None:
    """Compare with tests/data/<name> (rewrite it when CNN_UPDATE_EXPECTED=1)."""
    path = DATA / name
    text = "\n".join(lines) + "\n"
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"{path} is missing; run with CNN_UPDATE_EXPECTED=1 to create it, then review it")
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"drawing differs from {path}"


def hand_digit() -> np.ndarray:
    """The hand-made 7 of tests/data/digit7.txt as uint8 (28, 28)."""
    levels = {".": 0, "-": 64, ":": 100, "+": 160, "#": 255}
    rows = [line for line in (DATA / "digit7.txt").read_text(encoding="utf-8").splitlines()
            if not line.startswith("#")]
    return np.array([[levels[ch] for ch in row] for row in rows], dtype=np.uint8)


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the 8-byte PNG signature."""
    raw = Path(path).read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    length, kind = struct.unpack(">I4s", raw[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", raw[16:24])
    assert zlib.crc32(raw[12:29]) == struct.unpack(">I", raw[29:33])[0], "IHDR checksum"
    assert raw[-12:] == b"\x00\x00\x00\x00IEND\xaeB`\x82", "PNG not finished with IEND"
    return width, height


def write_png(path: Path, pixels: np.ndarray) -> Path:
    """A minimal 8-bit PNG encoder: (H, W) gray, (H, W, 2) gray+alpha, (H, W, 3) RGB, (H, W, 4) RGBA."""
    pixels = np.asarray(pixels, dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    h, w, c = pixels.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))
    raw = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    Path(path).write_bytes(raw)
    return Path(path)


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def no_temp_files(folder: Path) -> bool:
    return not [p for p in Path(folder).iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------- a trained run, shared


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 1-epoch lenet5 run on a tiny learnable IDX folder: (data folder, run folder, fixture info)."""
    base = tmp_path_factory.mktemp("viz")
    info = make_mnist_folder(base / "mnist", n_train=300, n_test=100, seed=7)
    run = base / "run"
    result = invoke("train", "lenet5", "--data-dir", info.folder, "--epochs", "1", "--batch-size", "32",
                    "--offline", "--quiet", "--run-dir", run, "--set", "data.val_split=0.2", "--threads", "1")
    assert result.exit_code == 0, result.output
    return info.folder, run, info


@pytest.fixture
def no_matplotlib(monkeypatch):
    """Make `import matplotlib` (and Pillow) fail, as on an install without the plot extra."""
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith(("matplotlib.", "PIL")):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


# ---------------------------------------------------------------- receptive: counting


def test_window_counts_valid_3x3_on_5x5():
    counts = window_counts(5, 5, kernel=3, stride=1, padding=0)
    assert counts[2, 2] == 9
    assert counts[0, 0] == counts[0, 4] == counts[4, 0] == counts[4, 4] == 1
    assert counts.tolist() == np.outer([1, 2, 3, 2, 1], [1, 2, 3, 2, 1]).tolist()


def test_window_counts_last_column_left_out():
    # width 5, kernel 2, stride 2: windows cover 0-1 and 2-3; column 4 is in none
    assert window_counts_1d(5, 2, 2).tolist() == [1, 1, 1, 1, 0]
    counts = window_counts(5, 5, kernel=2, stride=2)
    assert (counts[:, 4] == 0).all() and (counts[4, :] == 0).all() and counts[:4, :4].min() == 1


def test_window_counts_padding_stride_and_edge_cases():
    same = window_counts(28, 28, kernel=5, stride=1, padding=2)  # lenet5's conv1
    assert same[0, 0] == 9 and same[14, 14] == 25 and same[0, 14] == 15
    assert window_counts_1d(7, 1, 3).tolist() == [1, 0, 0, 1, 0, 0, 1]  # stride > kernel: gaps
    assert window_counts_1d(6, 3, 2, 1, 0).tolist() == [1, 2, 1, 2, 1, 1]  # window -1..1, 1..3, 3..5
    assert window_counts_1d(3, 5, 1).tolist() == [0, 0, 0]  # kernel larger than the input: no window
    asym = window_counts(4, 4, kernel=(1, 3), stride=(1, 1), padding=(0, 0, 2, 0))
    assert asym[0].tolist() == [3, 3, 2, 1] and asym[:, 0].tolist() == [3, 3, 3, 3]
    with pytest.raises(ValueError):
        window_counts_1d(4, 0, 1)


def brute_force_1d(n, kernel, stride, before, after):
    counts = [0] * n
    padded = n + before + after
    start = 0
    while start + kernel <= padded:
        for p in range(start, start + kernel):
            if 0 <= p - before < n:
                counts[p - before] += 1
        start += stride
    return counts


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 12), kernel=st.integers(1, 6), stride=st.integers(1, 5),
       before=st.integers(0, 3), after=st.integers(0, 3))
def test_window_counts_match_sliding_by_hand(n, kernel, stride, before, after):
    counts = window_counts_1d(n, kernel, stride, before, after)
    assert counts.tolist() == brute_force_1d(n, kernel, stride, before, after)
    windows = max((n + before + after - kernel) // stride + 1, 0) if n + before + after >= kernel else 0
    assert counts.sum() <= windows * kernel


def test_layer_coverage_of_shipped_configs():
    cov = layer_coverage(load_config("lenet5"))  # the first conv by default
    assert cov.layer == "conv1" and cov.in_size == (28, 28) and cov.out_size == (28, 28)
    assert cov.counts[0, 0] == 9 and cov.counts.max() == 25 and cov.uncovered == 0
    classic = layer_coverage(load_config("lenet5-classic"))  # 32×32 input (pad 2), valid conv
    assert classic.in_size == (32, 32) and classic.counts[0, 0] == 1 and classic.counts[16, 16] == 25
    pool = layer_coverage(load_config("lenet5"), "pool1")
    assert pool.kind == "max" and (pool.counts == 1).all()
    json.dumps(cov.to_json())


def test_layer_coverage_errors_name_the_layers():
    with pytest.raises(UserError, match="no layer named nope.*conv1, pool1, conv2, pool2"):
        layer_coverage(load_config("lenet5"), "nope")
    fc_name = load_config("lenet5").layers[-1].spec.name
    with pytest.raises(UserError, match="fully connected"):
        layer_coverage(load_config("lenet5"), fc_name)


STRIDED_YAML = """
name: strided
input: {channels: 1, height: 11, width: 11}
blocks:
  - convs: [{filters: 2, kernel: 3, stride: 2, name: overlap}]
    pools: []
  - convs: [{filters: 2, kernel: 1, stride: 3, name: gaps}]
    pools: []
fc: [{units: 10}]
"""


# ---------------------------------------------------------------- receptive: drawing


def test_receptive_drawing_lenet5_conv1_matches_expectation():
    expect_lines("receptive_lenet5_conv1.txt", coverage_lines(layer_coverage(load_config("lenet5"))))


def test_receptive_drawing_strides_match_expectation():
    config = parse_config(STRIDED_YAML, "strided.yaml")
    overlap = coverage_lines(layer_coverage(config, "overlap"))
    gaps = coverage_lines(layer_coverage(config, "gaps"))
    assert any("windows overlap" in line for line in overlap)
    assert any("fall between windows" in line for line in gaps) and any("zero gradient" in line for line in gaps)
    expect_lines("receptive_strided.txt", overlap + ["", "---", ""] + gaps)


def test_heatmap_gaps_and_shades():
    rows = window_counts_1d(28, 5, 1, 2, 2)
    assert repeating_gap(rows, 5, 1) == (6, 22)
    assert repeating_gap(window_counts_1d(10, 5, 1), 5, 1) is None  # too short to hide anything
    assert repeating_gap(np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]), 1, 1) is None
    lines = heatmap_lines(window_counts(8, 8, 3, 1, 0), mode="shades")
    assert len(lines) == 8 and all(len(line) == 16 for line in lines)
    assert set("".join(lines)) <= set("░▒▓█")
    legend = legend_lines(window_counts(8, 8, 3, 1, 0), "shades")
    assert legend[0].startswith("windows per pixel: ░ 1")
    numbers = heatmap_lines(window_counts(5, 5, 2, 2, 0), mode="numbers")
    assert numbers[-1] == "· · · · ·" and numbers[0] == "1 1 1 1 ·"
    auto_narrow = heatmap_lines(window_counts(40, 40, 5, 1, 0), mode="auto", max_width=60)
    assert "█" in "".join(auto_narrow)  # numbers would not fit in 60 columns


# ---------------------------------------------------------------- receptive: the command


def test_params_receptive_cli(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    result = invoke("params", "--receptive", "lenet5")
    assert result.exit_code == 0, result.output
    assert result.output == "\n".join(coverage_lines(layer_coverage(load_config("lenet5")))) + "\n"
    # --layer implies --receptive; --json gives the whole array
    result = invoke("params", "lenet5", "--layer", "pool1", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["layer"] == "pool1" and len(data["counts"]) == 28 and data["uncovered"] == 0
    # --input recomputes at another size
    data = json.loads(invoke("params", "lenet5", "--receptive", "--input", "1x32x32", "--json").output)
    assert data["input"] == [32, 32]


def test_params_receptive_errors_exit_2():
    result = invoke("params", "lenet5", "--layer", "nope")
    assert result.exit_code == 2 and "no layer named nope" in result.output
    assert "Traceback" not in result.output


def test_params_receptive_does_not_import_numba():
    code = ("import sys; from typer.testing import CliRunner; from cnn_cli.cli import app; "
            "r = CliRunner().invoke(app, ['params', '--receptive', 'lenet5-classic', '--layer', 'S2']); "
            "assert r.exit_code == 0, r.output; "
            "assert 'numba' not in sys.modules, 'numba imported'; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- terminal digits (pure)


def test_digit_lines_of_the_hand_made_seven_match_expectation():
    lines = digit_lines(hand_digit())
    assert len(lines) == 14 and all(len(line) == 28 for line in lines)
    assert set("".join(lines)) <= set(" ▀▄█")
    expect_lines("digit7_blocks.txt", framed(lines))


def test_digit_lines_pairs_rows_and_thresholds():
    image = np.array([[255, 0, 255, 0], [255, 255, 0, 0], [127, 128, 0, 0]], dtype=np.uint8)
    assert digit_lines(image) == ["█▄▀ ", " ▀  "]  # the odd last row pairs with an off row
    assert digit_lines(image, threshold=100) == ["█▄▀ ", "▀▀  "]
    assert digit_lines(np.zeros((28, 28), np.uint8)) == [" " * 28] * 14
    with pytest.raises(ValueError):
        digit_lines(np.zeros((2, 2, 2), np.uint8))


def test_prediction_panel_matches_expectation():
    probs = np.array([0.001, 0.02, 0.004, 0.0, 0.0, 0.0, 0.0, 0.905, 0.0, 0.07])
    right = prediction_panel(hand_digit(), probs, "test #0: label 7", label=7)
    wrong = prediction_panel(hand_digit(), probs, "my7.png", label=1)
    assert "✓ right" in right[2] and "✗ wrong (true 1)" in wrong[2]
    expect_lines("digit7_panel.txt", right)


def test_probability_lines_and_bars():
    assert probability_lines(np.array([0.1, 0.6, 0.3]), width=10) == [
        "1   60.0%  ██████", "2   30.0%  ███", "0   10.0%  █"]
    assert probability_lines(np.array([0.5, 0.5])) == ["0   50.0%  ██████████", "1   50.0%  ██████████"]
    assert bar(1.0, 4) == "████" and bar(0.0, 4) == "" and bar(1 / 32, 4) == "▏"
    assert side_by_side(["ab", "c"], ["x"], gap=1, top=0) == ["ab x", "c"]


# ---------------------------------------------------------------- PNG input → digit


def test_area_resize():
    image = np.arange(16, dtype=float).reshape(4, 4)
    assert area_resize(image, 2, 2).tolist() == [[2.5, 4.5], [10.5, 12.5]]
    assert np.allclose(area_resize(np.ones((7, 5)), 28, 28), 1.0)
    assert np.allclose(area_resize(image, 4, 4), image)
    assert np.isclose(area_resize(np.random.default_rng(0).random((30, 45)), 28, 28).mean(),
                      np.random.default_rng(0).random((30, 45)).mean())


def styled_hand_digit() -> np.ndarray:
    """The hand-made 7 after MNIST's preprocessing (crop to the ink, fit 20×20, centre by mass)."""
    return mnist_style(hand_digit() / 255.0).digit


def test_to_digit_inverts_dark_on_light_and_makes_it_mnist_style():
    digit = hand_digit()
    paper = np.repeat(np.repeat(255 - digit, 2, axis=0), 2, axis=1)  # 56×56, dark on light
    rgb = np.stack([paper] * 3, axis=-1) / 255.0
    back, notes = to_digit(rgb)
    assert back.shape == (28, 28) and back.dtype == np.uint8
    assert np.abs(back.astype(int) - styled_hand_digit()).max() <= 1
    assert any("inverted" in n for n in notes)
    assert any("cropped to the ink (32×40 of 56×56), fitted into 16×20 and centred by mass in 28×28" in n
               for n in notes), notes
    same, notes = to_digit(digit / 255.0)
    assert (same == styled_hand_digit()).all() and len(notes) == 1 and notes[0].startswith("cropped to the ink")


def test_to_digit_transparency_and_aspect():
    alpha = hand_digit() / 255.0  # black ink on a transparent background
    rgba = np.zeros((28, 28, 4))
    rgba[..., 3] = alpha
    back, notes = to_digit(rgba)
    assert np.abs(back.astype(int) - styled_hand_digit()).max() <= 1 and "transparent pixels filled" in notes
    wide = np.zeros((20, 40))
    wide[5:15, 15:25] = 1.0  # a small square in a wide picture: fitted to 20×20, centred at (14, 14)
    back, notes = to_digit(wide)
    assert back.shape == (28, 28) and any("fitted into 20×20" in n for n in notes)
    assert back[:4].max() == 0 and back[24:].max() == 0 and back[4:24, 4:24].min() == 255


def test_read_png_roundtrip_and_bad_files(tmp_path):
    pytest.importorskip("matplotlib")
    digit = hand_digit()
    for channels in (None, 2, 3, 4):
        pixels = digit if channels is None else np.stack([digit] * (channels - 1) + [np.full_like(digit, 255)], -1)
        if channels == 3:
            pixels = np.stack([digit] * 3, -1)
        path = write_png(tmp_path / f"d{channels}.png", pixels)
        back, _ = to_digit(read_png(path))
        assert (back == styled_hand_digit()).all(), channels
    with pytest.raises(UserError, match="no such image"):
        read_png(tmp_path / "missing.png")
    (tmp_path / "fake.png").write_text("hello")
    with pytest.raises(UserError, match="not a PNG"):
        read_png(tmp_path / "fake.png")
    good = (tmp_path / "d3.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(good[:40])
    with pytest.raises(UserError, match="damaged or unsupported PNG"):
        read_png(tmp_path / "cut.png")
    with pytest.raises(UserError, match="is a folder"):
        read_png(tmp_path)


# ---------------------------------------------------------------- cnn predict


def test_predict_index_draws_the_test_digit(trained):
    data_dir, run, info = trained
    result = invoke("predict", run / "best.npz", "--data-dir", data_dir, "--offline", "--index", 5)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    label = int(info.test_labels[5])
    assert f"test #5: label {label}" in lines[1]
    digit = [line[:30] for line in lines[:16]]
    assert digit == framed(digit_lines(info.test_images[5]))
    assert sum("%" in line for line in lines) == 3 and "predicted" in lines[2]
    default = invoke("predict", run / "best.npz", "--data-dir", data_dir, "--offline")
    assert "test #0:" in default.output


def test_predict_random_is_seeded(trained):
    data_dir, run, _ = trained
    args = ("predict", run / "best.npz", "--data-dir", data_dir, "--offline", "--random", 3, "--seed", 4)
    first, second = invoke(*args), invoke(*args)
    assert first.exit_code == 0, first.output
    assert first.output == second.output and first.output.count("┌") == 3
    assert "3 random test digits (--seed 4)" in first.output.splitlines()[-1]


def test_predict_errors_shows_misclassified_digits(trained):
    data_dir, run, info = trained
    result = invoke("predict", run / "best.npz", "--data-dir", data_dir, "--offline", "--errors", 2)
    assert result.exit_code == 0, result.output
    if "no misclassified" in result.output:
        pytest.skip("the tiny model got every test digit right")
    assert "✓" not in result.output and result.output.count("✗ wrong") == min(2, result.output.count("┌"))
    assert "test images misclassified" in result.output.splitlines()[-1]


def test_predict_image(trained, tmp_path):
    pytest.importorskip("matplotlib")
    data_dir, run, _ = trained
    paper = np.repeat(np.repeat(255 - hand_digit(), 3, axis=0), 3, axis=1)
    path = write_png(tmp_path / "seven.png", paper)
    result = invoke("predict", run / "best.npz", "--image", path)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line[:30] for line in lines[:16]] == framed(digit_lines(styled_hand_digit()))
    assert lines[-1].startswith("note: inverted") and "cropped to the ink (48×60 of 84×84)" in lines[-1]


def test_predict_user_errors(trained, tmp_path):
    data_dir, run, _ = trained
    ckpt = run / "best.npz"
    cases = [
        (("--index", 100), "the test split has 100 images"),
        (("--index", 1, "--random", 2), "choose one of"),
        (("--image", tmp_path / "none.png"), "no such image file"),
        (("--split", "val"), "choose test or train"),
    ]
    for extra, message in cases:
        result = invoke("predict", ckpt, "--data-dir", data_dir, "--offline", *extra)
        assert result.exit_code == 2, (extra, result.output)
        assert message in result.output and "Traceback" not in result.output
    result = invoke("predict", tmp_path / "nope.npz", "--data-dir", data_dir, "--offline")
    assert result.exit_code == 2 and "no such checkpoint" in result.output


# ---------------------------------------------------------------- PNG figures


def test_plot_training_curves(trained, tmp_path):
    pytest.importorskip("matplotlib")
    from cnn_cli.commands.plot import CURVES_SIZE

    _, run, _ = trained
    result = invoke("plot", run)
    assert result.exit_code == 0, result.output
    assert png_size(run / "curves.png") == CURVES_SIZE == (1000, 400)
    assert no_temp_files(run)
    # --out: a file, or a folder that gets the default name
    result = invoke("plot", run, "--out", tmp_path / "c.png")
    assert result.exit_code == 0 and png_size(tmp_path / "c.png") == CURVES_SIZE
    result = invoke("plot", run, "--out", tmp_path)
    assert result.exit_code == 0 and png_size(tmp_path / "curves.png") == CURVES_SIZE


def test_plot_several_epochs_and_missing_validation(tmp_path):
    pytest.importorskip("matplotlib")
    run = tmp_path / "run"
    run.mkdir()
    rows = ["epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,images_per_s"]
    rows += [f"{e},{2 / e},{1 - 0.5 / e},,,0.001,1.0,100.0" for e in range(1, 6)]
    (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    result = invoke("plot", run)
    assert result.exit_code == 0, result.output
    assert png_size(run / "curves.png") == (1000, 400)


def test_plot_user_errors(tmp_path):
    pytest.importorskip("matplotlib")
    result = invoke("plot", tmp_path / "nothing")
    assert result.exit_code == 2 and "no such run folder" in result.output
    result = invoke("plot", tmp_path)
    assert result.exit_code == 2 and "metrics.csv: not found" in result.output
    (tmp_path / "metrics.csv").write_text("epoch,train_loss\n1,0.5\n")
    result = invoke("plot", tmp_path)
    assert result.exit_code == 2 and "missing column train_acc" in result.output
    (tmp_path / "metrics.csv").write_text("epoch,train_loss,train_acc,val_loss,val_acc\n1,x,0.5,0.4,0.3\n")
    result = invoke("plot", tmp_path)
    assert result.exit_code == 2 and "line 2, column train_loss" in result.output
    (tmp_path / "metrics.csv").write_text("epoch,train_loss,train_acc,val_loss,val_acc\n1,1,0.5,0.4,0.3\n")
    result = invoke("plot", tmp_path, "--out", tmp_path / "c.jpg")
    assert result.exit_code == 2 and "ending in .png" in result.output
    result = invoke("plot", tmp_path, "--out", tmp_path / "no" / "c.png")
    assert result.exit_code == 2 and "no such folder" in result.output


def test_eval_plot_writes_the_confusion_matrix(trained):
    pytest.importorskip("matplotlib")
    from cnn_cli.commands.plot import CONFUSION_SIZE

    data_dir, run, _ = trained
    result = invoke("eval", run / "best.npz", "--data-dir", data_dir, "--offline", "--plot", "--json")
    assert result.exit_code == 0, result.output
    assert png_size(run / "best-confusion-test.png") == CONFUSION_SIZE == (700, 600)
    assert json.loads(result.stdout)["samples"] == 100  # stdout stays pure JSON
    assert "confusion matrix:" in result.stderr


def test_show_writes_filters_and_feature_maps(trained, tmp_path):
    pytest.importorskip("matplotlib")
    from cnn_cli.commands.plot import network_figure_size

    data_dir, run, _ = trained
    result = invoke("show", run / "best.npz", "--data-dir", data_dir, "--offline", "--index", 3)
    assert result.exit_code == 0, result.output
    assert "conv1's 6 filters" in result.output and "through conv1, pool1, conv2, pool2" in result.output
    # rows: input, filters, conv1, pool1, conv2, pool2; columns: conv2's 16 maps
    assert png_size(run / "best-show.png") == network_figure_size(16, 6) == (1375, 675)
    assert no_temp_files(run)
    path = write_png(tmp_path / "seven.png", 255 - hand_digit())
    result = invoke("show", run / "best.npz", "--image", path, "--out", tmp_path / "s.png")
    assert result.exit_code == 0, result.output
    assert png_size(tmp_path / "s.png") == (1375, 675) and "seven.png (inverted" in result.output


def test_without_matplotlib_say_how_to_install(trained, no_matplotlib, tmp_path):
    data_dir, run, _ = trained
    commands = [
        ("plot", run),
        ("eval", run / "best.npz", "--data-dir", data_dir, "--offline", "--plot"),
        ("show", run / "best.npz", "--data-dir", data_dir, "--offline"),
    ]
    for args in commands:
        result = invoke(*args, "--out", tmp_path / "x.png") if args[0] != "eval" else invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "pip install 'cnn-cli[plot]'" in result.output and "Traceback" not in result.output
        assert "accuracy" not in result.output  # eval --plot fails before evaluating
    path = write_png(tmp_path / "d.png", hand_digit())
    result = invoke("predict", run / "best.npz", "--image", path)
    assert result.exit_code == 2 and "pip install 'cnn-cli[plot]'" in result.output
    # the terminal commands do not need it
    assert invoke("predict", run / "best.npz", "--data-dir", data_dir, "--offline").exit_code == 0
    assert invoke("params", "--receptive", "lenet5").exit_code == 0
