"""Pooling kernels against SPEC §4 (max routing and ties, mean δ/(p·p), overlapping
windows, floor rule, L_p, LeNet-5 subsampling) and §6 (finite differences)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnn_cli.kernels import pool as pool_k
from cnn_cli.kernels.activations import IDENTITY, SCALED_TANH, SIGMOID, TANH
from kernel_helpers import ALL_ACTS, assert_grad, ref_pool

# ---------------------------------------------------------------- max


def test_max_ties_route_to_first_maximum_in_scan_order():
    x = np.array([[1.0, 3.0, 5.0, 5.0],
                  [3.0, 2.0, 5.0, 5.0],
                  [7.0, 7.0, 0.0, 0.0],
                  [7.0, 7.0, 0.0, 0.0]])[None, None]
    out, arg = pool_k.maxpool2d_forward(x, 2, 2, 2, 2)
    np.testing.assert_array_equal(out[0, 0], [[3, 5], [7, 0]])
    # flat index h·W + w of the FIRST maximum, scanning row by row
    np.testing.assert_array_equal(arg[0, 0], [[0 * 4 + 1, 0 * 4 + 2], [2 * 4 + 0, 2 * 4 + 2]])
    assert arg.dtype == np.int32
    dx = pool_k.maxpool2d_backward(np.array([[[[10.0, 20.0], [30.0, 40.0]]]]), arg, 4, 4)
    expected = np.zeros((4, 4))
    expected[0, 1], expected[0, 2], expected[2, 0], expected[2, 2] = 10, 20, 30, 40
    np.testing.assert_array_equal(dx[0, 0], expected)


def test_max_all_equal_window_picks_top_left():
    x = np.full((1, 2, 3, 3), -2.5)
    _, arg = pool_k.maxpool2d_forward(x, 3, 3, 1, 1)
    assert np.all(arg == 0)


def test_max_overlapping_windows_gradients_add():
    # 5×5 with size 3 stride 2: four windows, all containing the centre (2, 2).
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 9.0
    out, arg = pool_k.maxpool2d_forward(x, 3, 3, 2, 2)
    assert out.shape == (1, 1, 2, 2)
    assert np.all(arg == 2 * 5 + 2)
    d = np.array([[[[1.0, 2.0], [4.0, 8.0]]]])
    dx = pool_k.maxpool2d_backward(d, arg, 5, 5)
    assert dx[0, 0, 2, 2] == 15.0
    assert np.count_nonzero(dx) == 1


def test_max_nan_propagates():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan
    out, arg = pool_k.maxpool2d_forward(x, 2, 2, 2, 2)
    assert np.isnan(out[0, 0, 0, 0]) and arg[0, 0, 0, 0] == 1
    assert out[0, 0, 1, 1] == 15.0


def _first_max_2x2(x):
    """2×2, stride-2 max pooling in NumPy: each window scanned row by row, a value
    replacing the maximum when greater, or NaN meeting a number (pool._takes)."""
    B, C, H, W = x.shape
    oh, ow = H // 2, W // 2
    best = x[:, :, 0:2 * oh:2, 0:2 * ow:2].copy()
    where = np.zeros(best.shape, dtype=np.int64)
    for dh, dw in ((0, 1), (1, 0), (1, 1)):
        v = x[:, :, dh:2 * oh:2, dw:2 * ow:2]
        takes = (v > best) | (np.isnan(v) & ~np.isnan(best))
        best = np.where(takes, v, best)
        where = np.where(takes, dh * W + dw, where)
    rows = (2 * np.arange(oh) * W)[:, None] + 2 * np.arange(ow)[None, :]
    return best, where + rows


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("H,W", [(4, 16), (5, 17), (28, 28), (6, 34), (3, 40), (2, 15), (3, 2), (4, 5),
                                 (10, 10), (5, 13), (7, 9)])
def test_max_2x2_rows_of_eight_match_first_max_rule(dtype, H, W):
    """2×2 max pooling runs 8 outputs at a time (kernels/runtime/vector.py), a row's last
    group masked to what is left:
    with ties everywhere (values from {0, 1, 2}, as after a ReLU) and NaNs,
    maxima and argmaxes are exactly the scan-order rule's, on odd sizes too
    (floor rule)."""
    rng = np.random.default_rng(H * W)
    x = rng.integers(0, 3, (2, 3, H, W)).astype(dtype)
    x[rng.random(x.shape) < 0.05] = np.nan
    out, arg = pool_k.maxpool2d_forward(x, 2, 2, 2, 2)
    best, where = _first_max_2x2(x)
    np.testing.assert_array_equal(out, best)
    np.testing.assert_array_equal(arg, where)


def test_masked_pool_group_touches_only_its_lanes():
    """maxpool2x2 reads and writes only its `count` lanes (a row's last group):
    everything past them keeps its sentinel."""
    from numba import njit

    from cnn_cli.kernels.runtime.vector import maxpool2x2

    @njit
    def one_group(x, out, arg, count):
        maxpool2x2(x, 0, x.shape[1], out, arg, 0, count)

    rng = np.random.default_rng(1)
    for count in range(1, 9):
        x = rng.integers(0, 3, (2, 16)).astype(np.float32)
        out = np.full(8, 7.0, dtype=np.float32)
        arg = np.full(8, -1, dtype=np.int32)
        one_group(x, out, arg, count)
        best, where = _first_max_2x2(x[None, None])
        np.testing.assert_array_equal(out[:count], best[0, 0, 0, :count])
        np.testing.assert_array_equal(arg[:count], where[0, 0, 0, :count])
        assert np.all(out[count:] == 7.0) and np.all(arg[count:] == -1)


def test_max_backward_rejects_bad_argmax():
    with pytest.raises(ValueError):
        pool_k.maxpool2d_backward(np.ones((1, 1, 1, 1)), np.full((1, 1, 1, 1), 99, np.int64), 2, 2)


# ---------------------------------------------------------------- mean


def test_mean_forward_and_backward_delta_over_area():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    out = pool_k.meanpool2d_forward(x, 2, 2, 2, 2)
    np.testing.assert_array_equal(out[0, 0], [[2.5, 4.5], [10.5, 12.5]])
    d = np.array([[[[4.0, 8.0], [12.0, 16.0]]]])
    dx = pool_k.meanpool2d_backward(d, 4, 4, 2, 2, 2, 2)
    np.testing.assert_array_equal(dx[0, 0], np.kron(d[0, 0] / 4.0, np.ones((2, 2))))


def test_mean_overlapping_windows_gradients_add():
    # size 3 stride 2 on 7×7: a pixel's gradient is (number of windows containing it)·δ/9
    H = 7
    dx = pool_k.meanpool2d_backward(np.ones((1, 1, 3, 3)), H, H, 3, 3, 2, 2)
    cover = np.zeros(H)
    for i in range(3):
        cover[2 * i:2 * i + 3] += 1
    np.testing.assert_allclose(dx[0, 0], np.outer(cover, cover) / 9.0, rtol=1e-15)
    assert dx[0, 0, 2, 2] == pytest.approx(4 / 9)


@pytest.mark.parametrize(
    "H, W, ph, pw, sh, sw, oh, ow",
    [(28, 28, 2, 2, 2, 2, 14, 14), (5, 5, 2, 2, 2, 2, 2, 2), (7, 7, 3, 3, 2, 2, 3, 3),
     (10, 10, 3, 3, 3, 3, 3, 3), (6, 9, 2, 3, 1, 3, 5, 3), (4, 4, 4, 4, 1, 1, 1, 1)],
)
def test_floor_rule_output_sizes_and_dropped_inputs(H, W, ph, pw, sh, sw, oh, ow):
    x = np.random.default_rng(0).standard_normal((1, 2, H, W))
    for out in (pool_k.maxpool2d_forward(x, ph, pw, sh, sw)[0], pool_k.meanpool2d_forward(x, ph, pw, sh, sw),
                pool_k.lppool2d_forward(x, 2.0, ph, pw, sh, sw)):
        assert out.shape == (1, 2, oh, ow)
    dx = pool_k.meanpool2d_backward(np.ones((1, 2, oh, ow)), H, W, ph, pw, sh, sw)
    used_h, used_w = (oh - 1) * sh + ph, (ow - 1) * sw + pw
    assert np.all(dx[:, :, used_h:, :] == 0) and np.all(dx[:, :, :, used_w:] == 0)
    assert np.all(dx[:, :, :used_h, :used_w][:, :, ::sh, ::sw] > 0)


def test_pool_rejects_window_larger_than_input():
    with pytest.raises(ValueError):
        pool_k.maxpool2d_forward(np.zeros((1, 1, 2, 2)), 3, 3, 1, 1)
    with pytest.raises(ValueError):
        pool_k.lppool2d_forward(np.zeros((1, 1, 4, 2)), 2.0, 2, 3, 1, 1)


def test_pool_backward_rejects_mismatched_gradient():
    pool_k.meanpool2d_backward(np.zeros((1, 1, 2, 2)), 5, 5, 2, 2, 2, 2)  # 5×5 / 2 gives 2×2: fine
    with pytest.raises(ValueError):
        pool_k.meanpool2d_backward(np.zeros((1, 1, 3, 3)), 5, 5, 2, 2, 2, 2)


# ---------------------------------------------------------------- L_p


def test_lp_values():
    x = np.array([[3.0, -4.0], [0.0, 0.0]])[None, None]
    assert pool_k.lppool2d_forward(x, 2.0, 2, 2, 2, 2)[0, 0, 0, 0] == 5.0
    assert pool_k.lppool2d_forward(x, 1.0, 2, 2, 2, 2)[0, 0, 0, 0] == 7.0
    assert pool_k.lppool2d_forward(x, 3.0, 2, 2, 2, 2)[0, 0, 0, 0] == pytest.approx(91 ** (1 / 3), rel=1e-14)
    # p → ∞ approaches the max |x|
    assert pool_k.lppool2d_forward(x, 200.0, 2, 2, 2, 2)[0, 0, 0, 0] == pytest.approx(4.0, rel=1e-2)


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_lp_zero_window_has_zero_gradient(p):
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 2:, 2:] = [[1.0, -2.0], [0.5, 3.0]]
    out = pool_k.lppool2d_forward(x, p, 2, 2, 2, 2)
    assert out[0, 0, 0, 0] == 0
    dx = pool_k.lppool2d_backward(np.ones_like(out), x, out, p, 2, 2, 2, 2)
    assert np.all(np.isfinite(dx))
    assert np.all(dx[0, 0, :2, :2] == 0)
    assert np.all(dx[0, 0, 2:, 2:] != 0)


def test_lp_rejects_p_below_one():
    with pytest.raises(ValueError):
        pool_k.lppool2d_forward(np.ones((1, 1, 2, 2)), 0.5, 2, 2, 2, 2)


# ---------------------------------------------------------------- subsampling (LeNet-5)


def test_subsample_forward_values():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    beta, bias = np.array([0.5]), np.array([-10.0])
    a, sums = pool_k.subsample_forward(x, beta, bias, 2, 2, 2, 2, IDENTITY)
    np.testing.assert_array_equal(sums[0, 0], [[10, 18], [42, 50]])
    np.testing.assert_array_equal(a[0, 0], 0.5 * sums[0, 0] - 10)
    a, _ = pool_k.subsample_forward(x, beta, bias, 2, 2, 2, 2, SIGMOID)
    np.testing.assert_allclose(a[0, 0], 1 / (1 + np.exp(-(0.5 * sums[0, 0] - 10))), rtol=1e-14)


def test_subsample_need_dx_false():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 6, 6))
    beta, bias = rng.standard_normal(3), rng.standard_normal(3)
    a, sums = pool_k.subsample_forward(x, beta, bias, 2, 2, 2, 2, TANH)
    da = rng.standard_normal(a.shape)
    dx1, db1, dc1 = pool_k.subsample_backward(da, a, sums, beta, 6, 6, 2, 2, 2, 2, TANH, True)
    dx0, db0, dc0 = pool_k.subsample_backward(da, a, sums, beta, 6, 6, 2, 2, 2, 2, TANH, False)
    assert dx0.shape == (0, 0, 0, 0) and dx1.shape == x.shape
    np.testing.assert_array_equal(db0, db1)
    np.testing.assert_array_equal(dc0, dc1)


# ---------------------------------------------------------------- float32 path


def test_float32_dtype_kept_and_close_to_float64():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 8, 7))
    x32 = x.astype(np.float32)
    o64, a64 = pool_k.maxpool2d_forward(x, 3, 2, 2, 2)
    o32, a32 = pool_k.maxpool2d_forward(x32, 3, 2, 2, 2)
    assert o32.dtype == np.float32
    np.testing.assert_array_equal(a32, a64)
    np.testing.assert_allclose(o32, o64, rtol=1e-6)
    d32 = pool_k.maxpool2d_backward(o32, a32, 8, 7)
    assert d32.dtype == np.float32
    m32 = pool_k.meanpool2d_forward(x32, 2, 2, 2, 2)
    assert m32.dtype == np.float32
    np.testing.assert_allclose(m32, pool_k.meanpool2d_forward(x, 2, 2, 2, 2), rtol=1e-5, atol=1e-6)
    assert pool_k.meanpool2d_backward(m32, 8, 7, 2, 2, 2, 2).dtype == np.float32
    for p in (1.0, 2.0, 3.0):
        l32 = pool_k.lppool2d_forward(x32, p, 2, 2, 2, 2)
        assert l32.dtype == np.float32
        np.testing.assert_allclose(l32, pool_k.lppool2d_forward(x, p, 2, 2, 2, 2), rtol=1e-5)
        assert pool_k.lppool2d_backward(l32, x32, l32, p, 2, 2, 2, 2).dtype == np.float32
    beta = np.full(3, 0.25, np.float32)
    bias = np.zeros(3, np.float32)
    s32, sums32 = pool_k.subsample_forward(x32, beta, bias, 2, 2, 2, 2, SCALED_TANH)
    assert s32.dtype == np.float32 and sums32.dtype == np.float32
    dx, dbeta, dbias = pool_k.subsample_backward(s32, s32, sums32, beta, 8, 7, 2, 2, 2, 2, SCALED_TANH, True)
    assert dx.dtype == dbeta.dtype == dbias.dtype == np.float32


# ---------------------------------------------------------------- vs reference (hypothesis)


pool_shapes = dict(
    B=st.integers(1, 2), C=st.integers(1, 3), H=st.integers(1, 9), W=st.integers(1, 9),
    ph=st.integers(1, 4), pw=st.integers(1, 4), sh=st.integers(1, 4), sw=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)


@settings(max_examples=25, deadline=None)
@given(**pool_shapes)
def test_pools_match_reference_hypothesis(B, C, H, W, ph, pw, sh, sw, seed):
    if ph > H or pw > W:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, C, H, W))
    out, arg = pool_k.maxpool2d_forward(x, ph, pw, sh, sw)
    np.testing.assert_array_equal(out, ref_pool(x, ph, pw, sh, sw, lambda v: v.max(axis=(2, 3))))
    # argmax points at a pixel holding the maximum
    np.testing.assert_array_equal(np.take_along_axis(x.reshape(B, C, -1), arg.reshape(B, C, -1), 2).reshape(out.shape), out)
    np.testing.assert_allclose(pool_k.meanpool2d_forward(x, ph, pw, sh, sw),
                               ref_pool(x, ph, pw, sh, sw, lambda v: v.mean(axis=(2, 3))), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pool_k.lppool2d_forward(x, 2.0, ph, pw, sh, sw),
                               ref_pool(x, ph, pw, sh, sw, lambda v: np.sqrt((v * v).sum(axis=(2, 3)))),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pool_k.lppool2d_forward(x, 2.5, ph, pw, sh, sw),
                               ref_pool(x, ph, pw, sh, sw, lambda v: (np.abs(v) ** 2.5).sum(axis=(2, 3)) ** 0.4),
                               rtol=1e-12, atol=1e-12)
    beta, bias = rng.standard_normal(C), rng.standard_normal(C)
    a, sums = pool_k.subsample_forward(x, beta, bias, ph, pw, sh, sw, TANH)
    ref_sums = ref_pool(x, ph, pw, sh, sw, lambda v: v.sum(axis=(2, 3)))
    np.testing.assert_allclose(sums, ref_sums, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a, np.tanh(beta[:, None, None] * ref_sums + bias[:, None, None]), rtol=1e-12, atol=1e-12)
    # mean backward = adjoint of mean forward: <dx, x> == <d, mean(x)>
    d = rng.standard_normal(out.shape)
    dx = pool_k.meanpool2d_backward(d, H, W, ph, pw, sh, sw)
    assert np.sum(dx * x) == pytest.approx(np.sum(d * pool_k.meanpool2d_forward(x, ph, pw, sh, sw)), rel=1e-10, abs=1e-10)


# ---------------------------------------------------------------- finite differences (SPEC §6)

POOL_CASES = [
    # (H, W, ph, pw, sh, sw)
    (6, 6, 2, 2, 2, 2),     # classic
    (7, 7, 3, 3, 2, 2),     # overlapping
    (7, 8, 3, 2, 1, 3),     # non-square window and stride, floor drops inputs
    (5, 5, 2, 2, 2, 2),     # width 5 / size 2 / stride 2
    (8, 7, 2, 3, 3, 2),     # stride > window: some inputs in no window
]


def _grad_loss(fwd, x, seed):
    G = np.random.default_rng(seed).standard_normal(fwd().shape)
    return G, lambda: float(np.sum(G * fwd()))


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_finite_differences_max(case):
    H, W, ph, pw, sh, sw = case
    x = np.random.default_rng(40).standard_normal((2, 2, H, W))
    G, loss = _grad_loss(lambda: pool_k.maxpool2d_forward(x, ph, pw, sh, sw)[0], x, 1)
    _, arg = pool_k.maxpool2d_forward(x, ph, pw, sh, sw)
    assert_grad(loss, x, pool_k.maxpool2d_backward(G, arg, H, W), "dx max")


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_finite_differences_mean(case):
    H, W, ph, pw, sh, sw = case
    x = np.random.default_rng(41).standard_normal((2, 2, H, W))
    G, loss = _grad_loss(lambda: pool_k.meanpool2d_forward(x, ph, pw, sh, sw), x, 2)
    assert_grad(loss, x, pool_k.meanpool2d_backward(G, H, W, ph, pw, sh, sw), "dx mean")


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 3.0])
@pytest.mark.parametrize("case", POOL_CASES[:3], ids=str)
def test_finite_differences_lp(case, p):
    H, W, ph, pw, sh, sw = case
    x = np.random.default_rng(42).standard_normal((2, 2, H, W))
    G, loss = _grad_loss(lambda: pool_k.lppool2d_forward(x, p, ph, pw, sh, sw), x, 3)
    out = pool_k.lppool2d_forward(x, p, ph, pw, sh, sw)
    assert_grad(loss, x, pool_k.lppool2d_backward(G, x, out, p, ph, pw, sh, sw), f"dx lp{p}")


@pytest.mark.parametrize("act", ALL_ACTS)
@pytest.mark.parametrize("case", [POOL_CASES[0], POOL_CASES[1], POOL_CASES[2]], ids=str)
def test_finite_differences_subsample(case, act):
    H, W, ph, pw, sh, sw = case
    rng = np.random.default_rng(43 + act)
    x = rng.standard_normal((2, 3, H, W))
    beta = rng.standard_normal(3) * 0.5
    bias = rng.standard_normal(3) * 0.5
    G, loss = _grad_loss(lambda: pool_k.subsample_forward(x, beta, bias, ph, pw, sh, sw, act)[0], x, 4)
    a, sums = pool_k.subsample_forward(x, beta, bias, ph, pw, sh, sw, act)
    dx, dbeta, dbias = pool_k.subsample_backward(G, a, sums, beta, H, W, ph, pw, sh, sw, act, True)
    assert_grad(loss, x, dx, "dx subsample")
    assert_grad(loss, beta, dbeta, "dbeta")
    assert_grad(loss, bias, dbias, "dbias subsample")
