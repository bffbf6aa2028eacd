"""`cnn bench`'s compile figures, measured in fresh processes: the cold compile of every
kernel (an empty cache folder) and loading them from that cache.

`python -m cnn_cli.commands.bench_compile probe CONFIG BATCH THREADS LAUNCH_WALL` is the
child process; it prints one JSON line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


COLD_COMPILE_TARGET_S = 20.0
FIRST_BATCH_TARGET_S = 1.0

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
    """`python -m cnn_cli.commands.bench_compile probe CONFIG BATCH THREADS LAUNCH_WALL`: prints one JSON line."""
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
    done = subprocess.run([sys.executable, "-m", "cnn_cli.commands.bench_compile", "probe", config_name, str(batch), str(threads),
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


if __name__ == "__main__":  # the compile probe's entry point
    if len(sys.argv) >= 2 and sys.argv[1] == "probe":
        probe_main(sys.argv[2:])
    else:
        sys.exit("usage: python -m cnn_cli.commands.bench_compile probe CONFIG BATCH THREADS LAUNCH_WALL")
