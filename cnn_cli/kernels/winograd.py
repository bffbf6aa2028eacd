"""3×3 convolutions with stride 1 and padding 1 by Winograd's minimal filtering
(Lavin & Gray 2016): F(4×4, 3×3) computes 16 outputs from 36 products instead
of 144, F(2×2, 3×3) four from 16 instead of 36.

Each tile of m×m outputs (m = 4 or 2) needs the (m + 2)² input patch d around it:

    forward       z = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
    weight grad   ∂L/∂U = Σ over tiles (A δ Aᵀ) ⊙ V,  ∂L/∂g = Gᵀ (∂L/∂U) G
    input grad    ∂L/∂V[ξ] = U[ξ]ᵀ · (A δ Aᵀ)[ξ] in the domain, then each patch's
                  B (∂L/∂V) Bᵀ summed where patches overlap (the adjoint of V)

with U = G g Gᵀ the filters and V = Bᵀ d B the patches carried into the
"Winograd domain". There, summing over channels is one matrix product per
domain position ξ ((m + 2)² of them): M[ξ] (K, tiles) = U[ξ] (K, C) · V[ξ]
(C, tiles), with 36/144 (or 16/36) of im2col's multiplications and no lowered
copy of the input. The products are runtime/small_gemm.py's, which read the
domain matrices in place (BLAS for the weight gradient of maps of 8 or more
tiles a row); the tile transforms are in kernels/winograd_tiles.py.

Accuracy: F(2×2)'s matrices hold only 0, ±1 and ±½, so its transforms are
exact but for rounding. F(4×4)'s hold up to 8 and 1/24 and lose a few more
bits: up to a few millionths of the output's scale in float32 (tests/kernels/test_winograd.py).

Chunks, determinism and the fused 2×2 max pooling work as in kernels/conv.py:
one chunk of images per parallel item (backward: a group of consecutive
chunks), weight and bias gradients in per-item slots summed in order, BLAS on
one thread. Relu and the pooling run inside the output transform with the
comparisons of the pooling kernel, so pooling ties resolve the same way.
Map sides are multiples of the tile here (winograd_tile says which tile).
"""

import numpy as np
from numba import njit, types, uint64

from .activations import IDENTITY, RELU, activate_span, check_code, delta_span
from .pool import maxpool_2x2_plane
from .runtime.blas import matmul, matmul_add, use_single_threaded_blas
from .runtime.filter_vector import (filter_gradient_tiles8_2, filter_gradient_tiles8_4, filter_tiles8_2,
                                    filter_tiles8_4)
from .runtime.parallel import c_array, item_args, launch_address, native_item, parallel_for
from .runtime.small_gemm import small_matmul
from .runtime.vector import VECTOR
from .winograd_tiles import (tile_table, transform_input_gradients, transform_outputs, transform_planes,
                             transform_planes_by_tile, transform_pooled_outputs)

use_single_threaded_blas()  # these kernels call BLAS inside parallel loops

# Bytes of Winograd-domain matrices one parallel chunk may fill: a chunk's
# transformed inputs and products ((m + 2)²·(C + K) numbers a tile) stay within
# half a core's L2 cache, so transforms and products run on cached data
# (picked by a sweep: benchmarks/RESULTS.md, Design measurements).
CHUNK_BYTES = 1 << 20
# ... but a chunk holds at least this many tiles: the products' inner dimension
# in the weight gradient, and their width in the others; an 8×8 map has only
# 4 tiles of 4×4, so the CIFAR-10 network's last block takes 16 images a chunk.
MIN_CHUNK_TILES = 64

# The backward pass cuts a batch into at least this many chunks where it can:
# with two, one per core, a core that starts late holds up the whole layer.
MIN_BACKWARD_CHUNKS = 4

# ... and the chunks are dealt out in at most this many groups of consecutive
# chunks, each group one parallel item summing its chunks' weight gradients into
# one slot: conv2's 32 chunks at batch 64 then fill 8 slots of 36·32·32 numbers,
# not 32, for the sum after them to read. A constant, never the thread count,
# so the sums keep their order (8 items keep up to 8 cores busy).
BACKWARD_GROUPS = 8

# Below this many input channels the backward pass's products are too thin
# (conv1 on RGB input has 3) and its transforms cost more than they save: the
# backward pass stays on im2col (which needs only the layer's input and output),
# the forward pass gains at any channel count.
MIN_CHANNELS = 8


def winograd_tile(kernel, stride, padding, out_hw) -> int:
    """The output tile side a conv layer's forward pass runs with here, 0 for none:
    3×3, stride 1, padding 1 on every side (output = input size); 4 when both
    sides are multiples of 4, else 2 when both are even. Its backward pass
    too when it has MIN_CHANNELS input channels (backward_on_winograd)."""
    if not (tuple(kernel) == (3, 3) and tuple(stride) == (1, 1) and tuple(padding) == (1, 1, 1, 1)):
        return 0
    for tile in (4, 2):
        if out_hw[0] % tile == 0 and out_hw[1] % tile == 0:
            return tile
    return 0


def backward_on_winograd(channels) -> bool:
    """Whether a Winograd layer with this many input channels runs its backward pass here too."""
    return channels >= MIN_CHANNELS


def chunk_images(channels, filters, height, width, itemsize, tile):
    """Images per parallel chunk of the forward pass (see CHUNK_BYTES and
    MIN_CHUNK_TILES): a function of the layer's shape only, never of the thread count."""
    tile_bytes = (tile + 2) ** 2 * (channels + filters + 2) * itemsize
    tiles = (height // tile) * (width // tile)
    return max(1, CHUNK_BYTES // (tile_bytes * tiles), -(-MIN_CHUNK_TILES // tiles))


def backward_chunk_images(channels, filters, height, width, itemsize, tile):
    """Images per parallel chunk of the backward pass: twice forward's, so the
    weight gradient's products sum over twice the tiles; a sweep picked it
    (Design measurements). The batch may then be cut finer (MIN_BACKWARD_CHUNKS),
    and the chunks are dealt out in groups (BACKWARD_GROUPS)."""
    return 2 * chunk_images(channels, filters, height, width, itemsize, tile)


def filter_transform(w, tile):
    """U = G g Gᵀ for every filter g = w[k, c] (3×3): ((tile + 2)², K, C)."""
    K, C = w.shape[:2]
    w = np.ascontiguousarray(w)
    U = np.empty(((tile + 2) ** 2, K, C), dtype=w.dtype)
    _filters(launch_address(), _filter_block.native.address(w.dtype), w.reshape(-1), U.reshape(-1), K * C, tile,
             False)
    return U


def filter_gradient(dU, tile, out=None):
    """∂L/∂g = Gᵀ (∂L/∂U) G for every (k, c): ((tile + 2)², K, C) → (K, C, 3, 3),
    written into `out` when given (C-contiguous, K·C·9 numbers)."""
    n, K, C = dU.shape
    dU = np.ascontiguousarray(dU)
    given = out is not None and out.flags.c_contiguous and out.size == K * C * 9 and out.dtype == dU.dtype
    dw = out.reshape(K, C, 3, 3) if given else np.empty((K, C, 3, 3), dtype=dU.dtype)
    _filters(launch_address(), _filter_block.native.address(dU.dtype), dw.reshape(-1), dU.reshape(-1), K * C, tile,
             True)
    return dw


# Filters per parallel item of the filter transforms: enough to repay a thread's
# start, few enough that 128×128 filters (16,384) keep two cores busy.
FILTER_BLOCK = 1024


@native_item(lambda f: (c_array(f, 1), c_array(f, 1), types.int64, types.int64, types.boolean))
@njit(cache=True, error_model="numpy")
def _filter_block(block, context):
    """One parallel item of _filters: filters block·FILTER_BLOCK …, eight a call."""
    taps, domain, filters, tile, gradient = item_args(context)
    f1 = min(filters, (block + 1) * FILTER_BLOCK)
    for f in range(block * FILTER_BLOCK, f1, VECTOR):
        count = min(VECTOR, f1 - f)
        if gradient and tile == 2:
            filter_gradient_tiles8_2(domain, f, filters, taps, count)
        elif gradient:
            filter_gradient_tiles8_4(domain, f, filters, taps, count)
        elif tile == 2:
            filter_tiles8_2(taps, f, domain, filters, count)
        else:
            filter_tiles8_4(taps, f, domain, filters, count)


@njit(cache=True, error_model="numpy")
def _filters(launch, block_fn, taps, domain, filters, tile, gradient):
    """taps (K·C, 9) → domain ((m + 2)², K·C), or back with `gradient`, in parallel blocks."""
    blocks = (filters + FILTER_BLOCK - 1) // FILTER_BLOCK
    parallel_for(_filter_block, launch, block_fn, blocks, (taps, domain, filters, tile, gradient))


@njit(cache=True, error_model="numpy")
def _domain(n, rows, tiles, dtype):
    """An (n, rows + 1, tiles) array for a chunk's n matrices in the Winograd domain,
    of which [ξ, :rows] are used. The spare row offsets the matrices from each
    other: the transforms write to all n at once, and at a distance of a
    multiple of 4 KB (rows·tiles numbers often is) all n streams fall in one
    set of the L1 cache and evict each other."""
    return np.empty((n, rows + 1, tiles), dtype=dtype)


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
    n, K = U.shape[0], U.shape[1]
    tile = 2 if n == 16 else 4
    T = (H // tile) * (W // tile)
    b0 = ch * chunk
    b1 = min(B, b0 + chunk)
    tiles = (b1 - b0) * T
    where = tile_table(b0, b1, H, W, tile)
    V = _domain(n, C, tiles, x.dtype)
    transform_planes(x, 0, where, V, tile, False)
    M = _domain(n, K, tiles, x.dtype)
    Uf, Vf, Mf = U.reshape(U.size), V.reshape(V.size), M.reshape(M.size)
    for xi in range(n):  # M[ξ] = U[ξ]·V[ξ]
        small_matmul(Uf, xi * K * C, C, 1, Vf, xi * V.shape[1] * tiles, tiles, Mf, xi * M.shape[1] * tiles, tiles,
                     K, tiles, C)
    # Map k of the chunk's images: relu and the identity inside the output transform,
    # with the pooling too when fused; other activations (and pooling, from a
    # scratch copy of a) as passes over the written plane.
    if act == RELU or act == IDENTITY:
        for k in range(K):
            if fused:
                transform_pooled_outputs(M, k, pooled, arg, 0, k, where, bias[k], act == RELU, tile)
            else:
                transform_outputs(M, k, out, 0, k, where, bias[k], act == RELU, tile)
        return
    scratch = np.empty((b1 - b0 if fused else 0, 1, H, W), dtype=x.dtype)
    for k in range(K):
        if fused:
            transform_outputs(M, k, scratch, b0, 0, where, bias[k], False, tile)
        else:
            transform_outputs(M, k, out, 0, k, where, bias[k], False, tile)
        for b in range(b0, b1):
            dst = scratch[b - b0, 0] if fused else out[b, k]
            activate_span(dst.reshape(H * W), np.int64(0), H * W, act)
            if fused:
                maxpool_2x2_plane(dst, pooled[b, k], arg[b, k], W)


def winograd_forward(x, U, bias, act, chunk, pool):
    """(y, argmax): a = f(conv(x) + bias) for U = filter_transform(w, tile); as
    kernels/conv.py's conv_forward (pool = 2: the 2×2 max pooling fused in, y
    pooled and argmax its int32 flat indices), without kept columns."""
    x, U, bias = np.ascontiguousarray(x), np.ascontiguousarray(U), np.ascontiguousarray(bias)
    return _winograd_forward(launch_address(), _forward_chunk.native.address(x.dtype), x, U, bias, act, chunk, pool)


@njit(cache=True, error_model="numpy")
def _winograd_forward(launch, chunk_fn, x, U, bias, act, chunk, pool):
    check_code(act)
    B, C, H, W = x.shape
    K = U.shape[1]
    chunk = even_chunks(B, chunk)
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


def _backward_group_signature(f):
    i, flag = types.int64, types.boolean
    return (c_array(f, 3), c_array(f, 3), c_array(types.int32, 3), c_array(f, 4), c_array(f, 3), c_array(f, 4),
            c_array(f, 2), c_array(f, 4), i, i, i, flag, flag)


@native_item(_backward_group_signature)
@njit(cache=True, error_model="numpy")
def _backward_group(g, context):
    """One parallel item of winograd_backward: chunks g·group … of the batch, one
    after the other, their ∂L/∂U summed into dU_parts[g] and their bias gradients
    into db_parts[g]; their images' input gradients to dx."""
    da3, a3, arg3, x, U, dU_parts, db_parts, dx, act, chunk, group, need_dx, fused = item_args(context)
    B = x.shape[0]
    first = g * group
    last = min((B + chunk - 1) // chunk, first + group)
    for ch in range(first, last):
        _backward_chunk(da3, a3, arg3, x, U, dU_parts[g], db_parts[g], dx, act, ch * chunk, min(B, ch * chunk + chunk),
                        need_dx, fused, ch > first)


@njit(cache=True, error_model="numpy")
def _backward_chunk(da3, a3, arg3, x, U, dU_part, db_part, dx, act, b0, b1, need_dx, fused, accumulate):
    """Images b0 … b1 − 1: their ∂L/∂U written to (or, with accumulate, added to)
    dU_part, their bias gradient to db_part, their input gradient to dx[b0:b1]."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    n, K = U.shape[0], da3.shape[1]
    tile = 2 if n == 16 else 4
    Q = da3.shape[2]
    P = H * W
    T = (H // tile) * (W // tile)
    tiles = (b1 - b0) * T
    # δ = ∂L/∂a·f'(a) over the chunk's images in one span, routed to each pooling
    # window's maximum when fused (the chunk's rows of da3, a3, arg3 are contiguous).
    span = (b1 - b0) * K * Q
    first = b0 * K * Q
    da_flat, a_flat = da3.reshape(da3.size)[first:first + span], a3.reshape(a3.size)[first:first + span]
    if fused:
        delta = np.zeros((b1 - b0, K, H, W), dtype=x.dtype)
        routed = np.empty(span, dtype=x.dtype)
        delta_span(da_flat, a_flat, routed, np.int64(0), span, act)
        arg_flat = arg3.reshape(arg3.size)[first:first + span]
        planes = delta.reshape((b1 - b0) * K, P)
        for i in range((b1 - b0) * K):
            plane, at = planes[i], i * Q
            for q in range(Q):
                plane[uint64(arg_flat[at + q])] = routed[at + q]
    else:
        delta = np.empty((b1 - b0, K, H, W), dtype=x.dtype)
        delta_span(da_flat, a_flat, delta.reshape(span), np.int64(0), span, act)
    _bias_gradient(delta, db_part, accumulate)
    # ∂L/∂U[ξ] = Σ_tiles (A δ Aᵀ)[ξ] · V[ξ]ᵀ
    where = tile_table(b0, b1, H, W, tile)
    dM = _domain(n, K, tiles, x.dtype)
    transform_planes(delta, b0, where, dM, tile, True)
    dMf = dM.reshape(dM.size)
    V = _domain(n, C, tiles, x.dtype)
    if W // tile >= VECTOR:  # V as in forward, row by row; BLAS reads it transposed
        transform_planes(x, 0, where, V, tile, False)
        for xi in range(n):
            if accumulate:
                matmul_add(dM[xi, :K], np.bool_(False), V[xi, :C], np.bool_(True), dU_part[xi])
            else:
                matmul(dM[xi, :K], np.bool_(False), V[xi, :C], np.bool_(True), dU_part[xi])
    else:  # gathered anyway: eight channels of a tile a call give Vᵀ, rows the product reads in place
        Vt = _domain(n, tiles, C, x.dtype)
        transform_planes_by_tile(x, 0, where, Vt, tile)
        Vtf, dUf = Vt.reshape(Vt.size), dU_part.reshape(dU_part.size)
        for xi in range(n):
            small_matmul(dMf, xi * dM.shape[1] * tiles, tiles, 1, Vtf, xi * Vt.shape[1] * C, C, dUf, xi * K * C, C,
                         K, C, tiles, accumulate)
    if need_dx:
        # ∂L/∂V[ξ] = U[ξ]ᵀ·∂L/∂M[ξ] (into V's array), then back to pixels.
        Uf, Vf = U.reshape(U.size), V.reshape(V.size)
        for xi in range(n):
            small_matmul(Uf, xi * K * C, 1, C, dMf, xi * dM.shape[1] * tiles, tiles, Vf, xi * V.shape[1] * tiles,
                         tiles, C, tiles, K)
        transform_input_gradients(V, dx, 0, where, tile)


# Lanes of the bias gradient's running sums: planes are added element-wise into
# this many sums (independent additions, in vectors), which are added in order last.
BIAS_LANES = 64


@njit(cache=True, error_model="numpy")
def _bias_gradient(delta, out, accumulate):
    """out[k] = Σ over the chunk's images and pixels of δ[b, k] (added to out[k] with
    accumulate), in a fixed order: each plane folded into BIAS_LANES running
    sums, image after image, then those in order."""
    n, K, P = delta.shape[0], delta.shape[1], delta.shape[2] * delta.shape[3]
    lanes = min(P, BIAS_LANES)
    acc = np.empty(lanes, dtype=delta.dtype)
    planes = delta.reshape(n, K, P)
    for k in range(K):
        for j in range(lanes):
            acc[j] = 0
        for b in range(n):
            plane = planes[b, k]
            for start in range(0, P, lanes):
                stop = min(P, start + lanes)
                for j in range(stop - start):
                    acc[uint64(j)] += plane[uint64(start + j)]
        total = delta.dtype.type(0)
        for j in range(lanes):
            total += acc[j]
        out[k] = out[k] + total if accumulate else total


def winograd_backward(da, a, argmax, x, U, act, need_dx, chunk):
    """(dx, dU ((m + 2)², K, C), dbias), as kernels/conv.py's conv_backward: da and a
    are the gradient and output of what winograd_forward returned (pooled, with
    its argmax, when fused); U = filter_transform(w, m), the forward pass's.
    filter_gradient(dU, m) turns dU into the weights' gradient."""
    da, a, argmax, x, U = (np.ascontiguousarray(v) for v in (da, a, argmax, x, U))
    return _winograd_backward(launch_address(), _backward_group.native.address(x.dtype),
                              _sum_slots.native.address(x.dtype), da, a, argmax, x, U, act, need_dx, chunk)


@native_item(lambda f: (c_array(f, 3), c_array(f, 2)))
@njit(cache=True, error_model="numpy")
def _sum_slots(xi, context):
    """One parallel item of the weight-gradient sum: domain position ξ of every
    chunk's slot, added in chunk order."""
    parts, total = item_args(context)
    out = total[xi]
    for i in range(out.size):
        out[i] = 0
    for ch in range(parts.shape[0]):
        part = parts[ch, xi]
        for i in range(out.size):
            out[uint64(i)] += part[uint64(i)]


@njit(cache=True, error_model="numpy")
def even_chunks(batch, chunk):
    """The chunk size nearest below `chunk` that cuts the batch into an even number
    of chunks (when there are more than one): two cores then get equal shares,
    where 5 chunks would keep one of them busy for 3 while the other waits.
    Depends on the batch and the layer only, never on the thread count."""
    chunk = max(1, min(chunk, batch))
    count = (batch + chunk - 1) // chunk
    if count > 1 and count % 2 == 1:
        count += 1
        chunk = (batch + count - 1) // count
    return chunk


@njit(cache=True, error_model="numpy")
def _winograd_backward(launch, chunk_fn, sum_fn, da, a, argmax, x, U, act, need_dx, chunk):
    check_code(act)
    B, K = da.shape[0], da.shape[1]
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    n = U.shape[0]
    if B == 0:
        return np.zeros((0, C, H, W), dtype=x.dtype), np.zeros((n, K, C), dtype=x.dtype), np.zeros(K, dtype=x.dtype)
    chunk = even_chunks(B, min(chunk, max(1, B // MIN_BACKWARD_CHUNKS)))
    Q = da.shape[2] * da.shape[3]
    da3 = da.reshape((B, K, Q))
    a3 = a.reshape((B, K, Q))
    arg3 = argmax.reshape((argmax.shape[0], K, Q))
    chunks = (B + chunk - 1) // chunk
    group = (chunks + BACKWARD_GROUPS - 1) // BACKWARD_GROUPS
    groups = (chunks + group - 1) // group
    dU_parts = np.empty((groups, n, K, C), dtype=x.dtype)
    db_parts = np.empty((groups, K), dtype=x.dtype)
    dx = np.empty((B if need_dx else 0, C, H, W), dtype=x.dtype)
    parallel_for(_backward_group, launch, chunk_fn, groups,
                 (da3, a3, arg3, x, U, dU_parts, db_parts, dx, act, chunk, group, need_dx, argmax.shape[0] > 0))
    # Slots summed in group order, each domain position its own parallel item.
    dU = np.empty((n, K * C), dtype=x.dtype)
    parallel_for(_sum_slots, launch, sum_fn, n, (dU_parts.reshape((groups, n, K * C)), dU))
    dbias = np.zeros(K, dtype=x.dtype)
    for c in range(groups):
        for k in range(K):
            dbias[k] += db_parts[c, k]
    return dx, dU.reshape((n, K, C)), dbias
