"""`tgpu.mma_sync` and the `!tgpu.mma_acc` ops (dialects/tgpu/cp_async.py) as PTX.

The accumulator lives in registers over a WM x WN warp grid (`MmaTiles`; `!tgpu.acc` is the
WM = M/16, WN = 1 case, whose registers are `layout.Mma`'s).  Warp (wm, wn) computes its
TM x TN block from stage buffers filled by `tgpu.cp_async` (lower_cp_async.py), per K16 step j:

    ldmatrix.sync.aligned.m8n8.x4.shared.b16 {a0..a3}_i        A rows wm*TM + 16i.., per m16 tile i
    per pair of n8 tiles t, t+1:
    ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {b0, b1, b0', b1'}   B rows 16j.., columns wn*TN + 8t..
    mma.sync.aligned.m16n8k16.row.col.f32.T.T.f32 {c}, {a}_i, {b0, b1}, {c}   for every i, and t and t+1

with the lane offsets of those addresses precomputed at the buffers' allocation.  Register
4 * (i * TN/8 + j) + q of lane l holds row wm*TM + 16i + l/4 + 8(q/2), column wn*TN + 8j + 2(l%4) + q%2.

`tgpu.mma_acc_store` writes those registers to global memory: one uniform test picks
`st.global.v2.f32` / `cvt.rn.{f16,bf16}x2.f32` + `st.global.b32` for a whole in-bounds tile with even
column offset and row length, else one predicated store per element.  `tgpu.mma_acc_to_tile`
goes through a row-major f32 tile at `smem + 0`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tilec import dtypes as dt
from tilec.dialects import tgpu as G

from . import numerics as N
from .emitter import KernelEmitter, Val, lowers
from .layout import Mma
from .lower_cp_async import Ring, _stage_base, _sw, _warp_lane, acc_grid

_TYPES = {dt.float16: "f16", dt.bfloat16: "bf16"}


@dataclass(frozen=True)
class MmaTiles:
    """The register layout of a `!tgpu.mma_acc` (module docstring).  Only the ops here read it."""

    shape: tuple[int, int]
    warps: tuple[int, int]

    canonical = False

    @property
    def num_slots(self) -> int:
        (m, n), (wm, wn) = self.shape, self.warps
        return (m // wm) * (n // wn) // 32


def _layout(em: KernelEmitter, t):
    if isinstance(t, G.MmaAccType):
        return MmaTiles(t.get_shape(), t.get_warps())
    return Mma(t.get_shape(), em.num_threads)


@lowers(G.MmaAccInitOp)
def lower_mma_acc_init(em: KernelEmitter, op: G.MmaAccInitOp) -> None:
    lay = _layout(em, op.result.type)
    x = em.get(op.value).regs[0]
    em.set(op.result, Val(dt.float32, lay, [x] * lay.num_slots, True))


@lowers(G.MmaSyncOp)
def lower_mma_sync(em: KernelEmitter, op: G.MmaSyncOp) -> None:
    em.require_sm(80, "tgpu.mma_sync")
    a: Ring = em.get_any(op.a)
    b: Ring = em.get_any(op.b)
    (m, n), (wm, wn) = op.acc.type.get_shape(), acc_grid(op.acc.type)
    k = op.a.type.get_shape()[1]
    if wm * wn != em.num_warps or ("a", wm, wn) not in a.reads or ("b", wm, wn) not in b.reads:
        raise em.unsupported("tgpu.mma_sync", None, f"a {wm}x{wn} warp grid needs {wm * wn} warps and "
                             f"cp_async_alloc operands, the kernel has {em.num_warps}")
    tm, tn = m // wm, n // wn
    ty = _TYPES[dt.from_ir(op.a.type.element_type)]
    lay = _layout(em, op.acc.type)
    src = list(em.get_any(op.acc).regs)
    regs = [em.new("f") for _ in range(lay.num_slots)]

    def addresses(ring: Ring, stage, parts) -> list[str]:
        base = _stage_base(em, ring, stage)
        out = []
        for p in parts:
            r = em.new("r")
            em.ins(f"add.u32 {r}, {base}, {p}")
            out.append(r)
        return out

    ra = addresses(a, op.a_stage, a.reads[("a", wm, wn)])
    rb = addresses(b, op.b_stage, b.reads[("b", wm, wn)])
    wa, cpa, _ = _sw(a.type)
    wb, _, _ = _sw(b.type)
    rows_a = a.type.get_shape()[0]
    for j in range(k // 16):
        frag_a = []
        for i in range(tm // 16):
            fa = [em.new("r") for _ in range(4)]
            off = (2 * j // cpa) * rows_a * wa + 16 * i * wa
            em.ins(f"ldmatrix.sync.aligned.m8n8.x4.shared.b16 {{{', '.join(fa)}}}, [{ra[(2 * j % cpa) // 2]}+{off}]")
            frag_a.append(fa)
        for q, t in enumerate(range(0, tn // 8, 2)):
            fb = [em.new("r") for _ in range(4)]
            em.ins(f"ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {{{', '.join(fb)}}}, [{rb[q]}+{16 * j * wb}]")
            for h in (0, 1):
                for i in range(tm // 16):
                    s = 4 * (i * (tn // 8) + t + h)
                    em.ins(f"mma.sync.aligned.m16n8k16.row.col.f32.{ty}.{ty}.f32 {{{', '.join(regs[s:s + 4])}}}, "
                           f"{{{', '.join(frag_a[i])}}}, {{{fb[2 * h]}, {fb[2 * h + 1]}}}, "
                           f"{{{', '.join(src[s:s + 4])}}}")
        src = regs
    em.set(op.result, Val(dt.float32, lay, regs))


def _frag_origin(em: KernelEmitter, t) -> tuple[str, str]:
    """(row, column) of this thread's register 0 in the accumulator tile: wm*TM + lane/4, wn*TN + 2(lane%4)."""
    (m, n), (wm_n, wn_n) = t.get_shape(), acc_grid(t)
    lane, wm, wn = _warp_lane(em, wn_n)
    row, col, g = em.new("r"), em.new("r"), em.new("r")
    em.ins(f"shr.u32 {g}, {lane}, 2")
    em.ins(f"mad.lo.u32 {row}, {wm}, {m // wm_n}, {g}")
    em.ins(f"and.b32 {col}, {lane}, 3")
    em.ins(f"shl.b32 {col}, {col}, 1")
    em.ins(f"mad.lo.u32 {col}, {wn}, {n // wn_n}, {col}")
    return row, col


def _slots(t):
    """(slot, row offset, column offset) of each register pair (q = 0, 2) from the thread's origin."""
    (m, n), (wm, wn) = t.get_shape(), acc_grid(t)
    tm, tn = m // wm, n // wn
    for i in range(tm // 16):
        for j in range(tn // 8):
            for h in (0, 1):
                yield 4 * (i * (tn // 8) + j) + 2 * h, 16 * i + 8 * h, 8 * j


@lowers(G.MmaAccStoreOp)
def lower_mma_acc_store(em: KernelEmitter, op: G.MmaAccStoreOp) -> None:
    info = em.tensors[op.tensor]
    d = info.dtype
    eb = 4 if d is dt.float32 else 2
    t = op.value.type
    m, n = t.get_shape()
    regs = em.get_any(op.value).regs
    rows, cols = (em.as_reg(x) for x in info.dims)
    r0, c0 = (em.get(o).regs[0] for o in op.offsets)
    orow, ocol = _frag_origin(em, t)
    row, col = em.new("r"), em.new("r")
    em.ins(f"add.u32 {row}, {r0}, {orow}")
    em.ins(f"add.u32 {col}, {c0}, {ocol}")
    lin, wcol, addr, pitch = em.new("rd"), em.new("rd"), em.new("rd"), em.new("rd")
    em.ins(f"mul.wide.u32 {lin}, {row}, {cols}")
    em.ins(f"cvt.u64.u32 {wcol}, {col}")
    em.ins(f"add.s64 {lin}, {lin}, {wcol}")
    em.ins(f"mad.lo.u64 {addr}, {lin}, {eb}, {info.ptr}")
    em.ins(f"mul.wide.u32 {pitch}, {cols}, {8 * eb}")          # 8 rows
    partial, done = em.label("acc_partial"), em.label("acc_done")
    x, p, par = em.new("r"), em.new("p"), em.new("r")          # whole tile in bounds, pairs aligned?
    em.ins(f"add.u32 {x}, {r0}, {m}")
    em.ins(f"setp.gt.u32 {p}, {x}, {rows}")
    em.ins(f"add.u32 {x}, {c0}, {n}")
    em.ins(f"setp.gt.or.u32 {p}, {x}, {cols}, {p}")
    em.ins(f"setp.lt.or.s32 {p}, {em.as_reg(r0)}, 0, {p}")      # a negative offset wraps the sums above
    em.ins(f"setp.lt.or.s32 {p}, {em.as_reg(c0)}, 0, {p}")
    em.ins(f"or.b32 {par}, {c0}, {cols}")
    em.ins(f"and.b32 {par}, {par}, 1")
    em.ins(f"setp.ne.or.u32 {p}, {par}, 0, {p}")
    em.ins(f"@{p} bra {partial}")
    for s, dr, dc in _slots(t):
        a = em.new("rd")
        em.ins(f"mad.lo.u64 {a}, {pitch}, {dr // 8}, {addr}")
        N.st_global_f32_pair(em, d, f"{a}+{dc * eb}", regs[s], regs[s + 1])
    em.ins(f"bra {done}")
    em.place(partial)
    for s, dr, dc in _slots(t):
        a = em.new("rd")
        em.ins(f"mad.lo.u64 {a}, {pitch}, {dr // 8}, {addr}")
        rr = em.new("r")
        em.ins(f"add.u32 {rr}, {row}, {dr}")
        for e in (0, 1):
            cc, q = em.new("r"), em.new("p")
            em.ins(f"add.u32 {cc}, {col}, {dc + e}")
            em.ins(f"setp.lt.u32 {q}, {rr}, {rows}")
            em.ins(f"setp.lt.and.u32 {q}, {cc}, {cols}, {q}")
            N.st_global_f32_as(em, d, f"{a}+{(dc + e) * eb}", regs[s + e], q)
    em.place(done)


@lowers(G.MmaAccToTileOp)
def lower_mma_acc_to_tile(em: KernelEmitter, op: G.MmaAccToTileOp) -> None:
    from .exchange import load_f32_tile, thread_base

    t = op.source.type
    m, n = t.get_shape()
    val = em.get_any(op.source)
    layout = em.layout_of(op.result.type)
    if val.uniform:
        em.set(op.result, Val(dt.float32, layout, [val.regs[0]] * layout.num_slots, True))
        return
    em.reserve_smem(m * n * 4)
    em.bar()
    orow, ocol = _frag_origin(em, t)
    base = em.new("r")
    em.ins(f"mad.lo.u32 {base}, {orow}, {n}, {ocol}")
    em.ins(f"mad.lo.u32 {base}, {base}, 4, {em.smem_base}")
    for s, dr, dc in _slots(t):
        em.ins(f"st.shared.v2.f32 [{base}+{(dr * n + dc) * 4}], {{{val.regs[s]}, {val.regs[s + 1]}}}")
    em.bar()
    tb = em.as_reg(thread_base(em, layout, 4, 0))
    em.set(op.result, Val(dt.float32, layout, load_f32_tile(em, layout, tb)))
