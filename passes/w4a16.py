"""tile-w4a16: weight-only FP4 K loops become one `w4a16.mma_loop` (sm_90a / sm_80).

Neither sm_90a nor sm_80 has FP4 tensor cores, so a K loop that multiplies f16/bf16
activations by dequantized e2m1 weights runs on `mma.sync` f16/bf16 with the weights
decoded in registers: the loop is replaced by one `w4a16.mma_loop` (dialects/w4a16.py)
that the PTX backend lowers to a cp.async ring + register decode + mma.sync pipeline
(backends/ptx/lower_w4a16.py).  The fp16 weight tile never exists in memory.

Input invariant:
  - canonicalised tile IR; the loop is `scf.for %k = %lb to %ub step 1` with one carried
    2-D f32 tile `acc` and a body of exactly: the zero-padded loads `X[xr, k*BK]` ([BM, BK] f16/bf16),
    `WQ[wr, k*BK]` ([BN, BK] e2m1) and `WS[wr, k*(BK/block)]` (MX e8m0 / 32 or NV e4m3 / 16),
    `tile.dequantize` to X's dtype, its transpose, `tile.matmul x, w^T, acc` and index math;
    `xr`, `wr` are defined outside the loop.
  - BK in (128, 256), BM in (8, 16, 24, 32) tokens, BN in (16, 32, 64, 128) weight rows.
  - K (the inner extent of X and WQ) a multiple of BK, as `w4a16.mma_loop` requires: a static
    K that is not is a compile error, a run-time one traps at kernel entry (the lowering
    checks it; partial chunks would make misaligned cp.async addresses).
Output IR:
  - the loop is gone; `w4a16.mma_loop` yields the final accumulator.  Loops that do not
    match are left as they are.  The kernel's `num_warps` must be a multiple of BN / 16:
    one warp per 16 weight rows, further warps split the K loop (each takes every
    (num_warps * 16 / BN)-th chunk; partial sums meet in shared memory at the end).

Before:
  %r = scf.for %k = %lb to %ub step %c1 iter_args(%acc = %z) -> (!tile.tile<16x64xf32>) : i32 {
    %o = tile.mul %k, %c128 : i32
    %x = tile.load %X[%xr, %o] : !tile.tensor<?x?xf16> -> !tile.tile<16x128xf16>
    %q = tile.load %WQ[%wr, %o] : !tile.tensor<?x?xf4E2M1FN> -> !tile.tile<64x128xf4E2M1FN>
    %so = tile.mul %k, %c4 : i32
    %s = tile.load %WS[%wr, %so] : !tile.tensor<?x?xf8E8M0FNU> -> !tile.tile<64x4xf8E8M0FNU>
    %w = tile.dequantize %q scale %s block 32 : ... -> !tile.tile<64x128xf16>
    %t = tile.permute %w {perm = array<i64: 1, 0>} : ... -> !tile.tile<128x64xf16>
    %d = tile.matmul %x, %t, %acc : ... -> !tile.tile<16x64xf32>
    scf.yield %d : !tile.tile<16x64xf32>
  }
After:
  %r = w4a16.mma_loop %X[%xr], %WQ, %WS[%wr], %lb to %ub, %z {bk = 128 : i64, block = 32 : i64, stages = 4 : i64} : ...
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import scf
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, PatternRewriteWalker, RewritePattern, op_type_rewrite_pattern

from tilec.dialects import tile as T
from tilec.dialects.w4a16 import ACT_TYPES, BK_SIZES, SCALE_FORMATS, MmaLoopOp

from .ir_queries import const_int, is_scalar_pure, nuses

TARGETS = ("sm_80", "sm_90a")


def _ename(v: SSAValue) -> str:
    return str(T.element_type_of(v.type))


def _is_iv_times(v: SSAValue, iv: SSAValue, factor: int) -> bool:
    """`v` is `tile.mul iv, factor` (either operand order)."""
    o = v.owner
    if not isinstance(o, Operation) or o.name != "tile.mul":
        return False
    a, b = o.operands
    return (a == iv and const_int(b) == factor) or (b == iv and const_int(a) == factor)


def _outside(v: SSAValue, loop: scf.ForOp) -> bool:
    o = v.owner
    op = o if isinstance(o, Operation) else o.parent_op()
    while op is not None:
        if op is loop:
            return False
        op = op.parent_op()
    return True


def match_loop(loop: scf.ForOp) -> dict | None:
    """The parts of a weight-only FP4 K loop (the module docstring's shape), or None."""
    if len(loop.iter_args) != 1 or const_int(loop.step) != 1:
        return None
    body = loop.body.block
    iv, acc = body.args
    y = body.last_op
    if not isinstance(y, scf.YieldOp) or len(y.operands) != 1:
        return None
    mm = y.operands[0].owner
    if not isinstance(mm, T.MatmulOp) or mm.acc != acc or nuses(mm.result) != 1:
        return None
    perm = mm.rhs.owner
    if not isinstance(perm, T.PermuteOp) or list(perm.perm.get_values()) != [1, 0] or nuses(perm.result) != 1:
        return None
    deq = perm.operands[0].owner
    if not isinstance(deq, T.DequantizeOp) or nuses(deq.result) != 1:
        return None
    xl, ql, sl = mm.lhs.owner, deq.source.owner, deq.scales.owner
    if not all(isinstance(o, T.LoadOp) and nuses(o.result) == 1 and o.padding.value.data == 0.0 for o in (xl, ql, sl)):
        return None     # the lowering zero-fills rows past M / N
    block = deq.block.value.data
    (bm, bk), (bn, bk2) = xl.result.type.get_shape(), ql.result.type.get_shape()
    if _ename(mm.lhs) not in ACT_TYPES or _ename(deq.result) != _ename(mm.lhs) or _ename(deq.source) != "f4E2M1FN" \
            or (_ename(deq.scales), block) not in SCALE_FORMATS or bk != bk2 or bk not in BK_SIZES:
        return None
    if str(mm.result.type.element_type) != "f32" or bm % 8 or not 8 <= bm <= 32 or bn % 16 \
            or bn // 16 not in (1, 2, 4, 8):
        return None
    if any(o.tensor.type.rank != 2 for o in (xl, ql, sl)):
        return None
    (xr, xo), (wr, wo), (sr, so) = (tuple(o.offsets) for o in (xl, ql, sl))
    if not (_is_iv_times(xo, iv, bk) and _is_iv_times(wo, iv, bk) and _is_iv_times(so, iv, bk // block)):
        return None
    if sr != wr or not _outside(xr, loop) or not _outside(wr, loop):
        return None
    chain = {mm, perm, deq, xl, ql, sl, y}
    for op in body.ops:   # anything else must be index math feeding the offsets
        if op not in chain and not is_scalar_pure(op):
            return None
    return dict(x=xl.tensor, xr=xr, wq=ql.tensor, ws=sl.tensor, wr=wr, bk=bk, block=block)


class RewriteW4A16Loop(RewritePattern):
    """IN: scf.for of load X / load WQ, WS / dequantize / transpose / matmul-accumulate
    OUT: one `w4a16.mma_loop` over the same iterations."""

    def __init__(self, stages: int):
        self.stages = stages

    @op_type_rewrite_pattern
    def match_and_rewrite(self, loop: scf.ForOp, rewriter: PatternRewriter) -> None:
        m = match_loop(loop)
        if m is None:
            return
        new = MmaLoopOp(m["x"], m["xr"], m["wq"], m["ws"], m["wr"], loop.lb, loop.ub, loop.iter_args[0],
                        m["bk"], m["block"], self.stages)
        new.location = loop.location if hasattr(loop, "location") else None
        rewriter.replace(loop, new)


PATTERNS = (RewriteW4A16Loop,)


@dataclass(frozen=True)
class TileW4A16Pass(ModulePass):
    """Rewrite weight-only FP4 K loops into `w4a16.mma_loop` for sm_90a / sm_80."""

    name = "tile-w4a16"
    target: str = "sm_90a"
    num_stages: int = 4

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"tile-w4a16: unknown target {self.target!r}; expected one of {TARGETS}")
        PatternRewriteWalker(RewriteW4A16Loop(self.num_stages), apply_recursively=False).rewrite_module(op)
