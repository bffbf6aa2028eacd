#!/bin/sh
# Every benchmark figure of cnn-cli, then benchmarks/RESULTS.md. Run from anywhere, on an
# otherwise idle machine (2 shared cores: a test suite running beside it makes figures lie
# by an order of magnitude). Takes about 15 minutes.
#
#   sh benchmarks/run.sh            # THREADS=1 sh benchmarks/run.sh for one thread
set -eu
cd "$(dirname "$0")/.."
THREADS="${THREADS:-2}"
RESULTS=benchmarks/results
mkdir -p "$RESULTS"

if ! python benchmarks/bench_train_wall.py --check-idle; then
    echo "run.sh: not timing on a busy machine" >&2
    exit 1
fi
command -v cnn >/dev/null 2>&1 || { echo "run.sh: the cnn command is not installed (pip install -e .)" >&2; exit 1; }

cnn bench lenet5 --batch-sizes 1,16,64,256 --threads "$THREADS" --against torch --repeat 5 --min-time 1 \
    --inference-batch 1000 --layer-batch 64 --json > "$RESULTS/bench.json.tmp"
mv "$RESULTS/bench.json.tmp" "$RESULTS/bench.json"
# The bigger network: 3×3 convolutions on 32-128 channels (issue 18's targets: ≥ ×2 at batch 64 and 1000).
cnn bench cifar10 --batch-sizes 64 --threads "$THREADS" --against torch --repeat 5 --min-time 1 \
    --inference-batch 1000 --layer-batch 64 --no-compile --json > "$RESULTS/bench_cifar10.json.tmp"
mv "$RESULTS/bench_cifar10.json.tmp" "$RESULTS/bench_cifar10.json"
python benchmarks/bench_train_wall.py --threads "$THREADS" --rounds 3 --epochs 5 --out "$RESULTS/train_wall.json" > /dev/null
python benchmarks/bench_cifar_memory.py --threads "$THREADS" --out "$RESULTS/cifar_memory.json" > /dev/null
python benchmarks/write_results.py
