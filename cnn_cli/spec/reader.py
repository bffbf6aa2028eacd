"""Reading config fields: one `UserError` line naming the file, the field and the fix."""

from __future__ import annotations

import difflib
import math
from typing import Any


from ..errors import UserError
from ..limits import short_repr


class _Reader:
    """Reads fields of one mapping and reports errors with the file and dotted path."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, problem: str) -> UserError:
        return UserError(f"{self.source}: {path}: {problem}")

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...]) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping with keys {', '.join(allowed)}, got {_describe(value)}")
        for key in value:
            if key not in allowed:
                near = difflib.get_close_matches(str(key)[:100], allowed, n=1)
                hint = f"did you mean '{near[0]}'?" if near else f"allowed keys: {', '.join(allowed)}"
                raise self.fail(_join(path, short_repr(key) if not isinstance(key, str) or len(key) > 60 else key),
                                f"unknown key; {hint}")
        return value

    def required(self, mapping: dict, key: str, path: str) -> Any:
        if key not in mapping or mapping[key] is None:
            raise self.fail(_join(path, key), "missing; this field is required")
        return mapping[key]

    def integer(self, value: Any, path: str, minimum: int = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected an integer, got {_describe(value)}")
        if value < minimum:
            what = "positive" if minimum == 1 else f"at least {minimum}"
            raise self.fail(path, f"must be {what}, got {short_repr(value)}")
        return value

    def number(self, value: Any, path: str, low: float | None = None, high: float | None = None,
               low_open: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(path, f"expected a number, got {_describe(value)}")
        if low is not None and (value < low or (low_open and value == low)):
            bound = f"> {low}" if low_open else f">= {low}"
            raise self.fail(path, f"must be {bound}, got {short_repr(value)}")
        if high is not None and value > high:
            raise self.fail(path, f"must be <= {high}, got {short_repr(value)}")
        return float(value)

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"expected true or false, got {_describe(value)}")
        return value

    def choice(self, value: Any, path: str, choices: tuple[str, ...]) -> str:
        if not isinstance(value, str) or value not in choices:
            near = difflib.get_close_matches(str(value), choices, n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"choose one of {', '.join(choices)}"
            raise self.fail(path, f"unknown value {short_repr(value)}; {hint}")
        return value

    def pair(self, value: Any, path: str, minimum: int = 1) -> tuple[int, int]:
        """An int n (meaning n×n) or a list [height, width]."""
        if isinstance(value, list):
            if len(value) != 2:
                raise self.fail(path, f"expected an integer or [height, width], got a list of {len(value)}")
            return (self.integer(value[0], f"{path}[0]", minimum), self.integer(value[1], f"{path}[1]", minimum))
        n = self.integer(value, path, minimum)
        return (n, n)

    def name(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value or not value.replace("_", "").replace("-", "").isalnum():
            raise self.fail(path, f"expected a name of letters, digits, '_' or '-', got {_describe(value)}")
        return value


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {short_repr(value)}"
    if isinstance(value, str):
        return f"the text {short_repr(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _in_range(r: _Reader, value: Any, path: str, low: float, high: float, unit: str = "",
              high_open: bool = False, low_open: bool = False) -> float:
    """A number in [low, high] (or open at either end); the message names the range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise r.fail(path, f"expected a number, got {_describe(value)}")
    if value < low or value > high or (high_open and value == high) or (low_open and value == low):
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        raise r.fail(path, f"must be in {left}{low:g}, {high:g}{right}{unit}, got {value:g}")
    return float(value)
