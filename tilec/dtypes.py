"""Element types of tiles and tensors, their numpy storage and the promotion rules.

Every dtype is a `DType` singleton with a short `name` (``"f16"``), a numpy dtype for
host storage (low-precision floats come from ``ml_dtypes``), and the matching xDSL
builtin type.  The promotion rules are numpy-like with "weak" Python scalars:

* bool < integers < floats (a float always wins over an integer);
* two integers: the wider one (signed wins at equal width: u8 + i8 -> i16);
* two floats: the wider one (if it holds every value of the other, else the next wider
  standard float: e5m2 + e2m3 -> f16); two different floats of equal width (f16 + bf16,
  e4m3 + e5m2, e2m3 + e3m2) promote to the next wider standard float (f32, f16, e4m3,
  which holds every e2m3 and e3m2 value);
* the scale type e8m0 (powers of two, no zero or sign) promotes like bf16, which holds
  all its values: e8m0 + e4m3 -> bf16, e8m0 + f16 -> f32;
* a Python ``int`` or ``float`` takes the tile's dtype (``f16_tile * 2.0`` is f16),
  except ``int_tile * 2.5``, which is f32;
* ``matmul`` accumulates floats in f32 and integers in i32.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import ml_dtypes
import numpy as np


@dataclass(frozen=True, eq=False)
class DType:
    name: str            # short IR spelling: f32, bf16, f8E4M3FN, i32 ...
    api_name: str        # name in the Python API: float32, bfloat16 ...
    kind: str            # "bool" | "int" | "uint" | "float"
    bits: int
    np_dtype: np.dtype

    def __repr__(self) -> str:
        return f"tilec.{self.api_name}"

    @property
    def is_float(self) -> bool:
        return self.kind == "float"

    @property
    def is_int(self) -> bool:
        return self.kind in ("int", "uint")

    @property
    def is_signed(self) -> bool:
        return self.kind == "int"

    @cached_property
    def ir_type(self):
        """The xDSL builtin type (built once, attributes are not uniqued in xDSL)."""
        from xdsl.dialects import builtin as b

        if self.kind == "bool":
            return b.IntegerType(1)
        if self.kind == "int":
            return b.IntegerType(self.bits)
        if self.kind == "uint":
            return b.IntegerType(self.bits, b.Signedness.UNSIGNED)
        return {
            "f32": b.Float32Type, "f16": b.Float16Type, "bf16": b.BFloat16Type,
            "f64": b.Float64Type, "f8E4M3FN": b.Float8E4M3FNType,
            "f8E5M2": b.Float8E5M2Type, "f4E2M1FN": b.Float4E2M1FNType,
            "f8E8M0FNU": b.Float8E8M0FNUType, "f6E2M3FN": b.Float6E2M3FNType,
            "f6E3M2FN": b.Float6E3M2FNType,
        }[self.name]()


def _d(name, api, kind, bits, npd):
    return DType(name, api, kind, bits, np.dtype(npd))


float64 = _d("f64", "float64", "float", 64, np.float64)
float32 = _d("f32", "float32", "float", 32, np.float32)
float16 = _d("f16", "float16", "float", 16, np.float16)
bfloat16 = _d("bf16", "bfloat16", "float", 16, ml_dtypes.bfloat16)
float8_e4m3fn = _d("f8E4M3FN", "float8_e4m3fn", "float", 8, ml_dtypes.float8_e4m3fn)
float8_e5m2 = _d("f8E5M2", "float8_e5m2", "float", 8, ml_dtypes.float8_e5m2)
float8_e8m0fnu = _d("f8E8M0FNU", "float8_e8m0fnu", "float", 8, ml_dtypes.float8_e8m0fnu)
float4_e2m1fn = _d("f4E2M1FN", "float4_e2m1fn", "float", 4, ml_dtypes.float4_e2m1fn)
#: fp6 (OCP MX): stored one value per byte (ml_dtypes' storage, code in the low 6 bits); `tilec.fp6`
#: packs them four to three bytes for interchange and describes the smem layout of the MMAs
float6_e2m3fn = _d("f6E2M3FN", "float6_e2m3fn", "float", 6, ml_dtypes.float6_e2m3fn)
float6_e3m2fn = _d("f6E3M2FN", "float6_e3m2fn", "float", 6, ml_dtypes.float6_e3m2fn)
int64 = _d("i64", "int64", "int", 64, np.int64)
int32 = _d("i32", "int32", "int", 32, np.int32)
int16 = _d("i16", "int16", "int", 16, np.int16)
int8 = _d("i8", "int8", "int", 8, np.int8)
uint8 = _d("ui8", "uint8", "uint", 8, np.uint8)
uint32 = _d("ui32", "uint32", "uint", 32, np.uint32)
bool_ = _d("i1", "bool", "bool", 1, np.bool_)

ALL = (float64, float32, float16, bfloat16, float8_e4m3fn, float8_e5m2, float8_e8m0fnu,
       float4_e2m1fn, float6_e2m3fn, float6_e3m2fn, int64, int32, int16, int8, uint8, uint32, bool_)
BY_NAME = {d.name: d for d in ALL} | {d.api_name: d for d in ALL}
_BY_NP = {d.np_dtype: d for d in ALL}


def from_numpy(np_dtype) -> DType:
    """The tilec dtype that stores like `np_dtype`; raises KeyError if there is none."""
    return _BY_NP[np.dtype(np_dtype)]


def from_ir(t) -> DType:
    """The tilec dtype of an xDSL builtin element type."""
    from xdsl.dialects import builtin as b

    if isinstance(t, b.IntegerType):
        w = t.width.data
        if w == 1:
            return bool_
        unsigned = t.signedness.data == b.Signedness.UNSIGNED
        return BY_NAME[("ui" if unsigned else "i") + str(w)]
    key = str(t)
    if key in BY_NAME:
        return BY_NAME[key]
    raise KeyError(f"no tilec dtype for IR type {t}")


def lookup(name) -> DType:
    """Accepts a DType, an API name ('float16'), an IR name ('f16') or a numpy dtype."""
    if isinstance(name, DType):
        return name
    if isinstance(name, str) and name in BY_NAME:
        return BY_NAME[name]
    if name is None or isinstance(name, str):  # np.dtype(None) would be float64
        raise KeyError(f"unknown dtype {name!r}")
    try:
        return from_numpy(name)
    except (TypeError, KeyError):
        raise KeyError(f"unknown dtype {name!r}") from None


_NEXT_WIDER_FLOAT = {16: float32, 8: float16, 6: float8_e4m3fn, 4: float8_e4m3fn, 32: float64}


def promote(a: DType, b: DType) -> DType:
    """Result dtype of a binary op between two tiles (see the module docstring)."""
    if a is b:
        return a
    # e8m0 (powers of two only, no zero, no sign) promotes like bf16, which holds all its values
    a, b = (bfloat16 if x is float8_e8m0fnu else x for x in (a, b))
    if a is b:
        return a
    order = {"bool": 0, "uint": 1, "int": 1, "float": 2}
    if order[a.kind] != order[b.kind]:
        return a if order[a.kind] > order[b.kind] else b
    if a.is_float:
        if a.bits != b.bits:
            wide, narrow = (a, b) if a.bits > b.bits else (b, a)
            while not holds(wide, narrow):      # e5m2 lacks e2m3's third mantissa bit: f16
                wide = _NEXT_WIDER_FLOAT[wide.bits]
            return wide
        return _NEXT_WIDER_FLOAT[a.bits]
    # integers
    if a.kind == b.kind:
        return a if a.bits > b.bits else b
    s, u = (a, b) if a.is_signed else (b, a)
    if s.bits > u.bits:
        return s
    return BY_NAME["i" + str(min(64, u.bits * 2))]


@lru_cache(maxsize=None)
def holds(wide: DType, narrow: DType) -> bool:
    """Every finite value of float `narrow` is a value of float `wide` (checked value by value
    for <= 8-bit `narrow`; a wider `narrow` is held by the wider standard floats)."""
    if wide is narrow:
        return True
    if narrow.bits > 8:
        return wide.bits > narrow.bits
    v = np.arange(1 << narrow.bits, dtype=np.uint8).view(narrow.np_dtype).astype(np.float64)
    v = v[np.isfinite(v)]
    with np.errstate(all="ignore"):
        return bool(np.array_equal(v.astype(wide.np_dtype).astype(np.float64), v))


def promote_with_scalar(t: DType, value) -> DType:
    """Result dtype of a tile of dtype `t` combined with a Python scalar (weak typing)."""
    if isinstance(value, bool):
        return t
    if isinstance(value, int):
        return int32 if t is bool_ else t
    if isinstance(value, float):
        return t if t.is_float else float32
    raise TypeError(f"not a scalar: {value!r}")


def accumulator_for(t: DType) -> DType:
    """The dtype `matmul` accumulates in."""
    return float32 if t.is_float else int32


def python_scalar_dtype(value) -> DType:
    """The dtype a Python scalar becomes when materialised on its own."""
    if isinstance(value, bool):
        return bool_
    if isinstance(value, int):
        return int32 if -2**31 <= value < 2**31 else int64
    if isinstance(value, float):
        return float32
    raise TypeError(f"not a scalar: {value!r}")
