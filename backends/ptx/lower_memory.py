"""`tile.load` / `tile.store` (plain and `atomic_add`) as per-element global accesses.

Each slot's element sits at tile coordinates c; its tensor index is g = offset + c per
dim, computed in u32 (a 1-D tensor of up to 2^32 - 1 elements is addressable: an i32
offset past 2^31 wraps to the right bits), and its linear index sum(g_d * stride_d) in
u64.  `g_d < dim_d` (unsigned: negative offsets fail it too) predicates the access:

    setp.lt.u32 %p1, %g0, %dim0;  setp.lt.u32 %p2, %g1, %dim1;  and.pred %p3, %p1, %p2
    mov.b16 %h4, 0xFC00;  @%p3 ld.global.b16 %h4, [%rd5];  cvt.f32.f16 %f6, %h4   // -inf padding
    @%p3 st.global.f32 [%rd7], %f8
    @%p3 red.global.add.f32 [%rd7], %f8                                            // atomic_add

Predicated scalar accesses only for now: `vector_width` is the hook where aligned,
fully in-bounds chunks of `vec` elements will become `ld.global.v4` / `st.global.v4`.
"""

from __future__ import annotations

import math

from tilec import dtypes as dt
from tilec.dialects import tile as T

from . import numerics as N
from .emitter import KernelEmitter, TensorInfo, Val, lowers
from .lower_grid import constant_reg
from .ptx_types import FP8, float_imm, int_imm, mem_bytes, reg_class, storage_bits


def vector_width(em: KernelEmitter, info: TensorInfo, layout) -> int:
    """Elements per global access (1: scalar).  Hook for ld/st.global.v2/v4."""
    return 1


def _and(em: KernelEmitter, a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return em.memo(("and", a, b), lambda: _emit_and(em, a, b))


def _emit_and(em: KernelEmitter, a: str, b: str) -> str:
    p = em.new("p")
    em.ins(f"and.pred {p}, {a}, {b}")
    return p


def element_access(em: KernelEmitter, info: TensorInfo, offsets: list[str], coords: list,
                   check: bool) -> tuple[str, str | None]:
    """(address register, in-bounds predicate or None) of the element at `offsets + coords`."""
    r = len(info.dims)
    g = [em.add_u32(o, c) for o, c in zip(offsets, coords)]
    pred = None
    if check:
        for gd, dim in zip(g, info.dims):
            if isinstance(gd, int) and isinstance(dim, int):
                if gd < dim:
                    continue
                gd = em.as_reg(gd)
            pred = _and(em, pred, em.memo(("lt", gd, dim), lambda gd=gd, dim=dim: _lt(em, gd, dim)))
    lin = em.new("rd")
    em.ins(f"cvt.u64.u32 {lin}, {em.as_reg(g[-1])}")
    for d in range(r - 2, -1, -1):
        nxt = em.new("rd")
        gd = em.as_reg(g[d])
        if d == r - 2:
            em.ins(f"mad.wide.u32 {nxt}, {gd}, {info.dims[r - 1]}, {lin}")
        else:
            wide = em.new("rd")
            em.ins(f"cvt.u64.u32 {wide}, {gd}")
            em.ins(f"mad.lo.u64 {nxt}, {wide}, {info.strides[d]}, {lin}")
        lin = nxt
    addr = em.new("rd")
    em.ins(f"mad.lo.u64 {addr}, {lin}, {mem_bytes(info.dtype)}, {info.ptr}")
    return addr, pred


def _lt(em: KernelEmitter, a: str, b) -> str:
    p = em.new("p")
    em.ins(f"setp.lt.u32 {p}, {a}, {b}")
    return p


# load/store instruction suffix per dtype, and whether the register is the raw value
_LD = {dt.float32: "f32", dt.float64: "f64", dt.int32: "b32", dt.uint32: "b32", dt.int64: "b64",
       dt.int16: "s16", dt.int8: "s8", dt.uint8: "u8", dt.bool_: "u8"}
_ST = {dt.float32: "f32", dt.float64: "f64", dt.int32: "b32", dt.uint32: "b32", dt.int64: "b64",
       dt.int16: "b16", dt.int8: "b8", dt.uint8: "b8", dt.bool_: "b8"}
_RED = {dt.float32: "f32", dt.float64: "f64", dt.int32: "s32", dt.uint32: "u32", dt.int64: "u64",
        dt.float16: "noftz.f16", dt.bfloat16: "noftz.bf16"}


def _check_dtype(em: KernelEmitter, d: dt.DType, what: str) -> None:
    if d not in _LD and d not in (dt.float16, dt.bfloat16) and d not in FP8:
        raise em.unsupported(what, d)


def load_element(em: KernelEmitter, d: dt.DType, addr: str, pred: str | None, pad) -> str:
    """One element of dtype `d` from global `addr` (`pad` where `pred` is false)."""
    if d in (dt.float16, dt.bfloat16) or d in FP8:
        h = em.new("h")
        if pred is not None:
            em.ins(f"mov.b16 {h}, {storage_bits(d, pad)}")
        width = "b16" if d.bits == 16 else "u8"
        em.ins(f"{'@' + pred + ' ' if pred else ''}ld.global.{width} {h}, [{addr}]")
        return N.from_storage(em, d, h)
    if d is dt.bool_:
        r, p = em.new("r"), em.new("p")
        if pred is not None:
            em.ins(f"mov.b32 {r}, {1 if pad != 0 else 0}")
        em.ins(f"{'@' + pred + ' ' if pred else ''}ld.global.u8 {r}, [{addr}]")
        em.ins(f"setp.ne.u32 {p}, {r}, 0")
        return p
    cls = reg_class(d)
    r = em.new(cls)
    if pred is not None:
        N.mov(em, cls, r, _pad_imm(d, pad))
    em.ins(f"{'@' + pred + ' ' if pred else ''}ld.global.{_LD[d]} {r}, [{addr}]")
    return r


def _pad_imm(d: dt.DType, pad) -> str:
    if d.is_float:
        return float_imm(d, pad)
    return int_imm(d, int(pad) if math.isfinite(pad) else 0)


@lowers(T.LoadOp)
def lower_load(em: KernelEmitter, op: T.LoadOp) -> None:
    info = em.tensors[op.tensor]
    d = info.dtype
    _check_dtype(em, d, "tile.load")
    offsets = [em.get(o).regs[0] for o in op.offsets]
    layout = em.layout_of(op.result.type)
    check = op.boundary_check.value.data != 0
    pad = op.padding.value.data
    regs = []
    for s in range(layout.num_slots):
        if layout.slot_never_valid(s):
            regs.append(_pad_reg(em, d, pad))
            continue
        addr, inb = element_access(em, info, offsets, em.coords(layout, s), check)
        regs.append(load_element(em, d, addr, _and(em, em.slot_pred(layout, s), inb), pad))
    em.set(op.result, Val(d, layout, regs))


def _pad_reg(em: KernelEmitter, d: dt.DType, pad) -> str:
    if d.is_float:
        return constant_reg(em, d, float(pad))
    return constant_reg(em, d, (pad != 0) if d is dt.bool_ else (int(pad) if math.isfinite(pad) else 0))


@lowers(T.StoreOp)
def lower_store(em: KernelEmitter, op: T.StoreOp) -> None:
    info = em.tensors[op.tensor]
    d = info.dtype
    val = em.get(op.value)
    layout = val.layout
    atomic = op.mode.data == "atomic_add"
    if atomic:
        if d not in _RED:
            raise em.unsupported("tile.store {mode = atomic_add}", d)
        if d is dt.bfloat16:
            em.require_sm(90, "tile.store {mode = atomic_add}", d)
    else:
        _check_dtype(em, d, "tile.store")
    offsets = [em.get(o).regs[0] for o in op.offsets]
    for s in range(layout.num_slots):
        if layout.slot_never_valid(s):
            continue
        addr, inb = element_access(em, info, offsets, em.coords(layout, s), True)
        pred = _and(em, em.slot_pred(layout, s), inb)
        guard = f"@{pred} " if pred else ""
        x = val.regs[s]
        if d in (dt.float16, dt.bfloat16) or d in FP8:
            x = N.to_storage(em, d, x)
        elif d is dt.bool_:
            r = em.new("r")
            em.ins(f"selp.u32 {r}, 1, 0, {x}")
            x = r
        if atomic:
            em.ins(f"{guard}red.global.add.{_RED[d]} [{addr}], {x}")
        else:
            st = _ST.get(d) or ("b16" if d.bits == 16 else "b8")
            em.ins(f"{guard}st.global.{st} [{addr}], {x}")
