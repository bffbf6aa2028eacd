"""Optimizer state never sinks into subnormal floats (Intel cores compute those tens of
times slower): moments and velocities that decay under zero gradients reach exactly 0."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_cli.kernels.optim import adam_update, sgd_update


def subnormal(a: np.ndarray) -> np.ndarray:
    return (a != 0) & (np.abs(a) < np.finfo(a.dtype).tiny)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_moments_flush_to_zero_instead_of_going_subnormal(dtype):
    n = 40
    p = np.linspace(-1, 1, n).astype(dtype)
    g = np.zeros(n, dtype)
    # Moments just above the smallest normal: a few zero-gradient steps take them below it.
    m = np.full(n, np.finfo(dtype).tiny * 50, dtype)
    v = np.full(n, np.finfo(dtype).tiny * 50, dtype)
    before = p.copy()
    for step in range(1, 400):
        adam_update(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0.0, step)
        assert not subnormal(m).any() and not subnormal(v).any(), step
    assert (m == 0).all()
    np.testing.assert_array_equal(p, before)  # a subnormal-sized update never moved a parameter


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_velocity_flushes_to_zero(nesterov):
    n = 16
    p = np.ones(n, np.float32)
    g = np.zeros(n, np.float32)
    v = np.full(n, np.finfo(np.float32).tiny * 10, np.float32)
    for _ in range(100):
        sgd_update(p, g, v, 0.1, 0.9, nesterov, 0.0)
        assert not subnormal(v).any()
    assert (v == 0).all()


def test_normal_values_and_nan_are_untouched():
    p = np.array([0.5, -0.25, 1.0], np.float32)
    g = np.array([1e-3, np.nan, -2.0], np.float32)
    m, v = np.zeros(3, np.float32), np.zeros(3, np.float32)
    adam_update(p, g, m, v, 1e-2, 0.9, 0.999, 1e-8, 0.0, 1)
    assert np.isnan(m[1]) and np.isnan(v[1]) and np.isnan(p[1])  # divergence stays visible
    np.testing.assert_allclose(m[[0, 2]], 0.1 * g[[0, 2]], rtol=1e-6)
