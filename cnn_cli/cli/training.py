"""`cnn download`, `cnn train`, `cnn eval`, `cnn augment`: data in, models out."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import UserError
from .app import CONFIG_HELP, DATA_DIR_HELP, DATASET_HELP, app, checked_dataset, dataset_option, user_errors_exit_2


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
    from ..data.download import download_dataset, resolve_data_dir
    from ..spec.datasets import dataset_dir, get_dataset

    spec = get_dataset(dataset)
    folder = dataset_dir(resolve_data_dir(data_dir), spec.name)
    results = download_dataset(spec.name, resolve_data_dir(data_dir), mirrors=mirror, force=force,
                               verify=not no_verify, timeout=timeout)
    fetched = sum(r.status == "fetched" for r in results.values())
    unofficial = [r.name for r in results.values() if not r.verified]
    note = f"; {len(unofficial)} not the official {spec.title} (accepted with --no-verify)" if unofficial else ""
    print(f"{spec.title} ready in {folder}: {fetched} fetched, {len(results) - fetched} already present{note}")


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

    from ..commands.stops import Terminated, raise_terminated, stopped_early

    # SIGTERM unwinds like Ctrl-C (temp files removed, lock released); the training loop saves first.
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        _train(config, data_dir, run_dir, epochs, batch_size, lr, optimizer, seed, threads, set_, resume, offline,
               quiet, dataset, patience)
    except (KeyboardInterrupt, Terminated) as stop:
        from ..lastresort import current_run_dir

        raise stopped_early(current_run_dir(), getattr(stop, "signum", signal.SIGINT)) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _train(config, data_dir, run_dir, epochs, batch_size, lr, optimizer, seed, threads, set_, resume, offline, quiet,
           dataset, patience):
    from ..spec.config import load_config, parse_set_option
    from ..data.download import resolve_data_dir
    from ..commands.progress import make_reporter
    from ..commands.resume import config_for_resume
    from ..commands.train import TrainingInterrupted, TrainOptions, prepare_run

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
    from ..lastresort import doing, set_log_dir

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

    from ..data.download import resolve_data_dir
    from ..commands.evaluate import evaluate_checkpoint
    from ..commands.render import print_evaluation

    if split not in ("test", "train"):
        raise UserError(f"--split {split}: choose test or train")
    dataset = checked_dataset(dataset)
    if plot:
        from ..nn.checkpoint import require_checkpoint_file
        from ..commands.plot import default_confusion_path, output_path, plot_confusion, require_matplotlib

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
    from ..commands.augment import run_augment
    from ..spec.config import load_config, parse_set_option
    from ..data.download import resolve_data_dir

    cfg = load_config(config, [parse_set_option(text) for text in set_])
    print("\n".join(run_augment(cfg, resolve_data_dir(data_dir), split, index, count, seed, offline, out)))
