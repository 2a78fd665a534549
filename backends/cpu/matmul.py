"""`tile.matmul` and `tile.scaled_matmul`, grid-batched, and the K-loop fusion that turns
a loop of `acc = matmul(a, b, acc)` into one GEMM over the whole K extent.

A block-scaled matmul multiplies each operand by its scales first (exact in f32) and is
then an f32 GEMM like any other, fused over K the same way.

Numerics: floats accumulate in f32 (f64 for f64), ints in i32 (wrapping); the K-loop
GEMM sums in a different order than step by step, as a GPU's MMA order is its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import as_strided
from xdsl.dialects import scf

from tilec import dtypes
from tilec.dialects import tile as T

from tilec.fp4 import dequantize_values

from .numerics import F32, F64, dtype_of
from .program import Compiler, Step


def matmul2d(a: np.ndarray, b: np.ndarray, G: int) -> np.ndarray:
    """Grid-batched `a @ b` of 2-D tiles as a few large GEMMs.

    Grid axes only `a` varies along fold into the GEMM's M, those only `b` varies along
    into N, and those both vary along stay a batch: a (16,1,64,32) @ b (1,16,32,64) is
    one (1024x32) @ (32x1024) product instead of 256 small ones.
    """
    ba, bb = a.shape[:G], b.shape[:G]
    shared = [i for i in range(G) if ba[i] > 1 and bb[i] > 1]
    a_only = [i for i in range(G) if ba[i] > 1 and bb[i] == 1]
    b_only = [i for i in range(G) if bb[i] > 1 and ba[i] == 1]
    M, K = a.shape[G:]
    N = b.shape[-1]
    S = [ba[i] for i in shared]
    PA = [ba[i] for i in a_only]
    PB = [bb[i] for i in b_only]
    ps, pa, pb = math.prod(S), math.prod(PA), math.prod(PB)
    unit_a = [i for i in range(G) if ba[i] == 1]
    unit_b = [i for i in range(G) if bb[i] == 1]
    # a -> (S, A_only, M, K) -> (ps, pa*M, K)
    a2 = a.transpose(shared + a_only + unit_a + [G, G + 1]).reshape(ps, pa * M, K)
    # b -> (S, K, B_only, N) -> (ps, K, pb*N)
    nb = len(b_only)
    b3 = b.transpose(shared + b_only + unit_b + [G, G + 1]).reshape([ps] + PB + [K, N])
    b2 = b3.transpose([0, 1 + nb] + list(range(1, 1 + nb)) + [2 + nb]).reshape(ps, K, pb * N)
    prod = np.matmul(a2, b2)
    # (S, A_only, M, B_only, N) -> grid order + (M, N)
    prod = prod.reshape(S + PA + [M] + PB + [N])
    ns, na = len(shared), len(a_only)
    pos = {ax: k for k, ax in enumerate(shared)}
    pos.update({ax: ns + k for k, ax in enumerate(a_only)})
    pos.update({ax: ns + na + 1 + k for k, ax in enumerate(b_only)})
    perm = [pos[i] for i in range(G) if i in pos] + [ns + na, ns + na + 1 + nb]
    out_shape = tuple(max(ba[i], bb[i]) for i in range(G)) + (M, N)
    return prod.transpose(perm).reshape(out_shape)


def matmul_fn(op: T.MatmulOp, G: int) -> Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]:
    """`compute(x, y, acc)`: grid-batched `x @ y (+ acc)` with the op's numerics."""
    rank2 = op.lhs.type.rank == 2 and op.rhs.type.rank == 2
    return gemm_fn(dtype_of(op.lhs.type), dtype_of(op.result.type).np_dtype, rank2, G)


def gemm_fn(src: dtypes.DType, out: np.dtype, rank2: bool, G: int) -> Callable:
    """`compute(x, y, acc)` for operands of dtype `src`: floats accumulate in f32 (f64 for
    f64), ints in i32; the result is `out`."""
    if src.is_float:
        accum = F64 if src is dtypes.float64 else F32
    else:
        accum = np.dtype(np.int32)
    exact_f64_bits = 2 * src.bits if src.is_int or src is dtypes.bool_ else 0

    def compute(x, y, z):
        if src.is_float:
            work = accum
        elif src.bits <= 16 and x.shape[-1] * 2**exact_f64_bits < 2**53:
            work = F64  # exact in f64, and fast (BLAS)
        else:
            work = np.dtype(np.int64)  # wraps mod 2**32 like i32 once cast back
        if x.dtype != work:
            x = x.astype(work)
        if y.dtype != work:
            y = y.astype(work)
        p = matmul2d(x, y, G) if rank2 else np.matmul(x, y)
        if p.dtype != accum:
            p = p.astype(accum)
        if z is not None:
            if z.dtype != accum:
                z = z.astype(accum)
            if np.broadcast_shapes(p.shape, z.shape) == p.shape:
                np.add(p, z, out=p)  # p is fresh: accumulate in place
            else:
                p = p + z
        return p if p.dtype == out else p.astype(out)
    return compute


def h_matmul(op: T.MatmulOp, c: Compiler) -> Step:
    a, b = c.slot(op.lhs), c.slot(op.rhs)
    acc = c.slot(op.acc) if op.acc is not None else None
    r = c.slot(op.result)
    compute = matmul_fn(op, c.G)

    def step(env, ctx):
        env[r] = compute(env[a], env[b], None if acc is None else env[acc])
    return step


def scaled_operands_fn(op: T.ScaledMatmulOp) -> Callable:
    """`(a, sa, b, sb) -> (a * sa, b * sb)` in f32, each scale repeated over its block of K:
    exact (e2m1 and fp8 values times ue8m0 / e4m3 scales fit f32), so the block-scaled
    product is an f32 GEMM of these, summed in f32 as the hardware does."""
    block = op.block.value.data

    def dequantize(a, sa, b, sb):
        x = dequantize_values(a, sa, block)                                  # [.., M, K] by [.., M, K/block]
        y = dequantize_values(np.swapaxes(b, -1, -2), sb, block)             # [.., N, K] by [.., N, K/block]
        return x, np.swapaxes(y, -1, -2)
    return dequantize


def h_scaled_matmul(op: T.ScaledMatmulOp, c: Compiler) -> Step:
    a, sa, b, sb = c.slot(op.lhs), c.slot(op.lhs_scale), c.slot(op.rhs), c.slot(op.rhs_scale)
    acc = c.slot(op.acc) if op.acc is not None else None
    r = c.slot(op.result)
    dequantize = scaled_operands_fn(op)
    compute = gemm_fn(dtypes.float32, F32, True, c.G)

    def step(env, ctx):
        x, y = dequantize(env[a], env[sa], env[b], env[sb])
        env[r] = compute(x, y, None if acc is None else env[acc])
    return step


def k_loop_record(mm: T.MatmulOp | T.ScaledMatmulOp, c: Compiler, pend: int) -> tuple[Step, Callable]:
    """For a fused K-loop matmul (`fusable_k_loop_matmuls`): the step that replaces it in
    the loop body, appending its operand tiles to the list in slot `pend`, and the
    `compute(x, y, acc)` that `k_loop_matmul` multiplies them with after the loop."""
    if isinstance(mm, T.ScaledMatmulOp):
        a, sa, b, sb = c.slot(mm.lhs), c.slot(mm.lhs_scale), c.slot(mm.rhs), c.slot(mm.rhs_scale)
        dequantize = scaled_operands_fn(mm)

        def record_scaled(env, ctx):
            env[pend].append(dequantize(env[a], env[sa], env[b], env[sb]))
        return record_scaled, gemm_fn(dtypes.float32, F32, True, c.G)
    x, y = c.slot(mm.lhs), c.slot(mm.rhs)

    def record(env, ctx):
        env[pend].append((env[x], env[y]))
    return record, matmul_fn(mm, c.G)


def fusable_k_loop_matmuls(op: scf.ForOp) -> list[tuple[int, T.MatmulOp | T.ScaledMatmulOp]]:
    """Carries of `op` that only feed a K-loop accumulation `acc = matmul(a, b, acc)`
    (or a block-scaled `tile.scaled_matmul`).

    The carried block argument's one use is the `acc` of a matmul in the loop body, and
    that matmul's one use is the yield of the same carry, so no one sees the partial sums
    and the loop may run the whole K extent as one GEMM.  Only when the accumulator is
    f32 / f64 / i32, where rounding it once per step is not part of the semantics.
    """
    body = op.body.block
    yield_op = body.last_op
    if not isinstance(yield_op, scf.YieldOp):
        return []
    found = []
    for k, (arg, yv) in enumerate(zip(body.args[1:], yield_op.operands)):
        if not arg.has_one_use():
            continue
        mm = arg.get_user_of_unique_use()
        if (isinstance(mm, (T.MatmulOp, T.ScaledMatmulOp)) and mm.acc is arg and mm.parent is body
                and yv is mm.result and mm.result.has_one_use()
                and dtype_of(mm.result.type) in (dtypes.float32, dtypes.float64, dtypes.int32)):
            found.append((k, mm))
    return found


def k_loop_matmul(compute, pairs: list[tuple[np.ndarray, np.ndarray]], acc: np.ndarray) -> np.ndarray:
    """`acc + sum_k a_k @ b_k` as one GEMM over the joined K extent.

    A GEMM with K = 32 runs at a fraction of BLAS speed and each step would rewrite the
    whole accumulator; one (M x K_total) @ (K_total x N) product is as fast as numpy `@`.
    The f32 sum is the same, in a different order (as a GPU's MMA order is its own).
    Tiles loaded as views of consecutive K slices of one tensor join without a copy.
    """
    if not pairs:
        return acc
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    if len(pairs) == 1:
        return compute(xs[0], ys[0], acc)
    xb, yb = xs[0].shape[:-1], ys[0].shape[:-2] + ys[0].shape[-1:]
    if any(x.shape[:-1] != xb for x in xs) or any(y.shape[:-2] + y.shape[-1:] != yb for y in ys):
        for x, y in pairs:  # tiles of different grid batches: accumulate step by step
            acc = compute(x, y, acc)
        return acc
    return compute(join(xs, -1), join(ys, -2), acc)


def strided_view(a: np.ndarray, shape, strides) -> np.ndarray:
    """A read-only `as_strided` view of `a`.  ml_dtypes' types (fp8, fp6, fp4) go through
    unsigned integers of their size: numpy cannot rebuild them from the array interface
    (typestr '<f1')."""
    if a.dtype.isbuiltin == 2:  # a user-defined dtype
        raw = a.view(np.dtype(f"u{a.dtype.itemsize}"))
        return as_strided(raw, shape, strides, writeable=False).view(a.dtype)
    return as_strided(a, shape, strides, writeable=False)


def join(parts: list[np.ndarray], axis: int) -> np.ndarray:
    """`np.concatenate(parts, axis)`: a view when the parts lie end to end in the memory of
    one array (consecutive K tiles of a tensor), else a copy in the parts' memory order
    (so the GEMM layout `matmul2d` reshapes to stays a view)."""
    first = parts[0]
    axis %= first.ndim
    rest = first.shape[:axis] + first.shape[axis + 1:]
    total = sum(p.shape[axis] for p in parts)
    base, stride = first.base, first.strides[axis]
    if base is not None:
        addr = first.__array_interface__["data"][0]
        for p, q in zip(parts, parts[1:]):
            addr += p.shape[axis] * stride
            if (q.base is not base or q.strides != first.strides or q.shape[:axis] + q.shape[axis + 1:] != rest
                    or q.__array_interface__["data"][0] != addr):
                break
        else:  # every element of the view lies in one of the parts
            shape = first.shape[:axis] + (total,) + first.shape[axis + 1:]
            return strided_view(first, shape, first.strides)
    out = np.empty_like(first, shape=first.shape[:axis] + (total,) + first.shape[axis + 1:])
    return np.concatenate(parts, axis=axis, out=out)

