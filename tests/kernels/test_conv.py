"""Convolution kernels against SPEC §2–3 (test vectors, sparse-matrix view, worked
backward example, floor rule, 'same' padding, connection tables) and §6
(finite differences for every gradient)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import conv_wrappers as conv_k
from cnn_cli.kernels.activations import IDENTITY, RELU, SCALED_TANH, SIGMOID, TANH
from kernel_helpers import (
    ALL_ACTS,
    LENET_C3_TABLE,
    NP_ACT,
    assert_grad,
    conv_sizes,
    dense_weights_from_csr,
    ref_conv2d,
    run_conv,
)

SPEC_IMAGE = np.array(
    [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]], dtype=np.float64
)
SPEC_KERNEL = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=np.float64)
FULL_1x1 = conv_k.full_connections(1, 1)


def conv1(x2d, k2d, stride, pad=(0, 0, 0, 0), act=IDENTITY):
    """Single-map convolution of a 2-D image with a 2-D kernel."""
    return run_conv(x2d[None, None], k2d[None], np.zeros(1), FULL_1x1, k2d.shape, stride, pad, act)[0, 0]


def backward1(x2d, k2d, delta, stride, pad=(0, 0, 0, 0)):
    """(dx, dw, dbias) of a single-map identity-activation convolution for a given δ."""
    d = delta[None, None]
    dx, dw, db = conv_k.conv2d_backward(d, d, x2d[None, None], k2d[None], FULL_1x1,
                                        stride[0], stride[1], pad[0], pad[2], IDENTITY, True)
    return dx[0, 0], dw[0], db[0]


# ---------------------------------------------------------------- SPEC §2 forward


def test_spec_vector_stride_1():
    out = conv1(SPEC_IMAGE, SPEC_KERNEL, (1, 1))
    np.testing.assert_array_equal(out, [[4, 3, 4], [2, 4, 3], [2, 3, 4]])


def test_spec_vector_stride_2():
    out = conv1(SPEC_IMAGE, SPEC_KERNEL, (2, 2))
    np.testing.assert_array_equal(out, [[4, 4], [2, 4]])


def test_spec_vector_float32_and_bias_and_activation():
    x = SPEC_IMAGE.astype(np.float32)
    out = run_conv(x[None, None], SPEC_KERNEL.astype(np.float32)[None], np.array([-3.0], np.float32),
                   FULL_1x1, (3, 3), (1, 1), (0, 0, 0, 0), RELU)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[0, 0], [[1, 0, 1], [0, 1, 0], [0, 0, 1]])


def _conv_matrix(k2d, H, W):
    """SPEC §2: the convolution as a sparse (oh·ow) × (H·W) matrix, one row per window."""
    Fh, Fw = k2d.shape
    oh, ow = H - Fh + 1, W - Fw + 1
    M = np.zeros((oh * ow, H * W))
    for i in range(oh):
        for j in range(ow):
            for m in range(Fh):
                for n in range(Fw):
                    M[i * ow + j, (i + m) * W + (j + n)] = k2d[m, n]
    return M


def test_conv_is_a_sparse_weight_shared_matrix():
    rng = np.random.default_rng(1)
    k = rng.standard_normal((2, 2))
    x = rng.standard_normal((4, 4))
    M = _conv_matrix(k, 4, 4)
    assert M.shape == (9, 16)
    # Each row holds exactly the four weights, zeros elsewhere.
    for row in M:
        np.testing.assert_array_equal(np.sort(row[row != 0]), np.sort(k.ravel()))
    out = conv1(x, k, (1, 1))
    np.testing.assert_allclose(out.ravel(), M @ x.ravel(), rtol=1e-13, atol=1e-13)
    # Backward through a linear map is its transpose: dx = Mᵀ δ.
    delta = rng.standard_normal((3, 3))
    dx, dw, db = backward1(x, k, delta, (1, 1))
    np.testing.assert_allclose(dx.ravel(), M.T @ delta.ravel(), rtol=1e-13, atol=1e-13)
    # And dw[m,n] = Σ δ ⊙ (x shifted by (m,n)).
    for m in range(2):
        for n in range(2):
            assert dw[m, n] == pytest.approx(np.sum(delta * x[m:m + 3, n:n + 3]), rel=1e-13)
    assert db == pytest.approx(delta.sum(), rel=1e-13)


# ---------------------------------------------------------------- SPEC §3 backward


def test_spec_worked_backward_3x3_input_2x2_kernel():
    # Distinct primes make every product identifiable: a wrong pairing cannot
    # coincide with the right sum.
    w = np.array([[2.0, 3.0], [5.0, 7.0]])            # w11 w12 / w21 w22
    d = np.array([[11.0, 13.0], [17.0, 19.0]])        # δ11 δ12 / δ21 δ22
    x = np.arange(9.0).reshape(3, 3)
    dx, _, _ = backward1(x, w, d, (1, 1))
    (w11, w12), (w21, w22) = w
    (d11, d12), (d21, d22) = d
    # 1-based in the SPEC: ∂L/∂x[1,1] = δ11·w11, ∂L/∂x[2,2] = δ11·w22 + δ12·w21 + δ21·w12 + δ22·w11.
    assert dx[0, 0] == d11 * w11
    assert dx[1, 1] == d11 * w22 + d12 * w21 + d21 * w12 + d22 * w11
    assert dx[0, 1] == d11 * w12 + d12 * w11
    assert dx[0, 2] == d12 * w12
    assert dx[1, 0] == d11 * w21 + d21 * w11
    assert dx[2, 2] == d22 * w22
    # The whole thing is the full correlation of δ with rot180(w).
    full = np.zeros((3, 3))
    dp = np.pad(d, 1)
    wr = w[::-1, ::-1]
    for i in range(3):
        for j in range(3):
            full[i, j] = np.sum(dp[i:i + 2, j:j + 2] * wr)
    np.testing.assert_array_equal(dx, full)


@pytest.mark.parametrize("stride, pad", [((2, 2), (1, 1, 1, 1)), ((3, 2), (2, 0, 0, 1)), ((1, 1), (0, 0, 0, 0))])
def test_input_gradient_is_dilated_full_correlation_with_rot180(stride, pad):
    """SPEC §3: ∂L/∂x = full-correlation(dilate(δ, S), rot180(w)), cropped by the padding."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 7))
    k = rng.standard_normal((3, 2))
    oh, ow = conv_sizes((1, 1, 8, 7), k.shape, stride, pad)
    d = rng.standard_normal((oh, ow))
    dx, _, _ = backward1(x, k, d, stride, pad)
    sh, sw = stride
    dil = np.zeros(((oh - 1) * sh + 1, (ow - 1) * sw + 1))
    dil[::sh, ::sw] = d
    Fh, Fw = k.shape
    dp = np.pad(dil, ((Fh - 1, Fh - 1), (Fw - 1, Fw - 1)))
    full = np.zeros((dil.shape[0] + Fh - 1, dil.shape[1] + Fw - 1))
    wr = k[::-1, ::-1]
    for i in range(full.shape[0]):
        for j in range(full.shape[1]):
            full[i, j] = np.sum(dp[i:i + Fh, j:j + Fw] * wr)
    # `full` covers padded rows/cols 0 .. last window end; crop padding, zero-extend
    # the rows/cols that no window reached.
    t, _, l, _ = pad
    padded = np.zeros((8 + pad[0] + pad[1], 7 + pad[2] + pad[3]))
    padded[:full.shape[0], :full.shape[1]] = full
    np.testing.assert_allclose(dx, padded[t:t + 8, l:l + 7], rtol=1e-12, atol=1e-12)


def test_multi_channel_input_gradient_sums_over_filters():
    """SPEC §3: the delta of input channel c is the sum over all K filters of their
    channel-c contributions (each a single-map backward)."""
    rng = np.random.default_rng(6)
    C, K = 2, 3
    x = rng.standard_normal((1, C, 6, 5))
    w = rng.standard_normal((K, C, 3, 2))
    conn = conv_k.full_connections(C, K)
    a = run_conv(x, w.reshape(K * C, 3, 2), np.zeros(K), conn, (3, 2), (2, 1), (1, 0, 0, 1), IDENTITY)
    d = rng.standard_normal(a.shape)
    dx, _, _ = conv_k.conv2d_backward(d, a, x, w.reshape(K * C, 3, 2), conn, 2, 1, 1, 0, IDENTITY, True)
    for c in range(C):
        total = sum(backward1(x[0, c], w[k, c], d[0, k], (2, 1), (1, 0, 0, 1))[0] for k in range(K))
        np.testing.assert_allclose(dx[0, c], total, rtol=1e-13, atol=1e-13)


def test_floor_rule_width5_kernel2_stride2_fifth_column_gets_zero():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 5))
    k = rng.standard_normal((2, 2))
    out = conv1(x, k, (2, 2))
    assert out.shape == (2, 2)
    d = rng.standard_normal((2, 2)) + 3.0  # all non-zero
    dx, _, _ = backward1(x, k, d, (2, 2))
    assert np.all(dx[:, 4] == 0.0) and np.all(dx[4, :] == 0.0)
    assert np.all(dx[:4, :4] != 0.0)
    # And the fifth column cannot influence the output.
    x2 = x.copy()
    x2[:, 4] += 100.0
    np.testing.assert_array_equal(conv1(x2, k, (2, 2)), out)


# ---------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    "n, f, s, expected",
    [
        (28, 5, 1, (2, 2)),
        (32, 5, 1, (2, 2)),
        (5, 2, 2, (0, 1)),   # odd total: extra pixel after
        (7, 3, 2, (1, 1)),
        (6, 3, 2, (0, 1)),
        (4, 4, 1, (1, 2)),
        (10, 1, 3, (0, 0)),
        (5, 5, 5, (0, 0)),
        (1, 3, 1, (1, 1)),
        (13, 4, 3, (1, 2)),
        (2, 7, 1, (3, 3)),
        (9, 2, 4, (0, 1)),
    ],
)
def test_same_padding_tensorflow_split(n, f, s, expected):
    assert conv_k.same_padding(n, f, s) == expected
    before, after = expected
    assert conv_k.conv_output_size(n, f, s, before, after) == math.ceil(n / s)


def test_same_padding_gives_ceil_for_all_small_cases():
    for n in range(1, 20):
        for f in range(1, 8):
            for s in range(1, 6):
                before, after = conv_k.same_padding(n, f, s)
                assert 0 <= after - before <= 1
                assert conv_k.conv_output_size(n, f, s, before, after) == -(-n // s)


@pytest.mark.parametrize(
    "n, f, s, pb, pa, expected",
    [(32, 5, 1, 0, 0, 28), (28, 5, 1, 2, 2, 28), (5, 3, 1, 0, 0, 3), (5, 3, 2, 0, 0, 2), (5, 2, 2, 0, 0, 2),
     (7, 3, 3, 0, 0, 2), (7, 3, 3, 1, 0, 2), (7, 3, 3, 1, 1, 3), (3, 3, 1, 0, 0, 1)],
)
def test_conv_output_size_floor(n, f, s, pb, pa, expected):
    assert conv_k.conv_output_size(n, f, s, pb, pa) == expected


@pytest.mark.parametrize("args", [(3, 5, 1, 0, 0), (5, 3, 0, 0, 0), (5, 0, 1, 0, 0), (5, 3, 1, -1, 0)])
def test_conv_output_size_rejects_impossible(args):
    with pytest.raises(ValueError):
        conv_k.conv_output_size(*args)


# ---------------------------------------------------------------- connectivity


def test_full_connections_layout():
    conn_ptr, conn_c, conn_k_ = conv_k.full_connections(3, 4)
    for arr in (conn_ptr, conn_c, conn_k_):
        assert arr.dtype == np.int64
    np.testing.assert_array_equal(conn_ptr, [0, 3, 6, 9, 12])
    e = np.arange(12)
    np.testing.assert_array_equal(conn_c, e % 3)
    np.testing.assert_array_equal(conn_k_, e // 3)


def test_table_connections_lenet_c3():
    conn = conv_k.table_connections(LENET_C3_TABLE)
    conn_ptr, conn_c, conn_k_ = conn
    nnz = 6 * 3 + 9 * 4 + 1 * 6
    assert nnz == 60 and conn_c.size == nnz and conn_k_.size == nnz
    assert conn_ptr.size == 17
    # SPEC §7: (6·3 + 9·4 + 1·6)·25 + 16 = 1516 parameters
    assert nnz * 25 + 16 == 1516
    for k in range(16):
        es = np.arange(conn_ptr[k], conn_ptr[k + 1])
        assert np.all(conn_k_[es] == k)
        np.testing.assert_array_equal(conn_c[es], np.flatnonzero(LENET_C3_TABLE[:, k]))
    # an all-True table is exactly full connectivity
    full = conv_k.full_connections(6, 16)
    for a, b in zip(conv_k.table_connections(np.ones((6, 16), bool)), full):
        np.testing.assert_array_equal(a, b)


def test_table_weights_fill_the_dense_matrix_and_come_back_out():
    """The kernels take a dense (K, C·Fh·Fw) matrix: connected weights in their
    (k, c) block, exact zeros elsewhere; a gradient comes back as the connected
    entries only, in CSR order."""
    conn = conv_k.table_connections(LENET_C3_TABLE)
    w = np.random.default_rng(3).standard_normal((60, 5, 5))
    index = conv_k.dense_index(conn[1], conn[2], 6, 5, 5)
    dense = conv_k.dense_weights(w, index, 16, 6)
    assert dense.shape == (16, 6 * 25)
    np.testing.assert_array_equal(dense.reshape(16, 6, 5, 5), dense_weights_from_csr(w, conn, 6, 16))
    np.testing.assert_array_equal(conv_k.connected_weights(dense, index, w.shape), w)
    assert np.count_nonzero(dense) == np.count_nonzero(w)


def test_a_pair_connected_twice_is_rejected():
    """Two weights for one (filter, input map) pair would share one dense entry."""
    x, w = np.zeros((1, 2, 5, 5)), np.zeros((2, 3, 3))
    with pytest.raises(ValueError, match="connected twice"):
        conv_k.conv2d_forward(x, w, np.zeros(1), np.array([0, 2]), np.array([1, 1]), 1, 1, 0, 0, 3, 3, 0)


def test_table_connections_rejects_bad_tables():
    with pytest.raises(ValueError):
        conv_k.table_connections(np.ones(5, bool))
    with pytest.raises(ValueError):
        conv_k.table_connections(np.array([[0, 2], [1, 1]]))
    # 0/1 integers are accepted
    assert conv_k.table_connections(np.array([[0, 1], [1, 1]]))[1].size == 3


def test_connection_table_conv_equals_full_conv_with_absent_weights_zeroed():
    rng = np.random.default_rng(4)
    conn = conv_k.table_connections(LENET_C3_TABLE)
    full = conv_k.full_connections(6, 16)
    x = rng.standard_normal((2, 6, 14, 14))
    w = rng.standard_normal((60, 5, 5))
    bias = rng.standard_normal(16)
    w_full = dense_weights_from_csr(w, conn, 6, 16)
    w_full_csr = w_full.reshape(96, 5, 5)
    args = ((5, 5), (1, 1), (0, 0, 0, 0), SCALED_TANH)
    a_tab = run_conv(x, w, bias, conn, *args)
    a_full = run_conv(x, w_full_csr, bias, full, *args)
    assert a_tab.shape == (2, 16, 10, 10)
    np.testing.assert_allclose(a_tab, a_full, rtol=1e-12, atol=1e-12)
    da = rng.standard_normal(a_tab.shape)
    dx_t, dw_t, db_t = conv_k.conv2d_backward(da, a_tab, x, w, conn, 1, 1, 0, 0, SCALED_TANH, True)
    dx_f, dw_f, db_f = conv_k.conv2d_backward(da, a_full, x, w_full_csr, full, 1, 1, 0, 0, SCALED_TANH, True)
    assert dw_t.shape == (60, 5, 5) and dw_t.size == 60 * 25  # absent weights have no gradient entry
    np.testing.assert_allclose(dx_t, dx_f, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(db_t, db_f, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(dw_t, dw_f.reshape(16, 6, 5, 5)[conn[2], conn[1]], rtol=1e-11, atol=1e-12)


def test_need_dx_false_skips_input_gradient_only():
    rng = np.random.default_rng(5)
    conn = conv_k.full_connections(2, 3)
    x = rng.standard_normal((2, 2, 6, 6))
    w = rng.standard_normal((6, 3, 3))
    a = run_conv(x, w, np.zeros(3), conn, (3, 3), (1, 1), (1, 1, 1, 1), TANH)
    da = rng.standard_normal(a.shape)
    dx1, dw1, db1 = conv_k.conv2d_backward(da, a, x, w, conn, 1, 1, 1, 1, TANH, True)
    dx0, dw0, db0 = conv_k.conv2d_backward(da, a, x, w, conn, 1, 1, 1, 1, TANH, False)
    assert dx0.shape == (0, 0, 0, 0) and dx0.dtype == x.dtype
    assert dx1.shape == x.shape
    np.testing.assert_array_equal(dw0, dw1)
    np.testing.assert_array_equal(db0, db1)


def test_bad_connectivity_is_rejected_not_read_out_of_bounds():
    x = np.zeros((1, 2, 5, 5))
    w = np.zeros((2, 3, 3))
    with pytest.raises(ValueError):  # conn_c reads map 5 of 2
        conv_k.conv2d_forward(x, w, np.zeros(1), np.array([0, 2]), np.array([0, 5]), 1, 1, 0, 0, 3, 3, 0)
    with pytest.raises(ValueError):  # 3 connections declared, 2 weights
        conv_k.conv2d_forward(x, w, np.zeros(1), np.array([0, 3]), np.array([0, 1, 1]), 1, 1, 0, 0, 3, 3, 0)
    with pytest.raises(ValueError):  # unknown activation code
        conv_k.conv2d_forward(x, w, np.zeros(1), np.array([0, 2]), np.array([0, 1]), 1, 1, 0, 0, 3, 3, 9)


# ---------------------------------------------------------------- forward vs reference


@pytest.mark.parametrize("act", ALL_ACTS)
def test_forward_matches_reference_every_activation(act):
    rng = np.random.default_rng(10 + act)
    conn = conv_k.full_connections(3, 4)
    x = rng.standard_normal((2, 3, 9, 8))
    w = rng.standard_normal((4, 3, 3, 2))
    bias = rng.standard_normal(4)
    pad = (1, 2, 0, 1)
    a = run_conv(x, w.reshape(12, 3, 2), bias, conn, (3, 2), (2, 1), pad, act)
    np.testing.assert_allclose(a, NP_ACT[act](ref_conv2d(x, w, bias, (2, 1), pad)), rtol=1e-12, atol=1e-12)
    # float32 training path: same values to float32 precision, dtype kept
    a32 = run_conv(x.astype(np.float32), w.reshape(12, 3, 2).astype(np.float32), bias.astype(np.float32),
                   conn, (3, 2), (2, 1), pad, act)
    assert a32.dtype == np.float32
    np.testing.assert_allclose(a32, a, rtol=1e-4, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(
    B=st.integers(1, 2), C=st.integers(1, 3), K=st.integers(1, 3),
    H=st.integers(1, 9), W=st.integers(1, 9), Fh=st.integers(1, 4), Fw=st.integers(1, 4),
    sh=st.integers(1, 3), sw=st.integers(1, 3),
    pad=st.tuples(*(st.integers(0, 2),) * 4), seed=st.integers(0, 2**32 - 1),
)
def test_forward_matches_reference_hypothesis(B, C, K, H, W, Fh, Fw, sh, sw, pad, seed):
    t, b, l, r = pad
    if H + t + b < Fh or W + l + r < Fw:
        return  # kernel larger than the padded input: no valid output
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, C, H, W))
    w = rng.standard_normal((K, C, Fh, Fw))
    bias = rng.standard_normal(K)
    conn = conv_k.full_connections(C, K)
    a = run_conv(x, w.reshape(K * C, Fh, Fw), bias, conn, (Fh, Fw), (sh, sw), pad, IDENTITY)
    np.testing.assert_allclose(a, ref_conv2d(x, w, bias, (sh, sw), pad), rtol=1e-12, atol=1e-12)
    # weight gradient against the reference too: dw[k,c,m,n] = Σ δ · x_pad window
    da = rng.standard_normal(a.shape)
    _, dw, db = conv_k.conv2d_backward(da, a, x, w.reshape(K * C, Fh, Fw), conn, sh, sw, t, l, IDENTITY, False)
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
    oh, ow = a.shape[2:]
    ref_dw = np.zeros((K, C, Fh, Fw))
    for m in range(Fh):
        for n in range(Fw):
            win = xp[:, :, m:m + (oh - 1) * sh + 1:sh, n:n + (ow - 1) * sw + 1:sw]
            ref_dw[:, :, m, n] = np.einsum("bkij,bcij->kc", da, win)
    np.testing.assert_allclose(dw, ref_dw.reshape(K * C, Fh, Fw), rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(db, da.sum(axis=(0, 2, 3)), rtol=1e-11, atol=1e-11)


# ---------------------------------------------------------------- finite differences (SPEC §6)


def _fd_conv(x, w, bias, conn, kernel, stride, pad, act, seed):
    rng = np.random.default_rng(seed)
    a = run_conv(x, w, bias, conn, kernel, stride, pad, act)
    G = rng.standard_normal(a.shape)  # L = Σ G ⊙ a, so ∂L/∂a = G

    def loss():
        return float(np.sum(G * run_conv(x, w, bias, conn, kernel, stride, pad, act)))

    dx, dw, db = conv_k.conv2d_backward(G, a, x, w, conn, stride[0], stride[1], pad[0], pad[2], act, True)
    assert_grad(loss, x, dx, "dx")
    assert_grad(loss, w, dw, "dw")
    assert_grad(loss, bias, db, "dbias")


CONV_CASES = [
    # (C, K, H, W, kernel, stride, pad (t, b, l, r), act)
    (2, 3, 7, 7, (3, 3), (1, 1), (0, 0, 0, 0), IDENTITY),
    (2, 3, 8, 9, (3, 3), (2, 2), (1, 1, 1, 1), TANH),
    (2, 2, 10, 9, (3, 3), (3, 3), (0, 0, 0, 0), SIGMOID),        # floor rule drops inputs
    (3, 2, 9, 8, (3, 2), (2, 1), (2, 0, 0, 1), SCALED_TANH),     # non-square kernel/stride, asymmetric pad
    (1, 2, 6, 7, (2, 4), (1, 3), (1, 2, 3, 0), RELU),
    (2, 2, 5, 5, (2, 2), (2, 2), (0, 0, 0, 0), TANH),            # width 5 / kernel 2 / stride 2
    (2, 2, 6, 6, (5, 5), (1, 1), (2, 2, 2, 2), SIGMOID),         # 'same' for 5×5
    (2, 3, 4, 5, (4, 5), (1, 1), (0, 0, 0, 0), TANH),            # kernel covers the input: an FC layer
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"C{c[0]}K{c[1]}_{c[2]}x{c[3]}_f{c[4]}_s{c[5]}_p{c[6]}_a{c[7]}")
def test_finite_differences_full_connectivity(case):
    C, K, H, W, kernel, stride, pad, act = case
    rng = np.random.default_rng(hash(case) % 2**32)
    x = rng.standard_normal((2, C, H, W))
    w = rng.standard_normal((K * C,) + kernel) * 0.5
    bias = rng.standard_normal(K) * 0.5
    _fd_conv(x, w, bias, conv_k.full_connections(C, K), kernel, stride, pad, act, seed=1)


@pytest.mark.parametrize("act", ALL_ACTS)
def test_finite_differences_every_activation(act):
    rng = np.random.default_rng(20 + act)
    x = rng.standard_normal((2, 2, 6, 5))
    w = rng.standard_normal((6, 3, 3)) * 0.5
    bias = rng.standard_normal(3) * 0.5
    _fd_conv(x, w, bias, conv_k.full_connections(2, 3), (3, 3), (2, 1), (1, 0, 1, 1), act, seed=act)


def test_finite_differences_connection_table():
    table = np.array([[1, 0, 1, 1], [1, 1, 0, 1], [0, 1, 1, 1]], dtype=bool)  # (C=3, K=4), 9 connections
    conn = conv_k.table_connections(table)
    rng = np.random.default_rng(30)
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((9, 3, 2)) * 0.5
    bias = rng.standard_normal(4) * 0.5
    _fd_conv(x, w, bias, conn, (3, 2), (2, 2), (1, 1, 0, 1), SCALED_TANH, seed=3)
