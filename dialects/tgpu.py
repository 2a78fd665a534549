"""The `tgpu` dialect: GPU-level tile ops for sm_90a: shared-memory stage buffers, TMA copies
completing on mbarriers, and warpgroup MMAs (`wgmma`) accumulating in registers.

The IR stays at tile granularity: a buffer holds whole tiles (one per pipeline stage), a
copy moves a whole tile, a `tgpu.wgmma` is the whole BMxBNxBK product of two stage buffers.
The PTX lowering (`backends/ptx/lower_tgpu.py`) splits tiles into TMA boxes, warpgroups and
K16 instructions.  The passes `tile-promote-smem` and `tile-async-copy` produce these ops
from the canonical K loop (`acc = matmul(load(A), load(B), acc)`); `tile-attention-wgmma`
from the flash-attention loop (S = q k^T on `tgpu.wgmma {b_kmajor}`, P v on
`tgpu.wgmma_reg_a` with P in registers, masks as `tgpu.mask`).

Types:

* `!tgpu.smem<128x64xf16, swizzle = 128, stages = 4>`: `stages` buffers of one row-major tile
  in shared memory.  With a swizzle (bytes: 32, 64, 128) a tile is stored as column panels of
  `swizzle` bytes (64 f16 columns for 128), each panel its rows one after another, and the
  16-byte chunks of row r XOR-ed with r % 8: what TMA writes and wgmma reads.
* `!tgpu.mbarrier<4>`: one mbarrier per stage.
* `!tgpu.acc<128x128xf32>`: an accumulator tile held in wgmma fragment registers (warpgroup w
  holds rows 64w..64w+63); only tgpu ops read or write it.

```mlir
%a_s = tgpu.alloc_smem : !tgpu.smem<128x64xf16, swizzle = 128, stages = 4>
%full = tgpu.mbarrier_init {arrivals = 1 : i64} : !tgpu.mbarrier<4>
tgpu.elect {
  tgpu.mbarrier_arrive_expect_tx %full[%s] {bytes = 16384 : i64} : !tgpu.mbarrier<4>
  tgpu.tma_load %A[%r, %c] -> %a_s[%s], %full : !tile.tensor<?x?xf16>, !tgpu.smem<128x64xf16, swizzle = 128, stages = 4>, !tgpu.mbarrier<4>
}
tgpu.mbarrier_wait %full[%s], %phase : !tgpu.mbarrier<4>
```
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from xdsl.dialects.builtin import I64, ArrayAttr, IntAttr, IntegerAttr, StringAttr, UnitAttr, i1, i32, i64
from xdsl.ir import Attribute, Dialect, ParametrizedAttribute, Region, SSAValue, TypeAttribute
from xdsl.irdl import (
    AnyAttr,
    IRDLOperation,
    ParsePropInAttrDict,
    VarConstraint,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    region_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.traits import MemoryReadEffect, MemoryWriteEffect, NoTerminator, Pure
from xdsl.utils.exceptions import VerifyException

from tilec.dialects.tile import TensorType, TileType

SWIZZLES = (0, 32, 64, 128)
#: wgmma operand types and the PTX spelling of each
WGMMA_TYPES = {"f16": "f16", "bf16": "bf16"}


# --------------------------------------------------------------------------- types


@irdl_attr_definition
class SmemType(ParametrizedAttribute, TypeAttribute):
    """`stages` shared-memory buffers of one row-major tile, `swizzle` bytes wide panels.

    `!tgpu.smem<64x128xf16, swizzle = 128, stages = 3>`
    """

    name = "tgpu.smem"
    shape: ArrayAttr[IntAttr]
    element_type: Attribute
    swizzle: IntAttr
    stages: IntAttr

    def __init__(self, shape: Sequence[int], element_type: Attribute, swizzle: int, stages: int = 1):
        super().__init__(ArrayAttr([IntAttr(d) for d in shape]), element_type, IntAttr(swizzle), IntAttr(stages))

    def get_shape(self) -> tuple[int, ...]:
        return tuple(d.data for d in self.shape.data)

    @property
    def elem_bytes(self) -> int:
        from tilec import dtypes as dt

        return dt.from_ir(self.element_type).bits // 8

    @property
    def panel_cols(self) -> int:
        """Columns per swizzle panel (the whole row when not swizzled)."""
        sw = self.swizzle.data
        return sw // self.elem_bytes if sw else self.get_shape()[-1]

    @property
    def panel_bytes(self) -> int:
        rows, _ = self.get_shape()
        return rows * self.panel_cols * self.elem_bytes

    @property
    def stage_bytes(self) -> int:
        rows, cols = self.get_shape()
        return rows * cols * self.elem_bytes

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            dims, elt = parser.parse_ranked_shape()
            vals = {}
            for key in ("swizzle", "stages"):
                parser.parse_punctuation(",")
                parser.parse_keyword(key)
                parser.parse_punctuation("=")
                vals[key] = parser.parse_integer()
        return (ArrayAttr([IntAttr(d) for d in dims]), elt, IntAttr(vals["swizzle"]), IntAttr(vals["stages"]))

    def print_parameters(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            for d in self.get_shape():
                printer.print_string(f"{d}x")
            printer.print_attribute(self.element_type)
            printer.print_string(f", swizzle = {self.swizzle.data}, stages = {self.stages.data}")

    def verify(self) -> None:
        shape = self.get_shape()
        if len(shape) != 2 or any(d <= 0 for d in shape):
            raise VerifyException(f"a shared-memory tile is 2-D with positive dims, got {list(shape)}")
        if self.swizzle.data not in SWIZZLES:
            raise VerifyException(f"swizzle must be one of {SWIZZLES} bytes, got {self.swizzle.data}")
        if self.stages.data < 1:
            raise VerifyException(f"a buffer needs at least one stage, got {self.stages.data}")
        sw = self.swizzle.data
        if sw:
            if (shape[1] * self.elem_bytes) % sw:
                raise VerifyException(f"a {sw}B-swizzled tile's rows ({shape[1]} elements) must be whole "
                                      f"{sw}-byte panels")
            if shape[0] % 8:
                raise VerifyException(f"a swizzled tile needs a multiple of 8 rows, got {shape[0]}")


@irdl_attr_definition
class MBarrierType(ParametrizedAttribute, TypeAttribute):
    """`count` mbarriers in shared memory, one per pipeline stage: `!tgpu.mbarrier<4>`."""

    name = "tgpu.mbarrier"
    count: IntAttr

    def __init__(self, count: int):
        super().__init__(IntAttr(count))

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            return (IntAttr(parser.parse_integer()),)

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(f"<{self.count.data}>")

    def verify(self) -> None:
        if self.count.data < 1:
            raise VerifyException("an mbarrier array holds at least one barrier")


@irdl_attr_definition
class AccType(ParametrizedAttribute, TypeAttribute):
    """An accumulator tile in wgmma fragment registers: `!tgpu.acc<128x256xf32>`.

    Warpgroup w holds rows 64w..64w+63; in it, warp q's lane l holds, in register 4i + j,
    row 16q + l/4 + 8(j/2) and column 8i + 2(l%4) + j%2 (PTX_FACTS section 3).
    """

    name = "tgpu.acc"
    shape: ArrayAttr[IntAttr]
    element_type: Attribute

    def __init__(self, shape: Sequence[int], element_type: Attribute):
        super().__init__(ArrayAttr([IntAttr(d) for d in shape]), element_type)

    def get_shape(self) -> tuple[int, ...]:
        return tuple(d.data for d in self.shape.data)

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            dims, elt = parser.parse_ranked_shape()
        return (ArrayAttr([IntAttr(d) for d in dims]), elt)

    def print_parameters(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            for d in self.get_shape():
                printer.print_string(f"{d}x")
            printer.print_attribute(self.element_type)

    def verify(self) -> None:
        shape = self.get_shape()
        if len(shape) != 2 or shape[0] % 64 or shape[1] % 8 or shape[1] > 256 or shape[1] <= 0:
            raise VerifyException(f"a wgmma accumulator is M x N with M % 64 == 0 and N a multiple of 8 "
                                  f"in [8, 256], got {list(shape)}")


def _int(v: int) -> IntegerAttr:
    return IntegerAttr(v, i64)


def _check_stage_count(buf: SmemType, bars: MBarrierType) -> None:
    if buf.stages.data != bars.count.data:
        raise VerifyException(f"the buffer has {buf.stages.data} stages but the barrier array "
                              f"{bars.count.data} barriers")


def _check_tile_access(tensor: TensorType, n_offsets: int, buf: SmemType) -> None:
    if not 2 <= tensor.rank <= 5 or n_offsets != tensor.rank:
        raise VerifyException(f"copies move 2-D tiles of rank-2..5 tensors (the last two dims; the "
                              f"others are offsets only): the tensor has rank {tensor.rank}, "
                              f"{n_offsets} offsets were given")
    if tensor.element_type != buf.element_type:
        raise VerifyException(f"the tensor holds {tensor.element_type}, the buffer {buf.element_type}")


# --------------------------------------------------------------------------- memory


@irdl_op_definition
class AllocSmemOp(IRDLOperation):
    """Shared memory for `stages` tiles, laid out as the type's swizzle says (1024-byte aligned).

    Lives until the end of the kernel; the lowering assigns its offset.

    ```mlir
    %b_s = tgpu.alloc_smem : !tgpu.smem<64x128xf16, swizzle = 128, stages = 4>
    ```
    """

    name = "tgpu.alloc_smem"
    result = result_def(SmemType)
    assembly_format = "attr-dict `:` type($result)"

    def __init__(self, t: SmemType):
        super().__init__(result_types=[t])


class _TileToStageOp(IRDLOperation):
    """Operands and syntax of the ops that copy a global tile into a stage of a buffer:
    `%tensor[%offsets] -> %buffer[%stage]` (`tgpu.copy`, `tgpu.cp_async`)."""

    tensor = operand_def(TensorType)
    offsets = var_operand_def(i32)
    buffer = operand_def(SmemType)
    stage = operand_def(i32)
    traits = traits_def(MemoryReadEffect(), MemoryWriteEffect())
    assembly_format = ("$tensor `[` $offsets `]` `->` $buffer `[` $stage `]` attr-dict `:` type($tensor) `,` "
                       "type($buffer)")

    def __init__(self, tensor: SSAValue, offsets: Sequence[SSAValue], buffer: SSAValue, stage: SSAValue):
        super().__init__(operands=[tensor, offsets, buffer, stage])


@irdl_op_definition
class CopyOp(_TileToStageOp):
    """Copy the tile at element offsets `[r, c]` of a global tensor into stage `stage` of a
    buffer, synchronously (every thread sees it after the op).  Elements outside the tensor
    read as zero.  `tile-async-copy` turns these into `tgpu.tma_load`s on mbarriers; the PTX
    backend has no synchronous lowering.

    ```mlir
    tgpu.copy %A[%r, %c] -> %a_s[%c0] : !tile.tensor<?x?xf16>, !tgpu.smem<128x64xf16, swizzle = 128, stages = 1>
    ```
    """

    name = "tgpu.copy"

    def verify_(self) -> None:
        _check_tile_access(self.tensor.type, len(self.offsets), self.buffer.type)


@irdl_op_definition
class MBarrierInitOp(IRDLOperation):
    """Allocate one mbarrier per stage in shared memory and initialise each to expect
    `arrivals` arrivals per phase.  Every thread reaches it; it also orders earlier
    generic shared-memory accesses before later async-proxy (TMA) writes.

    ```mlir
    %empty = tgpu.mbarrier_init {arrivals = 2 : i64} : !tgpu.mbarrier<4>
    ```
    """

    name = "tgpu.mbarrier_init"
    arrivals = prop_def(IntegerAttr[I64])
    result = result_def(MBarrierType)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "attr-dict `:` type($result)"

    def __init__(self, count: int, arrivals: int):
        super().__init__(properties={"arrivals": _int(arrivals)}, result_types=[MBarrierType(count)])

    def verify_(self) -> None:
        if not 1 <= self.arrivals.value.data < 1 << 20:
            raise VerifyException(f"arrivals must be in [1, 2^20), got {self.arrivals.value.data}")


@irdl_op_definition
class ArriveExpectTxOp(IRDLOperation):
    """Arrive on barrier `stage` and raise its transaction count by `bytes` (the bytes the TMA
    copies of this stage will deliver).  Executed by the thread of an enclosing `tgpu.elect`.

    ```mlir
    tgpu.mbarrier_arrive_expect_tx %full[%s] {bytes = 32768 : i64} : !tgpu.mbarrier<4>
    ```
    """

    name = "tgpu.mbarrier_arrive_expect_tx"
    barriers = operand_def(MBarrierType)
    stage = operand_def(i32)
    bytes = prop_def(IntegerAttr[I64])
    traits = traits_def(MemoryWriteEffect())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$barriers `[` $stage `]` attr-dict `:` type($barriers)"

    def __init__(self, barriers: SSAValue, stage: SSAValue, nbytes: int):
        super().__init__(operands=[barriers, stage], properties={"bytes": _int(nbytes)})

    def verify_(self) -> None:
        _check_in_elect(self)
        if not 0 < self.bytes.value.data < 1 << 20:
            raise VerifyException(f"a phase's transaction count must be in (0, 2^20), got {self.bytes.value.data}")


@irdl_op_definition
class TmaLoadOp(IRDLOperation):
    """Start a TMA copy of the tile at element offsets `[r, c]` into stage `stage` of a
    buffer; it completes on barrier `stage` of `barriers` (complete_tx).  Elements outside
    the tensor arrive as zero.  Executed by the thread of an enclosing `tgpu.elect`; one
    `cp.async.bulk.tensor.2d` per swizzle panel of the tile, through a tensor map the launch
    builds (`.param .align 64 .b8 [128]`).

    ```mlir
    tgpu.tma_load %B[%k, %c] -> %b_s[%s], %full
        : !tile.tensor<?x?xf16>, !tgpu.smem<64x128xf16, swizzle = 128, stages = 4>, !tgpu.mbarrier<4>
    ```
    """

    name = "tgpu.tma_load"
    tensor = operand_def(TensorType)
    offsets = var_operand_def(i32)
    buffer = operand_def(SmemType)
    stage = operand_def(i32)
    barriers = operand_def(MBarrierType)
    traits = traits_def(MemoryReadEffect(), MemoryWriteEffect())
    assembly_format = ("$tensor `[` $offsets `]` `->` $buffer `[` $stage `]` `,` $barriers attr-dict `:` "
                       "type($tensor) `,` type($buffer) `,` type($barriers)")

    def __init__(self, tensor: SSAValue, offsets: Sequence[SSAValue], buffer: SSAValue, stage: SSAValue,
                 barriers: SSAValue):
        super().__init__(operands=[tensor, offsets, buffer, stage, barriers])

    def verify_(self) -> None:
        _check_in_elect(self)
        _check_tile_access(self.tensor.type, len(self.offsets), self.buffer.type)
        _check_stage_count(self.buffer.type, self.barriers.type)
        rows, _ = self.buffer.type.get_shape()
        if rows > 256 or self.buffer.type.panel_cols > 256:
            raise VerifyException(f"a TMA box is at most 256 x 256 elements; a panel here is "
                                  f"{rows} x {self.buffer.type.panel_cols}")


@irdl_op_definition
class MBarrierWaitOp(IRDLOperation):
    """Wait until the phase of barrier `stage` whose parity is `phase` has completed
    (`mbarrier.try_wait.parity`; a fresh barrier counts parity 1 as complete).  Every
    executing thread waits.

    ```mlir
    tgpu.mbarrier_wait %full[%s], %phase : !tgpu.mbarrier<4>
    ```
    """

    name = "tgpu.mbarrier_wait"
    barriers = operand_def(MBarrierType)
    stage = operand_def(i32)
    phase = operand_def(i32)
    traits = traits_def(MemoryReadEffect(), MemoryWriteEffect())
    assembly_format = "$barriers `[` $stage `]` `,` $phase attr-dict `:` type($barriers)"

    def __init__(self, barriers: SSAValue, stage: SSAValue, phase: SSAValue):
        super().__init__(operands=[barriers, stage, phase])


@irdl_op_definition
class MBarrierArriveOp(IRDLOperation):
    """One arrival per warpgroup (its first thread) on barrier `stage`, where `pred` (if
    given) holds.  Consumers release a stage with it once their wgmmas have read it.

    ```mlir
    tgpu.mbarrier_arrive %empty[%prev] if %started : !tgpu.mbarrier<4>
    ```
    """

    name = "tgpu.mbarrier_arrive"
    barriers = operand_def(MBarrierType)
    stage = operand_def(i32)
    pred = opt_operand_def(i1)
    traits = traits_def(MemoryWriteEffect())
    assembly_format = "$barriers `[` $stage `]` (`if` $pred^)? attr-dict `:` type($barriers)"

    def __init__(self, barriers: SSAValue, stage: SSAValue, pred: SSAValue | None = None):
        super().__init__(operands=[barriers, stage, [pred] if pred is not None else []])


@irdl_op_definition
class ElectOp(IRDLOperation):
    """Run the region on one thread of the CTA (thread 0): the producer side of a pipeline
    (TMA issue and the waits for free stages).  The other threads skip it.

    ```mlir
    tgpu.elect {
      tgpu.mbarrier_wait %empty[%s], %p : !tgpu.mbarrier<4>
      tgpu.mbarrier_arrive_expect_tx %full[%s] {bytes = 32768 : i64} : !tgpu.mbarrier<4>
    }
    ```
    """

    name = "tgpu.elect"
    body = region_def("single_block")
    traits = traits_def(NoTerminator())
    assembly_format = "$body attr-dict"

    def __init__(self, body: Region):
        super().__init__(regions=[body])


def _check_in_elect(op: IRDLOperation) -> None:
    p = op.parent_op()
    while p is not None and not isinstance(p, ElectOp):
        p = p.parent_op()
    if p is None:
        raise VerifyException(f"'{op.name}' is issued by one thread: it must sit inside a 'tgpu.elect'")


@irdl_op_definition
class StageOp(IRDLOperation):
    """The pipeline position of iteration `iv` of a loop from `lb`: stage `(iv - lb) % stages`
    and phase parity `((iv - lb) / stages) % 2` (the barrier phase to wait for).

    ```mlir
    %s, %phase = tgpu.stage %k, %lb {stages = 4 : i64}
    ```
    """

    name = "tgpu.stage"
    iv = operand_def(i32)
    lb = operand_def(i32)
    stages = prop_def(IntegerAttr[I64])
    stage = result_def(i32)
    phase = result_def(i32)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$iv `,` $lb attr-dict"

    def __init__(self, iv: SSAValue, lb: SSAValue, stages: int):
        super().__init__(operands=[iv, lb], properties={"stages": _int(stages)}, result_types=[i32, i32])

    def verify_(self) -> None:
        if self.stages.value.data < 1:
            raise VerifyException("stages must be >= 1")


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


@irdl_op_definition
class WgmmaOp(IRDLOperation):
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
    ACC: ClassVar = VarConstraint("ACC", AnyAttr())
    a = operand_def(SmemType)
    a_stage = operand_def(i32)
    b = operand_def(SmemType)
    b_stage = operand_def(i32)
    acc = operand_def(ACC)
    result = result_def(ACC)
    b_kmajor = opt_prop_def(UnitAttr)
    traits = traits_def(MemoryReadEffect())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$a `[` $a_stage `]` `,` $b `[` $b_stage `]` `,` $acc attr-dict `:` type($a) `,` type($b) "
                       "`,` type($acc)")

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


@irdl_op_definition
class MaskOp(IRDLOperation):
    """`where(cond or full, a, b)`: a `tile.select` whose condition is known all-true when the
    scalar `full` holds (the pass proves it from the index bounds of `cond`).  The lowering
    skips computing `cond` and selecting when `full`, with one uniform branch: flash
    attention masks only its boundary and diagonal key tiles.

    ```mlir
    %r = tgpu.mask %valid, %s, %ninf unless %full : !tile.tile<128x64xi1>, !tile.tile<128x64xf32>
    ```
    """

    name = "tgpu.mask"
    T: ClassVar = VarConstraint("T", AnyAttr())
    cond = operand_def(TileType)
    true_value = operand_def(T)
    false_value = operand_def(T)
    full = operand_def(i1)
    result = result_def(T)
    traits = traits_def(Pure())
    assembly_format = ("$cond `,` $true_value `,` $false_value `unless` $full attr-dict `:` type($cond) `,` "
                       "type($result)")

    def __init__(self, cond: SSAValue, a: SSAValue, b: SSAValue, full: SSAValue):
        super().__init__(operands=[cond, a, b, full], result_types=[a.type])

    def verify_(self) -> None:
        if not isinstance(self.result.type, TileType) or self.cond.type.get_shape() != self.result.type.get_shape():
            raise VerifyException(f"tgpu.mask selects between tiles of the condition's shape, got {self.cond.type} "
                                  f"and {self.result.type}")


TURN_KINDS = ("start", "wait", "pass", "finish")


@irdl_op_definition
class TurnOp(IRDLOperation):
    """Order the warpgroups' turns at the tensor cores (FA3's "ping-pong"): warpgroup w waits
    for its turn (`wait`) before issuing its wgmmas and hands the turn to warpgroup w + 1
    (mod the count) after (`pass`), so one warpgroup's softmax runs while the next one's
    matrix products do.  `start` gives the first turn to warpgroup 0, `finish` (after the
    loop) takes back the last one.  Named barriers 1..W, one per warpgroup; no-ops with
    a single warpgroup.

    ```mlir
    tgpu.turn {kind = "wait"}
    ```
    """

    name = "tgpu.turn"
    kind = prop_def(StringAttr)
    traits = traits_def(MemoryReadEffect(), MemoryWriteEffect())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "attr-dict"

    def __init__(self, kind: str):
        super().__init__(properties={"kind": StringAttr(kind)})

    def verify_(self) -> None:
        if self.kind.data not in TURN_KINDS:
            raise VerifyException(f"turn kind must be one of {TURN_KINDS}, got {self.kind.data!r}")


Tgpu = Dialect(
    "tgpu",
    [AllocSmemOp, CopyOp, MBarrierInitOp, ArriveExpectTxOp, TmaLoadOp, MBarrierWaitOp, MBarrierArriveOp,
     ElectOp, StageOp, ToFragmentOp, FromFragmentOp, StoreFragmentOp, WgmmaFenceOp, WgmmaCommitOp,
     WgmmaWaitOp, WgmmaOp, WgmmaRegAOp, MaskOp, TurnOp],
    [SmemType, MBarrierType, AccType],
)


# =========================================================================== sm_80: cp.async + mma.sync
# The Ampere K-loop pipeline (`tile-pipeline-cp-async`, lowered by backends/ptx/lower_cp_async.py):
# stage buffers filled by per-thread 16-byte `cp.async.cg` copies in commit groups, read by
# `ldmatrix` into `mma.sync.m16n8k16` with the accumulator in registers (`!tgpu.acc`, the same
# fragment layout as wgmma's: warp w holds rows 16w..16w+15).  The buffers reuse `!tgpu.smem`'s
# swizzled layout (16-byte chunks XOR-ed with address bits 7.., as TMA writes), so the eight
# 16-byte rows an `ldmatrix` reads fall in distinct banks.


@irdl_op_definition
class CpAsyncAllocOp(IRDLOperation):
    """Shared memory for `stages` tiles that `tgpu.cp_async` fills and `tgpu.mma_sync` reads
    (sm_80 and later; the sm_90a `tgpu.alloc_smem` is for TMA).  Swizzle 32, 64 or 128 bytes.

    ```mlir
    %a_s = tgpu.cp_async_alloc : !tgpu.smem<64x32xf16, swizzle = 64, stages = 3>
    ```
    """

    name = "tgpu.cp_async_alloc"
    result = result_def(SmemType)
    assembly_format = "attr-dict `:` type($result)"

    def __init__(self, t: SmemType):
        super().__init__(result_types=[t])

    def verify_(self) -> None:
        t = self.result.type
        if t.swizzle.data not in (32, 64, 128) or t.elem_bytes != 2:
            raise VerifyException(f"cp.async buffers hold 16-bit elements with a 32/64/128-byte swizzle, got "
                                  f"{t.element_type} with swizzle {t.swizzle.data}")


@irdl_op_definition
class CpAsyncOp(_TileToStageOp):
    """Start copying the tile at element offsets `[r, c]` of a 2-D global tensor into stage
    `stage` of a `tgpu.cp_async_alloc` buffer: each thread issues `cp.async.cg` 16-byte copies
    of some of the tile's 8-element row chunks; a chunk outside the tensor is zero-filled
    (src-size 0).  The tensor's rows and `c` must be 16-byte aligned (the pass checks it).
    The copies join the thread's current commit group.

    ```mlir
    tgpu.cp_async %A[%r, %c] -> %a_s[%s] : !tile.tensor<?x?xf16>, !tgpu.smem<64x32xf16, swizzle = 64, stages = 3>
    ```
    """

    name = "tgpu.cp_async"

    def verify_(self) -> None:
        if self.tensor.type.rank != 2 or len(self.offsets) != 2:
            raise VerifyException("tgpu.cp_async copies a 2-D tile of a rank-2 tensor")
        _check_tile_access(self.tensor.type, len(self.offsets), self.buffer.type)


@irdl_op_definition
class CpAsyncCommitOp(IRDLOperation):
    """Close the thread's current group of `tgpu.cp_async` copies (`cp.async.commit_group`).

    ```mlir
    tgpu.cp_async_commit
    ```
    """

    name = "tgpu.cp_async_commit"
    traits = traits_def(MemoryWriteEffect())
    assembly_format = "attr-dict"


@irdl_op_definition
class CpAsyncWaitOp(IRDLOperation):
    """Wait until at most `pending` of the thread's most recent commit groups are in flight
    (`cp.async.wait_group`), then `bar.sync`: the stages those groups filled are visible to
    every thread, and every thread is done with what it read before the wait.

    ```mlir
    tgpu.cp_async_wait {pending = 1 : i64}
    ```
    """

    name = "tgpu.cp_async_wait"
    pending = prop_def(IntegerAttr[I64])
    traits = traits_def(MemoryReadEffect(), MemoryWriteEffect())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "attr-dict"

    def __init__(self, pending: int = 0):
        super().__init__(properties={"pending": _int(pending)})

    def verify_(self) -> None:
        if not 0 <= self.pending.value.data <= 7:
            raise VerifyException(f"cp.async.wait_group takes 0..7 pending groups, got {self.pending.value.data}")


@irdl_op_definition
class MmaSyncOp(IRDLOperation):
    """`acc + a @ b` on tensor cores with `mma.sync.m16n8k16`: `a` is stage `a_stage` of an
    [M, K] buffer, `b` stage `b_stage` of a [K, N] buffer (row-major, read with `ldmatrix.trans`),
    `acc` an f32 `!tgpu.mma_acc<MxN, warps_m = WM, warps_n = WN>` (WM x WN warps, each on an
    M/WM x N/WN block) or `!tgpu.acc<MxN>` (warp w on rows 16w..16w+15; M / 16 warps).

    ```mlir
    %d = tgpu.mma_sync %a_s[%s], %b_s[%s], %acc : !tgpu.smem<64x32xf16, swizzle = 64, stages = 3>,
        !tgpu.smem<32x64xf16, swizzle = 128, stages = 3>, !tgpu.acc<64x64xf32>
    ```
    """

    name = "tgpu.mma_sync"
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

    def __init__(self, a: SSAValue, a_stage: SSAValue, b: SSAValue, b_stage: SSAValue, acc: SSAValue):
        super().__init__(operands=[a, a_stage, b, b_stage, acc], result_types=[acc.type])

    def verify_(self) -> None:
        from tilec import dtypes as dt

        a, b, acc = self.a.type, self.b.type, self.acc.type
        if not isinstance(acc, (AccType, MmaAccType)) or dt.from_ir(acc.element_type) != dt.float32:
            raise VerifyException(f"the accumulator must be an f32 !tgpu.acc or !tgpu.mma_acc, got {acc}")
        (m, k), (k2, n) = a.get_shape(), b.get_shape()
        if k != k2 or (m, n) != acc.get_shape() or k % 16 or n % 8:
            raise VerifyException(f"mma.sync shapes a [{m}, {k}], b [{k2}, {n}], acc {list(acc.get_shape())} "
                                  f"do not agree (K % 16 == 0, N % 8 == 0)")
        if a.element_type != b.element_type or dt.from_ir(a.element_type) not in (dt.float16, dt.bfloat16):
            raise VerifyException(f"mma.sync operands are f16 or bf16 of one type, got {a.element_type} "
                                  f"and {b.element_type}")


@irdl_attr_definition
class MmaAccType(ParametrizedAttribute, TypeAttribute):
    """An mma.sync accumulator tile in registers over a `warps_m` x `warps_n` warp grid:
    `!tgpu.mma_acc<128x128xf32, warps_m = 2, warps_n = 2>`.

    Warp w = (wm, wn) = (w / warps_n, w % warps_n) holds the TM x TN block at rows wm*TM, columns
    wn*TN (TM = M / warps_m, TN = N / warps_n); in it, lane l holds for m16 tile i and n8 tile j
    registers 4 * (i * TN/8 + j) + q at row 16i + l/4 + 8(q/2), column 8j + 2(l%4) + q%2 (the
    mma.sync C fragment).  Only tgpu ops read or write it.
    """

    name = "tgpu.mma_acc"
    shape: ArrayAttr[IntAttr]
    element_type: Attribute
    warps: ArrayAttr[IntAttr]

    def __init__(self, shape: Sequence[int], element_type: Attribute, warps: Sequence[int]):
        super().__init__(ArrayAttr([IntAttr(d) for d in shape]), element_type, ArrayAttr([IntAttr(w) for w in warps]))

    def get_shape(self) -> tuple[int, ...]:
        return tuple(d.data for d in self.shape.data)

    def get_warps(self) -> tuple[int, int]:
        wm, wn = (w.data for w in self.warps.data)
        return wm, wn

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            dims, elt = parser.parse_ranked_shape()
            warps = []
            for key in ("warps_m", "warps_n"):
                parser.parse_punctuation(",")
                parser.parse_keyword(key)
                parser.parse_punctuation("=")
                warps.append(IntAttr(parser.parse_integer()))
        return (ArrayAttr([IntAttr(d) for d in dims]), elt, ArrayAttr(warps))

    def print_parameters(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            for d in self.get_shape():
                printer.print_string(f"{d}x")
            printer.print_attribute(self.element_type)
            wm, wn = self.get_warps()
            printer.print_string(f", warps_m = {wm}, warps_n = {wn}")

    def verify(self) -> None:
        shape = self.get_shape()
        if len(shape) != 2 or len(self.warps.data) != 2:
            raise VerifyException("an mma.sync accumulator is 2-D over a 2-D warp grid")
        (m, n), (wm, wn) = shape, self.get_warps()
        if wm < 1 or wn < 1 or m % (16 * wm) or n % (16 * wn):
            raise VerifyException(f"a {m}x{n} accumulator over {wm}x{wn} warps needs blocks of whole 16x16 "
                                  f"tiles per warp")


@irdl_op_definition
class MmaAccInitOp(IRDLOperation):
    """An mma.sync accumulator with every element `value` (the K loop's zero start).

    ```mlir
    %acc0 = tgpu.mma_acc_init %zero : f32 -> !tgpu.mma_acc<128x128xf32, warps_m = 2, warps_n = 2>
    ```
    """

    name = "tgpu.mma_acc_init"
    value = operand_def()
    result = result_def(MmaAccType)
    traits = traits_def(Pure())
    assembly_format = "$value attr-dict `:` type($value) `->` type($result)"

    def __init__(self, value: SSAValue, t: MmaAccType):
        super().__init__(operands=[value], result_types=[t])


@irdl_op_definition
class MmaAccStoreOp(IRDLOperation):
    """Write an mma.sync accumulator at element offsets `[r, c]` of a 2-D f32 / f16 / bf16 tensor
    straight from the registers, rounded to the tensor's dtype; elements outside are not written.

    ```mlir
    tgpu.mma_acc_store %C[%r, %c], %acc : !tile.tensor<?x?xf16>, !tgpu.mma_acc<128x128xf32, warps_m = 2, warps_n = 2>
    ```
    """

    name = "tgpu.mma_acc_store"
    tensor = operand_def(TensorType)
    offsets = var_operand_def(i32)
    value = operand_def(MmaAccType)
    traits = traits_def(MemoryWriteEffect())
    assembly_format = "$tensor `[` $offsets `]` `,` $value attr-dict `:` type($tensor) `,` type($value)"

    def __init__(self, tensor: SSAValue, offsets: Sequence[SSAValue], value: SSAValue):
        super().__init__(operands=[tensor, offsets, value])

    def verify_(self) -> None:
        from tilec import dtypes as dt

        if self.tensor.type.rank != 2 or len(self.offsets) != 2:
            raise VerifyException("mma_acc_store writes a 2-D tensor at 2 offsets")
        if dt.from_ir(self.tensor.type.element_type) not in (dt.float32, dt.float16, dt.bfloat16):
            raise VerifyException(f"mma_acc_store writes f32, f16 or bf16 tensors, not {self.tensor.type.element_type}")


@irdl_op_definition
class MmaAccToTileOp(IRDLOperation):
    """The tile an mma.sync accumulator holds (through shared memory, for other consumers).

    ```mlir
    %t = tgpu.mma_acc_to_tile %acc : !tgpu.mma_acc<128x128xf32, warps_m = 2, warps_n = 2> -> !tile.tile<128x128xf32>
    ```
    """

    name = "tgpu.mma_acc_to_tile"
    source = operand_def(MmaAccType)
    result = result_def(TileType)
    assembly_format = "$source attr-dict `:` type($source) `->` type($result)"

    def __init__(self, source: SSAValue):
        t = source.type
        super().__init__(operands=[source], result_types=[TileType(t.get_shape(), t.element_type)])


SM80_OPS = [CpAsyncAllocOp, CpAsyncOp, CpAsyncCommitOp, CpAsyncWaitOp, MmaSyncOp, MmaAccInitOp, MmaAccStoreOp,
            MmaAccToTileOp]
Tgpu = Dialect("tgpu", [*Tgpu.operations, *SM80_OPS], [*Tgpu.attributes, MmaAccType])
