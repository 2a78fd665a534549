"""tile-promote-smem: the operands of a wgmma matmul in a K loop become shared-memory buffers.

For the canonical K loop `acc = matmul(load(A, [i*BM, k*BK]), load(B, [k*BK, j*BN]), acc)`
whose matmul `tile-select-mma` gave a wgmma, the two global loads become copies into
shared-memory buffers with the 128-byte swizzle wgmma reads, the matmul a `tgpu.wgmma` on
those buffers (fenced, committed and waited for in the same iteration), and the
accumulator a `!tgpu.acc` fragment carried by the loop.  After the loop the accumulator
is stored straight from its fragments when its only use is a `tile.store` of a 2-D f32 /
f16 / bf16 tensor, and converted back to a tile otherwise.  The kernel runs one warpgroup
per 64 rows (`tgpu.num_warps` on the function).  A wgmma matmul that does not fit the
pattern is re-annotated with its register-operand instruction (mma.sync or FMA).

Input invariant:
  - `tile.matmul`s annotated by tile-select-mma; tensor arguments whose base address and
    rows are 16-byte aligned carry `{tile.div16}` (TMA needs it).
Output IR:
  - no `tile.matmul` with a `wgmma` record; each promoted loop has one `tgpu.copy` per
    operand into a one-stage `tgpu.alloc_smem` buffer and one synchronous `tgpu.wgmma`.

Before:
  %r = scf.for %k = %c0 to %n step %c1 iter_args(%acc = %zero) -> (!tile.tile<128x128xf32>) : i32 {
    %a = tile.load %A[%i, %kk] : !tile.tensor<?x?xf16> -> !tile.tile<128x64xf16>
    %b = tile.load %B[%kk, %j] : !tile.tensor<?x?xf16> -> !tile.tile<64x128xf16>
    %d = tile.matmul %a, %b, %acc {mma = "wgmma.m64n128k16.f32.f16.f16"} : ...
    scf.yield %d : !tile.tile<128x128xf32>
  }
After:
  %a_s = tgpu.alloc_smem : !tgpu.smem<128x64xf16, swizzle = 128, stages = 1>
  %acc0 = tgpu.to_fragment %zero : !tile.tile<128x128xf32> -> !tgpu.acc<128x128xf32>
  %r = scf.for %k = %c0 to %n step %c1 iter_args(%acc = %acc0) -> (!tgpu.acc<128x128xf32>) : i32 {
    tgpu.copy %A[%i, %kk] -> %a_s[%s0] : ...                        (and %B -> %b_s)
    tgpu.wgmma_fence
    %d = tgpu.wgmma %a_s[%s0], %b_s[%s0], %acc : ...
    tgpu.wgmma_commit
    tgpu.wgmma_wait
    scf.yield %d : !tgpu.acc<128x128xf32>
  }
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, scf
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, i32
from xdsl.ir import Block, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, PatternRewriteWalker, RewritePattern, op_type_rewrite_pattern
from xdsl.rewriter import InsertPoint

from tilec import dtypes as dt
from tilec.dialects import tgpu as G
from tilec.dialects.tile import CastOp, LoadOp, MatmulOp, StoreOp

from .ir_queries import NUM_WARPS_ATTR, SMEM_LIMIT, func_of, is_div16, match_matmul_k_loop, nuses
from .select_mma import record, recorded, register_instruction

SWIZZLE = 128


def _single_use_load(v: SSAValue, block: Block) -> LoadOp | None:
    o = v.owner
    if isinstance(o, LoadOp) and o.parent_block() is block and nuses(o.result) == 1 \
            and o.padding.value.data == 0.0 and o.tensor.type.rank == 2 and is_div16(o.tensor):
        return o
    return None


@dataclass
class KLoop:
    """A matched canonical K loop: the loop, its matmul and the two operand loads."""

    loop: scf.ForOp
    matmul: MatmulOp
    a: LoadOp
    b: LoadOp

    @property
    def shape(self) -> tuple[int, int, int]:
        (bm, bk), (_, bn) = self.a.result.type.get_shape(), self.b.result.type.get_shape()
        return bm, bn, bk


def match_k_loop(loop: scf.ForOp) -> KLoop | None:
    """The canonical K loop in `loop` (`ir_queries.match_matmul_k_loop`) of a wgmma matmul
    whose tile sizes the pipeline takes, or None."""
    found = match_matmul_k_loop(loop, "wgmma", _single_use_load)
    if found is None:
        return None
    mm, a, b = found
    k = KLoop(loop, mm, a, b)
    bm, bn, bk = k.shape
    if bm not in (64, 128, 256) or bk % 64 or bk > 256 or bn % 64 or bn > 256:
        return None
    return k


def _store_epilogue(result: SSAValue) -> tuple[StoreOp, list[Operation]] | None:
    """The plain store the fragments can do when it is the loop result's only use (through an
    f32 -> f16/bf16 `tile.cast`, which rounds as the store would), with the ops it replaces."""
    if nuses(result) != 1:
        return None
    use = next(iter(result.uses)).operation
    chain: list[Operation] = []
    if isinstance(use, CastOp) and nuses(use.result) == 1 and \
            dt.from_ir(use.result.type.element_type) in (dt.float16, dt.bfloat16):
        chain, result = [use], use.result
        use = next(iter(result.uses)).operation
    if isinstance(use, StoreOp) and use.value is result and use.mode.data == "store" and use.tensor.type.rank == 2 \
            and dt.from_ir(use.tensor.type.element_type) in (dt.float32, dt.float16, dt.bfloat16):
        return use, chain
    return None


class PromoteKLoopOperands(RewritePattern):
    """IN: scf.for { load A; load B; matmul{wgmma}; yield }  OUT: alloc_smem x2 + to_fragment
    before the loop; copy x2 + fence/wgmma/commit/wait in it; store_fragment or
    from_fragment after it.  Why: wgmma reads both operands from swizzled shared memory.

        acc0 ---------> to_fragment -> scf.for [copy A, copy B -> smem; wgmma] -> store_fragment
    """

    @op_type_rewrite_pattern
    def match_and_rewrite(self, loop: scf.ForOp, rewriter: PatternRewriter) -> None:
        k = match_k_loop(loop)
        if k is None:
            return
        bm, bn, bk = k.shape
        f = func_of(loop)
        warps = 4 * bm // 64
        have = f.attributes.get(NUM_WARPS_ATTR)
        if have is not None and have.value.data != warps:
            return  # another promoted loop fixed a different warp count
        store = _store_epilogue(loop.results[0])
        if store is None and bm * bn * 4 > SMEM_LIMIT:
            return  # the accumulator cannot come back through shared memory
        elt = k.a.tensor.type.element_type
        c0 = arith.ConstantOp(IntegerAttr(0, i32))
        a_s = G.AllocSmemOp(G.SmemType((bm, bk), elt, SWIZZLE))
        b_s = G.AllocSmemOp(G.SmemType((bk, bn), elt, SWIZZLE))
        acc0 = G.ToFragmentOp(loop.iter_args[0])
        a_s.result.name_hint, b_s.result.name_hint, c0.result.name_hint = "a_smem", "b_smem", "c0"
        acc0.result.name_hint = loop.iter_args[0].name_hint
        for o in (c0, a_s, b_s, acc0):
            rewriter.insert(o, InsertPoint.before(loop))
        old = loop.body.block
        new = Block(arg_types=[i32, acc0.result.type])
        vmap: dict[SSAValue, SSAValue] = {old.args[0]: new.args[0], old.args[1]: new.args[1]}
        new.args[0].name_hint, new.args[1].name_hint = old.args[0].name_hint, old.args[1].name_hint
        for o in old.ops:
            if o is k.a or o is k.b:
                buf = a_s if o is k.a else b_s
                new.add_op(G.CopyOp(o.tensor, [vmap.get(x, x) for x in o.offsets], buf.result, c0.result))
            elif o is k.matmul:
                w = G.WgmmaOp(a_s.result, c0.result, b_s.result, c0.result, vmap[o.acc])
                new.add_ops([G.WgmmaFenceOp(), w, G.WgmmaCommitOp(), G.WgmmaWaitOp(0)])
                vmap[o.result] = w.result
                w.result.name_hint = o.result.name_hint
            elif isinstance(o, scf.YieldOp):
                new.add_op(scf.YieldOp(vmap[o.operands[0]]))
            else:
                c = o.clone(value_mapper=vmap)
                new.add_op(c)
        new_loop = scf.ForOp(loop.lb, loop.ub, loop.step, [acc0.result], new)
        new_loop.results[0].name_hint = loop.results[0].name_hint
        rewriter.insert(new_loop, InsertPoint.before(loop))
        if store is not None:
            st, chain = store
            rewriter.replace(st, G.StoreFragmentOp(st.tensor, st.offsets, new_loop.results[0]))
            for o in reversed(chain):
                rewriter.erase(o)
            rewriter.erase(loop)
        else:
            back = G.FromFragmentOp(new_loop.results[0])
            rewriter.insert(back, InsertPoint.after(new_loop))
            rewriter.replace(loop, [], [back.result])
        from xdsl.dialects.builtin import i64

        f.attributes[NUM_WARPS_ATTR] = IntegerAttr(warps, i64)


class DowngradeUnpromotedWgmma(RewritePattern):
    """IN: tile.matmul{mma = wgmma...} left in registers  OUT: its register instruction
    (mma.sync / FMA).  Why: wgmma needs shared-memory operands, which only promoted loops have."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: MatmulOp, rewriter: PatternRewriter) -> None:
        if (recorded(op) or "").startswith("wgmma"):
            record(op, register_instruction(op) or "fma.rn.f32")
            rewriter.notify_op_modified(op)


PATTERNS = (PromoteKLoopOperands, DowngradeUnpromotedWgmma)


@dataclass(frozen=True)
class TilePromoteSmemPass(ModulePass):
    """Feed wgmma K loops from shared-memory buffers; re-annotate wgmma matmuls that cannot be."""

    name = "tile-promote-smem"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for pattern in PATTERNS:
            PatternRewriteWalker(pattern(), apply_recursively=False).rewrite_module(op)
