"""Parsing `cnn explain`'s options; every bad value is one UserError naming the option."""

from __future__ import annotations

import re
from typing import Optional

import numpy as np

from ..errors import UserError
from ..spec.geometry import same_padding

MAX_SIDE = 32  # matrices a person can read; --json still gives every number below it
MAX_MAPS = 8
MAX_VALUE = 1e6  # hand-sized numbers; far larger ones would only test float64's range
_SIZE = re.compile(r"^\s*(-?\d+)\s*(?:[x×X*]\s*(-?\d+))?\s*$")


def parse_pair(text: str, option: str, example: str, least: int = 1, most: int = MAX_SIDE) -> tuple[int, int]:
    """`5` or `6x7` → (6, 7); each at least `least` and at most `most`."""
    match = _SIZE.match(text or "")
    if not match:
        raise UserError(f"{option} {text!r}: give N or HxW, e.g. {option} {example}")
    a = int(match.group(1))
    b = int(match.group(2)) if match.group(2) is not None else a
    if min(a, b) < least:
        raise UserError(f"{option} {text}: each size must be at least {least}, e.g. {option} {example}")
    if max(a, b) > most:
        raise UserError(f"{option} {text}: at most {most} per side (explain works hand-sized examples); "
                        f"e.g. {option} {example}")
    return a, b


def parse_count(value: Optional[int], option: str, default: int) -> int:
    value = default if value is None else value
    if not 1 <= value <= MAX_MAPS:
        raise UserError(f"{option} {value}: give 1 to {MAX_MAPS}")
    return value


def parse_seed(seed: Optional[int]) -> int:
    if seed is None:
        return 0
    if seed < 0:
        raise UserError(f"--seed {seed}: give a seed of 0 or more")
    return seed


def parse_padding(text: str, height: int, width: int, kernel: tuple[int, int],
                  stride: tuple[int, int]) -> tuple[int, int, int, int]:
    """valid | same | N | t,b,l,r → (top, bottom, left, right), as config.py resolves it."""
    word = (text or "").strip().lower()
    if word == "valid":
        return 0, 0, 0, 0
    if word == "same":
        return same_padding(height, kernel[0], stride[0]) + same_padding(width, kernel[1], stride[1])
    parts = [p.strip() for p in word.split(",")]
    if len(parts) in (1, 4) and all(re.fullmatch(r"\d+", p) for p in parts):
        values = [int(p) for p in parts] * (4 if len(parts) == 1 else 1)
        if max(values) > MAX_SIDE:
            raise UserError(f"--padding {text}: at most {MAX_SIDE} per side")
        return tuple(values)  # type: ignore[return-value]
    raise UserError(f"--padding {text!r}: give valid, same, N or top,bottom,left,right (e.g. 1,0,1,0)")


def check_window_fits(option: str, window: tuple[int, int], padded: tuple[int, int], what: str, given: str,
                      fix: str) -> None:
    if window[0] > padded[0] or window[1] > padded[1]:
        raise UserError(f"{option} {window[0]}x{window[1]} is larger than the {what} {padded[0]}x{padded[1]} "
                        f"({given}): {fix}")


def parse_values(text: str, shapes: list[tuple[str, tuple[int, ...]]], optional_last: bool) -> list[np.ndarray]:
    """'1,0,2;1,1' → arrays of the given shapes, parts separated by ';', numbers by ','.

    The last part may be left out when `optional_last` (then None is returned for it).
    """
    parts = (text or "").split(";")
    least = len(shapes) - (1 if optional_last else 0)
    names = " ; ".join(name for name, _ in shapes)
    if not least <= len(parts) <= len(shapes):
        raise UserError(f"--values: give {least}{' or ' + str(len(shapes)) if optional_last else ''} parts "
                        f"separated by ';' ({names}), got {len(parts)}")
    arrays: list = []
    for part, (name, shape) in zip(parts, shapes):
        numbers = []
        for item in part.replace(" ", "").split(","):
            try:
                value = float(item)
            except ValueError:
                raise UserError(f"--values: {item!r} in the {name} is not a number; "
                                f"numbers are separated by ',' and parts by ';'") from None
            if not np.isfinite(value) or abs(value) > MAX_VALUE:
                raise UserError(f"--values: {item!r} in the {name} is not a number between "
                                f"-{MAX_VALUE:g} and {MAX_VALUE:g}")
            numbers.append(value)
        need = int(np.prod(shape))
        if len(numbers) != need:
            dims = "×".join(map(str, shape))
            raise UserError(f"--values: the {name} needs {need} numbers ({dims}, row-major), got {len(numbers)}")
        arrays.append(np.array(numbers, dtype=np.float64).reshape(shape))
    arrays += [None] * (len(shapes) - len(arrays))
    return arrays
