"""The arithmetic of the Winograd tile transforms, lane by lane on LLVM vectors
(one lane a tile, or a filter): products M·X·Mᵀ with the transform matrices,
with the additions they share done once; the fold of overlapping patch
gradients; relu and the 2×2 max pooling of an output tile. No memory is read
or written here: tile_vector.py, tile_gather.py and filter_vector.py load the
vectors and store the results.
"""

from llvmlite import ir
from numba.core import cgutils

from .vector import VECTOR, _takes

# Bᵀ and Aᵀ of each tile size (Lavin & Gray 2016), row by row; G is in kernels/winograd.py.
BT = {2: ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1)),
      4: ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
          (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1))}
AT = {2: ((1, 1, 1, 0), (0, 1, -1, -1)),
      4: ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))}
A = {m: tuple(zip(*rows)) for m, rows in AT.items()}
B = {m: tuple(zip(*rows)) for m, rows in BT.items()}


def _apply(b, matrix, values):
    """matrix · values, lane by lane, with the additions Winograd's matrices share
    done once (Lavin & Gray's hand-factored transforms, found mechanically):

    - a pair of columns whose factors agree up to sign in every row enters as
      its sum and its difference: Aᵀ's rows (1, 1, 1, 1, 1, 0) … (0, 1, −1, 8,
      −8, 1) read d1 ± d2 and d3 ± d4 only;
    - a pair of rows that is P + Q and P − Q (factors equal on some columns,
      opposite on the others) is computed as p + q and p − q: Bᵀ's rows
      (0, −4, −4, 1, 1, 0) and (0, 4, −4, −1, 1, 0);
    - every other factor is a fused multiply-add onto the row's running sum.

    The same matrix always gives the same operations in the same order."""
    n = len(values)
    rows = [{("v", c): float(factor) for c, factor in enumerate(row) if factor != 0} for row in matrix]
    terms = {("v", c): values[c] for c in range(n)}
    paired = set()
    for first in range(n):
        for second in range(first + 1, n):
            column_a = [float(row[first]) for row in matrix]
            column_c = [float(row[second]) for row in matrix]
            if (first in paired or second in paired or any(abs(x) != abs(y) for x, y in zip(column_a, column_c))
                    or sum(1 for x in column_a if x != 0) < 2):
                continue
            paired.update((first, second))
            for row, fa, fc in zip(rows, column_a, column_c):
                if fa != 0:
                    del row[("v", first)], row[("v", second)]
                    row[("s" if fa == fc else "d", first, second)] = fa
    used = {key for row in rows for key in row}
    for key in sorted(k for k in used if k[0] in "sd"):
        _, first, second = key
        terms[key] = (b.fadd if key[0] == "s" else b.fsub)(values[first], values[second])
    out = [None] * len(rows)
    done = set()
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            if i in done or j in done or set(rows[i]) != set(rows[j]):
                continue
            same = {k: f for k, f in rows[i].items() if rows[j][k] == f}
            opposite = {k: f for k, f in rows[i].items() if rows[j][k] == -f}
            if not same or not opposite or len(same) + len(opposite) != len(rows[i]):
                continue
            p, q = _combine(b, same, terms), _combine(b, opposite, terms)
            out[i], out[j] = b.fadd(p, q), b.fsub(p, q)
            done.update((i, j))
    for i, row in enumerate(rows):
        if i not in done:
            out[i] = _combine(b, row, terms)
    return out


def _combine(b, row, terms):
    """Σ factor·term over a row's terms in a fixed order: ±1 as additions, other
    factors as fused multiply-adds onto the running sum."""
    total = None
    for key in sorted(row):
        factor, value = row[key], terms[key]
        if total is None:
            if factor == 1:
                total = value
            elif factor == -1:
                total = b.fneg(value)
            else:
                total = b.fmul(value, ir.Constant(value.type, [factor] * value.type.count))
        elif factor == 1:
            total = b.fadd(total, value)
        elif factor == -1:
            total = b.fsub(total, value)
        else:
            total = _fma(b, value, ir.Constant(value.type, [factor] * value.type.count), total)
    return total


def _fma(b, x, y, z):
    element = "f32" if isinstance(x.type.element, ir.FloatType) else "f64"
    fnty = ir.FunctionType(x.type, [x.type] * 3)
    return b.call(cgutils.get_or_insert_function(b.module, fnty, f"llvm.fma.v{x.type.count}{element}"), [x, y, z])


def sandwich(b, matrix, grid):
    """matrix · grid · matrixᵀ, lane by lane: grid[r][c] a vector per entry; down the
    columns first, then along the rows. Returns the rows of the result."""
    down = [_apply(b, matrix, [row[c] for row in grid]) for c in range(len(grid[0]))]
    return [_apply(b, matrix, [column[i] for column in down]) for i in range(len(matrix))]


def fold(b, tile, neighbour):
    """The m×m input-gradient pixels a tile owns (its output tile's positions), rows
    of m vectors: the sum, over the tile and its eight neighbours (dy, dx), of
    their patch gradients Y = B X Bᵀ at the patch positions that land on each
    pixel. Patches overlap by two rows and columns; neighbour(dy, dx, i, j)
    gives Y[i][j] of the neighbour, zero where there is none. Each value is
    used once, the tile's own first."""
    n = tile + 2
    rows = []
    for r in range(tile):
        row = []
        for s in range(tile):
            total = None
            for dy, dx in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)):
                i, j = r + 1 - tile * dy, s + 1 - tile * dx
                if 0 <= i < n and 0 <= j < n:
                    value = neighbour(dy, dx, i, j)
                    total = value if total is None else b.fadd(total, value)
            row.append(total)
        rows.append(row)
    return rows


def relu_if(b, value, relu):
    """max(value, 0) lane by lane where the i1 `relu` is set (activations.activate_span's
    rule: a value ≤ 0 becomes 0, NaN stays), value itself elsewhere."""
    zero = ir.Constant(value.type, None)
    clipped = b.select(b.fcmp_ordered("<=", value, zero), zero, value)
    return b.select(relu, clipped, value)


def pool_windows(b, outputs, tile, corner):
    """2×2 max pooling of an m×m output tile (rows of vectors, lane = tile), the
    comparisons of vector.maxpool2x2 in its order, so values and ties come out
    as pooling the written plane would give. corner(pr, pc) is each lane's
    flat plane index (an i32 vector) of window (pr, pc)'s top-left number, and
    `width` below it the plane's row length; returns rows of (maximum, index) pairs."""
    def window(pr, pc, width):
        a0, a1 = outputs[2 * pr][2 * pc], outputs[2 * pr][2 * pc + 1]
        a2, a3 = outputs[2 * pr + 1][2 * pc], outputs[2 * pr + 1][2 * pc + 1]
        ints = width.type
        zero, one = ir.Constant(ints, [0] * VECTOR), ir.Constant(ints, [1] * VECTOR)
        t01 = _takes(b, a1, a0)
        m01, k01 = b.select(t01, a1, a0), b.select(t01, one, zero)
        t23 = _takes(b, a3, a2)
        m23, k23 = b.select(t23, a3, a2), b.select(t23, b.add(width, one), width)
        t = _takes(b, m23, m01)
        return b.select(t, m23, m01), b.add(corner(pr, pc), b.select(t, k23, k01))

    return window
