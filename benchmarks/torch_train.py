"""The PyTorch equivalent of `cnn train CONFIG --epochs N` — the yardstick of the whole-process wall time.

    python benchmarks/torch_train.py lenet5 --data-dir DIR --epochs 5 --threads 2 --out /tmp/torch-run

It does what `cnn train` does, the way a careful PyTorch user would write it:
read the four IDX files, hold out the same validation split (cnn_cli.data's
seeded split), build the same network (cnn_cli.reference.torch_model, initialised
like ours), and per epoch: shuffle, train in mini-batches with the config's
optimizer, score the validation set, save last.pt (and best.pt when it
improves) and metrics.csv; at the end score the test set with the best weights
and write summary.json. The images are normalised and converted to a float
tensor once, up front (faster than converting each batch, as `cnn train` does).
It imports neither numba nor our kernels.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="lenet5")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, metrics.csv, summary.json)")
    parser.add_argument("--quiet", "-q", action="store_true")
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    import torch.nn.functional as F

    from cnn_cli.spec.config import load_config
    from cnn_cli.data import MNIST_MEAN, MNIST_STD, load_split, train_val_split
    from cnn_cli.reference.torch_model import build_torch_model, init_like_ours, init_like_pytorch, make_torch_optimizer

    sets = []
    if args.epochs is not None:
        sets.append((["train", "epochs"], args.epochs))
    if args.batch_size is not None:
        sets.append((["train", "batch_size"], args.batch_size))
    config = load_config(args.config, sets)
    train_cfg = config.train
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(train_cfg["seed"])

    norm = config.data["normalize"]
    mean, std = (MNIST_MEAN, MNIST_STD) if norm is True else (tuple(norm) if norm else (0.0, 1.0))
    pad = config.input.pad

    def to_tensor(images):
        x = torch.from_numpy(images.astype(np.float32) / 255.0)
        x = ((x - mean) / std)[:, None]
        return F.pad(x, (pad, pad, pad, pad)) if pad else x.contiguous()

    train_images, train_labels = load_split(args.data_dir, "train")
    test_images, test_labels = load_split(args.data_dir, "test")
    train_idx, val_idx = train_val_split(len(train_labels), config.data["val_split"], train_cfg["seed"])
    x_train, y_train = to_tensor(train_images[train_idx]), torch.from_numpy(train_labels[train_idx].astype(np.int64))
    x_val, y_val = to_tensor(train_images[val_idx]), torch.from_numpy(train_labels[val_idx].astype(np.int64))
    x_test, y_test = to_tensor(test_images), torch.from_numpy(test_labels.astype(np.int64))

    net = build_torch_model(config)
    # train.init chooses the distribution, as in our layers.
    (init_like_pytorch if train_cfg.get("init") == "pytorch" else init_like_ours)(net, config, train_cfg["seed"])
    optimizer = make_torch_optimizer(train_cfg, net)
    steps = math.ceil(len(y_train) / train_cfg["batch_size"])
    total = train_cfg["epochs"] * steps

    def lr_at(step):
        base = train_cfg["lr"]
        if train_cfg["schedule"] == "step":
            return base * train_cfg["gamma"] ** ((step // steps) // train_cfg["step_size"])
        if train_cfg["schedule"] == "cosine":
            return 0.5 * base * (1 + math.cos(math.pi * min(step, total) / total))
        return base

    def evaluate(x, y):
        net.eval()
        loss_sum, correct = 0.0, 0
        with torch.inference_mode():
            for start in range(0, len(y), 1000):
                logits = net(x[start:start + 1000])
                loss_sum += F.cross_entropy(logits, y[start:start + 1000], reduction="sum").item()
                correct += (logits.argmax(1) == y[start:start + 1000]).sum().item()
        net.train()
        return loss_sum / max(len(y), 1), correct / max(len(y), 1)

    args.out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(train_cfg["seed"])
    metrics = ["epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,images_per_s"]
    best_acc, best_epoch, step = -1.0, 0, 0
    batch_size = train_cfg["batch_size"]
    for epoch in range(1, train_cfg["epochs"] + 1):
        started = time.perf_counter()
        order = torch.randperm(len(y_train), generator=generator)
        loss_sum, correct = 0.0, 0
        for b in range(steps):
            idx = order[b * batch_size:(b + 1) * batch_size]
            x, y = x_train[idx], y_train[idx]
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            optimizer.zero_grad(set_to_none=True)
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()
            optimizer.step()
            step += 1
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
        seconds = time.perf_counter() - started
        val_loss, val_acc = evaluate(x_val, y_val) if len(y_val) else (float("nan"), float(epoch))
        metrics.append(f"{epoch},{loss_sum / len(y_train)},{correct / len(y_train)},{val_loss},{val_acc},"
                       f"{lr_at(step - 1)},{seconds},{len(y_train) / seconds}")
        torch.save({"model": net.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch},
                   args.out / "last.pt")
        if val_acc > best_acc:
            best_acc, best_epoch = val_acc, epoch
            torch.save(net.state_dict(), args.out / "best.pt")
        (args.out / "metrics.csv").write_text("\n".join(metrics) + "\n")
        if not args.quiet:
            print(f"epoch {epoch}: train loss {loss_sum / len(y_train):.4f} acc {correct / len(y_train):.2%}, "
                  f"val acc {val_acc:.2%}, {seconds:.1f} s, {len(y_train) / seconds:,.0f} img/s", flush=True)
    net.load_state_dict(torch.load(args.out / "best.pt"))
    test_loss, test_acc = evaluate(x_test, y_test)
    summary = {"config": config.name, "test_accuracy": test_acc, "test_loss": test_loss, "best_epoch": best_epoch,
               "epochs": train_cfg["epochs"], "train_samples": len(y_train), "val_samples": len(y_val)}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if not args.quiet:
        print(f"test accuracy {test_acc:.2%} (loss {test_loss:.4f}) with the weights of epoch {best_epoch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
