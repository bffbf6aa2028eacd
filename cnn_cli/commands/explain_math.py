"""The pieces every `cnn explain` derivation is built from, in plain NumPy.

Written as the notes write them (explicit windows, explicit zeros) rather than
for speed: these are what a student does by hand. Nothing here calls the
project's kernels — `explain_check` does that, only to compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np


def correlate(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Valid cross-correlation of a 2-D array with a 2-D kernel, stride 1 (no flip)."""
    fh, fw = k.shape
    out = np.zeros((a.shape[0] - fh + 1, a.shape[1] - fw + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.sum(a[i:i + fh, j:j + fw] * k)
    return out


def correlate_strided(a: np.ndarray, k: np.ndarray, sh: int, sw: int) -> np.ndarray:
    """Valid cross-correlation with stride (sh, sw): the window steps S pixels, floor rule."""
    fh, fw = k.shape
    oh, ow = (a.shape[0] - fh) // sh + 1, (a.shape[1] - fw) // sw + 1
    out = np.zeros((oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[i, j] = np.sum(a[i * sh:i * sh + fh, j * sw:j * sw + fw] * k)
    return out


def dilate(d: np.ndarray, sh: int, sw: int) -> np.ndarray:
    """Insert S−1 zeros between neighbouring deltas (rows by sh, columns by sw)."""
    out = np.zeros(((d.shape[0] - 1) * sh + 1, (d.shape[1] - 1) * sw + 1))
    out[::sh, ::sw] = d
    return out


def pad(a: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    return np.pad(a, ((top, bottom), (left, right)))


def rot180(w: np.ndarray) -> np.ndarray:
    """The kernel turned half a turn: flipped upside down and left to right."""
    return w[::-1, ::-1]


def number(value: float) -> str:
    """A matrix entry as a student writes it: integers bare, else up to 3 decimals."""
    value = float(value)
    if abs(value - round(value)) < 1e-9:
        return str(int(round(value)))
    return f"{value:.3f}".rstrip("0")


def term(a: float, b: float) -> str:
    """One product of a written-out sum; negative factors in parentheses."""
    left, right = number(a), number(b)
    return f"{left if a >= 0 else '(' + left + ')'}·{right if b >= 0 else '(' + right + ')'}"


def written_sum(label: str, terms: list[str], value: float, limit: int = 96) -> str:
    """`label = t1 + t2 + … = value`, eliding middle terms past `limit` characters."""
    total = f" = {number(value)}"
    shown = list(terms) or ["0"]
    text = f"{label} = " + " + ".join(shown) + total
    cut = len(shown)
    while len(text) > limit and cut > 2:
        cut -= 1
        text = f"{label} = " + " + ".join(shown[:cut - 1]) + f" + … ({len(shown)} terms) + " + shown[-1] + total
    return text


# ---------------------------------------------------------------- what a derivation produces


@dataclass
class Block:
    """A matrix as shown: a label, 2-D values, and per-cell markers (NO_COLOR-safe)."""

    label: str
    values: np.ndarray
    marks: dict[tuple[int, int], str] = field(default_factory=dict)  # (i, j) -> one character


@dataclass
class Section:
    heading: str
    items: list[Any] = field(default_factory=list)  # str lines and lists of Blocks (shown side by side)

    def text(self, line: str) -> None:
        self.items.append(line)

    def blocks(self, *blocks: Block) -> None:
        self.items.append(list(blocks))


@dataclass
class Explanation:
    """One worked case: sections to print, every matrix for --json, and the arrays the
    kernels must reproduce (`checked`, in the kernels' layout)."""

    kind: str  # conv | pool
    title: str
    geometry: dict[str, Any]
    sections: list[Section]
    matrices: dict[str, np.ndarray]
    expansions: list[str]
    checked: dict[str, np.ndarray]
    checks: Optional[dict[str, dict[str, Any]]] = None  # filled by explain_check.compare

    @property
    def agree(self) -> bool:
        return self.checks is not None and all(c["agree"] for c in self.checks.values())

    def max_width(self) -> int:
        """Widest input plane, padded (what decides whether the text fits 100 columns)."""
        return int(self.geometry["padded_input"][1])

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "geometry": self.geometry,
            "matrices": {name: np.asarray(a).tolist() for name, a in self.matrices.items()},
            "expansions": self.expansions,
            "checks": self.checks,
            "agree": self.agree,
        }
