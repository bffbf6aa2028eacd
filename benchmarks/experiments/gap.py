"""Why did `cnn train lenet5` trail the same recipe in PyTorch? One factor at a time.

    python benchmarks/experiments/gap.py --data-dir /work/shared/mnist-sample [--seeds 0 1 2] [--epochs 10]
                                         [--arms ours-he,torch-he,ours-pytorch,torch-pytorch,same-start]

Every arm trains the same network (a shipped config, lenet5 by default) with the
config's recipe (Adam, cosine schedule, batch 64) on the same digits: the seeded
train/validation split of cnn_cli.data, the same normalised float32 batches (made
by cnn_cli.data.preprocess for both frameworks), in the same order (one NumPy
permutation per epoch, drawn as cnn_cli.commands.train draws it). What an arm changes:

- ours-he       our kernels, train.init: he_normal (the init before this experiment)
- torch-he      PyTorch, initialised like that (torch_reference.init_like_ours)
- ours-pytorch  our kernels, train.init: pytorch (uniform ±1/√fan_in weights and biases)
- torch-pytorch PyTorch with its own default init (torch_reference.init_like_pytorch)
- ours-he-apart, ours-pytorch-apart: as ours-he / ours-pytorch, but the initial weights
                drawn from default_rng(seed + 7919) instead of default_rng(seed), the
                generator the data order comes from as well
- same-start-he both frameworks from our he_normal initial weights (copied into PyTorch)
- same-start    both frameworks from the very same initial weights (PyTorch's default
                init, copied into ours): only the arithmetic differs, so any gap left
                is the optimizer, loss or data pipeline.

It prints the test accuracy (1,000 sample digits) after the last epoch and at the
epoch of best validation accuracy (what `cnn train` keeps), per seed and as mean ±
spread, and appends the table with date, commit and CPU to RESULTS-gap.md.
"""

from __future__ import annotations

import argparse
import datetime
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from cnn_cli.commands.bench_timing import cpu_model, git_state  # noqa: E402
from cnn_cli.spec.config import load_config  # noqa: E402
from cnn_cli.data import load_split, make_preparer, train_val_split  # noqa: E402
from cnn_cli.nn.optim import learning_rate, make_optimizer  # noqa: E402

ARMS = ("ours-he", "torch-he", "ours-pytorch", "torch-pytorch", "same-start", "ours-he-apart", "ours-pytorch-apart",
        "same-start-he")
# Seed offset of the *-apart arms' initial weights: their weights and the data order
# then come from unrelated streams, where `cnn train` drew both from default_rng(seed).
APART = 7919


def load_data(config, data_dir: Path, seed: int):
    images, labels = load_split(data_dir, "train")
    test_images, test_labels = load_split(data_dir, "test")
    train_idx, val_idx = train_val_split(len(labels), config.data["val_split"], seed)
    prepare = make_preparer(config)
    return {"train": (images[train_idx], labels[train_idx].astype(np.int64)),
            "val": (prepare(images[val_idx]), labels[val_idx].astype(np.int64)),
            "test": (prepare(test_images), test_labels.astype(np.int64)), "prepare": prepare}


def batches(config, data, seed: int):
    """(epoch, step, x, y) in cnn_cli.commands.train's order: one permutation per epoch from default_rng(seed)."""
    cfg = config.train
    images, labels = data["train"]
    rng = np.random.default_rng(seed)
    steps = math.ceil(len(labels) / cfg["batch_size"])
    for epoch in range(cfg["epochs"]):
        order = rng.permutation(len(labels))
        for b in range(steps):
            idx = order[b * cfg["batch_size"]:(b + 1) * cfg["batch_size"]]
            yield epoch, epoch * steps + b, steps, data["prepare"](images[idx]), labels[idx]


def train_ours(config, data, seed, start_from=None, init_seed=None):
    from cnn_cli.nn.model import Model

    model = Model(config, seed=seed if init_seed is None else init_seed)
    if start_from is not None:
        for layer in model.layers:
            for name, array in layer.params.items():
                array[...] = start_from[f"{layer.name}.{name}"]
    optimizer = make_optimizer(config.train, [(n, p) for n, p, _ in model.parameters()])

    def accuracy(split):
        x, y = data[split]
        return float((model.forward(x).argmax(1) == y).mean())

    return _loop(config, data, seed, accuracy,
                 lambda x, y, lr: (model.loss_and_gradients(x, y), optimizer.step(list(model.parameters()), lr)))


def torch_net(config, seed, init):
    from cnn_cli.reference.torch_model import build_torch_model, init_like_ours, init_like_pytorch

    net = build_torch_model(config)
    (init_like_ours if init == "he" else init_like_pytorch)(net, config, seed)
    return net


def train_torch(config, data, seed, net):
    import torch
    import torch.nn.functional as F

    from cnn_cli.reference.torch_model import make_torch_optimizer

    optimizer = make_torch_optimizer(config.train, net)

    def accuracy(split):
        x, y = data[split]
        with torch.inference_mode():
            return float((net(torch.from_numpy(x)).argmax(1).numpy() == y).mean())

    def step(x, y, lr):
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        optimizer.step()

    return _loop(config, data, seed, accuracy, step)


def _loop(config, data, seed, accuracy, step):
    """Train; after each epoch score validation and test; return (test at the last epoch, test at best val)."""
    best_val, test_at_best, last_epoch = -1.0, 0.0, 0
    for epoch, global_step, steps, x, y in batches(config, data, seed):
        step(x, y, learning_rate(config.train, global_step, steps))
        if global_step == (epoch + 1) * steps - 1:
            val, test = accuracy("val"), accuracy("test")
            if val > best_val:
                best_val, test_at_best = val, test
            last_epoch = test
    return last_epoch, test_at_best


def torch_state_as_ours(net) -> dict:
    """PyTorch's parameters under our names and layouts (dense weights transposed)."""
    state = {}
    for name, module in net.layers.named_children():
        for pname, p in module.named_parameters():
            a = p.detach().numpy()
            state[f"{name}.{pname}"] = a.T.copy() if (pname == "weight" and a.ndim == 2) else a.copy()
    return state


def run_arm(arm, config_name, data_dir, seed, epochs):
    import torch

    def cfg(init):
        return load_config(config_name, [(["train", "epochs"], epochs), (["train", "seed"], seed),
                                         (["train", "init"], init)])

    config = cfg("he_normal")
    data = load_data(config, data_dir, seed)
    torch.manual_seed(seed)
    if arm == "ours-he":
        return {"ours": train_ours(config, data, seed)}
    if arm == "ours-pytorch":
        return {"ours": train_ours(cfg("pytorch"), data, seed)}
    if arm == "ours-he-apart":
        return {"ours": train_ours(config, data, seed, init_seed=seed + APART)}
    if arm == "ours-pytorch-apart":
        return {"ours": train_ours(cfg("pytorch"), data, seed, init_seed=seed + APART)}
    if arm == "torch-he":
        return {"torch": train_torch(config, data, seed, torch_net(config, seed, "he"))}
    if arm == "torch-pytorch":
        return {"torch": train_torch(config, data, seed, torch_net(config, seed, "pytorch"))}
    if arm == "same-start-he":
        from cnn_cli.nn.model import Model
        from cnn_cli.reference.torch_model import copy_weights

        net = torch_net(config, seed, "he")
        copy_weights(Model(config, seed=seed), net)
        return {"ours": train_ours(config, data, seed), "torch": train_torch(config, data, seed, net)}
    net = torch_net(config, seed, "pytorch")
    start = torch_state_as_ours(net)
    return {"ours": train_ours(config, data, seed, start_from=start), "torch": train_torch(config, data, seed, net)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="lenet5")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="for both frameworks (results do not depend on it)")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS-gap.md")
    args = parser.parse_args(argv)

    import numba
    import torch

    numba.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    rows, started = [], time.perf_counter()
    for arm in arms:
        if arm not in ARMS:
            parser.error(f"--arms: unknown arm {arm!r}; choose from {', '.join(ARMS)}")
        per_seed = [run_arm(arm, args.config, args.data_dir, seed, args.epochs) for seed in args.seeds]
        for framework in per_seed[0]:
            last = [100 * r[framework][0] for r in per_seed]
            best = [100 * r[framework][1] for r in per_seed]
            row = (f"| {arm} | {framework} | {' / '.join(f'{v:.1f}' for v in last)} | {statistics.mean(last):.2f} ± "
                   f"{statistics.pstdev(last):.2f} | {' / '.join(f'{v:.1f}' for v in best)} | "
                   f"{statistics.mean(best):.2f} ± {statistics.pstdev(best):.2f} |")
            print(row, flush=True)
            rows.append(row)
    git = git_state() or {}
    header = [f"## {datetime.date.today()} — `{' '.join(['gap.py'] + (argv or sys.argv[1:]))}`", "",
              f"Commit `{git.get('commit', 'unknown')}`{' (with uncommitted changes)' if git.get('dirty') else ''}, "
              f"{cpu_model()}, {args.threads} thread(s), torch {torch.__version__}, config {args.config}, "
              f"{args.epochs} epochs, seeds {' '.join(map(str, args.seeds))}; "
              f"{time.perf_counter() - started:.0f} s in all. Test accuracy (%) on the sample's 1,000 test digits.",
              "", "| arm | framework | last epoch, per seed | mean ± spread (sd) | best-val epoch, per seed | mean ± sd |",
              "|---|---|---|---|---|---|"]
    with open(args.results, "a", encoding="utf-8") as handle:
        handle.write("\n".join(header + rows) + "\n\n")
    print(f"appended to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
