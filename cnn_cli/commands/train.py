"""The training loop: data, run folder, epochs, checkpoints, resume, Ctrl-C.

Determinism: the only randomness is the initial weights (from the seed), one
permutation per epoch drawn from a NumPy generator whose state is saved in every
checkpoint, and the training noise — distortion parameters (data.augment) and
dropout masks — drawn batch by batch from a second generator (the "noise
stream", seeded from the seed too), whose state every checkpoint also saves.
The kernels are deterministic for a given thread count, so a run interrupted at
any batch and resumed ends with the same weights, bit for bit, as one that
never stopped.
"""

from __future__ import annotations

import json
import math
import shlex
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..io import write_atomically, write_text_atomically
from ..nn.checkpoint import load_checkpoint, save_checkpoint
from ..spec.config import Config, dump_yaml
from ..errors import UserError
from .evaluate import evaluate
from .progress import PlainReporter, compile_notice
from .rundir import (METRIC_FIELDS, TEST_FIELDS, _remove_if_empty, check_run_dir, choose_run_dir, take_run_dir,
                     write_metrics)
from .resume import check_resume_compatible
from .stops import first_nonfinite_layer, nonfinite_gradient_layers


class TrainingInterrupted(Exception):
    """Ctrl-C or SIGTERM: the state was saved; carries the command that resumes and the exit status."""

    def __init__(self, resume_command: str, signum: int = signal.SIGINT):
        super().__init__(resume_command)
        self.resume_command = resume_command
        self.exit_code = 128 + int(signum)  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


class TrainingAborted(UserError):
    """A second Ctrl-C/SIGTERM: stopped at once, without (or in the middle of) a save."""

    exit_code = 130


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint stays."""

    exit_code = 1


@dataclass
class TrainOptions:
    data_dir: Path
    run_dir: Optional[Path] = None
    resume: Optional[Path] = None
    offline: bool = False
    threads: Optional[int] = None
    command_prefix: str = "cnn train"  # how the user invoked us, for the resume hint


@dataclass
class Dataset:
    """uint8 images kept as they are on disk; each batch is converted on the fly."""

    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    info: Any = None  # data.registry.DatasetInfo: name, class names, statistics (saved in every checkpoint)


@dataclass
class Position:
    """Where training stands; saved in every checkpoint's meta.json."""

    epoch: int = 0  # epochs fully done
    batch: int = 0  # batches done in the current epoch
    step: int = 0  # optimizer steps done in all
    rng_state: dict = field(default_factory=dict)  # generator state at the start of the current epoch
    loss_sum: float = 0.0  # running sums of the current epoch
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0  # training seconds spent in the current epoch
    best_val_acc: float = -1.0
    best_epoch: int = 0
    history: list = field(default_factory=list)
    noise_state: dict = field(default_factory=dict)  # the noise stream's state when the checkpoint was written
    stopped: Optional[str] = None  # "patience" once early stopping ended the run


# Checkpoints written before these fields existed resume with their defaults.
POSITION_OPTIONAL = ("noise_state", "stopped")
# Second entry of the noise stream's seed: its numbers never coincide with the
# weights' or the permutations' (both from default_rng(seed)).
NOISE_STREAM = 1

# ---------------------------------------------------------------- data


def load_dataset(config: Config, data_dir: Path, offline: bool, console=None, say=None) -> Dataset:
    from ..data import load_training_data, train_val_split

    train_images, train_labels, test_images, test_labels, info = load_training_data(
        config, data_dir, offline, console=console, say=say)
    train_idx, val_idx = train_val_split(len(train_labels), config.data["val_split"], config.train["seed"])
    return Dataset(train_images[train_idx], train_labels[train_idx], train_images[val_idx],
                   train_labels[val_idx], test_images, test_labels, info)


# ---------------------------------------------------------------- run folder


# ---------------------------------------------------------------- training


class Trainer:
    def __init__(self, config: Config, dataset: Dataset, run_dir: Path, options: TrainOptions,
                 reporter: PlainReporter):
        from ..data.augment import make_augmenter
        from ..data import make_preparer
        from ..nn.model import Model
        from ..nn.optim import make_optimizer

        self.config = config
        self.train_cfg = config.train
        self.data = dataset
        self.run_dir = run_dir
        self.options = options
        self.reporter = reporter
        self.model = Model(config)
        self.optimizer = make_optimizer(self.train_cfg, [(n, p) for n, p, _ in self.model.parameters()])
        self.prepare = make_preparer(config, dataset.info)
        self.rng = np.random.default_rng(self.train_cfg["seed"])
        self.noise = np.random.default_rng([self.train_cfg["seed"], NOISE_STREAM])
        self.augment = make_augmenter(config)
        self.position = Position(rng_state=self.rng.bit_generator.state, noise_state=self.noise.bit_generator.state)
        self.interrupted = 0  # the signal that asked us to stop, 0 while none did
        self.saving: Optional[Path] = None  # the checkpoint being written, for a second Ctrl-C's message
        self.lock = None  # runlock.RunLock held from prepare_run until the command ends
        self.resumed = False

    # ------------------------------------------------------------ state

    def restore(self, path: Path) -> None:
        from ..nn.checkpoint_checks import check_meta

        checkpoint = load_checkpoint(path)
        check_resume_compatible(self.config, checkpoint.config, path)
        self.model.load_state_dict(checkpoint.weights, str(path))
        meta = checkpoint.meta
        check_meta(meta, path, self.steps_per_epoch())
        expected = self.optimizer.state_dict()
        for key, target in expected.items():
            given = checkpoint.optimizer.get(key)
            if given is None or np.shape(given) != np.shape(target):
                what = "missing" if given is None else f"of shape {np.shape(given)}, not {np.shape(target)}"
                raise UserError(f"{path}: optimizer state {key} is {what}; the checkpoint is from another optimizer "
                                f"or damaged — resume with its own train.optimizer or start a new run")
        try:
            self.optimizer.load_state_dict(checkpoint.optimizer)
        except (KeyError, TypeError, ValueError, OverflowError) as error:
            raise UserError(f"{path}: cannot resume from this checkpoint (optimizer state: {str(error)[:80]}); "
                            f"it is damaged or from another optimizer") from None
        try:
            self.position = Position(**{k: meta[k] for k in Position.__dataclass_fields__
                                        if k in meta or k not in POSITION_OPTIONAL})
            if self.position.noise_state:
                self.noise.bit_generator.state = self.position.noise_state
        except (KeyError, TypeError, ValueError) as error:
            raise UserError(f"{path}: cannot resume from this checkpoint (position state: {str(error)[:80]}); "
                            f"it is damaged") from None
        self.resumed = True

    def save(self, name: str) -> Path:
        path = self.run_dir / name
        self.position.noise_state = self.noise.bit_generator.state
        meta = dict(vars(self.position))
        meta["threads"] = self.options.threads
        if self.data.info is not None:
            meta["dataset"] = self.data.info.to_json()
        existed = path.exists()
        self.saving = path
        try:
            save_checkpoint(path, self.model.state_dict(), self.optimizer.state_dict(), self.config.resolved, meta)
        except OSError as error:
            kept = "the previous one is intact" if existed else "none was written"
            raise UserError(f"{path}: cannot write the checkpoint ({error.strerror or error}); {kept} — "
                            f"free some space or choose another --run-dir") from None
        finally:
            self.saving = None
        return path

    # ------------------------------------------------------------ loop

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.data.train_labels) / self.train_cfg["batch_size"])

    def _load_kernels(self) -> None:
        """Run every kernel of a training step once, on one image and on copies of
        the optimizer's arrays, before the clock starts: Numba compiles them here
        (a first run, said on screen) or loads them from its cache, and the
        epochs' seconds and img/s measure training only. Weights, optimizer state
        and the random generator are untouched, so resuming stays bit for bit."""
        with compile_notice(self.reporter.message):
            images = self.data.train_images[:1]
            if self.augment is not None:  # a throwaway generator: the noise stream stays untouched
                images = self.augment(images, np.random.default_rng(0))
            x = self.prepare(images)
            self.model.loss_and_gradients(x, self.data.train_labels[:1])
            self.optimizer.load_kernel(next(self.model.parameters()))
            if self.train_cfg["optimizer"] == "sdlm":
                self.model.curvature(x, self.data.train_labels[:1])
            self.model.clear_caches()

    def run(self) -> dict[str, Any]:
        from ..nn.optim import learning_rate

        cfg, pos = self.train_cfg, self.position
        batch_size, epochs = cfg["batch_size"], cfg["epochs"]
        n, steps = len(self.data.train_labels), self.steps_per_epoch()
        previous_handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        self._load_kernels()
        try:
            while pos.epoch < epochs and not pos.stopped:
                # The permutation is re-drawn from the state saved at the epoch's start,
                # so a resume in the middle of an epoch sees the same order.
                self.rng.bit_generator.state = pos.rng_state
                order = self.rng.permutation(n)
                if pos.batch == 0 and cfg["optimizer"] == "sdlm":
                    self._estimate_curvature(order)
                self.reporter.start_epoch(pos.epoch + 1, epochs, steps, pos.batch)
                while pos.batch < steps:
                    started = time.perf_counter()
                    idx = order[pos.batch * batch_size:(pos.batch + 1) * batch_size]
                    images = self.data.train_images[idx]
                    if self.augment is not None:
                        images = self.augment(images, self.noise)
                    x = self.prepare(images)
                    y = self.data.train_labels[idx]
                    lr = learning_rate(cfg, pos.step, steps)
                    loss, logits = self.model.loss_and_gradients(x, y, self.noise, cfg["label_smoothing"])
                    if pos.step == 0 and not self.resumed:
                        self._check_first_step(loss, x, lr)
                    if not math.isfinite(loss):
                        self._diverged(f"loss became {loss} at epoch {pos.epoch + 1}, batch {pos.batch + 1}", lr)
                    self.optimizer.step(list(self.model.parameters()), lr)
                    pos.batch += 1
                    pos.step += 1
                    pos.loss_sum += loss * len(y)
                    pos.correct += int((logits.argmax(axis=1) == y).sum())
                    pos.seen += len(y)
                    elapsed = time.perf_counter() - started
                    pos.seconds += elapsed
                    self.reporter.batch(pos.batch, pos.loss_sum / pos.seen, pos.correct / pos.seen,
                                        pos.seen / max(pos.seconds, 1e-9))
                    if self.interrupted:
                        self._check_finite_weights(lr)
                        self.save("last.npz")
                        raise TrainingInterrupted(self.resume_command(), self.interrupted)
                self._finish_epoch(learning_rate(cfg, pos.step - 1, steps))
        except BaseException:
            self.release_lock()  # interrupted or failed: the run folder is free for --resume
            raise
        finally:
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
            self.model.clear_caches()
            self.reporter.close()
        summary = self._final_summary()
        self.release_lock()
        return summary

    def release_lock(self) -> None:
        if self.lock is not None:
            self.lock.release()  # idempotent: the command's own release at its end is then a no-op

    def _estimate_curvature(self, order: np.ndarray) -> None:
        """sdlm: re-estimate ∂²E/∂w² on the epoch's first train.sdlm_samples patterns
        (LeCun et al. 1998: 500, before each pass); its time counts as training."""
        started = time.perf_counter()
        idx = order[:self.train_cfg["sdlm_samples"]]
        x = self.prepare(self.data.train_images[idx])
        self.optimizer.set_curvature(self.model.curvature(x, self.data.train_labels[idx]))
        self.position.seconds += time.perf_counter() - started

    def _diverged(self, what: str, lr: float):
        last = self.run_dir / "last.npz"
        kept = f"{last} keeps the last good state" if last.exists() else "no checkpoint was saved yet"
        raise TrainingDiverged(f"{what} (lr {lr:.3g}); training stopped, {kept}; "
                               f"try a lower learning rate, e.g. --lr {lr / 10:.3g}")

    def _check_first_step(self, loss: float, x: np.ndarray, lr: float) -> None:
        """Before any update, a NaN/inf loss or gradient is the network's arithmetic, never the learning
        rate: say which layers overflowed instead of suggesting a lower --lr."""
        if math.isfinite(loss) and all(g is None or np.isfinite(g).all() for _, _, g in self.model.parameters()):
            return
        if not math.isfinite(loss):
            where, what = first_nonfinite_layer(self.model, x), f"the loss is {loss}"
        else:
            where, what = nonfinite_gradient_layers(self.model), "the gradients hold NaN or inf"
        raise TrainingDiverged(f"{what} at the very first step, before any weight update, so not because of "
                               f"the learning rate: {where} overflows float32 with these settings; no checkpoint "
                               f"was saved — change that layer (e.g. a smaller lp p, another activation) or the "
                               f"input normalization")

    def _check_finite_weights(self, lr: float) -> None:
        # A step may push a weight to inf while its loss is still finite: such
        # weights must never become a checkpoint.
        if not all(np.isfinite(p).all() for _, p, _ in self.model.parameters()):
            self._diverged(f"weights became infinite or NaN in epoch {self.position.epoch + 1}", lr)

    def _finish_epoch(self, lr: float) -> None:
        pos = self.position
        self._check_finite_weights(lr)
        val = None
        if len(self.data.val_labels):
            val = evaluate(self.model, self.data.val_images, self.data.val_labels, self.prepare)
        row = {
            "epoch": pos.epoch + 1, "epochs": self.train_cfg["epochs"],
            "train_loss": pos.loss_sum / max(pos.seen, 1), "train_acc": pos.correct / max(pos.seen, 1),
            "val_loss": val.loss if val else None, "val_acc": val.accuracy if val else None,
            "lr": lr, "seconds": pos.seconds, "images_per_s": pos.seen / max(pos.seconds, 1e-9),
        }
        if self.train_cfg.get("track_test"):
            test = evaluate(self.model, self.data.test_images, self.data.test_labels, self.prepare)
            row["test_loss"], row["test_acc"] = test.loss, test.accuracy
        pos.history.append({k: row[k] for k in METRIC_FIELDS + TEST_FIELDS if k in row})
        pos.epoch += 1
        pos.batch = 0
        pos.loss_sum, pos.correct, pos.seen, pos.seconds = 0.0, 0, 0, 0.0
        pos.rng_state = self.rng.bit_generator.state
        # Without a validation set, the latest epoch counts as the best.
        score = val.accuracy if val else float(pos.epoch)
        improved = score > pos.best_val_acc
        if improved:
            pos.best_val_acc, pos.best_epoch = score, pos.epoch
        patience = self.train_cfg["patience"]
        if val and patience and pos.epoch - pos.best_epoch >= patience and pos.epoch < self.train_cfg["epochs"]:
            pos.stopped = "patience"
        # best.npz first: a kill between the two writes then leaves last.npz one
        # epoch behind (redone on resume), never pointing at a best that is missing.
        if improved:
            self.save("best.npz")
        self.save("last.npz")
        write_metrics(self.run_dir / "metrics.csv", pos.history)
        self.reporter.end_epoch(row)
        if pos.stopped:
            self.reporter.message(f"stopping early: validation accuracy has not improved for {patience} epochs "
                                  f"(best {100 * pos.best_val_acc:.2f}% at epoch {pos.best_epoch})")

    def _final_summary(self) -> dict[str, Any]:
        best_path = self.run_dir / "best.npz"
        self.model.load_state_dict(load_checkpoint(best_path).weights, str(best_path))
        started = time.perf_counter()
        test = evaluate(self.model, self.data.test_images, self.data.test_labels, self.prepare)
        trainable, fixed = self.model.count_parameters()
        history = self.position.history
        summary = {
            "config": self.config.name,
            "dataset": self.data.info.name if self.data.info is not None else None,
            "test_accuracy": test.accuracy,
            "test_loss": test.loss,
            "test_samples": test.samples,
            "best_epoch": self.position.best_epoch,
            "best_val_accuracy": history[self.position.best_epoch - 1]["val_acc"] if history else None,
            "epochs": len(history),
            "stopped": self.position.stopped or "epochs",
            "train_samples": int(len(self.data.train_labels)),
            "val_samples": int(len(self.data.val_labels)),
            "train_seconds": sum(row["seconds"] for row in history),
            "test_seconds": time.perf_counter() - started,
            "trainable_params": trainable,
            "fixed_params": fixed,
        }
        write_text_atomically(self.run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        return summary

    def _on_signal(self, signum, frame) -> None:
        if not self.interrupted:  # finish the batch, save, then stop (TrainingInterrupted)
            self.interrupted = signum
            return
        # A second Ctrl-C/SIGTERM: the user really wants out now. Raised inside a save,
        # write_atomically deletes its temp file, so the previous checkpoint stays whole.
        last = self.run_dir / "last.npz"
        kept = (f"{last} holds the state of its epoch; resume with:  {self.resume_command()}" if last.exists()
                else "no checkpoint was saved yet")
        if self.saving is not None:
            error = TrainingAborted(f"interrupted again while writing {self.saving.name}: that write was abandoned "
                                    f"and its temp file removed; {kept}")
        else:
            error = TrainingAborted(f"interrupted twice: stopped without saving; {kept}")
        error.exit_code = 128 + int(signum)
        raise error

    def resume_command(self) -> str:
        parts = ["--resume", str(self.run_dir / "last.npz")]
        if self.options.data_dir != Path("data"):
            parts += ["--data-dir", str(self.options.data_dir)]
        if self.options.threads:
            parts += ["--threads", str(self.options.threads)]
        return " ".join([self.options.command_prefix] + [shlex.quote(p) for p in parts])


def prepare_run(config: Config, options: TrainOptions, reporter: PlainReporter) -> Trainer:
    """Validate everything, then create the run folder: nothing exists before that."""
    from ..limits import require_network_fits

    # A config can validate and still need terabytes: refuse before data, kernels or folders.
    require_network_fits(config, config.train["batch_size"], True, config.source)
    if options.threads is not None:
        import numba

        if not 1 <= options.threads <= numba.config.NUMBA_NUM_THREADS:
            raise UserError(f"--threads {options.threads}: must be between 1 and {numba.config.NUMBA_NUM_THREADS} "
                            f"(the cores numba may use)")
        numba.set_num_threads(options.threads)
    if options.resume is not None:  # before loading (maybe downloading) data the checkpoint cannot continue on
        check_resume_compatible(config, load_checkpoint(options.resume).config, Path(options.resume))
    dataset = load_dataset(config, options.data_dir, options.offline, reporter.console, say=reporter.message)
    if options.resume is not None:
        run_dir = Path(options.run_dir or Path(options.resume).parent)
    else:
        run_dir = choose_run_dir(config, options.run_dir)
    same_folder = options.resume is not None and run_dir.resolve() == Path(options.resume).parent.resolve()
    check_run_dir(run_dir, resuming=same_folder)
    trainer = Trainer(config, dataset, run_dir, options, reporter)
    if options.resume is not None:
        # Before creating anything, so a bad checkpoint leaves no folder behind.
        trainer.restore(Path(options.resume))
        if not same_folder:
            # The run goes on in a new folder: bring the best weights so far along.
            best = Path(options.resume).parent / "best.npz"
            if not best.is_file():
                raise UserError(f"{best}: missing; --resume into another --run-dir needs the best.npz beside "
                                f"the checkpoint")
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        trainer.lock = take_run_dir(run_dir, resuming=same_folder)
        if options.resume is not None and not same_folder:
            best_bytes = (Path(options.resume).parent / "best.npz").read_bytes()
            write_atomically(run_dir / "best.npz", lambda handle: handle.write(best_bytes))
        write_text_atomically(run_dir / "config.yaml", dump_yaml(config.resolved))
    except BaseException as error:
        if trainer.lock is not None:
            trainer.lock.release()
        if created:
            _remove_if_empty(run_dir)
        if isinstance(error, OSError):
            raise UserError(f"{run_dir}: cannot write the run folder ({error.strerror or error}); "
                            f"choose another --run-dir") from None
        raise
    return trainer


# Settings a resumed run must share with the run it continues: they fix the
# train/validation split, the shuffling and what a saved batch position means.
