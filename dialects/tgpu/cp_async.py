"""The sm_80 `tgpu` ops: cp.async stage buffers and copies, `tgpu.mma_sync`, and the mma.sync
accumulator type `!tgpu.mma_acc` with its ops.

The Ampere K-loop pipeline (`tile-pipeline-cp-async`, lowered by backends/ptx/lower_cp_async.py
and lower_mma_sync.py): stage buffers filled by per-thread 16-byte `cp.async.cg` copies in commit
groups, read by `ldmatrix` into `mma.sync.m16n8k16` with the accumulator in registers (`!tgpu.acc`,
the same fragment layout as wgmma's: warp w holds rows 16w..16w+15).  The buffers reuse
`!tgpu.smem`'s swizzled layout (16-byte chunks XOR-ed with address bits 7.., as TMA writes), so
the eight 16-byte rows an `ldmatrix` reads fall in distinct banks.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import I64, ArrayAttr, IntAttr, IntegerAttr, i32
from xdsl.ir import Attribute, ParametrizedAttribute, SSAValue, TypeAttribute
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.traits import MemoryReadEffect, MemoryWriteEffect, Pure
from xdsl.utils.exceptions import VerifyException

from tilec.dialects.tgpu.memory import _check_tile_access, _TileToStageOp
from tilec.dialects.tgpu.types import AccType, SmemType, _int
from tilec.dialects.tgpu.wgmma import SmemMmaOp
from tilec.dialects.tile import TensorType, TileType


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
class MmaSyncOp(SmemMmaOp):
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
