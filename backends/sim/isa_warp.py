"""Warp-level collectives: shfl.sync, vote.sync, elect.sync, activemask, redux.sync, match.sync.

Each participating warp's membermask must name exactly the lanes that execute the
instruction together (else SimError), and a shuffle must read an executing lane.
"""

from __future__ import annotations

import numpy as np

from .isa_ctrl import check_members
from .machine import handler
from .ptx_types import UINT, ptx_type

U32 = ptx_type("u32")
B32 = ptx_type("b32")
PRED = ptx_type("pred")


def _member(cta, op):
    m = np.asarray(cta.get(op, U32))
    return np.broadcast_to(m, (cta.T,)).astype(np.uint64)


def _full(x, T):
    return np.broadcast_to(np.asarray(x), (T,))


@handler("shfl")
def op_shfl(cta, ins):
    mode = ins.mods[2] if ins.mods[1] == "sync" else ins.mods[1]
    if ins.mods[1] != "sync":
        raise cta.error("shfl without .sync is not supported on sm_70+")
    d = ins.ops[0]
    a = _full(cta.get(ins.ops[1], B32), cta.T)
    b = _full(cta.get(ins.ops[2], U32), cta.T).astype(np.int64) & 31
    c = _full(cta.get(ins.ops[3], U32), cta.T).astype(np.int64)
    member = _member(cta, ins.ops[4])
    act = cta.mask
    check_members(cta, act, member, "shfl.sync")
    lane = cta.lane
    seg = (c >> 8) & 0x1F
    cval = c & 0x1F
    max_lane = (lane & seg) | (cval & ~seg)
    min_lane = lane & seg
    if mode == "up":
        j = lane - b
        ok = j >= max_lane
    elif mode == "down":
        j = lane + b
        ok = j <= max_lane
    elif mode == "bfly":
        j = lane ^ b
        ok = j <= max_lane
    elif mode == "idx":
        j = min_lane | (b & ~seg)
        ok = j <= max_lane
    else:
        raise cta.error(f"shfl mode .{mode} is not known")
    j = np.where(ok, j, lane)
    src = cta.warp * 32 + j
    inb = src < cta.T
    srcc = np.where(inb, src, 0)
    src_ok = inb & act[srcc]
    bad = act & ~src_ok
    if bad.any():
        t = int(np.argmax(bad))
        raise cta.error(f"shfl.sync.{mode} reads lane {int(j[t])}, which is not executing the shuffle", t)
    out = a[srcc]
    if d[0] == "pair":
        cta.set(d[1], B32, out)
        cta.set(d[2], PRED, ok)
    else:
        cta.set(d, B32, out)


def _per_warp(cta, x, act, fill):
    W = cta.nwarps
    pad = W * 32 - cta.T
    xa = np.concatenate([np.asarray(x), np.full(pad, fill, np.asarray(x).dtype)]).reshape(W, 32)
    aa = np.concatenate([act, np.zeros(pad, bool)]).reshape(W, 32)
    return xa, aa


@handler("vote")
def op_vote(cta, ins):
    mods = [m for m in ins.mods[1:] if m != "sync"]
    mode = mods[0]
    a = _full(cta.get(ins.ops[1], PRED), cta.T)
    member = _member(cta, ins.ops[2]) if len(ins.ops) > 2 else np.full(cta.T, 0xFFFFFFFF, np.uint64)
    act = cta.mask
    if "sync" in ins.mods:
        check_members(cta, act, member, "vote.sync")
    xa, aa = _per_warp(cta, a, act, False)
    if mode == "ballot":
        bits = (xa & aa).astype(np.uint64) << np.arange(32, dtype=np.uint64)[None, :]
        r = np.bitwise_or.reduce(bits, axis=1).astype(np.uint32)
        cta.set(ins.ops[0], B32, np.repeat(r, 32)[:cta.T])
        return
    if mode == "all":
        r = (xa | ~aa).all(1)
    elif mode == "any":
        r = (xa & aa).any(1)
    elif mode == "uni":
        r = (xa | ~aa).all(1) | ~(xa & aa).any(1)
    else:
        raise cta.error(f"vote.{mode} is not known")
    cta.set(ins.ops[0], PRED, np.repeat(r, 32)[:cta.T])


@handler("elect")
def op_elect(cta, ins):
    member = _member(cta, ins.ops[1])
    act = cta.mask
    check_members(cta, act, member, "elect.sync")
    _, aa = _per_warp(cta, act, act, False)
    first = np.argmax(aa, axis=1)
    leader = np.repeat(first, 32)[:cta.T]
    is_leader = act & (cta.lane == leader)
    d = ins.ops[0]
    if d[0] == "pair":
        cta.set(d[1], U32, leader.astype(np.uint32))
        cta.set(d[2], PRED, is_leader)
    else:
        cta.set(d, PRED, is_leader)


@handler("activemask")
def op_activemask(cta, ins):
    _, aa = _per_warp(cta, cta.mask, cta.mask, False)
    bits = aa.astype(np.uint64) << np.arange(32, dtype=np.uint64)[None, :]
    r = np.bitwise_or.reduce(bits, axis=1).astype(np.uint32)
    cta.set(ins.ops[0], B32, np.repeat(r, 32)[:cta.T])


@handler("redux")
def op_redux(cta, ins):
    mods = [m for m in ins.mods[1:] if m != "sync"]
    op = mods[0]
    t = ptx_type(mods[-1])
    a = _full(cta.get(ins.ops[1], t), cta.T)
    member = _member(cta, ins.ops[2])
    act = cta.mask
    check_members(cta, act, member, "redux.sync")
    if t.kind == "f":
        raise cta.error("redux.sync on floats is not simulated")
    x = a.astype(np.int64) if t.kind == "s" else a.astype(np.uint64)
    ident = {"add": 0, "and": -1 if t.kind == "s" else 0xFFFFFFFF, "or": 0, "xor": 0,
             "min": np.iinfo(x.dtype).max, "max": np.iinfo(x.dtype).min}[op]
    xa, aa = _per_warp(cta, x, act, ident)
    xa = np.where(aa, xa, np.array(ident).astype(xa.dtype))
    fn = {"add": np.add, "and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor,
          "min": np.minimum, "max": np.maximum}[op]
    r = fn.reduce(xa, axis=1)
    r = (r.astype(np.int64) & 0xFFFFFFFF).astype(np.uint32)
    cta.set(ins.ops[0], ptx_type("b32"), np.repeat(r, 32)[:cta.T])


@handler("match")
def op_match(cta, ins):
    mods = [m for m in ins.mods[1:] if m != "sync"]
    mode, t = mods[0], ptx_type(mods[-1])
    a = _full(cta.get(ins.ops[1], ptx_type(f"b{t.bits}")), cta.T)
    member = _member(cta, ins.ops[2])
    act = cta.mask
    check_members(cta, act, member, "match.sync")
    xa, aa = _per_warp(cta, a, act, 0)
    eq = (xa[:, :, None] == xa[:, None, :]) & aa[:, None, :]
    bits = (eq.astype(np.uint64) << np.arange(32, dtype=np.uint64)[None, None, :])
    m = np.bitwise_or.reduce(bits, axis=2).astype(np.uint32).reshape(-1)[:cta.T]
    d = ins.ops[0]
    if mode == "any":
        cta.set(d, B32, m)
        return
    allm = np.bitwise_or.reduce((aa.astype(np.uint64) << np.arange(32, dtype=np.uint64)[None, :]), axis=1)
    same = np.repeat(allm, 32)[:cta.T].astype(np.uint32) == m
    cta.set(d[1] if d[0] == "pair" else d, B32, np.where(same, m, 0).astype(UINT[32]))
    if d[0] == "pair":
        cta.set(d[2], PRED, same)
