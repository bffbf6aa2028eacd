"""MNIST's own preprocessing, for digits that did not come from MNIST.

LeCun, Cortes & Burges made MNIST by fitting each NIST digit, aspect ratio kept,
into a 20×20 box (anti-aliased, hence the grey levels), then placing it in a
28×28 field so that its centre of mass sits at the field's centre. A digit drawn
on a canvas or photographed fills its picture instead, and comes out larger and
off-centre: the most common reason a hand-drawn digit is misread. `mnist_style`
applies the same three steps to any white-on-black grey image:

1. crop to the ink: the bounding box of pixels above INK_FRACTION of the
   brightest (faint noise outside does not widen the box);
2. fit the crop into a box of 20/28 of the output (20×20 in 28×28), longest
   side to the box, by area averaging;
3. place it so its centre of mass lands at (height/2, width/2) in pixel-index
   coordinates, (14, 14) in 28×28 as in MNIST, rounded to a whole pixel (no
   resampling blur) and kept inside the field.

MNIST's own digits pass through unchanged or nearly (tests/test_mnist_style.py).

Plain NumPy: `cnn predict --image` and `cnn serve` (which shows each step) share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INK_FRACTION = 0.2
BOX_FRACTION = 20 / 28  # MNIST: a 20×20 box in a 28×28 field


@dataclass
class MnistStyled:
    digit: np.ndarray  # uint8 (height, width), white on black
    box: tuple[int, int, int, int] | None  # the ink's (top, left, bottom, right) in the input, end exclusive
    fitted: tuple[int, int]  # (rows, columns) of the ink after fitting into the box
    offset: tuple[int, int]  # (top, left) where the fitted ink was placed
    centre_of_mass: tuple[float, float] | None  # (row, column) in the output, after placing


def area_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a 2-D float image by area averaging (each output pixel = mean of the input it covers)."""
    image = np.asarray(image, dtype=np.float64)
    return _area_matrix(image.shape[0], height) @ image @ _area_matrix(image.shape[1], width).T


def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in): weight of input pixel j in output pixel i (rows sum to 1)."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    j = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def ink_box(pixels: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, left, bottom, right), end exclusive, of the pixels above INK_FRACTION of the maximum."""
    peak = float(pixels.max(initial=0.0))
    if peak <= 0.5 / 255:  # nothing brighter than half a grey level: a blank image
        return None
    rows, cols = np.nonzero(pixels > INK_FRACTION * peak)
    return int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    total = float(image.sum())
    rows, cols = np.indices(image.shape)
    return float((rows * image).sum() / total), float((cols * image).sum() / total)


def mnist_style(pixels: np.ndarray, height: int = 28, width: int = 28) -> MnistStyled:
    """A grey image (H, W), white digit on black, values in [0, 1] → an MNIST-like uint8 (height, width)."""
    pixels = np.clip(np.asarray(pixels, dtype=np.float64), 0.0, 1.0)
    if pixels.ndim != 2 or pixels.size == 0:
        raise ValueError(f"mnist_style expects a non-empty 2-D image, got shape {pixels.shape}")
    box = ink_box(pixels)
    if box is None:
        return MnistStyled(np.zeros((height, width), dtype=np.uint8), None, (0, 0), (0, 0), None)
    top, left, bottom, right = box
    ink = pixels[top:bottom, left:right]
    side = max(1, int(round(BOX_FRACTION * min(height, width))))
    scale = side / max(ink.shape)
    fitted_shape = (max(1, int(round(ink.shape[0] * scale))), max(1, int(round(ink.shape[1] * scale))))
    fitted = area_resize(ink, *fitted_shape)
    cy, cx = centre_of_mass(fitted)
    # Put the centre of mass at (height/2, width/2) in pixel-index coordinates: (14, 14) in 28×28,
    # where MNIST has it (measured on its test digits: 14.00 ± 0.30, 14.02 ± 0.31).
    row = min(max(int(round(height / 2 - cy)), 0), height - fitted_shape[0])
    col = min(max(int(round(width / 2 - cx)), 0), width - fitted_shape[1])
    out = np.zeros((height, width))
    out[row:row + fitted_shape[0], col:col + fitted_shape[1]] = fitted
    digit = np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
    return MnistStyled(digit, box, fitted_shape, (row, col), (cy + row, cx + col))
