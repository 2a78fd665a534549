"""sm_100a tcgen05: tensor memory (TMEM) allocation, MMA, copies, loads/stores, commit.

TMEM is a [128 lanes x 512 columns] array of 32-bit cells per CTA (poisoned with NaN bits);
an address is ``lane << 16 | column``.  Checks: allocations are warp-wide, a power of two in
[32, 512] columns, not after ``relinquish_alloc_permit``, and all freed before exit; every
access stays inside allocated columns; ``tcgen05.ld/st`` by warp w touch only lanes
32*(w%4)..+31; an ``ld`` of accumulator cells whose MMA has not been committed *and* waited
for (the commit's mbarrier phase observed) is reported.  A commit tracks every earlier MMA of
its thread (PTX ISA): when it completes, the thread's earlier pending commits complete first.

``tcgen05.mma`` (cta_group::1, M = 128: row m in lane m, column d + n) executes when issued, by
every thread that executes it (elect one).  Shared-memory operands are K-major, or MN-major
(idesc major bits; 8/16/32-bit types, not block-scaled) in the canonical layouts of
``operands.matrix_index_mn``.  kind::f16 (f16/bf16, K16), tf32 (K8), f8f6f4 (e4m3 / e5m2 /
e2m3 / e3m2 / e2m1, A and B of any two of them, K32; fp4 / fp6 in shared memory as 16-element
groups padded to 16 bytes, `padded_values`) and block-scaled mxf4 / mxf4nvf4 (e2m1 packed two per byte, K64) with ue8m0 / ue4m3
scale factors: D = sum_k A[m,k] SFA[m,k/vs] B[n,k] SFB[n,k/vs] (+ D) in float64, rounded once
to f32.  Scale factors (CUTLASS ``tmem_sf_frg``): SF(row r, j) lives in TMEM lane r % 32 of
every lane quarter, column sf_col + r / 32, byte sf_id + j; the four quarters must agree
(``tcgen05.cp ... .32x128b.warpx4`` replicates them).  Instruction descriptors are decoded with
descriptors.Sm100InstrDescriptor / Sm100BlockScaledInstrDescriptor.

``tcgen05.ld/st`` shapes (from CUTLASS's SM100_TMEM_LOAD traits), thread t of the warp, base
lane L0 of the address: 32x32b.xN: lane L0+t, register j = column j.  16x64b.xN: register j at
lane L0 + t/4 + 8(t%2), column 2j + (t/2)%2.  16x128b.xN: register 2j+h at lane L0 + t/4 + 8h,
column 4j + t%4.  16x256b.xN: register 4j+q at lane L0 + t/4 + 8(q/2), column 8j + 2(t%4) + q%2.
"""

from __future__ import annotations

import numpy as np

from .isa_async import AsyncOp, arrive, get_mbar, smem_offsets
from .isa_ctrl import check_full_warps
from .errors import SimError
from .machine import handler
from .operands import read_matrix, values
from .ptx_types import decode, ptx_type, round_to

from tilec.backends.ptx.descriptors import Sm100BlockScaledInstrDescriptor, Sm100InstrDescriptor

U32 = ptx_type("u32")
B32 = ptx_type("b32")
B64 = ptx_type("b64")
PRED = ptx_type("pred")
LANES, COLS = 128, 512


class TensorMemory:
    def __init__(self):
        self.data = np.full((LANES, COLS), 0x7FFFFFFF, np.uint32)
        self.allocs: dict[int, int] = {}          # first column -> ncols
        self.relinquished = False
        self.pending = np.zeros((LANES, COLS), np.int32)      # MMA results not yet committed+waited
        self.uncommitted: dict[int, list] = {}    # issuing thread -> [(lane slice, col slice)]
        self.in_flight: dict[int, list] = {}      # issuing thread -> its commits not yet complete

    def allocated(self, c0: int, c1: int) -> bool:
        return any(a <= c0 and c1 <= a + n for a, n in self.allocs.items())


def tmem(cta) -> TensorMemory:
    if cta.tmem is None:
        cta.tmem = TensorMemory()
    return cta.tmem


def _check_cols(cta, tm, c0, c1, t, what):
    if not tm.allocated(c0, c1):
        have = ", ".join(f"[{a}, {a + n})" for a, n in sorted(tm.allocs.items())) or "none"
        raise cta.error(f"{what} touches TMEM columns [{c0}, {c1}) outside the allocated columns ({have})", t)


def _addr(v) -> tuple[int, int]:
    v = int(v)
    return v >> 16, v & 0xFFFF


def _uni(cta, op, tids, t, what):
    v = np.broadcast_to(np.asarray(cta.get(op, t)), (cta.T,))[tids]
    if (v != v[0]).any():
        k = int(np.argmax(v != v[0]))
        raise cta.error(f"{what} must be the same in every thread of the warp", int(tids[k]))
    return v[0]


@handler("tcgen05")
def op_tcgen05(cta, ins):
    sub = ins.mods[1]
    if sub.startswith("fence") or sub.startswith("wait"):
        return
    fn = _SUBS.get(sub)
    if fn is None:
        raise cta.error(f"{ins.opcode} is not simulated")
    if "cta_group::2" in ins.mods:
        raise cta.error("tcgen05 .cta_group::2 (CTA pairs) is not simulated")
    fn(cta, ins)


def _warps_of(cta):
    act = cta.mask
    check_full_warps(cta, act, cta.ins.opcode)
    ws = np.unique(np.nonzero(act)[0] // 32)
    return ws


def _alloc(cta, ins):
    tm = tmem(cta)
    for w in _warps_of(cta):
        tids = np.arange(w * 32, min(w * 32 + 32, cta.T))
        lead = int(tids[0])
        n = int(_uni(cta, ins.ops[1], tids, U32, "tcgen05.alloc nCols"))
        if tm.relinquished:
            raise cta.error("tcgen05.alloc after tcgen05.relinquish_alloc_permit", lead)
        if n < 32 or n > 512 or n & (n - 1):
            raise cta.error(f"tcgen05.alloc of {n} columns: must be a power of 2 in [32, 512]", lead)
        col = next((c for c in range(0, COLS, n) if all(c + n <= a or a + m <= c for a, m in tm.allocs.items())), None)
        if col is None:
            raise cta.error(f"tcgen05.alloc of {n} columns cannot be satisfied (allocated: {tm.allocs}): "
                            f"it would block forever", lead)
        tm.allocs[col] = n
        dst = smem_offsets(cta, ins.ops[0], np.array([lead]))
        cta.smem.write(dst, np.frombuffer(np.uint32(col).tobytes(), np.uint8).reshape(1, 4),
                       np.array([lead]), cta.err_at(np.array([lead])), ins.line)


def _dealloc(cta, ins):
    tm = tmem(cta)
    for w in _warps_of(cta):
        tids = np.arange(w * 32, min(w * 32 + 32, cta.T))
        lead = int(tids[0])
        lane, col = _addr(_uni(cta, ins.ops[0], tids, U32, "tcgen05.dealloc taddr"))
        n = int(_uni(cta, ins.ops[1], tids, U32, "tcgen05.dealloc nCols"))
        if lane != 0 or tm.allocs.get(col) != n:
            raise cta.error(f"tcgen05.dealloc of {n} columns at TMEM address {(lane << 16) | col:#x} does not match "
                            f"an allocation ({tm.allocs})", lead)
        if tm.pending[:, col:col + n].any():
            raise cta.error("tcgen05.dealloc of columns an unfinished tcgen05.mma still writes", lead)
        del tm.allocs[col]


def _relinquish(cta, ins):
    _warps_of(cta)
    tmem(cta).relinquished = True


# ---------------------------------------------------------------------- mma

_F16_AB = {0: "f16", 1: "bf16"}
_F8F6F4_AB = {0: "e4m3", 1: "e5m2", 3: "e2m3", 4: "e3m2", 5: "e2m1"}


def _mma(cta, ins):
    mods = ins.mods
    kind = next(m.split("::")[1] for m in mods if m.startswith("kind::"))
    block = "block_scale" in mods
    if "ws" in mods or "sp" in mods:
        raise cta.error("tcgen05.mma .ws / .sp are not simulated")
    ops = ins.ops
    tm = tmem(cta)
    for t in np.nonzero(cta.mask)[0]:
        t = int(t)
        _mma_one(cta, ins, t, kind, block, ops, tm)


def _val(cta, op, t, typ):
    return np.broadcast_to(np.asarray(cta.get(op, typ)), (cta.T,))[t]


def _mma_one(cta, ins, t, kind, block, ops, tm):
    dl, dc = _addr(_val(cta, ops[0][1], t, U32)) if ops[0][0] == "addr" else (None, None)
    if ops[0][0] != "addr" or ops[0][2]:
        raise cta.error("tcgen05.mma D must be [tmem address register]", t)
    a_tmem = ops[1][0] == "addr"
    idesc = int(_val(cta, ops[3], t, U32))
    rest = ops[4:]
    if block:
        if kind not in ("mxf4", "mxf4nvf4", "mxf8f6f4"):
            raise cta.error(f"block-scaled kind::{kind} is not simulated", t)
        try:
            d = Sm100BlockScaledInstrDescriptor.decode(idesc)
        except ValueError as e:
            raise cta.error(f"bad instruction descriptor {idesc:#010x} for kind::{kind}: {e}", t)
        M, N = d.m_dim << 7, d.n_dim << 3
        if d.k_dim:
            raise cta.error("K = 96 block-scaled MMA (sm_103a) is not simulated", t)
        sfa_op, sfb_op, en_op = rest[0], rest[1], rest[2]
        if kind == "mxf8f6f4":
            at, bt, K, vs = _F8F6F4_AB.get(d.a_type), _F8F6F4_AB.get(d.b_type), 32, 32
        else:
            if d.a_type != 1 or d.b_type != 1:
                raise cta.error(f"kind::{kind} needs E2M1 A and B (type code 1), idesc has {d.a_type}/{d.b_type}", t)
            at = bt = "e2m1"
            K = 64
            vs = _vec_size(cta, ins, kind, t)
        sf_fmt = "ue8m0" if d.scale_type == 1 else "ue4m3"
        if kind == "mxf4" and sf_fmt != "ue8m0":
            raise cta.error("kind::mxf4 needs UE8M0 scale factors (idesc bit 23)", t)
        if vs == 32 and sf_fmt != "ue8m0":
            raise cta.error("32-element scale blocks need UE8M0 scale factors", t)
        neg_a, neg_b = d.negate_a, d.negate_b
        a_major, b_major = d.a_major, d.b_major
    else:
        try:
            d = Sm100InstrDescriptor.decode(idesc)
        except ValueError as e:
            raise cta.error(f"bad instruction descriptor {idesc:#010x} for kind::{kind}: {e}", t)
        M, N = d.m_dim << 4, d.n_dim << 3
        if d.sparse:
            raise cta.error("sparse tcgen05.mma is not simulated", t)
        if kind == "f16":
            at, bt, K = _F16_AB.get(d.a_type), _F16_AB.get(d.b_type), 16
        elif kind == "tf32":
            at, bt, K = ("tf32" if d.a_type == 2 else None), ("tf32" if d.b_type == 2 else None), 8
        elif kind == "f8f6f4":
            at, bt, K = _F8F6F4_AB.get(d.a_type), _F8F6F4_AB.get(d.b_type), 32
        else:
            raise cta.error(f"tcgen05.mma kind::{kind} is not simulated", t)
        if d.d_type != 1:
            raise cta.error("tcgen05.mma with an f16 accumulator is not simulated (only f32 D)", t)
        en_op = rest[-1] if rest[-1][0] != "imm" else rest[-2]
        if rest[-1][0] == "imm":
            raise cta.error("tcgen05.mma scale_input_d is not simulated", t)
        if rest[0][0] == "vec":
            raise cta.error("tcgen05.mma disable_output_lane is not simulated", t)
        neg_a, neg_b, a_major, b_major = d.negate_a, d.negate_b, d.a_major, d.b_major
    if at is None or bt is None:
        raise cta.error(f"kind::{kind} operand types {at}/{bt} are not simulated", t)
    padded = kind in ("f8f6f4", "mxf8f6f4")   # fp4 / fp6 in 16-element groups padded to 16 bytes
    # MN-major shared-memory operands (idesc major bits): the canonical layouts that wgmma's
    # transposed operands use (operands.matrix_index_mn), for the types that may be MN-major
    mn_esize = {"f16": 2, "bf16": 2, "tf32": 4, "e4m3": 1, "e5m2": 1}
    if (a_major and (a_tmem or at not in mn_esize)) or (b_major and bt not in mn_esize) or \
            ((a_major or b_major) and block):
        raise cta.error(f"MN-major tcgen05.mma operands of types {at}/{bt} are not simulated (f16, bf16, tf32, "
                        f"e4m3 and e5m2 in shared memory only)", t)
    if M != 128:
        raise cta.error(f"tcgen05.mma with M = {M} is not simulated (cta_group::1, M = 128 only)", t)
    if dl != 0:
        raise cta.error(f"tcgen05.mma D address has lane {dl}: M = 128 uses all 128 lanes from lane 0", t)
    bits = {"f16": 16, "bf16": 16, "tf32": 32, "e4m3": 8, "e5m2": 8, "e2m1": 4}
    a_kbytes, b_kbytes = (K, K) if padded else (K * bits[at] // 8, K * bits[bt] // 8)
    decode_a = (lambda raw: _tmem_codes(raw, at)) if padded and a_tmem else \
        (lambda raw: padded_values(raw, at)) if padded else (lambda raw: values(raw, at))
    decode_b = (lambda raw: padded_values(raw, bt)) if padded else (lambda raw: values(raw, bt))
    _check_cols(cta, tm, dc, dc + N, t, "tcgen05.mma D")
    if a_tmem:
        al, ac = _addr(_val(cta, ops[1][1], t, U32))
        ncol = a_kbytes // 4
        _check_cols(cta, tm, ac, ac + ncol, t, "tcgen05.mma A (TMEM)")
        raw = np.ascontiguousarray(tm.data[al:al + M, ac:ac + ncol]).view(np.uint8).reshape(M, a_kbytes)
        A = decode_a(raw)
    else:
        A = decode_a(read_matrix(cta, int(_val(cta, ops[1], t, B64)), 100, M, a_kbytes, t, "tcgen05.mma A operand",
                                 mn_esize[at] if a_major else 0))
    B = decode_b(read_matrix(cta, int(_val(cta, ops[2], t, B64)), 100, N, b_kbytes, t, "tcgen05.mma B operand",
                             mn_esize[bt] if b_major else 0))
    if neg_a:
        A = -A
    if neg_b:
        B = -B
    if block:
        nsf = K // vs
        SA = _scale_factors(cta, tm, sfa_op, t, M, nsf, d.sfa_id, sf_fmt, "SFA")
        SB = _scale_factors(cta, tm, sfb_op, t, N, nsf, d.sfb_id, sf_fmt, "SFB")
        A = A * np.repeat(SA, vs, axis=1)
        B = B * np.repeat(SB, vs, axis=1)
    prod = A @ B.T                                              # [M, N] float64
    enable = bool(_val(cta, en_op, t, PRED)) if en_op[0] == "reg" else bool(en_op[2])
    cells = tm.data[0:M, dc:dc + N]
    if enable:
        prod = prod + cells.view(np.float32).astype(np.float64)
    tm.data[0:M, dc:dc + N] = round_to(prod, "f32").view(np.uint32)
    tm.pending[0:M, dc:dc + N] += 1
    tm.uncommitted.setdefault(t, []).append((slice(0, M), slice(dc, dc + N)))


_SUB_BITS = {"e2m1": 4, "e2m3": 6, "e3m2": 6}


def padded_values(raw: np.ndarray, fmt: str) -> np.ndarray:
    """kind::(mx)f8f6f4 operand bytes [rows, K] in shared memory -> float64 [rows, K].

    fp8: one element per byte.  fp4 / fp6 (PTX ISA "Packing format used for matrix A and B by
    .kind::mxf8f6f4 in Shared Memory"; TMA .b4x16_p64 / .b6x16_p32): every 16-byte group holds
    16 elements packed little-endian in its first 8 / 12 bytes (element i at bits [b*i, b*i+b)),
    the rest is padding and is never read; data laid out densely decodes to other numbers."""
    if fmt not in _SUB_BITS:
        return values(raw, fmt)
    b = _SUB_BITS[fmt]
    rows, kb = raw.shape
    if kb % 16:
        raise SimError(f"{fmt} operand rows of {kb} bytes are not whole 16-byte groups")
    data = np.ascontiguousarray(raw).reshape(rows, kb // 16, 16)[:, :, :2 * b]
    bitstr = np.unpackbits(data, axis=-1, bitorder="little").reshape(rows, kb // 16, 16, b)
    codes = np.packbits(bitstr, axis=-1, bitorder="little")[..., 0]
    return decode(codes.reshape(rows, kb), fmt)


def _tmem_codes(raw: np.ndarray, fmt: str) -> np.ndarray:
    """A in TMEM for kind::f8f6f4: fp4 / fp6 elements one per 8-bit container (low bits)."""
    return decode(raw, fmt) if fmt in _SUB_BITS else values(raw, fmt)


def _vec_size(cta, ins, kind, t):
    mods = ins.mods
    if "block16" in mods or "scale_vec::4X" in mods:
        return 16
    if "block32" in mods or "scale_vec::2X" in mods:
        return 32
    if "scale_vec::1X" in mods:
        raise cta.error(f"kind::{kind} with scale_vec::1X is not legal (1X is for mxf8f6f4)", t)
    if kind == "mxf4":
        return 32
    raise cta.error("kind::mxf4nvf4 needs an explicit .block16/.block32 (or scale_vec::4X/2X)", t)


def _scale_factors(cta, tm, op, t, rows, nsf, sf_id, fmt, what):
    if op[0] != "addr":
        raise cta.error(f"{what} must be a [tmem address] operand", t)
    lane0, col0 = _addr(_val(cta, op[1], t, U32))
    if lane0 != 0:
        raise cta.error(f"{what} TMEM address has lane {lane0}; scale factors start at lane 0", t)
    ncols = (rows + 31) // 32
    _check_cols(cta, tm, col0, col0 + ncols, t, what)
    if sf_id + nsf > 4:
        raise cta.error(f"{what}: byte id {sf_id} + {nsf} scale factors do not fit a 32-bit column", t)
    r = np.arange(rows)
    cells = tm.data[:, col0:col0 + ncols]                           # [128, ncols]
    quarters = np.stack([cells[32 * q + r % 32, r // 32] for q in range(4)])    # [4, rows]
    if (quarters != quarters[0]).any():
        q, k = np.argwhere(quarters != quarters[0])[0]
        raise cta.error(f"{what}: the scale factors of row {k} differ between TMEM lane quarters 0 and {q}; "
                        f"they must be replicated to all four (tcgen05.cp ... .32x128b.warpx4)", t)
    words = quarters[0]
    sf = np.stack([(words >> np.uint32(8 * (sf_id + j))) & np.uint32(0xFF) for j in range(nsf)], axis=1)
    return decode(sf.astype(np.uint8), fmt)


# ---------------------------------------------------------------------- cp / commit / ld / st

_CP_SHAPES = {"128x256b": (128, 32), "4x256b": (4, 32), "128x128b": (128, 16), "64x128b": (64, 16),
              "32x128b": (32, 16)}


def _cp(cta, ins):
    mods = ins.mods
    shape = next((m for m in mods if m in _CP_SHAPES), None)
    if shape is None or any(m.startswith("b8x16") or m.startswith("b6x16") or m.startswith("b4x16") for m in mods):
        raise cta.error(f"{ins.opcode}: shape / decompression not simulated")
    rows, rbytes = _CP_SHAPES[shape]
    tm = tmem(cta)
    for t in np.nonzero(cta.mask)[0]:
        t = int(t)
        lane0, col0 = _addr(_val(cta, ins.ops[0][1], t, U32))
        desc = int(_val(cta, ins.ops[1], t, B64))
        raw = read_matrix(cta, desc, 100, rows, rbytes, t, "tcgen05.cp source")
        words = np.ascontiguousarray(raw).view(np.uint32).reshape(rows, rbytes // 4)
        ncol = rbytes // 4
        _check_cols(cta, tm, col0, col0 + ncol, t, "tcgen05.cp")
        if "warpx4" in mods:
            dst = [(32 * q, words) for q in range(4)]
        elif "warpx2::02_13" in mods:
            dst = [(0, words[:32]), (64, words[:32]), (32, words[32:]), (96, words[32:])]
        elif "warpx2::01_23" in mods:
            dst = [(0, words[:32]), (32, words[:32]), (64, words[32:]), (96, words[32:])]
        else:
            dst = [(0, words)]
        for lane, w in dst:
            l0 = lane0 + lane
            if l0 + len(w) > LANES:
                raise cta.error(f"tcgen05.cp writes TMEM lanes past 127 (address lane {lane0})", t)
            tm.data[l0:l0 + len(w), col0:col0 + ncol] = w


def _commit(cta, ins):
    tm = tmem(cta)
    if "multicast::cluster" in ins.mods:
        raise cta.error("tcgen05.commit multicast is not simulated")
    for t in np.nonzero(cta.mask)[0]:
        t = int(t)
        off = int(smem_offsets(cta, ins.ops[0], np.array([t]))[0])
        get_mbar(cta, off, t)
        regions = tm.uncommitted.pop(t, [])
        # PTX ISA: the mbarrier tracks *all* prior async tcgen05 operations of the thread, so
        # this commit completing means the thread's earlier commits (if still pending) did too
        earlier = list(tm.in_flight.get(t, []))
        me: list = []          # this commit's AsyncOp, bound per thread

        def complete(off=off, regions=regions, earlier=earlier, t=t, me=me):
            for op in earlier:
                if any(op is o for o in cta.async_ops):
                    cta.async_ops = [o for o in cta.async_ops if o is not op]
                    op.complete()
            for ls, cs in regions:
                tm.pending[ls, cs] -= 1
            tm.in_flight[t] = [o for o in tm.in_flight.get(t, []) if o is not me[0]]
            arrive(cta, off, 1)
        me.append(AsyncOp(off, ins.line, complete, f"tcgen05.commit (line {ins.line})"))
        tm.in_flight.setdefault(t, []).append(me[0])
        cta.async_ops.append(me[0])


def _ld_map(shape: str, n: int):
    """(lane offset [32, regs], column offset [32, regs]) of a tcgen05.ld/st shape .xN."""
    t = np.arange(32)[:, None]
    if shape == "32x32b":
        j = np.arange(n)[None, :]
        return np.broadcast_to(t, (32, n)), np.broadcast_to(j, (32, n))
    if shape == "16x64b":
        j = np.arange(n)[None, :]
        return np.broadcast_to(t // 4 + 8 * (t % 2), (32, n)), 2 * j + (t // 2) % 2
    if shape == "16x128b":
        r = np.arange(2 * n)[None, :]
        j, h = r // 2, r % 2
        return t // 4 + 8 * h, 4 * j + t % 4
    if shape == "16x256b":
        r = np.arange(4 * n)[None, :]
        j, q = r // 4, r % 4
        return t // 4 + 8 * (q // 2), 8 * j + 2 * (t % 4) + q % 2
    return None


def _ldst_setup(cta, ins, regs_op):
    mods = ins.mods
    shape = next((m for m in mods if m in ("32x32b", "16x64b", "16x128b", "16x256b", "16x32bx2")), None)
    num = next((int(m[1:]) for m in mods if m.startswith("x") and m[1:].isdigit()), None)
    if shape is None or shape == "16x32bx2" or num is None:
        raise cta.error(f"{ins.opcode}: shape not simulated")
    if any(m.startswith("pack") or m.startswith("unpack") for m in mods):
        raise cta.error(f"{ins.opcode}: .pack::16b / .unpack::16b is not simulated")
    lanes, cols = _ld_map(shape, num)
    nregs = lanes.shape[1]
    if len(regs_op[1]) != nregs:
        raise cta.error(f"{shape}.x{num} moves {nregs} registers per thread, got {len(regs_op[1])}")
    return lanes, cols


def _ld(cta, ins):
    tm = tmem(cta)
    lanes, cols = _ldst_setup(cta, ins, ins.ops[0])
    out = np.zeros((cta.T, lanes.shape[1]), np.uint32)
    for w in _warps_of(cta):
        tids = np.arange(w * 32, min(w * 32 + 32, cta.T))
        lane0, col0 = _addr(_uni(cta, ins.ops[1][1], tids, U32, "tcgen05.ld address") + np.uint32(ins.ops[1][2]))
        L = lane0 + lanes[:len(tids)]
        C = col0 + cols[:len(tids)]
        _check_quarter(cta, w, L, int(tids[0]), "tcgen05.ld")
        _check_cols(cta, tm, int(C.min()), int(C.max()) + 1, int(tids[0]), "tcgen05.ld")
        if tm.pending[L, C].any():
            raise cta.error("tcgen05.ld reads TMEM cells written by a tcgen05.mma that is not known to be "
                            "complete: tcgen05.commit to an mbarrier and wait on it first", int(tids[0]))
        out[tids] = tm.data[L, C]
    for j, o in enumerate(ins.ops[0][1]):
        cta.set(o, B32, out[:, j])


def _st(cta, ins):
    tm = tmem(cta)
    regs = ins.ops[-1]
    lanes, cols = _ldst_setup(cta, ins, regs)
    vals = np.stack([np.broadcast_to(np.asarray(cta.get(o, B32)), (cta.T,)) for o in regs[1]], axis=1)
    for w in _warps_of(cta):
        tids = np.arange(w * 32, min(w * 32 + 32, cta.T))
        lane0, col0 = _addr(_uni(cta, ins.ops[0][1], tids, U32, "tcgen05.st address") + np.uint32(ins.ops[0][2]))
        L = lane0 + lanes[:len(tids)]
        C = col0 + cols[:len(tids)]
        _check_quarter(cta, w, L, int(tids[0]), "tcgen05.st")
        _check_cols(cta, tm, int(C.min()), int(C.max()) + 1, int(tids[0]), "tcgen05.st")
        tm.data[L, C] = vals[tids]


def _check_quarter(cta, w, L, t, what):
    q0 = 32 * (w % 4)
    bad = (L < q0) | (L >= q0 + 32)
    if bad.any():
        raise cta.error(f"{what}: warp {w} may access TMEM lanes {q0}..{q0 + 31} only (32*(warp%4)), but the "
                        f"address reaches lane {int(L[bad].reshape(-1)[0])}", t)


_SUBS = {"alloc": _alloc, "dealloc": _dealloc, "relinquish_alloc_permit": _relinquish, "mma": _mma,
         "cp": _cp, "commit": _commit, "ld": _ld, "st": _st}


def check_exit(cta) -> None:
    """At CTA exit: every TMEM allocation must have been freed."""
    if cta.tmem is not None and cta.tmem.allocs:
        raise cta.error(f"the CTA exits with TMEM still allocated ({cta.tmem.allocs} column ranges): every "
                        f"tcgen05.alloc needs a tcgen05.dealloc before the kernel exits")
