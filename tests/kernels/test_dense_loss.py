"""Activations, dense and RBF layers, softmax cross-entropy (SPEC §5) with finite
differences for every gradient (SPEC §6)."""

import subprocess
import sys

import numpy as np
import pytest

from cnn_cli.kernels import dense as dense_k
from cnn_cli.kernels import loss as loss_k
from cnn_cli.kernels.activations import (
    ACTIVATIONS,
    IDENTITY,
    RELU,
    SCALED_TANH,
    SIGMOID,
    TANH,
    activate,
    activation_backward,
    activation_derivative_from_output,
    activation_forward,
)
from kernel_helpers import ALL_ACTS, NP_ACT, assert_grad

# ---------------------------------------------------------------- activations


def test_activation_codes():
    assert (IDENTITY, RELU, SIGMOID, TANH, SCALED_TANH) == (0, 1, 2, 3, 4)
    assert ACTIVATIONS == {"identity": 0, "relu": 1, "sigmoid": 2, "tanh": 3, "scaled_tanh": 4}


def test_importing_activations_compiles_nothing():
    code = (
        "import cnn_cli.kernels.activations as a, cnn_cli.kernels.conv as g;"
        "assert a.ACTIVATIONS['relu'] == 1;"
        "assert not a._activation_forward.signatures and not g._conv_forward.signatures;"
        "assert not a.delta_span.signatures and not g._forward_chunk.signatures"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_scaled_tanh_is_lecun():
    z = np.array([-1.0, 0.0, 1.0, 3.0])
    np.testing.assert_allclose(activation_forward(z, SCALED_TANH), 1.7159 * np.tanh(2 * z / 3), rtol=1e-15)
    # LeCun's choice makes f(±1) ≈ ±1
    assert activation_forward(np.array([1.0]), SCALED_TANH)[0] == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("act", ALL_ACTS)
def test_activation_forward_backward_any_shape(act):
    rng = np.random.default_rng(act)
    z = rng.standard_normal((3, 4, 5)) * 2
    a = activation_forward(z, act)
    assert a.shape == z.shape and a.dtype == z.dtype
    np.testing.assert_allclose(a, NP_ACT[act](z), rtol=1e-14, atol=1e-15)
    da = rng.standard_normal(z.shape)
    dz = activation_backward(da, a, act)
    assert dz.shape == z.shape
    G = da
    assert_grad(lambda: float(np.sum(G * activation_forward(z, act))), z, dz, f"activation {act}")
    a32 = activation_forward(z.astype(np.float32), act)
    assert a32.dtype == np.float32
    np.testing.assert_allclose(a32, a, rtol=1e-6, atol=1e-6)
    assert activation_backward(da.astype(np.float32), a32, act).dtype == np.float32


@pytest.mark.parametrize("act", ALL_ACTS)
def test_scalar_activation_and_derivative_from_output(act):
    for z in (-2.3, -0.4, 0.7, 1.9):
        a = activate(z, act)
        assert a == pytest.approx(float(NP_ACT[act](np.float64(z))), rel=1e-14, abs=1e-15)
        eps = 1e-6
        numeric = (NP_ACT[act](np.float64(z + eps)) - NP_ACT[act](np.float64(z - eps))) / (2 * eps)
        assert activation_derivative_from_output(a, act) == pytest.approx(numeric, rel=1e-8, abs=1e-10)


def test_scalar_activation_stays_float32():
    """float32 in, float32 out: training math must not be promoted to float64."""
    import numba

    @numba.njit
    def both(z, code):
        a = activate(z, code)
        return a, activation_derivative_from_output(a, code)

    both(np.float32(0.5), SCALED_TANH)
    (sig,) = both.nopython_signatures
    assert str(sig.return_type) == "UniTuple(float32 x 2)"


def test_relu_keeps_nan_and_sigmoid_saturates_without_nan():
    out = activation_forward(np.array([np.nan, -1.0, 2.0]), RELU)
    assert np.isnan(out[0]) and out[1] == 0 and out[2] == 2
    s = activation_forward(np.array([-1e4, 1e4]), SIGMOID)
    np.testing.assert_array_equal(s, [0.0, 1.0])


def test_unknown_activation_code_raises():
    with pytest.raises(ValueError):
        activation_forward(np.zeros(3), 7)


def test_large_array_uses_several_chunks():
    z = np.linspace(-5, 5, 10007)  # more than two 4096-element chunks
    np.testing.assert_allclose(activation_forward(z, TANH), np.tanh(z), rtol=1e-15)


# ---------------------------------------------------------------- dense


@pytest.mark.parametrize("act", ALL_ACTS)
def test_dense_forward_and_finite_differences(act):
    rng = np.random.default_rng(50 + act)
    B, D, U = 3, 7, 70  # U > one 64-unit block
    x = rng.standard_normal((B, D))
    w = rng.standard_normal((D, U)) * 0.5
    bias = rng.standard_normal(U) * 0.5
    a = dense_k.dense_forward(x, w, bias, act)
    np.testing.assert_allclose(a, NP_ACT[act](x @ w + bias), rtol=1e-13, atol=1e-13)
    G = rng.standard_normal(a.shape)
    dx, dw, db = dense_k.dense_backward(G, a, x, w, act, True)

    def loss():
        return float(np.sum(G * dense_k.dense_forward(x, w, bias, act)))

    assert_grad(loss, x, dx, "dx dense")
    assert_grad(loss, w, dw, "dw dense")
    assert_grad(loss, bias, db, "dbias dense")


@pytest.mark.parametrize("D", [130, 1100])  # 1,100 inputs: the backward pass cut by input columns (4 blocks)
def test_dense_spec_formulas_and_need_dx(D):
    # SPEC §5 with identity: ∂L/∂W = aᵀδ (stored (in, out)), ∂L/∂b = Σ δ, δ_prev = δ Wᵀ
    rng = np.random.default_rng(51)
    x = rng.standard_normal((5, D))
    w = rng.standard_normal((D, 9))
    bias = np.zeros(9)
    a = dense_k.dense_forward(x, w, bias, IDENTITY)
    d = rng.standard_normal(a.shape)
    dx, dw, db = dense_k.dense_backward(d, a, x, w, IDENTITY, True)
    np.testing.assert_allclose(dw, x.T @ d, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, d.sum(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, d @ w.T, rtol=1e-12, atol=1e-12)
    dx0, dw0, db0 = dense_k.dense_backward(d, a, x, w, IDENTITY, False)
    assert dx0.shape == (0, 0)
    np.testing.assert_array_equal(dw0, dw)
    np.testing.assert_array_equal(db0, db)


def test_dense_backward_writes_dw_where_it_is_told():
    """The packed gradient buffer's view is filled by the kernel itself (no copy),
    with the same numbers as a freshly allocated dw."""
    rng = np.random.default_rng(53)
    x, w = rng.standard_normal((6, 1100)), rng.standard_normal((1100, 5))
    a, d = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    _, dw, _ = dense_k.dense_backward(d, a, x, w, IDENTITY, True)
    target = np.full_like(w, np.nan)
    _, dw_in_place, _ = dense_k.dense_backward(d, a, x, w, IDENTITY, True, dw_out=target)
    assert np.shares_memory(dw_in_place, target)
    np.testing.assert_array_equal(target, dw)


def test_dense_float32():
    rng = np.random.default_rng(52)
    x = rng.standard_normal((4, 20))
    w = rng.standard_normal((20, 6))
    b = rng.standard_normal(6)
    a64 = dense_k.dense_forward(x, w, b, TANH)
    a32 = dense_k.dense_forward(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), TANH)
    assert a32.dtype == np.float32
    np.testing.assert_allclose(a32, a64, rtol=1e-5, atol=1e-6)
    grads = dense_k.dense_backward(a32, a32, x.astype(np.float32), w.astype(np.float32), TANH, True)
    assert all(g.dtype == np.float32 for g in grads)


def test_dense_rejects_shape_mismatch():
    with pytest.raises(ValueError):
        dense_k.dense_forward(np.zeros((2, 3)), np.zeros((4, 5)), np.zeros(5), IDENTITY)


# ---------------------------------------------------------------- RBF


def test_rbf_forward_and_finite_differences():
    rng = np.random.default_rng(60)
    x = rng.standard_normal((3, 84))
    centres = np.sign(rng.standard_normal((10, 84)))  # ±1 bitmaps like LeNet-5's
    y = dense_k.rbf_forward(x, centres)
    np.testing.assert_allclose(y, ((x[:, None, :] - centres[None]) ** 2).sum(-1), rtol=1e-13)
    # a point on a centre has distance 0 to it
    assert dense_k.rbf_forward(centres[3:4].copy(), centres)[0, 3] == 0.0
    G = rng.standard_normal(y.shape)
    dx = dense_k.rbf_backward(G, x, centres)
    np.testing.assert_allclose(dx, np.einsum("bu,bud->bd", G, 2 * (x[:, None, :] - centres[None])), rtol=1e-12)
    assert_grad(lambda: float(np.sum(G * dense_k.rbf_forward(x, centres))), x, dx, "dx rbf")
    y32 = dense_k.rbf_forward(x.astype(np.float32), centres.astype(np.float32))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y, rtol=1e-5)


# ---------------------------------------------------------------- softmax cross-entropy


def _ref_ce(z, y):
    z = z - z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return -logp[np.arange(len(y)), y].mean()


def test_cross_entropy_value_and_gradient_formula():
    rng = np.random.default_rng(70)
    z = rng.standard_normal((6, 10)) * 3
    y = rng.integers(0, 10, 6).astype(np.int64)
    loss, d = loss_k.softmax_cross_entropy(z, y)
    assert isinstance(loss, float)
    assert loss == pytest.approx(_ref_ce(z, y), rel=1e-13)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    onehot = np.eye(10)[y]
    np.testing.assert_allclose(d, (p - onehot) / 6, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(d.sum(1), 0, atol=1e-15)


def test_cross_entropy_finite_differences():
    rng = np.random.default_rng(71)
    z = rng.standard_normal((4, 5))
    y = np.array([0, 4, 2, 2], dtype=np.int64)
    _, d = loss_k.softmax_cross_entropy(z, y)
    assert_grad(lambda: loss_k.softmax_cross_entropy(z, y)[0], z, d, "dlogits")


def test_cross_entropy_stable_for_huge_logits():
    z = np.array([[1e4, -1e4, 0.0], [1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]])
    loss, d = loss_k.softmax_cross_entropy(z, np.array([0, 1, 2], dtype=np.int64))
    assert np.isfinite(loss) and np.all(np.isfinite(d))
    # row 0: loss 0; row 1: 2e4; row 2: log 3
    assert loss == pytest.approx((0.0 + 2e4 + np.log(3)) / 3, rel=1e-12)
    z32 = z.astype(np.float32)
    loss32, d32 = loss_k.softmax_cross_entropy(z32, np.array([0, 1, 2], dtype=np.int64))
    assert d32.dtype == np.float32 and np.isfinite(loss32)
    assert loss32 == pytest.approx(loss, rel=1e-6)
    p = loss_k.softmax(z)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(p[2], 1 / 3, rtol=1e-15)


def test_softmax_matches_reference_and_keeps_dtype():
    rng = np.random.default_rng(72)
    z = rng.standard_normal((5, 10))
    p = loss_k.softmax(z)
    np.testing.assert_allclose(p, np.exp(z) / np.exp(z).sum(1, keepdims=True), rtol=1e-14)
    assert loss_k.softmax(z.astype(np.float32)).dtype == np.float32


def test_cross_entropy_rejects_bad_labels():
    with pytest.raises(ValueError):
        loss_k.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3], dtype=np.int64))
    with pytest.raises(ValueError):
        loss_k.softmax_cross_entropy(np.zeros((2, 3)), np.array([-1, 0], dtype=np.int64))
    with pytest.raises(ValueError):
        loss_k.softmax_cross_entropy(np.zeros((2, 3)), np.array([0], dtype=np.int64))


def test_rbf_logits_trained_with_cross_entropy():
    """SPEC §5: softmax cross-entropy over −y is a valid RBF criterion; the chain rule
    through rbf_backward matches finite differences of the composed loss."""
    rng = np.random.default_rng(73)
    x = rng.standard_normal((2, 12)) * 0.3
    centres = np.sign(rng.standard_normal((4, 12)))
    labels = np.array([1, 3], dtype=np.int64)

    def loss():
        return loss_k.softmax_cross_entropy(-dense_k.rbf_forward(x, centres), labels)[0]

    _, dlogits = loss_k.softmax_cross_entropy(-dense_k.rbf_forward(x, centres), labels)
    assert_grad(loss, x, dense_k.rbf_backward(-dlogits, x, centres), "dx rbf+ce")
