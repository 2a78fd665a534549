"""Moving tile elements between threads through shared memory.

`gather(src, dst_layout, index_of)`: every thread writes its slots of `src` row-major
into `smem` (the address of slot s is `smem + (tid*vec + const(s)) * size`, a register
plus an immediate), `bar.sync`, then reads for each of its destination slots the
source element `index_of(coords)` that the destination layout needs (slots whose index
is the same register or constant, as in a broadcast `[1, 128] -> [64, 128]`, share one
`ld.shared`: 4 per thread there instead of 64).

`register_map` / `in_registers` / `to_layout`: when every thread already holds, at a slot
that does not depend on the thread, each element its destination slots need, a conversion
or broadcast is a register renaming and emits nothing (no smem, no bar.sync).  A `bar.sync`
also precedes the writes, so the previous user of the scratch area has finished.

Element sizes in shared memory: 4 bytes for 32-bit registers (narrow floats as their
f32 value, bools as 0/1), 8 bytes for 64-bit ones.

The source and destination may be in any layout (`layout.Blocked`, `layout.Mma` or `layout.Sliced`):
a `Sliced` source writes each element once, from the thread and slot whose coordinates
along the reduced axes are 0.  `to_layout` / `to_canonical` are the conversions
`KernelEmitter.get` and the loop lowering use; a uniform value (a splat) converts for free.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from tilec import dtypes as dt

from . import numerics as N
from .emitter import KernelEmitter, Val
from .layout import Blocked, Mma, Sliced
from .lower_grid import constant_reg
from .ptx_types import reg_class

_ZERO = {"f32": "0f00000000", "f64": "0d0000000000000000", "b32": "0", "b64": "0"}
_KIND = {"f": ("f32", 4), "fd": ("f64", 8), "r": ("b32", 4), "rd": ("b64", 8), "p": ("b32", 4)}


def elem_size(d: dt.DType) -> int:
    return _KIND[reg_class(d)][1]


def thread_base(em: KernelEmitter, layout: Blocked, size: int, byte_offset: int) -> str:
    """smem address of this thread's first element of `layout` at `byte_offset`."""
    def make():
        r = em.new("r")
        em.ins(f"mad.lo.u32 {r}, {em.tid}, {layout.vec * size}, {em.smem_base}")
        return r
    base = em.memo(("tbase", layout.vec * size), make)
    return em.add_u32(base, byte_offset)


def store_tile(em: KernelEmitter, val: Val, byte_offset: int) -> None:
    """Write `val`'s real elements row-major at smem + byte_offset."""
    cls = reg_class(val.dtype)
    typ, size = _KIND[cls]
    layout = val.layout
    base = em.as_reg(thread_base(em, layout, size, byte_offset))
    for s in range(layout.num_slots):
        if layout.slot_never_valid(s):
            continue
        pred = em.slot_pred(layout, s)
        x = val.regs[s]
        if cls == "p":
            r = em.new("r")
            em.ins(f"selp.u32 {r}, 1, 0, {x}")
            x = r
        guard = f"@{pred} " if pred else ""
        em.ins(f"{guard}st.shared.{typ} [{base}+{layout.slot_const(s) * size}], {x}")


def load_f32_tile(em: KernelEmitter, layout: Blocked, base: str) -> list[str]:
    """The f32 registers of `layout` read from a row-major f32 tile at smem address `base` (the
    inverse of `store_tile` for f32; slots outside the tile read 0)."""
    regs = []
    for s in range(layout.num_slots):
        r = em.new("f")
        pred = em.slot_pred(layout, s)
        if layout.slot_never_valid(s):
            em.ins(f"mov.f32 {r}, {N.ZERO}")
        else:
            if pred:
                em.ins(f"mov.f32 {r}, {N.ZERO}")
            em.ins(f"{'@' + pred + ' ' if pred else ''}ld.shared.f32 {r}, [{base}+{layout.slot_const(s) * 4}]")
        regs.append(r)
    return regs


def load_element(em: KernelEmitter, d: dt.DType, byte_offset: int, index, pred: str | None = None,
                 stride_bytes: int | None = None) -> str:
    """The element `index` (u32 reg or int) of a row-major array of dtype `d` at smem + byte_offset."""
    cls = reg_class(d)
    typ, size = _KIND[cls]
    if isinstance(index, int):
        addr, imm = em.smem_base, byte_offset + index * size
    else:
        addr = em.new("r")
        em.ins(f"mad.lo.u32 {addr}, {index}, {size}, {em.smem_base}")
        imm = byte_offset
    guard = f"@{pred} " if pred else ""
    if cls == "p":
        r, p = em.new("r"), em.new("p")
        if pred:
            em.ins(f"mov.b32 {r}, 0")
        em.ins(f"{guard}ld.shared.b32 {r}, [{addr}+{imm}]")
        em.ins(f"setp.ne.u32 {p}, {r}, 0")
        return p
    r = em.new(cls)
    if pred:
        em.ins(f"mov.{typ} {r}, {_ZERO[typ]}")
    em.ins(f"{guard}ld.shared.{typ} {r}, [{addr}+{imm}]")
    return r


def linear_index(em: KernelEmitter, shape: tuple[int, ...], coords: list):
    """Row-major index (u32 reg or int) of `coords` in `shape`."""
    idx = 0
    for c, n in zip(coords, shape):
        idx = em.add_u32(em.mul_u32(idx, n), c)
    return idx


def mma_base(em: KernelEmitter) -> tuple[str, str]:
    """(row, column) of this thread's slot 0 in an `Mma` layout: 16*(tid/32) + (tid%32)/4, 2*(tid%4)."""
    def make():
        row, col, t = em.new("r"), em.new("r"), em.new("r")
        em.ins(f"shr.u32 {row}, {em.tid}, 5")
        em.ins(f"shl.b32 {row}, {row}, 4")
        em.ins(f"bfe.u32 {t}, {em.tid}, 2, 3")
        em.ins(f"add.u32 {row}, {row}, {t}")
        em.ins(f"and.b32 {col}, {em.tid}, 3")
        em.ins(f"shl.b32 {col}, {col}, 1")
        return row, col
    return em.memo("mma_base", make)


def parent_coords(em: KernelEmitter, layout, slot: int) -> list:
    """Coordinates of `slot` in a `Blocked` or `Mma` layout (a `Sliced` one's parent)."""
    if isinstance(layout, Mma):
        row, col = mma_base(em)
        dr, dc = layout.slot_offsets(slot)
        return [em.add_u32(row, dr), em.add_u32(col, dc)]
    if layout.is_pow2 and layout.numel >= layout.num_threads * layout.vec:
        return pow2_coords(em, layout, slot)
    return em.coords(layout, slot)


def pow2_coords(em: KernelEmitter, layout: Blocked, slot: int) -> list:
    """Coordinates of `slot` in a power-of-two `Blocked` layout as bit fields: the element
    index is `tid * vec | const(slot)` (disjoint bits), so coordinate d is this thread's
    part of d's bits (one register per dim, shared by every slot) plus the slot's constant
    part.  Slots reading the same source element then name the same index register, which
    `gather` loads once (a [G, 1, D] -> [G, 64, D] broadcast: 16 loads, not 256)."""
    lv = layout.vec.bit_length() - 1
    out = []
    c = layout.slot_const(slot)
    for d in range(len(layout.shape)):
        bits = layout.dim_bits(d)
        if not len(bits):
            out.append(0)
            continue
        lo, mask = bits.start, (1 << len(bits)) - 1
        const = (c >> lo) & mask
        tmask = mask & ~((1 << max(0, lv - lo)) - 1) if lo < lv else mask     # bits the thread index reaches
        tmask &= ((layout.num_threads * layout.vec - 1) >> lo) if lo < 32 else 0

        def make(lo=lo, tmask=tmask):
            r = em.new("r")
            if lo >= lv:
                em.ins(f"shr.u32 {r}, {em.tid}, {lo - lv}")
            else:
                em.ins(f"shl.b32 {r}, {em.tid}, {lv - lo}")
            em.ins(f"and.b32 {r}, {r}, {tmask}")
            return r
        part = em.memo(("tpart", lv, lo, tmask), make) if tmask else 0
        out.append(em.add_u32(part, const))
    return out


def layout_coords(em: KernelEmitter, layout, slot: int) -> list:
    """Coordinates (u32 regs or ints) of the element `slot` holds in this thread."""
    if isinstance(layout, Sliced):
        return layout.result_coords(parent_coords(em, layout.parent, slot))
    return parent_coords(em, layout, slot)


def layout_pred(em: KernelEmitter, layout, slot: int) -> str | None:
    """Predicate 'this thread's `slot` is real' (None: in every thread)."""
    return em.slot_pred(layout.parent if isinstance(layout, Sliced) else layout, slot)


def _eq0(em: KernelEmitter, x) -> str:
    def make():
        p = em.new("p")
        em.ins(f"setp.eq.u32 {p}, {x}, 0")
        return p
    return em.memo(("eq0", x), make)


def _and(em: KernelEmitter, a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    def make():
        p = em.new("p")
        em.ins(f"and.pred {p}, {a}, {b}")
        return p
    return em.memo(("andp", a, b), make)


def store_any(em: KernelEmitter, val: Val, byte_offset: int) -> None:
    """Write `val`'s elements row-major (in its tile shape) at smem + byte_offset, each once."""
    layout = val.layout
    if isinstance(layout, Blocked):
        store_tile(em, val, byte_offset)
        return
    cls = reg_class(val.dtype)
    typ, size = _KIND[cls]
    if isinstance(layout, Mma):
        layout = Sliced(layout, ())         # every slot its own element
    parent = layout.parent
    for s in range(layout.num_slots):
        if layout.slot_never_valid(s) or layout.rep_slot(s) != s:
            continue
        pc = parent_coords(em, parent, s)
        pred = em.slot_pred(parent, s)
        skip = False
        for a in layout.axes:       # the owner: coordinate 0 along every reduced axis
            if isinstance(pc[a], int):
                skip |= pc[a] != 0
            else:
                pred = _and(em, pred, _eq0(em, pc[a]))
        if skip:
            continue
        idx = linear_index(em, layout.shape, layout.result_coords(pc))
        x = val.regs[s]
        if cls == "p":
            r = em.new("r")
            em.ins(f"selp.u32 {r}, 1, 0, {x}")
            x = r
        guard = f"@{pred} " if pred else ""
        if isinstance(idx, int):
            em.ins(f"{guard}st.shared.{typ} [{em.smem_base}+{byte_offset + idx * size}], {x}")
        else:
            addr = em.new("r")
            em.ins(f"mad.lo.u32 {addr}, {idx}, {size}, {em.smem_base}")
            em.ins(f"{guard}st.shared.{typ} [{addr}+{byte_offset}], {x}")


def numel_of(layout) -> int:
    n = 1
    for d in layout.shape:
        n *= d
    return n


def gather(em: KernelEmitter, src: Val, dst_layout, index_of: Callable[[list], object]) -> Val:
    """The tile of `dst_layout` whose element at coords c is `src`'s element `index_of(c)`."""
    if src.uniform:  # a splat stays a splat
        return Val(src.dtype, dst_layout, [src.regs[0]] * dst_layout.num_slots, True)
    size = elem_size(src.dtype)
    em.reserve_smem(numel_of(src.layout) * size)
    em.bar()
    store_any(em, src, 0)
    em.bar()
    regs = []
    loaded: dict = {}      # slots reading the same element (a broadcast) share one ld.shared
    for s in range(dst_layout.num_slots):
        if isinstance(dst_layout, Sliced) and dst_layout.rep_slot(s) != s:
            regs.append(regs[dst_layout.rep_slot(s)])
            continue
        if dst_layout.slot_never_valid(s):
            regs.append(constant_reg(em, src.dtype, 0))
            continue
        idx = index_of(layout_coords(em, dst_layout, s))
        pred = layout_pred(em, dst_layout, s)
        if (idx, pred) not in loaded:
            loaded[idx, pred] = load_element(em, src.dtype, 0, idx, pred)
        regs.append(loaded[idx, pred])
    return Val(src.dtype, dst_layout, regs)


def _held(layout, t: int) -> dict:
    """{element coords: [slots]} of what thread `t` holds in a `Blocked` or `Sliced` layout
    (a `Sliced` slot holds the value of its line, under the line's result coordinates)."""
    parent = layout.parent if isinstance(layout, Sliced) else layout
    out: dict = {}
    for s in range(parent.num_slots):
        e = t * parent.vec + parent.slot_const(s)
        if e >= parent.numel:
            continue
        c = _unravel(e, parent.shape)
        if isinstance(layout, Sliced):
            c = tuple(layout.result_coords(list(c)))
        out.setdefault(c, []).append(s)
    return out


def _unravel(e: int, shape) -> tuple:
    out = []
    for n in reversed(shape):
        e, r = divmod(e, n)
        out.append(r)
    return tuple(reversed(out))


def register_map(src_layout, dst_layout) -> tuple | None:
    """Per slot of `dst_layout`, the slot of `src_layout` that holds, in the same thread, the
    source element that destination slot needs (`src coords = dst coords with the dims where
    the source has size 1 set to 0`: a conversion when the shapes agree, else a broadcast);
    None when some thread needs an element it does not hold, or holds it in a slot that
    depends on the thread (then the move needs an exchange).  A destination slot that no
    thread holds maps to slot 0 (its register is garbage, as in every layout).

    Exact for every `Blocked` (canonical or wide, any shape) and `Sliced` pair: both layouts
    are enumerated thread by thread at compile time.  For power-of-two layouts it comes out
    as the bit-field rule: every coordinate bit the destination takes from a thread bit, the
    source takes from the same thread bit (or the source does not depend on it: a stretched
    or reduced dim), and the bits the destination takes from v / k bits the source also
    holds in v / k bits.  Examples (4 warps, 128 threads, vec 4):

        [1, 32, 128] -> [4, 32, 128]   register copy: the broadcast dim is k bits 3-4 of the
                                       destination; the source's bits are the same v /
                                       thread / k bits 0-2, so dst slot s reads src slot s % 32
        [1, 128] -> [64, 128]          exchange: the row is 32 threads' worth, rows 1-3 of
                                       the destination sit in threads 32-127, which hold none
        Sliced([64, 128], axes (0,)) -> [1, 128]   register copy: thread t < 32 needs columns
                                       4t .. 4t+3, which every thread holds after the reduction
        Sliced([64, 128], axes (1,)) -> [64, 1]    exchange: row sums sit in the threads of
                                       their rows (t / 32 + 4k), canonical [64, 1] wants rows
                                       4t .. 4t+3 in threads 0-15

    Two power-of-two `Blocked` layouts need only thread 0 and the single-bit threads (the map is
    linear in the bits); other pairs are enumerated up to 32768 (thread, slot) pairs (larger:
    None, an exchange).
    `Mma` layouts are not handled (None)."""
    if isinstance(src_layout, Mma) or isinstance(dst_layout, Mma) or \
            isinstance(getattr(src_layout, "parent", None), Mma) or \
            isinstance(getattr(dst_layout, "parent", None), Mma):
        return None
    return _register_map(src_layout, dst_layout)


@functools.lru_cache(maxsize=512)
def _register_map(src_layout, dst_layout) -> tuple | None:
    src_shape = tuple(src_layout.shape)
    dst_shape = tuple(dst_layout.shape)
    if len(src_shape) != len(dst_shape) or src_layout.num_threads != dst_layout.num_threads:
        return None
    if any(a != b and a != 1 for a, b in zip(src_shape, dst_shape)):
        return None
    dparent = dst_layout.parent if isinstance(dst_layout, Sliced) else dst_layout
    threads = range(dst_layout.num_threads)
    if isinstance(src_layout, Blocked) and isinstance(dst_layout, Blocked) and src_layout.is_pow2 \
            and dst_layout.is_pow2:
        # Every step (element bits -> coordinates -> stretched dims to 0 -> source element bits ->
        # source thread / slot bits) selects bits, so the source (thread, slot) is a GF(2)-linear
        # function of the destination's; the threads holding a real element are a power-of-two
        # prefix.  Thread 0 and the single-bit threads of that prefix decide for all of them.
        live = min(dst_layout.num_threads, -(-dst_layout.numel // dst_layout.vec))
        threads = [0] + [1 << i for i in range(live.bit_length()) if 1 << i < live]
    elif dst_layout.num_threads * dst_layout.num_slots > 32768:
        return None
    cand: list = [None] * dst_layout.num_slots        # per dst slot: the src slots valid in every thread so far
    for t in threads:
        held = _held(src_layout, t)
        for s in range(dparent.num_slots):
            if isinstance(dst_layout, Sliced) and dst_layout.rep_slot(s) != s:
                continue
            e = t * dparent.vec + dparent.slot_const(s)
            if e >= dparent.numel:
                continue
            c = _unravel(e, dparent.shape)
            if isinstance(dst_layout, Sliced):
                c = dst_layout.result_coords(list(c))
            sc = tuple(0 if n == 1 else x for x, n in zip(c, src_shape))
            slots = held.get(sc)
            if not slots:
                return None
            cand[s] = set(slots) if cand[s] is None else cand[s] & set(slots)
            if not cand[s]:
                return None
    out = []
    for s in range(dst_layout.num_slots):
        if isinstance(dst_layout, Sliced) and dst_layout.rep_slot(s) != s:
            out.append(out[dst_layout.rep_slot(s)])
        else:
            out.append(min(cand[s]) if cand[s] else 0)
    return tuple(out)


def in_registers(em: KernelEmitter, val: Val, layout) -> Val | None:
    """`val` moved to `layout` (same shape, or a broadcast of it) without leaving the
    registers (`register_map`), or None when that needs an exchange."""
    m = register_map(val.layout, layout)
    if m is None:
        return None
    return Val(val.dtype, layout, [val.regs[s] for s in m])


def to_layout(em: KernelEmitter, val: Val, layout) -> Val:
    """`val` (a tile) in `layout` (same shape): free for a uniform value or when every thread
    already holds what it needs (`register_map`), else through smem."""
    if val.layout == layout:
        return val
    if val.uniform:
        return Val(val.dtype, layout, [val.regs[0]] * layout.num_slots, True)
    shape = tuple(layout.shape)
    assert tuple(val.layout.shape) == shape, (val.layout.shape, shape)
    moved = in_registers(em, val, layout)
    if moved is not None:
        return moved
    return gather(em, val, layout, lambda c: linear_index(em, shape, c))


def to_canonical(em: KernelEmitter, val: Val) -> Val:
    """`val` in the canonical blocked layout of its shape."""
    return to_layout(em, val, Blocked(tuple(val.layout.shape), em.num_threads))
