"""How each tilec dtype lives in PTX registers and memory.

Registers (one per element, see `layout.py`):

| dtype                         | register   | held as                                     |
|-------------------------------|------------|---------------------------------------------|
| f32, and f16/bf16/fp8 (narrow) | `%f` .f32  | the exact f32 value of the narrow number    |
| f64                           | `%fd` .f64 |                                             |
| i32, ui32, i16, i8, ui8       | `%r` .b32  | sign- (or zero-) extended from the width    |
| i64                           | `%rd` .b64 |                                             |
| bool (i1)                     | `%p` .pred |                                             |

Narrow floats are computed in f32 and rounded back after every op (`round_narrow`),
narrow ints are wrapped back to their width, exactly as the CPU interpreter does.
"""

from __future__ import annotations

import struct

import numpy as np

from tilec import dtypes as dt

#: register class -> PTX declaration type
REG_DECL = {"p": ".pred", "h": ".b16", "r": ".b32", "rd": ".b64", "f": ".f32", "fd": ".f64"}

NARROW_FLOATS = (dt.float16, dt.bfloat16, dt.float8_e4m3fn, dt.float8_e5m2)
FP8 = {dt.float8_e4m3fn: "e4m3", dt.float8_e5m2: "e5m2"}


def reg_class(d: dt.DType) -> str:
    if d is dt.bool_:
        return "p"
    if d.is_float:
        return "fd" if d.bits == 64 else "f"
    return "rd" if d.bits == 64 else "r"


def is_narrow_float(d: dt.DType) -> bool:
    return d.is_float and d.bits < 32


def is_narrow_int(d: dt.DType) -> bool:
    return d.is_int and d.bits < 32


def int_type(d: dt.DType) -> str:
    """`s32`/`u32`/`s64`/`u64` for integer arithmetic on dtype `d`'s registers."""
    return ("s" if d.is_signed else "u") + ("64" if d.bits == 64 else "32")


def bits_type(d: dt.DType) -> str:
    return "b64" if d.bits == 64 else "b32"


def float_type(d: dt.DType) -> str:
    return "f64" if d.bits == 64 else "f32"


def mem_bytes(d: dt.DType) -> int:
    """Bytes per element in global memory (numpy / torch storage)."""
    return d.np_dtype.itemsize


def f32_imm(x: float) -> str:
    return "0f%08X" % struct.unpack("<I", struct.pack("<f", np.float32(x)))[0]


def f64_imm(x: float) -> str:
    return "0d%016X" % struct.unpack("<Q", struct.pack("<d", float(x)))[0]


def float_imm(d: dt.DType, x: float) -> str:
    """Immediate of `x` rounded to dtype `d` (narrow floats as their exact f32 value)."""
    if d.bits == 64:
        return f64_imm(x)
    if is_narrow_float(d):
        with np.errstate(all="ignore"):
            x = float(np.array(x, dtype=np.float64).astype(d.np_dtype).astype(np.float32))
    return f32_imm(x)


def storage_bits(d: dt.DType, x) -> int:
    """The bit pattern of `x` stored as dtype `d` (for padding values in memory)."""
    with np.errstate(all="ignore"):
        a = np.array(x).astype(d.np_dtype)
    return int(a.view(np.dtype(f"u{a.itemsize}")))


def int_imm(d: dt.DType, x: int) -> str:
    """Immediate of integer `x` wrapped to dtype `d` and extended to its register width."""
    bits = d.bits
    x = int(x) & ((1 << bits) - 1)
    if d.is_signed and x >= 1 << (bits - 1):
        x -= 1 << bits
    return str(x)
