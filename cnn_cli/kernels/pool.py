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

Loops are ordered (output row i, tap m, tap n, output column j) with j
innermost: contiguous in the output and delta, and in the input when the
column stride is 1 (a separate loop for that case lets LLVM use plain vector
loads). Max pooling is written the same way — a running maximum per output
column updated with a select — so it vectorises too, and scanning taps (m, n)
in row-major order with a strict `>` keeps the FIRST maximum on ties.
"""

import numpy as np
from numba import njit, types, uint64

from .activations import activate_span, activation_backward, check_code
from .parallel import c_array, item_args, launch_address, native_item, parallel_for
from .vector import VECTOR, maxpool2x2

I64 = types.int64


@njit(cache=True, error_model="numpy")
def _pool_out(H, W, ph, pw, sh, sw):
    """Output size of a valid (unpadded) pooling window; rejects impossible shapes."""
    if ph < 1 or pw < 1 or sh < 1 or sw < 1:
        raise ValueError("pool: window and stride must be at least 1")
    if H < ph or W < pw:
        raise ValueError("pool: window larger than the input map")
    return (H - ph) // sh + 1, (W - pw) // sw + 1


@njit(cache=True, error_model="numpy")
def _check_grad_shape(oh, ow, H, W, ph, pw, sh, sw):
    eh, ew = _pool_out(H, W, ph, pw, sh, sw)
    if oh != eh or ow != ew:
        raise ValueError("pool backward: gradient shape does not match the input size and window")


@njit(cache=True, error_model="numpy")
def _window_sums(x, out, b, c, ph, pw, sh, sw, oh, ow):
    """out[b,c] = Σ over each window of x[b,c] (shared by mean pooling and subsampling)."""
    for i in range(oh):
        for j in range(ow):
            out[b, c, i, uint64(j)] = 0
        for m in range(ph):
            r = i * sh + m
            for n in range(pw):
                if sw == 1:
                    for j in range(ow):
                        out[b, c, i, uint64(j)] += x[b, c, r, uint64(j + n)]
                else:
                    for j in range(ow):
                        out[b, c, i, uint64(j)] += x[b, c, r, uint64(j * sw + n)]


@njit(cache=True, error_model="numpy")
def _scatter_windows(g, dx, b, c, scale, ph, pw, sh, sw, oh, ow):
    """dx[b,c] window positions += scale · g[b,c,i,j]; dx[b,c] must be zeroed first.

    `scale` multiplies (subsampling's β); mean pooling divides instead, see below.
    """
    for i in range(oh):
        for m in range(ph):
            r = i * sh + m
            for n in range(pw):
                if sw == 1:
                    for j in range(ow):
                        dx[b, c, r, uint64(j + n)] += scale * g[b, c, i, uint64(j)]
                else:
                    for j in range(ow):
                        dx[b, c, r, uint64(j * sw + n)] += scale * g[b, c, i, uint64(j)]


@njit(cache=True, error_model="numpy")
def _zero_plane(dx, b, c, H, W):
    for r in range(H):
        for q in range(W):
            dx[b, c, r, uint64(q)] = 0


# ---------------------------------------------------------------- max


@njit(cache=True, error_model="numpy")
def _maxpool_2x2_plane(xp, op, ap, W):
    """The common 2×2, stride-2 window: eight outputs of a row at a time, the last
    group of a row masked to what is left (kernels/vector.py maxpool2x2). Each
    window takes the maximum of each pair of a row, then of the two rows, with
    selects instead of jumps: random data makes every comparison a coin toss,
    and mispredicted branches cost the general loop 3× the time. Scalar and
    branch-free this took 0.125 ms for LeNet-5's pool1 at batch 64 on one
    thread; eight at a time, 0.055 ms."""
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


@native_item(lambda f: (c_array(f, 4), c_array(f, 4), c_array(types.int32, 4), I64, I64, I64, I64))
@njit(cache=True, error_model="numpy")
def _maxpool_item(bc, context):
    """Plane bc = b·C + c: one parallel item of maxpool2d_forward."""
    x, out, arg, ph, pw, sh, sw = item_args(context)
    C, W = x.shape[1], x.shape[3]
    b = bc // C
    c = bc - b * C
    if ph == 2 and pw == 2 and sh == 2 and sw == 2:
        _maxpool_2x2_plane(x[b, c], out[b, c], arg[b, c], W)
    else:
        _maxpool_plane(x[b, c], out[b, c], arg[b, c], ph, pw, sh, sw)


def maxpool2d_forward(x, ph, pw, sh, sw):
    """Returns (out, argmax): argmax[b,c,i,j] = h·W + w of the first maximum of the
    window in row-major scan order, used by backward to route δ. int32, as in
    the fused conv + pooling kernel: half the memory traffic of int64, and one
    compiled copy of the 2×2 plane helper for both."""
    x = np.ascontiguousarray(x)
    return _maxpool2d_forward(launch_address(), _maxpool_item.native.address(x.dtype), x, ph, pw, sh, sw)


@njit(cache=True, error_model="numpy")
def _maxpool2d_forward(launch, item_fn, x, ph, pw, sh, sw):
    B, C, H, W = x.shape
    oh, ow = _pool_out(H, W, ph, pw, sh, sw)
    out = np.empty((B, C, oh, ow), dtype=x.dtype)
    arg = np.empty((B, C, oh, ow), dtype=np.int32)
    parallel_for(_maxpool_item, launch, item_fn, B * C, (x, out, arg, ph, pw, sh, sw))
    return out, arg


@native_item(lambda f: (c_array(f, 4), c_array(types.int32, 4), c_array(f, 3), c_array(types.boolean, 1)))
@njit(cache=True, error_model="numpy")
def _maxpool_backward_plane(bc, context):
    """Plane bc = b·C + c of dx (flattened): one parallel item of maxpool2d_backward."""
    dout, argmax, dflat, bad = item_args(context)
    C, oh, ow = dout.shape[1], dout.shape[2], dout.shape[3]
    HW = dflat.shape[2]
    b = bc // C
    c = bc - b * C
    for q in range(HW):
        dflat[b, c, uint64(q)] = 0
    for i in range(oh):
        for j in range(ow):
            idx = argmax[b, c, i, j]
            if idx < 0 or idx >= HW:
                bad[bc] = True  # never write outside the plane
            else:
                dflat[b, c, idx] += dout[b, c, i, j]


def maxpool2d_backward(dout, argmax, H, W):
    """dx (B,C,H,W): each δ goes to its window's recorded argmax only; with
    overlapping windows a pixel that is the maximum of several windows gets
    the sum of their δ."""
    if argmax.shape != dout.shape:
        raise ValueError("maxpool2d_backward: argmax and dout shapes differ")
    dout = np.ascontiguousarray(dout)
    if argmax.dtype != np.int32:  # clipped, so an out-of-range index stays out of range
        argmax = np.clip(argmax, -1, np.iinfo(np.int32).max).astype(np.int32)
    argmax = np.ascontiguousarray(argmax)
    return _maxpool2d_backward(launch_address(), _maxpool_backward_plane.native.address(dout.dtype), dout, argmax, H, W)


@njit(cache=True, error_model="numpy")
def _maxpool2d_backward(launch, item_fn, dout, argmax, H, W):
    B, C = dout.shape[0], dout.shape[1]  # argmax's shape is checked by maxpool2d_backward
    dx = np.empty((B, C, H, W), dtype=dout.dtype)
    dflat = dx.reshape(B, C, H * W)
    bad = np.zeros(B * C, dtype=np.bool_)
    parallel_for(_maxpool_backward_plane, launch, item_fn, B * C, (dout, argmax, dflat, bad))
    for bc in range(B * C):
        if bad[bc]:
            raise ValueError("maxpool2d_backward: argmax index outside the input map")
    return dx


# ---------------------------------------------------------------- mean


@native_item(lambda f: (c_array(f, 4), c_array(f, 4), I64, I64, I64, I64, f))
@njit(cache=True, error_model="numpy")
def _mean_plane(bc, context):
    """Plane bc = b·C + c: one parallel item of meanpool2d_forward."""
    x, out, ph, pw, sh, sw, area = item_args(context)
    oh, ow = out.shape[2], out.shape[3]
    b = bc // out.shape[1]
    c = bc - b * out.shape[1]
    _window_sums(x, out, b, c, ph, pw, sh, sw, oh, ow)
    for i in range(oh):
        for j in range(ow):
            out[b, c, i, uint64(j)] /= area


def meanpool2d_forward(x, ph, pw, sh, sw):
    """Window average (sum, then one division by ph·pw as PyTorch's avg_pool2d does)."""
    x = np.ascontiguousarray(x)
    return _meanpool2d_forward(launch_address(), _mean_plane.native.address(x.dtype), x, ph, pw, sh, sw)


@njit(cache=True, error_model="numpy")
def _meanpool2d_forward(launch, plane_fn, x, ph, pw, sh, sw):
    B, C, H, W = x.shape
    oh, ow = _pool_out(H, W, ph, pw, sh, sw)
    out = np.empty((B, C, oh, ow), dtype=x.dtype)
    area = x.dtype.type(ph * pw)
    parallel_for(_mean_plane, launch, plane_fn, B * C, (x, out, ph, pw, sh, sw, area))
    return out


@native_item(lambda f: (c_array(f, 4), c_array(f, 4), I64, I64, I64, I64, f))
@njit(cache=True, error_model="numpy")
def _mean_backward_plane(bc, context):
    """Plane bc = b·C + c of dx: one parallel item of meanpool2d_backward."""
    dout, dx, ph, pw, sh, sw, area = item_args(context)
    oh, ow = dout.shape[2], dout.shape[3]
    H, W = dx.shape[2], dx.shape[3]
    b = bc // dx.shape[1]
    c = bc - b * dx.shape[1]
    _zero_plane(dx, b, c, H, W)
    for i in range(oh):
        for m in range(ph):
            r = i * sh + m
            for n in range(pw):
                if sw == 1:
                    for j in range(ow):
                        dx[b, c, r, uint64(j + n)] += dout[b, c, i, uint64(j)] / area
                else:
                    for j in range(ow):
                        dx[b, c, r, uint64(j * sw + n)] += dout[b, c, i, uint64(j)] / area


def meanpool2d_backward(dout, H, W, ph, pw, sh, sw):
    """δ/(ph·pw) to every position of each window; overlaps add up."""
    dout = np.ascontiguousarray(dout)
    return _meanpool2d_backward(launch_address(), _mean_backward_plane.native.address(dout.dtype), dout, H, W,
                                ph, pw, sh, sw)


@njit(cache=True, error_model="numpy")
def _meanpool2d_backward(launch, plane_fn, dout, H, W, ph, pw, sh, sw):
    B, C, oh, ow = dout.shape
    _check_grad_shape(oh, ow, H, W, ph, pw, sh, sw)
    dx = np.empty((B, C, H, W), dtype=dout.dtype)
    area = dout.dtype.type(ph * pw)
    parallel_for(_mean_backward_plane, launch, plane_fn, B * C, (dout, dx, ph, pw, sh, sw, area))
    return dx


# ---------------------------------------------------------------- L_p norm


@native_item(lambda f: (c_array(f, 4), c_array(f, 4), f, f, I64, I64, I64, I64))
@njit(cache=True, error_model="numpy")
def _lp_plane(bc, context):
    """Plane bc = b·C + c: one parallel item of lppool2d_forward."""
    x, out, P, invp, ph, pw, sh, sw = item_args(context)
    b = bc // x.shape[1]
    c = bc - b * x.shape[1]
    T = x.dtype.type
    oh, ow = out.shape[2], out.shape[3]
    for i in range(oh):
        for j in range(ow):
            out[b, c, i, uint64(j)] = 0
        for m in range(ph):
            r = i * sh + m
            for n in range(pw):
                if P == T(2):
                    for j in range(ow):
                        v = x[b, c, r, uint64(j * sw + n)]
                        out[b, c, i, uint64(j)] += v * v
                elif P == T(1):
                    for j in range(ow):
                        out[b, c, i, uint64(j)] += abs(x[b, c, r, uint64(j * sw + n)])
                else:
                    for j in range(ow):
                        out[b, c, i, uint64(j)] += abs(x[b, c, r, uint64(j * sw + n)]) ** P
        if P == T(2):
            for j in range(ow):
                out[b, c, i, uint64(j)] = np.sqrt(out[b, c, i, uint64(j)])
        elif P != T(1):
            for j in range(ow):
                out[b, c, i, uint64(j)] = out[b, c, i, uint64(j)] ** invp


def lppool2d_forward(x, p, ph, pw, sh, sw):
    """out = (Σ_window |x|^p)^(1/p), p ≥ 1 (p = 1: sum of |x|; p → ∞: max |x|).

    p = 1 and p = 2 avoid pow(). Equals torch.nn.functional.lp_pool2d for p = 2
    and for x ≥ 0 (PyTorch raises x to p without abs()).
    """
    x = np.ascontiguousarray(x)
    return _lppool2d_forward(launch_address(), _lp_plane.native.address(x.dtype), x, float(p), ph, pw, sh, sw)


@njit(cache=True, error_model="numpy")
def _lppool2d_forward(launch, plane_fn, x, p, ph, pw, sh, sw):
    B, C, H, W = x.shape
    oh, ow = _pool_out(H, W, ph, pw, sh, sw)
    T = x.dtype.type
    P = T(p)
    if not (P >= T(1)):
        raise ValueError("lppool2d: p must be >= 1")
    invp = T(1) / P
    out = np.empty((B, C, oh, ow), dtype=x.dtype)
    parallel_for(_lp_plane, launch, plane_fn, B * C, (x, out, P, invp, ph, pw, sh, sw))
    return out


@native_item(lambda f: (c_array(f, 4), c_array(f, 4), c_array(f, 4), c_array(f, 4), c_array(f, 4), f, f,
                        I64, I64, I64, I64))
@njit(cache=True, error_model="numpy")
def _lp_backward_plane(bc, context):
    """Plane bc = b·C + c of dx: one parallel item of lppool2d_backward."""
    dout, x, out, coef, dx, P, pm1, ph, pw, sh, sw = item_args(context)
    b = bc // x.shape[1]
    c = bc - b * x.shape[1]
    T = x.dtype.type
    zero = T(0)
    H, W = x.shape[2], x.shape[3]
    oh, ow = out.shape[2], out.shape[3]
    for i in range(oh):
        for j in range(ow):
            o = out[b, c, i, uint64(j)]
            g = dout[b, c, i, uint64(j)]
            if P == T(2):
                q = g / o
            elif P == T(1):
                q = g
            else:
                q = g / o**pm1
            coef[b, c, i, uint64(j)] = q if o > zero else zero
    _zero_plane(dx, b, c, H, W)
    for i in range(oh):
        for m in range(ph):
            r = i * sh + m
            for n in range(pw):
                if P == T(2):
                    for j in range(ow):
                        q = uint64(j * sw + n)
                        dx[b, c, r, q] += coef[b, c, i, uint64(j)] * x[b, c, r, q]
                elif P == T(1):
                    for j in range(ow):
                        q = uint64(j * sw + n)
                        dx[b, c, r, q] += coef[b, c, i, uint64(j)] * np.sign(x[b, c, r, q])
                else:
                    for j in range(ow):
                        q = uint64(j * sw + n)
                        v = x[b, c, r, q]
                        dx[b, c, r, q] += coef[b, c, i, uint64(j)] * (np.sign(v) * abs(v) ** pm1)


def lppool2d_backward(dout, x, out, p, ph, pw, sh, sw):
    """∂out/∂x = sign(x)·(|x|/out)^(p−1) for each window x belongs to; 0 where out == 0
    (the norm is not differentiable there; 0 is the subgradient that keeps
    training finite)."""
    dout, x, out = np.ascontiguousarray(dout), np.ascontiguousarray(x), np.ascontiguousarray(out)
    return _lppool2d_backward(launch_address(), _lp_backward_plane.native.address(x.dtype), dout, x, out, float(p),
                              ph, pw, sh, sw)


@njit(cache=True, error_model="numpy")
def _lppool2d_backward(launch, plane_fn, dout, x, out, p, ph, pw, sh, sw):
    B, C, H, W = x.shape
    oh, ow = _pool_out(H, W, ph, pw, sh, sw)
    if dout.shape != out.shape or out.shape[0] != B or out.shape[1] != C or out.shape[2] != oh or out.shape[3] != ow:
        raise ValueError("lppool2d_backward: dout/out shapes do not match x and the window")
    T = x.dtype.type
    P = T(p)
    if not (P >= T(1)):
        raise ValueError("lppool2d: p must be >= 1")
    pm1 = P - T(1)
    # coef = δ / out^(p−1) once per output, so the scatter loop is a plain
    # multiply-add.
    coef = np.empty((B, C, oh, ow), dtype=x.dtype)
    dx = np.empty((B, C, H, W), dtype=x.dtype)
    parallel_for(_lp_backward_plane, launch, plane_fn, B * C, (dout, x, out, coef, dx, P, pm1, ph, pw, sh, sw))
    return dx


# ---------------------------------------------------------------- LeNet-5 subsampling


@njit(cache=True, error_model="numpy")
def _subsample_plane(x, sums, a, b, c, bt, bs, ph, pw, sh, sw):
    """sums[b, c] = the window sums; a[b, c] = β·sums + bias (before the activation)."""
    oh, ow = a.shape[2], a.shape[3]
    _window_sums(x, sums, b, c, ph, pw, sh, sw, oh, ow)
    for i in range(oh):
        for j in range(ow):
            a[b, c, i, uint64(j)] = bt * sums[b, c, i, uint64(j)] + bs


@native_item(lambda f: (c_array(f, 4), c_array(f, 1), c_array(f, 1), c_array(f, 4), c_array(f, 4), c_array(f, 1),
                        I64, I64, I64, I64, I64))
@njit(cache=True, error_model="numpy")
def _subsample_item(bc, context):
    """Plane bc = b·C + c: one parallel item of subsample_forward."""
    x, beta, bias, sums, a, flat, ph, pw, sh, sw, act = item_args(context)
    C = x.shape[1]
    b = bc // C
    c = bc - b * C
    plane = a.shape[2] * a.shape[3]
    _subsample_plane(x, sums, a, b, c, beta[c], bias[c], ph, pw, sh, sw)
    activate_span(flat, bc * plane, (bc + 1) * plane, act)


def subsample_forward(x, beta, bias, ph, pw, sh, sw, act):
    """a[b,c,i,j] = act(β[c]·Σ_window x + bias[c]) (LeNet-5's S2/S4, 2 parameters per map).

    Returns (a, sums); the window sums are ∂z/∂β, which backward needs.
    """
    x, beta, bias = np.ascontiguousarray(x), np.ascontiguousarray(beta), np.ascontiguousarray(bias)
    return _subsample_forward(launch_address(), _subsample_item.native.address(x.dtype), x, beta, bias,
                              ph, pw, sh, sw, act)


@njit(cache=True, error_model="numpy")
def _subsample_forward(launch, item_fn, x, beta, bias, ph, pw, sh, sw, act):
    check_code(act)
    B, C, H, W = x.shape
    if beta.size != C or bias.size != C:
        raise ValueError("subsample: beta and bias need one entry per channel")
    oh, ow = _pool_out(H, W, ph, pw, sh, sw)
    sums = np.empty((B, C, oh, ow), dtype=x.dtype)
    a = np.empty((B, C, oh, ow), dtype=x.dtype)
    flat = a.reshape(a.size)
    parallel_for(_subsample_item, launch, item_fn, B * C, (x, beta, bias, sums, a, flat, ph, pw, sh, sw, act))
    return a, sums


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


@native_item(lambda f: (c_array(f, 4), c_array(f, 4), c_array(f, 1), I64, I64, I64, I64))
@njit(cache=True, error_model="numpy")
def _subsample_input_grad_plane(bc, context):
    """Plane bc = b·C + c of dx: one parallel item of subsample_backward."""
    delta, dx, beta, ph, pw, sh, sw = item_args(context)
    C, oh, ow = delta.shape[1], delta.shape[2], delta.shape[3]
    b = bc // C
    c = bc - b * C
    _zero_plane(dx, b, c, dx.shape[2], dx.shape[3])
    _scatter_windows(delta, dx, b, c, beta[c], ph, pw, sh, sw, oh, ow)


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
    return _subsample_backward(launch_address(), _subsample_param_grads.native.address(delta.dtype),
                               _subsample_input_grad_plane.native.address(delta.dtype),
                               delta, sums, beta, H, W, ph, pw, sh, sw, need_dx)


@njit(cache=True, error_model="numpy")
def _subsample_backward(launch, param_fn, input_fn, delta, sums, beta, H, W, ph, pw, sh, sw, need_dx):
    B, C, oh, ow = delta.shape
    _check_grad_shape(oh, ow, H, W, ph, pw, sh, sw)
    dt = delta.dtype
    dbeta = np.empty(C, dtype=dt)
    dbias = np.empty(C, dtype=dt)
    rb = np.empty((C, ow), dtype=dt)
    rs = np.empty((C, ow), dtype=dt)
    parallel_for(_subsample_param_grads, launch, param_fn, C, (delta, sums, rb, rs, dbeta, dbias))

    if not need_dx:
        return np.empty((0, 0, 0, 0), dtype=dt), dbeta, dbias
    dx = np.empty((B, C, H, W), dtype=dt)
    parallel_for(_subsample_input_grad_plane, launch, input_fn, B * C, (delta, dx, beta, ph, pw, sh, sw))
    return dx, dbeta, dbias
