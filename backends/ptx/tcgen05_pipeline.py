"""K loops of tcgen05 matmuls fed by TMA: a warp-specialised, multi-stage pipeline.

For the canonical K loop whose body is only scalar index math, two `tile.load`s and the
matmul accumulating into the loop-carried tile (resident in TMEM, `lower_tcgen05.py`):

    %r = scf.for %k = %lb to %ub step %s iter_args(%acc = %init) {
      %a = tile.load %A[...] : [BM, BK] f16/bf16      (2-D tensor argument, 16-byte aligned rows,
      %b = tile.load %B[...] : [BK, BN]               zero padding)
      %d = tile.matmul %a, %b, %acc
      scf.yield %d
    }

the loads never reach registers: TMA copies the tiles into `stages` shared-memory buffers
(one mbarrier `full[s]` and one `empty[s]` per stage) and the warps take roles (warp-uniform loops, one elected lane issuing, as CUTLASS does:
it keeps the loops on the uniform datapath; single-thread loops cost ~80 registers in ptxas):

    all threads     accumulator -> TMEM (zeros, or the initial tile); bar.sync
    warp 0          producer: per iteration i (stage s = c % S, c counts every iteration the
                    kernel ran, phase = c / S & 1): wait empty[s] (parity phase ^ 1); one
                    elected lane: mbarrier.arrive.expect_tx full[s]; TMA A and B panels -> stage s
    warp 1          MMA issuer: wait full[s] (parity phase); one elected lane: tcgen05.mma per
                    128-row block, N chunk and K16 step; tcgen05.commit -> empty[s] (frees the
                    stage when the MMAs are done).  After the loop: commit -> the accumulator
                    mbarrier
    all threads     wait for the accumulator mbarrier; tcgen05.ld -> the loop result

Layouts (what TMA writes with a `span`-byte swizzle, span = min(128, inner extent bytes),
in panels of span bytes per row; what the descriptors describe):

    A [BM, BK]  K-major:   panel p (k in [p*span/2, ..)) at p * 128*span, row r at r*span;
                           desc SBO = 8 rows * span, K16 step +32 B inside a panel
    B [BK, BN]  MN-major:  panel q (n in [q*span/2, ..)) at q * BK*span, k-row r at r*span;
                           desc LBO = BK*span (panel stride), SBO = 8*span, K16 step +16*span B

A is given 128 rows per stage even when BM = 64 (the MMA reads 128 rows; rows BM.. are never
written and only feed accumulator rows nobody reads).

kind::f8f6f4 loops (`tcgen05_f8f6f4_tma.py` decides which) use the same roles with both
operands K-major (B given as [N, K]) in 128-element panels: fp4 through the packed
16U4_ALIGN16B tensor-map type (16 elements -> 16 smem bytes), fp8 and fp6 as UINT8, so all are
images of one byte per element, 128B-swizzled, K32 (+32 B) per MMA; fp6 chunks are then packed
in place by warps 2.. (a third barrier ring, `ready[s]`, between them and the MMA warp);
`lower_tcgen05` runs these loops behind a run-time test (tensor alignment and K extent) with
the direct copy as the other branch.  `TILEC_PTX_TCGEN05_TMA=0` keeps such
loops on the register-staged path.  f32 (3xTF32 needs the hi/lo split in registers) stays there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from xdsl.dialects import arith, scf
from xdsl.dialects.builtin import IntegerAttr
from xdsl.ir import BlockArgument

from tilec import dtypes as dt
from tilec.dialects import tile as T

from .descriptors import Sm100InstrDescriptor, Sm100SmemDescriptor, Sm100Swizzle
from .emitter import KernelEmitter, KernelParam, Val, dtype_of
from .lower_tgpu_memory import stage_and_parity, wait_parity
from .tcgen05_layout import SMEM_LIMIT, Geometry

SWIZZLE = {32: Sm100Swizzle.SW32, 64: Sm100Swizzle.SW64, 128: Sm100Swizzle.SW128}
MAX_STAGES = 4
STAGE_BUDGET = 160 * 1024        # bytes of static shared memory for the stage buffers


def enabled() -> bool:
    return os.environ.get("TILEC_PTX_TCGEN05_TMA", "1") != "0"


def _align(x: int, a: int) -> int:
    return (x + a - 1) // a * a


def _span(inner_bytes: int) -> int | None:
    """The swizzle span of a tile whose rows are `inner_bytes` long (TMA box inner extent)."""
    if inner_bytes in (32, 64):
        return inner_bytes
    return 128 if inner_bytes % 128 == 0 else None


@dataclass
class Pipeline:
    """A K loop lowered as a TMA + tcgen05 pipeline (layouts in the module docstring).

    `sources` (kind::f8f6f4 operands, `tcgen05_f8f6f4_tma.py`): the (A, B) `tcgen05_layout.Source`s
    whose loads TMA feeds; both operands are then K-major 1-byte-per-element images (fp8 bytes,
    or fp4 expanded by 16U4_ALIGN16B to 16 elements per 16 bytes) and `guard` the registers the
    kernel tests at run time before taking the pipeline (else the direct copy)."""

    loop: scf.ForOp
    matmul: T.MatmulOp
    a_load: T.LoadOp
    b_load: T.LoadOp
    g: Geometry
    a_span: int
    b_span: int
    stages: int = 2
    index: int = 0           # which pipeline of the kernel (names its buffers)
    sources: tuple | None = None

    @property
    def f8f6f4(self) -> bool:
        return self.sources is not None

    @property
    def esize(self) -> int:
        """Shared-memory bytes per operand element (fp4 / fp6 padded images count 1)."""
        return 1 if self.f8f6f4 else 2

    @property
    def kstep(self) -> int:
        """K per MMA (32 bytes of K in both kinds)."""
        return 32 // self.esize

    @property
    def a_bytes(self) -> int:
        return _align(self.g.K * self.esize * self.g.m_blocks * 128, 1024)

    @property
    def b_bytes(self) -> int:
        return _align(self.g.N * self.g.K * self.esize, 1024)

    @property
    def stage_bytes(self) -> int:
        return self.a_bytes + self.b_bytes

    @property
    def tx_bytes(self) -> int:
        """Transaction bytes of one stage's TMA boxes (BM rows of A, not the padded 128): what
        TMA reads from global memory, so an fp4 operand (16U4_ALIGN16B) counts K / 2 bytes a row
        although it fills K bytes of shared memory (DeepGEMM's sm100 fp8 x fp4 GEMM expects half
        the unpacked smem size for its fp4 operand)."""
        if self.f8f6f4:
            bits = [4 if s.dtype is dt.float4_e2m1fn else 8 for s in self.sources]
            return (self.g.M * bits[0] + self.g.N * bits[1]) * self.g.K // 8
        return (self.g.M * self.g.K + self.g.K * self.g.N) * self.esize

    @property
    def repack(self) -> list[tuple[int, int]]:
        """(stage offset, bytes) of the fp6 operands: TMA brings them one code per byte (UINT8)
        and warps 2.. pack every 16 codes into the first 12 bytes of their 16, in place
        (`tcgen05_f8f6f4_tma.repack_role`); the MMA warp then waits `ready[s]`, not `full[s]`."""
        if not self.f8f6f4:
            return []
        fp6 = (dt.float6_e2m3fn, dt.float6_e3m2fn)
        return [(off, n) for src, off, n in zip(self.sources, (0, self.a_bytes), (self.a_bytes, self.b_bytes))
                if src.dtype in fp6]

    @property
    def ready(self) -> str:
        return f"tc_ready{self.index}"

    @property
    def buf(self) -> str:
        return f"tc_stages{self.index}"

    @property
    def full(self) -> str:
        return f"tc_full{self.index}"

    @property
    def empty(self) -> str:
        return f"tc_empty{self.index}"

    def a_desc(self) -> Sm100SmemDescriptor:
        return Sm100SmemDescriptor.for_smem(0, lbo=16, sbo=8 * self.a_span, swizzle=SWIZZLE[self.a_span])

    def b_desc(self) -> Sm100SmemDescriptor:
        if self.f8f6f4:      # K-major, as A
            return Sm100SmemDescriptor.for_smem(0, lbo=16, sbo=8 * self.b_span, swizzle=SWIZZLE[self.b_span])
        return Sm100SmemDescriptor.for_smem(0, lbo=self.g.K * self.b_span, sbo=8 * self.b_span,
                                            swizzle=SWIZZLE[self.b_span])

    def idesc(self, n: int) -> Sm100InstrDescriptor:
        if self.f8f6f4:
            return Sm100InstrDescriptor.for_mma("f8f6f4", self.g.ab, self.g.bb, "f32", M=128, N=n)
        return Sm100InstrDescriptor.for_mma("f16", self.g.ab, self.g.ab, "f32", M=128, N=n, b_major="MN")

    def a_offset(self, mb: int, ks: int) -> int:
        """Byte offset in the A stage of 128-row block mb, K step ks (32 bytes of K each)."""
        p, within = divmod(ks * 32, self.a_span)
        return p * self.g.m_blocks * 128 * self.a_span + mb * 128 * self.a_span + within

    def b_offset(self, n0: int, ks: int) -> int:
        """Byte offset in the B stage of columns n0.. (a panel boundary), K step ks."""
        if self.f8f6f4:      # K-major panels of 128 k, N rows each
            p, within = divmod(ks * 32, self.b_span)
            return p * self.g.N * self.b_span + n0 * self.b_span + within
        return (n0 * 2 // self.b_span) * self.g.K * self.b_span + ks * 16 * self.b_span

    def panels(self) -> list[tuple]:
        """Per operand (load, rows, K-or-N columns, elements per TMA panel, smem offset, panel
        stride, tensor-map role dtype, guarded): what the producer's TMA copies."""
        g = self.g
        if self.f8f6f4:
            from .tcgen05_f8f6f4_tma import role_dtype

            a, b = self.sources
            return [(self.a_load, g.M, g.K, self.a_span, 0, g.m_blocks * 128 * self.a_span, role_dtype(a), True),
                    (self.b_load, g.N, g.K, self.b_span, self.a_bytes, g.N * self.b_span, role_dtype(b), True)]
        return [(self.a_load, g.M, g.K, self.a_span // 2, 0, g.m_blocks * 128 * self.a_span, None, False),
                (self.b_load, g.K, g.N, self.b_span // 2, self.a_bytes, g.K * self.b_span, None, False)]


def _tensor_arg(load: T.LoadOp, em: KernelEmitter) -> int | None:
    """The kernel-argument index of `load`'s tensor when TMA can read it."""
    t = load.tensor
    if not isinstance(t, BlockArgument) or t.owner is not em.func.body.block:
        return None
    if len(t.type.get_shape()) != 2 or t.index >= len(em.div16) or not em.div16[t.index]:
        return None
    if float(load.padding.value.data) != 0.0:      # TMA fills out-of-bounds elements with zeros
        return None
    return t.index


def match(em: KernelEmitter, loop: scf.ForOp, matmul: T.MatmulOp, g: Geometry) -> Pipeline | None:
    """The pipeline for `loop` whose resident accumulator `matmul` updates, or None."""
    if enabled() and g.sources is not None and len(loop.iter_args) == 1:
        from .tcgen05_f8f6f4_tma import match_f8f6f4

        return match_f8f6f4(em, loop, matmul, g)
    if not enabled() or g.dtype not in (dt.float16, dt.bfloat16) or len(loop.iter_args) != 1:
        return None
    a, b = matmul.lhs.owner, matmul.rhs.owner
    body = loop.body.block
    if not isinstance(a, T.LoadOp) or not isinstance(b, T.LoadOp) or a is b:
        return None
    if a.parent_block() is not body or b.parent_block() is not body:
        return None
    if len(list(a.result.uses)) != 1 or len(list(b.result.uses)) != 1:
        return None
    if _tensor_arg(a, em) is None or _tensor_arg(b, em) is None:
        return None
    for op in body.ops:   # nothing else may touch tiles or memory: only scalar index math
        if op in (a, b, matmul, body.last_op):
            continue
        if op.regions or isinstance(op, (T.StoreOp, T.LoadOp)) or any(
                isinstance(v.type, (T.TileType, T.TensorType)) for v in (*op.operands, *op.results)):
            return None
    a_span, b_span = _span(g.K * 2), _span(g.N * 2)
    if a_span is None or b_span is None or g.M > 256 or g.K > 256:
        return None
    pipe = Pipeline(loop, matmul, a, b, g, a_span, b_span)
    # static stage buffers, leaving the dynamic scratch room for the read-back and the epilogue
    budget = min(STAGE_BUDGET, SMEM_LIMIT - g.M * g.c_stride(em.num_threads) * 4 - 32 * 1024)
    pipe.stages = min(MAX_STAGES, budget // pipe.stage_bytes)
    return pipe if pipe.stages >= 2 else None


# ---------------------------------------------------------------------------- set-up


def declare(em: KernelEmitter, pipe: Pipeline) -> list[str]:
    """Module-scope buffers of `pipe`; returns the barrier-init lines for thread 0."""
    S = pipe.stages
    em.decls.insert(0, f".shared .align 1024 .b8 {pipe.buf}[{S * pipe.stage_bytes}];")  # first: no padding
    em.decls += [f".shared .align 8 .b64 {pipe.full}[{S}];", f".shared .align 8 .b64 {pipe.empty}[{S}];"]
    lines = []
    bars = [(pipe.full, 1), (pipe.empty, 1)]
    if pipe.repack:      # every repacking thread (warps 2..) arrives once per stage
        em.decls.append(f".shared .align 8 .b64 {pipe.ready}[{S}];")
        bars.append((pipe.ready, em.num_threads - 64))
    for name, count in bars:
        base = em.new("r")
        lines.append(f"mov.u32 {base}, {name}")
        lines += [f"mbarrier.init.shared::cta.b64 [{base}+{8 * s}], {count}" for s in range(S)]
    return lines


def _tensormap(em: KernelEmitter, load: T.LoadOp, box: tuple[int, int], span: int, dtype: str | None = None,
               guarded: bool = False) -> str:
    """Generic address of the tensor map of `load`'s tensor (a "tensormap" kernel parameter,
    the ABI of lower_tgpu_memory.py: role ("tma", arg, box innermost first, swizzle, dtype), plus a
    sixth element "k128" for the maps of a run-time guarded kind::f8f6f4 pipeline
    (`tilec.runtime.launch.tma_ready`))."""
    arg = load.tensor.index if guarded else _tensor_arg(load, em)
    role = ("tma", arg, box, span, dtype or dtype_of(load.tensor.type).name)
    if guarded:
        role += ("k128",)
    name = next((p.name for p in em.params if p.role == role), None)
    if name is None:
        name = f"p{arg}_tma{sum(1 for p in em.params if p.kind == 'tensormap' and p.role[1] == arg)}"
        em.params.append(KernelParam(name, "tensormap", role))
    r = em.new("rd")
    em.ins(f"mov.u64 {r}, {name}")
    em.ins(f"cvta.param.u64 {r}, {r}")
    return r


# ---------------------------------------------------------------------------- the loop


def _positive_constant(v) -> bool:
    op = v.owner
    return isinstance(op, arith.ConstantOp) and isinstance(op.value, IntegerAttr) and op.value.value.data > 0


def _stage(em: KernelEmitter, pipe: Pipeline, cnt: str) -> tuple[str, str]:
    """(stage index, phase parity) of the iteration counter `cnt`."""
    return stage_and_parity(em, cnt, pipe.stages)


def _wait(em: KernelEmitter, bar: str, parity: str) -> None:
    wait_parity(em, bar, parity, "tc_pipe_wait")


def _bar_addr(em: KernelEmitter, name: str, s: str) -> str:
    r = em.new("r")
    em.ins(f"mov.u32 {r}, {name}")
    em.ins(f"mad.lo.u32 {r}, {s}, 8, {r}")
    return r


def _role_loop(em: KernelEmitter, pipe: Pipeline, who: str, body, after=None) -> None:
    """`for it in range(lb, ub, step): body(it)`, then `after()`, run by the warp where
    predicate `who` holds (warp-uniform); the other warps go straight past."""
    op = pipe.loop
    lb, ub, step = (em.get(v).regs[0] for v in (op.lb, op.ub, op.step))
    done, head, end = em.label("tc_role_done"), em.label("tc_role_for"), em.label("tc_role_endfor")
    em.ins(f"@!{who} bra {done}")
    em.push_scope()
    it, p = em.new("r"), em.new("p")
    em.ins(f"mov.b32 {it}, {lb}")
    if not _positive_constant(op.step):  # as lower_control.lower_for: a step <= 0 runs no iteration
        em.ins(f"setp.le.s32 {p}, {step}, 0")
        em.ins(f"@{p} bra {end}")
    em.place(head)
    em.ins(f"setp.ge.s32 {p}, {it}, {ub}")
    em.ins(f"@{p} bra {end}")
    em.push_scope()
    body(it)
    em.pop_scope()
    em.ins(f"add.s32 {it}, {it}, {step}")
    em.ins(f"bra {head}")
    em.place(end)
    if after is not None:
        after()
    em.pop_scope()
    em.place(done)


def _producer(em: KernelEmitter, pipe: Pipeline, cnt: str, it: str) -> None:
    body = pipe.loop.body.block
    em.set(body.args[0], Val(dtype_of(body.args[0].type), None, [it]))
    skip = {pipe.a_load, pipe.b_load, pipe.matmul, body.last_op}
    for src in pipe.sources or ():          # kind::f8f6f4: the deferred casts / transposes too
        skip.update(v.owner for v in src.deferred)
    for op in body.ops:   # the scalar index math (every thread's copy of it lives here)
        if op not in skip:
            em.emit_op(op)
    s, ph = _stage(em, pipe, cnt)
    free = em.new("r")
    em.ins(f"xor.b32 {free}, {ph}, 1")
    _wait(em, _bar_addr(em, pipe.empty, s), free)
    full = _bar_addr(em, pipe.full, s)

    def issue():
        em.ins(f"mbarrier.arrive.expect_tx.shared::cta.b64 _, [{full}], {pipe.tx_bytes}")
        base = em.new("r")
        em.ins(f"mov.u32 {base}, {pipe.buf}")
        em.ins(f"mad.lo.u32 {base}, {s}, {pipe.stage_bytes}, {base}")
        for load, rows, cols, pcols, off, panel, dtype, guarded in pipe.panels():
            span = pipe.a_span if load is pipe.a_load else pipe.b_span
            tmap = _tensormap(em, load, (pcols, rows), span, dtype, guarded)
            row, col = (em.get(v).regs[0] for v in load.offsets)
            for q in range(cols // pcols):
                x = col
                if q:
                    x = em.new("r")
                    em.ins(f"add.s32 {x}, {col}, {q * pcols}")
                em.ins(f"cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes "
                       f"[{base}+{off + q * panel}], [{tmap}, {{{x}, {row}}}], [{full}]")
    _elected(em, issue)
    em.ins(f"add.u32 {cnt}, {cnt}, 1")


def _issuer(em: KernelEmitter, pipe: Pipeline, cnt: str, d: str, p_true: str) -> None:
    s, ph = _stage(em, pipe, cnt)
    _wait(em, _bar_addr(em, pipe.ready if pipe.repack else pipe.full, s), ph)
    em.ins("tcgen05.fence::after_thread_sync")

    def issue():
        base = em.new("r")
        em.ins(f"mov.u32 {base}, {pipe.buf}")
        em.ins(f"mad.lo.u32 {base}, {s}, {pipe.stage_bytes}, {base}")
        descs = []
        for desc, off in ((pipe.a_desc(), 0), (pipe.b_desc(), pipe.a_bytes)):
            t, r = em.new("r"), em.new("rd")
            em.ins(f"add.u32 {t}, {base}, {off}")
            em.ins(f"shr.u32 {t}, {t}, 4")
            em.ins(f"and.b32 {t}, {t}, 16383")
            em.ins(f"cvt.u64.u32 {r}, {t}")
            em.ins(f"or.b64 {r}, {r}, {desc.ptx()}")
            descs.append(r)
        g = pipe.g
        for mb in range(g.m_blocks):
            for n0, n in g.n_chunks:
                dcol = em.new("r")
                em.ins(f"add.u32 {dcol}, {d}, {mb * g.N + n0}")
                for ks in range(g.K // pipe.kstep):
                    ra, rb = (_plus(em, r, off) for r, off in zip(descs, (pipe.a_offset(mb, ks), pipe.b_offset(n0, ks))))
                    em.ins(f"tcgen05.mma.cta_group::1.kind::{g.kind} [{dcol}], {ra}, {rb}, {pipe.idesc(n).ptx()}, "
                           f"{p_true}")
        em.ins(f"tcgen05.commit.cta_group::1.mbarrier::arrive::one.shared::cluster.b64 [{_bar_addr(em, pipe.empty, s)}]")
    _elected(em, issue)
    em.ins(f"add.u32 {cnt}, {cnt}, 1")


def _plus(em: KernelEmitter, desc: str, nbytes: int) -> str:
    if not nbytes:
        return desc
    r = em.new("rd")
    em.ins(f"add.s64 {r}, {desc}, {nbytes >> 4}")
    return r


def emit(em: KernelEmitter, pipe: Pipeline, plan, col: int) -> None:
    """The whole loop (TMEM already holds the accumulator's initial value; the caller waits
    for `plan.mbar` and reads the result back): a bar.sync, then the producer and MMA roles."""
    em.comment(f"tcgen05 pipeline {pipe.index}: {pipe.stages} stages of {pipe.stage_bytes} B (A {pipe.a_span}B-swizzled "
               f"K-major, B {pipe.b_span}B-swizzled {'K' if pipe.f8f6f4 else 'MN'}-major); TMA producer = warp 0, "
               f"MMA issuer = warp 1")
    em.comment(f"A smem descriptor {pipe.a_desc()}")
    em.comment(f"B smem descriptor {pipe.b_desc()}")
    for _, n in pipe.g.n_chunks:
        em.comment(f"idesc {pipe.idesc(n)}")
    em.ins("tcgen05.fence::before_thread_sync")
    em.bar()
    cnt = plan.pipe_count[pipe.index]
    producer = em.memo("tc_warp0", lambda: _warp_is(em, 0))
    _role_loop(em, pipe, producer, lambda it: _producer(em, pipe, cnt, it))
    if pipe.repack:      # fp6 operands: warps 2.. pack the one-code-per-byte stage in place
        from .tcgen05_f8f6f4_tma import repack_role

        em.comment(f"fp6 operands at stage offsets {pipe.repack}: warps 2.. pack 16 codes per 16 bytes in place")
        repackers = em.new("p")
        em.ins(f"setp.ge.u32 {repackers}, {em.tid}, 64")
        _role_loop(em, pipe, repackers, lambda it: repack_role(em, pipe, cnt))
    issuer = em.memo("tc_warp1", lambda: _warp_is(em, 1))
    d = em.new("r")
    em.ins(f"add.u32 {d}, {plan.taddr}, {col}")

    def last_commit():
        _elected(em, lambda: em.ins(f"tcgen05.commit.cta_group::1.mbarrier::arrive::one.shared::cluster.b64 "
                                    f"[{plan.mbar}]"))
    _role_loop(em, pipe, issuer, lambda it: _issuer(em, pipe, cnt, d, plan.p_true), last_commit)


def _warp_is(em: KernelEmitter, w: int) -> str:
    """Predicate: this thread is in warp `w`."""
    p, q = em.new("p"), em.new("r")
    em.ins(f"shr.u32 {q}, {em.tid}, 5")
    em.ins(f"setp.eq.u32 {p}, {q}, {w}")
    return p


def _elected(em: KernelEmitter, body) -> None:
    """`body()` by one lane of the (converged) warp: elect.sync, as CUTLASS's elect_one_sync."""
    r, p = em.new("r"), em.new("p")
    skip = em.label("tc_elect")
    em.ins(f"elect.sync {r}|{p}, -1")
    em.ins(f"@!{p} bra {skip}")
    em.push_scope()
    body()
    em.pop_scope()
    em.place(skip)
    em.ins("bar.warp.sync -1")
