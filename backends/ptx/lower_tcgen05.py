"""`tile.matmul` on sm_100a 5th-generation tensor cores: `tcgen05.mma`, accumulator in TMEM.

Chosen by `lower_matmul.select_mma` (through `select_tcgen05`) for 2-D f16 / bf16
(kind::f16, K16 steps), f32 (kind::tf32, K8 steps) and float8_e4m3fn / float8_e5m2
(kind::f8f6f4, K32 steps, 1-byte elements; `TILEC_PTX_TCGEN05_FP8=0` or
`tcgen05_layout.FP8_READY = False` keeps them on the FMA lowering) matmuls with an f32 result,
M % 64 == 0, N % 8 == 0, K % 16 (f16) / 8 (tf32) / 32 (fp8) == 0, num_warps % 4 == 0 and room in
TMEM (512 columns) and shared memory (`tcgen05_layout.geometry`).  Anything else keeps
the mma.sync / FMA lowering of `lower_matmul.py`.

fp4 (e2m1) and fp6 (e2m3, e3m2) operands, and fp8 mixed with them or with the other fp8, are
kind::f8f6f4 too (A and B may differ: the idesc carries both type codes) when both operands
are 2-D `tile.load`s used only by the matmul (through `b.T` and exact widening casts, which
is how the front end mixes types): the loads are deferred and the matmul copies the bytes
from global memory into the padded K-major layout itself (`tcgen05_direct.py`: 16 elements
per 16 smem bytes, packed at the start).  An fp4 / fp6 matmul this cannot take is an error
that says why (there is no other fp4 / fp6 matmul lowering).  K loops whose operands
TMA can take (`tcgen05_f8f6f4_tma.py`) run the TMA pipeline instead when a run-time test of
the tensors passes, the direct-copy loop otherwise (`_guarded_pipeline`).

Per kernel (`plan_kernel`, an emitter KERNEL_HOOK): warp 0 allocates the TMEM columns of
every tcgen05 matmul once (a power of two >= 32) and relinquishes the permit; thread 0
inits one mbarrier; at the kernel's exit all threads meet at a bar.sync and warp 0 frees
the columns.  A matmul's accumulator D occupies TMEM lanes 0..127 (row m of an M = 128
block in lane m) and N columns per 128-row block; M = 64 tiles are padded to 128 rows.

Per matmul (`lower_matmul_tcgen05`; data movement in `tcgen05_moves.py`, layouts and
descriptors in `tcgen05_layout.py`):

    bar.sync
    A   -> smem[0..), B^T -> smem[offB..)       K-major, no swizzle
    [acc -> smem -> tcgen05.st -> TMEM]          (an accumulator that is not zero)
    fence.proxy.async.shared::cta;  tcgen05.fence::before_thread_sync;  bar.sync
    thread 0: tcgen05.fence::after_thread_sync
              per 128-row block, per N chunk <= 256, per K step (x3 for 3xTF32):
                tcgen05.mma.cta_group::1.kind::f16 [d], adesc + 16*ks, bdesc + 16*ks, idesc, p
              tcgen05.commit.cta_group::1.mbarrier::arrive::one.shared::cluster.b64 [mbar]
    all: mbarrier.try_wait.parity on the phase register (flipped after each wait)
         tcgen05.fence::after_thread_sync
         tcgen05.ld (warp w: lanes 32*(w%4)..) -> smem -> blocked registers

`p` (enable-input-d) is false for the first K step when the accumulator is zero.  f32
inputs run as 3xTF32 by default (D += hi*hi + hi*lo + lo*hi, about f32 accuracy);
`TILEC_PTX_TF32=1` issues one kind::tf32 product (10-bit mantissas), `TILEC_PTX_TCGEN05=0`
turns the lowering off.

Accumulators resident in TMEM across a K loop: when a loop-carried tile's only use is the
`acc` of a tcgen05 matmul directly in the loop body, whose result is only yielded back,
the accumulator never leaves TMEM inside the loop: `lower_for_tcgen05` (registered for
`scf.for` over `lower_control.lower_for`, which it calls) zero-fills (or `tcgen05.st`s
the initial value into) its columns before the loop, the matmul issues MMAs with
enable-input-d and hands the loop its carried registers back unchanged (so `scf.yield`
copies nothing), and the loop result is read back once after the loop.

TMA-fed K loops: when such a loop's body is only index math, the two `tile.load`s of 16-byte
aligned 2-D tensors feeding an f16/bf16 matmul, and the matmul, the loop runs as the
warp-specialised pipeline of `tcgen05_pipeline.py` instead (TMA into swizzled stage buffers,
warp 0 producing, warp 1 issuing the MMAs, `TILEC_PTX_TCGEN05_TMA=0` turns it off).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xdsl.dialects import arith, scf
from xdsl.dialects.builtin import FloatAttr, IntegerAttr
from xdsl.ir import Block, BlockArgument, SSAValue

from tilec.dialects import tile as T

from . import lower_control, tcgen05_pipeline
from .emitter import KERNEL_HOOKS, KernelEmitter, dtype_of, lowers
from .tcgen05_layout import (LBO, SMEM_LIMIT, SUBBYTE_KINDS, TMEM_COLS, Geometry, Operand, enabled, fp8_enabled,
                             geometry)
from .tcgen05_moves import read_back, smem_to_tmem, stage_operand, store_c, zero_tmem


# ---------------------------------------------------------------------------- kernel plan


@dataclass
class Resident:
    """A loop-carried accumulator kept in TMEM for the whole loop."""

    loop: scf.ForOp
    index: int               # position among the loop's iter_args / results
    matmul: T.MatmulOp


@dataclass
class Plan:
    """Per kernel: the tcgen05 matmuls, their TMEM columns, and the shared registers."""

    geometry: dict[T.MatmulOp, Geometry] = field(default_factory=dict)
    column: dict[T.MatmulOp, int] = field(default_factory=dict)
    resident: dict[T.MatmulOp, Resident] = field(default_factory=dict)
    pipelines: dict[scf.ForOp, tcgen05_pipeline.Pipeline] = field(default_factory=dict)
    pipe_count: list[str] = field(default_factory=list)   # per pipeline: iterations run so far
    ncols: int = 0
    taddr: str = ""           # TMEM base address (from tcgen05.alloc)
    taddr_q: str = ""         # plus this warp's lane quarter << 16
    mbar: str = ""            # shared address of the mbarrier
    phase: str = ""           # parity of the mbarrier phase to wait for next
    p_false: str = ""
    p_true: str = ""

    def loop_residents(self, loop: scf.ForOp) -> list[Resident]:
        return sorted((r for r in self.resident.values() if r.loop is loop), key=lambda r: r.index)


def _is_zero(v: SSAValue) -> bool:
    """`v` is a splat of the constant 0."""
    op = v.owner
    if not isinstance(op, T.SplatOp):
        return False
    c = op.scalar.owner
    if not isinstance(c, arith.ConstantOp):
        return False
    val = c.value
    if isinstance(val, FloatAttr):
        return float(val.value.data) == 0.0
    return isinstance(val, IntegerAttr) and val.value.data == 0


def _resident(op: T.MatmulOp) -> Resident | None:
    """The loop whose carried tile `op` accumulates into, when nothing else touches it."""
    acc = op.acc
    if not isinstance(acc, BlockArgument) or not isinstance(acc.owner, Block):
        return None
    loop = acc.owner.parent_op()
    if not isinstance(loop, scf.ForOp) or op.parent_block() is not acc.owner or acc.index == 0:
        return None
    uses = list(op.result.uses)
    term = acc.owner.last_op
    if len(list(acc.uses)) != 1 or len(uses) != 1 or uses[0].operation is not term:
        return None
    if uses[0].index != acc.index - 1:
        return None
    return Resident(loop, acc.index - 1, op)


def plan_kernel(em: KernelEmitter) -> None:
    """KERNEL_HOOK: pick the tcgen05 matmuls, give them TMEM columns, emit the set-up."""
    em.tcgen05 = None
    em.tc_deferred = set()
    if em.target != "sm_100a" or not enabled():
        return
    from . import tcgen05_direct  # noqa: F401  (defers the loads of direct kind::f8f6f4 operands)
    plan = Plan()
    shared_cols = 0
    resident_cols = 0
    for op in em.func.walk():
        if not isinstance(op, T.MatmulOp):
            continue
        g = geometry(op, em.num_warps)
        if g is None:
            _no_subbyte_fallback(em, op, "its operands are not 2-D tiles loaded (and at most cast exactly or "
                                 "transposed) right before it, or M % 64, N % 8, K % 32, num_warps % 4 fail")
            continue
        res = _resident(op)
        if res is not None and resident_cols + g.cols + shared_cols <= TMEM_COLS:
            plan.column[op] = resident_cols
            resident_cols += g.cols
            plan.resident[op] = res
        elif resident_cols + max(shared_cols, g.cols) <= TMEM_COLS:
            shared_cols = max(shared_cols, g.cols)
            plan.column[op] = -1          # the shared region, placed after the resident ones
        else:
            _no_subbyte_fallback(em, op, f"its {g.cols} TMEM columns do not fit next to the kernel's other "
                                 f"tcgen05 accumulators")
            continue
        plan.geometry[op] = g
        for src in g.sources or ():
            em.tc_deferred.update(src.deferred)
    if not plan.geometry:
        return
    for op, c in plan.column.items():
        if c < 0:
            plan.column[op] = resident_cols
    for op, r in plan.resident.items():   # K loops whose operands TMA can feed
        pipe = tcgen05_pipeline.match(em, r.loop, op, plan.geometry[op])
        if pipe is not None:
            pipe.index = len(plan.pipelines)
            plan.pipelines[r.loop] = pipe
    total = resident_cols + shared_cols
    plan.ncols = max(32, 1 << (total - 1).bit_length())
    em.tcgen05 = plan
    _emit_setup(em, plan)


KERNEL_HOOKS.append(plan_kernel)


def _no_subbyte_fallback(em: KernelEmitter, op: T.MatmulOp, why: str) -> None:
    """fp4 / fp6 matmuls have no lowering but tcgen05 kind::f8f6f4: say why it did not apply."""
    def source_dtype(v):   # the front end promotes mixed pairs with a cast (e2m1 x e5m2 -> f16 x f16)
        while isinstance(v.owner, T.CastOp):
            v = v.owner.operands[0]
        return dtype_of(v.type)

    d = next((x for x in map(source_dtype, (op.lhs, op.rhs)) if x in SUBBYTE_KINDS), None)
    if d is None:
        return
    if not fp8_enabled():
        why = "TILEC_PTX_TCGEN05_FP8=0 turns kind::f8f6f4 off"
    prev, em.current_op = em.current_op, op
    try:
        raise em.unsupported("tile.matmul", d, f"only tcgen05.mma kind::f8f6f4 multiplies fp4 / fp6 tiles, and "
                             f"{why}")
    finally:
        em.current_op = prev


def _emit_setup(em: KernelEmitter, plan: Plan) -> None:
    em.decls += [".shared .align 8 .b64 tc_mbar;", ".shared .align 4 .b32 tc_tmem_slot;"]
    em.comment(f"tcgen05: {len(plan.geometry)} matmul(s), {len(plan.resident)} accumulator(s) resident "
               f"in TMEM, {len(plan.pipelines)} TMA pipeline(s); warp 0 allocates {plan.ncols} TMEM columns")
    tid = em.tid
    slot, plan.mbar = em.new("r"), em.new("r")
    em.ins(f"mov.u32 {slot}, tc_tmem_slot")
    em.ins(f"mov.u32 {plan.mbar}, tc_mbar")
    not_w0, not_t0 = _not_warp0(em), _not_thread0(em)
    skip = em.label("tc_alloc_done")
    em.ins(f"@{not_w0} bra {skip}")
    em.ins(f"tcgen05.alloc.cta_group::1.sync.aligned.shared::cta.b32 [{slot}], {plan.ncols}")
    em.ins("tcgen05.relinquish_alloc_permit.cta_group::1.sync.aligned")
    em.place(skip)
    skip = em.label("tc_init_done")
    em.ins(f"@{not_t0} bra {skip}")
    em.ins(f"mbarrier.init.shared::cta.b64 [{plan.mbar}], 1")
    for pipe in plan.pipelines.values():
        for line in tcgen05_pipeline.declare(em, pipe):
            em.ins(line)
    em.ins("fence.mbarrier_init.release.cluster")
    em.place(skip)
    for _ in plan.pipelines:
        plan.pipe_count.append(em.new("r"))
        em.ins(f"mov.b32 {plan.pipe_count[-1]}, 0")
    em.ins("tcgen05.fence::before_thread_sync")
    em.bar()
    em.ins("tcgen05.fence::after_thread_sync")
    plan.taddr, plan.taddr_q, q = em.new("r"), em.new("r"), em.new("r")
    em.ins(f"ld.shared.u32 {plan.taddr}, [{slot}]")
    em.ins(f"and.b32 {q}, {tid}, 96")           # 32 * (warp % 4): this warp's TMEM lane quarter
    em.ins(f"shl.b32 {q}, {q}, 16")
    em.ins(f"add.u32 {plan.taddr_q}, {plan.taddr}, {q}")
    plan.phase = em.new("r")
    em.ins(f"mov.b32 {plan.phase}, 0")
    plan.p_false, plan.p_true = em.new("p"), em.new("p")
    em.ins(f"setp.ne.u32 {plan.p_false}, 0, 0")
    em.ins(f"setp.eq.u32 {plan.p_true}, 0, 0")

    def teardown():
        static = 16 + sum(p.stages * (p.stage_bytes + (24 if p.repack else 16)) for p in plan.pipelines.values())
        if static + em.smem_bytes > SMEM_LIMIT + 64:
            raise em.unsupported(
                "tcgen05 matmul", None, f"{static} B of TMA stage buffers and barriers plus {em.smem_bytes} B of "
                f"scratch exceed the {SMEM_LIMIT + 64} B of shared memory a CTA may use; use smaller tiles or "
                f"TILEC_PTX_TCGEN05_TMA=0")
        em.comment("tcgen05: free the TMEM columns (every thread gets here)")
        em.ins("tcgen05.fence::before_thread_sync")
        em.bar()
        done = em.label("tc_dealloc_done")
        em.ins(f"@{not_w0} bra {done}")
        em.ins("tcgen05.fence::after_thread_sync")
        em.ins(f"tcgen05.dealloc.cta_group::1.sync.aligned.b32 {plan.taddr}, {plan.ncols}")
        em.place(done)
    em.at_exit(teardown)


def _not_warp0(em: KernelEmitter) -> str:
    def make():
        p = em.new("p")
        em.ins(f"setp.ge.u32 {p}, {em.tid}, 32")
        return p
    return em.memo("tc_not_warp0", make)


def _not_thread0(em: KernelEmitter) -> str:
    def make():
        p = em.new("p")
        em.ins(f"setp.ne.u32 {p}, {em.tid}, 0")
        return p
    return em.memo("tc_not_thread0", make)


def select_tcgen05(em: KernelEmitter, op: T.MatmulOp) -> str | None:
    """"tcgen05.mma.kind::<kind>" when the kernel plan put `op` on the 5th-gen tensor cores."""
    plan = getattr(em, "tcgen05", None)
    if plan is None or op not in plan.geometry:
        return None
    return f"tcgen05.mma.kind::{plan.geometry[op].kind}"


# ---------------------------------------------------------------------------- the matmul


def lower_matmul_tcgen05(em: KernelEmitter, op: T.MatmulOp) -> None:
    plan: Plan = em.tcgen05
    g = plan.geometry[op]
    col = plan.column[op]
    resident = op in plan.resident
    acc_zero = op.acc is None or _is_zero(op.acc)
    acc_in = not resident and not acc_zero
    A, B, off_c = g.operands()
    em.reserve_smem(g.smem_bytes(em.num_threads, acc_in))
    em.comment(f"tcgen05 matmul {g.M}x{g.N}x{g.K} {g.ab}{'' if g.bb == g.ab else ' x ' + g.bb}"
               f"{' (3xTF32)' if g.split else ''}: TMEM columns "
               f"[{col}, {col + g.cols}){', accumulator resident in TMEM' if resident else ''}")

    em.bar()
    if g.sources is not None:    # fp4 / fp6 / mixed kind::f8f6f4: global -> padded smem (tcgen05_direct.py)
        from .tcgen05_direct import stage

        em.comment(f"kind::f8f6f4 A {g.ab} x B {g.bb}: operands copied from global memory")
        for src, v, o, rows in zip(g.sources, (op.lhs, op.rhs), (A[0], B[0]), (g.M, g.N)):
            stage(em, src, em.get_any(v).regs, o, rows)
    else:
        stage_operand(em, em.get(op.lhs), A, transpose=False, split=g.split)
        stage_operand(em, em.get(op.rhs), B, transpose=True, split=g.split)
    if acc_in:
        store_c(em, em.get(op.acc), g, off_c)
    em.ins("fence.proxy.async.shared::cta")
    em.ins("tcgen05.fence::before_thread_sync")
    em.bar()
    if acc_in:
        smem_to_tmem(em, g, plan.taddr_q, col, off_c)
        em.ins("tcgen05.fence::before_thread_sync")
        em.bar()
    _issue(em, g, col, A, B, first_overwrites=acc_zero and not resident)
    _wait_mma(em)
    if resident:  # the loop result is read once after the loop (lower_for_tcgen05)
        em.set(op.result, em.get(op.acc))
        return
    em.set(op.result, read_back(em, g, plan.taddr_q, col, em.layout_of(op.result.type)))


def _issue(em: KernelEmitter, g: Geometry, col: int, A: list[Operand], B: list[Operand],
           first_overwrites: bool) -> None:
    """Thread 0 issues every MMA of the matmul and commits them to the mbarrier."""
    plan: Plan = em.tcgen05
    skip = em.label("tc_issued")
    em.ins(f"@{_not_thread0(em)} bra {skip}")
    em.push_scope()
    em.ins("tcgen05.fence::after_thread_sync")
    adesc = [_desc_reg(em, o, "A") for o in A]
    bdesc = [_desc_reg(em, o, "B") for o in B]
    # 3xTF32: hi*hi + hi*lo + lo*hi;  otherwise one product
    pairs = [(0, 0), (0, 1), (1, 0)] if g.split else [(0, 0)]
    steps = g.K // g.kstep
    for mb in range(g.m_blocks):
        for n0, n in g.n_chunks:
            idesc = g.idesc(n)
            em.comment(f"idesc {idesc}")
            d = em.new("r")
            em.ins(f"add.u32 {d}, {plan.taddr}, {col + mb * g.N + n0}")
            first = first_overwrites
            for ks in range(steps):
                for ia, ib in pairs:
                    a_off = (mb * 128 // 8) * A[ia].sbo + ks * 2 * LBO
                    b_off = (n0 // 8) * B[ib].sbo + ks * 2 * LBO
                    ra = _desc_plus(em, adesc[ia], a_off)
                    rb = _desc_plus(em, bdesc[ib], b_off)
                    en = plan.p_false if first else plan.p_true
                    first = False
                    em.ins(f"tcgen05.mma.cta_group::1.kind::{g.kind} [{d}], {ra}, {rb}, {idesc.ptx()}, {en}")
    em.ins(f"tcgen05.commit.cta_group::1.mbarrier::arrive::one.shared::cluster.b64 [{plan.mbar}]")
    em.pop_scope()
    em.place(skip)


def _desc_reg(em: KernelEmitter, o: Operand, what: str) -> str:
    """64-bit smem descriptor of operand `o`: the constant fields or-ed with (address >> 4)."""
    desc = o.descriptor()
    em.comment(f"{what} smem descriptor {desc}")
    t, r = em.new("r"), em.new("rd")
    em.ins(f"add.u32 {t}, {em.smem_base}, {o.offset}")
    em.ins(f"shr.u32 {t}, {t}, 4")
    em.ins(f"and.b32 {t}, {t}, 16383")
    em.ins(f"cvt.u64.u32 {r}, {t}")
    em.ins(f"or.b64 {r}, {r}, {desc.ptx()}")
    return r


def _desc_plus(em: KernelEmitter, desc: str, nbytes: int) -> str:
    if nbytes == 0:
        return desc
    r = em.new("rd")
    em.ins(f"add.s64 {r}, {desc}, {nbytes >> 4}")
    return r


def _wait_mma(em: KernelEmitter) -> None:
    """Every thread waits for the committed MMAs (the mbarrier's current phase), then flips
    the phase parity.  The warps reconverge (bar.warp.sync) after the issuing thread's branch
    and the spin loop, before the .sync.aligned TMEM accesses and bar.syncs that follow."""
    plan: Plan = em.tcgen05
    head = em.label("tc_wait")
    p = em.new("p")
    em.place(head)
    em.ins(f"mbarrier.try_wait.parity.shared::cta.b64 {p}, [{plan.mbar}], {plan.phase}")
    em.ins(f"@!{p} bra {head}")
    em.ins("bar.warp.sync -1")
    em.ins(f"xor.b32 {plan.phase}, {plan.phase}, 1")
    em.ins("tcgen05.fence::after_thread_sync")


# ---------------------------------------------------------------------------- K loops


@lowers(scf.ForOp)
def lower_for_tcgen05(em: KernelEmitter, op: scf.ForOp) -> None:
    """`lower_control.lower_for`, with the loop's TMEM-resident accumulators (if any) put in
    TMEM before the loop and read back after it; a loop TMA can feed runs as the pipeline of
    `tcgen05_pipeline.py` instead."""
    plan: Plan | None = getattr(em, "tcgen05", None)
    residents = plan.loop_residents(op) if plan is not None else []
    for r in residents:
        g, col = plan.geometry[r.matmul], plan.column[r.matmul]
        init = op.iter_args[r.index]
        em.comment(f"tcgen05: loop-carried accumulator #{r.index} enters TMEM columns [{col}, {col + g.cols})")
        if _is_zero(init):
            zero_tmem(em, g, plan.taddr_q, col)
            em.ins("tcgen05.fence::before_thread_sync")
        else:
            _, _, off_c = g.operands()
            em.reserve_smem(g.smem_bytes(em.num_threads, True))
            em.bar()
            store_c(em, em.get(init), g, off_c)
            em.bar()
            smem_to_tmem(em, g, plan.taddr_q, col, off_c)
            em.ins("tcgen05.fence::before_thread_sync")
    pipe = plan.pipelines.get(op) if plan is not None else None
    if pipe is None:
        lower_control.lower_for(em, op)
    elif not pipe.f8f6f4:
        tcgen05_pipeline.emit(em, pipe, plan, plan.column[pipe.matmul])
        _wait_mma(em)
    else:
        _guarded_pipeline(em, op, pipe, plan)
    for r in residents:
        g, col = plan.geometry[r.matmul], plan.column[r.matmul]
        em.comment(f"tcgen05: loop result #{r.index} leaves TMEM")
        em.bar()
        em.set(op.results[r.index], read_back(em, g, plan.taddr_q, col, em.layout_of(op.results[r.index].type)))


def _guarded_pipeline(em: KernelEmitter, op: scf.ForOp, pipe, plan: Plan) -> None:
    """A kind::f8f6f4 K loop whose operands TMA feeds when the launch allows it
    (`tcgen05_f8f6f4_tma.guard`: 32-byte aligned bases, K extents multiples of 128), else the
    same loop with the direct copy; the accumulator stays in TMEM either way."""
    from .tcgen05_f8f6f4_tma import guard

    ok = guard(em, pipe)
    direct, done = em.label("tc_direct_loop"), em.label("tc_loop_done")
    em.comment("kind::f8f6f4 operands by TMA when every tensor is 32-byte aligned with K % 128 == 0")
    em.ins(f"@!{ok} bra {direct}")
    em.push_scope()
    tcgen05_pipeline.emit(em, pipe, plan, plan.column[pipe.matmul])
    _wait_mma(em)
    em.pop_scope()
    em.ins(f"bra {done}")
    em.place(direct)
    em.comment("kind::f8f6f4 fallback: operands copied from global memory by the matmul")
    em.push_scope()
    lower_control.lower_for(em, op)
    em.pop_scope()
    em.place(done)
