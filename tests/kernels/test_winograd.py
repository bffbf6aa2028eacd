"""The Winograd kernels, F(4×4, 3×3) and F(2×2, 3×3), against slow NumPy references
(tests/kernel_helpers.py) and against the im2col + BLAS kernels they stand in for."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnn_cli.kernels import pool as pool_k
from cnn_cli.kernels import winograd as wg
from cnn_cli.kernels.activations import ACTIVATIONS
from cnn_cli.nn.layers import Conv2D
from cnn_cli.spec.config import ConvSpec, LayerShape

from kernel_helpers import NP_ACT, NP_ACT_DERIVATIVE, ref_conv2d, ref_conv2d_backward

SAME = (1, 1, 1, 1)


def same_conv(c, k, h, w, act="relu", dtype=np.float64, seed=0):
    spec = ConvSpec("conv", k, (3, 3), (1, 1), SAME, "same", act)
    rng = np.random.default_rng(seed)
    layer = Conv2D(LayerShape(spec, (c, h, w), (k, h, w), "t"), dtype, rng)
    layer.params["bias"][...] = rng.standard_normal(k)
    return layer


def reference(x, w, b, act, da):
    """(a, dx, dw, dbias) of a 3×3 'same' conv layer, from the NumPy references."""
    a = NP_ACT[act](ref_conv2d(x, w, b, (1, 1), SAME))
    return (a, *ref_conv2d_backward(x, w, (1, 1), SAME, da * NP_ACT_DERIVATIVE[act](a)))


@settings(max_examples=40, deadline=None)
@given(c=st.integers(8, 20), k=st.integers(1, 12), h=st.integers(1, 7), w=st.integers(1, 10),
       tile=st.sampled_from([2, 4]), batch=st.integers(1, 5), act=st.sampled_from(sorted(ACTIVATIONS)),
       seed=st.integers(0, 1000))
def test_layer_matches_numpy_reference(c, k, h, w, tile, batch, act, seed):
    """Map sides of 1 to 10 tiles of either size (rows of up to 10 tiles: a full
    vector group of 8 and a partial one), in float64."""
    h, w = tile * h, tile * w
    layer = same_conv(c, k, h, w, act, seed=seed)
    assert layer.winograd == (4 if h % 4 == 0 and w % 4 == 0 else 2)
    layer.winograd = tile
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((batch, c, h, w))
    da = rng.standard_normal((batch, k, h, w))
    a = layer.forward(x)
    dx = layer.backward(da)
    ref_a, ref_dx, ref_dw, ref_db = reference(x, layer.params["weight"], layer.params["bias"], ACTIVATIONS[act], da)
    np.testing.assert_allclose(a, ref_a, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(layer.grads["weight"], ref_dw, rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(layer.grads["bias"], ref_db, rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("tile", [4, 2])
@pytest.mark.parametrize("c, k, h, batch", [(32, 32, 32, 3), (64, 24, 8, 19), (16, 128, 16, 5)])
def test_float32_agrees_with_the_im2col_path(c, k, h, batch, tile):
    """The CIFAR-10 network's shapes, batches that leave short last chunks: float32
    Winograd and float32 im2col against float64. F(4×4)'s larger constants lose
    a few bits more (module docstring); both stay far below what training notices."""
    layer = same_conv(c, k, h, h, dtype=np.float32, seed=1)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((batch, c, h, h)).astype(np.float32)
    da = rng.standard_normal((batch, k, h, h)).astype(np.float32)
    results = {}
    for winograd in (tile, 0):
        layer.winograd = winograd
        a = layer.forward(x)
        results[winograd] = (a, layer.backward(da), layer.grads["weight"].copy(), layer.grads["bias"].copy())
    exact = reference(x.astype(np.float64), layer.params["weight"].astype(np.float64),
                      layer.params["bias"].astype(np.float64), ACTIVATIONS["relu"], da.astype(np.float64))
    for got_w, got_g, want in zip(results[tile], results[0], exact):
        scale = np.abs(want).max()
        err_w, err_g = np.abs(got_w - want).max() / scale, np.abs(got_g - want).max() / scale
        assert err_g < 2e-6 and err_w < (2e-6 if tile == 2 else 2e-5), (err_w, err_g)


# Tiles of 2 and of 4, rows of fewer than 8 tiles (gathered) and of 8 or more (row by row).
@pytest.mark.parametrize("h, tile", [(10, 2), (12, 4), (18, 2), (32, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ["relu", "tanh", "identity"])
def test_fused_pooling_is_the_two_layers_one_after_the_other(dtype, h, tile, act):
    """ConvMaxPool's fused step: the pooled output, its argmax and every gradient are
    bit for bit those of the Winograd conv followed by the pooling layer's kernels,
    whether the activation and pooling run inside the output transform (relu, the
    identity) or over a written plane (the others)."""
    c, k = 8, 6
    layer = same_conv(c, k, h, h, act=act, dtype=dtype, seed=4)
    assert layer.winograd == tile
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, c, h, h)).astype(dtype)
    x[:, :, :2, :2] = 0.0  # ties in the first windows: the first maximum must win in both
    dp = rng.standard_normal((7, k, h // 2, h // 2)).astype(dtype)
    a = layer.forward(x)
    pooled, argmax = pool_k.maxpool2d_forward(a, 2, 2, 2, 2)
    da = pool_k.maxpool2d_backward(dp, argmax, h, h)
    dx = layer.backward(da)
    dw, db = layer.grads["weight"].copy(), layer.grads["bias"].copy()
    fused_pooled = layer._forward(x, pool=2)  # what ConvMaxPool runs
    fused_dx = layer.backward(dp)
    np.testing.assert_array_equal(fused_pooled, pooled)
    np.testing.assert_array_equal(layer._cache_argmax, argmax)
    np.testing.assert_array_equal(fused_dx, dx)
    np.testing.assert_array_equal(layer.grads["weight"], dw)
    np.testing.assert_array_equal(layer.grads["bias"], db)


def test_same_bits_on_one_and_two_threads():
    """Chunks depend on the layer's shape only and their gradients add in chunk order."""
    layer = same_conv(16, 16, 32, 32, dtype=np.float32, seed=6)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((37, 16, 32, 32)).astype(np.float32)
    da = rng.standard_normal((37, 16, 32, 32)).astype(np.float32)
    assert 1 < layer.winograd_chunk(False) < layer.winograd_chunk(True) < 37
    runs = []
    before = numba.get_num_threads()
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            runs.append((layer.forward(x), layer.backward(da), layer.grads["weight"].copy()))
    finally:
        numba.set_num_threads(before)
    for one, two in zip(*runs):
        np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("tile", [2, 4])
def test_filter_gradient_is_the_adjoint_of_the_filter_transform(tile):
    """<G g Gᵀ, u> = <g, Gᵀ u G>."""
    rng = np.random.default_rng(8)
    g = rng.standard_normal((5, 4, 3, 3))
    u = rng.standard_normal(((tile + 2) ** 2, 5, 4))
    forward = wg.filter_transform(g, tile)
    assert np.isclose(np.sum(forward * u), np.sum(g * wg.filter_gradient(u, tile)), rtol=1e-13)


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("k, c", [(1, 1), (7, 9), (40, 30)])  # 40·30 filters: two parallel blocks, a partial group
def test_filter_transforms_match_einsum(tile, k, c):
    """U = G g Gᵀ and ∂L/∂g = Gᵀ (∂L/∂U) G against NumPy's einsum with Lavin & Gray's G."""
    g_matrix = np.array({2: [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
                         4: [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                             [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]}[tile])
    rng = np.random.default_rng(k * c)
    w = rng.standard_normal((k, c, 3, 3))
    n = tile + 2
    expected = np.einsum("ai,kcij,bj->abkc", g_matrix, w, g_matrix).reshape(n * n, k, c)
    np.testing.assert_allclose(wg.filter_transform(w, tile), expected, rtol=1e-14, atol=1e-15)
    du = rng.standard_normal((n * n, k, c))
    expected = np.einsum("ai,abkc,bj->kcij", g_matrix, du.reshape(n, n, k, c), g_matrix)
    np.testing.assert_allclose(wg.filter_gradient(du, tile), expected, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("tile, h, w", [(4, 32, 36), (4, 8, 8), (4, 16, 4), (2, 6, 20), (2, 36, 2)])
def test_input_gradient_transform_is_the_adjoint_of_the_input_transform(tile, h, w):
    """<Bᵀ d B of every tile's patch, D> = <x, the input gradients made from D>, on maps
    of 8 or more tiles a row (row by row) and fewer (gathered), with partial groups."""
    from cnn_cli.kernels.winograd_tiles import tile_table, transform_input_gradients, transform_planes

    rng = np.random.default_rng(tile * h + w)
    images, channels, n = 3, 2, (tile + 2) ** 2
    x = rng.standard_normal((images, channels, h, w))
    where = tile_table(0, images, h, w, tile)
    V = wg._domain(n, channels, where.shape[1], np.float64)
    transform_planes(x, 0, where, V, tile, False)
    D = wg._domain(n, channels, where.shape[1], np.float64)
    D[:] = rng.standard_normal(D.shape)
    forward = np.sum(V[:, :channels] * D[:, :channels])
    dx = np.full_like(x, np.nan)  # every pixel must be written
    transform_input_gradients(D, dx, 0, where, tile)
    assert np.isclose(forward, np.sum(x * dx), rtol=1e-12)


@pytest.mark.parametrize("tile, channels, h, w", [(4, 20, 16, 16), (4, 64, 8, 8), (2, 5, 6, 10), (4, 3, 4, 4)])
def test_tiles_by_channels_is_the_transposed_input_transform(tile, channels, h, w):
    """transform_planes_by_tile (eight channels of a tile a call, for the weight
    gradient's product) gives transform_planes's matrices transposed, bit for bit,
    a last group of fewer than eight channels included."""
    from cnn_cli.kernels.winograd_tiles import tile_table, transform_planes, transform_planes_by_tile

    rng = np.random.default_rng(channels * h)
    x = rng.standard_normal((3, channels, h, w))
    where = tile_table(1, 3, h, w, tile)  # images 1 and 2 of the planes
    n, tiles = (tile + 2) ** 2, where.shape[1]
    V = wg._domain(n, channels, tiles, np.float64)
    transform_planes(x, 0, where, V, tile, False)
    Vt = wg._domain(n, tiles, channels, np.float64)
    Vt[:] = np.nan
    transform_planes_by_tile(x, 0, where, Vt, tile)
    np.testing.assert_array_equal(Vt[:, :tiles], V[:, :channels].transpose(0, 2, 1))


@pytest.mark.parametrize("kernel, stride, padding, channels, out_hw, expected", [
    ((3, 3), (1, 1), SAME, 8, (32, 32), 4),
    ((3, 3), (1, 1), SAME, 8, (14, 28), 2),         # 14 is even, not a multiple of 4
    ((3, 3), (1, 1), SAME, 3, (32, 32), 4),         # RGB input: forward only (test below)
    ((3, 3), (2, 2), SAME, 8, (16, 16), 0),
    ((3, 3), (1, 1), (0, 0, 0, 0), 8, (30, 30), 0),
    ((3, 3), (1, 1), (1, 2, 1, 2), 8, (33, 33), 0),
    ((5, 5), (1, 1), (2, 2, 2, 2), 8, (32, 32), 0),
    ((3, 3), (1, 1), SAME, 8, (7, 8), 0),           # odd sides: tiles would hang over
])
def test_which_layers_run_as_winograd(kernel, stride, padding, channels, out_hw, expected):
    assert wg.winograd_tile(kernel, stride, padding, out_hw) == expected
    assert wg.backward_on_winograd(channels) == (channels >= wg.MIN_CHANNELS)


@pytest.mark.parametrize("pooled", [False, True])
def test_few_channels_forward_by_winograd_backward_by_im2col(pooled):
    """conv1 on RGB input: forward through the Winograd kernels, backward through
    im2col's (too few channels), and the two agree with the NumPy references."""
    layer = same_conv(3, 5, 8, 12, seed=11)
    assert layer.winograd == 4 and not wg.backward_on_winograd(3)
    rng = np.random.default_rng(12)
    x, da = rng.standard_normal((3, 3, 8, 12)), rng.standard_normal((3, 5, 8, 12))
    if pooled:
        dp = rng.standard_normal((3, 5, 4, 6))
        y = layer._forward(x, pool=2)
        a = np.maximum(ref_conv2d(x, layer.params["weight"], layer.params["bias"], (1, 1), SAME), 0)
        pooled_ref, argmax = pool_k.maxpool2d_forward(a, 2, 2, 2, 2)
        np.testing.assert_allclose(y, pooled_ref, rtol=1e-11, atol=1e-11)
        da = pool_k.maxpool2d_backward(dp, argmax, 8, 12)
        dx = layer.backward(dp)
    else:
        layer.forward(x)
        dx = layer.backward(da)
    _, ref_dx, ref_dw, ref_db = reference(x, layer.params["weight"], layer.params["bias"], ACTIVATIONS["relu"], da)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(layer.grads["weight"], ref_dw, rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(layer.grads["bias"], ref_db, rtol=1e-10, atol=1e-11)


def test_odd_maps_fall_back_to_im2col_and_still_match():
    layer = same_conv(8, 3, 7, 5, seed=9)
    assert not layer.winograd
    rng = np.random.default_rng(10)
    x, da = rng.standard_normal((2, 8, 7, 5)), rng.standard_normal((2, 3, 7, 5))
    a = layer.forward(x)
    dx = layer.backward(da)
    ref_a, ref_dx, ref_dw, _ = reference(x, layer.params["weight"], layer.params["bias"], ACTIVATIONS["relu"], da)
    np.testing.assert_allclose(a, ref_a, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(layer.grads["weight"], ref_dw, rtol=1e-10, atol=1e-11)
