"""2-D convolution (cross-correlation, NCHW) with fused activation, forward and backward.

Connectivity is a CSR structure over (output map k, input map c) pairs, so full
convolution and LeNet-5's C3 connection table share one code path and absent
weights simply do not exist (SPEC §3):

    conn = (conn_ptr[K+1], conn_c[nnz], conn_k[nnz], tconn_ptr[C+1], tconn_e[nnz])

Connection e belongs to output map conn_k[e] (the e of map k are
conn_ptr[k]:conn_ptr[k+1]) and reads input map conn_c[e]; tconn_e lists, per
input map c and in increasing order, the connections that read c (the
transpose, needed by the input gradient). Weights are (nnz, Fh, Fw); for full
connectivity e = k·C + c, so a (K, C, Fh, Fw) weight array reshaped to
(K·C, Fh, Fw) is already in CSR order.

Design choices, all for speed on few cores without giving up determinism:

- Every parallel item owns the memory it writes (an output plane, an input-gradient
  plane, one weight-gradient entry), so there are no races and no atomics, and
  every sum runs in one fixed sequential order: results are bitwise identical
  whatever the thread count. The parallel axes are B·K (forward), B·C (input
  gradient) and nnz·Fh·Fw (weight gradient), so batch 1 still has parallelism.
- Padding is never materialised. For each kernel tap m (row) and n (column) the
  range of output positions whose tap lands on a real input pixel is computed
  once (`_tap_ranges`); loops run only over that range, so the innermost loop
  has no bounds test and zero padding contributes nothing, exactly as zeros would.
- The innermost loop always runs over output columns j: contiguous in the
  output / delta, and contiguous in the input when the column stride is 1 (a
  separate loop for that case lets LLVM emit plain vector loads). Indices are
  cast to uint64 there because Numba's negative-index wraparound on signed
  indices defeats the vectoriser.
- Sums over the batch for dw and dbias would be scalar dot products, which LLVM
  may not vectorise without fastmath (it would reorder the additions). Instead
  each item accumulates element-wise into its own scratch row (vectorised,
  order fixed), then adds that row up sequentially.
- The activation is applied to each output plane in place after accumulation
  (`activate_span`), and backward forms δ = ∂L/∂a · f'(a) once from the stored
  output, so no pre-activation is ever kept.
"""

import numpy as np
from numba import njit, types, uint64

# Sizes live in cnn_cli/geometry.py (plain Python, shared with config validation).
from ..geometry import conv_output_size, same_padding  # noqa: F401  (re-exported)
from .activations import activate_span, activation_backward, check_code
from .parallel import c_array, item_args, launch_address, native_item, parallel_for

I64 = types.int64
IDX = c_array(I64, 1)


# ---------------------------------------------------------------- connectivity (plain NumPy)


def _csr(conn_ptr, conn_c, conn_k, C):
    """Complete (conn_ptr, conn_c, conn_k) with the per-input-map transpose."""
    counts = np.bincount(conn_c, minlength=C)
    tconn_ptr = np.zeros(C + 1, dtype=np.int64)
    np.cumsum(counts, out=tconn_ptr[1:])
    # A stable sort keeps the connection indices of each input map increasing,
    # which fixes the order of the input-gradient sum.
    tconn_e = np.argsort(conn_c, kind="stable").astype(np.int64)
    return (
        np.ascontiguousarray(conn_ptr, dtype=np.int64),
        np.ascontiguousarray(conn_c, dtype=np.int64),
        np.ascontiguousarray(conn_k, dtype=np.int64),
        tconn_ptr,
        tconn_e,
    )


def full_connections(C, K):
    """Every input map feeds every output map; connection e = k·C + c."""
    C, K = int(C), int(K)
    if C < 1 or K < 1:
        raise ValueError(f"need at least one input and one output map, got C={C}, K={K}")
    conn_ptr = np.arange(K + 1, dtype=np.int64) * C
    conn_c = np.tile(np.arange(C, dtype=np.int64), K)
    conn_k = np.repeat(np.arange(K, dtype=np.int64), C)
    return _csr(conn_ptr, conn_c, conn_k, C)


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
    conn_k = conn_k.astype(np.int64)
    conn_c = conn_c.astype(np.int64)
    conn_ptr = np.zeros(K + 1, dtype=np.int64)
    np.cumsum(np.bincount(conn_k, minlength=K), out=conn_ptr[1:])
    return _csr(conn_ptr, conn_c, conn_k, C)


# ---------------------------------------------------------------- shared helpers


@njit(cache=True, error_model="numpy")
def _tap_ranges(f, out_n, in_n, s, p):
    """For each tap m < f, the output positions [lo[m], hi[m]) whose tap m lands on a
    real input pixel: 0 ≤ i·s + m − p < in_n. Everything outside is padding."""
    lo = np.empty(f, dtype=np.int64)
    hi = np.empty(f, dtype=np.int64)
    for m in range(f):
        a = p - m  # need i·s ≥ a
        first = (a + s - 1) // s if a > 0 else 0
        b = in_n - 1 + p - m  # need i·s ≤ b
        last = b // s + 1 if b >= 0 else 0
        first = min(first, out_n)
        last = min(last, out_n)
        lo[m] = first
        hi[m] = max(last, first)
    return lo, hi


@njit(cache=True, error_model="numpy")
def _check_conv(C, K, nnz, conn_ptr, conn_c, bias_size, sh, sw, pt, pl, out_h, out_w):
    """Shape checks: a wrong CSR would otherwise read out of bounds silently."""
    if conn_ptr.size != K + 1 or conn_ptr[0] != 0 or conn_ptr[K] != nnz or conn_c.size != nnz:
        raise ValueError("conv2d: connection arrays do not match the weight count")
    if bias_size != K:
        raise ValueError("conv2d: bias size differs from the number of output maps")
    for k in range(K):
        if conn_ptr[k + 1] < conn_ptr[k]:
            raise ValueError("conv2d: conn_ptr must be non-decreasing")
    for e in range(nnz):
        if conn_c[e] < 0 or conn_c[e] >= C:
            raise ValueError("conv2d: connection reads an input map that does not exist")
    if sh < 1 or sw < 1 or pt < 0 or pl < 0 or out_h < 0 or out_w < 0:
        raise ValueError("conv2d: strides must be >= 1, padding and output size >= 0")


# ---------------------------------------------------------------- forward


# Each parallel loop below runs one serial item function per index through
# the shared parallel loop of kernels/parallel.py: items compile once, on their
# own, and the kernels around them are serial functions.


@njit(cache=True, error_model="numpy")
def _forward_map(x, w, bv, conn_ptr, conn_c, out, b, k, sh, sw, pt, pl, ilo, ihi, jlo, jhi):
    """out[b, k] = bv + Σ over the connections of k (before the activation)."""
    out_h, out_w = out.shape[2], out.shape[3]
    Fh, Fw = w.shape[1], w.shape[2]
    for i in range(out_h):
        for j in range(out_w):
            out[b, k, i, uint64(j)] = bv
    for e in range(conn_ptr[k], conn_ptr[k + 1]):
        c = conn_c[e]
        for m in range(Fh):
            for i in range(ilo[m], ihi[m]):
                r = i * sh + m - pt
                for n in range(Fw):
                    wv = w[e, m, n]
                    c0 = n - pl
                    if sw == 1:
                        for j in range(jlo[n], jhi[n]):
                            out[b, k, i, uint64(j)] += wv * x[b, c, r, uint64(j + c0)]
                    else:
                        for j in range(jlo[n], jhi[n]):
                            out[b, k, i, uint64(j)] += wv * x[b, c, r, uint64(j * sw + c0)]


@native_item(lambda f: (c_array(f, 4), c_array(f, 3), c_array(f, 1), IDX, IDX, c_array(f, 4), c_array(f, 1),
                        I64, I64, I64, I64, IDX, IDX, IDX, IDX, I64))
@njit(cache=True, error_model="numpy")
def _forward_item(bk, context):
    """Output map bk = b·K + k, activation included: one parallel item of conv2d_forward."""
    x, w, bias, conn_ptr, conn_c, out, flat, sh, sw, pt, pl, ilo, ihi, jlo, jhi, act = item_args(context)
    K = out.shape[1]
    plane = out.shape[2] * out.shape[3]
    b = bk // K
    k = bk - b * K
    _forward_map(x, w, bias[k], conn_ptr, conn_c, out, b, k, sh, sw, pt, pl, ilo, ihi, jlo, jhi)
    activate_span(flat, bk * plane, (bk + 1) * plane, act)


def conv2d_forward(x, w, bias, conn_ptr, conn_c, sh, sw, pt, pl, out_h, out_w, act):
    """a[b,k,i,j] = act(bias[k] + Σ_{e of k} Σ_m Σ_n w[e,m,n] · x_pad[b, conn_c[e], i·sh+m, j·sw+n]).

    x (B,C,H,W), w (nnz,Fh,Fw), bias (K,). x_pad has pt zero rows on top and pl
    zero columns on the left; bottom/right padding is implied by out_h/out_w.
    """
    x, w, bias = np.ascontiguousarray(x), np.ascontiguousarray(w), np.ascontiguousarray(bias)
    conn_ptr = np.ascontiguousarray(conn_ptr, dtype=np.int64)
    conn_c = np.ascontiguousarray(conn_c, dtype=np.int64)
    return _conv2d_forward(launch_address(), _forward_item.native.address(x.dtype), x, w, bias, conn_ptr, conn_c,
                           sh, sw, pt, pl, out_h, out_w, act)


@njit(cache=True, error_model="numpy")
def _conv2d_forward(launch, item_fn, x, w, bias, conn_ptr, conn_c, sh, sw, pt, pl, out_h, out_w, act):
    check_code(act)
    B, C, H, W = x.shape
    nnz, Fh, Fw = w.shape
    K = conn_ptr.size - 1
    _check_conv(C, K, nnz, conn_ptr, conn_c, bias.size, sh, sw, pt, pl, out_h, out_w)
    ilo, ihi = _tap_ranges(Fh, out_h, H, sh, pt)
    jlo, jhi = _tap_ranges(Fw, out_w, W, sw, pl)
    out = np.empty((B, K, out_h, out_w), dtype=x.dtype)
    flat = out.reshape(out.size)
    parallel_for(_forward_item, launch, item_fn, B * K, (x, w, bias, conn_ptr, conn_c, out, flat, sh, sw, pt, pl,
                                                         ilo, ihi, jlo, jhi, act))
    return out


# ---------------------------------------------------------------- backward


@njit(cache=True, error_model="numpy")
def _bias_grad(delta, row, k):
    """Σ δ[:, k]: column-wise partial sums in a scratch row (vectorised over j,
    fixed order over b and i), then one sequential sum."""
    B, _, oh, ow = delta.shape
    for j in range(ow):
        row[uint64(j)] = 0
    for b in range(B):
        for i in range(oh):
            for j in range(ow):
                row[uint64(j)] += delta[b, k, i, uint64(j)]
    s = delta.dtype.type(0)
    for j in range(ow):
        s += row[uint64(j)]
    return s


@njit(cache=True, error_model="numpy")
def _weight_grad(delta, x, row, k, c, m, n, sh, sw, pt, pl, ilo, ihi, jlo, jhi):
    """dw for one tap (m, n) of the connection (c → k), same scratch-row scheme."""
    B = delta.shape[0]
    ow = delta.shape[3]
    c0 = n - pl
    j0 = jlo[n]
    j1 = jhi[n]
    for j in range(ow):
        row[uint64(j)] = 0
    for b in range(B):
        for i in range(ilo[m], ihi[m]):
            r = i * sh + m - pt
            if sw == 1:
                for j in range(j0, j1):
                    row[uint64(j)] += delta[b, k, i, uint64(j)] * x[b, c, r, uint64(j + c0)]
            else:
                for j in range(j0, j1):
                    row[uint64(j)] += delta[b, k, i, uint64(j)] * x[b, c, r, uint64(j * sw + c0)]
    s = delta.dtype.type(0)
    for j in range(j0, j1):
        s += row[uint64(j)]
    return s


@native_item(lambda f: (c_array(f, 4), c_array(f, 4), c_array(f, 2), c_array(f, 2), c_array(f, 1), c_array(f, 3),
                        IDX, IDX, I64, I64, I64, I64, IDX, IDX, IDX, IDX))
@njit(cache=True, error_model="numpy")
def _param_grad_item(it, context):
    """Item it of conv2d_backward's parameter loop: dbias[it] for it < K, else one
    weight entry (e, m, n) with e·Fh·Fw + m·Fw + n = it − K."""
    delta, x, brow, wrow, dbias, dw, conn_k, conn_c, sh, sw, pt, pl, ilo, ihi, jlo, jhi = item_args(context)
    K = dbias.size
    if it < K:
        dbias[it] = _bias_grad(delta, brow[it], it)
        return
    Fh, Fw = dw.shape[1], dw.shape[2]
    taps = Fh * Fw
    t = it - K
    e = t // taps
    m = (t - e * taps) // Fw
    n = t - e * taps - m * Fw
    dw[e, m, n] = _weight_grad(delta, x, wrow[t], conn_k[e], conn_c[e], m, n, sh, sw, pt, pl, ilo, ihi, jlo, jhi)


@native_item(lambda f: (c_array(f, 4), c_array(f, 3), c_array(f, 4), IDX, IDX, IDX, I64, I64, I64, I64,
                        IDX, IDX, IDX, IDX))
@njit(cache=True, error_model="numpy")
def _input_grad_plane(bc, context):
    """dx[b, c] for plane bc = b·C + c: every connection reading c scatters w·δ back
    through its windows, overlapping windows adding up in a fixed order. One
    parallel item of conv2d_backward."""
    delta, w, dx, tconn_ptr, tconn_e, conn_k, sh, sw, pt, pl, ilo, ihi, jlo, jhi = item_args(context)
    b = bc // dx.shape[1]
    c = bc - b * dx.shape[1]
    H, W = dx.shape[2], dx.shape[3]
    Fh, Fw = w.shape[1], w.shape[2]
    for r in range(H):
        for q in range(W):
            dx[b, c, r, uint64(q)] = 0
    for t in range(tconn_ptr[c], tconn_ptr[c + 1]):
        e = tconn_e[t]
        k = conn_k[e]
        for m in range(Fh):
            for i in range(ilo[m], ihi[m]):
                r = i * sh + m - pt
                for n in range(Fw):
                    wv = w[e, m, n]
                    c0 = n - pl
                    if sw == 1:
                        for j in range(jlo[n], jhi[n]):
                            dx[b, c, r, uint64(j + c0)] += wv * delta[b, k, i, uint64(j)]
                    else:
                        for j in range(jlo[n], jhi[n]):
                            dx[b, c, r, uint64(j * sw + c0)] += wv * delta[b, k, i, uint64(j)]


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
    if a.shape != da.shape:
        raise ValueError("conv2d_backward: da, a and x shapes disagree")
    delta = activation_backward(da, a, act)  # δ = da · f'(a)
    x, w = np.ascontiguousarray(x), np.ascontiguousarray(w)
    conn = tuple(np.ascontiguousarray(v, dtype=np.int64) for v in conn)
    return _conv2d_backward(launch_address(), _param_grad_item.native.address(x.dtype),
                            _input_grad_plane.native.address(x.dtype), delta, x, w, conn, sh, sw, pt, pl, need_dx)


@njit(cache=True, error_model="numpy")
def _conv2d_backward(launch, param_fn, input_fn, delta, x, w, conn, sh, sw, pt, pl, need_dx):
    conn_ptr, conn_c, conn_k, tconn_ptr, tconn_e = conn
    B, K, oh, ow = delta.shape
    C = x.shape[1]
    H = x.shape[2]
    W = x.shape[3]
    nnz, Fh, Fw = w.shape
    _check_conv(C, K, nnz, conn_ptr, conn_c, K, sh, sw, pt, pl, oh, ow)
    if x.shape[0] != B:
        raise ValueError("conv2d_backward: da, a and x shapes disagree")
    if conn_k.size != nnz or tconn_ptr.size != C + 1 or tconn_e.size != nnz:
        raise ValueError("conv2d_backward: connection arrays do not match the weight count")
    ilo, ihi = _tap_ranges(Fh, oh, H, sh, pt)
    jlo, jhi = _tap_ranges(Fw, ow, W, sw, pl)
    dt = x.dtype

    # dbias (one output map per item) and dw (one weight entry (e, m, n) per
    # item) in one parallel loop: column-wise partial sums in a scratch row
    # (vectorised over j, fixed order over b and i), then one sequential sum.
    dbias = np.empty(K, dtype=dt)
    brow = np.empty((K, ow), dtype=dt)
    dw = np.empty((nnz, Fh, Fw), dtype=dt)
    wrow = np.empty((nnz * Fh * Fw, ow), dtype=dt)
    parallel_for(_param_grad_item, launch, param_fn, K + nnz * Fh * Fw,
                 (delta, x, brow, wrow, dbias, dw, conn_k, conn_c, sh, sw, pt, pl, ilo, ihi, jlo, jhi))

    if not need_dx:
        return np.empty((0, 0, 0, 0), dtype=dt), dw, dbias

    # dx: one input plane per item; every connection reading c scatters
    # w·δ back through its windows. Overlapping windows add up in a fixed order.
    dx = np.empty((B, C, H, W), dtype=dt)
    parallel_for(_input_grad_plane, launch, input_fn, B * C,
                 (delta, w, dx, tconn_ptr, tconn_e, conn_k, sh, sw, pt, pl, ilo, ihi, jlo, jhi))
    return dx, dw, dbias
