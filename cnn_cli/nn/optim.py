"""Optimizers and learning-rate schedules.

Optimizers update the model's parameter arrays in place from the gradients the
layers left in `layer.grads`, one fused kernel pass per array (kernels/optim.py). Their state (velocities, Adam moments, step
count) is plain arrays keyed by parameter name, so a checkpoint can hold it and
a resumed run continues bit for bit.
"""

from __future__ import annotations

import math

import numpy as np


def _flat(a: np.ndarray) -> np.ndarray:
    """A 1-D view of a C-contiguous array (never a copy: an update must reach the array)."""
    if not a.flags.c_contiguous:
        raise ValueError("optimizer arrays must be C-contiguous")
    return a.reshape(-1)


def _packed_buffer(arrays: list[np.ndarray]) -> np.ndarray | None:
    """The flat buffer that `arrays` exactly tile, in order, as contiguous views
    (model.pack_parameters), or None."""
    if not arrays or arrays[0].base is None:
        return None
    base = arrays[0].base
    if base.ndim != 1 or not base.flags.c_contiguous:
        return None
    address = base.__array_interface__["data"][0]
    for a in arrays:
        if a.base is not base or not a.flags.c_contiguous or a.__array_interface__["data"][0] != address:
            return None
        address += a.nbytes
    return base if address == base.__array_interface__["data"][0] + base.nbytes else None


class Optimizer:
    slots: tuple[str, ...] = ()

    def __init__(self, params: list[tuple[str, np.ndarray]], lr: float, weight_decay: float = 0.0):
        # lr is the base rate: step() uses it unless the schedule passes the rate of that step.
        self.lr = lr
        self.weight_decay = weight_decay
        self.steps = 0
        # A model's parameters tile one flat buffer (model.pack_parameters): then
        # the state does too, and a step is one kernel call over everything.
        self._params = _packed_buffer([p for _, p in params])
        if self._params is not None:
            self._flat_slots = {slot: np.zeros_like(self._params) for slot in self.slots}
            self.state, start = {}, 0
            for name, p in params:
                self.state[name] = {slot: self._flat_slots[slot][start:start + p.size].reshape(p.shape)
                                    for slot in self.slots}
                start += p.size
        else:
            self.state = {name: {slot: np.zeros_like(p) for slot in self.slots} for name, p in params}
        self._grads: np.ndarray | None = None
        self._grads_of: list[np.ndarray] = []
        # The kernels get every array as a flat view: one compiled signature for
        # all parameters instead of one per number of dimensions, each of which
        # would compile on its own. Views, so updates land in the arrays themselves.
        self._flat_state = {name: {slot: _flat(a) for slot, a in slots.items()} for name, slots in self.state.items()}

    def step(self, named: list[tuple[str, np.ndarray, np.ndarray]], lr: float | None = None) -> None:
        """One update of every parameter at rate lr (the base rate if None); weight decay is
        the L2 penalty ½λ‖w‖² (gradient λw)."""
        lr = self.lr if lr is None else lr
        self.steps += 1
        if self._params is not None and len(named) == len(self.state) and named[0][1].base is self._params:
            grads = [g for _, _, g in named]
            if len(grads) != len(self._grads_of) or any(g is not h for g, h in zip(grads, self._grads_of)):
                self._grads, self._grads_of = _packed_buffer(grads), grads
            if self._grads is not None:
                self._update(self._params, self._grads, self._flat_slots, lr)
                return
        for name, param, grad in named:
            self._update(_flat(param), _flat(grad), self._flat_state[name], lr)

    def load_kernel(self, named: tuple[str, np.ndarray, np.ndarray]) -> None:
        """Run the update kernel once on copies of one parameter's arrays, so it is
        compiled or loaded from the cache; nothing of the optimizer changes."""
        name, param, grad = named
        copies = {slot: _flat(a.copy()) for slot, a in self.state[name].items()}
        self._update(_flat(param.copy()), _flat(grad.copy()), copies, 0.0)

    def _update(self, param, grad, state, lr):  # pragma: no cover - interface
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        out = {f"{name}.{slot}": arr for name, slots in self.state.items() for slot, arr in slots.items()}
        out["steps"] = np.array(self.steps, dtype=np.int64)
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for name, slots in self.state.items():
            for slot, arr in slots.items():
                arr[...] = state[f"{name}.{slot}"]
        self.steps = int(state["steps"])


class SGD(Optimizer):
    """SGD with (optionally Nesterov) momentum, PyTorch's formulation:
    v ← μv + g; w ← w − lr·v (or w ← w − lr·(g + μv) with Nesterov)."""

    slots = ("velocity",)

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        self.momentum = momentum
        self.nesterov = nesterov

    def _update(self, param, grad, state, lr):
        from ..kernels.optim import sgd_update

        sgd_update(param, grad, state["velocity"], lr, self.momentum, self.nesterov, self.weight_decay)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction, PyTorch's formula step by step."""

    slots = ("m", "v")

    def __init__(self, params, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def _update(self, param, grad, state, lr):
        from ..kernels.optim import adam_update

        # Step 0 only from load_kernel, on copies, before training: its bias
        # corrections would divide by zero.
        adam_update(param, grad, state["m"], state["v"], lr, self.beta1, self.beta2, self.eps,
                    self.weight_decay, max(self.steps, 1))


class SDLM(Optimizer):
    """Stochastic diagonal Levenberg–Marquardt (LeCun et al. 1998, appendix C): every
    parameter w_k steps by lr/(μ + h_kk)·g_k, h_kk the Gauss–Newton estimate of
    ∂²E/∂w_k² that set_curvature stores (the trainer re-estimates it before each
    epoch, nn second-order pass). The curvature is optimizer state, so a run resumed in
    the middle of an epoch goes on with the estimate that epoch started with."""

    slots = ("curvature",)

    def __init__(self, params, lr, mu=0.02, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        self.mu = mu

    def set_curvature(self, named: list[tuple[str, np.ndarray]]) -> None:
        """Store h for every parameter (same names and shapes as the parameters)."""
        for name, h in named:
            self.state[name]["curvature"][...] = h

    def _update(self, param, grad, state, lr):
        from ..kernels.optim import sdlm_update

        sdlm_update(param, grad, state["curvature"], lr, self.mu, self.weight_decay)


def make_optimizer(train: dict, params: list[tuple[str, np.ndarray]]) -> Optimizer:
    if train["optimizer"] == "sdlm":
        return SDLM(params, train["lr"], train.get("sdlm_mu", 0.02), train["weight_decay"])
    if train["optimizer"] == "sgd":
        return SGD(params, train["lr"], train["momentum"], train["nesterov"], train["weight_decay"])
    return Adam(params, train["lr"], weight_decay=train["weight_decay"])


def learning_rate(train: dict, step: int, steps_per_epoch: int) -> float:
    """The rate for a global step: constant, step decay by epochs, cosine to zero, or
    piecewise constant ({piecewise: [[epochs, lr], ...]}, the last rate after the list)."""
    base = train["lr"]
    epoch = step // max(steps_per_epoch, 1)
    if isinstance(train["schedule"], dict):
        return piecewise_rate(train["schedule"]["piecewise"], epoch)
    if train["schedule"] == "step":
        return base * train["gamma"] ** (epoch // train["step_size"])
    if train["schedule"] == "cosine":
        total = max(train["epochs"] * steps_per_epoch, 1)
        return 0.5 * base * (1 + math.cos(math.pi * min(step, total) / total))
    return base


def piecewise_rate(pieces: list, epoch: int) -> float:
    """The rate of 0-based `epoch` under [[epochs, lr], ...]: LeCun et al.'s
    [[2, 5e-4], [3, 2e-4], ...] gives 5e-4 to epochs 0-1, 2e-4 to 2-4, and so on."""
    end = 0
    for epochs, rate in pieces:
        end += int(epochs)
        if epoch < end:
            return float(rate)
    return float(pieces[-1][1])
