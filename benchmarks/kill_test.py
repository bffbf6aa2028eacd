"""Kill `cnn train` at random moments, many times, and check that nothing is ever lost (issue 20).

    python benchmarks/kill_test.py --kills 24 --seed 0

Not a unit test: it launches `cnn train` over and over on a tiny config and generated data
(no download), and sends SIGKILL, SIGTERM or SIGINT either after a random delay or the
moment a checkpoint's temp file appears (inside `write_atomically`). After every kill:

- every .npz left in the run folder loads (cnn_cli.nn.checkpoint.load_checkpoint);
- SIGTERM/SIGINT end with 143/130 (or 0 when the run had just finished), never a traceback;
- the next start — a resume from last.npz (or best.npz, or a fresh start in a folder left
  without any checkpoint) — removes the temp files the kill left: none outlives it;

and at the end a resume without kills completes (exit 0, summary.json written, no temp
file, no lock). Prints one line per kill and a summary; exit status 1 when any check failed.
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cnn_cli.nn.checkpoint import load_checkpoint  # noqa: E402
from cnn_cli.errors import UserError  # noqa: E402

# Wide hidden layer: ~1 MB of weights (3 MB with Adam's slots) per checkpoint, so a
# write lasts long enough to be hit; the epochs stay short (a few hundred images).
CONFIG = """\
name: killme
input: {channels: 1, height: 28, width: 28}
blocks:
  - convs: [{filters: 4, kernel: 5, stride: 2}]
    pools: [{kind: max, size: 2}]
fc:
  - {units: 1500}
  - {units: 10}
train: {epochs: 1000, batch_size: 50, optimizer: adam, lr: 0.001, seed: 0}
data: {val_split: 0.2}
"""
SIGNALS = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM, "INT": signal.SIGINT}
EXPECTED_EXIT = {"KILL": {-9}, "TERM": {143, 0}, "INT": {130, 0}}


def write_data(folder: Path, n_train: int = 300, n_test: int = 100) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):  # a bright bar whose place is the class: learnable
            images[i, 2 + 2 * label: 5 + 2 * label, 4:24] = 255
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes()))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(struct.pack(">II", 2049, n) + labels.tobytes()))


def temp_files(run_dir: Path) -> set[str]:
    return {p.name for p in run_dir.glob(".*.tmp")} if run_dir.is_dir() else set()


def start_command(run_dir: Path, config: Path, data: Path, epochs: int | None = None) -> list[str]:
    """Resume from the newest state the folder holds; a fresh start when it holds none."""
    base = [sys.executable, "-m", "cnn_cli.cli", "train"]
    tail = ["--data-dir", str(data), "--offline", "--quiet"] + (["--epochs", str(epochs)] if epochs else [])
    for name in ("last.npz", "best.npz"):
        if (run_dir / name).is_file():
            return base + ["--resume", str(run_dir / name)] + tail
    return base + [str(config), "--run-dir", str(run_dir)] + tail


def check_survivors(run_dir: Path) -> list[str]:
    problems = []
    for path in sorted(run_dir.glob("*.npz")):
        try:
            load_checkpoint(path)
        except UserError as error:
            problems.append(f"{path.name} does not load: {error}")
    return problems


def one_kill(run_dir: Path, config: Path, data: Path, rng: random.Random, env: dict) -> tuple[str, list[str]]:
    leftovers = temp_files(run_dir)
    process = subprocess.Popen(start_command(run_dir, config, data), env=env, cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    name = rng.choice(list(SIGNALS))
    # "twice": a second signal 2 ms after the first, while the checkpoint that the first one asked for
    # (or the one in progress) is being written — the user who presses Ctrl-C again.
    mode = rng.choice(["delay", "write", "twice"] if name != "KILL" else ["delay", "write"])
    problems: list[str] = []
    began = time.monotonic()
    deadline = began + 30
    # The lock is taken (and old temp files removed) before training starts: wait for the lock.
    while not (run_dir / ".lock").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    locked = process.poll() is None
    hit_write = False
    if mode == "delay":
        time.sleep(rng.uniform(0.0, 4.0))
    else:  # "write" and "twice": the moment a checkpoint's temp file appears
        while process.poll() is None and time.monotonic() < deadline:
            if any(n.startswith((".last.npz.", ".best.npz.")) for n in temp_files(run_dir) - leftovers):
                hit_write = True
                break
            time.sleep(0.0005)
    if locked and leftovers & temp_files(run_dir):  # the start took the lock: it must have cleaned them
        problems.append(f"temp files of the previous kill survived this start: {sorted(leftovers & temp_files(run_dir))}")
    sent_at = time.monotonic() - began
    if process.poll() is None:
        process.send_signal(SIGNALS[name])
        if mode == "twice":
            time.sleep(0.002)
            if process.poll() is None:
                process.send_signal(SIGNALS[name])
    _, stderr = process.communicate(timeout=120)
    text = stderr.decode("utf-8", "replace")
    if process.returncode not in EXPECTED_EXIT[name]:
        problems.append(f"SIG{name}: exit {process.returncode}: {text.strip()[-300:]}")
    if "Traceback" in text:
        problems.append(f"SIG{name}: traceback on stderr: {text.strip()[-300:]}")
    problems += check_survivors(run_dir)
    if name != "KILL" and (run_dir / ".lock").exists():  # SIGKILL's lock is stale: the next start takes it over
        problems.append(f"SIG{name}: the lock outlived the process")
    # Two signals that arrive before Python runs its handler coalesce into one (POSIX does not queue
    # them): then the run saves and says so as for one signal. Otherwise: one line saying what happened.
    lines = text.strip().splitlines()
    coalesced = bool(lines) and lines[0].startswith("interrupted: state saved")
    if mode == "twice" and process.returncode != 0 and not coalesced and (len(lines) != 1 or "interrupted" not in text):
        problems.append(f"SIG{name} twice: stderr is not the one line saying what happened: {text.strip()[-300:]}")
    when = "inside a checkpoint write" if hit_write else f"after {sent_at:4.1f} s"
    twice = "   " if mode != "twice" else (" x2 (coalesced into one)" if coalesced else " x2")
    what = f"SIG{name:<4}{twice} {when}"
    state = ", ".join(sorted(p.name for p in run_dir.glob("*.npz"))) or "no checkpoint yet"
    tmp = temp_files(run_dir)
    return f"{what:<32} exit {process.returncode:>4}  {state}" + (f"  (+{len(tmp)} temp file(s))" if tmp else ""), problems


def finish(run_dir: Path, config: Path, data: Path, env: dict) -> list[str]:
    """Resume once more, without kills, to one epoch past where the folder stands."""
    problems = []
    epoch = 0
    for name in ("last.npz", "best.npz"):
        if (run_dir / name).is_file():
            epoch = load_checkpoint(run_dir / name).meta["epoch"]
            break
    before = temp_files(run_dir)
    proc = subprocess.run(start_command(run_dir, config, data, epochs=epoch + 1), env=env, cwd=REPO,
                          capture_output=True, timeout=300)
    if proc.returncode != 0:
        problems.append(f"final resume: exit {proc.returncode}: {proc.stderr.decode(errors='replace')[-400:]}")
    if temp_files(run_dir):
        problems.append(f"temp files after the final resume: {sorted(temp_files(run_dir))} (before: {sorted(before)})")
    if (run_dir / ".lock").exists():
        problems.append("the lock outlived the final resume")
    if not (run_dir / "summary.json").is_file():
        problems.append("no summary.json after the final resume")
    return problems + check_survivors(run_dir)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=24, help="kills in all")
    parser.add_argument("--chains", type=int, default=3, help="run folders, each killed kills/chains times")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    failures: list[str] = []
    kills = 0
    with tempfile.TemporaryDirectory(prefix="cnn-kill-") as tmp:
        root = Path(tmp)
        data, config = root / "data", root / "killme.yaml"
        write_data(data)
        config.write_text(CONFIG)
        per_chain = -(-args.kills // args.chains)
        for chain in range(args.chains):
            run_dir = root / f"run{chain}"
            for _ in range(min(per_chain, args.kills - kills)):
                kills += 1
                line, problems = one_kill(run_dir, config, data, rng, env)
                print(f"{kills:3d}. run{chain}  {line}" + ("  FAIL" if problems else ""), flush=True)
                failures += [f"kill {kills}: {p}" for p in problems]
            problems = finish(run_dir, config, data, env)
            print(f"     run{chain}  final resume: {'ok' if not problems else 'FAIL'}", flush=True)
            failures += [f"run{chain} final: {p}" for p in problems]
    for failure in failures:
        print("FAIL", failure)
    print(f"{kills} kills in {args.chains} run folders: "
          f"{'every checkpoint loaded, every resume completed, no temp file outlived the next start' if not failures else f'{len(failures)} problem(s)'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
