"""sm_90a warpgroup MMA: ``wgmma.mma_async`` (f16 / bf16 / tf32 / e4m3 / e5m2, f32 or f16 D),
``wgmma.fence`` / ``commit_group`` / ``wait_group``.

Executed by whole warpgroups (128 threads).  A and B come from shared memory through sm_90
GMMA descriptors (decoded with descriptors.Sm90SmemDescriptor; K-major, or MN-major for 16-bit
types with the transpose immediates, operands.matrix_index_mn) or A from registers.  The product is computed in float64 when the instruction issues and rounded once to
the accumulator type (the hardware accumulates in f32 with its own internal rounding).

Accumulator fragment, warp w of the warpgroup, lane l: ``d[4i + q]`` (f32) holds row
``16w + l/4 + 8*(q // 2)``, column ``8i + 2*(l % 4) + q % 2``; f16 accumulators pack the
q = 0,1 (and 2,3) pairs into one f16x2 register.
"""

from __future__ import annotations

import numpy as np

from .isa_ctrl import check_full_warps
from .machine import handler
from .operands import read_matrix, values
from .ptx_types import decode, ptx_type, round_to

B32 = ptx_type("b32")
B64 = ptx_type("b64")
F32 = ptx_type("f32")
PRED = ptx_type("pred")
_K = {"f16": 16, "bf16": 16, "tf32": 8, "e4m3": 32, "e5m2": 32}


def _dmap(N: int, f16: bool):
    """(row, col) per (lane-in-warpgroup, register, half) of the accumulator."""
    tid = np.arange(128)
    w, l = tid // 32, tid % 32
    base_r = 16 * w + l // 4
    base_c = 2 * (l % 4)
    if f16:
        rows = np.stack([base_r + 8 * h for i in range(N // 8) for h in (0, 1)], axis=1)
        cols = np.stack([base_c + 8 * i for i in range(N // 8) for h in (0, 1)], axis=1)
        return rows, cols          # element pair (col, col+1) in (lo, hi)
    rows = np.stack([base_r + 8 * (q // 2) for i in range(N // 8) for q in range(4)], axis=1)
    cols = np.stack([base_c + 8 * i + q % 2 for i in range(N // 8) for q in range(4)], axis=1)
    return rows, cols


def _amap(fmt: str):
    """(row, k, elements per register) per (lane-in-warpgroup, register) for A from registers."""
    tid = np.arange(128)
    w, l = tid // 32, tid % 32
    g, t = 16 * w + l // 4, l % 4
    if fmt in ("f16", "bf16"):
        return [(g, 2 * t), (g + 8, 2 * t), (g, 2 * t + 8), (g + 8, 2 * t + 8)], 2
    if fmt == "tf32":
        return [(g, t), (g + 8, t), (g, t + 4), (g + 8, t + 4)], 1
    return [(g, 4 * t), (g + 8, 4 * t), (g, 4 * t + 16), (g + 8, 4 * t + 16)], 4


@handler("wgmma")
def op_wgmma(cta, ins):
    sub = ins.mods[1]
    act = cta.mask
    check_full_warps(cta, act, ins.opcode, unit=128)
    if sub in ("fence", "commit_group", "wait_group"):
        return
    if sub != "mma_async":
        raise cta.error(f"{ins.opcode} is not simulated")
    mods = ins.mods
    if "sp" in mods:
        raise cta.error("sparse wgmma is not simulated")
    shape = next(m for m in mods if m.startswith("m64n"))
    N, K = int(shape[4:shape.index("k")]), int(shape[shape.index("k") + 1:])
    types = [m for m in mods[mods.index(shape) + 1:] if m in ("f16", "bf16", "f32", "tf32", "e4m3", "e5m2", "s32", "s8", "u8", "b1")]
    dt, at, bt = types[0], types[1], types[2]
    if at not in _K or bt not in _K or dt not in ("f32", "f16") or K != _K[at]:
        raise cta.error(f"{ins.opcode} is not simulated (supported: f16/bf16 k16, tf32 k8, e4m3/e5m2 k32; f32/f16 D)")
    ops = ins.ops
    dvec, aop, bop, scale_d = ops[0], ops[1], ops[2], ops[3]
    imms = [int(o[2]) for o in ops[4:]]
    a_regs = aop[0] == "vec"
    sa, sb = (imms + [1, 1])[:2]
    ta = tb = 0
    if at in ("f16", "bf16"):
        ta = 0 if a_regs else (imms[2] if len(imms) > 2 else 0)
        tb = imms[-1] if len(imms) > (2 if a_regs else 3) else 0
    f16d = dt == "f16"
    nd = N // 4 if f16d else N // 2
    if len(dvec[1]) != nd:
        raise cta.error(f"{shape}.{dt} needs {nd} accumulator registers, got {len(dvec[1])}")
    rows, cols = _dmap(N, f16d)
    kbytes = K * (4 if at == "tf32" else 2 if at in ("f16", "bf16") else 1)
    wgs = np.unique(np.nonzero(act)[0] // 128)
    for wg in wgs:
        tids = wg * 128 + np.arange(128)
        lead = int(tids[0])
        bdesc = _uniform(cta, bop, tids, B64, "b-desc")
        B = values(read_matrix(cta, bdesc, 90, N, kbytes, lead, "wgmma B operand", 2 if tb else 0), bt)  # [N, K]
        if a_regs:
            A = _a_from_regs(cta, aop, tids, at, K)
        else:
            adesc = _uniform(cta, aop, tids, B64, "a-desc")
            A = values(read_matrix(cta, adesc, 90, 64, kbytes, lead, "wgmma A operand", 2 if ta else 0), at)  # [64, K]
        prod = (sa * A) @ (sb * B).T                                                         # [64, N]
        sd = _uniform(cta, scale_d, tids, PRED, "scale-d") if scale_d[0] != "imm" else bool(scale_d[2])
        if f16d:
            D = np.zeros((64, N))
            if sd:
                raw = np.stack([np.asarray(cta.get(o, B32))[tids] for o in dvec[1]], axis=1).astype(np.uint32)
                D[rows, cols] = decode((raw & np.uint32(0xFFFF)).astype(np.uint16), "f16")
                D[rows, cols + 1] = decode((raw >> np.uint32(16)).astype(np.uint16), "f16")
            D = D + prod
            lo = round_to(D[rows, cols], "f16").view(np.uint16).astype(np.uint32)
            hi = round_to(D[rows, cols + 1], "f16").view(np.uint16).astype(np.uint32)
            out = lo | (hi << np.uint32(16))
            _write(cta, dvec, tids, out, B32)
        else:
            acc = prod[rows, cols]
            if sd:
                acc = acc + np.stack([np.asarray(cta.get(o, F32))[tids] for o in dvec[1]], axis=1).astype(np.float64)
            _write(cta, dvec, tids, round_to(acc, "f32"), F32)


def _uniform(cta, op, tids, t, what):
    v = np.broadcast_to(np.asarray(cta.get(op, t)), (cta.T,))[tids]
    if (v != v[0]).any():
        k = int(np.argmax(v != v[0]))
        raise cta.error(f"wgmma {what} differs across the warpgroup", int(tids[k]))
    return v[0].item() if hasattr(v[0], "item") else v[0]


def _write(cta, dvec, tids, vals, t):
    mask = cta.mask
    sub = np.zeros(cta.T, bool)
    sub[tids] = True
    cta.mask, saved_full = sub & mask, cta.full
    cta.full = False
    for j, o in enumerate(dvec[1]):
        full = np.zeros(cta.T, t.np)
        full[tids] = vals[:, j]
        cta.set(o, t, full)
    cta.mask, cta.full = mask, saved_full


def _a_from_regs(cta, aop, tids, fmt, K):
    amap, per = _amap(fmt)
    A = np.zeros((64, K))
    for j, o in enumerate(aop[1]):
        raw = np.asarray(cta.get(o, B32))[tids].astype(np.uint32)
        r, k = amap[j]
        for e in range(per):
            bits = 32 // per
            code = (raw >> np.uint32(bits * e)) & np.uint32((1 << bits) - 1)
            A[r, k + e] = decode(code.astype(np.uint16 if bits == 16 else np.uint32 if bits == 32 else np.uint8), fmt)
    return A
