"""Building a network's layers from their specs. One module per layer family:
layer.py (the base class, its conventions, initialisation), conv_layers.py,
pool_layers.py, dense_layers.py; the names are re-exported here."""

from __future__ import annotations

import numpy as np

from ..spec.config import LayerShape
from .conv_layers import Conv2D, ConvMaxPool
from .dense_layers import Dense, RbfOutput
from .layer import Layer
from .pool_layers import LpPool2D, MaxPool2D, MeanPool2D, Subsample2D

__all__ = ["Conv2D", "ConvMaxPool", "Dense", "Layer", "LpPool2D", "MaxPool2D", "MeanPool2D", "RbfOutput",
           "Subsample2D", "POOL_LAYERS", "build_layer"]

POOL_LAYERS = {"max": MaxPool2D, "mean": MeanPool2D, "lp": LpPool2D, "subsample": Subsample2D}


def build_layer(shape: LayerShape, dtype, rng: np.random.Generator, init: str = "he_normal") -> Layer:
    """init: the config's train.init, for layers whose own init is not set."""
    spec = shape.spec
    if spec.family == "conv":
        return Conv2D(shape, dtype, rng, init)
    if spec.family == "pool":
        return POOL_LAYERS[spec.kind](shape, dtype, rng)
    if spec.family == "dense":
        return Dense(shape, dtype, rng, init)
    if spec.family == "rbf":
        return RbfOutput(shape, dtype, rng)
    raise ValueError(f"unknown layer kind {spec.family!r}")  # config validation makes this unreachable
