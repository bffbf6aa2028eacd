"""A network built from a validated config: an ordered list of layers plus the loss.

Every shape was inferred by `config.validate_config` before this module runs,
so building a model allocates parameters and nothing can fail halfway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .config import Config
from .errors import UserError
from .kernels.loss import loss_curvature, map_loss, softmax, softmax_cross_entropy
from .layers import ConvMaxPool, Layer, RbfOutput, build_layer


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
    updates the whole model in one kernel call instead of one per array (ten for
    lenet5: ~4 µs of call overhead each, as much as the update itself)."""
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
        init = config.train.get("init", "he_normal")
        self.layers: list[Layer] = [build_layer(shape, self.dtype, rng, init) for shape in config.layers]
        # Nobody needs the gradient with respect to the images themselves.
        self.layers[0].need_dx = False
        self.flat_params, self.flat_grads = pack_parameters(self.layers, self.dtype)
        self.steps = execution_plan(self.layers) if fuse else list(self.layers)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.config.input.shape

    # ------------------------------------------------------------ compute

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

    def loss_and_gradients(self, x: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        """Forward, the mean of the config's loss (Model.loss), backward; returns (loss, logits)."""
        logits = self.forward(x, training=True)
        loss, dlogits = self.loss(logits, labels)
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


@dataclass
class TrainedModel:
    model: Model
    config: Config
    prepare: Callable[[np.ndarray], np.ndarray]  # uint8 (N, H, W) → the model's float input
    source: str


def load_trained(checkpoint: str | Path) -> TrainedModel:
    """A checkpoint's model, rebuilt from the config stored inside it, weights loaded."""
    from .checkpoint import load_checkpoint
    from .config import validate_config
    from .data import make_preparer

    ckpt = load_checkpoint(checkpoint)
    config = validate_config(ckpt.config, f"{checkpoint} (config.json)")
    model = Model(config)
    model.load_state_dict(ckpt.weights, str(checkpoint))
    return TrainedModel(model, config, make_preparer(config), str(checkpoint))
