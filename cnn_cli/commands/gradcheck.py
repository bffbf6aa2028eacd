"""Gradient checks: analytic gradients against central differences, in float64.

For a layer f and a fixed random projection r, the scalar L = Σ r·f(x) has
∂L/∂f = r, so `backward(r)` must give ∂L/∂x and ∂L/∂θ. Each is compared with
(L(θ+ε) − L(θ−ε)) / 2ε, ε = 1e-6 (SPEC §6). The error of an array is
max|analytic − numeric| / max(max|analytic|, max|numeric|): relative to the
array's scale, so an entry that is legitimately near zero does not turn
round-off into a failure. Pass means < 1e-6.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..spec.config import (
    ConvSpec,
    DenseSpec,
    LayerShape,
    PoolSpec,
    RbfSpec,
    conv_output_size,
    same_padding,
)

EPSILON = 1e-6
# A whole network's loss adds up thousands of terms (the classic LeNet-5's RBF
# logits are squared distances near 100), and their float64 round-off divided
# by 2ε can exceed 1e-6 of the smallest gradients' scale at ε = 1e-6 —
# round-off, not a wrong gradient (figures: benchmarks/RESULTS.md, Design
# measurements). The O(ε²) truncation error at 1e-5 is still ~1e-10, so
# networks are checked with ε = 1e-5.
NETWORK_EPSILON = 1e-5
TOLERANCE = 1e-6


@dataclass
class CaseResult:
    name: str
    layer: str
    errors: dict[str, float] = field(default_factory=dict)  # per checked array

    @property
    def max_rel_error(self) -> float:
        return max(self.errors.values()) if self.errors else 0.0

    @property
    def passed(self) -> bool:
        return self.max_rel_error < TOLERANCE

    def to_json(self) -> dict:
        return {"name": self.name, "layer": self.layer, "max_rel_error": self.max_rel_error,
                "passed": self.passed, "checked": sorted(self.errors)}


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    scale = max(np.abs(analytic).max(initial=0.0), np.abs(numeric).max(initial=0.0))
    if scale == 0.0:
        return 0.0
    return float(np.abs(analytic - numeric).max() / scale)


def numeric_gradient(loss, array: np.ndarray, indices=None, epsilon: float = EPSILON) -> np.ndarray:
    """Central differences of loss() with respect to `array`, perturbed in place."""
    grad = np.zeros_like(array)
    flat, gflat = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size) if indices is None else indices:
        saved = flat[i]
        flat[i] = saved + epsilon
        plus = loss()
        flat[i] = saved - epsilon
        minus = loss()
        flat[i] = saved
        gflat[i] = (plus - minus) / (2 * epsilon)
    return grad


# ---------------------------------------------------------------- one layer


def check_layer(layer, x: np.ndarray, rng: np.random.Generator, name: str) -> CaseResult:
    layer.need_dx = True
    r = rng.standard_normal((x.shape[0],) + layer.out_shape)

    def loss() -> float:
        return float(np.sum(layer.forward(x) * r))

    layer.forward(x)
    dx = layer.backward(r)
    analytic = {"input": dx.reshape(x.shape)}
    analytic.update({p: g.copy() for p, g in layer.grads.items()})
    result = CaseResult(name, layer.family)
    result.errors["input"] = relative_error(analytic["input"], numeric_gradient(loss, x))
    for pname, param in layer.params.items():
        result.errors[pname] = relative_error(analytic[pname], numeric_gradient(loss, param))
    return result


def _conv_shape(in_shape, filters, kernel, stride, padding, activation, connections=None, text=""):
    _, h, w = in_shape
    if padding == "same":
        padding = same_padding(h, kernel[0], stride[0]) + same_padding(w, kernel[1], stride[1])
    top, bottom, left, right = padding
    out = (filters, conv_output_size(h, kernel[0], stride[0], top, bottom),
           conv_output_size(w, kernel[1], stride[1], left, right))
    spec = ConvSpec("conv", filters, kernel, stride, padding, text, activation, connections)
    return LayerShape(spec, in_shape, out, "gradcheck")


def _pool_shape(in_shape, kind, size, stride, p=2.0, activation="identity"):
    c, h, w = in_shape
    out = (c, conv_output_size(h, size[0], stride[0], 0, 0), conv_output_size(w, size[1], stride[1], 0, 0))
    return LayerShape(PoolSpec(kind, kind, size, stride, p, activation), in_shape, out, "gradcheck")


ACTIVATION_NAMES = ("identity", "relu", "sigmoid", "tanh", "scaled_tanh")
PADDINGS = {"valid": (0, 0, 0, 0), "same": "same", "int1": (1, 1, 1, 1), "asym": (0, 2, 1, 0)}
# A small connection table: 4 input maps, 3 filters, each filter reads a different subset.
SMALL_TABLE = ((True, False, True), (True, True, False), (False, True, True), (False, False, True))


def builtin_cases():
    """(name, LayerShape, batch) for every layer kind, stride, padding, pool and activation."""
    cases = []
    for i, stride in enumerate((1, 2, 3)):
        for j, (pname, padding) in enumerate(PADDINGS.items()):
            # Rotate the activations through the grid so each meets several strides and paddings.
            act = ACTIVATION_NAMES[(i * len(PADDINGS) + j) % len(ACTIVATION_NAMES)]
            shape = _conv_shape((2, 7, 8), 3, (3, 3), (stride, stride), padding, act, text=pname)
            cases.append((f"conv stride {stride} padding {pname}", shape))
    cases.append(("conv kernel 2x3 stride (2,1)", _conv_shape((2, 6, 7), 2, (2, 3), (2, 1), (0, 0, 0, 0), "tanh")))
    cases.append(("conv width 5 kernel 2 stride 2 (last column unused)",
                  _conv_shape((1, 5, 5), 2, (2, 2), (2, 2), (0, 0, 0, 0), "identity")))
    cases.append(("conv connection table 4→3", _conv_shape((4, 6, 6), 3, (3, 3), (1, 1), (1, 1, 1, 1), "tanh",
                                                           SMALL_TABLE)))
    # 3×3 'same' convs over 8 channels run by Winograd's algorithm (kernels/winograd.py).
    cases.append(("conv 3x3 same 8 channels (Winograd F(4x4))",
                  _conv_shape((8, 8, 8), 3, (3, 3), (1, 1), "same", "tanh", text="same")))
    cases.append(("conv 3x3 same 8 channels (Winograd F(2x2))",
                  _conv_shape((8, 6, 10), 2, (3, 3), (1, 1), "same", "relu", text="same")))
    for act in ACTIVATION_NAMES:
        cases.append((f"conv activation {act}", _conv_shape((2, 6, 6), 2, (3, 3), (1, 1), (0, 0, 0, 0), act)))
    for kind in ("max", "mean", "lp", "subsample"):
        cases.append((f"{kind} pool 2x2 stride 2", _pool_shape((2, 6, 7), kind, (2, 2), (2, 2))))
        cases.append((f"{kind} pool 3x3 stride 2 (overlapping)", _pool_shape((2, 7, 7), kind, (3, 3), (2, 2))))
        cases.append((f"{kind} pool 2x3 stride (1,2)", _pool_shape((1, 5, 7), kind, (2, 3), (1, 2))))
        cases.append((f"{kind} pool 2x2 stride 3 (gaps)", _pool_shape((2, 8, 8), kind, (2, 2), (3, 3))))
    cases.append(("lp pool p=3", _pool_shape((2, 6, 6), "lp", (2, 2), (2, 2), p=3.0)))
    for act in ACTIVATION_NAMES:
        cases.append((f"subsample activation {act}", _pool_shape((2, 6, 6), "subsample", (2, 2), (2, 2),
                                                                  activation=act)))
    for act in ACTIVATION_NAMES:
        cases.append((f"dense activation {act}",
                      LayerShape(DenseSpec("fc", 5, act), (2, 3, 3), (5,), "gradcheck")))
    cases.append(("rbf output (digit centres)", LayerShape(RbfSpec("rbf", 10, "digits"), (84,), (10,), "gradcheck")))
    return cases


def run_builtin_suite(seed: int = 0) -> list[CaseResult]:
    from ..nn.layers import build_layer

    results = []
    for name, shape in builtin_cases():
        rng = np.random.default_rng(seed)
        layer = build_layer(shape, np.float64, rng)
        # Parameters away from their initial values (β = 1/4, b = 0) so every term matters.
        for param in layer.params.values():
            param[...] = rng.uniform(-1.0, 1.0, param.shape)
        x = rng.standard_normal((2,) + shape.in_shape)
        if layer.family == "rbf":
            x = x * 0.5
        results.append(check_layer(layer, x, rng, name))
    results.append(check_softmax_loss(seed))
    return results


def check_softmax_loss(seed: int = 0) -> CaseResult:
    from ..kernels.loss import softmax_cross_entropy

    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((4, 10)) * 3
    labels = rng.integers(0, 10, 4).astype(np.int64)
    _, analytic = softmax_cross_entropy(logits, labels)
    numeric = numeric_gradient(lambda: float(softmax_cross_entropy(logits, labels)[0]), logits)
    return CaseResult("softmax cross-entropy", "loss", {"logits": relative_error(analytic, numeric)})


# ---------------------------------------------------------------- whole network


def check_network(config, seed: int = 0, batch: int = 2, entries_per_array: int = 40) -> list[CaseResult]:
    """End to end: the loss of a small random batch against every layer's gradients.

    Every entry of small arrays is checked; of large ones (a fully connected
    weight has tens of thousands) `entries_per_array` entries chosen at random.
    """
    from ..nn.model import Model

    from ..limits import require_network_fits

    require_network_fits(config, 2 * batch, True, config.source)  # float64: twice float32's bytes
    model = Model(config, dtype=np.float64, seed=seed)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        layer.need_dx = True
        for pname, param in layer.params.items():
            if pname == "bias":  # zero biases would leave ReLU kinks exactly at 0
                param[...] = rng.uniform(-0.1, 0.1, param.shape)
    x = rng.standard_normal((batch,) + model.input_shape)
    labels = rng.integers(0, config.num_classes, batch).astype(np.int64)

    def loss() -> float:  # the config's train.loss (softmax or map)
        return float(model.loss(model.forward(x), labels)[0])

    model.loss_and_gradients(x, labels)
    analytic = {(layer.name, p): g.copy() for layer in model.layers for p, g in layer.grads.items()}
    results = []
    for layer in model.layers:
        result = CaseResult(f"{config.name}: {layer.name}", layer.family)
        for pname, param in layer.params.items():
            indices = None
            if param.size > entries_per_array:
                indices = rng.choice(param.size, entries_per_array, replace=False)
            numeric = numeric_gradient(loss, param, indices, NETWORK_EPSILON)
            a = analytic[(layer.name, pname)].reshape(-1)
            n = numeric.reshape(-1)
            picked = slice(None) if indices is None else indices
            result.errors[pname] = relative_error(a[picked], n[picked])
        if result.errors:
            results.append(result)
    # The input gradient flows through every layer's backward: check all of it.
    # (A sample would be dominated by border pixels whose gradient is tiny, and
    # the error relative to a tiny scale is mostly round-off.)
    dx_model = _input_gradient(model, x, labels)
    results.append(CaseResult(f"{config.name}: input", "input",
                              {"input": relative_error(dx_model, numeric_gradient(loss, x, None, NETWORK_EPSILON))}))
    return results


def _input_gradient(model, x, labels) -> np.ndarray:
    logits = model.forward(x, training=True)
    _, grad = model.loss(logits, labels)
    return model.backward(grad)
