"""sm_90 async machinery: mbarrier, bulk copies, TMA tensor copies, their commit/wait groups.

mbarrier state lives beside shared memory, keyed by the object's shared offset: expected
arrivals, pending arrivals, transaction bytes, completed-phase count.  A phase completes when
its pending arrivals and tx-count both reach zero.

Async copies into shared memory (``cp.async.bulk`` and ``cp.async.bulk.tensor`` loads) read
their source when issued and land when some thread waits on their mbarrier and finds the phase
incomplete (or when nothing else can run); until then the destination bytes are "in flight".
Stores to global (``.bulk_group``) happen at issue; ``cp.async.bulk.wait_group`` is a no-op.
The tensor-map operand must be the generic address of a ``.param`` tensor map
(``mov`` + ``cvta.param``), exactly as the hardware needs.
"""

from __future__ import annotations

import numpy as np

from .machine import handler
from .memory import PARAM_WINDOW, SHARED_WINDOW, WINDOW_SIZE, swizzle
from .ptx_types import ptx_type

U32 = ptx_type("u32")
U64 = ptx_type("u64")
B64 = ptx_type("b64")
PRED = ptx_type("pred")


class MBarrier:
    __slots__ = ("expected", "pending", "tx", "phase", "complete_clock", "line")

    def __init__(self, count: int, line: int):
        self.expected = self.pending = count
        self.tx = 0
        self.phase = 0
        self.complete_clock = 0
        self.line = line

    def __repr__(self):
        return (f"mbarrier(phase {self.phase}, pending arrivals {self.pending} of {self.expected}, "
                f"tx-count {self.tx})")


class AsyncOp:
    """A pending async operation that completes on an mbarrier (TMA / bulk load, tcgen05.commit)."""

    __slots__ = ("mbar", "line", "complete", "what")

    def __init__(self, mbar: int | None, line: int, complete, what: str):
        self.mbar, self.line, self.complete, self.what = mbar, line, complete, what


def smem_offsets(cta, op, tids) -> np.ndarray:
    """Shared::cta offsets of an [addr] operand (64-bit generic shared addresses accepted)."""
    a = cta.address(op)[tids].astype(np.int64)
    gen = (a >= SHARED_WINDOW) & (a < SHARED_WINDOW + WINDOW_SIZE)
    return np.where(gen, a - SHARED_WINDOW, a)


def get_mbar(cta, off: int, t: int) -> MBarrier:
    mb = cta.mbars.get(off)
    if mb is None:
        raise cta.error(f"mbarrier at shared offset {off:#x} is used before mbarrier.init", t)
    return mb


def _touch(cta, off: int, mb: MBarrier) -> None:
    if mb.pending < 0:
        raise cta.error(f"mbarrier at {off:#x} received more arrivals than its expected count {mb.expected} "
                        f"in phase {mb.phase}")
    if mb.pending == 0 and mb.tx == 0:
        mb.phase += 1
        mb.pending = mb.expected
        mb.complete_clock = cta.smem.clock
    cta.wake()


def arrive(cta, off: int, n: int, tx: int = 0) -> None:
    mb = cta.mbars[off]
    mb.tx += tx
    mb.pending -= n
    _touch(cta, off, mb)


def complete_tx(cta, off: int, nbytes: int) -> None:
    mb = cta.mbars.get(off)
    if mb is None:
        raise cta.error(f"async copy completes on mbarrier {off:#x}, which was never initialised")
    mb.tx -= nbytes
    _touch(cta, off, mb)


def arrive_at(cta, op, tids, count, tx=0) -> np.ndarray:
    """Arrive (``count`` each) for threads ``tids`` on the mbarrier(s) at operand ``op``; returns
    the state tokens (phase numbers) as uint64 per thread."""
    offs = smem_offsets(cta, op, tids)
    tokens = np.zeros(cta.T, np.uint64)
    for off in np.unique(offs):
        sel = offs == off
        mb = get_mbar(cta, int(off), int(tids[sel][0]))
        tokens[tids[sel]] = mb.phase
        arrive(cta, int(off), int(count) * int(sel.sum()), int(tx) * int(sel.sum()))
    return tokens


def drain(cta, off: int | None = None) -> bool:
    """Complete the pending async ops on mbarrier ``off`` (all when None); True if any did."""
    todo = [op for op in cta.async_ops if off is None or op.mbar == off]
    if not todo:
        return False
    ids = set(map(id, todo))
    cta.async_ops = [op for op in cta.async_ops if id(op) not in ids]
    for op in todo:
        op.complete()
    return True


def drain_all(cta) -> bool:
    """Called when no thread can run: finish every pending async copy and cp.async."""
    did = drain(cta)
    if cta.cp_async:
        from .isa_mem import _complete
        _complete(cta, list(cta.cp_async))
        did = True
    return did


# ---------------------------------------------------------------------- mbarrier.*

@handler("mbarrier")
def op_mbarrier(cta, ins):
    sub = ins.mods[1]
    tids = cta.active()
    if sub == "init":
        offs = smem_offsets(cta, ins.ops[0], tids)
        cnt = np.broadcast_to(np.asarray(cta.get(ins.ops[1], U32)), (cta.T,))[tids]
        for k, off in enumerate(offs):
            _check_obj(cta, int(off), int(tids[k]))
            c = int(cnt[k])
            if not 1 <= c < (1 << 20):
                raise cta.error(f"mbarrier.init count {c} must be in [1, 2^20 - 1]", int(tids[k]))
            cta.mbars[int(off)] = MBarrier(c, ins.line)
        cta.wake()
        return
    if sub == "inval":
        for off in smem_offsets(cta, ins.ops[0], tids):
            cta.mbars.pop(int(off), None)
        return
    if sub in ("arrive", "arrive_drop"):
        expect = "expect_tx" in ins.mods
        nocomplete = "noComplete" in ins.mods
        ops = ins.ops
        dst, bar = (ops[0], ops[1]) if ops[0][0] != "addr" else (None, ops[0])
        rest = ops[2:] if dst is not None else ops[1:]
        n = int(np.asarray(cta.get(rest[0], U32)).reshape(-1)[0]) if rest and not expect else 1
        tx = int(np.asarray(cta.get(rest[0], U32)).reshape(-1)[0]) if expect else 0
        if expect and len(rest) > 1:
            n = int(np.asarray(cta.get(rest[1], U32)).reshape(-1)[0])
        if nocomplete:
            raise cta.error("mbarrier.arrive.noComplete is not simulated")
        if sub == "arrive_drop":
            for off in np.unique(smem_offsets(cta, bar, tids)):
                mb = get_mbar(cta, int(off), int(tids[0]))
                mb.expected -= int((smem_offsets(cta, bar, tids) == off).sum())
        tokens = arrive_at(cta, bar, tids, n, tx)
        if dst is not None and dst[0] != "sink":
            cta.set(dst, B64, tokens)
        return
    if sub == "expect_tx":
        offs = smem_offsets(cta, ins.ops[0], tids)
        tx = np.broadcast_to(np.asarray(cta.get(ins.ops[1], U32)), (cta.T,))[tids]
        for k, off in enumerate(offs):
            mb = get_mbar(cta, int(off), int(tids[k]))
            mb.tx += int(tx[k])
        cta.wake()
        return
    if sub == "complete_tx":
        offs = smem_offsets(cta, ins.ops[0], tids)
        tx = np.broadcast_to(np.asarray(cta.get(ins.ops[1], U32)), (cta.T,))[tids]
        for k, off in enumerate(offs):
            complete_tx(cta, int(off), int(tx[k]))
        return
    if sub in ("try_wait", "test_wait"):
        _wait(cta, ins, tids, parity="parity" in ins.mods)
        return
    raise cta.error(f"{ins.opcode} is not simulated")


def _check_obj(cta, off: int, t: int) -> None:
    if off % 8 or off < 0 or off + 8 > cta.smem.size:
        raise cta.error(f"mbarrier object at shared offset {off:#x} must be 8-byte aligned and inside "
                        f"shared memory ({cta.smem.size} bytes)", t)


def _wait(cta, ins, tids, parity: bool) -> None:
    d, bar, arg = ins.ops[0], ins.ops[1], ins.ops[2]
    offs = smem_offsets(cta, bar, tids)
    want = np.broadcast_to(np.asarray(cta.get(arg, U32 if parity else B64)), (cta.T,))[tids].astype(np.int64)
    res = np.zeros(cta.T, bool)
    for off in np.unique(offs):
        sel = offs == off
        mb = get_mbar(cta, int(off), int(tids[sel][0]))

        def done():
            return ((mb.phase & 1) != want[sel]) if parity else (mb.phase > want[sel])
        ok = done()
        if not ok.all() and drain(cta, int(off)):
            ok = done()
        res[tids[sel]] = ok
        if ok.any():
            got = tids[sel][ok]
            cta.smem.cta_sync[got] = np.maximum(cta.smem.cta_sync[got], mb.complete_clock)
        if not ok.all():
            if cta.stall_version == cta.mbar_version:
                t = int(tids[sel][~ok][0])
                ph = int(want[sel][~ok][0])
                raise cta.error(
                    f"deadlock: mbarrier at shared offset {int(off):#x} can never complete the awaited phase "
                    f"({'parity ' if parity else 'token phase '}{ph}); it is now {mb!r}, no async copy "
                    f"or tcgen05.commit is pending on it and no other thread can run to arrive", t)
    cta.set(d, PRED, res)
    if not res[tids].all():
        park = np.zeros(cta.T, bool)
        park[tids[~res[tids]]] = True
        cta.park, cta.park_key = park, ins.pc


# ---------------------------------------------------------------------- tensor maps

def tensormap_of(cta, op, t: int):
    """The SimTensorMap named by a tensor-map operand (a register holding a generic param address)."""
    if op[0] == "sym":
        raise cta.error(f"the tensor-map operand must be a generic address (mov + cvta.param), not the "
                        f"symbol `{op[1]}` itself (ptxas: state space mismatch)", t)
    a = int(np.broadcast_to(np.asarray(cta.get(op, U64)), (cta.T,))[t])
    if not PARAM_WINDOW <= a < PARAM_WINDOW + WINDOW_SIZE:
        if a in cta.L.tensormaps:
            raise cta.error(f"tensor-map operand {a:#x} is a .param-space offset, not a generic address: "
                            f"add cvta.param (without it the hardware faults: CUDA_ERROR_MISALIGNED_ADDRESS)", t)
        raise cta.error(f"tensor-map operand {a:#x} is not the generic address of a .param tensor map", t)
    off = a - PARAM_WINDOW
    tm = cta.L.tensormaps.get(off)
    if tm is None:
        raise cta.error(f"tensor-map operand points at param offset {off}, where no tensormap argument is", t)
    return tm


def _box_smem_index(cta, tm, dst: int, t: int) -> np.ndarray:
    nb = tm.box_bytes
    inner = tm.box[0] * tm.elem_bytes
    if tm.swizzle:
        if inner != tm.swizzle:
            raise cta.error(f"TMA with {tm.swizzle}B swizzle and a {inner} B inner box extent is not simulated "
                            f"(the simulator models inner extent == swizzle span)", t)
        if dst % 128:
            raise cta.error(f"swizzled TMA destination {dst:#x} must be 128-byte aligned", t)
    elif dst % 16:
        raise cta.error(f"TMA shared-memory address {dst:#x} must be 16-byte aligned", t)
    idx = dst + np.arange(nb, dtype=np.int64)
    idx = swizzle(idx, tm.swizzle)
    cta.smem.check_bounds(np.array([dst]), nb, lambda m, k: (_ for _ in ()).throw(cta.error(m, t)))
    return idx


@handler("cp.async.bulk")
def op_bulk(cta, ins):
    mods = ins.mods
    sub = mods[3] if len(mods) > 3 else ""
    if sub in ("commit_group", "wait_group"):
        return
    if "prefetch" in mods:
        return
    tensor = mods[3] == "tensor"
    spaces = [m.split("::")[0] for m in mods if m.split("::")[0] in ("shared", "global")]
    to_smem = spaces[0] == "shared"
    for t in cta.active():
        t = int(t)
        if tensor:
            _tma(cta, ins, t, to_smem)
        else:
            _bulk(cta, ins, t, to_smem)


def _coords(cta, vec, t):
    return [int(np.broadcast_to(np.asarray(cta.get(c, ptx_type("s32"))), (cta.T,))[t]) for c in vec[1]]


def _tma(cta, ins, t: int, to_smem: bool) -> None:
    if any(m.startswith("im2col") for m in ins.mods):
        raise cta.error("im2col TMA is not simulated", t)
    if any(m.startswith("multicast") for m in ins.mods):
        raise cta.error("TMA multicast is not simulated (clusters of one CTA only)", t)
    rank = int(next(m for m in ins.mods if m.endswith("d") and m[:-1].isdigit())[:-1])
    if to_smem:
        dst_op, taddr, bar = ins.ops[0], ins.ops[1], ins.ops[2]
    else:
        taddr, src_op = ins.ops[0], ins.ops[1]
    if taddr[0] != "taddr":
        raise cta.error("expected a [tensorMap, {coords}] operand", t)
    tm = tensormap_of(cta, taddr[1], t)
    coords = _coords(cta, taddr[2], t)
    if len(coords) != rank or len(tm.dims) != rank:
        raise cta.error(f"{rank}d TMA with {len(coords)} coordinates on a rank-{len(tm.dims)} tensor map", t)
    if not tm.packed_bits and (int(coords[0]) * tm.elem_bytes) % 16:
        # the hardware needs the box's innermost start 16-byte aligned (else: illegal instruction)
        raise cta.error(f"TMA innermost coordinate {int(coords[0])} is not a 16-byte multiple "
                        f"({tm.elem_bytes}-byte elements): an illegal instruction on the GPU", t)
    tids = np.array([t])
    if to_smem:
        dst = int(smem_offsets(cta, dst_op, tids)[0])
        idx = _box_smem_index(cta, tm, dst, t)
        data = tm.load_box(coords)
        boff = int(smem_offsets(cta, bar, tids)[0])
        get_mbar(cta, boff, t)
        # the transaction count is what TMA reads: for the packed 16U4 / 16U6 types less than it writes
        _issue_smem_fill(cta, ins, idx, data, boff, f"TMA load (line {ins.line})", tm.tx_bytes)
    else:
        src = int(smem_offsets(cta, src_op, tids)[0])
        idx = _box_smem_index(cta, tm, src, t)
        cta.smem.async_read_check(idx, t, lambda m, k: (_ for _ in ()).throw(cta.error(m, t)), "TMA store")
        tm.store_box(coords, cta.smem.data[idx])


def _issue_smem_fill(cta, ins, idx, data, boff, what, tx: int | None = None):
    sm = cta.smem
    if sm.pending[idx].any():
        raise cta.error(f"{what} into shared memory that another in-flight async copy is already filling")
    sm.add_pending(idx, ins.line)
    line = ins.line

    def complete():
        sm.add_pending(idx, line, -1)
        sm.clock += 1
        sm.data[idx] = data
        sm.wthread[idx] = -2
        sm.wclock[idx] = sm.clock
        sm.wline[idx] = line
        complete_tx(cta, boff, len(idx) if tx is None else tx)
    cta.async_ops.append(AsyncOp(boff, line, complete, what))


def _bulk(cta, ins, t: int, to_smem: bool) -> None:
    tids = np.array([t])
    size = int(np.broadcast_to(np.asarray(cta.get(ins.ops[2], U32)), (cta.T,))[t])
    if size % 16:
        raise cta.error(f"cp.async.bulk size {size} must be a multiple of 16", t)
    err = cta.err_at(tids)
    if to_smem:
        dst = int(smem_offsets(cta, ins.ops[0], tids)[0])
        src = cta.address(ins.ops[1])[tids]
        if dst % 16 or int(src[0]) % 16:
            raise cta.error("cp.async.bulk addresses must be 16-byte aligned", t)
        data = cta.L.gmem.read(src, size, err).reshape(-1)
        boff = int(smem_offsets(cta, ins.ops[3], tids)[0])
        get_mbar(cta, boff, t)
        cta.smem.check_bounds(np.array([dst]), size, err)
        _issue_smem_fill(cta, ins, np.arange(dst, dst + size, dtype=np.int64), data, boff,
                         f"bulk copy (line {ins.line})")
    else:
        dst = cta.address(ins.ops[0])[tids]
        src = int(smem_offsets(cta, ins.ops[1], tids)[0])
        cta.smem.check_bounds(np.array([src]), size, err)
        idx = np.arange(src, src + size, dtype=np.int64)
        cta.smem.async_read_check(idx, t, lambda m, k: (_ for _ in ()).throw(cta.error(m, t)), "bulk store")
        cta.L.gmem.write(dst, cta.smem.data[idx].reshape(1, -1), err)


@handler("cp.reduce")
def op_cp_reduce(cta, ins):
    raise cta.error("cp.reduce.async.bulk is not simulated")
