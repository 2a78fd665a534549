"""sm_80 warp-level matrix instructions: ldmatrix, stmatrix, mma.sync (f16 / bf16 / tf32).

Fragment layouts (PTX ISA "Matrix fragments for mma.m16n8k16 / m16n8k8"), lane l,
g = l // 4, t = l % 4; each .b32 register holds two 16-bit elements, the lower-indexed one in
the low half:

    A m16n8k16 (f16/bf16): a0 (g, 2t..2t+1)  a1 (g+8, 2t..)  a2 (g, 2t+8..)  a3 (g+8, 2t+8..)
    B m16n8k16:            b0 (k 2t..2t+1, n g)  b1 (k 2t+8.., n g)
    C/D f32:               c0 (g, 2t)  c1 (g, 2t+1)  c2 (g+8, 2t)  c3 (g+8, 2t+1)
    C/D f16 (f16x2):       c0 (g, 2t..2t+1)  c1 (g+8, ..)
    m16n8k8 f16: a0, a1 as above (k < 8), b0;  tf32 m16n8k8: a0 (g, t) a1 (g+8, t) a2 (g, t+4)
    a3 (g+8, t+4), b0 (k t, n g) b1 (k t+4, n g)

ldmatrix .m8n8 .xN: lanes 8i..8i+7 give the row addresses of matrix i; register i of lane l
receives row l // 4, columns 2(l % 4) and 2(l % 4) + 1 of matrix i (``.trans``: the transposed
element pair).  The product is computed in float64 and rounded once to the accumulator type.
"""

from __future__ import annotations

import numpy as np

from .isa_ctrl import check_full_warps
from .machine import handler
from .memory import SHARED_WINDOW
from .ptx_types import decode, ptx_type, round_to

B32 = ptx_type("b32")
F32 = ptx_type("f32")


def _warps(cta):
    """Active warps (all of whose lanes execute) and their thread ids [W, 32]."""
    act = cta.mask
    check_full_warps(cta, act, cta.ins.opcode)
    W = cta.nwarps
    pad = W * 32 - cta.T
    a = np.concatenate([act, np.zeros(pad, bool)]).reshape(W, 32)
    ws = np.nonzero(a.any(1))[0]
    if pad and (ws == W - 1).any():
        raise cta.error(f"{cta.ins.opcode} needs whole warps: the CTA has {cta.T} threads")
    return ws, ws[:, None] * 32 + np.arange(32)[None, :]


def _regs(cta, vec, tids, t=B32):
    """[W, 32, n] raw values of the registers in vector operand ``vec`` for threads ``tids``."""
    items = vec[1] if vec[0] == "vec" else [vec]
    out = np.stack([np.broadcast_to(np.asarray(cta.get(o, t)), (cta.T,))[tids] for o in items], axis=-1)
    return out


def _put(cta, vec, tids, vals, t=B32):
    """Write [W, 32, n] values into the registers of ``vec`` for threads ``tids``."""
    items = vec[1] if vec[0] == "vec" else [vec]
    for i, o in enumerate(items):
        full = np.zeros(cta.T, t.np)
        full[tids.reshape(-1)] = vals[..., i].reshape(-1)
        cta.set(o, t, full)


def _smem_off(cta, tids):
    a = cta.address(cta.ins.ops[1] if cta.ins.head == "ldmatrix" else cta.ins.ops[0])[tids].astype(np.int64)
    return np.where(a >= SHARED_WINDOW, a - SHARED_WINDOW, a)


@handler("ldmatrix")
def op_ldmatrix(cta, ins):
    mods = ins.mods
    n = int(next(m for m in mods if m in ("x1", "x2", "x4"))[1])
    trans = "trans" in mods
    if "m8n8" not in mods or "b16" not in mods:
        raise cta.error(f"{ins.opcode}: only .m8n8 .b16 is simulated")
    ws, tids = _warps(cta)
    off = _smem_off(cta, tids)                            # [W, 32]
    rows = off[:, :8 * n].reshape(len(ws), n, 8)          # matrix i, row r from lane 8i + r
    if (rows % 16).any():
        raise cta.error("ldmatrix row addresses must be 16-byte aligned", int(tids.reshape(-1)[np.argmax((off % 16 != 0).reshape(-1))]))
    flat_t = tids[:, :8 * n].reshape(len(ws), n, 8)
    err = cta.err_at(flat_t.reshape(-1))
    data = cta.smem.read(rows.reshape(-1), 16, flat_t.reshape(-1), err, line=ins.line)
    mat = np.ascontiguousarray(data).view(np.uint16).reshape(len(ws), n, 8, 8)    # [W, i, row, col]
    lane = np.arange(32)
    r, c = lane // 4, 2 * (lane % 4)
    if trans:
        lo, hi = mat[:, :, c, r], mat[:, :, c + 1, r]
    else:
        lo, hi = mat[:, :, r, c], mat[:, :, r, c + 1]
    vals = lo.astype(np.uint32) | (hi.astype(np.uint32) << np.uint32(16))       # [W, i, lane]
    _put(cta, ins.ops[0], tids, np.transpose(vals, (0, 2, 1)))


@handler("stmatrix")
def op_stmatrix(cta, ins):
    mods = ins.mods
    n = int(next(m for m in mods if m in ("x1", "x2", "x4"))[1])
    trans = "trans" in mods
    ws, tids = _warps(cta)
    off = _smem_off(cta, tids)
    v = _regs(cta, ins.ops[1], tids)                         # [W, 32, n]
    lane = np.arange(32)
    r, c = lane // 4, 2 * (lane % 4)
    mat = np.zeros((len(ws), n, 8, 8), np.uint16)
    for i in range(n):
        lo = (v[:, :, i] & np.uint32(0xFFFF)).astype(np.uint16)
        hi = (v[:, :, i] >> np.uint32(16)).astype(np.uint16)
        if trans:
            mat[:, i, c, r], mat[:, i, c + 1, r] = lo, hi
        else:
            mat[:, i, r, c], mat[:, i, r, c + 1] = lo, hi
    rows = off[:, :8 * n].reshape(-1)
    wt = tids[:, :8 * n].reshape(-1)
    data = np.ascontiguousarray(mat.reshape(len(ws) * n * 8, 8)).view(np.uint8).reshape(-1, 16)
    cta.smem.write(rows, data, wt, cta.err_at(wt), ins.line)


# ---------------------------------------------------------------------- mma.sync

def _frag_maps(shape: str, ab: str):
    """Index maps: for each (lane, register, half) the (row, col) it holds, per operand."""
    lane = np.arange(32)
    g, t = lane // 4, lane % 4
    if ab in ("f16", "bf16"):
        if shape == "m16n8k16":
            a = [(g, 2 * t), (g + 8, 2 * t), (g, 2 * t + 8), (g + 8, 2 * t + 8)]
            b = [(2 * t, g), (2 * t + 8, g)]
        elif shape == "m16n8k8":
            a = [(g, 2 * t), (g + 8, 2 * t)]
            b = [(2 * t, g)]
        else:
            return None
        return a, b, 2
    if ab == "tf32" and shape == "m16n8k8":
        a = [(g, t), (g + 8, t), (g, t + 4), (g + 8, t + 4)]
        b = [(t, g), (t + 4, g)]
        return a, b, 1
    return None


@handler("mma")
def op_mma(cta, ins):
    mods = ins.mods
    if mods[1] != "sync":
        raise cta.error(f"{ins.opcode} is not simulated")
    shape = next((m for m in mods if m.startswith("m") and "n" in m and "k" in m), None)
    types = [m for m in mods if m in ("f16", "bf16", "f32", "tf32", "f64", "s8", "u8", "s32", "e4m3", "e5m2")]
    if "row" not in mods or "col" not in mods or len(types) != 4:
        raise cta.error(f"{ins.opcode}: only .row.col mma.sync with D, A, B, C types is simulated")
    dt, at, bt, ct = types
    maps = _frag_maps(shape, at)
    if maps is None or at != bt or dt not in ("f32", "f16") or ct not in ("f32", "f16"):
        raise cta.error(f"{ins.opcode} is not simulated (supported: m16n8k16 / m16n8k8 f16, bf16; m16n8k8 tf32)")
    amap, bmap, per = maps
    M, N, K = 16, 8, int(shape.split("k")[1])
    ws, tids = _warps(cta)
    W = len(ws)
    A = np.zeros((W, M, K))
    B = np.zeros((W, K, N))
    av = _regs(cta, ins.ops[1], tids)
    bv = _regs(cta, ins.ops[2], tids)
    if av.shape[-1] != len(amap) or bv.shape[-1] != len(bmap):
        raise cta.error(f"{shape}.{at} takes {len(amap)} A and {len(bmap)} B registers")
    wi = np.arange(W)[:, None]
    for arr, regs, maps_ in ((A, av, amap), (B, bv, bmap)):
        for j, (rr, cc) in enumerate(maps_):
            raw = regs[:, :, j].astype(np.uint32)
            if per == 2:
                lo = decode((raw & np.uint32(0xFFFF)).astype(np.uint16), at)
                hi = decode((raw >> np.uint32(16)).astype(np.uint16), at)
                if arr is A:
                    arr[wi, rr[None, :], cc[None, :]] = lo
                    arr[wi, rr[None, :], cc[None, :] + 1] = hi
                else:
                    arr[wi, rr[None, :], cc[None, :]] = lo
                    arr[wi, rr[None, :] + 1, cc[None, :]] = hi
            else:
                arr[wi, rr[None, :], cc[None, :]] = decode(raw, "tf32")
    lane = np.arange(32)
    g, t = lane // 4, lane % 4
    C = np.zeros((W, M, N))
    if ct == "f32":
        cv = _regs(cta, ins.ops[3], tids, F32).astype(np.float64)
        for j, (rr, cc) in enumerate([(g, 2 * t), (g, 2 * t + 1), (g + 8, 2 * t), (g + 8, 2 * t + 1)]):
            C[wi, rr[None, :], cc[None, :]] = cv[:, :, j]
    else:
        cv = _regs(cta, ins.ops[3], tids)
        for j, rr in enumerate([g, g + 8]):
            raw = cv[:, :, j].astype(np.uint32)
            C[wi, rr[None, :], 2 * t[None, :]] = decode((raw & np.uint32(0xFFFF)).astype(np.uint16), "f16")
            C[wi, rr[None, :], 2 * t[None, :] + 1] = decode((raw >> np.uint32(16)).astype(np.uint16), "f16")
    D = np.einsum("wmk,wkn->wmn", A, B) + C
    if dt == "f32":
        out = np.stack([D[wi, rr[None, :], cc[None, :]] for rr, cc in
                        [(g, 2 * t), (g, 2 * t + 1), (g + 8, 2 * t), (g + 8, 2 * t + 1)]], axis=-1)
        _put(cta, ins.ops[0], tids, round_to(out, "f32"), F32)
    else:
        outs = []
        for rr in (g, g + 8):
            lo = round_to(D[wi, rr[None, :], 2 * t[None, :]], "f16").view(np.uint16).astype(np.uint32)
            hi = round_to(D[wi, rr[None, :], 2 * t[None, :] + 1], "f16").view(np.uint16).astype(np.uint32)
            outs.append(lo | (hi << np.uint32(16)))
        _put(cta, ins.ops[0], tids, np.stack(outs, axis=-1))
