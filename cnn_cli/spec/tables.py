"""Which input maps feed which output maps of a convolution: connection tables.

Connectivity is a CSR structure over (output map k, input map c) pairs, so a
full convolution and LeNet-5's C3 connection table are described alike and
absent weights simply do not exist as parameters (SPEC §3):

    conn = (conn_ptr[K+1], conn_c[nnz], conn_k[nnz])

Connection e belongs to output map conn_k[e] (the e of map k are
conn_ptr[k]:conn_ptr[k+1]) and reads input map conn_c[e]. Weights are
(nnz, Fh, Fw); for full connectivity e = k·C + c, so a (K, C, Fh, Fw) weight
array reshaped to (K·C, Fh, Fw) is already in CSR order.

The conv kernels (kernels/conv.py) run on a dense (K, C·Fh·Fw) weight matrix:
a table's absent weights are zeros there, put in on the way in
(`dense_weights`) and dropped on the way out (`connected_weights`), so they
are never trained or counted. An absent pair adds an exact 0·x, which changes
nothing unless x is inf or NaN — then the output is NaN.

Plain NumPy: config validation and `cnn params` use it without Numba.
"""

import numpy as np

# LeNet-5's C3 connection table (LeCun et al. 1998, table I; SPEC §7):
# row = S2 input map, column = C3 output map, X = connected.
LENET5_C3_TABLE = (
    "X...XXX..XXXX.XX",
    "XX...XXX..XXXX.X",
    "XXX...XXX..X.XXX",
    ".XXX..XXXX..X.XX",
    "..XXX..XXXX.XX.X",
    "...XXX..XXXX.XXX",
)
NAMED_TABLES = {"lenet5-c3": LENET5_C3_TABLE}


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
    (K, C·Fh·Fw) matrix the conv kernels take: row k, column (c·Fh + m)·Fw + n."""
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
