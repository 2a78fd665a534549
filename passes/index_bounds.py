"""Scalar bounds of index tiles, to prove a mask all-true at run time.

A mask such as `(start + arange(BN))[None, :] < seq` or `cols <= rows` is built from
`arange`s, splats of scalars, broadcasts, reshapes, `add` / `sub` and comparisons.  For
each i32 index tile of that form `bounds` emits scalar ops computing its smallest and
largest element; `all_true` then emits the i1 scalar "every element of the mask holds"
(`a < b` for all elements iff max(a) < min(b); `and` of two masks iff both).  Flash
attention uses it to skip its masks on the key tiles that need none (`tgpu.mask`).
"""

from __future__ import annotations

from xdsl.dialects import arith
from xdsl.dialects.builtin import IntegerAttr, i32
from xdsl.ir import Operation, SSAValue

from tilec import dtypes as dt
from tilec.dialects import tile as T

_ADD, _SUB, _AND = (T.BINARY_OP_CLASSES[k] for k in ("add", "sub", "and"))


class _Builder:
    """Collects the scalar ops it creates (to insert before the mask's user)."""

    def __init__(self):
        self.ops: list[Operation] = []

    def emit(self, op: Operation) -> SSAValue:
        self.ops.append(op)
        return op.results[0]

    def const(self, v: int) -> SSAValue:
        return self.emit(arith.ConstantOp(IntegerAttr(v, i32)))


def bounds(v: SSAValue, b: _Builder) -> tuple[SSAValue, SSAValue] | None:
    """(min, max) of the i32 index tile `v` as scalars, or None if `v` is not index math."""
    o = v.owner
    if not isinstance(getattr(v, "type", None), T.TileType) or dt.from_ir(v.type.element_type) is not dt.int32:
        return None
    if isinstance(o, T.ArangeOp):
        s, n = o.start.value.data, o.result.type.get_shape()[0]
        return b.const(s), b.const(s + n - 1)
    if isinstance(o, T.SplatOp):
        return o.scalar, o.scalar
    if isinstance(o, (T.BroadcastOp, T.ReshapeOp)):
        return bounds(o.source, b)
    if isinstance(o, (_ADD, _SUB)):
        x, y = bounds(o.lhs, b), bounds(o.rhs, b)
        if x is None or y is None:
            return None
        if isinstance(o, _ADD):
            return b.emit(_ADD(x[0], y[0])), b.emit(_ADD(x[1], y[1]))
        return b.emit(_SUB(x[0], y[1])), b.emit(_SUB(x[1], y[0]))
    return None


def all_true(v: SSAValue, b: _Builder) -> SSAValue | None:
    """An i1 scalar that holds iff every element of the i1 tile `v` is true (None: unknown)."""
    o = v.owner
    if isinstance(o, (T.BroadcastOp, T.ReshapeOp)):
        return all_true(o.source, b)
    if isinstance(o, T.SplatOp):
        return o.scalar
    if isinstance(o, _AND):
        x, y = all_true(o.lhs, b), all_true(o.rhs, b)
        return None if x is None or y is None else b.emit(_AND(x, y))
    if isinstance(o, T.CmpOp) and o.predicate.data in ("lt", "le", "gt", "ge"):
        x, y = bounds(o.lhs, b), bounds(o.rhs, b)
        if x is None or y is None:
            return None
        p = o.predicate.data
        # lt / le: the largest lhs against the smallest rhs; gt / ge: the other way round
        return b.emit(T.CmpOp(p, x[1], y[0]) if p in ("lt", "le") else T.CmpOp(p, x[0], y[1]))
    return None


def prove_all_true(v: SSAValue) -> tuple[list[Operation], SSAValue] | None:
    """(ops to insert, i1 scalar) proving the mask `v` all-true, or None."""
    b = _Builder()
    r = all_true(v, b)
    return None if r is None else (b.ops, r)
