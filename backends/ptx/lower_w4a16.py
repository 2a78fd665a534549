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

**Decode** (w4a16_decode.py, without lookup tables): a 32-bit word of 8 e2m1 codes becomes four
f16x2 / bf16x2 A registers, each pair multiplied once by its block's scale splat, and the
activation registers are permuted (`prmt`) into the same K pairing.  f16 activations on
sm_89+ go through e4m3 bytes and `cvt.rn.f16x2.e4m3x2`; sm_80 and bf16 place the code bits
directly.  A word's pairs 0, 1 are one mma (a0..a3 = rows g, g+8 x pairs 0, 1), pairs 2, 3
the next; with one n8 tile (M <= 8) the two steps accumulate into two fragment sets (two
independent mma chains), added after the loop.  MX chunks whose scales the warp finds all in
the fold range (`vote.sync.all`) take one multiply per pair, the others a two-multiply
fallback; both round q * scale once, as `tile.dequantize` defines.

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
from .w4a16_decode import Decoder

#: opt-in shared memory per CTA: 227 KiB on sm_90 / sm_100, 163 KiB on sm_80 (A100)
SMEM_LIMITS = {80: 163 * 1024}
SMEM_DEFAULT = 227 * 1024

_ACT = {dt.float16: "f16", dt.bfloat16: "bf16"}
# f16: magnitude field (e e m) at bits 9..11 of each half; bf16: at bits 6..8


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
    # launch_pdl: the loop's weight prologue may run ahead of the wait for the previous kernel
    dependency_wait = em.defer_dependency_wait(op)
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
    dec = Decoder(em, act, block)
    scaled_acc = dec.scaled_acc
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
                      rg, ks, g, c, lane, dependency_wait)
        join = tma.emit_branch(
            em, lp, infos,
            lambda staged, xs: _compute(em, ring, None, c, d, act, bk, block, nt, dec, xs, d_odd, staged),
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
    if dependency_wait:                          # the weights are in flight; the activations follow
        em.dependency_wait()

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
            _compute(em, ring, cs, c, d, act, bk, block, nt, dec, sets[half], d_odd, staged[half])
        else:
            em.ins(f"cp.async.wait_group {S - 1}")
            _compute(em, ring, cs, c, d, act, bk, block, nt, dec, sets[half], d_odd)
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
                em.ins(f"fma.rn.f32 {r}, {r}, {dec.acc_factor}, {r0}")     # * 2^EXP + init

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


def _compute(em: KernelEmitter, ring: _Ring, cs: str, c: str, d: list, act: str, bk: int, block: int, nt: int,
             dec: Decoder, xs: list, d_odd: list | None = None, staged: tuple | None = None) -> None:
    """Decode the stage at `cs` and accumulate its mma.syncs into the fragments `d` (the odd k16
    steps into `d_odd` when given); `xs[t][q]`: the activation registers of n8 tile t, 16-byte
    piece q of this thread's K range; `staged`: the stage's scale bytes and weight words already in
    registers (`_fetch`), else they are read from shared memory here.

    MX: when every e8m0 scale the warp reads for this chunk is in the decoder's fold range
    (`vote.sync.all`), the chunk takes the one-multiply decode (the folded splat is exact, so
    one multiply rounds q * scale once, as the two multiplies do); other chunks (huge or NaN
    scales) take the two-multiply decode (w4a16_decode.py)."""
    if staged is None:
        staged = _stage_regs(em, bk, block)
        _fetch(em, ring, cs, c, bk, block, staged)
    es, words = staged

    def body(scales: list) -> None:
        for u in range(bk // 128):
            wa, wb = words[2 * u], words[2 * u + 1]
            for j in range(4):
                sj = (32 * u + 8 * j) // block
                ya, yb = dec.pairs(wa[j]), dec.pairs(wb[j])
                for y in ya:
                    dec.scale(y, scales[0][sj])
                for y in yb:
                    dec.scale(y, scales[1][sj])
                for t in range(nt):
                    b = dec.activations(xs[t][4 * u + j])
                    for step in range(2):
                        frag = "{" + ", ".join(d_odd[t] if step and d_odd is not None else d[t]) + "}"
                        a = [ya[2 * step], yb[2 * step], ya[2 * step + 1], yb[2 * step + 1]]
                        em.ins(f"mma.sync.aligned.m16n8k16.row.col.f32.{act}.{act}.f32 {frag}, "
                               f"{{{', '.join(a)}}}, {{{b[2 * step]}, {b[2 * step + 1]}}}, {frag}")

    if block != 32:                              # NV: one multiply (f16) / q then s (bf16) always
        body([[dec.splat(e) if dec.scaled_acc else (dec.pow2, dec.splat(e)) for e in row] for row in es])
        return
    ok = None
    for e in (e for row in es for e in row):
        p = dec.fold_range(e)
        if ok is not None:
            em.ins(f"and.pred {p}, {p}, {ok}")
        ok = p
    fast, slow, done = em.new("p"), em.label("w4a16_two_mul"), em.label("w4a16_chunk_done")
    em.ins(f"vote.sync.all.pred {fast}, {ok}, 0xffffffff")
    em.ins(f"@!{fast} bra {slow}")
    body([[dec.splat(e, fold=True) for e in row] for row in es])
    em.ins(f"bra.uni {done}")
    em.place(slow)
    body([[dec.fallback(e) for e in row] for row in es])
    em.place(done)
