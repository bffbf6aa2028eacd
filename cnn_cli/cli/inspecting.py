"""`cnn params`, `cnn gradcheck`, `cnn predict`, `cnn plot`, `cnn show`: looking at configs and models."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import CONFIG_HELP, DATA_DIR_HELP, app, checked_dataset, dataset_option, user_errors_exit_2, wide_console


@app.command()
@user_errors_exit_2
def params(
    config: Optional[str] = typer.Argument(
        None, help=CONFIG_HELP + " Default: lenet5-classic, the homework's LeNet-5."
    ),
    input_shape: Optional[str] = typer.Option(
        None, "--input", help="Recompute for another image size CxHxW, e.g. 1x32x32 (the config's input.pad is still added)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
    sizes: Optional[str] = typer.Option(
        None, "--sizes", help="Image sizes to compare with a fully connected network, e.g. 28,32,64 (default: 1×, 2×, 4× the config's)."
    ),
    receptive: bool = typer.Option(
        False, "--receptive", help="Instead: a heat map of how many windows of a conv layer cover each of its input pixels."
    ),
    layer: Optional[str] = typer.Option(
        None, "--layer", metavar="NAME", help="With --receptive (implied): the conv or pool layer to draw, by name (default: the first conv)."
    ),
):
    """Parameters, formulas, multiply-adds and receptive fields of every layer — no kernels, no JIT."""
    import json

    if receptive or layer is not None:
        import shutil

        from ..commands.receptive import coverage_lines, receptive_report

        coverage = receptive_report(config, input_shape, layer)
        if json_out:
            print(json.dumps(coverage.to_json()))
        else:
            print("\n".join(coverage_lines(coverage, max_width=shutil.get_terminal_size((100, 24)).columns)))
        return
    from ..commands.params import params_report
    from ..commands.params_render import render_report

    report = params_report(config, input_shape, sizes, sizes_default=not json_out)
    if json_out:
        print(json.dumps(report.to_json()))
        return
    console = wide_console(160)
    for renderable in render_report(report):
        console.print(renderable)


@app.command()
@user_errors_exit_2
def gradcheck(
    config: Optional[str] = typer.Argument(None, help="Check a whole network end to end; without it, the built-in suite of every layer kind."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the random inputs and weights."),
):
    """Compare every analytic gradient with central differences in float64 (pass: max relative error < 1e-6)."""
    import json

    from ..commands.gradcheck import TOLERANCE, check_network, run_builtin_suite
    from ..commands.render import print_gradcheck

    if config is None:
        results = run_builtin_suite(seed)
    else:
        from ..spec.config import load_config

        results = check_network(load_config(config), seed)
    passed = all(r.passed for r in results)
    if json_out:
        print(json.dumps({"cases": [r.to_json() for r in results], "passed": passed}))
    else:
        print_gradcheck(results, TOLERANCE)
    if not passed:
        raise typer.Exit(code=1)


@app.command()
@user_errors_exit_2
def predict(
    checkpoint: Path = typer.Argument(..., help="A checkpoint written by cnn train (best.npz or last.npz)."),
    index: Optional[int] = typer.Option(None, "--index", min=0, metavar="N", help="Show digit N of the split (the default: N = 0)."),
    random_: Optional[int] = typer.Option(None, "--random", min=1, metavar="K", help="Show K random digits of the split."),
    image: Optional[Path] = typer.Option(
        None, "--image", metavar="FILE.png", help="Classify your own PNG: any size, dark-on-light or light-on-dark (needs matplotlib or Pillow); a PNG/JPEG photo for cifar10 and folder checkpoints (Pillow)."
    ),
    errors: Optional[int] = typer.Option(None, "--errors", min=1, metavar="K", help="Show the first K misclassified digits of the split."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, help="Seed for --random (default: a fresh one, printed)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    split: str = typer.Option("test", "--split", help="test or train."),
    offline: bool = typer.Option(False, "--offline", help="Never download; fail if the dataset's files are missing."),
    dataset: Optional[str] = dataset_option(),
):
    """Draw images in the terminal beside the checkpoint's top-3 classes and probabilities."""
    from ..data.download import resolve_data_dir
    from ..commands.predict import PredictRequest, run_predict

    request = PredictRequest(checkpoint=checkpoint, data_dir=resolve_data_dir(data_dir), split=split,
                             offline=offline, index=index, random=random_, image=image, errors=errors, seed=seed,
                             dataset=checked_dataset(dataset))
    print("\n".join(run_predict(request)))


@app.command()
@user_errors_exit_2
def plot(
    run_dir: Path = typer.Argument(..., help="A run folder written by cnn train (holds metrics.csv)."),
    out: Optional[Path] = typer.Option(None, "--out", help="PNG file or folder to write (default: RUN_DIR/curves.png)."),
):
    """Training curves — loss and accuracy per epoch, train vs validation — as a PNG (needs matplotlib)."""
    from ..commands.plot import plot_curves

    written = plot_curves(run_dir, out)
    print(f"training curves: {written.describe()}")


@app.command()
@user_errors_exit_2
def show(
    checkpoint: Path = typer.Argument(..., help="A checkpoint written by cnn train (best.npz or last.npz)."),
    index: int = typer.Option(0, "--index", min=0, metavar="N", help="The digit of the split to send through the network."),
    image: Optional[Path] = typer.Option(None, "--image", metavar="FILE.png", help="Send your own PNG through the network instead."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="PNG file or folder to write (default: <checkpoint name>-show.png beside it)."
    ),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    split: str = typer.Option("test", "--split", help="test or train."),
    offline: bool = typer.Option(False, "--offline", help="Never download; fail if the dataset's files are missing."),
    dataset: Optional[str] = dataset_option(),
):
    """The first conv layer's filters and one digit's feature maps through every conv and pool layer, as a PNG."""
    from ..data.download import resolve_data_dir
    from ..commands.plot import run_show

    _, summary = run_show(checkpoint, resolve_data_dir(data_dir), split, index, image, offline, out,
                          checked_dataset(dataset))
    print(summary)
