"""`cnn bench`: how fast a network trains and infers, optionally against PyTorch.

Timing functions here return plain data (dicts ready for JSON); bench_render.py
draws them, bench_timing.py holds the timing core and the machine description,
bench_compile.py the compile probe. Methodology:

- Random data of the config's input shape (float32, as `cnn train` feeds the
  kernels) and random labels. Ours and PyTorch's networks start from the same
  weights (`reference/torch_model.copy_weights`) and use the same optimizer settings.
- A figure is the median of `repeat` repetitions; a repetition calls the step
  until at least `min_time` seconds have passed and counts images (or calls)
  per second. Every callable is warmed up first, so JIT compilation and
  PyTorch's first-call set-up are never inside a timed region.
- With PyTorch, repetitions are interleaved — ours, theirs, ours, theirs... —
  so both see the same machine load; `ratio` compares figures of the same run
  and is always "how many times faster ours is" (ours img/s ÷ theirs, or their
  ms ÷ ours). Only those ratios mean anything on a shared, noisy machine.
- The training step is what `cnn train` does per batch: forward, softmax
  cross-entropy, backward, optimizer update (PyTorch: zero_grad, forward,
  F.cross_entropy, backward, step). Inference is a forward pass
  (PyTorch: under torch.inference_mode()).
- Per layer (at `layer_batch`): each layer's forward and backward alone on
  inputs captured from a real forward pass (PyTorch: the module on a detached
  input that requires grad, backward with torch.autograd.grad), plus the loss
  (forward+backward), the optimizer update and the whole step; each figure the
  median of `repeat` repetitions of at least `min_time`/5 seconds.
- Compilation is measured in subprocesses: `cold` runs the first training step
  and inference of the config's network and then of a network holding every
  layer kind (so every kernel compiles) with NUMBA_CACHE_DIR pointing at an
  empty temporary folder; `cache load` runs the same again on that now-filled
  cache. Both sum the first calls' wall times (the compute inside them, a few
  milliseconds at batch 16, is included).

JSON (`cnn bench --json`; every duration in seconds unless the key says ms):

    {"config", "command", "threads", "settings": {batch_sizes, threads, against,
     repeat, min_time, inference_batch, layer_batch, compile},
     "machine": {cpu, cores, python, numpy, numba, torch, threading_layer,
                 platform, date, loadavg_before, loadavg_after},
     "train":     [{"batch_size", "ours": FIGURE, "torch": FIGURE|null,
                    "ratio": float|null, "target": float|null}],
     "inference": [same rows],
     "layers": {"batch_size", "rows": [{"name", "kind", "pass", "ours_ms",
                "torch_ms": float|null, "ratio": float|null}]},
               (augmentation rows: kind "augment", pass "distort", torch_ms null,
                plus "step_fraction": ours_ms ÷ the training step's ours_ms)
     "compile": {"cold_s", "cache_load_s", "cold_process_s", "cached_process_s",
                 "import_s", "first_batch_after_launch_s", "batch_size",
                 "kernels": [names], "networks": [...]} | null}

    FIGURE = {"images_per_s" (median), "ms_per_batch", "repetitions" [img/s each]}

`pass` is forward, backward, loss (forward+backward), update (optimizer),
step (the whole training step) or distort (data.augment on a uint8 batch of
layer_batch images: the affine distortions alone and with elastic ones,
BENCH_AFFINE and BENCH_ELASTIC, and the config's own when they differ).
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import asdict, dataclass
from typing import Callable, Optional

import numpy as np

from ..errors import UserError
from .bench_compile import measure_compile
from .bench_timing import figure, interleaved, loadavg, machine_info, ratio

DEFAULT_BATCH_SIZES = (1, 16, 64, 256)

# The issues' targets: ours ÷ PyTorch's images/s in the same run, 2 threads, by
# batch size; LeNet-sized networks' unless the config has its own.
TRAIN_TARGETS = {1: 4.0, 64: 2.0, 256: 1.5}
INFERENCE_TARGETS = {1000: 1.5}
CONFIG_TARGETS = {"cifar10": {"train": {64: 2.0}, "inference": {1000: 2.0}}}


def targets_for(config_name: str, kind: str) -> dict:
    """{batch: target} of a shipped config's training ("train") or inference rows."""
    own = CONFIG_TARGETS.get(config_name)
    if own is not None:
        return own[kind]
    return TRAIN_TARGETS if kind == "train" else INFERENCE_TARGETS

# A network with every layer kind, so the compile probe compiles every kernel.


@dataclass
class BenchOptions:
    config: str = "lenet5"
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    threads: Optional[int] = None  # None: every core numba may use
    against: Optional[str] = None  # None or "torch"
    repeat: int = 5
    min_time: float = 1.0
    inference_batch: int = 1000
    layer_batch: int = 64
    compile: bool = True
    seed: int = 0

    def command(self) -> str:
        parts = ["cnn bench", self.config, "--batch-sizes", ",".join(map(str, self.batch_sizes))]
        if self.threads is not None:
            parts += ["--threads", str(self.threads)]
        if self.against:
            parts += ["--against", self.against]
        parts += ["--repeat", str(self.repeat), "--min-time", f"{self.min_time:g}",
                  "--inference-batch", str(self.inference_batch), "--layer-batch", str(self.layer_batch)]
        if not self.compile:
            parts.append("--no-compile")
        return " ".join(parts)


# ---------------------------------------------------------------- options


def parse_batch_sizes(text: str, option: str = "--batch-sizes") -> tuple[int, ...]:
    """'1,16,64' → (1, 16, 64); anything else is a one-line UserError."""
    sizes = []
    for part in str(text).split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise UserError(f"{option} {text}: expected positive integers separated by commas, e.g. 1,16,64,256")
        sizes.append(int(part))
    return tuple(dict.fromkeys(sizes))  # keep order, drop repeats


def validate_options(options: BenchOptions) -> None:
    if options.against not in (None, "torch"):
        raise UserError(f"--against {options.against}: the only reference is torch")
    if options.repeat < 1:
        raise UserError(f"--repeat {options.repeat}: must be at least 1 (5 or more for figures worth quoting)")
    if not options.min_time > 0:
        raise UserError(f"--min-time {options.min_time}: must be a positive number of seconds")
    for name, value in (("--inference-batch", options.inference_batch), ("--layer-batch", options.layer_batch)):
        if value < 1:
            raise UserError(f"{name} {value}: must be a positive batch size")


def set_threads(threads: Optional[int]) -> int:
    """Set numba's (and, when loaded, PyTorch's) thread count; returns it."""
    import numba

    available = numba.config.NUMBA_NUM_THREADS
    if threads is None:
        threads = available
    if not 1 <= threads <= available:
        raise UserError(f"--threads {threads}: must be between 1 and {available} (the cores numba may use)")
    numba.set_num_threads(threads)
    if sys.modules.get("torch") is not None:
        sys.modules["torch"].set_num_threads(threads)
    return threads


# ---------------------------------------------------------------- the two networks


class Pair:
    """Our Model and, optionally, PyTorch's copy of it, with optimizers and step closures."""

    def __init__(self, config, seed: int, threads: int, against: Optional[str]):
        from ..nn.model import Model
        from ..nn.optim import make_optimizer

        self.config = config
        self.model = Model(config, seed=seed)
        self.optimizer = make_optimizer(config.train, [(n, p) for n, p, _ in self.model.parameters()])
        self.lr = float(config.train["lr"])
        self.rng = np.random.default_rng(seed)
        self.torch = None
        if against == "torch":
            from ..reference.torch_model import build_torch_model, copy_weights, make_torch_optimizer, require_torch

            self.torch = require_torch()
            self.net = build_torch_model(config, threads)
            copy_weights(self.model, self.net)
            self.torch_optimizer = make_torch_optimizer(config.train, self.net)

    def batch(self, size: int):
        x = self.rng.standard_normal((size,) + tuple(self.config.input.shape)).astype(np.float32)
        # uint8 labels, as `cnn train` passes them (the loss kernel specialises on the dtype).
        y = self.rng.integers(0, self.config.num_classes, size).astype(np.uint8)
        return x, y

    # ------------------------------------------------------------ ours

    def ours_train(self, x, y):
        model, optimizer, lr = self.model, self.optimizer, self.lr

        def step():
            model.loss_and_gradients(x, y)
            optimizer.step(list(model.parameters()), lr)

        return step

    def ours_infer(self, x):
        model = self.model
        return lambda: model.forward(x)

    # ------------------------------------------------------------ PyTorch

    def torch_tensors(self, x, y):
        torch = self.torch
        return torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))

    def torch_train(self, x, y):
        F = self.torch.nn.functional
        net, optimizer = self.net, self.torch_optimizer
        xt, yt = self.torch_tensors(x, y)

        def step():
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(xt), yt)
            loss.backward()
            optimizer.step()

        return step

    def torch_infer(self, x):
        torch, net = self.torch, self.net
        xt = torch.from_numpy(x)

        def infer():
            with torch.inference_mode():
                return net(xt)

        return infer


# ---------------------------------------------------------------- benchmarks


def throughput(pair: Pair, kind: str, batch: int, options: BenchOptions, progress) -> dict:
    x, y = pair.batch(batch)
    if kind == "train":
        runners = {"ours": pair.ours_train(x, y)}
        if pair.torch is not None:
            runners["torch"] = pair.torch_train(x, y)
    else:
        runners = {"ours": pair.ours_infer(x)}
        if pair.torch is not None:
            runners["torch"] = pair.torch_infer(x)
    rates = interleaved(runners, options.repeat, options.min_time, warmup=min(options.min_time / 2, 1.0))
    ours = figure(rates["ours"], batch)
    theirs = figure(rates["torch"], batch) if "torch" in rates else None
    targets = targets_for(pair.config.name, kind)
    row = {"batch_size": batch, "ours": ours, "torch": theirs,
           "ratio": ratio(ours["images_per_s"], theirs["images_per_s"] if theirs else None),
           "target": targets.get(batch)}
    if progress:
        vs = f", torch {theirs['images_per_s']:,.0f} img/s (×{row['ratio']:.2f})" if theirs else ""
        progress(f"{kind} batch {batch}: ours {ours['images_per_s']:,.0f} img/s{vs}")
    model = pair.model
    model.clear_caches()
    return row


# What the augmentation rows time: the distortions of LeCun et al. 1998 and
# Simard et al. 2003 at typical bounds (lenet5's own are the affine ones).
BENCH_AFFINE = {"translate": 2.0, "rotate": 10.0, "scale": 0.1, "squeeze": 0.1, "shear": 0.15}
BENCH_ELASTIC = {"alpha": 34.0, "sigma": 4.0}


def augment_settings(config) -> list[tuple[str, dict]]:
    """(row name, data.augment settings) for the augmentation rows: the affine
    distortions alone and with elastic ones, plus the config's own when they differ."""
    from .augment import is_active

    own = config.data["augment"]
    base = {**own, **BENCH_AFFINE, "probability": 1.0}
    rows = [("augment affine", {**base, "elastic": {**own["elastic"], "alpha": 0.0}}),
            ("augment affine+elastic", {**base, "elastic": dict(BENCH_ELASTIC)})]
    if is_active(own) and all(own != settings for _, settings in rows):
        rows.append(("augment (config)", own))
    return rows


def augment_call(settings: dict, images: np.ndarray, seed: int):
    """One training batch's distortion as the trainer runs it: draw, then the kernel."""
    from .augment import Augmenter

    augmenter, rng = Augmenter(settings), np.random.default_rng(seed)
    return lambda: augmenter(images, rng)


def layer_breakdown(pair: Pair, options: BenchOptions, progress) -> dict:
    """Each layer's forward and backward alone, the fused conv + pooling steps, the loss,
    the update and the whole step, in ms; then data.augment's distortions of a batch."""
    batch = options.layer_batch
    x, y = pair.batch(batch)
    inputs = [x]
    for layer in pair.model.layers:
        # Time the training path (the inference rows ran before and left
        # training off, which makes the conv layers recompute their columns).
        layer.training = True
        inputs.append(layer.forward(inputs[-1]))
    rng = np.random.default_rng(options.seed + 1)
    modules = dict(pair.net.layers.named_children()) if pair.torch is not None else {}
    rows: list[dict] = []
    measure = _measurer(rows, options)
    _time_layers(pair, inputs, rng, modules, measure)
    _time_fused_steps(pair, inputs, rng, modules, measure)
    _time_loss_update_step(pair, x, y, inputs[-1], measure)
    pair.model.clear_caches()
    step_ms = rows[-1]["ours_ms"]
    for name, settings in augment_settings(pair.config):
        images = pair.rng.integers(0, 256, (batch, pair.config.input.height, pair.config.input.width), dtype=np.uint8)
        measure(name, "augment", "distort", augment_call(settings, images, options.seed), None)
        rows[-1]["step_fraction"] = rows[-1]["ours_ms"] / step_ms
    if progress:
        step = next(row for row in rows if row["pass"] == "step")
        vs = f", torch {step['torch_ms']:.2f} ms (×{step['ratio']:.2f})" if step["torch_ms"] else ""
        progress(f"per layer at batch {batch}: ours step {step['ours_ms']:.2f} ms{vs}")
    return {"batch_size": batch, "rows": rows}


def _measurer(rows: list[dict], options: BenchOptions):
    """measure(name, kind, pass, ours_fn, torch_fn or None): one interleaved row, appended to rows."""
    layer_time = max(options.min_time / 5, 1e-3)

    def measure(name, kind, pass_, ours_fn, torch_fn):
        runners = {"ours": ours_fn}
        if torch_fn is not None:
            runners["torch"] = torch_fn
        rates = interleaved(runners, options.repeat, layer_time, warmup=min(layer_time, 0.2))
        ours_ms = 1000.0 / statistics.median(rates["ours"])
        torch_ms = 1000.0 / statistics.median(rates["torch"]) if "torch" in rates else None
        rows.append({"name": name, "kind": kind, "pass": pass_, "ours_ms": ours_ms, "torch_ms": torch_ms,
                     "ratio": ratio(torch_ms, ours_ms)})

    return measure


def _torch_pass(torch, forward, t_in, targets, dy):
    """PyTorch's forward and backward of one module (or two in a row) on a captured input."""
    t_out = forward(t_in)
    t_dy = torch.from_numpy(dy)

    def t_fwd():
        return forward(t_in)

    def t_bwd():
        return torch.autograd.grad(t_out, targets, t_dy, retain_graph=True) if targets else None

    return t_fwd, t_bwd


def _time_layers(pair: Pair, inputs: list, rng, modules: dict, measure) -> None:
    torch = pair.torch
    for i, layer in enumerate(pair.model.layers):
        x_in, y_out = inputs[i], inputs[i + 1]
        dy = (rng.standard_normal(y_out.shape) * 0.01).astype(np.float32)
        t_fwd = t_bwd = None
        if torch is not None:
            module = modules[layer.name]
            t_in = torch.from_numpy(x_in.copy()).requires_grad_(layer.need_dx)
            targets = ([t_in] if layer.need_dx else []) + [p for p in module.parameters() if p.requires_grad]
            t_fwd, t_bwd = _torch_pass(torch, module, t_in, targets, dy)
        measure(layer.name, layer.family, "forward", lambda layer=layer, x_in=x_in: layer.forward(x_in), t_fwd)
        layer.forward(x_in)  # the cache backward reads
        measure(layer.name, layer.family, "backward", lambda layer=layer, dy=dy: layer.backward(dy), t_bwd)


def _time_fused_steps(pair: Pair, inputs: list, rng, modules: dict, measure) -> None:
    """The steps the model really runs where a conv and its max pooling are fused
    (ConvMaxPool): one kernel call each way, against PyTorch's two modules."""
    from ..nn.layers import ConvMaxPool

    torch = pair.torch
    position = {layer.name: i for i, layer in enumerate(pair.model.layers)}
    for step in pair.model.steps:
        if not isinstance(step, ConvMaxPool):
            continue
        i = position[step.conv.name]
        x_in, y_out = inputs[i], inputs[i + 2]
        dy = (rng.standard_normal(y_out.shape) * 0.01).astype(np.float32)
        t_fwd = t_bwd = None
        if torch is not None:
            conv_m, pool_m = modules[step.conv.name], modules[step.pool.name]
            t_in = torch.from_numpy(x_in.copy()).requires_grad_(step.conv.need_dx)
            targets = ([t_in] if step.conv.need_dx else []) + [p for p in conv_m.parameters() if p.requires_grad]
            t_fwd, t_bwd = _torch_pass(torch, lambda t, c=conv_m, p=pool_m: p(c(t)), t_in, targets, dy)
        measure(step.name, "conv+pool", "forward", lambda step=step, x_in=x_in: step.forward(x_in), t_fwd)
        step.forward(x_in)
        measure(step.name, "conv+pool", "backward", lambda step=step, dy=dy: step.backward(dy), t_bwd)


def _time_loss_update_step(pair: Pair, x, y, logits, measure) -> None:
    from ..kernels.loss import softmax_cross_entropy

    torch, model = pair.torch, pair.model
    t_loss = t_update = None
    if torch is not None:
        t_logits = torch.from_numpy(logits.copy()).requires_grad_(True)
        t_labels = torch.from_numpy(y.astype(np.int64))

        def t_loss():
            return torch.autograd.grad(torch.nn.functional.cross_entropy(t_logits, t_labels), [t_logits])

    measure("loss", "loss", "loss", lambda: softmax_cross_entropy(logits, y), t_loss)
    model.loss_and_gradients(x, y)  # the update, with real gradients in place
    if torch is not None:
        pair.torch_train(x, y)()

        def t_update():
            pair.torch_optimizer.step()

    measure("optimizer", "optimizer", "update",
            lambda: pair.optimizer.step(list(model.parameters()), pair.lr), t_update)
    measure("step", "step", "step", pair.ours_train(x, y), pair.torch_train(x, y) if torch is not None else None)


# ---------------------------------------------------------------- the whole run


def run_bench(options: BenchOptions, progress: Optional[Callable[[str], None]] = None) -> dict:
    """Every figure of `cnn bench`, as a JSON-ready dict (see the module docstring)."""
    from ..spec.config import load_config

    validate_options(options)
    config = load_config(options.config)
    if options.against == "torch":
        from ..reference.torch_model import require_torch

        require_torch()  # fail before any work
    import numba

    torch = sys.modules.get("torch")
    previous = numba.get_num_threads(), (torch.get_num_threads() if torch is not None else None)
    threads = set_threads(options.threads)
    try:
        return _run(options, config, threads, progress)
    finally:  # a library call leaves the process's thread counts as it found them
        numba.set_num_threads(previous[0])
        if previous[1] is not None:
            sys.modules["torch"].set_num_threads(previous[1])


def _run(options: BenchOptions, config, threads: int, progress) -> dict:
    load_before = loadavg()
    compile_figures = None
    if options.compile:
        # First, alone: the subprocesses would disturb any timing running beside them.
        compile_figures = measure_compile(options.config, threads, progress=progress)
    pair = Pair(config, options.seed, threads, options.against)
    result = {
        "config": config.name,
        "command": options.command(),
        "threads": threads,
        "settings": {**asdict(options), "batch_sizes": list(options.batch_sizes), "threads": threads},
        "train": [throughput(pair, "train", b, options, progress) for b in options.batch_sizes],
        "inference": [throughput(pair, "inference", b, options, progress)
                      for b in dict.fromkeys(options.batch_sizes + (options.inference_batch,))],
        "layers": layer_breakdown(pair, options, progress),
        "compile": compile_figures,
    }
    result["machine"] = {**machine_info(), "loadavg_before": load_before, "loadavg_after": loadavg()}
    return result
