"""Shape ops: `tile.splat`, `tile.reshape`, `tile.broadcast`, `tile.permute`, `tile.arange`.

* splat: every slot names the scalar's register (no instruction).
* reshape: free (the blocked layout depends only on the element count); a reduction
  result kept in its source's layout (`layout.Sliced`) stays there when the reshape only
  drops or restores the reduced size-1 dims.
* broadcast, cheapest first:
  - a splat source stays a splat;
  - a `Sliced` source broadcast back to its source's shape is free (every thread already
    holds the reduced value of each of its lines); so is a row vector of a wgmma
    accumulator (`layout.Mma`) broadcast to any width (rows of S scale rows of O);
  - a source whose every needed element already sits in the destination thread, at a slot
    that does not depend on the thread, is a register copy (`exchange.register_map`, exact
    for `Blocked` / `Sliced`): e.g. with 4 warps [1, 32, 128] -> [4, 32, 128] (the new dim
    is k bits of the destination) or a column sum Sliced([64, 128], (0,)) -> [1, 128]:

        before: st.shared ...; bar.sync 0; ld.shared ... (x slots)   after: nothing (same regs)
  - a source computed only from `arange`, splats and elementwise ops (`cols < n`,
    `start + arange(BN)[None, :]`) is recomputed at the destination's coordinates;
  - else a shared-memory gather (`exchange.gather`): the destination element at coords c
    reads the source at c with stretched dims set to 0.
* permute: a shared-memory gather at the permuted coords.
* arange: element index + start.
* extract: free after a full reduction that left the result in every thread; else the
  one element goes through shared memory to every thread, since a scalar is the same
  register value in all threads.
"""

from __future__ import annotations

from xdsl.dialects import arith

from tilec import dtypes as dt
from tilec.dialects import tile as T

from .emitter import KernelEmitter, Val, dtype_of, lowers
from .exchange import gather, in_registers, layout_coords, linear_index, load_element, store_tile
from .layout import Blocked, Mma, Sliced
from .lower_grid import constant_reg


@lowers(T.SplatOp)
def lower_splat(em: KernelEmitter, op: T.SplatOp) -> None:
    x = em.get(op.scalar)
    layout = em.layout_of(op.result.type)
    em.set(op.result, Val(x.dtype, layout, [x.regs[0]] * layout.num_slots, True))


@lowers(T.ReshapeOp)
def lower_reshape(em: KernelEmitter, op: T.ReshapeOp) -> None:
    x = em.get_any(op.source)
    shape = tuple(op.result.type.get_shape())
    if isinstance(x.layout, Sliced):
        for dropped in (False, True):
            lay = Sliced(x.layout.parent, x.layout.axes, dropped)
            if lay.shape == shape:
                em.set(op.result, Val(x.dtype, lay, list(x.regs), x.uniform))
                return
        x = em.get(op.source)
    if isinstance(x.layout, Mma):   # a wgmma accumulator layout is 2-D: other shapes are blocked
        x = em.get(op.source)
    layout = em.layout_of(op.result.type)
    if x.layout.wide:
        layout = Blocked(layout.shape, layout.num_threads, True)
    assert layout.num_slots == x.layout.num_slots and layout.vec == x.layout.vec
    em.set(op.result, Val(x.dtype, layout, list(x.regs), x.uniform))


_ELEMENTWISE = (T.CmpOp, T.SelectOp, T.CastOp, *T.BINARY_OP_CLASSES.values(), *T.UNARY_OP_CLASSES.values())
_RECOMPUTE_BUDGET = 8


@lowers(T.BroadcastOp)
def lower_broadcast(em: KernelEmitter, op: T.BroadcastOp) -> None:
    x = em.get_any(op.source)
    src_shape = tuple(x.layout.shape)
    layout = em.layout_of(op.result.type)
    if isinstance(x.layout, Sliced) and not x.layout.dropped:
        lay = x.layout
        keep = tuple(a for a in lay.axes if layout.shape[a] == 1)   # axes that stay reduced
        if lay.parent.shape == tuple(layout.shape) and not keep:   # rows already in place
            em.set(op.result, Val(x.dtype, lay.parent, list(x.regs), x.uniform))
            return
        if Sliced(lay.parent, keep).shape == tuple(layout.shape):   # e.g. [1, 1] -> [BM, 1]
            em.set(op.result, Val(x.dtype, Sliced(lay.parent, keep), list(x.regs), x.uniform))
            return
        if isinstance(lay.parent, Mma) and lay.axes == (1,) and layout.shape[0] == lay.parent.shape[0]:
            wide = Mma(tuple(layout.shape), lay.parent.num_threads)   # rows of S -> rows of O: any width
            em.set(op.result, Val(x.dtype, wide, [x.regs[s & 2] for s in range(wide.num_slots)], x.uniform))
            return
    if not x.uniform:
        moved = in_registers(em, x, layout)        # every thread holds what it needs already
        if moved is not None:
            em.set(op.result, moved)
            return
        regs = recompute(em, op.source, layout, lambda c: [0 if n == 1 else ci for ci, n in zip(c, src_shape)])
        if regs is not None:
            em.set(op.result, Val(x.dtype, layout, regs))
            return

    def index_of(coords):
        return linear_index(em, src_shape, [0 if n == 1 else c for c, n in zip(coords, src_shape)])
    em.set(op.result, gather(em, x, layout, index_of))




def recompute(em: KernelEmitter, v, layout, src_coords, budget: int = _RECOMPUTE_BUDGET) -> list | None:
    """The registers, per slot of `layout`, of tile `v` at `src_coords(coords of the slot)`,
    recomputed from `arange`s, splats and elementwise ops; None if `v` is made otherwise
    (a load, a reduction, ...) or by more than `budget` ops."""
    if _cost(v, budget) < 0:
        return None
    memo: dict = {}
    regs = []
    for s in range(layout.num_slots):
        if isinstance(layout, Sliced) and layout.rep_slot(s) != s:
            regs.append(regs[layout.rep_slot(s)])
            continue
        if layout.slot_never_valid(s):
            regs.append(regs[-1] if regs else None)
            continue
        regs.append(_at(em, v, tuple(src_coords(layout_coords(em, layout, s))), memo))
    if regs and regs[0] is None:
        fill = next(r for r in regs if r is not None)
        regs = [fill if r is None else r for r in regs]
    return regs


def _cost(v, budget: int) -> int:
    """`budget` minus the ops that make `v` (negative: not recomputable or too many)."""
    op = v.owner
    if isinstance(op, (T.SplatOp, arith.ConstantOp, T.ArangeOp)):
        return budget - 1
    if isinstance(op, (T.BroadcastOp, T.ReshapeOp)):
        if isinstance(op, T.ReshapeOp) and not _squeeze_only(op):
            return -1
        return _cost(op.source, budget - 1)
    if isinstance(op, _ELEMENTWISE):
        budget -= 1
        for o in op.operands:
            budget = _cost(o, budget)
            if budget < 0:
                return budget
        return budget
    return -1


def _squeeze_only(op: T.ReshapeOp) -> bool:
    """The reshape only inserts or removes size-1 dims."""
    a = [n for n in op.source.type.get_shape() if n != 1]
    b = [n for n in op.result.type.get_shape() if n != 1]
    return a == b


def _at(em: KernelEmitter, v, coords: tuple, memo: dict) -> str:
    """Register holding tile `v`'s element at `coords` (u32 regs or ints)."""
    key = (v, coords)
    if key in memo:
        return memo[key]
    op = v.owner
    if isinstance(op, (T.SplatOp, arith.ConstantOp)):
        r = em.get_any(v).regs[0]
    elif isinstance(op, T.ArangeOp):
        idx = em.add_u32(coords[0], op.start.value.data & 0xFFFFFFFF)
        r = constant_reg(em, dt.int32, idx) if isinstance(idx, int) else em.as_reg(idx)
    elif isinstance(op, T.BroadcastOp):
        shape = op.source.type.get_shape()
        r = _at(em, op.source, tuple(0 if n == 1 else c for c, n in zip(coords, shape)), memo)
    elif isinstance(op, T.ReshapeOp):
        inner = [c for c, n in zip(coords, op.result.type.get_shape()) if n != 1]
        it = iter(inner)
        r = _at(em, op.source, tuple(0 if n == 1 else next(it) for n in op.source.type.get_shape()), memo)
    else:
        from . import lower_elementwise as E

        args = [_at(em, o, coords, memo) for o in op.operands]
        d = dtype_of(op.operands[-1].type)
        if isinstance(op, T.CmpOp):
            r = E.compare(em, op.predicate.data, d, *args)
        elif isinstance(op, T.SelectOp):
            r = E.select(em, d, *args)
        elif isinstance(op, T.CastOp):
            from . import numerics as N

            r = N.cast(em, d, dtype_of(op.result.type), args[0])
        elif len(args) == 2:
            r = E.binary(em, op.name.split(".")[1], d, *args)
        else:
            r = E.unary(em, op.name.split(".")[1], d, args[0])
    memo[key] = r
    return r


@lowers(T.PermuteOp)
def lower_permute(em: KernelEmitter, op: T.PermuteOp) -> None:
    x = em.get(op.source)
    perm = T._get_ints(op.perm)
    src_shape = x.layout.shape
    layout = em.layout_of(op.result.type)

    def index_of(coords):
        src = [0] * len(perm)
        for i, p in enumerate(perm):
            src[p] = coords[i]
        return linear_index(em, src_shape, src)
    em.set(op.result, gather(em, x, layout, index_of))


@lowers(T.ArangeOp)
def lower_arange(em: KernelEmitter, op: T.ArangeOp) -> None:
    start = op.start.value.data
    layout = em.layout_of(op.result.type)
    regs = []
    for s in range(layout.num_slots):
        v = em.add_u32(em.element_index(layout, s), start & 0xFFFFFFFF)
        regs.append(constant_reg(em, dt.int32, v) if isinstance(v, int) else v)
    em.set(op.result, Val(dt.int32, layout, regs))


@lowers(T.ExtractOp)
def lower_extract(em: KernelEmitter, op: T.ExtractOp) -> None:
    x = em.get_any(op.source)
    if x.uniform:
        em.set(op.result, Val(x.dtype, None, [x.regs[0]]))
        return
    if isinstance(x.layout, Sliced) and x.layout.numel == 1 and x.layout.slot_always_valid(0):
        em.set(op.result, Val(x.dtype, None, [x.regs[0]]))   # a full reduction: every thread has it
        return
    x = em.get(op.source)
    from .exchange import elem_size

    em.reserve_smem(elem_size(x.dtype))
    em.bar()
    store_tile(em, x, 0)
    em.bar()
    em.set(op.result, Val(x.dtype, None, [load_element(em, x.dtype, 0, 0)]))
