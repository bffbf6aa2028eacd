"""2-D convolution (cross-correlation, NCHW) with a connection table and a fused
activation, forward and backward.

Connectivity is a CSR structure over (output map k, input map c) pairs, so a
full convolution and LeNet-5's C3 connection table are described alike and
absent weights simply do not exist as parameters (SPEC §3):

    conn = (conn_ptr[K+1], conn_c[nnz], conn_k[nnz])

Connection e belongs to output map conn_k[e] (the e of map k are
conn_ptr[k]:conn_ptr[k+1]) and reads input map conn_c[e]. Weights are
(nnz, Fh, Fw); for full connectivity e = k·C + c, so a (K, C, Fh, Fw) weight
array reshaped to (K·C, Fh, Fw) is already in CSR order.

The arithmetic runs in gemm_conv.py, on a dense (K, C·Fh·Fw) weight matrix:
a table's absent weights are zeros there, put in on the way in
(`dense_weights`) and dropped on the way out (`connected_weights`), so they
are never trained or counted. The products then do the absent pairs'
multiply-adds as well (C3 of LeNet-5: 96 pairs for 60), and are still several
times faster than the direct loops this module used to run; one convolution
kernel also compiles instead of two (~2.5 s of the cold compile).
Numerically the sums are the same up to their order: each absent pair adds an
exact 0·x, which changes nothing unless x is inf or NaN — then the output is
NaN, where a direct loop would have skipped that input map.
"""

import numpy as np

# Sizes live in cnn_cli/geometry.py (plain Python, shared with config validation).
from ..geometry import conv_output_size, same_padding  # noqa: F401  (re-exported)
from . import gemm_conv as gemm_k

# ---------------------------------------------------------------- connectivity (plain NumPy)


def _csr(conn_ptr, conn_c, conn_k):
    return tuple(np.ascontiguousarray(v, dtype=np.int64) for v in (conn_ptr, conn_c, conn_k))


def full_connections(C, K):
    """Every input map feeds every output map; connection e = k·C + c."""
    C, K = int(C), int(K)
    if C < 1 or K < 1:
        raise ValueError(f"need at least one input and one output map, got C={C}, K={K}")
    conn_ptr = np.arange(K + 1, dtype=np.int64) * C
    conn_c = np.tile(np.arange(C, dtype=np.int64), K)
    conn_k = np.repeat(np.arange(K, dtype=np.int64), C)
    return _csr(conn_ptr, conn_c, conn_k)


def table_connections(table):
    """CSR connectivity from a (C, K) table: table[c][k] True = input map c feeds output map k.

    Connections are numbered filter-major (all of map 0, then map 1, ...; input
    maps increasing within a filter), the order in which weights are stored.
    """
    t = np.asarray(table)
    if t.ndim != 2:
        raise ValueError(f"connection table must be 2-D (inputs, outputs), got shape {t.shape}")
    if t.dtype != np.bool_:
        if not np.isin(t, (0, 1)).all():
            raise ValueError("connection table entries must be booleans (or 0/1)")
        t = t.astype(np.bool_)
    C, K = t.shape
    if C < 1 or K < 1:
        raise ValueError(f"connection table must be non-empty, got shape {t.shape}")
    conn_k, conn_c = np.nonzero(t.T)  # row-major over (k, c): filter-major order
    conn_ptr = np.zeros(K + 1, dtype=np.int64)
    np.cumsum(np.bincount(conn_k, minlength=K), out=conn_ptr[1:])
    return _csr(conn_ptr, conn_c, conn_k)


def check_connections(conn_ptr, conn_c, C, K, nnz):
    """conn_k of a valid CSR over C input and K output maps with nnz weights;
    ValueError otherwise (a wrong CSR would put weights in the wrong place)."""
    conn_ptr = np.asarray(conn_ptr, dtype=np.int64)
    conn_c = np.asarray(conn_c, dtype=np.int64)
    if conn_ptr.shape != (K + 1,) or conn_ptr[0] != 0 or conn_ptr[K] != nnz or conn_c.shape != (nnz,):
        raise ValueError("conv2d: connection arrays do not match the weight count")
    counts = np.diff(conn_ptr)
    if (counts < 0).any():
        raise ValueError("conv2d: conn_ptr must be non-decreasing")
    if nnz and (conn_c.min() < 0 or conn_c.max() >= C):
        raise ValueError("conv2d: connection reads an input map that does not exist")
    conn_k = np.repeat(np.arange(K, dtype=np.int64), counts)
    if len(np.unique(conn_k * C + conn_c)) != nnz:
        raise ValueError("conv2d: a (filter, input map) pair is connected twice")
    return conn_k


def dense_index(conn_c, conn_k, C, Fh, Fw):
    """Where each CSR weight (nnz, Fh, Fw), flattened, sits in the flattened dense
    (K, C·Fh·Fw) matrix of gemm_conv: row k, column (c·Fh + m)·Fw + n."""
    taps = Fh * Fw
    return (((conn_k * C + conn_c) * taps)[:, None] + np.arange(taps)).reshape(-1)


def dense_weights(w, index, K, C):
    """The (K, C·Fh·Fw) matrix of CSR weights w (nnz, Fh, Fw), zero where no connection."""
    dense = np.zeros((K, C * w.shape[1] * w.shape[2]), dtype=w.dtype)
    dense.reshape(-1)[index] = w.reshape(-1)
    return dense


def connected_weights(dense, index, shape):
    """The entries of a dense (K, C·Fh·Fw) matrix (a weight gradient) that are connections."""
    return dense.reshape(-1)[index].reshape(shape)


# ---------------------------------------------------------------- forward and backward


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
    a, _, _ = gemm_k.conv_gemm_forward(x, dense_weights(w, index, K, C), bias, fh, fw, sh, sw, pt, pl, out_h, out_w,
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
    dx, dw, dbias = gemm_k.conv_gemm_backward(da, a, no_argmax, x, dense_weights(w, index, K, C), no_columns,
                                              fh, fw, sh, sw, pt, pl, oh, ow, act, need_dx,
                                              gemm_k.chunk_images(C * fh * fw, oh * ow))
    return dx, connected_weights(dw, index, w.shape), dbias
