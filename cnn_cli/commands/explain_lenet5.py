"""`cnn explain lenet5`: the homework (SPEC §7) — C3's connection table as a grid, every
layer's parameters and connections, and why C3 is not fully connected.

The counts are `cnn params`'s own (params.build_report on lenet5-classic), so the
two commands cannot disagree; this module only lays them out and shows the
factors. No kernels and no numba: it answers at once.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ..spec.config import ConvSpec, load_config
from .params import build_report, conv_params

CONFIG = "lenet5-classic"
# LeCun, Bottou, Bengio & Haffner (1998), section II.B, on Table I.
REASONS = (
    "a non-complete connection scheme keeps the number of connections within reasonable bounds",
    "more importantly, it breaks the symmetry of the network: different C3 maps are forced to extract "
    "different (hopefully complementary) features, because they get different sets of inputs",
)


def _connections_how(layer, in_shape) -> str:
    """The factors of a layer's connection count (the count itself is params.py's)."""
    out = layer.output_shape
    if layer.type == "conv":
        return f"{out[1]}·{out[2]} positions × {layer.params:,}"
    if layer.type == "subsample":
        window = layer.macs // math.prod(out) - 1
        return f"{math.prod(out):,} outputs × ({window}+1)"
    if layer.type == "dense":
        return f"{out[0]}·({math.prod(in_shape)}+1)"
    if layer.type == "rbf":
        return f"{out[0]}·{math.prod(in_shape)}"
    return ""


def lenet5_report() -> dict[str, Any]:
    config = load_config(CONFIG)
    report = build_report(config)
    c3 = next(l for l in config.layers if l.spec.name == "C3")
    table = [list(row) for row in c3.spec.connections]
    full_spec: ConvSpec = dataclasses.replace(c3.spec, connections=None)
    full_params, full_formula = conv_params(full_spec, c3.in_shape)
    positions = c3.out_shape[1] * c3.out_shape[2]
    c3_layer = next(l for l in report.layers if l.name == "C3")
    layers = [{
        "name": l.name, "type": l.type, "output_shape": list(l.output_shape), "params": l.params,
        "formula": l.formula, "trainable": l.trainable, "connections": l.macs,
        "connections_how": _connections_how(l, l.input_shape),
    } for l in report.layers]
    return {
        "config": report.config,
        "c3_table": table,  # rows: S2 maps, columns: C3 maps
        "c3_inputs_per_map": [sum(row[k] for row in table) for k in range(len(table[0]))],
        "layers": layers,
        "trainable_params": report.trainable_params,
        "fixed_params": report.fixed_params,
        "total_params": report.total_params,
        "total_connections": report.total_macs,
        "c3_fully_connected": {"params": full_params, "formula": full_formula,
                               "connections": positions * full_params},
        "c3_table_params": c3_layer.params,
        "c3_table_connections": c3_layer.macs,
        "reasons": list(REASONS),
    }


def table_lines(table: list[list[bool]]) -> list[str]:
    cols = len(table[0])
    lines = ["C3 map:  " + " ".join(f"{k:>2}" for k in range(cols))]
    for c, row in enumerate(table):
        lines.append(f"S2 {c}:    " + " ".join(f"{'X' if v else '·':>2}" for v in row))
    counts = [sum(row[k] for row in table) for k in range(cols)]
    lines.append("inputs:  " + " ".join(f"{n:>2}" for n in counts))
    return lines


def render_lenet5(data: dict[str, Any], console) -> None:
    from rich.table import Table
    from rich.text import Text

    console.print(Text(f"LeNet-5 ({data['config']}), the homework: parameters of each layer", style="bold underline"))
    console.print()
    console.print(Text("── C3's connection table (X: the S2 map feeds the C3 map)", style="bold cyan"))
    for line in table_lines(data["c3_table"]):
        console.print(line)
    counts = data["c3_inputs_per_map"]
    groups = sorted({n: counts.count(n) for n in counts}.items())
    console.print("maps " + ", ".join(f"reading {n} inputs: {m}" for n, m in groups))
    console.print()
    table = Table(title="parameters and connections (as in `cnn params`)", title_justify="left", box=None,
                  padding=(0, 1), header_style="bold")
    for name, justify in (("layer", "left"), ("maps", "left"), ("params", "right"), ("how", "left"),
                          ("connections", "right"), ("how", "left")):
        table.add_column(name, justify=justify)
    for l in data["layers"]:
        shape = l["output_shape"]
        maps = f"{shape[0]}@{shape[1]}×{shape[2]}" if len(shape) == 3 else str(shape[0])
        table.add_row(l["name"], maps, f"{l['params']:,}", l["formula"].split(" = ")[0] + ("" if l["trainable"] else " fixed"),
                      f"{l['connections']:,}", l["connections_how"])
    console.print(table)
    console.print(f"total {data['total_params']:,} parameters = {data['trainable_params']:,} trainable "
                  f"+ {data['fixed_params']:,} fixed (the RBF centres); {data['total_connections']:,} connections")
    console.print()
    full = data["c3_fully_connected"]
    console.print(Text("── Why C3 is not fully connected (LeCun et al. 1998, §II.B)", style="bold cyan"))
    console.print(f"fully connected, C3 would have {full['formula']} parameters and {full['connections']:,} "
                  f"connections; the table keeps {data['c3_table_params']:,} and {data['c3_table_connections']:,}.")
    for n, reason in enumerate(data["reasons"], 1):
        console.print(f"{n}. {reason[0].upper() + reason[1:]}.")


def print_lenet5(data: dict[str, Any]) -> None:
    import os

    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=100)  # piped: the width the output is laid out for
    render_lenet5(data, console)
