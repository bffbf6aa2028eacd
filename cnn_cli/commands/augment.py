"""`cnn augment`: one digit and K distorted versions of it, as the config's data.augment
draws them for training — in the terminal, and as a PNG grid with --out."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Optional

import numpy as np

from ..data.augment import Augmenter, is_active
from ..spec.config import Config
from ..data import load_split_for
from ..errors import UserError
from .predict import digit_lines, framed, side_by_side

PER_ROW = 4  # digits side by side in the terminal: 4 × 30 columns fit a 130-column window
PNG_COLUMNS = 6
PNG_CELL = 120  # pixels per digit in the PNG grid


def distorted_versions(config: Config, image: np.ndarray, count: int, seed: int) -> np.ndarray:
    """count distortions of one uint8 image (count, H, W) uint8, from default_rng(seed)."""
    augment = config.data["augment"]
    if not is_active(augment):
        raise UserError(f"{config.source}: data.augment changes nothing (every bound is 0 or probability 0); "
                        f"set some, e.g. --set data.augment.rotate=10 --set data.augment.translate=2")
    batch = np.repeat(image[None], count, axis=0)
    out = Augmenter(augment)(batch, np.random.default_rng(seed))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def terminal_lines(original: np.ndarray, versions: np.ndarray, heading: str) -> list[str]:
    panels = [["original", *framed(digit_lines(original))]]
    panels += [[f"#{i + 1}", *framed(digit_lines(v))] for i, v in enumerate(versions)]
    lines = [heading]
    for start in range(0, len(panels), PER_ROW):
        row = panels[start]
        for panel in panels[start + 1:start + PER_ROW]:
            row = side_by_side(row, panel, gap=2, top=0)
        lines += ["", *row]
    return lines


def write_grid(original: np.ndarray, versions: np.ndarray, title: str, out: Path) -> str:
    from .plot import _new_figure, output_path, save_png

    path = output_path(out, Path("augment.png"))
    images = [original, *versions]
    columns = min(len(images), PNG_COLUMNS)
    rows = math.ceil(len(images) / columns)
    size = (columns * PNG_CELL, rows * PNG_CELL + 60)
    fig = _new_figure(size)
    fig.suptitle(textwrap.fill(title, width=columns * PNG_CELL // 7), fontsize=8)
    for i, image in enumerate(images):
        ax = fig.add_subplot(rows, columns, i + 1)
        ax.imshow(image, cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title("original" if i == 0 else f"#{i}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    return save_png(fig, path, size).describe()


def run_augment(config: Config, data_dir: Path, split: str, index: int, count: int, seed: int,
                offline: bool, out: Optional[Path]) -> list[str]:
    if count < 1:
        raise UserError(f"--count {count}: must be at least 1")
    images, labels = load_split_for(config, data_dir, split, offline)
    if not 0 <= index < len(images):
        raise UserError(f"--index {index}: the {split} split has {len(images):,} digits (0 to {len(images) - 1:,})")
    a = config.data["augment"]
    versions = distorted_versions(config, images[index], count, seed)
    elastic = a["elastic"]
    title = (f"{split} digit {index} (label {int(labels[index])}): translate ±{a['translate']:g} px, "
             f"rotate ±{a['rotate']:g}°, scale ±{a['scale']:g}, squeeze ±{a['squeeze']:g}, shear ±{a['shear']:g}, "
             f"elastic α {elastic['alpha']:g} σ {elastic['sigma']:g}, probability {a['probability']:g}")
    lines = terminal_lines(images[index], versions, title)
    if out is not None:
        lines.append(f"grid: {write_grid(images[index], versions, title, out)}")
    return lines
