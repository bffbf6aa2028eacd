"""Softmax and mean softmax cross-entropy over a batch of logits (SPEC §5).

Both subtract the row maximum before exponentiating (log-sum-exp), so logits
of ±1e4 neither overflow nor underflow into NaN. Each row is computed in
float64 whatever the input dtype: rows are short (one entry per class), so the
cost is nil, and the loss the trainer prints and the gradient it follows are
then as accurate as the inputs allow. dlogits is returned in the logits' dtype.

Serial, unlike the other kernels: a batch's logits are a few thousand numbers,
less work than it costs to wake a thread pool, and a parallel loop would add
to every kernel's cold compile (benchmarks/RESULTS.md, Design measurements).
The per-sample losses are added in sample order, so the loss is bitwise
deterministic.
"""

import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def _row_max_and_sum(logits, b):
    """(m, Σ_u exp(logits[b, u] − m)) in float64 with m the row maximum, so that
    logits of ±1e4 neither overflow nor vanish; log-sum-exp is m + log(sum)."""
    U = logits.shape[1]
    m = np.float64(logits[b, 0])
    for u in range(1, U):
        v = np.float64(logits[b, u])
        m = v if v > m else m
    s = 0.0
    for u in range(U):
        s += np.exp(np.float64(logits[b, u]) - m)
    return m, s


@njit(cache=True, error_model="numpy")
def softmax_cross_entropy(logits, labels):
    """Returns (loss, dlogits): loss = mean_b(logsumexp(z_b) − z_b[y_b]) as a float,
    dlogits = (softmax(z) − onehot(y)) / B in the dtype of logits."""
    B, U = logits.shape
    if labels.shape[0] != B:
        raise ValueError("softmax_cross_entropy: one label per row of logits is required")
    if B == 0 or U == 0:
        raise ValueError("softmax_cross_entropy: empty batch or no classes")
    for b in range(B):
        if labels[b] < 0 or labels[b] >= U:
            raise ValueError("softmax_cross_entropy: label outside [0, number of classes)")
    d = np.empty((B, U), dtype=logits.dtype)
    losses = np.empty(B, dtype=np.float64)
    nb = np.float64(B)
    for b in range(B):
        m, s = _row_max_and_sum(logits, b)
        lse = m + np.log(s)
        y = labels[b]
        losses[b] = lse - np.float64(logits[b, y])
        for u in range(U):
            p = np.exp(np.float64(logits[b, u]) - lse)
            if u == y:
                p -= 1.0
            d[b, u] = p / nb
    total = 0.0
    for b in range(B):
        total += losses[b]
    return total / nb, d


@njit(cache=True, error_model="numpy")
def softmax(logits):
    """Row-wise softmax of (B, U) logits, stable for large magnitudes; logits' dtype."""
    B, U = logits.shape
    if U == 0:
        raise ValueError("softmax: no classes")
    out = np.empty((B, U), dtype=logits.dtype)
    for b in range(B):
        m, s = _row_max_and_sum(logits, b)
        for u in range(U):
            out[b, u] = np.exp(np.float64(logits[b, u]) - m) / s
    return out


@njit(cache=True, error_model="numpy")
def map_loss(logits, labels, j):
    """LeCun et al. 1998's MAP criterion for RBF outputs, mean over the batch.

    The RBF layer's logits are negated distances, z = −y, so per pattern
    E = y_c + log(e^(−j) + Σ_u e^(−y_u)) = −z_c + log(e^(−j) + Σ_u e^(z_u)):
    the first term pulls the correct class's distance down, the second pushes
    the others up, and the constant e^(−j) keeps it from pushing distances that
    are already large (j = ∞ is softmax cross-entropy). Returns (loss,
    dlogits) with dlogits = (q − onehot(y))/B, q_u = e^(z_u)/(e^(−j) + Σ e^(z)),
    in float64 per row like softmax_cross_entropy."""
    B, U = logits.shape
    if labels.shape[0] != B:
        raise ValueError("map_loss: one label per row of logits is required")
    if B == 0 or U == 0:
        raise ValueError("map_loss: empty batch or no classes")
    for b in range(B):
        if labels[b] < 0 or labels[b] >= U:
            raise ValueError("map_loss: label outside [0, number of classes)")
    d = np.empty((B, U), dtype=logits.dtype)
    nb = np.float64(B)
    total = 0.0
    for b in range(B):
        lse = _map_lse(logits, b, j)
        y = labels[b]
        total += lse - np.float64(logits[b, y])
        for u in range(U):
            q = np.exp(np.float64(logits[b, u]) - lse)
            if u == y:
                q -= 1.0
            d[b, u] = q / nb
    return total / nb, d


@njit(cache=True, error_model="numpy")
def _map_lse(logits, b, j):
    """log(e^(−j) + Σ_u e^(logits[b, u])), shifted by the largest term so that
    neither a large logit nor a large j overflows."""
    m, s = _row_max_and_sum(logits, b)
    floor = -np.float64(j)
    if floor > m:
        return floor + np.log(1.0 + s * np.exp(m - floor))
    return m + np.log(s + np.exp(floor - m))


@njit(cache=True, error_model="numpy")
def loss_curvature(logits, j):
    """The Gauss–Newton diagonal ∂²E/∂z_u² = q_u(1 − q_u) of softmax cross-entropy
    (j = inf) or of the MAP criterion, per pattern (not divided by B): the
    diagonal of the logits' Hessian diag(q) − qqᵀ, which is positive
    semi-definite, so the estimate never goes negative."""
    B, U = logits.shape
    h = np.empty((B, U), dtype=logits.dtype)
    for b in range(B):
        lse = _map_lse(logits, b, j)
        for u in range(U):
            q = np.exp(np.float64(logits[b, u]) - lse)
            h[b, u] = q * (1.0 - q)
    return h
