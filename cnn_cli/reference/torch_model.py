"""The same network in PyTorch, built from our Config: the yardstick of `cnn bench`.

PyTorch is an optional extra, never a runtime dependency: nothing imports this
module except the benchmark, its tests and the scripts in benchmarks/, and it
imports torch only inside its functions (`require_torch` turns its absence into
a one-line UserError with the install hint).

The network is an `nn.Sequential` with ONE module per layer of our Model, under
the same name, each with its activation fused in as ours are, so the benchmark
can time layer against layer:

- conv: `F.conv2d` with a (K, C, Fh, Fw) weight. Symmetric padding is passed to
  the convolution; asymmetric padding ('same' with an odd total, or
  [top, bottom, left, right]) goes through `F.pad` first. A connection table
  (LeNet-5's C3) is a full weight multiplied by a fixed 0/1 mask, so absent
  weights stay zero and get zero gradient.
- max / mean pooling: `F.max_pool2d` / `F.avg_pool2d` (floor rule, no padding);
  L_p pooling (Σ|x|^p)^(1/p) through a window sum.
- subsample (LeNet-5's S2/S4): window sum (`avg_pool2d` with divisor 1, i.e. a
  depthwise all-ones convolution) · β[c] + b[c], then the activation.
- dense: flatten (row-major, as ours) then `F.linear`; our weight is stored
  (in, out), PyTorch's (out, in).
- rbf: minus the squared distance to the fixed centres (a buffer, not trained),
  the logits our RbfOutput returns.
"""

from __future__ import annotations

from typing import Any

from ..spec.config import Config
from ..errors import UserError

INSTALL_HINT = ("`pip install torch==2.13.0` (a CPU build, installed from local disk on the course machine) "
                "or `pip install 'cnn-cli[torch]'`")


def require_torch(what: str = "--against torch"):
    """The torch module, or a UserError naming the option and how to install it."""
    try:
        import torch
    except ImportError:
        raise UserError(f"{what}: PyTorch is not installed; install it with {INSTALL_HINT}") from None
    return torch


def _activation(name: str):
    import torch

    if name == "relu":
        return torch.relu
    if name == "sigmoid":
        return torch.sigmoid
    if name == "tanh":
        return torch.tanh
    if name == "scaled_tanh":
        # LeCun's 1.7159·tanh(2x/3), written as a PyTorch user would.
        return lambda z: 1.7159 * torch.tanh(z * (2.0 / 3.0))
    return None  # identity


def _modules():
    """Module classes, defined lazily so importing this file needs no torch."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Conv(nn.Module):
        def __init__(self, spec, in_shape):
            super().__init__()
            channels = in_shape[0]
            fh, fw = spec.kernel
            self.weight = nn.Parameter(torch.zeros(spec.filters, channels, fh, fw))
            self.bias = nn.Parameter(torch.zeros(spec.filters))
            if spec.connections is not None:
                # table[c][k] → mask[k, c]: filter k reads input map c.
                table = torch.tensor(spec.connections, dtype=torch.float32).T
                self.register_buffer("mask", table[:, :, None, None].contiguous())
            else:
                self.mask = None
            top, bottom, left, right = spec.padding
            if top == bottom and left == right:
                self.pad, self.padding = None, (top, left)
            else:
                self.pad, self.padding = (left, right, top, bottom), (0, 0)
            self.stride = tuple(spec.stride)
            self.act = _activation(spec.activation)

        def forward(self, x):
            w = self.weight if self.mask is None else self.weight * self.mask
            if self.pad is not None:
                x = F.pad(x, self.pad)
            z = F.conv2d(x, w, self.bias, stride=self.stride, padding=self.padding)
            return z if self.act is None else self.act(z)

    class MaxPool(nn.Module):
        def __init__(self, spec):
            super().__init__()
            self.size, self.stride = tuple(spec.size), tuple(spec.stride)

        def forward(self, x):
            return F.max_pool2d(x, self.size, self.stride)

    class MeanPool(MaxPool):
        def forward(self, x):
            return F.avg_pool2d(x, self.size, self.stride)

    class LpPool(MaxPool):
        def __init__(self, spec):
            super().__init__(spec)
            self.p = float(spec.p)

        def forward(self, x):
            powered = x * x if self.p == 2.0 else x.abs().pow(self.p)
            sums = F.avg_pool2d(powered, self.size, self.stride, divisor_override=1)
            return sums.sqrt() if self.p == 2.0 else sums.pow(1.0 / self.p)

    class Subsample(nn.Module):
        def __init__(self, spec, in_shape):
            super().__init__()
            channels = in_shape[0]
            self.size, self.stride = tuple(spec.size), tuple(spec.stride)
            self.beta = nn.Parameter(torch.zeros(channels))
            self.bias = nn.Parameter(torch.zeros(channels))
            self.act = _activation(spec.activation)

        def forward(self, x):
            sums = F.avg_pool2d(x, self.size, self.stride, divisor_override=1)
            z = sums * self.beta[None, :, None, None] + self.bias[None, :, None, None]
            return z if self.act is None else self.act(z)

    class Dense(nn.Module):
        def __init__(self, spec, in_shape):
            super().__init__()
            fan_in = 1
            for n in in_shape:
                fan_in *= n
            self.weight = nn.Parameter(torch.zeros(spec.units, fan_in))
            self.bias = nn.Parameter(torch.zeros(spec.units))
            self.act = _activation(spec.activation)

        def forward(self, x):
            z = F.linear(x.flatten(1), self.weight, self.bias)
            return z if self.act is None else self.act(z)

    class Rbf(nn.Module):
        def __init__(self, spec, in_shape):
            super().__init__()
            from ..spec.rbf_digits import digit_centres

            self.register_buffer("centres", torch.tensor(digit_centres(), dtype=torch.float32))

        def forward(self, x):
            diff = x.flatten(1)[:, None, :] - self.centres[None, :, :]
            return -(diff * diff).sum(dim=2)

    class Net(nn.Module):
        """`layers` holds one module per layer of our Model, under the same names."""

        def __init__(self, layers):
            super().__init__()
            self.layers = nn.Sequential(layers)

        def forward(self, x):
            return self.layers(x)

    return {"conv": Conv, "max": MaxPool, "mean": MeanPool, "lp": LpPool, "subsample": Subsample,
            "dense": Dense, "rbf": Rbf, "net": Net}


def set_torch_threads(threads: int | None) -> None:
    torch = require_torch()
    if threads is not None:
        torch.set_num_threads(int(threads))


def build_torch_model(config: Config, threads: int | None = None):
    """An nn.Module computing what `Model(config)` computes (float32, weights zero:
    use `copy_weights` to give it ours). Sets PyTorch's intra-op thread count
    when `threads` is given."""
    from collections import OrderedDict

    set_torch_threads(threads)
    classes = _modules()
    layers: "OrderedDict[str, Any]" = OrderedDict()
    for shape in config.layers:
        spec = shape.spec
        if spec.family == "conv":
            module = classes["conv"](spec, shape.in_shape)
        elif spec.family == "pool":
            if spec.kind == "subsample":
                module = classes["subsample"](spec, shape.in_shape)
            else:
                module = classes[spec.kind](spec)
        elif spec.family == "dense":
            module = classes["dense"](spec, shape.in_shape)
        elif spec.family == "rbf":
            module = classes["rbf"](spec, shape.in_shape)
        else:  # pragma: no cover - config validation makes this unreachable
            raise ValueError(f"unknown layer kind {spec.family!r}")
        layers[spec.name] = module
    return classes["net"](layers)


def init_like_ours(net, config: Config, seed: int = 0, init: str = "he_normal") -> None:
    """Initialise a freshly built network as our layers do with train.init (for scripts that
    train it on its own); fan_in counts connected input maps only, subsampling starts as mean
    pooling (β = 1/window). Same distribution, not the same numbers.

    he_normal: normal weights with He's std √(2/fan_in) before ReLU, LeCun's √(1/fan_in)
    otherwise, zero biases. pytorch: PyTorch's own default for nn.Conv2d / nn.Linear
    (kaiming_uniform with a = √5), weights and biases uniform in ±1/√fan_in."""
    import torch

    generator = torch.Generator().manual_seed(int(seed))
    modules = dict(net.layers.named_children())
    with torch.no_grad():
        for shape in config.layers:
            spec, module = shape.spec, modules[shape.spec.name]
            if spec.family in ("conv", "dense"):
                w = module.weight
                mask = getattr(module, "mask", None)
                if spec.family == "conv":
                    connections = int(mask.sum().item()) if mask is not None else w.shape[0] * w.shape[1]
                    fan_in = connections * w.shape[2] * w.shape[3] // w.shape[0]
                else:
                    fan_in = w.shape[1]
                if init == "pytorch":
                    bound = 1.0 / max(fan_in, 1) ** 0.5
                    w.copy_((torch.rand(w.shape, generator=generator) * 2 - 1) * bound)
                    module.bias.copy_((torch.rand(module.bias.shape, generator=generator) * 2 - 1) * bound)
                else:
                    std = ((2.0 if spec.activation == "relu" else 1.0) / max(fan_in, 1)) ** 0.5
                    w.copy_(torch.randn(w.shape, generator=generator) * std)
                    module.bias.zero_()
                if mask is not None:
                    w.mul_(mask)
            elif spec.family == "pool" and spec.kind == "subsample":
                module.beta.fill_(1.0 / (spec.size[0] * spec.size[1]))
                module.bias.zero_()


def init_like_pytorch(net, config: Config, seed: int = 0) -> None:
    """init_like_ours with train.init: pytorch."""
    init_like_ours(net, config, seed, init="pytorch")


def copy_weights(ours, theirs) -> None:
    """Copy every parameter of our Model into the PyTorch network, layer by layer.

    Conv weights (K, C, Fh, Fw) copy as they are; connection-table weights
    (connections, Fh, Fw) are scattered into the masked full weight (absent
    pairs zero); dense weights are transposed; subsampling's β and b copy.
    """
    import numpy as np
    import torch

    modules = dict(theirs.layers.named_children())
    with torch.no_grad():
        for layer in ours.layers:
            module = modules[layer.name]
            if layer.family == "conv":
                w = layer.params["weight"]
                if getattr(module, "mask", None) is not None:
                    _, conn_c, conn_k = layer.conn[0], layer.conn[1], layer.conn[2]
                    full = np.zeros(tuple(module.weight.shape), dtype=np.float32)
                    full[conn_k, conn_c] = w
                    w = full
                module.weight.copy_(torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)))
                module.bias.copy_(torch.from_numpy(layer.params["bias"].astype(np.float32)))
            elif layer.family == "subsample":
                module.beta.copy_(torch.from_numpy(layer.params["beta"].astype(np.float32)))
                module.bias.copy_(torch.from_numpy(layer.params["bias"].astype(np.float32)))
            elif layer.family == "dense":
                w = np.ascontiguousarray(layer.params["weight"].T, dtype=np.float32)
                module.weight.copy_(torch.from_numpy(w))
                module.bias.copy_(torch.from_numpy(layer.params["bias"].astype(np.float32)))
            elif layer.family == "rbf":
                module.centres.copy_(torch.from_numpy(layer.fixed["centres"].astype(np.float32)))


def make_torch_optimizer(train: dict, module):
    """PyTorch's optimizer with our settings: Adam (β 0.9/0.999, ε 1e-8) or SGD with
    (Nesterov) momentum; weight decay is an L2 term added to the gradient in both."""
    import torch

    params = [p for p in module.parameters() if p.requires_grad]
    if train["optimizer"] not in ("sgd", "adam"):
        # No PyTorch counterpart: timing ours against Adam would compare different steps.
        raise UserError(f"train.optimizer: {train['optimizer']} has no PyTorch reference here; "
                        f"compare with --set train.optimizer=sgd or adam")
    if train["optimizer"] == "sgd":
        momentum = float(train["momentum"])
        return torch.optim.SGD(params, lr=train["lr"], momentum=momentum,
                               nesterov=bool(train["nesterov"]) and momentum > 0,
                               weight_decay=train["weight_decay"])
    return torch.optim.Adam(params, lr=train["lr"], betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=train["weight_decay"])
