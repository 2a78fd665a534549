"""Shape ops: `tile.splat`, `tile.broadcast`, `tile.reshape`, `tile.permute`, `tile.arange`,
`tile.extract`.

Views where numpy allows: values are never written in place.
"""

from __future__ import annotations

import numpy as np

from tilec.dialects import tile as T

from .program import Compiler, Step


def h_splat(op: T.SplatOp, c: Compiler) -> Step:
    s, r = c.slot(op.scalar), c.slot(op.result)
    shape = op.result.type.get_shape()
    tail = (1,) * len(shape)

    def step(env, ctx):
        x = env[s]
        env[r] = np.broadcast_to(x.reshape(x.shape + tail), x.shape + shape)
    return step


def h_broadcast(op: T.BroadcastOp, c: Compiler) -> Step:
    s, r, G = c.slot(op.source), c.slot(op.result), c.G
    shape = op.result.type.get_shape()

    def step(env, ctx):
        x = env[s]
        env[r] = np.broadcast_to(x, x.shape[:G] + shape)
    return step


def h_reshape(op: T.ReshapeOp, c: Compiler) -> Step:
    s, r, G = c.slot(op.source), c.slot(op.result), c.G
    shape = op.result.type.get_shape()

    def step(env, ctx):
        x = env[s]
        env[r] = x.reshape(x.shape[:G] + shape)
    return step


def h_permute(op: T.PermuteOp, c: Compiler) -> Step:
    s, r, G = c.slot(op.source), c.slot(op.result), c.G
    axes = tuple(range(G)) + tuple(G + p for p in T._get_ints(op.perm))

    def step(env, ctx):
        env[r] = env[s].transpose(axes)
    return step


def h_arange(op: T.ArangeOp, c: Compiler) -> Step:
    n = op.result.type.get_shape()[0]
    start = op.start.value.data
    arr = np.arange(start, start + n, dtype=np.int64).astype(np.int32).reshape(c.ones + (n,))
    r = c.slot(op.result)

    def step(env, ctx):
        env[r] = arr
    return step



def h_extract(op: T.ExtractOp, c: Compiler) -> Step:
    s, r, G = c.slot(op.source), c.slot(op.result), c.G

    def step(env, ctx):
        x = env[s]
        env[r] = x.reshape(x.shape[:G])
    return step
