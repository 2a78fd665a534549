"""The sm_80 `tgpu` copy ops (dialects/tgpu/cp_async.py) as PTX: cp.async stage buffers and
commit groups, plus the per-lane ldmatrix offsets `lower_mma_sync.py` reads them with.

Shared memory.  `tgpu.cp_async_alloc` buffers get 128-byte-aligned offsets from `smem` in
allocation order (a `bar.sync` first, so scratch use at `smem + 0` before the pipeline is
over).  A stage of `!tgpu.smem<RxC, swizzle = W, stages = S>` is C*2/W panels of R rows x W
bytes; the 16-byte chunk at in-panel byte b is stored at `b ^ (((b >> 7) & (W/16 - 1)) << 4)`
(TMA's swizzle pattern): the 8 rows an ldmatrix reads (one chunk each) hit 8 distinct
16-byte bank groups.  The loop after the pipeline ends in `tgpu.cp_async_wait {pending = 0}`
(wait_group 0 + bar.sync), so later scratch use is ordered after it.

Loop-invariant per-thread offsets (the chunks a thread copies, and for each `tgpu.mma_sync` that
reads the buffer, the lane parts of its ldmatrix addresses) are computed once, at the allocation,
before the K loop.

    tgpu.cp_async:  per chunk q = tid + i*T of the tile (row q / (C/8), chunk q % (C/8)):
        cp.async.cg.shared.global [stage + swz(q)], [in ? &T[r0 + row, c0 + 8*chunk] : T], 16, in ? 16 : 0
    tgpu.mma_sync:  see lower_mma_sync.py
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tilec.dialects import tgpu as G

from .emitter import KernelEmitter, lowers


@dataclass
class Ring:
    """A lowered `tgpu.cp_async_alloc`: offset from `smem`, type, per-thread precomputed parts."""

    offset: int
    type: G.SmemType
    copy_rows: list = field(default_factory=list)    # per copy round i: (row reg, col reg, dst offset reg, guard)
    reads: dict = field(default_factory=dict)        # ("a" | "b", warps_m, warps_n) -> lane offset regs


def _sw(t: G.SmemType) -> tuple[int, int, int]:
    """(swizzle bytes W, chunks per panel row, XOR mask)."""
    w = t.swizzle.data
    return w, w // 16, w // 16 - 1


def _swizzled(em: KernelEmitter, t: G.SmemType, row: str, chunk: str) -> str:
    """Byte offset in a stage of (row, 16-byte chunk) (registers): panel + swizzled in-panel offset."""
    w, cpp, mask = _sw(t)
    rows = t.get_shape()[0]
    p, cip, b, x, off = (em.new("r") for _ in range(5))
    em.ins(f"div.u32 {p}, {chunk}, {cpp}")
    em.ins(f"rem.u32 {cip}, {chunk}, {cpp}")
    em.ins(f"mul.lo.u32 {b}, {row}, {w}")
    em.ins(f"shr.u32 {x}, {b}, 7")
    em.ins(f"and.b32 {x}, {x}, {mask}")
    em.ins(f"xor.b32 {cip}, {cip}, {x}")
    em.ins(f"mad.lo.u32 {off}, {cip}, 16, {b}")
    em.ins(f"mad.lo.u32 {off}, {p}, {rows * w}, {off}")
    return off


def _row_xor(em: KernelEmitter, t: G.SmemType, row: str) -> str:
    """`((row * W) >> 7) & mask`: the chunk XOR of `row` (register)."""
    w, _, mask = _sw(t)
    x = em.new("r")
    em.ins(f"mul.lo.u32 {x}, {row}, {w}")
    em.ins(f"shr.u32 {x}, {x}, 7")
    em.ins(f"and.b32 {x}, {x}, {mask}")
    return x


def _warp_lane(em: KernelEmitter, wn: int) -> tuple[str, str, str]:
    """(lane, wm, wn) of this thread for a warp grid `wn` warps wide."""
    lane, warp, wm, wq = em.new("r"), em.new("r"), em.new("r"), em.new("r")
    em.ins(f"and.b32 {lane}, {em.tid}, 31")
    em.ins(f"shr.u32 {warp}, {em.tid}, 5")
    em.ins(f"div.u32 {wm}, {warp}, {wn}")
    em.ins(f"rem.u32 {wq}, {warp}, {wn}")
    return lane, wm, wq


def a_read_parts(em: KernelEmitter, t: G.SmemType, warps: tuple[int, int], tm: int) -> list[str]:
    """A operand (ldmatrix.x4): lane l of warp (wm, wn) reads row wm*TM + 16i + l%16, chunk 2j + l/16.
    Per even in-panel chunk pair c: row * W + ((2c ^ l/16 ^ xor(row)) * 16); the m16 tile i and the
    panel of 2j add constants (row % 8, which fixes the XOR, does not change with i)."""
    w, cpp, _ = _sw(t)
    lane, wm, _ = _warp_lane(em, warps[1])
    row, hi, rp, y = em.new("r"), em.new("r"), em.new("r"), em.new("r")
    em.ins(f"and.b32 {row}, {lane}, 15")
    em.ins(f"mad.lo.u32 {row}, {wm}, {tm}, {row}")
    em.ins(f"shr.u32 {hi}, {lane}, 4")
    em.ins(f"mul.lo.u32 {rp}, {row}, {w}")
    em.ins(f"xor.b32 {y}, {hi}, {_row_xor(em, t, row)}")
    parts = []
    for c in range(max(cpp // 2, 1)):
        r = em.new("r")
        em.ins(f"xor.b32 {r}, {y}, {2 * c}")
        em.ins(f"mad.lo.u32 {r}, {r}, 16, {rp}")
        parts.append(r)
    return parts


def b_read_parts(em: KernelEmitter, t: G.SmemType, warps: tuple[int, int], tn: int) -> list[str]:
    """B operand (ldmatrix.x4.trans, two n8 tiles per load): lane l (matrix m = l/8) of warp
    (wm, wn) reads row 16j + 8(m%2) + l%8, chunk wn*TN/8 + t + m/2 for each even n8 tile t.  Per t:
    its offset in the stage; K16 step j adds 16 * j * W."""
    w, cpp, _ = _sw(t)
    rows = t.get_shape()[0]
    lane, _, wn = _warp_lane(em, warps[1])
    row, m2, hi, x = em.new("r"), em.new("r"), em.new("r"), None
    em.ins(f"and.b32 {row}, {lane}, 7")
    em.ins(f"bfe.u32 {m2}, {lane}, 3, 1")
    em.ins(f"mad.lo.u32 {row}, {m2}, 8, {row}")
    em.ins(f"bfe.u32 {hi}, {lane}, 4, 1")
    x = _row_xor(em, t, row)
    em.ins(f"xor.b32 {hi}, {hi}, {x}")
    rp = em.new("r")
    em.ins(f"mul.lo.u32 {rp}, {row}, {w}")
    out = []
    for tt in range(0, tn // 8, 2):
        ce, p, cip, off = em.new("r"), em.new("r"), em.new("r"), em.new("r")
        em.ins(f"mad.lo.u32 {ce}, {wn}, {tn // 8}, {tt}")
        em.ins(f"div.u32 {p}, {ce}, {cpp}")
        em.ins(f"rem.u32 {cip}, {ce}, {cpp}")
        em.ins(f"xor.b32 {cip}, {cip}, {hi}")
        em.ins(f"mad.lo.u32 {off}, {cip}, 16, {rp}")
        em.ins(f"mad.lo.u32 {off}, {p}, {rows * w}, {off}")
        out.append(off)
    return out


def acc_grid(t) -> tuple[int, int]:
    """The warp grid of an accumulator type: `!tgpu.mma_acc`'s, or M/16 x 1 for `!tgpu.acc`."""
    if isinstance(t, G.MmaAccType):
        return t.get_warps()
    return t.get_shape()[0] // 16, 1


@lowers(G.CpAsyncAllocOp)
def lower_cp_async_alloc(em: KernelEmitter, op: G.CpAsyncAllocOp) -> None:
    em.require_sm(80, "tgpu.cp_async_alloc")
    t = op.result.type
    st = em.__dict__.setdefault("_cp_async", {"top": 0, "offsets": {}})
    if op not in st["offsets"]:
        st["offsets"][op] = -(-st["top"] // 128) * 128
        st["top"] = st["offsets"][op] + t.stage_bytes * t.stages.data
    em.reserve_smem(st["top"])
    em.bar()                                           # scratch use at smem + 0 is over
    ring = Ring(st["offsets"][op], t)
    rows, cols = t.get_shape()
    cpr, T = cols // 8, em.num_threads
    total = rows * cpr
    for i in range(-(-total // T)):
        q, r, c = em.new("r"), em.new("r"), em.new("r")
        em.ins(f"add.u32 {q}, {em.tid}, {i * T}")
        em.ins(f"div.u32 {r}, {q}, {cpr}")
        em.ins(f"rem.u32 {c}, {q}, {cpr}")
        dst = _swizzled(em, t, r, c)
        em.ins(f"shl.b32 {c}, {c}, 3")                 # element column of the chunk
        guard = None
        if (i + 1) * T > total:
            guard = em.new("p")
            em.ins(f"setp.lt.u32 {guard}, {q}, {total}")
        ring.copy_rows.append((r, c, dst, guard))
    for use in op.result.uses:                         # ldmatrix lane offsets, before the K loop
        mma = use.operation
        if not isinstance(mma, G.MmaSyncOp):
            continue
        (m, n), (wm, wn) = mma.acc.type.get_shape(), acc_grid(mma.acc.type)
        if use.index == 0 and ("a", wm, wn) not in ring.reads:
            ring.reads[("a", wm, wn)] = a_read_parts(em, t, (wm, wn), m // wm)
        elif use.index == 2 and ("b", wm, wn) not in ring.reads:
            ring.reads[("b", wm, wn)] = b_read_parts(em, t, (wm, wn), n // wn)
    em.set(op.result, ring)


def _stage_base(em: KernelEmitter, ring: Ring, stage) -> str:
    r = em.new("r")
    em.ins(f"mad.lo.u32 {r}, {em.get(stage).regs[0]}, {ring.type.stage_bytes}, {em.smem_base}")
    if ring.offset:
        em.ins(f"add.u32 {r}, {r}, {ring.offset}")
    return r


@lowers(G.CpAsyncOp)
def lower_cp_async(em: KernelEmitter, op: G.CpAsyncOp) -> None:
    em.require_sm(80, "tgpu.cp_async")
    ring: Ring = em.get_any(op.buffer)
    info = em.tensors[op.tensor]
    nrows, ncols = (em.as_reg(x) for x in info.dims)
    r0, c0 = (em.get(o).regs[0] for o in op.offsets)
    base = _stage_base(em, ring, op.stage)
    for r, c, dst, guard in ring.copy_rows:
        row, col, p = em.new("r"), em.new("r"), em.new("p")
        em.ins(f"add.u32 {row}, {r0}, {r}")
        em.ins(f"add.u32 {col}, {c0}, {c}")
        em.ins(f"setp.lt.u32 {p}, {row}, {nrows}")
        em.ins(f"setp.lt.and.u32 {p}, {col}, {ncols}, {p}")
        lin, wcol, src = em.new("rd"), em.new("rd"), em.new("rd")
        em.ins(f"mul.wide.u32 {lin}, {row}, {ncols}")
        em.ins(f"cvt.u64.u32 {wcol}, {col}")
        em.ins(f"add.s64 {lin}, {lin}, {wcol}")
        em.ins(f"mad.lo.u64 {src}, {lin}, 2, {info.ptr}")
        em.ins(f"selp.b64 {src}, {src}, {info.ptr}, {p}")       # nothing is read out of bounds
        size, d = em.new("r"), em.new("r")
        em.ins(f"selp.u32 {size}, 16, 0, {p}")                  # src-size 0: the chunk is zero-filled
        em.ins(f"add.u32 {d}, {base}, {dst}")
        em.ins(f"{'@' + guard + ' ' if guard is not None else ''}cp.async.cg.shared.global [{d}], [{src}], 16, {size}")


@lowers(G.CpAsyncCommitOp)
def lower_cp_async_commit(em: KernelEmitter, op) -> None:
    em.require_sm(80, "tgpu.cp_async_commit")
    em.ins("cp.async.commit_group")


@lowers(G.CpAsyncWaitOp)
def lower_cp_async_wait(em: KernelEmitter, op: G.CpAsyncWaitOp) -> None:
    em.require_sm(80, "tgpu.cp_async_wait")
    n = op.pending.value.data
    em.ins("cp.async.wait_all" if n == 0 else f"cp.async.wait_group {n}")
    em.bar()
