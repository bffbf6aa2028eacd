"""Whole-process figures that `cnn bench` cannot take from inside one process.

    python benchmarks/bench_train_wall.py --threads 2 --rounds 3 --out benchmarks/results/train_wall.json

1. Wall time of `cnn train lenet5 --epochs 5` on 10,000 digits against
   benchmarks/torch_train.py doing the same (same network, split, optimizer,
   batches, per-epoch validation and checkpoints, final test), launched
   alternately (ours, theirs, ours, theirs...) `--rounds` times; medians and
   their ratio. The issue's target: ours takes less than half PyTorch's time.
2. Peak memory (ru_maxrss of the process, from wait4) of one epoch of
   `cnn train lenet5` on a full-size set (60,000 training digits, 10,000 test)
   and of the PyTorch script on the same files. Target: ≤ 400 MB.
3. Time to first batch: from launching `cnn train lenet5` to the start and end
   of its first training step, with the kernels loaded from Numba's cache (the
   repository's, warmed first; median of 5 launches) and with an empty cache
   (everything the step needs compiles; one launch). Target: ≤ 1 s from launch
   with the cache.

The digits are the shared MNIST sample (../shared/mnist-sample, 4,000 training
and 1,000 test images) repeated to the sizes above; without it, the learnable
synthetic digits of tests/idx_fixtures.py. Speed and memory depend on the
number of images, not on which they are. `--check-idle` only reports whether
tests or other benchmarks are running (exit 1 if so): timings taken beside them
are wrong by up to an order of magnitude on this 2-core machine.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "mnist-sample"
BUSY_PATTERNS = ("pytest", "cnn bench", "cnn_cli.commands.bench", "bench_train_wall", "torch_train.py", "cnn train")

# The first training step is the first optimizer update (cnn train runs every
# kernel once before it, to load or compile them: that is inside the figure);
# its start is the start of the forward/backward pass just before.
FIRST_BATCH_WRAPPER = r"""
import json, os, sys, time
marker = os.environ["CNN_BENCH_FIRST_BATCH"]
import cnn_cli.nn.model as model_module
import cnn_cli.nn.optim as optim_module
original_pass = model_module.Model.loss_and_gradients
original_step = optim_module.Optimizer.step
last_start = [None]
def timed_pass(self, *args, **kwargs):
    last_start[0] = time.time()
    return original_pass(self, *args, **kwargs)
def first_step(self, *args, **kwargs):
    original_step(self, *args, **kwargs)
    with open(marker, "w") as handle:
        json.dump({"start": last_start[0], "end": time.time()}, handle)
    os._exit(0)
model_module.Model.loss_and_gradients = timed_pass
optim_module.Optimizer.step = first_step
from cnn_cli.cli import app
sys.argv = ["cnn"] + sys.argv[1:]
app()
"""


# ---------------------------------------------------------------- machine state


def busy_processes() -> list[str]:
    """Command lines of other processes that would disturb a timing (tests, benchmarks, training)."""
    mine = {os.getpid(), os.getppid()}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if cmd and any(p in cmd for p in BUSY_PATTERNS) and "--check-idle" not in cmd:
            found.append(f"{entry.name}: {cmd[:160]}")
    return found


def machine() -> dict:
    sys.path.insert(0, str(REPO))
    from cnn_cli.commands.bench_timing import cpu_model, git_state

    versions = {}
    for name in ("numpy", "numba", "torch"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:  # noqa: BLE001
            versions[name] = None
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "python": sys.version.split()[0], **versions,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "loadavg": [round(v, 2) for v in os.getloadavg()],
            "git": git_state()}


# ---------------------------------------------------------------- data


def _read_idx(path: Path):
    import numpy as np

    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def make_data(folder: Path, n_train: int, n_test: int) -> str:
    """Write the four IDX files of n_train/n_test digits into folder; returns where they came from."""
    import numpy as np

    sys.path.insert(0, str(REPO / "tests"))
    from idx_fixtures import make_digits, write_idx_images, write_idx_labels

    folder.mkdir(parents=True, exist_ok=True)
    if (SAMPLE / "train-images-idx3-ubyte.gz").is_file():
        arrays = {split: (_read_idx(SAMPLE / f"{prefix}-images-idx3-ubyte.gz"),
                          _read_idx(SAMPLE / f"{prefix}-labels-idx1-ubyte.gz"))
                  for split, prefix in (("train", "train"), ("test", "t10k"))}
        source = (f"the shared MNIST sample ({len(arrays['train'][1]):,} train / {len(arrays['test'][1]):,} test "
                  f"digits) repeated to {n_train:,} / {n_test:,}")
    else:
        arrays = {"train": make_digits(n_train, seed=0), "test": make_digits(n_test, seed=1)}
        source = f"{n_train:,} / {n_test:,} synthetic digits (tests/idx_fixtures.make_digits)"
    names = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
             "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = arrays[split]
        idx = np.arange(n) % len(labels)
        write_idx_images(folder / names[split][0], images[idx])
        write_idx_labels(folder / names[split][1], labels[idx])
    return source


# ---------------------------------------------------------------- processes


def cnn_command() -> list[str]:
    found = shutil.which("cnn")
    return [found] if found else [sys.executable, "-m", "cnn_cli.cli"]


def run_measured(cmd: list[str], log: Path, env: dict | None = None) -> dict:
    """Wall seconds and peak resident memory (MB) of one process, from os.wait4."""
    with open(log, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {code}); see {log}:\n{log.read_text()[-2000:]}")
    return {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024.0}


def train_commands(data: Path, work: Path, tag: str, epochs: int, threads: int) -> dict[str, list[str]]:
    return {
        "ours": cnn_command() + ["train", "lenet5", "--epochs", str(epochs), "--data-dir", str(data), "--offline",
                                 "--quiet", "--threads", str(threads), "--run-dir", str(work / f"ours-{tag}")],
        "torch": [sys.executable, str(REPO / "benchmarks" / "torch_train.py"), "lenet5", "--epochs", str(epochs),
                  "--data-dir", str(data), "--threads", str(threads), "--quiet", "--out", str(work / f"torch-{tag}")],
    }


def display(cmd: list[str], work: Path) -> str:
    """A command as it would be typed from the repository root."""
    text = []
    for part in cmd:
        part = part.replace(str(work), "$WORK").replace(str(REPO) + "/", "")
        text.append("cnn" if part == shutil.which("cnn") else ("python" if part == sys.executable else part))
    return " ".join(text)


def first_batch(data: Path, work: Path, threads: int, tag: str, cache_dir: str | None, launches: int = 1) -> dict:
    """Launch to the start and end of the first training step: medians over `launches`
    launches (one launch is at the mercy of the shared host: 0.8-1.1 s within minutes)."""
    runs = []
    for launch_index in range(launches):
        marker = work / f"first-batch-{tag}.json"
        marker.unlink(missing_ok=True)
        env = dict(os.environ, CNN_BENCH_FIRST_BATCH=str(marker))
        if cache_dir:
            env["NUMBA_CACHE_DIR"] = cache_dir
        cmd = [sys.executable, "-c", FIRST_BATCH_WRAPPER, "train", "lenet5", "--data-dir", str(data), "--offline",
               "--quiet", "--threads", str(threads), "--run-dir", str(work / f"first-{tag}-{launch_index}")]
        launch = time.time()
        subprocess.run(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
        times = json.loads(marker.read_text())
        runs.append((times["start"] - launch, times["end"] - launch))
    return {"start_after_launch_s": statistics.median(r[0] for r in runs),
            "end_after_launch_s": statistics.median(r[1] for r in runs),
            "end_runs_s": [round(r[1], 3) for r in runs]}


# ---------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="ours/theirs launches of the wall-time comparison")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-images", type=int, default=10_000)
    parser.add_argument("--full-images", type=int, default=60_000, help="training images of the peak-memory run")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    parser.add_argument("--check-idle", action="store_true", help="only report whether the machine is idle")
    parser.add_argument("--force", action="store_true", help="time even when tests or benchmarks are running")
    args = parser.parse_args(argv)

    busy = busy_processes()
    if args.check_idle or (busy and not args.force):
        for line in busy:
            print(f"busy: {line}", file=sys.stderr)
        if busy:
            print("the machine is busy: wait until these finish (or pass --force)", file=sys.stderr)
        return 1 if busy else 0

    work = args.work or Path(tempfile.mkdtemp(prefix="cnn-bench-wall-"))
    work.mkdir(parents=True, exist_ok=True)

    def say(text):
        print(text, file=sys.stderr, flush=True)

    small, full = work / "digits-small", work / "digits-full"
    source = make_data(small, args.train_images, 1_000)
    make_data(full, args.full_images, 10_000)
    say(f"data: {source}")

    # Warm the repository's Numba cache (and the OS file cache) with one short run of each.
    warm = train_commands(small, work, "warm", 1, args.threads)
    for name, cmd in warm.items():
        run_measured(cmd, work / f"{name}-warm.log")

    results = {"machine": machine(), "data": source, "threads": args.threads, "epochs": args.epochs,
               "train_images": args.train_images}
    walls: dict[str, list[dict]] = {"ours": [], "torch": []}
    for r in range(args.rounds):
        commands = train_commands(small, work, f"r{r}", args.epochs, args.threads)
        for name, cmd in commands.items():
            walls[name].append(run_measured(cmd, work / f"{name}-r{r}.log"))
            say(f"round {r + 1}: {name} {walls[name][-1]['wall_s']:.1f} s")
    summaries = {name: json.loads((work / f"{name}-r0" / "summary.json").read_text()) for name in walls}
    ours_wall = statistics.median(w["wall_s"] for w in walls["ours"])
    torch_wall = statistics.median(w["wall_s"] for w in walls["torch"])
    results["wall"] = {
        "commands": {name: display(cmd, work) for name, cmd in train_commands(small, work, "N", args.epochs,
                                                                               args.threads).items()},
        "ours_s": ours_wall, "torch_s": torch_wall, "ratio": torch_wall / ours_wall, "target": 2.0,
        "runs": walls,
        "test_accuracy": {name: summaries[name]["test_accuracy"] for name in summaries},
    }
    say(f"wall: ours {ours_wall:.1f} s, torch {torch_wall:.1f} s (torch ÷ ours {torch_wall / ours_wall:.2f})")

    memory = {}
    for name, cmd in train_commands(full, work, "full", 1, args.threads).items():
        memory[name] = run_measured(cmd, work / f"{name}-full.log")
        memory[name]["command"] = display(cmd, work)
        say(f"peak memory, one epoch on {args.full_images:,}: {name} {memory[name]['peak_rss_mb']:.0f} MB")
    results["memory"] = {"train_images": args.full_images, "target_mb": 400.0, **memory}

    cached = first_batch(small, work, args.threads, "cached", None, launches=5)
    with tempfile.TemporaryDirectory(prefix="cnn-bench-cold-cache-") as cache_dir:
        cold = first_batch(small, work, args.threads, "cold", cache_dir)
    results["first_batch"] = {"cached": cached, "cold": cold, "target_s": 1.0,
                              "command": f"cnn train lenet5 --data-dir $WORK/digits-small --offline --quiet "
                                         f"--threads {args.threads}"}
    say(f"first batch after launch: cached {cached['end_after_launch_s']:.2f} s, cold {cold['end_after_launch_s']:.1f} s")
    results["machine"]["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    results["command"] = "python benchmarks/bench_train_wall.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in (("threads", args.threads), ("rounds", args.rounds),
                                                    ("epochs", args.epochs)))
    text = json.dumps(results, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
