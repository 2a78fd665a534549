"""Arithmetic ops: binary and unary elementwise, `tile.cmp`, `tile.select`, `tile.cast`,
`tile.reduce` and `tile.rand`, with the numerics of `numerics.py`."""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import IntegerType, Signedness

from tilec import dtypes
from tilec.dialects import tile as T

from .numerics import BINARY_FUNCS, F32, F64, dtype_of, elementwise, is_narrow_float, make_cast, unary_func
from .philox import rand as philox_rand
from .program import Compiler, Step


def binary_handler(mnemonic: str):
    fn = BINARY_FUNCS[mnemonic]

    def handler(op: T.BinaryOp, c: Compiler) -> Step:
        d = dtype_of(op.result.type)
        f = fn
        if mnemonic == "div" and d.is_int:  # C-style truncating division
            f = lambda a, b: np.trunc(np.true_divide(a, b))  # noqa: E731
        if d is dtypes.bool_ and mnemonic in ("add", "sub"):
            f = np.logical_xor  # i1 arithmetic is mod 2
        g = elementwise(f, d)
        a, b, r = c.slot(op.lhs), c.slot(op.rhs), c.slot(op.result)

        def step(env, ctx):
            env[r] = g(env[a], env[b])
        return step
    return handler


def unary_handler(mnemonic: str):
    def handler(op: T.UnaryOp, c: Compiler) -> Step:
        d = dtype_of(op.result.type)
        g = elementwise(unary_func(mnemonic, d), d)
        s, r = c.slot(op.source), c.slot(op.result)

        def step(env, ctx):
            env[r] = g(env[s])
        return step
    return handler


_CMP = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
        "gt": np.greater, "ge": np.greater_equal}


def h_cmp(op: T.CmpOp, c: Compiler) -> Step:
    fn = _CMP[op.predicate.data]
    narrow = is_narrow_float(dtype_of(op.lhs.type))
    a, b, r = c.slot(op.lhs), c.slot(op.rhs), c.slot(op.result)
    if narrow:
        def step(env, ctx):
            env[r] = fn(env[a].astype(F32), env[b].astype(F32))
    else:
        def step(env, ctx):
            env[r] = fn(env[a], env[b])
    return step


def h_select(op: T.SelectOp, c: Compiler) -> Step:
    cond, a, b, r = c.slot(op.cond), c.slot(op.true_value), c.slot(op.false_value), c.slot(op.result)
    out = dtype_of(op.result.type).np_dtype

    def step(env, ctx):
        v = np.where(env[cond], env[a], env[b])
        env[r] = v if v.dtype == out else v.astype(out)
    return step


def h_cast(op: T.CastOp, c: Compiler) -> Step:
    f = make_cast(dtype_of(op.source.type), dtype_of(op.result.type))
    s, r = c.slot(op.source), c.slot(op.result)

    def step(env, ctx):
        env[r] = f(env[s])
    return step


def h_reduce(op: T.ReduceOp, c: Compiler) -> Step:
    kind = op.kind.data
    axis = c.G + op.axis.value.data
    keep = op.keepdims.value.data != 0
    src = dtype_of(op.source.type)
    out = dtype_of(op.result.type).np_dtype
    s, r = c.slot(op.source), c.slot(op.result)
    up = F32 if is_narrow_float(src) else None
    if kind == "sum":
        if src.is_float:
            acc = F64 if src is dtypes.float64 else F32
        else:
            acc = out if np.dtype(out).kind in "iu" else np.dtype(np.int32)

        def reduce(x):
            return np.sum(x, axis=axis, dtype=acc, keepdims=keep)
    else:
        fn = {"max": np.max, "min": np.min, "argmax": np.argmax, "argmin": np.argmin}[kind]

        def reduce(x):
            return fn(x if up is None else x.astype(up), axis=axis, keepdims=keep)

    def step(env, ctx):
        v = reduce(env[s])
        env[r] = v if v.dtype == out else v.astype(out)
    return step


def h_rand(op: T.RandOp, c: Compiler) -> Step:
    seed, offs, r = c.slot(op.seed), c.slot(op.offsets), c.slot(op.result)
    tail = (1,) * op.offsets.type.rank
    st = op.seed.type
    unsigned = isinstance(st, IntegerType) and st.signedness.data == Signedness.UNSIGNED

    def step(env, ctx):
        sd = env[seed]
        sd = sd.astype(np.uint64).view(np.int64) if unsigned else sd.astype(np.int64)
        env[r] = philox_rand(sd.reshape(sd.shape + tail), env[offs])
    return step

