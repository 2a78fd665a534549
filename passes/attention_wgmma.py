"""tile-attention-wgmma: the flash-attention loop runs both matmuls on wgmma, K and V tiles
arriving by TMA through a multi-stage mbarrier ring, S and O accumulating in registers.

The loop `for start in range(lb, ub, BN)` whose body computes S = q @ k.T (q loaded before
the loop, k a [BN, D] tile of K at `start`), register-only math on S (scale, masks, row
max / sum, exp), then `acc = matmul(p, v, f(acc))` (v a [BN, D] tile of V) becomes:

  * q: one TMA copy into a [BM, D] 128B-swizzled buffer before the loop;
  * k, v: TMA copies into `num-stages`-deep buffer rings (mbarriers `full` / `empty`, one
    elected thread issuing S - 1 iterations ahead, as tile-async-copy does);
  * S = `tgpu.wgmma %q_s, %k_s[s] {b_kmajor}` from a zero accumulator, read back as a tile
    by `tgpu.from_fragment` (free: the tile stays in the wgmma register layout, where the
    softmax math runs in place);
  * acc: a `!tgpu.acc` carried by the loop; `f(acc)` (the rescale by alpha) runs on the
    tile view of it, and `tgpu.wgmma_reg_a %p, %v_s[s], ...` takes P from registers;
  * a `tile.select` on index math (the causal / sequence-end mask) becomes a `tgpu.mask`
    skipped on key tiles where its bounds prove it all-true (passes/index_bounds.py);
  * the epilogue `store(O, ..., f(acc))` becomes a `tgpu.store_fragment` (TMA store).

The loop is renumbered to iterations j = 0 .. cdiv(ub - lb, BN) (`start = lb + j * BN`) so
the ring position is `tgpu.stage %j`.  The kernel runs one warpgroup per 64 rows of q; with
two, `ping-pong=true` adds `tgpu.turn` ops that make them take turns at the tensor cores
(FA3's schedule; slower than the free interleaving without an intra-warpgroup pipeline,
so off by default).

Input invariant:
  - tile-select-mma output (both matmuls recorded as wgmma); q, k, v are `tile.load`s (2-D, or
    4-D with size-1 leading dims and a reshape) of f16 / bf16 `{tile.div16}` tensors, used once.
Output IR:
  - no `tile.matmul` in the loop; TMA loads only inside `tgpu.elect`.

Before:
  %q = tile.load %Q[%r, %c0] : ... -> !tile.tile<128x128xf16>
  %acc1, %l1 = scf.for %start = %c0 to %n step %c64 iter_args(%acc = %z, %l = %l0) -> (...) : i32 {
    %k = tile.load %K[%start, %c0] : ... -> !tile.tile<64x128xf16>
    %kt = tile.permute %k {perm = array<i64: 1, 0>} : ... -> !tile.tile<128x64xf16>
    %s = tile.matmul %q, %kt {mma = "wgmma.m64n64k16.f32.f16.f16"} : ... -> !tile.tile<128x64xf32>
    ... %p = tile.cast %e ... ; %a = tile.mul %acc, %alpha ...
    %v = tile.load %V[%start, %c0] : ... -> !tile.tile<64x128xf16>
    %o = tile.matmul %p, %v, %a {mma = "wgmma.m64n128k16.f32.f16.f16"} : ...
    scf.yield %o, %l2 : ...
After:
  %q_s = tgpu.alloc_smem ... ; tgpu.elect { tma_load %Q -> %q_s } ; tgpu.mbarrier_wait %qbar[%c0]
  scf.for %jp = %c0 to min(2, %iters) { <produce %jp> }     (produce: elect { wait empty; TMA k, v })
  %r:2 = scf.for %j = %c0 to %iters step %c1 iter_args(%acc = %acc0, %l = %l0) -> (!tgpu.acc<128x128xf32>, ...) {
    %s, %ph = tgpu.stage %j, %c0 {stages = 3} ; scf.if %j + 2 < %iters { <produce %j + 2> }
    tgpu.mbarrier_wait %full[%s], %ph ; %a = tgpu.from_fragment %acc
    %sa = tgpu.wgmma %q_s[%c0], %k_s[%s], %zero {b_kmajor} ; ... %st = tgpu.from_fragment %sa
    ... %o = tgpu.wgmma_reg_a %p, %v_s[%s], %a_f ; tgpu.mbarrier_arrive %empty[%s]
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, scf
from xdsl.dialects.builtin import FloatAttr, IntegerAttr, ModuleOp, f32, i32, i64
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, PatternRewriteWalker, RewritePattern, op_type_rewrite_pattern
from xdsl.rewriter import InsertPoint

from tilec import dtypes as dt
from tilec.dialects import tgpu as G
from tilec.dialects import tile as T

from .async_copy import ALIGN_SLACK, BARRIER_BYTES
from .attention_loop import REGISTER_OPS, match_attention_loop
from .index_bounds import prove_all_true
from .ir_queries import NUM_WARPS_ATTR, SMEM_LIMIT, const_int, func_of, is_div16, nuses

SWIZZLE = 128
DEFAULT_STAGES = 3
def _c(value: int) -> arith.ConstantOp:
    return arith.ConstantOp(IntegerAttr(value, i32))


def _bin(kind: str, a: SSAValue, b: SSAValue) -> Operation:
    return T.BINARY_OP_CLASSES[kind](a, b)


def _offset_slice(load: T.LoadOp, body: Block) -> list[Operation]:
    """The scalar ops of `body` the offsets of `load` depend on, in order."""
    need, todo = set(), list(load.offsets)
    while todo:
        v = todo.pop()
        o = v.owner
        if isinstance(o, Operation) and o.parent_block() is body and o not in need:
            need.add(o)
            todo.extend(o.operands)
    return [o for o in body.ops if o in need]


def _skip_full_masks(body: Block) -> None:
    """Each `tile.select` of the body whose condition is index math becomes a `tgpu.mask` that
    skips the mask on key tiles where it is provably all-true (all but the last tile without
    causality, all but the diagonal ones with it)."""
    for sel in [o for o in body.ops if isinstance(o, T.SelectOp)]:
        proof = prove_all_true(sel.cond)
        if proof is None:
            continue
        ops, full = proof
        full.name_hint = "full_tile"
        body.insert_ops_before(ops, sel)
        mask = G.MaskOp(sel.cond, sel.true_value, sel.false_value, full)
        body.insert_op_before(mask, sel)
        mask.result.name_hint = sel.result.name_hint
        sel.result.replace_all_uses_with(mask.result)
        body.erase_op(sel)


def _store_from_registers(view: SSAValue, rewriter: PatternRewriter) -> None:
    """O's epilogue `store(T, offs, cast(reshape(f(O))))` (f: register math such as `/ l`, the
    reshape adding leading 1s, the cast to T's f16 / bf16) becomes `tgpu.store_fragment` of
    f(O), which rounds to T's dtype and stores by TMA: O never goes through the generic
    shared-memory conversion."""
    shape = tuple(view.type.get_shape())
    y, v, drop = view, view, []
    while nuses(v) == 1:
        use = next(iter(v.uses)).operation
        if isinstance(use, REGISTER_OPS) and not drop and tuple(use.results[0].type.get_shape()) == shape \
                and dt.from_ir(use.results[0].type.element_type) is dt.float32 \
                and not isinstance(use, (T.ReduceOp, T.BroadcastOp, T.ReshapeOp, T.CastOp)):
            y = v = use.results[0]
        elif isinstance(use, T.ReshapeOp) and tuple(use.result.type.get_shape())[-2:] == shape \
                and all(d == 1 for d in use.result.type.get_shape()[:-2]):
            drop.append(use)
            v = use.result
        elif isinstance(use, T.CastOp) and dt.from_ir(use.result.type.element_type) in (dt.float16, dt.bfloat16) \
                and not any(isinstance(o, T.CastOp) for o in drop):     # one rounding only (f32 -> f16 -> bf16 is two)
            drop.append(use)
            v = use.result
        else:
            break
    if nuses(v) != 1:
        return
    st = next(iter(v.uses)).operation
    if not isinstance(st, T.StoreOp) or st.mode.data != "store" or st.value is not v or not is_div16(st.tensor) \
            or st.tensor.type.element_type != v.type.element_type or st.tensor.type.rank < 2 \
            or dt.from_ir(v.type.element_type) not in (dt.float32, dt.float16, dt.bfloat16):
        return
    frag = G.ToFragmentOp(y)
    rewriter.insert(frag, InsertPoint.before(st))
    rewriter.replace(st, G.StoreFragmentOp(st.tensor, list(st.offsets), frag.result))
    for o in reversed(drop):
        rewriter.erase(o)


class PipelineAttentionLoop(RewritePattern):
    """IN: the attention scf.for (module docstring)  OUT: q / k / v in swizzled smem by TMA, S and
    O on wgmma in registers, the loop over iterations j with a `num-stages` ring.

        TMA (elected):  [q] [k,v j+S-1 -> ring]        ...
        warpgroups:         wait full[j]; S = q k^T; softmax(S) in registers; O += P v; free[j]
    """

    def __init__(self, num_stages: int, ping_pong: bool = False):
        self.num_stages = num_stages
        self.ping_pong = ping_pong

    @op_type_rewrite_pattern
    def match_and_rewrite(self, loop: scf.ForOp, rewriter: PatternRewriter) -> None:
        m = match_attention_loop(loop)
        if m is None:
            return
        bm, bn, d = m.shape
        f = func_of(loop)
        warps = 4 * bm // 64
        have = f.attributes.get(NUM_WARPS_ATTR)
        if have is not None and have.value.data != warps:
            return
        elt = m.q.tensor.type.element_type
        q_t, kv_t = G.SmemType((bm, d), elt, SWIZZLE), G.SmemType((bn, d), elt, SWIZZLE)
        stage = 2 * kv_t.stage_bytes
        fits = (SMEM_LIMIT - ALIGN_SLACK - q_t.stage_bytes) // (stage + 2 * BARRIER_BYTES)
        S = self.num_stages or min(DEFAULT_STAGES, fits)
        if S < 2 or S > fits:
            return
        before = InsertPoint.before(loop)
        ins = []

        def add(*ops: Operation) -> None:
            ins.extend(ops)

        c0, c1, cs1 = _c(0), _c(1), _c(S - 1)
        q_s, k_s, v_s = G.AllocSmemOp(q_t), G.AllocSmemOp(G.SmemType((bn, d), elt, SWIZZLE, S)), \
            G.AllocSmemOp(G.SmemType((bn, d), elt, SWIZZLE, S))
        q_s.result.name_hint, k_s.result.name_hint, v_s.result.name_hint = "q_smem", "k_smem", "v_smem"
        qbar, full, empty = G.MBarrierInitOp(1, 1), G.MBarrierInitOp(S, 1), G.MBarrierInitOp(S, warps // 4)
        qbar.result.name_hint, full.result.name_hint, empty.result.name_hint = "qbar", "full", "empty"
        add(c0, c1, cs1, q_s, k_s, v_s, qbar, full, empty)
        # q: one TMA copy, waited for by every thread
        add(G.ElectOp(Region(Block([G.ArriveExpectTxOp(qbar.result, c0.result, q_t.stage_bytes),
                                    G.TmaLoadOp(m.q.tensor, list(m.q.offsets), q_s.result, c0.result, qbar.result)]))))
        add(G.MBarrierWaitOp(qbar.result, c0.result, c0.result))
        # iterations: n = cdiv(ub - lb, step)
        span = _bin("sub", loop.ub, loop.lb)
        sm1 = _c(const_int(loop.step) - 1)
        num = _bin("add", span.results[0], sm1.result)
        n = _bin("floordiv", num.results[0], loop.step)
        n.results[0].name_hint = "iters"
        pe = _bin("minimum", cs1.result, n.results[0])
        add(span, sm1, num, n, pe)
        zero_c = arith.ConstantOp(FloatAttr(0.0, f32))
        zero = T.SplatOp(zero_c.result, T.TileType(m.s_mm.result.type.get_shape(), f32))
        s0 = G.ToFragmentOp(zero.result)
        acc0 = G.ToFragmentOp(loop.iter_args[m.acc_index])
        add(zero_c, zero, s0, acc0)
        body = loop.body.block

        def start_of(j: SSAValue) -> list[Operation]:
            mul = _bin("mul", j, loop.step)
            return [mul, _bin("add", loop.lb, mul.results[0])]

        def produce(j: SSAValue) -> list[Operation]:
            st = G.StageOp(j, c0.result, S)
            st.stage.name_hint, st.phase.name_hint = "ps", "pphase"
            flip = _bin("xor", st.phase, c1.result)
            start = start_of(j)
            vmap = {body.args[0]: start[-1].results[0]}
            inner: list[Operation] = [flip, G.MBarrierWaitOp(empty.result, st.stage, flip.results[0]),
                                      G.ArriveExpectTxOp(full.result, st.stage, stage), *start]
            k_ops = _offset_slice(m.k, body)
            for o in k_ops + [o for o in _offset_slice(m.v, body) if o not in k_ops]:
                inner.append(o.clone(value_mapper=vmap))
            for ld, buf in ((m.k, k_s), (m.v, v_s)):
                inner.append(G.TmaLoadOp(ld.tensor, [vmap.get(x, x) for x in ld.offsets], buf.result, st.stage,
                                         full.result))
            return [st, G.ElectOp(Region(Block(inner)))]

        def turn(kind: str) -> list[Operation]:
            return [G.TurnOp(kind)] if self.ping_pong and warps > 4 else []

        add(*turn("start"))
        pro = Block(arg_types=[i32])
        pro.args[0].name_hint = "jp"
        pro.add_ops([*produce(pro.args[0]), scf.YieldOp()])
        add(scf.ForOp(c0.result, pe.results[0], c1.result, [], pro))
        for o in ins:
            rewriter.insert(o, before)

        carried = [acc0.result if i == m.acc_index else v for i, v in enumerate(loop.iter_args)]
        nb = Block(arg_types=[i32, *[v.type for v in carried]])
        j = nb.args[0]
        j.name_hint = "j"
        for a, b in zip(nb.args[1:], body.args[1:]):
            a.name_hint = b.name_hint
        st = G.StageOp(j, c0.result, S)
        st.stage.name_hint, st.phase.name_hint = "stage", "phase"
        start = start_of(j)
        start[-1].results[0].name_hint = body.args[0].name_hint
        acc_view = G.FromFragmentOp(nb.args[1 + m.acc_index])
        # refill the stage iteration j - 1 released first: its loads get a whole iteration to land
        jn = _bin("add", j, cs1.result)
        more = T.CmpOp("lt", jn.results[0], n.results[0])
        jn.results[0].name_hint, more.result.name_hint = "j_next", "more"
        nb.add_ops([st, jn, more, scf.IfOp(more.result, [], [*produce(jn.results[0]), scf.YieldOp()]),
                    G.MBarrierWaitOp(full.result, st.stage, st.phase), *start, acc_view])
        vmap: dict[SSAValue, SSAValue] = {body.args[0]: start[-1].results[0]}
        for a, b in zip(body.args[1:], nb.args[1:]):
            vmap[a] = b
        vmap[body.args[1 + m.acc_index]] = acc_view.result
        for o in body.ops:
            if o is m.s_mm:
                w = G.WgmmaOp(q_s.result, c0.result, k_s.result, st.stage, s0.result, b_kmajor=True)
                view = G.FromFragmentOp(w.result)
                nb.add_ops([*turn("wait"), G.WgmmaFenceOp(), w, G.WgmmaCommitOp(), *turn("pass"), G.WgmmaWaitOp(0),
                            view])
                vmap[o.result] = view.result
                view.result.name_hint = o.result.name_hint
            elif o is m.o_mm:
                a_f = G.ToFragmentOp(vmap[o.acc])
                w = G.WgmmaRegAOp(vmap[o.lhs], v_s.result, st.stage, a_f.result)
                nb.add_ops([a_f, *turn("wait"), G.WgmmaFenceOp(), w, G.WgmmaCommitOp(), *turn("pass"),
                            G.WgmmaWaitOp(0), G.MBarrierArriveOp(empty.result, st.stage)])
                vmap[o.result] = w.result
                w.result.name_hint = o.result.name_hint
            elif isinstance(o, scf.YieldOp):
                nb.add_op(scf.YieldOp(*[vmap.get(x, x) for x in o.operands]))
            elif o not in m.removed:
                nb.add_op(o.clone(value_mapper=vmap))
        _skip_full_masks(nb)
        new_loop = scf.ForOp(c0.result, n.results[0], c1.result, carried, nb)
        for a, b in zip(new_loop.results, loop.results):
            a.name_hint = b.name_hint
        rewriter.insert(new_loop, before)
        back = G.FromFragmentOp(new_loop.results[m.acc_index])
        rewriter.insert(back, InsertPoint.after(new_loop))
        for o in turn("finish"):
            rewriter.insert(o, InsertPoint.after(new_loop))
        results = [back.result if i == m.acc_index else r for i, r in enumerate(new_loop.results)]
        rewriter.replace(loop, [], results)
        _store_from_registers(back.result, rewriter)
        q_view = m.s_mm.lhs.owner
        if q_view is not m.q:
            rewriter.erase(q_view)          # the reshape of the q tile
        rewriter.erase(m.q)
        f.attributes[NUM_WARPS_ATTR] = IntegerAttr(warps, i64)


PATTERNS = (PipelineAttentionLoop,)


@dataclass(frozen=True)
class TileAttentionWgmmaPass(ModulePass):
    """Run flash-attention loops on wgmma with TMA-fed K / V rings (`num-stages`, 0 = default)."""

    name = "tile-attention-wgmma"
    num_stages: int = 0
    #: measured on the H100 (bench/RESULTS.md): turns per matmul cost 8-13% here, since
    #: without an intra-warpgroup pipeline the warpgroups already interleave; off by default
    ping_pong: bool = False

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        pattern = PipelineAttentionLoop(self.num_stages, self.ping_pong)
        PatternRewriteWalker(pattern, apply_recursively=False).rewrite_module(op)
