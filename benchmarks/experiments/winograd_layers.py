"""The CIFAR-10 network's Winograd layers and its training step, this checkout against
a git revision, in alternating processes.

Each round runs, once for the revision (checked out into a temporary git worktree
and put first on PYTHONPATH) and once for this checkout: every Winograd layer's
forward and backward kernel alone (random data, batch 64, the medians of 15
calls), then the whole training step of `cnn bench cifar10` (median of 60
steps). Alternating processes is how the kernel changes of issue 18 were
measured (benchmarks/RESULTS.md, Design measurements): on this shared 2-core
machine two runs minutes apart differ by 10 %, two interleaved ones much less.

    python benchmarks/experiments/winograd_layers.py [--rev main] [--rounds 3] [--threads 2]

The probe calls today's kernel API. Revisions before ee66bdb took the rotated
filters in the backward pass: they are timed with the forward filters in their
place, the same work on other numbers.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# (input channels, filters, map side, fused 2×2 pooling): conv2 … conv6
LAYERS = [(32, 32, 32, 2), (32, 64, 16, 0), (64, 64, 16, 2), (64, 128, 8, 0), (128, 128, 8, 2)]

PROBE = r"""
import json, sys, time
import numba, numpy as np
numba.set_num_threads(int(sys.argv[1]))
from cnn_cli.kernels import winograd as wk
from cnn_cli.kernels.activations import ACTIVATIONS
from cnn_cli.commands.bench import Pair
from cnn_cli.spec.config import load_config

def median_ms(f, calls):
    f()
    times = []
    for _ in range(calls):
        t = time.perf_counter(); f(); times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)

rng = np.random.default_rng(0)
act = ACTIVATIONS["relu"]
out = {}
for C, K, H, pool in json.loads(sys.argv[2]):
    x = rng.standard_normal((64, C, H, H)).astype(np.float32)
    w = (rng.standard_normal((K, C, 3, 3)) * 0.1).astype(np.float32)
    bias = np.zeros(K, np.float32)
    U = wk.filter_transform(w, 4)
    forward_chunk = wk.chunk_images(C, K, H, H, 4, 4)
    y, arg = wk.winograd_forward(x, U, bias, act, forward_chunk, pool)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    backward_chunk = wk.backward_chunk_images(C, K, H, H, 4, 4)
    name = f"{C}->{K} {H}x{H}" + (" +pool" if pool else "")
    out[name + " forward"] = median_ms(lambda: wk.winograd_forward(x, U, bias, act, forward_chunk, pool), 15)
    out[name + " backward"] = median_ms(lambda: wk.winograd_backward(dy, y, arg, x, U, act, True, backward_chunk), 15)
pair = Pair(load_config("cifar10"), 0, int(sys.argv[1]), None)
images, labels = pair.batch(64)
out["training step"] = median_ms(pair.ours_train(images, labels), 60)
print(json.dumps(out))
"""


def run(path: Path, threads: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(path))
    done = subprocess.run([sys.executable, "-c", PROBE, str(threads), json.dumps(LAYERS)], cwd=path, env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="main", help="the revision to compare against (default: main)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        old = Path(folder) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.rev], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            rounds = []
            for _ in range(args.rounds):
                rounds.append((run(old, args.threads), run(ROOT, args.threads)))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, capture_output=True)
    print(f"ms, {args.threads} threads, {args.rev} → this checkout, {args.rounds} alternating rounds")
    for key in rounds[0][0]:
        pairs = "  ".join(f"{before[key]:.2f} → {after[key]:.2f}" for before, after in rounds)
        print(f"{key:28s} {pairs}")


if __name__ == "__main__":
    main()
