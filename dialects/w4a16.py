"""The `w4a16` dialect: weight-only FP4 matmul loops for sm_90a / sm_80 (no FP4 tensor cores).

One op, `w4a16.mma_loop`, stands for a whole K loop

    for k in range(lb, ub):
        acc = matmul(load(X[x_row, k*BK]), dequantize(load(WQ[w_row, k*BK]), load(WS[w_row, k*BK/block])).T, acc)

with X [M, K] f16/bf16 activations, WQ [N, K] e2m1 weights (packed two per byte along K,
like `nn.Linear.weight`) and WS [N, K/block] block scales (e8m0 with block 32: MX; e4m3
with block 16: NV).  The PTX lowering (`backends/ptx/lower_w4a16.py`) streams the packed
weights and scales through a per-thread cp.async ring in shared memory (activations go
straight into registers), decodes each e2m1 pair into f16x2/bf16x2 registers, multiplies by
the block scale and feeds `mma.sync.m16n8k16` with the weights as the 16-row A operand
(swap-AB: the activations are the 8-wide B operand), the accumulator in registers across
the loop; warps beyond one per 16 weight rows split K.
The fp16 weight never exists in memory.  `tile-w4a16` produces it.

```mlir
%acc = w4a16.mma_loop %X[%xr], %WQ, %WS[%wr], %lb to %ub, %acc0 {bk = 128 : i64, block = 32 : i64, stages = 4 : i64}
       : !tile.tensor<?x?xf16>, !tile.tensor<?x?xf4E2M1FN>, !tile.tensor<?x?xf8E8M0FNU>, !tile.tile<16x64xf32>
```
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from xdsl.dialects.builtin import I64, IntegerAttr, i32, i64
from xdsl.ir import Dialect, SSAValue
from xdsl.irdl import BaseAttr, IRDLOperation, ParsePropInAttrDict, VarConstraint, irdl_op_definition, operand_def, \
    prop_def, result_def, traits_def
from xdsl.traits import MemoryReadEffect
from xdsl.utils.exceptions import VerifyException

from tilec.dialects.tile import TensorType, TileType

#: (scale element type, block) pairs the lowering decodes: MX (e8m0, 32) and NV (e4m3, 16)
SCALE_FORMATS = {("f8E8M0FNU", 32), ("f8E4M3FN", 16)}
#: activation types (the dequantized weight takes the same type)
ACT_TYPES = ("f16", "bf16")
#: K elements per loop iteration the lowering supports
BK_SIZES = (128, 256)


def _name(t) -> str:
    return str(t.element_type)


@irdl_op_definition
class MmaLoopOp(IRDLOperation):
    """A weight-only FP4 K loop: `acc + sum_k X[x_row:+BM, k*BK:+BK] @ deq(WQ, WS)[w_row:+BN, k*BK:+BK]^T`
    for k in [lb, ub); result [BM, BN] f32 (the tile `acc` has).  Rows outside X or WQ read
    as zero; K must be a multiple of bk (the lowering checks it: a compile error when K is
    static, a trap at kernel entry when it is not).

    ```mlir
    %r = w4a16.mma_loop %X[%xr], %WQ, %WS[%wr], %lb to %ub, %acc {bk = 128 : i64, block = 32 : i64, stages = 4 : i64}
         : !tile.tensor<?x?xf16>, !tile.tensor<?x?xf4E2M1FN>, !tile.tensor<?x?xf8E8M0FNU>, !tile.tile<16x64xf32>
    ```
    """

    name = "w4a16.mma_loop"
    ACC: ClassVar = VarConstraint("ACC", BaseAttr(TileType))
    x = operand_def(TensorType)
    wq = operand_def(TensorType)
    ws = operand_def(TensorType)
    x_row = operand_def(i32)
    w_row = operand_def(i32)
    lb = operand_def(i32)
    ub = operand_def(i32)
    acc = operand_def(ACC)
    bk = prop_def(IntegerAttr[I64])
    block = prop_def(IntegerAttr[I64])
    stages = prop_def(IntegerAttr[I64])
    result = result_def(ACC)
    traits = traits_def(MemoryReadEffect())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$x `[` $x_row `]` `,` $wq `,` $ws `[` $w_row `]` `,` $lb `to` $ub `,` "
                       "$acc attr-dict `:` type($x) `,` type($wq) `,` type($ws) `,` type($acc)")

    def __init__(self, x: SSAValue, x_row: SSAValue, wq: SSAValue, ws: SSAValue, w_row: SSAValue,
                 lb: SSAValue, ub: SSAValue, acc: SSAValue, bk: int, block: int, stages: int = 4):
        super().__init__(operands=[x, wq, ws, x_row, w_row, lb, ub, acc], result_types=[acc.type],
                         properties={"bk": IntegerAttr(bk, i64), "block": IntegerAttr(block, i64),
                                     "stages": IntegerAttr(stages, i64)})

    def verify_(self) -> None:
        bm, bn = self.acc.type.get_shape() if len(self.acc.type.get_shape()) == 2 else (0, 0)
        if len(self.acc.type.get_shape()) != 2 or str(self.acc.type.element_type) != "f32":
            raise VerifyException("the accumulator is a 2-D f32 tile")
        if self.result.type != self.acc.type:
            raise VerifyException("the result has the accumulator's type")
        if _name(self.x.type) not in ACT_TYPES:
            raise VerifyException(f"activations are f16 or bf16, got {_name(self.x.type)}")
        if _name(self.wq.type) != "f4E2M1FN":
            raise VerifyException(f"weights are e2m1, got {_name(self.wq.type)}")
        block = self.block.value.data
        if (_name(self.ws.type), block) not in SCALE_FORMATS:
            raise VerifyException(f"scales {_name(self.ws.type)} with block {block}: expected e8m0 with block 32 "
                                  f"(MX) or e4m3 with block 16 (NV)")
        if any(t.rank != 2 for t in (self.x.type, self.wq.type, self.ws.type)):
            raise VerifyException("X, WQ and WS are 2-D tensors")
        if self.bk.value.data not in BK_SIZES:
            raise VerifyException(f"bk must be one of {BK_SIZES}, got {self.bk.value.data}")
        if bm % 8 or not 8 <= bm <= 32 or bn % 16 or bn // 16 not in (1, 2, 4, 8):
            raise VerifyException(f"the accumulator must be [8|16|24|32, 16|32|64|128] (tokens x weight rows), "
                                  f"got [{bm}, {bn}]")
        if not 2 <= self.stages.value.data <= 8:
            raise VerifyException(f"stages must be in 2..8, got {self.stages.value.data}")


W4A16 = Dialect("w4a16", [MmaLoopOp], [])

__all__: Sequence[str] = ("MmaLoopOp", "W4A16")
