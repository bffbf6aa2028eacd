"""`cnn explain`: the lesson's derivations worked with numbers, checked against the kernels."""

from __future__ import annotations

from typing import Optional

import typer

from .app import app, user_errors_exit_2


explain_app = typer.Typer(
    no_args_is_help=True,
    help="The lesson's derivations worked with small integer matrices, checked against the real kernels.",
)
app.add_typer(explain_app, name="explain")
VALUES_HELP = "Your own numbers: the input's then the {what}, row-major, ',' between numbers, ';' between parts."


@explain_app.command("conv")
@user_errors_exit_2
def explain_conv(
    input_size: Optional[str] = typer.Option(None, "--input", help="Input size HxW (default 5x5)."),
    channels: Optional[int] = typer.Option(None, "--channels", help="Input channels C (default 1)."),
    filters: Optional[int] = typer.Option(None, "--filters", help="Filters K (default 1)."),
    kernel: Optional[str] = typer.Option(None, "--kernel", help="Kernel size F or FhxFw (default 3)."),
    stride: Optional[str] = typer.Option(None, "--stride", help="Stride S or ShxSw (default 1)."),
    padding: Optional[str] = typer.Option(None, "--padding", help="valid, same, N or top,bottom,left,right (default valid)."),
    values: Optional[str] = typer.Option(None, "--values", help=VALUES_HELP.format(what="kernel's (K·C·Fh·Fw); optionally ';' and dL/dz")),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the small random integers (default 0)."),
    json_out: bool = typer.Option(False, "--json", help="Print every matrix as JSON."),
):
    """Convolution forward and backward, step by step; no option: the slides' and the notes' examples."""
    from ..commands.explain import ConvOptions, run_conv

    options = ConvOptions(input=input_size, channels=channels, filters=filters, kernel=kernel, stride=stride,
                          padding=padding, values=values, seed=seed)
    code = run_conv(options, json_out)
    if code:
        raise typer.Exit(code=code)


@explain_app.command("pool")
@user_errors_exit_2
def explain_pool(
    kind: str = typer.Option("max", "--kind", help="max, mean or subsample (LeNet-5's β·Σ + b)."),
    size: Optional[str] = typer.Option(None, "--size", help="Window p or phxpw (default 2)."),
    stride: Optional[str] = typer.Option(None, "--stride", help="Stride (default: the window; smaller overlaps)."),
    input_size: Optional[str] = typer.Option(None, "--input", help="Input size HxW (default 4x4)."),
    channels: Optional[int] = typer.Option(None, "--channels", help="Input channels C (default 1)."),
    values: Optional[str] = typer.Option(None, "--values", help=VALUES_HELP.format(what="(optional) dL/dy")),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the small random integers (default 0)."),
    json_out: bool = typer.Option(False, "--json", help="Print every matrix as JSON."),
):
    """Pooling forward (max-pool switches) and backward (routing, δ/(p·p), overlapping windows added)."""
    from ..commands.explain import PoolOptions, run_pool

    options = PoolOptions(kind=kind, size=size, stride=stride, input=input_size, channels=channels,
                          values=values, seed=seed)
    code = run_pool(options, json_out)
    if code:
        raise typer.Exit(code=code)


@explain_app.command("lenet5")
@user_errors_exit_2
def explain_lenet5(json_out: bool = typer.Option(False, "--json", help="Print the table and the counts as JSON.")):
    """LeNet-5's C3 table, every layer's parameters and connections, and why C3 is not fully connected."""
    import json

    from ..commands.explain_lenet5 import lenet5_report, print_lenet5

    data = lenet5_report()
    if json_out:
        print(json.dumps(data))
    else:
        print_lenet5(data)
