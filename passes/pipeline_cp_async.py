"""tile-pipeline-cp-async: sm_80 mma.sync K loops become a cp.async pipeline, accumulating in registers.

The loop's operand tiles go through `num-stages` swizzled shared-memory stages.

For the canonical K loop `acc = matmul(load(A, [r, k*BK]), load(B, [k*BK, c]), acc)` whose
matmul `tile-select-mma` gave `mma.sync`, both loads become `tgpu.cp_async` copies (16-byte
`cp.async.cg` per thread, zero fill outside the tensor) into S-stage buffers, issued S - 1
iterations ahead; each iteration waits for its own stage (`cp.async.wait_group S-2` +
`bar.sync`), starts the copies of iteration k + S - 1 into the stage iteration k - 1 used,
and runs `tgpu.mma_sync` (ldmatrix, ldmatrix.trans for B, mma.sync.m16n8k16) on stage k:

    prologue: copy(lb) commit .. copy(lb + S - 2) commit
    loop k:   wait_group S-2; bar.sync; copy(k + S - 1) commit; mma_sync(stage k)
    after:    wait_group 0; bar.sync; store from the fragments (or convert them to a tile)

The accumulator stays in registers.  When the loop starts from a splat (`ct.zeros`) it is a
`!tgpu.mma_acc` over a 2-D warp grid (`warp_grid`: blocks of up to 64 x 64, 4 or 8 warps), so
each warp reads 1/WN of B's stage and 1/WM of A's per K step; otherwise (or with
`warp-strips=true`) a `!tgpu.acc` of 16-row warp strips (BM / 16 warps, BM in {64, 128}) that
`tgpu.to_fragment` fills from the starting tile.  Loops that do not fit (other dtypes, tensors
without 16-byte aligned rows `{tile.div16}`, column offsets not provably multiples of 8
elements, other tile sizes) keep the register path (`lower_mma.py`).  BK and BN are multiples
of 16 whose rows are 32, 64 or a multiple of 128 bytes (16, 32, 64, 128, 192, 256).

Input invariant:
  - tile-select-mma{target=sm_80} output (matmuls carry `mma = "mma.sync..."`).
Output IR:
  - each matched loop: two `tgpu.cp_async_alloc` buffers, a prologue loop of cp_async +
    commit, the pipelined loop carrying a `!tgpu.mma_acc` (or `!tgpu.acc`), a final
    `tgpu.cp_async_wait`, then `tgpu.mma_acc_store` / `tgpu.store_fragment` for a plain store of
    the result, else a conversion back to a tile; `tgpu.num_warps` on the function.

Before:
  %r = scf.for %k = %c0 to %n step %c1 iter_args(%acc = %zero) -> (!tile.tile<64x64xf32>) : i32 {
    %kk = tile.mul %k, %c32 : i32
    %a = tile.load %A[%i, %kk] : !tile.tensor<?x?xf16> -> !tile.tile<64x32xf16>
    %b = tile.load %B[%kk, %j] : !tile.tensor<?x?xf16> -> !tile.tile<32x64xf16>
    %d = tile.matmul %a, %b, %acc {mma = "mma.sync.m16n8k16.row.col.f32.f16.f16.f32"} : ...
    scf.yield %d : !tile.tile<64x64xf32>
  }
After (num-stages=3; 2x2 warps of 32x32):
  %acc0 = tgpu.mma_acc_init %f0 : f32 -> !tgpu.mma_acc<64x64xf32, warps_m = 2, warps_n = 2>
  %a_s = tgpu.cp_async_alloc : !tgpu.smem<64x32xf16, swizzle = 64, stages = 3>
  scf.for %p = %c0 to %pe step %c1 { scf.if %in { tgpu.cp_async %A[%i, %kk] -> %a_s[%ps] ... } tgpu.cp_async_commit }
  %r = scf.for %k = %c0 to %n step %c1 iter_args(%acc = %acc0) -> (!tgpu.mma_acc<...>) : i32 {
    tgpu.cp_async_wait {pending = 1 : i64}
    scf.if %more { tgpu.cp_async %A[%i, %kn_kk] -> %a_s[%sn] ... } ; tgpu.cp_async_commit
    %d = tgpu.mma_sync %a_s[%stage], %b_s[%stage], %acc : ...
  }
  tgpu.cp_async_wait {pending = 0 : i64} ; tgpu.mma_acc_store %C[%i, %j], %r
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, scf
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, i32, i64
from xdsl.ir import Block, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, PatternRewriteWalker, RewritePattern, op_type_rewrite_pattern
from xdsl.rewriter import InsertPoint

from tilec.dialects import tgpu as G
from tilec.dialects.tile import BINARY_OP_CLASSES, CmpOp, LoadOp, MatmulOp, SplatOp

from .ir_queries import NUM_WARPS_ATTR, func_of, is_div16, is_scalar_pure, match_matmul_k_loop, multiple_of, nuses
from .promote_smem import _store_epilogue

DEFAULT_STAGES = 3
#: the shared memory the stages may take: sm_86 / sm_89 allow 99 KiB per CTA (A100: 163 KiB)
SMEM_BUDGET = 96 * 1024


def swizzle_for(row_bytes: int) -> int | None:
    """The swizzle of a buffer whose rows are `row_bytes` long: 32 / 64 for short rows, else
    128-byte panels; None when ldmatrix could not read it conflict-free."""
    if row_bytes in (32, 64):
        return row_bytes
    return 128 if row_bytes % 128 == 0 else None


def warp_grid(bm: int, bn: int) -> tuple[int, int] | None:
    """The warp grid (WM, WN) of a BM x BN accumulator in registers: warp blocks of up to 64 x 64,
    halved (the longer side first, keeping whole 16 x 16 tiles) until there are 4 or 8 warps."""
    tm, tn = min(64, bm), min(64, bn)
    if bm % tm or bn % tn or tm % 16 or tn % 16:
        return None
    while (bm // tm) * (bn // tn) < 4:
        if tm >= tn and tm % 32 == 0:
            tm //= 2
        elif tn % 32 == 0:
            tn //= 2
        elif tm % 32 == 0:
            tm //= 2
        else:
            return None
    wm, wn = bm // tm, bn // tn
    return (wm, wn) if wm * wn in (4, 8) else None


@dataclass
class MmaKLoop:
    loop: scf.ForOp
    matmul: MatmulOp
    a: LoadOp
    b: LoadOp

    @property
    def shape(self) -> tuple[int, int, int]:
        (bm, bk), (_, bn) = self.a.result.type.get_shape(), self.b.result.type.get_shape()
        return bm, bn, bk


def _operand_load(v: SSAValue, block: Block) -> LoadOp | None:
    o = v.owner
    if isinstance(o, LoadOp) and o.parent_block() is block and nuses(o.result) == 1 and \
            o.padding.value.data == 0.0 and o.tensor.type.rank == 2 and is_div16(o.tensor) and \
            multiple_of(o.offsets[1], 8):
        return o
    return None


def match_mma_k_loop(loop: scf.ForOp) -> MmaKLoop | None:
    """The canonical K loop of an mma.sync matmul in `loop` that the pipeline takes, or None."""
    found = match_matmul_k_loop(loop, "mma.sync", _operand_load)
    if found is None:
        return None
    mm, a, b = found
    k = MmaKLoop(loop, mm, a, b)
    bm, bn, bk = k.shape
    if bk % 16 or bn % 16 or swizzle_for(2 * bk) is None or swizzle_for(2 * bn) is None:
        return None
    if bm not in (64, 128) and (_splat(loop) is None or warp_grid(bm, bn) is None):
        return None
    return k


def _splat(loop: scf.ForOp) -> SplatOp | None:
    """The `tile.splat` the loop's accumulator starts from (then it starts in registers)."""
    o = loop.iter_args[0].owner
    return o if isinstance(o, SplatOp) and o.scalar.type == loop.iter_args[0].type.element_type else None


def _const(value: int) -> arith.ConstantOp:
    return arith.ConstantOp(IntegerAttr(value, i32))


class PipelineMmaKLoop(RewritePattern):
    """IN: scf.for { load A; load B; matmul{mma.sync}; yield }  OUT: cp_async_alloc x2, a
    prologue loop, the pipelined loop over a `!tgpu.acc`, wait_group 0, the epilogue.

        cp.async: [k+2 -> s2] [k+3 -> s0] [k+4 -> s1] ...     (S - 1 iterations ahead)
        mma.sync:       [k: s0]    [k+1: s1]    [k+2: s2] ...  (stage k, registers across k)
    """

    def __init__(self, num_stages: int, strips: bool = False):
        self.num_stages = num_stages
        self.strips = strips

    @op_type_rewrite_pattern
    def match_and_rewrite(self, loop: scf.ForOp, rewriter: PatternRewriter) -> None:
        m = match_mma_k_loop(loop)
        if m is None:
            return
        bm, bn, bk = m.shape
        f = func_of(loop)
        splat, grid = _splat(loop), warp_grid(bm, bn)
        tiled = splat is not None and grid is not None and not self.strips
        if not tiled and bm not in (64, 128):
            return      # warp strips (`!tgpu.acc`) need BM in {64, 128}: the register path
        warps = grid[0] * grid[1] if tiled else bm // 16
        have = f.attributes.get(NUM_WARPS_ATTR)
        if have is not None and have.value.data != warps:
            return
        stage_bytes = 2 * (bm * bk + bk * bn)
        S = max(2, min(self.num_stages or DEFAULT_STAGES, SMEM_BUDGET // stage_bytes))
        elt = m.a.tensor.type.element_type
        before = InsertPoint.before(loop)
        a_s = G.CpAsyncAllocOp(G.SmemType((bm, bk), elt, swizzle_for(2 * bk), S))
        b_s = G.CpAsyncAllocOp(G.SmemType((bk, bn), elt, swizzle_for(2 * bn), S))
        acc_t = loop.iter_args[0].type
        acc0 = G.MmaAccInitOp(splat.scalar, G.MmaAccType(acc_t.get_shape(), acc_t.element_type, grid)) if tiled \
            else G.ToFragmentOp(loop.iter_args[0])
        c1, cs1 = _const(1), _const(S - 1)
        pe = BINARY_OP_CLASSES["add"](loop.lb, cs1.result)
        a_s.result.name_hint, b_s.result.name_hint, pe.result.name_hint = "a_smem", "b_smem", "prologue_end"
        acc0.result.name_hint = "acc0"
        for o in (acc0, a_s, b_s, c1, cs1, pe):  # to_fragment may use scratch smem: before the buffers
            rewriter.insert(o, before)
        bufs = {m.a: a_s.result, m.b: b_s.result}

        def issue(k: SSAValue) -> list[Operation]:
            """The copies of iteration `k` (if it exists) into its stage, then a commit."""
            st = G.StageOp(k, loop.lb, S)
            st.stage.name_hint = "cp_stage"
            live = CmpOp("lt", k, loop.ub)
            inner: list[Operation] = []
            vmap = {loop.body.block.args[0]: k}
            for o in loop.body.block.ops:
                if o in bufs:
                    inner.append(G.CpAsyncOp(o.tensor, [vmap.get(x, x) for x in o.offsets], bufs[o], st.stage))
                elif is_scalar_pure(o):
                    inner.append(o.clone(value_mapper=vmap))
            return [st, live, scf.IfOp(live.result, [], [*inner, scf.YieldOp()]), G.CpAsyncCommitOp()]

        pro = Block(arg_types=[i32])
        pro.args[0].name_hint = "kp"
        pro.add_ops([*issue(pro.args[0]), scf.YieldOp()])
        rewriter.insert(scf.ForOp(loop.lb, pe.result, c1.result, [], pro), before)

        body = Block(arg_types=[i32, acc0.result.type])
        k, acc = body.args
        k.name_hint, acc.name_hint = loop.body.block.args[0].name_hint, loop.body.block.args[1].name_hint
        st = G.StageOp(k, loop.lb, S)
        st.stage.name_hint = "stage"
        kn = BINARY_OP_CLASSES["add"](k, cs1.result)
        kn.result.name_hint = "k_next"
        mma = G.MmaSyncOp(a_s.result, st.stage, b_s.result, st.stage, acc)
        mma.result.name_hint = m.matmul.result.name_hint
        body.add_ops([G.CpAsyncWaitOp(S - 2), st, kn, *issue(kn.result), mma, scf.YieldOp(mma.result)])
        new_loop = scf.ForOp(loop.lb, loop.ub, c1.result, [acc0.result], body)
        new_loop.results[0].name_hint = loop.results[0].name_hint
        rewriter.insert(new_loop, before)
        rewriter.insert(G.CpAsyncWaitOp(0), InsertPoint.after(new_loop))
        store = _store_epilogue(loop.results[0])
        if store is not None:
            stv, chain = store
            kind = G.MmaAccStoreOp if tiled else G.StoreFragmentOp
            rewriter.replace(stv, kind(stv.tensor, stv.offsets, new_loop.results[0]))
            for o in reversed(chain):
                rewriter.erase(o)
            rewriter.erase(loop)
        else:
            back = (G.MmaAccToTileOp if tiled else G.FromFragmentOp)(new_loop.results[0])
            rewriter.insert(back, InsertPoint.after(new_loop.next_op))
            rewriter.replace(loop, [], [back.result])
        f.attributes[NUM_WARPS_ATTR] = IntegerAttr(warps, i64)


PATTERNS = (PipelineMmaKLoop,)


@dataclass(frozen=True)
class TilePipelineCpAsyncPass(ModulePass):
    """Pipeline sm_80 mma.sync K loops through cp.async stage buffers (register accumulator)."""

    name = "tile-pipeline-cp-async"
    num_stages: int = 0
    warp_strips: bool = False     # every accumulator as 16-row warp strips (`!tgpu.acc`), for A/B runs

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.num_stages == 1 or self.num_stages < 0:
            from tilec.errors import CompileError

            raise CompileError(f"num_stages={self.num_stages}: the cp.async pipeline needs at least 2 stages")
        PatternRewriteWalker(PipelineMmaKLoop(self.num_stages, self.warp_strips), apply_recursively=False).rewrite_module(op)
