"""tile-async-copy: global->shared tile copies become TMA loads on mbarriers, software-pipelined
over the K loop with `num-stages` buffers.

A loop made by tile-promote-smem (copies into one-stage buffers, then a synchronous wgmma)
gets `num-stages` buffers per operand and two mbarrier arrays: `full[s]` completes when the
TMA loads of stage s have landed, `empty[s]` when every warpgroup's wgmmas have read it.
One thread (`tgpu.elect`) issues the loads of iteration k + S - 1 while the tensor cores
work on iteration k; one wgmma group stays in flight, so the stage of iteration k - 1 is
released after `wgmma_wait {pending = 1}`:

    prologue: produce(lb) .. produce(lb + S - 2)
    loop k:   wait full[k]; wgmma(k); wait_group 1; release empty[k - 1]; produce(k + S - 1)
    produce(k): elect { wait empty[k] (previous use released); expect_tx full[k]; tma_load... }

`num-stages=0` (the default) means 4, fewer when shared memory (227 KiB) is short; the
kernel option `num_stages` (`@ct.kernel(num_stages=3)`, launch `num_stages=`) sets it.

Input invariant:
  - tile-promote-smem output: scf.for (step 1, one `!tgpu.acc` iter_arg) whose body holds
    pure scalar ops, `tgpu.copy`s into one-stage buffers, fence, wgmma, commit, wait 0.
Output IR:
  - no `tgpu.copy` in such loops; TMA loads only inside `tgpu.elect`; a `wgmma_wait` after the loop.

Before:
  scf.for %k = %lb to %ub step %c1 iter_args(%acc = %acc0) -> (!tgpu.acc<128x128xf32>) : i32 {
    tgpu.copy %A[%i, %kk] -> %a_s[%c0] : ...                            (and %B)
    tgpu.wgmma_fence ; %d = tgpu.wgmma %a_s[%c0], %b_s[%c0], %acc ; tgpu.wgmma_commit ; tgpu.wgmma_wait
After (num-stages=4):
  %full = tgpu.mbarrier_init {arrivals = 1 : i64} : !tgpu.mbarrier<4>
  scf.for %p = %lb to %pe step %c1 { <produce %p> }
  %r = scf.for %k = %lb to %ub step %c1 iter_args(%acc = %acc0) -> (!tgpu.acc<128x128xf32>) : i32 {
    %s, %ph = tgpu.stage %k, %lb {stages = 4 : i64}
    tgpu.mbarrier_wait %full[%s], %ph : !tgpu.mbarrier<4>
    ... %d = tgpu.wgmma %a_s[%s], %b_s[%s], %acc ... tgpu.wgmma_wait {pending = 1 : i64}
    tgpu.mbarrier_arrive %empty[%sp] if %started ; scf.if %more { <produce %kn> }
  }
  tgpu.wgmma_wait
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, scf
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, i32
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, PatternRewriteWalker, RewritePattern, op_type_rewrite_pattern
from xdsl.rewriter import InsertPoint

from tilec.dialects import tgpu as G
from tilec.dialects.tile import BINARY_OP_CLASSES, CmpOp

from .ir_queries import SMEM_LIMIT, const_int, is_scalar_pure, source_loc

DEFAULT_STAGES = 4
BARRIER_BYTES = 8
ALIGN_SLACK = 1024   # the lowering aligns the buffers to 1024 B at run time


@dataclass
class SyncLoop:
    """A promoted loop: its copies (in order), the wgmma and the one-stage buffers."""

    loop: scf.ForOp
    copies: list
    wgmma: G.WgmmaOp
    buffers: list     # AllocSmemOp, in first-copy order

    def stage_bytes(self) -> int:
        return sum(b.result.type.stage_bytes for b in self.buffers)


def match_sync_loop(loop: scf.ForOp) -> SyncLoop | None:
    body = loop.body.block
    if len(loop.iter_args) != 1 or not isinstance(loop.iter_args[0].type, G.AccType) or const_int(loop.step) != 1:
        return None
    ops = list(body.ops)
    tail = [type(o) for o in ops[-5:]]
    if tail != [G.WgmmaFenceOp, G.WgmmaOp, G.WgmmaCommitOp, G.WgmmaWaitOp, scf.YieldOp] \
            or ops[-1].operands[0] is not ops[-4].result or ops[-2].pending.value.data != 0:
        return None
    copies = [o for o in ops[:-5] if isinstance(o, G.CopyOp)]
    if not copies or any(not isinstance(o, G.CopyOp) and not is_scalar_pure(o) for o in ops[:-5]):
        return None
    buffers = []
    for c in copies:
        alloc = c.buffer.owner
        if not isinstance(alloc, G.AllocSmemOp) or alloc.result.type.stages.data != 1 or alloc in buffers:
            return None
        if any(u.operation.parent_op() is not loop for u in alloc.result.uses):
            return None
        buffers.append(alloc)
    w = ops[-4]
    if w.a.owner not in buffers or w.b.owner not in buffers or w.acc is not body.args[1]:
        return None
    return SyncLoop(loop, copies, w, buffers)


def _const(value: int) -> arith.ConstantOp:
    return arith.ConstantOp(IntegerAttr(value, i32))


def _stages_for(m: SyncLoop, requested: int) -> int:
    """The pipeline depth: `requested` (checked against shared memory) or the default."""
    fits = (SMEM_LIMIT - ALIGN_SLACK) // (m.stage_bytes() + 2 * BARRIER_BYTES)
    if requested:
        if requested < 2 or requested > fits:
            from tilec.errors import CompileError

            why = "at least 2 stages pipeline the K loop" if requested < 2 else \
                f"{requested} x {m.stage_bytes() // 1024} KiB of buffers exceed the {SMEM_LIMIT // 1024} KiB of shared memory"
            raise CompileError(f"num_stages={requested} does not fit this K loop: {why}", source_loc(m.loop))
        return requested
    return max(2, min(DEFAULT_STAGES, fits))


class PipelineKLoop(RewritePattern):
    """IN: scf.for { copy -> smem x n; wgmma; wait 0 }  OUT: mbarriers, a prologue loop, the
    pipelined loop and a final wgmma_wait.  Why: loads of later iterations overlap the MMAs.

        TMA:   [k+3 -> s3] [k+4 -> s0] [k+5 -> s1] ...        (one thread, S-1 ahead)
        wgmma:       [k: s0]    [k+1: s1]    [k+2: s2] ...     (one group in flight)
    """

    def __init__(self, num_stages: int):
        self.num_stages = num_stages

    @op_type_rewrite_pattern
    def match_and_rewrite(self, loop: scf.ForOp, rewriter: PatternRewriter) -> None:
        m = match_sync_loop(loop)
        if m is None:
            return
        S = _stages_for(m, self.num_stages)
        nwg = m.wgmma.acc.type.get_shape()[0] // 64
        before = InsertPoint.before(loop)
        bufs = {}
        for old in m.buffers:
            t = old.result.type
            new = G.AllocSmemOp(G.SmemType(t.get_shape(), t.element_type, t.swizzle.data, S))
            new.result.name_hint = old.result.name_hint
            bufs[old.result] = new.result
            rewriter.insert(new, before)
        full, empty = G.MBarrierInitOp(S, 1), G.MBarrierInitOp(S, nwg)
        full.result.name_hint, empty.result.name_hint = "full", "empty"
        c1, cs1 = _const(1), _const(S - 1)
        pe = BINARY_OP_CLASSES["add"](loop.lb, cs1.result)
        pe_min = BINARY_OP_CLASSES["minimum"](pe.result, loop.ub)
        for o in (full, empty, c1, cs1, pe, pe_min):
            rewriter.insert(o, before)
        tx = m.stage_bytes()

        def produce(k: SSAValue) -> list[Operation]:
            """Wait for the stage of iteration `k` to be free, then start its loads."""
            st = G.StageOp(k, loop.lb, S)
            st.stage.name_hint, st.phase.name_hint = "ps", "pphase"
            flip = BINARY_OP_CLASSES["xor"](st.phase, c1.result)
            flip.result.name_hint = "released"
            inner: list[Operation] = [flip, G.MBarrierWaitOp(empty.result, st.stage, flip.result),
                                      G.ArriveExpectTxOp(full.result, st.stage, tx)]
            vmap = {loop.body.block.args[0]: k}
            for o in loop.body.block.ops:
                if isinstance(o, G.CopyOp):
                    inner.append(G.TmaLoadOp(o.tensor, [vmap.get(x, x) for x in o.offsets], bufs[o.buffer],
                                             st.stage, full.result))
                elif is_scalar_pure(o):
                    inner.append(o.clone(value_mapper=vmap))
            return [st, G.ElectOp(Region(Block(inner)))]

        pro = Block(arg_types=[i32])
        pro.args[0].name_hint = "kp"
        pro.add_ops([*produce(pro.args[0]), scf.YieldOp()])
        rewriter.insert(scf.ForOp(loop.lb, pe_min.result, c1.result, [], pro), before)

        acc_t = loop.iter_args[0].type
        body = Block(arg_types=[i32, acc_t])
        k, acc = body.args
        k.name_hint, acc.name_hint = loop.body.block.args[0].name_hint, loop.body.block.args[1].name_hint
        st = G.StageOp(k, loop.lb, S)
        st.stage.name_hint, st.phase.name_hint = "stage", "phase"
        w = G.WgmmaOp(bufs[m.wgmma.a], st.stage, bufs[m.wgmma.b], st.stage, acc)
        kp = BINARY_OP_CLASSES["sub"](k, c1.result)
        stp = G.StageOp(kp.result, loop.lb, S)
        started = CmpOp("gt", k, loop.lb)
        kn = BINARY_OP_CLASSES["add"](k, cs1.result)
        more = CmpOp("lt", kn.result, loop.ub)
        w.result.name_hint = m.wgmma.result.name_hint
        stp.stage.name_hint, started.result.name_hint = "prev", "started"
        kn.result.name_hint, more.result.name_hint = "k_next", "more"
        body.add_ops([st, G.MBarrierWaitOp(full.result, st.stage, st.phase), G.WgmmaFenceOp(), w, G.WgmmaCommitOp(),
                      G.WgmmaWaitOp(1), kp, stp, started, G.MBarrierArriveOp(empty.result, stp.stage, started.result),
                      kn, more, scf.IfOp(more.result, [], [*produce(kn.result), scf.YieldOp()]),
                      scf.YieldOp(w.result)])
        new_loop = scf.ForOp(loop.lb, loop.ub, c1.result, list(loop.iter_args), body)
        new_loop.results[0].name_hint = loop.results[0].name_hint
        rewriter.insert(new_loop, before)
        rewriter.insert(G.WgmmaWaitOp(0), InsertPoint.after(new_loop))
        stage_consts = {c.stage for c in m.copies} | {m.wgmma.a_stage, m.wgmma.b_stage}
        rewriter.replace(loop, [], list(new_loop.results))
        for old in m.buffers:
            rewriter.erase(old)
        for v in stage_consts:  # the one-stage index, now unused
            if isinstance(v.owner, arith.ConstantOp) and v.owner.parent is not None and not any(True for _ in v.uses):
                rewriter.erase(v.owner)


PATTERNS = (PipelineKLoop,)


@dataclass(frozen=True)
class TileAsyncCopyPass(ModulePass):
    """Pipeline promoted K loops over `num_stages` shared-memory stages with TMA and mbarriers."""

    name = "tile-async-copy"
    num_stages: int = 0

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(PipelineKLoop(self.num_stages), apply_recursively=False).rewrite_module(op)
