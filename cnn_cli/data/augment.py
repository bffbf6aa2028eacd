"""Random distortions of training images, as the config's data.augment says.

Planar affine distortions as in LeCun et al. 1998 (translation, rotation,
scaling, squeezing, shear) and elastic ones as in Simard, Steinkraus & Platt
2003, each image its own, drawn uniformly within ± the configured bounds. All
randomness comes from the generator the caller hands in (the training run's
noise stream, saved in every checkpoint), drawn here with NumPy; the kernel
(kernels/augment.py) only computes, so a batch is the same for any thread count
and a resumed run continues bit for bit.

Per batch of n images, two draws: rng.random((n, 7)) (whether each image is
distorted, then its six affine parameters: kernels/augment_geometry.py), and
with elastic distortions one raw 64-bit word, the key from which the kernel
computes the displacement fields' 2·n·H·W random numbers (kernels/augment.py).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..kernels.augment import distort_drawn
from ..kernels.augment_geometry import PARAMETERS, inverse_maps_of


def is_active(augment: dict) -> bool:
    """Whether these settings change any image (all-zero bounds or probability 0 do not)."""
    bounds = ("translate", "rotate", "scale", "squeeze", "shear")
    return augment["probability"] > 0 and (any(augment[k] > 0 for k in bounds) or augment["elastic"]["alpha"] > 0)


def inverse_maps(shape: tuple[int, int], ty, tx, theta_deg, scale, squeeze, shear) -> np.ndarray:
    """(B, 6) inverse affine maps for the kernel, from per-image parameter arrays (B,)."""
    params = np.stack(np.broadcast_arrays(*(np.asarray(v, dtype=np.float64)
                                            for v in (ty, tx, theta_deg, scale, squeeze, shear))), axis=1)
    out = np.empty((len(params), 6))
    inverse_maps_of(shape[0], shape[1], np.ascontiguousarray(params), out)
    return out


class Augmenter:
    """Distorts uint8 batches (B, H, W) into float32 batches in the same 0-255 units."""

    def __init__(self, augment: dict, background: float = 0.0):
        self.settings = augment
        self.background = float(background)
        self.bounds = np.array([augment["probability"], *(float(augment[k]) for k in PARAMETERS)])
        self.alpha = float(augment["elastic"]["alpha"])
        self.sigma = float(augment["elastic"]["sigma"])

    def draw(self, rng: np.random.Generator, n: int, shape: tuple[int, int]):
        """The random numbers for n images: uniform draws (n, 7) and the elastic field's key (0 if none)."""
        draws = rng.random((n, 7))
        key = rng.bit_generator.random_raw() if self.alpha > 0 else 0
        return draws, key

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        draws, key = self.draw(rng, len(images), images.shape[1:])
        return distort_drawn(images, draws, self.bounds, self.alpha, key, self.sigma, self.background)


def make_augmenter(config) -> Optional[Augmenter]:
    """The config's augmenter, or None when data.augment changes nothing. The background is
    raw pixel 0, blank paper, before the data section's normalisation maps it."""
    augment = config.data["augment"]
    return Augmenter(augment) if is_active(augment) else None
