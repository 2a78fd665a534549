"""`tile.load` / `tile.store` (plain and `atomic_add`) as per-element global accesses.

Each slot's element sits at tile coordinates c; its tensor index is g = offset + c per
dim, computed in u32 (a 1-D tensor of up to 2^32 - 1 elements is addressable: an i32
offset past 2^31 wraps to the right bits), and its linear index sum(g_d * stride_d) in
u64.  `g_d < dim_d` (unsigned: negative offsets fail it too) predicates the access:

    setp.lt.u32 %p1, %g0, %dim0;  setp.lt.u32 %p2, %g1, %dim1;  and.pred %p3, %p1, %p2
    mov.b16 %h4, 0xFC00;  @%p3 ld.global.b16 %h4, [%rd5];  cvt.f32.f16 %f6, %h4   // -inf padding
    @%p3 st.global.f32 [%rd7], %f8
    @%p3 red.global.add.f32 [%rd7], %f8                                            // atomic_add

When a tensor's rows are known 16-byte aligned (`TensorSpec.div16`) and the offset along
the innermost dim keeps chunks aligned, the chunks of `vec` elements move with vector
instructions instead (`vectorize.py`): unpredicated for a tile wholly inside the tensor
(a CTA-uniform branch), predicated per chunk at the ragged edge when chunks are wholly
in or out, else the scalar accesses above.  16-bit floats move as 32-bit words
(`mov.b32 {lo, hi}` to split, `cvt.rn.f16x2.f32` to pack).

A one-element tile of a tensor the kernel never stores to is loaded by every thread (a
uniform value, as a splat): `page = load_tile(PT, [b, p], [1]).sum()` then becomes a scalar
without a round through shared memory (before: thread 0 loads, st.shared, 2 bar.sync, ld.shared).
"""

from __future__ import annotations

import math

from tilec import dtypes as dt
from tilec.dialects import tile as T

from . import fp4_memory
from . import numerics as N
from . import vectorize as V
from .emitter import KernelEmitter, TensorInfo, Val, lowers
from .layout import Blocked, Sliced
from .lower_grid import constant_reg
from .ptx_types import FP8, float_imm, int_imm, mem_bytes, reg_class, storage_bits


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


# ---------------------------------------------------------------------------- vector chunks


def load_chunk(em: KernelEmitter, d: dt.DType, addr: str, imm: int, n: int, w: int, pred: str | None,
               pad) -> list[str]:
    """`n` consecutive elements from [addr + imm], `w` per instruction (`pad` where `pred` fails)."""
    esz, t = mem_bytes(d), V.VECTOR_TYPES[d]
    guard = f"@{pred} " if pred else ""
    out = []
    for i in range(0, n, w):
        at = f"[{addr}+{imm + i * esz}]"
        if esz >= 4:
            cls = reg_class(d)
            regs = [em.new(cls) for _ in range(w)]
            if pred:
                for r in regs:
                    N.mov(em, cls, r, _pad_imm(d, pad))
            em.ins(f"{guard}ld.global.{_v(w)}{t} {_list(regs)}, {at}")
            out += regs
            continue
        words = [em.new("r") for _ in range(w // 2)]
        if pred:
            bits = storage_bits(d, pad)
            for r in words:
                em.ins(f"mov.b32 {r}, {bits | bits << 16}")
        em.ins(f"{guard}ld.global.{_v(w // 2)}b32 {_list(words)}, {at}")
        for r in words:
            lo, hi = em.new("h"), em.new("h")
            em.ins(f"mov.b32 {{{lo}, {hi}}}, {r}")
            out += [N.from_storage(em, d, lo), N.from_storage(em, d, hi)]
    return out


def store_chunk(em: KernelEmitter, d: dt.DType, addr: str, imm: int, regs: list[str], w: int,
                pred: str | None) -> None:
    """`regs` to consecutive elements at [addr + imm], `w` per instruction."""
    esz, t = mem_bytes(d), V.VECTOR_TYPES[d]
    guard = f"@{pred} " if pred else ""
    for i in range(0, len(regs), w):
        at = f"[{addr}+{imm + i * esz}]"
        part = regs[i:i + w]
        if esz >= 4:
            em.ins(f"{guard}st.global.{_v(w)}{t} {at}, {_list(part)}")
            continue
        kind = "f16x2" if d is dt.float16 else "bf16x2"
        words = []
        for lo, hi in zip(part[0::2], part[1::2]):
            r = em.new("r")
            em.ins(f"cvt.rn.{kind}.f32 {r}, {N.storage_source(em, d, hi)}, {N.storage_source(em, d, lo)}")
            words.append(r)
        em.ins(f"{guard}st.global.{_v(len(words))}b32 {at}, {_list(words)}")


def _v(n: int) -> str:
    return f"v{n}." if n > 1 else ""


def _list(regs: list[str]) -> str:
    return "{" + ", ".join(regs) + "}" if len(regs) > 1 else regs[0]


def _chunks(layout):
    """First slots of the chunks that some thread holds."""
    return [k * layout.vec for k in range(layout.chunks_per_thread) if not layout.slot_never_valid(k * layout.vec)]


def _chunk_whole(em: KernelEmitter, op, info: TensorInfo, layout) -> bool:
    return V.chunks_whole(em, op.tensor, list(op.offsets), layout, info.dtype)


def _two_paths(em: KernelEmitter, full: str, fast, slow, classes: list[str]) -> list[str]:
    """`fast()` where the CTA-uniform predicate `full` holds, else `slow()`; both return
    registers of `classes`, merged into fresh ones."""
    out = [em.new(c) for c in classes]
    other, done = em.label("ragged"), em.label("loaded")
    em.ins(f"@!{full} bra {other}")
    for i, path in enumerate((fast, slow)):
        if i:
            em.ins(f"bra {done}")
            em.place(other)
        em.push_scope()
        for c, r, x in zip(classes, out, path()):
            N.mov(em, c, r, x)
        em.pop_scope()
    em.place(done)
    return out


@lowers(T.LoadOp)
def lower_load(em: KernelEmitter, op: T.LoadOp) -> None:
    info = em.tensors[op.tensor]
    d = info.dtype
    if d in fp4_memory.DTYPES:   # packed fp4 / ue8m0 scales: byte accesses (fp4_memory.py)
        fp4_memory.lower_load(em, op)
        return
    _check_dtype(em, d, "tile.load")
    offsets = [em.get(o).regs[0] for o in op.offsets]
    layout = em.layout_of(op.result.type)
    if layout.numel == 1 and _never_written(em, op.tensor):
        # one element (`load_tile(PT, [b, p], [1]).sum()`): every thread loads it, so the
        # value is uniform and turning it into a scalar needs no shared memory (2 bar.sync)
        addr, inb = element_access(em, info, offsets, [0] * len(layout.shape), op.boundary_check.value.data != 0)
        r = load_element(em, d, addr, inb, op.padding.value.data)
        em.set(op.result, Val(d, layout, [r] * layout.num_slots, True))
        return
    if V.wide_ok(em, op, layout, d):
        layout = Blocked(layout.shape, layout.num_threads, True)
    check = op.boundary_check.value.data != 0
    pad = op.padding.value.data
    w = V.width(em, op.tensor, list(op.offsets), layout, d)
    if w == 1:
        em.set(op.result, Val(d, layout, _scalar_load(em, info, offsets, layout, check, pad)))
        return
    vec = layout.vec
    regs = [_pad_reg(em, d, pad) if layout.slot_never_valid(s) else None for s in range(layout.num_slots)]
    valid = [s for s in range(layout.num_slots) if regs[s] is None]

    def fast():
        addrs = V.chunk_addresses(em, info, offsets, layout)
        got = {}
        for s in _chunks(layout):
            addr, imm = addrs[s] if addrs else (element_access(em, info, offsets, em.coords(layout, s), False)[0], 0)
            got.update(zip(range(s, s + vec), load_chunk(em, d, addr, imm, vec, w, em.slot_pred(layout, s), pad)))
        return [got[s] for s in valid]

    def edge():
        if not _chunk_whole(em, op, info, layout):
            got = _scalar_load(em, info, offsets, layout, True, pad)
            return [got[s] for s in valid]
        got = {}
        for s in _chunks(layout):
            addr, inb = element_access(em, info, offsets, em.coords(layout, s), True)
            pred = _and(em, em.slot_pred(layout, s), inb)
            got.update(zip(range(s, s + vec), load_chunk(em, d, addr, 0, vec, w, pred, pad)))
        return [got[s] for s in valid]

    full = V.full_tile(em, info, list(op.offsets), offsets, layout.shape) if check else True
    if full is True:
        loaded = fast()
    elif full is False:
        loaded = edge()
    else:
        loaded = _two_paths(em, full, fast, edge, [reg_class(d)] * len(valid))
    for s, r in zip(valid, loaded):
        regs[s] = r
    em.set(op.result, Val(d, layout, regs))


def _never_written(em: KernelEmitter, tensor) -> bool:
    """No `tile.store` (plain or atomic) in the kernel writes `tensor`, nor a store the passes
    made of one (`tgpu.store_fragment`, `tgpu.mma_acc_store`): every thread may read an element
    of it, not only the one a store would have ordered it after."""
    from tilec.dialects import tgpu as G

    def scan():
        return not any(isinstance(o, (T.StoreOp, G.StoreFragmentOp, G.MmaAccStoreOp)) and o.tensor == tensor
                       for o in em.func.walk())
    return em.memo(("never_written", tensor), scan)


def _scalar_load(em: KernelEmitter, info: TensorInfo, offsets: list, layout, check: bool, pad) -> list[str]:
    d = info.dtype
    regs = []
    for s in range(layout.num_slots):
        if layout.slot_never_valid(s):
            regs.append(_pad_reg(em, d, pad))
            continue
        addr, inb = element_access(em, info, offsets, em.coords(layout, s), check)
        regs.append(load_element(em, d, addr, _and(em, em.slot_pred(layout, s), inb), pad))
    return regs


def _pad_reg(em: KernelEmitter, d: dt.DType, pad) -> str:
    if d.is_float:
        return constant_reg(em, d, float(pad))
    return constant_reg(em, d, (pad != 0) if d is dt.bool_ else (int(pad) if math.isfinite(pad) else 0))


@lowers(T.StoreOp)
def lower_store(em: KernelEmitter, op: T.StoreOp) -> None:
    info = em.tensors[op.tensor]
    d = info.dtype
    if d in fp4_memory.DTYPES:   # packed fp4 / ue8m0 scales: byte accesses (fp4_memory.py)
        fp4_memory.lower_store(em, op)
        return
    atomic = op.mode.data == "atomic_add"
    raw = em.get_any(op.value)
    if isinstance(raw.layout, Sliced) and not atomic and not raw.uniform:
        _check_dtype(em, d, "tile.store")
        _sliced_store(em, info, [em.get(o).regs[0] for o in op.offsets], raw)
        return
    val = raw if isinstance(raw.layout, Blocked) else em.get(op.value)   # any blocked layout
    layout = val.layout
    if atomic:
        if d not in _RED:
            raise em.unsupported("tile.store {mode = atomic_add}", d)
        if d is dt.bfloat16:
            em.require_sm(90, "tile.store {mode = atomic_add}", d)
    else:
        _check_dtype(em, d, "tile.store")
    offsets = [em.get(o).regs[0] for o in op.offsets]
    w = 1 if atomic else V.width(em, op.tensor, list(op.offsets), layout, d)
    if w > 1:
        _vector_store(em, op, info, offsets, val, w)
        return
    _scalar_store(em, info, offsets, val, atomic)


def _vector_store(em: KernelEmitter, op, info: TensorInfo, offsets: list, val: Val, w: int) -> None:
    d, layout, vec = info.dtype, val.layout, val.layout.vec

    def fast():
        addrs = V.chunk_addresses(em, info, offsets, layout)
        for s in _chunks(layout):
            addr, imm = addrs[s] if addrs else (element_access(em, info, offsets, em.coords(layout, s), False)[0], 0)
            store_chunk(em, d, addr, imm, val.regs[s:s + vec], w, em.slot_pred(layout, s))
        return []

    def edge():
        if not _chunk_whole(em, op, info, layout):
            _scalar_store(em, info, offsets, val, False)
            return []
        for s in _chunks(layout):
            addr, inb = element_access(em, info, offsets, em.coords(layout, s), True)
            store_chunk(em, d, addr, 0, val.regs[s:s + vec], w, _and(em, em.slot_pred(layout, s), inb))
        return []

    full = V.full_tile(em, info, list(op.offsets), offsets, layout.shape)
    if full is True:
        fast()
    elif full is False:
        edge()
    else:
        _two_paths(em, full, fast, edge, [])


def _sliced_store(em: KernelEmitter, info: TensorInfo, offsets: list, val: Val) -> None:
    """Store a reduction result where the reduction left it (`layout.Sliced`): each element
    once, from the slot and thread whose coordinates along the reduced axes are 0."""
    from .exchange import _and as and_pred, _eq0

    lay = val.layout
    for s in range(lay.num_slots):
        if lay.slot_never_valid(s) or lay.rep_slot(s) != s:
            continue
        pc = em.coords(lay.parent, s)
        pred, skip = em.slot_pred(lay.parent, s), False
        for a in lay.axes:
            if isinstance(pc[a], int):
                skip |= pc[a] != 0
            else:
                pred = and_pred(em, pred, _eq0(em, pc[a]))
        if skip:
            continue
        addr, inb = element_access(em, info, offsets, lay.result_coords(pc), True)
        _store_element(em, info.dtype, addr, _and(em, pred, inb), val.regs[s], False)


def _store_element(em: KernelEmitter, d: dt.DType, addr: str, pred: str | None, x: str, atomic: bool) -> None:
    guard = f"@{pred} " if pred else ""
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


def _scalar_store(em: KernelEmitter, info: TensorInfo, offsets: list, val: Val, atomic: bool) -> None:
    d, layout = info.dtype, val.layout
    for s in range(layout.num_slots):
        if layout.slot_never_valid(s):
            continue
        addr, inb = element_access(em, info, offsets, em.coords(layout, s), True)
        _store_element(em, d, addr, _and(em, em.slot_pred(layout, s), inb), val.regs[s], atomic)
