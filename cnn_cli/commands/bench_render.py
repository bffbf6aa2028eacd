"""The Rich tables of a `cnn bench` result (Rich is imported only when they are drawn)."""

from __future__ import annotations

from typing import Optional



from .bench_compile import COLD_COMPILE_TARGET_S, FIRST_BATCH_TARGET_S


def _num(v: Optional[float], fmt: str = ",.0f") -> str:
    return "-" if v is None else format(v, fmt)


def _ratio_text(r: Optional[float], target: Optional[float] = None) -> str:
    if r is None:
        return "-"
    text = f"×{r:.2f}"
    if target is not None:
        text += f" ({'met' if r >= target else 'below'} ≥{target:g})"
    return text


def render_bench(result: dict) -> list:
    """Rich renderables: header, throughput tables, per-layer table, compile lines."""
    from rich.table import Table
    from rich.text import Text

    m = result["machine"]
    has_torch = any(row["torch"] for row in result["train"] + result["inference"])
    out = [Text(f"{result['config']}: {m['cpu']}, {m['cores']} cores, {result['threads']} threads; "
                f"numba {m['numba']}" + (f", torch {m['torch']}" if has_torch else "") +
                f"; median of {result['settings']['repeat']} × ≥{result['settings']['min_time']:g} s"
                f"; load average {m['loadavg_before']}")]
    for kind, title in (("train", "training step (forward, loss, backward, update)"), ("inference", "inference")):
        table = Table(title=f"{title}, images/s", title_justify="left")
        table.add_column("batch", justify="right")
        table.add_column("ours", justify="right")
        table.add_column("ms/batch", justify="right")
        if has_torch:
            table.add_column("torch", justify="right")
            table.add_column("ms/batch", justify="right")
            table.add_column("ours ÷ torch", justify="right")
        for row in result[kind]:
            cells = [str(row["batch_size"]), _num(row["ours"]["images_per_s"]), _num(row["ours"]["ms_per_batch"], ".2f")]
            if has_torch:
                t = row["torch"] or {}
                cells += [_num(t.get("images_per_s")), _num(t.get("ms_per_batch"), ".2f"),
                          _ratio_text(row["ratio"], row["target"])]
            table.add_row(*cells)
        out.append(table)
    layers = result["layers"]
    table = Table(title=f"per layer at batch {layers['batch_size']}, ms", title_justify="left")
    table.add_column("layer")
    table.add_column("pass")
    table.add_column("ours", justify="right")
    if has_torch:
        table.add_column("torch", justify="right")
        table.add_column("torch ÷ ours", justify="right")
    for row in layers["rows"]:
        if row["kind"] == "augment":
            continue
        cells = [row["name"], row["pass"], _num(row["ours_ms"], ".3f")]
        if has_torch:
            cells += [_num(row["torch_ms"], ".3f"), _ratio_text(row["ratio"])]
        table.add_row(*cells)
    out.append(table)
    for row in layers["rows"]:
        if row["kind"] == "augment":
            fraction = row.get("step_fraction")
            share = f" = {100 * fraction:.1f} % of the training step (target ≤ 15 %)" if fraction is not None else ""
            out.append(Text(f"{row['name']}: {row['ours_ms']:.3f} ms to distort a batch of "
                            f"{layers['batch_size']}{share}"))
    c = result["compile"]
    if c:
        out.append(Text(f"compile: cold {c['cold_s']:.1f} s for every kernel ({len(c['kernels'])}; target ≤ "
                        f"{COLD_COMPILE_TARGET_S:g} s), loading them from the cache {c['cache_load_s']:.2f} s; "
                        f"a cached process finished its first batch {c['first_batch_after_launch_s']:.2f} s "
                        f"after launch (target ≤ {FIRST_BATCH_TARGET_S:g} s)"))
    if not has_torch:
        out.append(Text("add --against torch for same-run ratios against PyTorch"))
    return out
