"""Peak memory and wall time of one epoch of `cnn train cifar10` on a full-size set.

    python benchmarks/bench_cifar_memory.py --threads 2 --out benchmarks/results/cifar_memory.json

The real CIFAR-10 archive cannot be downloaded here, so the script writes one
in the official binary format (cifar-10-binary.tar.gz: five batches of 10,000
training records, one of 10,000 test records; tests/dataset_fixtures.py's
records) from random pixels, into a scratch data folder, and trains on it with
--offline. Memory and speed depend on the number and size of the images, not
on what they show. Issue 18's target: peak resident memory ≤ 1 GB.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from bench_train_wall import busy_processes, cnn_command, display, machine, run_measured  # noqa: E402

TARGET_MB = 1024.0


def make_archive(folder: Path, train: int, test: int, seed: int = 0) -> Path:
    """folder/cifar10/cifar-10-binary.tar.gz with `train` training and `test` test records."""
    import numpy as np
    from dataset_fixtures import CIFAR_NAMES, cifar_records

    rng = np.random.default_rng(seed)
    members = {}
    per_batch = -(-train // 5)
    for i in range(5):
        n = min(per_batch, train - i * per_batch)
        members[f"cifar-10-batches-bin/data_batch_{i + 1}.bin"] = cifar_records(
            rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n))
    members["cifar-10-batches-bin/test_batch.bin"] = cifar_records(
        rng.integers(0, 256, (test, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, test))
    members["cifar-10-batches-bin/batches.meta.txt"] = ("\n".join(CIFAR_NAMES) + "\n").encode()
    path = folder / "cifar10" / "cifar-10-binary.tar.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-images", type=int, default=50_000)
    parser.add_argument("--test-images", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    parser.add_argument("--force", action="store_true", help="measure even when tests or benchmarks are running")
    args = parser.parse_args(argv)
    busy = busy_processes()
    if busy and not args.force:
        print("the machine is busy: " + "; ".join(busy), file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="cnn-bench-cifar-"))
    try:
        make_archive(work / "data", args.train_images, args.test_images)
        cmd = cnn_command() + ["train", "cifar10", "--epochs", "1", "--data-dir", str(work / "data"), "--offline",
                               "--quiet", "--threads", str(args.threads), "--run-dir", str(work / "run")]
        figures = run_measured(cmd, work / "train.log")
        with open(work / "run" / "metrics.csv", newline="") as f:
            epoch = next(csv.DictReader(f))  # the training epoch's own time and speed
        results = {"machine": machine(), "threads": args.threads, "train_images": args.train_images,
                   "test_images": args.test_images, "command": display(cmd, work), "target_mb": TARGET_MB,
                   **figures, "epoch_s": float(epoch["seconds"]), "images_per_s": float(epoch["images_per_s"])}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"peak memory, one epoch of cnn train cifar10 on {args.train_images:,} images: "
          f"{results['peak_rss_mb']:.0f} MB (target ≤ {TARGET_MB:.0f}); wall {results['wall_s']:.1f} s, "
          f"epoch {results['epoch_s']:.1f} s ({results['images_per_s']:,.0f} img/s)", file=sys.stderr)
    text = json.dumps(results, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
