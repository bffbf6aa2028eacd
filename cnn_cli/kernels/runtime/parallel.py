"""One parallel loop for every kernel: items called by address.

Every parallel kernel here is a loop over independent items (a chunk of
images, an output plane), each item the job of one serial @njit function.
Written as a `prange` loop in each kernel, Numba compiles the parallel
machinery once per kernel (the loop's gufunc, its wrapper, the thread
launcher), and links the item's code into every one of those modules, where
LLVM optimises and compiles it again: most of a kernel's cold compile
(benchmarks/RESULTS.md, Design measurements).

Here the kernels share ONE compiled parallel loop, `_launch(item, n, context)`:
for i in prange(n) it calls the item function at address `item` with
(i, context). An item is an @njit function `f(i, context)` compiled once, on
its own, for a signature declared next to it (`native_item`), where context
points to a tuple of its arguments: `item_args(context)` reads it. A kernel
itself is serial: it prepares its arrays and calls
`parallel_for(item_function, launch_address, item_address, n, (arg, ...))`,
which stores the tuple in the kernel's stack frame and runs `_launch` through
its address. No kernel module holds an item's body or a copy of the parallel
machinery. Addresses are plain integers, free to pass (no per-call type
inference), and looked up afresh in every process; the compiled code of the
items, the kernels and `_launch` is cached on disk like any @njit code.

Safety: `parallel_for` checks at compile time that the tuple has exactly the
types the item was compiled for (the item's address is always taken before
the kernel is first compiled), and an item that raises makes the kernel
raise RuntimeError (its own message is lost in the parallel loop).
The launch loop calls items as (int64, int64) functions while they are
compiled as (int64, pointer to the argument tuple): the same machine
arguments, two 64-bit integers.
"""

from typing import Callable

import numpy as np
from numba import njit, prange, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from .jit import prange_only
from .memory import keep_freed_memory

keep_freed_memory()  # every kernel's arrays are allocated afresh each step

I64 = types.int64


class NativeItem:
    """An @njit item function f(i, context) and its compiled addresses, one per float dtype.

    `signature_of(float_type)` gives the types of the argument tuple for
    float32 or float64 data, exactly as the calling kernel passes them."""

    def __init__(self, dispatcher, signature_of: Callable[[types.Float], tuple]):
        self.dispatcher = dispatcher
        self.signature_of = signature_of
        self._addresses: dict = {}

    def address(self, dtype) -> int:
        address = self._addresses.get(dtype)
        if address is None:
            f = types.float32 if np.dtype(dtype) == np.float32 else types.float64
            argtypes = (I64, types.CPointer(types.Tuple(tuple(self.signature_of(f)))))
            address = self._addresses[dtype] = _native_address(self.dispatcher, argtypes)
        return address


def _native_address(dispatcher, argtypes) -> int:
    """Compile (or load from the cache) and return the machine address of dispatcher(argtypes)."""
    dispatcher.compile(argtypes)
    compiled = dispatcher.overloads[argtypes]
    return compiled.library.get_pointer_to_function(compiled.fndesc.llvm_func_name)


def native_item(signature_of: Callable[[types.Float], tuple]):
    """Decorator for an @njit item function f(i, context): `@native_item(sig) @njit(...)`
    leaves `f` the dispatcher, with `f.native` its NativeItem."""

    def wrap(dispatcher):
        # An item is only ever called through its address, never from Python:
        # without the CPython wrapper Numba would build (argument unboxing,
        # error reporting), each item compiles less code, which shortens the
        # cold compile (benchmarks/RESULTS.md, Design measurements).
        dispatcher.targetoptions["no_cpython_wrapper"] = True
        dispatcher.native = NativeItem(dispatcher, signature_of)
        return dispatcher

    return wrap


def c_array(dtype, ndim: int) -> types.Array:
    """The type of a C-contiguous array, for item signatures."""
    return types.Array(dtype, ndim, "C")


def _call_status(context, builder, address, argtypes, values):
    """Call the Numba-convention function at integer `address`; re-raise its exception."""
    fnty = context.call_conv.get_function_type(types.none, argtypes)
    fnptr = builder.inttoptr(address, fnty.as_pointer())
    status, _ = context.call_conv.call_function(builder, fnptr, types.none, argtypes, values)
    with cgutils.if_unlikely(builder, status.is_error):
        context.call_conv.return_status_propagate(builder, status)


@intrinsic
def _call_item(typingctx, address, index, context):
    """item(index, context) through its address; True if it raised."""
    if not all(isinstance(t, types.Integer) for t in (address, index, context)):
        return None

    def codegen(ctx, builder, signature, llargs):
        fnty = ctx.call_conv.get_function_type(types.none, (I64, I64))
        fnptr = builder.inttoptr(llargs[0], fnty.as_pointer())
        status, _ = ctx.call_conv.call_function(builder, fnptr, types.none, (I64, I64), llargs[1:])
        return status.is_error

    return types.boolean(address, index, context), codegen


@njit(parallel=prange_only(), cache=True, error_model="numpy")
def _launch(item, n, context):
    """The parallel loop every kernel shares: item(i, context) for i < n.

    An exception cannot leave a parallel loop (Numba drops it), so each item's
    failure is recorded and one error raised afterwards: the kernels' items
    never raise by design (they flag bad input for their kernel to report), so
    this only makes a bug loud instead of silent."""
    failed = np.zeros(n, dtype=np.bool_)
    for i in prange(n):
        failed[i] = _call_item(item, np.int64(i), context)
    for i in range(n):
        if failed[i]:
            raise RuntimeError("a parallel kernel item raised an exception (a bug in cnn-cli: please report it)")


_launch_address: list = []


def launch_address() -> int:
    """The machine address of `_launch` (compiled, or loaded from the cache, once)."""
    if not _launch_address:
        _launch_address.append(_native_address(_launch, (I64, I64, I64)))
    return _launch_address[0]


@intrinsic
def parallel_for(typingctx, item, launcher, address, n, args):
    """parallel_for(item_function, launch_address(), item_function.native.address(dtype),
    n, (arg, ...)): item_function(i, context) for every i < n, in parallel (a single
    item on the calling thread), where item_args(context) is the tuple (arg, ...)."""
    if not isinstance(item, types.Dispatcher) or not isinstance(args, types.BaseTuple):
        return None
    if not all(isinstance(t, types.Integer) for t in (launcher, address, n)):
        return None
    packed = types.Tuple(tuple(types.unliteral(t) for t in args.types))
    expected = (I64, types.CPointer(packed))
    dispatcher = item.dispatcher
    if expected not in dispatcher.overloads:
        declared = "; ".join(str(sig[1].dtype) for sig in dispatcher.overloads) or "none yet"
        raise TypingError(f"parallel_for: {dispatcher.py_func.__name__} given arguments {packed} "
                          f"but compiled for: {declared}. Fix its declared signature.")

    def codegen(ctx, builder, signature, llargs):
        _, launch, addr, count, values = llargs
        value = ctx.cast(builder, values, args, packed)
        data = ctx.data_model_manager[packed].as_data(builder, value)
        slot = cgutils.alloca_once(builder, data.type)
        builder.store(data, slot)
        context_address = builder.ptrtoint(slot, ctx.get_value_type(I64))
        count = ctx.cast(builder, count, signature.args[3], I64)
        one = count.type(1)
        with builder.if_else(builder.icmp_signed("==", count, one)) as (single, several):
            with single:
                # One item runs on the calling thread: waking the thread pool would cost more
                # than the item (a batch of one image is one chunk). Items write only their
                # own outputs, so the result is the same bits either way.
                _call_status(ctx, builder, addr, (I64, I64), (count.type(0), context_address))
            with several:
                _call_status(ctx, builder, launch, (I64, I64, I64), (addr, count, context_address))
        return ctx.get_dummy_value()

    return types.none(item, launcher, address, n, args), codegen


@intrinsic
def item_args(typingctx, context):
    """The argument tuple an item's context points to (see parallel_for)."""
    if not isinstance(context, types.CPointer) or not isinstance(context.dtype, types.BaseTuple):
        return None

    def codegen(ctx, builder, signature, llargs):
        data = builder.load(llargs[0])
        value = ctx.data_model_manager[context.dtype].from_data(builder, data)
        for i, member in enumerate(context.dtype):
            element = builder.extract_value(value, i)
            if isinstance(member, types.Array):
                # The kernel holds every array until all items are done, so an
                # item needs no reference of its own: a NULL meminfo makes
                # Numba's incref/decref of the array (and of its views) a test
                # and a jump. Counting real references, every item of every
                # thread would do atomic increments and decrements on the same
                # few counters, and many small items (per-plane pooling) would
                # run slower on two threads than on one (benchmarks/RESULTS.md,
                # Design measurements).
                array = cgutils.create_struct_proxy(member)(ctx, builder, value=element)
                array.meminfo = cgutils.get_null_value(array.meminfo.type)
                value = builder.insert_value(value, array._getvalue(), i)
            else:
                ctx.nrt.incref(builder, member, element)  # a new reference, as any call returns
        return value

    return context.dtype(context), codegen
