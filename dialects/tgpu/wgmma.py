"""The sm_90a `tgpu` warpgroup-MMA ops: accumulator fragments (to / from tiles, stored
straight to global memory), `tgpu.wgmma` on two stage buffers, `tgpu.wgmma_reg_a` with A in
registers, and the fence / commit / wait protocol around them.  Lowered by
backends/ptx/lower_wgmma.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from xdsl.dialects.builtin import I64, IntegerAttr, UnitAttr, i32, i64
from xdsl.ir import SSAValue
from xdsl.irdl import (
    AnyAttr,
    IRDLOperation,
    ParsePropInAttrDict,
    VarConstraint,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.traits import MemoryReadEffect, MemoryWriteEffect, Pure
from xdsl.utils.exceptions import VerifyException

from tilec.dialects.tgpu.types import AccType, SmemType, _int
from tilec.dialects.tile import TensorType, TileType


#: wgmma operand types and the PTX spelling of each
WGMMA_TYPES = {"f16": "f16", "bf16": "bf16"}


# --------------------------------------------------------------------------- accumulators


@irdl_op_definition
class ToFragmentOp(IRDLOperation):
    """Move a tile into wgmma accumulator registers (free for a splat of a scalar).

    ```mlir
    %acc = tgpu.to_fragment %zero : !tile.tile<128x128xf32> -> !tgpu.acc<128x128xf32>
    ```
    """

    name = "tgpu.to_fragment"
    source = operand_def(TileType)
    result = result_def(AccType)
    traits = traits_def(Pure())
    assembly_format = "$source attr-dict `:` type($source) `->` type($result)"

    def __init__(self, source: SSAValue):
        t = source.type
        super().__init__(operands=[source], result_types=[AccType(t.get_shape(), t.element_type)])

    def verify_(self) -> None:
        _same_tile(self.source.type, self.result.type)


@irdl_op_definition
class FromFragmentOp(IRDLOperation):
    """An accumulator back as an ordinary tile (through shared memory).

    ```mlir
    %t = tgpu.from_fragment %acc : !tgpu.acc<128x128xf32> -> !tile.tile<128x128xf32>
    ```
    """

    name = "tgpu.from_fragment"
    source = operand_def(AccType)
    result = result_def(TileType)
    traits = traits_def(Pure())
    assembly_format = "$source attr-dict `:` type($source) `->` type($result)"

    def __init__(self, source: SSAValue):
        t = source.type
        super().__init__(operands=[source], result_types=[TileType(t.get_shape(), t.element_type)])

    def verify_(self) -> None:
        _same_tile(self.result.type, self.source.type)


def _same_tile(tile: TileType, acc: AccType) -> None:
    if tile.get_shape() != acc.get_shape() or tile.element_type != acc.element_type:
        raise VerifyException(f"tile {tile} and accumulator {acc} differ in shape or element type")


@irdl_op_definition
class StoreFragmentOp(IRDLOperation):
    """Write an accumulator tile at element offsets `[r, c]` of a 2-D tensor straight from the
    fragment registers, rounded to the tensor's dtype (f32, f16 or bf16); elements outside
    the tensor are not written.  A rank-3..5 tensor takes one offset per dim and receives the
    tile in its last two dims (a TMA store of a box with leading 1s: it must be `{tile.div16}`).

    ```mlir
    tgpu.store_fragment %C[%r, %c], %acc : !tile.tensor<?x?xf16>, !tgpu.acc<128x128xf32>
    ```
    """

    name = "tgpu.store_fragment"
    tensor = operand_def(TensorType)
    offsets = var_operand_def(i32)
    value = operand_def(AccType)
    traits = traits_def(MemoryWriteEffect())
    assembly_format = "$tensor `[` $offsets `]` `,` $value attr-dict `:` type($tensor) `,` type($value)"

    def __init__(self, tensor: SSAValue, offsets: Sequence[SSAValue], value: SSAValue):
        super().__init__(operands=[tensor, offsets, value])

    def verify_(self) -> None:
        from tilec import dtypes as dt

        rank = self.tensor.type.rank
        if not 2 <= rank <= 5 or len(self.offsets) != rank:
            raise VerifyException("store_fragment writes the last two dims of a rank-2..5 tensor, one offset per dim")

        if dt.from_ir(self.tensor.type.element_type) not in (dt.float32, dt.float16, dt.bfloat16):
            raise VerifyException(f"store_fragment writes f32, f16 or bf16 tensors, not "
                                  f"{self.tensor.type.element_type}")


# --------------------------------------------------------------------------- wgmma


@irdl_op_definition
class WgmmaFenceOp(IRDLOperation):
    """`wgmma.fence`: order earlier register and shared-memory accesses before the next wgmma.

    ```mlir
    tgpu.wgmma_fence
    ```
    """

    name = "tgpu.wgmma_fence"
    traits = traits_def(MemoryReadEffect(), MemoryWriteEffect())
    assembly_format = "attr-dict"

    def __init__(self):
        super().__init__()


@irdl_op_definition
class WgmmaCommitOp(IRDLOperation):
    """`wgmma.commit_group`: close the group of wgmmas issued since the last commit.

    ```mlir
    tgpu.wgmma_commit
    ```
    """

    name = "tgpu.wgmma_commit"
    traits = traits_def(MemoryReadEffect(), MemoryWriteEffect())
    assembly_format = "attr-dict"

    def __init__(self):
        super().__init__()


@irdl_op_definition
class WgmmaWaitOp(IRDLOperation):
    """`wgmma.wait_group`: wait until at most `pending` committed groups are still running
    (their accumulators and shared-memory reads are complete for the others).

    ```mlir
    tgpu.wgmma_wait {pending = 1 : i64}
    ```
    """

    name = "tgpu.wgmma_wait"
    pending = prop_def(IntegerAttr[I64], default_value=IntegerAttr(0, i64))
    traits = traits_def(MemoryReadEffect(), MemoryWriteEffect())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "attr-dict"

    def __init__(self, pending: int = 0):
        super().__init__(properties={"pending": _int(pending)})

    def verify_(self) -> None:
        if not 0 <= self.pending.value.data <= 7:
            raise VerifyException("pending must be in [0, 7]")


class SmemMmaOp(IRDLOperation):
    """Operands and syntax of the MMA ops that read both operands from stages of shared-memory
    buffers: `%a[%a_stage], %b[%b_stage], %acc -> result` of the accumulator's type
    (`tgpu.wgmma`, `tgpu.mma_sync`)."""

    ACC: ClassVar = VarConstraint("ACC", AnyAttr())
    a = operand_def(SmemType)
    a_stage = operand_def(i32)
    b = operand_def(SmemType)
    b_stage = operand_def(i32)
    acc = operand_def(ACC)
    result = result_def(ACC)
    traits = traits_def(MemoryReadEffect())
    assembly_format = ("$a `[` $a_stage `]` `,` $b `[` $b_stage `]` `,` $acc attr-dict `:` type($a) `,` type($b) "
                       "`,` type($acc)")


@irdl_op_definition
class WgmmaOp(SmemMmaOp):
    """`acc + a @ b` on the tensor cores, asynchronously: stage `a_stage` of `a` ([M, K],
    K contiguous: K-major) times stage `b_stage` of `b` ([K, N], N contiguous: MN-major,
    wgmma's transpose-b) into an accumulator tile.  Warpgroup w issues the K/16
    `wgmma.mma_async.m64nNk16` of rows 64w..64w+63, through shared-memory descriptors the
    lowering builds from the buffer types.  With `b_kmajor`, `b` holds the [N, K] tile
    (K contiguous: `a @ b.T`, e.g. S = Q K^T with K's rows as loaded).  The result is the updated accumulator; read it
    only after a `tgpu.wgmma_wait` that covers its commit group.

    ```mlir
    %d = tgpu.wgmma %a_s[%s], %b_s[%s], %acc : !tgpu.smem<128x64xf16, swizzle = 128, stages = 4>,
        !tgpu.smem<64x128xf16, swizzle = 128, stages = 4>, !tgpu.acc<128x128xf32>
    ```
    """

    name = "tgpu.wgmma"
    b_kmajor = opt_prop_def(UnitAttr)
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, a: SSAValue, a_stage: SSAValue, b: SSAValue, b_stage: SSAValue, acc: SSAValue,
                 b_kmajor: bool = False):
        super().__init__(operands=[a, a_stage, b, b_stage, acc], result_types=[acc.type],
                         properties={"b_kmajor": UnitAttr()} if b_kmajor else {})

    def instruction(self) -> str:
        """The PTX instruction each warpgroup issues, e.g. `wgmma.m64n128k16.f32.f16.f16`."""
        from tilec import dtypes as dt

        t = {dt.float16: "f16", dt.bfloat16: "bf16"}[dt.from_ir(self.a.type.element_type)]
        return f"wgmma.m64n{self.acc.type.get_shape()[1]}k16.f32.{t}.{t}"

    def verify_(self) -> None:
        from tilec import dtypes as dt

        a, b, acc = self.a.type, self.b.type, self.acc.type
        if not isinstance(acc, AccType):
            raise VerifyException(f"the accumulator must be a !tgpu.acc, got {acc}")
        (m, k), (k2, n) = a.get_shape(), b.get_shape()
        if self.b_kmajor is not None:
            n, k2 = k2, n
        if k != k2 or (m, n) != acc.get_shape():
            raise VerifyException(f"wgmma shapes a [{m}, {k}], b [{k2}, {n}], acc {list(acc.get_shape())} "
                                  f"do not agree")
        if a.element_type != b.element_type or dt.from_ir(a.element_type) not in (dt.float16, dt.bfloat16):
            raise VerifyException(f"wgmma operands are f16 or bf16 of one type, got {a.element_type} "
                                  f"and {b.element_type}")
        if dt.from_ir(acc.element_type) != dt.float32:
            raise VerifyException("the wgmma accumulator is f32")
        if k % 16:
            raise VerifyException(f"K = {k} must be a multiple of 16")
        if a.swizzle.data != 128 or b.swizzle.data != 128:
            raise VerifyException("wgmma operands here use the 128-byte swizzle")


@irdl_op_definition
class WgmmaRegAOp(IRDLOperation):
    """`acc + a @ b` with the A operand in registers: `a` is an f16 / bf16 [M, K] tile (in the
    lowering, the wgmma accumulator layout of an M x K product, whose f32 pairs are exactly
    the A register fragment once packed to f16x2: flash attention's P), `b` stage `b_stage`
    of a [K, N] buffer (N contiguous, MN-major) as in `tgpu.wgmma`.  Asynchronous like
    `tgpu.wgmma`: fence before, commit and wait after.

    ```mlir
    %o = tgpu.wgmma_reg_a %p, %v_s[%s], %acc : !tile.tile<128x64xf16>,
        !tgpu.smem<64x128xf16, swizzle = 128, stages = 2>, !tgpu.acc<128x128xf32>
    ```
    """

    name = "tgpu.wgmma_reg_a"
    ACC: ClassVar = VarConstraint("ACC", AnyAttr())
    a = operand_def(TileType)
    b = operand_def(SmemType)
    b_stage = operand_def(i32)
    acc = operand_def(ACC)
    result = result_def(ACC)
    traits = traits_def(MemoryReadEffect())
    assembly_format = "$a `,` $b `[` $b_stage `]` `,` $acc attr-dict `:` type($a) `,` type($b) `,` type($acc)"

    def __init__(self, a: SSAValue, b: SSAValue, b_stage: SSAValue, acc: SSAValue):
        super().__init__(operands=[a, b, b_stage, acc], result_types=[acc.type])

    def verify_(self) -> None:
        from tilec import dtypes as dt

        a, b, acc = self.a.type, self.b.type, self.acc.type
        if not isinstance(acc, AccType) or dt.from_ir(acc.element_type) != dt.float32:
            raise VerifyException(f"the accumulator must be an f32 !tgpu.acc, got {acc}")
        (m, k), (k2, n) = a.get_shape(), b.get_shape()
        if a.get_shape().__len__() != 2 or k != k2 or (m, n) != acc.get_shape() or k % 16:
            raise VerifyException(f"wgmma shapes a {list(a.get_shape())}, b [{k2}, {n}], acc "
                                  f"{list(acc.get_shape())} do not agree (K a multiple of 16)")
        if a.element_type != b.element_type or dt.from_ir(a.element_type) not in (dt.float16, dt.bfloat16):
            raise VerifyException(f"wgmma operands are f16 or bf16 of one type, got {a.element_type} "
                                  f"and {b.element_type}")
        if b.swizzle.data != 128:
            raise VerifyException("the wgmma B operand here uses the 128-byte swizzle")
