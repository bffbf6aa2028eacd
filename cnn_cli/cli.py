"""The `cnn` command: Typer commands only — parse options, call the library, print.

Heavy modules (numba, the kernels) are imported inside the commands that need
them, so `cnn --help` and `cnn params` start without loading or compiling them.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import List, Optional

import typer
import typer.core

from .errors import UserError

class OneLineErrors(typer.core.TyperGroup):
    """Option and argument errors as one line on stderr (exit 2), not a usage box."""

    def main(self, *args, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except _CLICK_EXCEPTION as error:
            if type(error).__name__ == "NoArgsIsHelpError":  # bare `cnn train`: show its help
                print(error.format_message(), file=sys.stderr)
            else:
                context = getattr(error, "ctx", None)
                command = context.command_path if context is not None else "cnn"
                print(f"error: {command}: {error.format_message().rstrip('.')}; see '{command} --help'", file=sys.stderr)
            sys.exit(error.exit_code)
        except _CLICK_ABORT:
            print("aborted", file=sys.stderr)
            sys.exit(1)
        # Without standalone mode an explicit exit comes back as its code.
        sys.exit(result if isinstance(result, int) else 0)


# Typer may vendor its own click: find its classes through Typer's public ones.
_CLICK_EXCEPTION = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_CLICK_ABORT = typer.Abort

app = typer.Typer(
    cls=OneLineErrors,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train and inspect convolutional networks (LeNet-5 on MNIST) with Numba kernels.",
)


def user_errors_exit_2(command):
    """Turn a UserError into one line on stderr and exit status 2 — never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            raise typer.Exit(code=error.exit_code)

    return wrapper


DATA_DIR_HELP = "Folder holding the MNIST files (default: $CNN_DATA_DIR, else ./data)."


@app.command()
@user_errors_exit_2
def download(
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    mirror: List[str] = typer.Option(
        [], "--mirror", help="Extra mirror tried first (URL, file:// URL or folder); repeatable."
    ),
    force: bool = typer.Option(False, "--force", help="Fetch again even when valid files are present."),
    no_verify: bool = typer.Option(
        False, "--no-verify", help="Accept files whose MD5 differs from the official one (e.g. a class sample)."
    ),
    timeout: float = typer.Option(
        30.0, "--timeout", min=0.1, help="Seconds to wait for a connection and for each read before trying the next mirror."
    ),
):
    """Fetch the four MNIST files, check their MD5s and store them atomically."""
    from .download import download_mnist, resolve_data_dir

    folder = resolve_data_dir(data_dir)
    results = download_mnist(folder, mirrors=mirror, force=force, verify=not no_verify, timeout=timeout)
    fetched = sum(r.status == "fetched" for r in results.values())
    unofficial = [r.name for r in results.values() if not r.verified]
    note = f"; {len(unofficial)} not the official MNIST (accepted with --no-verify)" if unofficial else ""
    print(f"MNIST ready in {folder}: {fetched} fetched, {len(results) - fetched} already present{note}")

CONFIG_HELP = "A config YAML file, or the bare name of a shipped one (lenet5, lenet5-classic, caffe-lenet)."


@app.command()
@user_errors_exit_2
def train(
    config: Optional[str] = typer.Argument(None, help=CONFIG_HELP + " Optional with --resume."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run folder (default: runs/<config name>, numbered when taken)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Overrides train.epochs."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Overrides train.batch_size."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Overrides train.lr."),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", help="sgd, adam or sdlm; overrides train.optimizer."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Overrides train.seed (weights, shuffling, validation split)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Numba threads (default: all cores)."),
    set_: List[str] = typer.Option([], "--set", help="Override any config field: key.path=value (e.g. train.momentum=0.95, fc.0.units=100); repeatable."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue from a checkpoint (last.npz) where it stopped."),
    offline: bool = typer.Option(False, "--offline", help="Never download; fail if MNIST files are missing."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Plain line-by-line output, no progress bars."),
):
    """Train a network; writes config.yaml, metrics.csv, last.npz, best.npz and summary.json to the run folder."""
    from .config import load_config, parse_set_option
    from .download import resolve_data_dir
    from .progress import make_reporter
    from .train import TrainingInterrupted, TrainOptions, config_for_resume, prepare_run

    sets = [parse_set_option(text) for text in set_]
    for key, value in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr),
                       ("optimizer", optimizer), ("seed", seed)):
        if value is not None:
            sets.append((["train", key], value))
    if config is not None:
        cfg = load_config(config, sets)
    elif resume is not None:
        cfg = config_for_resume(resume, sets)
    else:
        raise UserError("cnn train: give a CONFIG (a YAML path or a shipped name such as lenet5) or --resume CHECKPOINT")
    options = TrainOptions(data_dir=resolve_data_dir(data_dir), run_dir=run_dir, resume=resume,
                           offline=offline, threads=threads)
    reporter = make_reporter(quiet)
    trainer = prepare_run(cfg, options, reporter)
    reporter.message(f"training {cfg.name} in {trainer.run_dir} ({len(trainer.data.train_labels):,} train, "
                     f"{len(trainer.data.val_labels):,} validation images)")
    try:
        summary = trainer.run()
    except TrainingInterrupted as stop:
        print(f"interrupted: state saved to {trainer.run_dir / 'last.npz'}; resume with:\n  {stop.resume_command}",
              file=sys.stderr)
        raise typer.Exit(code=130)
    reporter.message(f"test accuracy {100 * summary['test_accuracy']:.2f}% (loss {summary['test_loss']:.4f}, "
                     f"{summary['test_samples']:,} images) with the weights of epoch {summary['best_epoch']}; "
                     f"run folder {trainer.run_dir}")


@app.command("eval")
@user_errors_exit_2
def eval_(
    checkpoint: Path = typer.Argument(..., help="A checkpoint written by cnn train (best.npz or last.npz)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    split: str = typer.Option("test", "--split", help="test or train."),
    json_out: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
    offline: bool = typer.Option(False, "--offline", help="Never download; fail if MNIST files are missing."),
    plot: bool = typer.Option(
        False, "--plot", help="Also write the confusion matrix as a PNG beside the checkpoint (<name>-confusion-<split>.png; needs matplotlib)."
    ),
):
    """Accuracy, loss, per-class accuracy and the confusion matrix of a checkpoint."""
    import json

    from .download import resolve_data_dir
    from .evaluate import evaluate_checkpoint
    from .render import print_evaluation

    if split not in ("test", "train"):
        raise UserError(f"--split {split}: choose test or train")
    if plot:
        from .checkpoint import require_checkpoint_file
        from .plots import default_confusion_path, output_path, plot_confusion, require_matplotlib

        require_checkpoint_file(checkpoint)
        require_matplotlib()  # fail before evaluating
        figure_path = output_path(None, default_confusion_path(checkpoint, split))
    result = evaluate_checkpoint(checkpoint, resolve_data_dir(data_dir), split, offline)
    if json_out:
        print(json.dumps(result.to_json()))
    else:
        print_evaluation(result, f"{checkpoint} on the {split} split")
    if plot:
        title = (f"{checkpoint} on the {split} split: accuracy {100 * result.accuracy:.2f}% "
                 f"({result.samples:,} images)")
        written = plot_confusion(result.confusion, title, figure_path)
        print(f"confusion matrix: {written.describe()}", file=sys.stderr if json_out else sys.stdout)


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
    import os

    if receptive or layer is not None:
        import shutil

        from .receptive import coverage_lines, receptive_report

        coverage = receptive_report(config, input_shape, layer)
        if json_out:
            print(json.dumps(coverage.to_json()))
        else:
            print("\n".join(coverage_lines(coverage, max_width=shutil.get_terminal_size((100, 24)).columns)))
        return
    from .params import params_report, render_report

    report = params_report(config, input_shape, sizes, sizes_default=not json_out)
    if json_out:
        print(json.dumps(report.to_json()))
        return
    from rich.console import Console

    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=160)
    for renderable in render_report(report):
        console.print(renderable)


@app.command()
@user_errors_exit_2
def gradcheck(
    config: Optional[str] = typer.Argument(None, help="Check a whole network end to end; without it, the built-in suite of every layer kind."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random inputs and weights."),
):
    """Compare every analytic gradient with central differences in float64 (pass: max relative error < 1e-6)."""
    import json

    from .gradcheck import TOLERANCE, check_network, run_builtin_suite
    from .render import print_gradcheck

    if config is None:
        results = run_builtin_suite(seed)
    else:
        from .config import load_config

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
        None, "--image", metavar="FILE.png", help="Classify your own PNG: any size, dark-on-light or light-on-dark (needs matplotlib or Pillow)."
    ),
    errors: Optional[int] = typer.Option(None, "--errors", min=1, metavar="K", help="Show the first K misclassified digits of the split."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for --random (default: a fresh one, printed)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    split: str = typer.Option("test", "--split", help="test or train."),
    offline: bool = typer.Option(False, "--offline", help="Never download; fail if MNIST files are missing."),
):
    """Draw digits in the terminal beside the checkpoint's top-3 probabilities."""
    from .download import resolve_data_dir
    from .predict import PredictRequest, run_predict

    request = PredictRequest(checkpoint=checkpoint, data_dir=resolve_data_dir(data_dir), split=split,
                             offline=offline, index=index, random=random_, image=image, errors=errors, seed=seed)
    print("\n".join(run_predict(request)))


@app.command()
@user_errors_exit_2
def plot(
    run_dir: Path = typer.Argument(..., help="A run folder written by cnn train (holds metrics.csv)."),
    out: Optional[Path] = typer.Option(None, "--out", help="PNG file or folder to write (default: RUN_DIR/curves.png)."),
):
    """Training curves — loss and accuracy per epoch, train vs validation — as a PNG (needs matplotlib)."""
    from .plots import plot_curves

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
    offline: bool = typer.Option(False, "--offline", help="Never download; fail if MNIST files are missing."),
):
    """The first conv layer's filters and one digit's feature maps through every conv and pool layer, as a PNG."""
    from .download import resolve_data_dir
    from .plots import run_show

    _, summary = run_show(checkpoint, resolve_data_dir(data_dir), split, index, image, offline, out)
    print(summary)


@app.command()
@user_errors_exit_2
def bench(
    config: str = typer.Argument("lenet5", help=CONFIG_HELP),
    batch_sizes: str = typer.Option("1,16,64,256", "--batch-sizes", help="Training and inference batch sizes, comma-separated."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Threads for numba and PyTorch (default: all cores)."),
    against: Optional[str] = typer.Option(
        None, "--against", help="torch: build the same network in PyTorch and time it in the same run, interleaved with ours."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print every figure as JSON."),
    repeat: int = typer.Option(5, "--repeat", help="Repetitions per figure; the median is reported."),
    min_time: float = typer.Option(1.0, "--min-time", help="Seconds each repetition lasts at least."),
    inference_batch: int = typer.Option(1000, "--inference-batch", help="Extra, large batch size for inference."),
    layer_batch: int = typer.Option(64, "--layer-batch", help="Batch size of the per-layer forward/backward breakdown."),
    no_compile: bool = typer.Option(
        False, "--no-compile", help="Skip the JIT compile figures (two subprocesses: empty cache, then filled cache)."
    ),
):
    """Images/s of the training step and inference per batch size, per-layer times and JIT compile times; --against torch for same-run ratios."""
    import json
    import os

    # BLAS pools: kernels/blas.py limits NumPy's and SciPy's to one thread (Numba owns the cores); PyTorch's follow
    # --threads. The JSON's machine.thread_pools records what was loaded and its size.
    from .bench import BenchOptions, parse_batch_sizes, render_bench, run_bench

    options = BenchOptions(config=config, batch_sizes=parse_batch_sizes(batch_sizes), threads=threads,
                           against=against, repeat=repeat, min_time=min_time, inference_batch=inference_batch,
                           layer_batch=layer_batch, compile=not no_compile)

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    result = run_bench(options, progress)
    if json_out:
        print(json.dumps(result))
        return
    from rich.console import Console

    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=140)
    for renderable in render_bench(result):
        console.print(renderable)


def main():  # pragma: no cover - console-script shim
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
