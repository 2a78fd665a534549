"""`tile.matmul`: C = A @ B (+ acc), batched over broadcast leading dims.

`select_mma` picks the instruction family: tensor cores (`lower_mma.py`) for f16/bf16
tiles that fit mma.sync.m16n8k16, else CUDA-core FMAs here: A and B are staged
row-major in shared memory (as f32, i32 for integer inputs, f64 for f64), then every
thread computes the C elements of its slots with one FMA per k:

    bar.sync; A -> smem[0..), B -> smem[offB..); bar.sync
    for k:  a = smem_A[i, k] (one load per distinct row i of the thread)
            b = smem_B[k, j] (one load per distinct column j)
            acc[i, j] = fma.rn(a, b, acc[i, j])

K is unrolled (immediate smem offsets) when small, else a loop of 8-step unrolled bodies.
"""

from __future__ import annotations

import os

from tilec import dtypes as dt
from tilec.dialects import tile as T

from . import numerics as N
from .emitter import KernelEmitter, Val, dtype_of, lowers
from .exchange import elem_size, linear_index, store_tile
from .lower_grid import constant_reg


def select_mma(em: KernelEmitter, op: T.MatmulOp) -> str:
    """The instruction family for this matmul on `em.target`.

    "mma.sync.m16n8k16" (`lower_mma.py`) for f16/bf16 2-D tiles whose sizes fit it (every
    target here is sm_80+), else "fma" (CUDA cores).  `TILEC_PTX_MMA=0` forces "fma".
    On sm_100a, "tcgen05.mma.kind::f16|tf32" (`lower_tcgen05.py`) for the matmuls the
    kernel's tcgen05 plan took (2-D f16/bf16/f32 and, as kind::f8f6f4, e4m3/e5m2; M % 64, N % 8,
    K % 16|8|32; `TILEC_PTX_TCGEN05=0`
    turns it off).  On sm_90a wgmma matmuls never get here (tile-promote-smem turns their K
    loops into `tgpu` ops, lowered by `lower_wgmma.py`); the rest follow the instruction
    `tile-select-mma` recorded in their `mma` attribute."""
    from .lower_mma import mma_fits

    # --- sm_100a: 5th-generation tensor cores (lower_tcgen05.py) ----------------------
    if em.target == "sm_100a":
        from .lower_tcgen05 import select_tcgen05

        kind = select_tcgen05(em, op)
        if kind is not None:
            return kind
    # -----------------------------------------------------------------------------------
    # --- sm_90a: the record of tile-select-mma / tile-promote-smem (passes/select_mma.py) ---
    rec = op.attributes.get("mma")
    if rec is not None and rec.data.startswith(("fma", "mad")):
        return "fma"
    # -----------------------------------------------------------------------------------
    a, b = em.get(op.lhs), em.get(op.rhs)
    if os.environ.get("TILEC_PTX_MMA", "1") != "0" and em.sm >= 80 and \
            mma_fits(a.layout.shape, b.layout.shape, a.dtype):
        return "mma.sync.m16n8k16"
    return "fma"


def _compute_dtype(d: dt.DType) -> dt.DType:
    if d.is_float:
        return dt.float64 if d.bits == 64 else dt.float32
    return dt.int32


def _batch_coords(coords: list, shape: tuple[int, ...], batch_rank: int) -> list:
    """The leading (batch) coords of an operand of `shape` for C batch `coords` (numpy
    broadcasting: trailing alignment, size-1 dims read index 0)."""
    own = shape[:-2]
    lead = coords[batch_rank - len(own):batch_rank] if own else []
    return [0 if n == 1 else c for c, n in zip(lead, own)]


@lowers(T.MatmulOp)
def lower_matmul(em: KernelEmitter, op: T.MatmulOp) -> None:
    kind = select_mma(em, op)
    if kind.startswith("tcgen05"):
        from .lower_tcgen05 import lower_matmul_tcgen05

        return lower_matmul_tcgen05(em, op)
    if kind == "mma.sync.m16n8k16":
        from .lower_mma import lower_matmul_mma

        return lower_matmul_mma(em, op)
    a, b = em.get(op.lhs), em.get(op.rhs)
    d = a.dtype
    if d.is_float and d.bits < 16 and d not in N.FP8:
        raise em.unsupported("tile.matmul", d)
    out = dtype_of(op.result.type)
    cd = _compute_dtype(d)
    a_shape, b_shape = a.layout.shape, b.layout.shape
    c_layout = em.layout_of(op.result.type)
    c_shape = c_layout.shape
    batch_rank = len(c_shape) - 2
    K, N_ = a_shape[-1], b_shape[-1]
    size = elem_size(cd)
    off_b = (a.layout.numel * size + 15) // 16 * 16
    em.reserve_smem(off_b + b.layout.numel * size)

    ac = Val(cd, a.layout, [N.cast(em, d, cd, r) for r in a.regs])
    bc = Val(cd, b.layout, [N.cast(em, d, cd, r) for r in b.regs])
    em.bar()
    store_tile(em, ac, 0)
    store_tile(em, bc, off_b)
    em.bar()

    acc_in = em.get(op.acc) if op.acc is not None else None
    cls = {dt.float32: "f", dt.float64: "fd", dt.int32: "r"}[cd]
    typ = {dt.float32: "f32", dt.float64: "f64", dt.int32: "b32"}[cd]
    slots, accs, a_addr, b_addr = [], [], {}, {}
    for s in range(c_layout.num_slots):
        if c_layout.slot_never_valid(s):
            continue
        coords = em.coords(c_layout, s)
        i, j = coords[-2], coords[-1]
        ai = linear_index(em, a_shape, _batch_coords(coords, a_shape, batch_rank) + [i, 0])
        bi = linear_index(em, b_shape, _batch_coords(coords, b_shape, batch_rank) + [0, j])
        pred = em.slot_pred(c_layout, s)
        ra = _smem_addr(em, ai, size, 0, pred)
        rb = _smem_addr(em, bi, size, off_b, pred)
        acc = em.new(cls)
        init = acc_in.regs[s] if acc_in is not None else constant_reg(em, out, 0)
        if cd is dt.float64:
            em.ins(f"cvt.f64.f32 {acc}, {init}")
        else:
            N.mov(em, cls, acc, init)
        slots.append((s, ra, rb))
        accs.append(acc)
        a_addr.setdefault(ra, None)
        b_addr.setdefault(rb, None)

    fma = {dt.float32: "fma.rn.f32", dt.float64: "fma.rn.f64", dt.int32: "mad.lo.s32"}[cd]

    def body(k_imm: int, a_base: dict, b_base: dict) -> None:
        av = {ra: _ld(em, cls, typ, a_base[ra], k_imm * size) for ra in a_addr}
        bv = {rb: _ld(em, cls, typ, b_base[rb], k_imm * N_ * size) for rb in b_addr}
        for (s, ra, rb), acc in zip(slots, accs):
            em.ins(f"{fma} {acc}, {av[ra]}, {bv[rb]}, {acc}")

    if K * max(1, len(slots)) <= 4096:
        ident_a, ident_b = {r: r for r in a_addr}, {r: r for r in b_addr}
        for k in range(K):
            body(k, ident_a, ident_b)
    else:
        U = next(u for u in (8, 4, 2, 1) if K % u == 0)
        kk, pk = em.new("r"), em.new("p")
        head, done = em.label("mm_k"), em.label("mm_k_end")
        cur_a = {r: em.new("r") for r in a_addr}
        cur_b = {r: em.new("r") for r in b_addr}
        for r, c in list(cur_a.items()) + list(cur_b.items()):
            em.ins(f"mov.b32 {c}, {r}")
        em.ins(f"mov.b32 {kk}, 0")
        em.place(head)
        em.ins(f"setp.ge.u32 {pk}, {kk}, {K}")
        em.ins(f"@{pk} bra {done}")
        for u in range(U):
            body(u, cur_a, cur_b)
        for c in cur_a.values():
            em.ins(f"add.u32 {c}, {c}, {U * size}")
        for c in cur_b.values():
            em.ins(f"add.u32 {c}, {c}, {U * N_ * size}")
        em.ins(f"add.u32 {kk}, {kk}, {U}")
        em.ins(f"bra {head}")
        em.place(done)

    zero = constant_reg(em, out, 0)
    regs = [zero] * c_layout.num_slots
    for (s, _, _), acc in zip(slots, accs):
        if cd is dt.float64:
            r = em.new("f")
            em.ins(f"cvt.rn.f32.f64 {r}, {acc}")
            acc = r
        regs[s] = acc
    em.set(op.result, Val(out, c_layout, regs))


def _smem_addr(em: KernelEmitter, index, size: int, byte_offset: int, pred: str | None) -> str:
    """smem address of element `index`; 0-th element for threads without a real slot."""
    def make():
        r = em.new("r")
        if isinstance(index, int):
            em.ins(f"add.u32 {r}, {em.smem_base}, {byte_offset + index * size}")
        else:
            em.ins(f"mad.lo.u32 {r}, {index}, {size}, {em.smem_base}")
            if byte_offset:
                em.ins(f"add.u32 {r}, {r}, {byte_offset}")
        if pred is not None:  # keep out-of-tile slots inside the staged operand
            em.ins(f"@!{pred} add.u32 {r}, {em.smem_base}, {byte_offset}")
        return r
    return em.memo(("mm_addr", index, size, byte_offset, pred), make)


def _ld(em: KernelEmitter, cls: str, typ: str, addr: str, imm: int) -> str:
    r = em.new(cls)
    em.ins(f"ld.shared.{typ} {r}, [{addr}+{imm}]")
    return r
