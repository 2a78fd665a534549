"""tile-select-mma: record on every `tile.matmul` the MMA instruction it will run on a target.

Annotation only: each matmul gets `mma = "<instruction>"`, chosen from the target, the
operand dtypes and the tile shape.  Later passes and the PTX emitter read it
(`tile-promote-smem` feeds wgmma matmuls from shared memory; `lower_matmul.select_mma`
follows the record).  On sm_90a an f16/bf16 2-D matmul with M % 64 == 0, N % 8 == 0,
N <= 256 and K % 16 == 0 records `wgmma.m64nNk16.f32.T.T` (one warpgroup per 64 rows);
other f16/bf16 tiles that fit `mma.sync.m16n8k16` record that; the rest run as CUDA-core
FMAs.  A dtype no instruction takes (fp4 here) is an error naming the target and dtypes.
`TILEC_PTX_MMA=0` records FMAs only, `TILEC_PTX_WGMMA=0` never picks wgmma.

Input invariant:
  - canonicalised tile IR (an accumulator is already the matmul's `acc` operand).
Output IR:
  - every `tile.matmul` carries a string attribute `mma`; nothing else changes.

Before:
  %d = tile.matmul %a, %b, %acc : !tile.tile<128x64xf16>, !tile.tile<64x128xf16> -> !tile.tile<128x128xf32>
  %e = tile.matmul %x, %y : !tile.tile<32x32xf16>, !tile.tile<32x16xf16> -> !tile.tile<32x16xf32>
After (target=sm_90a):
  %d = tile.matmul %a, %b, %acc {mma = "wgmma.m64n128k16.f32.f16.f16"} : ...
  %e = tile.matmul %x, %y {mma = "mma.sync.m16n8k16.row.col.f32.f16.f16.f32"} : ...
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, PatternRewriteWalker, RewritePattern, op_type_rewrite_pattern

from tilec import dtypes as dt
from tilec.dialects.tile import MatmulOp

from .ir_queries import source_loc

TARGETS = ("sm_80", "sm_90a", "sm_100a")
_MMA_TYPES = {dt.float16: "f16", dt.bfloat16: "bf16"}
_FP8 = (dt.float8_e4m3fn, dt.float8_e5m2)


def _wgmma(m: int, n: int, k: int, t: str) -> str | None:
    """Rule: sm_90a warpgroup MMA, one m64nNk16 per warpgroup and K16 step."""
    if m % 64 == 0 and n % 8 == 0 and n <= 256 and k % 16 == 0 and os.environ.get("TILEC_PTX_WGMMA", "1") != "0":
        return f"wgmma.m64n{n}k16.f32.{t}.{t}"
    return None


def register_instruction(op: MatmulOp) -> str | None:
    """The instruction of a matmul whose operands are in registers: mma.sync when the tile
    fits m16n8k16, else CUDA-core FMA; None when no instruction takes the dtype."""
    d = dt.from_ir(op.lhs.type.element_type)
    a, b = op.lhs.type.get_shape(), op.rhs.type.get_shape()
    if os.environ.get("TILEC_PTX_MMA", "1") != "0" and d in _MMA_TYPES and len(a) == 2 and len(b) == 2 \
            and a[0] % 16 == 0 and b[1] % 8 == 0 and a[1] % 16 == 0:
        t = _MMA_TYPES[d]
        return f"mma.sync.m16n8k16.row.col.f32.{t}.{t}.f32"
    if d.is_float and d.bits < 16 and d not in _FP8:
        return None
    if d.is_float:
        return "fma.rn.f64" if d.bits == 64 else "fma.rn.f32"
    return "mad.lo.s32"


def select_instruction(op: MatmulOp, target: str) -> str | None:
    """The instruction `tile.matmul` `op` runs on `target` (None: unsupported)."""
    d = dt.from_ir(op.lhs.type.element_type)
    a, b = op.lhs.type.get_shape(), op.rhs.type.get_shape()
    if target == "sm_90a" and d in _MMA_TYPES and len(a) == 2 and len(b) == 2 \
            and os.environ.get("TILEC_PTX_MMA", "1") != "0":
        w = _wgmma(a[0], b[1], a[1], _MMA_TYPES[d])
        if w is not None:
            return w
    return register_instruction(op)


def record(op: MatmulOp, instruction: str) -> None:
    op.attributes["mma"] = StringAttr(instruction)


def recorded(op: MatmulOp) -> str | None:
    """The instruction tile-select-mma recorded on `op`, if any."""
    attr = op.attributes.get("mma")
    return attr.data if isinstance(attr, StringAttr) else None


class SelectMma(RewritePattern):
    """IN: tile.matmul without `mma`  OUT: the same op with `mma = select_instruction(op, target)`;
    a dtype without any lowering raises a CompileError at the matmul's source line."""

    def __init__(self, target: str):
        self.target = target

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: MatmulOp, rewriter: PatternRewriter) -> None:
        if recorded(op) is not None:
            return
        instr = select_instruction(op, self.target)
        if instr is None:
            from tilec.errors import CompileError

            d = dt.from_ir(op.lhs.type.element_type)
            raise CompileError(f"matmul of {d.api_name} x {d.api_name} tiles has no MMA or FMA instruction on "
                               f"{self.target}", source_loc(op))
        record(op, instr)
        rewriter.notify_op_modified(op)


PATTERNS = (SelectMma,)


@dataclass(frozen=True)
class TileSelectMmaPass(ModulePass):
    """Annotate every tile.matmul with its MMA instruction for `target`."""

    name = "tile-select-mma"
    target: str = "sm_90a"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"tile-select-mma: unknown target {self.target!r}; expected one of {TARGETS}")
        PatternRewriteWalker(SelectMma(self.target), apply_recursively=False).rewrite_module(op)
