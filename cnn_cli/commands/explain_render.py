"""Rich text for `cnn explain`: small matrices side by side, at most 100 columns.

Every marker is a character beside the number (`*` a max-pool switch, `~` a
cell no window reaches), so the output reads the same with NO_COLOR; colour
only repeats what the characters say.
"""

from __future__ import annotations

import textwrap
from typing import Iterable

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

from .explain_math import Block, Explanation, number

WIDTH = 100  # the promise: inputs up to MAX_FITTING×MAX_FITTING fit this many columns
MAX_FITTING = 7
GAP = "   "
MARK_STYLES = {"*": "bold green", "~": "dim"}


def block_lines(block: Block) -> list[Text]:
    """A block as lines of equal width: its label, then `[ a  b ]` rows."""
    values = block.values
    cells = [[number(v) for v in row] for row in values]
    width = max((len(c) for row in cells for c in row), default=1)
    marked = bool(block.marks)
    rows = []
    for i, row in enumerate(cells):
        line = Text("[ ")
        for j, cell in enumerate(row):
            mark = block.marks.get((i, j), " " if marked else "")
            line.append(cell.rjust(width), style=MARK_STYLES.get(mark, ""))
            line.append(mark, style=MARK_STYLES.get(mark, ""))
            line.append(" ")
        line.append("]")
        rows.append(line)
    body = max((len(r) for r in rows), default=0)
    full = max(body, len(block.label))
    label = Text(block.label.ljust(full), style="bold")
    return [label] + [r + Text(" " * (full - len(r))) for r in rows]


def side_by_side(blocks: list[Block], width: int = WIDTH) -> list[Text]:
    """Blocks left to right, starting a new band when the next would pass `width`."""
    bands: list[list[list[Text]]] = [[]]
    used = 0
    for block in blocks:
        lines = block_lines(block)
        w = len(lines[0])
        if bands[-1] and used + len(GAP) + w > width:
            bands.append([])
            used = 0
        used += (len(GAP) if bands[-1] else 0) + w
        bands[-1].append(lines)
    out: list[Text] = []
    for band in bands:
        height = max(len(lines) for lines in band)
        for r in range(height):
            line = Text()
            for n, lines in enumerate(band):
                if n:
                    line.append(GAP)
                line.append_text(lines[r] if r < len(lines) else Text(" " * len(lines[0])))
            line.rstrip()
            out.append(line)
        out.append(Text())
    return out


def explanation_lines(exp: Explanation, width: int = WIDTH) -> list[Text]:
    lines = [Text(exp.title, style="bold underline"), Text()]
    for section in exp.sections:
        lines.append(Text(f"── {section.heading}", style="bold cyan"))
        for item in section.items:
            if isinstance(item, str):
                for part in textwrap.wrap(item, width, subsequent_indent="      ", break_long_words=False) or [""]:
                    lines.append(Text(part))
            else:
                lines.extend(side_by_side(item, width))
        if not lines[-1].plain == "":
            lines.append(Text())
    lines.extend(check_lines(exp))
    return lines


def check_lines(exp: Explanation) -> list[Text]:
    if exp.checks is None:
        return []
    names = ", ".join(exp.checks)
    if exp.agree:
        return [Text(f"✓ checked against the project's kernels (float64): {names} agree", style="green"), Text()]
    bad = [n for n, c in exp.checks.items() if not c["agree"]]
    return [Text(f"✗ MISMATCH with the project's kernels: {', '.join(bad)} differ (see below)", style="bold red"),
            Text()]


def too_wide_note(explanations: Iterable[Explanation], widest: int) -> str | None:
    """Say so when the text is wider than WIDTH or the input larger than the size that is promised to fit."""
    inputs = max((max(e.geometry["input"][1:]) for e in explanations), default=0)
    if inputs > MAX_FITTING or widest > WIDTH:
        return (f"note: only inputs up to {MAX_FITTING}×{MAX_FITTING} with short numbers are laid out to fit {WIDTH} "
                f"columns; this output is {widest} wide; --json gives every matrix")
    return None


def make_console() -> Console:
    # Lines are laid out to WIDTH by hand; soft wrapping off, so Rich never re-breaks them.
    return Console(highlight=False, soft_wrap=True)


def print_explanations(explanations: list[Explanation], console: Console | None = None) -> None:
    console = console or make_console()
    lines = [line for exp in explanations for line in explanation_lines(exp)]
    note = too_wide_note(explanations, max((cell_len(line.plain) for line in lines), default=0))
    if note:
        console.print(Text(note, style="yellow"))
    for line in lines:
        console.print(line)
