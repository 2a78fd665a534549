"""The xDSL `Context` that tilec parses and builds IR in.

`make_context()` returns a fresh context that knows the dialects tile IR is made of:
builtin, func, arith, math, scf and tile.  The dialects are *registered*, not
imported: xDSL loads a dialect the first time the parser (or `ctx.get_op`) meets one
of its names, so a context costs nothing until it is used.  `load=True` loads them
all at once (for code that walks `ctx.loaded_ops`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xdsl.context import Context
    from xdsl.ir import Dialect


@cache
def _builtin() -> Dialect:
    from xdsl.dialects.builtin import Builtin

    return Builtin


@cache
def _func() -> Dialect:
    from xdsl.dialects.func import Func

    return Func


@cache
def _arith() -> Dialect:
    from xdsl.dialects.arith import Arith

    return Arith


@cache
def _math() -> Dialect:
    from xdsl.dialects.math import Math

    return Math


@cache
def _scf() -> Dialect:
    from xdsl.dialects.scf import Scf

    return Scf


@cache
def _tile() -> Dialect:
    from tilec.dialects.tile import Tile

    return Tile


@cache
def _tgpu() -> Dialect:
    from tilec.dialects.tgpu import Tgpu

    return Tgpu


@cache
def _w4a16() -> Dialect:
    from tilec.dialects.w4a16 import W4A16

    return W4A16


#: dialect name -> cached factory; the set of dialects tile IR may contain.
DIALECTS: dict[str, Callable[[], Dialect]] = {
    "builtin": _builtin,
    "func": _func,
    "arith": _arith,
    "math": _math,
    "scf": _scf,
}
#: dialects tilec defines itself (also registered by `tilec-opt` beside all of xDSL's).
TILEC_DIALECTS: dict[str, Callable[[], Dialect]] = {"tile": _tile, "tgpu": _tgpu, "w4a16": _w4a16}


def register_dialects(ctx: Context, dialects: dict[str, Callable[[], Dialect]] | None = None) -> None:
    """Register `dialects` (default: `DIALECTS` and `TILEC_DIALECTS`) lazily in `ctx`,
    skipping names `ctx` already knows."""
    known = set(ctx.registered_dialect_names)
    for name, factory in (dialects if dialects is not None else DIALECTS | TILEC_DIALECTS).items():
        if name not in known:
            ctx.register_dialect(name, factory)


def make_context(*, load: bool = False, allow_unregistered: bool = False) -> Context:
    """A fresh context with builtin, func, arith, math, scf and tile registered.

    With `load=True` every dialect is imported and loaded now instead of on first use.
    """
    from xdsl.context import Context

    ctx = Context(allow_unregistered=allow_unregistered)
    register_dialects(ctx)
    if load:
        for name in (*DIALECTS, *TILEC_DIALECTS):
            ctx.load_registered_dialect(name)
    return ctx
