"""Explicit vector code for the short rows LLVM leaves scalar.

LLVM vectorises a loop whose trip count it does not know only when the count
is large enough for its vector width times its unroll factor, after a runtime
check that source and destination do not overlap; im2col's and col2im's rows
are as short as a conv's output width (10 for LeNet-5's conv2), so LLVM leaves
them scalar: one number at a time.

- `copy8` (im2col): one unaligned 8-wide load and store. Callers cover a row of
  n ≥ 8 with copies at 0, 8, 16, … and a last one at n − 8, which may repeat
  numbers already copied (harmless for a copy, never for an addition).
- `accumulate_taps3` (col2im): gather form. Each 16-wide segment of an
  input-gradient row is summed in registers over every kernel tap that reads
  it — masked 16-wide loads, each shifted by its tap's column — and added to
  memory once, instead of 25 scattered 10-wide additions into overlapping
  places. The taps are added in the scatter's own order, so the
  sums are bit for bit the same. One chain of dependent additions would wait
  on each addition's latency, so three planes' chains run side by side
  (benchmarks/RESULTS.md, Design measurements); a last group of one or two
  planes leaves the other chains empty.
- `maxpool2x2` (2×2, stride-2 max pooling): up to eight outputs of a row at
  once — two 16-wide masked row loads split into even and odd columns, the
  pooling's own comparisons and selects lane by lane, masked stores — so
  results and argmaxes are the scalar loop's, bit for bit, and a row's last
  group (pool2 of LeNet-5 has rows of 5) touches nothing past its end.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

VECTOR = 8


def _element_pointer(context, builder, array_type, array, index):
    data = cgutils.create_struct_proxy(array_type)(context, builder, value=array).data
    return builder.gep(data, [index])


@intrinsic
def copy8(typingctx, dst, dst_start, src, src_start):
    """dst[dst_start : dst_start + 8] = src[src_start : src_start + 8] on contiguous
    1-D arrays of one float type; starts are unsigned (no negative-index wraparound)
    and unchecked: the caller keeps both spans inside their arrays."""
    arrays_ok = all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" for a in (dst, src))
    if not arrays_ok or dst.dtype != src.dtype or not isinstance(dst.dtype, types.Float):
        return None
    if not all(isinstance(i, types.Integer) for i in (dst_start, src_start)):
        return None

    def codegen(context, builder, signature, args):
        dst_v, dst_i, src_v, src_i = args
        vector = ir.VectorType(context.get_value_type(signature.args[0].dtype), VECTOR)
        source = builder.bitcast(_element_pointer(context, builder, signature.args[2], src_v, src_i),
                                 vector.as_pointer())
        target = builder.bitcast(_element_pointer(context, builder, signature.args[0], dst_v, dst_i),
                                 vector.as_pointer())
        builder.store(builder.load(source, align=1), target, align=1)
        return context.get_dummy_value()

    return types.none(dst, dst_start, src, src_start), codegen


LANES = 16


def splat(builder, value, vector_type):
    """value in every lane of vector_type, whose element type is value's own."""
    first = builder.insert_element(ir.Constant(vector_type, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(first, ir.Constant(vector_type, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), vector_type.count), [0] * vector_type.count))


def _splat(builder, value, vector_type):
    """An integer value, narrowed to vector_type's integer lanes, in every lane."""
    return splat(builder, builder.trunc(value, vector_type.element), vector_type)


def _masked_load(builder, pointer, mask, vector_type):
    """Lanes where `mask` is set, zeros elsewhere; masked-off lanes are never read."""
    i32 = ir.IntType(32)
    element = vector_type.element
    kind = f"i{element.width}" if isinstance(element, ir.IntType) else ("f32" if isinstance(element, ir.FloatType)
                                                                       else "f64")
    suffix = f"v{vector_type.count}{kind}"
    fnty = ir.FunctionType(vector_type, [vector_type.as_pointer(), i32, mask.type, vector_type])
    load = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.masked.load.{suffix}.p0")
    return builder.call(load, [pointer, ir.Constant(i32, 4), mask, ir.Constant(vector_type, None)])


def load_group(builder, pointer, full, mask, vector_type):
    """A plain load where `full` (an i1) is set, else a masked one: masked loads
    cost more even with every lane set (benchmarks/RESULTS.md, Design measurements)."""
    with builder.if_else(full) as (whole, part):
        with whole:
            plain = builder.load(pointer, align=1)
            plain_block = builder.block
        with part:
            masked = _masked_load(builder, pointer, mask, vector_type)
            masked_block = builder.block
    values = builder.phi(vector_type)
    values.add_incoming(plain, plain_block)
    values.add_incoming(masked, masked_block)
    return values


def _masked_store(builder, value, pointer, mask):
    """Store the lanes of `value` where `mask` is set; nothing else is written."""
    i32 = ir.IntType(32)
    element = value.type.element
    kind = "i32" if isinstance(element, ir.IntType) else ("f32" if isinstance(element, ir.FloatType) else "f64")
    fnty = ir.FunctionType(ir.VoidType(), [value.type, value.type.as_pointer(), i32, mask.type])
    store = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.masked.store.v{value.type.count}{kind}.p0")
    builder.call(store, [value, pointer, ir.Constant(i32, 4), mask])


def _tap_accumulator(planes_at_once: int):
    """The tap-gathering intrinsic for `planes_at_once` planes (see the module docstring)."""

    @intrinsic
    def accumulate(typingctx, acc, rows, first_row, plane_rows, planes, base, lo0, taps, span):
        """For g < min(planes, planes_at_once) and n < taps:
        acc[16·g + t] += rows[first_row + g·plane_rows + n, base + t − (lo0 + n)]
        for the t in [lo0 + n, lo0 + n + span) ∩ [0, 16). rows is C-contiguous 2-D and
        only those entries are read (masked loads); acc holds 16·planes_at_once numbers."""
        arrays_ok = (isinstance(acc, types.Array) and acc.ndim == 1 and acc.layout == "C"
                     and isinstance(rows, types.Array) and rows.ndim == 2 and rows.layout == "C")
        if not arrays_ok or acc.dtype != rows.dtype or not isinstance(acc.dtype, types.Float):
            return None
        scalars = (first_row, plane_rows, planes, base, lo0, taps, span)
        if not all(isinstance(v, types.Integer) for v in scalars):
            return None

        def codegen(context, builder, signature, args):
            acc_v, rows_v = args[:2]
            first, plane_step, count, base_v, lo_first, tap_count, width = (
                context.cast(builder, v, t, types.int64) for v, t in zip(args[2:], signature.args[2:]))
            i64 = ir.IntType(64)
            vector = ir.VectorType(context.get_value_type(signature.args[0].dtype), LANES)
            lane_ints = ir.VectorType(ir.IntType(32), LANES)
            iota = ir.Constant(lane_ints, list(range(LANES)))
            matrix = cgutils.create_struct_proxy(signature.args[1])(context, builder, value=rows_v)
            row_length = builder.extract_value(matrix.shape, 1)
            targets, sums, spans, firsts = [], [], [], []
            for g in range(planes_at_once):
                target = builder.bitcast(_element_pointer(context, builder, signature.args[0], acc_v,
                                                          ir.Constant(i64, LANES * g)), vector.as_pointer())
                total = cgutils.alloca_once(builder, vector)  # promoted to a register by LLVM
                builder.store(builder.load(target, align=1), total)
                real = builder.icmp_signed("<", ir.Constant(i64, g), count)
                targets.append(target)
                sums.append(total)
                # A plane past `planes` reads nothing: an empty span, any valid row.
                spans.append(builder.select(real, width, ir.Constant(i64, 0)))
                firsts.append(builder.select(real, builder.add(first, builder.mul(ir.Constant(i64, g), plane_step)),
                                             first))
            with cgutils.for_range(builder, tap_count) as loop:
                lo = builder.add(lo_first, loop.index)
                from_lo = builder.icmp_signed(">=", iota, _splat(builder, lo, lane_ints))
                for g in range(planes_at_once):
                    hi = builder.add(lo, spans[g])
                    mask = builder.and_(from_lo, builder.icmp_signed("<", iota, _splat(builder, hi, lane_ints)))
                    offset = builder.add(builder.mul(builder.add(firsts[g], loop.index), row_length),
                                         builder.sub(base_v, lo))
                    source = builder.bitcast(builder.gep(matrix.data, [offset]), vector.as_pointer())
                    builder.store(builder.fadd(builder.load(sums[g]), _masked_load(builder, source, mask, vector)),
                                  sums[g])
            for g in range(planes_at_once):
                builder.store(builder.load(sums[g]), targets[g], align=1)
            return context.get_dummy_value()

        return types.none(acc, rows, first_row, plane_rows, planes, base, lo0, taps, span), codegen

    return accumulate


accumulate_taps3 = _tap_accumulator(3)


def _takes(builder, v, cur):
    """Does v replace the maximum cur, lane by lane? Strictly greater (the first
    maximum wins ties), or a NaN meeting a number (NaN propagates, as in
    PyTorch): the rule of pool._maxpool_plane."""
    greater = builder.fcmp_ordered(">", v, cur)
    nan_meets_number = builder.and_(builder.fcmp_unordered("uno", v, v), builder.fcmp_ordered("ord", cur, cur))
    return builder.or_(greater, nan_meets_number)


@intrinsic
def maxpool2x2(typingctx, x, start, width, out, arg, out_start, count):
    """Outputs j0 .. j0 + count − 1 (count ≤ 8) of one row of pool.maxpool_2x2_plane.
    x is one input plane, `width` numbers a row, and x[start + 2·l] the top-left
    number of lane l's window (second row x[start + width + 2·l]), l < count.
    out[out_start + l] = the window's maximum (first maximum on ties, NaN wins)
    and arg[out_start + l] = its flat index in the plane: start + 2·l plus 0, 1,
    width or width + 1. Masked loads and stores: only x[start : start + 2·count],
    the same on the second row, and those `count` outputs are touched. Arrays are
    C-contiguous; starts are flat; out and arg have one shape."""
    ok = (all(isinstance(a, types.Array) and a.layout == "C" for a in (x, out, arg))
          and x.dtype == out.dtype and isinstance(x.dtype, types.Float) and arg.dtype == types.int32
          and all(isinstance(v, types.Integer) for v in (start, width, out_start, count)))
    if not ok:
        return None

    def codegen(context, builder, signature, args):
        x_v, _, _, out_v, arg_v = args[:5]
        start_v, width_v, out_start_v, count = (
            context.cast(builder, args[k], signature.args[k], types.int64) for k in (1, 2, 5, 6))
        element = context.get_value_type(signature.args[0].dtype)
        wide = ir.VectorType(element, 2 * VECTOR)
        i32 = ir.IntType(32)
        ints, wide_ints = ir.VectorType(i32, VECTOR), ir.VectorType(i32, 2 * VECTOR)
        read = builder.icmp_signed("<", ir.Constant(wide_ints, list(range(2 * VECTOR))),
                                   _splat(builder, builder.add(count, count), wide_ints))
        write = builder.icmp_signed("<", ir.Constant(ints, list(range(VECTOR))), _splat(builder, count, ints))

        # A full group (count = 8) uses plain loads and stores: masked ones cost
        # more even with every lane set (benchmarks/RESULTS.md, Design measurements).
        full = builder.icmp_signed(">=", count, ir.Constant(count.type, VECTOR))

        def row(offset):
            pointer = builder.bitcast(_element_pointer(context, builder, signature.args[0], x_v, offset),
                                      wide.as_pointer())
            values = load_group(builder, pointer, full, read, wide)
            even = builder.shuffle_vector(values, values, ir.Constant(ints, list(range(0, 2 * VECTOR, 2))))
            odd = builder.shuffle_vector(values, values, ir.Constant(ints, list(range(1, 2 * VECTOR, 2))))
            return even, odd

        def store(value, array_type, array, at):
            pointer = builder.bitcast(_element_pointer(context, builder, array_type, array, at),
                                      value.type.as_pointer())
            with builder.if_else(full) as (whole, part):
                with whole:
                    builder.store(value, pointer, align=1)
                with part:
                    _masked_store(builder, value, pointer, write)

        a0, a1 = row(start_v)
        a2, a3 = row(builder.add(start_v, width_v))
        w32 = _splat(builder, width_v, ints)
        zero, one = ir.Constant(ints, [0] * VECTOR), ir.Constant(ints, [1] * VECTOR)
        t01 = _takes(builder, a1, a0)
        m01 = builder.select(t01, a1, a0)
        k01 = builder.select(t01, one, zero)
        t23 = _takes(builder, a3, a2)
        m23 = builder.select(t23, a3, a2)
        k23 = builder.select(t23, builder.add(w32, one), w32)
        t = _takes(builder, m23, m01)
        best = builder.select(t, m23, m01)
        lanes = ir.Constant(ints, list(range(0, 2 * VECTOR, 2)))
        where = builder.add(builder.add(_splat(builder, start_v, ints), lanes), builder.select(t, k23, k01))
        store(best, signature.args[3], out_v, out_start_v)
        store(where, signature.args[4], arg_v, out_start_v)
        return context.get_dummy_value()

    return types.none(x, start, width, out, arg, out_start, count), codegen
