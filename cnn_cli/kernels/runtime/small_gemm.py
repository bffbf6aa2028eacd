"""Register-blocked matrix products for the Winograd kernels' small matrices.

Per chunk, the Winograd kernels multiply 36 pairs of matrices of 32 to 128
rows and 64 to 256 columns. BLAS packs both operands into its own layout
before every product, a cost these small products do not repay; the
products here read the operands where they are (rows of the right-hand
operand are contiguous) and keep a block of `ROWS` × `VECTORS` vectors of the
result in registers while the inner dimension runs (figures:
benchmarks/RESULTS.md, Design measurements).

    c[r, j] = Σ_k a[r, k]·b[k, j]

with every operand a flat array, an offset and strides, so one kernel serves
a, aᵀ and slices of the chunk's Winograd-domain arrays: a[r, k] at
a[a_at + r·a_row + k·a_col], b[k, j] at b[b_at + k·b_row + j], c[r, j] at
c[c_at + r·c_row + j]. Each product is summed over k in order, with a fused
multiply-add per term, whatever the machine and the thread count.

Vectors are as wide as the machine's (64 bytes with AVX-512, else 32): the
block of 4 × 4 vectors (or 4 × 2 with AVX2's 16 registers) and the vector
of b it is multiplied with fill the register file without spilling. The
machine is the one Numba compiles for: the host, or NUMBA_CPU_NAME's CPU
(portable caches name 'generic'), which Numba's cache keys on as well.
"""

from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils, config
from numba.extending import intrinsic

from .vector import _element_pointer, _masked_load, _masked_store, load_group, splat


def _wide_vectors() -> bool:
    """Whether the CPU the kernels are compiled for has AVX-512."""
    if config.CPU_NAME:  # a named CPU's features are not the host's: only what NUMBA_CPU_FEATURES says
        return "+avx512f" in (config.CPU_FEATURES or "")
    return bool(llvm_binding.get_host_cpu_features().get("avx512f", False))


WIDE = _wide_vectors()
VECTOR_BYTES = 64 if WIDE else 32
ROWS = 4
VECTORS = 4 if WIDE else 2


def _fma(builder, a, b, c):
    element = "f32" if isinstance(a.type.element, ir.FloatType) else "f64"
    fnty = ir.FunctionType(a.type, [a.type] * 3)
    return builder.call(cgutils.get_or_insert_function(builder.module, fnty, f"llvm.fma.v{a.type.count}{element}"),
                        [a, b, c])


def _store_c(bld, value, pointer, full, mask):
    """A vector of c: stored plain when the block is full, else masked to the columns that exist."""
    with bld.if_else(full) as (whole, part):
        with whole:
            bld.store(value, pointer, align=1)
        with part:
            _masked_store(bld, value, pointer, mask)


def _gemm_block(rows, vectors=VECTORS):
    @intrinsic
    def gemm_block(typingctx, a, a_at, a_row, a_col, b, b_at, b_row, c, c_at, c_row, depth, count, accumulate):
        """c[r, j] = Σ_{k < depth} a[r, k]·b[k, j] for r < rows and j < count, count
        at most `vectors` vectors (see the module's docstring for the addressing);
        with `accumulate`, the sum starts from c[r, j] instead of 0."""
        arrays = (a, b, c)
        if not (all(isinstance(x, types.Array) and x.ndim == 1 and x.layout == "C" for x in arrays)
                and isinstance(a.dtype, types.Float) and a.dtype == b.dtype == c.dtype
                and all(isinstance(v, types.Integer) for v in (a_at, a_row, a_col, b_at, b_row, c_at, c_row,
                                                               depth, count))
                and isinstance(accumulate, types.Boolean)):
            return None

        def codegen(context, builder, signature, args):
            bld = builder
            i64 = ir.IntType(64)
            a_at_v, a_row_v, a_col_v, b_at_v, b_row_v, c_at_v, c_row_v, depth_v, count_v = (
                context.cast(builder, args[k], signature.args[k], types.int64) for k in (1, 2, 3, 5, 6, 8, 9, 10, 11))
            element = context.get_value_type(signature.args[0].dtype)
            lanes = VECTOR_BYTES // context.get_abi_sizeof(element)
            vector = ir.VectorType(element, lanes)
            zero = ir.Constant(vector, None)
            # mask[q]: lanes of vector q below count (only the last block of a row is partial)
            index = ir.VectorType(i64, lanes)
            masks = [bld.icmp_signed("<", ir.Constant(index, [q * lanes + l for l in range(lanes)]),
                                     splat(bld, count_v, index)) for q in range(vectors)]
            acc = [[cgutils.alloca_once_value(bld, zero) for _ in range(vectors)] for _ in range(rows)]
            full = bld.icmp_signed(">=", count_v, ir.Constant(i64, vectors * lanes))

            def c_pointer(r, q):
                at = bld.add(bld.add(c_at_v, bld.mul(ir.Constant(i64, r), c_row_v)), ir.Constant(i64, q * lanes))
                return bld.bitcast(_element_pointer(context, bld, signature.args[7], args[7], at), vector.as_pointer())

            with bld.if_then(context.cast(bld, args[12], signature.args[12], types.boolean)):
                for r in range(rows):
                    for q in range(vectors):
                        bld.store(load_group(bld, c_pointer(r, q), full, masks[q], vector), acc[r][q])

            def a_value(r, k):
                at = bld.add(a_at_v, bld.add(bld.mul(ir.Constant(i64, r), a_row_v), bld.mul(k, a_col_v)))
                return splat(bld, bld.load(_element_pointer(context, bld, signature.args[0], args[0], at)), vector)

            def b_vector(k, q, masked):
                at = bld.add(bld.add(b_at_v, bld.mul(k, b_row_v)), ir.Constant(i64, q * lanes))
                pointer = bld.bitcast(_element_pointer(context, bld, signature.args[4], args[4], at),
                                      vector.as_pointer())
                return _masked_load(bld, pointer, masks[q], vector) if masked else bld.load(pointer, align=1)

            def inner_loop(masked):
                with cgutils.for_range(bld, depth_v) as loop:
                    k = loop.index
                    row = [b_vector(k, q, masked) for q in range(vectors)]
                    for r in range(rows):
                        factor = a_value(r, k)
                        for q in range(vectors):
                            bld.store(_fma(bld, factor, row[q], bld.load(acc[r][q])), acc[r][q])

            with bld.if_else(full) as (whole, part):
                with whole:
                    inner_loop(False)
                with part:
                    inner_loop(True)
            for r in range(rows):
                for q in range(vectors):
                    _store_c(bld, bld.load(acc[r][q]), c_pointer(r, q), full, masks[q])
            return context.get_dummy_value()

        return types.none(a, a_at, a_row, a_col, b, b_at, b_row, c, c_at, c_row, depth, count, accumulate), codegen

    return gemm_block


gemm_rows, gemm_row = _gemm_block(ROWS), _gemm_block(1)
# Half-width blocks for the last columns when they fill no more than half a block
# (32 columns of a 64-wide block: masked loads would waste half of every multiply).
HALF = max(1, VECTORS // 2)
gemm_rows_half, gemm_row_half = _gemm_block(ROWS, HALF), _gemm_block(1, HALF)


@njit(cache=True, error_model="numpy")
def small_matmul(a, a_at, a_row, a_col, b, b_at, b_row, c, c_at, c_row, rows, columns, depth, accumulate=False):
    """c = a·b for (rows, depth)·(depth, columns) on flat arrays (module docstring),
    or c += a·b with `accumulate`: column blocks of VECTORS vectors (the last one
    half as wide when that is enough), each with every row of a in turn, so the
    block of b stays in L1."""
    lanes = VECTOR_BYTES // c.itemsize
    block, half = VECTORS * lanes, HALF * lanes
    j = 0
    while j < columns:
        count = min(block, columns - j)
        narrow = count <= half
        r = 0
        while r + ROWS <= rows:
            at_a, at_c = a_at + r * a_row, c_at + r * c_row + j
            if narrow:
                gemm_rows_half(a, at_a, a_row, a_col, b, b_at + j, b_row, c, at_c, c_row, depth, count, accumulate)
            else:
                gemm_rows(a, at_a, a_row, a_col, b, b_at + j, b_row, c, at_c, c_row, depth, count, accumulate)
            r += ROWS
        while r < rows:
            at_a, at_c = a_at + r * a_row, c_at + r * c_row + j
            if narrow:
                gemm_row_half(a, at_a, a_row, a_col, b, b_at + j, b_row, c, at_c, c_row, depth, count, accumulate)
            else:
                gemm_row(a, at_a, a_row, a_col, b, b_at + j, b_row, c, at_c, c_row, depth, count, accumulate)
            r += 1
        j += count
