"""The `tgpu` types: shared-memory stage buffers (`!tgpu.smem`), mbarrier arrays
(`!tgpu.mbarrier`) and wgmma accumulators in registers (`!tgpu.acc`).

The sm_80 mma.sync accumulator `!tgpu.mma_acc` sits with its ops in `cp_async.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import ArrayAttr, IntAttr, IntegerAttr, i64
from xdsl.ir import Attribute, ParametrizedAttribute, TypeAttribute
from xdsl.irdl import irdl_attr_definition
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException


SWIZZLES = (0, 32, 64, 128)


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
