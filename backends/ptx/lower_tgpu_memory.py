"""The sm_90a `tgpu` memory ops (dialects/tgpu/memory.py) as PTX: stage buffers, mbarriers, TMA.

Shared memory.  `tgpu.alloc_smem` / `tgpu.mbarrier_init` get offsets from a bump allocator
over a 1024-byte-aligned base (`smem` rounded up at run time: TMA's 128-byte swizzle and
the GMMA descriptors compute the XOR pattern from absolute address bits).  A buffer of
`!tgpu.smem<RxCxT, swizzle = 128, stages = S>` holds stage s at `s * R*C*sizeof(T)`; a stage
is C*sizeof(T)/128 panels of R rows x 128 B (64 f16 columns), panel p at `p * R * 128`.
The buffers live from their allocation to the end of the pipelined loop; ops that use the
scratch area at `smem + 0` run before `tgpu.mbarrier_init` (which syncs all threads) or
after the loop's final `wgmma_wait` (their own leading bar.sync orders them); a `bar.sync 0`
between a consumer's stage wait and its release is an error (`tgpu.mbarrier_arrive`).

TMA.  Each `tgpu.tma_load` of a tensor argument uses a tensor map passed as a kernel
parameter `.param .align 64 .b8 pI_tmaJ[128]` (`KernelParam` kind "tensormap", role
`("tma", arg, box, swizzle, dtype)`, box innermost first); the launch builds it with
`make_tma_descriptor` (tilec/runtime/launch.py), the simulator with
`SimTensorMap.from_cuda_args` (backends/sim/launch.py).  One copy per panel:

    cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes
        [buf + s*stage + p*panel], [tmap, {c + 64p, r}], [bar + 8s]

(`.4d` with `{c + 64p, r, h, b}` and box [1, 1, R, 64] for a tile of a 4-D tensor's last dims.)

This module also holds the shared-memory allocator state and address helpers that
lower_wgmma.py and lower_tgpu_attention.py build on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tilec import dtypes as dt
from tilec.dialects import tgpu as G

from .emitter import KernelEmitter, KernelParam, Val, lowers


ALIGN = 1024


@dataclass
class SmemRef:
    """A lowered `tgpu.alloc_smem`: offset from the aligned base, and its type."""

    offset: int
    type: G.SmemType


@dataclass
class BarrierRef:
    offset: int
    count: int


@dataclass
class _State:
    top: int = 0
    offsets: dict = field(default_factory=dict)     # defining op -> offset (idempotent under trial emission)
    barriers_at: int | None = None                  # lowest mbarrier offset (the buffers lie below it)
    consumer_from: int | None = None                # PTX line of the last consumer-side mbarrier wait


def _state(em: KernelEmitter) -> _State:
    st = getattr(em, "_tgpu", None)
    if st is None:
        st = em._tgpu = _State()
    return st


def _allocate(em: KernelEmitter, op, nbytes: int, align: int) -> int:
    st = _state(em)
    if op not in st.offsets:
        off = -(-st.top // align) * align
        st.offsets[op] = off
        st.top = off + nbytes
        em.reserve_smem(st.top + ALIGN)
    return st.offsets[op]


def aligned_base(em: KernelEmitter) -> str:
    """`smem` rounded up to 1024 bytes (the swizzle patterns are absolute-address based)."""
    def make():
        r = em.new("r")
        em.ins(f"add.u32 {r}, {em.smem_base}, {ALIGN - 1}")
        em.ins(f"and.b32 {r}, {r}, {-ALIGN & 0xFFFFFFFF}")
        return r
    return em.memo("tgpu_base", make)


def _tid_pred(em: KernelEmitter, mask: int, key: str) -> str:
    """Predicate `(tid & mask) == 0` (thread 0 of the CTA, or of each warpgroup)."""
    def make():
        p = em.new("p")
        if mask == 0xFFFFFFFF:
            em.ins(f"setp.eq.u32 {p}, {em.tid}, 0")
        else:
            r = em.new("r")
            em.ins(f"and.b32 {r}, {em.tid}, {mask}")
            em.ins(f"setp.eq.u32 {p}, {r}, 0")
        return p
    return em.memo(key, make)


def _scalar(em: KernelEmitter, v) -> str:
    return em.get(v).regs[0]


def _stage_addr(em: KernelEmitter, offset: int, stage: str, stride: int) -> str:
    """`aligned base + offset + stage * stride` (u32 shared address)."""
    r = em.new("r")
    em.ins(f"mad.lo.u32 {r}, {stage}, {stride}, {aligned_base(em)}")
    if offset:
        em.ins(f"add.u32 {r}, {r}, {offset}")
    return r


def stage_and_parity(em: KernelEmitter, t: str, S: int) -> tuple[str, str]:
    """(t % S, (t / S) & 1): the ring stage of iteration `t` and the parity its mbarrier wait
    expects (each stage's barrier completes once per trip around the ring)."""
    s, q, ph = em.new("r"), em.new("r"), em.new("r")
    if S & (S - 1) == 0:
        em.ins(f"and.b32 {s}, {t}, {S - 1}")
        em.ins(f"shr.u32 {q}, {t}, {S.bit_length() - 1}")
    else:
        em.ins(f"rem.u32 {s}, {t}, {S}")
        em.ins(f"div.u32 {q}, {t}, {S}")
    em.ins(f"and.b32 {ph}, {q}, 1")
    return s, ph


def wait_parity(em: KernelEmitter, bar: str, parity: str, hint: str = "mbar_wait") -> None:
    """Spin until the mbarrier at shared address `bar` completes the phase of `parity`."""
    p, again = em.new("p"), em.label(hint)
    em.place(again)
    em.ins(f"mbarrier.try_wait.parity.shared::cta.b64 {p}, [{bar}], {parity}")
    em.ins(f"@!{p} bra {again}")


def _bar_addr(em: KernelEmitter, op) -> str:
    bars: BarrierRef = em.get_any(op.barriers)
    return _stage_addr(em, bars.offset, _scalar(em, op.stage), 8)


# ---------------------------------------------------------------------------- memory and barriers


@lowers(G.AllocSmemOp)
def lower_alloc_smem(em: KernelEmitter, op: G.AllocSmemOp) -> None:
    em.require_sm(90, "tgpu.alloc_smem")
    t = op.result.type
    em.set(op.result, SmemRef(_allocate(em, op, t.stage_bytes * t.stages.data, ALIGN), t))


@lowers(G.MBarrierInitOp)
def lower_mbarrier_init(em: KernelEmitter, op: G.MBarrierInitOp) -> None:
    em.require_sm(90, "tgpu.mbarrier_init")
    n = op.result.type.count.data
    off = _allocate(em, op, 8 * n, 8)
    st = _state(em)
    st.barriers_at = off if st.barriers_at is None else min(st.barriers_at, off)
    em.set(op.result, BarrierRef(off, n))
    lead = _tid_pred(em, 0xFFFFFFFF, "tgpu_lead")
    base = aligned_base(em)
    em.ins("fence.proxy.async.shared::cta")      # earlier generic smem writes before TMA overwrites them
    for i in range(n):
        em.ins(f"@{lead} mbarrier.init.shared::cta.b64 [{base}+{off + 8 * i}], {op.arrivals.value.data}")
    em.ins(f"@{lead} fence.mbarrier_init.release.cluster")
    em.bar()


@lowers(G.StageOp)
def lower_stage(em: KernelEmitter, op: G.StageOp) -> None:
    t = em.new("r")
    em.ins(f"sub.u32 {t}, {_scalar(em, op.iv)}, {_scalar(em, op.lb)}")
    s, ph = stage_and_parity(em, t, op.stages.value.data)
    em.set(op.stage, Val(dt.int32, None, [s]))
    em.set(op.phase, Val(dt.int32, None, [ph]))


@lowers(G.ElectOp)
def lower_elect(em: KernelEmitter, op: G.ElectOp) -> None:
    lead = _tid_pred(em, 0xFFFFFFFF, "tgpu_lead")
    skip = em.label("elect_end")
    em.ins(f"@!{lead} bra {skip}")
    em.push_scope()
    em.emit_block(op.body.block)
    em.pop_scope()
    em.place(skip)


@lowers(G.ArriveExpectTxOp)
def lower_arrive_expect_tx(em: KernelEmitter, op: G.ArriveExpectTxOp) -> None:
    em.ins(f"mbarrier.arrive.expect_tx.shared::cta.b64 _, [{_bar_addr(em, op)}], {op.bytes.value.data}")


def _in_elect(op) -> bool:
    p = op.parent_op()
    while p is not None and not isinstance(p, G.ElectOp):
        p = p.parent_op()
    return p is not None


@lowers(G.MBarrierWaitOp)
def lower_mbarrier_wait(em: KernelEmitter, op: G.MBarrierWaitOp) -> None:
    if not _in_elect(op):       # consumers read stage buffers from here to their release
        _state(em).consumer_from = len(em.lines)
    wait_parity(em, _bar_addr(em, op), _scalar(em, op.phase))


@lowers(G.MBarrierArriveOp)
def lower_mbarrier_arrive(em: KernelEmitter, op: G.MBarrierArriveOp) -> None:
    since = _state(em).consumer_from
    if since is not None and any(line == "\tbar.sync 0;" for line in em.lines[since:]):
        # the scratch area at smem + 0 (exchanges, cross-warp reductions) overlaps the stage buffers
        raise em.unsupported("tgpu.mbarrier_arrive", None, "an op between a stage's wait and its release moves "
                             "data through shared memory, which the TMA stage buffers occupy")
    pred = _tid_pred(em, 127, "tgpu_wg_lead")
    if op.pred is not None:
        both = em.new("p")
        em.ins(f"and.pred {both}, {pred}, {_scalar(em, op.pred)}")
        pred = both
    em.ins(f"@{pred} mbarrier.arrive.shared::cta.b64 _, [{_bar_addr(em, op)}]")


def _tensormap(em: KernelEmitter, tensor, box: tuple[int, int], swizzle: int) -> str:
    """The generic address of the tensor map of kernel argument `tensor` with `box` (innermost
    first) and `swizzle`: a kernel parameter, declared on first use."""
    arg = tensor.index
    d = dt.from_ir(tensor.type.element_type)
    role = ("tma", arg, box, swizzle, d.name)
    name = next((p.name for p in em.params if p.role == role), None)
    if name is None:
        name = f"p{arg}_tma{sum(1 for p in em.params if p.kind == 'tensormap' and p.role[1] == arg)}"
        em.params.append(KernelParam(name, "tensormap", role))

    def make():
        r = em.new("rd")
        em.ins(f"mov.u64 {r}, {name}")
        em.ins(f"cvta.param.u64 {r}, {r}")
        return r
    return em.memo(("tmap", name), make)


@lowers(G.TmaLoadOp)
def lower_tma_load(em: KernelEmitter, op: G.TmaLoadOp) -> None:
    em.require_sm(90, "tgpu.tma_load")
    buf: SmemRef = em.get_any(op.buffer)
    t = buf.type
    rank = len(op.offsets)
    box = (t.panel_cols, t.get_shape()[0]) + (1,) * (rank - 2)     # leading dims: one index each
    tmap = _tensormap(em, op.tensor, box, t.swizzle.data)
    offs = [_scalar(em, o) for o in op.offsets]
    row, col, outer = offs[-2], offs[-1], offs[-3::-1]
    stage = _scalar(em, op.stage)
    dst = _stage_addr(em, buf.offset, stage, t.stage_bytes)
    bar = _bar_addr(em, op)
    for p in range(t.get_shape()[1] // t.panel_cols):
        x = col
        if p:
            x = em.new("r")
            em.ins(f"add.s32 {x}, {col}, {p * t.panel_cols}")
        coords = ", ".join([x, row, *outer])
        em.ins(f"cp.async.bulk.tensor.{rank}d.shared::cluster.global.mbarrier::complete_tx::bytes "
               f"[{dst}+{p * t.panel_bytes}], [{tmap}, {{{coords}}}], [{bar}]")


@lowers(G.CopyOp)
def lower_copy(em: KernelEmitter, op: G.CopyOp) -> None:
    raise em.unsupported("tgpu.copy", dt.from_ir(op.buffer.type.element_type),
                         "synchronous global->shared copies are lowered as TMA on mbarriers: run tile-async-copy")
