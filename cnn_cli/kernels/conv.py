"""Convolution as matrix products: the helpers around a BLAS GEMM.

Every convolution runs here (spec/tables.py maps a connection table onto the
dense weights these kernels take). The input is lowered to a column matrix (im2col)
and BLAS does the three products

    forward      Z  = W · cols                  (K, n)
    weight grad  dWᵀ = cols · δᵀ                (C·Fh·Fw, K)
    input grad   dcols = Wᵀ · δ, then col2im    (C·Fh·Fw, n)

on chunks of images, one chunk per parallel item: lowering, product and the
epilogue (bias, activation, the NCHW layout, δ = ∂L/∂a·f'(a)) run back to back
on cache-sized data, and the chunks spread over the cores. A 2×2, stride-2
max pooling right after the conv can run in the same epilogue (pool=2; the
model's ConvMaxPool step): the conv's output is pooled while in cache and
never stored, and backward routes δ to each window's maximum itself. BLAS is called from
inside Numba (blas.matmul, through SciPy's BLAS) and held to one thread, so there is
a single thread pool: two pools would spin against each other on the same cores
(runtime/blas.py). Products rather than direct loops, because BLAS blocks for
registers and cache, which a conv's short rows (10 wide in LeNet-5's conv2)
never let a direct loop do (benchmarks/RESULTS.md, Design measurements).

Layout: row r = (c·Fh + m)·Fw + n, column q = (b − b0)·P + i·ow + j, where
P = oh·ow and b0 is the chunk's first image.

Determinism: every parallel item writes its own images and its own weight-
gradient slot; slots are added in chunk order; the chunk size depends only on
the layer's shape; BLAS runs single-threaded. Same inputs, same bits, whatever
the thread count.
"""

import numpy as np
from numba import njit, types, uint64

from .activations import activate_span, check_code, delta_span
from .pool import maxpool_2x2_plane
from .runtime.blas import matmul, use_single_threaded_blas
from .runtime.parallel import c_array, item_args, launch_address, native_item, parallel_for
from .lowering import col2im_add, im2col_into, taps, zero_columns
from ..spec.geometry import ConvGeometry

use_single_threaded_blas()  # these kernels call BLAS inside parallel loops

# OpenBLAS's limit for its small-matrix TN kernel, M·N in column-major terms (see _backward_chunk).
_SMALL_TN_MAX = 1200

# Size of one chunk's column matrix, in numbers (see chunk_images): 64k float32
# = 256 KB, small enough to stay in a core's L2 cache with room to spare, so
# lowering, product and epilogue all run on cached data; and small enough that
# lenet5's conv1 runs chunks of 3 images and conv2 of 4, so batch 16 already
# spreads over two cores. Picked by a sweep (benchmarks/RESULTS.md, Design
# measurements).
CHUNK_ELEMENTS = 65536


def chunk_images(R, P):
    """Images per parallel chunk for columns of length R = C·Fh·Fw and P output
    positions per image: a chunk's column matrix holds about CHUNK_ELEMENTS
    numbers, so it stays in cache. A function of the layer's shape only, never
    of the thread count, so weight-gradient sums keep the same order everywhere."""
    return max(1, CHUNK_ELEMENTS // (R * P))


# Backward chunks without kept columns span at least this many output positions:
# deep layers have long columns (R = C·Fh·Fw) on small maps, where the cache rule
# gives one image per chunk, so every chunk would write its own (R, K)
# weight-gradient slot and multiply with a short inner dimension. Forward keeps
# the cache rule; LeNet-5's layers already have chunk·P ≥ 400 and are unchanged.
MIN_BACKWARD_POSITIONS = 256

# Running sums a bias gradient's row of P numbers is folded into before they are
# added in order (see _backward_chunk).
BIAS_LANES = 64


def backward_chunk_images(R, P):
    """Images per chunk of a backward pass that recomputes its columns (none kept)."""
    return max(chunk_images(R, P), -(-MIN_BACKWARD_POSITIONS // P))


# How the items' argument tuples type a ConvGeometry.
GEOMETRY = types.NamedUniTuple(types.int64, 8, ConvGeometry)


def _forward_chunk_signature(f):
    i, flag, idx = types.int64, types.boolean, c_array(types.int64, 1)
    return (c_array(f, 4), c_array(f, 2), c_array(f, 1), c_array(f, 3), c_array(f, 3), c_array(f, 4),
            c_array(types.int32, 4), GEOMETRY, idx, idx, idx, idx, i, i, flag, flag)


@native_item(_forward_chunk_signature)
@njit(cache=True, error_model="numpy")
def _forward_chunk(ch, context):
    """One parallel item of conv_forward: the images of chunk ch, lowered into
    their columns (kept for backward, or a scratch matrix)."""
    (x, w2, bias, kept, out, pooled, arg, geo,
     row_lo, row_hi, col_lo, col_hi, act, chunk, keep, fused) = item_args(context)
    K = w2.shape[0]
    oh, ow = geo.oh, geo.ow
    P = oh * ow
    b0 = ch * chunk
    b1 = min(x.shape[0], b0 + chunk)
    cols = kept[ch] if keep else np.empty((kept.shape[1], chunk * P), dtype=x.dtype)
    im2col_into(x, b0, b1, cols, geo, row_lo, row_hi, col_lo, col_hi)
    zero_columns(cols, (b1 - b0) * P)
    z = np.empty((K, cols.shape[1]), dtype=x.dtype)
    matmul(w2, np.bool_(False), cols, np.bool_(False), z)
    plane = np.empty((oh, ow), dtype=x.dtype)  # one plane of a, when pooling
    plane_flat = plane.reshape(P)
    for b in range(b0, b1):
        base = (b - b0) * P
        for k in range(K):
            dst = plane_flat if fused else out[b, k]
            src = z[k]
            beta = bias[k]
            for p in range(P):
                dst[uint64(p)] = src[uint64(base + p)] + beta
            activate_span(dst, np.int64(0), P, act)
            if fused:
                maxpool_2x2_plane(plane, pooled[b, k], arg[b, k], ow)


def conv_forward(x, w2, bias, geo: ConvGeometry, act, chunk, keep, pool):
    """(y, cols, argmax): a = f(conv(x) + bias), one chunk of images per parallel item.

    Each item lowers its images (im2col), multiplies by the (K, C·fh·fw) weights
    with BLAS and writes bias + activation straight into NCHW; a chunk's columns
    stay in cache between the three steps, and the chunks spread over the cores.
    With `keep` (training) the columns are returned, (chunks, C·fh·fw, chunk·P),
    for the backward pass; a short last chunk is padded with zero columns so
    every chunk has one shape. Without it, cols is empty and memory stays flat
    however large the batch.

    pool = 0: y = a, (B, K, oh, ow); argmax is empty.
    pool = 2: a following 2×2, stride-2 max pooling is fused in: y is the pooled
    (B, K, oh//2, ow//2) and argmax the values of maxpool2d_forward's (flat index
    into the oh×ow plane) in int32: half the memory traffic of int64. Each plane
    of a is pooled while it is in cache, by the same helper as the pooling
    kernel, so y and argmax are bit for bit those of the two layers one after
    the other, and a never goes to memory."""
    x, w2, bias = np.ascontiguousarray(x), np.ascontiguousarray(w2), np.ascontiguousarray(bias)
    return _conv_forward(launch_address(), _forward_chunk.native.address(x.dtype), x, w2, bias,
                         ConvGeometry(*geo), act, chunk, keep, pool)


@njit(cache=True, error_model="numpy")
def _conv_forward(launch, chunk_fn, x, w2, bias, geo, act, chunk, keep, pool):
    check_code(act)
    B, C, H, W = x.shape
    K = w2.shape[0]
    oh, ow = geo.oh, geo.ow
    P = oh * ow
    R = C * geo.fh * geo.fw
    # A batch smaller than a chunk is one chunk of its own size: no padding work.
    chunk = max(1, min(chunk, B))
    fused = pool == 2
    if fused:
        pooled = np.empty((B, K, oh // 2, ow // 2), dtype=x.dtype)
        arg = np.empty((B, K, oh // 2, ow // 2), dtype=np.int32)
        out = np.empty((0, K, P), dtype=x.dtype)
    else:
        pooled = np.empty((0, K, 0, 0), dtype=x.dtype)
        arg = np.empty((0, K, 0, 0), dtype=np.int32)
        out = np.empty((B, K, P), dtype=x.dtype)
    row_lo, row_hi, col_lo, col_hi = taps(geo, H, W)
    chunks = (B + chunk - 1) // chunk
    kept = np.empty((chunks if keep else 0, R, chunk * P), dtype=x.dtype)
    parallel_for(_forward_chunk, launch, chunk_fn, chunks, (x, w2, bias, kept, out, pooled, arg, geo, row_lo, row_hi,
                                                           col_lo, col_hi, act, chunk, keep, fused))
    if fused:
        return pooled, kept, arg
    return out.reshape((B, K, oh, ow)), kept, arg


def _backward_chunk_signature(f):
    i, flag, idx = types.int64, types.boolean, c_array(types.int64, 1)
    return (c_array(f, 3), c_array(f, 3), c_array(types.int32, 3), c_array(f, 4), c_array(f, 2), c_array(f, 3),
            c_array(f, 3), c_array(f, 2), c_array(f, 4), GEOMETRY, idx, idx, idx, idx, i, i, flag, flag)


@native_item(_backward_chunk_signature)
@njit(cache=True, error_model="numpy")
def _backward_chunk(ch, context):
    """One parallel item of conv_backward: the images of chunk ch; writes this
    chunk's weight gradient, transposed, to dw_parts[ch] (R, K) and its bias
    gradient to db_parts[ch], and adds into dx[b0:b1]."""
    (da3, a3, arg3, x, w2, cols_kept, dw_parts, db_parts, dx, geo,
     row_lo, row_hi, col_lo, col_hi, act, chunk, need_dx, fused) = item_args(context)
    K = w2.shape[0]
    P = geo.oh * geo.ow
    N = chunk * P
    Q = da3.shape[2]
    b0 = ch * chunk
    b1 = min(x.shape[0], b0 + chunk)
    recompute = cols_kept.shape[0] == 0
    cols = np.empty((w2.shape[1], N), dtype=x.dtype) if recompute else cols_kept[ch]
    dw_part = dw_parts[ch]
    db_part = db_parts[ch]
    if recompute:
        im2col_into(x, b0, b1, cols, geo, row_lo, row_hi, col_lo, col_hi)
        zero_columns(cols, (b1 - b0) * P)
    delta = np.zeros((K, N), dtype=x.dtype)
    # δᵀ stored for the weight gradient's product when OpenBLAS would pack a
    # transposed view first (see below).
    small_tn = K * w2.shape[1] <= _SMALL_TN_MAX
    delta_t = np.empty((0 if small_tn else N, K), dtype=x.dtype)
    routed = np.empty(Q, dtype=x.dtype)
    for b in range(b0, b1):
        base = (b - b0) * P
        for k in range(K):
            if fused:
                delta_span(da3[b, k], a3[b, k], routed, np.int64(0), Q, act)
                drow = delta[k]
                arow = arg3[b, k]
                for q in range(Q):
                    drow[uint64(base + arow[q])] = routed[q]
            else:
                delta_span(da3[b, k], a3[b, k], delta[k, base:base + P], np.int64(0), P, act)
    for q in range(delta_t.shape[0]):
        for k in range(K):
            delta_t[q, k] = delta[k, q]
    # Bias-gradient sums: element-wise into P-long rows (vectorises), each row
    # folded into BIAS_LANES sums (vectorises too), those added up in order: one
    # chain of P dependent additions per filter would wait on each in turn.
    acc = np.empty(P, dtype=x.dtype)
    lanes = min(P, BIAS_LANES)
    for k in range(K):
        drow = delta[k]
        for p in range(P):
            acc[p] = 0
        for i in range(b1 - b0):
            base = i * P
            for p in range(P):
                acc[uint64(p)] += drow[uint64(base + p)]
        for start in range(lanes, P, lanes):
            for j in range(min(lanes, P - start)):
                acc[uint64(j)] += acc[uint64(start + j)]
        total = x.dtype.type(0)
        for j in range(lanes):
            total += acc[j]
        db_part[k] = total
    # dWᵀ = cols·δᵀ (R, K) rather than dW = δ·colsᵀ (K, R): the same products,
    # in the orientation OpenBLAS runs faster for these shapes. OpenBLAS
    # (SkylakeX kernels) sends this product, a TN one in its column-major
    # terms, through its small-matrix kernel only while K·R ≤ 1200; past that
    # it packs both operands first, and multiplying by a stored δᵀ (an NN
    # product, small kernel) is faster. Below it the TN product wins (conv1:
    # K·R = 150) and δᵀ is not built. (benchmarks/RESULTS.md, Design measurements.)
    if small_tn:
        matmul(cols, np.bool_(False), delta, np.bool_(True), dw_part)
    else:
        matmul(cols, np.bool_(False), delta_t, np.bool_(False), dw_part)
    if need_dx:
        dcols = np.empty((w2.shape[1], N), dtype=x.dtype)
        matmul(w2, np.bool_(True), delta, np.bool_(False), dcols)
        col2im_add(dcols, b0, b1, dx, geo, row_lo, row_hi, col_lo, col_hi)


def conv_backward(da, a, argmax, x, w2, cols, geo: ConvGeometry, act, need_dx, chunk):
    """(dx, dw (K, C·fh·fw), dbias) with the chunks of the forward pass and its kept
    columns (when `cols` is empty they are recomputed per chunk).

    da and a are the gradient and output of what conv_forward returned:
    the conv's own (B, K, oh, ow) when argmax is empty, or the fused max
    pooling's (B, K, oh//2, ow//2) with its argmax. Then each δ = da·f'(a) goes
    to its window's argmax and the rest of the plane is 0 — what the pooling
    layer's backward followed by this one would compute, bit for bit, without
    the (B, K, oh, ow) gradient in between.

    Each chunk's weight and bias gradients go to their own slots, added in chunk
    order afterwards, so the sums are fixed whatever the thread count (the chunk
    size depends only on the layer). Padding columns of a short last chunk have
    δ = 0 and add exact zeros."""
    da, a, argmax, x, w2 = (np.ascontiguousarray(v) for v in (da, a, argmax, x, w2))
    return _conv_backward(launch_address(), _backward_chunk.native.address(x.dtype), da, a, argmax, x, w2, cols,
                          ConvGeometry(*geo), act, need_dx, chunk)


@njit(cache=True, error_model="numpy")
def _conv_backward(launch, chunk_fn, da, a, argmax, x, w2, cols, geo, act, need_dx, chunk):
    check_code(act)
    B, K = da.shape[0], da.shape[1]
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    fused = argmax.shape[0] > 0
    if B == 0:
        return np.zeros((0, C, H, W), dtype=x.dtype), np.zeros((K, C * geo.fh * geo.fw), dtype=x.dtype), np.zeros(K, dtype=x.dtype)
    R = C * geo.fh * geo.fw
    chunk = max(1, min(chunk, B))  # as in forward, so kept columns line up
    Q = da.shape[2] * da.shape[3]  # P, or the pooled plane when fused
    da3 = da.reshape((B, K, Q))
    a3 = a.reshape((B, K, Q))
    arg3 = argmax.reshape((argmax.shape[0], K, Q))
    row_lo, row_hi, col_lo, col_hi = taps(geo, H, W)
    chunks = (B + chunk - 1) // chunk
    dw_parts = np.empty((chunks, R, K), dtype=x.dtype)  # transposed, see _backward_chunk
    db_parts = np.empty((chunks, K), dtype=x.dtype)
    if need_dx:
        dx = np.zeros((B, C, H, W), dtype=x.dtype)
    else:
        dx = np.zeros((0, 0, 0, 0), dtype=x.dtype)
    parallel_for(_backward_chunk, launch, chunk_fn, chunks, (da3, a3, arg3, x, w2, cols, dw_parts, db_parts, dx, geo,
                                                            row_lo, row_hi, col_lo, col_hi, act, chunk, need_dx, fused))
    # Explicit loops, not `dw += dw_parts[ch]`: whole-array arithmetic drags in
    # Numba's shape-mismatch error path, seconds of compile for nothing. The
    # slots are summed in their own (R, K) layout, contiguous and vectorised, and
    # transposed once at the end: summing straight into (K, R) would read every
    # slot with a stride of K. Same additions in the same order.
    acc = np.zeros(R * K, dtype=x.dtype)
    flat = dw_parts.reshape((chunks, R * K))
    dbias = np.zeros(K, dtype=x.dtype)
    for ch in range(chunks):
        part = flat[ch]
        for i in range(R * K):
            acc[i] += part[i]
        for k in range(K):
            dbias[k] += db_parts[ch, k]
    dw = np.empty((K, R), dtype=x.dtype)
    for r in range(R):
        for k in range(K):
            dw[k, r] = acc[r * K + k]
    return dx, dw, dbias
