"""A network built from a validated config: an ordered list of layers plus the loss.

Every shape was inferred by `config.validate_config` before this module runs,
so building a model allocates parameters and nothing can fail halfway.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from ..errors import UserError
from ..kernels.loss import loss_curvature, map_loss, softmax, softmax_cross_entropy
from ..spec.config import Config
from .layers import ConvMaxPool, Layer, RbfOutput, build_layer


def smoothed_cross_entropy(logits: np.ndarray, labels: np.ndarray, eps: float, loss: float,
                           dlogits: np.ndarray) -> tuple[float, np.ndarray]:
    """PyTorch's label smoothing (F.cross_entropy(label_smoothing=ε)) from the plain
    loss and gradient: targets (1−ε)·onehot + ε/K, so the loss is
    (1−ε)·CE + ε·mean_k(−log p_k) and the gradient (p − target)/B =
    dlogits + ε·(onehot − 1/K)/B. A few hundred numbers a step: NumPy, float64."""
    batch, classes = logits.shape
    z = logits.astype(np.float64)
    top = z.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
    uniform_nll = float((lse - z.mean(axis=1)).mean())
    smoothed = (1.0 - eps) * loss + eps * uniform_nll
    shift = np.full((batch, classes), -eps / (classes * batch))
    shift[np.arange(batch), labels] += eps / batch
    return smoothed, (dlogits + shift).astype(dlogits.dtype)


def execution_plan(layers: list[Layer]) -> list:
    """The layers in order, with every conv + 2×2/2 max pooling pair that one
    kernel can run replaced by a ConvMaxPool step."""
    steps, i = [], 0
    while i < len(layers):
        if i + 1 < len(layers) and ConvMaxPool.fits(layers[i], layers[i + 1]):
            steps.append(ConvMaxPool(layers[i], layers[i + 1]))
            i += 2
        else:
            steps.append(layers[i])
            i += 1
    return steps


def pack_parameters(layers: list[Layer], dtype) -> tuple[np.ndarray, np.ndarray]:
    """(parameters, gradients): two flat buffers, every trainable array of the layers
    a view into the first (its values copied in) and its gradient a view into the
    second at the same place, in model.parameters() order. The optimizer then
    updates the whole model in one kernel call instead of one per array: a
    call's overhead is as large as the update of a small array
    (benchmarks/RESULTS.md, Design measurements)."""
    sizes = [p.size for layer in layers for p in layer.params.values()]
    params = np.empty(sum(sizes), dtype=dtype)
    grads = np.zeros(sum(sizes), dtype=dtype)
    start = 0
    for layer in layers:
        for name, array in list(layer.params.items()):
            stop = start + array.size
            layer.params[name] = params[start:stop].reshape(array.shape)
            layer.params[name][...] = array
            layer.grads[name] = grads[start:stop].reshape(array.shape)
            start = stop
        layer.packed = True
    return params, grads


class Model:
    def __init__(self, config: Config, dtype=np.float32, seed: int | None = None, fuse: bool = True):
        self.config = config
        self.dtype = np.dtype(dtype)
        rng = np.random.default_rng(config.train["seed"] if seed is None else seed)
        init = config.train.get("init", "pytorch")
        self.layers: list[Layer] = [build_layer(shape, self.dtype, rng, init) for shape in config.layers]
        # Nobody needs the gradient with respect to the images themselves.
        self.layers[0].need_dx = False
        self.flat_params, self.flat_grads = pack_parameters(self.layers, self.dtype)
        self.steps = execution_plan(self.layers) if fuse else list(self.layers)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.config.input.shape

    # ------------------------------------------------------------ compute

    def draw_dropout_masks(self, batch: int, noise: np.random.Generator | None) -> None:
        """Give every dense layer with dropout p its mask for the next training step:
        1/(1−p) where noise.random() ≥ p, else 0 (inverted dropout: the expected
        output is unchanged, and inference needs no scaling). No noise: no dropout."""
        for layer in self.layers:
            if getattr(layer, "dropout", 0.0) > 0:
                layer.dropout_mask = None
                if noise is not None:
                    keep = noise.random((batch, layer.out_shape[0]), dtype=np.float32) >= np.float32(layer.dropout)
                    layer.dropout_mask = keep * self.dtype.type(1.0 / (1.0 - layer.dropout))

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Logits (B, classes) for a batch (B, C, H, W) of the model's dtype.

        `training` keeps what a following backward() needs (inputs, outputs,
        argmaxes, the conv layers' im2col columns); inference drops each layer's
        cache as soon as the next layer has its input."""
        if x.shape[1:] != self.input_shape or x.dtype != self.dtype:
            # The kernels trust their shapes; a wrong one must never reach them.
            raise ValueError(f"model input must be (B, {', '.join(map(str, self.input_shape))}) {self.dtype}, "
                             f"got {x.shape} {x.dtype}")
        for step in self.steps:
            step.training = training
            x = step.forward(x)
            if not training:
                step.clear_cache()
        return x

    def backward(self, dlogits: np.ndarray) -> np.ndarray | None:
        """Fills every layer's grads; returns dL/dinput when the first layer's need_dx is set."""
        grad = dlogits
        for step in reversed(self.steps):
            grad = step.backward(grad)
        return grad

    def loss_and_gradients(self, x: np.ndarray, labels: np.ndarray, noise: np.random.Generator | None = None,
                           label_smoothing: float = 0.0) -> tuple[float, np.ndarray]:
        """Forward, the mean of the config's loss (Model.loss), backward; returns (loss, logits).
        `noise` draws the dropout masks (none without it); `label_smoothing` ε mixes the
        softmax loss's targets with the uniform distribution (smoothed_cross_entropy)."""
        self.draw_dropout_masks(len(x), noise)
        logits = self.forward(x, training=True)
        loss, dlogits = self.loss(logits, labels)
        if label_smoothing:
            loss, dlogits = smoothed_cross_entropy(logits, labels, label_smoothing, float(loss), dlogits)
        self.backward(dlogits)
        return float(loss), logits

    def loss(self, logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        """(mean loss, dlogits) under the config's train.loss: softmax or map."""
        if self.config.train.get("loss") == "map":
            return map_loss(logits, labels, float(self.config.train["map_j"]))
        return softmax_cross_entropy(logits, labels)

    def curvature(self, x: np.ndarray, labels: np.ndarray, chunk: int = 100) -> list[tuple[str, np.ndarray]]:
        """(qualified name, h) for every parameter, in parameters() order: h the
        Gauss–Newton estimate of ∂²E/∂w² averaged over the patterns of x, from the
        layer-by-layer second-order pass (kernels/second_order.py). Each layer runs
        on its own (no fused conv + pooling: the pass needs the conv's own output)."""
        j = float(self.config.train["map_j"]) if self.config.train.get("loss") == "map" else math.inf
        sums: list[dict] = [{} for _ in self.layers]
        for start in range(0, len(labels), chunk):
            out = x[start:start + chunk]
            for layer in self.layers:
                layer.training = True
                out = layer.forward(out)
            last = self.layers[-1]
            if isinstance(last, RbfOutput):
                d2, below = last.backward2_loss(j), len(self.layers) - 1
            else:
                d2, below = loss_curvature(out, j), len(self.layers)
            for i in reversed(range(below)):
                d2 = self.layers[i].backward2(d2, sums[i])
        self.clear_caches()
        n = max(len(labels), 1)
        return [(f"{layer.name}.{name}", (sums[i][name] / n).astype(self.dtype))
                for i, layer in enumerate(self.layers) for name in layer.params]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.forward(x))

    def clear_caches(self) -> None:
        for layer in self.layers:
            layer.clear_cache()

    # ------------------------------------------------------------ parameters

    def parameters(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """(qualified name, parameter, gradient) for every trainable array, in a fixed order."""
        for layer in self.layers:
            for name, param in layer.params.items():
                yield f"{layer.name}.{name}", param, layer.grads.get(name)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Trainable and fixed arrays under `layer.name` keys (what a checkpoint stores)."""
        state = {}
        for layer in self.layers:
            for name, array in {**layer.params, **layer.fixed}.items():
                state[f"{layer.name}.{name}"] = array
        return state

    def load_state_dict(self, state: dict[str, np.ndarray], source: str) -> None:
        """Copy arrays in, checking that every name and shape matches this architecture."""
        expected = self.state_dict()
        missing = [k for k in expected if k not in state]
        if missing:
            raise UserError(f"{source}: checkpoint lacks {missing[0]} (and {len(missing) - 1} more); "
                            f"it was saved from another architecture")
        for key, target in expected.items():
            if tuple(state[key].shape) != target.shape:
                raise UserError(f"{source}: {key} has shape {tuple(state[key].shape)} but the config needs "
                                f"{target.shape}; the checkpoint does not match its config")
        for key, target in expected.items():
            target[...] = state[key]

    def count_parameters(self) -> tuple[int, int]:
        """(trainable, fixed) parameter counts."""
        trainable = sum(p.size for layer in self.layers for p in layer.params.values())
        fixed = sum(p.size for layer in self.layers for p in layer.fixed.values())
        return trainable, fixed
