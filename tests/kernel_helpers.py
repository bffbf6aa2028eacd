"""Shared helpers for the kernel tests: numeric gradients and slow NumPy references.

The references are written for clarity, not speed (explicit windows, np.pad for
padding), so they are an independent statement of SPEC §2–5 that the kernels
are checked against.
"""

import numba
import numpy as np

import conv_wrappers as conv_k
from cnn_cli.kernels.activations import IDENTITY, RELU, SCALED_TANH, SIGMOID, TANH

ALL_ACTS = (IDENTITY, RELU, SIGMOID, TANH, SCALED_TANH)

NP_ACT = {
    IDENTITY: lambda z: z,
    RELU: lambda z: np.maximum(z, 0),
    SIGMOID: lambda z: 1.0 / (1.0 + np.exp(-z)),
    TANH: np.tanh,
    SCALED_TANH: lambda z: 1.7159 * np.tanh(2.0 * z / 3.0),
}

# SPEC §7: the C3 connection table of LeNet-5, rows = S2 maps, columns = C3 maps.
LENET_C3_TABLE = np.array(
    [[c == "X" for c in row.split()] for row in (
        "X . . . X X X . . X X X X . X X",
        "X X . . . X X X . . X X X X . X",
        "X X X . . . X X X . . X . X X X",
        ". X X X . . X X X X . . X . X X",
        ". . X X X . . X X X X . X X . X",
        ". . . X X X . . X X X X . X X X",
    )],
    dtype=bool,
)


# ---------------------------------------------------------------- gradient checking (SPEC §6)


def numeric_grad(f, arr, eps=1e-6):
    """Central differences (f(θ+ε) − f(θ−ε)) / 2ε of the scalar f() w.r.t. every entry of
    `arr`, which f must read; arr is perturbed in place and restored.

    The thousands of tiny kernel calls run on one thread: on a busy machine each
    launch of a parallel region would otherwise wait for a second core to be
    scheduled. Results do not depend on the thread count (test_determinism), so
    this checks the parallel kernels all the same.
    """
    assert arr.dtype == np.float64, "gradient checks run in float64"
    flat = arr.reshape(-1)
    assert np.shares_memory(flat, arr), "arr must be contiguous so it can be perturbed in place"
    g = np.empty(arr.size)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        for i in range(arr.size):
            old = flat[i]
            flat[i] = old + eps
            fp = f()
            flat[i] = old - eps
            fm = f()
            flat[i] = old
            g[i] = (fp - fm) / (2 * eps)
    finally:
        numba.set_num_threads(threads)
    return g.reshape(arr.shape)


def rel_error(a, b):
    """max|a − b| / max(max|a|, max|b|): relative to the gradient's scale, so an
    entry that should be 0 cannot hide behind a per-entry ratio."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0))
    if scale == 0.0:
        return 0.0
    return float(np.abs(a - b).max() / scale)


def assert_grad(f, arr, analytic, name, eps=1e-6, tol=1e-6):
    """Assert the analytic gradient of f w.r.t. arr matches central differences."""
    assert analytic.shape == arr.shape, f"{name}: gradient shape {analytic.shape} != {arr.shape}"
    num = numeric_grad(f, arr, eps)
    assert np.abs(num).max() > 0, f"{name}: numeric gradient is identically 0, the check would be vacuous"
    err = rel_error(num, analytic)
    assert err < tol, f"{name}: relative error {err:.3e} >= {tol:.0e}"


# ---------------------------------------------------------------- references


def ref_conv2d(x, w, bias, stride, pad):
    """Pre-activation cross-correlation. x (B,C,H,W), w (K,C,Fh,Fw), pad (top,bottom,left,right)."""
    sh, sw = stride
    t, b, l, r = pad
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
    K, _, Fh, Fw = w.shape
    oh = (xp.shape[2] - Fh) // sh + 1
    ow = (xp.shape[3] - Fw) // sw + 1
    out = np.empty((x.shape[0], K, oh, ow), dtype=np.float64)
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * sh:i * sh + Fh, j * sw:j * sw + Fw]
            out[:, :, i, j] = np.einsum("bcmn,kcmn->bk", patch, w) + bias
    return out


def ref_conv2d_backward(x, w, stride, pad, delta):
    """(dx, dw, dbias) of ref_conv2d given the pre-activation gradient delta (B,K,oh,ow):
    every window's patch times its δ into dw, w times δ back onto the window in dx."""
    sh, sw = stride
    t, b, l, r = pad
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
    _, _, Fh, Fw = w.shape
    dxp = np.zeros(xp.shape)
    dw = np.zeros(w.shape)
    for i in range(delta.shape[2]):
        for j in range(delta.shape[3]):
            rows, cols = slice(i * sh, i * sh + Fh), slice(j * sw, j * sw + Fw)
            d = delta[:, :, i, j]
            dw += np.einsum("bk,bcmn->kcmn", d, xp[:, :, rows, cols])
            dxp[:, :, rows, cols] += np.einsum("bk,kcmn->bcmn", d, w)
    return dxp[:, :, t:t + x.shape[2], l:l + x.shape[3]], dw, delta.sum(axis=(0, 2, 3))


# f'(z) as a function of the output a = f(z) (kernels/activations.py).
NP_ACT_DERIVATIVE = {
    IDENTITY: lambda a: np.ones_like(a),
    RELU: lambda a: (a > 0).astype(a.dtype),
    SIGMOID: lambda a: a * (1 - a),
    TANH: lambda a: 1 - a * a,
    SCALED_TANH: lambda a: (2.0 / 3.0) / 1.7159 * (1.7159 ** 2 - a * a),
}


def ref_pool(x, ph, pw, sh, sw, reduce):
    """reduce(window (B,C,ph,pw)) -> (B,C) over every valid window (floor rule)."""
    B, C, H, W = x.shape
    oh = (H - ph) // sh + 1
    ow = (W - pw) // sw + 1
    out = np.empty((B, C, oh, ow), dtype=np.float64)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = reduce(x[:, :, i * sh:i * sh + ph, j * sw:j * sw + pw])
    return out


def conv_sizes(x_shape, kernel, stride, pad):
    """(out_h, out_w) as the caller of conv2d_forward computes them."""
    _, _, H, W = x_shape
    t, b, l, r = pad
    return (conv_k.conv_output_size(H, kernel[0], stride[0], t, b),
            conv_k.conv_output_size(W, kernel[1], stride[1], l, r))


def run_conv(x, w_csr, bias, conn, kernel, stride, pad, act):
    """conv2d_forward with the output size derived from (top, bottom, left, right) padding."""
    oh, ow = conv_sizes(x.shape, kernel, stride, pad)
    return conv_k.conv2d_forward(x, w_csr, bias, conn[0], conn[1], stride[0], stride[1], pad[0], pad[2], oh, ow, act)


def dense_weights_from_csr(w_csr, conn, C, K):
    """Scatter CSR weights (nnz,Fh,Fw) into a (K,C,Fh,Fw) array with zeros for absent pairs."""
    conn_c, conn_k = conn[1], conn[2]
    w = np.zeros((K, C) + w_csr.shape[1:], dtype=w_csr.dtype)
    w[conn_k, conn_c] = w_csr
    return w
