"""The affine part of a distortion: per-image inverse maps, from parameters or from
uniform draws (compiled: the training loop makes 64 of them per batch, and
NumPy's per-call cost on arrays that small would exceed the arithmetic).

Geometry, about the image centre, in (row, column) coordinates with rows down:
the forward map is A = R(θ)·H(h)·S, with R a counter-clockwise rotation as the
image is displayed (θ = 90° is np.rot90), H a horizontal shear (column += h·row),
S = diag((1+s)/(1+q), (1+s)·(1+q)) a scaling s and squeeze q, then a shift by
(ty, tx) pixels. The kernel samples the input at A⁻¹(p − centre − t) + centre.
"""

import math

import numpy as np
from numba import njit

# Order of the parameters in a row of draws and in bounds (after the probability).
PARAMETERS = ("translate", "translate", "rotate", "scale", "squeeze", "shear")


@njit(cache=True, error_model="numpy")
def _round12(x):
    # NumPy's np.round(x, 12), so that multiples of 90° give exact 0 and ±1 (np.rot90 exactly).
    return np.rint(x * 1e12) / 1e12


@njit(cache=True, error_model="numpy")
def inverse_map(H, W, ty, tx, theta_deg, scale, squeeze, shear, out):
    """out (6,) = (m0 … m5): src_r = m0·r + m1·c + m2, src_c = m3·r + m4·c + m5."""
    theta = theta_deg * (math.pi / 180.0)
    cos, sin = _round12(math.cos(theta)), _round12(math.sin(theta))
    sy = (1.0 + scale) / (1.0 + squeeze)
    sx = (1.0 + scale) * (1.0 + squeeze)
    # A = R·H·S with R = [[cos, -sin], [sin, cos]], H = [[1, 0], [h, 1]], S = diag(sy, sx).
    a00 = (cos - sin * shear) * sy
    a01 = -sin * sx
    a10 = (sin + cos * shear) * sy
    a11 = cos * sx
    det = a00 * a11 - a01 * a10
    i00, i01, i10, i11 = a11 / det, -a01 / det, -a10 / det, a00 / det
    cr, cc = (H - 1) / 2.0, (W - 1) / 2.0
    # src = A⁻¹ (p − c − t) + c
    dr, dc = cr + ty, cc + tx
    out[0], out[1], out[2] = i00, i01, cr - (i00 * dr + i01 * dc)
    out[3], out[4], out[5] = i10, i11, cc - (i10 * dr + i11 * dc)


@njit(cache=True, error_model="numpy")
def inverse_from_draws(u, bounds, H, W, out):
    """One image's inverse map from its 7 uniform draws u in [0, 1): u[0] < bounds[0]
    (the probability) chooses the image; each parameter k ≥ 1 is bounds[k]·(2u[k] − 1),
    uniform in ± its bound (order: probability, then PARAMETERS). An image not
    chosen gets the identity. Returns whether it was chosen."""
    if not u[0] < bounds[0]:
        out[0], out[1], out[2], out[3], out[4], out[5] = 1.0, 0.0, 0.0, 0.0, 1.0, 0.0
        return False
    b = bounds
    inverse_map(H, W, b[1] * (2.0 * u[1] - 1.0), b[2] * (2.0 * u[2] - 1.0), b[3] * (2.0 * u[3] - 1.0),
                b[4] * (2.0 * u[4] - 1.0), b[5] * (2.0 * u[5] - 1.0), b[6] * (2.0 * u[6] - 1.0), out)
    return True


@njit(cache=True, error_model="numpy")
def inverse_maps_of(H, W, params, out):
    for i in range(params.shape[0]):
        p = params[i]
        inverse_map(H, W, p[0], p[1], p[2], p[3], p[4], p[5], out[i])
