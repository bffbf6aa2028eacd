"""Random distortions of training images, as the config's data.augment says.

Planar affine distortions as in LeCun et al. 1998 (translation, rotation,
scaling, squeezing, shear) and elastic ones as in Simard, Steinkraus & Platt
2003, each image its own, drawn uniformly within ± the configured bounds. All
random numbers are drawn here, with NumPy, from the generator the caller hands
in (the training run's noise stream, saved in every checkpoint): the kernel
(kernels/augment.py) only computes, so a batch is the same for any thread count
and a resumed run continues bit for bit.

Geometry, about the image centre, in (row, column) coordinates with rows down:
the forward map is A = R(θ)·H(h)·S, with R a counter-clockwise rotation as the
image is displayed (θ = 90° is np.rot90), H a horizontal shear (column += h·row),
S = diag((1+s)/(1+q), (1+s)·(1+q)) a scaling s and squeeze q, then a shift by
(ty, tx) pixels. The kernel samples the input at A⁻¹(p − centre − t) + centre,
plus the elastic displacement.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..kernels.augment import distort_batch


def is_active(augment: dict) -> bool:
    """Whether these settings change any image (all-zero bounds or probability 0 do not)."""
    bounds = ("translate", "rotate", "scale", "squeeze", "shear")
    return augment["probability"] > 0 and (any(augment[k] > 0 for k in bounds) or augment["elastic"]["alpha"] > 0)


def inverse_maps(shape: tuple[int, int], ty, tx, theta_deg, scale, squeeze, shear) -> np.ndarray:
    """(B, 6) inverse affine maps for the kernel, from per-image parameter arrays (B,)."""
    H, W = shape
    theta = np.deg2rad(np.asarray(theta_deg, dtype=np.float64))
    # Rounded so that multiples of 90° give exact 0 and ±1 (np.rot90 exactly).
    cos, sin = np.round(np.cos(theta), 12), np.round(np.sin(theta), 12)
    sy = (1.0 + np.asarray(scale)) / (1.0 + np.asarray(squeeze))
    sx = (1.0 + np.asarray(scale)) * (1.0 + np.asarray(squeeze))
    h = np.asarray(shear, dtype=np.float64)
    # A = R·H·S with R = [[cos, -sin], [sin, cos]], H = [[1, 0], [h, 1]], S = diag(sy, sx).
    a00 = (cos - sin * h) * sy
    a01 = -sin * sx
    a10 = (sin + cos * h) * sy
    a11 = cos * sx
    det = a00 * a11 - a01 * a10
    i00, i01, i10, i11 = a11 / det, -a01 / det, -a10 / det, a00 / det
    cr, cc = (H - 1) / 2.0, (W - 1) / 2.0
    # src = A⁻¹ (p − c − t) + c
    dr, dc = cr + np.asarray(ty, dtype=np.float64), cc + np.asarray(tx, dtype=np.float64)
    o_r = cr - (i00 * dr + i01 * dc)
    o_c = cc - (i10 * dr + i11 * dc)
    return np.stack([i00, i01, o_r, i10, i11, o_c], axis=1)


class Augmenter:
    """Distorts uint8 batches (B, H, W) into float32 batches in the same 0-255 units."""

    def __init__(self, augment: dict, background: float = 0.0):
        self.settings = augment
        self.background = float(background)

    def draw(self, rng: np.random.Generator, n: int, shape: tuple[int, int]):
        """The random parameters of n images: (inverse maps (n, 6), alpha (n,), raw field or None)."""
        a = self.settings

        def uniform(bound):
            return rng.uniform(-bound, bound, n)

        chosen = rng.random(n) < a["probability"]
        ty, tx = uniform(a["translate"]), uniform(a["translate"])
        theta, scale, squeeze, shear = uniform(a["rotate"]), uniform(a["scale"]), uniform(a["squeeze"]), uniform(a["shear"])
        inverse = inverse_maps(shape, ty, tx, theta, scale, squeeze, shear)
        inverse[~chosen] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # the identity: the image as it is
        alpha, field = np.zeros(n), None
        if a["elastic"]["alpha"] > 0:
            # Simard et al.: uniform(−1, 1) displacements, smoothed in the kernel, times α.
            field = rng.random((n, 2) + tuple(shape), dtype=np.float32) * np.float32(2.0) - np.float32(1.0)
            alpha = np.where(chosen, a["elastic"]["alpha"], 0.0)
        return inverse, alpha, field

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        inverse, alpha, field = self.draw(rng, len(images), images.shape[1:])
        return distort_batch(images, inverse, alpha, field, self.settings["elastic"]["sigma"], self.background)


def make_augmenter(config) -> Optional[Augmenter]:
    """The config's augmenter, or None when data.augment changes nothing. The background is
    raw pixel 0, blank paper, before the data section's normalisation maps it."""
    augment = config.data["augment"]
    return Augmenter(augment) if is_active(augment) else None
