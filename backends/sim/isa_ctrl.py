"""Control flow and CTA barriers: bra, ret/exit, bar/barrier (sync, arrive, red), no-op hints.

``bar.sync`` / ``barrier.sync`` without a thread count expect every thread of the CTA; a
thread that has exited never arrives, so a barrier that some thread skips (or exits before)
is reported as a deadlock when nothing else can run.
"""

from __future__ import annotations

import numpy as np

from .machine import BAR, CTRL, RUN, handler
from .ptx_types import ptx_type

U32 = ptx_type("u32")


@handler("bra", "brx", kind=CTRL)
def op_bra(cta, ins, g, gmask):
    if ins.head == "brx":
        raise cta.error("brx.idx is not simulated")
    target = cta.L.kernel.labels[ins.ops[0][1]]
    if "uni" in ins.mods and ins.guard is not None:
        # PTX: the guard is the same in every active thread of a *warp* (warps may differ)
        active, warp = np.nonzero(g.mask)[0], cta.warp
        taken = gmask[active]
        split = np.unique(warp[active][taken]).tolist() if taken.any() else []
        mixed = [w for w in split if not taken[warp[active] == w].all()]
        if mixed:
            t = int(active[(warp[active] == mixed[0]) & ~taken][0])
            raise cta.error("bra.uni with a predicate that differs across the active threads of a warp", t)
    cta.split(g, gmask, target)


@handler("ret", "exit", kind=CTRL)
def op_ret(cta, ins, g, gmask):
    if gmask.any():
        cta.exit_threads(g, gmask)
    else:
        g.pc += 1


@handler("trap", "brkpt", kind=CTRL)
def op_trap(cta, ins, g, gmask):
    if gmask.any():
        raise cta.error(f"{ins.head} executed", int(np.argmax(gmask)))
    g.pc += 1


def _barrier_args(cta, ins, gmask):
    ops = ins.ops
    bid = np.asarray(cta.get(ops[0], U32)) if ops else np.uint32(0)
    cnt = np.asarray(cta.get(ops[1], U32)) if len(ops) > 1 else None
    idx = np.nonzero(gmask)[0]
    b = np.broadcast_to(bid, (cta.T,))[idx]
    if len(np.unique(b)) > 1:
        raise cta.error("threads of one group execute bar.sync with different barrier ids", int(idx[0]))
    n = None
    if cnt is not None:
        c = np.broadcast_to(cnt, (cta.T,))[idx]
        n = int(c[0])
        if n % 32:
            raise cta.error(f"barrier thread count {n} is not a multiple of the warp size", int(idx[0]))
    return int(b[0]) if len(b) else 0, n


@handler("bar", "barrier", kind=CTRL)
def op_bar(cta, ins, g, gmask):
    mods = [m for m in ins.mods[1:] if m not in ("cta", "aligned")]
    kind = mods[0] if mods else "sync"
    if kind == "warp":                       # bar.warp.sync
        if gmask.any():
            warp_sync(cta, ins)
        g.pc += 1
        return
    if kind not in ("sync", "arrive"):
        raise cta.error(f"{ins.opcode} is not simulated")
    if not gmask.any():
        g.pc += 1
        return
    bid, expected = _barrier_args(cta, ins, gmask)
    expected = cta.T if expected is None else expected
    arrived = cta.barriers.setdefault(bid, np.zeros(cta.T, bool))
    if (arrived & gmask).any():
        t = int(np.argmax(arrived & gmask))
        raise cta.error(f"thread arrives twice at barrier {bid} before it completes", t)
    arrived |= gmask
    rest = g.mask & ~gmask
    if kind == "arrive":
        g.pc += 1
    else:
        if rest.any():                      # guard-false threads go on
            from .machine import Group
            cta.groups.append(Group(g.pc + 1, rest, RUN))
            g.mask, g.full = gmask, False
        g.state, g.info = BAR, (bid, expected)
    if int(arrived.sum()) >= expected:
        _release(cta, bid)


def _release(cta, bid: int) -> None:
    arrived = cta.barriers.pop(bid)
    cta.smem.cta_sync[arrived] = cta.smem.clock
    cta.smem.warp_sync[arrived] = cta.smem.clock
    for h in cta.groups:
        if h.state == BAR and h.info[0] == bid:
            h.state, h.info = RUN, None
            h.pc += 1


def warp_sync(cta, ins) -> None:
    """bar.warp.sync membermask: the named lanes of each warp synchronise (memory ordering too)."""
    m = np.asarray(cta.get(ins.ops[0], U32)) if ins.ops else np.uint32(0xFFFFFFFF)
    m = np.broadcast_to(m, (cta.T,)).astype(np.uint64)
    act = cta.mask
    need = ((m >> cta.lane.astype(np.uint64)) & np.uint64(1)).astype(bool)
    check_members(cta, act, m, "bar.warp.sync")
    cta.smem.warp_sync[act & need] = cta.smem.clock


def check_members(cta, act: np.ndarray, member: np.ndarray, what: str) -> None:
    """Every executing thread's lane is in its membermask, and every lane a mask names executes."""
    lane = cta.lane.astype(np.uint64)
    inmask = ((member >> lane) & np.uint64(1)).astype(bool)
    bad = act & ~inmask
    if bad.any():
        t = int(np.argmax(bad))
        raise cta.error(f"{what}: executing lane {t % 32} is not in its membermask {int(member[t]):#010x}", t)
    W = cta.nwarps
    pad = W * 32 - cta.T
    a = np.concatenate([act, np.zeros(pad, bool)]).reshape(W, 32)
    mm = np.concatenate([member, np.zeros(pad, np.uint64)]).reshape(W, 32)
    for w in np.nonzero(a.any(1))[0]:
        lanes_m = int(mm[w][a[w]][0])
        want = np.array([(lanes_m >> i) & 1 for i in range(32)], bool)
        miss = want & ~a[w]
        if miss.any():
            i = int(np.argmax(miss))
            t = w * 32 + i
            why = "has exited" if t >= cta.T or cta.exited[t] else "is not executing it (divergent warp)"
            raise cta.error(f"{what}: membermask {lanes_m:#010x} names lane {i}, which {why}",
                            int(w * 32 + np.argmax(a[w])))


def check_full_warps(cta, act: np.ndarray, what: str, unit: int = 32) -> None:
    """``.sync.aligned`` collectives: every thread of each participating warp (or warpgroup,
    ``unit`` = 128) must execute the instruction together."""
    n = (cta.T + unit - 1) // unit
    pad = n * unit - cta.T
    a = np.concatenate([act, np.zeros(pad, bool)]).reshape(n, unit)
    exists = np.concatenate([~cta.exited, np.zeros(pad, bool)]).reshape(n, unit)
    part = a.any(1) & ~(a | ~exists).all(1)
    if part.any():
        w = int(np.argmax(part))
        i = int(np.argmax(exists[w] & ~a[w]))
        t = w * unit + i
        name = "warp" if unit == 32 else "warpgroup"
        raise cta.error(f"{what} must be executed by all threads of the {name} together, but thread {t} "
                        f"is not executing it (divergent {name}, or an earlier exit)", int(w * unit + np.argmax(a[w])))
    if unit == 128 and pad:
        raise cta.error(f"{what} needs whole warpgroups: the CTA has {cta.T} threads")


# ---------------------------------------------------------------------- hints and no-ops

@handler("nanosleep", "pmevent", "griddepcontrol", "applypriority", "discard", "prefetch", "prefetchu")
def op_nop(cta, ins):
    pass


@handler("membar")
def op_membar(cta, ins):
    pass


@handler("fence")
def op_fence(cta, ins):
    if len(ins.mods) > 1 and ins.mods[1].startswith("proxy") and ("async" in ins.mods or any(
            m.startswith("async") for m in ins.mods[2:])):
        cta.smem.proxy_fence[cta.mask] = cta.smem.clock


@handler("setmaxnreg")
def op_setmaxnreg(cta, ins):
    check_full_warps(cta, cta.mask, ins.opcode)
    n = int(np.asarray(cta.get(ins.ops[0], U32)))
    if n % 8 or not 24 <= n <= 256:
        raise cta.error(f"setmaxnreg count {n} must be a multiple of 8 in [24, 256]")


@handler("createpolicy")
def op_createpolicy(cta, ins):
    cta.set(ins.ops[0], ptx_type("b64"), np.uint64(0))


@handler("call", kind=CTRL)
def op_call(cta, ins, g, gmask):
    raise cta.error("call (device functions) is not simulated: inline the callee")
