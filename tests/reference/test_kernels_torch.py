"""Kernels against PyTorch's reference implementations and their autograd gradients.

Skipped when PyTorch is not installed; it is a reference, not a dependency.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch not installed: pip install torch==2.13.0 for reference checks")
F = torch.nn.functional

import conv_wrappers as conv_k  # noqa: E402
from cnn_cli.kernels import dense as dense_k  # noqa: E402
from cnn_cli.kernels import loss as loss_k  # noqa: E402
from cnn_cli.kernels import pool as pool_k  # noqa: E402
from cnn_cli.kernels.activations import IDENTITY, RELU, SCALED_TANH, SIGMOID, TANH  # noqa: E402
from kernel_helpers import LENET_C3_TABLE, dense_weights_from_csr, run_conv  # noqa: E402

TORCH_ACT = {
    IDENTITY: lambda z: z,
    RELU: torch.relu,
    SIGMOID: torch.sigmoid,
    TANH: torch.tanh,
    SCALED_TANH: lambda z: 1.7159 * torch.tanh(2.0 * z / 3.0),
}
RTOL64 = 1e-10


def close(ours, theirs, rtol=RTOL64, atol=None):
    theirs = theirs.detach().numpy()
    scale = max(np.abs(theirs).max(initial=0.0), 1e-30)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * scale if atol is None else atol)


def torch_grads(fn, *arrays, seed=0):
    """Forward `fn` on tensors requiring grad, backprop L = Σ G ⊙ out; returns (out, G, grads)."""
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*ts)
    G = np.random.default_rng(seed).standard_normal(tuple(out.shape)).astype(arrays[0].dtype)
    (out * torch.tensor(G)).sum().backward()
    return out, G, [t.grad for t in ts]


# ---------------------------------------------------------------- conv


CONV_TORCH_CASES = [
    # (C, K, H, W, kernel, stride, pad (t, b, l, r), act)
    (3, 4, 12, 11, (3, 3), (1, 1), (1, 1, 1, 1), RELU),
    (3, 4, 12, 11, (5, 3), (2, 2), (2, 2, 1, 1), TANH),
    (2, 5, 13, 10, (3, 2), (3, 1), (0, 0, 0, 0), SIGMOID),
    (2, 3, 11, 12, (4, 4), (2, 3), (1, 2, 0, 3), SCALED_TANH),   # asymmetric: F.pad first
    (1, 6, 32, 32, (5, 5), (1, 1), (0, 0, 0, 0), SCALED_TANH),   # LeNet C1
    (4, 2, 5, 5, (2, 2), (2, 2), (0, 0, 0, 0), IDENTITY),        # floor rule
]


def _torch_conv(x, w, b, stride, pad, act):
    t, bo, l, r = pad
    if t == bo and l == r:
        z = F.conv2d(x, w, b, stride=stride, padding=(t, l))
    else:
        z = F.conv2d(F.pad(x, (l, r, t, bo)), w, b, stride=stride)
    return TORCH_ACT[act](z)


@pytest.mark.parametrize("case", CONV_TORCH_CASES, ids=str)
def test_conv2d_matches_torch_float64(case):
    C, K, H, W, kernel, stride, pad, act = case
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    x = rng.standard_normal((3, C, H, W))
    w = rng.standard_normal((K, C) + kernel) * 0.3
    b = rng.standard_normal(K) * 0.3
    out, G, (gx, gw, gb) = torch_grads(lambda x_, w_, b_: _torch_conv(x_, w_, b_, stride, pad, act), x, w, b)
    conn = conv_k.full_connections(C, K)
    wc = w.reshape(K * C, *kernel)
    a = run_conv(x, wc, b, conn, kernel, stride, pad, act)
    close(a, out)
    dx, dw, db = conv_k.conv2d_backward(G, a, x, wc, conn, stride[0], stride[1], pad[0], pad[2], act, True)
    close(dx, gx)
    close(dw.reshape(w.shape), gw)
    close(db, gb)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, RTOL64), (np.float32, 2e-4)])
@pytest.mark.parametrize("C, K, H, W, tile", [(8, 5, 8, 12, 4), (9, 4, 6, 10, 2), (32, 32, 32, 32, 4)])
def test_winograd_conv_layer_matches_torch(C, K, H, W, tile, dtype, rtol):
    """3×3 'same' conv layers over 8+ channels run by Winograd's algorithm: output and
    every gradient against torch's conv2d (float32: F(4×4)'s transforms lose a few
    bits, within rtol of the largest value)."""
    from cnn_cli.nn.layers import Conv2D
    from cnn_cli.spec.config import ConvSpec, LayerShape

    rng = np.random.default_rng(C * 100 + H)
    spec = ConvSpec("conv", K, (3, 3), (1, 1), (1, 1, 1, 1), "same", "tanh")
    layer = Conv2D(LayerShape(spec, (C, H, W), (K, H, W), "t"), dtype, rng)
    assert layer.winograd == tile
    layer.params["bias"][...] = rng.standard_normal(K) * 0.3
    x = rng.standard_normal((3, C, H, W)).astype(dtype)
    w, b = layer.params["weight"], layer.params["bias"]
    out, G, (gx, gw, gb) = torch_grads(lambda x_, w_, b_: _torch_conv(x_, w_, b_, (1, 1), (1, 1, 1, 1), TANH), x, w, b)
    a = layer.forward(x)
    dx = layer.backward(G)
    for ours, theirs in ((a, out), (dx, gx), (layer.grads["weight"], gw), (layer.grads["bias"], gb)):
        close(ours, theirs, rtol=rtol)


def test_conv2d_matches_torch_float32():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((8, 6, 14, 14)).astype(np.float32)
    w = (rng.standard_normal((16, 6, 5, 5)) * 0.2).astype(np.float32)
    b = (rng.standard_normal(16) * 0.2).astype(np.float32)
    out, G, (gx, gw, gb) = torch_grads(lambda x_, w_, b_: _torch_conv(x_, w_, b_, (1, 1), (2, 2, 2, 2), RELU), x, w, b)
    conn = conv_k.full_connections(6, 16)
    wc = w.reshape(96, 5, 5)
    a = run_conv(x, wc, b, conn, (5, 5), (1, 1), (2, 2, 2, 2), RELU)
    assert a.dtype == np.float32
    close(a, out, rtol=1e-5)
    dx, dw, db = conv_k.conv2d_backward(G, a, x, wc, conn, 1, 1, 2, 2, RELU, True)
    assert dx.dtype == dw.dtype == db.dtype == np.float32
    close(dx, gx, rtol=1e-5)
    close(dw.reshape(w.shape), gw, rtol=1e-5)
    close(db, gb, rtol=1e-5)


def test_connection_table_conv_matches_torch_masked_conv():
    rng = np.random.default_rng(8)
    conn = conv_k.table_connections(LENET_C3_TABLE)
    x = rng.standard_normal((2, 6, 14, 14))
    wc = rng.standard_normal((60, 5, 5)) * 0.2
    b = rng.standard_normal(16) * 0.2
    w_full = dense_weights_from_csr(wc, conn, 6, 16)
    mask = torch.tensor(LENET_C3_TABLE.T[:, :, None, None].astype(np.float64))
    out, G, (gx, gw, gb) = torch_grads(
        lambda x_, w_, b_: _torch_conv(x_, w_ * mask, b_, (1, 1), (0, 0, 0, 0), SCALED_TANH), x, w_full, b)
    a = run_conv(x, wc, b, conn, (5, 5), (1, 1), (0, 0, 0, 0), SCALED_TANH)
    close(a, out)
    dx, dw, db = conv_k.conv2d_backward(G, a, x, wc, conn, 1, 1, 0, 0, SCALED_TANH, True)
    close(dx, gx)
    close(db, gb)
    close(dw, gw[conn[2], conn[1]])
    # torch's gradient of the masked-out weights is 0: they really do not exist
    assert np.count_nonzero(gw.numpy()) == 60 * 25


# ---------------------------------------------------------------- pooling


POOL_TORCH_CASES = [((2, 2), (2, 2)), ((3, 3), (2, 2)), ((3, 2), (1, 2)), ((2, 3), (3, 2))]


@pytest.mark.parametrize("size, stride", POOL_TORCH_CASES, ids=str)
def test_max_pool2d_matches_torch(size, stride):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 11, 10))
    out, G, (gx,) = torch_grads(lambda x_: F.max_pool2d(x_, size, stride), x)
    o, arg = pool_k.maxpool2d_forward(x, *size, *stride)
    close(o, out)
    _, idx = F.max_pool2d(torch.tensor(x), size, stride, return_indices=True)
    np.testing.assert_array_equal(arg, idx.numpy())  # same flat h·W + w convention
    close(pool_k.maxpool2d_backward(G, arg, 11, 10), gx)


@pytest.mark.parametrize("size, stride", POOL_TORCH_CASES, ids=str)
def test_avg_pool2d_matches_torch(size, stride):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 3, 11, 10))
    out, G, (gx,) = torch_grads(lambda x_: F.avg_pool2d(x_, size, stride), x)
    close(pool_k.meanpool2d_forward(x, *size, *stride), out)
    close(pool_k.meanpool2d_backward(G, 11, 10, *size, *stride), gx)


@pytest.mark.parametrize("p, positive", [(2.0, False), (3.0, True), (1.5, True)])
@pytest.mark.parametrize("size, stride", POOL_TORCH_CASES[:3], ids=str)
def test_lp_pool2d_matches_torch(size, stride, p, positive):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 11, 10))
    if positive:  # PyTorch raises x to p without abs(): equal only for x ≥ 0 unless p = 2
        x = np.abs(x) + 0.1
    out, G, (gx,) = torch_grads(lambda x_: F.lp_pool2d(x_, p, size, stride), x)
    o = pool_k.lppool2d_forward(x, p, *size, *stride)
    close(o, out, rtol=1e-9)
    close(pool_k.lppool2d_backward(G, x, o, p, *size, *stride), gx, rtol=1e-9)


def test_pools_match_torch_float32():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((4, 6, 28, 28)).astype(np.float32)
    out, G, (gx,) = torch_grads(lambda x_: F.max_pool2d(x_, 2, 2), x)
    o, arg = pool_k.maxpool2d_forward(x, 2, 2, 2, 2)
    close(o, out, rtol=1e-6)
    close(pool_k.maxpool2d_backward(G, arg, 28, 28), gx, rtol=1e-6)
    out, G, (gx,) = torch_grads(lambda x_: F.avg_pool2d(x_, 2, 2), x)
    close(pool_k.meanpool2d_forward(x, 2, 2, 2, 2), out, rtol=1e-5)
    close(pool_k.meanpool2d_backward(G, 28, 28, 2, 2, 2, 2), gx, rtol=1e-5)
    out, G, (gx,) = torch_grads(lambda x_: F.lp_pool2d(x_, 2.0, 2, 2), x)
    o = pool_k.lppool2d_forward(x, 2.0, 2, 2, 2, 2)
    close(o, out, rtol=1e-5)
    close(pool_k.lppool2d_backward(G, x, o, 2.0, 2, 2, 2, 2), gx, rtol=1e-5)


def test_subsample_matches_torch_composition():
    """LeNet-5 subsampling = act(β · (window sum) + b), window sum = avg_pool2d · area."""
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 6, 28, 28))
    beta = rng.standard_normal(6)
    bias = rng.standard_normal(6)

    def fn(x_, beta_, bias_):
        s = F.avg_pool2d(x_, 2, 2) * 4
        return torch.sigmoid(beta_[:, None, None] * s + bias_[:, None, None])

    out, G, (gx, gbeta, gbias) = torch_grads(fn, x, beta, bias)
    a, sums = pool_k.subsample_forward(x, beta, bias, 2, 2, 2, 2, SIGMOID)
    close(a, out)
    dx, dbeta, dbias = pool_k.subsample_backward(G, a, sums, beta, 28, 28, 2, 2, 2, 2, SIGMOID, True)
    close(dx, gx)
    close(dbeta, gbeta)
    close(dbias, gbias)


# ---------------------------------------------------------------- dense, RBF, loss


@pytest.mark.parametrize("act", [RELU, SIGMOID, TANH, SCALED_TANH, IDENTITY])
def test_dense_matches_torch_linear(act):
    rng = np.random.default_rng(14 + act)
    x = rng.standard_normal((5, 120))
    w = rng.standard_normal((120, 84)) * 0.1  # ours (in, out); torch's weight is (out, in)
    b = rng.standard_normal(84) * 0.1
    out, G, (gx, gw, gb) = torch_grads(lambda x_, w_, b_: TORCH_ACT[act](F.linear(x_, w_.T, b_)), x, w, b)
    a = dense_k.dense_forward(x, w, b, act)
    close(a, out)
    dx, dw, db = dense_k.dense_backward(G, a, x, w, act, True)
    close(dx, gx)
    close(dw, gw)
    close(db, gb)


def test_rbf_matches_torch():
    rng = np.random.default_rng(15)
    x = rng.standard_normal((4, 84))
    c = np.sign(rng.standard_normal((10, 84)))
    out, G, (gx,) = torch_grads(lambda x_: ((x_[:, None, :] - torch.tensor(c)[None]) ** 2).sum(-1), x)
    close(dense_k.rbf_forward(x, c), out)
    close(dense_k.rbf_backward(G, x, c), gx)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_cross_entropy_matches_torch(dtype, rtol):
    rng = np.random.default_rng(16)
    z = (rng.standard_normal((32, 10)) * 4).astype(dtype)
    z[0] = [1e4, -1e4, 0, 0, 0, 0, 0, 0, 0, 0]
    y = rng.integers(0, 10, 32).astype(np.int64)
    zt = torch.tensor(z, requires_grad=True)
    lt = F.cross_entropy(zt, torch.tensor(y))
    lt.backward()
    loss, d = loss_k.softmax_cross_entropy(z, y)
    assert loss == pytest.approx(lt.item(), rel=rtol)
    assert d.dtype == dtype
    close(d, zt.grad, rtol=rtol)
    close(loss_k.softmax(z), torch.softmax(torch.tensor(z), 1), rtol=rtol)
