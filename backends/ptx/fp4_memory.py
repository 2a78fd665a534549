"""`tile.load` / `tile.store` of packed fp4 (e2m1) and of ue8m0 (scale) tensors.

An fp4 tensor of logical shape [..., n] is uint8 [..., ceil(n/2)] in memory (element 2i
in the low nibble of byte i, `tilec/fp4.py`), and its `TensorInfo.dims` are the logical
ones.  An fp4 tile has an even innermost size at an even innermost offset, so with the
blocked layout's 4-element chunks (`layout.py`) a thread's slots 2j and 2j+1 are one
byte: one `ld.global.u8` gives two registers, one `st.global.u8` stores two.  A tile of
a size that is not a multiple of 4 (1-element chunks) loads a byte per element and keeps
its nibble; storing one is not implemented.  Elements outside the tensor read `padding`
(rounded to e2m1) and are not written; the high nibble of a row's last byte when n is
odd reads as padding and is stored as 0.

    // t = load_tile(Q, [r, c], [R, C]) of float4_e2m1fn, slots 0 and 1 of a chunk:
    mad.lo.u64 %rd3, %rd2, %rd_rowbytes, %rd_cbyte;  add.u64 %rd4, %rd3, %rd_ptr
    mov.b32 %r5, 0;  @%p1 ld.global.u8 %r5, [%rd4]       // padding byte where out of bounds
    <decode low nibble -> %f6>;  shr.u32 %r7, %r5, 4;  <decode %r7 -> %f8>   (fp4_codes.py)

ue8m0 tensors load a byte per element (`decode_e8m0`) and store `(bits >> 23) & 0xFF`.

Loads of tiles whose innermost size is a multiple of 4 take one address per 4-element
chunk (2 bytes of fp4, 4 of ue8m0, in one tile row): the tile origin's address once, plus
row * row bytes and the column's bytes, then immediate offsets; a tile that may cross the
tensor's edge (a CTA-uniform `offset + size <= dim` test, as `lower_memory.py`) branches to
the per-element path with bounds checks.  Measured on the H100 (bench/RESULTS.md, paged FP4
attention decode): 1544 us with per-element addresses, 669 us with per-chunk ones.
"""

from __future__ import annotations

import math

import numpy as np

from tilec import dtypes as dt
from tilec.dialects import tile as T

from . import fp4_codes as C
from .emitter import KernelEmitter, TensorInfo, Val
from .ptx_types import storage_bits

FP4 = dt.float4_e2m1fn
E8M0 = dt.float8_e8m0fnu
DTYPES = (FP4, E8M0)


def _and(em: KernelEmitter, a, b):
    from .lower_memory import _and as and_pred

    return and_pred(em, a, b)


def _lt(em: KernelEmitter, a, b) -> str:
    if isinstance(a, int):
        a = em.as_reg(a)
    def make():
        p = em.new("p")
        em.ins(f"setp.lt.u32 {p}, {a}, {b}")
        return p
    return em.memo(("lt", a, b), make)


def byte_access(em: KernelEmitter, info: TensorInfo, offsets: list, coords: list,
                check: bool) -> tuple[str, str | None, object]:
    """(address of the byte holding element `offsets + coords`, in-bounds predicate or
    None, the element's innermost index g) for a tensor of `info.dtype` (fp4: two per byte)."""
    r = len(info.dims)
    g = [em.add_u32(o, c) for o, c in zip(offsets, coords)]
    pred = None
    if check:
        for gd, dim in zip(g, info.dims):
            if isinstance(gd, int) and isinstance(dim, int) and gd < dim:
                continue
            pred = _and(em, pred, _lt(em, gd, dim))
    row = 0
    if r > 1:
        row = em.new("rd")
        em.ins(f"cvt.u64.u32 {row}, {em.as_reg(g[0])}")
    for d in range(1, r - 1):
        wide, nxt = em.new("rd"), em.new("rd")
        em.ins(f"cvt.u64.u32 {wide}, {em.as_reg(g[d])}")
        em.ins(f"mad.lo.u64 {nxt}, {row}, {_u64(em, info.dims[d])}, {wide}")
        row = nxt
    inner = g[-1]
    if info.dtype is FP4:
        half = em.new("r")
        em.ins(f"shr.u32 {half}, {em.as_reg(inner)}, 1")
        rowbytes = _row_bytes(em, info.dims[-1])
    else:
        half, rowbytes = em.as_reg(inner), _u64(em, info.dims[-1])
    col, addr = em.new("rd"), em.new("rd")
    em.ins(f"cvt.u64.u32 {col}, {half}")
    if r > 1:
        em.ins(f"mad.lo.u64 {col}, {row}, {rowbytes}, {col}")
    em.ins(f"add.u64 {addr}, {col}, {info.ptr}")
    return addr, pred, inner


def _u64(em: KernelEmitter, dim) -> str | int:
    if isinstance(dim, int):
        return dim
    return em.memo(("u64", dim), lambda: _cvt64(em, dim))


def _cvt64(em: KernelEmitter, x: str) -> str:
    r = em.new("rd")
    em.ins(f"cvt.u64.u32 {r}, {x}")
    return r


def _row_bytes(em: KernelEmitter, n) -> str | int:
    """ceil(n / 2) as a u64 register or int: the bytes of one packed fp4 row."""
    if isinstance(n, int):
        return (n + 1) // 2
    def make():
        t = em.new("r")
        em.ins(f"add.u32 {t}, {n}, 1")
        em.ins(f"shr.u32 {t}, {t}, 1")
        return _cvt64(em, t)
    return em.memo(("rowbytes", n), make)


def _pad_code(d: dt.DType, pad: float) -> int:
    if d is FP4:
        from tilec.fp4 import to_e2m1

        c = int(to_e2m1(pad if math.isfinite(pad) else 0.0).view("u1")) & 0xF
        return c | c << 4
    return storage_bits(d, pad)


def _ld_byte(em: KernelEmitter, addr: str, pred: str | None, pad_code: int) -> str:
    r = em.new("r")
    if pred is not None:
        em.ins(f"mov.b32 {r}, {pad_code}")
    em.ins(f"{'@' + pred + ' ' if pred else ''}ld.global.u8 {r}, [{addr}]")
    return r


def _hi_pred(em: KernelEmitter, info: TensorInfo, pred, inner):
    """In-bounds predicate of the element after `inner` (same row) given the pair's `pred`."""
    n = info.dims[-1]
    if pred is None or (isinstance(n, int) and n % 2 == 0):
        return pred
    nxt = em.add_u32(inner, 1)
    return _and(em, pred, _lt(em, nxt, n))


def _require_whole_bytes(em: KernelEmitter, op, what: str) -> None:
    """fp4 tiles start on whole bytes (an even innermost offset), as on the CPU backend.
    An offset not provably even (`ir_queries.multiple_of`) gets a run-time check that
    traps, instead of reading or writing the neighbouring nibble."""
    from tilec.passes.ir_queries import multiple_of

    if multiple_of(op.offsets[-1], 2):
        return
    off = em.get(op.offsets[-1]).regs[0]
    t, p = em.new("r"), em.new("p")
    em.comment(f"{what}: an fp4 tile must start at an even innermost offset (whole bytes)")
    em.ins(f"and.b32 {t}, {em.as_reg(off)}, 1")
    em.ins(f"setp.ne.u32 {p}, {t}, 0")
    em.ins(f"@{p} trap")


def lower_load(em: KernelEmitter, op: T.LoadOp) -> None:
    """`tile.load` from an fp4 or ue8m0 tensor (canonical layout, f32 registers)."""
    info = em.tensors[op.tensor]
    d = info.dtype
    offsets = [em.get(o).regs[0] for o in op.offsets]
    layout = em.layout_of(op.result.type)
    shape = layout.shape
    check = op.boundary_check.value.data != 0
    pad = op.padding.value.data
    code = _pad_code(d, pad)
    if d is FP4 and (not shape or shape[-1] % 2):
        raise em.unsupported("tile.load", d, "an fp4 tile needs an even innermost size")
    if d is FP4:
        _require_whole_bytes(em, op, "tile.load")
    if layout.vec == 4 and shape[-1] % 4 == 0:
        em.set(op.result, Val(d, layout, _chunked_load(em, op, info, offsets, layout, check, code)))
        return
    em.set(op.result, Val(d, layout, _slot_load(em, info, offsets, layout, check, code)))


def _chunked_load(em: KernelEmitter, op: T.LoadOp, info: TensorInfo, offsets: list, layout, check: bool,
                  code: int) -> list[str]:
    """Chunks of 4 elements in one tile row are 2 (fp4) or 4 (ue8m0) consecutive bytes: one
    address per chunk (the tile origin's, computed once, plus row * row bytes + column
    bytes) and immediate offsets; where the tile may cross the tensor's edge (a CTA-uniform
    test), the per-element path with bounds checks instead."""
    from . import vectorize as V
    from .lower_memory import _two_paths

    d = info.dtype
    valid = [s for s in range(layout.num_slots) if not layout.slot_never_valid(s)]

    def fast():
        origin, _, _ = byte_access(em, info, offsets, [0] * len(offsets), False)
        rowbytes = _row_bytes32(em, info)
        got = {}
        for k in range(layout.chunks_per_thread):
            s = 4 * k
            if layout.slot_never_valid(s):
                continue
            c = em.coords(layout, s)
            rows = 0
            for dim in range(len(c) - 1):
                stride = 1
                for n in info.dims[dim + 1:-1]:
                    stride = em.mul_u32(stride, n)
                rows = em.add_u32(rows, em.mul_u32(c[dim], stride))
            addr, imm = origin, 0
            if rows != 0:
                addr = em.new("rd")
                em.ins(f"mad.wide.u32 {addr}, {em.as_reg(rows)}, {rowbytes}, {origin}")
            col = c[-1]
            if isinstance(col, int):
                imm = col >> 1 if d is FP4 else col
            else:
                cb = em.memo(("fp4col", col, d.name), lambda col=col: _col_bytes(em, col, d is FP4))
                a2 = em.new("rd")
                em.ins(f"add.u64 {a2}, {addr}, {cb}")
                addr = a2
            pred = em.slot_pred(layout, s)
            guard = f"@{pred} " if pred else ""
            for j in range(2 if d is FP4 else 4):
                r = em.new("r")
                if pred:
                    em.ins(f"mov.b32 {r}, {code}")
                em.ins(f"{guard}ld.global.u8 {r}, [{addr}+{imm + j}]")
                if d is FP4:
                    got[s + 2 * j], got[s + 2 * j + 1] = C.decode_byte(em, r)
                else:
                    got[s + j] = C.decode_e8m0(em, r)
        return [got[s] for s in valid]

    def edge():
        regs = _slot_load(em, info, offsets, layout, True, code)
        return [regs[s] for s in valid]

    full = V.full_tile(em, info, list(op.offsets), offsets, layout.shape) if check else True
    if full is True:
        loaded = fast()
    elif full is False:
        loaded = edge()
    else:
        loaded = _two_paths(em, full, fast, edge, ["f"] * len(valid))
    regs = [_pad_value(em, d, code)] * layout.num_slots
    for s, r in zip(valid, loaded):
        regs[s] = r
    return regs


def _row_bytes32(em: KernelEmitter, info: TensorInfo):
    n = info.dims[-1]
    if isinstance(n, int):
        return (n + 1) // 2 if info.dtype is FP4 else n
    if info.dtype is not FP4:
        return n
    def make():
        t = em.new("r")
        em.ins(f"add.u32 {t}, {n}, 1")
        em.ins(f"shr.u32 {t}, {t}, 1")
        return t
    return em.memo(("rowbytes32", n), make)


def _col_bytes(em: KernelEmitter, col: str, half: bool) -> str:
    r = em.new("rd")
    if half:
        h = em.new("r")
        em.ins(f"shr.u32 {h}, {col}, 1")
        col = h
    em.ins(f"cvt.u64.u32 {r}, {col}")
    return r


def _slot_load(em: KernelEmitter, info: TensorInfo, offsets: list, layout, check: bool, code: int) -> list:
    """Per slot (pair for fp4) address and bounds checks: any layout, any tile position."""
    d = info.dtype
    regs: list = [None] * layout.num_slots
    for s in range(layout.num_slots):
        if regs[s] is not None:
            continue
        if layout.slot_never_valid(s):
            regs[s] = _pad_value(em, d, code)
            continue
        addr, inb, inner = byte_access(em, info, offsets, em.coords(layout, s), check)
        pred = _and(em, em.slot_pred(layout, s), inb)
        if d is E8M0:
            regs[s] = C.decode_e8m0(em, _ld_byte(em, addr, pred, code))
            continue
        if layout.vec % 2 == 0:      # slots s, s+1: elements 2i, 2i+1 of one byte
            hp = _hi_pred(em, info, inb, inner)
            byte = _ld_byte(em, addr, pred, code)
            if hp is not inb:
                hb = em.new("r")
                em.ins(f"and.b32 {hb}, {byte}, 15")
                em.ins(f"or.b32 {hb}, {hb}, {code & 0xF0}")
                em.ins(f"selp.b32 {byte}, {byte}, {hb}, {hp}")
            regs[s], regs[s + 1] = C.decode_byte(em, byte)
            continue
        byte = _ld_byte(em, addr, pred, code)            # 1-element chunks: this element's nibble
        sh, nib = em.new("r"), em.new("r")
        em.ins(f"and.b32 {sh}, {em.as_reg(inner)}, 1")
        em.ins(f"shl.b32 {sh}, {sh}, 2")
        em.ins(f"shr.u32 {nib}, {byte}, {sh}")
        regs[s] = C.decode_e2m1(em, nib)
    return regs


def _pad_value(em: KernelEmitter, d: dt.DType, code: int) -> str:
    from .lower_grid import constant_reg

    v = np.array([code & (0xF if d is FP4 else 0xFF)], np.uint8).view(d.np_dtype).astype(np.float32)[0]
    return constant_reg(em, dt.float32, float(v))


def lower_store(em: KernelEmitter, op: T.StoreOp) -> None:
    """`tile.store` of a tile into an fp4 or ue8m0 tensor (values rounded to the tensor's
    dtype first, as every store: e2m1 nearest even and saturating)."""
    info = em.tensors[op.tensor]
    d = info.dtype
    if op.mode.data == "atomic_add":
        raise em.unsupported("tile.store {mode = atomic_add}", d)
    val = em.get(op.value)
    layout = val.layout
    src = val.dtype
    offsets = [em.get(o).regs[0] for o in op.offsets]
    if d is FP4 and (not layout.shape or layout.shape[-1] % 2 or layout.vec % 2):
        raise em.unsupported("tile.store", d, "an fp4 tile store needs an even innermost size and a "
                                              "multiple of 4 elements")
    if d is FP4:
        _require_whole_bytes(em, op, "tile.store")
    if d is E8M0 and src is not E8M0:
        raise em.unsupported("tile.store", d, "store ct.quantize's float8_e8m0fnu scales (other values "
                                              "are not rounded to ue8m0)")
    for s in range(layout.num_slots):
        if layout.slot_never_valid(s) or (d is FP4 and s % 2):
            continue
        addr, inb, inner = byte_access(em, info, offsets, em.coords(layout, s), True)
        pred = _and(em, em.slot_pred(layout, s), inb)
        guard = f"@{pred} " if pred else ""
        if d is E8M0:
            em.ins(f"{guard}st.global.u8 [{addr}], {C.encode_e8m0(em, _f32(em, src, val.regs[s]))}")
            continue
        byte = C.encode_pair(em, _f32(em, src, val.regs[s]), _f32(em, src, val.regs[s + 1]))
        hp = _hi_pred(em, info, inb, inner)
        if hp is not inb:
            lo = em.new("r")
            em.ins(f"and.b32 {lo}, {byte}, 15")
            em.ins(f"selp.b32 {byte}, {byte}, {lo}, {hp}")
        em.ins(f"{guard}st.global.u8 [{addr}], {byte}")


def _f32(em: KernelEmitter, src: dt.DType, x: str) -> str:
    """The f32 register of a value of dtype `src` (f64 is rounded to f32 first, as the CPU does)."""
    if src.is_float and src.bits == 64:
        f = em.new("f")
        em.ins(f"cvt.rn.f32.f64 {f}, {x}")
        return f
    if not src.is_float:
        from . import numerics as N

        return N.cast(em, src, dt.float32, x)
    return x
