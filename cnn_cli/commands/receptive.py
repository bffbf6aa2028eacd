"""How many windows of a conv (or pool) layer cover each of its input pixels.

The slides' picture: slide a kh×kw window with stride (sh, sw) over a padded
input and count, for every input pixel, the windows it falls into. Corners of a
valid convolution are seen once, the middle kh·kw times (stride 1); a stride
larger than the kernel, or a last window that does not fit, leaves pixels that
no window sees (they get zero gradient).

The count factorises: a window covers (i, j) exactly when its row range covers
i and its column range covers j, so count[i, j] = rows[i] · cols[j].

Pure NumPy, no numba: `cnn params --receptive` stays instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from ..spec.config import Config, ConvSpec, PoolSpec
from ..spec.geometry import conv_output_size
from ..errors import UserError

MAX_COVERAGE_PIXELS = 4096 * 4096  # an int64 count per pixel: 128 MB at most
SHADES = "░▒▓█"  # four levels for grids too wide to print numbers
ZERO = "·"  # pixels no window covers


# ---------------------------------------------------------------- counting


def window_counts_1d(n: int, kernel: int, stride: int, before: int = 0, after: int = 0) -> np.ndarray:
    """For each of n input positions, how many windows cover it (int64, shape (n,)).

    Window j covers input positions [j·stride − before, j·stride − before + kernel);
    there are floor((n + before + after − kernel) / stride) + 1 of them (none when
    the kernel is larger than the padded input).
    """
    if n < 0 or kernel < 1 or stride < 1 or before < 0 or after < 0:
        raise ValueError(f"bad window geometry: n={n}, kernel={kernel}, stride={stride}, padding=({before}, {after})")
    counts = np.zeros(n, dtype=np.int64)
    padded = n + before + after
    if padded < kernel:
        return counts
    windows = conv_output_size(n, kernel, stride, before, after)
    # Difference array: +1 where a window starts, −1 one past where it ends, clipped to the input.
    diff = np.zeros(n + 1, dtype=np.int64)
    starts = np.arange(windows) * stride - before
    ends = starts + kernel
    np.add.at(diff, np.clip(starts, 0, n), 1)
    np.add.at(diff, np.clip(ends, 0, n), -1)
    counts[:] = np.cumsum(diff)[:n]
    return counts


def window_counts(height: int, width: int, kernel: int | Sequence[int], stride: int | Sequence[int] = 1,
                  padding: int | Sequence[int] = 0) -> np.ndarray:
    """(height, width) int64 array: the number of windows covering each input pixel.

    `kernel` and `stride` are n or (h, w); `padding` is n or (top, bottom, left, right).
    """
    kh, kw = _pair(kernel)
    sh, sw = _pair(stride)
    if isinstance(padding, (int, np.integer)):
        top = bottom = left = right = int(padding)
    else:
        top, bottom, left, right = (int(p) for p in padding)
    rows = window_counts_1d(height, kh, sh, top, bottom)
    cols = window_counts_1d(width, kw, sw, left, right)
    return np.outer(rows, cols)


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    a, b = value
    return int(a), int(b)


# ---------------------------------------------------------------- a layer of a config


@dataclass
class Coverage:
    layer: str  # layer name
    kind: str  # "conv" or the pool kind (max, mean, lp, subsample)
    in_size: tuple[int, int]  # (H, W) of the layer's input (before its padding)
    out_size: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, bottom, left, right
    rows: np.ndarray  # windows covering each input row (H,)
    cols: np.ndarray  # windows covering each input column (W,)
    counts: np.ndarray  # (H, W) = outer(rows, cols)

    @property
    def uncovered(self) -> int:
        return int((self.counts == 0).sum())

    def to_json(self) -> dict[str, Any]:
        return {
            "layer": self.layer, "kind": self.kind, "input": list(self.in_size), "output": list(self.out_size),
            "kernel": list(self.kernel), "stride": list(self.stride), "padding": list(self.padding),
            "rows": self.rows.tolist(), "cols": self.cols.tolist(), "counts": self.counts.tolist(),
            "uncovered": self.uncovered,
        }


def windowed_layers(config: Config) -> list:
    """The config's layers that slide a window: convs and pools (LayerShape list)."""
    return [layer for layer in config.layers if isinstance(layer.spec, (ConvSpec, PoolSpec))]


def layer_coverage(config: Config, layer_name: Optional[str] = None) -> Coverage:
    """Coverage of the named conv/pool layer, or of the first conv layer."""
    windowed = windowed_layers(config)
    if layer_name is None:
        chosen = next((layer for layer in windowed if isinstance(layer.spec, ConvSpec)), None)
        if chosen is None:
            raise UserError(f"{config.source}: no conv layer to draw; this config has none")
    else:
        chosen = next((layer for layer in windowed if layer.spec.name == layer_name), None)
        if chosen is None:
            names = ", ".join(layer.spec.name for layer in windowed) or "none"
            others = [layer.spec.name for layer in config.layers if layer.spec.name == layer_name]
            why = f"{layer_name} is a fully connected layer" if others else f"no layer named {layer_name}"
            raise UserError(f"{config.source}: {why}; choose a conv or pool layer ({names})")
    spec = chosen.spec
    _, h, w = chosen.in_shape
    if isinstance(spec, ConvSpec):
        kernel, padding, kind = spec.kernel, spec.padding, "conv"
    else:
        kernel, padding, kind = spec.size, (0, 0, 0, 0), spec.kind
    if h * w > MAX_COVERAGE_PIXELS:
        raise UserError(f"{config.source}: {spec.name}'s input is {h:,}×{w:,} pixels; --receptive counts every "
                        f"pixel and draws at most {MAX_COVERAGE_PIXELS:,} — give a smaller --input")
    rows = window_counts_1d(h, kernel[0], spec.stride[0], padding[0], padding[1])
    cols = window_counts_1d(w, kernel[1], spec.stride[1], padding[2], padding[3])
    return Coverage(spec.name, kind, (h, w), tuple(chosen.out_shape[1:]), tuple(kernel), tuple(spec.stride),
                    tuple(padding), rows, cols, np.outer(rows, cols))


# ---------------------------------------------------------------- drawing


def repeating_gap(counts_1d: np.ndarray, kernel: int, stride: int) -> Optional[tuple[int, int]]:
    """(a, b): the positions a..b−1 that merely repeat the pattern of period `stride`.

    The count along an axis is a ramp up, a pattern repeating every `stride`
    positions, and a ramp down. Keeping the first and last max(kernel + stride,
    2·stride, 5) positions shows both ramps and at least two periods; the middle
    is hidden only when every hidden count equals the one `stride` before it.
    """
    n = len(counts_1d)
    keep = max(kernel + stride, 2 * stride, 5)
    a, b = keep, n - keep
    if b - a < 4:  # hiding fewer rows than that saves nothing
        return None
    if any(counts_1d[i] != counts_1d[i - stride] for i in range(a, b)):
        return None
    return a, b


def shade_levels(counts: np.ndarray) -> list[tuple[int, int]]:
    """Split the nonzero counts' range [lo, hi] into at most len(SHADES) value ranges."""
    nonzero = counts[counts > 0]
    if nonzero.size == 0:
        return []
    values = np.unique(nonzero)
    if len(values) <= len(SHADES):
        return [(int(v), int(v)) for v in values]
    lo, hi = int(values[0]), int(values[-1])
    edges = np.linspace(lo, hi + 1, len(SHADES) + 1)
    levels = []
    for a, b in zip(edges[:-1], edges[1:]):
        first, last = int(np.ceil(a)), int(np.ceil(b)) - 1
        if last >= first:
            levels.append((first, last))
    return levels


def _shown(n: int, gap: Optional[tuple[int, int]]) -> list[Optional[int]]:
    """Indices to draw along an axis; None marks the hidden run."""
    if gap is None:
        return list(range(n))
    a, b = gap
    return [*range(a), None, *range(b, n)]


def choose_mode(counts: np.ndarray, mode: str = "auto", max_width: int = 100,
                cols_gap: Optional[tuple[int, int]] = None) -> str:
    """"numbers" when a cell per pixel with its count fits in max_width columns, else "shades"."""
    if mode != "auto":
        if mode not in ("numbers", "shades"):
            raise ValueError(f"mode must be auto, numbers or shades, not {mode!r}")
        return mode
    cell = len(str(int(np.asarray(counts).max(initial=0))))
    columns = len(_shown(np.asarray(counts).shape[1], cols_gap))
    return "numbers" if columns * (cell + 1) - 1 <= max_width else "shades"


def heatmap_lines(counts: np.ndarray, mode: str = "auto", max_width: int = 100,
                  rows_gap: Optional[tuple[int, int]] = None,
                  cols_gap: Optional[tuple[int, int]] = None) -> list[str]:
    """The count grid as text: numbers (one cell per pixel, · for 0) or shades.

    `mode` is "numbers", "shades" or "auto" (see `choose_mode`). A gap (a, b)
    hides rows/columns a..b−1 behind one ⋮/⋯ row/column.
    """
    counts = np.asarray(counts)
    if counts.ndim != 2:
        raise ValueError(f"counts must be 2-D, got shape {counts.shape}")
    rows, cols = _shown(counts.shape[0], rows_gap), _shown(counts.shape[1], cols_gap)
    mode = choose_mode(counts, mode, max_width, cols_gap)
    if mode == "numbers":
        cell = len(str(int(counts.max(initial=0))))
        sep = " "

        def draw(v):
            return (str(int(v)) if v else ZERO).rjust(cell)
    else:
        cell = 2 if 2 * len(cols) <= max_width else 1
        sep = ""
        lookup = {}
        levels = shade_levels(counts)
        for shade, (first, last) in zip(SHADES[len(SHADES) - len(levels):], levels):
            for v in range(first, last + 1):
                lookup[v] = shade

        def draw(v):
            return (lookup[int(v)] if v else ZERO) * cell
    lines = []
    for i in rows:
        if i is None:
            lines.append(sep.join(("⋮" if j is not None else " ").rjust(cell) for j in cols))
        else:
            lines.append(sep.join(draw(counts[i, j]) if j is not None else "⋯".rjust(cell) for j in cols))
    return lines


def legend_lines(counts: np.ndarray, mode_used: str) -> list[str]:
    """What the cells mean."""
    lines = []
    if mode_used == "shades":
        levels = shade_levels(counts)
        parts = [f"{shade} {a}" if a == b else f"{shade} {a}–{b}"
                 for shade, (a, b) in zip(SHADES[len(SHADES) - len(levels):], levels)]
        lines.append("windows per pixel: " + "   ".join(parts) + f"   {ZERO} 0")
    if (counts == 0).any():
        lines.append(f"{ZERO} = in no window: those pixels never reach the output and get zero gradient")
    return lines


def _geometry_text(cov: Coverage) -> str:
    kh, kw = cov.kernel
    sh, sw = cov.stride
    t, b, l, r = cov.padding
    what = "conv" if cov.kind == "conv" else f"{cov.kind} pool"
    stride = f"stride {sh}" if sh == sw else f"stride {sh}×{sw}"
    if (t, b, l, r) == (0, 0, 0, 0):
        pad = "no padding"
    elif t == b == l == r:
        pad = f"padding {t}"
    else:
        pad = f"padding top {t}, bottom {b}, left {l}, right {r}"
    return f"{cov.layer} ({what}): {kh}×{kw} windows, {stride}, {pad}"


def _axis_text(counts_1d: np.ndarray, gap: Optional[tuple[int, int]]) -> str:
    return " ".join("…" if i is None else str(int(counts_1d[i])) for i in _shown(len(counts_1d), gap))


def coverage_lines(cov: Coverage, mode: str = "auto", max_width: int = 100, full: bool = False) -> list[str]:
    """Header, grid, legend and the row/column factors: everything `cnn params --receptive` prints.

    Unless `full`, the middle rows/columns that only repeat the pattern are hidden.
    """
    (h, w), (oh, ow) = cov.in_size, cov.out_size
    rows_gap = None if full else repeating_gap(cov.rows, cov.kernel[0], cov.stride[0])
    cols_gap = None if full else repeating_gap(cov.cols, cov.kernel[1], cov.stride[1])
    used = choose_mode(cov.counts, mode, max_width, cols_gap)
    lines = [
        f"{_geometry_text(cov)} over its {h}×{w} input → {oh}×{ow} outputs",
        "how many windows each input pixel falls into:",
        "",
        *heatmap_lines(cov.counts, used, max_width, rows_gap, cols_gap),
        "",
        *legend_lines(cov.counts, used),
    ]
    hidden = []
    if rows_gap:
        hidden.append(f"rows {rows_gap[0]}–{rows_gap[1] - 1}")
    if cols_gap:
        hidden.append(f"columns {cols_gap[0]}–{cols_gap[1] - 1}")
    if hidden:
        lines.append(f"⋮ ⋯ {' and '.join(hidden)} (from 0) repeat the pattern and are not drawn")
    lines += [
        f"windows per row: {_axis_text(cov.rows, rows_gap)}",
        f"windows per column: {_axis_text(cov.cols, cols_gap)}",
        "each pixel's count = its row's × its column's; "
        f"range {int(cov.counts.min())}–{int(cov.counts.max())}, "
        f"{cov.uncovered} of {h * w} pixels in no window",
    ]
    sh, sw = cov.stride
    kh, kw = cov.kernel
    if sh > kh or sw > kw:
        lines.append("stride larger than the window: whole rows/columns fall between windows")
    elif sh < kh or sw < kw:
        lines.append("stride smaller than the window: windows overlap, so inner pixels are counted several times")
    return lines


def receptive_report(config_name: Optional[str] = None, input_shape: Optional[str] = None,
                     layer_name: Optional[str] = None) -> Coverage:
    """What `cnn params --receptive` computes: load the config (resized by --input), count one layer."""
    from ..spec.config import load_config
    from .options import parse_input_option
    from .params import DEFAULT_CONFIG, with_input

    wanted = parse_input_option(input_shape) if input_shape is not None else None
    config = load_config(config_name or DEFAULT_CONFIG)
    if wanted is not None:
        config = with_input(config, *wanted)
    return layer_coverage(config, layer_name)
