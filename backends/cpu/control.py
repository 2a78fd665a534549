"""Control flow: `scf.for` and `scf.if`, batched over the grid where their control
values are grid-uniform, else per program instance along the axes they vary on."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from xdsl.dialects import scf

from .matmul import fusable_k_loop_matmuls, k_loop_matmul, k_loop_record
from .numerics import dtype_of
from .program import Compiler, Ctx, Env, Step


def _uniform(v: np.ndarray) -> bool:
    return v.size == 1 or bool(np.all(v == v.flat[0]))


def _per_program(env: Env, ctx: Ctx, control: Sequence[int], free: Sequence[int],
                 results: Sequence[int], batched: Callable[[Env, Ctx], bool]) -> None:
    """Run one op per program instance along the grid axes its control values vary on.

    Every value the op reads (`free`) is sliced to the program (dims of size 1 are kept),
    the op runs batched over the remaining axes, and its results are stacked back.
    """
    G = ctx.G
    batch = np.broadcast_shapes(*(env[s].shape[:G] for s in control))
    axes = [a for a in range(G) if batch[a] > 1]
    runs = []
    for index in np.ndindex(*(batch[a] for a in axes)):
        sub = env.copy()
        for s in free:
            v = env[s]
            sl = [slice(None)] * G
            for a, k in zip(axes, index):
                if v.shape[a] > 1:
                    sl[a] = slice(k, k + 1)
            sub[s] = v[tuple(sl)]
        ok = batched(sub, ctx.sub(axes, index))
        assert ok, "per-program execution must see uniform control values"
        runs.append((index, [sub[r] for r in results]))
    for j, r in enumerate(results):
        vals = [res[j] for _, res in runs]
        shape = list(np.broadcast_shapes(*(v.shape for v in vals)))
        for a in axes:
            shape[a] = batch[a]
        out = np.empty(shape, vals[0].dtype)
        for (index, _), v in zip(runs, vals):
            sl = [slice(None)] * G
            for a, k in zip(axes, index):
                sl[a] = slice(k, k + 1)
            out[tuple(sl)] = v
        env[r] = out


def h_for(op: scf.ForOp, c: Compiler) -> Step:
    lb, ub, st = c.slot(op.lb), c.slot(op.ub), c.slot(op.step)
    init = [c.slot(v) for v in op.iter_args]
    body = op.body.block
    iv = c.slot(body.args[0])
    carried = [c.slot(x) for x in body.args[1:]]
    # K-loop accumulations: each iteration only records its (a, b) tiles (see below)
    fused = []  # (carry index, pending-list slot, compute)
    for k, mm in fusable_k_loop_matmuls(op):
        pend = c.new_slot()
        c.overrides[mm], compute = k_loop_record(mm, c, pend)
        fused.append((k, pend, compute))
    fused_idx = {k for k, _, _ in fused}
    steps, yields = c.compile_block(body)
    kept = [(k, carried[k], y) for k, y in enumerate(yields) if k not in fused_idx]
    results = [c.slot(x) for x in op.res]
    free = c.free_slots(op)
    iv_dtype = dtype_of(op.lb.type).np_dtype
    ones = c.ones

    def batched(env, ctx) -> bool:
        l, u, s = env[lb], env[ub], env[st]
        if not (_uniform(l) and _uniform(u) and _uniform(s)):
            return False
        l, u, s = int(l.flat[0]), int(u.flat[0]), int(s.flat[0])
        if s <= 0 and l < u:
            raise ValueError(f"cpu backend: scf.for step must be positive, got {s}")
        vals = [env[i] for i in init]
        for _, pend, _ in fused:
            env[pend] = []
        if l < u:
            for i in range(l, u, s):
                env[iv] = np.full(ones, i, iv_dtype)
                for k, arg, _ in kept:
                    env[arg] = vals[k]
                for f in steps:
                    f(env, ctx)
                for k, _, y in kept:
                    vals[k] = env[y]
        for k, pend, compute in fused:
            vals[k] = k_loop_matmul(compute, env[pend], vals[k])
        for k, x in zip(results, vals):
            env[k] = x
        return True

    def step(env, ctx):
        if not batched(env, ctx):
            _per_program(env, ctx, (lb, ub, st), free, results, batched)
    return step


def h_if(op: scf.IfOp, c: Compiler) -> Step:
    cond = c.slot(op.cond)
    then_steps, then_yields = c.compile_block(op.true_region.block)
    if op.false_region.blocks:
        else_steps, else_yields = c.compile_block(op.false_region.block)
    else:
        else_steps, else_yields = [], []
    results = [c.slot(x) for x in op.output]
    free = c.free_slots(op)

    def batched(env, ctx) -> bool:
        v = env[cond]
        if not _uniform(v):
            return False
        steps, yields = (then_steps, then_yields) if v.flat[0] else (else_steps, else_yields)
        for f in steps:
            f(env, ctx)
        for k, y in zip(results, yields):
            env[k] = env[y]
        return True

    def step(env, ctx):
        if not batched(env, ctx):
            _per_program(env, ctx, (cond,), free, results, batched)
    return step

