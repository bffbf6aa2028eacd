"""The tile transforms of kernels/winograd.py, one plane at a time, for tiles of
2×2 outputs (F(2×2, 3×3), `tile` = 2) or 4×4 (F(4×4, 3×3), `tile` = 4).

A plane's tile t (tile row ty, column tx: t = ty·tw + tx) is stored at
base + ξ·step + t of a chunk's flat Winograd-domain array, for each of its
(tile + 2)² domain positions ξ. The arithmetic is explicit vector code, eight
tiles a call (runtime/tile_vector.py): tile rows are too short for LLVM's
vectoriser, and every transform reads or writes rows at a stride of `tile`.
"""

from numba import njit

from .runtime.tile_vector import (gradient_tiles8_2, gradient_tiles8_4, input_tiles8_2, input_tiles8_4,
                                  output_tiles8_2, output_tiles8_4)
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
def output_transform(Mf, base, step, plane, beta, tile):
    """plane = Aᵀ M A + beta for every tile of one (oh, ow) output plane."""
    oh, ow = plane.shape
    th, tw = oh // tile, ow // tile
    for ty in range(th):
        for tx in range(0, tw, VECTOR):
            at, count = base + ty * tw + tx, min(VECTOR, tw - tx)
            if tile == 2:
                output_tiles8_2(Mf, at, step, plane, 2 * ty, 2 * tx, beta, count)
            else:
                output_tiles8_4(Mf, at, step, plane, 4 * ty, 4 * tx, beta, count)


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
