"""Render benchmarks/RESULTS.md from the JSON figures of the latest run.

    python benchmarks/write_results.py [--bench benchmarks/results/bench.json]
                                       [--wall benchmarks/results/train_wall.json]

`benchmarks/run.sh` writes both JSON files (with `cnn bench ... --json` and
benchmarks/bench_train_wall.py) and then calls this. Either file may be
missing; its sections then say so.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _load(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def _n(v, fmt=",.0f"):
    return "–" if v is None else format(v, fmt)


def _x(v):
    return "–" if v is None else f"×{v:.2f}"


def _met(value, target, higher_is_better=True):
    if value is None or target is None:
        return "–"
    ok = value >= target if higher_is_better else value <= target
    return "**met**" if ok else "not yet"


def _spread(fig):
    if not fig:
        return "–"
    reps = fig["repetitions"]
    return f"{min(reps):,.0f}–{max(reps):,.0f}"


def _git(machine):
    git = machine.get("git") or {}
    if not git:
        return "unknown"
    text = f"`{git['commit']}`"
    if git.get("dirty"):
        text += f" plus uncommitted changes to {', '.join(git['changed'][:6])}"
    return text


def render(bench, wall, extra=(), cifar_memory=None) -> str:
    out = ["# Benchmark results", ""]
    source = bench or wall
    if source is None:
        return "\n".join(out + ["No run recorded yet: `sh benchmarks/run.sh`."]) + "\n"
    m = source["machine"]
    threads = bench["threads"] if bench else wall["threads"]
    out += [
        "The latest run of `sh benchmarks/run.sh`; every ratio compares ours with PyTorch **in the same run** "
        "(repetitions interleaved, ours then theirs), the only comparison that means anything on this shared, "
        "noisy machine. A ratio above 1 means ours is faster.",
        "",
        f"- **Machine**: {m['cpu']}, {m['cores']} cores; {threads} threads for both (numba and "
        f"`torch.set_num_threads`)",
        f"- **Software**: Python {m['python']}, NumPy {m['numpy']}, Numba {m['numba']}, PyTorch {m['torch']}"
        + (f"; Numba threading layer `{m['threading_layer']}`" if m.get("threading_layer") else ""),
        f"- **Code**: commit {_git(m)}",
        f"- **Date**: {m['date']}; load average before/after: {m.get('loadavg_before', m.get('loadavg'))} / "
        f"{m.get('loadavg_after')}",
        "",
        "Reproduce (from the repository root, on an otherwise idle machine — the script refuses to time while "
        "tests or other benchmarks run):",
        "",
        "```sh",
        "sh benchmarks/run.sh",
        "# which runs:",
    ]
    if bench:
        out.append(f"{bench['command']} --json > benchmarks/results/bench.json")
    for one in extra:
        out.append(f"{one['command']} --json > benchmarks/results/bench_{one['config']}.json")
    if wall:
        out.append(f"{wall['command']} --out benchmarks/results/train_wall.json")
    if cifar_memory:
        out.append(f"python benchmarks/bench_cifar_memory.py --threads {cifar_memory['threads']} "
                   "--out benchmarks/results/cifar_memory.json")
    out += ["python benchmarks/write_results.py", "```", ""]

    # ------------------------------------------------------------ targets
    out += ["## Targets", "", "| target | required | measured | |", "|---|---|---|---|"]
    for one in (bench, *extra):
        if not one:
            continue
        for kind, label in (("train", "training step"), ("inference", "inference")):
            for row in one[kind]:
                if row.get("target") is not None:
                    out.append(f"| {one['config']} {label}, batch {row['batch_size']}: ours ÷ PyTorch img/s | "
                               f"≥ ×{row['target']:g} | {_x(row['ratio'])} | {_met(row['ratio'], row['target'])} |")
    c = bench.get("compile") if bench else None
    if c:
        out.append(f"| cold compile of every kernel | ≤ {c['targets']['cold_s']:g} s | {c['cold_s']:.1f} s | "
                   f"{_met(c['cold_s'], c['targets']['cold_s'], False)} |")
    if wall:
        w = wall["wall"]
        out.append(f"| `cnn train lenet5`, {wall['epochs']} epochs on {wall['train_images']:,} digits: PyTorch ÷ ours "
                   f"wall time | ≥ ×{w['target']:g} | {_x(w['ratio'])} | {_met(w['ratio'], w['target'])} |")
        fb = wall["first_batch"]
        out.append(f"| first batch finished after launch, kernels cached | ≤ {fb['target_s']:g} s | "
                   f"{fb['cached']['end_after_launch_s']:.2f} s | "
                   f"{_met(fb['cached']['end_after_launch_s'], fb['target_s'], False)} |")
        mem = wall["memory"]
        out.append(f"| peak memory, training on {mem['train_images']:,} images | ≤ {mem['target_mb']:g} MB | "
                   f"{mem['ours']['peak_rss_mb']:.0f} MB | {_met(mem['ours']['peak_rss_mb'], mem['target_mb'], False)} |")
    if cifar_memory:
        c = cifar_memory
        out.append(f"| peak memory, `cnn train cifar10` on {c['train_images']:,} images | ≤ {c['target_mb']:g} MB | "
                   f"{c['peak_rss_mb']:.0f} MB | {_met(c['peak_rss_mb'], c['target_mb'], False)} |")
    out.append("")

    # ------------------------------------------------------------ cnn bench
    for one in (bench, *extra):
        if one:
            out += bench_section(one)

    # ------------------------------------------------------------ whole process
    if wall:
        w = wall["wall"]
        out += ["## Whole process", "", f"Data: {wall['data']}.", "",
                f"### `cnn train` against the equivalent PyTorch script, {wall['epochs']} epochs", "",
                "benchmarks/torch_train.py does what `cnn train` does (same network, split, optimizer and "
                "schedule, batches, per-epoch validation and checkpoints, final test) the way a careful PyTorch "
                "user would (whole set converted to a tensor once). Launched alternately, "
                f"{len(w['runs']['ours'])} times each; medians.", "",
                "| | command | wall s (runs) | test accuracy |", "|---|---|---:|---:|"]
        for name, label in (("ours", "ours"), ("torch", "PyTorch")):
            runs = ", ".join(f"{r['wall_s']:.1f}" for r in w["runs"][name])
            out.append(f"| {label} | `{w['commands'][name]}` | **{w[f'{name}_s']:.1f}** ({runs}) | "
                       f"{100 * w['test_accuracy'][name]:.2f}% |")
        out += ["", f"PyTorch ÷ ours: **{_x(w['ratio'])}** (target ≥ ×{w['target']:g}).", ""]
        mem = wall["memory"]
        out += [f"### Peak memory, one epoch on {mem['train_images']:,} training images", "",
                "Peak resident set of the whole process (`ru_maxrss` from `wait4`).", "",
                "| | command | peak MB | wall s |", "|---|---|---:|---:|"]
        for name, label in (("ours", "ours"), ("torch", "PyTorch")):
            out.append(f"| {label} | `{mem[name]['command']}` | {mem[name]['peak_rss_mb']:.0f} | {mem[name]['wall_s']:.1f} |")
        fb = wall["first_batch"]
        out += ["", "### Time to first batch", "",
                f"`{fb['command']}`, from launch to the start / end of its first training step:", "",
                f"- kernels in Numba's cache: {fb['cached']['start_after_launch_s']:.2f} s / "
                f"**{fb['cached']['end_after_launch_s']:.2f} s**" + _launches(fb["cached"]),
                f"- empty cache (compiles what the step needs): {fb['cold']['start_after_launch_s']:.2f} s / "
                f"{fb['cold']['end_after_launch_s']:.1f} s", ""]
    if cifar_memory:
        c = cifar_memory
        out += [f"### Peak memory, one epoch of `cnn train cifar10` on {c['train_images']:,} images", "",
                "A CIFAR-10 archive in the official binary format, of random pixels (the real one cannot be "
                f"downloaded here), {c['train_images']:,} training and {c['test_images']:,} test records "
                "(benchmarks/bench_cifar_memory.py).", "",
                "| command | peak MB | wall s | epoch s | img/s |", "|---|---:|---:|---:|---:|",
                f"| `{c['command']}` | {c['peak_rss_mb']:.0f} | {c['wall_s']:.1f} | {c['epoch_s']:.1f} | "
                f"{c['images_per_s']:,.0f} |", ""]
    return "\n".join(out)


def bench_section(bench) -> list[str]:
    """The tables of one `cnn bench --json` result."""
    out: list[str] = []
    s = bench["settings"]
    out += [f"## `cnn bench {bench['config']}`", "",
            f"Random data; median of {s['repeat']} repetitions of at least {s['min_time']:g} s each, after a "
            f"warm-up (JIT compilation is never timed here); the range is the slowest and fastest repetition.", ""]
    for kind, title in (("train", "Training step (forward, loss, backward, optimizer update), images/s"),
                        ("inference", "Inference (forward pass), images/s")):
        out += [f"### {title}", "", "| batch | ours | range | PyTorch | range | ours ÷ PyTorch |",
                "|---:|---:|---:|---:|---:|---:|"]
        for row in bench[kind]:
            t = row["torch"] or {}
            out.append(f"| {row['batch_size']} | {_n(row['ours']['images_per_s'])} | {_spread(row['ours'])} | "
                       f"{_n(t.get('images_per_s'))} | {_spread(row['torch'])} | {_x(row['ratio'])} |")
        out.append("")
    layers = bench["layers"]
    out += [f"### Per layer at batch {layers['batch_size']}, ms", "",
            "Each layer alone on inputs captured from a real forward pass (PyTorch: the module on a detached "
            "input that requires grad; backward through `torch.autograd.grad`). `loss` is forward and backward "
            "together, `update` the optimizer step, `step` the whole training step. `conv1+pool1` is the fused "
            "step the model really runs (one kernel for the conv and its max pooling; PyTorch: the two modules).",
            "",
            "| layer | pass | ours | PyTorch | PyTorch ÷ ours |", "|---|---|---:|---:|---:|"]
    for row in layers["rows"]:
        out.append(f"| {row['name']} | {row['pass']} | {_n(row['ours_ms'], '.3f')} | {_n(row['torch_ms'], '.3f')} | "
                   f"{_x(row['ratio'])} |")
    out.append("")
    c = bench.get("compile")
    if c:
        out += ["### JIT compilation", "",
                f"Measured in fresh processes: first the config's network, then one with every layer kind, so "
                f"all {len(c['kernels'])} kernels compile; the figures are the summed first calls (training step and "
                f"inference at batch {c['batch_size']}).", "",
                f"- cold, empty `NUMBA_CACHE_DIR`: **{c['cold_s']:.1f} s** (whole process {c['cold_process_s']:.1f} s)",
                f"- the same again, loading from that cache: **{c['cache_load_s']:.2f} s** (whole process "
                f"{c['cached_process_s']:.1f} s; importing numba and the kernels {c['import_s']:.2f} s)",
                f"- launch to the end of the first training step, cached: {c['first_batch_after_launch_s']:.2f} s; "
                f"cold: {c['cold_first_batch_after_launch_s']:.1f} s", ""]
    return out


def _launches(figures: dict) -> str:
    """', median of N launches (range a–b)' when several launches were timed."""
    runs = figures.get("end_runs_s", [])
    if len(runs) < 2:
        return ""
    return f", median of {len(runs)} launches (ends {min(runs):.2f}–{max(runs):.2f} s)"


# Hand-written sections of RESULTS.md that a new run must not erase: from the
# first of these headings to the end of the file.
KEPT_HEADINGS = ("\n## Design measurements",)


def kept_sections(path: Path) -> str:
    """The hand-written tail of the current results file ('' if none)."""
    if not path.is_file():
        return ""
    text = path.read_text()
    starts = [text.find(h) for h in KEPT_HEADINGS if h in text]
    return "\n" + text[min(starts):].lstrip("\n") if starts else ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, default=HERE / "results" / "bench.json")
    parser.add_argument("--wall", type=Path, default=HERE / "results" / "train_wall.json")
    parser.add_argument("--extra", type=Path, nargs="*", default=[HERE / "results" / "bench_cifar10.json"],
                        help="more `cnn bench --json` results to tabulate (skipped when missing)")
    parser.add_argument("--cifar-memory", type=Path, default=HERE / "results" / "cifar_memory.json")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    extra = [_load(path) for path in args.extra if path.is_file()]
    cifar_memory = _load(args.cifar_memory)
    args.out.write_text(render(_load(args.bench), _load(args.wall), extra, cifar_memory) + kept_sections(args.out))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
