"""The project's real layers, run on an explanation's numbers, to check it.

This is the only place `cnn explain` touches the kernels (through the layer
objects, in float64, batch of one), so the derivation cannot borrow their
answers: it is computed apart and only compared here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..spec.config import ConvSpec, LayerShape, PoolSpec
from ..nn.layers import build_layer

# Integer inputs make every sum of products exact in float64; the tolerance only
# absorbs the rounding of δ/(p·p) and of BLAS's summation order.
TOLERANCE = 1e-9


def conv_by_kernels(x, w, bias, stride, padding, delta) -> dict[str, np.ndarray]:
    """Forward, ∂L/∂x, ∂L/∂W, ∂L/∂b of the project's Conv2D (identity activation, so δ = ∂L/∂z)."""
    C, H, W = x.shape
    K, _, fh, fw = w.shape
    oh, ow = delta.shape[1:]
    spec = ConvSpec("explain", K, (fh, fw), tuple(stride), tuple(padding), "explain", "identity")
    layer = build_layer(LayerShape(spec, (C, H, W), (K, oh, ow), "explain"), np.float64, np.random.default_rng(0))
    layer.params["weight"] = np.array(w, dtype=np.float64)
    layer.params["bias"] = np.array(bias, dtype=np.float64)
    layer.need_dx = True
    z = layer.forward(np.array(x, dtype=np.float64)[None])
    dx = layer.backward(np.array(delta, dtype=np.float64)[None])
    return {"forward": z[0], "dx": dx[0], "dw": layer.grads["weight"], "db": layer.grads["bias"]}


def pool_by_kernels(kind, x, size, stride, delta, beta, bias) -> dict[str, np.ndarray]:
    """Forward and ∂L/∂x of the project's pooling layer; the switches (max), ∂L/∂β and ∂L/∂b (subsample)."""
    C, H, W = x.shape
    oh, ow = delta.shape[1:]
    spec = PoolSpec("explain", kind, tuple(size), tuple(stride))
    layer = build_layer(LayerShape(spec, (C, H, W), (C, oh, ow), "explain"), np.float64, None)
    if kind == "subsample":
        layer.params["beta"] = np.array(beta, dtype=np.float64)
        layer.params["bias"] = np.array(bias, dtype=np.float64)
    layer.need_dx = True
    y = layer.forward(np.array(x, dtype=np.float64)[None])
    result = {"forward": y[0]}
    if kind == "max":
        result["switches"] = np.array(layer._cache_argmax[0], dtype=np.int64)
    result["dx"] = layer.backward(np.array(delta, dtype=np.float64)[None])[0]
    if kind == "subsample":
        result.update(dbeta=layer.grads["beta"], dbias=layer.grads["bias"])
    return result


def compare(explained: dict[str, np.ndarray], kernels: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Per checked array: agree (same shape, within TOLERANCE), the largest difference, both values."""
    checks = {}
    for name, mine in explained.items():
        theirs = np.asarray(kernels[name], dtype=np.float64)
        mine = np.asarray(mine, dtype=np.float64)
        same_shape = mine.shape == theirs.shape
        diff = float(np.abs(mine - theirs).max(initial=0.0)) if same_shape else float("inf")
        checks[name] = {"agree": bool(same_shape and diff <= TOLERANCE), "max_abs_diff": diff,
                        "shape": list(mine.shape), "kernels_shape": list(theirs.shape),
                        "kernels": theirs.tolist()}
    return checks
