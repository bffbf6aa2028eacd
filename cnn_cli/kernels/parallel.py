"""Parallel loops whose bodies are compiled once: items called by address.

Every parallel kernel here is a `prange` loop over independent items (a chunk
of images, an output plane), each item the job of one serial @njit function.
Called the ordinary way, Numba links that item function's code into every
module the parallel loop becomes: the kernel, the loop's gufunc, its wrapper
and the thread launcher. LLVM then optimises and compiles the same item code
four times over, ~70 % of a kernel's cold compile (measured: conv_gemm_forward
and conv_gemm_backward together 18 s, 9.7 s when the items are called by
address; a serial build of the same code takes 8.9 s).

Here the item function is compiled once, on its own, for a signature declared
next to it (one per float dtype). The kernel receives the compiled function's
address as a plain integer (free to pass: no per-call type inference) and its
loop calls it through `call_item`, which emits a direct call through that
address in Numba's own calling convention. The loop's modules then hold a
call, not the item's body. Both the item and the kernel are cached on disk as
before; the address is looked up afresh in every process.

Safety: `call_item` checks at compile time that the arguments the kernel
passes have exactly the types the item was compiled for (the item's address is
always taken before the kernel is first compiled), and a failing item's
exception propagates like an ordinary call's.
"""

from typing import Callable

import numpy as np
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic


class NativeItem:
    """An @njit item function and its compiled addresses, one per float dtype.

    `signature_of(float_type)` gives the item's argument types for float32 or
    float64 data, exactly as the calling kernel passes them."""

    def __init__(self, dispatcher, signature_of: Callable[[types.Float], tuple]):
        self.dispatcher = dispatcher
        self.signature_of = signature_of
        self._addresses: dict = {}

    def address(self, dtype) -> int:
        address = self._addresses.get(dtype)
        if address is None:
            argtypes = tuple(self.signature_of(types.float32 if np.dtype(dtype) == np.float32 else types.float64))
            self.dispatcher.compile(argtypes)
            compiled = self.dispatcher.overloads[argtypes]
            address = compiled.library.get_pointer_to_function(compiled.fndesc.llvm_func_name)
            self._addresses[dtype] = address
        return address


def native_item(signature_of: Callable[[types.Float], tuple]):
    """Decorator for an @njit item function: `@native_item(sig) @njit(...) def f...`
    leaves `f` the dispatcher (callable as usual) with `f.native` its NativeItem."""

    def wrap(dispatcher):
        dispatcher.native = NativeItem(dispatcher, signature_of)
        return dispatcher

    return wrap


def c_array(dtype, ndim: int) -> types.Array:
    """The type of a C-contiguous array, for item signatures."""
    return types.Array(dtype, ndim, "C")


@intrinsic
def call_item(typingctx, item, address, args):
    """call_item(item_function, address, (arg, ...)): call the compiled item at
    `address` (from item_function.native.address(dtype)) with the tuple's values."""
    if not isinstance(item, types.Dispatcher) or not isinstance(address, types.Integer):
        return None
    if not isinstance(args, types.BaseTuple):
        return None
    argtypes = tuple(types.unliteral(t) for t in args.types)
    dispatcher = item.dispatcher
    if argtypes not in dispatcher.overloads:
        declared = "; ".join(", ".join(map(str, sig)) for sig in dispatcher.overloads) or "none yet"
        raise TypingError(f"call_item: {dispatcher.py_func.__name__} called with ({', '.join(map(str, argtypes))}) "
                          f"but compiled for: {declared}. Fix its declared signature.")

    def codegen(context, builder, signature, llargs):
        _, addr, packed = llargs
        values = cgutils.unpack_tuple(builder, packed, len(argtypes))
        values = [context.cast(builder, v, t, u) for v, t, u in zip(values, args.types, argtypes)]
        fnty = context.call_conv.get_function_type(types.none, argtypes)
        fnptr = builder.inttoptr(addr, fnty.as_pointer())
        status, _ = context.call_conv.call_function(builder, fnptr, types.none, argtypes, values)
        with cgutils.if_unlikely(builder, status.is_error):
            context.call_conv.return_status_propagate(builder, status)
        return context.get_dummy_value()

    return types.none(item, address, args), codegen
