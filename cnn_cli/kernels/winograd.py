"""3×3 convolutions with stride 1 and padding 1 by Winograd's minimal filtering,
F(2×2, 3×3) (Lavin & Gray 2016): four outputs from 16 products instead of 36.

Each 2×2 block of outputs ("tile") needs the 4×4 input patch d around it:

    forward       z = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
    weight grad   ∂L/∂U = Σ over tiles (A δ Aᵀ) ⊙ V,  ∂L/∂g = Gᵀ (∂L/∂U) G
    input grad    the forward product of δ (padded by 1) with the filters
                  rotated by 180° and transposed, C outputs from K inputs

with U = G g Gᵀ the filters and V = Bᵀ d B the patches carried into the 4×4
"Winograd domain". There, summing over channels is one matrix product per
domain position ξ (16 of them): M[ξ] (K, tiles) = U[ξ] (K, C) · V[ξ] (C, tiles),
done by BLAS like the im2col products of kernels/conv.py, but with 16/36 of
their multiplications and no lowered copy of the input. The matrices (only
0, ±1 and ±½) make the transforms additions, exact but for rounding.

Chunks, determinism and the fused 2×2 max pooling work as in kernels/conv.py:
one chunk of images per parallel item, weight and bias gradients in per-chunk
slots summed in chunk order, BLAS on one thread; planes are finished by the
same activation and pooling helpers, so pooling ties resolve the same way.
Every map has an even height and width here (conv_applies says when).
"""

import numpy as np
from numba import njit, types, uint64

from .activations import activate_span, check_code, delta_span
from .pool import maxpool_2x2_plane
from .runtime.blas import matmul, use_single_threaded_blas
from .runtime.parallel import c_array, item_args, launch_address, native_item, parallel_for
from .runtime.tile_vector import gradient_tiles8, input_tiles8, output_tiles8
from .runtime.vector import VECTOR

use_single_threaded_blas()  # these kernels call BLAS inside parallel loops

# Bytes of Winograd-domain matrices one parallel chunk may fill: a chunk's
# transformed inputs and products (16·(C + K) numbers a tile) stay within
# half a core's L2 cache, so transforms and products run on cached data. At
# batch 64 the CIFAR-10 network's layers get 1 to 4 images a chunk (picked by
# a sweep: benchmarks/RESULTS.md, Design measurements).
CHUNK_BYTES = 1 << 20

# Below this many input channels the products are too thin (conv1 on RGB
# input has 3) and the transforms cost more than they save: im2col stays.
MIN_CHANNELS = 8


def conv_applies(kernel, stride, padding, channels, out_hw) -> bool:
    """Whether a conv layer runs here: 3×3, stride 1, padding 1 on every side
    (so output = input size), even output sides, enough input channels."""
    return (tuple(kernel) == (3, 3) and tuple(stride) == (1, 1) and tuple(padding) == (1, 1, 1, 1)
            and out_hw[0] % 2 == 0 and out_hw[1] % 2 == 0 and channels >= MIN_CHANNELS)


def chunk_images(channels, filters, height, width, itemsize):
    """Images per parallel chunk (see CHUNK_BYTES): a function of the layer's
    shape only, never of the thread count, so gradient sums keep their order."""
    tile_bytes = 16 * (channels + filters + 2) * itemsize
    return max(1, CHUNK_BYTES // (tile_bytes * (height // 2) * (width // 2)))


# ---------------------------------------------------------------- filter transforms


@njit(cache=True, error_model="numpy")
def filter_transform(w, transpose_flip):
    """U = G g Gᵀ for every filter g = w[k, c] (3×3): (16, K, C) with ξ = 4·i + j.
    With transpose_flip, the filters of the input gradient instead: g = w[k, c]
    rotated by 180°, stored (16, C, K)."""
    K, C = w.shape[0], w.shape[1]
    out = np.empty((16, C, K) if transpose_flip else (16, K, C), dtype=w.dtype)
    half = w.dtype.type(0.5)
    gg = np.empty((4, 3), dtype=w.dtype)
    for k in range(K):
        for c in range(C):
            g = w[k, c]
            for n in range(3):  # G·g, column by column
                col = 2 - n if transpose_flip else n
                r0 = g[2, col] if transpose_flip else g[0, col]
                r1 = g[1, col]
                r2 = g[0, col] if transpose_flip else g[2, col]
                gg[0, n], gg[1, n], gg[2, n], gg[3, n] = r0, (r0 + r1 + r2) * half, (r0 - r1 + r2) * half, r2
            for i in range(4):  # (G·g)·Gᵀ, row by row
                a, b, e = gg[i, 0], gg[i, 1], gg[i, 2]
                row = (a, (a + b + e) * half, (a - b + e) * half, e)
                for j in range(4):
                    if transpose_flip:
                        out[4 * i + j, c, k] = row[j]
                    else:
                        out[4 * i + j, k, c] = row[j]
    return out


@njit(cache=True, error_model="numpy")
def filter_gradient(dU):
    """∂L/∂g = Gᵀ (∂L/∂U) G for every (k, c): (16, K, C) → (K, C, 3, 3)."""
    K, C = dU.shape[1], dU.shape[2]
    out = np.empty((K, C, 3, 3), dtype=dU.dtype)
    half = dU.dtype.type(0.5)
    t = np.empty((4, 3), dtype=dU.dtype)
    for k in range(K):
        for c in range(C):
            for i in range(4):  # (∂L/∂U)·G along each row
                r0, r1, r2, r3 = dU[4 * i, k, c], dU[4 * i + 1, k, c], dU[4 * i + 2, k, c], dU[4 * i + 3, k, c]
                t[i, 0], t[i, 1], t[i, 2] = r0 + (r1 + r2) * half, (r1 - r2) * half, (r1 + r2) * half + r3
            for n in range(3):  # Gᵀ·(…) down each column
                r0, r1, r2, r3 = t[0, n], t[1, n], t[2, n], t[3, n]
                out[k, c, 0, n], out[k, c, 1, n], out[k, c, 2, n] = (r0 + (r1 + r2) * half, (r1 - r2) * half,
                                                                     (r1 + r2) * half + r3)
    return out


# ---------------------------------------------------------------- tile transforms


@njit(cache=True, error_model="numpy")
def _input_transform(plane, Vf, base, step, zero_row):
    """V[ξ] = Bᵀ d B for every tile of one (H, W) plane, d the 4×4 patch from one
    row and column before the tile to two after, zero outside; tile t of the
    plane goes to Vf[base + ξ·step + t] (Vf: the chunk's V, flat)."""
    H, W = plane.shape
    th, tw = H // 2, W // 2
    for ty in range(th):
        xa = plane[2 * ty - 1] if ty > 0 else zero_row
        xd = plane[2 * ty + 2] if ty < th - 1 else zero_row
        row = base + ty * tw
        for tx in range(0, tw, VECTOR):
            input_tiles8(xa, plane[2 * ty], plane[2 * ty + 1], xd, 2 * tx - 1, W, Vf, row + tx, step,
                         min(VECTOR, tw - tx))


@njit(cache=True, error_model="numpy")
def _output_transform(Mf, base, step, plane, beta):
    """plane = Aᵀ M A + beta for every tile of one (oh, ow) output plane, tile t's
    M[ξ] at Mf[base + ξ·step + t]."""
    oh, ow = plane.shape
    th, tw = oh // 2, ow // 2
    for ty in range(th):
        row = base + ty * tw
        for tx in range(0, tw, VECTOR):
            output_tiles8(Mf, row + tx, step, plane[2 * ty], plane[2 * ty + 1], 2 * tx, beta, min(VECTOR, tw - tx))


@njit(cache=True, error_model="numpy")
def _gradient_transform(delta, dMf, base, step):
    """dM[ξ] = A δ Aᵀ for every 2×2 tile of one (oh, ow) gradient plane (the
    transpose of the output transform), tile t to dMf[base + ξ·step + t]."""
    oh, ow = delta.shape
    th, tw = oh // 2, ow // 2
    for ty in range(th):
        row = base + ty * tw
        for tx in range(0, tw, VECTOR):
            gradient_tiles8(delta[2 * ty], delta[2 * ty + 1], 2 * tx, dMf, row + tx, step, min(VECTOR, tw - tx))


@njit(cache=True, error_model="numpy")
def _domain(rows, tiles, dtype):
    """A (16, rows + 1, tiles) array for a chunk's matrices in the Winograd domain,
    of which [ξ, :rows] are used. The spare row offsets the 16 matrices from each
    other: the transforms write to all 16 at once, and at a distance of a
    multiple of 4 KB (rows·tiles numbers often is) all 16 streams fall in one
    set of the L1 cache and evict each other."""
    return np.empty((16, rows + 1, tiles), dtype=dtype)


# ---------------------------------------------------------------- forward


def _forward_chunk_signature(f):
    i, flag = types.int64, types.boolean
    return (c_array(f, 4), c_array(f, 3), c_array(f, 1), c_array(f, 4), c_array(f, 4), c_array(types.int32, 4),
            i, i, flag)


@native_item(_forward_chunk_signature)
@njit(cache=True, error_model="numpy")
def _forward_chunk(ch, context):
    """One parallel item of winograd_forward: the images of chunk ch."""
    x, U, bias, out, pooled, arg, act, chunk, fused = item_args(context)
    B, C, H, W = x.shape
    K = U.shape[1]
    T = (H // 2) * (W // 2)
    b0 = ch * chunk
    b1 = min(B, b0 + chunk)
    tiles = (b1 - b0) * T
    V = _domain(C, tiles, x.dtype)
    zero_row = np.zeros(W, dtype=x.dtype)
    for b in range(b0, b1):
        for c in range(C):
            _input_transform(x[b, c], V.reshape(V.size), c * tiles + (b - b0) * T, V.shape[1] * tiles, zero_row)
    M = _domain(K, tiles, x.dtype)
    for xi in range(16):
        matmul(U[xi], np.bool_(False), V[xi, :C], np.bool_(False), M[xi, :K])
    plane = np.empty((H, W), dtype=x.dtype)  # one plane of a, when pooling
    for b in range(b0, b1):
        for k in range(K):
            dst = plane if fused else out[b, k]
            _output_transform(M.reshape(M.size), k * tiles + (b - b0) * T, M.shape[1] * tiles, dst, bias[k])
            activate_span(dst.reshape(H * W), np.int64(0), H * W, act)
            if fused:
                maxpool_2x2_plane(dst, pooled[b, k], arg[b, k], W)


def winograd_forward(x, U, bias, act, chunk, pool):
    """(y, argmax): a = f(conv(x) + bias) for U = filter_transform(w, False); as
    kernels/conv.py's conv_forward (pool = 2: the 2×2 max pooling fused in, y
    pooled and argmax its int32 flat indices), without kept columns."""
    x, U, bias = np.ascontiguousarray(x), np.ascontiguousarray(U), np.ascontiguousarray(bias)
    return _winograd_forward(launch_address(), _forward_chunk.native.address(x.dtype), x, U, bias, act, chunk, pool)


@njit(cache=True, error_model="numpy")
def _winograd_forward(launch, chunk_fn, x, U, bias, act, chunk, pool):
    check_code(act)
    B, C, H, W = x.shape
    K = U.shape[1]
    chunk = max(1, min(chunk, B))
    fused = pool == 2
    if fused:
        pooled = np.empty((B, K, H // 2, W // 2), dtype=x.dtype)
        arg = np.empty((B, K, H // 2, W // 2), dtype=np.int32)
        out = np.empty((0, K, H, W), dtype=x.dtype)
    else:
        pooled = np.empty((0, K, 0, 0), dtype=x.dtype)
        arg = np.empty((0, K, 0, 0), dtype=np.int32)
        out = np.empty((B, K, H, W), dtype=x.dtype)
    chunks = (B + chunk - 1) // chunk
    parallel_for(_forward_chunk, launch, chunk_fn, chunks, (x, U, bias, out, pooled, arg, act, chunk, fused))
    if fused:
        return pooled, arg
    return out, arg


# ---------------------------------------------------------------- backward


def _backward_chunk_signature(f):
    i, flag = types.int64, types.boolean
    return (c_array(f, 3), c_array(f, 3), c_array(types.int32, 3), c_array(f, 4), c_array(f, 3), c_array(f, 4),
            c_array(f, 2), c_array(f, 4), i, i, flag, flag)


@native_item(_backward_chunk_signature)
@njit(cache=True, error_model="numpy")
def _backward_chunk(ch, context):
    """One parallel item of winograd_backward: the images of chunk ch; writes
    this chunk's ∂L/∂U to dU_parts[ch], its bias gradient to db_parts[ch], and
    its images' input gradient to dx[b0:b1]."""
    da3, a3, arg3, x, Ud, dU_parts, db_parts, dx, act, chunk, need_dx, fused = item_args(context)
    B, C, H, W = x.shape
    K = da3.shape[1]
    Q = da3.shape[2]
    P = H * W
    T = (H // 2) * (W // 2)
    b0 = ch * chunk
    b1 = min(B, b0 + chunk)
    tiles = (b1 - b0) * T
    # δ = ∂L/∂a·f'(a), routed to each pooling window's maximum when fused.
    delta = np.zeros((b1 - b0, K, H, W), dtype=x.dtype)
    routed = np.empty(Q, dtype=x.dtype)
    for b in range(b0, b1):
        for k in range(K):
            plane = delta[b - b0, k].reshape(P)
            if fused:
                delta_span(da3[b, k], a3[b, k], routed, np.int64(0), Q, act)
                arow = arg3[b, k]
                for q in range(Q):
                    plane[uint64(arow[q])] = routed[q]
            else:
                delta_span(da3[b, k], a3[b, k], plane, np.int64(0), P, act)
    # Bias-gradient sums: rows added element-wise into one W-long row (vectorises;
    # a single running sum would wait on each addition in turn), then that row in order.
    db_part = db_parts[ch]
    acc = np.empty(W, dtype=x.dtype)
    for k in range(K):
        for j in range(W):
            acc[j] = 0
        for b in range(b1 - b0):
            for r in range(H):
                row = delta[b, k, r]
                for j in range(W):
                    acc[uint64(j)] += row[uint64(j)]
        total = x.dtype.type(0)
        for j in range(W):
            total += acc[j]
        db_part[k] = total
    # ∂L/∂U[ξ] = Σ_tiles (A δ Aᵀ)[ξ] · V[ξ]ᵀ
    dM = _domain(K, tiles, x.dtype)
    for b in range(b1 - b0):
        for k in range(K):
            _gradient_transform(delta[b, k], dM.reshape(dM.size), k * tiles + b * T, dM.shape[1] * tiles)
    V = _domain(C, tiles, x.dtype)
    zero_row = np.zeros(W, dtype=x.dtype)
    for b in range(b0, b1):
        for c in range(C):
            _input_transform(x[b, c], V.reshape(V.size), c * tiles + (b - b0) * T, V.shape[1] * tiles, zero_row)
    dU_part = dU_parts[ch]
    for xi in range(16):
        matmul(dM[xi, :K], np.bool_(False), V[xi, :C], np.bool_(True), dU_part[xi])
    if need_dx:
        # δ padded by one, times the rotated, transposed filters: the same product as forward.
        Vd = _domain(K, tiles, x.dtype)
        for b in range(b1 - b0):
            for k in range(K):
                _input_transform(delta[b, k], Vd.reshape(Vd.size), k * tiles + b * T, Vd.shape[1] * tiles, zero_row)
        Mx = _domain(C, tiles, x.dtype)
        for xi in range(16):
            matmul(Ud[xi], np.bool_(False), Vd[xi, :K], np.bool_(False), Mx[xi, :C])
        for b in range(b0, b1):
            for c in range(C):
                _output_transform(Mx.reshape(Mx.size), c * tiles + (b - b0) * T, Mx.shape[1] * tiles, dx[b, c],
                                  x.dtype.type(0))


def winograd_backward(da, a, argmax, x, Ud, act, need_dx, chunk):
    """(dx, dU (16, K, C), dbias), as kernels/conv.py's conv_backward: da and a are
    the gradient and output of what winograd_forward returned (pooled, with its
    argmax, when fused); Ud = filter_transform(w, True). filter_gradient(dU)
    turns dU into the weights' gradient."""
    da, a, argmax, x, Ud = (np.ascontiguousarray(v) for v in (da, a, argmax, x, Ud))
    return _winograd_backward(launch_address(), _backward_chunk.native.address(x.dtype), da, a, argmax, x, Ud,
                              act, need_dx, chunk)


@njit(cache=True, error_model="numpy")
def _winograd_backward(launch, chunk_fn, da, a, argmax, x, Ud, act, need_dx, chunk):
    check_code(act)
    B, K = da.shape[0], da.shape[1]
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    if B == 0:
        return np.zeros((0, C, H, W), dtype=x.dtype), np.zeros((16, K, C), dtype=x.dtype), np.zeros(K, dtype=x.dtype)
    chunk = max(1, min(chunk, B))
    Q = da.shape[2] * da.shape[3]
    da3 = da.reshape((B, K, Q))
    a3 = a.reshape((B, K, Q))
    arg3 = argmax.reshape((argmax.shape[0], K, Q))
    chunks = (B + chunk - 1) // chunk
    dU_parts = np.empty((chunks, 16, K, C), dtype=x.dtype)
    db_parts = np.empty((chunks, K), dtype=x.dtype)
    dx = np.empty((B if need_dx else 0, C, H, W), dtype=x.dtype)
    parallel_for(_backward_chunk, launch, chunk_fn, chunks,
                 (da3, a3, arg3, x, Ud, dU_parts, db_parts, dx, act, chunk, need_dx, argmax.shape[0] > 0))
    # Slots summed in chunk order (explicit loops: see kernels/conv.py).
    n = 16 * K * C
    dU = np.zeros(n, dtype=x.dtype)
    flat = dU_parts.reshape((chunks, n))
    dbias = np.zeros(K, dtype=x.dtype)
    for c in range(chunks):
        part = flat[c]
        for i in range(n):
            dU[i] += part[i]
        for k in range(K):
            dbias[k] += db_parts[c, k]
    return dx, dU.reshape((16, K, C)), dbias
