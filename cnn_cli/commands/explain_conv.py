"""`cnn explain conv`: the convolution's derivation (SPEC §2–§3) worked in plain NumPy.

Forward as cross-correlation of the padded input; backward as the notes do it:
the deltas dilated by S−1 zeros, padded by F−1, correlated with rot180(W),
the rows no window reached put back as zeros, then cropped by the padding;
∂L/∂W as the input correlated with the dilated deltas; ∂L/∂b as their sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .explain_math import (
    Block,
    Explanation,
    Section,
    correlate,
    correlate_strided,
    dilate,
    number,
    pad,
    rot180,
    term,
    written_sum,
)

UNREACHED = "~"  # marks cells no window reaches (shown beside the number, so NO_COLOR keeps it)


@dataclass
class ConvProblem:
    title: str
    x: np.ndarray  # (C, H, W)
    w: np.ndarray  # (K, C, Fh, Fw)
    bias: np.ndarray  # (K,)
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, bottom, left, right
    padding_text: str
    delta: np.ndarray  # (K, H', W'): the ∂L/∂z the backward pass is given
    notes_style: bool = False  # also write every ∂L/∂x[i,j] symbolically, 1-based, as the notes do


def output_size(n: int, f: int, s: int, before: int, after: int) -> int:
    return (n + before + after - f) // s + 1


def _sub(k: int, c: Optional[int], K: int, C: int) -> str:
    """Which filter/channel a label belongs to, only when there is more than one."""
    parts = ([f"k={k}"] if K > 1 else []) + ([f"c={c}"] if c is not None and C > 1 else [])
    return f" ({', '.join(parts)})" if parts else ""


# ---------------------------------------------------------------- geometry


def geometry(p: ConvProblem) -> dict:
    C, H, W = p.x.shape
    K, _, fh, fw = p.w.shape
    (sh, sw), (t, b, l, r) = p.stride, p.padding
    oh, ow = output_size(H, fh, sh, t, b), output_size(W, fw, sw, l, r)
    hp, wp = H + t + b, W + l + r
    reach_h, reach_w = (oh - 1) * sh + fh, (ow - 1) * sw + fw  # rows/columns some window covers
    return {
        "input": [C, H, W], "filters": K, "kernel": [fh, fw], "stride": [sh, sw],
        "padding": [t, b, l, r], "padding_text": p.padding_text,
        "padded_input": [hp, wp], "output": [oh, ow],
        "formula_h": f"H' = floor((H + P_t + P_b − F_h)/S_h) + 1 = floor(({H} + {t} + {b} − {fh})/{sh}) + 1 = {oh}",
        "formula_w": f"W' = floor((W + P_l + P_r − F_w)/S_w) + 1 = floor(({W} + {l} + {r} − {fw})/{sw}) + 1 = {ow}",
        "unreached_rows": list(range(reach_h, hp)),  # in padded coordinates
        "unreached_columns": list(range(reach_w, wp)),
    }


def _unreached_marks(g: dict) -> dict[tuple[int, int], str]:
    hp, wp = g["padded_input"]
    rows, cols = set(g["unreached_rows"]), set(g["unreached_columns"])
    return {(i, j): UNREACHED for i in range(hp) for j in range(wp) if i in rows or j in cols}


def _unreached_text(g: dict) -> list[str]:
    lines = []
    t, _, l, _ = g["padding"]
    H, W = g["input"][1:]
    for axis, key, before, n, s, f in (("rows", "unreached_rows", t, H, g["stride"][0], g["kernel"][0]),
                                       ("columns", "unreached_columns", l, W, g["stride"][1], g["kernel"][1])):
        cut = g[key]
        if not cut:
            continue
        real = [i - before for i in cut if 0 <= i - before < n]
        padded = g["padded_input"][0 if axis == "rows" else 1]
        lines.append(f"{axis} {_list(cut)} of x_pad never enter a window (marked {UNREACHED}): "
                     f"S = {s} does not divide {padded} − {f} = {padded - f}")
        lines.append(f"  so input {axis} {_list(real)} ({_ordinals(real)}) get a zero gradient" if real
                     else "  (they are padding only)")
    return lines


def _list(values: list[int]) -> str:
    return ", ".join(map(str, values))


def _ordinals(values: list[int]) -> str:
    """0-based indices as counted by hand: 4 → 'the 5th'."""
    def nth(n: int) -> str:
        return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"
    return "the " + ", ".join(nth(v + 1) for v in values)


# ---------------------------------------------------------------- forward


def forward(p: ConvProblem, g: dict, sec: Section, matrices: dict) -> tuple[np.ndarray, list[str]]:
    C = p.x.shape[0]
    K = p.w.shape[0]
    (sh, sw), (t, b, l, r) = p.stride, p.padding
    x_pad = np.stack([pad(p.x[c], t, b, l, r) for c in range(C)])
    per_channel = np.stack([[correlate_strided(x_pad[c], p.w[k, c], sh, sw) for c in range(C)] for k in range(K)])
    z = per_channel.sum(axis=1) + p.bias[:, None, None]
    matrices.update(x_pad=x_pad, z_per_channel=per_channel, z=z)
    sec.text(f"z[i,j] = b + Σ_c Σ_m Σ_n w[c,m,n]·x_pad[c, i·{sh}+m, j·{sw}+n]   (cross-correlation: W is not flipped)")
    for k in range(K):
        if C > 1:
            sec.text(f"filter {k}: one correlation per input channel, then their sum plus b = {number(p.bias[k])} "
                     "(the multi-channel rule)")
            sec.blocks(*[Block(f"x_pad ⋆ W{_sub(k, c, K, C)}", per_channel[k, c]) for c in range(C)],
                       Block(f"z = Σ_c + b{_sub(k, None, K, C)}", z[k]))
        else:
            sec.blocks(Block(f"z{_sub(k, None, K, C)}", z[k]))
    i, j = (0, 1) if z.shape[2] > 1 else (0, 0)
    terms = [term(x_pad[c, i * sh + m, j * sw + n], p.w[0, c, m, n])
             for c in range(C) for m in range(p.w.shape[2]) for n in range(p.w.shape[3])]
    if p.bias[0] != 0:
        terms.append(number(p.bias[0]) if p.bias[0] > 0 else f"({number(p.bias[0])})")
    label = f"z[{i},{j}]" if K == 1 else f"z(k=0)[{i},{j}]"
    line = written_sum(label, terms, z[0, i, j])
    sec.text(f"written out, window rows {i * sh}–{i * sh + p.w.shape[2] - 1}, columns {j * sw}–{j * sw + p.w.shape[3] - 1}"
             f" of x_pad{' (every channel)' if C > 1 else ''}:")
    sec.text("  " + line)
    return x_pad, [line]


# ---------------------------------------------------------------- backward: ∂L/∂x


def input_gradient(p: ConvProblem, g: dict, sec: Section, matrices: dict) -> list[str]:
    C, H, W = p.x.shape
    K, _, fh, fw = p.w.shape
    (sh, sw), (t, b, l, r) = p.stride, p.padding
    hp, wp = g["padded_input"]
    dilated = np.stack([dilate(p.delta[k], sh, sw) for k in range(K)])
    padded = np.stack([pad(dilated[k], fh - 1, fh - 1, fw - 1, fw - 1) for k in range(K)])
    rotated = np.stack([[rot180(p.w[k, c]) for c in range(C)] for k in range(K)])
    full = np.stack([[correlate(padded[k], rotated[k, c]) for c in range(C)] for k in range(K)])
    summed = full.sum(axis=0)  # the multi-channel rule: channel c gets every filter's contribution
    dx_pad = np.zeros((C, hp, wp))
    dx_pad[:, :summed.shape[1], :summed.shape[2]] = summed  # rows no window reached stay 0
    dx = dx_pad[:, t:t + H, l:l + W]
    matrices.update(delta=p.delta, delta_dilated=dilated, delta_padded=padded, w_rot180=rotated,
                    dx_per_filter=full, dx_pad=dx_pad, dx=dx)
    sec.text(f"1. dilate: {sh - 1} zero(s) between rows, {sw - 1} between columns (S − 1); "
             f"2. pad by F − 1 = {fh - 1}, {fw - 1}; 3. correlate with rot180(W); "
             f"4. put back the rows no window reached (0); 5. crop the padding {t},{b},{l},{r}.")
    for k in range(K):
        sec.blocks(Block(f"δ = ∂L/∂z{_sub(k, None, K, C)}", p.delta[k]),
                   *([Block("dilated", dilated[k])] if (sh, sw) != (1, 1) else []),
                   Block(f"padded by {fh - 1},{fw - 1}", padded[k]))
        for c in range(C):
            sec.blocks(Block(f"rot180(W){_sub(k, c, K, C)}", rotated[k, c]),
                       Block(f"padded δ ⋆ rot180(W){_sub(k, c, K, C)}", full[k, c]))
    marks = _unreached_marks(g)
    for c in range(C):
        shown = []
        if K > 1:
            sec.text(f"channel {c}: the sum of the {K} filters' contributions (the multi-channel rule)")
        if (hp, wp) != (H, W) or marks:
            shown.append(Block(f"∂L/∂x_pad{_sub(0, c, 1, C)}", dx_pad[c], marks))
        shown.append(Block(f"∂L/∂x{_sub(0, c, 1, C)}", dx[c]))
        sec.blocks(*shown)
    for line in _unreached_text(g):
        sec.text(line)
    lines = _written_dx(p, padded, dx_pad, g)
    sec.text("written out (the element most windows reach):")
    for line in lines:
        sec.text("  " + line)
    if p.notes_style:
        sec.text("every element, as the notes write it (1-based: δij = ∂L/∂z_ij, wmn = W[m,n]):")
        notes = _notes_lines(p, padded, dx_pad, g)
        for line in notes:
            sec.text("  " + line)
        lines += notes
    return lines


def _dx_terms(p: ConvProblem, padded: np.ndarray, pi: int, pj: int, c: int):
    """The products that make ∂L/∂x_pad[c, pi, pj]: (k, δ index, w index, δ value, w value)."""
    K, _, fh, fw = p.w.shape
    sh, sw = p.stride
    oh, ow = p.delta.shape[1:]
    terms = []
    for k in range(K):
        for u in range(fh):
            for v in range(fw):
                a, bb = pi + u - (fh - 1), pj + v - (fw - 1)  # position in the dilated δ
                if a < 0 or bb < 0 or a % sh or bb % sw or a // sh >= oh or bb // sw >= ow:
                    continue  # an inserted zero or the F−1 padding: no term
                m, n = fh - 1 - u, fw - 1 - v  # rot180(W)[u, v] = W[m, n]
                terms.append((k, (a // sh, bb // sw), (m, n), padded[k, pi + u, pj + v], p.w[k, c, m, n]))
    return terms


def _written_dx(p: ConvProblem, padded: np.ndarray, dx_pad: np.ndarray, g: dict) -> list[str]:
    t, _, l, _ = p.padding
    H, W = p.x.shape[1:]
    K = p.w.shape[0]
    best, where = -1, (0, 0)
    reach_h = dx_pad.shape[1] - len(g["unreached_rows"])
    reach_w = dx_pad.shape[2] - len(g["unreached_columns"])
    for i in range(H):
        for j in range(W):
            if i + t < reach_h and j + l < reach_w:
                n = len(_dx_terms(p, padded, i + t, j + l, 0))
                if n > best:
                    best, where = n, (i, j)
    i, j = where
    terms = _dx_terms(p, padded, i + t, j + l, 0)
    label = f"∂L/∂x[{i},{j}]" if p.x.shape[0] == 1 else f"∂L/∂x(c=0)[{i},{j}]"
    many = K > 1 or p.x.shape[0] > 1
    dname = (lambda k: f"δ(k={k})" if K > 1 else "δ")
    wname = (lambda k: f"W(k={k},c=0)" if many else "w")
    symbolic = " + ".join(f"{dname(k)}[{d[0]},{d[1]}]·{wname(k)}[{m[0]},{m[1]}]" for k, d, m, _, _ in terms)
    numeric = written_sum(label, [term(dv, wv) for *_, dv, wv in terms], dx_pad[0, i + t, j + l])
    return [f"{label} = {symbolic or '0'}", numeric]


def _notes_lines(p: ConvProblem, padded: np.ndarray, dx_pad: np.ndarray, g: dict) -> list[str]:
    t, _, l, _ = p.padding
    H, W = p.x.shape[1:]
    lines = []
    for i in range(H):
        for j in range(W):
            terms = _dx_terms(p, padded, i + t, j + l, 0)
            symbolic = " + ".join(f"δ{d[0] + 1}{d[1] + 1}·w{m[0] + 1}{m[1] + 1}" for _, d, m, _, _ in terms)
            values = " + ".join(term(dv, wv) for *_, dv, wv in terms)
            lines.append(f"∂L/∂x[{i + 1},{j + 1}] = {symbolic or '0'} = {values or '0'} = {number(dx_pad[0, i + t, j + l])}")
    return lines


# ---------------------------------------------------------------- ∂L/∂W and ∂L/∂b


def parameter_gradients(p: ConvProblem, g: dict, x_pad: np.ndarray, sec: Section, matrices: dict) -> list[str]:
    C = p.x.shape[0]
    K, _, fh, fw = p.w.shape
    sh, sw = p.stride
    dilated = matrices["delta_dilated"]
    reach_h, reach_w = (p.delta.shape[1] - 1) * sh + fh, (p.delta.shape[2] - 1) * sw + fw
    reached = x_pad[:, :reach_h, :reach_w]  # the unreached rows take part in no product
    dw = np.stack([[correlate(reached[c], dilated[k]) for c in range(C)] for k in range(K)])
    db = np.array([p.delta[k].sum() for k in range(K)])
    matrices.update(dw=dw, db=db)
    sec.text("∂L/∂W[c] = x_pad[c] ⋆ dilated δ (the input correlated with the deltas; unreached rows left out), "
             f"i.e. ∂L/∂W[m,n] = Σ_i Σ_j δ[i,j]·x_pad[i·{sh}+m, j·{sw}+n];  ∂L/∂b = Σ_i Σ_j δ[i,j]")
    for k in range(K):
        sec.blocks(*[Block(f"∂L/∂W{_sub(k, c, K, C)}", dw[k, c]) for c in range(C)])
    terms = [term(p.delta[0, i, j], x_pad[0, i * sh, j * sw])
             for i in range(p.delta.shape[1]) for j in range(p.delta.shape[2])]
    lines = [written_sum("∂L/∂W[0,0]" if K == 1 and C == 1 else "∂L/∂W(k=0, c=0)[0,0]", terms, dw[0, 0, 0, 0])]
    for k in range(K):
        parts = [number(v) if v >= 0 else f"({number(v)})" for v in p.delta[k].reshape(-1)]
        lines.append(written_sum("∂L/∂b" if K == 1 else f"∂L/∂b[{k}]", parts, db[k]))
    sec.text("written out:")
    for line in lines:
        sec.text("  " + line)
    return lines


# ---------------------------------------------------------------- the whole case


def explain_conv(p: ConvProblem) -> Explanation:
    g = geometry(p)
    C, K = p.x.shape[0], p.w.shape[0]
    matrices: dict[str, np.ndarray] = {"x": p.x, "w": p.w, "bias": p.bias}
    geo = Section("1. Geometry")
    geo.text(g["formula_h"])
    geo.text(g["formula_w"])
    fwd = Section("2. Forward")
    x_pad, expansions = forward(p, g, fwd, matrices)
    marks = _unreached_marks(g)
    t, b, l, r = p.padding
    geo.text(f"padding {p.padding_text}: top {t}, bottom {b}, left {l}, right {r} → padded input "
             f"{g['padded_input'][0]}×{g['padded_input'][1]}")
    for c in range(C):
        geo.blocks(*([Block(f"x{_sub(0, c, 1, C)}", p.x[c])] if any(p.padding) else []),
                   Block(f"x_pad{_sub(0, c, 1, C)}", x_pad[c], marks))
    for line in _unreached_text(g):
        geo.text(line)
    for k in range(K):
        geo.blocks(*[Block(f"W{_sub(k, c, K, C)}", p.w[k, c]) for c in range(C)])
    geo.text("b = " + ", ".join(number(v) for v in p.bias))
    back = Section("3. Backward: ∂L/∂x = crop(full correlation of the dilated δ with rot180(W))")
    expansions += input_gradient(p, g, back, matrices)
    params = Section("4. ∂L/∂W and ∂L/∂b")
    expansions += parameter_gradients(p, g, x_pad, params, matrices)
    checked = {"forward": matrices["z"], "dx": matrices["dx"], "dw": matrices["dw"], "db": matrices["db"]}
    return Explanation("conv", p.title, g, [geo, fwd, back, params], matrices, expansions, checked)
