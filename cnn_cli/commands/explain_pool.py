"""`cnn explain pool`: pooling forward and backward (SPEC §4) worked in plain NumPy.

Max: each window's first maximum in scan order is its switch, and backward
sends the window's δ there only. Mean: backward spreads δ/(p·p) over the
window. LeNet-5's subsampling: y = β·Σ_window x + b, so backward spreads β·δ,
∂L/∂β = Σ δ·(window sum) and ∂L/∂b = Σ δ. Where windows overlap, the
contributions of every window add up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .explain_math import Block, Explanation, Section, number, term

SWITCH = "*"  # marks a window's maximum (beside the number, so NO_COLOR keeps it)
UNREACHED = "~"


@dataclass
class PoolProblem:
    title: str
    kind: str  # max | mean | subsample
    x: np.ndarray  # (C, H, W)
    size: tuple[int, int]
    stride: tuple[int, int]
    delta: np.ndarray  # (C, H', W')
    beta: np.ndarray  # (C,), subsample only
    bias: np.ndarray  # (C,), subsample only


def _windows(oh: int, ow: int, ph: int, pw: int, sh: int, sw: int):
    for i in range(oh):
        for j in range(ow):
            yield i, j, slice(i * sh, i * sh + ph), slice(j * sw, j * sw + pw)


def pool_geometry(p: PoolProblem) -> dict:
    C, H, W = p.x.shape
    (ph, pw), (sh, sw) = p.size, p.stride
    oh, ow = (H - ph) // sh + 1, (W - pw) // sw + 1
    return {
        "kind": p.kind, "input": [C, H, W], "size": [ph, pw], "stride": [sh, sw], "padded_input": [H, W],
        "output": [oh, ow], "overlapping": sh < ph or sw < pw,
        "formula_h": f"H' = floor((H − p_h)/s_h) + 1 = floor(({H} − {ph})/{sh}) + 1 = {oh}",
        "formula_w": f"W' = floor((W − p_w)/s_w) + 1 = floor(({W} − {pw})/{sw}) + 1 = {ow}",
        "unreached_rows": list(range((oh - 1) * sh + ph, H)),
        "unreached_columns": list(range((ow - 1) * sw + pw, W)),
    }


def first_maximum(window: np.ndarray) -> tuple[int, int]:
    """Row-major scan, strict '>': on ties the first maximum wins (SPEC §4)."""
    best, where = window[0, 0], (0, 0)
    for m in range(window.shape[0]):
        for n in range(window.shape[1]):
            if window[m, n] > best:
                best, where = window[m, n], (m, n)
    return where


def pool_forward(p: PoolProblem, g: dict, matrices: dict) -> None:
    C, H, W = p.x.shape
    (ph, pw), (sh, sw), (oh, ow) = p.size, p.stride, g["output"]
    y = np.zeros((C, oh, ow))
    switches = np.zeros((C, oh, ow), dtype=np.int64)  # flat index h·W + w of each window's maximum
    sums = np.zeros((C, oh, ow))
    coverage = np.zeros((C, H, W), dtype=np.int64)  # how many windows contain each input
    for c in range(C):
        for i, j, rows, cols in _windows(oh, ow, ph, pw, sh, sw):
            window = p.x[c, rows, cols]
            coverage[c, rows, cols] += 1
            sums[c, i, j] = window.sum()
            if p.kind == "max":
                m, n = first_maximum(window)
                switches[c, i, j] = (i * sh + m) * W + j * sw + n
                y[c, i, j] = window[m, n]
            elif p.kind == "mean":
                y[c, i, j] = sums[c, i, j] / (ph * pw)
            else:
                y[c, i, j] = p.beta[c] * sums[c, i, j] + p.bias[c]
    matrices.update(y=y, window_coverage=coverage)
    if p.kind == "max":
        matrices["switches"] = switches
    if p.kind == "subsample":
        matrices["window_sums"] = sums


def pool_backward(p: PoolProblem, g: dict, matrices: dict) -> None:
    C, H, W = p.x.shape
    (ph, pw), (sh, sw), (oh, ow) = p.size, p.stride, g["output"]
    dx = np.zeros((C, H, W))
    for c in range(C):
        for i, j, rows, cols in _windows(oh, ow, ph, pw, sh, sw):
            d = p.delta[c, i, j]
            if p.kind == "max":
                s = matrices["switches"][c, i, j]
                dx[c, s // W, s % W] += d  # the switch alone; overlapping windows add
            elif p.kind == "mean":
                dx[c, rows, cols] += d / (ph * pw)
            else:
                dx[c, rows, cols] += p.beta[c] * d
    matrices.update(delta=p.delta, dx=dx)
    if p.kind == "mean":
        matrices["delta_spread"] = p.delta / (ph * pw)
    if p.kind == "subsample":
        matrices["dbeta"] = (p.delta * matrices["window_sums"]).sum(axis=(1, 2))
        matrices["dbias"] = p.delta.sum(axis=(1, 2))


def _switch_marks(g: dict, switches: np.ndarray, W: int) -> dict[tuple[int, int], str]:
    return {(int(s) // W, int(s) % W): SWITCH for s in switches.reshape(-1)}


def _unreached_marks(g: dict, H: int, W: int) -> dict[tuple[int, int], str]:
    rows, cols = set(g["unreached_rows"]), set(g["unreached_columns"])
    return {(i, j): UNREACHED for i in range(H) for j in range(W) if i in rows or j in cols}


def _signed(value: float) -> str:
    return number(value) if value >= 0 else f"({number(value)})"


def _written_dx(p: PoolProblem, g: dict, matrices: dict, c: int = 0) -> str:
    """The input most windows cover, its gradient written as the sum over those windows."""
    (ph, pw), (sh, sw), (oh, ow) = p.size, p.stride, g["output"]
    W = p.x.shape[2]
    cov = matrices["window_coverage"][c]
    if p.kind == "max":  # the input that is the switch of the most windows: where δs add up
        hits = np.zeros(cov.shape, dtype=np.int64)
        for s in matrices["switches"][c].reshape(-1):
            hits[s // W, s % W] += 1
        cov = hits * 1000 + cov
    i0, j0 = np.unravel_index(int(np.argmax(cov)), cov.shape)
    symbols, values, elsewhere = [], [], []
    for i, j, rows, cols in _windows(oh, ow, ph, pw, sh, sw):
        if not (rows.start <= i0 < rows.stop and cols.start <= j0 < cols.stop):
            continue
        d = p.delta[c, i, j]
        if p.kind == "max":
            if matrices["switches"][c, i, j] != i0 * W + j0:
                elsewhere.append(f"{i},{j}")
                continue
            symbols.append(f"δ[{i},{j}]")
            values.append(_signed(d))
        elif p.kind == "mean":
            symbols.append(f"δ[{i},{j}]/{ph * pw}")
            values.append(f"{_signed(d)}/{ph * pw}")
        else:
            symbols.append(f"β·δ[{i},{j}]")
            values.append(term(p.beta[c], d))
    label = f"∂L/∂x[{i0},{j0}]" if p.x.shape[0] == 1 else f"∂L/∂x(c={c})[{i0},{j0}]"
    line = f"{label} = {' + '.join(symbols) or '0'} = {' + '.join(values) or '0'} = {number(matrices['dx'][c, i0, j0])}"
    if elsewhere:
        line += f"  (window{'s' if len(elsewhere) > 1 else ''} {'; '.join(elsewhere)} also contain it, with the maximum elsewhere)"
    return line


def explain_pool(p: PoolProblem) -> Explanation:
    g = pool_geometry(p)
    matrices: dict[str, np.ndarray] = {"x": p.x}
    if p.kind == "subsample":
        matrices.update(beta=p.beta, bias=p.bias)
    pool_forward(p, g, matrices)
    pool_backward(p, g, matrices)
    C, H, W = p.x.shape
    (ph, pw), (sh, sw) = p.size, p.stride
    sub = (lambda c: f" (c={c})" if C > 1 else "")
    geo = Section("1. Geometry")
    geo.text(g["formula_h"])
    geo.text(g["formula_w"])
    if g["overlapping"]:
        geo.text(f"stride {sh}×{sw} < window {ph}×{pw}: windows overlap; backward adds their contributions")
    if g["unreached_rows"] or g["unreached_columns"]:
        geo.text(f"rows {g['unreached_rows']} and columns {g['unreached_columns']} never enter a window "
                 f"(marked {UNREACHED}): their gradient is 0")
    fwd = Section(f"2. Forward: {p.kind} pooling")
    rule = {"max": f"y = the window's maximum; its position (the switch, marked {SWITCH}) is recorded — "
                   "the first maximum in scan order on ties",
            "mean": f"y = (Σ_window x)/{ph * pw}",
            "subsample": "y = β·Σ_window x + b (LeNet-5's S2/S4: a trainable β and b per map)"}[p.kind]
    fwd.text(rule)
    back = Section("3. Backward")
    back.text({"max": "δ goes to its window's switch only; every other input of the window gets 0",
               "mean": f"every input of the window gets δ/({ph}·{pw}) = δ/{ph * pw} (upsampling)",
               "subsample": "every input of the window gets β·δ; ∂L/∂β = Σ δ·(window sum); ∂L/∂b = Σ δ"}[p.kind])
    expansions = []
    for c in range(C):
        marks = _unreached_marks(g, H, W)
        if p.kind == "max":
            marks.update(_switch_marks(g, matrices["switches"][c], W))
        extra = [Block(f"window sums{sub(c)}", matrices["window_sums"][c])] if p.kind == "subsample" else []
        fwd.blocks(Block(f"x{sub(c)}", p.x[c], marks), *extra, Block(f"y{sub(c)}", matrices["y"][c]))
        spread = [Block(f"δ/{ph * pw}{sub(c)}", matrices["delta_spread"][c])] if p.kind == "mean" else []
        cover = [Block(f"windows per input{sub(c)}", matrices["window_coverage"][c])] if g["overlapping"] else []
        back.blocks(Block(f"δ = ∂L/∂y{sub(c)}", p.delta[c]), *spread, *cover,
                    Block(f"∂L/∂x{sub(c)}", matrices["dx"][c], marks))
        if p.kind == "subsample":
            back.text(f"β = {number(p.beta[c])}, b = {number(p.bias[c])}: "
                      f"∂L/∂β{sub(c)} = {number(matrices['dbeta'][c])}, ∂L/∂b{sub(c)} = {number(matrices['dbias'][c])}")
    line = _written_dx(p, g, matrices)
    back.text("written out (the input most windows contain" + (" as their switch" if p.kind == "max" else "") + "):")
    back.text("  " + line)
    expansions.append(line)
    checked = {"forward": matrices["y"], "dx": matrices["dx"]}
    if p.kind == "max":
        checked["switches"] = matrices["switches"]
    if p.kind == "subsample":
        checked.update(dbeta=matrices["dbeta"], dbias=matrices["dbias"])
    return Explanation("pool", p.title, g, [geo, fwd, back], matrices, expansions, checked)
