"""LeNet-5 with the 1998 recipe (configs/lenet5-1998.yaml) against lenet5-classic's
current recipe, same data, mean of several seeds; accuracy, not speed.

    python benchmarks/experiments/lenet5_1998.py --data-dir /work/shared/mnist-sample

Runs `cnn train CONFIG --seed S` for each config and seed (one thread each, at most
--jobs at a time), prints test accuracy per run, the mean and the wall time of each
run, and appends the figures with the date, commit and CPU to
benchmarks/experiments/lenet5_1998_results.md. The 1998 runs record the test error
per pass (train.track_test: never used to pick the checkpoint) for `cnn plot`.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RESULTS = HERE / "lenet5_1998_results.md"
CONFIGS = {"lenet5-1998": ["--set", "train.track_test=true"], "lenet5-classic": []}


def run(config: str, seed: int, data_dir: Path, runs: Path, extra: list[str]) -> dict:
    run_dir = runs / f"{config}-seed{seed}"
    command = [sys.executable, "-m", "cnn_cli.cli", "train", config, "--data-dir", str(data_dir), "--seed", str(seed),
               "--threads", "1", "--run-dir", str(run_dir), *CONFIGS[config], *extra]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    summary = json.loads((run_dir / "summary.json").read_text())
    with open(run_dir / "metrics.csv", newline="") as handle:
        last = list(csv.DictReader(handle))[-1]
    # The paper reports the error after the last pass; cnn train scores the checkpoint
    # that was best on validation (400 digits here, a noisy choice). Both are shown.
    final = float(last["test_acc"]) if last.get("test_acc") else None
    return {"config": config, "seed": seed, "test_accuracy": summary["test_accuracy"], "wall_s": wall,
            "train_s": summary["train_seconds"], "best_epoch": summary["best_epoch"], "run_dir": str(run_dir),
            "final_test_accuracy": final, "final_train_accuracy": float(last["train_acc"]),
            "best_val_accuracy": summary["best_val_accuracy"]}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--runs", type=Path, default=Path("/tmp/lenet5-1998-runs"))
    parser.add_argument("--set", dest="sets", action="append", default=[], help="extra --set for every run")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="which of the configs to run")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    extra = [part for s in args.sets for part in ("--set", s)]
    args.runs.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                            cwd=REPO).stdout.strip()  # the code the runs use, taken before they start
    configs = [c for c in args.configs.split(",") if c]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise SystemExit(f"--configs: {unknown[0]} is not one of {', '.join(CONFIGS)}")
    jobs = [(c, s) for c in configs for s in seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda job: run(job[0], job[1], args.data_dir, args.runs, extra), jobs))
    lines = [f"## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}, {cpu_name()}",
             f"data {args.data_dir}, seeds {args.seeds}, one thread per run, {args.jobs} runs at a time "
             f"on a shared machine{', extra ' + ' '.join(extra) if extra else ''}", "",
             "| config | seed | test accuracy (best-validation checkpoint) | best epoch | test accuracy after "
             "the last epoch | running train accuracy, last epoch | train s | wall s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        final = "—" if r["final_test_accuracy"] is None else f"{100 * r['final_test_accuracy']:.2f} %"
        lines.append(f"| {r['config']} | {r['seed']} | {100 * r['test_accuracy']:.2f} % | {r['best_epoch']} | "
                     f"{final} | {100 * r['final_train_accuracy']:.2f} % | {r['train_s']:.0f} | {r['wall_s']:.0f} |")
    lines.append("")
    for config in configs:
        vals = [100 * r["best_val_accuracy"] for r in results if r["config"] == config]
        accs = [100 * r["test_accuracy"] for r in results if r["config"] == config]
        walls = [r["wall_s"] for r in results if r["config"] == config]
        spread = f" ± {statistics.stdev(accs):.2f}" if len(accs) > 1 else ""
        finals = [100 * r["final_test_accuracy"] for r in results
                  if r["config"] == config and r["final_test_accuracy"] is not None]
        after = f"; after the last epoch {statistics.mean(finals):.2f} %" if finals else ""
        lines.append(f"- {config}: mean best validation accuracy {statistics.mean(vals):.2f} %; "
                     f"mean test accuracy {statistics.mean(accs):.2f} %{spread} "
                     f"(min {min(accs):.2f}, max {max(accs):.2f}){after}; wall per run {statistics.mean(walls):.0f} s")
    text = "\n".join(lines) + "\n"
    print(text)
    with open(RESULTS, "a", encoding="utf-8") as handle:
        handle.write(text + "\n")


if __name__ == "__main__":
    main()
