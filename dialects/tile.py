"""The `tile` dialect: value tiles of static shape, global tensors, and the ops on them.

This is the level the front end produces and every target starts from.  Values are
either *tiles* (`!tile.tile<64x64xf16>`: a statically shaped block of elements held
by one program instance) or *scalars* (builtin `i32`, `i64`, `f32`, ...).  Global
memory is reached only through `!tile.tensor<?x?xf16>` kernel arguments.

Elementwise ops accept tiles or scalars of one type (broadcasting is explicit in the
IR: the front end inserts `tile.splat` / `tile.broadcast`).  Loops and branches are
`scf.for` / `scf.if` from xDSL; kernels are `func.func` with tensor and scalar
arguments.

```mlir
func.func @scale_add(%X: !tile.tensor<?x?xf32>, %Y: !tile.tensor<?x?xf32>) {
  %i = tile.tile_idx 0
  %c64 = arith.constant 64 : i32
  %r = tile.mul %i, %c64 : i32
  %t = tile.load %X[%r, %r] {boundary_check = true} : !tile.tensor<?x?xf32> -> !tile.tile<64x64xf32>
  tile.store %Y[%r, %r], %t : !tile.tensor<?x?xf32>, !tile.tile<64x64xf32>
  func.return
}
```

Shape and dtype rules live beside the op that owns them (`MatmulOp.result_shape`,
`ReduceOp.result_shape`, ...): the front end calls them to report errors in the
user's terms, and the verifiers call the same functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from xdsl.dialects.builtin import (
    ArrayAttr,
    BoolAttr,
    DenseArrayBase,
    FloatAttr,
    I64,
    IntAttr,
    IntegerAttr,
    IntegerType,
    StringAttr,
    f64,
    i1,
    i64,
    i32,
)
from xdsl.ir import Attribute, Dialect, ParametrizedAttribute, SSAValue, TypeAttribute
from xdsl.irdl import (
    AnyAttr,
    BaseAttr,
    IRDLOperation,
    ParsePropInAttrDict,
    VarConstraint,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.traits import MemoryReadEffect, MemoryWriteEffect, Pure
from xdsl.utils.exceptions import VerifyException

DYNAMIC = -1


class ShapeError(ValueError):
    """A shape/dtype rule was broken; the message is phrased in tile-API terms."""


# --------------------------------------------------------------------------- types


class _ShapedType:
    """Shape accessors shared by `TileType` and `TensorType`."""

    def __init__(self, shape: Sequence[int], element_type: Attribute):
        super().__init__(ArrayAttr([IntAttr(d) for d in shape]), element_type)

    def get_shape(self) -> tuple[int, ...]:
        return tuple(d.data for d in self.shape.data)

    @property
    def rank(self) -> int:
        return len(self.shape.data)


@irdl_attr_definition
class TileType(_ShapedType, ParametrizedAttribute, TypeAttribute):
    """A statically shaped block of elements held by one program instance.

    `!tile.tile<64x32xf16>`; rank 0 (`!tile.tile<f32>`) is the result of a full reduction.
    """

    name = "tile.tile"
    shape: ArrayAttr[IntAttr]
    element_type: Attribute

    @property
    def numel(self) -> int:
        return math.prod(self.get_shape())

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
        if any(d <= 0 for d in self.get_shape()):
            raise VerifyException(f"tile dimensions must be positive, got {list(self.get_shape())}")


@irdl_attr_definition
class TensorType(_ShapedType, ParametrizedAttribute, TypeAttribute):
    """A tensor in global memory, row-major with unit inner stride.

    `!tile.tensor<?x64xf16>`: `?` dims are known only at run time (read with `tile.dim`).
    """

    name = "tile.tensor"
    shape: ArrayAttr[IntAttr]
    element_type: Attribute

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            dims, elt = parser.parse_ranked_shape()
        # the parser reads `?` as xDSL's DYNAMIC_INDEX (-2**63); tile IR spells it DYNAMIC
        return (ArrayAttr([IntAttr(DYNAMIC if d < 0 else d) for d in dims]), elt)

    def print_parameters(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            for d in self.get_shape():
                printer.print_string("?x" if d == DYNAMIC else f"{d}x")
            printer.print_attribute(self.element_type)


def element_type_of(t: Attribute) -> Attribute:
    """Element type of a tile, or the scalar type itself."""
    return t.element_type if isinstance(t, (TileType, TensorType)) else t


def shape_of(t: Attribute) -> tuple[int, ...]:
    """Shape of a tile; `()` for a scalar."""
    return t.get_shape() if isinstance(t, TileType) else ()


def with_element_type(t: Attribute, elt: Attribute) -> Attribute:
    """`t` with its element type replaced (tile stays a tile, scalar stays a scalar)."""
    return TileType(t.get_shape(), elt) if isinstance(t, TileType) else elt


def _int_prop(v: int) -> IntegerAttr:
    return IntegerAttr(v, i64)


def _ints(values: Sequence[int]) -> DenseArrayBase:
    return DenseArrayBase.from_list(i64, values)


def _get_ints(attr: DenseArrayBase) -> tuple[int, ...]:
    return attr.get_values()


# --------------------------------------------------------------------------- grid


class GridAxisOp(IRDLOperation):
    """Base of the ops that read one axis of the launch grid."""

    axis = prop_def(IntegerAttr[I64])
    result = result_def(i32)
    traits = traits_def(Pure())
    assembly_format = "$axis attr-dict"

    def __init__(self, axis: int):
        super().__init__(properties={"axis": _int_prop(axis)}, result_types=[i32])

    def verify_(self) -> None:
        if self.axis.value.data < 0:
            raise VerifyException("grid axis must be >= 0")


@irdl_op_definition
class TileIdxOp(GridAxisOp):
    """Index of this program instance along grid axis `axis` (`ct.tile_idx(axis)`).

    ```mlir
    %i = tile.tile_idx 0
    ```
    """

    name = "tile.tile_idx"


@irdl_op_definition
class NumTilesOp(GridAxisOp):
    """Number of program instances along grid axis `axis` (`ct.num_tiles(axis)`).

    ```mlir
    %n = tile.num_tiles 1
    ```
    """

    name = "tile.num_tiles"


@irdl_op_definition
class DimOp(IRDLOperation):
    """Run-time extent of a tensor dimension (`T.shape[axis]` in a kernel).

    ```mlir
    %n = tile.dim %X 1 : !tile.tensor<?x?xf32>
    ```
    """

    name = "tile.dim"
    tensor = operand_def(TensorType)
    axis = prop_def(IntegerAttr[I64])
    result = result_def(i32)
    traits = traits_def(Pure())
    assembly_format = "$tensor $axis attr-dict `:` type($tensor)"

    def __init__(self, tensor: SSAValue, axis: int):
        super().__init__(operands=[tensor], properties={"axis": _int_prop(axis)}, result_types=[i32])

    def verify_(self) -> None:
        rank = self.tensor.type.rank
        if not 0 <= self.axis.value.data < rank:
            raise VerifyException(f"axis {self.axis.value.data} is out of range for a rank-{rank} tensor")


# --------------------------------------------------------------------------- memory


def check_offsets(tensor: TensorType, n_offsets: int, tile_shape: Sequence[int]) -> None:
    """Offsets and tile rank must both match the tensor's rank; an fp4 tile is whole bytes
    of the packed tensor (`check_packed_tile`)."""
    if n_offsets != tensor.rank:
        raise ShapeError(f"a rank-{tensor.rank} tensor needs {tensor.rank} offsets, got {n_offsets}")
    if len(tile_shape) != tensor.rank:
        raise ShapeError(f"a rank-{tensor.rank} tensor needs a rank-{tensor.rank} tile, got shape {list(tile_shape)}")
    check_packed_tile(tensor.element_type, tile_shape)


def check_packed_tile(elt: Attribute, tile_shape: Sequence[int]) -> None:
    """fp4 tensors hold two elements per byte along the innermost dim, so a tile loaded
    from or stored to one spans whole bytes: an even innermost extent (its offset must be
    even too, which only the run time can check)."""
    if str(elt) == "f4E2M1FN" and tile_shape and tile_shape[-1] % 2:
        raise ShapeError(f"a float4_e2m1fn tile of a tensor needs an even innermost dim (two elements per byte), "
                         f"got shape {list(tile_shape)}")


@irdl_op_definition
class LoadOp(IRDLOperation):
    """Read the tile at element offsets `offsets` of a global tensor (`ct.load_tile`).

    With `boundary_check`, elements outside the tensor read as `padding`; without it
    the caller promises every element is in bounds.

    ```mlir
    %t = tile.load %X[%r, %c] {boundary_check = true, padding = 0.0 : f64}
         : !tile.tensor<?x?xf16> -> !tile.tile<64x32xf16>
    ```
    """

    name = "tile.load"
    tensor = operand_def(TensorType)
    offsets = var_operand_def(i32)
    boundary_check = prop_def(BoolAttr, default_value=BoolAttr.from_bool(True))
    padding = prop_def(FloatAttr, default_value=FloatAttr(0.0, f64))
    result = result_def(TileType)
    traits = traits_def(MemoryReadEffect())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$tensor `[` $offsets `]` attr-dict `:` type($tensor) `->` type($result)"

    def __init__(self, tensor: SSAValue, offsets: Sequence[SSAValue], tile: TileType,
                 boundary_check: bool = True, padding: float = 0.0):
        super().__init__(
            operands=[tensor, offsets],
            properties={"boundary_check": BoolAttr.from_bool(boundary_check),
                        "padding": FloatAttr(float(padding), f64)},
            result_types=[tile],
        )

    def verify_(self) -> None:
        t = self.tensor.type
        try:
            check_offsets(t, len(self.offsets), self.result.type.get_shape())
        except ShapeError as e:
            raise VerifyException(str(e)) from None
        if t.element_type != self.result.type.element_type:
            raise VerifyException(f"loaded tile has element type {self.result.type.element_type}, "
                                  f"the tensor holds {t.element_type}")


STORE_MODES = ("store", "atomic_add")


@irdl_op_definition
class StoreOp(IRDLOperation):
    """Write a tile at element offsets of a global tensor (`ct.store_tile`).

    Only in-bounds elements are written.  `mode = "atomic_add"` adds into the tensor
    atomically instead of overwriting.

    ```mlir
    tile.store %Y[%r, %c], %t {mode = "atomic_add"} : !tile.tensor<?x?xf32>, !tile.tile<64x64xf32>
    ```
    """

    name = "tile.store"
    tensor = operand_def(TensorType)
    offsets = var_operand_def(i32)
    value = operand_def(TileType)
    mode = prop_def(StringAttr, default_value=StringAttr("store"))
    traits = traits_def(MemoryWriteEffect())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$tensor `[` $offsets `]` `,` $value attr-dict `:` type($tensor) `,` type($value)"

    def __init__(self, tensor: SSAValue, offsets: Sequence[SSAValue], value: SSAValue, mode: str = "store"):
        super().__init__(operands=[tensor, offsets, value], properties={"mode": StringAttr(mode)})

    def verify_(self) -> None:
        t = self.tensor.type
        try:
            check_offsets(t, len(self.offsets), self.value.type.get_shape())
        except ShapeError as e:
            raise VerifyException(str(e)) from None
        if t.element_type != self.value.type.element_type:
            raise VerifyException(f"stored tile has element type {self.value.type.element_type}, "
                                  f"the tensor holds {t.element_type}")
        if self.mode.data not in STORE_MODES:
            raise VerifyException(f"store mode must be one of {STORE_MODES}, got {self.mode.data!r}")


# --------------------------------------------------------------------------- shape ops


@irdl_op_definition
class SplatOp(IRDLOperation):
    """A tile with every element equal to a scalar (`ct.full`, scalar broadcasting).

    ```mlir
    %t = tile.splat %x : f32 -> !tile.tile<64x64xf32>
    ```
    """

    name = "tile.splat"
    scalar = operand_def()
    result = result_def(TileType)
    traits = traits_def(Pure())
    assembly_format = "$scalar attr-dict `:` type($scalar) `->` type($result)"

    def __init__(self, scalar: SSAValue, tile: TileType):
        super().__init__(operands=[scalar], result_types=[tile])

    def verify_(self) -> None:
        if isinstance(self.scalar.type, TileType):
            raise VerifyException("tile.splat takes a scalar; use tile.broadcast for tiles")
        if self.scalar.type != self.result.type.element_type:
            raise VerifyException(f"splat of {self.scalar.type} cannot make a tile of {self.result.type.element_type}")


def broadcast_shapes(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """numpy broadcasting of two shapes (trailing dims aligned, 1 stretches)."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x != y and 1 not in (x, y):
            raise ShapeError(f"shapes {list(a)} and {list(b)} cannot be broadcast together")
        out.append(max(x, y))
    return tuple(reversed(out))


class TileToTileOp(IRDLOperation):
    """Base of the ops that turn one tile into another tile given by the result type."""

    source = operand_def(TileType)
    result = result_def(TileType)
    traits = traits_def(Pure())
    assembly_format = "$source attr-dict `:` type($source) `->` type($result)"

    def __init__(self, source: SSAValue, tile: TileType):
        super().__init__(operands=[source], result_types=[tile])


@irdl_op_definition
class BroadcastOp(TileToTileOp):
    """Stretch size-1 dims of a tile to a larger shape of the same rank (`ct.broadcast_to`).

    ```mlir
    %b = tile.broadcast %row : !tile.tile<1x64xf32> -> !tile.tile<32x64xf32>
    ```
    """

    name = "tile.broadcast"

    def verify_(self) -> None:
        s, r = self.source.type.get_shape(), self.result.type.get_shape()
        if len(s) != len(r) or any(a != b and a != 1 for a, b in zip(s, r)):
            raise VerifyException(f"cannot broadcast shape {list(s)} to {list(r)}")
        if self.source.type.element_type != self.result.type.element_type:
            raise VerifyException("tile.broadcast cannot change the element type")


@irdl_op_definition
class ReshapeOp(TileToTileOp):
    """Reinterpret a tile's elements (row-major) with a new shape of equal size.

    ```mlir
    %r = tile.reshape %t : !tile.tile<64xf32> -> !tile.tile<64x1xf32>
    ```
    """

    name = "tile.reshape"

    def verify_(self) -> None:
        if self.source.type.numel != self.result.type.numel:
            raise VerifyException(f"cannot reshape {list(self.source.type.get_shape())} "
                                  f"to {list(self.result.type.get_shape())}: sizes differ")


def permute_shape(shape: Sequence[int], perm: Sequence[int]) -> tuple[int, ...]:
    if sorted(perm) != list(range(len(shape))):
        raise ShapeError(f"{list(perm)} is not a permutation of the {len(shape)} axes of a {list(shape)} tile")
    return tuple(shape[p] for p in perm)


@irdl_op_definition
class PermuteOp(IRDLOperation):
    """Reorder a tile's axes: result dim `i` is source dim `perm[i]` (`ct.permute`, `.T`).

    ```mlir
    %t = tile.permute %x {perm = array<i64: 1, 0>} : !tile.tile<64x32xf16> -> !tile.tile<32x64xf16>
    ```
    """

    name = "tile.permute"
    source = operand_def(TileType)
    perm = prop_def(DenseArrayBase.constr(i64))
    result = result_def(TileType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$source attr-dict `:` type($source) `->` type($result)"

    def __init__(self, source: SSAValue, perm: Sequence[int]):
        st = source.type
        shape = permute_shape(st.get_shape(), perm)
        super().__init__(operands=[source], properties={"perm": _ints(perm)},
                         result_types=[TileType(shape, st.element_type)])

    def verify_(self) -> None:
        try:
            want = permute_shape(self.source.type.get_shape(), _get_ints(self.perm))
        except ShapeError as e:
            raise VerifyException(str(e)) from None
        if want != self.result.type.get_shape():
            raise VerifyException(f"permuted shape is {list(want)}, result says {list(self.result.type.get_shape())}")


@irdl_op_definition
class ArangeOp(IRDLOperation):
    """The 1-D tile `[start, start+1, ..., start+N-1]` of i32 (`ct.arange`).

    ```mlir
    %r = tile.arange {start = 0 : i64} : !tile.tile<128xi32>
    ```
    """

    name = "tile.arange"
    start = prop_def(IntegerAttr[I64], default_value=IntegerAttr(0, i64))
    result = result_def(TileType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "attr-dict `:` type($result)"

    def __init__(self, n: int, start: int = 0):
        super().__init__(properties={"start": _int_prop(start)}, result_types=[TileType([n], i32)])

    def verify_(self) -> None:
        if self.result.type.rank != 1 or self.result.type.element_type != i32:
            raise VerifyException("tile.arange makes a 1-D tile of i32")


@irdl_op_definition
class ExtractOp(IRDLOperation):
    """The element of a one-element tile as a scalar (`ct.sum(x)` over all axes).

    ```mlir
    %s = tile.extract %t : !tile.tile<f32> -> f32
    ```
    """

    name = "tile.extract"
    source = operand_def(TileType)
    result = result_def()
    traits = traits_def(Pure())
    assembly_format = "$source attr-dict `:` type($source) `->` type($result)"

    def __init__(self, source: SSAValue):
        super().__init__(operands=[source], result_types=[source.type.element_type])

    def verify_(self) -> None:
        if self.source.type.numel != 1:
            raise VerifyException(f"tile.extract needs a one-element tile, got shape {list(self.source.type.get_shape())}")
        if self.result.type != self.source.type.element_type:
            raise VerifyException(f"tile.extract of a {self.source.type.element_type} tile gives "
                                  f"{self.source.type.element_type}, not {self.result.type}")


# --------------------------------------------------------------------------- elementwise


def _elementwise_verify(op: IRDLOperation) -> None:
    for v in op.operands:
        if isinstance(v.type, TensorType):
            raise VerifyException(f"{op.name} works on tiles and scalars, not on a global tensor")


class BinaryOp(IRDLOperation):
    """Base of the elementwise binary ops: both operands and the result share one type."""

    T: ClassVar = VarConstraint("T", AnyAttr())
    lhs = operand_def(T)
    rhs = operand_def(T)
    result = result_def(T)
    traits = traits_def(Pure())
    assembly_format = "$lhs `,` $rhs attr-dict `:` type($result)"

    def __init__(self, lhs: SSAValue, rhs: SSAValue):
        super().__init__(operands=[lhs, rhs], result_types=[lhs.type])

    def verify_(self) -> None:
        _elementwise_verify(self)


class UnaryOp(IRDLOperation):
    """Base of the elementwise unary ops: operand and result share one type."""

    T: ClassVar = VarConstraint("T", AnyAttr())
    source = operand_def(T)
    result = result_def(T)
    traits = traits_def(Pure())
    assembly_format = "$source attr-dict `:` type($result)"

    def __init__(self, source: SSAValue):
        super().__init__(operands=[source], result_types=[source.type])

    def verify_(self) -> None:
        _elementwise_verify(self)


def _define(base: type, mnemonic: str, doc: str, float_only: bool = False) -> type:
    def verify_(self) -> None:
        base.verify_(self)
        if float_only:
            from tilec.dtypes import from_ir
            if not from_ir(element_type_of(self.result.type)).is_float:
                raise VerifyException(f"tile.{mnemonic} needs floating-point operands, got {self.result.type}")

    cls = type(
        "".join(p.capitalize() for p in mnemonic.split("_")) + "Op",
        (base,),
        {"name": f"tile.{mnemonic}", "__doc__": doc, "verify_": verify_, "__module__": __name__},
    )
    return irdl_op_definition(cls)


#: mnemonic -> (docstring, float only); the front end, the interpreter and the
#: lowerings all key on these mnemonics.
BINARY_OPS = {
    "add": "Elementwise `lhs + rhs`.", "sub": "Elementwise `lhs - rhs`.",
    "mul": "Elementwise `lhs * rhs`.",
    "div": "Elementwise true division `lhs / rhs` (floats; the front end casts ints to f32).",
    "floordiv": "Elementwise `lhs // rhs` with Python semantics (rounds toward -inf).",
    "rem": "Elementwise `lhs % rhs` with Python semantics (result has the sign of `rhs`).",
    "pow": "Elementwise `lhs ** rhs`.",
    "maximum": "Elementwise max (NaN-propagating for floats).",
    "minimum": "Elementwise min (NaN-propagating for floats).",
    "and": "Bitwise/logical and.", "or": "Bitwise/logical or.", "xor": "Bitwise/logical xor.",
    "shl": "Shift left.", "shr": "Shift right (arithmetic for signed, logical for unsigned).",
}
UNARY_OPS = {
    "neg": ("Elementwise `-x`.", False), "abs": ("Elementwise `|x|`.", False),
    "relu": ("Elementwise `max(x, 0)`.", False), "not": ("Logical/bitwise not.", False),
    "exp": ("Elementwise e**x.", True), "exp2": ("Elementwise 2**x.", True),
    "log": ("Natural logarithm.", True), "log2": ("Base-2 logarithm.", True),
    "sqrt": ("Square root.", True), "rsqrt": ("1 / sqrt(x).", True),
    "tanh": ("Hyperbolic tangent.", True), "sigmoid": ("1 / (1 + exp(-x)).", True),
    "erf": ("The error function.", True), "sin": ("Sine.", True), "cos": ("Cosine.", True),
    "floor": ("Round toward -inf.", True), "ceil": ("Round toward +inf.", True),
}
BINARY_OP_CLASSES = {m: _define(BinaryOp, m, f"{d}\n\n```mlir\n%r = tile.{m} %a, %b : !tile.tile<64x64xf32>\n```")
                     for m, d in BINARY_OPS.items()}
UNARY_OP_CLASSES = {m: _define(UnaryOp, m, f"{d}\n\n```mlir\n%r = tile.{m} %a : !tile.tile<64x64xf32>\n```", f)
                    for m, (d, f) in UNARY_OPS.items()}

CMP_PREDICATES = ("eq", "ne", "lt", "le", "gt", "ge")


@irdl_op_definition
class CmpOp(IRDLOperation):
    """Elementwise comparison giving an i1 tile (or i1 scalar).

    ```mlir
    %m = tile.cmp "lt" %a, %b : !tile.tile<64xi32> -> !tile.tile<64xi1>
    ```
    """

    name = "tile.cmp"
    T: ClassVar = VarConstraint("T", AnyAttr())
    predicate = prop_def(StringAttr)
    lhs = operand_def(T)
    rhs = operand_def(T)
    result = result_def()
    traits = traits_def(Pure())
    assembly_format = "$predicate $lhs `,` $rhs attr-dict `:` type($lhs) `->` type($result)"

    def __init__(self, predicate: str, lhs: SSAValue, rhs: SSAValue):
        super().__init__(operands=[lhs, rhs], properties={"predicate": StringAttr(predicate)},
                         result_types=[with_element_type(lhs.type, i1)])

    def verify_(self) -> None:
        _elementwise_verify(self)
        if self.predicate.data not in CMP_PREDICATES:
            raise VerifyException(f"unknown comparison {self.predicate.data!r}; expected one of {CMP_PREDICATES}")
        if self.result.type != with_element_type(self.lhs.type, i1):
            raise VerifyException("comparison result must be i1 of the operands' shape")


@irdl_op_definition
class SelectOp(IRDLOperation):
    """Elementwise `cond ? a : b` (`ct.where`).

    ```mlir
    %r = tile.select %m, %a, %b : !tile.tile<64xi1>, !tile.tile<64xf32>
    ```
    """

    name = "tile.select"
    T: ClassVar = VarConstraint("T", AnyAttr())
    cond = operand_def()
    true_value = operand_def(T)
    false_value = operand_def(T)
    result = result_def(T)
    traits = traits_def(Pure())
    assembly_format = "$cond `,` $true_value `,` $false_value attr-dict `:` type($cond) `,` type($result)"

    def __init__(self, cond: SSAValue, a: SSAValue, b: SSAValue):
        super().__init__(operands=[cond, a, b], result_types=[a.type])

    def verify_(self) -> None:
        _elementwise_verify(self)
        if self.cond.type != with_element_type(self.result.type, i1):
            raise VerifyException(f"condition must be i1 of the values' shape, got {self.cond.type}")


@irdl_op_definition
class CastOp(IRDLOperation):
    """Convert elements to another dtype (`x.astype(dtype)`).

    Float -> narrower float rounds to nearest even; f16/bf16 overflow to inf, fp8/fp4
    saturate to the largest finite value (`cvt.rn.satfinite`); float -> int truncates
    toward zero.

    ```mlir
    %h = tile.cast %x : !tile.tile<64x64xf32> -> !tile.tile<64x64xf16>
    ```
    """

    name = "tile.cast"
    source = operand_def()
    result = result_def()
    traits = traits_def(Pure())
    assembly_format = "$source attr-dict `:` type($source) `->` type($result)"

    def __init__(self, source: SSAValue, to: Attribute):
        super().__init__(operands=[source], result_types=[with_element_type(source.type, to)])

    def verify_(self) -> None:
        if shape_of(self.source.type) != shape_of(self.result.type) or (
                isinstance(self.source.type, TileType) != isinstance(self.result.type, TileType)):
            raise VerifyException("tile.cast changes only the element type, not the shape")


# --------------------------------------------------------------------------- matmul / reductions


def matmul_result_shape(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """`a @ b` for 2-D tiles, batched over broadcast leading dims."""
    if len(a) < 2 or len(b) < 2:
        raise ShapeError(f"matmul needs tiles of rank >= 2, got shapes {list(a)} and {list(b)}")
    if a[-1] != b[-2]:
        raise ShapeError(f"matmul shapes {list(a)} and {list(b)} do not agree: "
                         f"inner dimensions {a[-1]} and {b[-2]} differ")
    batch = broadcast_shapes(a[:-2], b[:-2])
    return (*batch, a[-2], b[-1])


@irdl_op_definition
class MatmulOp(IRDLOperation):
    """Matrix product `a @ b (+ acc)`, accumulated in f32 (i32 for integers).

    Batched over leading dims with numpy broadcasting.  The optional `acc` operand is
    what `acc + matmul(a, b)` canonicalises into.

    ```mlir
    %c = tile.matmul %a, %b, %acc : !tile.tile<64x32xf16>, !tile.tile<32x64xf16> -> !tile.tile<64x64xf32>
    ```
    """

    name = "tile.matmul"
    ACC: ClassVar = VarConstraint("ACC", BaseAttr(TileType))
    lhs = operand_def(TileType)
    rhs = operand_def(TileType)
    acc = opt_operand_def(ACC)
    result = result_def(ACC)
    traits = traits_def(Pure())
    assembly_format = "$lhs `,` $rhs (`,` $acc^)? attr-dict `:` type($lhs) `,` type($rhs) `->` type($result)"

    def __init__(self, lhs: SSAValue, rhs: SSAValue, result: TileType, acc: SSAValue | None = None):
        super().__init__(operands=[lhs, rhs, [acc] if acc is not None else []], result_types=[result])

    def verify_(self) -> None:
        try:
            shape = matmul_result_shape(self.lhs.type.get_shape(), self.rhs.type.get_shape())
        except ShapeError as e:
            raise VerifyException(str(e)) from None
        if shape != self.result.type.get_shape():
            raise VerifyException(f"matmul result shape is {list(shape)}, result type says "
                                  f"{list(self.result.type.get_shape())}")
        if self.lhs.type.element_type != self.rhs.type.element_type:
            raise VerifyException(f"matmul operands must share a dtype, got {self.lhs.type.element_type} "
                                  f"and {self.rhs.type.element_type}")
        if self.acc is not None and self.acc.type != self.result.type:
            raise VerifyException("matmul accumulator must have the result's type")


# --------------------------------------------------------------------------- block scaling

#: element types of a block-scaled tile (`tile.quantize` produces only f4E2M1FN)
BLOCK_SCALED_TYPES = ("f4E2M1FN", "f8E4M3FN", "f8E5M2")
#: scale types: ue8m0 powers of two (MX) and e4m3 (NVFP4; the hardware reads it as ue4m3)
SCALE_TYPES = ("f8E8M0FNU", "f8E4M3FN")
#: what `tile.quantize` reads and `tile.dequantize` writes
UNSCALED_TYPES = ("f32", "f16", "bf16")


def _type_name(t: Attribute) -> str:
    from tilec.dtypes import from_ir
    try:
        return from_ir(element_type_of(t)).name
    except KeyError:
        return str(element_type_of(t))


def block_scales_shape(shape: Sequence[int], block: int) -> tuple[int, ...]:
    """Shape of the scales of a tile block-scaled along its last axis: one scale per
    `block` consecutive elements, `[..., K] -> [..., K / block]`."""
    if block <= 0:
        raise ShapeError(f"the scale block must be positive, got {block}")
    if len(shape) == 0:
        raise ShapeError("block scaling needs a tile, got a scalar")
    if shape[-1] % block:
        raise ShapeError(f"block {block} does not divide the last dim {shape[-1]} of a {list(shape)} tile")
    return (*shape[:-1], shape[-1] // block)


def scaled_matmul_result_shape(a: Sequence[int], a_scale: Sequence[int], b: Sequence[int],
                               b_scale: Sequence[int], block: int) -> tuple[int, int]:
    """`[M, N]` of a block-scaled `a @ b`, checking the scales: `a` [M, K] with `a_scale`
    [M, K/block] and `b` [K, N] with `b_scale` [N, K/block] (one row of scales per output
    column, as the hardware's SFB)."""
    if len(a) != 2 or len(b) != 2:
        raise ShapeError(f"scaled matmul needs 2-D tiles, got shapes {list(a)} and {list(b)}")
    (M, K), (K2, N) = a, b
    if K != K2:
        raise ShapeError(f"matmul shapes {list(a)} and {list(b)} do not agree: inner dimensions {K} and {K2} differ")
    if block <= 0:
        raise ShapeError(f"the scale block must be positive, got {block}")
    if K % block:
        raise ShapeError(f"block {block} does not divide K = {K} of a scaled matmul")
    for name, got, want, what in (("a_scale", a_scale, (M, K // block), "[M, K/block]"),
                                  ("b_scale", b_scale, (N, K // block), "[N, K/block]")):
        if tuple(got) != want:
            raise ShapeError(f"{name} must have shape {what} = {list(want)} for a [{M}, {K}] @ [{K}, {N}] "
                             f"matmul with block {block}, got {list(got)}")
    return (M, N)


def _check_types(what: str, t: Attribute, allowed: tuple[str, ...]) -> None:
    if _type_name(t) not in allowed:
        raise VerifyException(f"{what} must hold one of {', '.join(allowed)}, got {_type_name(t)}")


def _check_block_scales(q: TileType, scales: TileType, block: int) -> None:
    try:
        want = block_scales_shape(q.get_shape(), block)
    except ShapeError as e:
        raise VerifyException(str(e)) from None
    if scales.get_shape() != want:
        raise VerifyException(f"scales of a {list(q.get_shape())} tile with block {block} must have shape "
                               f"{list(want)}, got {list(scales.get_shape())}")


@irdl_op_definition
class QuantizeOp(IRDLOperation):
    """Quantize to e2m1 with one scale per `block` elements of the last axis (`ct.quantize`).

    Per block, with amax its largest magnitude (computed in f32):
    * f8E8M0FNU scales (MX): scale = 2^(floor(log2(amax)) - 2) (2 is e2m1's emax),
      clamped to [2^-127, 2^127]; a zero block gets 2^-127, a block with inf or NaN a
      NaN scale;
    * f8E4M3FN scales (NVFP4): scale = amax / 6 rounded to nearest-even e4m3,
      saturating at 448; where it rounds to 0 the block quantizes to 0.
    Then result = x / scale rounded to nearest-even e2m1, saturating at +-6.

    ```mlir
    %q, %s = tile.quantize %x block 32 : !tile.tile<128x64xf32> -> !tile.tile<128x64xf4E2M1FN>, !tile.tile<128x2xf8E8M0FNU>
    ```
    """

    name = "tile.quantize"
    source = operand_def(TileType)
    block = prop_def(IntegerAttr[I64])
    result = result_def(TileType)
    scales = result_def(TileType)
    traits = traits_def(Pure())
    assembly_format = "$source `block` $block attr-dict `:` type($source) `->` type($result) `,` type($scales)"

    def __init__(self, source: SSAValue, block: int, elt: Attribute, scale_elt: Attribute):
        shape = source.type.get_shape()
        super().__init__(operands=[source], properties={"block": _int_prop(block)},
                         result_types=[TileType(shape, elt), TileType(block_scales_shape(shape, block), scale_elt)])

    def verify_(self) -> None:
        if self.source.type.get_shape() != self.result.type.get_shape():
            raise VerifyException(f"quantized tile has shape {list(self.result.type.get_shape())}, "
                                  f"the source {list(self.source.type.get_shape())}")
        _check_types("the quantized source", self.source.type, UNSCALED_TYPES)
        _check_types("the quantized tile", self.result.type, ("f4E2M1FN",))
        _check_types("the scales", self.scales.type, SCALE_TYPES)
        _check_block_scales(self.result.type, self.scales.type, self.block.value.data)


@irdl_op_definition
class DequantizeOp(IRDLOperation):
    """`source * scales`, each scale repeated over its `block` elements of the last axis
    (`ct.dequantize`): exact in f32, then rounded to the result type (nearest even).

    ```mlir
    %x = tile.dequantize %q scale %s block 32 : !tile.tile<128x64xf4E2M1FN>, !tile.tile<128x2xf8E8M0FNU> -> !tile.tile<128x64xf32>
    ```
    """

    name = "tile.dequantize"
    source = operand_def(TileType)
    scales = operand_def(TileType)
    block = prop_def(IntegerAttr[I64])
    result = result_def(TileType)
    traits = traits_def(Pure())
    assembly_format = ("$source `scale` $scales `block` $block attr-dict `:` type($source) `,` type($scales) "
                       "`->` type($result)")

    def __init__(self, source: SSAValue, scales: SSAValue, block: int, elt: Attribute):
        super().__init__(operands=[source, scales], properties={"block": _int_prop(block)},
                         result_types=[TileType(source.type.get_shape(), elt)])

    def verify_(self) -> None:
        if self.source.type.get_shape() != self.result.type.get_shape():
            raise VerifyException(f"dequantized tile has shape {list(self.result.type.get_shape())}, "
                                  f"the source {list(self.source.type.get_shape())}")
        _check_types("the dequantized source", self.source.type, BLOCK_SCALED_TYPES)
        _check_types("the scales", self.scales.type, SCALE_TYPES)
        _check_types("the dequantized result", self.result.type, UNSCALED_TYPES)
        _check_block_scales(self.source.type, self.scales.type, self.block.value.data)


@irdl_op_definition
class ScaledMatmulOp(IRDLOperation):
    """Block-scaled matrix product (`ct.matmul(a, b, a_scale=.., b_scale=..)`), in f32:

        result[m, n] = acc[m, n] + sum_k lhs[m, k] * lhs_scale[m, k / block]
                                         * rhs[k, n] * rhs_scale[n, k / block]

    `lhs` [M, K] and `rhs` [K, N] hold e2m1 (or fp8) values; `lhs_scale` [M, K/block]
    and `rhs_scale` [N, K/block] are ue8m0 (MX) or e4m3 (NVFP4), one type for both.
    Each product is exact; the sum order is the target's (tcgen05 kind::mxf4 /
    kind::mxf4nvf4 on sm_100a).

    ```mlir
    %c = tile.scaled_matmul %a scale %sa, %b scale %sb, %acc block 32
         : !tile.tile<128x64xf4E2M1FN>, !tile.tile<128x2xf8E8M0FNU>, !tile.tile<64x128xf4E2M1FN>,
           !tile.tile<128x2xf8E8M0FNU> -> !tile.tile<128x128xf32>
    ```
    """

    name = "tile.scaled_matmul"
    ACC: ClassVar = VarConstraint("ACC", BaseAttr(TileType))
    lhs = operand_def(TileType)
    lhs_scale = operand_def(TileType)
    rhs = operand_def(TileType)
    rhs_scale = operand_def(TileType)
    acc = opt_operand_def(ACC)
    block = prop_def(IntegerAttr[I64])
    result = result_def(ACC)
    traits = traits_def(Pure())
    assembly_format = ("$lhs `scale` $lhs_scale `,` $rhs `scale` $rhs_scale (`,` $acc^)? `block` $block attr-dict "
                       "`:` type($lhs) `,` type($lhs_scale) `,` type($rhs) `,` type($rhs_scale) `->` type($result)")

    def __init__(self, lhs: SSAValue, lhs_scale: SSAValue, rhs: SSAValue, rhs_scale: SSAValue, block: int,
                 result: TileType, acc: SSAValue | None = None):
        super().__init__(operands=[lhs, lhs_scale, rhs, rhs_scale, [acc] if acc is not None else []],
                         properties={"block": _int_prop(block)}, result_types=[result])

    def verify_(self) -> None:
        try:
            shape = scaled_matmul_result_shape(self.lhs.type.get_shape(), self.lhs_scale.type.get_shape(),
                                               self.rhs.type.get_shape(), self.rhs_scale.type.get_shape(),
                                               self.block.value.data)
        except ShapeError as e:
            raise VerifyException(str(e)) from None
        if shape != self.result.type.get_shape():
            raise VerifyException(f"scaled matmul result shape is {list(shape)}, result type says "
                                  f"{list(self.result.type.get_shape())}")
        _check_types("lhs", self.lhs.type, BLOCK_SCALED_TYPES)
        _check_types("rhs", self.rhs.type, BLOCK_SCALED_TYPES)
        _check_types("lhs_scale", self.lhs_scale.type, SCALE_TYPES)
        if self.rhs_scale.type.element_type != self.lhs_scale.type.element_type:
            raise VerifyException(f"both scales must share a type, got {_type_name(self.lhs_scale.type)} "
                                  f"and {_type_name(self.rhs_scale.type)}")
        _check_types("the result", self.result.type, ("f32",))


def reduce_result_shape(shape: Sequence[int], axis: int, keepdims: bool) -> tuple[int, ...]:
    """Shape after reducing `axis` (already normalised to >= 0)."""
    if not 0 <= axis < len(shape):
        raise ShapeError(f"axis {axis} is out of range for a tile of shape {list(shape)}")
    if keepdims:
        return tuple(1 if i == axis else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i != axis)


REDUCE_KINDS = ("sum", "max", "min", "argmax", "argmin")


@irdl_op_definition
class ReduceOp(IRDLOperation):
    """Reduce one axis of a tile: sum, max, min, argmax or argmin (`ct.sum`, ...).

    Float sums accumulate in f32; argmax/argmin give i32 indices (first occurrence).

    ```mlir
    %s = tile.reduce "sum" %x {axis = 1 : i64, keepdims = false} : !tile.tile<64x64xf32> -> !tile.tile<64xf32>
    ```
    """

    name = "tile.reduce"
    kind = prop_def(StringAttr)
    source = operand_def(TileType)
    axis = prop_def(IntegerAttr[I64])
    keepdims = prop_def(BoolAttr, default_value=BoolAttr.from_bool(False))
    result = result_def(TileType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$kind $source attr-dict `:` type($source) `->` type($result)"

    def __init__(self, kind: str, source: SSAValue, axis: int, keepdims: bool, result_elt: Attribute):
        shape = reduce_result_shape(source.type.get_shape(), axis, keepdims)
        super().__init__(
            operands=[source],
            properties={"kind": StringAttr(kind), "axis": _int_prop(axis),
                        "keepdims": BoolAttr.from_bool(keepdims)},
            result_types=[TileType(shape, result_elt)],
        )

    def verify_(self) -> None:
        if self.kind.data not in REDUCE_KINDS:
            raise VerifyException(f"unknown reduction {self.kind.data!r}; expected one of {REDUCE_KINDS}")
        try:
            shape = reduce_result_shape(self.source.type.get_shape(), self.axis.value.data,
                                        self.keepdims.value.data != 0)
        except ShapeError as e:
            raise VerifyException(str(e)) from None
        if shape != self.result.type.get_shape():
            raise VerifyException(f"reduced shape is {list(shape)}, result type says {list(self.result.type.get_shape())}")


# --------------------------------------------------------------------------- random


@irdl_op_definition
class RandOp(IRDLOperation):
    """Uniform floats in [0, 1) from Philox4x32-10 (`ct.rand`, used by `ct.dropout`).

    Each element's key is `(seed & 0xffffffff, seed >> 32)` and its counter
    `(offset, 0, 0, 0)`; the value is the first output word times 2**-32, so every
    backend draws the same numbers for the same seed and offsets (as Triton's `tl.rand`).

    ```mlir
    %u = tile.rand %seed, %offsets : i64, !tile.tile<64x64xi32> -> !tile.tile<64x64xf32>
    ```
    """

    name = "tile.rand"
    seed = operand_def(IntegerType)
    offsets = operand_def(TileType)
    result = result_def(TileType)
    traits = traits_def(Pure())
    assembly_format = "$seed `,` $offsets attr-dict `:` type($seed) `,` type($offsets) `->` type($result)"

    def __init__(self, seed: SSAValue, offsets: SSAValue):
        from xdsl.dialects.builtin import f32
        super().__init__(operands=[seed, offsets], result_types=[TileType(offsets.type.get_shape(), f32)])

    def verify_(self) -> None:
        if self.offsets.type.element_type != i32:
            raise VerifyException("tile.rand offsets must be an i32 tile")


Tile = Dialect(
    "tile",
    [TileIdxOp, NumTilesOp, DimOp, LoadOp, StoreOp, SplatOp, BroadcastOp, ReshapeOp, PermuteOp,
     ArangeOp, ExtractOp, CmpOp, SelectOp, CastOp, MatmulOp, QuantizeOp, DequantizeOp, ScaledMatmulOp,
     ReduceOp, RandOp,
     *BINARY_OP_CLASSES.values(), *UNARY_OP_CLASSES.values()],
    [TileType, TensorType],
)
