"""PNG figures: training curves, confusion matrix, first-layer filters and feature maps.

matplotlib is an optional extra (`pip install 'cnn-cli[plot]'`). It is imported
inside these functions only, with the non-interactive Agg backend; without it
every function raises a UserError saying how to install it. Figures are drawn on
a bare `Figure` (no pyplot state) and written atomically, at an exact pixel size
(figsize · dpi, both chosen so the product is a whole number).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import UserError
from ..limits import short_repr

INSTALL_HINT = "pip install 'cnn-cli[plot]' (or pip install matplotlib)"
DPI = 100
CURVES_SIZE = (1000, 400)  # pixels
CURVES_WITH_TEST_SIZE = (1450, 400)  # a third panel: error per pass, as LeCun et al. 1998's Figure 5
CONFUSION_SIZE = (700, 600)
MAX_MAPS = 16  # feature maps / filters drawn per row
CURVE_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")
TEST_COLUMNS = ("test_loss", "test_acc")  # only in runs with train.track_test


@dataclass
class Written:
    path: Path
    size: tuple[int, int]  # (width, height) in pixels, as asked of matplotlib

    def describe(self) -> str:
        return f"{self.path} ({self.size[0]}×{self.size[1]} PNG)"


def require_matplotlib():
    """Import matplotlib with the Agg backend; (Figure, FigureCanvasAgg). UserError when missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError(f"drawing PNG figures needs matplotlib, which is not installed; {INSTALL_HINT}") from None
    return Figure, FigureCanvasAgg


def _new_figure(size_px: tuple[int, int]):
    Figure, FigureCanvasAgg = require_matplotlib()
    width, height = size_px
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def output_path(out: Optional[Path], default: Path) -> Path:
    """--out if given (a folder gets the default file name), else the default; checks the folder exists."""
    path = Path(default) if out is None else Path(out)
    if out is not None and path.is_dir():
        path = path / Path(default).name
    if path.suffix.lower() != ".png":
        raise UserError(f"{path}: figures are written as PNG; give a file name ending in .png")
    if not path.parent.is_dir():
        raise UserError(f"{path.parent}: no such folder for the figure; create it or choose another --out")
    return path


def save_png(fig, path: Path, size_px: tuple[int, int]) -> Written:
    """Write the figure atomically (temp file beside it, then rename)."""
    from ..io import write_atomically

    try:
        write_atomically(path, lambda handle: fig.savefig(handle, format="png", dpi=DPI))
    except OSError as error:
        raise UserError(f"{path}: cannot write the figure ({error.strerror or error})") from None
    return Written(Path(path), size_px)


# ---------------------------------------------------------------- training curves


def read_metrics(run_dir: Path) -> dict[str, np.ndarray]:
    """metrics.csv of a run folder as float columns (empty cells → NaN)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run folder; give a folder written by cnn train (runs/<name>)")
    path = run_dir / "metrics.csv"
    if not path.is_file():
        raise UserError(f"{path}: not found; give a run folder written by cnn train "
                        f"(it appears after the first epoch)")
    from ..limits import MAX_CSV_BYTES

    try:
        if path.stat().st_size > MAX_CSV_BYTES:
            raise UserError(f"{path}: over {MAX_CSV_BYTES:,} bytes, far more than a run's metrics; "
                            f"give a metrics.csv written by cnn train")
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
            header = rows[0].keys() if rows else []
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"{path}: cannot read it ({error})") from None
    missing = [c for c in CURVE_COLUMNS if c not in header]
    if not rows:
        raise UserError(f"{path}: no epochs recorded yet; train at least one epoch")
    if missing:
        raise UserError(f"{path}: missing column {missing[0]}; expected {','.join(CURVE_COLUMNS)},… "
                        f"as written by cnn train")
    columns = {}
    for name in CURVE_COLUMNS + tuple(c for c in TEST_COLUMNS if c in header):
        values = []
        for line, row in enumerate(rows, start=2):
            text = (row.get(name) or "").strip()
            try:
                values.append(float(text) if text else math.nan)
            except ValueError:
                raise UserError(f"{path}: line {line}, column {name}: {short_repr(text)} is not a number") from None
            if math.isinf(values[-1]) or (name == "epoch" and not (values[-1] >= 0 and values[-1] < 1e9)):
                raise UserError(f"{path}: line {line}, column {name}: {short_repr(text)} is out of range; "
                                f"give a metrics.csv written by cnn train")
        columns[name] = np.array(values)
    return columns


def _run_title(run_dir: Path) -> str:
    from ..spec.config import parse_yaml
    from ..spec.safe_yaml import read_config_text

    name = Path(run_dir).resolve().name
    path = Path(run_dir) / "config.yaml"
    try:  # the bounded reader and YAML loader: a doctored config.yaml cannot hang or exhaust memory
        config = parse_yaml(read_config_text(path), str(path)) if path.is_file() else None
    except UserError:  # the title is cosmetic; metrics.csv is what matters
        config = None
    if isinstance(config, dict) and isinstance(config.get("name"), str) and config["name"] != name:
        name = f"{name} ({short_repr(config['name'], 40)[1:-1]})"
    return name


def _loss_label(run_dir: Path) -> str:
    """What the run minimised, from its config.yaml (cosmetic, like the title)."""
    try:
        import yaml

        config = yaml.safe_load((Path(run_dir) / "config.yaml").read_text(encoding="utf-8"))
        if config["train"]["loss"] == "map":
            return "loss (MAP criterion)"
    except Exception:  # older runs have no train.loss: cross-entropy
        pass
    return "loss (cross-entropy)"


def _summary(run_dir: Path) -> dict:
    """summary.json's figures the plot uses, each checked; a missing or doctored one is left out."""
    from ..nn.checkpoint_checks import parse_json_text
    from ..limits import MAX_JSON_BYTES

    path = Path(run_dir) / "summary.json"
    try:
        with open(path, "rb") as handle:
            text = handle.read(MAX_JSON_BYTES + 1).decode("utf-8")
        summary = parse_json_text(text, str(path), "") if len(text) <= MAX_JSON_BYTES else None
    except (OSError, ValueError, UserError):
        return {}
    if not isinstance(summary, dict):
        return {}
    checked = {}
    best, test_acc = summary.get("best_epoch"), summary.get("test_accuracy")
    if isinstance(best, int) and not isinstance(best, bool) and 0 < best < 10 ** 9:
        checked["best_epoch"] = best
    if isinstance(test_acc, (int, float)) and not isinstance(test_acc, bool) and 0 <= test_acc <= 1:
        checked["test_accuracy"] = float(test_acc)
    return checked


def plot_curves(run_dir: Path, out: Optional[Path] = None) -> Written:
    """Loss and accuracy per epoch, train vs validation; default file: RUN_DIR/curves.png."""
    require_matplotlib()
    run_dir = Path(run_dir)
    m = read_metrics(run_dir)
    path = output_path(out, run_dir / "curves.png")
    summary = _summary(run_dir)
    with_test = "test_acc" in m and np.isfinite(m["test_acc"]).any()
    size = CURVES_WITH_TEST_SIZE if with_test else CURVES_SIZE
    fig = _new_figure(size)
    axes = fig.subplots(1, 3 if with_test else 2)
    loss_ax, acc_ax = axes[0], axes[1]
    epochs = m["epoch"]
    style = dict(marker="o", markersize=3)
    for ax, key, label, scale in ((loss_ax, "loss", _loss_label(run_dir), 1.0),
                                  (acc_ax, "acc", "accuracy (%)", 100.0)):
        ax.plot(epochs, m[f"train_{key}"] * scale, label="train", color="tab:blue", **style)
        if np.isfinite(m[f"val_{key}"]).any():
            ax.plot(epochs, m[f"val_{key}"] * scale, label="validation", color="tab:orange", **style)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if len(epochs) and np.all(np.isfinite(epochs)) and epochs.max() - epochs.min() < 15:
            ax.set_xticks(np.unique(epochs))
    best = summary.get("best_epoch")
    if isinstance(best, (int, float)) and best > 0:
        for ax in (loss_ax, acc_ax):
            ax.axvline(best, color="gray", linestyle=":", linewidth=1, label=f"best epoch ({int(best)})")
    test_acc = summary.get("test_accuracy")
    if isinstance(test_acc, (int, float)) and math.isfinite(test_acc):
        acc_ax.axhline(100 * test_acc, color="tab:green", linestyle="--", linewidth=1,
                       label=f"test {100 * test_acc:.2f}%")
    loss_ax.set_title("loss")
    acc_ax.set_title("accuracy")
    for ax in (loss_ax, acc_ax):
        ax.legend(fontsize="small")
    if with_test:
        _error_panel(axes[2], m)
    fig.suptitle(f"{_run_title(run_dir)}: {len(epochs)} epoch{'s' if len(epochs) != 1 else ''}")
    fig.subplots_adjust(left=0.07 if not with_test else 0.05, right=0.98, bottom=0.13, top=0.84, wspace=0.25)
    return save_png(fig, path, size)


def error_curves(m: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(training error %, test error %) per epoch of a run that tracked the test set.
    The training error is the running one of the epoch (the weights changed while
    it was counted), not a second pass over the training set as the paper's."""
    return 100 * (1 - m["train_acc"]), 100 * (1 - m["test_acc"])


def _error_panel(ax, m: dict[str, np.ndarray]) -> None:
    """Test and training error per pass on a log scale, like the paper's Figure 5."""
    train_err, test_err = error_curves(m)
    style = dict(marker="o", markersize=3)
    ax.plot(m["epoch"], test_err, label="test", color="tab:green", **style)
    ax.plot(m["epoch"], train_err, label="training (running)", color="tab:blue", **style)
    ax.set_yscale("log")
    ax.set_xlabel("training set iterations (epochs)")
    ax.set_ylabel("error rate (%)")
    ax.set_title("error per pass (test tracked, not used to choose)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")


# ---------------------------------------------------------------- confusion matrix


def default_confusion_path(checkpoint: Path, split: str) -> Path:
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}-confusion-{split}.png")


def plot_confusion(confusion: Sequence[Sequence[int]], title: str, path: Path,
                   names: Optional[Sequence[str]] = None) -> Written:
    """Counts in every cell, colour = share of the true class (row); axes labelled with the class names."""
    require_matplotlib()
    counts = np.asarray(confusion, dtype=np.int64)
    classes = counts.shape[0]
    totals = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    ticks = np.arange(classes)
    label = [str(names[c]) if names is not None and c < len(names) else str(c) for c in ticks]
    long = max(len(t) for t in label) > 2
    fig = _new_figure(CONFUSION_SIZE)
    # Class names need room: a wider left margin for the rows, a taller bottom one for the slanted columns.
    ax = fig.add_axes([0.26, 0.2, 0.6, 0.7] if long else [0.16, 0.1, 0.7, 0.78])
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    colorbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    colorbar.set_label("share of the true class")
    ax.set_xticks(ticks, label, rotation=45 if long else 0, ha="right" if long else "center")
    per_class = [f"{label[c]} ({100 * rates[c, c]:.0f}%)" if totals[c, 0] else f"{label[c]} (—)" for c in ticks]
    ax.set_yticks(ticks, per_class)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (accuracy)")
    if classes <= 20:
        for t in range(classes):
            for p in range(classes):
                if counts[t, p]:
                    ax.text(p, t, str(counts[t, p]), ha="center", va="center", fontsize=8,
                            color="white" if rates[t, p] > 0.5 else "black")
    ax.set_title(title, fontsize=10)
    return save_png(fig, path, CONFUSION_SIZE)


# ---------------------------------------------------------------- filters and feature maps


def default_show_path(checkpoint: Path) -> Path:
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}-show.png")


LABEL_PX, CELL_PX, ROW_PX, TITLE_PX = 150, 75, 100, 75  # multiples of 25: figsize·dpi stays whole


def network_figure_size(columns: int, rows: int) -> tuple[int, int]:
    return LABEL_PX + CELL_PX * max(columns, 1) + 25, TITLE_PX + ROW_PX * rows


def plot_network(model_input: np.ndarray, filters_name: str, filters: list[tuple[str, np.ndarray]],
                 maps: list[tuple[str, str, np.ndarray]], title: str, path: Path) -> Written:
    """One row each: the input, the first conv's filters, every conv/pool layer's feature maps."""
    require_matplotlib()
    rows: list[tuple[str, list[tuple[str, np.ndarray]], str]] = [
        (f"input {model_input.shape[0]}×{model_input.shape[1]}", [("", model_input)], "gray"),
    ]
    shown = filters[:MAX_MAPS]
    more = f"\n(first {len(shown)} of {len(filters)})" if len(filters) > len(shown) else ""
    kh, kw = filters[0][1].shape if filters else (0, 0)
    rows.append((f"{filters_name} filters\n{kh}×{kw}{more}", shown, "RdBu_r"))
    for name, kind, array in maps:
        n = array.shape[0]
        more = f"\n(first {MAX_MAPS} of {n})" if n > MAX_MAPS else ""
        rows.append((f"{name} ({kind})\n{n}×{array.shape[1]}×{array.shape[2]}{more}",
                     [(str(i), array[i]) for i in range(min(n, MAX_MAPS))], "viridis"))
    columns = max(len(cells) for _, cells, _ in rows)
    size = network_figure_size(columns, len(rows))
    width, height = size
    fig = _new_figure(size)
    fig.text(10 / width, 1 - 25 / height, title, fontsize=11, va="center")
    fig.text(10 / width, 1 - 52 / height, "filters: red > 0 > blue, one shared scale; feature maps: one scale per layer",
             fontsize=8, va="center", color="dimgray")
    for r, (label, cells, cmap) in enumerate(rows):
        top = TITLE_PX + r * ROW_PX
        fig.text(10 / width, 1 - (top + ROW_PX / 2) / height, label, fontsize=8, va="center")
        values = np.concatenate([a.ravel() for _, a in cells]) if cells else np.zeros(1)
        if cmap == "RdBu_r":
            limit = float(np.abs(values).max()) or 1.0
            vmin, vmax = -limit, limit
        else:
            vmin, vmax = float(values.min()), float(values.max())
            if vmax <= vmin:
                vmax = vmin + 1.0
        for c, (name, array) in enumerate(cells):
            left = LABEL_PX + c * CELL_PX
            ax = fig.add_axes([(left + 5) / width, 1 - (top + 5 + CELL_PX - 10) / height,
                               (CELL_PX - 10) / width, (CELL_PX - 10) / height])
            ax.imshow(array, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if name:
                ax.set_title(name, fontsize=6, pad=2)
    return save_png(fig, path, size)


def run_show(checkpoint: Path, data_dir: Path, split: str = "test", index: int = 0,
             image: Optional[Path] = None, offline: bool = False, out: Optional[Path] = None,
             dataset: Optional[str] = None) -> tuple[Written, str]:
    """What `cnn show` does: one digit through the network, drawn; returns the file and a summary line."""
    from .predict import feature_maps, first_conv_filters, load_images, load_model, load_own_image

    require_matplotlib()
    path = output_path(out, default_show_path(checkpoint))
    if image is not None and not Path(image).is_file():  # fails before the model is built
        raise UserError(f"{image}: no such image file; give the path of a PNG")
    loaded = load_model(checkpoint)
    if image is not None:
        digit, notes = load_own_image(loaded, Path(image))
        what, label = f"{Path(image).name}" + (f" ({'; '.join(notes)})" if notes else ""), None
    else:
        images, labels = load_images(loaded, data_dir, split, offline, dataset)
        if not 0 <= index < len(labels):
            raise UserError(f"--index {index}: the {split} split has {len(labels):,} images (0–{len(labels) - 1:,})")
        digit, label = images[index], int(labels[index])
        what = f"{split} #{index} (label {loaded.class_name(label)})"
    model_input, maps, probs = feature_maps(loaded, digit)
    filters_name, filters = first_conv_filters(loaded)
    guess = int(np.argmax(probs))
    shown = loaded.class_name(guess)
    title = f"{Path(checkpoint).name}: {what} → predicted {shown} ({100 * probs[guess]:.1f}%)"
    written = plot_network(model_input, filters_name, filters, maps, title, path)
    layers = ", ".join(name for name, _, _ in maps)
    return written, (f"wrote {written.describe()}: {filters_name}'s {len(filters)} filters and the feature maps "
                     f"of {what} through {layers}; predicted {shown} ({100 * probs[guess]:.1f}%)")
