"""Vector global accesses (`ld.global.v4` / `st.global.v4`) for `tile.load` / `tile.store`.

A thread's slots come in chunks of `vec` consecutive elements of the tile (layout.py).
Along the tensor's innermost dim a chunk is `vec` consecutive addresses, so it moves with
one vector instruction (or a few narrower ones) when its address is aligned:

* the tensor argument has `div16` (`TensorSpec.div16`, set by the launch path: base
  address and, for rank >= 2, row pitch multiples of 16 bytes), and
* the offset along the innermost dim is a multiple of the width (`divisibility`: a
  constant, `tile_idx * BN`, sums and products of those, a loop counter of such steps).

`width` gives the elements per instruction (1: scalar accesses).  Bounds come from one
CTA-uniform test per access, `full_tile`: offset + tile size <= dim along every dim.
A full tile takes the fast path (`chunk_addresses`: one address per thread, the chunks
at immediate or one-`mad` offsets from it, no predicates); the ragged edge takes the
predicated path (`lower_memory.py`):

    @!%p_full bra $L_slow            // uniform: the whole CTA branches together
    ld.global.v4.f32 {...}, [%rd9];  ld.global.v4.f32 {...}, [%rd9+2048];  ...
    bra $L_done
  $L_slow:  (predicated vector accesses when a chunk is wholly in or out, else scalar)
  $L_done:
"""

from __future__ import annotations

from xdsl.dialects import arith, scf
from xdsl.ir import BlockArgument

from tilec import dtypes as dt
from tilec.dialects import tile as T

from .emitter import KernelEmitter, TensorInfo
from .layout import Blocked
from .ptx_types import mem_bytes

#: dtypes moved by vector instructions: (PTX type of one element in memory, register class)
VECTOR_TYPES = {dt.float32: "f32", dt.int32: "b32", dt.uint32: "b32", dt.float64: "f64", dt.int64: "b64",
                dt.float16: "b16", dt.bfloat16: "b16"}
_CAP = 1 << 16


def _lowbit(n: int) -> int:
    n = abs(int(n))
    return _CAP if n == 0 else min(_CAP, n & -n)


def constant_of(v) -> int | None:
    op = v.owner
    if isinstance(op, arith.ConstantOp) and hasattr(op.value, "value") and isinstance(op.value.value.data, int):
        return int(op.value.value.data)
    return None


def divisibility(v, depth: int = 0) -> int:
    """The largest power of two (up to 2^16) known to divide the i32 scalar `v`."""
    c = constant_of(v)
    if c is not None:
        return _lowbit(c)
    if depth > 12:
        return 1
    op = v.owner
    if isinstance(v, BlockArgument):
        parent = v.owner.parent_op() if v.owner is not None else None
        if isinstance(parent, scf.ForOp) and v.index == 0:
            return min(divisibility(parent.lb, depth + 1), divisibility(parent.step, depth + 1))
        return 1
    name = getattr(op, "name", "")
    if name == "tile.mul":
        return min(_CAP, divisibility(op.lhs, depth + 1) * divisibility(op.rhs, depth + 1))
    if name in ("tile.add", "tile.sub", "tile.minimum", "tile.maximum"):
        return min(divisibility(op.lhs, depth + 1), divisibility(op.rhs, depth + 1))
    if name == "tile.shl":
        c = constant_of(op.rhs)
        if c is not None and 0 <= c < 17:
            return min(_CAP, divisibility(op.lhs, depth + 1) << c)
    return 1


def width(em: KernelEmitter, tensor, offsets: list, layout: Blocked, d: dt.DType) -> int:
    """Elements per vector instruction for the chunks of `layout` (1: scalar accesses)."""
    if d not in VECTOR_TYPES or layout.vec == 1 or layout.shape[-1] % layout.vec:
        return 1
    idx = getattr(tensor, "index", None)
    if not isinstance(tensor, BlockArgument) or idx is None or idx >= len(em.div16) or not em.div16[idx]:
        return 1
    w = min(layout.vec, 16 // mem_bytes(d), divisibility(offsets[-1]))   # rows are 16-byte aligned
    return w if w >= 2 else 1


def chunks_whole(em: KernelEmitter, tensor, offsets: list, layout: Blocked, d: dt.DType) -> bool:
    """Every chunk of `layout` is wholly inside or wholly outside the tensor: rank >= 2 (so
    `div16` makes the innermost dim a multiple of 16 / element size) with that multiple
    and the innermost offset multiples of `vec`."""
    dims = em.tensors[tensor].dims
    if len(dims) < 2:
        return False
    step = _lowbit(dims[-1]) if isinstance(dims[-1], int) else 16 // mem_bytes(d)
    return min(step, divisibility(offsets[-1])) >= layout.vec


_SAME_SHAPE = (T.CastOp, T.CmpOp, T.SelectOp, *T.BINARY_OP_CLASSES.values(), *T.UNARY_OP_CLASSES.values())


def wide_ok(em: KernelEmitter, op: T.LoadOp, layout: Blocked, d: dt.DType) -> bool:
    """Whether `op`'s 16-bit tile may take the `wide` layout (8-element chunks, one 16-byte
    access each): rows 16-byte aligned with an innermost offset that is a multiple of 8,
    at least 8 elements per thread, and every op its values reach is layout-agnostic --
    elementwise ops of the tile's shape whose other operands derive from the same load or
    are splats, reductions, broadcasts of those back to the tile's shape, stores -- so
    nothing converts the tile back to the canonical layout."""
    if d not in (dt.float16, dt.bfloat16) or layout.numel % (8 * layout.num_threads) or layout.shape[-1] % 8:
        return False
    if width(em, op.tensor, list(op.offsets), Blocked(layout.shape, layout.num_threads, True), d) < 8:
        return False
    shape = tuple(layout.shape)
    derived, work, users = {op.result}, [op.result], []
    while work:
        for use in work.pop().uses:
            user = use.operation
            if isinstance(user, T.StoreOp):
                continue
            ok = isinstance(user, (*_SAME_SHAPE, T.ReduceOp)) or \
                (isinstance(user, T.BroadcastOp) and tuple(user.result.type.get_shape()) == shape)
            if not ok or len(user.results) != 1:
                return False
            res = user.results[0]
            if isinstance(user, _SAME_SHAPE) and tuple(res.type.get_shape()) != shape:
                return False
            if res not in derived:
                derived.add(res)
                work.append(res)
                users.append(user)
    for user in users:
        for o in user.operands:
            if o not in derived and not isinstance(o.owner, (T.SplatOp, arith.ConstantOp)):
                return False
    return True


def full_tile(em: KernelEmitter, info: TensorInfo, offsets: list, off_regs: list, shape) -> str | bool:
    """True if the tile is statically inside the tensor, False if statically not, else a
    predicate register (CTA-uniform) 'offset + size <= dim along every dim'."""
    pred: str | None = None
    for v, off, n, dim in zip(offsets, off_regs, shape, info.dims):
        c = constant_of(v)
        if c is not None and isinstance(dim, int):
            if not 0 <= c <= dim - n:
                return False
            continue
        def make(off=off, n=n, dim=dim):
            a, lim, p = em.new("rd"), em.new("rd"), em.new("p")
            em.ins(f"cvt.u64.u32 {a}, {em.as_reg(off)}")
            em.ins(f"add.u64 {a}, {a}, {n}")
            em.ins(f"cvt.u64.u32 {lim}, {em.as_reg(dim)}")
            em.ins(f"setp.le.u64 {p}, {a}, {lim}")
            return p
        p = em.memo(("fits", off, n, dim), make)
        if pred is None:
            pred = p
        else:
            q = em.new("p")
            em.ins(f"and.pred {q}, {pred}, {p}")
            pred = q
    return True if pred is None else pred


def chunk_addresses(em: KernelEmitter, info: TensorInfo, off_regs: list, layout: Blocked):
    """{first slot of each chunk: (u64 address register, byte immediate)} for a tile wholly
    inside the tensor, or None when the chunk offsets are not static (then the caller
    addresses each chunk from its coordinates)."""
    from .lower_memory import element_access

    shape = layout.shape
    keep = [d for d, n in enumerate(shape) if n != 1]
    sq = Blocked(tuple(shape[d] for d in keep), layout.num_threads, layout.wide)
    if not keep or sq.vec != layout.vec:
        return None
    j = min(sq.split_dim(), len(keep))
    if j > 1:
        return None
    P = 1
    for n in sq.shape[j:]:
        P *= n
    e0 = em.mul_u32(em.tid, layout.vec)
    base = [0] * len(shape)
    if j == 1:
        base[keep[0]] = em.div_u32(e0, P)
    inner = em.rem_u32(e0, P) if j == 1 else e0
    for i in range(len(keep) - 1, j - 1, -1):
        d = keep[i]
        n = sq.shape[i]
        base[d] = em.rem_u32(inner, n) if i > j else inner
        inner = em.div_u32(inner, n)
    addr0, _ = element_access(em, info, off_regs, base, False)
    esz = mem_bytes(info.dtype)
    out = {}
    scaled: dict = {}
    for k in range(layout.chunks_per_thread):
        s = k * layout.vec
        if layout.slot_never_valid(s):
            continue
        c = layout.slot_const(s)
        delta = [0] * len(shape)
        if j == 1:
            delta[keep[0]] = c // P
        rest = c % P if j == 1 else c
        for i in range(len(keep) - 1, j - 1, -1):
            rest, delta[keep[i]] = divmod(rest, sq.shape[i]) if i > j else (0, rest)
        imm, reg = 0, addr0
        for d, dd in enumerate(delta):
            if not dd:
                continue
            st = info.strides[d]
            if isinstance(st, int):
                imm += dd * st * esz
            else:
                key = (st, dd * esz, reg)
                if key not in scaled:
                    r = em.new("rd")
                    em.ins(f"mad.lo.u64 {r}, {st}, {dd * esz}, {reg}")
                    scaled[key] = r
                reg = scaled[key]
        out[s] = (reg, imm)
    return out
