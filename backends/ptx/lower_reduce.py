"""`tile.reduce` (sum, max, min, argmax, argmin over one axis).

An axis of length 1 reduces to a cast in place, in any layout (`_length_one`: no shuffle,
no shared memory, no bar.sync; `load_tile(PT, [b, p], [1]).sum()` is the loaded register).

Power-of-two tiles (`Blocked.is_pow2`: every coordinate is a bit field of the element
index, see layout.py) reduce where the data is:

    1. each thread folds its slots that differ only in the axis' v / k bits (registers)
    2. lanes that differ in the axis' lane bits: one `shfl.sync.bfly.b32` + combine per bit
       (every lane of the warp runs it; a butterfly leaves the same value in all of them)
    3. warps that differ in the axis' warp bits: the lanes with those lane bits 0 write
       their partials to smem, bar.sync, every thread folds the 2^w partials of its line
       in the same order (so all copies of a result are bit-identical)

The result stays in the source's layout (`layout.Sliced`): every thread holds the result
of each line it holds an element of, so broadcasting it back (`x - max(x)`) is free.
A wgmma accumulator (`layout.Mma`) reduces the same way: a row's BN / 2 values sit in
BN / 8 registers of each of the 4 lanes of a quad (two shuffles).
A row of a [BM, BN] tile lives in BN / vec consecutive threads, so rows of up to 128
elements reduce within a warp (no shared memory at all) and wider ones need step 3 once.

Other shapes go through shared memory.  A source of shape S reduced over axis a
(length L) has Nr = numel / L results.  Each result is split into
P = min(L, max(1, threads // Nr)) strided partials:

    1. every thread writes its source slots row-major to smem            bar.sync
    2. work item q = r * P + p (threads take q = tid, tid + T, ...): fold elements
       j = p, p + P, ... < L of result r (a loop), write the partial to smem   bar.sync
    3. each thread folds the P partials of every result slot it holds

Float sums accumulate in f32 (f64 for f64), integer sums in the result type; max/min
propagate NaN; argmax/argmin return the first index of the extreme value (NaN counts
as the extreme, as numpy's).
"""

from __future__ import annotations

from tilec import dtypes as dt
from tilec.dialects import tile as T

from . import numerics as N
from .emitter import KernelEmitter, Val, dtype_of, lowers
from .exchange import elem_size, load_element, store_tile
from .layout import Blocked, Mma, Sliced
from .ptx_types import float_type, int_type, reg_class


def _acc_dtype(kind: str, src: dt.DType, out: dt.DType) -> dt.DType:
    if kind == "sum":
        return out if not src.is_float else (dt.float64 if src.bits == 64 else dt.float32)
    if src is dt.bool_:
        return dt.uint32
    if src.is_float:
        return dt.float64 if src.bits == 64 else dt.float32
    return src


class _Fold:
    """Emits the combine step of one reduction kind on accumulator dtype `d`."""

    def __init__(self, em: KernelEmitter, kind: str, d: dt.DType):
        self.em, self.kind, self.d = em, kind, d
        self.cls = reg_class(d)
        self.arg = kind in ("argmax", "argmin")

    def _sel(self, p: str, a: str, b: str, cls: str) -> None:
        """a = p ? b : a."""
        typ = {"f": "f32", "fd": "f64", "r": "b32", "rd": "b64"}[cls]
        self.em.ins(f"selp.{typ} {a}, {b}, {a}, {p}")

    def combine(self, acc: str, v: str, idx: str | None = None, vidx=None, tie_break: bool = False) -> None:
        em, d = self.em, self.d
        if self.kind == "sum":
            if d.is_float:
                em.ins(f"add.rn.{float_type(d)} {acc}, {acc}, {v}")
            else:
                em.ins(f"add.{int_type(d)} {acc}, {acc}, {v}")
            return
        if self.kind in ("max", "min"):
            m = self.kind
            if d is dt.float32:
                em.ins(f"{m}.NaN.f32 {acc}, {acc}, {v}")
            elif d.is_float:
                t, p = em.new("fd"), em.new("p")
                em.ins(f"{m}.f64 {t}, {acc}, {v}")
                em.ins(f"setp.nan.f64 {p}, {acc}, {v}")
                em.ins(f"@!{p} mov.f64 {acc}, {t}")
                em.ins(f"@{p} add.rn.f64 {acc}, {acc}, {v}")
            else:
                em.ins(f"{m}.{int_type(d)} {acc}, {acc}, {v}")
            return
        # argmax / argmin
        better = em.new("p")
        cmp = "gt" if self.kind == "argmax" else "lt"
        if d.is_float:
            ft = float_type(d)
            vn, an, t = em.new("p"), em.new("p"), em.new("p")
            em.ins(f"setp.{cmp}.{ft} {better}, {v}, {acc}")
            em.ins(f"setp.nan.{ft} {vn}, {v}, {v}")
            em.ins(f"setp.num.{ft} {an}, {acc}, {acc}")
            em.ins(f"and.pred {t}, {vn}, {an}")
            em.ins(f"or.pred {better}, {better}, {t}")
            if tie_break:
                eq, earlier = em.new("p"), em.new("p")
                em.ins(f"setp.eq.{ft} {eq}, {v}, {acc}")
                em.ins(f"setp.nan.{ft} {an}, {acc}, {acc}")
                em.ins(f"and.pred {t}, {vn}, {an}")
                em.ins(f"or.pred {eq}, {eq}, {t}")
                em.ins(f"setp.lt.s32 {earlier}, {vidx}, {idx}")
                em.ins(f"and.pred {eq}, {eq}, {earlier}")
                em.ins(f"or.pred {better}, {better}, {eq}")
        else:
            it = int_type(d)
            em.ins(f"setp.{cmp}.{it} {better}, {v}, {acc}")
            if tie_break:
                eq, earlier = em.new("p"), em.new("p")
                em.ins(f"setp.eq.{it} {eq}, {v}, {acc}")
                em.ins(f"setp.lt.s32 {earlier}, {vidx}, {idx}")
                em.ins(f"and.pred {eq}, {eq}, {earlier}")
                em.ins(f"or.pred {better}, {better}, {eq}")
        self._sel(better, acc, v, self.cls)
        self._sel(better, idx, em.as_reg(vidx), "r")


def _copy(em: KernelEmitter, cls: str, x: str) -> str:
    r = em.new(cls)
    N.mov(em, cls, r, x)
    return r


def _shfl_bfly(em: KernelEmitter, cls: str, x: str, mask: int) -> str:
    """`x` of lane `lane ^ mask` (the whole warp runs it)."""
    if cls in ("fd", "rd"):
        lo, hi, lo2, hi2 = (em.new("r") for _ in range(4))
        em.ins(f"mov.b64 {{{lo}, {hi}}}, {x}")
        em.ins(f"shfl.sync.bfly.b32 {lo2}, {lo}, {mask}, 31, -1")
        em.ins(f"shfl.sync.bfly.b32 {hi2}, {hi}, {mask}, 31, -1")
        out = em.new(cls)
        em.ins(f"mov.b64 {out}, {{{lo2}, {hi2}}}")
        return out
    out = em.new(cls)
    em.ins(f"shfl.sync.bfly.b32 {out}, {x}, {mask}, 31, -1")
    return out


def _fast_reduce(em: KernelEmitter, op: T.ReduceOp, fold: _Fold, out: dt.DType) -> bool:
    """The in-place reduction of the module docstring; False when it does not apply."""
    x = em.get_any(op.source)
    axis = op.axis.value.data
    lay = x.layout
    keep = len(op.result.type.get_shape()) == len(lay.shape)
    if isinstance(lay, Sliced):
        if lay.dropped or not keep:
            return False
        parent, axes = lay.parent, lay.axes
    else:
        parent, axes = lay, ()
    if not parent.is_pow2 or parent.shape[axis] == 1 or (isinstance(parent, Mma) and fold.arg):
        return False
    acc_d, cls = fold.d, fold.cls
    vb, tb, kb = parent.bit_sources(axis)
    vmask, kmask = sum(1 << b for b in vb), sum(1 << b for b in kb)
    lane_bits, warp_bits = [b for b in tb if b < 5], [b for b in tb if b >= 5]
    vec = parent.vec

    conv: dict[str, str] = {}

    def value(s: int) -> str:
        r = x.regs[s]
        if r not in conv:
            conv[r] = N.cast(em, x.dtype, acc_d, r)
        return conv[r]

    def coord(s: int) -> str:
        return em.as_reg(em.coords(parent, s)[axis])

    # 1. fold the slots of a line held by this thread
    groups: dict[int, list[int]] = {}
    for s in range(parent.num_slots):
        if not parent.slot_never_valid(s):
            k, v = divmod(s, vec)
            groups.setdefault((k & ~kmask) * vec + (v & ~vmask), []).append(s)
    of_group: dict[int, tuple] = {}
    partials: dict[tuple, tuple] = {}      # registers of the members -> (acc, idx)
    for key, members in groups.items():
        sig = tuple(x.regs[s] for s in members)
        if sig not in partials:
            acc = _copy(em, cls, value(members[0]))
            idx = _copy(em, "r", coord(members[0])) if fold.arg else None
            for s in members[1:]:
                fold.combine(acc, value(s), idx, coord(s) if fold.arg else None, tie_break=True)
            partials[sig] = (acc, idx)
        of_group[key] = partials[sig]
    accs = list(partials.values())

    # 2. lanes: a butterfly per lane bit of the axis
    for b in lane_bits:
        for acc, idx in accs:
            other = _shfl_bfly(em, cls, acc, 1 << b)
            oidx = _shfl_bfly(em, "r", idx, 1 << b) if fold.arg else None
            fold.combine(acc, other, idx, oidx, tie_break=True)

    # 3. warps: one round through shared memory
    if warp_bits:
        accs = _across_warps(em, fold, accs, lane_bits, tb, warp_bits)
        of_group = {key: accs[[p for p in partials.values()].index(v)] for key, v in of_group.items()}

    regs, cast = [], {}
    for s in range(parent.num_slots):
        if parent.slot_never_valid(s):
            regs.append(_zero(em, out))
            continue
        k, v = divmod(s, vec)
        acc, idx = of_group[(k & ~kmask) * vec + (v & ~vmask)]
        if fold.arg:
            regs.append(idx)
            continue
        if acc not in cast:
            cast[acc] = N.cast(em, acc_d, out, acc) if acc_d is not out else acc
        regs.append(cast[acc])
    layout = Sliced(parent, tuple(sorted((*axes, axis))), dropped=not keep)
    em.set(op.result, Val(out, layout, regs))
    return True


def _length_one(em: KernelEmitter, op: T.ReduceOp, fold: _Fold, out: dt.DType) -> bool:
    """A reduction over an axis of length 1 (`load_tile(PT, [b, p], [1]).sum()`, a column
    vector's sum over its columns) is a cast per slot, in place: each result element is the one
    source element of its line, which the same thread holds in the same slot (a `Blocked`
    layout depends only on the element count, so dropping the axis keeps every element where
    it is).  argmax / argmin give index 0.  No shuffle, no shared memory, no bar.sync:

        before: bar.sync; st.shared; bar.sync; ld.shared; st.shared; bar.sync; ld.shared
        after:  (the loaded register itself; a cvt when the accumulator type differs)

    False (the general paths) for other axes and for a `Sliced` / `Mma` source reduced
    without keepdims."""
    x = em.get_any(op.source)
    axis = op.axis.value.data
    lay = x.layout
    if lay is None or lay.shape[axis] != 1:
        return False
    keep = len(op.result.type.get_shape()) == len(lay.shape)
    if keep:
        layout = lay
    elif isinstance(lay, Blocked):
        layout = Blocked(tuple(op.result.type.get_shape()), lay.num_threads, lay.wide)
    else:
        return False
    if fold.arg:
        regs = [_zero(em, out)] * lay.num_slots
        em.set(op.result, Val(out, layout, regs, True))
        return True
    cast: dict[str, str] = {}
    regs = []
    for r in x.regs:
        if r not in cast:     # through the accumulator type: a sum of one bf16 is its f32 value rounded back
            a = N.cast(em, x.dtype, fold.d, r) if x.dtype is not fold.d else r
            cast[r] = N.cast(em, fold.d, out, a) if fold.d is not out else a
        regs.append(cast[r])
    em.set(op.result, Val(out, layout, regs, x.uniform))
    return True


def _across_warps(em: KernelEmitter, fold: _Fold, accs: list, lane_bits: list, tb: list,
                  warp_bits: list) -> list:
    """Step 3: fold the partials of warps that differ in `warp_bits` (thread-index bits)."""
    size = elem_size(fold.d)
    T_ = em.num_threads
    typ = {"f": "f32", "fd": "f64", "r": "b32", "rd": "b64"}[fold.cls]
    G = len(accs)
    off_idx = (G * T_ * size + 15) // 16 * 16
    em.reserve_smem(off_idx + (G * T_ * 4 if fold.arg else 0))
    lmask = sum(1 << b for b in lane_bits)
    tmask = sum(1 << b for b in tb)
    em.bar()
    guard = ""
    if lmask:
        t, p = em.new("r"), em.new("p")
        em.ins(f"and.b32 {t}, {em.tid}, {lmask}")
        em.ins(f"setp.eq.u32 {p}, {t}, 0")
        guard = f"@{p} "
    wa = em.new("r")
    em.ins(f"mad.lo.u32 {wa}, {em.tid}, {size}, {em.smem_base}")
    wi = None
    if fold.arg:
        wi = em.new("r")
        em.ins(f"mad.lo.u32 {wi}, {em.tid}, 4, {em.smem_base}")
    for g, (acc, idx) in enumerate(accs):
        em.ins(f"{guard}st.shared.{typ} [{wa}+{g * T_ * size}], {acc}")
        if fold.arg:
            em.ins(f"{guard}st.shared.b32 [{wi}+{off_idx + g * T_ * 4}], {idx}")
    em.bar()
    t0, ra = em.new("r"), em.new("r")
    em.ins(f"and.b32 {t0}, {em.tid}, {~tmask & 0xFFFFFFFF}")
    em.ins(f"mad.lo.u32 {ra}, {t0}, {size}, {em.smem_base}")
    ri = None
    if fold.arg:
        ri = em.new("r")
        em.ins(f"mad.lo.u32 {ri}, {t0}, 4, {em.smem_base}")
    out = []
    for g in range(G):
        acc = idx = None
        for w in range(1 << len(warp_bits)):
            t_off = sum(((w >> i) & 1) << b for i, b in enumerate(warp_bits))
            v = em.new(fold.cls)
            em.ins(f"ld.shared.{typ} {v}, [{ra}+{(g * T_ + t_off) * size}]")
            vi = None
            if fold.arg:
                vi = em.new("r")
                em.ins(f"ld.shared.b32 {vi}, [{ri}+{off_idx + (g * T_ + t_off) * 4}]")
            if acc is None:
                acc, idx = v, vi
            else:
                fold.combine(acc, v, idx, vi, tie_break=True)
        out.append((acc, idx))
    return out


@lowers(T.ReduceOp)
def lower_reduce(em: KernelEmitter, op: T.ReduceOp) -> None:
    kind = op.kind.data
    axis = op.axis.value.data
    src, out = em.get_any(op.source).dtype, dtype_of(op.result.type)
    acc_d = _acc_dtype(kind, src, out)
    if src.is_float and src.bits < 16 and src not in N.FP8:
        raise em.unsupported("tile.reduce", src)
    fold = _Fold(em, kind, acc_d)
    if _length_one(em, op, fold, out) or _fast_reduce(em, op, fold, out):
        return
    x = em.get(op.source)
    cls, size = reg_class(acc_d), elem_size(acc_d)
    shape = x.layout.shape
    L = shape[axis]
    inner = 1
    for n in shape[axis + 1:]:
        inner *= n
    numel = x.layout.numel
    nr = numel // L
    T_ = em.num_threads
    P = min(L, max(1, T_ // nr))
    items = nr * P
    off2 = (numel * size + 15) // 16 * 16
    off3 = off2 + (items * size + 15) // 16 * 16
    em.reserve_smem(off3 + (items * 4 if fold.arg else 0))

    # 1. the source, converted to the accumulator type, row-major in smem
    conv = Val(acc_d, x.layout, [N.cast(em, src, acc_d, r) for r in x.regs])
    em.bar()
    store_tile(em, conv, 0)
    em.bar()

    # 2. partials: item q = r * P + p folds j = p, p + P, ... of result r
    typ = {"f": "f32", "fd": "f64", "r": "b32", "rd": "b64"}[cls]
    for m in range(-(-items // T_)):
        skip = em.label("red_skip")
        q = em.as_reg(em.add_u32(em.tid, m * T_))
        if (m + 1) * T_ > items:
            p_out = em.new("p")
            em.ins(f"setp.ge.u32 {p_out}, {q}, {items}")
            em.ins(f"@{p_out} bra {skip}")
        r, p = em.div_u32(q, P), em.rem_u32(q, P)
        o, i = em.div_u32(r, inner), em.rem_u32(r, inner)
        first = em.add_u32(em.add_u32(em.mul_u32(o, L * inner), i), em.mul_u32(p, inner))
        addr = em.new("r")
        em.ins(f"mad.lo.u32 {addr}, {em.as_reg(first)}, {size}, {em.smem_base}")
        acc = em.new(cls)
        em.ins(f"ld.shared.{typ} {acc}, [{addr}]")
        idx = _copy(em, "r", em.as_reg(p)) if fold.arg else None
        if L > P:
            j, v, pj = em.new("r"), em.new(cls), em.new("p")
            head, done = em.label("red"), em.label("red_done")
            em.ins(f"add.u32 {j}, {em.as_reg(p)}, {P}")
            em.place(head)
            em.ins(f"setp.ge.u32 {pj}, {j}, {L}")
            em.ins(f"@{pj} bra {done}")
            em.ins(f"add.u32 {addr}, {addr}, {P * inner * size}")
            em.ins(f"ld.shared.{typ} {v}, [{addr}]")
            fold.combine(acc, v, idx, j)
            em.ins(f"add.u32 {j}, {j}, {P}")
            em.ins(f"bra {head}")
            em.place(done)
        qa = em.new("r")
        em.ins(f"mad.lo.u32 {qa}, {q}, {size}, {em.smem_base}")
        em.ins(f"st.shared.{typ} [{qa}+{off2}], {acc}")
        if fold.arg:
            qi = em.new("r")
            em.ins(f"mad.lo.u32 {qi}, {q}, 4, {em.smem_base}")
            em.ins(f"st.shared.b32 [{qi}+{off3}], {idx}")
        em.place(skip)
    em.bar()

    # 3. every result slot folds its P partials
    layout = em.layout_of(op.result.type)
    regs = []
    for s in range(layout.num_slots):
        if layout.slot_never_valid(s):
            regs.append(regs[-1] if regs else _zero(em, out))
            continue
        pred = em.slot_pred(layout, s)
        rr = em.element_index(layout, s)
        base = em.mul_u32(rr, P)
        acc = load_element(em, acc_d, off2, base, pred)
        idx = load_element(em, dt.int32, off3, base, pred) if fold.arg else None
        for pp in range(1, P):
            v = load_element(em, acc_d, off2 + pp * size, base, pred)
            vi = load_element(em, dt.int32, off3 + pp * 4, base, pred) if fold.arg else None
            fold.combine(acc, v, idx, vi, tie_break=True)
        if fold.arg:
            regs.append(idx)
        else:
            regs.append(N.cast(em, acc_d, out, acc) if acc_d is not out else acc)
    em.set(op.result, Val(out, layout, regs))


def _zero(em: KernelEmitter, d: dt.DType) -> str:
    from .lower_grid import constant_reg

    return constant_reg(em, d, 0)
