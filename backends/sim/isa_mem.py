"""Loads, stores, atomics and the sm_80 ``cp.async`` copies.

``ld``/``st`` work in every state space (and generic addressing), with ``.v2/.v4/.v8`` vectors
and the usual cache / ordering qualifiers ignored.  Atomics (``atom``, ``red``) apply in thread
order: several threads hitting one address are serialised, so float sums round as a
sequence of single additions would.

``cp.async`` (sm_80): the source is read when the copy is issued; the bytes land in shared
memory when the issuing thread's ``cp.async.wait_group`` / ``wait_all`` covers its group.
Until then the destination is "in flight": touching it is reported.  Landed bytes count as
written by the issuing thread, so other threads need a ``bar.sync`` / ``bar.warp.sync`` first.
"""

from __future__ import annotations

import numpy as np

from .machine import handler
from .ptx_types import FLOAT, UINT, is_type_name, ptx_type, round_to

_VEC = {"v2": 2, "v4": 4, "v8": 8}


def _ldst_info(cta, ins):
    d = ins.data
    if d is None:
        vec = next((_VEC[m] for m in ins.mods if m in _VEC), 1)
        types = [m for m in ins.mods[1:] if is_type_name(m)]
        t = ptx_type(types[-1])
        d = ins.data = (vec, t, cta.space_of(ins))
    return d


def _to_bytes(values: np.ndarray, nbytes: int) -> np.ndarray:
    v = np.ascontiguousarray(values.astype(UINT[nbytes * 8]))
    return v.view(np.uint8).reshape(len(v), nbytes)


@handler("ld", "ldu")
def op_ld(cta, ins):
    vec, t, space = _ldst_info(cta, ins)
    tids = cta.active()
    size = max(t.bits // 8, 1)
    addr = cta.address(ins.ops[1])[tids]
    data = cta.mem_read(addr, size * vec, space, tids)
    dsts = ins.ops[0][1] if ins.ops[0][0] == "vec" else [ins.ops[0]]
    if len(dsts) != vec:
        raise cta.error(f"{vec}-element vector load with {len(dsts)} destinations")
    raw_t = ptx_type(f"b{size * 8}") if t.kind != "s" else t
    for i, dst in enumerate(dsts):
        chunk = np.ascontiguousarray(data[:, i * size:(i + 1) * size])
        vals = chunk.view(UINT[size * 8]).reshape(-1)
        full = np.zeros(cta.T, UINT[size * 8])
        full[tids] = vals
        if t.kind == "s":
            cta.set(dst, t, full.view(t.np))
        elif t.kind == "pred":
            cta.set(dst, t, full != 0)
        else:
            cta.set(dst, raw_t, full)


@handler("st")
def op_st(cta, ins):
    vec, t, space = _ldst_info(cta, ins)
    tids = cta.active()
    size = max(t.bits // 8, 1)
    addr = cta.address(ins.ops[0])[tids]
    srcs = ins.ops[1][1] if ins.ops[1][0] == "vec" else [ins.ops[1]]
    if len(srcs) != vec:
        raise cta.error(f"{vec}-element vector store with {len(srcs)} sources")
    parts = []
    for s in srcs:
        v = np.broadcast_to(np.asarray(cta.get(s, ptx_type(f"b{size * 8}"))), (cta.T,))[tids]
        parts.append(_to_bytes(v, size))
    cta.mem_write(addr, np.concatenate(parts, axis=1), space, tids)


# ---------------------------------------------------------------------- atomics

def _atom_apply(op, t, old, b, c=None):
    """New value of an atomic ``op`` of type ``t`` on raw-bit arrays."""
    if t.name in ("f16x2", "bf16x2"):
        h = "f16" if t.name == "f16x2" else "bf16"
        out = np.zeros(old.shape, np.uint32)
        for sh in (0, 16):
            o = ((old >> np.uint32(sh)) & np.uint32(0xFFFF)).astype(np.uint16).view(FLOAT[h]).astype(np.float64)
            v = ((b >> np.uint32(sh)) & np.uint32(0xFFFF)).astype(np.uint16).view(FLOAT[h]).astype(np.float64)
            r = {"add": o + v, "min": np.fmin(o, v), "max": np.fmax(o, v)}[op]
            out |= round_to(r, h).view(np.uint16).astype(np.uint32) << np.uint32(sh)
        return out
    if t.kind == "f":
        o = old.view(t.np).astype(np.float64)
        v = b.view(t.np).astype(np.float64)
        if op == "add":
            r = o + v
        elif op == "min":
            r = np.fmin(o, v)
        elif op == "max":
            r = np.fmax(o, v)
        elif op == "exch":
            return b
        else:
            raise ValueError(op)
        return round_to(r, t.name).view(UINT[t.bits])
    u = UINT[t.bits]
    if t.kind == "s":
        o, v = old.view(t.np), b.view(t.np)
    else:
        o, v = old, b
    if op == "add":
        r = o + v
    elif op == "min":
        r = np.minimum(o, v)
    elif op == "max":
        r = np.maximum(o, v)
    elif op == "and":
        r = o & v
    elif op == "or":
        r = o | v
    elif op == "xor":
        r = o ^ v
    elif op == "exch":
        r = v
    elif op == "inc":
        r = np.where(o >= v, 0, o + 1)
    elif op == "dec":
        r = np.where((o == 0) | (o > v), v, o - 1)
    elif op == "cas":
        r = np.where(o == v, c.view(o.dtype), o)
    else:
        raise ValueError(op)
    return np.asarray(r).astype(o.dtype).view(u)


_ATOM_OPS = ("add", "min", "max", "and", "or", "xor", "exch", "inc", "dec", "cas")


def _atomic(cta, ins, has_dst: bool):
    mods = ins.mods[1:]
    op = next(m for m in mods if m in _ATOM_OPS)
    t = ptx_type([m for m in mods if is_type_name(m) or m in ("f16x2", "bf16x2")][-1])
    if any(m in _VEC for m in mods):
        raise cta.error("vector atomics are not simulated")
    space = cta.space_of(ins)
    ops = ins.ops
    dst = ops[0] if has_dst else None
    aop = ops[1] if has_dst else ops[0]
    bop = ops[2] if has_dst else ops[1]
    size = t.bits // 8
    bt = ptx_type(f"b{t.bits}")
    tids = cta.active()
    addr = cta.address(aop)[tids]
    b = np.broadcast_to(np.asarray(cta.get(bop, bt)), (cta.T,))[tids].astype(UINT[t.bits])
    c = np.broadcast_to(np.asarray(cta.get(ops[3], bt)), (cta.T,))[tids].astype(UINT[t.bits]) if op == "cas" else None
    olds = np.zeros(len(tids), UINT[t.bits])
    remaining = np.arange(len(tids))
    while len(remaining):
        # one round: the first pending thread (in thread order) of every distinct address
        _, first = np.unique(addr[remaining], return_index=True)
        sel = remaining[np.sort(first)]
        data = cta.mem_read(addr[sel], size, space, tids[sel]) if space != "shared" else \
            _smem_atomic_read(cta, addr[sel], size, tids[sel])
        old = np.ascontiguousarray(data).view(UINT[t.bits]).reshape(-1)
        new = _atom_apply(op, t, old, b[sel], None if c is None else c[sel])
        cta.mem_write(addr[sel], _to_bytes(np.asarray(new), size), space, tids[sel])
        olds[sel] = old
        remaining = np.setdiff1d(remaining, sel, assume_unique=True)
    if dst is not None:
        full = np.zeros(cta.T, UINT[t.bits])
        full[tids] = olds
        cta.set(dst, bt, full)


def _smem_atomic_read(cta, addr, size, tids):
    off = addr.astype(np.int64)
    from .memory import SHARED_WINDOW
    off = np.where(off >= SHARED_WINDOW, off - SHARED_WINDOW, off)
    cta.check_align(addr, size, tids)
    return cta.smem.read(off, size, tids, cta.err_at(tids), race=False)


@handler("atom")
def op_atom(cta, ins):
    _atomic(cta, ins, True)


@handler("red")
def op_red(cta, ins):
    _atomic(cta, ins, False)


# ---------------------------------------------------------------------- cp.async (sm_80)

class CpAsync:
    __slots__ = ("tid", "dst", "data", "group", "line")

    def __init__(self, tid, dst, data, line):
        self.tid, self.dst, self.data, self.group, self.line = tid, dst, data, None, line


@handler("cp.async")
def op_cp_async(cta, ins):
    sub = ins.mods[2]
    if sub == "commit_group":
        _commit(cta, cta.mask)
        return
    if sub in ("wait_group", "wait_all"):
        if sub == "wait_all":
            _commit(cta, cta.mask)
            n = 0
        else:
            n = int(np.asarray(cta.get(ins.ops[0], ptx_type("u32"))))
        _wait(cta, cta.mask, n)
        return
    if sub == "mbarrier":                  # cp.async.mbarrier.arrive{.noinc}.shared.b64 [mbar]
        from .isa_async import arrive_at
        tids = cta.active()
        _complete(cta, [op for op in cta.cp_async if op.tid in set(tids.tolist())])
        if "noinc" in ins.mods:
            arrive_at(cta, ins.ops[0], tids, 1)
        return
    if sub not in ("ca", "cg"):
        raise cta.error(f"{ins.opcode} is not simulated")
    tids = cta.active()
    ops = ins.ops
    size = int(ops[2][2]) if ops[2][0] == "imm" else None
    if size not in (4, 8, 16) or (sub == "cg" and size != 16):
        raise cta.error(f"cp.async.{sub} copy size must be {'16' if sub == 'cg' else '4, 8 or 16'}")
    src_size = np.full(len(tids), size, np.int64)
    if len(ops) > 3 and ops[3][0] in ("reg", "imm"):
        if ops[3][0] == "reg" and cta.L.reg_types[ops[3][1]].kind == "pred":
            ignore = np.broadcast_to(np.asarray(cta.get(ops[3], ptx_type("pred"))), (cta.T,))[tids]
            src_size = np.where(ignore, 0, src_size)
        else:
            src_size = np.broadcast_to(np.asarray(cta.get(ops[3], ptx_type("u32"))), (cta.T,))[tids].astype(np.int64)
            if (src_size > size).any():
                raise cta.error(f"cp.async src-size {int(src_size.max())} exceeds the copy size {size}")
    dst = cta.address(ops[0])[tids].astype(np.int64)
    from .memory import SHARED_WINDOW
    dst = np.where(dst >= SHARED_WINDOW, dst - SHARED_WINDOW, dst)
    src = cta.address(ops[1])[tids]
    cta.check_align(dst.astype(np.uint64), size, tids)
    cta.check_align(src, size, tids)
    err = cta.err_at(tids)
    cta.smem.check_bounds(dst, size, err)
    data = np.zeros((len(tids), size), np.uint8)
    has = src_size > 0
    if has.any():
        rd = cta.L.gmem.read(src[has], size, cta.err_at(tids[has]))
        keep = np.arange(size)[None, :] < src_size[has][:, None]
        data[has] = np.where(keep, rd, 0)
    idx = dst[:, None] + np.arange(size)
    if cta.smem.pending[idx].any():
        k = int(np.argwhere(cta.smem.pending[idx] > 0)[0][0])
        err("cp.async into shared memory that another in-flight async copy is already filling", k)
    cta.smem.add_pending(idx, ins.line)
    for k, t in enumerate(tids):
        cta.cp_async.append(CpAsync(int(t), int(dst[k]), data[k], ins.line))


def _commit(cta, mask):
    ts = set(np.nonzero(mask)[0].tolist())
    cta.cp_committed[mask] += 1
    for op in cta.cp_async:
        if op.group is None and op.tid in ts:
            op.group = int(cta.cp_committed[op.tid])


def _wait(cta, mask, n):
    ts = set(np.nonzero(mask)[0].tolist())
    done = [op for op in cta.cp_async
            if op.tid in ts and op.group is not None and op.group <= cta.cp_committed[op.tid] - n]
    _complete(cta, done)


def _complete(cta, done):
    if not done:
        return
    ids = set(map(id, done))
    cta.cp_async = [op for op in cta.cp_async if id(op) not in ids]
    sm = cta.smem
    for op in done:
        idx = np.arange(op.dst, op.dst + len(op.data))
        sm.pending[idx] -= 1
    sm.clock += 1
    for op in done:
        idx = np.arange(op.dst, op.dst + len(op.data))
        sm.data[idx] = op.data
        sm.wthread[idx] = op.tid
        sm.wclock[idx] = sm.clock
        sm.wline[idx] = op.line
