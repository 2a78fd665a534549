"""IR queries shared by the sm_90a matmul passes (tile-select-mma, tile-promote-smem,
tile-async-copy) and the tgpu lowering: use counts, constants, index-math ops, argument
alignment facts and source positions.  No rewriting here."""

from __future__ import annotations

from xdsl.dialects import arith, func
from xdsl.dialects.builtin import IntegerAttr
from xdsl.ir import BlockArgument, Operation, SSAValue

#: shared memory a CTA may use on sm_90 (the opt-in maximum, 227 KiB)
SMEM_LIMIT = 227 * 1024
#: kernel-argument attribute: base address and rows 16-byte aligned (`TensorSpec.div16`)
DIV16_ATTR = "tile.div16"
#: function attribute: the warps the kernel must run with (one warpgroup per 64 wgmma rows)
NUM_WARPS_ATTR = "tgpu.num_warps"


def nuses(v: SSAValue) -> int:
    return sum(1 for _ in v.uses)


def const_int(v: SSAValue) -> int | None:
    """The value of an integer `arith.constant`, else None."""
    o = v.owner
    if isinstance(o, arith.ConstantOp) and isinstance(o.value, IntegerAttr):
        return o.value.value.data
    return None


def is_scalar_pure(op: Operation) -> bool:
    """A side-effect-free op on scalars (index math), not a terminator."""
    from xdsl.traits import IsTerminator, is_side_effect_free

    from tilec.dialects.tile import TileType

    return is_side_effect_free(op) and not op.regions and not op.has_trait(IsTerminator) and \
        all(not isinstance(r.type, TileType) for r in op.results)


def is_div16(tensor: SSAValue) -> bool:
    """Whether `tensor` is a kernel argument marked `{tile.div16}` (usable by TMA)."""
    if not isinstance(tensor, BlockArgument):
        return False
    f = tensor.block.parent_op()
    if not isinstance(f, func.FuncOp) or f.arg_attrs is None:
        return False
    return DIV16_ATTR in f.arg_attrs.data[tensor.index].data


def func_of(op: Operation) -> func.FuncOp | None:
    while op is not None and not isinstance(op, func.FuncOp):
        op = op.parent_op()
    return op


def source_loc(op):
    """The kernel-source position of `op` (or of the nearest enclosing op that has one)."""
    from tilec.errors import SourceLoc
    from tilec.passes.verify import file_location

    while op is not None:
        loc = file_location(op.location) if getattr(op, "location", None) is not None else None
        if loc is not None:
            return SourceLoc(loc.filename.data, loc.line.data, loc.column.data)
        op = op.parent_op()
    return None
