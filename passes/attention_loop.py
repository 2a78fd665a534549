"""Recognising the flash-attention loop for tile-attention-wgmma (queries only, no rewriting).

The loop: `S = matmul(q, permute(k))` with q loaded before the loop and k a [BN, D] tile of
K at the loop counter, then only ops that lower in registers on the wgmma accumulator layout
(elementwise, last-axis reductions, broadcasts, reshapes of vectors, index math), then
`acc = matmul(p, v, f(acc))` with v a [BN, D] tile of V; `acc` carried by the loop, the
other carried tiles (row max / sum) starting as splats.  Anything that would move data
through shared memory inside the loop (where the TMA ring lives) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import scf
from xdsl.ir import Block, BlockArgument, Operation, SSAValue

from tilec import dtypes as dt
from tilec.dialects import tile as T

from .ir_queries import const_int, is_div16, is_scalar_pure, nuses
from .select_mma import recorded

#: ops the loop body may hold besides the matched loads and matmuls: they lower in registers
#: on the wgmma accumulator layout (elementwise, row reductions, broadcasts of rows, masks).
REGISTER_OPS = (T.BroadcastOp, T.ReshapeOp, T.SplatOp, T.ArangeOp, T.ReduceOp, T.CmpOp, T.SelectOp, T.CastOp,
                 *T.BINARY_OP_CLASSES.values(), *T.UNARY_OP_CLASSES.values())


def _tile_load(v: SSAValue) -> tuple[T.LoadOp, list[Operation]] | None:
    """The `tile.load` of a 2-D tile behind `v` (through a reshape that drops leading 1s), and
    the ops to remove with it; each used once, zero padding, a TMA-able tensor."""
    chain: list[Operation] = []
    o = v.owner
    if isinstance(o, T.ReshapeOp) and nuses(o.result) == 1:
        chain.append(o)
        shape = o.source.type.get_shape()
        if any(n != 1 for n in shape[:-2]) or tuple(shape[-2:]) != tuple(o.result.type.get_shape()):
            return None
        o = o.source.owner
    if not isinstance(o, T.LoadOp) or nuses(o.result) != 1 or o.padding.value.data != 0.0 \
            or not is_div16(o.tensor) or not 2 <= o.tensor.type.rank <= 5 \
            or dt.from_ir(o.tensor.type.element_type) not in (dt.float16, dt.bfloat16):
        return None
    if o.result.type.get_shape()[:-2] != (1,) * (o.tensor.type.rank - 2) or (not chain and o.tensor.type.rank != 2):
        return None
    return o, [*chain, o]


def _index_math(v: SSAValue) -> bool:
    """`v` is a scalar, or a tile made of splats, `arange`s, broadcasts, reshapes and
    elementwise ops (the lowering recomputes it in any register layout)."""
    if not isinstance(v.type, T.TileType):
        return True
    o = v.owner
    if isinstance(o, (T.SplatOp, T.ArangeOp)):
        return True
    return isinstance(o, REGISTER_OPS) and not isinstance(o, T.ReduceOp) and all(_index_math(x) for x in o.operands)


def _in_registers(o: Operation, body: Block) -> bool:
    """Op `o` of the loop body lowers without shared memory (the ring buffers live at its
    offsets): scalar index math, elementwise ops, row reductions, reshapes of vectors, and
    tiles from outside the loop only if they are index math."""
    if is_scalar_pure(o):
        return True
    if not isinstance(o, REGISTER_OPS):
        return False
    if isinstance(o, T.ReduceOp) and o.axis.value.data != len(o.source.type.get_shape()) - 1:
        return False
    if isinstance(o, T.ReshapeOp) and sum(n != 1 for n in o.source.type.get_shape()) > 1:
        return False
    return all(_index_math(x) for x in o.operands
               if not (isinstance(x.owner, Operation) and x.owner.parent_block() is body)
               and not (isinstance(x, BlockArgument) and x.block is body))


def _offsets_of_counter(load: T.LoadOp, body: Block) -> bool:
    """The offsets of `load` are pure scalar math on the loop counter and values from outside
    the loop: the TMA producer recomputes them for iterations ahead (not from carried values)."""
    todo, seen = list(load.offsets), set()
    while todo:
        v = todo.pop()
        if isinstance(v, BlockArgument) and v.block is body:
            if v.index != 0:
                return False
            continue
        o = v.owner
        if isinstance(o, Operation) and o.parent_block() is body and o not in seen:
            if not is_scalar_pure(o):
                return False
            seen.add(o)
            todo.extend(o.operands)
    return True


@dataclass
class AttentionLoop:
    loop: scf.ForOp
    s_mm: T.MatmulOp
    o_mm: T.MatmulOp
    q: T.LoadOp
    k: T.LoadOp
    v: T.LoadOp
    acc_index: int
    removed: list      # body ops that disappear (k / v loads, reshapes, the permute, the matmuls)

    @property
    def shape(self) -> tuple[int, int, int]:
        (bm, d), (bn, _) = self.s_mm.lhs.type.get_shape(), self.k.result.type.get_shape()[-2:]
        return bm, bn, d


def match_attention_loop(loop: scf.ForOp) -> AttentionLoop | None:
    body = loop.body.block
    step = const_int(loop.step)
    mms = [o for o in body.ops if isinstance(o, T.MatmulOp)]
    if step is None or step <= 0 or len(mms) != 2 or not all((recorded(m) or "").startswith("wgmma") for m in mms):
        return None
    s_mm, o_mm = mms
    if s_mm.acc is not None or o_mm.acc is None or nuses(o_mm.result) != 1:
        return None
    yld = body.last_op
    if not isinstance(yld, scf.YieldOp) or o_mm.result not in yld.operands:
        return None
    acc_index = list(yld.operands).index(o_mm.result)
    if nuses(body.args[1 + acc_index]) < 1 or s_mm.result.type.get_shape()[0] not in (64, 128):
        return None
    q, perm = _tile_load(s_mm.lhs), s_mm.rhs.owner
    if q is None or q[0].parent_block() is not loop.parent_block():
        return None
    if not isinstance(perm, T.PermuteOp) or tuple(T._get_ints(perm.perm)) != (1, 0) or nuses(perm.result) != 1:
        return None
    k, v = _tile_load(perm.source), _tile_load(o_mm.rhs)
    if k is None or v is None or any(o.parent_block() is not body or not _offsets_of_counter(o, body)
                                     for o in (k[0], v[0])):
        return None
    elt = q[0].tensor.type.element_type
    if not (k[0].tensor.type.element_type == v[0].tensor.type.element_type == elt == o_mm.lhs.type.element_type):
        return None
    removed = [*k[1], *v[1], perm, s_mm, o_mm]
    if any(not _in_registers(o, body) for o in body.ops if o not in removed and o is not yld):
        return None
    if any(not isinstance(init.owner, T.SplatOp) for i, init in enumerate(loop.iter_args)
           if i != acc_index and isinstance(init.type, T.TileType)):
        return None     # other carried tiles (row max / sum) start as splats: they live in S's registers
    m = AttentionLoop(loop, s_mm, o_mm, q[0], k[0], v[0], acc_index, removed)
    bm, bn, d = m.shape
    if d % 64 or d > 256 or bn % 16 or bn > 256 or v[0].result.type.get_shape()[-2:] != (bn, d):
        return None
    return m
