"""The tile transforms of kernels/winograd.py, one plane at a time, for tiles of
2×2 outputs (F(2×2, 3×3), `tile` = 2) or 4×4 (F(4×4, 3×3), `tile` = 4).

A plane's tile t (tile row ty, column tx: t = ty·tw + tx) is stored at
base + ξ·step + t of a chunk's flat Winograd-domain array, for each of its
(tile + 2)² domain positions ξ. The arithmetic is explicit vector code, eight
tiles a call (runtime/tile_vector.py): tile rows are too short for LLVM's
vectoriser, and every transform reads or writes rows at a stride of `tile`.
"""

import numpy as np
from numba import njit

from .runtime.tile_gather import (gather_gradient_tiles8_2, gather_gradient_tiles8_4, gather_input_channels8_2,
                                  gather_input_channels8_4, gather_input_tiles8_2,
                                  gather_input_tiles8_4, scatter_folded_tiles8_2, scatter_folded_tiles8_4,
                                  scatter_output_tiles8_2, scatter_output_tiles8_4, scatter_pooled_tiles8_2,
                                  scatter_pooled_tiles8_4)
from .runtime.tile_vector import (adjoint_tiles8_2, adjoint_tiles8_4, folded_output_tiles8_2, folded_output_tiles8_4,
                                  gradient_tiles8_2, gradient_tiles8_4, input_tiles8_2, input_tiles8_4,
                                  output_tiles8_2, output_tiles8_4, pooled_output_tiles8_2, pooled_output_tiles8_4)
from .runtime.vector import VECTOR


@njit(cache=True, error_model="numpy")
def input_transform(plane, Vf, base, step, tile):
    """V = Bᵀ d B for every tile of one (H, W) plane, d the (tile + 2)² patch from
    one row and column before the tile to two after it, zero outside the plane."""
    H, W = plane.shape
    th, tw = H // tile, W // tile
    for ty in range(th):
        for tx in range(0, tw, VECTOR):
            at, count = base + ty * tw + tx, min(VECTOR, tw - tx)
            if tile == 2:
                input_tiles8_2(plane, 2 * ty - 1, 2 * tx - 1, Vf, at, step, count)
            else:
                input_tiles8_4(plane, 4 * ty - 1, 4 * tx - 1, Vf, at, step, count)


@njit(cache=True, error_model="numpy")
def output_transform(Mf, base, step, plane, beta, relu, tile):
    """plane = Aᵀ M A + beta (then max(·, 0) if relu) for every tile of one (oh, ow) output plane."""
    oh, ow = plane.shape
    th, tw = oh // tile, ow // tile
    for ty in range(th):
        for tx in range(0, tw, VECTOR):
            at, count = base + ty * tw + tx, min(VECTOR, tw - tx)
            if tile == 2:
                output_tiles8_2(Mf, at, step, plane, 2 * ty, 2 * tx, beta, relu, count)
            else:
                output_tiles8_4(Mf, at, step, plane, 4 * ty, 4 * tx, beta, relu, count)


@njit(cache=True, error_model="numpy")
def pooled_output_transform(Mf, base, step, pooled, arg, beta, relu, tile):
    """output_transform's plane 2×2 max-pooled into `pooled`, with the maxima's flat
    indices in `arg`, without writing the plane."""
    th, tw = 2 * pooled.shape[0] // tile, 2 * pooled.shape[1] // tile
    for ty in range(th):
        for tx in range(0, tw, VECTOR):
            at, count = base + ty * tw + tx, min(VECTOR, tw - tx)
            if tile == 2:
                pooled_output_tiles8_2(Mf, at, step, pooled, arg, 2 * ty, 2 * tx, beta, relu, count)
            else:
                pooled_output_tiles8_4(Mf, at, step, pooled, arg, 4 * ty, 4 * tx, beta, relu, count)


@njit(cache=True, error_model="numpy")
def gradient_transform(delta, dMf, base, step, tile):
    """dM = A δ Aᵀ for every tile of one (oh, ow) gradient plane: the transpose of
    the output transform."""
    oh, ow = delta.shape
    th, tw = oh // tile, ow // tile
    for ty in range(th):
        for tx in range(0, tw, VECTOR):
            at, count = base + ty * tw + tx, min(VECTOR, tw - tx)
            if tile == 2:
                gradient_tiles8_2(delta, 2 * ty, 2 * tx, dMf, at, step, count)
            else:
                gradient_tiles8_4(delta, 4 * ty, 4 * tx, dMf, at, step, count)


# ---------------------------------------------------------------- a chunk's planes at once
#
# Maps of at least VECTOR tiles a row go plane by plane, tile row by tile row
# (above); smaller ones eight tiles of the chunk at a time, gathered and
# scattered through the table `where` (runtime/tile_gather.py), so no lane
# stays empty at the end of a short row. Planes live in 4-D arrays; image b of
# the chunk is planes[b − shift].


@njit(cache=True, error_model="numpy")
def tile_table(b0, b1, H, W, tile):
    """(3, tiles): image, tile row and tile column of each of the chunk's tiles, in
    the order of the Winograd-domain arrays (image, then row, then column)."""
    th, tw = H // tile, W // tile
    where = np.empty((3, (b1 - b0) * th * tw), dtype=np.int64)
    t = 0
    for b in range(b0, b1):
        for ty in range(th):
            for tx in range(tw):
                where[0, t], where[1, t], where[2, t] = b, ty, tx
                t += 1
    return where


@njit(cache=True, error_model="numpy")
def transform_planes(planes, shift, where, D, tile, gradient):
    """D[ξ, c, t] for every channel c of the planes and every tile t of the table:
    Bᵀ d B of the tiles' input patches, or with `gradient` A δ Aᵀ of the tiles
    of gradient planes."""
    C, H, W = planes.shape[1], planes.shape[2], planes.shape[3]
    tiles = where.shape[1]
    Df, step = D.reshape(D.size), D.shape[1] * tiles
    if W // tile >= VECTOR:
        T = (H // tile) * (W // tile)
        b0 = where[0, 0]
        for t in range(0, tiles, T):
            for c in range(C):
                plane = planes[b0 + t // T - shift, c]
                if gradient:
                    gradient_transform(plane, Df, c * tiles + t, step, tile)
                else:
                    input_transform(plane, Df, c * tiles + t, step, tile)
        return
    for c in range(C):
        for t0 in range(0, tiles, VECTOR):
            at, count = c * tiles + t0, min(VECTOR, tiles - t0)
            if gradient and tile == 2:
                gather_gradient_tiles8_2(planes, shift, c, where, t0, Df, at, step, count)
            elif gradient:
                gather_gradient_tiles8_4(planes, shift, c, where, t0, Df, at, step, count)
            elif tile == 2:
                gather_input_tiles8_2(planes, shift, c, where, t0, Df, at, step, count)
            else:
                gather_input_tiles8_4(planes, shift, c, where, t0, Df, at, step, count)


@njit(cache=True, error_model="numpy")
def transform_planes_by_tile(planes, shift, where, Dt, tile):
    """Dt[ξ, t, c] = Bᵀ d B of tile t's input patch in channel c: transform_planes's
    V with each matrix transposed (tiles by channels), eight channels of one
    tile a call (gathered from eight planes)."""
    C = planes.shape[1]
    tiles = where.shape[1]
    Df, step = Dt.reshape(Dt.size), Dt.shape[1] * C
    for t in range(tiles):
        b, top, left = where[0, t] - shift, tile * where[1, t] - 1, tile * where[2, t] - 1
        for c0 in range(0, C, VECTOR):
            count = min(VECTOR, C - c0)
            if tile == 2:
                gather_input_channels8_2(planes, b, top, left, c0, Df, t * C + c0, step, count)
            else:
                gather_input_channels8_4(planes, b, top, left, c0, Df, t * C + c0, step, count)


@njit(cache=True, error_model="numpy")
def transform_outputs(M, k, planes, shift, channel, where, beta, relu, tile):
    """planes[b − shift, channel] = Aᵀ M A + beta (then max(·, 0) if relu) for the
    images of the table, M's matrices' row k."""
    H, W = planes.shape[2], planes.shape[3]
    tiles = where.shape[1]
    Mf, step = M.reshape(M.size), M.shape[1] * tiles
    if W // tile >= VECTOR:
        T = (H // tile) * (W // tile)
        b0 = where[0, 0]
        for t in range(0, tiles, T):
            b = b0 + t // T
            output_transform(Mf, k * tiles + t, step, planes[b - shift, channel], beta, relu, tile)
        return
    for t0 in range(0, tiles, VECTOR):
        count = min(VECTOR, tiles - t0)
        if tile == 2:
            scatter_output_tiles8_2(Mf, k * tiles + t0, step, planes, shift, channel, where, t0, beta, relu, count)
        else:
            scatter_output_tiles8_4(Mf, k * tiles + t0, step, planes, shift, channel, where, t0, beta, relu, count)


@njit(cache=True, error_model="numpy")
def transform_pooled_outputs(M, k, pooled, arg, shift, channel, where, beta, relu, tile):
    """transform_outputs 2×2 max-pooled: pooled[b − shift, channel] and the maxima's
    flat indices arg[b − shift, channel] (in the unpooled plane, as
    pool.maxpool_2x2_plane gives them), the unpooled plane never written."""
    H2, W2 = pooled.shape[2], pooled.shape[3]
    tiles = where.shape[1]
    Mf, step = M.reshape(M.size), M.shape[1] * tiles
    if 2 * W2 // tile >= VECTOR:
        T = (2 * H2 // tile) * (2 * W2 // tile)
        b0 = where[0, 0]
        for t in range(0, tiles, T):
            b = b0 + t // T - shift
            pooled_output_transform(Mf, k * tiles + t, step, pooled[b, channel], arg[b, channel], beta, relu, tile)
        return
    for t0 in range(0, tiles, VECTOR):
        count = min(VECTOR, tiles - t0)
        if tile == 2:
            scatter_pooled_tiles8_2(Mf, k * tiles + t0, step, pooled, shift, channel, where, t0, beta, relu, count, arg)
        else:
            scatter_pooled_tiles8_4(Mf, k * tiles + t0, step, pooled, shift, channel, where, t0, beta, relu, count, arg)


@njit(cache=True, error_model="numpy")
def transform_input_gradients(D, planes, shift, where, tile):
    """planes[b − shift, c] = ∂L/∂x of the table's images, from D[ξ, c, t] = ∂L/∂V of
    their tiles (V = Bᵀ d B): each tile's patch gradient B (∂L/∂V) Bᵀ, made in
    place in D, then every pixel summed from the patches that cover it (they
    overlap by two rows and columns; padding positions are dropped)."""
    C, H, W = planes.shape[1], planes.shape[2], planes.shape[3]
    tiles = where.shape[1]
    Df, step = D.reshape(D.size), D.shape[1] * tiles
    th, tw = H // tile, W // tile
    T = th * tw
    for c in range(C):  # channel by channel, so its patch gradients are still in L1 when summed
        for t0 in range(0, tiles, VECTOR):
            if tile == 2:
                adjoint_tiles8_2(Df, c * tiles + t0, step, min(VECTOR, tiles - t0))
            else:
                adjoint_tiles8_4(Df, c * tiles + t0, step, min(VECTOR, tiles - t0))
        if tw >= VECTOR:
            for t in range(0, tiles, T):
                plane = planes[where[0, t] - shift, c]
                for ty in range(th):
                    for tx in range(0, tw, VECTOR):
                        count = min(VECTOR, tw - tx)
                        if tile == 2:
                            folded_output_tiles8_2(Df, c * tiles + t, step, T, plane, 2 * ty, 2 * tx, count)
                        else:
                            folded_output_tiles8_4(Df, c * tiles + t, step, T, plane, 4 * ty, 4 * tx, count)
        else:
            for t0 in range(0, tiles, VECTOR):
                count = min(VECTOR, tiles - t0)
                if tile == 2:
                    scatter_folded_tiles8_2(Df, c * tiles, step, planes, shift, c, where, t0, count)
                else:
                    scatter_folded_tiles8_4(Df, c * tiles, step, planes, shift, c, where, t0, count)
