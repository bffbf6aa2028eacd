"""`cnn bench`'s measuring instruments: the machine a figure comes from, and the timing core
(warm-up, repetitions interleaved between ours and PyTorch, medians, ratios)."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import subprocess
import time
from typing import Callable, Optional

import numpy as np



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
