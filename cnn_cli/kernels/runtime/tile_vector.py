"""Explicit vector code for the Winograd transforms (kernels/winograd_tiles.py),
eight tiles of m×m outputs at a time, m = 2 (F(2×2, 3×3)) or 4 (F(4×4, 3×3)).

A tile row of a 32×32 map holds 8 to 16 tiles, of an 8×8 map 2 to 4: loops that
short stay scalar in LLVM (see vector.py), and every transform reads or writes
a plane's rows at a stride of m (tile tx covers columns m·tx … m·tx + m − 1).
Each intrinsic here loads row segments of 8·m numbers, splits them into their
m phases (lane l of phase p is column m·l + p) with one shuffle each, does the
transform's additions lane by lane (lane l = tile tx0 + l) and stores eight
lanes into each of the (m + 2)² Winograd-domain rows, or the reverse. Loads
and stores are masked to what exists: `count` tiles (≤ 8; a full group uses
plain loads and stores), and for the input transform the plane's own columns,
the padding around it reading as zero without being read.

Each intrinsic comes in one copy per tile size (input_tiles8_2 and
input_tiles8_4, …), made by the same code. Planes are passed whole, as 2-D arrays with the index of the
tiles' first row (a tuple of row views would cost reference counting on every
call); Winograd-domain arrays are passed flat: row ξ of a group starts at
base + ξ·step.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .tile_algebra import AT, BT, A, B, _apply, fold, pool_windows, relu_if, sandwich
from .vector import VECTOR, _element_pointer, _masked_store, load_group, splat

_I32 = ir.IntType(32)


class _Lanes:
    """Loads, stores and shuffles for one intrinsic call: full groups plain, partial ones masked."""

    def __init__(self, context, builder, element):
        self.context, self.b = context, builder
        self.narrow = ir.VectorType(element, VECTOR)

    def wide(self, tile):
        return ir.VectorType(self.narrow.element, tile * VECTOR)

    def at(self, array_type, array, index):
        """The address of flat element `index` of a C-contiguous array."""
        return _element_pointer(self.context, self.b, array_type, array, index)

    def lane_mask(self, lanes, first, limit):
        """Lanes l with 0 ≤ first + l < limit (first may be negative)."""
        b = self.b
        ints = ir.VectorType(ir.IntType(64), lanes)
        at = b.add(splat(b, first, ints), ir.Constant(ints, list(range(lanes))))
        return b.and_(b.icmp_signed(">=", at, ir.Constant(ints, [0] * lanes)), b.icmp_signed("<", at, splat(b, limit, ints)))

    def load(self, vector_type, row, first, limit, row_ok=None):
        """row[first : first + lanes] from a row's address, lanes outside [0, limit)
        reading zero, and all of them unless row_ok (an i1) is set; what reads
        zero is never read."""
        b = self.b
        lanes = vector_type.count
        pointer = b.bitcast(b.gep(row, [first]), vector_type.as_pointer())
        whole_inside = b.and_(b.icmp_signed(">=", first, ir.Constant(first.type, 0)),
                              b.icmp_signed("<=", b.add(first, ir.Constant(first.type, lanes)), limit))
        mask = self.lane_mask(lanes, first, limit)
        if row_ok is not None:
            whole_inside = b.and_(whole_inside, row_ok)
            mask = b.and_(mask, splat(b, row_ok, mask.type))
        return load_group(b, pointer, whole_inside, mask, vector_type)

    def store(self, value, pointer, count):
        """The first `count` lanes of value to the numbers from `pointer` on."""
        b = self.b
        lanes = value.type.count
        pointer = b.bitcast(pointer, value.type.as_pointer())
        with b.if_else(b.icmp_signed(">=", count, ir.Constant(count.type, lanes))) as (whole, part):
            with whole:
                b.store(value, pointer, align=1)
            with part:
                _masked_store(b, value, pointer, self.lane_mask(lanes, ir.Constant(count.type, 0), count))

    def phases(self, wide, tile):
        """The `tile` phases of a segment of tile·8 numbers: phase p holds lanes p, p + tile, …"""
        index = ir.VectorType(_I32, VECTOR)
        return [self.b.shuffle_vector(wide, wide, ir.Constant(index, list(range(p, tile * VECTOR, tile))))
                for p in range(tile)]

    def interleave(self, vectors):
        """The inverse of phases: lane l of vector p to lane len(vectors)·l + p."""
        b, tile = self.b, len(vectors)
        joined = vectors
        while len(joined) > 1:  # concatenate pairwise, then one shuffle puts lanes in place
            width = 2 * joined[0].type.count
            order = ir.Constant(ir.VectorType(_I32, width), list(range(width)))
            joined = [b.shuffle_vector(joined[i], joined[i + 1], order) for i in range(0, len(joined), 2)]
        index = ir.VectorType(_I32, tile * VECTOR)
        return b.shuffle_vector(joined[0], joined[0], ir.Constant(index, [p * VECTOR + l for l in range(VECTOR)
                                                                        for p in range(tile)]))

    def domain_rows(self, array_type, array, base, step, count):
        """The addresses of a group's (m + 2)² domain rows: base + ξ·step."""
        b = self.b
        return [self.at(array_type, array, b.add(base, b.mul(step, ir.Constant(step.type, xi)))) for xi in range(count)]

    def store_rows(self, values, array_type, array, base, step, count):
        """Value ξ to domain row ξ (base + ξ·step), its first `count` lanes."""
        for value, target in zip(values, self.domain_rows(array_type, array, base, step, len(values))):
            self.store(value, target, count)


def neighbour_loader(lanes, tile, array_type, array, base, step, first, limit, valid):
    """neighbour(dy, dx, i, j) for fold(), from a flat Winograd-domain array holding
    Y: row ξ = i·(m + 2) + j of tile t at array[base + ξ·step + t]; the lanes'
    neighbours (dy, dx) are tiles first(dy, dx) + l. Lanes outside [0, limit)
    or where valid(dy, dx) (an i1 vector) is unset read zero."""
    b, n = lanes.b, tile + 2
    zero = ir.Constant(lanes.narrow, None)

    def neighbour(dy, dx, i, j):
        row = lanes.at(array_type, array, b.add(base, b.mul(step, ir.Constant(step.type, i * n + j))))
        value = lanes.load(lanes.narrow, row, first(dy, dx), limit)
        return value if (dy, dx) == (0, 0) else b.select(valid(dy, dx), value, zero)

    return neighbour


def _arrays(*arrays, ndims):
    return (all(isinstance(a, types.Array) and a.layout == "C" and a.ndim == n for a, n in zip(arrays, ndims))
            and isinstance(arrays[0].dtype, types.Float) and len({a.dtype for a in arrays}) == 1)


def _integers(*values):
    return all(isinstance(v, types.Integer) for v in values)


def _ints(context, builder, signature, args, positions):
    return [context.cast(builder, args[k], signature.args[k], types.int64) for k in positions]


def _input_tiles8(tile):
    @intrinsic
    def input_tiles8(typingctx, plane, top, col, v, base, step, count):
        """Bᵀ d B for tiles tx0 … tx0 + count − 1 of one tile row of a (H, W) plane:
        the patches' m + 2 rows from `top` (= m·ty − 1) on, columns from
        col = m·tx0 − 1 on, zero outside the plane. Writes v[base + ξ·step + l]."""
        if not (_arrays(plane, v, ndims=(2, 1)) and _integers(top, col, base, step, count)):
            return None

        def codegen(context, builder, signature, args):
            b = builder
            top_v, col_v, base_v, step_v, count_v = _ints(context, builder, signature, args, (1, 2, 4, 5, 6))
            lanes = _Lanes(context, builder, context.get_value_type(signature.args[3].dtype))
            shape = cgutils.unpack_tuple(b, cgutils.create_struct_proxy(signature.args[0])(
                context, builder, value=args[0]).shape, 2)
            height, width = shape
            segment = lanes.wide(tile)
            near, far = [], []
            for i in range(tile + 2):
                row = b.add(top_v, ir.Constant(top_v.type, i))
                row_ok = b.and_(b.icmp_signed(">=", row, ir.Constant(row.type, 0)), b.icmp_signed("<", row, height))
                start = lanes.at(signature.args[0], args[0], b.mul(b.select(row_ok, row, ir.Constant(row.type, 0)),
                                                                   width))
                near.append(lanes.load(segment, start, col_v, width, row_ok))
                far.append(lanes.load(segment, start, b.add(col_v, ir.Constant(col_v.type, tile)), width, row_ok))
            near, far = _apply(b, BT[tile], near), _apply(b, BT[tile], far)  # Bᵀ·d down the rows
            out = []
            for i in range(tile + 2):
                columns = lanes.phases(near[i], tile) + lanes.phases(far[i], tile)[:2]  # patch columns 0 … m + 1
                out += _apply(b, BT[tile], columns)
            lanes.store_rows(out, signature.args[3], args[3], base_v, step_v, count_v)
            return context.get_dummy_value()

        return types.none(plane, top, col, v, base, step, count), codegen

    return input_tiles8


def _output_tiles8(tile):
    @intrinsic
    def output_tiles8(typingctx, m, base, step, plane, top, col, beta, relu, count):
        """Aᵀ M A + beta, then max(·, 0) if relu, for tiles tx0 … tx0 + count − 1 of one
        tile row, M's row ξ at m[base + ξ·step + l]: writes plane[top + r, col : col +
        m·count] for r < m (top = m·ty, col = m·tx0)."""
        if not (_arrays(m, plane, ndims=(1, 2)) and isinstance(beta, types.Float) and isinstance(relu, types.Boolean)
                and _integers(base, step, top, col, count)):
            return None

        def codegen(context, builder, signature, args):
            b = builder
            base_v, step_v, top_v, col_v, count_v = _ints(context, builder, signature, args, (1, 2, 4, 5, 8))
            lanes = _Lanes(context, builder, context.get_value_type(signature.args[0].dtype))
            relu_v = splat(b, context.cast(builder, args[7], signature.args[7], types.boolean),
                           ir.VectorType(ir.IntType(1), VECTOR))
            beta_vec = splat(b, context.cast(b, args[6], signature.args[6], signature.args[0].dtype), lanes.narrow)
            outputs = tile_outputs(b, lanes, tile, signature.args[0], args[0], base_v, step_v, beta_vec, relu_v,
                                   count_v)
            width = cgutils.unpack_tuple(b, cgutils.create_struct_proxy(signature.args[3])(
                context, builder, value=args[3]).shape, 2)[1]
            for r in range(tile):
                first = b.add(b.mul(b.add(top_v, ir.Constant(top_v.type, r)), width), col_v)
                lanes.store(lanes.interleave(outputs[r]), lanes.at(signature.args[3], args[3], first),
                            b.mul(count_v, ir.Constant(count_v.type, tile)))
            return context.get_dummy_value()

        return types.none(m, base, step, plane, top, col, beta, relu, count), codegen

    return output_tiles8


def tile_outputs(b, lanes, tile, array_type, array, base, step, beta, relu, count):
    """Rows of m vectors: Aᵀ M A + beta, then max(·, 0) where relu, for a group of
    tiles whose M's row ξ is at array[base + ξ·step + l] (count lanes)."""
    n = tile + 2
    zero = ir.Constant(base.type, 0)
    m_rows = [lanes.load(lanes.narrow, row, zero, count) for row in lanes.domain_rows(array_type, array, base, step,
                                                                                        n * n)]
    tiles = sandwich(b, AT[tile], [m_rows[n * i:n * (i + 1)] for i in range(n)])  # Aᵀ·M·A
    return [[relu_if(b, b.fadd(v, beta), relu) for v in row] for row in tiles]


def _pooled_output_tiles8(tile):
    @intrinsic
    def pooled_output_tiles8(typingctx, m, base, step, pooled, arg, top, col, beta, relu, count):
        """output_tiles8's outputs for tiles tx0 … tx0 + count − 1 of tile row ty, 2×2
        max-pooled inside each tile: writes the pooled plane's rows (m/2)·ty …
        and columns from (m/2)·tx0 on, and `arg` the maxima's flat indices in the
        unpooled plane (rows of 2·pooled's width), as pool.maxpool_2x2_plane would.
        top = m·ty and col = m·tx0 are in the unpooled plane."""
        if not (_arrays(m, pooled, ndims=(1, 2)) and isinstance(arg, types.Array) and arg.ndim == 2
                and arg.layout == "C" and arg.dtype == types.int32 and isinstance(beta, types.Float)
                and isinstance(relu, types.Boolean) and _integers(base, step, top, col, count)):
            return None

        def codegen(context, builder, signature, args):
            b = builder
            base_v, step_v, top_v, col_v, count_v = _ints(context, builder, signature, args, (1, 2, 5, 6, 9))
            lanes = _Lanes(context, builder, context.get_value_type(signature.args[0].dtype))
            relu_v = splat(b, context.cast(builder, args[8], signature.args[8], types.boolean),
                           ir.VectorType(ir.IntType(1), VECTOR))
            beta_vec = splat(b, context.cast(b, args[7], signature.args[7], signature.args[0].dtype), lanes.narrow)
            outputs = tile_outputs(b, lanes, tile, signature.args[0], args[0], base_v, step_v, beta_vec, relu_v,
                                   count_v)
            half = tile // 2
            pooled_width = cgutils.unpack_tuple(b, cgutils.create_struct_proxy(signature.args[3])(
                context, builder, value=args[3]).shape, 2)[1]
            i32 = ir.IntType(32)
            ints = ir.VectorType(i32, VECTOR)
            width32 = b.trunc(b.mul(pooled_width, ir.Constant(pooled_width.type, 2)), i32)
            column0 = b.add(splat(b, b.trunc(col_v, i32), ints), ir.Constant(ints, [tile * l for l in range(VECTOR)]))

            def corner(pr, pc):
                row = b.trunc(b.add(top_v, ir.Constant(top_v.type, 2 * pr)), i32)
                return b.add(splat(b, b.mul(row, width32), ints), b.add(column0, ir.Constant(ints, [2 * pc] * VECTOR)))

            window = pool_windows(b, outputs, tile, corner)
            for pr in range(half):
                results = [window(pr, pc, splat(b, width32, ints)) for pc in range(half)]
                prow = b.add(b.sdiv(top_v, ir.Constant(top_v.type, 2)), ir.Constant(top_v.type, pr))
                first = b.add(b.mul(prow, pooled_width), b.sdiv(col_v, ir.Constant(col_v.type, 2)))
                stored = b.mul(count_v, ir.Constant(count_v.type, half))
                if half == 1:
                    values, indices = results[0]
                else:
                    values = lanes.interleave([v for v, _ in results])
                    indices = lanes.interleave([i for _, i in results])
                lanes.store(values, lanes.at(signature.args[3], args[3], first), stored)
                lanes.store(indices, lanes.at(signature.args[4], args[4], first), stored)
            return context.get_dummy_value()

        return types.none(m, base, step, pooled, arg, top, col, beta, relu, count), codegen

    return pooled_output_tiles8


def _gradient_tiles8(tile):
    @intrinsic
    def gradient_tiles8(typingctx, plane, top, col, dm, base, step, count):
        """A δ Aᵀ for tiles tx0 … tx0 + count − 1 of one tile row: δ's m rows from
        `top` on (= m·ty), columns col … col + m·count − 1 (col = m·tx0) of a
        gradient plane; writes dm[base + ξ·step + l]."""
        if not (_arrays(plane, dm, ndims=(2, 1)) and _integers(top, col, base, step, count)):
            return None

        def codegen(context, builder, signature, args):
            b = builder
            top_v, col_v, base_v, step_v, count_v = _ints(context, builder, signature, args, (1, 2, 4, 5, 6))
            lanes = _Lanes(context, builder, context.get_value_type(signature.args[3].dtype))
            width = cgutils.unpack_tuple(b, cgutils.create_struct_proxy(signature.args[0])(
                context, builder, value=args[0]).shape, 2)[1]
            limit = b.add(col_v, b.mul(count_v, ir.Constant(count_v.type, tile)))
            delta = []
            for r in range(tile):
                start = lanes.at(signature.args[0], args[0], b.mul(b.add(top_v, ir.Constant(top_v.type, r)), width))
                delta.append(lanes.phases(lanes.load(lanes.wide(tile), start, col_v, limit), tile))
            out = [v for row in sandwich(b, A[tile], delta) for v in row]  # A·δ·Aᵀ
            lanes.store_rows(out, signature.args[3], args[3], base_v, step_v, count_v)
            return context.get_dummy_value()

        return types.none(plane, top, col, dm, base, step, count), codegen

    return gradient_tiles8


def _adjoint_tiles8(tile):
    @intrinsic
    def adjoint_tiles8(typingctx, d, base, step, count):
        """B X Bᵀ in place for tiles base … base + count − 1 of a flat Winograd-domain
        array, X's row ξ at d[base + ξ·step + l]: the gradient with respect to
        the tiles' input patches of the gradient X with respect to V = Bᵀ d B."""
        if not (_arrays(d, ndims=(1,)) and _integers(base, step, count)):
            return None

        def codegen(context, builder, signature, args):
            b = builder
            base_v, step_v, count_v = _ints(context, builder, signature, args, (1, 2, 3))
            lanes = _Lanes(context, builder, context.get_value_type(signature.args[0].dtype))
            n = tile + 2
            rows = lanes.domain_rows(signature.args[0], args[0], base_v, step_v, n * n)
            zero = ir.Constant(base_v.type, 0)
            grid = [lanes.load(lanes.narrow, row, zero, count_v) for row in rows]
            out = [v for row in sandwich(b, B[tile], [grid[n * i:n * (i + 1)] for i in range(n)]) for v in row]
            for value, target in zip(out, rows):
                lanes.store(value, target, count_v)
            return context.get_dummy_value()

        return types.none(d, base, step, count), codegen

    return adjoint_tiles8


def _folded_output_tiles8(tile):
    @intrinsic
    def folded_output_tiles8(typingctx, y, base, step, limit, plane, top, col, count):
        """The input gradient of tiles tx0 … tx0 + count − 1 of one tile row of an
        image: the m×m pixels each owns, rows top … top + m − 1 (top = m·ty),
        columns from col = m·tx0, summed by fold() from the patch gradients
        Y = B X Bᵀ (adjoint_tiles8) of the image's tiles t = ty·tw + tx, Y's row
        ξ at y[base + ξ·step + t] for t < limit."""
        if not (_arrays(y, plane, ndims=(1, 2)) and _integers(base, step, limit, top, col, count)):
            return None

        def codegen(context, builder, signature, args):
            b = builder
            base_v, step_v, limit_v, top_v, col_v, count_v = _ints(context, builder, signature, args,
                                                                    (1, 2, 3, 5, 6, 7))
            lanes = _Lanes(context, builder, context.get_value_type(signature.args[0].dtype))
            height, width = cgutils.unpack_tuple(b, cgutils.create_struct_proxy(signature.args[4])(
                context, builder, value=args[4]).shape, 2)
            m = ir.Constant(width.type, tile)
            tw, th = b.sdiv(width, m), b.sdiv(height, m)
            ty, tx0 = b.sdiv(top_v, m), b.sdiv(col_v, m)
            ints = ir.VectorType(width.type, VECTOR)
            tx = b.add(splat(b, tx0, ints), ir.Constant(ints, list(range(VECTOR))))
            one = ir.Constant(width.type, 1)
            row_ok = {-1: b.icmp_signed(">=", ty, one), 0: ir.Constant(ir.IntType(1), 1),
                      1: b.icmp_signed("<", b.add(ty, one), th)}
            col_ok = {-1: b.icmp_signed(">=", tx, splat(b, one, ints)),
                      0: ir.Constant(ir.VectorType(ir.IntType(1), VECTOR), [1] * VECTOR),
                      1: b.icmp_signed("<", b.add(tx, splat(b, one, ints)), splat(b, tw, ints))}

            def valid(dy, dx):
                return b.and_(col_ok[dx], splat(b, row_ok[dy], col_ok[0].type))

            def first(dy, dx):
                return b.add(b.mul(b.add(ty, ir.Constant(ty.type, dy)), tw), b.add(tx0, ir.Constant(tx0.type, dx)))

            pixels = fold(b, tile, neighbour_loader(lanes, tile, signature.args[0], args[0], base_v, step_v, first,
                                                    limit_v, valid))
            for r in range(tile):
                start = b.add(b.mul(b.add(top_v, ir.Constant(top_v.type, r)), width), col_v)
                lanes.store(lanes.interleave(pixels[r]), lanes.at(signature.args[4], args[4], start),
                            b.mul(count_v, ir.Constant(count_v.type, tile)))
            return context.get_dummy_value()

        return types.none(y, base, step, limit, plane, top, col, count), codegen

    return folded_output_tiles8


input_tiles8_2, input_tiles8_4 = _input_tiles8(2), _input_tiles8(4)
output_tiles8_2, output_tiles8_4 = _output_tiles8(2), _output_tiles8(4)
gradient_tiles8_2, gradient_tiles8_4 = _gradient_tiles8(2), _gradient_tiles8(4)
adjoint_tiles8_2, adjoint_tiles8_4 = _adjoint_tiles8(2), _adjoint_tiles8(4)
folded_output_tiles8_2, folded_output_tiles8_4 = _folded_output_tiles8(2), _folded_output_tiles8(4)
pooled_output_tiles8_2, pooled_output_tiles8_4 = _pooled_output_tiles8(2), _pooled_output_tiles8(4)
