"""Choose a config's default training recipe by measurement: `cnn train` with each
candidate recipe, several seeds, chosen by validation accuracy, reported on the test set.

    python benchmarks/experiments/recipe.py lenet5 --data-dir /work/shared/mnist-sample \
        [--seeds 0 1 2] [--threads 1] [--recipes NAME,...]

Each run is exactly `cnn train CONFIG --seed S --set ...` (prepare_run + Trainer, in
this process, into a temporary run folder): 10 epochs on the sample's 3,600
training digits, the best-validation checkpoint scored on its 1,000 test digits.
The recipe to choose is the one with the best mean validation accuracy (400
digits per seed, a different split per seed); the test column is only reported.
Results (mean ± sd over seeds, the per-seed figures and the training seconds)
are printed and appended with date, commit and CPU to RESULTS-recipe.md.
Accuracy does not depend on --threads (the kernels are deterministic for any
thread count); one thread leaves the other core to whoever shares the machine.
"""

from __future__ import annotations

import argparse
import datetime
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from rich.console import Console  # noqa: E402

from cnn_cli.commands.bench_timing import cpu_model, git_state  # noqa: E402
from cnn_cli.spec.config import load_config, parse_set_option  # noqa: E402
from cnn_cli.commands.progress import PlainReporter  # noqa: E402
from cnn_cli.commands.train import TrainOptions, prepare_run  # noqa: E402

AFFINE = ["data.augment.translate=2", "data.augment.rotate=10", "data.augment.scale=0.1",
          "data.augment.squeeze=0.1", "data.augment.shear=0.15"]
ELASTIC = ["data.augment.elastic.alpha=34", "data.augment.elastic.sigma=4"]
LIGHT_ELASTIC = ["data.augment.elastic.alpha=16", "data.augment.elastic.sigma=4"]

# Candidate recipes per config: a name and the --set overrides on top of the shipped file.
RECIPES = {
    "lenet5": {
        "he_normal (old default)": ["train.init=he_normal"],
        "pytorch init": ["train.init=pytorch"],
        "pytorch + affine": ["train.init=pytorch", *AFFINE],
        "pytorch + affine + elastic": ["train.init=pytorch", *AFFINE, *ELASTIC],
        "pytorch + affine + light elastic": ["train.init=pytorch", *AFFINE, *LIGHT_ELASTIC],
        "pytorch + affine + dropout 0.25": ["train.init=pytorch", *AFFINE, "fc.0.dropout=0.25", "fc.1.dropout=0.25"],
        "pytorch + affine + smoothing 0.1": ["train.init=pytorch", *AFFINE, "train.label_smoothing=0.1"],
        "pytorch + affine + dropout + smoothing": ["train.init=pytorch", *AFFINE, "fc.0.dropout=0.25",
                                                   "fc.1.dropout=0.25", "train.label_smoothing=0.1"],
        "pytorch + affine, lr 0.003": ["train.init=pytorch", *AFFINE, "train.lr=0.003"],
        "pytorch + affine + smoothing 0.1, lr 0.003": ["train.init=pytorch", *AFFINE, "train.label_smoothing=0.1",
                                                       "train.lr=0.003"],
        "pytorch + affine + light elastic + dropout": ["train.init=pytorch", *AFFINE, *LIGHT_ELASTIC,
                                                       "fc.0.dropout=0.25", "fc.1.dropout=0.25"],
        "pytorch + affine + light elastic + smoothing": ["train.init=pytorch", *AFFINE, *LIGHT_ELASTIC,
                                                         "train.label_smoothing=0.1"],
        "pytorch + affine + light elastic, 0.8": ["train.init=pytorch", *AFFINE, *LIGHT_ELASTIC,
                                                  "data.augment.probability=0.8"],
    },
    "lenet5-classic": {
        "he_normal (old default: LeCun normal before tanh)": ["train.init=he_normal"],
        "pytorch init": ["train.init=pytorch"],
        "he_normal, cosine 2e-3": ["train.init=he_normal", "train.schedule=cosine", "train.lr=0.002"],
        "he_normal + affine + light elastic": ["train.init=he_normal", *AFFINE, *LIGHT_ELASTIC],
        "he_normal, cosine 2e-3 + affine + light elastic": ["train.init=he_normal", "train.schedule=cosine",
                                                           "train.lr=0.002", *AFFINE, *LIGHT_ELASTIC],
        "pytorch, cosine 2e-3": ["train.init=pytorch", "train.schedule=cosine", "train.lr=0.002"],
        "pytorch + affine + light elastic": ["train.init=pytorch", *AFFINE, *LIGHT_ELASTIC],
        "pytorch, cosine 2e-3 + affine + light elastic": ["train.init=pytorch", "train.schedule=cosine",
                                                          "train.lr=0.002", *AFFINE, *LIGHT_ELASTIC],
    },
    "caffe-lenet": {
        "he_normal (old default)": ["train.init=he_normal"],
        "pytorch init": ["train.init=pytorch"],
        "he_normal + affine + light elastic": ["train.init=he_normal", *AFFINE, *LIGHT_ELASTIC],
        "pytorch + affine + light elastic": ["train.init=pytorch", *AFFINE, *LIGHT_ELASTIC],
        "pytorch + affine + light elastic, cosine": ["train.init=pytorch", *AFFINE, *LIGHT_ELASTIC,
                                                     "train.schedule=cosine"],
    },
}


def run_once(config_name: str, sets: list[str], seed: int, data_dir: Path, threads: int) -> dict:
    config = load_config(config_name, [parse_set_option(s) for s in sets + [f"train.seed={seed}"]])
    with tempfile.TemporaryDirectory() as tmp:
        options = TrainOptions(data_dir=data_dir, run_dir=Path(tmp) / "run", offline=True, threads=threads)
        trainer = prepare_run(config, options, PlainReporter(Console(file=io.StringIO())))
        started = time.perf_counter()
        summary = trainer.run()
        summary["wall_seconds"] = time.perf_counter() - started
    return summary


def _stat(values: list[float]) -> str:
    return f"{statistics.mean(values):.2f} ± {statistics.pstdev(values):.2f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", choices=sorted(RECIPES))
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--recipes", default=None, help="names separated by ';' (default: all of the config's)")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS-recipe.md")
    args = parser.parse_args(argv)

    recipes = RECIPES[args.config]
    names = [n.strip() for n in args.recipes.split(";")] if args.recipes else list(recipes)
    unknown = [n for n in names if n not in recipes]
    if unknown:
        parser.error(f"--recipes: unknown {unknown[0]!r}; {args.config} has: {'; '.join(recipes)}")
    started = time.perf_counter()
    git = git_state() or {}
    header = [f"## {datetime.date.today()} — `recipe.py {' '.join(argv or sys.argv[1:])}`", "",
              f"Commit `{git.get('commit', 'unknown')}`{' (with uncommitted changes)' if git.get('dirty') else ''}, "
              f"{cpu_model()}, {args.threads} thread(s), seeds {' '.join(map(str, args.seeds))}. Accuracy in %, "
              f"mean ± sd over seeds: validation (400 digits, chooses) and test (1,000 digits, reported).", "",
              "| recipe | overrides | val | test | test per seed | train s |", "|---|---|---|---|---|---|"]
    with open(args.results, "a", encoding="utf-8") as handle:
        handle.write("\n".join(header) + "\n")
    for name in names:
        runs = [run_once(args.config, recipes[name], seed, args.data_dir, args.threads) for seed in args.seeds]
        val = [100 * r["best_val_accuracy"] for r in runs]
        test = [100 * r["test_accuracy"] for r in runs]
        seconds = [r["train_seconds"] for r in runs]
        row = (f"| {name} | `{' '.join(recipes[name]) or '(shipped)'}` | {_stat(val)} | {_stat(test)} | "
               f"{' / '.join(f'{v:.1f}' for v in test)} | {statistics.mean(seconds):.0f} |")
        print(row, flush=True)
        with open(args.results, "a", encoding="utf-8") as handle:  # row by row: a long search keeps what it did
            handle.write(row + "\n")
    with open(args.results, "a", encoding="utf-8") as handle:
        handle.write(f"\n{time.perf_counter() - started:.0f} s in all.\n\n")
    print(f"appended to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
