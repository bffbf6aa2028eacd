"""Explicit vector code for the Winograd transforms (kernels/winograd.py), eight
2×2 output tiles at a time.

A tile row of a 32×32 map holds 16 tiles, of an 8×8 map 4: loops that short
stay scalar in LLVM (see vector.py), and every transform reads or writes a
plane's row at stride 2 (tile tx covers columns 2tx and 2tx + 1). Each
intrinsic here loads a row segment of 16 numbers, splits it into even and
odd columns with one shuffle each, does the transform's additions lane by
lane (lane l = tile tx0 + l) and stores eight lanes into each of the 16
Winograd-domain rows, or the reverse. Loads and stores are masked to what
exists: `count` tiles (≤ 8; a full group uses plain loads and stores), and
for the input transform the plane's own columns, the padding around it
reading as zero without being read. The additions are the scalar
formulas' own, in the same order.

Winograd-domain arrays are passed flat: row ξ of a group starts at
base + ξ·step.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .vector import VECTOR, _element_pointer, _masked_load, _masked_store

_WIDE = 2 * VECTOR
_I32 = ir.IntType(32)
_EVEN = ir.Constant(ir.VectorType(_I32, VECTOR), list(range(0, _WIDE, 2)))
_ODD = ir.Constant(ir.VectorType(_I32, VECTOR), list(range(1, _WIDE, 2)))
_INTERLEAVE = ir.Constant(ir.VectorType(_I32, _WIDE), [v for l in range(VECTOR) for v in (l, l + VECTOR)])


def _splat(builder, value, vector_type):
    """value in every lane (of its own type)."""
    first = builder.insert_element(ir.Constant(vector_type, ir.Undefined), value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(first, ir.Constant(vector_type, ir.Undefined),
                                  ir.Constant(ir.VectorType(_I32, vector_type.count), [0] * vector_type.count))


def _is_row(a):
    return isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and isinstance(a.dtype, types.Float)


class _Lanes:
    """Loads and stores for one intrinsic call: full groups plain, partial ones masked."""

    def __init__(self, context, builder, element):
        self.context, self.builder = context, builder
        self.narrow, self.wide = ir.VectorType(element, VECTOR), ir.VectorType(element, _WIDE)

    def pointer(self, array_type, array, index, vector_type):
        return self.builder.bitcast(_element_pointer(self.context, self.builder, array_type, array, index),
                                    vector_type.as_pointer())

    def lane_mask(self, lanes, first, limit):
        """Lanes l with 0 ≤ first + l < limit (first may be negative)."""
        b = self.builder
        ints = ir.VectorType(ir.IntType(64), lanes)
        at = b.add(_splat(b, first, ints), ir.Constant(ints, list(range(lanes))))
        return b.and_(b.icmp_signed(">=", at, ir.Constant(ints, [0] * lanes)), b.icmp_signed("<", at, _splat(b, limit, ints)))

    def load(self, vector_type, array_type, array, first, limit):
        """array[first : first + lanes], lanes outside [0, limit) reading zero."""
        b = self.builder
        lanes = vector_type.count
        pointer = self.pointer(array_type, array, first, vector_type)
        whole_inside = b.and_(b.icmp_signed(">=", first, ir.Constant(first.type, 0)),
                              b.icmp_signed("<=", b.add(first, ir.Constant(first.type, lanes)), limit))
        with b.if_else(whole_inside) as (whole, part):
            with whole:
                plain = b.load(pointer, align=1)
                plain_block = b.block
            with part:
                masked = _masked_load(b, pointer, self.lane_mask(lanes, first, limit), vector_type)
                masked_block = b.block
        values = b.phi(vector_type)
        values.add_incoming(plain, plain_block)
        values.add_incoming(masked, masked_block)
        return values

    def store(self, value, array_type, array, first, count):
        """array[first : first + count] = the first `count` lanes of value."""
        b = self.builder
        lanes = value.type.count
        pointer = self.pointer(array_type, array, first, value.type)
        with b.if_else(b.icmp_signed(">=", count, ir.Constant(count.type, lanes))) as (whole, part):
            with whole:
                b.store(value, pointer, align=1)
            with part:
                _masked_store(b, value, pointer, self.lane_mask(lanes, ir.Constant(count.type, 0), count))

    def split(self, wide):
        b = self.builder
        return b.shuffle_vector(wide, wide, _EVEN), b.shuffle_vector(wide, wide, _ODD)


def _ints(context, builder, signature, args, positions):
    return [context.cast(builder, args[k], signature.args[k], types.int64) for k in positions]


@intrinsic
def input_tiles8(typingctx, xa, xb, xc, xd, col, width, v, base, step, count):
    """Bᵀ d B for tiles tx0 … tx0 + count − 1 of one tile row: xa … xd are the
    patch's four input rows (width numbers each), col = 2·tx0 − 1 the first
    patch column (−1 at the left edge: padding). Writes v[base + ξ·step + l]."""
    if not (all(_is_row(a) for a in (xa, xb, xc, xd, v)) and len({a.dtype for a in (xa, xb, xc, xd, v)}) == 1
            and all(isinstance(i, types.Integer) for i in (col, width, base, step, count))):
        return None

    def codegen(context, builder, signature, args):
        b = builder
        col_v, width_v, base_v, step_v, count_v = _ints(context, builder, signature, args, (4, 5, 7, 8, 9))
        lanes = _Lanes(context, builder, context.get_value_type(signature.args[0].dtype))
        two = ir.Constant(col_v.type, 2)

        def rows(first):  # Bᵀ·d on 16 columns of the patch rows from `first` on
            a, bb, c, d = (lanes.load(lanes.wide, signature.args[k], args[k], first, width_v) for k in range(4))
            return b.fsub(a, c), b.fadd(bb, c), b.fsub(c, bb), b.fsub(bb, d)

        near, far = rows(col_v), rows(b.add(col_v, two))
        for i in range(4):
            ev, od = lanes.split(near[i])      # patch columns 0 and 1 of each tile
            ev2, od2 = lanes.split(far[i])     # columns 2 and 3
            outs = (b.fsub(ev, ev2), b.fadd(od, ev2), b.fsub(ev2, od), b.fsub(od, od2))
            for j, value in enumerate(outs):
                at = b.add(base_v, b.mul(step_v, ir.Constant(step_v.type, 4 * i + j)))
                lanes.store(value, signature.args[6], args[6], at, count_v)
        return context.get_dummy_value()

    return types.none(xa, xb, xc, xd, col, width, v, base, step, count), codegen


@intrinsic
def output_tiles8(typingctx, m, base, step, top, bottom, col, beta, count):
    """Aᵀ M A + beta for tiles tx0 … tx0 + count − 1 of one tile row, M's row ξ
    at m[base + ξ·step + l]: writes top[col : col + 2·count] and the same of
    bottom (col = 2·tx0), the tiles' two output rows."""
    if not (all(_is_row(a) for a in (m, top, bottom)) and m.dtype == top.dtype == bottom.dtype
            and all(isinstance(i, types.Integer) for i in (base, step, col, count))
            and isinstance(beta, types.Float)):
        return None

    def codegen(context, builder, signature, args):
        b = builder
        base_v, step_v, col_v, count_v = _ints(context, builder, signature, args, (1, 2, 5, 7))
        element = context.get_value_type(signature.args[0].dtype)
        lanes = _Lanes(context, builder, element)
        beta_v = context.cast(builder, args[6], signature.args[6], signature.args[0].dtype)
        beta_vec = _splat(b, beta_v, lanes.narrow)
        starts = [b.add(base_v, b.mul(step_v, ir.Constant(step_v.type, xi))) for xi in range(16)]
        rows = [lanes.load(lanes.narrow, signature.args[0], args[0], at, b.add(at, count_v)) for at in starts]
        for half, target in ((0, 3), (1, 4)):
            # Aᵀ·M: row combination 0 is m0j + m1j + m2j, combination 1 is m1j − m2j − m3j.
            if half == 0:
                p = [b.fadd(b.fadd(rows[j], rows[4 + j]), rows[8 + j]) for j in range(4)]
            else:
                p = [b.fsub(b.fsub(rows[4 + j], rows[8 + j]), rows[12 + j]) for j in range(4)]
            even = b.fadd(b.fadd(b.fadd(p[0], p[1]), p[2]), beta_vec)
            odd = b.fadd(b.fsub(b.fsub(p[1], p[2]), p[3]), beta_vec)
            both = b.shuffle_vector(even, odd, _INTERLEAVE)
            lanes.store(both, signature.args[target], args[target], col_v, b.add(count_v, count_v))
        return context.get_dummy_value()

    return types.none(m, base, step, top, bottom, col, beta, count), codegen


@intrinsic
def gradient_tiles8(typingctx, top, bottom, col, dm, base, step, count):
    """A δ Aᵀ for tiles tx0 … tx0 + count − 1 of one tile row: δ's two rows at
    top/bottom[col : col + 2·count] (col = 2·tx0); writes dm[base + ξ·step + l]."""
    if not (all(_is_row(a) for a in (top, bottom, dm)) and top.dtype == bottom.dtype == dm.dtype
            and all(isinstance(i, types.Integer) for i in (col, base, step, count))):
        return None

    def codegen(context, builder, signature, args):
        b = builder
        col_v, base_v, step_v, count_v = _ints(context, builder, signature, args, (2, 4, 5, 6))
        lanes = _Lanes(context, builder, context.get_value_type(signature.args[0].dtype))
        limit = b.add(col_v, b.add(count_v, count_v))
        d00, d01 = lanes.split(lanes.load(lanes.wide, signature.args[0], args[0], col_v, limit))
        d10, d11 = lanes.split(lanes.load(lanes.wide, signature.args[1], args[1], col_v, limit))
        # A·δ: rows (δ0), (δ0 + δ1), (δ0 − δ1), (−δ1); then (a, b)·Aᵀ = (a, a + b, a − b, −b).
        pairs = ((d00, d01), (b.fadd(d00, d10), b.fadd(d01, d11)), (b.fsub(d00, d10), b.fsub(d01, d11)),
                 (b.fneg(d10), b.fneg(d11)))
        for i, (a, c) in enumerate(pairs):
            for j, value in enumerate((a, b.fadd(a, c), b.fsub(a, c), b.fneg(c))):
                at = b.add(base_v, b.mul(step_v, ir.Constant(step_v.type, 4 * i + j)))
                lanes.store(value, signature.args[3], args[3], at, count_v)
        return context.get_dummy_value()

    return types.none(top, bottom, col, dm, base, step, count), codegen


# ---------------------------------------------------------------- F(4×4, 3×3): tiles of 4×4 outputs
#
# A tile's patch is 6 rows by 6 columns (4tx − 1 … 4tx + 4); a row segment of
# 32 numbers holds eight tiles' first four patch columns as its four phases
# (lanes 4l + p), and a second one four numbers on their last two.

_QUAD = 4 * VECTOR
_PHASES = [ir.Constant(ir.VectorType(_I32, VECTOR), list(range(p, _QUAD, 4))) for p in range(4)]
_INTERLEAVE4 = ir.Constant(ir.VectorType(_I32, _QUAD), [p * VECTOR + l for l in range(VECTOR) for p in range(4)])


def _phases(builder, quad):
    return [builder.shuffle_vector(quad, quad, index) for index in _PHASES]


def _interleave4(builder, vectors):
    """Lane l of vector p to lane 4l + p (the inverse of _phases)."""
    low = builder.shuffle_vector(vectors[0], vectors[1], ir.Constant(ir.VectorType(_I32, _WIDE), list(range(_WIDE))))
    high = builder.shuffle_vector(vectors[2], vectors[3], ir.Constant(ir.VectorType(_I32, _WIDE), list(range(_WIDE))))
    return builder.shuffle_vector(low, high, _INTERLEAVE4)


class _Arithmetic:
    """Lane-wise sums with small constant factors, in one float type."""

    def __init__(self, builder, vector_type):
        self.b, self.type = builder, vector_type

    def times(self, value, factor):
        if factor == 1:
            return value
        if factor == -1:
            return self.b.fneg(value)
        return self.b.fmul(value, ir.Constant(self.type, [float(factor)] * self.type.count))

    def combine(self, terms):
        """Σ factor·value over (factor, value) pairs with factor ≠ 0, left to right."""
        terms = [(f, v) for f, v in terms if f != 0]
        total = self.times(terms[0][1], terms[0][0])
        for factor, value in terms[1:]:
            if factor == 1:
                total = self.b.fadd(total, value)
            elif factor == -1:
                total = self.b.fsub(total, value)
            elif factor < 0:
                total = self.b.fsub(total, self.times(value, -factor))
            else:
                total = self.b.fadd(total, self.times(value, factor))
        return total


# Bᵀ, Aᵀ and A of F(4×4, 3×3) (Lavin & Gray 2016), row by row.
BT4 = ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
       (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1))
AT4 = ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))
A4 = tuple(zip(*AT4))


def _apply(arith, matrix, values):
    return [arith.combine(list(zip(row, values))) for row in matrix]


@intrinsic
def input_tiles8_f4(typingctx, r0, r1, r2, r3, r4, r5, col, width, v, base, step, count):
    """Bᵀ d B of F(4×4, 3×3) for tiles tx0 … tx0 + count − 1 of one tile row: r0 … r5
    the patch's six input rows (width numbers each), col = 4·tx0 − 1 the first
    patch column (−1 at the left edge: padding). Writes v[base + ξ·step + l], ξ < 36."""
    rows_in = (r0, r1, r2, r3, r4, r5)
    if not (all(_is_row(a) for a in rows_in + (v,)) and len({a.dtype for a in rows_in + (v,)}) == 1
            and all(isinstance(i, types.Integer) for i in (col, width, base, step, count))):
        return None

    def codegen(context, builder, signature, args):
        b = builder
        col_v, width_v, base_v, step_v, count_v = _ints(context, builder, signature, args, (6, 7, 9, 10, 11))
        element = context.get_value_type(signature.args[0].dtype)
        lanes = _Lanes(context, builder, element)
        quad = ir.VectorType(element, _QUAD)
        near_arith, arith = _Arithmetic(b, quad), _Arithmetic(b, lanes.narrow)
        far_col = b.add(col_v, ir.Constant(col_v.type, 4))
        near = [lanes.load(quad, signature.args[k], args[k], col_v, width_v) for k in range(6)]
        far = [lanes.load(quad, signature.args[k], args[k], far_col, width_v) for k in range(6)]
        near_t, far_t = _apply(near_arith, BT4, near), _apply(near_arith, BT4, far)  # Bᵀ·d down the rows
        for i in range(6):
            columns = _phases(b, near_t[i]) + _phases(b, far_t[i])[:2]  # patch columns 0 … 5
            for j, value in enumerate(_apply(arith, BT4, columns)):
                at = b.add(base_v, b.mul(step_v, ir.Constant(step_v.type, 6 * i + j)))
                lanes.store(value, signature.args[8], args[8], at, count_v)
        return context.get_dummy_value()

    return types.none(r0, r1, r2, r3, r4, r5, col, width, v, base, step, count), codegen


@intrinsic
def output_tiles8_f4(typingctx, m, base, step, y0, y1, y2, y3, col, beta, count):
    """Aᵀ M A + beta of F(4×4, 3×3) for tiles tx0 … tx0 + count − 1 of one tile row,
    M's row ξ at m[base + ξ·step + l]: writes y0 … y3[col : col + 4·count]
    (col = 4·tx0), the tiles' four output rows."""
    outs = (y0, y1, y2, y3)
    if not (all(_is_row(a) for a in (m,) + outs) and len({a.dtype for a in (m,) + outs}) == 1
            and all(isinstance(i, types.Integer) for i in (base, step, col, count))
            and isinstance(beta, types.Float)):
        return None

    def codegen(context, builder, signature, args):
        b = builder
        base_v, step_v, col_v, count_v = _ints(context, builder, signature, args, (1, 2, 7, 9))
        element = context.get_value_type(signature.args[0].dtype)
        lanes = _Lanes(context, builder, element)
        arith = _Arithmetic(b, lanes.narrow)
        beta_vec = _splat(b, context.cast(builder, args[8], signature.args[8], signature.args[0].dtype), lanes.narrow)
        starts = [b.add(base_v, b.mul(step_v, ir.Constant(step_v.type, xi))) for xi in range(36)]
        m_rows = [lanes.load(lanes.narrow, signature.args[0], args[0], at, b.add(at, count_v)) for at in starts]
        columns = [_apply(arith, AT4, [m_rows[6 * i + j] for i in range(6)]) for j in range(6)]  # Aᵀ·M
        four = b.mul(count_v, ir.Constant(count_v.type, 4))
        for r in range(4):
            row = [b.fadd(value, beta_vec) for value in _apply(arith, AT4, [columns[j][r] for j in range(6)])]
            lanes.store(_interleave4(b, row), signature.args[3 + r], args[3 + r], col_v, four)
        return context.get_dummy_value()

    return types.none(m, base, step, y0, y1, y2, y3, col, beta, count), codegen


@intrinsic
def gradient_tiles8_f4(typingctx, d0, d1, d2, d3, col, dm, base, step, count):
    """A δ Aᵀ of F(4×4, 3×3) for tiles tx0 … tx0 + count − 1 of one tile row: δ's
    four rows at d0 … d3[col : col + 4·count] (col = 4·tx0); writes
    dm[base + ξ·step + l], ξ < 36."""
    rows_in = (d0, d1, d2, d3)
    if not (all(_is_row(a) for a in rows_in + (dm,)) and len({a.dtype for a in rows_in + (dm,)}) == 1
            and all(isinstance(i, types.Integer) for i in (col, base, step, count))):
        return None

    def codegen(context, builder, signature, args):
        b = builder
        col_v, base_v, step_v, count_v = _ints(context, builder, signature, args, (4, 6, 7, 8))
        element = context.get_value_type(signature.args[0].dtype)
        lanes = _Lanes(context, builder, element)
        arith = _Arithmetic(b, lanes.narrow)
        quad = ir.VectorType(element, _QUAD)
        limit = b.add(col_v, b.mul(count_v, ir.Constant(count_v.type, 4)))
        delta = [_phases(b, lanes.load(quad, signature.args[k], args[k], col_v, limit)) for k in range(4)]
        down = [_apply(arith, A4, [delta[r][c] for r in range(4)]) for c in range(4)]  # A·δ, column by column
        for i in range(6):
            for j, value in enumerate(_apply(arith, A4, [down[c][i] for c in range(4)])):
                at = b.add(base_v, b.mul(step_v, ir.Constant(step_v.type, 6 * i + j)))
                lanes.store(value, signature.args[5], args[5], at, count_v)
        return context.get_dummy_value()

    return types.none(d0, d1, d2, d3, col, dm, base, step, count), codegen
