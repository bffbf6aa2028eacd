"""`cnn explain conv|pool`: build the worked cases, explain them, check them, print.

Without options, `cnn explain conv` works the lesson's own numbers (SPEC §2–§3):
the slides' 5×5 image and 3×3 kernel at stride 1 and 2, the notes' case of a
kernel 2 at stride 2 on width 5 (the fifth column is never reached), and the
notes' 3×3-input, 2×2-kernel backward example written out element by element.
With options it works one case of the user's size, with small random integers
(`--seed`) or the user's own numbers (`--values`).

Every case is checked against the project's kernels (explain_check); a
disagreement prints both and makes the command exit 1.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import explain_check
from .explain_conv import ConvProblem, explain_conv, output_size
from .explain_math import Explanation
from .explain_options import (
    check_window_fits,
    parse_count,
    parse_pair,
    parse_padding,
    parse_seed,
    parse_values,
)
from .explain_pool import PoolProblem, explain_pool
from .explain_render import print_explanations
from ..errors import UserError

# SPEC §2's test vector (the slides, section 3).
SLIDES_IMAGE = [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]]
SLIDES_KERNEL = [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
POOL_KINDS = ("max", "mean", "subsample")


@dataclass
class ConvOptions:
    input: Optional[str] = None
    channels: Optional[int] = None
    filters: Optional[int] = None
    kernel: Optional[str] = None
    stride: Optional[str] = None
    padding: Optional[str] = None
    values: Optional[str] = None
    seed: Optional[int] = None

    @property
    def lesson(self) -> bool:
        """No option given: the lesson's own examples."""
        return all(v is None for v in vars(self).values())


@dataclass
class PoolOptions:
    kind: str = "max"
    size: Optional[str] = None
    stride: Optional[str] = None
    input: Optional[str] = None
    channels: Optional[int] = None
    values: Optional[str] = None
    seed: Optional[int] = None


def _single(values) -> ConvProblem:
    x, w, delta, title, stride, notes = values
    x, w = np.array(x, float)[None], np.array(w, float)[None, None]
    return ConvProblem(title, x, w, np.zeros(1), stride, (0, 0, 0, 0), "valid", np.array(delta, float)[None], notes)


def lesson_problems() -> list[ConvProblem]:
    """The lesson's examples; the deltas are ours (the notes keep them symbolic), small and mixed in sign."""
    return [_single(v) for v in (
        (SLIDES_IMAGE, SLIDES_KERNEL, [[1, -1, 0], [0, 2, 1], [1, 0, -1]],
         "The slides' example (SPEC §2): 5×5 image, 3×3 kernel, stride 1", (1, 1), False),
        (SLIDES_IMAGE, SLIDES_KERNEL, [[1, -1], [2, 1]],
         "The slides' example (SPEC §2): 5×5 image, 3×3 kernel, stride 2", (2, 2), False),
        (SLIDES_IMAGE, [[1, 0], [0, 1]], [[1, 2], [-1, 1]],
         "The notes' unreached column (SPEC §2): width 5, kernel 2, stride 2", (2, 2), False),
        ([[1, 2, 0], [0, 1, 3], [2, 1, 1]], [[1, 2], [3, 4]], [[1, -1], [2, 1]],
         "The notes' backward example (SPEC §3): 3×3 input, 2×2 kernel", (1, 1), True),
    )]


def conv_problem(o: ConvOptions) -> ConvProblem:
    """One case from the options: sizes checked, numbers from --values or small random integers."""
    h, w = parse_pair(o.input or "5x5", "--input", "5x5")
    fh, fw = parse_pair(o.kernel or "3", "--kernel", "3x3")
    sh, sw = parse_pair(o.stride or "1", "--stride", "2")
    channels = parse_count(o.channels, "--channels", 1)
    filters = parse_count(o.filters, "--filters", 1)
    padding_text = o.padding or "valid"
    t, b, l, r = parse_padding(padding_text, h, w, (fh, fw), (sh, sw))
    check_window_fits("--kernel", (fh, fw), (h + t + b, w + l + r), "padded input",
                      f"--input {h}x{w}, --padding {padding_text}",
                      "use a smaller --kernel, more --padding or a larger --input")
    oh, ow = output_size(h, fh, sh, t, b), output_size(w, fw, sw, l, r)
    seed = parse_seed(o.seed)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, (channels, h, w)).astype(float)
    weights = rng.integers(-1, 3, (filters, channels, fh, fw)).astype(float)
    bias = rng.integers(-1, 2, filters).astype(float)
    delta = rng.integers(-2, 3, (filters, oh, ow)).astype(float)
    # An all-zero kernel or δ teaches nothing (every product 0): give it one 1.
    weights[~weights.any(axis=(2, 3)), 0, 0] = 1
    delta[~delta.any(axis=(1, 2)), 0, 0] = 1
    source = f"seed {seed}"
    if o.values is not None:
        x, weights, given = parse_values(o.values, [("input", (channels, h, w)),
                                                    ("kernel", (filters, channels, fh, fw)),
                                                    ("∂L/∂z", (filters, oh, ow))], optional_last=True)
        bias = np.zeros(filters)
        delta = delta if given is None else given
        source = "your values" + ("" if given is not None else f", ∂L/∂z from seed {seed}")
    title = (f"Convolution: input {channels}@{h}×{w}, {filters} filter(s) {fh}×{fw}, stride {sh}×{sw}, "
             f"padding {padding_text} ({source})")
    return ConvProblem(title, x, weights, bias, (sh, sw), (t, b, l, r), padding_text, delta)


def pool_problem(o: PoolOptions) -> PoolProblem:
    if o.kind not in POOL_KINDS:
        raise UserError(f"--kind {o.kind}: choose {', '.join(POOL_KINDS)}")
    h, w = parse_pair(o.input or "4x4", "--input", "4x4")
    ph, pw = parse_pair(o.size or "2", "--size", "2")
    sh, sw = parse_pair(o.stride, "--stride", "2") if o.stride is not None else (ph, pw)
    channels = parse_count(o.channels, "--channels", 1)
    check_window_fits("--size", (ph, pw), (h, w), "input", f"--input {h}x{w}",
                      "use a smaller --size or a larger --input")
    oh, ow = (h - ph) // sh + 1, (w - pw) // sw + 1
    seed = parse_seed(o.seed)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 10, (channels, h, w)).astype(float)
    delta = rng.integers(-2, 4, (channels, oh, ow)).astype(float)
    beta = rng.choice([0.5, 1.0, 2.0], channels)
    bias = rng.integers(-1, 2, channels).astype(float)
    source = f"seed {seed}"
    if o.values is not None:
        x, given = parse_values(o.values, [("input", (channels, h, w)), ("∂L/∂y", (channels, oh, ow))],
                                optional_last=True)
        delta = delta if given is None else given
        source = "your values" + ("" if given is not None else f", ∂L/∂y from seed {seed}")
    overlap = ", overlapping" if sh < ph or sw < pw else ""
    title = (f"{o.kind.capitalize()} pooling: input {channels}@{h}×{w}, window {ph}×{pw}, "
             f"stride {sh}×{sw}{overlap} ({source})")
    return PoolProblem(title, o.kind, x, (ph, pw), (sh, sw), delta, beta, bias)


# ---------------------------------------------------------------- run


def checked_conv(problem: ConvProblem) -> Explanation:
    exp = explain_conv(problem)
    kernels = explain_check.conv_by_kernels(problem.x, problem.w, problem.bias, problem.stride,
                                            problem.padding, problem.delta)
    exp.checks = explain_check.compare(exp.checked, kernels)
    return exp


def checked_pool(problem: PoolProblem) -> Explanation:
    exp = explain_pool(problem)
    kernels = explain_check.pool_by_kernels(problem.kind, problem.x, problem.size, problem.stride,
                                            problem.delta, problem.beta, problem.bias)
    exp.checks = explain_check.compare(exp.checked, kernels)
    return exp


def mismatch_lines(explanations: list[Explanation]) -> list[str]:
    """One loud line per array the kernels disagree on, with both values."""
    lines = []
    for exp in explanations:
        for name, check in (exp.checks or {}).items():
            if not check["agree"]:
                mine = np.asarray(exp.checked[name]).tolist()
                lines.append(f"MISMATCH in '{exp.title}': {name} — the explanation says {mine}, the project's "
                             f"kernels return {check['kernels']} (max |difference| {check['max_abs_diff']:g}); "
                             "one of them is wrong: please report it")
    return lines


def report(command: str, explanations: list[Explanation], json_out: bool) -> int:
    """Print the cases (JSON or text); exit status 1 when any check failed."""
    agree = all(e.agree for e in explanations)
    if json_out:
        print(json.dumps({"command": command, "cases": [e.to_json() for e in explanations], "agree": agree}))
    else:
        print_explanations(explanations)
    for line in mismatch_lines(explanations):
        print(f"error: cnn explain {command}: {line}", file=sys.stderr)
    return 0 if agree else 1


def run_conv(options: ConvOptions, json_out: bool = False) -> int:
    problems = lesson_problems() if options.lesson else [conv_problem(options)]
    return report("conv", [checked_conv(p) for p in problems], json_out)


def run_pool(options: PoolOptions, json_out: bool = False) -> int:
    return report("pool", [checked_pool(pool_problem(options))], json_out)
