"""Output sizes and padding of sliding windows (SPEC §2), in plain Python.

Shared by config validation (which must not load numba) and the kernels.
"""

from typing import NamedTuple


def conv_output_size(n, f, s, p_before, p_after):
    """Output length floor((n + p_before + p_after − f) / s) + 1 (SPEC §2).

    Trailing inputs that never enter a window are legal (PyTorch's floor rule);
    they get zero gradient. Plain Python so config validation compiles nothing.
    """
    n, f, s, p_before, p_after = int(n), int(f), int(s), int(p_before), int(p_after)
    if f < 1 or s < 1:
        raise ValueError(f"kernel ({f}) and stride ({s}) must be at least 1")
    if p_before < 0 or p_after < 0:
        raise ValueError(f"padding must be non-negative, got {p_before}, {p_after}")
    if n + p_before + p_after < f:
        raise ValueError(f"kernel {f} is larger than the padded input {n + p_before + p_after}")
    return (n + p_before + p_after - f) // s + 1


def same_padding(n, f, s):
    """TensorFlow's 'same' padding: output ceil(n/s); returns (before, after).

    Total pad max((out−1)·s + f − n, 0); when it is odd the extra pixel goes
    after (bottom/right).
    """
    n, f, s = int(n), int(f), int(s)
    if n < 1 or f < 1 or s < 1:
        raise ValueError(f"size ({n}), kernel ({f}) and stride ({s}) must be at least 1")
    out = -(-n // s)
    total = max((out - 1) * s + f - n, 0)
    return total // 2, total - total // 2


class ConvGeometry(NamedTuple):
    """Where a convolution's windows sit: kernel, stride, the padding before the
    first row and column, and the output size. One value, passed whole from the
    layer to the kernels' items, which read it by name (Numba types it as a
    named tuple of int64), so no two of its numbers can be swapped on the way."""

    fh: int
    fw: int
    sh: int
    sw: int
    pt: int
    pl: int
    oh: int
    ow: int


def conv_geometry(kernel, stride, padding, out) -> ConvGeometry:
    """ConvGeometry from (fh, fw), (sh, sw), (top, bottom, left, right) and (oh, ow);
    bottom and right padding are implied by the output size."""
    (fh, fw), (sh, sw), (oh, ow) = kernel, stride, out
    top, _, left, _ = padding
    geo = ConvGeometry(*(int(v) for v in (fh, fw, sh, sw, top, left, oh, ow)))
    if min(geo.fh, geo.fw, geo.sh, geo.sw) < 1 or min(geo.pt, geo.pl, geo.oh, geo.ow) < 0:
        raise ValueError(f"bad convolution geometry: {geo}")
    return geo
