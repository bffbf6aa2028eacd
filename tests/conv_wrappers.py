"""The convolution kernels behind the interface the tests use: CSR weights
(connections, Fh, Fw) in, CSR gradients out, as a connection table stores them.

The layers do this mapping themselves (nn/layers.py Conv2D); these wrappers
let kernel tests call one function per direction without building a layer.
"""

import numpy as np
from numba import njit

from cnn_cli.kernels import conv as gemm_k
from cnn_cli.kernels import lowering
from cnn_cli.spec.tables import (  # noqa: F401  (re-exported for the tests)
    check_connections, connected_weights, dense_index, dense_weights, full_connections, table_connections,
)
from cnn_cli.spec.geometry import ConvGeometry, conv_output_size, same_padding  # noqa: F401

def _checked(x, w, conn_ptr, conn_c, K, sh, sw, pt, pl, oh, ow):
    """The dense-position index of w's entries, after checking the geometry."""
    if x.ndim != 4 or w.ndim != 3:
        raise ValueError("conv2d: x must be (B, C, H, W) and w (connections, Fh, Fw)")
    if sh < 1 or sw < 1 or pt < 0 or pl < 0 or oh < 0 or ow < 0:
        raise ValueError("conv2d: strides must be >= 1, padding and output size >= 0")
    C = x.shape[1]
    conn_k = check_connections(conn_ptr, conn_c, C, K, w.shape[0])
    return dense_index(np.asarray(conn_c, dtype=np.int64), conn_k, C, w.shape[1], w.shape[2])

def conv2d_forward(x, w, bias, conn_ptr, conn_c, sh, sw, pt, pl, out_h, out_w, act):
    """a[b,k,i,j] = act(bias[k] + Σ_{e of k} Σ_m Σ_n w[e,m,n] · x_pad[b, conn_c[e], i·sh+m, j·sw+n]).

    x (B,C,H,W), w (nnz,Fh,Fw), bias (K,). x_pad has pt zero rows on top and pl
    zero columns on the left; bottom/right padding is implied by out_h/out_w.
    """
    x, w, bias = np.ascontiguousarray(x), np.ascontiguousarray(w), np.ascontiguousarray(bias)
    K = len(conn_ptr) - 1
    if bias.shape != (K,):
        raise ValueError("conv2d: bias size differs from the number of output maps")
    index = _checked(x, w, conn_ptr, conn_c, K, sh, sw, pt, pl, out_h, out_w)
    C, fh, fw = x.shape[1], w.shape[1], w.shape[2]
    chunk = gemm_k.chunk_images(C * fh * fw, out_h * out_w)
    a, _, _ = gemm_k.conv_forward(x, dense_weights(w, index, K, C), bias, ConvGeometry(fh, fw, sh, sw, pt, pl, out_h, out_w),
                                       act, chunk, False, 0)
    return a

def conv2d_backward(da, a, x, w, conn, sh, sw, pt, pl, act, need_dx):
    """Gradients of conv2d_forward given da = ∂L/∂a and the forward output a.

    Returns (dx (B,C,H,W), dw (nnz,Fh,Fw), dbias (K,)); dx is a (0,0,0,0) array
    when need_dx is False (the first layer never needs it) and that work is
    skipped. With δ = da·f'(a):
      dw[e,m,n] = Σ_b Σ_i Σ_j δ[b,k,i,j] · x_pad[b,c, i·sh+m, j·sw+n]   (k, c of e)
      dbias[k]  = Σ_b Σ_i Σ_j δ[b,k,i,j]
      dx[b,c]   = Σ_{e reading c} scatter of w[e]·δ[b,k] back through every
                  window (the dilated full correlation of SPEC §3), cropped to
                  the unpadded input; pixels in no window get 0.
    """
    x, w = np.ascontiguousarray(x), np.ascontiguousarray(w)
    if a.shape != da.shape or da.ndim != 4 or x.ndim != 4 or x.shape[0] != da.shape[0]:
        raise ValueError("conv2d_backward: da, a and x shapes disagree")
    B, K, oh, ow = da.shape
    index = _checked(x, w, conn[0], conn[1], K, sh, sw, pt, pl, oh, ow)
    C, fh, fw = x.shape[1], w.shape[1], w.shape[2]
    no_argmax = np.empty((0, K, 0, 0), dtype=np.int32)  # not fused with a pooling
    no_columns = np.empty((0, 0, 0), dtype=x.dtype)  # none kept: each chunk lowers its images again
    dx, dw, dbias = gemm_k.conv_backward(da, a, no_argmax, x, dense_weights(w, index, K, C), no_columns,
                                              ConvGeometry(fh, fw, sh, sw, pt, pl, oh, ow), act, need_dx,
                                              gemm_k.chunk_images(C * fh * fw, oh * ow))
    return dx, connected_weights(dw, index, w.shape), dbias

# ---------------------------------------------------------------- lowering alone

@njit(cache=True)
def im2col(x, fh, fw, sh, sw, pt, pl, oh, ow):
    """cols[(c·fh+m)·fw+n, b·P + i·ow + j] = x_pad[b, c, i·sh+m, j·sw+n]; padding reads 0."""
    B, C, H, W = x.shape
    cols = np.empty((C * fh * fw, B * oh * ow), dtype=x.dtype)
    geo = ConvGeometry(fh, fw, sh, sw, pt, pl, oh, ow)
    row_lo, row_hi, col_lo, col_hi = lowering.taps(geo, H, W)
    lowering.im2col_into(x, 0, B, cols, geo, row_lo, row_hi, col_lo, col_hi)
    return cols

@njit(cache=True)
def col2im(dcols, B, C, H, W, fh, fw, sh, sw, pt, pl, oh, ow):
    """The adjoint of im2col: dx[b, c, h, w] = Σ of the column entries that read x[b, c, h, w].
    Entries that read padding are dropped; overlapping windows add up."""
    dx = np.zeros((B, C, H, W), dtype=dcols.dtype)
    geo = ConvGeometry(fh, fw, sh, sw, pt, pl, oh, ow)
    row_lo, row_hi, col_lo, col_hi = lowering.taps(geo, H, W)
    lowering.col2im_add(dcols, 0, B, dx, geo, row_lo, row_hi, col_lo, col_hi)
    return dx
