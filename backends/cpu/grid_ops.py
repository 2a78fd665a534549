"""Grid queries and constants: `arith.constant`, `tile.tile_idx`, `tile.num_tiles`, `tile.dim`."""

from __future__ import annotations

import numpy as np
from xdsl.dialects import arith
from xdsl.dialects.builtin import FloatAttr, IntegerAttr

from tilec import dtypes
from tilec.dialects import tile as T

from .numerics import F64, dtype_of
from .program import Compiler, Step


def h_constant(op: arith.ConstantOp, c: Compiler) -> Step:
    attr = op.value
    d = dtype_of(op.result.type)
    if isinstance(attr, IntegerAttr):
        raw = attr.value.data
        value = (raw != 0) if d is dtypes.bool_ else raw
        arr = np.array(value, dtype=np.int64 if d.is_int else d.np_dtype)
        arr = arr.astype(d.np_dtype)
    elif isinstance(attr, FloatAttr):
        arr = np.array(attr.value.data, dtype=F64).astype(d.np_dtype)
    else:
        raise NotImplementedError(f"cpu backend: arith.constant of {attr} is not supported")
    if isinstance(op.result.type, T.TileType):
        arr = np.broadcast_to(arr, c.ones + op.result.type.get_shape())
    else:
        arr = arr.reshape(c.ones)
        arr.flags.writeable = False  # shared by every launch of the compiled kernel
    r = c.slot(op.result)

    def step(env, ctx):
        env[r] = arr
    return step


def h_tile_idx(op: T.TileIdxOp, c: Compiler) -> Step:
    axis, r = op.axis.value.data, c.slot(op.result)

    def step(env, ctx):
        env[r] = ctx.tile_idx(axis)
    return step


def h_num_tiles(op: T.NumTilesOp, c: Compiler) -> Step:
    axis, r, ones = op.axis.value.data, c.slot(op.result), c.ones

    def step(env, ctx):
        env[r] = np.full(ones, ctx.num_tiles(axis), np.int32)
    return step


def h_dim(op: T.DimOp, c: Compiler) -> Step:
    axis, t, r, ones = op.axis.value.data, c.slot(op.tensor), c.slot(op.result), c.ones

    def step(env, ctx):
        env[r] = np.full(ones, env[t].shape[axis], np.int32)
    return step

