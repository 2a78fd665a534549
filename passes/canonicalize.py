"""tile-canonicalize: fold tile-level algebra, drop no-op shape ops, then DCE and CSE.

Runs the patterns below to a fixpoint with xDSL's greedy driver (which also erases
dead pure ops), then region DCE and xDSL's CSE, so `tile.splat %x` written twice
becomes one op.  Every rewrite keeps each value exactly (NaN payloads aside) except
the matmul-accumulate fusion, which adds `acc` inside the MMA, before the products,
as the hardware's accumulating MMA does.

Input invariant:
  - any verified tile IR (`func`, `scf`, `arith`, `math`, `tile`).
Output IR:
  - no `tile.add` of a single-use, same-block, accumulator-free `tile.matmul` / `tile.scaled_matmul`;
  - no `tile.broadcast` / `tile.reshape` / `tile.cast` whose result type is its source's;
  - no scalar `tile.add/sub/mul/floordiv/rem/div` of two `arith.constant`s, and no
    scalar `x + 0`, `x - 0`, `x * 1`; no dead pure op, no duplicate pure op.

Before:
  %p = tile.matmul %a, %b : !tile.tile<64x32xf16>, !tile.tile<32x64xf16> -> !tile.tile<64x64xf32>
  %s = tile.add %acc, %p : !tile.tile<64x64xf32>
  %c2 = arith.constant 2 : i32
  %c3 = arith.constant 3 : i32
  %n = tile.mul %c2, %c3 : i32
  %m = tile.add %k, %c0 : i32
After:
  %s = tile.matmul %a, %b, %acc : !tile.tile<64x32xf16>, !tile.tile<32x64xf16> -> !tile.tile<64x64xf32>
  %n = arith.constant 6 : i32
  (uses of %m now use %k)
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith
from xdsl.dialects.builtin import Float16Type, Float32Type, Float64Type, FloatAttr, IntegerAttr, IntegerType, ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import GreedyRewritePatternApplier, PatternRewriter, PatternRewriteWalker, RewritePattern
from xdsl.transforms.common_subexpression_elimination import cse
from xdsl.transforms.dead_code_elimination import region_dce

from tilec.dialects.tile import (BINARY_OP_CLASSES, BroadcastOp, CastOp, MatmulOp, ReshapeOp, ScaledMatmulOp,
                                 TileType)

AddOp, SubOp, MulOp = BINARY_OP_CLASSES["add"], BINARY_OP_CLASSES["sub"], BINARY_OP_CLASSES["mul"]
_FLOAT_FORMATS = {Float16Type: "e", Float32Type: "f", Float64Type: "d"}  # struct codes
_INT_FOLDS = {"tile.add": int.__add__, "tile.sub": int.__sub__, "tile.mul": int.__mul__,
              "tile.floordiv": int.__floordiv__, "tile.rem": int.__mod__}  # Python semantics
_FLOAT_FOLDS = {"tile.add": float.__add__, "tile.sub": float.__sub__, "tile.mul": float.__mul__,
                "tile.div": float.__truediv__}


def _constant(v: SSAValue) -> int | float | None:
    """The value of `v` if an `arith.constant` scalar defines it."""
    op = v.owner
    if isinstance(op, arith.ConstantOp) and isinstance(op.value, (IntegerAttr, FloatAttr)):
        return op.value.value.data
    return None


def _round_float(x: float, fmt: str) -> float:
    """`x` rounded to nearest-even in the float format `fmt`, overflowing to +-inf."""
    try:
        return struct.unpack(fmt, struct.pack(fmt, x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


class FuseAddIntoMatmul(RewritePattern):
    """`tile.add %acc, tile.matmul(%a, %b)` (either order) -> `tile.matmul %a, %b, %acc`,
    and the same for `tile.scaled_matmul`.

    Only when the matmul has no `acc` yet, this add is its single use (the product is
    never needed on its own) and both sit in one block (fusing a loop-invariant
    matmul into an add inside the loop would redo the matmul every iteration).
    Keeps the matmul's location (the `a @ b`).
    """

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, AddOp):
            return
        for prod, acc in ((op.rhs, op.lhs), (op.lhs, op.rhs)):
            mm = prod.owner
            if (isinstance(mm, (MatmulOp, ScaledMatmulOp)) and mm.acc is None and prod.has_one_use()
                    and mm.parent is op.parent):
                if isinstance(mm, ScaledMatmulOp):
                    fused = ScaledMatmulOp(mm.lhs, mm.lhs_scale, mm.rhs, mm.rhs_scale, mm.block.value.data,
                                           mm.result.type, acc=acc)
                else:
                    fused = MatmulOp(mm.lhs, mm.rhs, mm.result.type, acc=acc)
                fused.location = mm.location
                rewriter.replace(op, fused)
                rewriter.erase(mm)
                return


class FoldSameTypeShapeOp(RewritePattern):
    """`tile.broadcast` / `tile.reshape` / `tile.cast` whose result type equals its
    source type is the source.

    Chained casts are never merged: whether `cast(cast(x))` is `x` depends on the
    dtype pair.  f32 -> f16 -> f32 drops bits, float -> int -> float truncates, and
    narrowing into fp8/fp4 saturates (f8E5M2 +inf -> f32 -> f8E5M2 gives 57344).
    f16 -> f32 -> f16 is kept as well, although it returns every f16 number unchanged
    (only a NaN payload may differ): one rule, "same type folds", instead of a table
    of exact pairs.  Nor is `tile.permute` folded by type: a 64x64 transpose keeps it.
    """

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if isinstance(op, (BroadcastOp, ReshapeOp, CastOp)) and op.source.type == op.result.type:
            rewriter.replace(op, [], [op.source])


class FoldScalarConstants(RewritePattern):
    """Scalar `tile.add/sub/mul/floordiv/rem` of two integer constants, or
    `tile.add/sub/mul/div` of two float constants -> one `arith.constant`.

    Integers wrap to the type's width (floordiv/rem round as Python does); floats are
    rounded once to the result type.  Division by zero and a `floordiv` that
    overflows (INT_MIN // -1) stay as they are, for the target to decide.
    """

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if op.name not in _INT_FOLDS and op.name not in _FLOAT_FOLDS:
            return
        a, b, t = _constant(op.lhs), _constant(op.rhs), op.result.type
        if a is None or b is None:
            return
        if isinstance(t, IntegerType) and t.width.data > 1 and op.name in _INT_FOLDS:
            if b == 0 and op.name in ("tile.floordiv", "tile.rem"):
                return
            value = _INT_FOLDS[op.name](a, b)
            if op.name == "tile.floordiv" and value >= 2 ** (t.width.data - 1):  # signless = signed
                return
            attr = IntegerAttr(value, t, truncate_bits=True)
        elif (fmt := _FLOAT_FORMATS.get(type(t))) and op.name in _FLOAT_FOLDS:
            a, b = _round_float(a, fmt), _round_float(b, fmt)  # the parser keeps literals as f64
            if b == 0.0 and op.name == "tile.div":
                return
            attr = FloatAttr(_round_float(_FLOAT_FOLDS[op.name](a, b), fmt), t)
        else:
            return
        const = arith.ConstantOp(attr, t)
        const.location = op.location
        rewriter.replace(op, const)


class FoldScalarIdentity(RewritePattern):
    """Scalar `x + 0`, `0 + x`, `x - 0`, `x * 1`, `1 * x` -> `x`.

    For floats the additive identity is -0.0 (`-0.0 + +0.0` is +0.0), so `x + 0.0`
    stays and `x + -0.0` folds; `x - 0.0` and `x * 1.0` are exact for every x.
    """

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, (AddOp, SubOp, MulOp)) or isinstance(op.result.type, TileType):
            return
        pairs = ((op.lhs, op.rhs),) if isinstance(op, SubOp) else ((op.lhs, op.rhs), (op.rhs, op.lhs))
        for x, c in pairs:
            if (v := _constant(c)) is None:
                continue
            if isinstance(op, MulOp):
                identity = v == 1
            elif not isinstance(v, float):
                identity = v == 0
            else:  # x + -0.0 and x - +0.0 are x; x + +0.0 is not (-0.0 + +0.0 = +0.0)
                negative = math.copysign(1.0, v) < 0
                identity = v == 0.0 and negative == isinstance(op, AddOp)
            if identity:
                rewriter.replace(op, [], [x])
                return


PATTERNS: tuple[RewritePattern, ...] = (
    FuseAddIntoMatmul(), FoldSameTypeShapeOp(), FoldScalarConstants(), FoldScalarIdentity(),
)


@dataclass(frozen=True)
class TileCanonicalizePass(ModulePass):
    name = "tile-canonicalize"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        walker = PatternRewriteWalker(GreedyRewritePatternApplier(list(PATTERNS)), post_walk_func=region_dce)
        walker.rewrite_module(op)
        cse(op)
