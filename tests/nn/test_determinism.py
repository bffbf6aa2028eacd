"""Bitwise determinism of every kernel: the same inputs give np.array_equal outputs
and gradients on repeated runs and with 1 vs 2 threads (each parallel item owns
what it writes and sums in a fixed order, so thread scheduling cannot change a
single bit). float32, the training dtype, is where reordering would show."""

import numba
import numpy as np
import pytest

import conv_wrappers as conv_k
from cnn_cli.kernels import dense as dense_k
from cnn_cli.kernels import loss as loss_k
from cnn_cli.kernels import pool as pool_k
from cnn_cli.kernels.activations import RELU, SCALED_TANH, SIGMOID, TANH, activation_backward, activation_forward
from kernel_helpers import LENET_C3_TABLE

F32 = np.float32


def _conv_full():
    rng = np.random.default_rng(0)
    conn = conv_k.full_connections(3, 8)
    x = rng.standard_normal((6, 3, 16, 16)).astype(F32)
    w = (rng.standard_normal((24, 5, 5)) * 0.2).astype(F32)
    b = rng.standard_normal(8).astype(F32)
    a = conv_k.conv2d_forward(x, w, b, conn[0], conn[1], 1, 1, 2, 2, 16, 16, RELU)
    da = rng.standard_normal(a.shape).astype(F32)
    return (a,) + conv_k.conv2d_backward(da, a, x, w, conn, 1, 1, 2, 2, RELU, True)


def _conv_table_strided():
    rng = np.random.default_rng(1)
    conn = conv_k.table_connections(LENET_C3_TABLE)
    x = rng.standard_normal((5, 6, 14, 13)).astype(F32)
    w = (rng.standard_normal((60, 5, 4)) * 0.2).astype(F32)
    b = rng.standard_normal(16).astype(F32)
    a = conv_k.conv2d_forward(x, w, b, conn[0], conn[1], 2, 3, 1, 0, 6, 4, SCALED_TANH)
    da = rng.standard_normal(a.shape).astype(F32)
    return (a,) + conv_k.conv2d_backward(da, a, x, w, conn, 2, 3, 1, 0, SCALED_TANH, True)


def _pools():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 6, 15, 15)).astype(F32)
    out, arg = pool_k.maxpool2d_forward(x, 3, 3, 2, 2)
    d = rng.standard_normal(out.shape).astype(F32)
    mean = pool_k.meanpool2d_forward(x, 3, 3, 2, 2)
    lp = pool_k.lppool2d_forward(x, 3.0, 3, 3, 2, 2)
    beta = rng.standard_normal(6).astype(F32)
    bias = rng.standard_normal(6).astype(F32)
    s, sums = pool_k.subsample_forward(x, beta, bias, 3, 3, 2, 2, SIGMOID)
    return (out, arg, pool_k.maxpool2d_backward(d, arg, 15, 15),
            mean, pool_k.meanpool2d_backward(d, 15, 15, 3, 3, 2, 2),
            lp, pool_k.lppool2d_backward(d, x, lp, 3.0, 3, 3, 2, 2),
            s, sums) + pool_k.subsample_backward(d, s, sums, beta, 15, 15, 3, 3, 2, 2, SIGMOID, True)


def _dense_loss():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 400)).astype(F32)
    w = (rng.standard_normal((400, 120)) * 0.05).astype(F32)
    b = rng.standard_normal(120).astype(F32)
    a = dense_k.dense_forward(x, w, b, TANH)
    centres = np.sign(rng.standard_normal((10, 120))).astype(F32)
    y = dense_k.rbf_forward(a, centres)
    labels = rng.integers(0, 10, 64).astype(np.int64)
    loss, dlogits = loss_k.softmax_cross_entropy(-y, labels)
    dy = -dlogits
    da = dense_k.rbf_backward(dy, a, centres)
    z = rng.standard_normal((7, 3000)).astype(F32)
    act = activation_forward(z, TANH)
    return (a, y, np.array([loss]), dlogits, loss_k.softmax(-y), da,
            act, activation_backward(z, act, TANH)) + dense_k.dense_backward(da, a, x, w, TANH, True)


RUNS = [_conv_full, _conv_table_strided, _pools, _dense_loss]


def _assert_bitwise_equal(r1, r2):
    assert len(r1) == len(r2)
    for i, (u, v) in enumerate(zip(r1, r2)):
        assert u.dtype == v.dtype and u.shape == v.shape, f"output {i}"
        assert np.array_equal(u, v), f"output {i} differs between runs"


@pytest.mark.parametrize("run", RUNS, ids=lambda f: f.__name__.strip("_"))
def test_repeated_runs_bitwise_equal(run):
    _assert_bitwise_equal(run(), run())


@pytest.mark.parametrize("run", RUNS, ids=lambda f: f.__name__.strip("_"))
def test_one_vs_two_threads_bitwise_equal(run):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba was started with a single thread")
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        r1 = run()
        numba.set_num_threads(2)
        r2 = run()
    finally:
        numba.set_num_threads(before)
    _assert_bitwise_equal(r1, r2)
