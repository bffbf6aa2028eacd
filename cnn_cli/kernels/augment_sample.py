"""Bilinear sampling of one output row, as explicit vector code (LLVM intrinsics).

Written as a Numba loop, the row stays scalar: its four reads per pixel are at
computed places (gathers), and LLVM cannot prove that the output row does not
overlap the image it reads, so it does not vectorise the loop at all. Here
LANES pixels at a time: coordinates, clamping, floor and weights in float64
vector arithmetic, the four neighbours by masked gathers, then masked stores,
so nothing past the row's end is read or written. Each lane computes exactly
what the scalar formula in kernels/augment.py's docstring says, in the same
order of operations.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .runtime.vector import _masked_load, _masked_store, splat as _splat

LANES = 8
_I64, _I32 = ir.IntType(64), ir.IntType(32)


def _call(builder, name, result_type, arg_types, args):
    fnty = ir.FunctionType(result_type, arg_types)
    return builder.call(cgutils.get_or_insert_function(builder.module, fnty, name), args)


def _gather_pairs(builder, pointers, mask):
    """The two adjacent float32 numbers at each of LANES `pointers` where mask is set
    (one 64-bit gather: half as many as one per number), as (first, second) vectors."""
    pairs = ir.VectorType(_I64, LANES)
    name = f"llvm.masked.gather.v{LANES}i64.v{LANES}p0"
    both = _call(builder, name, pairs, [pointers.type, _I32, mask.type, pairs],
                 [pointers, ir.Constant(_I32, 4), mask, ir.Constant(pairs, None)])
    numbers = builder.bitcast(both, ir.VectorType(ir.FloatType(), 2 * LANES))
    lanes = ir.VectorType(_I32, LANES)
    first = builder.shuffle_vector(numbers, numbers, ir.Constant(lanes, list(range(0, 2 * LANES, 2))))
    second = builder.shuffle_vector(numbers, numbers, ir.Constant(lanes, list(range(1, 2 * LANES, 2))))
    return first, second


@intrinsic
def sample_row(typingctx, padded, row_length, out, dy, dx, base_r, base_c, step_r, step_c, alpha, hi_r, hi_c):
    """For c < out.size: sr = base_r + step_r·c + alpha·dy[c] (alpha None: no third term),
    sc likewise with dx,
    each clamped to [−1, hi]; out[c] = bilinear value of the padded image (flat,
    row_length numbers a row, pixel (r, c) at (r + 1)·row_length + c + 1) at (sr, sc),
    as a + f·(b − a) along columns then rows. Arrays are C-contiguous float32,
    dy and dx at least out.size long; the caller pads enough for any clamped point."""
    arrays = (padded, out, dy, dx)
    if not all(isinstance(a, types.Array) and a.layout == "C" and a.ndim == 1 and a.dtype == types.float32
               for a in arrays):
        return None
    floats = (base_r, base_c, step_r, step_c, hi_r, hi_c)
    if not isinstance(row_length, types.Integer) or not all(isinstance(v, types.Float) for v in floats):
        return None
    elastic = not isinstance(alpha, types.NoneType)  # None: no displacement, dy and dx are never read
    if elastic and not isinstance(alpha, types.Float):
        return None

    def codegen(context, builder, signature, args):
        padded_v, length_v, out_v, dy_v, dx_v = args[:5]
        scalars = [context.cast(builder, v, t, types.float64) if isinstance(t, types.Float)
                   else context.get_constant(types.float64, 0.0) for v, t in zip(args[5:], signature.args[5:])]
        length = context.cast(builder, length_v, signature.args[1], types.int64)

        def data(k, value):
            return cgutils.create_struct_proxy(signature.args[k])(context, builder, value=value).data

        image, target, field_r, field_c = data(0, padded_v), data(2, out_v), data(3, dy_v), data(4, dx_v)
        image_address = _splat(builder, builder.ptrtoint(image, _I64), ir.VectorType(_I64, LANES))
        n = builder.extract_value(cgutils.create_struct_proxy(signature.args[2])(context, builder, value=out_v).shape, 0)
        doubles, singles = ir.VectorType(ir.DoubleType(), LANES), ir.VectorType(ir.FloatType(), LANES)
        longs = ir.VectorType(_I64, LANES)
        base_r_v, base_c_v, step_r_v, step_c_v, alpha_v, hi_r_v, hi_c_v = (
            _splat(builder, s, doubles) for s in scalars)
        minus_one = ir.Constant(doubles, [-1.0] * LANES)
        iota = ir.Constant(longs, list(range(LANES)))
        length_vec = _splat(builder, length, longs)
        corner = builder.add(length_vec, ir.Constant(longs, [1] * LANES))  # pixel (0, 0) in the padded image
        steps = builder.udiv(builder.add(n, ir.Constant(_I64, LANES - 1)), ir.Constant(_I64, LANES))
        with cgutils.for_range(builder, steps) as loop:
            start = builder.mul(loop.index, ir.Constant(_I64, LANES))
            columns = builder.add(_splat(builder, start, longs), iota)
            mask = builder.icmp_signed("<", columns, _splat(builder, n, longs))
            c = builder.sitofp(columns, doubles)

            def field(pointer):
                vector = builder.bitcast(builder.gep(pointer, [start]), singles.as_pointer())
                return builder.fpext(_masked_load(builder, vector, mask, singles), doubles)

            def coordinate(base, step, values, hi):
                s = builder.fadd(base, builder.fmul(step, c))
                if elastic:
                    s = builder.fadd(s, builder.fmul(alpha_v, values))
                s = builder.select(builder.fcmp_ordered(">", s, minus_one), s, minus_one)
                s = builder.select(builder.fcmp_ordered("<", s, hi), s, hi)
                whole = _call(builder, "llvm.floor.v8f64", doubles, [doubles], [s])
                return whole, builder.fsub(s, whole)

            r0, fr = coordinate(base_r_v, step_r_v, field(field_r) if elastic else None, hi_r_v)
            c0, fc = coordinate(base_c_v, step_c_v, field(field_c) if elastic else None, hi_c_v)
            k = builder.add(builder.add(builder.mul(builder.fptosi(r0, longs), length_vec),
                                        builder.fptosi(c0, longs)), corner)

            def pixels(offset):  # the pixel at k + offset and its right neighbour
                bytes_ = builder.shl(builder.add(k, _splat(builder, offset, longs)), ir.Constant(longs, [2] * LANES))
                pointers = builder.inttoptr(builder.add(image_address, bytes_), ir.VectorType(image.type, LANES))
                return (builder.fpext(v, doubles) for v in _gather_pairs(builder, pointers, mask))

            p00, p01 = pixels(ir.Constant(_I64, 0))
            p10, p11 = pixels(length)
            top = builder.fadd(p00, builder.fmul(fc, builder.fsub(p01, p00)))
            bottom = builder.fadd(p10, builder.fmul(fc, builder.fsub(p11, p10)))
            value = builder.fadd(top, builder.fmul(fr, builder.fsub(bottom, top)))
            destination = builder.bitcast(builder.gep(target, [start]), singles.as_pointer())
            _masked_store(builder, builder.fptrunc(value, singles), destination, mask)
        return context.get_dummy_value()

    return types.none(padded, row_length, out, dy, dx, base_r, base_c, step_r, step_c, alpha, hi_r, hi_c), codegen
