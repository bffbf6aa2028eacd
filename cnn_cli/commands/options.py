"""Size options shared by `cnn params` and `cnn params --receptive`: --input CxHxW, --sizes 28,32,64."""

from __future__ import annotations

import re

from ..errors import UserError
from ..limits import short_repr

_SHAPE = re.compile(r"^\s*(\d{1,9})\s*[x×X*]\s*(\d{1,9})\s*[x×X*]\s*(\d{1,9})\s*$")  # 9 digits: never a giant int


def parse_input_option(text: str) -> tuple[int, int, int]:
    """`1x32x32` → (1, 32, 32)."""
    match = _SHAPE.match(text or "")
    values = tuple(int(v) for v in match.groups()) if match else ()
    if not match or min(values) < 1:
        raise UserError(f"--input {short_repr(text)}: expected CxHxW with positive integers, e.g. --input 1x32x32")
    return values  # type: ignore[return-value]


def parse_sizes_option(text: str) -> list[tuple[int, int]]:
    """`28,32,64` → [(28, 28), (32, 32), (64, 64)]; an item may also be HxW."""
    sizes = []
    items = [item.strip() for item in (text or "").split(",")]
    for item in items:
        match = re.match(r"^(\d{1,9})(?:\s*[x×X*]\s*(\d{1,9}))?$", item)
        if not match:
            raise UserError(f"--sizes {short_repr(text)}: {short_repr(item)} is not a size; expected comma-separated sizes "
                            f"like 28,32,64 (or HxW items like 28x32)")
        h = int(match.group(1))
        w = int(match.group(2)) if match.group(2) else h
        if h < 1 or w < 1:
            raise UserError(f"--sizes {short_repr(text)}: sizes must be positive, got {short_repr(item)}")
        sizes.append((h, w))
    return sizes
