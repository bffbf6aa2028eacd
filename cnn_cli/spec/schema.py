"""The config schema: what a network config may say, its defaults, and the specs
validation turns it into (plain dataclasses the layers, `cnn params` and the
exporters read). Plain Python: no numba, no kernels."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional



POOL_KINDS = ("max", "mean", "lp", "subsample")
FC_KINDS = ("dense", "rbf")
OPTIMIZERS = ("sgd", "adam", "sdlm")
SCHEDULES = ("constant", "step", "cosine")
RBF_CENTRES = ("digits",)
FLOAT32_MAX = 3.4028234663852886e38
# softmax: cross-entropy of softmax(logits); map: LeCun et al. 1998's MAP criterion
# for RBF outputs, E = y_correct + log(e^(−j) + Σ_i e^(−y_i)) (kernels/loss.py).
LOSSES = ("softmax", "map")
# he_normal: normal, std √(2/F) for relu and √(1/F) otherwise; pytorch: PyTorch's
# default, uniform ±1/√F for weights and biases; lecun_uniform: U(±2.4/F), the
# 1998 paper's. F is the unit's own fan-in.
INITS = ("he_normal", "pytorch", "lecun_uniform")
# Pooling kinds the second-order (sdlm) pass can go through.
SDLM_POOLS = ("max", "mean", "subsample")

# Layer names become checkpoint keys (`conv1.weight`); these would collide with
# the checkpoint's own entries.
RESERVED_NAMES = ("optimizer", "config", "meta", "format_version")

# The only shipped configs; a bare name on the command line resolves to these.
SHIPPED_DIR = Path(__file__).parent.parent / "configs"

TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "batch_size": 64,
    "optimizer": "adam",
    "lr": 0.001,
    "momentum": 0.9,
    "nesterov": False,
    "weight_decay": 0.0,
    "schedule": "constant",
    "step_size": 5,
    "gamma": 0.1,
    "seed": 0,
    # PyTorch's default init: He-normal weights with zero biases trailed it by ~0.4
    # points on lenet5 (benchmarks/experiments/gap.py, RESULTS-gap.md).
    "init": "pytorch",
    "label_smoothing": 0.0,
    "patience": None,  # epochs without a better validation accuracy before stopping; None: never stop early
    "loss": "softmax",
    "map_j": 10.0,
    "sdlm_mu": 0.02,
    "sdlm_samples": 500,
    "track_test": False,
}
# Distortions of each training image (augment.py); zero bounds leave the images as they are.
AUGMENT_DEFAULTS: dict[str, Any] = {
    "translate": 0.0, "rotate": 0.0, "scale": 0.0, "squeeze": 0.0, "shear": 0.0,
    "elastic": {"alpha": 0.0, "sigma": 4.0}, "probability": 1.0,
}
# Allowed ranges (low, high) and units, for validation and its messages.
AUGMENT_RANGES: dict[str, tuple[float, float, str]] = {
    "translate": (0.0, 14.0, " pixels"), "rotate": (0.0, 180.0, " degrees"), "scale": (0.0, 0.9, ""),
    "squeeze": (0.0, 0.9, ""), "shear": (0.0, 1.0, ""), "probability": (0.0, 1.0, ""),
}
ELASTIC_RANGES: dict[str, tuple[float, float, str]] = {"alpha": (0.0, 100.0, " pixels"), "sigma": (0.5, 20.0, " pixels")}
DATA_DEFAULTS: dict[str, Any] = {"dataset": "mnist", "normalize": True, "val_split": 0.1,
                                 "folder": None, "fit": "pad", "test_split": 0.2, "augment": AUGMENT_DEFAULTS}
FITS = ("pad", "resize")  # how a folder's images are brought to the input size (cnn_cli/data/folder.py)

# ---------------------------------------------------------------- specs


@dataclass(frozen=True)
class InputSpec:
    channels: int
    height: int
    width: int
    pad: int = 0  # zero padding added to every image (classic LeNet-5: 28×28 → 32×32)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height + 2 * self.pad, self.width + 2 * self.pad)


@dataclass(frozen=True)
class ConvSpec:
    name: str
    filters: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, bottom, left, right, resolved against the input
    padding_text: str  # as written: "valid", "same", "2", "[0, 1, 0, 1]"
    activation: str
    connections: Optional[tuple[tuple[bool, ...], ...]] = None  # (in maps) × (filters)
    family: str = "conv"
    init: Optional[str] = None  # None: train.init


@dataclass(frozen=True)
class PoolSpec:
    name: str
    kind: str  # max | mean | lp | subsample, as in the YAML
    size: tuple[int, int]
    stride: tuple[int, int]
    p: float = 2.0  # lp only
    activation: str = "identity"  # subsample only
    family: str = "pool"


@dataclass(frozen=True)
class DenseSpec:
    name: str
    units: int
    activation: str
    dropout: float = 0.0  # inverted dropout of the layer's outputs while training
    family: str = "dense"
    init: Optional[str] = None  # None: train.init


@dataclass(frozen=True)
class RbfSpec:
    name: str
    units: int
    centres: str
    family: str = "rbf"


@dataclass(frozen=True)
class LayerShape:
    """A layer spec with the shapes it maps between (C, H, W) or (D,)."""

    spec: Any
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    path: str  # where in the config it came from, e.g. "blocks[0].convs[0]"


@dataclass
class Config:
    name: str
    source: str  # file the config came from, for messages
    input: InputSpec
    layers: list[LayerShape]
    train: dict[str, Any]
    data: dict[str, Any]
    resolved: dict[str, Any] = field(repr=False)  # the config with every default filled in

    @property
    def num_classes(self) -> int:
        return self.layers[-1].out_shape[0]

# The keys each section of a config may hold.
TOP_KEYS = ("name", "input", "blocks", "fc", "train", "data")
INPUT_KEYS = ("channels", "height", "width", "pad")
BLOCK_KEYS = ("convs", "pools")
CONV_KEYS = ("name", "filters", "kernel", "stride", "padding", "activation", "connections", "init")
POOL_KEYS = ("name", "kind", "size", "stride", "p", "activation")
FC_KEYS = ("name", "kind", "units", "activation", "centres", "dropout", "init")
TRAIN_KEYS = tuple(TRAIN_DEFAULTS)
DATA_KEYS = tuple(DATA_DEFAULTS)
