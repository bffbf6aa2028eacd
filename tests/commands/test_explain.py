"""`cnn explain`: the lesson's numbers appear (SPEC §2–§4, §7), the explanation's matrices
equal the project's kernels over a grid of cases, a wrong explanation is caught (exit 1),
the JSON keys are stable, the text fits 100 columns and reads without colour, and bad
input is one line and exit 2."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from rich.cells import cell_len
from typer.testing import CliRunner

from cnn_cli.cli import app
from cnn_cli.commands import explain, explain_check, explain_conv, explain_pool
from cnn_cli.commands.explain_render import WIDTH, explanation_lines

runner = CliRunner()
ANSI = re.compile(r"\x1b\[[0-9;]*m")
COLOUR = re.compile(r"\x1b\[[0-9;]*(?:3[0-7]|9[0-7]|38;[0-9;]*)m")


def run(*args, env=None):
    return CliRunner(env=env).invoke(app, ["explain", *args]) if env else runner.invoke(app, ["explain", *args])


def run_json(*args):
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# ---------------------------------------------------------------- the lesson's own numbers


def test_slides_and_notes_numbers_appear_in_the_default_run():
    result = run("conv")
    assert result.exit_code == 0, result.output
    out = result.stdout
    # SPEC §2, the slides' test vector: stride 1 then stride 2.
    for row in ("[ 4 3 4 ]", "[ 2 4 3 ]", "[ 2 3 4 ]", "[ 4 4 ]", "[ 2 4 ]"):
        assert row in out, row
    # SPEC §3, the notes' 3×3-input / 2×2-kernel backward example, as the notes write it.
    assert "∂L/∂x[1,1] = δ11·w11 =" in out
    assert "∂L/∂x[2,2] = δ11·w22 + δ12·w21 + δ21·w12 + δ22·w11 =" in out
    # SPEC §2: width 5, kernel 2, stride 2 → the fifth column gets no gradient.
    assert "input columns 4 (the 5th) get a zero gradient" in out
    assert out.count("✓ checked against the project's kernels") == 4


def test_default_json_carries_the_slides_results():
    data = run_json("conv")
    stride1, stride2, unreached, notes = data["cases"]
    assert stride1["matrices"]["z"] == [[[4, 3, 4], [2, 4, 3], [2, 3, 4]]]
    assert stride2["matrices"]["z"] == [[[4, 4], [2, 4]]]
    dx = np.array(unreached["matrices"]["dx"])[0]
    assert not dx[:, 4].any() and not dx[4, :].any() and dx[:4, :4].any()
    assert unreached["geometry"]["unreached_columns"] == [4]
    # Notes: ∂L/∂x[2,2] (1-based) = δ11·w22 + δ12·w21 + δ21·w12 + δ22·w11 with W = [[1,2],[3,4]], δ = [[1,-1],[2,1]].
    w, d = np.array(notes["matrices"]["w"])[0, 0], np.array(notes["matrices"]["delta"])[0]
    expected = d[0, 0] * w[1, 1] + d[0, 1] * w[1, 0] + d[1, 0] * w[0, 1] + d[1, 1] * w[0, 0]
    assert notes["matrices"]["dx"][0][1][1] == expected
    assert data["agree"] is True


def test_forward_element_is_written_out_as_its_sum():
    out = run("conv").stdout
    # Window rows 0–2, columns 1–3 of the slides' image times the kernel.
    assert "z[0,1] = 1·1 + 1·0 + 0·1 + 1·0 + 1·1 + 1·0 + 0·1 + 1·0 + 1·1 = 3" in out


def test_overlapping_max_windows_add_at_their_shared_switch():
    # The kernel tests' case: 5×5 zeros with 9 in the centre, 3×3 windows at stride 2 all pick it.
    image = ",".join("9" if i == 12 else "0" for i in range(25))
    result = run("pool", "--input", "5x5", "--size", "3", "--stride", "2", "--values", f"{image};1,2,4,8")
    assert result.exit_code == 0, result.output
    assert "∂L/∂x[2,2] = δ[0,0] + δ[0,1] + δ[1,0] + δ[1,1] = 1 + 2 + 4 + 8 = 15" in result.stdout


def test_mean_pool_spreads_delta_over_p_squared():
    data = run_json("pool", "--kind", "mean", "--values", ",".join(["1"] * 16) + ";4,8,12,16")
    dx = np.array(data["cases"][0]["matrices"]["dx"])[0]
    np.testing.assert_array_equal(dx, np.kron([[1, 2], [3, 4]], np.ones((2, 2))))


def test_lenet5_table_counts_and_reasons():
    result = run("lenet5")
    assert result.exit_code == 0, result.output
    out = result.stdout
    spec_rows = ["X . . . X X X . . X X X X . X X", "X X . . . X X X . . X X X X . X",
                 "X X X . . . X X X . . X . X X X", ". X X X . . X X X X . . X . X X",
                 ". . X X X . . X X X X . X X . X", ". . . X X X . . X X X X . X X X"]
    grid = [line.split(":", 1)[1].split() for line in out.splitlines() if line.startswith("S2 ")]
    assert [" ".join(row).replace("·", ".") for row in grid] == spec_rows
    for text in ("156", "1,516", "(6·3+9·4+1·6)·25+16", "48,120", "10,164", "151,600", "122,304",
                 "60,000 trainable + 840 fixed", "2,416", "reasonable bounds", "symmetry"):
        assert text in out, text
    data = run_json("lenet5")
    assert [l["params"] for l in data["layers"]] == [156, 12, 1516, 32, 48120, 10164, 840]
    assert [l["connections"] for l in data["layers"]] == [122304, 5880, 151600, 2000, 48120, 10164, 840]


def test_lenet5_loads_no_numba():
    code = ("import sys; from typer.testing import CliRunner; from cnn_cli.cli import app; "
            "r = CliRunner().invoke(app, ['explain', 'lenet5']); "
            "assert r.exit_code == 0, r.output; assert 'numba' not in sys.modules, 'numba was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- the grid: explanation == kernels


def _conv_cases():
    rng = np.random.default_rng(17)
    grid = list(itertools.product(("1", "2", "3", "2x1"), ("valid", "same", "1", "0,2,1,0"),
                                  ("3", "2x3", "3x2", "1"), (1, 2, 3), (1, 2, 3)))
    picks = rng.choice(len(grid), 48, replace=False)
    sizes = ("3x3", "5x5", "6x7", "7x7", "4x6")
    return [grid[i] + (sizes[n % len(sizes)], int(i)) for n, i in enumerate(picks)]


@pytest.mark.parametrize("stride,padding,kernel,channels,filters,size,seed", _conv_cases())
def test_conv_explanation_equals_kernels(stride, padding, kernel, channels, filters, size, seed):
    options = explain.ConvOptions(input=size, channels=channels, filters=filters, kernel=kernel, stride=stride,
                                  padding=padding, seed=seed)
    problem = explain.conv_problem(options)
    exp = explain_conv.explain_conv(problem)
    kernels = explain_check.conv_by_kernels(problem.x, problem.w, problem.bias, problem.stride,
                                            problem.padding, problem.delta)
    for name in ("forward", "dx", "dw", "db"):
        np.testing.assert_allclose(exp.checked[name], kernels[name], rtol=0, atol=1e-9, err_msg=name)
    assert np.abs(kernels["dx"]).max() > 0, "a vacuous case: every gradient is 0"
    exp.checks = explain_check.compare(exp.checked, kernels)
    assert exp.agree
    widest = max(cell_len(line.plain) for line in explanation_lines(exp))
    assert widest <= WIDTH, f"{widest} columns"


def _pool_cases():
    grid = itertools.product(("max", "mean", "subsample"), ("2", "3", "2x3"), (None, "1", "2", "3"), (1, 3))
    sizes = ("4x4", "5x5", "7x7", "6x5")
    return [case + (sizes[n % len(sizes)], n) for n, case in enumerate(grid)]


@pytest.mark.parametrize("kind,size,stride,channels,shape,seed", _pool_cases())
def test_pool_explanation_equals_kernels(kind, size, stride, channels, shape, seed):
    options = explain.PoolOptions(kind=kind, size=size, stride=stride, input=shape, channels=channels, seed=seed)
    problem = explain.pool_problem(options)
    exp = explain_pool.explain_pool(problem)
    kernels = explain_check.pool_by_kernels(kind, problem.x, problem.size, problem.stride, problem.delta,
                                            problem.beta, problem.bias)
    assert set(exp.checked) <= set(kernels)
    for name, mine in exp.checked.items():
        np.testing.assert_allclose(mine, kernels[name], rtol=0, atol=1e-9, err_msg=name)
    widest = max(cell_len(line.plain) for line in explanation_lines(exp))
    assert widest <= WIDTH, f"{widest} columns"


def test_max_pool_ties_take_the_first_maximum():
    data = run_json("pool", "--values", "5,5,1,1,5,5,1,1,2,2,3,3,2,2,3,3;1,1,1,1")
    # Flat index h·W + w of each window's first maximum in scan order.
    assert data["cases"][0]["matrices"]["switches"] == [[[0, 2], [8, 10]]]
    assert data["agree"]


# ---------------------------------------------------------------- a wrong explanation is caught


def test_a_wrong_rot180_is_caught(monkeypatch):
    monkeypatch.setattr(explain_conv, "rot180", lambda w: w)  # forget to turn the kernel
    result = run("conv")
    assert result.exit_code == 1
    assert "MISMATCH" in result.stderr and "dx" in result.stderr
    assert "✗ MISMATCH" in result.stdout


def test_a_wrong_dilation_is_caught(monkeypatch):
    monkeypatch.setattr(explain_conv, "dilate", lambda d, sh, sw: d)  # no S−1 zeros
    result = run("conv", "--stride", "2", "--input", "5x5", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["agree"] is False and data["cases"][0]["checks"]["dw"]["agree"] is False


def test_a_wrong_max_switch_is_caught(monkeypatch):
    def last_maximum(window):
        flat = window.reshape(-1)
        k = len(flat) - 1 - int(np.argmax(flat[::-1]))
        return divmod(k, window.shape[1])

    monkeypatch.setattr(explain_pool, "first_maximum", last_maximum)
    result = run("pool", "--values", "5,5,1,1,5,5,1,1,2,2,3,3,2,2,3,3;1,1,1,1")
    assert result.exit_code == 1 and "switches" in result.stderr


# ---------------------------------------------------------------- JSON, width, colour


def test_json_schema_is_stable():
    conv = run_json("conv", "--channels", "2", "--filters", "2", "--stride", "2", "--padding", "same")
    assert set(conv) == {"command", "cases", "agree"}
    case = conv["cases"][0]
    assert set(case) == {"kind", "title", "geometry", "matrices", "expansions", "checks", "agree"}
    assert set(case["matrices"]) == {"x", "w", "bias", "x_pad", "z_per_channel", "z", "delta", "delta_dilated",
                                     "delta_padded", "w_rot180", "dx_per_filter", "dx_pad", "dx", "dw", "db"}
    assert set(case["geometry"]) == {"input", "filters", "kernel", "stride", "padding", "padding_text",
                                     "padded_input", "output", "formula_h", "formula_w", "unreached_rows",
                                     "unreached_columns"}
    assert set(case["checks"]) == {"forward", "dx", "dw", "db"}
    assert set(case["checks"]["dx"]) == {"agree", "max_abs_diff", "shape", "kernels_shape", "kernels"}
    pools = {kind: run_json("pool", "--kind", kind)["cases"][0]["matrices"] for kind in ("max", "mean", "subsample")}
    common = {"x", "y", "window_coverage", "delta", "dx"}
    assert set(pools["max"]) == common | {"switches"}
    assert set(pools["mean"]) == common | {"delta_spread"}
    assert set(pools["subsample"]) == common | {"beta", "bias", "window_sums", "dbeta", "dbias"}
    lenet = run_json("lenet5")
    assert set(lenet) == {"config", "c3_table", "c3_inputs_per_map", "layers", "trainable_params", "fixed_params",
                          "total_params", "total_connections", "c3_fully_connected", "c3_table_params",
                          "c3_table_connections", "reasons"}


@pytest.mark.parametrize("args", [("conv",), ("conv", "--input", "7x7", "--channels", "3", "--filters", "3",
                                              "--kernel", "7", "--padding", "same", "--stride", "3"),
                                  ("conv", "--input", "7x7", "--kernel", "3x2", "--padding", "3"),
                                  ("pool", "--input", "7x7", "--size", "3", "--stride", "1", "--kind", "mean"),
                                  ("lenet5",)])
def test_output_fits_100_columns(args):
    result = run(*args)
    assert result.exit_code == 0, result.output
    widest = max(cell_len(line) for line in result.stdout.splitlines())
    assert widest <= 100, f"{widest} columns"


def test_wider_inputs_say_so_and_point_to_json():
    result = run("conv", "--input", "9x12")
    assert result.exit_code == 0
    first = result.stdout.splitlines()[0]
    assert "fit 100 columns" in first and "--json" in first
    assert "fit 100 columns" not in run("conv", "--input", "7x7").stdout
    # Long numbers of the user's own can overflow a 7×7 layout too: the note says how wide it is.
    values = ",".join(["-12345.678"] * 49) + ";" + ",".join(["1"] * 49)
    long = run("conv", "--input", "7x7", "--kernel", "7", "--padding", "same", "--values", values)
    widest = max(cell_len(line) for line in long.stdout.splitlines())
    assert widest > 100 and f"this output is {widest} wide" in long.stdout.splitlines()[0]


def test_no_color_drops_colour_but_keeps_every_marker():
    coloured = run("pool", "--size", "3", "--stride", "2", "--input", "6x6", env={"FORCE_COLOR": "1"})
    assert COLOUR.search(coloured.stdout), "FORCE_COLOR alone should colour the output (or this test is vacuous)"
    plain = run("pool", "--size", "3", "--stride", "2", "--input", "6x6", env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert plain.exit_code == 0
    assert not COLOUR.search(plain.stdout)
    text = ANSI.sub("", plain.stdout)
    assert text == ANSI.sub("", coloured.stdout)
    assert "*" in text and "~" in text  # the switches and the never-reached row, marked in characters


# ---------------------------------------------------------------- bad input: one line, exit 2


@pytest.mark.parametrize("args,option", [
    (("conv", "--input", "0x5"), "--input"),
    (("conv", "--input", "5x"), "--input"),
    (("conv", "--input", "99"), "--input"),
    (("conv", "--kernel", "6"), "--kernel"),
    (("conv", "--kernel", "4", "--input", "3x5", "--padding", "0,0,1,1"), "--kernel"),
    (("conv", "--stride", "0"), "--stride"),
    (("conv", "--padding", "sideways"), "--padding"),
    (("conv", "--padding", "1,2"), "--padding"),
    (("conv", "--channels", "0"), "--channels"),
    (("conv", "--filters", "99"), "--filters"),
    (("conv", "--channels", "two"), "--channels"),
    (("conv", "--values", "1,2;3"), "--values"),
    (("conv", "--values", "1,0,1,x,0,1,0,1,0,1,1,1,0,0,0,0,0,1,1,1,0,0,1,1,0;1,0,1,0,1,0,1,0,1"), "--values"),
    (("conv", "--input", "2x2", "--kernel", "1", "--values", "1,2,3,4;1;1,1,1"), "--values"),
    (("conv", "--input", "2x2", "--kernel", "1", "--values", "1,2,3,4;1;1,1,1,1;9"), "--values"),
    (("conv", "--input", "2x2", "--kernel", "1", "--values", "1,2,3,inf;1"), "--values"),
    (("conv", "--input", "2x2", "--kernel", "1", "--values", "1,2,3,1e300;1"), "--values"),
    (("conv", "--seed", "-1"), "--seed"),
    (("pool", "--seed", "-1"), "--seed"),
    (("pool", "--stride", "1x0"), "--stride"),
    (("pool", "--kind", "median"), "--kind"),
    (("pool", "--size", "5"), "--size"),
    (("pool", "--values", "1,2,3"), "--values"),
])
def test_bad_input_is_one_line_and_exit_2(args, option):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0], result.stderr
    assert "Traceback" not in result.stderr
