"""Winograd tile transforms for small maps, eight tiles of a chunk at a time
whatever plane and tile row they sit in (kernels/winograd_tiles.py).

On a map of fewer than eight tiles a row (an 8×8 map has two 4×4 tiles a
row), tile_vector.py's row-at-a-time intrinsics leave most of their eight
lanes empty. Here lane l is the chunk's tile t0 + l, wherever it is: a table
`where` (3, tiles) gives each tile's image, tile row and tile column, and the
patch numbers are gathered (masked: padding reads as zero without being
read), the outputs scattered, with one gather or scatter per patch position.
The arithmetic is tile_algebra.py's, lane by lane.

Arrays of planes are 4-D, (images, channels, H, W); a tile of image b and
channel c reads plane ((b − shift)·channels + c), so a chunk-local array
(shift = the chunk's first image) and a whole-batch one (shift = 0) take the
same table.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .tile_algebra import BT, A, fold, pool_windows, sandwich
from .tile_vector import _Lanes, neighbour_loader, tile_outputs
from .vector import VECTOR, splat

_I64 = ir.IntType(64)
_LONGS = ir.VectorType(_I64, VECTOR)


def _call(builder, name, result_type, args):
    fnty = ir.FunctionType(result_type, [a.type for a in args])
    return builder.call(cgutils.get_or_insert_function(builder.module, fnty, name), args)


def _suffix(vector_type):
    return f"v{VECTOR}{'f32' if isinstance(vector_type.element, ir.FloatType) else 'f64'}"


class _Tiles:
    """The planes and the table of one call: addresses and masks for each patch position."""

    def __init__(self, context, builder, signature, args, planes_at, shift_at, channel_at, where_at, t0_at, count_at):
        b = self.b = builder
        self.lanes = _Lanes(context, builder, context.get_value_type(signature.args[planes_at].dtype))
        planes = cgutils.create_struct_proxy(signature.args[planes_at])(context, builder, value=args[planes_at])
        _, channels, self.height, self.width = cgutils.unpack_tuple(b, planes.shape, 4)
        self.data = planes.data
        as_long = [context.cast(builder, args[k], signature.args[k], types.int64)
                   for k in (shift_at, channel_at, t0_at, count_at)]
        shift, channel, t0, self.count = as_long
        where = cgutils.create_struct_proxy(signature.args[where_at])(context, builder, value=args[where_at])
        tiles = cgutils.unpack_tuple(b, where.shape, 2)[1]
        entries = [self.lanes.load(_LONGS, b.gep(where.data, [b.add(b.mul(ir.Constant(_I64, r), tiles), t0)]),
                                   ir.Constant(_I64, 0), self.count) for r in range(3)]
        image, self.tile_row, self.tile_col = entries
        area = b.mul(self.height, self.width)
        plane = b.add(b.mul(b.sub(image, splat(b, shift, _LONGS)), splat(b, channels, _LONGS)),
                      splat(b, channel, _LONGS))
        self.plane_start = b.mul(plane, splat(b, area, _LONGS))
        self.live = b.icmp_signed("<", ir.Constant(_LONGS, list(range(VECTOR))), splat(b, self.count, _LONGS))
        self.base = splat(b, b.ptrtoint(self.data, _I64), _LONGS)
        self.itemsize = ir.Constant(_LONGS, [context.get_abi_sizeof(self.lanes.narrow.element)] * VECTOR)

    def rows_cols(self, tile, first):
        """Each lane's first patch row and column: tile·ty + first, tile·tx + first."""
        b, m = self.b, ir.Constant(_LONGS, [tile] * VECTOR)
        offset = ir.Constant(_LONGS, [first] * VECTOR)
        return b.add(b.mul(self.tile_row, m), offset), b.add(b.mul(self.tile_col, m), offset)

    def pointers(self, row, col):
        b = self.b
        flat = b.add(self.plane_start, b.add(b.mul(row, splat(b, self.width, _LONGS)), col))
        return b.inttoptr(b.add(self.base, b.mul(flat, self.itemsize)), ir.VectorType(self.data.type, VECTOR))

    def inside(self, row, col):
        """Lanes that exist and whose (row, col) is in the plane."""
        b = self.b
        zero = ir.Constant(_LONGS, [0] * VECTOR)
        ok = b.and_(b.icmp_signed(">=", row, zero), b.icmp_signed("<", row, splat(b, self.height, _LONGS)))
        ok = b.and_(ok, b.and_(b.icmp_signed(">=", col, zero), b.icmp_signed("<", col, splat(b, self.width, _LONGS))))
        return b.and_(ok, self.live)

    def gather(self, row, col, mask):
        vector = self.lanes.narrow
        return _call(self.b, f"llvm.masked.gather.{_suffix(vector)}.v{VECTOR}p0", vector,
                     [self.pointers(row, col), ir.Constant(ir.IntType(32), 4), mask, ir.Constant(vector, None)])

    def scatter(self, value, row, col):
        _call(self.b, f"llvm.masked.scatter.{_suffix(value.type)}.v{VECTOR}p0", ir.VoidType(),
              [value, self.pointers(row, col), ir.Constant(ir.IntType(32), 4), self.live])

    def store_domain(self, values, array_type, array, base, step):
        self.lanes.store_rows(values, array_type, array, base, step, self.count)

    def load_domain(self, array_type, array, base, step, n):
        return [self.lanes.load(self.lanes.narrow, row, ir.Constant(_I64, 0), self.count)
                for row in self.lanes.domain_rows(array_type, array, base, step, n)]


def _ok(planes, shift, channel, where, t0, flat, integers=()):
    return (isinstance(planes, types.Array) and planes.ndim == 4 and planes.layout == "C"
            and isinstance(planes.dtype, types.Float) and isinstance(flat, types.Array) and flat.ndim == 1
            and flat.layout == "C" and flat.dtype == planes.dtype and isinstance(where, types.Array)
            and where.ndim == 2 and where.layout == "C" and where.dtype == types.int64
            and all(isinstance(v, types.Integer) for v in (shift, channel, t0) + tuple(integers)))


def _gather_input_tiles8(tile):
    @intrinsic
    def gather_input_tiles8(typingctx, planes, shift, channel, where, t0, v, base, step, count):
        """Bᵀ d B for the chunk's tiles t0 … t0 + count − 1 (count ≤ 8) of one channel:
        v[base + ξ·step + l] for tile t0 + l."""
        if not _ok(planes, shift, channel, where, t0, v, (base, step, count)):
            return None

        def codegen(context, builder, signature, args):
            b = builder
            tiles = _Tiles(context, builder, signature, args, 0, 1, 2, 3, 4, 8)
            base_v, step_v = (context.cast(builder, args[k], signature.args[k], types.int64) for k in (6, 7))
            top, left = tiles.rows_cols(tile, -1)
            n = tile + 2
            patch = []
            for i in range(n):
                row = b.add(top, ir.Constant(_LONGS, [i] * VECTOR))
                cols = [b.add(left, ir.Constant(_LONGS, [j] * VECTOR)) for j in range(n)]
                patch.append([tiles.gather(row, col, tiles.inside(row, col)) for col in cols])
            out = [v for row in sandwich(b, BT[tile], patch) for v in row]  # Bᵀ·d·B
            tiles.store_domain(out, signature.args[5], args[5], base_v, step_v)
            return context.get_dummy_value()

        return types.none(planes, shift, channel, where, t0, v, base, step, count), codegen

    return gather_input_tiles8


def _scatter_output_tiles8(tile):
    @intrinsic
    def scatter_output_tiles8(typingctx, m, base, step, planes, shift, channel, where, t0, beta, relu, count):
        """Aᵀ M A + beta, then max(·, 0) if relu, for the chunk's tiles t0 … t0 + count − 1
        of one output channel, M's row ξ at m[base + ξ·step + l]: scattered into the planes."""
        if not (_ok(planes, shift, channel, where, t0, m, (base, step, count)) and isinstance(beta, types.Float)
                and isinstance(relu, types.Boolean)):
            return None

        def codegen(context, builder, signature, args):
            b = builder
            tiles = _Tiles(context, builder, signature, args, 3, 4, 5, 6, 7, 10)
            base_v, step_v = (context.cast(builder, args[k], signature.args[k], types.int64) for k in (1, 2))
            outputs = _outputs(context, b, tiles, signature, args, base_v, step_v, tile)
            top, left = tiles.rows_cols(tile, 0)
            for r in range(tile):
                row = b.add(top, ir.Constant(_LONGS, [r] * VECTOR))
                for s, value in enumerate(outputs[r]):
                    tiles.scatter(value, row, b.add(left, ir.Constant(_LONGS, [s] * VECTOR)))
            return context.get_dummy_value()

        return types.none(m, base, step, planes, shift, channel, where, t0, beta, relu, count), codegen

    return scatter_output_tiles8


def _outputs(context, b, tiles, signature, args, base, step, tile):
    """tile_vector.tile_outputs for a call whose args 8 and 9 are beta and relu."""
    beta = splat(b, context.cast(b, args[8], signature.args[8], signature.args[0].dtype), tiles.lanes.narrow)
    relu = splat(b, context.cast(b, args[9], signature.args[9], types.boolean), ir.VectorType(ir.IntType(1), VECTOR))
    return tile_outputs(b, tiles.lanes, tile, signature.args[0], args[0], base, step, beta, relu, tiles.count)


def _scatter_pooled_tiles8(tile):
    @intrinsic
    def scatter_pooled_tiles8(typingctx, m, base, step, pooled, shift, channel, where, t0, beta, relu, count, arg):
        """scatter_output_tiles8's outputs 2×2 max-pooled inside each tile, scattered into
        the pooled planes, and `arg` (int32, the pooled planes' shape) the maxima's
        flat indices in the unpooled planes, as pool.maxpool_2x2_plane would."""
        if not (_ok(pooled, shift, channel, where, t0, m, (base, step, count)) and isinstance(beta, types.Float)
                and isinstance(relu, types.Boolean) and isinstance(arg, types.Array) and arg.ndim == 4
                and arg.layout == "C" and arg.dtype == types.int32):
            return None

        def codegen(context, builder, signature, args):
            b = builder
            tiles = _Tiles(context, builder, signature, args, 3, 4, 5, 6, 7, 10)
            base_v, step_v = (context.cast(builder, args[k], signature.args[k], types.int64) for k in (1, 2))
            outputs = _outputs(context, b, tiles, signature, args, base_v, step_v, tile)
            i32 = ir.IntType(32)
            ints = ir.VectorType(i32, VECTOR)
            width = b.trunc(b.mul(tiles.width, ir.Constant(_I64, 2)), i32)  # the unpooled planes' rows
            width_v = splat(b, width, ints)
            top, left = tiles.rows_cols(tile, 0)  # in the unpooled planes

            def corner(pr, pc):
                row = b.trunc(b.add(top, ir.Constant(_LONGS, [2 * pr] * VECTOR)), ints)
                col = b.trunc(b.add(left, ir.Constant(_LONGS, [2 * pc] * VECTOR)), ints)
                return b.add(b.mul(row, width_v), col)

            window = pool_windows(b, outputs, tile, corner)
            arg_data = cgutils.create_struct_proxy(signature.args[11])(context, builder, value=args[11]).data
            arg_base = splat(b, b.ptrtoint(arg_data, _I64), _LONGS)
            ptop, pleft = tiles.rows_cols(tile // 2, 0)
            for pr in range(tile // 2):
                for pc in range(tile // 2):
                    value, index = window(pr, pc, width_v)
                    row = b.add(ptop, ir.Constant(_LONGS, [pr] * VECTOR))
                    col = b.add(pleft, ir.Constant(_LONGS, [pc] * VECTOR))
                    tiles.scatter(value, row, col)
                    flat = b.add(tiles.plane_start, b.add(b.mul(row, splat(b, tiles.width, _LONGS)), col))
                    pointers = b.inttoptr(b.add(arg_base, b.mul(flat, ir.Constant(_LONGS, [4] * VECTOR))),
                                          ir.VectorType(i32.as_pointer(), VECTOR))
                    _call(b, f"llvm.masked.scatter.v{VECTOR}i32.v{VECTOR}p0", ir.VoidType(),
                          [index, pointers, ir.Constant(i32, 4), tiles.live])
            return context.get_dummy_value()

        return types.none(m, base, step, pooled, shift, channel, where, t0, beta, relu, count, arg), codegen

    return scatter_pooled_tiles8


def _gather_gradient_tiles8(tile):
    @intrinsic
    def gather_gradient_tiles8(typingctx, planes, shift, channel, where, t0, dm, base, step, count):
        """A δ Aᵀ for the chunk's tiles t0 … t0 + count − 1 of one gradient channel:
        dm[base + ξ·step + l] for tile t0 + l."""
        if not _ok(planes, shift, channel, where, t0, dm, (base, step, count)):
            return None

        def codegen(context, builder, signature, args):
            b = builder
            tiles = _Tiles(context, builder, signature, args, 0, 1, 2, 3, 4, 8)
            base_v, step_v = (context.cast(builder, args[k], signature.args[k], types.int64) for k in (6, 7))
            top, left = tiles.rows_cols(tile, 0)
            delta = [[tiles.gather(b.add(top, ir.Constant(_LONGS, [r] * VECTOR)),
                                   b.add(left, ir.Constant(_LONGS, [c] * VECTOR)), tiles.live)
                      for c in range(tile)] for r in range(tile)]
            out = [v for row in sandwich(b, A[tile], delta) for v in row]  # A·δ·Aᵀ
            tiles.store_domain(out, signature.args[5], args[5], base_v, step_v)
            return context.get_dummy_value()

        return types.none(planes, shift, channel, where, t0, dm, base, step, count), codegen

    return gather_gradient_tiles8


def _gather_input_channels8(tile):
    @intrinsic
    def gather_input_channels8(typingctx, planes, image, top, left, c0, vt, base, step, count):
        """Bᵀ d B of one tile of image `image` of the planes, for channels c0 … c0 +
        count − 1 (count ≤ 8): lane l is channel c0 + l, the patch's rows from
        `top` (= m·ty − 1), columns from `left` (= m·tx − 1), zero outside the
        plane. Writes vt[base + ξ·step + l]: the Winograd domain with tiles by
        channels (rows of channels), the layout the weight gradient's product reads."""
        if not (isinstance(planes, types.Array) and planes.ndim == 4 and planes.layout == "C"
                and isinstance(planes.dtype, types.Float) and isinstance(vt, types.Array) and vt.ndim == 1
                and vt.layout == "C" and vt.dtype == planes.dtype
                and all(isinstance(v, types.Integer) for v in (image, top, left, c0, base, step, count))):
            return None

        def codegen(context, builder, signature, args):
            b = builder
            image_v, top_v, left_v, c0_v, base_v, step_v, count_v = (
                context.cast(builder, args[k], signature.args[k], types.int64) for k in (1, 2, 3, 4, 6, 7, 8))
            lanes = _Lanes(context, builder, context.get_value_type(signature.args[0].dtype))
            proxy = cgutils.create_struct_proxy(signature.args[0])(context, builder, value=args[0])
            _, channels, height, width = cgutils.unpack_tuple(b, proxy.shape, 4)
            area = b.mul(height, width)
            first_plane = b.add(b.mul(image_v, channels), c0_v)
            plane_starts = b.mul(b.add(splat(b, first_plane, _LONGS), ir.Constant(_LONGS, list(range(VECTOR)))),
                                 splat(b, area, _LONGS))
            itemsize = ir.Constant(_LONGS, [context.get_abi_sizeof(lanes.narrow.element)] * VECTOR)
            origin = splat(b, b.ptrtoint(proxy.data, _I64), _LONGS)
            live = b.icmp_signed("<", ir.Constant(_LONGS, list(range(VECTOR))), splat(b, count_v, _LONGS))
            zero = ir.Constant(_I64, 0)
            n = tile + 2
            patch = []
            for i in range(n):
                row = b.add(top_v, ir.Constant(_I64, i))
                row_ok = b.and_(b.icmp_signed(">=", row, zero), b.icmp_signed("<", row, height))
                values = []
                for j in range(n):
                    col = b.add(left_v, ir.Constant(_I64, j))
                    ok = b.and_(row_ok, b.and_(b.icmp_signed(">=", col, zero), b.icmp_signed("<", col, width)))
                    offset = splat(b, b.add(b.mul(row, width), col), _LONGS)
                    pointers = b.inttoptr(b.add(origin, b.mul(b.add(plane_starts, offset), itemsize)),
                                          ir.VectorType(proxy.data.type, VECTOR))
                    mask = b.and_(live, splat(b, ok, live.type))
                    values.append(_call(b, f"llvm.masked.gather.{_suffix(lanes.narrow)}.v{VECTOR}p0", lanes.narrow,
                                         [pointers, ir.Constant(ir.IntType(32), 4), mask,
                                          ir.Constant(lanes.narrow, None)]))
                patch.append(values)
            out = [v for row in sandwich(b, BT[tile], patch) for v in row]  # Bᵀ·d·B
            lanes.store_rows(out, signature.args[5], args[5], base_v, step_v, count_v)
            return context.get_dummy_value()

        return types.none(planes, image, top, left, c0, vt, base, step, count), codegen

    return gather_input_channels8


def _scatter_folded_tiles8(tile):
    @intrinsic
    def scatter_folded_tiles8(typingctx, y, base, step, planes, shift, channel, where, t0, count):
        """The input gradient of the chunk's tiles t0 … t0 + count − 1 of one
        channel: the m×m pixels each owns, summed by fold() from the patch
        gradients Y = B X Bᵀ (tile_vector.adjoint_tiles8) of the tile and its
        neighbours in the same image, Y's row ξ of tile t at y[base + ξ·step + t];
        scattered into the planes."""
        if not _ok(planes, shift, channel, where, t0, y, (base, step, count)):
            return None

        def codegen(context, builder, signature, args):
            b = builder
            tiles = _Tiles(context, builder, signature, args, 3, 4, 5, 6, 7, 8)
            base_v, step_v, t0_v = (context.cast(builder, args[k], signature.args[k], types.int64) for k in (1, 2, 7))
            m = ir.Constant(_I64, tile)
            tw, th = b.sdiv(tiles.width, m), b.sdiv(tiles.height, m)
            limit = cgutils.unpack_tuple(b, cgutils.create_struct_proxy(signature.args[6])(
                context, builder, value=args[6]).shape, 2)[1]
            one, zero = ir.Constant(_LONGS, [1] * VECTOR), ir.Constant(_LONGS, [0] * VECTOR)
            ok = {("row", -1): b.icmp_signed(">=", tiles.tile_row, one),
                  ("row", 1): b.icmp_signed("<", b.add(tiles.tile_row, one), splat(b, th, _LONGS)),
                  ("col", -1): b.icmp_signed(">=", tiles.tile_col, one),
                  ("col", 1): b.icmp_signed("<", b.add(tiles.tile_col, one), splat(b, tw, _LONGS))}
            everywhere = b.icmp_signed(">=", zero, zero)

            def valid(dy, dx):
                return b.and_(ok.get(("row", dy), everywhere), ok.get(("col", dx), everywhere))

            def first(dy, dx):
                return b.add(t0_v, b.add(b.mul(ir.Constant(_I64, dy), tw), ir.Constant(_I64, dx)))

            pixels = fold(b, tile, neighbour_loader(tiles.lanes, tile, signature.args[0], args[0], base_v, step_v,
                                                    first, limit, valid))
            top, left = tiles.rows_cols(tile, 0)
            for r in range(tile):
                row = b.add(top, ir.Constant(_LONGS, [r] * VECTOR))
                for s, value in enumerate(pixels[r]):
                    tiles.scatter(value, row, b.add(left, ir.Constant(_LONGS, [s] * VECTOR)))
            return context.get_dummy_value()

        return types.none(y, base, step, planes, shift, channel, where, t0, count), codegen

    return scatter_folded_tiles8


gather_input_tiles8_2, gather_input_tiles8_4 = _gather_input_tiles8(2), _gather_input_tiles8(4)
scatter_output_tiles8_2, scatter_output_tiles8_4 = _scatter_output_tiles8(2), _scatter_output_tiles8(4)
gather_gradient_tiles8_2, gather_gradient_tiles8_4 = _gather_gradient_tiles8(2), _gather_gradient_tiles8(4)
scatter_folded_tiles8_2, scatter_folded_tiles8_4 = _scatter_folded_tiles8(2), _scatter_folded_tiles8(4)
gather_input_channels8_2, gather_input_channels8_4 = _gather_input_channels8(2), _gather_input_channels8(4)
scatter_pooled_tiles8_2, scatter_pooled_tiles8_4 = _scatter_pooled_tiles8(2), _scatter_pooled_tiles8(4)
