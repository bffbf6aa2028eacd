"""Augmenter.__call__ on a uint8 (64, 28, 28) batch, old against new, interleaved.

The old implementation is read from git (default: main) into two untracked
modules, cnn_cli/kernels/augment_old.py and cnn_cli/data/augment_old.py, which
this script writes and deletes again. Settings: commands/bench.py's BENCH_AFFINE
and BENCH_ELASTIC. Prints median (and quartiles) of many interleaved rounds.

    python benchmarks/experiments/augment_speed.py [--rev main] [--rounds 200] [--threads 2]
"""

import argparse
import subprocess
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OLD = {"cnn_cli/kernels/augment.py": ROOT / "cnn_cli/kernels/augment_old.py",
       "cnn_cli/data/augment.py": ROOT / "cnn_cli/data/augment_old.py"}


def write_old(rev):
    for path, target in OLD.items():
        text = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True,
                              text=True).stdout
        target.write_text(text.replace("from ..kernels.augment import", "from ..kernels.augment_old import"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rev", default="main")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    write_old(args.rev)
    try:
        import numba
        from cnn_cli.commands.bench import BENCH_AFFINE, BENCH_ELASTIC
        from cnn_cli.data import augment as new
        from cnn_cli.data import augment_old as old
        from cnn_cli.spec.config import AUGMENT_DEFAULTS

        numba.set_num_threads(args.threads)
        rng = np.random.default_rng(0)
        images = np.zeros((args.batch, 28, 28), dtype=np.uint8)
        images[:, 4:24, 6:22] = rng.integers(0, 256, (args.batch, 20, 16), dtype=np.uint8)
        base = {**AUGMENT_DEFAULTS, **BENCH_AFFINE, "probability": 1.0}
        cases = {"affine": {**base, "elastic": {**AUGMENT_DEFAULTS["elastic"], "alpha": 0.0}},
                 "affine+elastic": {**base, "elastic": dict(BENCH_ELASTIC)}}
        calls = {}
        for name, settings in cases.items():
            for label, module in (("old", old), ("new", new)):
                augmenter, stream = module.Augmenter(settings), np.random.default_rng(1)
                calls[(name, label)] = (augmenter, stream)
                augmenter(images, stream)  # compile / warm up
        times = {key: [] for key in calls}
        for _ in range(args.rounds):
            for key, (augmenter, stream) in calls.items():
                start = time.perf_counter()
                augmenter(images, stream)
                times[key].append(time.perf_counter() - start)
        print(f"batch {args.batch}, {args.threads} threads, {args.rounds} interleaved rounds (ms: median [q1, q3])")
        for key, values in times.items():
            q1, med, q3 = np.percentile(np.array(values) * 1e3, [25, 50, 75])
            print(f"  {key[0]:15s} {key[1]}: {med:.3f}  [{q1:.3f}, {q3:.3f}]")
    finally:
        for target in OLD.values():
            target.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
