"""Stopping a training run: signals outside the loop, and naming the layer that overflowed.

Inside the loop the trainer turns Ctrl-C and SIGTERM into a save and a clean exit
(train.py); before and after it, SIGTERM must unwind like Ctrl-C does — temp files
removed, the run folder's lock released — and end in one line, not a default death.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import UserError


class Terminated(BaseException):
    """SIGTERM outside the training loop: unwinds like KeyboardInterrupt (temp files removed, lock released)."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(signum)
        self.signum = signum


def raise_terminated(signum, frame):
    raise Terminated(signum)


def stopped_early(run_dir: Optional[Path], signum: int) -> UserError:
    """The one line for a Ctrl-C/SIGTERM that came before the training loop (or after it)."""
    name = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
    last = run_dir / "last.npz" if run_dir is not None else None
    if last is not None and last.exists():
        error = UserError(f"stopped by {name} outside the training loop; {last} holds the latest saved state — "
                          f"continue with --resume {last}")
    else:
        error = UserError(f"stopped by {name} before training began; nothing was saved")
    error.exit_code = 128 + int(signum)
    return error


def first_nonfinite_layer(model, x: np.ndarray) -> str:
    """The first layer whose output holds NaN or inf for input x (its name and kind), or 'the loss'."""
    try:
        for layer in model.layers:
            x = layer.forward(x)
            if not np.isfinite(x).all():
                return f"layer {layer.name} ({layer.family})"
        return "the loss"
    finally:
        model.clear_caches()


def nonfinite_gradient_layers(model) -> str:
    """Where a NaN/inf gradient arose: the last layer (forward order) whose gradients are non-finite,
    or a parameterless layer after it, since the backward pass carries NaN to every earlier layer."""
    names = [layer.name for layer in model.layers]
    bad = [i for i, layer in enumerate(model.layers)
           if any(g is not None and not np.isfinite(g).all() for g in layer.grads.values())]
    if not bad:
        return "a layer's backward pass"
    start = bad[-1]
    end = next((i for i in range(start + 1, len(names)) if model.layers[i].params), len(names))
    span = names[start:end]
    return f"layer {span[0]}" if len(span) == 1 else "layer " + " or ".join(span)
