"""The im2col + BLAS convolution kernels against slow NumPy references (tests/kernel_helpers.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnn_cli.spec.config import ConvSpec, LayerShape, conv_output_size
from cnn_cli.spec.geometry import ConvGeometry
import conv_wrappers as conv_k
from cnn_cli.kernels import conv as gemm_k
from cnn_cli.kernels import lowering
from cnn_cli.kernels import pool as pool_k
from cnn_cli.kernels.activations import ACTIVATIONS
from cnn_cli.nn.layers import Conv2D

from kernel_helpers import NP_ACT, NP_ACT_DERIVATIVE, ref_conv2d, ref_conv2d_backward


def reference(x, w, b, stride, pad, act, da):
    """(a, dx, dw, dbias) of a conv layer, from the NumPy references."""
    a = NP_ACT[act](ref_conv2d(x, w, b, stride, pad))
    delta = da * NP_ACT_DERIVATIVE[act](a)
    return (a, *ref_conv2d_backward(x, w, stride, pad, delta))


@settings(max_examples=25, deadline=None)
@given(
    c=st.integers(1, 3), k=st.integers(1, 4), h=st.integers(3, 9), w=st.integers(3, 9),
    fh=st.integers(1, 3), fw=st.integers(1, 3), sh=st.integers(1, 3), sw=st.integers(1, 3),
    pad=st.tuples(*[st.integers(0, 2)] * 4), act=st.sampled_from(sorted(ACTIVATIONS)),
    seed=st.integers(0, 1000),
)
def test_layer_matches_numpy_reference(c, k, h, w, fh, fw, sh, sw, pad, act, seed):
    top, bottom, left, right = pad
    oh = conv_output_size(h, fh, sh, top, bottom)
    ow = conv_output_size(w, fw, sw, left, right)
    if oh < 1 or ow < 1 or h + top + bottom < fh or w + left + right < fw:
        return
    rng = np.random.default_rng(seed)
    spec = ConvSpec("conv", k, (fh, fw), (sh, sw), pad, "", act)
    layer = Conv2D(LayerShape(spec, (c, h, w), (k, oh, ow), "t"), np.float64, rng)
    layer.params["bias"][...] = rng.standard_normal(k)
    x = rng.standard_normal((2, c, h, w))
    da = rng.standard_normal((2, k, oh, ow))
    a = layer.forward(x)
    dx = layer.backward(da)
    ref_a, ref_dx, ref_dw, ref_db = reference(x, layer.params["weight"], layer.params["bias"], (sh, sw), pad,
                                              ACTIVATIONS[act], da)
    np.testing.assert_allclose(a, ref_a, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["weight"], ref_dw, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["bias"], ref_db, rtol=1e-10, atol=1e-12)


def test_col2im_is_the_adjoint_of_im2col():
    """<im2col(x), y> = <x, col2im(y)> for every x, y: padding and overlaps handled alike."""
    rng = np.random.default_rng(0)
    B, C, H, W, fh, fw, sh, sw, pt, pb, pl, pr = 2, 3, 7, 6, 3, 2, 2, 1, 1, 2, 0, 1
    oh = conv_output_size(H, fh, sh, pt, pb)
    ow = conv_output_size(W, fw, sw, pl, pr)
    x = rng.standard_normal((B, C, H, W))
    y = rng.standard_normal((C * fh * fw, B * oh * ow))
    cols = conv_k.im2col(x, fh, fw, sh, sw, pt, pl, oh, ow)
    back = conv_k.col2im(y, B, C, H, W, fh, fw, sh, sw, pt, pl, oh, ow)
    assert np.isclose(np.sum(cols * y), np.sum(x * back), rtol=1e-12)


def _im2col_reference(x, fh, fw, sh, sw, pt, pl, oh, ow):
    B, C, H, W = x.shape
    padded = np.zeros((B, C, H + pt + fh + oh * sh, W + pl + fw + ow * sw), dtype=x.dtype)
    padded[:, :, pt:pt + H, pl:pl + W] = x
    cols = np.empty((C * fh * fw, B * oh * ow), dtype=x.dtype)
    for c in range(C):
        for m in range(fh):
            for n in range(fw):
                window = padded[:, c, m:m + oh * sh:sh, n:n + ow * sw:sw]
                cols[(c * fh + m) * fw + n] = window.reshape(-1)
    return cols


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width,fw,pl,pr", [(7, 3, 0, 0), (8, 1, 0, 0), (10, 1, 0, 0), (14, 5, 0, 0), (28, 5, 2, 2),
                                             (17, 3, 1, 0), (40, 4, 3, 1), (9, 2, 0, 1), (24, 3, 0, 0)])
def test_im2col_rows_of_every_width_match_numpy(dtype, width, fw, pl, pr):
    """Row copies run 8 at a time from a width of 8 (kernels/runtime/vector.py), the last one
    overlapping, from a zero-bordered copy of the images when padded; every width
    around and across multiples of 8, padding on any side, row and column strides
    must give exactly NumPy's windows — and no copy may spill past a row."""
    rng = np.random.default_rng(width)
    B, C, H, fh = 3, 2, 6, 2
    for sh, sw, pt, pb in ((1, 1, 1, 0), (1, 2, 1, 0), (2, 1, 0, 2), (1, 1, 0, 0), (3, 1, 2, 1)):
        oh = conv_output_size(H, fh, sh, pt, pb)
        ow = conv_output_size(width, fw, sw, pl, pr)
        x = rng.standard_normal((B, C, H, width)).astype(dtype)
        cols = conv_k.im2col(x, fh, fw, sh, sw, pt, pl, oh, ow)
        assert np.array_equal(cols, _im2col_reference(x, fh, fw, sh, sw, pt, pl, oh, ow))


def _col2im_reference(cols, B, C, H, W, fh, fw, sh, sw, pt, pl, oh, ow):
    """The adjoint of im2col, adding tap by tap in (m, n) order as the kernel does."""
    padded = np.zeros((B, C, H + pt + fh + oh * sh, W + pl + fw + ow * sw), dtype=cols.dtype)
    for c in range(C):
        for m in range(fh):
            for n in range(fw):
                window = cols[(c * fh + m) * fw + n].reshape(B, oh, ow)
                padded[:, c, m:m + oh * sh:sh, n:n + ow * sw:sw] += window
    return padded[:, :, pt:pt + H, pl:pl + W]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C,width,fw,pl,pr,sh", [(1, 14, 5, 0, 0, 1), (2, 12, 3, 1, 1, 1), (3, 16, 3, 0, 0, 2),
                                                  (4, 17, 5, 2, 2, 1), (6, 14, 5, 0, 0, 1), (7, 33, 4, 3, 1, 2),
                                                  (5, 9, 2, 0, 1, 1), (3, 40, 7, 3, 3, 3)])
def test_col2im_gathers_every_tap_bit_for_bit(dtype, C, width, fw, pl, pr, sh):
    """col2im with a column stride of 1 gathers each 16-wide segment of a row in
    registers, three planes at a time (kernels/runtime/vector.py): every plane count,
    rows wider than one segment, padding and row strides must give exactly the
    tap-by-tap sums, and nothing outside the images' rows may change."""
    rng = np.random.default_rng(C * 100 + width)
    B, H, fh, pt, pb = 3, 9, 3, 1, 2
    oh = conv_output_size(H, fh, sh, pt, pb)
    ow = conv_output_size(width, fw, 1, pl, pr)
    cols = rng.standard_normal((C * fh * fw, B * oh * ow)).astype(dtype)
    dx = conv_k.col2im(cols, B, C, H, width, fh, fw, sh, 1, pt, pl, oh, ow)
    reference = _col2im_reference(cols, B, C, H, width, fh, fw, sh, 1, pt, pl, oh, ow)
    assert np.array_equal(dx, reference)
    # One chunk (image 1 alone, as a parallel item calls it): the other images stay untouched.
    geo = ConvGeometry(fh, fw, sh, 1, pt, pl, oh, ow)
    row_lo, row_hi, col_lo, col_hi = lowering.taps(geo, H, width)
    chunk_cols = np.ascontiguousarray(cols.reshape(-1, B, oh * ow)[:, 1])
    out = np.full((B, C, H, width), 7.0, dtype=dtype)
    out[1] = 0
    lowering.col2im_add(chunk_cols, 1, 2, out, geo, row_lo, row_hi, col_lo, col_hi)
    assert np.array_equal(out[1], reference[1])
    assert np.all(out[[0, 2]] == 7.0)


def test_spec_vector_through_gemm_path():
    image = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]],
                     dtype=np.float32)[None, None]
    kernel = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=np.float32)
    for stride, expected in ((1, [[4, 3, 4], [2, 4, 3], [2, 3, 4]]), (2, [[4, 4], [2, 4]])):
        n = len(expected)
        a, _, _ = gemm_k.conv_forward(image, kernel.reshape(1, 9), np.zeros(1, np.float32),
                                      ConvGeometry(3, 3, stride, stride, 0, 0, n, n), ACTIVATIONS["identity"], 1, False, 0)
        assert np.array_equal(a[0, 0], np.array(expected, dtype=np.float32))


def test_gemm_layer_step_is_bitwise_repeatable():
    rng = np.random.default_rng(3)
    spec = ConvSpec("conv", 16, (5, 5), (1, 1), (0, 0, 0, 0), "valid", "relu")
    layer = Conv2D(LayerShape(spec, (6, 14, 14), (16, 10, 10), "t"), np.float32, rng)
    x = rng.standard_normal((64, 6, 14, 14)).astype(np.float32)
    da = rng.standard_normal((64, 16, 10, 10)).astype(np.float32)
    runs = []
    for _ in range(3):
        a = layer.forward(x)
        dx = layer.backward(da)
        runs.append((a.copy(), dx.copy(), layer.grads["weight"].copy(), layer.grads["bias"].copy()))
    for other in runs[1:]:
        assert all(np.array_equal(p, q) for p, q in zip(runs[0], other))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_path_keeps_dtype(dtype):
    rng = np.random.default_rng(1)
    spec = ConvSpec("conv", 2, (3, 3), (1, 1), (1, 1, 1, 1), "1", "tanh")
    layer = Conv2D(LayerShape(spec, (1, 5, 5), (2, 5, 5), "t"), dtype, rng)
    x = rng.standard_normal((2, 1, 5, 5)).astype(dtype)
    a = layer.forward(x)
    dx = layer.backward(np.ones_like(a))
    assert a.dtype == dtype and dx.dtype == dtype and layer.grads["weight"].dtype == dtype


@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize("chunk", [1, 3, 7])
def test_chunking_changes_nothing_but_the_order_of_weight_sums(chunk, keep):
    """Chunks of 1, 3 or 7 images (7 = the whole batch; 3 leaves a short, zero-padded
    last chunk), with the columns kept from forward or recomputed: the NumPy reference's results."""
    rng = np.random.default_rng(chunk)
    B, C, H, W, K = 7, 2, 6, 6, 3
    x = rng.standard_normal((B, C, H, W))
    w = rng.standard_normal((K, C, 3, 3))
    b = rng.standard_normal(K)
    da = rng.standard_normal((B, K, 4, 4))
    act = ACTIVATIONS["tanh"]
    geo = ConvGeometry(3, 3, 1, 1, 0, 0, 4, 4)
    a, cols, argmax = gemm_k.conv_forward(x, w.reshape(K, -1), b, geo, act, chunk, keep, 0)
    assert cols.shape[0] == (-(-B // chunk) if keep else 0)
    dx, dw, db = gemm_k.conv_backward(da, a, argmax, x, w.reshape(K, -1), cols, geo, act, True, chunk)
    ref = reference(x, w, b, (1, 1), (0, 0, 0, 0), act, da)
    np.testing.assert_allclose(a, ref[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, ref[1], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dw.reshape(w.shape), ref[2], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(db, ref[3], rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- fused max pooling


@settings(max_examples=20, deadline=None)
@given(
    c=st.integers(1, 3), k=st.integers(1, 4), h=st.integers(2, 11), w=st.integers(2, 11),
    f=st.integers(1, 3), pad=st.integers(0, 1), batch=st.integers(1, 9), chunk=st.integers(1, 4),
    act=st.sampled_from(sorted(ACTIVATIONS)), keep=st.booleans(), seed=st.integers(0, 1000),
)
def test_fused_max_pooling_is_conv_then_pool_bit_for_bit(c, k, h, w, f, pad, batch, chunk, act, keep, seed):
    """pool=2 gives exactly the max pooling kernels' output and argmax after the plain conv,
    and backward from the pooled gradient exactly the gradients of pool backward then conv
    backward — odd sizes (a dropped last row/column), short last chunks, every activation."""
    oh, ow = h + 2 * pad - f + 1, w + 2 * pad - f + 1
    if oh < 2 or ow < 2:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, c, h, w))
    w2 = rng.standard_normal((k, c * f * f))
    b = rng.standard_normal(k)
    code = ACTIVATIONS[act]
    geo = ConvGeometry(f, f, 1, 1, pad, pad, oh, ow)
    conv = (geo, code, chunk, keep)
    a, cols, _ = gemm_k.conv_forward(x, w2, b, *conv, 0)
    ref_y, ref_arg = pool_k.maxpool2d_forward(a, 2, 2, 2, 2)
    y, fcols, arg = gemm_k.conv_forward(x, w2, b, *conv, 2)
    assert np.array_equal(y, ref_y) and np.array_equal(arg, ref_arg) and np.array_equal(cols, fcols)
    dy = rng.standard_normal(y.shape)
    da = pool_k.maxpool2d_backward(dy, ref_arg, oh, ow)
    empty = np.empty((0, k, 0, 0), dtype=np.int32)
    tail = (geo, code, True, chunk)
    ref = gemm_k.conv_backward(da, a, empty, x, w2, cols, *tail)
    got = gemm_k.conv_backward(dy, y, arg, x, w2, fcols, *tail)
    assert all(np.array_equal(p, q) for p, q in zip(ref, got))


@pytest.mark.parametrize("config_name", ["lenet5", "caffe-lenet"])
@pytest.mark.parametrize("batch", [1, 5, 64])
def test_model_with_fused_steps_equals_layer_by_layer(config_name, batch):
    """The execution plan fuses conv + 2×2 max pooling; loss, logits, every gradient and
    the inference output stay those of running the layers one by one."""
    from cnn_cli.spec.config import load_config
    from cnn_cli.nn.model import Model

    config = load_config(config_name)
    fused, plain = Model(config, seed=0), Model(config, seed=0, fuse=False)
    assert [s.name for s in fused.steps][:2] == ["conv1+pool1", "conv2+pool2"]
    assert len(plain.steps) == len(plain.layers)
    rng = np.random.default_rng(batch)
    x = rng.standard_normal((batch,) + fused.input_shape).astype(np.float32)
    y = rng.integers(0, 10, batch)
    loss_f, logits_f = fused.loss_and_gradients(x, y)
    loss_p, logits_p = plain.loss_and_gradients(x, y)
    assert loss_f == loss_p and np.array_equal(logits_f, logits_p)
    for (name, _, g_f), (_, _, g_p) in zip(fused.parameters(), plain.parameters()):
        assert np.array_equal(g_f, g_p), name
    assert np.array_equal(fused.predict_proba(x), plain.predict_proba(x))


def test_execution_plan_fuses_only_what_one_kernel_can_run():
    """Fused: a conv followed by 2×2 stride-2 max pooling. Not fused: overlapping or
    other pooling, a pool not right after a conv."""
    from cnn_cli.commands.bench_compile import every_kernel_config
    from cnn_cli.spec.config import load_config
    from cnn_cli.nn.model import Model

    def plan(config):
        return [step.name for step in Model(config, seed=0).steps]

    assert plan(load_config("lenet5")) == ["conv1+pool1", "conv2+pool2", "fc1", "fc2", "fc3"]
    classic = load_config("lenet5-classic")  # subsampling after every conv
    assert plan(classic) == [shape.spec.name for shape in classic.layers]
    every = every_kernel_config()  # table conv, then max 2×2 stride 1, mean, Lp
    assert plan(every) == [shape.spec.name for shape in every.layers]


@pytest.mark.parametrize("training", [False, True])
def test_deep_layer_backward_in_wider_chunks_matches_the_reference(training):
    """A deep 3×3 layer on a small map (R = 576, P = 16): its recomputed backward runs
    in chunks of 16 images (backward_chunk_images), forward in chunks of 7; the batch
    of 37 leaves a short last chunk. Kept columns (training=True here: 37·576·16·8
    bytes fit) keep forward's chunks."""
    rng = np.random.default_rng(3)
    c, k, h = 64, 12, 4
    spec = ConvSpec("conv", k, (3, 3), (1, 1), (1, 1, 1, 1), "same", "relu")
    layer = Conv2D(LayerShape(spec, (c, h, h), (k, h, h), "t"), np.float64, rng)
    assert layer.winograd
    layer.winograd = False  # this test is about the im2col path's chunks
    layer.training = training
    layer.params["bias"][...] = rng.standard_normal(k)
    R, P = c * 9, h * h
    assert gemm_k.chunk_images(R, P) == 7 and gemm_k.backward_chunk_images(R, P) == 16
    x = rng.standard_normal((37, c, h, h))
    da = rng.standard_normal((37, k, h, h))
    layer.forward(x)
    assert (layer._cache_cols.shape[0] > 0) == training
    dx = layer.backward(da)
    _, ref_dx, ref_dw, ref_db = reference(x, layer.params["weight"], layer.params["bias"], (1, 1), (1, 1, 1, 1),
                                          ACTIVATIONS["relu"], da)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["weight"], ref_dw, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["bias"], ref_db, rtol=1e-10, atol=1e-12)
