"""Output sizes and padding of sliding windows (SPEC §2), in plain Python.

Shared by config validation (which must not load numba) and the kernels.
"""


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
