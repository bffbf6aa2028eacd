"""Size options shared by `cnn params` and `cnn params --receptive`: --input CxHxW, --sizes 28,32,64."""

from __future__ import annotations

import re

from ..errors import UserError

_SHAPE = re.compile(r"^\s*(\d+)\s*[x×X*]\s*(\d+)\s*[x×X*]\s*(\d+)\s*$")


def parse_input_option(text: str) -> tuple[int, int, int]:
    """`1x32x32` → (1, 32, 32)."""
    match = _SHAPE.match(text or "")
    values = tuple(int(v) for v in match.groups()) if match else ()
    if not match or min(values) < 1:
        raise UserError(f"--input {text}: expected CxHxW with positive integers, e.g. --input 1x32x32")
    return values  # type: ignore[return-value]


def parse_sizes_option(text: str) -> list[tuple[int, int]]:
    """`28,32,64` → [(28, 28), (32, 32), (64, 64)]; an item may also be HxW."""
    sizes = []
    items = [item.strip() for item in (text or "").split(",")]
    for item in items:
        match = re.match(r"^(\d+)(?:\s*[x×X*]\s*(\d+))?$", item)
        if not match:
            raise UserError(f"--sizes {text}: {item!r} is not a size; expected comma-separated sizes "
                            f"like 28,32,64 (or HxW items like 28x32)")
        h = int(match.group(1))
        w = int(match.group(2)) if match.group(2) else h
        if h < 1 or w < 1:
            raise UserError(f"--sizes {text}: sizes must be positive, got {item!r}")
        sizes.append((h, w))
    return sizes
