"""The `tgpu` fragment and wgmma ops (dialects/tgpu/wgmma.py) as sm_90a PTX: accumulator
fragments, `wgmma.mma_async` on shared-memory descriptors or A in registers, epilogues.

Shared memory and TMA are lowered in lower_tgpu_memory.py, whose allocator and address
helpers this module uses.

wgmma.  Warpgroup w = tid / 128 issues, per K16 step j, `wgmma.mma_async.m64nNk16` with
A = rows 64w.. of the A stage (K-major SW128: LBO 16 B, SBO 1024 B, +32 B per step in a
panel) and B = the whole B stage (MN-major SW128, transpose-b = 1: LBO = the panel stride
R*128 B along N, SBO = 1024 B = 8 K rows, +2048 B per step).  The accumulator registers
are updated in place (`!tgpu.acc` values in the `layout.Mma` register layout).  With
`b_kmajor` the B stage is an [N, K] tile read like A (K-major SW128, transpose-b = 0).
`tgpu.wgmma_reg_a` takes A from registers: a tile in the `Mma` layout of [M, K], each
thread's f32 pairs (4i..4i+3 = rows g, g+8 of columns 8i + 2(t%4) + 0/1) packed to f16x2
are the A fragment of K16 step i/2 (PTX ISA wgmma register fragments).

The epilogue `tgpu.store_fragment` writes each thread's fragment pairs straight to global
memory: `st.global.v2.f32` / packed `cvt.rn.{f16,bf16}x2.f32` + `st.global.b32` when the
whole tile is in bounds and aligned (one uniform test), else per-element predicated stores;
to a `{tile.div16}` tensor (any rank 2..5) through a swizzled staging tile and TMA stores.
"""

from __future__ import annotations

from tilec import dtypes as dt
from tilec.dialects import tgpu as G

from . import numerics as N
from .descriptors import Sm90SmemDescriptor, Sm90Swizzle
from .emitter import KernelEmitter, Val, lowers
from .layout import Mma
from .lower_tgpu_memory import ALIGN, SmemRef, _scalar, _stage_addr, _state, _tensormap, _tid_pred, aligned_base


#: MN-major SW128 B operand: LBO holds the stride between 64-column panels along N and SBO
#: the stride between 8-row groups along K (CUTLASS make_gmma_desc<Major::MN>).
MN_LBO_IS_PANEL_STRIDE = True
_TYPES = {dt.float16: "f16", dt.bfloat16: "bf16"}


# ---------------------------------------------------------------------------- accumulators


def _frag_coords(em: KernelEmitter) -> tuple[str, str]:
    """(row, column) of this thread's register 0 in a fragment: 16*(tid/32) + lane/4, 2*(lane%4)."""
    from .exchange import mma_base

    return mma_base(em)


def _frag_smem(em: KernelEmitter, n: int) -> str:
    """smem address of this thread's fragment register 0 in a row-major f32 [M, n] tile at smem + 0."""
    row, col = _frag_coords(em)
    r = em.new("r")
    em.ins(f"mad.lo.u32 {r}, {row}, {n}, {col}")
    em.ins(f"mad.lo.u32 {r}, {r}, 4, {em.smem_base}")
    return r


@lowers(G.ToFragmentOp)
def lower_to_fragment(em: KernelEmitter, op: G.ToFragmentOp) -> None:
    m, n = op.result.type.get_shape()
    lay = Mma((m, n), em.num_threads)
    src = em.get_any(op.source)
    if src.uniform:
        em.set(op.result, Val(dt.float32, lay, [src.regs[0]] * lay.num_slots, True))
        return
    if src.layout == lay:           # already in the accumulator's registers
        em.set(op.result, Val(dt.float32, lay, list(src.regs)))
        return
    src = em.get(op.source)
    from .exchange import store_tile

    em.reserve_smem(m * n * 4)
    em.bar()
    store_tile(em, src, 0)
    em.bar()
    base = _frag_smem(em, n)
    regs = [em.new("f") for _ in range(lay.num_slots)]
    for i in range(n // 8):
        for h in (0, 1):
            em.ins(f"ld.shared.v2.f32 {{{regs[4 * i + 2 * h]}, {regs[4 * i + 2 * h + 1]}}}, "
                   f"[{base}+{(8 * h * n + 8 * i) * 4}]")
    em.set(op.result, Val(dt.float32, lay, regs))


@lowers(G.FromFragmentOp)
def lower_from_fragment(em: KernelEmitter, op: G.FromFragmentOp) -> None:
    """Free: the tile keeps the accumulator's registers in the `layout.Mma` layout, where
    elementwise ops and row reductions work in place; other consumers convert it
    (`KernelEmitter.get`)."""
    frag = em.get_any(op.source)
    lay = Mma(tuple(op.source.type.get_shape()), em.num_threads)
    em.set(op.result, Val(dt.float32, lay, list(frag.regs), frag.uniform))


# ---------------------------------------------------------------------------- wgmma


@lowers(G.WgmmaFenceOp)
def lower_wgmma_fence(em: KernelEmitter, op) -> None:
    em.require_sm(90, "tgpu.wgmma_fence")
    em.ins("wgmma.fence.sync.aligned")


@lowers(G.WgmmaCommitOp)
def lower_wgmma_commit(em: KernelEmitter, op) -> None:
    em.ins("wgmma.commit_group.sync.aligned")


@lowers(G.WgmmaWaitOp)
def lower_wgmma_wait(em: KernelEmitter, op: G.WgmmaWaitOp) -> None:
    em.ins(f"wgmma.wait_group.sync.aligned {op.pending.value.data}")


def _desc(em: KernelEmitter, addr: str, const: int) -> str:
    """The 64-bit GMMA descriptor `const | (addr >> 4)`."""
    r = em.new("rd")
    em.ins(f"cvt.u64.u32 {r}, {addr}")
    em.ins(f"shr.u64 {r}, {r}, 4")
    em.ins(f"or.b64 {r}, {r}, {const:#x}")
    return r


def b_descriptor_fields(k_rows: int) -> tuple[int, int]:
    """(LBO, SBO) in bytes of an MN-major SW128 B stage with `k_rows` rows per panel."""
    panel, group = k_rows * 128, 1024
    return (panel, group) if MN_LBO_IS_PANEL_STRIDE else (group, panel)


def _private_acc(em: KernelEmitter, op) -> tuple[list[str], bool]:
    """Registers the wgmma may update in place, and whether the accumulator starts at zero
    (a splat of 0.0: no copy, the first K step runs with scale-d = false)."""
    from xdsl.dialects import arith

    from tilec.dialects.tile import SplatOp

    acc: Val = em.get_any(op.acc)
    src = op.acc.owner.source.owner if isinstance(op.acc.owner, G.ToFragmentOp) else None
    if acc.uniform and isinstance(src, SplatOp) and isinstance(src.scalar.owner, arith.ConstantOp) \
            and src.scalar.owner.value.value.data == 0.0:
        return [em.new("f") for _ in acc.regs], True
    regs = list(acc.regs)
    if len(set(regs)) != len(regs) or sum(1 for _ in op.acc.uses) != 1:  # update a private copy in place
        fresh = [em.new("f") for _ in regs]
        for d_, s_ in zip(fresh, regs):
            em.ins(f"mov.f32 {d_}, {s_}")
        regs = fresh
    return regs, False


def _check_warps(em: KernelEmitter, m: int) -> None:
    if em.num_threads != 2 * m:
        raise em.unsupported("tgpu.wgmma", None, f"a {m}-row accumulator needs {m // 16} warps "
                                                 f"(one warpgroup per 64 rows), the kernel has {em.num_threads // 32}")


def _b_operand(em: KernelEmitter, b: SmemRef, stage, kmajor: bool, k: int) -> tuple[str, callable]:
    """The B descriptor of a stage and the descriptor offset (16-byte units) of K16 step j."""
    b_stage = _stage_addr(em, b.offset, _scalar(em, stage), b.type.stage_bytes)
    if kmajor:      # [N, K], K contiguous: read like A
        d = _desc(em, b_stage, Sm90SmemDescriptor.for_smem(0, lbo=16, sbo=1024, layout=Sm90Swizzle.SW128).encode())
        return d, lambda j: ((j // 4) * b.type.panel_bytes + (j % 4) * 32) >> 4
    lbo, sbo = b_descriptor_fields(k)
    d = _desc(em, b_stage, Sm90SmemDescriptor.for_smem(0, lbo=lbo, sbo=sbo, layout=Sm90Swizzle.SW128).encode())
    return d, lambda j: (j * 16 * 128) >> 4


def _step(em: KernelEmitter, desc: str, off: int) -> str:
    if not off:
        return desc
    r = em.new("rd")
    em.ins(f"add.s64 {r}, {desc}, {off}")
    return r


def _scale_d(em: KernelEmitter, zero: bool, j: int) -> str:
    if zero and j == 0:
        return em.memo("tgpu_false", lambda: _pred_const(em, False))
    return em.memo("tgpu_true", lambda: _pred_const(em, True))


@lowers(G.WgmmaOp)
def lower_wgmma(em: KernelEmitter, op: G.WgmmaOp) -> None:
    if em.target != "sm_90a":
        raise em.unsupported("tgpu.wgmma", dt.from_ir(op.a.type.element_type), "wgmma needs sm_90a")
    a: SmemRef = em.get_any(op.a)
    b: SmemRef = em.get_any(op.b)
    m, k = a.type.get_shape()
    n = op.acc.type.get_shape()[1]
    kmajor = op.b_kmajor is not None
    _check_warps(em, m)
    regs, zero = _private_acc(em, op)
    ty = _TYPES[dt.from_ir(a.type.element_type)]
    wg = em.memo("tgpu_wg", lambda: em._op2("shr.u32", em.tid, 7))
    a_stage = _stage_addr(em, a.offset, _scalar(em, op.a_stage), a.type.stage_bytes)
    a_rows = em.new("r")
    em.ins(f"mad.lo.u32 {a_rows}, {wg}, {64 * 128}, {a_stage}")          # this warpgroup's 64 rows
    a_desc = _desc(em, a_rows, Sm90SmemDescriptor.for_smem(0, lbo=16, sbo=1024, layout=Sm90Swizzle.SW128).encode())
    b_desc, b_off = _b_operand(em, b, op.b_stage, kmajor, k)
    frag = "{" + ", ".join(regs) + "}"
    for j in range(k // 16):
        ad = _step(em, a_desc, ((j // 4) * a.type.panel_bytes + (j % 4) * 32) >> 4)
        bd = _step(em, b_desc, b_off(j))
        em.ins(f"wgmma.mma_async.sync.aligned.m64n{n}k16.f32.{ty}.{ty} {frag}, {ad}, {bd}, {_scale_d(em, zero, j)}, "
               f"1, 1, 0, {0 if kmajor else 1}")
    em.set(op.result, Val(dt.float32, em.get_any(op.acc).layout, regs))


def _a_fragments(em: KernelEmitter, op: G.WgmmaRegAOp, ty: str) -> list[list[str]]:
    """Per K16 step, the 4 f16x2 registers of the A fragment.  A tile in the `Mma` layout is
    packed pairwise from its f32 registers; when it is a `tile.cast` of an f32 tile in that
    layout, from the f32 source itself (one rounding, as the cast does)."""
    from tilec.dialects.tile import CastOp

    m, k = op.a.type.get_shape()
    lay = Mma((m, k), em.num_threads)
    src = op.a
    if isinstance(src.owner, CastOp) and dt.from_ir(src.owner.source.type.element_type) is dt.float32 \
            and em.get_any(src.owner.source).layout == lay:
        src = src.owner.source
    val = em.get_any(src)
    if val.layout != lay:
        from .exchange import to_layout

        val = to_layout(em, em.get(src), lay)
    packed = []
    for i in range(k // 8):
        for h in (0, 1):
            r = em.new("r")
            em.ins(f"cvt.rn.{ty}x2.f32 {r}, {val.regs[4 * i + 2 * h + 1]}, {val.regs[4 * i + 2 * h]}")
            packed.append(r)
    return [packed[4 * j:4 * j + 4] for j in range(k // 16)]


@lowers(G.WgmmaRegAOp)
def lower_wgmma_reg_a(em: KernelEmitter, op: G.WgmmaRegAOp) -> None:
    if em.target != "sm_90a":
        raise em.unsupported("tgpu.wgmma_reg_a", dt.from_ir(op.a.type.element_type), "wgmma needs sm_90a")
    b: SmemRef = em.get_any(op.b)
    m, k = op.a.type.get_shape()
    n = op.acc.type.get_shape()[1]
    _check_warps(em, m)
    ty = _TYPES[dt.from_ir(op.a.type.element_type)]
    a_frags = _a_fragments(em, op, ty)
    regs, zero = _private_acc(em, op)
    b_desc, b_off = _b_operand(em, b, op.b_stage, False, k)
    frag = "{" + ", ".join(regs) + "}"
    for j in range(k // 16):
        bd = _step(em, b_desc, b_off(j))
        em.ins(f"wgmma.mma_async.sync.aligned.m64n{n}k16.f32.{ty}.{ty} {frag}, {{{', '.join(a_frags[j])}}}, {bd}, "
               f"{_scale_d(em, zero, j)}, 1, 1, 1")
    em.set(op.result, Val(dt.float32, Mma((m, n), em.num_threads), regs))


def _pred_const(em: KernelEmitter, value: bool) -> str:
    p = em.new("p")
    em.ins(f"setp.{'eq' if value else 'ne'}.u32 {p}, 0, 0")
    return p


# ---------------------------------------------------------------------------- epilogue


#: epilogue through shared memory and TMA stores (else straight from the registers)
TMA_STORE = True


@lowers(G.StoreFragmentOp)
def lower_store_fragment(em: KernelEmitter, op: G.StoreFragmentOp) -> None:
    from tilec.passes.ir_queries import is_div16

    if TMA_STORE and is_div16(op.tensor) and em.sm >= 90:
        return _store_fragment_tma(em, op)
    if len(op.offsets) != 2:
        raise em.unsupported("tgpu.store_fragment", None, "a tensor of rank > 2 is stored by TMA (sm_90a, 16-byte "
                                                          "aligned rows)")
    info = em.tensors[op.tensor]
    d = info.dtype
    eb = 4 if d is dt.float32 else 2
    frag: Val = em.get_any(op.value)
    m, n = op.value.type.get_shape()
    M, Nd = (em.as_reg(x) for x in info.dims)
    r0, c0 = (_scalar(em, o) for o in op.offsets)
    row0, col0 = _frag_coords(em)
    row, col = em.new("r"), em.new("r")
    em.ins(f"add.u32 {row}, {r0}, {row0}")
    em.ins(f"add.u32 {col}, {c0}, {col0}")
    lin, addr, addr8 = em.new("rd"), em.new("rd"), em.new("rd")
    em.ins(f"mul.wide.u32 {lin}, {row}, {Nd}")
    wcol = em.new("rd")
    em.ins(f"cvt.u64.u32 {wcol}, {col}")
    em.ins(f"add.s64 {lin}, {lin}, {wcol}")
    em.ins(f"mad.lo.u64 {addr}, {lin}, {eb}, {info.ptr}")
    em.ins(f"mul.wide.u32 {addr8}, {Nd}, {8 * eb}")
    em.ins(f"add.s64 {addr8}, {addr8}, {addr}")
    partial, done = em.label("frag_partial"), em.label("frag_done")
    if is_div16(op.tensor):   # 16-byte aligned rows: whole in-bounds tiles use vector stores
        t, p = em.new("r"), em.new("p")
        em.ins(f"add.u32 {t}, {r0}, {m}")
        em.ins(f"setp.gt.u32 {p}, {t}, {M}")
        em.ins(f"setp.lt.or.s32 {p}, {em.as_reg(r0)}, 0, {p}")     # a negative offset wraps the sum
        em.ins(f"@{p} bra {partial}")
        em.ins(f"add.u32 {t}, {c0}, {n}")
        em.ins(f"setp.gt.u32 {p}, {t}, {Nd}")
        em.ins(f"setp.lt.or.s32 {p}, {em.as_reg(c0)}, 0, {p}")
        em.ins(f"@{p} bra {partial}")
        em.ins(f"and.b32 {t}, {c0}, 1")
        em.ins(f"setp.ne.u32 {p}, {t}, 0")
        em.ins(f"@{p} bra {partial}")
        for i in range(n // 8):
            for h, base in ((0, addr), (1, addr8)):
                lo, hi = frag.regs[4 * i + 2 * h], frag.regs[4 * i + 2 * h + 1]
                N.st_global_f32_pair(em, d, f"{base}+{8 * eb * i}", lo, hi)
        em.ins(f"bra.uni {done}")
    em.place(partial)
    prow = []
    for h in (0, 1):
        r, p = em.new("r"), em.new("p")
        em.ins(f"add.u32 {r}, {row}, {8 * h}")
        em.ins(f"setp.lt.u32 {p}, {r}, {M}")
        prow.append(p)
    for i in range(n // 8):
        for q in (0, 1):
            c, pc = em.new("r"), em.new("p")
            em.ins(f"add.u32 {c}, {col}, {8 * i + q}")
            em.ins(f"setp.lt.u32 {pc}, {c}, {Nd}")
            for h, base in ((0, addr), (1, addr8)):
                p = em.new("p")
                em.ins(f"and.pred {p}, {pc}, {prow[h]}")
                N.st_global_f32_as(em, d, f"{base}+{(8 * i + q) * eb}", frag.regs[4 * i + 2 * h + q], p)
    em.place(done)


def _store_fragment_tma(em: KernelEmitter, op: G.StoreFragmentOp) -> None:
    """The epilogue through shared memory: every thread writes its fragment pairs, rounded to
    C's dtype, into a 128B-swizzled staging tile (panels of 128-byte rows, as TMA reads them;
    a warp's 8 rows land in 8 different 16-byte chunks, so no bank conflicts), then thread 0
    stores each panel with one TMA copy.  TMA writes only the in-bounds part of each box."""
    info = em.tensors[op.tensor]
    d = info.dtype
    eb = 4 if d is dt.float32 else 2
    frag: Val = em.get_any(op.value)
    m, n = op.value.type.get_shape()
    W = 128 // eb                                   # columns per 128-byte panel
    st = _state(em)
    tile = m * n * eb
    off = 0 if st.barriers_at is None or tile <= st.barriers_at else -(-st.top // ALIGN) * ALIGN
    em.reserve_smem(off + tile + ALIGN)
    em.bar()                                        # every warpgroup is past its last wgmma_wait
    row0, col0 = _frag_coords(em)
    x = em.new("r")
    em.ins(f"bfe.u32 {x}, {em.tid}, 2, 3")          # row % 8: the chunk XOR of this thread's rows
    rowbase = em.new("r")
    em.ins(f"mad.lo.u32 {rowbase}, {row0}, 128, {aligned_base(em)}")
    nchunk = 8 if eb == 2 else 4
    half = None
    if eb == 4:                                     # f32: 8 columns are 2 chunks; lanes 2, 3 take the second
        half = em.new("r")
        em.ins(f"bfe.u32 {half}, {em.tid}, 1, 1")
    lane_byte = em.new("r")
    em.ins(f"and.b32 {lane_byte}, {em.tid}, {1 if eb == 4 else 3}")
    em.ins(f"shl.b32 {lane_byte}, {lane_byte}, {3 if eb == 4 else 2}")
    addrs = []
    for c in range(nchunk):
        ch, a = em.new("r"), em.new("r")
        if half is None:
            em.ins(f"xor.b32 {ch}, {x}, {c}")
        else:
            em.ins(f"add.u32 {ch}, {half}, {2 * c}")
            em.ins(f"xor.b32 {ch}, {ch}, {x}")
        em.ins(f"shl.b32 {ch}, {ch}, 4")
        em.ins(f"add.u32 {a}, {rowbase}, {ch}")
        em.ins(f"add.u32 {a}, {a}, {lane_byte}")
        addrs.append(a)
    for i in range(n // 8):
        p, c = divmod(i, nchunk)
        for h in (0, 1):
            lo, hi = frag.regs[4 * i + 2 * h], frag.regs[4 * i + 2 * h + 1]
            imm = off + p * m * 128 + h * 8 * 128
            if eb == 4:
                em.ins(f"st.shared.v2.f32 [{addrs[c]}+{imm}], {{{lo}, {hi}}}")
            else:
                packed = em.new("r")
                em.ins(f"cvt.rn.{_TYPES[d]}x2.f32 {packed}, {hi}, {lo}")
                em.ins(f"st.shared.b32 [{addrs[c]}+{imm}], {packed}")
    em.ins("fence.proxy.async.shared::cta")         # generic smem writes -> the TMA engine reads them
    em.bar()
    lead = _tid_pred(em, 0xFFFFFFFF, "tgpu_lead")
    skip = em.label("tma_store_end")
    em.ins(f"@!{lead} bra {skip}")
    em.push_scope()
    rank = len(op.offsets)
    tmap = _tensormap(em, op.tensor, (W, m) + (1,) * (rank - 2), 128)
    offs = [_scalar(em, o) for o in op.offsets]
    r0, c0, outer = offs[-2], offs[-1], offs[-3::-1]
    for p in range(n // W):
        xcol = c0
        if p:
            xcol = em.new("r")
            em.ins(f"add.s32 {xcol}, {c0}, {p * W}")
        coords = ", ".join([xcol, r0, *outer])
        em.ins(f"cp.async.bulk.tensor.{rank}d.global.shared::cta.bulk_group [{tmap}, {{{coords}}}], "
               f"[{aligned_base(em)}+{off + p * m * 128}]")
    em.ins("cp.async.bulk.commit_group")
    em.ins("cp.async.bulk.wait_group.read 0")        # the staging tile may be reused after this
    em.pop_scope()
    em.place(skip)
