"""`w4a16.mma_loop` on sm_80 / sm_90a: FP4 weights decoded in registers, fed to mma.sync f16/bf16.

The loop computes acc[BM tokens, BN weight rows] += X[BM, BK] @ deq(WQ, WS)[BN, BK]^T per
K chunk.  Swap-AB: the weights are the 16-row A operand of `mma.sync.m16n8k16`, the
activations the 8-wide B operand (BM/8 n8 tiles); D = acc^T stays in registers across the
loop.  Warps: warp w = ks * (BN/16) + rg owns weight rows 16rg..16rg+15 and takes K chunks
lb + ks, lb + ks + KS, ... (KS = num_warps * 16 / BN); the KS partial sums meet in shared
memory after the loop.

**Per-thread cp.async ring (weights and scales).**  Lane (g = lane/4, c = lane%4) copies, per
K chunk, exactly the bytes it will decode: BK/8 packed bytes of weight rows g and g+8 (K
[c*BK/4, (c+1)*BK/4) of the chunk, `cp.async.cg` of 16 bytes) and both rows' BK/block scale
bytes, into its own 16-byte units (unit u of stage s at smem + ((s*U + u)*T + tid)*16, so a
warp's `ld.shared.v4` is conflict-free); rows past the tensor's end copy 0 bytes (zero fill).
A thread reads back only what it copied, so `cp.async.wait_group` alone orders the ring: no
bar.sync in the loop.  `stages - 1` chunks are in flight while one is computed:

    prologue: issue chunks lb+ks, lb+ks+KS, ... (S-1 of them), one commit group each
    loop k:   issue chunk k+(S-1)KS (an empty group past ub); ld.global.nc the activations of
              chunk k+KS into the other register set; wait_group S-1; decode + mma chunk k
              (MX: vote on the chunk's scales, then the one- or the two-multiply decode)

With one n8 tile (M <= 8) and S >= 4 the stage is read one chunk ahead into a second register
set, so the ld.shared latency and the wait sit behind a chunk of decode (S - 2 >= 2 chunks stay
in flight; a chunk past ub is not read):

    before (per chunk): wait_group S-1; ld.shared (stage k); decode + mma (k)
    after:              wait_group S-2; ld.shared (stage k+KS) -> set B; decode + mma (k, set A)

**Activations** go straight from global memory (L1 / L2: every warp of the CTA reads them)
into registers, 16 bytes per load; a lane whose token row is past M never loads, its B
registers stay 0, so those accumulator columns stay exactly the initial value.

**Decode** (PTX_FACTS.md section 6, without lookup tables).  MMA's K order inside a thread is
free as long as A and B agree, so a 32-bit word w of 8 e2m1 codes (K elements k0..k7, low
nibble first) yields four f16x2 registers pairing elements (k_i, k_{i+4}), i = 0..3:

    y_i = ((w << (9 - 4i)) & 0x0E000E00) | ((w << (12 - 4i)) & 0x80008000)   // q * 2^-14 as f16
    MX:  a_i = y_i * (scale * 2^14)     // one mul.f16x2: the exact q * scale, rounded once
    NV:  a_i = y_i * scale              // q * s * 2^-14 is exact in f16 for every e4m3 s; the
                                        // accumulator is multiplied by 2^14 after the loop

(bf16: magnitude bits at 6..8, y = q * 2^-126, fma.rn.bf16x2 by scale * 2^126).  The
activation registers are permuted the same way (`prmt` of (k0,k1),(k4,k5) -> (k0,k4),(k1,k5)).
Steps i = 0, 1 of a word are one mma (a0..a3 = rows g, g+8 x pairs 0, 1), i = 2, 3 the next;
with one n8 tile (M <= 8) the two steps accumulate into two fragment sets (two independent
mma chains), added after the loop.

**Scales** become a splat f16x2/bf16x2 multiplier.  MX (e8m0 e): scale * 2^14 (f16) /
scale * 2^126 (bf16) is exact in the activation type for 1 <= e <= 128, so when every scale
byte a warp reads for a chunk is in that range (`vote.sync.all`, one predicate per chunk) the
chunk decodes with one multiply per f16x2 pair.  Otherwise the chunk takes a two-multiply
fallback, per scale either (y * 1) * (scale * 2^14) (1 <= e <= 128) or (y * 2^14) * scale
(e -> f32 bits e << 23: e = 0 reads 0, the NaN scale 0xFF reads inf), both one rounding of the
exact q * scale.  Before and after, for a chunk of in-range scales (f16, per pair):

    before: shl, shl, and, lop3, mul.rn.f16x2 y, y, 2^14, mul.rn.f16x2 y, y, s
    after:  shl, shl, and, lop3, mul.rn.f16x2 y, y, s * 2^14

NV (e4m3 b): f16 bits ((b & 0x80) << 8 | (b & 0x7F) << 7) * 2^8, rounded to the activation
type.  So a weight is the activation type's rounding of q * scale, as `tile.dequantize`
defines, for every MX scale 2^-126 .. 2^15 in f16 (all finite ones in bf16) and every e4m3 one.

Epilogue: wait for every copy, bar.sync, each K warp's fragments -> its row-major [BM, BN] f32
tile in smem, bar.sync, the KS tiles summed into the canonical blocked layout.
"""

from __future__ import annotations

from tilec import dtypes as dt
from tilec.dialects.w4a16 import MmaLoopOp

from .emitter import KernelEmitter, Val, lowers
from .exchange import load_f32_tile, store_tile, thread_base
from . import lower_w4a16_tma as tma
from .layout import Blocked

#: opt-in shared memory per CTA: 227 KiB on sm_90 / sm_100, 163 KiB on sm_80 (A100)
SMEM_LIMITS = {80: 163 * 1024}
SMEM_DEFAULT = 227 * 1024

_ACT = {dt.float16: "f16", dt.bfloat16: "bf16"}
# f16: magnitude field (e e m) at bits 9..11 of each half; bf16: at bits 6..8
_MAG = {"f16": (9, 0x0E000E00, 0x74007400), "bf16": (6, 0x01C001C0, 0x7E807E80)}   # shift, mask, 2^14 / 2^126


def _u64(em: KernelEmitter, x) -> str:
    r = em.new("rd")
    if isinstance(x, int):
        em.ins(f"mov.u64 {r}, {x}")
    else:
        em.ins(f"cvt.u64.u32 {r}, {x}")
    return r


def _row_ptr(em: KernelEmitter, base: str, row: str, row_bytes, extra) -> str:
    """base + row * row_bytes + extra (u64), row / row_bytes / extra u32 registers or ints."""
    r = em.new("rd")
    em.ins(f"mul.wide.u32 {r}, {row}, {row_bytes}")
    em.ins(f"add.u64 {r}, {r}, {base}")
    if extra != 0:
        em.ins(f"add.u64 {r}, {r}, {_u64(em, extra)}")
    return r


def _lt(em: KernelEmitter, a: str, b) -> str:
    p = em.new("p")
    em.ins(f"setp.lt.u32 {p}, {a}, {b}")
    return p


def _src_size(em: KernelEmitter, valid: str, size: int) -> str:
    r = em.new("r")
    em.ins(f"selp.u32 {r}, {size}, 0, {valid}")
    return r


class _Ring:
    """Offsets of a thread's 16-byte units in the per-thread ring (see the module docstring)."""

    def __init__(self, em: KernelEmitter, bk: int, block: int, stages: int):
        self.T = em.num_threads
        self.w_units = 2 * (bk // 128)            # rows g, g+8: BK/8 bytes each
        self.sb = bk // block                     # scale bytes per row and chunk (4, 8, 16)
        self.s_units = max(1, 2 * self.sb // 16)
        self.U = self.w_units + self.s_units
        self.stage_bytes = self.U * self.T * 16
        self.bytes = stages * self.stage_bytes

    def unit(self, u: int) -> int:
        return u * self.T * 16

    def w(self, r: int, u: int, bk: int) -> int:
        return self.unit(r * (bk // 128) + u)

    def scale(self, r: int) -> int:
        """Byte offset of row r's scales (within its unit: + byte index)."""
        if self.sb == 16:
            return self.unit(self.w_units + r)
        return self.unit(self.w_units) + r * self.sb


def _require_whole_chunks(em: KernelEmitter, k_dim, bk: int, d) -> None:
    """The loop reads whole [*, bk] chunks with 16-byte cp.async copies: K must be a multiple
    of bk.  A static K that is not is a compile error; a run-time one is checked once at
    entry and traps (instead of misaligned copies past the rows)."""
    if isinstance(k_dim, int):
        if k_dim % bk:
            raise em.unsupported("w4a16.mma_loop", d, f"K = {k_dim} is not a multiple of the chunk {bk}")
        return
    t, p = em.new("r"), em.new("p")
    em.comment(f"w4a16.mma_loop: K must be a multiple of {bk}")
    em.ins(f"rem.u32 {t}, {em.as_reg(k_dim)}, {bk}")
    em.ins(f"setp.ne.u32 {p}, {t}, 0")
    em.ins(f"@{p} trap")


@lowers(MmaLoopOp)
def lower_mma_loop(em: KernelEmitter, op: MmaLoopOp) -> None:
    em.require_sm(80, "w4a16.mma_loop")
    xi, wi, si = em.tensors[op.x], em.tensors[op.wq], em.tensors[op.ws]
    act = _ACT.get(xi.dtype)
    bm, bn = op.acc.type.get_shape()
    bk, block, S = op.bk.value.data, op.block.value.data, op.stages.value.data
    if act is None:
        raise em.unsupported("w4a16.mma_loop", xi.dtype, "activations must be f16 or bf16")
    rg_n = bn // 16                              # warps along the weight rows
    if em.num_warps % rg_n:
        raise em.unsupported("w4a16.mma_loop", xi.dtype, f"needs a multiple of {rg_n} warps (one per 16 weight "
                             f"rows, more split K), the kernel has {em.num_warps}")
    ks_n = em.num_warps // rg_n                  # warps along K: each takes every ks_n-th chunk
    nt = bm // 8
    ring = _Ring(em, bk, block, S)
    limit = SMEM_LIMITS.get(em.sm, SMEM_DEFAULT)
    if ring.bytes > limit:                      # fewer stages where shared memory is short
        S = limit // ring.stage_bytes
        if S < 2:
            raise em.unsupported("w4a16.mma_loop", xi.dtype, f"two stages need {2 * ring.stage_bytes} B of "
                                 f"shared memory, more than {limit}")
        ring = _Ring(em, bk, block, S)
    em.reserve_smem(max(ring.bytes, ks_n * bm * bn * 4))
    em.comment(f"w4a16.mma_loop: [{bm} x {bk}] @ fp4[{bn} x {bk}]^T per chunk, {rg_n} x {ks_n} warps (rows x K), "
               f"{S}-stage cp.async ring, {act} mma.sync")

    # ---- thread geometry: warp = ks * rg_n + rg
    tid = em.tid
    lane, warp, rg, ks, g, c = (em.new("r") for _ in range(6))
    em.ins(f"and.b32 {lane}, {tid}, 31")
    em.ins(f"shr.u32 {warp}, {tid}, 5")
    em.ins(f"rem.u32 {rg}, {warp}, {rg_n}")
    em.ins(f"div.u32 {ks}, {warp}, {rg_n}")
    em.ins(f"shr.u32 {g}, {lane}, 2")
    em.ins(f"and.b32 {c}, {lane}, 3")
    tb = em.new("r")
    em.ins(f"mad.lo.u32 {tb}, {tid}, 16, {em.smem_base}")
    first = em.new("p")                          # this warp starts from the accumulator (the others from 0)
    em.ins(f"setp.eq.u32 {first}, {ks}, 0")

    x_row = em.as_reg(em.get(op.x_row).regs[0])
    w_row = em.as_reg(em.get(op.w_row).regs[0])
    lb = em.new("r")
    em.ins(f"add.s32 {lb}, {em.as_reg(em.get(op.lb).regs[0])}, {ks}")
    ub = em.as_reg(em.get(op.ub).regs[0])
    _require_whole_chunks(em, xi.dims[-1], bk, xi.dtype)

    # ---- accumulator fragments: d[t] = rows (g, g+8) x tokens (8t + 2c, +1)
    acc = em.get(op.acc)
    # f16 with NV scales accumulates q * s * 2^-14 (exact decoded weights, one multiply): the
    # fragments start at 0 and end as d * 2^14 + init
    scaled_acc = act == "f16" and block == 16
    d = [[em.new("f") for _ in range(4)] for _ in range(nt)]
    init = d
    if scaled_acc:
        init = [[em.new("f") for _ in range(4)] for _ in range(nt)]
    if acc.uniform:
        for frag in init:
            for r in frag:
                em.ins(f"selp.f32 {r}, {acc.regs[0]}, 0f00000000, {first}")
    else:
        em.bar()
        store_tile(em, acc, 0)
        em.bar()
        for t in range(nt):
            addr = _frag_addr(em, rg, g, c, t, bn, 0)
            for q, (dr, dc) in enumerate(((0, 0), (0, 1), (8, 0), (8, 1))):
                em.ins(f"ld.shared.f32 {init[t][q]}, [{addr}+{(dc * bn + dr) * 4}]")
                em.ins(f"selp.f32 {init[t][q]}, {init[t][q]}, 0f00000000, {first}")
        em.bar()
    if scaled_acc:
        for frag in d:
            for r in frag:
                em.ins(f"mov.f32 {r}, 0f00000000")
    # one n8 tile (M <= 8): the odd k16 steps accumulate into a second fragment set, so two
    # mma.sync chains run side by side instead of one chain of BK/16 dependent mmas per chunk
    d_odd = None
    if nt == 1:
        d_odd = [[em.new("f") for _ in range(4)]]
        for r in d_odd[0]:
            em.ins(f"mov.f32 {r}, 0f00000000")

    # ---- global sources of this thread (pointers at this warp's first chunk), advanced ks_n chunks per issue
    wrow = [em.new("r"), em.new("r")]
    em.ins(f"mad.lo.u32 {wrow[0]}, {rg}, 16, {w_row}")
    em.ins(f"add.u32 {wrow[0]}, {wrow[0]}, {g}")
    em.ins(f"add.u32 {wrow[1]}, {wrow[0]}, 8")
    n_rows, kw = wi.dims[0], wi.dims[1]
    wq_row = (kw + 1) // 2 if isinstance(kw, int) else em.new("r")
    if not isinstance(kw, int):
        em.ins(f"add.u32 {wq_row}, {kw}, 1")
        em.ins(f"shr.u32 {wq_row}, {wq_row}, 1")
    ws_row = si.dims[1]
    kx = xi.dims[1]
    x_rowb = kx * 2 if isinstance(kx, int) else em.new("r")
    if not isinstance(kx, int):
        em.ins(f"shl.b32 {x_rowb}, {kx}, 1")
    cb_w, cb_x = em.new("r"), em.new("r")
    em.ins(f"mul.lo.u32 {cb_w}, {c}, {bk // 8}")
    em.ins(f"mul.lo.u32 {cb_x}, {c}, {bk // 2}")
    lb64 = em.new("rd")
    em.ins(f"cvt.s64.s32 {lb64}, {lb}")

    def start(ptr: str, row: str, row_bytes, per_thread, chunk_bytes: int) -> str:
        p = _row_ptr(em, ptr, row, row_bytes, per_thread)
        em.ins(f"mad.lo.s64 {p}, {lb64}, {chunk_bytes}, {p}")
        return p

    # (pointer, chunk bytes, [(ring offset, global offset, size)], src-size register, cache, token predicate):
    # weights stream through L2 only (.cg); activations are read straight into registers (below)
    srcs = []
    for r in range(2):
        ok = _lt(em, wrow[r], n_rows)
        wp = start(wi.ptr, wrow[r], wq_row, cb_w, bk // 2)
        srcs.append((wp, bk // 2, [(ring.w(r, u, bk), 16 * u, 16) for u in range(bk // 128)], _src_size(em, ok, 16),
                     "cg", None))
        sp = start(si.ptr, wrow[r], ws_row, 0, ring.sb)
        srcs.append((sp, ring.sb, [(ring.scale(r), 0, ring.sb)], _src_size(em, ok, ring.sb),
                     "cg" if ring.sb == 16 else "ca", None))
    xv, xps = [], []
    for t in range(nt):
        xr = em.new("r")
        em.ins(f"add.u32 {xr}, {x_row}, {8 * t}")
        em.ins(f"add.u32 {xr}, {xr}, {g}")
        ok = _lt(em, xr, xi.dims[0])
        xv.append(ok)
        xps.append(start(xi.ptr, xr, x_rowb, cb_x, bk * 2))

    consts = _constants(em, act, scaled_acc)
    # activation registers, two sets [tile][16-byte piece] (8 halves of this thread's K range each):
    # chunk k computes from one set while chunk k + KS loads into the other (the loop body is
    # emitted twice, one per set); rows past M are never loaded and stay 0
    sets = [[[[em.new("r") for _ in range(4)] for _ in range(bk // 32)] for _ in range(nt)] for _ in range(2)]
    for regs in (r for xs in sets for tile_regs in xs for piece in tile_regs for r in piece):
        em.ins(f"mov.b32 {regs}, 0")

    def load_x(xs, chunk: str) -> None:
        """Activations of `chunk` (if < ub) into `xs`; advances the pointers by KS chunks."""
        more = em.new("p")
        em.ins(f"setp.lt.s32 {more}, {chunk}, {ub}")
        for t in range(nt):
            guard = em.new("p")
            em.ins(f"and.pred {guard}, {more}, {xv[t]}")
            for q in range(bk // 32):
                em.ins(f"@{guard} ld.global.nc.v4.b32 {{{', '.join(xs[t][q])}}}, [{xps[t]}+{16 * q}]")
            em.ins(f"add.s64 {xps[t]}, {xps[t]}, {bk * 2 * ks_n}")

    join = None
    infos = {"x": xi, "wq": wi, "ws": si}
    tma_stages = tma.stages(em, infos, bk, block, bn, bm, ks_n, op.stages.value.data, limit)
    if tma_stages:
        lp = tma.Loop(op, bk, block, bn, nt, ks_n, tma_stages, em.as_reg(em.get(op.lb).regs[0]), lb, ub, w_row, x_row, xv,
                      rg, ks, g, c, lane)
        join = tma.emit_branch(
            em, lp, infos,
            lambda staged, xs: _compute(em, ring, None, c, d, act, bk, block, nt, consts, xs, d_odd, staged),
            sets, lambda: _stage_regs(em, bk, block), load_x)

    ring_end = em.new("r")
    em.ins(f"add.u32 {ring_end}, {tb}, {ring.bytes}")
    it_p, ps = em.new("r"), em.new("r")
    em.ins(f"mov.u32 {it_p}, {lb}")
    em.ins(f"mov.u32 {ps}, {tb}")

    def issue() -> None:
        """Copy chunk `it_p` into stage `ps` (if it_p < ub), commit, advance."""
        more = em.new("p")
        em.ins(f"setp.lt.s32 {more}, {it_p}, {ub}")
        for ptr, step, pieces, size, kind, tok in srcs:
            guard = more
            if tok is not None:
                guard = em.new("p")
                em.ins(f"and.pred {guard}, {more}, {tok}")
            for ring_off, g_off, n in pieces:
                em.ins(f"@{guard} cp.async.{kind}.shared.global [{ps}+{ring_off}], [{ptr}+{g_off}], {n}, {size}")
            em.ins(f"add.s64 {ptr}, {ptr}, {step * ks_n}")
        em.ins("cp.async.commit_group")
        em.ins(f"add.u32 {it_p}, {it_p}, {ks_n}")
        em.ins(f"add.u32 {ps}, {ps}, {ring.stage_bytes}")
        wrap = em.new("p")
        em.ins(f"setp.ge.u32 {wrap}, {ps}, {ring_end}")
        em.ins(f"@{wrap} sub.u32 {ps}, {ps}, {ring.bytes}")

    for _ in range(S - 1):
        issue()


    it, cs, nxt = em.new("r"), em.new("r"), em.new("r")
    em.ins(f"mov.u32 {it}, {lb}")
    em.ins(f"mov.u32 {cs}, {tb}")
    load_x(sets[0], it)
    # one n8 tile and >= 4 stages: the packed weights and scale bytes of chunk k + KS are read
    # from shared memory into registers (a second set) while chunk k decodes, so the ld.shared
    # latency and the cp.async wait sit behind a chunk of work; the ring still has S - 2 >= 2
    # chunks in flight.  Otherwise each chunk reads its stage right after its wait_group.
    prefetch = nt == 1 and S >= 4
    staged = None
    if prefetch:
        staged = [_stage_regs(em, bk, block) for _ in range(2)]
        em.ins(f"cp.async.wait_group {S - 2}")
        first_ok = em.new("p")
        em.ins(f"setp.lt.s32 {first_ok}, {it}, {ub}")
        _fetch(em, ring, cs, c, bk, block, staged[0], first_ok)
    top, done = em.label("w4a16_loop"), em.label("w4a16_done")
    em.place(top)
    for half in range(2):
        fin = em.new("p")
        em.ins(f"setp.ge.s32 {fin}, {it}, {ub}")
        em.ins(f"@{fin} bra {done}")
        issue()
        em.ins(f"add.u32 {nxt}, {it}, {ks_n}")
        load_x(sets[1 - half], nxt)
        if prefetch:
            em.ins(f"cp.async.wait_group {S - 2}")
            ns, nok, nwrap = em.new("r"), em.new("p"), em.new("p")
            em.ins(f"add.u32 {ns}, {cs}, {ring.stage_bytes}")
            em.ins(f"setp.ge.u32 {nwrap}, {ns}, {ring_end}")
            em.ins(f"@{nwrap} sub.u32 {ns}, {ns}, {ring.bytes}")
            em.ins(f"setp.lt.s32 {nok}, {nxt}, {ub}")
            _fetch(em, ring, ns, c, bk, block, staged[1 - half], nok)
            _compute(em, ring, cs, c, d, act, bk, block, nt, consts, sets[half], d_odd, staged[half])
        else:
            em.ins(f"cp.async.wait_group {S - 1}")
            _compute(em, ring, cs, c, d, act, bk, block, nt, consts, sets[half], d_odd)
        em.ins(f"mov.u32 {it}, {nxt}")
        em.ins(f"add.u32 {cs}, {cs}, {ring.stage_bytes}")
        wrap = em.new("p")
        em.ins(f"setp.ge.u32 {wrap}, {cs}, {ring_end}")
        em.ins(f"@{wrap} sub.u32 {cs}, {cs}, {ring.bytes}")
    em.ins(f"bra {top}")
    em.place(done)
    em.ins("cp.async.wait_all")
    if join is not None:
        em.place(join)
    if d_odd is not None:
        for r, r2 in zip(d[0], d_odd[0]):
            em.ins(f"add.f32 {r}, {r}, {r2}")

    if scaled_acc:
        for frag, frag0 in zip(d, init):
            for r, r0 in zip(frag, frag0):
                em.ins(f"fma.rn.f32 {r}, {r}, 0f46800000, {r0}")     # * 2^14 + init

    # ---- epilogue: each K warp's fragments -> its row-major [BM, BN] f32 slice of smem; sum -> blocked layout
    em.bar()
    for t in range(nt):
        addr = _frag_addr(em, rg, g, c, t, bn, ks, bm * bn)
        for q, (dr, dc) in enumerate(((0, 0), (0, 1), (8, 0), (8, 1))):
            em.ins(f"st.shared.f32 [{addr}+{(dc * bn + dr) * 4}], {d[t][q]}")
    em.bar()
    layout = Blocked((bm, bn), em.num_threads)
    base = em.as_reg(thread_base(em, layout, 4, 0))
    regs = load_f32_tile(em, layout, base)
    for k in range(1, ks_n):
        part = load_f32_tile(em, layout, em.as_reg(thread_base(em, layout, 4, k * bm * bn * 4)))
        for s_, (a, b) in enumerate(zip(regs, part)):
            if not layout.slot_never_valid(s_):
                em.ins(f"add.f32 {a}, {a}, {b}")
    em.set(op.result, Val(dt.float32, layout, regs))


def _frag_addr(em: KernelEmitter, rg: str, g: str, c: str, t: int, bn: int, ks, tile: int = 0) -> str:
    """smem address of acc[8t + 2c, 16 rg + g] in the row-major [BM, BN] f32 tile number `ks`
    (`tile` = BM * BN elements apart)."""
    a, col = em.new("r"), em.new("r")
    em.ins(f"mad.lo.u32 {col}, {rg}, 16, {g}")
    em.ins(f"shl.b32 {a}, {c}, 1")
    em.ins(f"add.u32 {a}, {a}, {8 * t}")
    em.ins(f"mad.lo.u32 {a}, {a}, {bn}, {col}")
    if ks != 0:
        em.ins(f"mad.lo.u32 {a}, {ks}, {tile}, {a}")
    em.ins(f"mad.lo.u32 {a}, {a}, 4, {em.smem_base}")
    return a


def _constants(em: KernelEmitter, act: str, scaled_acc: bool) -> dict:
    _, _, pow2 = _MAG[act]
    k = {"pow2": em.new("r"), "nzero": em.new("r"), "scaled_acc": scaled_acc}
    em.ins(f"mov.b32 {k['pow2']}, {pow2}")
    em.ins(f"mov.b32 {k['nzero']}, 0x80008000")   # -0.0 x2: x + -0 == x for every x
    return k


def _stage_regs(em: KernelEmitter, bk: int, block: int) -> tuple[list, list]:
    """Registers for one stage of a thread: scale bytes [row][j] and weight words [2u + row][4]."""
    q = max(1, bk // 4 // block)
    return ([[em.new("r") for _ in range(q)] for _ in range(2)],
            [[em.new("r") for _ in range(4)] for _ in range(2 * (bk // 128))])


def _fetch(em: KernelEmitter, ring: _Ring, cs: str, c: str, bk: int, block: int, regs: tuple,
           guard: str | None = None) -> None:
    """Read this thread's scale bytes and packed weight words of the stage at `cs` into `regs`
    (`_stage_regs`); `guard`: a predicate (a chunk past the loop's end is not read)."""
    es, words = regs
    g = f"@{guard} " if guard else ""
    q = len(es[0])
    sc_addr = em.new("r")                        # this thread's first scale byte of row 0
    em.ins(f"mad.lo.u32 {sc_addr}, {c}, {q}, {cs}")
    for r in range(2):
        for j in range(q):
            em.ins(f"{g}ld.shared.u8 {es[r][j]}, [{sc_addr}+{ring.scale(r) + j}]")
    for u in range(bk // 128):
        for r in range(2):
            em.ins(f"{g}ld.shared.v4.b32 {{{', '.join(words[2 * u + r])}}}, [{cs}+{ring.w(r, u, bk)}]")


def _splat(em: KernelEmitter, f: str, act: str) -> str:
    """The f16x2 / bf16x2 splat of the f32 register `f` (rounded to nearest even)."""
    h, out = em.new("h"), em.new("r")
    em.ins(f"cvt.rn.{act}.f32 {h}, {f}")
    em.ins(f"mov.b32 {out}, {{{h}, {h}}}")
    return out


def _scale_splat(em: KernelEmitter, e: str, block: int, act: str, fold: bool = False) -> str:
    """The f16x2 / bf16x2 splat of the scale byte `e` (a u32 register).  `fold` (MX only, for
    1 <= e <= 128): the splat of scale * 2^14 (f16) / scale * 2^126 (bf16), exact in the type."""
    f = em.new("f")
    if block == 32:                              # e8m0: 2^(e - 127) as f32 bits
        b = em.new("r")
        if fold:
            em.ins(f"mad.lo.u32 {b}, {e}, 8388608, {(14 if act == 'f16' else 126) << 23}")
        else:
            em.ins(f"shl.b32 {b}, {e}, 23")
        em.ins(f"mov.b32 {f}, {b}")
    else:                                        # e4m3 -> f16 bits of s * 2^-8 -> f32 * 2^8
        s, m, h = em.new("r"), em.new("r"), em.new("h")
        em.ins(f"and.b32 {s}, {e}, 128")
        em.ins(f"shl.b32 {s}, {s}, 8")
        em.ins(f"and.b32 {m}, {e}, 127")
        em.ins(f"shl.b32 {m}, {m}, 7")
        em.ins(f"or.b32 {s}, {s}, {m}")
        em.ins(f"cvt.u16.u32 {h}, {s}")
        em.ins(f"cvt.f32.f16 {f}, {h}")
        em.ins(f"mul.f32 {f}, {f}, 0f43800000")
    return _splat(em, f, act)


def _decode(em: KernelEmitter, w: str, scale: str, act: str, k: dict, mode: str) -> list[str]:
    """Four f16x2/bf16x2 registers: elements (i, i+4) of the 8 e2m1 codes in `w`, times `scale`.
    `mode`: "acc" (NV f16: one multiply by the scale, the 2^14 goes to the accumulator), "one"
    (MX, folded scale: one multiply by scale * 2^14 / 2^126), "two" (q first, then the scale)."""
    shift, mask, _ = _MAG[act]
    out = []
    for i in range(4):
        a, b, y = em.new("r"), em.new("r"), em.new("r")
        sa, sb = shift - 4 * i, 12 - 4 * i
        em.ins(f"shl.b32 {a}, {w}, {sa}" if sa >= 0 else f"shr.u32 {a}, {w}, {-sa}")
        if sb:
            em.ins(f"shl.b32 {b}, {w}, {sb}")
            em.ins(f"and.b32 {b}, {b}, 0x80008000")
        else:
            em.ins(f"and.b32 {b}, {w}, 0x80008000")
        em.ins(f"lop3.b32 {y}, {a}, {b}, {mask}, 0xEC")          # (a & mask) | b
        if mode in ("acc", "one"):               # q * 2^-14 * s (NV), q * 2^-14 * (s * 2^14) (MX): one rounding
            if act == "f16":
                em.ins(f"mul.rn.f16x2 {y}, {y}, {scale}")
            else:
                em.ins(f"fma.rn.bf16x2 {y}, {y}, {scale}, {k['nzero']}")
        else:                                    # "two": scale = (pre-multiplier, scale)
            pre, sc = scale if isinstance(scale, tuple) else (k["pow2"], scale)
            if act == "f16":
                em.ins(f"mul.rn.f16x2 {y}, {y}, {pre}")
                em.ins(f"mul.rn.f16x2 {y}, {y}, {sc}")
            else:
                em.ins(f"fma.rn.bf16x2 {y}, {y}, {pre}, {k['nzero']}")
                em.ins(f"fma.rn.bf16x2 {y}, {y}, {sc}, {k['nzero']}")
        out.append(y)
    return out


def _compute(em: KernelEmitter, ring: _Ring, cs: str, c: str, d: list, act: str, bk: int, block: int, nt: int,
             k: dict, xs: list, d_odd: list | None = None, staged: tuple | None = None) -> None:
    """Decode the stage at `cs` and accumulate its mma.syncs into the fragments `d` (the odd k16
    steps into `d_odd` when given); `xs[t][q]`: the activation registers of n8 tile t, 16-byte
    piece q of this thread's K range; `staged`: the stage's scale bytes and weight words already in
    registers (`_fetch`), else they are read from shared memory here.

    MX: when every e8m0 scale the warp reads for this chunk lies in [2^-126, 2] (1 <= e <= 128,
    `vote.sync.all`), the chunk takes the one-multiply decode (scale * 2^14 is exact in f16,
    so (q * 2^-14) * (scale * 2^14) rounds once to f16(q * scale), as the two multiplies do);
    other chunks (huge, zero or NaN scales) take the two-multiply decode."""
    if staged is None:
        staged = _stage_regs(em, bk, block)
        _fetch(em, ring, cs, c, bk, block, staged)
    es, words = staged

    def body(mode: str, scales: list) -> None:
        for u in range(bk // 128):
            wa, wb = words[2 * u], words[2 * u + 1]
            for j in range(4):
                sj = (32 * u + 8 * j) // block
                ya = _decode(em, wa[j], scales[0][sj], act, k, mode)
                yb = _decode(em, wb[j], scales[1][sj], act, k, mode)
                for t in range(nt):
                    x = xs[t][4 * u + j]
                    b = [em.new("r") for _ in range(4)]
                    em.ins(f"prmt.b32 {b[0]}, {x[0]}, {x[2]}, 0x5410")
                    em.ins(f"prmt.b32 {b[1]}, {x[0]}, {x[2]}, 0x7632")
                    em.ins(f"prmt.b32 {b[2]}, {x[1]}, {x[3]}, 0x5410")
                    em.ins(f"prmt.b32 {b[3]}, {x[1]}, {x[3]}, 0x7632")
                    for step in range(2):
                        frag = "{" + ", ".join(d_odd[t] if step and d_odd is not None else d[t]) + "}"
                        a = [ya[2 * step], yb[2 * step], ya[2 * step + 1], yb[2 * step + 1]]
                        em.ins(f"mma.sync.aligned.m16n8k16.row.col.f32.{act}.{act}.f32 {frag}, "
                               f"{{{', '.join(a)}}}, {{{b[2 * step]}, {b[2 * step + 1]}}}, {frag}")

    if block != 32:                              # NV: one multiply (f16) / q then s (bf16) always
        body("acc" if k["scaled_acc"] else "two", [[_scale_splat(em, e, block, act) for e in row] for row in es])
        return
    ok = None
    for e in (e for row in es for e in row):
        t, p = em.new("r"), em.new("p")
        em.ins(f"add.u32 {t}, {e}, -1")
        em.ins(f"setp.lt.u32 {p}, {t}, 128")     # 1 <= e <= 128
        if ok is not None:
            em.ins(f"and.pred {p}, {p}, {ok}")
        ok = p
    fast, slow, done = em.new("p"), em.label("w4a16_two_mul"), em.label("w4a16_chunk_done")
    em.ins(f"vote.sync.all.pred {fast}, {ok}, 0xffffffff")
    em.ins(f"@!{fast} bra {slow}")
    body("one", [[_scale_splat(em, e, block, act, fold=True) for e in row] for row in es])
    em.ins(f"bra.uni {done}")
    em.place(slow)
    body("two", [[_fallback_scale(em, e, act, k) for e in row] for row in es])
    em.place(done)


def _fallback_scale(em: KernelEmitter, e: str, act: str, k: dict) -> tuple[str, str]:
    """(pre-multiplier, scale) splats of the two-multiply MX decode: (1, scale * 2^14 / 2^126)
    where that is exact (1 <= e <= 128), else (2^14 / 2^126, scale): q * scale rounds once,
    so every scale a chunk holds decodes as on the one-multiply path where that one is exact."""
    folded, plain = _scale_splat(em, e, 32, act, fold=True), _scale_splat(em, e, 32, act)
    t, p, pre, sc = em.new("r"), em.new("p"), em.new("r"), em.new("r")
    em.ins(f"add.u32 {t}, {e}, -1")
    em.ins(f"setp.lt.u32 {p}, {t}, 128")
    em.ins(f"selp.b32 {pre}, {'0x3C003C00' if act == 'f16' else '0x3F803F80'}, {k['pow2']}, {p}")
    em.ins(f"selp.b32 {sc}, {folded}, {plain}, {p}")
    return pre, sc
