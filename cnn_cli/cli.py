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
    """Turn a UserError into one line on stderr and exit status 2 — never a traceback.

    Under it, the last-resort net (lastresort.py): an OSError, MemoryError, RecursionError
    or UnicodeError no check caught is one line too (exit 2); any other exception is a
    bug, reported in one line with its traceback in a log file."""
    name = "cnn " + command.__name__.rstrip("_")

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from . import lastresort

        lastresort.make_output_safe()
        lastresort.set_log_dir(None)  # crash logs go to the temp folder until a command names a run folder
        try:
            lastresort.check_path_arguments(kwargs)
            return command(*args, **kwargs)
        except UserError as error:
            _one_line(f"error: {error}")
            raise typer.Exit(code=error.exit_code)
        except (typer.Exit, _CLICK_EXCEPTION, _CLICK_ABORT, KeyboardInterrupt):
            raise
        except (OSError, MemoryError, RecursionError, UnicodeError) as error:
            _one_line("error: " + lastresort.describe_failure(name, error))
            raise typer.Exit(code=2)
        except Exception as error:
            _one_line("error: " + lastresort.report_bug(name, error))
            raise typer.Exit(code=lastresort.BUG_EXIT)

    return wrapper


def wide_console(width: int):
    """A Rich console for wide tables: the terminal's width, or `width` columns when
    the output goes to a file or pipe and COLUMNS does not say otherwise."""
    import os

    from rich.console import Console

    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=width)
    return console


def _one_line(text: str) -> None:
    print(" ".join(text.splitlines()), file=sys.stderr)


DATA_DIR_HELP = ("Data folder (default: $CNN_DATA_DIR, else ./data): MNIST's files in it, other datasets' "
                 "in DIR/<dataset>/.")
DATASET_HELP = "mnist, fashion-mnist, kmnist, cifar10 or folder (overrides data.dataset)."
CKPT_DATASET_HELP = "The dataset the checkpoint was trained on (it knows it: only checked, a mismatch is refused)."


def dataset_option(help_text: str = CKPT_DATASET_HELP):
    return typer.Option(None, "--dataset", metavar="NAME", help=help_text)


def checked_dataset(name: Optional[str]) -> Optional[str]:
    """--dataset NAME as its registry key; an unknown name is one line with the nearest one."""
    if name is None:
        return None
    from .spec.datasets import get_dataset

    return get_dataset(name).name


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
    dataset: str = typer.Option("mnist", "--dataset", metavar="NAME", help="mnist, fashion-mnist, kmnist or cifar10."),
):
    """Fetch a dataset's official files (MNIST by default), check their MD5s and store them atomically."""
    from .data.download import download_dataset, resolve_data_dir
    from .spec.datasets import dataset_dir, get_dataset

    spec = get_dataset(dataset)
    folder = dataset_dir(resolve_data_dir(data_dir), spec.name)
    results = download_dataset(spec.name, resolve_data_dir(data_dir), mirrors=mirror, force=force,
                               verify=not no_verify, timeout=timeout)
    fetched = sum(r.status == "fetched" for r in results.values())
    unofficial = [r.name for r in results.values() if not r.verified]
    note = f"; {len(unofficial)} not the official {spec.title} (accepted with --no-verify)" if unofficial else ""
    print(f"{spec.title} ready in {folder}: {fetched} fetched, {len(results) - fetched} already present{note}")

CONFIG_HELP = "A config YAML file, or the bare name of a shipped one (lenet5, lenet5-classic, caffe-lenet, fashion-lenet5, cifar10)."


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
    patience: Optional[int] = typer.Option(None, "--patience", help="Overrides train.patience: stop after N epochs without a better validation accuracy."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue from a checkpoint (last.npz) where it stopped."),
    offline: bool = typer.Option(False, "--offline", help="Never download; fail if the dataset's files are missing."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Plain line-by-line output, no progress bars."),
    dataset: Optional[str] = dataset_option(DATASET_HELP),
):
    """Train a network; writes config.yaml, metrics.csv, last.npz, best.npz and summary.json to the run folder."""
    import signal

    from .commands.stops import Terminated, raise_terminated, stopped_early

    # SIGTERM unwinds like Ctrl-C (temp files removed, lock released); the training loop saves first.
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        _train(config, data_dir, run_dir, epochs, batch_size, lr, optimizer, seed, threads, set_, resume, offline,
               quiet, dataset, patience)
    except (KeyboardInterrupt, Terminated) as stop:
        from .lastresort import current_run_dir

        raise stopped_early(current_run_dir(), getattr(stop, "signum", signal.SIGINT)) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _train(config, data_dir, run_dir, epochs, batch_size, lr, optimizer, seed, threads, set_, resume, offline, quiet,
           dataset, patience):
    from .spec.config import load_config, parse_set_option
    from .data.download import resolve_data_dir
    from .commands.progress import make_reporter
    from .commands.train import TrainingInterrupted, TrainOptions, config_for_resume, prepare_run

    sets = [parse_set_option(text) for text in set_]
    if dataset is not None:
        sets.append((["data", "dataset"], checked_dataset(dataset)))
    for key, value in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr),
                       ("optimizer", optimizer), ("seed", seed), ("patience", patience)):
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
    from .lastresort import doing, set_log_dir

    reporter = make_reporter(quiet)
    with doing("preparing the run (data, network, run folder)"):
        trainer = prepare_run(cfg, options, reporter)
    set_log_dir(trainer.run_dir)
    try:
        reporter.message(f"training {cfg.name} in {trainer.run_dir} ({len(trainer.data.train_labels):,} train, "
                         f"{len(trainer.data.val_labels):,} validation images)")
        with doing(f"training in {trainer.run_dir}"):
            summary = trainer.run()
    except TrainingInterrupted as stop:
        print(f"interrupted: state saved to {trainer.run_dir / 'last.npz'}; resume with:\n  {stop.resume_command}",
              file=sys.stderr)
        raise typer.Exit(code=stop.exit_code)
    finally:
        trainer.lock.release()
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
    offline: bool = typer.Option(False, "--offline", help="Never download; fail if the dataset's files are missing."),
    plot: bool = typer.Option(
        False, "--plot", help="Also write the confusion matrix as a PNG beside the checkpoint (<name>-confusion-<split>.png; needs matplotlib)."
    ),
    dataset: Optional[str] = dataset_option(),
):
    """Accuracy, loss, per-class accuracy and the confusion matrix of a checkpoint."""
    import json

    from .data.download import resolve_data_dir
    from .commands.evaluate import evaluate_checkpoint
    from .commands.render import print_evaluation

    if split not in ("test", "train"):
        raise UserError(f"--split {split}: choose test or train")
    dataset = checked_dataset(dataset)
    if plot:
        from .nn.checkpoint import require_checkpoint_file
        from .commands.plot import default_confusion_path, output_path, plot_confusion, require_matplotlib

        require_checkpoint_file(checkpoint)
        require_matplotlib()  # fail before evaluating
        figure_path = output_path(None, default_confusion_path(checkpoint, split))
    result = evaluate_checkpoint(checkpoint, resolve_data_dir(data_dir), split, offline, dataset)
    if json_out:
        print(json.dumps(result.to_json()))
    else:
        print_evaluation(result, f"{checkpoint} on the {split} split")
    if plot:
        title = (f"{checkpoint} on the {split} split: accuracy {100 * result.accuracy:.2f}% "
                 f"({result.samples:,} images)")
        written = plot_confusion(result.confusion, title, figure_path, result.class_names())
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

        from .commands.receptive import coverage_lines, receptive_report

        coverage = receptive_report(config, input_shape, layer)
        if json_out:
            print(json.dumps(coverage.to_json()))
        else:
            print("\n".join(coverage_lines(coverage, max_width=shutil.get_terminal_size((100, 24)).columns)))
        return
    from .commands.params import params_report
    from .commands.params_render import render_report

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

    from .commands.gradcheck import TOLERANCE, check_network, run_builtin_suite
    from .commands.render import print_gradcheck

    if config is None:
        results = run_builtin_suite(seed)
    else:
        from .spec.config import load_config

        results = check_network(load_config(config), seed)
    passed = all(r.passed for r in results)
    if json_out:
        print(json.dumps({"cases": [r.to_json() for r in results], "passed": passed}))
    else:
        print_gradcheck(results, TOLERANCE)
    if not passed:
        raise typer.Exit(code=1)


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
    from .commands.explain import ConvOptions, run_conv

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
    from .commands.explain import PoolOptions, run_pool

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

    from .commands.explain_lenet5 import lenet5_report, print_lenet5

    data = lenet5_report()
    if json_out:
        print(json.dumps(data))
    else:
        print_lenet5(data)


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
    from .data.download import resolve_data_dir
    from .commands.predict import PredictRequest, run_predict

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
    from .commands.plot import plot_curves

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
    from .data.download import resolve_data_dir
    from .commands.plot import run_show

    _, summary = run_show(checkpoint, resolve_data_dir(data_dir), split, index, image, offline, out,
                          checked_dataset(dataset))
    print(summary)


@app.command()
@user_errors_exit_2
def export(
    checkpoint: Path = typer.Argument(..., help="A checkpoint written by cnn train (best.npz or last.npz)."),
    fmt: str = typer.Option("onnx", "--format", help="onnx (needs the onnx extra) or torch (a state_dict; needs PyTorch)."),
    out: Optional[Path] = typer.Option(None, "--out", help="File to write (default: the checkpoint's name with .onnx or .pt)."),
):
    """The trained network as an ONNX model (preprocessing and class names inside) or a PyTorch state_dict."""
    from .commands.export import run_export

    print(run_export(checkpoint, fmt, out).summary)


@app.command()
@user_errors_exit_2
def serve(
    checkpoint: Path = typer.Argument(..., help="A checkpoint written by cnn train (best.npz or last.npz)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0 exposes the page to your network)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to listen on (0: any free port)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP + " Its test digits feed 'show a test digit'."),
):
    """A local page: draw a digit, see the top-3 probabilities, the MNIST-style preprocessing and every feature map."""
    from .commands.serve import run_serve
    from .data.download import resolve_data_dir

    run_serve(checkpoint, host, port, resolve_data_dir(data_dir))


@app.command()
@user_errors_exit_2
def augment(
    config: str = typer.Argument("lenet5", help=CONFIG_HELP),
    index: int = typer.Option(0, "--index", min=0, metavar="N", help="The digit of the split to distort."),
    count: int = typer.Option(11, "--count", metavar="K", help="How many distorted versions to draw."),
    out: Optional[Path] = typer.Option(None, "--out", metavar="FILE.png", help="Also write them as a PNG grid (needs matplotlib)."),
    set_: List[str] = typer.Option([], "--set", help="Override config fields, e.g. data.augment.rotate=15; repeatable."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the random distortions."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    split: str = typer.Option("train", "--split", help="train or test."),
    offline: bool = typer.Option(False, "--offline", help="Never download; fail if MNIST files are missing."),
):
    """One digit and K distorted versions of it, as data.augment draws them for training."""
    from .commands.augment import run_augment
    from .spec.config import load_config, parse_set_option
    from .data.download import resolve_data_dir

    cfg = load_config(config, [parse_set_option(text) for text in set_])
    print("\n".join(run_augment(cfg, resolve_data_dir(data_dir), split, index, count, seed, offline, out)))


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

    # BLAS pools: kernels/runtime/blas.py limits NumPy's and SciPy's to one thread (Numba owns the cores); PyTorch's follow
    # --threads. The JSON's machine.thread_pools records what was loaded and its size.
    from .commands.bench import BenchOptions, parse_batch_sizes, run_bench
    from .commands.bench_render import render_bench

    options = BenchOptions(config=config, batch_sizes=parse_batch_sizes(batch_sizes), threads=threads,
                           against=against, repeat=repeat, min_time=min_time, inference_batch=inference_batch,
                           layer_batch=layer_batch, compile=not no_compile)

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    result = run_bench(options, progress)
    if json_out:
        print(json.dumps(result))
        return
    console = wide_console(140)
    for renderable in render_bench(result):
        console.print(renderable)


def main():  # pragma: no cover - console-script shim
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
