"""Explicit vector moves for the short rows LLVM leaves scalar.

LLVM vectorises a loop whose trip count it does not know only when the count
is large enough for its vector width times its unroll factor, after a runtime
check that source and destination do not overlap; im2col's rows are as short as
a conv's output width (10 for LeNet-5's conv2), so they ran one number at a
time. `copy8` is one unaligned 8-wide load and store instead: callers cover a
row of n ≥ 8 with copies at 0, 8, 16, … and a last one at n − 8, which may
repeat numbers already copied (harmless for a copy, never for an addition).
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
