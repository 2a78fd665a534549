"""The sm_90a `tgpu` memory ops: shared-memory stage buffers, copies into them, TMA loads
completing on mbarriers, the mbarrier protocol (init / expect-tx / wait / arrive), `tgpu.elect`
and the pipeline position `tgpu.stage`.  Lowered by backends/ptx/lower_tgpu_memory.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import I64, IntegerAttr, i1, i32
from xdsl.ir import Region, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    prop_def,
    region_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.traits import MemoryReadEffect, MemoryWriteEffect, NoTerminator, Pure
from xdsl.utils.exceptions import VerifyException

from tilec.dialects.tgpu.types import MBarrierType, SmemType, _int
from tilec.dialects.tile import TensorType


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
