"""The Rich table view of a `cnn params` report (Rich is imported only when it is drawn)."""

from __future__ import annotations

from typing import Any

from .params import DTYPE_NAME, ParamsReport, _n

def _shape(shape: tuple[int, ...]) -> str:
    if len(shape) == 3:
        return f"{shape[0]}@{shape[1]}×{shape[2]}"
    return "×".join(map(str, shape))


def _bytes(n: int) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n} B"


def _ratio(a: int, b: int) -> str:
    if not b:
        return "-"
    return f"×{a / b:,.0f}" if a / b >= 100 else f"×{a / b:,.1f}"


def render_report(report: ParamsReport) -> list[Any]:
    """Rich renderables for the table view (Rich is imported here only)."""
    from rich.table import Table
    from rich.text import Text

    title = f"{report.config}: input {_shape(report.image_shape)}"
    if report.pad:
        title += f" + pad {report.pad} → {_shape(report.input_shape)}"
    table = Table(title=title, title_justify="left", show_footer=False)
    for header, justify in (("layer", "left"), ("type", "left"), ("output", "right"), ("params", "right"),
                            ("formula", "left"), ("weights", "left"), ("MACs", "right"),
                            ("receptive field", "left"), ("share", "right")):
        # In a narrow terminal cells fold onto more lines; no number ends in an ellipsis.
        table.add_column(header, justify=justify, overflow="fold")
    for layer in report.layers:
        kind = layer.type + (f" {layer.detail}" if layer.detail else "")
        macs = _n(layer.macs)
        if layer.ops:
            macs += f" + {_n(layer.ops)} {'cmp' if layer.ops_kind == 'comparisons' else 'ops'}"
        rf = layer.receptive_field
        size = f"{rf.size[0]}×{rf.size[1]}"
        stride = str(rf.stride[0]) if rf.stride[0] == rf.stride[1] else f"{rf.stride[0]}×{rf.stride[1]}"
        rf_text = (f"all {size}" if layer.type in ("dense", "rbf") else
                   f"{size}{' (all)' if rf.whole_input else ''}") + f" /{stride}"
        status = {"none": "-", "mixed": "mixed"}.get(layer.status, layer.status)
        table.add_row(layer.name, kind, _shape(layer.output_shape), _n(layer.params),
                      layer.formula.rsplit(" = ", 1)[0] if layer.params else "-", status, macs, rf_text,
                      f"{100 * report.share(layer):.1f}%")
    footer = Text()
    footer.append(f"Total params: {_n(report.total_params)}   ", style="bold")
    footer.append(f"trainable: {_n(report.trainable_params)}   fixed: {_n(report.fixed_params)}\n")
    footer.append(f"Total multiply-adds (connections, bias counted as one): {_n(report.total_macs)}")
    if report.total_ops:
        footer.append(f"   + {_n(report.total_ops)} pooling ops")
    footer.append(f"\nParams memory: {_bytes(report.param_bytes)}   "
                  f"activations of one image: {_bytes(report.activation_bytes)} ({DTYPE_NAME})")
    out: list[Any] = [table, footer]

    if report.conv_comparisons:
        comp = Table(title="Each conv layer three ways: why a CNN has few parameters", title_justify="left")
        for header, justify in (("layer", "left"), ("fully connected", "right"), ("locally connected", "right"),
                                ("convolution", "right"), ("local saves", "right"), ("sharing saves", "right"),
                                ("MACs (local = conv)", "right")):
            comp.add_column(header, justify=justify, overflow="fold")
        for cmp in report.conv_comparisons:
            comp.add_row(cmp.name, _n(cmp.fully_connected), _n(cmp.locally_connected), _n(cmp.conv),
                         _ratio(cmp.fully_connected, cmp.locally_connected), _ratio(cmp.locally_connected, cmp.conv),
                         _n(cmp.connections))
        out += [Text(""), comp, Text(
            "Local connections: each output reads a small window, not the whole input. Weight sharing: "
            "every position uses the same filter, so the count no longer depends on the map size. "
            "Sharing saves parameters, not multiply-adds.")]

    if report.sizes:
        sizes = Table(title="Input size against a fully connected network on the raw pixels",
                      title_justify="left")
        for header in ("image", "conv & pool", "first FC", "other FC", "CNN total",
                       "dense net", "dense total", "dense / CNN"):
            sizes.add_column(header, justify="left" if header in ("image", "dense net") else "right",
                             overflow="fold")
        for row in report.sizes:
            other = row.cnn_params - row.conv_pool_params - row.first_fc_params
            sizes.add_row(_shape(row.image_shape), _n(row.conv_pool_params),
                          f"{row.first_fc} {_n(row.first_fc_params)}", _n(other), _n(row.cnn_params),
                          "→".join(map(str, row.dense_widths)), _n(row.dense_params),
                          _ratio(row.dense_params, row.cnn_params))
        out += [Text(""), sizes, Text(
            "Conv and pool parameters do not depend on the input size; only the first fully connected layer "
            "grows, with the number × area of the last feature maps it flattens. A dense network's first layer "
            "grows with C·H·W; when the last maps are many (LeNet-5's C5 has 120), the CNN's first FC layer can "
            "outgrow it, which is why modern CNNs end in global pooling.")]
    return out
