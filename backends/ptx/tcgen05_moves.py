"""Data movement of sm_100a tcgen05 matmuls (`lower_tcgen05.py`): blocked-layout registers to
the K-major operand tiles in shared memory, and the f32 accumulator between registers,
shared memory and tensor memory.

Operands (`stage_operand`): A [M, K] is written four consecutive k at a time (one
`st.shared.v2.b32` of two `cvt.rn.{f16,bf16}x2.f32`, or one `st.shared.v4.b32` of tf32
bits); B [K, N] is stored transposed, as B^T [N, K], one element per store (a thread's four
consecutive n are four rows of B^T, 16 bytes apart).  fp8 (kind::f8f6f4, `_stage_fp8`): A's four
k are two `cvt.rn.satfinite.{e4m3,e5m2}x2.f32` in one `st.shared.b32`, B^T one `st.shared.b8`
per element.  For 3xTF32 each f32 x goes to two
tiles: hi = x & 0xFFFFE000 (the bits kind::tf32 reads) and lo = x - hi.

Accumulator.  TMEM holds row m of a 128-row block in lane m; warp w may only touch lanes
32*(w%4)..+31, so thread t serves row t % 128, and with more than 4 warps the column
chunks are dealt out to the groups of four warps (`tmem_rows`).  Between TMEM and the
blocked layout the rows pass through shared memory, row-major with a stride of N + 4
floats (the per-row `v4` accesses of 8 consecutive rows then hit distinct banks):

    read_back:     tcgen05.ld.sync.aligned.32x32b.xN (N <= 32 columns per load) + wait::ld,
                   st.shared.v4 per row; bar.sync; ld.shared.v4 of the blocked slots
    smem_to_tmem:  ld.shared.v4 per row, tcgen05.st.sync.aligned.32x32b.xN; wait::st
"""

from __future__ import annotations

from tilec import dtypes as dt

from .emitter import KernelEmitter, Val
from .layout import Blocked
from .ptx_types import FP8
from .tcgen05_layout import LBO, Geometry, Operand

TF32_HI = "0xFFFFE000"            # the bits of an f32 that kind::tf32 reads



def _split_coords(em: KernelEmitter, layout: Blocked, s: int):
    """((row_base, row_const), (col_base, col_const)) of slot `s` of a 2-D blocked layout,
    bases per thread (registers, shared by every slot), consts per slot: available when
    vec == 4 and a round of the CTA (num_threads * 4 elements) is whole rows; else the
    coordinates with zero consts."""
    R, C = layout.shape
    c = layout.slot_const(s)
    if layout.vec == 4 and (layout.num_threads * 4) % C == 0:
        e0 = em.mul_u32(em.tid, 4)
        return (em.div_u32(e0, C), c // C), (em.rem_u32(e0, C), c % C)
    r, col = em.coords(layout, s)
    return (r, 0), (col, 0)


def _kmajor(em: KernelEmitter, o: Operand, row: tuple, k: tuple) -> tuple:
    """(register or int, immediate) byte offset in smem of element (row, k) of operand `o`;
    row and k are (base, const) pairs."""
    (rb, rc), (kb, kc) = row, k
    if rc % 8 or kc % o.chunk:
        rb, rc = em.add_u32(rb, rc), 0
        kb, kc = em.add_u32(kb, kc), 0
    t1 = em.mul_u32(em.div_u32(rb, 8), o.sbo)
    t2 = em.mul_u32(em.rem_u32(rb, 8), 16)
    t3 = em.mul_u32(em.div_u32(kb, o.chunk), LBO)
    t4 = em.mul_u32(em.rem_u32(kb, o.chunk), o.esize)
    base = em.add_u32(em.add_u32(t1, t2), em.add_u32(t3, t4))
    return em.add_u32(em.smem_base, base), o.offset + (rc // 8) * o.sbo + (kc // o.chunk) * LBO


def _tf32_parts(em: KernelEmitter, x: str, split: bool) -> list[str]:
    """The f32 bit patterns stored for element `x`: [x] or, for 3xTF32, [hi, lo]."""
    if not split:
        return [x]
    bits, hi, fhi, lo = em.new("r"), em.new("r"), em.new("f"), em.new("f")
    em.ins(f"mov.b32 {bits}, {x}")
    em.ins(f"and.b32 {hi}, {bits}, {TF32_HI}")
    em.ins(f"mov.b32 {fhi}, {hi}")
    em.ins(f"sub.rn.f32 {lo}, {x}, {fhi}")
    return [hi, lo]


def stage_operand(em: KernelEmitter, v: Val, parts: list[Operand], transpose: bool, split: bool) -> None:
    """Write tile `v` (A: [M, K]; B: [K, N], stored transposed) into the K-major operand
    tile(s) `parts` ([hi] or, for 3xTF32, [hi, lo])."""
    layout = v.layout
    o = parts[0]
    assert layout.vec == 4
    ty = {1: FP8.get(v.dtype), 2: "f16" if v.dtype is dt.float16 else "bf16", 4: "tf32"}[o.esize]
    if o.esize == 1:            # kind::f8f6f4: e4m3 / e5m2 bytes (the f32 registers hold fp8 values: exact)
        return _stage_fp8(em, v, o, transpose, ty)
    for s in range(0, layout.num_slots, 4):
        if layout.slot_never_valid(s):
            continue
        pred = em.slot_pred(layout, s)
        guard = f"@{pred} " if pred else ""
        xs = v.regs[s:s + 4]
        row, col = _split_coords(em, layout, s)
        if not transpose:       # 4 consecutive k of one row: 8 or 16 contiguous bytes
            addr, imm = _kmajor(em, o, row, col)
            addr = em.as_reg(addr)
            if ty == "tf32":
                vals = [_tf32_parts(em, x, split) for x in xs]
                for i, p in enumerate(parts):
                    em.ins(f"{guard}st.shared.v4.b32 [{addr}+{imm + p.offset - o.offset}], "
                           f"{{{', '.join(q[i] for q in vals)}}}")
            else:
                h = [em.new("r"), em.new("r")]
                em.ins(f"cvt.rn.{ty}x2.f32 {h[0]}, {xs[1]}, {xs[0]}")
                em.ins(f"cvt.rn.{ty}x2.f32 {h[1]}, {xs[3]}, {xs[2]}")
                em.ins(f"{guard}st.shared.v2.b32 [{addr}+{imm}], {{{h[0]}, {h[1]}}}")
        else:                   # B[k, n..n+3] -> rows n..n+3 of B^T: 16 bytes apart
            addr, imm = _kmajor(em, o, col, row)
            addr = em.as_reg(addr)
            for j, x in enumerate(xs):
                if ty == "tf32":
                    for p, bits in zip(parts, _tf32_parts(em, x, split)):
                        em.ins(f"{guard}st.shared.b32 [{addr}+{imm + p.offset - o.offset + 16 * j}], {bits}")
                else:
                    h = em.new("h")
                    em.ins(f"cvt.rn.{ty}.f32 {h}, {x}")
                    em.ins(f"{guard}st.shared.b16 [{addr}+{imm + 16 * j}], {h}")



def _stage_fp8(em: KernelEmitter, v: Val, o: Operand, transpose: bool, ty: str) -> None:
    """fp8 `stage_operand`: A's 4 consecutive k are 4 contiguous bytes (two
    `cvt.rn.satfinite.{e4m3,e5m2}x2.f32` packed into one `st.shared.b32`); B^T gets one byte
    per store (`st.shared.b8`, rows 16 bytes apart)."""
    layout = v.layout
    zero = None
    for s in range(0, layout.num_slots, 4):
        if layout.slot_never_valid(s):
            continue
        pred = em.slot_pred(layout, s)
        guard = f"@{pred} " if pred else ""
        xs = v.regs[s:s + 4]
        row, col = _split_coords(em, layout, s)
        if not transpose:
            addr, imm = _kmajor(em, o, row, col)
            addr = em.as_reg(addr)
            h, w = [em.new("h"), em.new("h")], em.new("r")
            em.ins(f"cvt.rn.satfinite.{ty}x2.f32 {h[0]}, {xs[1]}, {xs[0]}")
            em.ins(f"cvt.rn.satfinite.{ty}x2.f32 {h[1]}, {xs[3]}, {xs[2]}")
            em.ins(f"mov.b32 {w}, {{{h[0]}, {h[1]}}}")
            em.ins(f"{guard}st.shared.b32 [{addr}+{imm}], {w}")
        else:
            addr, imm = _kmajor(em, o, col, row)
            addr = em.as_reg(addr)
            if zero is None:
                zero = em.new("f")
                em.ins(f"mov.f32 {zero}, 0f00000000")
            for j, x in enumerate(xs):
                h = em.new("h")
                em.ins(f"cvt.rn.satfinite.{ty}x2.f32 {h}, {zero}, {x}")
                em.ins(f"{guard}st.shared.b8 [{addr}+{imm + 16 * j}], {h}")


def _c_addr(em: KernelEmitter, layout: Blocked, s: int, stride: int, off: int) -> tuple:
    """(register, immediate) smem address of slot `s` of the f32 accumulator stored
    row-major with row stride `stride` floats at smem + off."""
    (rb, rc), (cb, cc) = _split_coords(em, layout, s)
    base = em.add_u32(em.mul_u32(rb, stride), cb)
    return em.as_reg(em.add_u32(em.smem_base, em.mul_u32(base, 4))), off + (rc * stride + cc) * 4


def store_c(em: KernelEmitter, acc: Val, g: Geometry, off: int) -> None:
    """The blocked f32 tile `acc` into smem (padded row-major)."""
    layout = acc.layout
    stride = g.c_stride(em.num_threads)
    for s in range(0, layout.num_slots, 4):
        if layout.slot_never_valid(s):
            continue
        pred = em.slot_pred(layout, s)
        addr, imm = _c_addr(em, layout, s, stride, off)
        em.ins(f"{'@' + pred + ' ' if pred else ''}st.shared.v4.f32 [{addr}+{imm}], "
               f"{{{', '.join(acc.regs[s:s + 4])}}}")


def load_c(em: KernelEmitter, g: Geometry, layout: Blocked, off: int) -> Val:
    """The blocked f32 tile from smem (padded row-major)."""
    stride = g.c_stride(em.num_threads)
    regs = []
    for s in range(0, layout.num_slots, 4):
        r = [em.new("f") for _ in range(4)]
        regs += r
        pred = em.slot_pred(layout, s)
        if layout.slot_never_valid(s) or pred:
            for x in r:
                em.ins(f"mov.f32 {x}, 0f00000000")
            if layout.slot_never_valid(s):
                continue
        addr, imm = _c_addr(em, layout, s, stride, off)
        em.ins(f"{'@' + pred + ' ' if pred else ''}ld.shared.v4.f32 {{{', '.join(r)}}}, [{addr}+{imm}]")
    return Val(dt.float32, layout, regs)


def _pow2_chunks(n: int, cap: int = 32) -> list[tuple[int, int]]:
    out, c0 = [], 0
    while c0 < n:
        w = cap
        while w > n - c0:
            w //= 2
        out.append((c0, w))
        c0 += w
    return out


def tmem_rows(em: KernelEmitter, g: Geometry, body) -> None:
    """Run `body(mb, c0, n, row_addr_reg)` for the (128-row block, column chunk) pieces
    this warp owns: warp w serves TMEM lanes 32*(w%4).. (row = tid % 128 of the block) and
    column chunks j with j % (num_warps/4) == w / 4.  Guards are warp-uniform branches."""
    parts = em.num_warps // 4
    items = [(mb, c0, n) for mb in range(g.m_blocks) for c0, n in _pow2_chunks(g.N)]
    row_in, part = em.memo("tc_row_in", lambda: _op(em, "and.b32", em.tid, 127)), None
    if parts > 1:
        part = em.memo("tc_part", lambda: _op(em, "shr.u32", em.tid, 7))
    for j, (mb, c0, n) in enumerate(items):
        skip = em.label("tc_rows")
        guarded = False
        if part is not None:
            p = em.new("p")
            em.ins(f"setp.ne.u32 {p}, {part}, {j % parts}")
            em.ins(f"@{p} bra {skip}")
            guarded = True
        valid = g.M - mb * 128
        if valid < 128:        # padded rows of an M = 64 block: warps with lane quarter >= 2 idle
            p = em.new("p")
            em.ins(f"setp.ge.u32 {p}, {row_in}, {valid}")
            em.ins(f"@{p} bra {skip}")
            guarded = True
        em.push_scope()        # registers memoised under the guard stay inside it
        body(mb, c0, n, row_in)
        em.pop_scope()
        if guarded:
            em.place(skip)


def _op(em: KernelEmitter, opcode: str, a, b) -> str:
    r = em.new("r")
    em.ins(f"{opcode} {r}, {a}, {b}")
    return r


def _row_addr(em: KernelEmitter, g: Geometry, row_in: str) -> str:
    """smem address of row `row_in` of the staged accumulator (row stride `c_stride`)."""
    stride = g.c_stride(em.num_threads)
    return em.as_reg(em.add_u32(em.smem_base, em.mul_u32(row_in, stride * 4)))


def read_back(em: KernelEmitter, g: Geometry, taddr_q: str, col: int, layout: Blocked) -> Val:
    """D (TMEM columns col.. from `taddr_q`, the TMEM address of this warp's lane quarter) ->
    smem (rows of stride `c_stride` at 0) -> blocked registers."""
    stride = g.c_stride(em.num_threads)
    em.reserve_smem(g.M * stride * 4)

    def body(mb, c0, n, row_in):
        regs = [em.new("f") for _ in range(n)]
        em.ins(f"tcgen05.ld.sync.aligned.32x32b.x{n}.b32 {{{', '.join(regs)}}}, "
               f"[{taddr_q}+{col + mb * g.N + c0}]")
        em.ins("tcgen05.wait::ld.sync.aligned")
        base = _row_addr(em, g, row_in)
        for i in range(0, n, 4):
            imm = (mb * 128 * stride + c0 + i) * 4
            em.ins(f"st.shared.v4.f32 [{base}+{imm}], {{{', '.join(regs[i:i + 4])}}}")
    tmem_rows(em, g, body)
    em.ins("tcgen05.fence::before_thread_sync")
    em.bar()
    return load_c(em, g, layout, 0)


def smem_to_tmem(em: KernelEmitter, g: Geometry, taddr_q: str, col: int, off: int) -> None:
    """The accumulator rows staged at smem + off -> TMEM columns col.. (tcgen05.st)."""
    stride = g.c_stride(em.num_threads)

    def body(mb, c0, n, row_in):
        regs = [em.new("f") for _ in range(n)]
        base = _row_addr(em, g, row_in)
        for i in range(0, n, 4):
            imm = off + (mb * 128 * stride + c0 + i) * 4
            em.ins(f"ld.shared.v4.f32 {{{', '.join(regs[i:i + 4])}}}, [{base}+{imm}]")
        em.ins(f"tcgen05.st.sync.aligned.32x32b.x{n}.b32 [{taddr_q}+{col + mb * g.N + c0}], "
               f"{{{', '.join(regs)}}}")
    tmem_rows(em, g, body)
    em.ins("tcgen05.wait::st.sync.aligned")


def zero_tmem(em: KernelEmitter, g: Geometry, taddr_q: str, col: int) -> None:
    """Zeros into the accumulator's TMEM columns (tcgen05.st of one zero register)."""
    zero = em.memo("tc_zero", lambda: _mov_zero(em))

    def body(mb, c0, n, row_in):
        em.ins(f"tcgen05.st.sync.aligned.32x32b.x{n}.b32 [{taddr_q}+{col + mb * g.N + c0}], "
               f"{{{', '.join([zero] * n)}}}")
    tmem_rows(em, g, body)
    em.ins("tcgen05.wait::st.sync.aligned")


def _mov_zero(em: KernelEmitter) -> str:
    r = em.new("f")
    em.ins(f"mov.f32 {r}, 0f00000000")
    return r
