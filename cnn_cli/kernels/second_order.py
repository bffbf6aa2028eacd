"""Second derivatives of the loss, back-propagated layer by layer (LeCun et al. 1998,
appendix C; "Efficient BackProp" §9): the diagonal Gauss–Newton estimate that the
stochastic diagonal Levenberg–Marquardt optimizer divides its steps by.

The recursion mirrors backward with every factor squared and the second-order
terms of the squashing functions dropped (the Gauss–Newton approximation, which
keeps every estimate ≥ 0):

    ∂²E/∂a² = f′(a)² · ∂²E/∂y²                       (through an activation)
    ∂²E/∂x_j² = Σ_i w_ij² · ∂²E/∂a_i²                (to a layer's inputs)
    ∂²E/∂w² = Σ over the connections sharing w of ∂²E/∂a² · x²

Every kernel sums its parameters' curvature over the batch (the caller divides
by the number of patterns) and returns the inputs' curvature per pattern. The
pass runs on a few hundred patterns per epoch, so these are plain serial loops,
written for clarity; parameter sums are kept in float64.
"""

import numpy as np
from numba import njit

from .activations import activation_derivative_from_output


@njit(cache=True, error_model="numpy")
def through_activation(d2y, y, code):
    """∂²E/∂a² = f′(a)²·∂²E/∂y², f′ read from the layer's output y = f(a)."""
    d2a = np.empty_like(d2y)
    fy, fd, fa = y.reshape(-1), d2y.reshape(-1), d2a.reshape(-1)
    for i in range(fa.size):
        g = activation_derivative_from_output(fy[i], code)
        fa[i] = g * g * fd[i]
    return d2a


@njit(cache=True, error_model="numpy")
def conv_second(d2a, x, w, fh, fw, sh, sw, top, left, need_dx):
    """A convolution's curvature. d2a (B, K, oh, ow), x (B, C, H, W), w the dense
    (K, C·Fh·Fw) weight matrix (zeros where a connection table has no weight).
    Returns (d2x (B, C, H, W) or empty, d2w (K, C·Fh·Fw), d2b (K,)); taps that
    fall on the zero padding add nothing to d2w, and padding has no d2x."""
    B, K, oh, ow = d2a.shape
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    d2w = np.zeros((K, C * fh * fw), dtype=np.float64)
    d2b = np.zeros(K, dtype=np.float64)
    d2x = np.zeros((B, C, H, W) if need_dx else (0, 0, 0, 0), dtype=x.dtype)
    for b in range(B):
        for k in range(K):
            for i in range(oh):
                for jj in range(ow):
                    d = np.float64(d2a[b, k, i, jj])
                    d2b[k] += d
                    for c in range(C):
                        for m in range(fh):
                            r = i * sh - top + m
                            if r < 0 or r >= H:
                                continue
                            for n in range(fw):
                                col = jj * sw - left + n
                                if col < 0 or col >= W:
                                    continue
                                t = (c * fh + m) * fw + n
                                xv = np.float64(x[b, c, r, col])
                                d2w[k, t] += d * xv * xv
                                if need_dx:
                                    wv = w[k, t]
                                    d2x[b, c, r, col] += wv * wv * d2a[b, k, i, jj]
    return d2x, d2w, d2b


@njit(cache=True, error_model="numpy")
def subsample_second(d2a, sums, beta, H, W, ph, pw, sh, sw, need_dx):
    """LeNet-5's S2/S4, a = β·Σ_window x + b: d2β = Σ d2a·(Σ_window x)², d2b = Σ d2a,
    and every input of a window gets β²·d2a (overlapping windows add up).
    Returns (d2x or empty, d2β (C,), d2b (C,))."""
    B, C, oh, ow = d2a.shape
    d2beta = np.zeros(C, dtype=np.float64)
    d2b = np.zeros(C, dtype=np.float64)
    d2x = np.zeros((B, C, H, W) if need_dx else (0, 0, 0, 0), dtype=d2a.dtype)
    for b in range(B):
        for c in range(C):
            b2 = beta[c] * beta[c]
            for i in range(oh):
                for jj in range(ow):
                    d = d2a[b, c, i, jj]
                    s = np.float64(sums[b, c, i, jj])
                    d2beta[c] += np.float64(d) * s * s
                    d2b[c] += d
                    if need_dx:
                        for m in range(ph):
                            for n in range(pw):
                                d2x[b, c, i * sh + m, jj * sw + n] += b2 * d
    return d2x, d2beta, d2b


@njit(cache=True, error_model="numpy")
def maxpool_second(d2y, argmax, H, W):
    """Max pooling passes its window's maximum through with weight 1: that input
    gets the output's curvature, the others none."""
    B, C, oh, ow = d2y.shape
    d2x = np.zeros((B, C, H * W), dtype=d2y.dtype)
    for b in range(B):
        for c in range(C):
            for i in range(oh):
                for jj in range(ow):
                    d2x[b, c, argmax[b, c, i, jj]] += d2y[b, c, i, jj]
    return d2x.reshape(B, C, H, W)


@njit(cache=True, error_model="numpy")
def meanpool_second(d2y, H, W, ph, pw, sh, sw):
    """Mean pooling weighs each input by 1/(ph·pw): its square scales the curvature."""
    B, C, oh, ow = d2y.shape
    d2x = np.zeros((B, C, H, W), dtype=d2y.dtype)
    scale = d2y.dtype.type(1.0 / (ph * pw * ph * pw))
    for b in range(B):
        for c in range(C):
            for i in range(oh):
                for jj in range(ow):
                    d = d2y[b, c, i, jj] * scale
                    for m in range(ph):
                        for n in range(pw):
                            d2x[b, c, i * sh + m, jj * sw + n] += d
    return d2x


@njit(cache=True, error_model="numpy")
def dense_second(d2a, x, w, need_dx):
    """z = x·W + b, W (D, U): d2W[d, u] = Σ_b x[b, d]²·d2a[b, u], d2b = Σ_b d2a,
    d2x[b, d] = Σ_u W[d, u]²·d2a[b, u]. Returns (d2x (B, D) or empty, d2W, d2b)."""
    B, U = d2a.shape
    D = x.shape[1]
    d2w = np.zeros((D, U), dtype=np.float64)
    d2b = np.zeros(U, dtype=np.float64)
    d2x = np.zeros((B, D) if need_dx else (0, 0), dtype=x.dtype)
    for b in range(B):
        for u in range(U):
            d2b[u] += d2a[b, u]
        for d in range(D):
            xv = np.float64(x[b, d])
            x2 = xv * xv
            acc = 0.0
            for u in range(U):
                dv = np.float64(d2a[b, u])
                d2w[d, u] += x2 * dv
                if need_dx:
                    wv = np.float64(w[d, u])
                    acc += wv * wv * dv
            if need_dx:
                d2x[b, d] = acc
    return d2x, d2w, d2b


@njit(cache=True, error_model="numpy")
def rbf_loss_second(x, centres, j):
    """∂²E/∂x_d² at the inputs of an RBF output layer, the RBF and the loss taken
    together. With y_u = Σ_d (x_d − c_ud)², g_ud = 2(x_d − c_ud) and
    E = y_c + log(e^(−j) + Σ_u e^(−y_u)) (softmax cross-entropy over −y is j = ∞):

        2 + Σ_u q_u·g_ud² − (Σ_u q_u·g_ud)²,   q_u = e^(−y_u)/(e^(−j) + Σ e^(−y))

    2 is the exact second derivative of the squared distance y_c; the rest is the
    Gauss–Newton term of the log-sum-exp, whose Hessian in −y is diag(q) − qqᵀ,
    carried through the RBF's Jacobian g. Both are ≥ 0. Returns (B, D)."""
    B, D = x.shape
    U = centres.shape[0]
    out = np.empty((B, D), dtype=x.dtype)
    neg = np.empty(U, dtype=np.float64)
    q = np.empty(U, dtype=np.float64)
    floor = -np.float64(j)
    for b in range(B):
        m = floor
        for u in range(U):
            s = 0.0
            for d in range(D):
                t = np.float64(x[b, d]) - np.float64(centres[u, d])
                s += t * t
            neg[u] = -s
            m = max(m, -s)
        total = np.exp(floor - m)
        for u in range(U):
            q[u] = np.exp(neg[u] - m)
            total += q[u]
        for u in range(U):
            q[u] /= total
        for d in range(D):
            first, second = 0.0, 0.0
            for u in range(U):
                g = 2.0 * (np.float64(x[b, d]) - np.float64(centres[u, d]))
                first += q[u] * g
                second += q[u] * g * g
            out[b, d] = 2.0 + second - first * first
    return out
