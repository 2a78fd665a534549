"""The `tgpu` ops flash attention adds on sm_90a (`tile-attention-wgmma`): `tgpu.mask`, a select
skipped on provably full tiles, and `tgpu.turn`, the warpgroups' turns at the tensor cores.
Lowered by backends/ptx/lower_tgpu_attention.py.
"""

from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import StringAttr, i1
from xdsl.ir import SSAValue
from xdsl.irdl import (
    AnyAttr,
    IRDLOperation,
    ParsePropInAttrDict,
    VarConstraint,
    irdl_op_definition,
    operand_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import MemoryReadEffect, MemoryWriteEffect, Pure
from xdsl.utils.exceptions import VerifyException

from tilec.dialects.tile import TileType


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
