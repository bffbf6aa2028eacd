"""`cnn params`: the LeNet-5 homework numbers (SPEC §7), formulas, JSON shape,
input sizes, the FC/local/conv comparison, errors, and no numba."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnn_cli.cli import app
from cnn_cli.spec.config import load_config
from cnn_cli.errors import UserError
from cnn_cli.commands.options import parse_input_option, parse_sizes_option
from cnn_cli.commands.params import build_report, params_report, with_input

ROOT = Path(__file__).resolve().parents[2]

# SPEC §7: name → (params, formula, trainable, connections)
CLASSIC = {
    "C1": (156, "6·(1·5·5+1) = 156", True, 122_304),
    "S2": (12, "6·2 = 12", True, 5_880),
    "C3": (1_516, "(6·3+9·4+1·6)·25+16 = 1,516", True, 151_600),
    "S4": (32, "16·2 = 32", True, 2_000),
    "C5": (48_120, "120·(16·5·5+1) = 48,120", True, 48_120),
    "F6": (10_164, "84·(120+1) = 10,164", True, 10_164),
    "output": (840, "10·84 = 840", False, 840),
}


def run(*args: str):
    return CliRunner().invoke(app, ["params", *args])


def run_json(*args: str) -> dict:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_one_line_error(result, *fragments: str):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


# ---------------------------------------------------------------- the homework


def test_classic_lenet5_per_layer_numbers_match_spec():
    report = params_report("lenet5-classic")
    got = {l.name: (l.params, l.formula, l.trainable, l.macs) for l in report.layers}
    assert got == CLASSIC
    assert report.total_params == 60_840
    assert report.trainable_params == 60_000
    assert report.fixed_params == 840
    assert report.total_macs == sum(v[3] for v in CLASSIC.values()) == 340_908
    assert [l.output_shape for l in report.layers] == [
        (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (120, 1, 1), (84,), (10,)]
    assert report.input_shape == (1, 32, 32)


def test_no_config_is_the_classic_lenet5():
    data = run_json()
    assert data["total_params"] == 60_840
    assert data["trainable_params"] == 60_000
    assert data["fixed_params"] == 840
    assert [(l["name"], l["params"], l["formula"]) for l in data["layers"]] == [
        (name, v[0], v[1]) for name, v in CLASSIC.items()]


@pytest.mark.parametrize("config, total, macs", [
    ("lenet5", 61_706, 156 * 784 + 2_416 * 100 + 48_120 + 10_164 + 850),
    ("caffe-lenet", 431_080, 520 * 576 + 25_050 * 64 + 400_500 + 5_010),
])
def test_shipped_totals(config, total, macs):
    data = run_json(config)
    assert data["total_params"] == data["trainable_params"] == total
    assert data["fixed_params"] == 0
    assert data["total_macs"] == macs


def test_config_path_works_too():
    data = run_json(str(ROOT / "cnn_cli" / "configs" / "lenet5.yaml"))
    assert data["total_params"] == 61_706


def test_parameter_free_pools_have_zero_params_and_macs_but_count_comparisons():
    report = params_report("lenet5")
    pool1 = report.layers[1]
    assert (pool1.name, pool1.type, pool1.params, pool1.formula, pool1.macs) == ("pool1", "max pool", 0, "0", 0)
    assert pool1.trainable is False and pool1.status == "none"
    assert pool1.ops == 6 * 14 * 14 * 3 and pool1.ops_kind == "comparisons"
    assert report.total_ops == 6 * 14 * 14 * 3 + 16 * 5 * 5 * 3
    assert all(l.ops == 0 for l in report.layers if l.params)


def test_mean_and_lp_pool_ops(tmp_path):
    cfg = tmp_path / "pools.yaml"
    cfg.write_text(textwrap.dedent("""
        input: {channels: 1, height: 8, width: 8}
        blocks:
          - convs: [{filters: 2, kernel: 3, padding: same}]
            pools: [{kind: mean, size: 2}, {kind: lp, size: 2, p: 3}]
        fc: [{units: 3}]
    """))
    report = params_report(str(cfg))
    mean, lp = report.layers[1], report.layers[2]
    assert (mean.params, mean.macs, mean.ops) == (0, 0, 2 * 4 * 4 * 4)
    assert (lp.params, lp.macs, lp.ops) == (0, 0, 2 * 2 * 2 * 8)
    assert report.total_params == 2 * 10 + 3 * (8 + 1)


def test_memory_footer():
    report = params_report("lenet5-classic")
    assert report.param_bytes == 60_840 * 4
    activations = 32 * 32 + 6 * 28 * 28 + 6 * 14 * 14 + 16 * 100 + 16 * 25 + 120 + 84 + 10
    assert report.activation_bytes == activations * 4


# ---------------------------------------------------------------- receptive field


def test_receptive_fields_classic():
    report = params_report("lenet5-classic")
    rf = {l.name: (l.receptive_field.size, l.receptive_field.stride, l.receptive_field.whole_input)
          for l in report.layers}
    assert rf == {
        "C1": ((5, 5), (1, 1), False),
        "S2": ((6, 6), (2, 2), False),
        "C3": ((14, 14), (2, 2), False),
        "S4": ((16, 16), (4, 4), False),
        "C5": ((32, 32), (4, 4), True),
        "F6": ((32, 32), (4, 4), True),
        "output": ((32, 32), (4, 4), True),
    }


def test_receptive_field_with_strides_and_fc_on_whole_input(tmp_path):
    cfg = tmp_path / "s.yaml"
    cfg.write_text(textwrap.dedent("""
        input: {channels: 3, height: 40, width: 30}
        blocks:
          - convs: [{filters: 4, kernel: [3, 5], stride: 2}]
            pools: [{kind: max, size: 3, stride: 2}]
        fc: [{units: 5}]
    """))
    layers = params_report(str(cfg)).layers
    assert layers[0].receptive_field.size == (3, 5) and layers[0].receptive_field.stride == (2, 2)
    assert layers[1].receptive_field.size == (3 + 2 * 2, 5 + 2 * 2)
    assert layers[1].receptive_field.stride == (4, 4)
    assert layers[2].receptive_field.size == (40, 30) and layers[2].receptive_field.whole_input


# ---------------------------------------------------------------- JSON


def test_json_shape():
    data = run_json("lenet5")
    for key in ("total_params", "trainable_params", "fixed_params", "total_macs"):
        assert type(data[key]) is int
    assert isinstance(data["layers"], list) and len(data["layers"]) == 7
    for layer in data["layers"]:
        assert isinstance(layer["name"], str)
        assert isinstance(layer["type"], str)
        assert isinstance(layer["output_shape"], list) and all(type(v) is int for v in layer["output_shape"])
        assert type(layer["params"]) is int
        assert isinstance(layer["formula"], str)
        assert type(layer["trainable"]) is bool
        assert type(layer["macs"]) is int
        rf = layer["receptive_field"]
        assert all(type(v) is int for v in rf["size"] + rf["stride"]) and len(rf["size"]) == 2
    pool = data["layers"][1]
    assert pool["params"] == 0 and pool["macs"] == 0 and pool["trainable"] is False
    assert "sizes" not in data  # only with --sizes


def test_json_marks_rbf_centres_fixed():
    out = run_json("lenet5-classic")["layers"][-1]
    assert out["type"] == "rbf" and out["trainable"] is False
    assert out["fixed_params"] == 840 and out["trainable_params"] == 0


# ---------------------------------------------------------------- input sizes (question 1)


@pytest.mark.parametrize("config", ["lenet5", "caffe-lenet", "lenet5-classic"])
def test_input_changes_only_the_first_fc_layer(config):
    base = run_json(config)["layers"]
    bigger = run_json(config, "--input", "1x64x64")["layers"]
    first_fc = next(i for i, l in enumerate(base) if l["type"] in ("dense", "rbf"))
    changed = [i for i, (a, b) in enumerate(zip(base, bigger)) if a["params"] != b["params"]]
    assert changed == [first_fc]


def test_input_recomputes_shapes_and_keeps_pad():
    data = run_json("lenet5-classic", "--input", "1x32x32")  # 36 → C1 32 → S2 16 → C3 12 → S4 6 → C5 2
    assert data["image_shape"] == [1, 32, 32] and data["input_shape"] == [1, 36, 36]
    assert data["layers"][4]["output_shape"] == [120, 2, 2]  # C5 is now 2×2
    assert data["layers"][5]["params"] == 84 * (480 + 1)
    assert data["layers"][0]["params"] == 156


def test_input_channels_change_the_first_conv():
    data = run_json("lenet5", "--input", "3x28x28")
    assert data["layers"][0]["params"] == 6 * (3 * 25 + 1)
    assert data["layers"][0]["formula"] == "6·(3·5·5+1) = 456"


def test_sizes_rows_against_a_dense_network():
    data = run_json("lenet5", "--sizes", "28,32,64")
    rows = data["sizes"]
    assert [r["image_shape"] for r in rows] == [[1, 28, 28], [1, 32, 32], [1, 64, 64]]
    for row, side in zip(rows, (28, 32, 64)):
        widths = [side * side, 120, 84, 10]
        assert row["dense_widths"] == widths
        assert row["dense_params"] == sum(a * b + b for a, b in zip(widths, widths[1:]))
        assert row["conv_pool_params"] == 156 + 2_416
        flat = 16 * ((side // 2 - 4) // 2) ** 2
        assert row["first_fc"] == "fc1" and row["first_fc_params"] == 120 * (flat + 1)
        assert row["cnn_params"] == 156 + 2_416 + 120 * (flat + 1) + 10_164 + 850
    assert rows[0]["cnn_params"] == 61_706
    assert rows[0]["dense_params"] == 784 * 120 + 120 + 120 * 84 + 84 + 84 * 10 + 10


def test_sizes_classic_keep_the_pad_and_count_rbf_as_a_dense_width():
    row = run_json("lenet5-classic", "--sizes", "28")["sizes"][0]
    assert row["input_shape"] == [1, 32, 32]
    assert row["cnn_params"] == 60_840 and row["cnn_trainable_params"] == 60_000
    assert row["dense_params"] == 784 * 84 + 84 + 84 * 10 + 10


def test_sizes_accept_hxw_items():
    assert parse_sizes_option("28, 32x40") == [(28, 28), (32, 40)]


# ---------------------------------------------------------------- FC / local / conv (question 2)


def test_c1_three_ways():
    report = params_report("lenet5-classic")
    c1 = report.conv_comparisons[0]
    assert c1.name == "C1"
    assert c1.conv == 156
    assert c1.locally_connected == 28 * 28 * 6 * 26 == 122_304
    assert c1.fully_connected == (32 * 32) * (6 * 28 * 28) + 6 * 28 * 28
    assert c1.connections == 122_304
    assert c1.fully_connected_formula == "(1·32·32)·(6·28·28)+6·28·28 = 4,821,600"
    assert [c.name for c in report.conv_comparisons] == ["C1", "C3", "C5"]
    c3 = report.conv_comparisons[1]
    assert (c3.conv, c3.locally_connected, c3.fully_connected) == (1_516, 151_600, 6 * 14 * 14 * 1_600 + 1_600)
    c5 = report.conv_comparisons[2]  # a 5×5 conv on a 5×5 map is fully connected already
    assert c5.conv == c5.locally_connected == c5.fully_connected == 48_120


def test_comparison_in_json():
    comp = run_json("lenet5")["conv_comparison"][0]
    assert comp["name"] == "conv1"
    assert comp["conv"]["params"] == 156
    assert comp["locally_connected"]["params"] == 122_304
    assert comp["fully_connected"]["params"] == 784 * 6 * 784 + 6 * 784  # padding adds no inputs
    assert comp["conv"]["macs"] == comp["locally_connected"]["macs"] == 122_304


# ---------------------------------------------------------------- table view


def test_table_view_shows_the_answers():
    result = run()
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in ("60,840", "60,000", "(6·3+9·4+1·6)·25+16", "1,516", "fixed", "122,304", "4,821,600",
                 "784→84→10", "receptive field"):
        assert text in out, text


def test_table_view_with_input_and_sizes():
    result = run("lenet5", "--input", "1x32x32", "--sizes", "28,64")
    assert result.exit_code == 0, result.output
    assert "1@32×32" in result.stdout and "4096→120→84→10" in result.stdout


# ---------------------------------------------------------------- errors


def test_unknown_config_is_one_line_exit_2():
    assert_one_line_error(run("no-such-config"), "no-such-config")


def test_bad_config_is_one_line_exit_2(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("input: {channels: 1, height: 28, width: 28}\nfc: [{units: 10, kind: dens}]\n")
    assert_one_line_error(run(str(cfg)), "bad.yaml", "fc[0].kind", "dense")


@pytest.mark.parametrize("value", ["32x32", "1x32", "axbxc", "0x32x32", "1x32x32x3", ""])
def test_bad_input_option(value):
    assert_one_line_error(run("--input", value), "--input", "CxHxW")


@pytest.mark.parametrize("value", ["28,,32", "a", "0", "28;32", "-4"])
def test_bad_sizes_option(value):
    assert_one_line_error(run("--sizes", value), "--sizes")


def test_too_small_input_names_the_layer():
    assert_one_line_error(run("lenet5", "--input", "1x8x8"), "input 1×8×8", "conv2", "larger than")
    assert_one_line_error(run("lenet5", "--sizes", "28,6"), "input 1×6×6")


def test_input_channels_must_fit_a_connection_table():
    config = _with_first_table()
    assert with_input(config, 1, 32, 32).input.shape == (1, 32, 32)
    with pytest.raises(UserError, match=r"\(input 2×28×28\).*connections"):
        with_input(config, 2, 28, 28)


def _with_first_table():
    """A config whose first conv has a table over one input map (so 2 channels do not fit)."""
    from cnn_cli.spec.config import validate_config
    raw = {"input": {"channels": 1, "height": 28, "width": 28},
           "blocks": [{"convs": [{"filters": 2, "kernel": 5, "connections": ["XX"]}]}],
           "fc": [{"units": 10}]}
    return validate_config(raw, "t.yaml")


def test_parse_input_option():
    assert parse_input_option("1x32x32") == (1, 32, 32)
    assert parse_input_option("3×64×48") == (3, 64, 48)
    with pytest.raises(UserError):
        parse_input_option("1x32")


def test_build_report_without_sizes_has_no_size_rows():
    report = build_report(load_config("lenet5"))
    assert report.sizes is None and "sizes" not in report.to_json()


# ---------------------------------------------------------------- no numba, fast


def test_params_does_not_import_numba():
    code = ("import sys; from typer.testing import CliRunner; from cnn_cli.cli import app; "
            "r = CliRunner().invoke(app, ['params', 'lenet5']); assert r.exit_code == 0, r.output; "
            "r = CliRunner().invoke(app, ['params', '--json', '--sizes', '28,64']); assert r.exit_code == 0; "
            "assert 'numba' not in sys.modules, 'numba imported'; "
            "assert not [m for m in sys.modules if m.startswith(('cnn_cli.kernels', 'cnn_cli.nn.layers', "
            "'cnn_cli.nn.model'))], 'heavy modules imported'")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
