"""Explicit vector code for the Winograd filter transforms (kernels/winograd.py),
eight filters at a time, lane l = filter f0 + l.

    forward   U = G g Gᵀ       a 3×3 filter g to its (m + 2)² domain values
    gradient  ∂L/∂g = Gᵀ (∂L/∂U) G

Filters are stored (K·C, 9), taps of one filter together, and the domain
values (ξ, K·C), one row per domain position: the eight filters' taps are
gathered at a stride of 9 (or scattered, for the gradient), their domain
values are eight contiguous numbers of each row. The arithmetic is
tile_algebra.py's `sandwich`, G's entries as constants.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .tile_algebra import sandwich
from .tile_vector import _Lanes
from .vector import VECTOR, splat

# G of each tile size (Lavin & Gray 2016): U = G g Gᵀ.
G = {2: ((1, 0, 0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0, 0, 1)),
     4: ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6),
         (1 / 24, 1 / 12, 1 / 6), (1 / 24, -1 / 12, 1 / 6), (0, 0, 1))}
GT = {m: tuple(zip(*rows)) for m, rows in G.items()}

_I64 = ir.IntType(64)
_LONGS = ir.VectorType(_I64, VECTOR)


def _taps(context, b, lanes, array_type, array, f0, count):
    """Pointers to tap t of filters f0 … f0 + 7 (a list over t) and the mask of lanes below count."""
    data = cgutils.create_struct_proxy(array_type)(context, b, value=array).data
    base = splat(b, b.ptrtoint(data, _I64), _LONGS)
    itemsize = ir.Constant(_LONGS, [context.get_abi_sizeof(lanes.narrow.element)] * VECTOR)
    filters = b.add(splat(b, f0, _LONGS), ir.Constant(_LONGS, list(range(VECTOR))))
    live = b.icmp_signed("<", ir.Constant(_LONGS, list(range(VECTOR))), splat(b, count, _LONGS))
    pointers = [b.inttoptr(b.add(base, b.mul(b.add(b.mul(filters, ir.Constant(_LONGS, [9] * VECTOR)),
                                                   ir.Constant(_LONGS, [t] * VECTOR)), itemsize)),
                           ir.VectorType(data.type, VECTOR)) for t in range(9)]
    return pointers, live


def _call(b, name, result_type, args):
    fnty = ir.FunctionType(result_type, [a.type for a in args])
    return b.call(cgutils.get_or_insert_function(b.module, fnty, name), args)


def _suffix(vector_type):
    return f"v{VECTOR}{'f32' if isinstance(vector_type.element, ir.FloatType) else 'f64'}"


def _ok(filters, domain, f0, step, count):
    return (all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" for a in (filters, domain))
            and isinstance(filters.dtype, types.Float) and filters.dtype == domain.dtype
            and all(isinstance(v, types.Integer) for v in (f0, step, count)))


def _filter_tiles8(tile):
    @intrinsic
    def filter_tiles8(typingctx, w, f0, u, step, count):
        """U = G g Gᵀ for filters f0 … f0 + count − 1 (count ≤ 8) of the flat (K·C, 9)
        taps w: writes u[ξ·step + f0 + l] for every domain position ξ."""
        if not _ok(w, u, f0, step, count):
            return None

        def codegen(context, builder, signature, args):
            b = builder
            f0_v, step_v, count_v = (context.cast(b, args[k], signature.args[k], types.int64) for k in (1, 3, 4))
            lanes = _Lanes(context, b, context.get_value_type(signature.args[0].dtype))
            pointers, live = _taps(context, b, lanes, signature.args[0], args[0], f0_v, count_v)
            gather = f"llvm.masked.gather.{_suffix(lanes.narrow)}.v{VECTOR}p0"
            taps = [_call(b, gather, lanes.narrow, [p, ir.Constant(ir.IntType(32), 4), live,
                                                    ir.Constant(lanes.narrow, None)]) for p in pointers]
            out = [v for row in sandwich(b, G[tile], [taps[3 * i:3 * i + 3] for i in range(3)]) for v in row]
            lanes.store_rows(out, signature.args[2], args[2], f0_v, step_v, count_v)
            return context.get_dummy_value()

        return types.none(w, f0, u, step, count), codegen

    return filter_tiles8


def _filter_gradient_tiles8(tile):
    @intrinsic
    def filter_gradient_tiles8(typingctx, du, f0, step, dw, count):
        """∂L/∂g = Gᵀ (∂L/∂U) G for filters f0 … f0 + count − 1, ∂L/∂U's domain
        position ξ at du[ξ·step + f0 + l]: writes the flat (K·C, 9) taps dw."""
        if not _ok(dw, du, f0, step, count):
            return None

        def codegen(context, builder, signature, args):
            b = builder
            f0_v, step_v, count_v = (context.cast(b, args[k], signature.args[k], types.int64) for k in (1, 2, 4))
            lanes = _Lanes(context, b, context.get_value_type(signature.args[0].dtype))
            n = tile + 2
            zero = ir.Constant(_I64, 0)
            rows = [lanes.load(lanes.narrow, row, zero, count_v)
                    for row in lanes.domain_rows(signature.args[0], args[0], f0_v, step_v, n * n)]
            taps = [v for row in sandwich(b, GT[tile], [rows[n * i:n * (i + 1)] for i in range(n)]) for v in row]
            pointers, live = _taps(context, b, lanes, signature.args[3], args[3], f0_v, count_v)
            scatter = f"llvm.masked.scatter.{_suffix(lanes.narrow)}.v{VECTOR}p0"
            for value, pointer in zip(taps, pointers):
                _call(b, scatter, ir.VoidType(), [value, pointer, ir.Constant(ir.IntType(32), 4), live])
            return context.get_dummy_value()

        return types.none(du, f0, step, dw, count), codegen

    return filter_gradient_tiles8


filter_tiles8_2, filter_tiles8_4 = _filter_tiles8(2), _filter_tiles8(4)
filter_gradient_tiles8_2, filter_gradient_tiles8_4 = _filter_gradient_tiles8(2), _filter_gradient_tiles8(4)
