"""`cnn bench`: how fast a network trains and infers, optionally against PyTorch.

Timing functions here return plain data (dicts ready for JSON); `render_bench`
draws them. Methodology:

- Random data of the config's input shape (float32, as `cnn train` feeds the
  kernels) and random labels. Ours and PyTorch's networks start from the same
  weights (`torch_reference.copy_weights`) and use the same optimizer settings.
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

import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import numpy as np

from ..errors import UserError

DEFAULT_BATCH_SIZES = (1, 16, 64, 256)

# The targets: ours ÷ PyTorch's images/s in the same run, 2 threads.
TRAIN_TARGETS = {1: 4.0, 64: 2.0, 256: 1.5}
INFERENCE_TARGETS = {1000: 1.5}
COLD_COMPILE_TARGET_S = 20.0
FIRST_BATCH_TARGET_S = 1.0

# A network with every layer kind, so the compile probe compiles every kernel.
EVERY_KERNEL_CONFIG = {
    "name": "every-kernel",
    "input": {"channels": 1, "height": 28, "width": 28, "pad": 2},
    "blocks": [
        {"convs": [{"filters": 6, "kernel": 5, "activation": "scaled_tanh"}],
         "pools": [{"kind": "subsample", "size": 2}]},
        {"convs": [{"filters": 16, "kernel": 5, "padding": "same", "connections": "lenet5-c3"}],
         "pools": [{"kind": "max", "size": 2, "stride": 1}, {"kind": "mean", "size": 2, "stride": 1},
                   {"kind": "lp", "size": 3, "stride": 3}]},
    ],
    "fc": [{"units": 84, "activation": "tanh"}, {"kind": "rbf", "units": 10, "centres": "digits"}],
}


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


# ---------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    import numba

    try:
        from importlib.metadata import version

        torch_version = version("torch")
    except Exception:  # noqa: BLE001 - absent or broken: just say so
        torch_version = None
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        layer = None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "torch": torch_version,
        "threading_layer": layer,
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "git": git_state(),
        "thread_pools": thread_pools(),
        "blas_threads_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
    }


def thread_pools() -> Optional[list]:
    """The native thread pools loaded (BLAS, OpenMP) and their sizes, when threadpoolctl is there."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [{"api": info.get("internal_api"), "threads": info.get("num_threads"),
             "library": os.path.basename(info.get("filepath", ""))} for info in threadpool_info()]


def git_state() -> Optional[dict]:
    """The commit the package was run from and whether its files differed from it (None outside git)."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=10)
        status = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=here, capture_output=True,
                                text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if commit.returncode != 0:
        return None
    changed = [line[3:] for line in status.stdout.splitlines() if line.strip()]
    return {"commit": commit.stdout.strip(), "dirty": bool(changed), "changed": changed}


def loadavg() -> Optional[list[float]]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


# ---------------------------------------------------------------- timing core


def warm_up(fn: Callable[[], object], min_time: float, min_calls: int = 2) -> None:
    """Call until both `min_calls` calls and `min_time` seconds are done (compiles, caches, allocators)."""
    start = time.perf_counter()
    calls = 0
    while calls < min_calls or time.perf_counter() - start < min_time:
        fn()
        calls += 1


def one_repetition(fn: Callable[[], object], min_time: float) -> tuple[int, float]:
    """(calls, seconds): call `fn` until at least `min_time` seconds have passed."""
    gc.collect()
    calls = 0
    start = time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return calls, elapsed


def interleaved(runners: dict[str, Callable[[], object]], repeat: int, min_time: float,
                warmup: float) -> dict[str, list[float]]:
    """Calls per second of each runner, `repeat` times, repetitions interleaved."""
    for fn in runners.values():
        warm_up(fn, warmup)
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeat):
        for name, fn in runners.items():
            calls, seconds = one_repetition(fn, min_time)
            rates[name].append(calls / seconds)
    return rates


def figure(calls_per_s: list[float], batch: int) -> dict:
    images = [rate * batch for rate in calls_per_s]
    median = statistics.median(images)
    return {"images_per_s": median, "ms_per_batch": 1000.0 * batch / median, "repetitions": images}


def ratio(ours: Optional[float], theirs: Optional[float]) -> Optional[float]:
    if ours is None or theirs is None or theirs <= 0:
        return None
    return ours / theirs


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
    targets = TRAIN_TARGETS if kind == "train" else INFERENCE_TARGETS
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
    the update and the whole step, in ms."""
    from ..kernels.loss import softmax_cross_entropy
    from ..nn.layers import ConvMaxPool

    batch = options.layer_batch
    layer_time = max(options.min_time / 5, 1e-3)
    x, y = pair.batch(batch)
    model = pair.model
    inputs = [x]
    for layer in model.layers:
        # Time the training path (the inference rows ran before and left
        # training off, which makes the conv layers recompute their columns).
        layer.training = True
        inputs.append(layer.forward(inputs[-1]))
    rng = np.random.default_rng(options.seed + 1)
    modules = dict(pair.net.layers.named_children()) if pair.torch is not None else {}
    torch = pair.torch
    rows = []

    def measure(name, kind, pass_, ours_fn, torch_fn):
        runners = {"ours": ours_fn}
        if torch_fn is not None:
            runners["torch"] = torch_fn
        rates = interleaved(runners, options.repeat, layer_time, warmup=min(layer_time, 0.2))
        ours_ms = 1000.0 / statistics.median(rates["ours"])
        torch_ms = 1000.0 / statistics.median(rates["torch"]) if "torch" in rates else None
        rows.append({"name": name, "kind": kind, "pass": pass_, "ours_ms": ours_ms, "torch_ms": torch_ms,
                     "ratio": ratio(torch_ms, ours_ms)})

    for i, layer in enumerate(model.layers):
        x_in, y_out = inputs[i], inputs[i + 1]
        dy = (rng.standard_normal(y_out.shape) * 0.01).astype(np.float32)
        t_fwd = t_bwd = None
        if torch is not None:
            module = modules[layer.name]
            t_in = torch.from_numpy(x_in.copy()).requires_grad_(layer.need_dx)
            t_dy = torch.from_numpy(dy)
            targets = ([t_in] if layer.need_dx else []) + [p for p in module.parameters() if p.requires_grad]
            t_out = module(t_in)

            def t_fwd(module=module, t_in=t_in):
                return module(t_in)

            def t_bwd(t_out=t_out, targets=targets, t_dy=t_dy):
                return torch.autograd.grad(t_out, targets, t_dy, retain_graph=True) if targets else None

        def o_fwd(layer=layer, x_in=x_in):
            return layer.forward(x_in)

        def o_bwd(layer=layer, dy=dy):
            return layer.backward(dy)

        measure(layer.name, layer.family, "forward", o_fwd, t_fwd)
        layer.forward(x_in)  # the cache backward reads
        measure(layer.name, layer.family, "backward", o_bwd, t_bwd)

    # The steps the model really runs where a conv and its max pooling are fused
    # (ConvMaxPool): one kernel call each way, against PyTorch's two modules.
    position = {layer.name: i for i, layer in enumerate(model.layers)}
    for step in model.steps:
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
            t_out = pool_m(conv_m(t_in))

            def t_fwd(conv_m=conv_m, pool_m=pool_m, t_in=t_in):
                return pool_m(conv_m(t_in))

            def t_bwd(t_out=t_out, targets=targets, t_dy=torch.from_numpy(dy)):
                return torch.autograd.grad(t_out, targets, t_dy, retain_graph=True)

        def o_fwd(step=step, x_in=x_in):
            return step.forward(x_in)

        def o_bwd(step=step, dy=dy):
            return step.backward(dy)

        measure(step.name, "conv+pool", "forward", o_fwd, t_fwd)
        step.forward(x_in)
        measure(step.name, "conv+pool", "backward", o_bwd, t_bwd)

    logits = inputs[-1]
    t_loss = None
    if torch is not None:
        F = torch.nn.functional
        t_logits = torch.from_numpy(logits.copy()).requires_grad_(True)
        t_labels = torch.from_numpy(y.astype(np.int64))

        def t_loss():
            return torch.autograd.grad(F.cross_entropy(t_logits, t_labels), [t_logits])

    measure("loss", "loss", "loss", lambda: softmax_cross_entropy(logits, y), t_loss)

    # The update, with real gradients in place.
    model.loss_and_gradients(x, y)
    t_update = None
    if torch is not None:
        pair.torch_train(x, y)()

        def t_update():
            pair.torch_optimizer.step()

    measure("optimizer", "optimizer", "update",
            lambda: pair.optimizer.step(list(model.parameters()), pair.lr), t_update)
    measure("step", "step", "step", pair.ours_train(x, y), pair.torch_train(x, y) if torch is not None else None)
    model.clear_caches()
    step_ms = rows[-1]["ours_ms"]
    for name, settings in augment_settings(pair.config):
        images = pair.rng.integers(0, 256, (batch, pair.config.input.height, pair.config.input.width), dtype=np.uint8)
        measure(name, "augment", "distort", augment_call(settings, images, options.seed), None)
        rows[-1]["step_fraction"] = rows[-1]["ours_ms"] / step_ms
    if progress:
        step = rows[-1]
        vs = f", torch {step['torch_ms']:.2f} ms (×{step['ratio']:.2f})" if step["torch_ms"] else ""
        progress(f"per layer at batch {batch}: ours step {step['ours_ms']:.2f} ms{vs}")
    return {"batch_size": batch, "rows": rows}


# ---------------------------------------------------------------- compilation (subprocesses)


def every_kernel_config():
    from ..spec.config import validate_config

    return validate_config(json.loads(json.dumps(EVERY_KERNEL_CONFIG)), "<cnn bench: every layer kind>")


def _probe_network(config, batch: int) -> dict:
    """First (compiling or cache-loading) and second calls of a training step and inference."""
    from ..nn.model import Model
    from ..nn.optim import make_optimizer

    model = Model(config, seed=0)
    optimizer = make_optimizer(config.train, [(n, p) for n, p, _ in model.parameters()])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + tuple(config.input.shape)).astype(np.float32)
    y = rng.integers(0, config.num_classes, batch).astype(np.uint8)
    lr = float(config.train["lr"])
    times = {}
    for label in ("first", "second"):
        start = time.perf_counter()
        model.loss_and_gradients(x, y)
        optimizer.step(list(model.parameters()), lr)
        times[f"{label}_train_step_s"] = time.perf_counter() - start
        if label == "first":
            times["first_batch_wall"] = time.time()
        start = time.perf_counter()
        model.predict_proba(x)
        times[f"{label}_inference_s"] = time.perf_counter() - start
    model.clear_caches()
    return {"name": config.name, **times}


def probe_main(argv: list[str]) -> None:
    """`python -m cnn_cli.commands.bench probe CONFIG BATCH THREADS LAUNCH_WALL`: prints one JSON line."""
    config_name, batch, threads, launch = argv[0], int(argv[1]), int(argv[2]), float(argv[3])
    start = time.perf_counter()
    import numba

    from ..spec.config import load_config
    from ..kernels import activations, conv, dense, loss, pool  # noqa: F401 - the import is timed

    import_s = time.perf_counter() - start
    numba.set_num_threads(threads)
    config = load_config(config_name)
    networks = [_probe_network(config, batch), _probe_network(every_kernel_config(), batch)]
    # The standalone activation kernels (no layer calls them): compile them too.
    start = time.perf_counter()
    z = np.linspace(-2, 2, 64, dtype=np.float32).reshape(4, 16)
    activations.activation_backward(z, activations.activation_forward(z, activations.RELU), activations.RELU)
    extra_s = time.perf_counter() - start
    # Every compiled dispatcher of every kernel module loaded (new kernel files included).
    kernels = sorted({f"{mod_name.rsplit('.', 1)[-1]}.{name}"
                      for mod_name, module in list(sys.modules.items()) if mod_name.startswith("cnn_cli.kernels.")
                      for name, obj in vars(module).items()
                      if isinstance(obj, numba.core.registry.CPUDispatcher) and obj.signatures
                      and obj.py_func.__module__ == mod_name})
    print(json.dumps({"import_s": import_s, "networks": networks, "standalone_activation_s": extra_s,
                      "first_batch_after_launch_s": networks[0]["first_batch_wall"] - launch,
                      "kernels": kernels}))


def _run_probe(config_name: str, batch: int, threads: int, cache_dir: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    launch = time.time()
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cnn_cli.commands.bench", "probe", config_name, str(batch), str(threads),
                           repr(launch)], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"compile probe failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = wall
    result["first_calls_s"] = (sum(n["first_train_step_s"] + n["first_inference_s"] for n in result["networks"])
                               + result["standalone_activation_s"])
    return result


def measure_compile(config_name: str, threads: int, batch: int = 16, progress=None) -> dict:
    """Cold compile (empty NUMBA_CACHE_DIR) and cache load (the same folder, now filled), each in a fresh process."""
    with tempfile.TemporaryDirectory(prefix="cnn-bench-numba-cache-") as cache_dir:
        cold = _run_probe(config_name, batch, threads, cache_dir)
        if progress:
            progress(f"cold compile of every kernel: {cold['first_calls_s']:.1f} s")
        cached = _run_probe(config_name, batch, threads, cache_dir)
    if progress:
        progress(f"load from the cache: {cached['first_calls_s']:.2f} s")
    return {
        "cold_s": cold["first_calls_s"],
        "cache_load_s": cached["first_calls_s"],
        "cold_process_s": cold["process_s"],
        "cached_process_s": cached["process_s"],
        "import_s": cached["import_s"],
        "first_batch_after_launch_s": cached["first_batch_after_launch_s"],
        "cold_first_batch_after_launch_s": cold["first_batch_after_launch_s"],
        "batch_size": batch,
        "kernels": cold["kernels"],
        "networks": {"cold": cold["networks"], "cached": cached["networks"]},
        "targets": {"cold_s": COLD_COMPILE_TARGET_S, "first_batch_after_launch_s": FIRST_BATCH_TARGET_S},
    }


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


# ---------------------------------------------------------------- rendering


def _num(v: Optional[float], fmt: str = ",.0f") -> str:
    return "-" if v is None else format(v, fmt)


def _ratio_text(r: Optional[float], target: Optional[float] = None) -> str:
    if r is None:
        return "-"
    text = f"×{r:.2f}"
    if target is not None:
        text += f" ({'met' if r >= target else 'below'} ≥{target:g})"
    return text


def render_bench(result: dict) -> list:
    """Rich renderables: header, throughput tables, per-layer table, compile lines."""
    from rich.table import Table
    from rich.text import Text

    m = result["machine"]
    has_torch = any(row["torch"] for row in result["train"] + result["inference"])
    out = [Text(f"{result['config']}: {m['cpu']}, {m['cores']} cores, {result['threads']} threads; "
                f"numba {m['numba']}" + (f", torch {m['torch']}" if has_torch else "") +
                f"; median of {result['settings']['repeat']} × ≥{result['settings']['min_time']:g} s"
                f"; load average {m['loadavg_before']}")]
    for kind, title in (("train", "training step (forward, loss, backward, update)"), ("inference", "inference")):
        table = Table(title=f"{title}, images/s", title_justify="left")
        table.add_column("batch", justify="right")
        table.add_column("ours", justify="right")
        table.add_column("ms/batch", justify="right")
        if has_torch:
            table.add_column("torch", justify="right")
            table.add_column("ms/batch", justify="right")
            table.add_column("ours ÷ torch", justify="right")
        for row in result[kind]:
            cells = [str(row["batch_size"]), _num(row["ours"]["images_per_s"]), _num(row["ours"]["ms_per_batch"], ".2f")]
            if has_torch:
                t = row["torch"] or {}
                cells += [_num(t.get("images_per_s")), _num(t.get("ms_per_batch"), ".2f"),
                          _ratio_text(row["ratio"], row["target"])]
            table.add_row(*cells)
        out.append(table)
    layers = result["layers"]
    table = Table(title=f"per layer at batch {layers['batch_size']}, ms", title_justify="left")
    table.add_column("layer")
    table.add_column("pass")
    table.add_column("ours", justify="right")
    if has_torch:
        table.add_column("torch", justify="right")
        table.add_column("torch ÷ ours", justify="right")
    for row in layers["rows"]:
        if row["kind"] == "augment":
            continue
        cells = [row["name"], row["pass"], _num(row["ours_ms"], ".3f")]
        if has_torch:
            cells += [_num(row["torch_ms"], ".3f"), _ratio_text(row["ratio"])]
        table.add_row(*cells)
    out.append(table)
    for row in layers["rows"]:
        if row["kind"] == "augment":
            fraction = row.get("step_fraction")
            share = f" = {100 * fraction:.1f} % of the training step (target ≤ 15 %)" if fraction is not None else ""
            out.append(Text(f"{row['name']}: {row['ours_ms']:.3f} ms to distort a batch of "
                            f"{layers['batch_size']}{share}"))
    c = result["compile"]
    if c:
        out.append(Text(f"compile: cold {c['cold_s']:.1f} s for every kernel ({len(c['kernels'])}; target ≤ "
                        f"{COLD_COMPILE_TARGET_S:g} s), loading them from the cache {c['cache_load_s']:.2f} s; "
                        f"a cached process finished its first batch {c['first_batch_after_launch_s']:.2f} s "
                        f"after launch (target ≤ {FIRST_BATCH_TARGET_S:g} s)"))
    if not has_torch:
        out.append(Text("add --against torch for same-run ratios against PyTorch"))
    return out


if __name__ == "__main__":  # the compile probe's entry point
    if len(sys.argv) >= 2 and sys.argv[1] == "probe":
        probe_main(sys.argv[2:])
    else:
        sys.exit("usage: python -m cnn_cli.commands.bench probe CONFIG BATCH THREADS LAUNCH_WALL")
