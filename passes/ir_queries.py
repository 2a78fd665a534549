"""IR queries shared by the matmul passes (tile-select-mma, tile-promote-smem,
tile-async-copy, tile-pipeline-cp-async) and the tgpu lowering: use counts, constants,
index-math ops, the canonical K loop, argument alignment facts and source positions.
No rewriting here."""

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


def match_matmul_k_loop(loop, instruction: str, operand_load):
    """`(matmul, a, b)` of the canonical K loop in `loop`, or None.

    Canonical: step 1, one iter_arg that only the body's single `tile.matmul` accumulates
    (its result is the only thing yielded), that matmul's recorded instruction (tile-select-mma)
    starts with `instruction`, its operands are `operand_load(value, body)` (not None) of one
    f16 / bf16 element type, and every other op of the body is pure scalar index math:

        scf.for %k = %lb to %ub step %c1 iter_args(%acc = %init) {
          %a = tile.load %A[...]  ;  %b = tile.load %B[...]
          %d = tile.matmul %a, %b, %acc {mma = "<instruction>..."}  ;  scf.yield %d
        }
    """
    from xdsl.dialects import scf
    from xdsl.dialects.builtin import StringAttr

    from tilec import dtypes as dt
    from tilec.dialects.tile import MatmulOp

    body = loop.body.block
    if len(loop.iter_args) != 1 or const_int(loop.step) != 1:
        return None
    mms = [o for o in body.ops if isinstance(o, MatmulOp)]
    rec = mms[0].attributes.get("mma") if len(mms) == 1 else None
    if not isinstance(rec, StringAttr) or not rec.data.startswith(instruction):
        return None
    mm, acc_arg, yld = mms[0], body.args[1], body.last_op
    if mm.acc is not acc_arg or nuses(acc_arg) != 1 or not isinstance(yld, scf.YieldOp) \
            or yld.operands[0] is not mm.result or nuses(mm.result) != 1:
        return None
    a, b = operand_load(mm.lhs, body), operand_load(mm.rhs, body)
    if a is None or b is None or a.tensor.type.element_type != b.tensor.type.element_type:
        return None
    if dt.from_ir(a.tensor.type.element_type) not in (dt.float16, dt.bfloat16):
        return None
    if any(o not in (a, b, mm, yld) and not is_scalar_pure(o) for o in body.ops):
        return None
    return mm, a, b


def multiple_of(v: SSAValue, m: int) -> bool:
    """Whether the i32 index `v` is provably a multiple of `m` (constants, products, sums)."""
    c = const_int(v)
    if c is not None:
        return c % m == 0
    o = v.owner
    name = getattr(o, "name", "")
    if name in ("tile.mul", "arith.muli"):
        return multiple_of(o.operands[0], m) or multiple_of(o.operands[1], m)
    if name in ("tile.add", "tile.sub", "arith.addi", "arith.subi"):
        return multiple_of(o.operands[0], m) and multiple_of(o.operands[1], m)
    return False


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
