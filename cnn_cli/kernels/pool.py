"""Pooling kernels (NCHW): max, mean, L_p-norm and LeNet-5's trainable subsampling.

Window (ph, pw), stride (sh, sw), no padding; the output is
floor((H − ph)/sh) + 1 by floor((W − pw)/sw) + 1, so trailing rows/columns
that fit no window are dropped in forward and get zero gradient (SPEC §4).
Stride smaller than the window (overlapping windows) is allowed; backward then
adds the contributions of every window a pixel belongs to.

Every parallel item is one (b, c) plane (or one channel c for the parameter
gradients of subsampling), so each item writes only its own memory and sums
run in a fixed order: bitwise deterministic for any thread count, and even
batch 1 has C items.

One forward item and one backward item serve all four kinds (`kind` picks
the branch, outside the loops). Mean, L_p and subsampling share their loops:

- forward: s = Σ_window term(x), term = x (mean, subsampling), |x| (p = 1),
  x² (p = 2) or |x|^p; then per output s/(ph·pw) (mean, as PyTorch's
  avg_pool2d), β·s + bias then the activation (subsampling), √s or s^(1/p);
- backward: a coefficient per output, δ/(ph·pw), β·δ or δ/out^(p−1) (0 where
  out = 0), then dx[window] += coefficient · term′(x), term′ = 1, sign(x), x
  or sign(x)·|x|^(p−1).

Max pooling keeps its own loops: a running maximum and its argmax.
Two shared items and two drivers, rather than a pair per kind, keep the cold
compile short (`cnn bench`; benchmarks/RESULTS.md, Design measurements).

Loops are ordered (output row i, tap m, tap n, output column j) with j
innermost: contiguous in the output and delta, and in the input when the
column stride is 1 (a separate loop for that case lets LLVM use plain vector
loads). Max pooling is written the same way — a running maximum per output
column updated with a select — so it vectorises too, and scanning taps (m, n)
in row-major order with a strict `>` keeps the FIRST maximum on ties.

The Python functions check shapes and allocate; the compiled drivers only
start the parallel loop.
"""

import functools

import numpy as np
from numba import njit, types, uint64

from .activations import activate_span, activation_backward, check_code
from .runtime.parallel import c_array, item_args, launch_address, native_item, parallel_for
from .runtime.vector import VECTOR, maxpool2x2

I64 = types.int64

MAX, MEAN, LP, SUBSAMPLE = 0, 1, 2, 3


def _pool_out(H, W, ph, pw, sh, sw):
    """Output size of a valid (unpadded) pooling window; rejects impossible shapes."""
    if ph < 1 or pw < 1 or sh < 1 or sw < 1:
        raise ValueError("pool: window and stride must be at least 1")
    if H < ph or W < pw:
        raise ValueError("pool: window larger than the input map")
    return (H - ph) // sh + 1, (W - pw) // sw + 1


@functools.lru_cache(maxsize=None)
def _none(dtype, ndim):
    """The empty array passed for an argument a kind does not use (one per type:
    it holds nothing, and every call saves an allocation)."""
    return np.empty((0,) * ndim, dtype=dtype)


# ---------------------------------------------------------------- the loops, one plane each


@njit(cache=True, error_model="numpy")
def maxpool_2x2_plane(xp, op, ap, W):
    """The common 2×2, stride-2 window: eight outputs of a row at a time, the last
    group of a row masked to what is left (kernels/runtime/vector.py maxpool2x2). Each
    window takes the maximum of each pair of a row, then of the two rows, with
    selects instead of jumps: random data makes every comparison a coin toss,
    and mispredicted branches dominate the general loop's time
    (benchmarks/RESULTS.md, Design measurements)."""
    oh, ow = op.shape
    for i in range(oh):
        for j in range(0, ow, VECTOR):
            maxpool2x2(xp, 2 * i * W + 2 * j, W, op, ap, i * ow + j, min(VECTOR, ow - j))


@njit(cache=True, error_model="numpy")
def _maxpool_plane(xp, op, ap, ph, pw, sh, sw):
    """Any window and stride on one plane: a running maximum per output column."""
    oh, ow = op.shape
    W = xp.shape[1]
    for i in range(oh):
        r0 = i * sh
        for j in range(ow):
            op[i, uint64(j)] = xp[r0, uint64(j * sw)]
            ap[i, uint64(j)] = r0 * W + j * sw
        for m in range(ph):
            r = r0 + m
            # Tap (0, 0) is the initial value; start the first row at n = 1.
            n0 = 1 if m == 0 else 0
            for n in range(n0, pw):
                for j in range(ow):
                    v = xp[r, uint64(j * sw + n)]
                    cur = op[i, uint64(j)]
                    # Strict '>' keeps the first maximum; a NaN wins once
                    # (like PyTorch, NaN propagates) and then stays.
                    take = (v > cur) or (v != v and cur == cur)
                    op[i, uint64(j)] = v if take else cur
                    ap[i, uint64(j)] = r * W + j * sw + n if take else ap[i, uint64(j)]


@njit(cache=True, error_model="numpy")
def _window_sums(xp, sp, ph, pw, sh, sw):
    """sp[i, j] = Σ over window (i, j) of xp (mean pooling and subsampling)."""
    oh, ow = sp.shape
    for i in range(oh):
        for j in range(ow):
            sp[i, uint64(j)] = 0
        for m in range(ph):
            r = i * sh + m
            for n in range(pw):
                if sw == 1:
                    for j in range(ow):
                        sp[i, uint64(j)] += xp[r, uint64(j + n)]
                else:
                    for j in range(ow):
                        sp[i, uint64(j)] += xp[r, uint64(j * sw + n)]


@njit(cache=True, error_model="numpy")
def _window_norms(xp, op, p, invp, ph, pw, sh, sw):
    """op[i, j] = (Σ over window (i, j) of |xp|^p)^(1/p); p = 1 and p = 2 avoid pow()."""
    T = xp.dtype.type
    oh, ow = op.shape
    for i in range(oh):
        for j in range(ow):
            op[i, uint64(j)] = 0
        for m in range(ph):
            r = i * sh + m
            for n in range(pw):
                if p == T(2):
                    for j in range(ow):
                        v = xp[r, uint64(j * sw + n)]
                        op[i, uint64(j)] += v * v
                elif p == T(1):
                    for j in range(ow):
                        op[i, uint64(j)] += abs(xp[r, uint64(j * sw + n)])
                else:
                    for j in range(ow):
                        op[i, uint64(j)] += abs(xp[r, uint64(j * sw + n)]) ** p
        if p == T(2):
            for j in range(ow):
                op[i, uint64(j)] = np.sqrt(op[i, uint64(j)])
        elif p != T(1):
            for j in range(ow):
                op[i, uint64(j)] = op[i, uint64(j)] ** invp


@njit(cache=True, error_model="numpy")
def _scatter_sums(cp, dp, ph, pw, sh, sw):
    """dp[window (i, j)] += cp[i, j] (mean pooling and subsampling); dp zeroed first."""
    oh, ow = cp.shape
    for i in range(oh):
        for m in range(ph):
            r = i * sh + m
            for n in range(pw):
                if sw == 1:
                    for j in range(ow):
                        dp[r, uint64(j + n)] += cp[i, uint64(j)]
                else:
                    for j in range(ow):
                        dp[r, uint64(j * sw + n)] += cp[i, uint64(j)]


@njit(cache=True, error_model="numpy")
def _scatter_norms(cp, xp, dp, p, ph, pw, sh, sw):
    """dp[window (i, j)] += cp[i, j] · sign(x)·|x|^(p−1) (L_p pooling); dp zeroed first."""
    T = xp.dtype.type
    pm1 = p - T(1)
    oh, ow = cp.shape
    for i in range(oh):
        for m in range(ph):
            r = i * sh + m
            for n in range(pw):
                if p == T(2):
                    for j in range(ow):
                        q = uint64(j * sw + n)
                        dp[r, q] += cp[i, uint64(j)] * xp[r, q]
                elif p == T(1):
                    for j in range(ow):
                        q = uint64(j * sw + n)
                        dp[r, q] += cp[i, uint64(j)] * np.sign(xp[r, q])
                else:
                    for j in range(ow):
                        q = uint64(j * sw + n)
                        v = xp[r, q]
                        dp[r, q] += cp[i, uint64(j)] * (np.sign(v) * abs(v) ** pm1)


# ---------------------------------------------------------------- forward, every kind


@native_item(lambda f: (c_array(f, 4), c_array(f, 4), c_array(f, 4), c_array(types.int32, 4), c_array(f, 1),
                        c_array(f, 1), c_array(f, 1), I64, f, f, I64, I64, I64, I64, I64))
@njit(cache=True, error_model="numpy")
def _pool_plane(bc, context):
    """Plane bc = b·C + c of the output: one parallel item of every pooling forward."""
    x, out, sums, arg, flat, beta, bias, kind, p, invp, ph, pw, sh, sw, act = item_args(context)
    C = x.shape[1]
    b = bc // C
    c = bc - b * C
    xp, op = x[b, c], out[b, c]
    oh, ow = op.shape
    if kind == MAX:
        if ph == 2 and pw == 2 and sh == 2 and sw == 2:
            maxpool_2x2_plane(xp, op, arg[b, c], x.shape[3])
        else:
            _maxpool_plane(xp, op, arg[b, c], ph, pw, sh, sw)
    elif kind == MEAN:
        _window_sums(xp, op, ph, pw, sh, sw)
        area = x.dtype.type(ph * pw)
        for i in range(oh):
            for j in range(ow):
                op[i, uint64(j)] /= area
    elif kind == LP:
        _window_norms(xp, op, p, invp, ph, pw, sh, sw)
    else:  # SUBSAMPLE: the window sums are kept, as ∂z/∂β
        sp = sums[b, c]
        _window_sums(xp, sp, ph, pw, sh, sw)
        bt, bs = beta[c], bias[c]
        for i in range(oh):
            for j in range(ow):
                op[i, uint64(j)] = bt * sp[i, uint64(j)] + bs
        activate_span(flat, bc * oh * ow, (bc + 1) * oh * ow, act)


@njit(cache=True, error_model="numpy")
def _pool_forward(launch, item_fn, x, out, sums, arg, flat, beta, bias, kind, p, invp, ph, pw, sh, sw, act):
    parallel_for(_pool_plane, launch, item_fn, x.shape[0] * x.shape[1],
                 (x, out, sums, arg, flat, beta, bias, kind, p, invp, ph, pw, sh, sw, act))


def _forward(kind, x, ph, pw, sh, sw, p=1.0, beta=None, bias=None, act=0):
    """(out, window sums, argmax) of one pooling kind; the sums (subsampling only) and
    the argmax (max only) are empty arrays for the other kinds."""
    x = np.ascontiguousarray(x)
    B, C, H, W = x.shape
    oh, ow = _pool_out(H, W, ph, pw, sh, sw)
    dt = x.dtype
    out = np.empty((B, C, oh, ow), dtype=dt)
    sums = np.empty_like(out) if kind == SUBSAMPLE else _none(dt, 4)
    arg = np.empty((B, C, oh, ow), dtype=np.int32) if kind == MAX else _none(np.int32, 4)
    beta = _none(dt, 1) if beta is None else beta
    bias = _none(dt, 1) if bias is None else bias
    T = dt.type
    _pool_forward(launch_address(), _pool_plane.native.address(dt), x, out, sums, arg, out.reshape(-1), beta, bias,
                  kind, T(p), T(1) / T(p), ph, pw, sh, sw, act)
    return out, sums, arg


def maxpool2d_forward(x, ph, pw, sh, sw):
    """Returns (out, argmax): argmax[b,c,i,j] = h·W + w of the first maximum of the
    window in row-major scan order, used by backward to route δ. int32, as in
    the fused conv + pooling kernel: half the memory traffic of int64, and one
    compiled copy of the 2×2 plane helper for both."""
    out, _, arg = _forward(MAX, x, ph, pw, sh, sw)
    return out, arg


def meanpool2d_forward(x, ph, pw, sh, sw):
    """Window average (sum, then one division by ph·pw as PyTorch's avg_pool2d does)."""
    return _forward(MEAN, x, ph, pw, sh, sw)[0]


def lppool2d_forward(x, p, ph, pw, sh, sw):
    """out = (Σ_window |x|^p)^(1/p), p ≥ 1 (p = 1: sum of |x|; p → ∞: max |x|).

    p = 1 and p = 2 avoid pow(). Equals torch.nn.functional.lp_pool2d for p = 2
    and for x ≥ 0 (PyTorch raises x to p without abs()).
    """
    if not p >= 1:
        raise ValueError("lppool2d: p must be >= 1")
    return _forward(LP, x, ph, pw, sh, sw, p=p)[0]


def subsample_forward(x, beta, bias, ph, pw, sh, sw, act):
    """a[b,c,i,j] = act(β[c]·Σ_window x + bias[c]) (LeNet-5's S2/S4, 2 parameters per map).

    Returns (a, sums); the window sums are ∂z/∂β, which backward needs.
    """
    check_code(act)
    x, beta, bias = np.ascontiguousarray(x), np.ascontiguousarray(beta), np.ascontiguousarray(bias)
    if beta.size != x.shape[1] or bias.size != x.shape[1]:
        raise ValueError("subsample: beta and bias need one entry per channel")
    a, sums, _ = _forward(SUBSAMPLE, x, ph, pw, sh, sw, beta=beta, bias=bias, act=act)
    return a, sums


# ---------------------------------------------------------------- backward, every kind


@native_item(lambda f: (c_array(f, 4), c_array(f, 4), c_array(f, 4), c_array(f, 4), c_array(types.int32, 4),
                        c_array(f, 4), c_array(f, 3), c_array(f, 1), c_array(types.boolean, 1), I64, f,
                        I64, I64, I64, I64))
@njit(cache=True, error_model="numpy")
def _pool_backward_plane(bc, context):
    """Plane bc = b·C + c of dx: one parallel item of every pooling backward.
    dout is δ itself for subsampling (its activation's derivative applied)."""
    dout, x, out, coef, argmax, dx, dx_flat, beta, bad, kind, p, ph, pw, sh, sw = item_args(context)
    C = dx.shape[1]
    b = bc // C
    c = bc - b * C
    dp, g = dx[b, c], dout[b, c]
    H, W = dp.shape
    oh, ow = g.shape
    dflat = dx_flat[b, c]  # dp as one row (a reshape here would cost a call per item)
    for q in range(H * W):
        dflat[uint64(q)] = 0
    if kind == MAX:
        ap = argmax[b, c]
        for i in range(oh):
            for j in range(ow):
                idx = ap[i, j]
                if idx < 0 or idx >= H * W:
                    bad[bc] = True  # never write outside the plane
                else:
                    dflat[idx] += g[i, j]
        return
    T = dx.dtype.type
    cp = coef[b, c]
    if kind == MEAN:
        area = T(ph * pw)
        for i in range(oh):
            for j in range(ow):
                cp[i, uint64(j)] = g[i, uint64(j)] / area
    elif kind == SUBSAMPLE:
        bt = beta[c]
        for i in range(oh):
            for j in range(ow):
                cp[i, uint64(j)] = bt * g[i, uint64(j)]
    else:  # LP: δ / out^(p−1), computed once per output so the scatter is a multiply-add
        op = out[b, c]
        zero = T(0)
        for i in range(oh):
            for j in range(ow):
                o = op[i, uint64(j)]
                d = g[i, uint64(j)]
                if p == T(2):
                    q = d / o
                elif p == T(1):
                    q = d
                else:
                    q = d / o ** (p - T(1))
                cp[i, uint64(j)] = q if o > zero else zero
        _scatter_norms(cp, x[b, c], dp, p, ph, pw, sh, sw)
        return
    _scatter_sums(cp, dp, ph, pw, sh, sw)


@njit(cache=True, error_model="numpy")
def _pool_backward(launch, item_fn, dout, x, out, coef, argmax, dx, dx_flat, beta, bad, kind, p, ph, pw, sh, sw):
    parallel_for(_pool_backward_plane, launch, item_fn, dx.shape[0] * dx.shape[1],
                 (dout, x, out, coef, argmax, dx, dx_flat, beta, bad, kind, p, ph, pw, sh, sw))


def _backward(kind, dout, H, W, ph, pw, sh, sw, x=None, out=None, argmax=None, beta=None, p=1.0):
    """dx (B, C, H, W) of one pooling kind, given dout (δ for subsampling)."""
    dout = np.ascontiguousarray(dout)
    B, C, oh, ow = dout.shape
    if kind != MAX and (oh, ow) != _pool_out(H, W, ph, pw, sh, sw):  # max: its argmax says where δ goes
        raise ValueError("pool backward: gradient shape does not match the input size and window")
    dt = dout.dtype
    dx = np.empty((B, C, H, W), dtype=dt)
    coef = _none(dt, 4) if kind == MAX else np.empty_like(dout)
    bad = np.zeros(B * C, dtype=np.bool_) if kind == MAX else _none(np.bool_, 1)
    x = _none(dt, 4) if x is None else x
    out = _none(dt, 4) if out is None else out
    argmax = _none(np.int32, 4) if argmax is None else argmax
    beta = _none(dt, 1) if beta is None else beta
    _pool_backward(launch_address(), _pool_backward_plane.native.address(dt), dout, x, out, coef, argmax, dx,
                   dx.reshape(B, C, H * W), beta, bad, kind, dt.type(p), ph, pw, sh, sw)
    if kind == MAX and bad.any():
        raise ValueError("maxpool2d_backward: argmax index outside the input map")
    return dx


def maxpool2d_backward(dout, argmax, H, W):
    """dx (B,C,H,W): each δ goes to its window's recorded argmax only; with
    overlapping windows a pixel that is the maximum of several windows gets
    the sum of their δ."""
    if argmax.shape != dout.shape:
        raise ValueError("maxpool2d_backward: argmax and dout shapes differ")
    if argmax.dtype != np.int32:  # clipped, so an out-of-range index stays out of range
        argmax = np.clip(argmax, -1, np.iinfo(np.int32).max).astype(np.int32)
    return _backward(MAX, dout, H, W, 0, 0, 0, 0, argmax=np.ascontiguousarray(argmax))


def meanpool2d_backward(dout, H, W, ph, pw, sh, sw):
    """δ/(ph·pw) to every position of each window; overlaps add up."""
    return _backward(MEAN, dout, H, W, ph, pw, sh, sw)


def lppool2d_backward(dout, x, out, p, ph, pw, sh, sw):
    """∂out/∂x = sign(x)·(|x|/out)^(p−1) for each window x belongs to; 0 where out == 0
    (the norm is not differentiable there; 0 is the subgradient that keeps
    training finite)."""
    if not p >= 1:
        raise ValueError("lppool2d: p must be >= 1")
    x, out = np.ascontiguousarray(x), np.ascontiguousarray(out)
    if dout.shape != out.shape or out.shape[:2] != x.shape[:2]:
        raise ValueError("lppool2d_backward: dout/out shapes do not match x and the window")
    return _backward(LP, dout, x.shape[2], x.shape[3], ph, pw, sh, sw, x=x, out=out, p=p)


# ---------------------------------------------------------------- LeNet-5 subsampling's parameters


@native_item(lambda f: (c_array(f, 4), c_array(f, 4), c_array(f, 2), c_array(f, 2), c_array(f, 1), c_array(f, 1)))
@njit(cache=True, error_model="numpy")
def _subsample_param_grads(c, context):
    """dβ[c] = Σ δ·sums and dbias[c] = Σ δ over batch and positions: per output
    column into scratch rows rb[c], rs[c], then summed in a fixed order. One
    parallel item of subsample_backward."""
    delta, sums, rbs, rss, dbeta, dbias = item_args(context)
    rb = rbs[c]
    rs = rss[c]
    B, _, oh, ow = delta.shape
    for j in range(ow):
        rb[uint64(j)] = 0
        rs[uint64(j)] = 0
    for b in range(B):
        for i in range(oh):
            for j in range(ow):
                d = delta[b, c, i, uint64(j)]
                rb[uint64(j)] += d * sums[b, c, i, uint64(j)]
                rs[uint64(j)] += d
    sb = delta.dtype.type(0)
    ss = delta.dtype.type(0)
    for j in range(ow):
        sb += rb[uint64(j)]
        ss += rs[uint64(j)]
    dbeta[c] = sb
    dbias[c] = ss


@njit(cache=True, error_model="numpy")
def _subsample_params(launch, item_fn, delta, sums, rb, rs, dbeta, dbias):
    parallel_for(_subsample_param_grads, launch, item_fn, delta.shape[1], (delta, sums, rb, rs, dbeta, dbias))


def subsample_backward(da, a, sums, beta, H, W, ph, pw, sh, sw, act, need_dx):
    """Returns (dx, dβ, dbias); dx is (0,0,0,0) when need_dx is False.

    With δ = da·f'(a): dβ[c] = Σ δ·sums, dbias[c] = Σ δ (over batch and
    positions, accumulated per output column then summed in a fixed order),
    dx = β[c]·δ scattered to every position of each window.
    """
    if a.shape != da.shape or sums.shape != da.shape or beta.size != da.shape[1]:
        raise ValueError("subsample_backward: da, a, sums and beta shapes disagree")
    delta = activation_backward(da, a, act)  # δ = da · f'(a)
    sums, beta = np.ascontiguousarray(sums), np.ascontiguousarray(beta)
    B, C, oh, ow = delta.shape
    dt = delta.dtype
    dbeta, dbias = np.empty(C, dtype=dt), np.empty(C, dtype=dt)
    _subsample_params(launch_address(), _subsample_param_grads.native.address(dt), delta, sums,
                      np.empty((C, ow), dtype=dt), np.empty((C, ow), dtype=dt), dbeta, dbias)
    if not need_dx:
        return np.empty((0, 0, 0, 0), dtype=dt), dbeta, dbias
    return _backward(SUBSAMPLE, delta, H, W, ph, pw, sh, sw, beta=beta), dbeta, dbias
