"""kind::f8f6f4 operands copied from global memory into shared memory by the matmul itself:
fp4 (e2m1) and fp6 (e2m3, e3m2) operands, alone or mixed with fp8 (e4m3, e5m2).

K loops whose operands TMA can take are fed by TMA instead (`tcgen05_f8f6f4_tma.py`, the
`tcgen05_pipeline` roles); this copy is their run-time fallback (tensors that are not 32-byte
aligned or whose K extent is not a multiple of 128) and the only path of what TMA cannot take
(B given as [K, N], BK % 128 != 0, single matmuls outside a K loop).

The PTX backend keeps no fp4 / fp6 tiles in registers, so a tcgen05 matmul whose operands
are such tiles takes them straight from the `tile.load`s that produce them (the loads, and
the `tile.permute` / exact widening `tile.cast` between load and matmul, are deferred: they
only record offsets; `tcgen05_layout.direct_sources` decides which matmuls qualify).

Shared-memory layout (PTX ISA "Packing format used for matrix A and B by .kind::mxf8f6f4 in
Shared Memory", which kind::f8f6f4 shares; CUTLASS `float_e2m1_unpacksmem_t` /
`float_e2m3_unpacksmem_t`): K-major, no swizzle, the canonical layout of 1-byte operands
(`tcgen05_layout.Operand` with esize 1: 8-row x 16-byte core matrices, LBO 128 B, SBO
K / 16 * 128 B, one MMA = K32 = 32 bytes per row), but every 16-byte core-matrix row holds one
group of 16 consecutive k *packed* at its start and padding after it:

    fp8  16 x 8 bits = 16 bytes, no padding
    fp4  16 x 4 bits =  8 bytes + 8 bytes padding   (TMA .b4x16_p64 / 16U4_ALIGN16B)
    fp6  16 x 6 bits = 12 bytes + 4 bytes padding   (TMA .b6x16_p32 / 16U6_ALIGN16B)

Packed little-endian: element i of the group at bits [b*i, b*i + b) of the group's bytes (fp4:
element 2j in the low nibble of byte j, as `tilec.fp4.pack`; fp6: as `tilec.fp6.pack`).  The
padding is never written (TMA leaves it uninitialised too).

Copy (`stage`): thread t builds rows t, t + T, ... of the operand; per row and 16-k group it
loads the elements' codes (`ld.global.u8`, out-of-bounds elements get the load's padding
code), packs them into 32-bit words with `bfi` and stores the group with one `st.shared.v4` /
`.v2` (+ `.b32` for fp6).  Global storage: fp8 and fp6 one code per byte (fp6 in the low 6
bits, ml_dtypes' storage), fp4 packed two per byte (`tilec.fp4.FP4Tensor`).  Operand element
(row r, k) is load element (r, k) or, for a load whose rows run along K (A given transposed,
B given as [K, N]), load element (k, r).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from tilec import dtypes as dt
from tilec.dialects import tile as T

from . import lower_elementwise, lower_memory, lower_shape  # noqa: F401  (their lowerings first)
from .emitter import LOWERINGS, KernelEmitter, Val, dtype_of, lowers
from .tcgen05_layout import LBO, Operand, Source

_prev = {c: LOWERINGS[c] for c in (T.LoadOp, T.PermuteOp, T.CastOp)}

#: bits per element of the kind::f8f6f4 operand types
BITS = {dt.float8_e4m3fn: 8, dt.float8_e5m2: 8, dt.float6_e2m3fn: 6, dt.float6_e3m2fn: 6, dt.float4_e2m1fn: 4}


def _deferred(em: KernelEmitter, op) -> bool:
    return op.result in getattr(em, "tc_deferred", ())


@lowers(T.LoadOp)
def lower_load_direct(em: KernelEmitter, op: T.LoadOp) -> None:
    """A load feeding a direct kind::f8f6f4 operand keeps only its offsets; else the usual lowering."""
    if not _deferred(em, op):
        return _prev[T.LoadOp](em, op)
    em.set(op.result, Val(dtype_of(op.result.type), None, [em.get(o).regs[0] for o in op.offsets]))


@lowers(T.PermuteOp)
def lower_permute_direct(em: KernelEmitter, op: T.PermuteOp) -> None:
    if not _deferred(em, op):
        return _prev[T.PermuteOp](em, op)
    em.set(op.result, em.get_any(op.source))


@lowers(T.CastOp)
def lower_cast_direct(em: KernelEmitter, op: T.CastOp) -> None:
    if not _deferred(em, op):
        return _prev[T.CastOp](em, op)
    em.set(op.result, em.get_any(op.source))


# ---------------------------------------------------------------------------- the copy


def pad_code(src: Source) -> int:
    """The code of the load's padding value in the operand's type (saturated, as a cast)."""
    pad = float(src.load.padding.value.data)
    npd = src.dtype.np_dtype
    if np.isfinite(pad):
        big = float(ml_dtypes.finfo(npd).max)
        pad = min(max(pad, -big), big)
    return int(np.array(pad, np.float32).astype(npd).view(np.uint8)) & ((1 << BITS[src.dtype]) - 1)


def _pred(em: KernelEmitter, cmp: str, a, b) -> str:
    p = em.new("p")
    em.ins(f"setp.{cmp} {p}, {a}, {b}")
    return p


def _and(em: KernelEmitter, a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    p = em.new("p")
    em.ins(f"and.pred {p}, {a}, {b}")
    return p


def _wide_mul(em: KernelEmitter, x: str, s) -> str:
    """u64 register x * s (x a u32 register, s an int or a u64 register)."""
    r = em.new("rd")
    if isinstance(s, int):
        em.ins(f"mul.wide.u32 {r}, {x}, {s}")
    else:
        w = em.new("rd")
        em.ins(f"cvt.u64.u32 {w}, {x}")
        em.ins(f"mul.lo.u64 {r}, {w}, {s}")
    return r


def _add64(em: KernelEmitter, a: str, b) -> str:
    r = em.new("rd")
    if isinstance(b, str) and b.startswith("%r") and not b.startswith("%rd"):
        w = em.new("rd")
        em.ins(f"cvt.u64.u32 {w}, {b}")
        b = w
    em.ins(f"add.s64 {r}, {a}, {b}")
    return r


def _fp4_row_bytes(em: KernelEmitter, info) -> str | int:
    if isinstance(info.dims[1], int):
        return (info.dims[1] + 1) // 2

    def make():
        r = em.new("r")
        em.ins(f"add.u32 {r}, {info.dims[1]}, 1")
        em.ins(f"shr.u32 {r}, {r}, 1")
        return r
    return em.memo(("tc_fp4_row_bytes", info.ptr), make)


def stage(em: KernelEmitter, src: Source, offsets: list, o: Operand, rows: int) -> None:
    """Operand `o` (rows x o.K, the padded layout of the module docstring) from the global
    tensor of `src.load` at element `offsets`; only the tile's `rows` rows are written."""
    info = em.tensors[src.load.tensor]
    bits = BITS[src.dtype]
    check = src.load.boundary_check.value.data != 0
    pad = pad_code(src)
    fp4 = bits == 4
    kaxis = 1 - src.rows_axis
    T_ = em.num_threads
    em.comment(f"{src.dtype.name} operand: {rows} rows x {o.K} k -> smem + {o.offset} (K-major, 16 k per 16 B, "
               f"{bits * 2} B of data each{'' if bits == 8 else ', then padding'}); rows along tensor dim "
               f"{src.rows_axis}")
    off_r, off_k = offsets[src.rows_axis], offsets[kaxis]
    off_r, off_k = _reg(em, off_r), _reg(em, off_k)
    # per-k bounds (the same for every row): k < dims[kaxis] - off_k
    kpred = [None] * o.K
    if check:
        remk = em.new("r")
        em.ins(f"sub.s32 {remk}, {info.dims[kaxis]}, {off_k}")
        for k in range(o.K):
            kpred[k] = _pred(em, "gt.s32", remk, k)
    for rb in range(-(-rows // T_)):
        skip = None
        if (rb + 1) * T_ > rows:
            skip = em.label("tc_direct_rows")
            em.ins(f"@{_pred(em, 'ge.u32', em.tid, rows - rb * T_)} bra {skip}")
        em.push_scope()
        r = em.as_reg(em.add_u32(em.tid, rb * T_))
        rowc = em.as_reg(em.add_u32(off_r, r))
        rowp = _pred(em, "lt.u32", rowc, info.dims[src.rows_axis]) if check else None
        # smem row base: (r / 8) * SBO + (r % 8) * 16
        r8, rm, sb = em.new("r"), em.new("r"), em.new("r")
        em.ins(f"shr.u32 {r8}, {r}, 3")
        em.ins(f"and.b32 {rm}, {r}, 7")
        em.ins(f"mul.lo.u32 {sb}, {r8}, {o.sbo}")
        em.ins(f"mad.lo.u32 {sb}, {rm}, 16, {sb}")
        em.ins(f"add.u32 {sb}, {sb}, {em.smem_base}")
        codes = _codes(em, src, info, fp4, rowc, off_k, o.K, rowp, kpred, pad)
        per = 16 * bits // 32                     # 32-bit words of data per 16-k group
        for g in range(o.K // 16):
            words = [em.new("r") for _ in range(per)]
            for w in words:
                em.ins(f"mov.b32 {w}, 0")
            for i in range(16):
                _insert(em, words, codes(16 * g + i), bits * i, bits)
            at = f"[{sb}+{o.offset + g * LBO}]"
            if per == 4:
                em.ins(f"st.shared.v4.b32 {at}, {{{', '.join(words)}}}")
            elif per == 2:
                em.ins(f"st.shared.v2.b32 {at}, {{{', '.join(words)}}}")
            else:
                em.ins(f"st.shared.v2.b32 {at}, {{{words[0]}, {words[1]}}}")
                em.ins(f"st.shared.b32 [{sb}+{o.offset + g * LBO + 8}], {words[2]}")
        em.pop_scope()
        if skip is not None:
            em.place(skip)


def _insert(em: KernelEmitter, words: list[str], code: str, bit: int, bits: int) -> None:
    """Or the `bits`-bit `code` into the little-endian bit string `words` at bit `bit`."""
    w, pos = divmod(bit, 32)
    n = min(bits, 32 - pos)
    em.ins(f"bfi.b32 {words[w]}, {code}, {words[w]}, {pos}, {n}")
    if n < bits:
        rest = em.new("r")
        em.ins(f"shr.u32 {rest}, {code}, {n}")
        em.ins(f"bfi.b32 {words[w + 1]}, {rest}, {words[w + 1]}, 0, {bits - n}")


def _codes(em: KernelEmitter, src: Source, info, fp4: bool, rowc: str, off_k: str, K: int,
           rowp: str | None, kpred: list, pad: int):
    """A function k -> register holding the code of operand element (this row, k), loading
    as needed (registers are made in k order)."""
    if not fp4:
        if src.rows_axis == 0:            # row-major rows: byte k of the row at + k
            base = _add64(em, _add64(em, info.ptr, _wide_mul(em, rowc, info.strides[0])), off_k)
            step = None
        else:                             # k runs along dim 0: + k * stride
            base = _add64(em, _add64(em, info.ptr, _wide_mul(em, off_k, info.strides[0])), rowc)
            step = info.strides[0]
        state = {"addr": base, "k": 0}

        def code(k):
            x = em.new("r")
            p = _and(em, rowp, kpred[k])
            if p is not None:
                em.ins(f"mov.b32 {x}, {pad}")
            if step is None:
                em.ins(f"{'@' + p + ' ' if p else ''}ld.global.u8 {x}, [{base}+{k}]")
            else:
                addr = state["addr"]
                if k and isinstance(step, int):
                    addr = f"{base}+{k * step}"
                elif k:
                    nxt = em.new("rd")
                    em.ins(f"add.s64 {nxt}, {state['addr']}, {step}")
                    state["addr"] = addr = nxt
                em.ins(f"{'@' + p + ' ' if p else ''}ld.global.u8 {x}, [{addr}]")
            return x
        return code
    rowb = _fp4_row_bytes(em, info)
    both = pad | pad << 4
    if src.rows_axis == 0:
        # element k at byte (off_k + k) / 2 of the row, nibble (off_k + k) & 1; with q = off_k & 1:
        # even k: byte off_k/2 + k/2, shift 4q;  odd k: byte off_k/2 + q + (k-1)/2, shift 4 - 4q
        q, half, sh0, sh1 = em.new("r"), em.new("r"), em.new("r"), em.new("r")
        em.ins(f"and.b32 {q}, {off_k}, 1")
        em.ins(f"shr.u32 {half}, {off_k}, 1")
        em.ins(f"shl.b32 {sh0}, {q}, 2")
        em.ins(f"sub.u32 {sh1}, 4, {sh0}")
        rb64 = rowb if isinstance(rowb, int) else _u64(em, rowb)
        row = _add64(em, _add64(em, info.ptr, _wide_mul(em, rowc, rb64)), half)
        base1 = _add64(em, row, q)
        bases, shifts = (row, base1), (sh0, sh1)
    else:
        # element k at byte (off_k + k) * rowb + rowc / 2, nibble rowc & 1 (the same for every k)
        sh, colb = em.new("r"), em.new("r")
        em.ins(f"and.b32 {sh}, {rowc}, 1")
        em.ins(f"shl.b32 {sh}, {sh}, 2")
        em.ins(f"shr.u32 {colb}, {rowc}, 1")
        rb64 = rowb if isinstance(rowb, int) else _u64(em, rowb)
        start = _add64(em, _add64(em, info.ptr, _wide_mul(em, off_k, rb64)), colb)
        state = {"addr": start}

    def code4(k):
        x, c = em.new("r"), em.new("r")
        p = _and(em, rowp, kpred[k])
        if p is not None:
            em.ins(f"mov.b32 {x}, {both}")
        if src.rows_axis == 0:
            base, shift, imm = bases[k & 1], shifts[k & 1], k // 2
            em.ins(f"{'@' + p + ' ' if p else ''}ld.global.u8 {x}, [{base}+{imm}]")
        else:
            shift = sh
            if isinstance(rowb, int):
                addr = f"{start}+{k * rowb}"
            else:
                addr = state["addr"]
                if k:
                    nxt = em.new("rd")
                    em.ins(f"add.s64 {nxt}, {addr}, {rb64}")
                    state["addr"] = addr = nxt
            em.ins(f"{'@' + p + ' ' if p else ''}ld.global.u8 {x}, [{addr}]")
        em.ins(f"shr.u32 {c}, {x}, {shift}")
        em.ins(f"and.b32 {c}, {c}, 15")
        return c
    return code4


def _reg(em: KernelEmitter, x) -> str:
    """A u32 register holding `x` (a register, or an int / immediate string)."""
    if isinstance(x, str) and x.startswith("%"):
        return x
    r = em.new("r")
    em.ins(f"mov.b32 {r}, {x}")
    return r


def _u64(em: KernelEmitter, r32: str) -> str:
    w = em.new("rd")
    em.ins(f"cvt.u64.u32 {w}, {r32}")
    return w
