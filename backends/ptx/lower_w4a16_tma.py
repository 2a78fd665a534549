"""`w4a16.mma_loop` on sm_90a: packed weights, scales (and activations) streamed by TMA on mbarriers.

lower_w4a16.py's per-thread cp.async ring keeps one chunk per warp (BN x BK/2 bytes per CTA
and stage: 4 KiB at BN = 64, BK = 128) in flight and spends one 16-byte `cp.async` per thread,
row and chunk.  On sm_90a the CTA's weights move instead as one TMA box per K warp and stage,
[BN rows x BK/2 bytes], plus one [BN x KS*BK/block] box of scale bytes: a stage holds the KS
chunks that the CTA's KS K-warps compute side by side (16 KiB at BN = 64, KS = 4), S stages
are in flight, and one thread issues them all.  From two n8 token tiles up (M > 8) the
activations ride in the same stages, [BM x 64 halves] boxes with the 128-byte swizzle, so the
CTA reads them from global memory once instead of once per row-group warp
(`ACTIVATIONS_BY_TMA`).  Decode and mma.sync are lower_w4a16.py's, unchanged; only where a
thread's packed words, scale bytes and activations come from differs:

    before (per thread and chunk): cp.async.cg x 2 rows (+ scales); commit; wait_group S-1
    after  (per CTA and stage):    thread 0: mbarrier.arrive.expect_tx full[s];
                                             cp.async.bulk.tensor.2d x KS (weights) + 1 (scales)
                                             (+ KS * BK/64 activation boxes)
                                   every warp: mbarrier.try_wait full[s]; ld.shared (its rows and
                                             chunk); bar.warp.sync; lane 0: mbarrier.arrive empty[s]
                                   thread 0: refills stage s once empty[s] completes

On the H100 (bench/RESULTS.md, K = N = 8192) this took M = 16 from 38.6 to 26.5 us and M = 1
from 21.7 to 20.2.

**Programmatic dependent launch** (`launch_pdl=True`, `KernelEmitter.defer_dependency_wait`):
the kernel's wait for the previous kernel moves from its entry to after the prologue's weight and
scale boxes, so the first stages stream in while that kernel finishes; the activations (by
`ld.global` or their TMA boxes, issued after the wait on the same full barriers) and everything
after depend on it.  The cp.async fallback waits after its weight prologue alike.

Shared memory (from the 1024-byte aligned base): S weight stages of KS boxes, box k at
`k * BN*BK/2` holding rows w_row .. w_row+BN-1 of chunk lb + j*KS + k row-major (BK/2 bytes a
row: a warp's `ld.shared.v4` of rows g, g+1 x lanes c covers 128 contiguous bytes, conflict
free), then S activation stages (KS * BK/64 boxes of BM x 128 bytes, when they ride along),
then S scale stages [BN x KS*BK/block + 16] (TMA's innermost coordinate must be a 16-byte
multiple, so the box starts at the 16-byte boundary below the stage's first scale byte), then
2S mbarriers (full: 1 arrival + the transaction bytes; empty: one arrival per warp).  Every warp runs the same J = ceil((ub - lb)
/ KS) iterations (its chunk past ub is fetched from zero-filled or foreign rows and not
computed), so the barrier counts stay uniform.  Rows past N and chunks past K read as zeros
(TMA's out-of-bounds fill).

The tensor maps read the packed FP4 rows as bytes (role dtype "fp4_bytes"), the scales as
bytes and the activations as f16 / bf16; their rows must be 16-byte multiples.  The kernel
tests that at entry (the three pointers 16-byte aligned, K % 32 == 0, K / block % 16 == 0,
K % 8 == 0: exactly `tma_ready`'s test of the maps) and otherwise runs the cp.async ring, whose
maps the launch leaves unbuilt.
"""

from __future__ import annotations

from dataclasses import dataclass

from .emitter import KernelEmitter, KernelParam
from .lower_tgpu_memory import ALIGN, aligned_base, stage_and_parity, wait_parity

#: off: sm_90a takes the cp.async ring too (bench/fp4.py --sweep compares the two)
ENABLED = True
#: where the activations come from: True, in the TMA stages (one [BM x 64] box per 64 K, read
#: back from shared memory); False, global memory (`ld.global.nc` one chunk ahead, as in the
#: cp.async ring); None (default), TMA from two n8 tiles (M > 8) up.  On the H100 (bench/fp4.py
#: --sweep, K = N = 8192): M = 16 26.5 us by TMA against 28.6 from global memory; M = 1 21.9 against
#: 20.2, its box being 7/8 zero fill and its few activation bytes L1 hits anyway.
ACTIVATIONS_BY_TMA: bool | None = None


@dataclass
class Loop:
    """What the K loop of one `w4a16.mma_loop` lowering works with (lower_w4a16.lower_mma_loop)."""

    op: object
    bk: int
    block: int
    bn: int
    nt: int
    ks_n: int
    stages: int
    lb0: str          # the op's first chunk (CTA-uniform)
    lb: str           # this warp's first chunk (lb0 + ks)
    ub: str
    w_row: str        # the CTA's first weight row
    x_row: str        # the CTA's first token row
    x_ok: list        # per n8 tile: this lane's token row is < M
    rg: str
    ks: str
    g: str
    c: str
    lane: str
    #: the kernel's programmatic-dependent-launch wait is this loop's to emit (`launch_pdl`):
    #: after the prologue's weight and scale boxes, before the activations
    dependency_wait: bool = False


#: (tensor, innermost multiple) of the maps, as the entry test and `tma_ready` check them:
#: packed weights K % 32 (16-byte rows), scales K/block % 16, activations K % 8
_MULTIPLES = (("wq", 32), ("ws", 16), ("x", 8))


def _activations_by_tma(nt: int) -> bool:
    """Whether the activations ride in the stages (`ACTIVATIONS_BY_TMA`) for `nt` n8 token tiles."""
    return nt >= 2 if ACTIVATIONS_BY_TMA is None else ACTIVATIONS_BY_TMA


def _stage_bytes(bk: int, block: int, bn: int, bm: int, ks_n: int) -> tuple[int, int, int]:
    """(weights, activations, scales) bytes of one stage (the module docstring's layout)."""
    return ks_n * bn * bk // 2, ks_n * (bk // 64) * bm * 128, bn * (ks_n * bk // block + 16)


def stages(em: KernelEmitter, infos: dict, bk: int, block: int, bn: int, bm: int, ks_n: int, wanted: int,
           limit: int) -> int:
    """The stages of the TMA loop (`wanted`, fewer where `limit` bytes of shared memory do not
    hold them), or 0 when it does not exist for this kernel (it still runs only when the entry
    test passes)."""
    if not ENABLED or em.sm < 90 or bn > 256 or bm > 256 or (ks_n * bk // block) % 16 or bk % 64:
        return 0
    if any(isinstance(infos[n].dims[1], int) and infos[n].dims[1] % m for n, m in _MULTIPLES):
        return 0
    w, x, sc = _stage_bytes(bk, block, bn, bm, ks_n)
    if not _activations_by_tma(bm // 8):
        x = 0
    fit = (limit - 3 * 1024) // (w + x + sc + 16)          # alignment padding, barriers
    return min(wanted, fit) if fit >= 2 else 0


def _tensormap(em: KernelEmitter, tensor, box: tuple[int, int], dtype: str, multiple: int,
               swizzle: int = 0) -> str:
    """A tensor-map kernel parameter over argument `tensor` (box innermost first) that the launch
    builds only when `tma_ready` holds (16-byte aligned base, innermost extent % `multiple`)."""
    role = ("tma", tensor.index, box, swizzle, dtype, f"k{multiple}")
    name = next((p.name for p in em.params if p.role == role), None)
    if name is None:
        name = f"p{tensor.index}_tma{sum(1 for p in em.params if p.kind == 'tensormap' and p.role[1] == tensor.index)}"
        em.params.append(KernelParam(name, "tensormap", role))
    r = em.new("rd")
    em.ins(f"mov.u64 {r}, {name}")
    em.ins(f"cvta.param.u64 {r}, {r}")
    return r


def _entry_test(em: KernelEmitter, infos: dict) -> str:
    """Predicate: all three maps are usable (mirrors `tilec.runtime.launch.tma_ready`)."""
    ok = em.new("p")
    em.ins(f"setp.eq.u32 {ok}, 1, 1")
    for info, multiple in ((infos[n], m) for n, m in _MULTIPLES):
        lo, t, p = em.new("r"), em.new("r"), em.new("p")
        em.ins(f"cvt.u32.u64 {lo}, {info.ptr}")
        k = info.dims[1]
        if isinstance(k, int):
            em.ins(f"and.b32 {t}, {lo}, 15")
        else:
            em.ins(f"and.b32 {lo}, {lo}, 15")
            em.ins(f"rem.u32 {t}, {k}, {multiple}")
            em.ins(f"or.b32 {t}, {t}, {lo}")
        em.ins(f"setp.eq.u32 {p}, {t}, 0")
        em.ins(f"and.pred {ok}, {ok}, {p}")
    return ok


def emit_branch(em: KernelEmitter, lp: Loop, infos: dict, compute, sets, stage_regs, load_x) -> str:
    """Entry test; when it holds, the TMA loop (accumulating through `compute`), then a jump to
    the returned join label.  Code after this call (the cp.async ring) runs when it fails.
    `infos`: the TensorInfo of "x", "wq", "ws"; `compute(staged, xs)`: decode + mma of one
    chunk; `sets`: the two activation register sets [tile][16-byte piece][4];
    `stage_regs()`: a fresh (scales, words) set; `load_x(xs, chunk)`: the activations of a
    chunk from global memory (when not `ACTIVATIONS_BY_TMA`)."""
    bk, block, bn, KS, S, nt = lp.bk, lp.block, lp.bn, lp.ks_n, lp.stages, lp.nt
    x_tma = _activations_by_tma(nt)
    bm = 8 * nt
    box_w = bn * bk // 2                          # one K warp's chunk: [BN rows x BK/2 bytes]
    sb = KS * bk // block                         # scale bytes per row and stage
    # TMA's innermost coordinate must be a 16-byte multiple (else: illegal instruction); a
    # stage's first scale byte lb0 * BK/block + j * sb is not when lb0 is not a multiple of
    # 16 / (BK/block) (split K), so the box starts 16-byte aligned below it, 16 bytes wider,
    # and threads read `shift` bytes in (the same for every stage: sb is a 16-byte multiple)
    s_box = sb + 16
    # activations: per chunk BK/64 boxes [BM rows x 64 halves] (128 bytes a row, 128-byte
    # swizzle: 16-byte unit u of row r at unit u ^ (r % 8), so a warp's reads of rows g, g+1 x
    # lanes c meet at most 2 to a bank), 1024-byte aligned
    x_box, xb_n = bm * 128, bk // 64
    w_stage, x_stage, s_stage = _stage_bytes(bk, block, bn, bm, KS)
    if not x_tma:
        x_stage = 0
    x_off = -(-S * w_stage // 1024) * 1024                # weights from 0; swizzled boxes 1024-byte aligned
    s_off = x_off + S * x_stage
    bar_off = s_off + -(-S * s_stage // 128) * 128
    em.reserve_smem(ALIGN + bar_off + 16 * S)
    q = max(1, bk // 4 // block)                  # scale bytes per thread, row and chunk
    tx = KS * box_w + bn * s_box + x_stage

    base = aligned_base(em)
    cp_label, join = em.label("w4a16_cp_async"), em.label("w4a16_join")
    ok = _entry_test(em, infos)
    em.ins(f"@!{ok} bra {cp_label}")
    em.push_scope()
    em.comment(f"w4a16.mma_loop (sm_90a TMA): {S} stages of {KS} x [{bn} x {bk // 2} B] weights + "
               f"[{bn} x {s_box} B] scales" + (f" + {KS * xb_n} x [{bm} x 64] activations" if x_tma else "")
               + f", {tx} bytes each")
    wmap = _tensormap(em, lp.op.wq, (bk // 2, bn), "fp4_bytes", 32)
    smap = _tensormap(em, lp.op.ws, (s_box, bn), "u8", 16)
    xmap = _tensormap(em, lp.op.x, (64, bm), infos["x"].dtype.name, 8, swizzle=128) if x_tma else None
    lead, lane0 = em.new("p"), em.new("p")
    em.ins(f"setp.eq.u32 {lead}, {em.tid}, 0")
    em.ins(f"setp.eq.u32 {lane0}, {lp.lane}, 0")
    bars = em.new("r")
    em.ins(f"add.u32 {bars}, {base}, {bar_off}")
    em.ins("fence.proxy.async.shared::cta")
    for s in range(S):
        em.ins(f"@{lead} mbarrier.init.shared::cta.b64 [{bars}+{8 * s}], 1")
        em.ins(f"@{lead} mbarrier.init.shared::cta.b64 [{bars}+{8 * (S + s)}], {em.num_warps}")
    em.ins(f"@{lead} fence.mbarrier_init.release.cluster")
    em.bar()

    # iterations J = ceil((ub - lb0) / KS), 0 when ub <= lb0
    J, t, neg = em.new("r"), em.new("r"), em.new("p")
    em.ins(f"sub.s32 {t}, {lp.ub}, {lp.lb0}")
    em.ins(f"setp.lt.s32 {neg}, {t}, 0")
    em.ins(f"@{neg} mov.s32 {t}, 0")
    em.ins(f"add.u32 {t}, {t}, {KS - 1}")
    em.ins(f"div.u32 {J}, {t}, {KS}")

    # this thread's offsets inside a stage: rows 16 rg + g (+ 8), its K warp's box / scale bytes
    wrow = em.new("r")
    em.ins(f"mad.lo.u32 {wrow}, {lp.rg}, 16, {lp.g}")
    my_w, my_s = em.new("r"), em.new("r")
    em.ins(f"mul.lo.u32 {my_w}, {lp.ks}, {box_w}")
    em.ins(f"mad.lo.u32 {my_w}, {wrow}, {bk // 2}, {my_w}")
    em.ins(f"mad.lo.u32 {my_w}, {lp.c}, {bk // 8}, {my_w}")
    em.ins(f"add.u32 {my_w}, {my_w}, {base}")
    s0, shift = em.new("r"), em.new("r")                 # the first stage's scale column, 16-byte aligned
    em.ins(f"mul.lo.u32 {s0}, {lp.lb0}, {bk // block}")
    em.ins(f"and.b32 {shift}, {s0}, 15")
    em.ins(f"sub.u32 {s0}, {s0}, {shift}")
    em.ins(f"mad.lo.u32 {my_s}, {wrow}, {s_box}, {shift}")
    em.ins(f"mad.lo.u32 {my_s}, {lp.ks}, {bk // block}, {my_s}")
    em.ins(f"mad.lo.u32 {my_s}, {lp.c}, {q}, {my_s}")
    em.ins(f"add.u32 {my_s}, {my_s}, {base}")

    # this thread's activation pieces q = 0..3 (K halves c*BK/4 + 8q .. of its chunk, token row
    # 8t + g): box (c*BK/4 + 8q) / 64, unit ((c*BK/4 + 8q) % 64 / 8) ^ g of row g
    my_x = []
    kx0 = em.new("r")
    em.ins(f"mul.lo.u32 {kx0}, {lp.c}, {bk // 4}")
    for qq in range(bk // 32):
        u, o = em.new("r"), em.new("r")
        em.ins(f"add.u32 {u}, {kx0}, {8 * qq}")
        em.ins(f"shr.u32 {o}, {u}, 6")                          # box
        em.ins(f"mul.lo.u32 {o}, {o}, {x_box}")
        em.ins(f"shr.u32 {u}, {u}, 3")
        em.ins(f"and.b32 {u}, {u}, 7")
        em.ins(f"xor.b32 {u}, {u}, {lp.g}")                     # swizzled unit
        em.ins(f"mad.lo.u32 {o}, {u}, 16, {o}")
        em.ins(f"mad.lo.u32 {o}, {lp.g}, 128, {o}")
        em.ins(f"mad.lo.u32 {o}, {lp.ks}, {xb_n * x_box}, {o}")
        em.ins(f"add.u32 {o}, {o}, {base}")
        my_x.append(o)

    def issue(j: str, weights: bool = True, activations: bool = True) -> None:
        """Thread 0: stage j % S <- iteration j (its KS chunks' boxes), on full[j % S].  The
        prologue issues the weights and scales (with the stage's whole transaction count)
        before the activations when a dependency wait sits between them."""
        s, _ = stage_and_parity(em, j, S)
        bar = em.new("r")
        em.ins(f"mad.lo.u32 {bar}, {s}, 8, {bars}")
        cw = em.new("r")
        em.ins(f"mad.lo.u32 {cw}, {j}, {KS}, {lp.lb0}")     # first chunk of the stage
        em.ins(f"mul.lo.u32 {cw}, {cw}, {bk // 2}")
        acts = activations and x_tma
        if acts:
            xd, cx = em.new("r"), em.new("r")
            em.ins(f"mad.lo.u32 {xd}, {s}, {x_stage}, {base}")
            em.ins(f"add.u32 {xd}, {xd}, {x_off}")
            em.ins(f"shl.b32 {cx}, {cw}, 1")                   # K half of the stage's first chunk
        if weights:
            wd, sd, cs = em.new("r"), em.new("r"), em.new("r")
            em.ins(f"mad.lo.u32 {wd}, {s}, {w_stage}, {base}")
            em.ins(f"mad.lo.u32 {sd}, {s}, {s_stage}, {base}")
            em.ins(f"add.u32 {sd}, {sd}, {s_off}")
            em.ins(f"mad.lo.u32 {cs}, {j}, {sb}, {s0}")
            em.ins(f"mbarrier.arrive.expect_tx.shared::cta.b64 _, [{bar}], {tx}")
            boxes(bar, wd, box_w, wmap, cw, bk // 2, KS, lp.w_row)
            boxes(bar, sd, 0, smap, cs, 0, 1, lp.w_row)
        if acts:
            boxes(bar, xd, x_box, xmap, cx, 64, KS * xb_n, lp.x_row)

    def boxes(bar: str, dst: str, dst_step: int, tmap: str, x0: str, x_step: int, n: int, row: str) -> None:
        """n TMA boxes on mbarrier `bar`: box b from `tmap` at (x0 + b * x_step, row) into shared
        memory at dst + b * dst_step."""
        for b in range(n):
            x = x0
            if b:
                x = em.new("r")
                em.ins(f"add.u32 {x}, {x0}, {b * x_step}")
            em.ins(f"cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes "
                   f"[{dst}+{b * dst_step}], [{tmap}, {{{x}, {row}}}], [{bar}]")

    def fetch(j: str, regs, xs) -> None:
        """Every warp: wait for iteration j's stage, read this thread's words, scale bytes and
        activations (`xs`; rows past M are not read and stay 0), release the stage (lane 0
        arrives on empty[j % S] once the warp has read it)."""
        es, words = regs
        s, ph = stage_and_parity(em, j, S)
        bar, wa, sa = em.new("r"), em.new("r"), em.new("r")
        em.ins(f"mad.lo.u32 {bar}, {s}, 8, {bars}")
        wait_parity(em, bar, ph)
        em.ins(f"mad.lo.u32 {wa}, {s}, {w_stage}, {my_w}")
        em.ins(f"mad.lo.u32 {sa}, {s}, {s_stage}, {my_s}")
        for r in range(2):
            for i in range(q):
                em.ins(f"ld.shared.u8 {es[r][i]}, [{sa}+{s_off + 8 * r * s_box + i}]")
        for u in range(bk // 128):
            for r in range(2):
                em.ins(f"ld.shared.v4.b32 {{{', '.join(words[2 * u + r])}}}, [{wa}+{8 * r * bk // 2 + 16 * u}]")
        xo = em.new("r")
        em.ins(f"mul.lo.u32 {xo}, {s}, {x_stage}")
        for t in range(nt if x_tma else 0):
            for qq in range(bk // 32):
                xa = em.new("r")
                em.ins(f"add.u32 {xa}, {my_x[qq]}, {xo}")
                em.ins(f"@{lp.x_ok[t]} ld.shared.v4.b32 {{{', '.join(xs[t][qq])}}}, [{xa}+{x_off + 1024 * t}]")
        em.ins("bar.warp.sync -1")
        em.ins(f"@{lane0} mbarrier.arrive.shared::cta.b64 _, [{bar}+{8 * S}]")

    # prologue: thread 0 fills min(S, J) stages; with the kernel's dependency wait here, the
    # weights and scales go first (they do not depend on the previous kernel), the activations
    # after the wait
    split = lp.dependency_wait and x_tma

    def prologue(weights: bool, activations: bool) -> None:
        j = em.new("r")
        pro, pro_done = em.label("w4a16_tma_prologue"), em.label("w4a16_tma_prologue_done")
        em.ins(f"mov.u32 {j}, 0")
        em.ins(f"@!{lead} bra {pro_done}")
        em.place(pro)
        more = em.new("p")
        em.ins(f"setp.ge.u32 {more}, {j}, {S}")
        em.ins(f"@{more} bra {pro_done}")
        em.ins(f"setp.ge.u32 {more}, {j}, {J}")
        em.ins(f"@{more} bra {pro_done}")
        issue(j, weights, activations)
        em.ins(f"add.u32 {j}, {j}, 1")
        em.ins(f"bra {pro}")
        em.place(pro_done)

    prologue(True, not split)
    if lp.dependency_wait:
        em.dependency_wait()
    if split:
        prologue(False, True)

    # prefetch (one n8 tile): iteration j + 1's stage is read while j computes; the stage read
    # in iteration j (r = j + 1, or r = j without prefetch) is refilled with r - 1 + S ... by
    # thread 0 at the top of the next iteration, once every warp has released it
    prefetch = nt == 1
    staged = [stage_regs(), stage_regs()] if prefetch else [stage_regs()]
    it, jj = em.new("r"), em.new("r")
    em.ins(f"mov.u32 {it}, {lp.lb}")
    em.ins(f"mov.u32 {jj}, 0")
    if not x_tma:
        load_x(sets[0], it)
    if prefetch:
        skip = em.label("w4a16_tma_first")
        none = em.new("p")
        em.ins(f"setp.eq.u32 {none}, {J}, 0")
        em.ins(f"@{none} bra {skip}")
        fetch(jj, staged[0], sets[0])
        em.place(skip)
    top, done = em.label("w4a16_tma_loop"), em.label("w4a16_tma_done")
    em.place(top)
    for half in range(2):
        fin = em.new("p")
        em.ins(f"setp.ge.u32 {fin}, {jj}, {J}")
        em.ins(f"@{fin} bra {done}")
        # thread 0 refills the stage released last (iteration r = jj with prefetch, jj - 1 without)
        r, refill, no_refill = em.new("r"), em.new("p"), em.label("w4a16_tma_no_refill")
        if prefetch:
            em.ins(f"mov.u32 {r}, {jj}")
        else:
            em.ins(f"add.u32 {r}, {jj}, -1")
        em.ins(f"@!{lead} bra {no_refill}")
        if not prefetch:
            em.ins(f"setp.eq.u32 {refill}, {jj}, 0")
            em.ins(f"@{refill} bra {no_refill}")
        nj = em.new("r")
        em.ins(f"add.u32 {nj}, {r}, {S}")
        em.ins(f"setp.ge.u32 {refill}, {nj}, {J}")
        em.ins(f"@{refill} bra {no_refill}")
        rs, rph = stage_and_parity(em, r, S)
        eb = em.new("r")
        em.ins(f"mad.lo.u32 {eb}, {rs}, 8, {bars}")
        em.ins(f"add.u32 {eb}, {eb}, {8 * S}")
        wait_parity(em, eb, rph)
        issue(nj)
        em.place(no_refill)

        nxt, j1 = em.new("r"), em.new("r")
        em.ins(f"add.u32 {nxt}, {it}, {KS}")
        em.ins(f"add.u32 {j1}, {jj}, 1")
        if not x_tma:
            load_x(sets[1 - half], nxt)
            if not prefetch:                     # one register set per chunk, as in the cp.async ring
                xs_now = sets[half]
        if prefetch:
            last, skip = em.new("p"), em.label("w4a16_tma_last")
            em.ins(f"setp.ge.u32 {last}, {j1}, {J}")
            em.ins(f"@{last} bra {skip}")
            fetch(j1, staged[1 - half], sets[1 - half])
            em.place(skip)
            regs, xs = staged[half], sets[half]
        else:
            fetch(jj, staged[0], sets[0])
            regs, xs = staged[0], (sets[0] if x_tma else xs_now)
        past, skip_c = em.new("p"), em.label("w4a16_tma_skip")
        em.ins(f"setp.ge.s32 {past}, {it}, {lp.ub}")
        em.ins(f"@{past} bra {skip_c}")
        compute(regs, xs)
        em.place(skip_c)
        em.ins(f"mov.u32 {it}, {nxt}")
        em.ins(f"mov.u32 {jj}, {j1}")
    em.ins(f"bra {top}")
    em.place(done)
    em.pop_scope()
    em.ins(f"bra.uni {join}")
    em.place(cp_label)
    return join
