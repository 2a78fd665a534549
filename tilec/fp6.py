"""FP6 (e2m3, e3m2) on the host: rounding, dense packing four values to three bytes, and the
16-byte-aligned group layout that tcgen05 kind::f8f6f4 reads from shared memory.

**Kernel arguments.** An fp6 tensor argument is a plain numpy array of
`ml_dtypes.float6_e2m3fn` / `float6_e3m2fn` (`ct.float6_e2m3fn` / `ct.float6_e3m2fn`): one
value per byte, the 6-bit code in the low bits (ml_dtypes' own storage).  That is the choice
because a byte per element keeps fp6 tensors ordinary byte-addressed arrays (any offset, any
transpose, the same code paths as fp8 on every backend), needs no wrapper type, and the one
hardware consumer, `tcgen05.mma kind::f8f6f4`, does not read dense fp6 anyway: the sm_100a
lowering (`backends/ptx/tcgen05_direct.py`) packs each 16 consecutive k into the padded group
below while copying an operand to shared memory.  The cost of that choice: TMA's fp6 type
(``16U6_ALIGN16B``) reads *dense* rows, so K loops fed by TMA bring fp6 tiles as plain bytes
(UINT8) and pack each 16 codes into their 12 bytes in shared memory, in place
(`backends/ptx/tcgen05_f8f6f4_tma.py`): the same 16 bytes of global traffic per 16 values as
the one-per-byte storage itself.  A dense fp6 argument type (like `ct.fp4_tensor`), which would
let ``16U6_ALIGN16B`` do the packing and cut global traffic by a quarter, would need the
launch's argument binding (`tilec/jit.py`) and the CPU backend to learn it first.

**Dense packing** (`pack` / `unpack`, for interchange and for the global side of TMA's
``CU_TENSOR_MAP_DATA_TYPE_16U6_ALIGN16B`` / PTX ``.b6x16_p32``): along the last axis, element
i occupies bits [6i, 6i + 6) of a little-endian bit string, so four values fill three bytes:
byte 0 = c0 | c1 << 6, byte 1 = c1 >> 2 | c2 << 4, byte 2 = c2 >> 4 | c3 << 2.  A last
axis of n values takes ceil(6n / 8) bytes (the unused high bits of the last byte are 0).

**Group layout** (`align16`): what kind::f8f6f4 reads from shared memory for fp4 and fp6
operands (PTX ISA "Packing format used for matrix A and B by .kind::mxf8f6f4 in Shared
Memory"): each 16 consecutive elements are packed densely (8 bytes of fp4 = `tilec.fp4.pack`,
12 bytes of fp6 = `pack`) at the start of their own 16 bytes, the rest is padding (TMA's
ALIGN16B types leave it uninitialised; here it is 0).

Only numpy and ml_dtypes: codes come from ml_dtypes' conversions, no lookup tables.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

E2M3 = np.dtype(ml_dtypes.float6_e2m3fn)
E3M2 = np.dtype(ml_dtypes.float6_e3m2fn)
F4 = np.dtype(ml_dtypes.float4_e2m1fn)
F32 = np.dtype(np.float32)

__all__ = ["round_to", "pack", "unpack", "align16", "E2M3", "E3M2"]

_BITS = {E2M3: 6, E3M2: 6, F4: 4}


def _fp6_dtype(dtype) -> np.dtype:
    from tilec import dtypes as dt

    try:
        d = dt.lookup(dtype).np_dtype
    except KeyError:
        d = None
    if d not in (E2M3, E3M2):
        raise ValueError(f"dtype must be float6_e2m3fn or float6_e3m2fn, got {dtype!r}")
    return d


def round_to(x, dtype) -> np.ndarray:
    """`x` rounded to nearest-even fp6 `dtype`, saturating to +-max (one value per byte), as a
    kernel's cast does: through float32 first (float64 is rounded to float32 once)."""
    d = _fp6_dtype(dtype)
    x = np.asarray(x)
    if x.dtype == d:
        return x
    if x.dtype != F32:
        x = x.astype(F32)
    big = np.float32(ml_dtypes.finfo(d).max)
    return np.clip(x, -big, big).astype(d)


def pack(x, dtype=None) -> np.ndarray:
    """Pack fp6 values four to three bytes along the last axis (the module docstring's
    order): uint8 `[..., ceil(6 n / 8)]`.  `x`: an fp6 array, or floats with `dtype`."""
    x = np.asarray(x)
    if dtype is None:
        if x.dtype not in (E2M3, E3M2):
            raise ValueError(f"pack needs float6_e2m3fn / float6_e3m2fn values or a dtype=, got {x.dtype}")
        dtype = x.dtype
    codes = round_to(x, dtype)
    if codes.ndim == 0:
        raise ValueError("pack needs an array of rank >= 1, got a scalar")
    bitstr = np.unpackbits(codes.view(np.uint8)[..., None], axis=-1, bitorder="little")[..., :6]
    bitstr = bitstr.reshape(codes.shape[:-1] + (6 * codes.shape[-1],))
    return np.packbits(bitstr, axis=-1, bitorder="little")


def unpack(packed, dtype, n: int | None = None) -> np.ndarray:
    """The fp6 array (one value per byte) of densely packed uint8 data; `n`: the logical
    last extent (default: all whole values the bytes hold, 8 * bytes // 6)."""
    d = _fp6_dtype(dtype)
    p = np.asarray(packed)
    if p.dtype != np.uint8:
        raise TypeError(f"packed fp6 data must be uint8, got {p.dtype}")
    if p.ndim == 0:
        raise ValueError("unpack needs an array of rank >= 1, got a scalar")
    nb = p.shape[-1]
    n = 8 * nb // 6 if n is None else int(n)
    if -(-6 * n // 8) != nb:
        raise ValueError(f"{nb} packed bytes per row do not hold exactly {n} fp6 values "
                         f"(that takes {-(-6 * n // 8)} bytes)")
    bitstr = np.unpackbits(p, axis=-1, bitorder="little")[..., :6 * n]
    bitstr = bitstr.reshape(p.shape[:-1] + (n, 6))
    codes = np.packbits(bitstr, axis=-1, bitorder="little")[..., 0]
    return np.ascontiguousarray(codes).view(d)


def align16(x) -> np.ndarray:
    """The kind::f8f6f4 shared-memory image of fp4 / fp6 values `x` (last axis a multiple of
    16): uint8 `[..., n]`, every 16 values packed densely at the start of their 16 bytes, the
    padding after them 0 (the module docstring)."""
    x = np.asarray(x)
    b = _BITS.get(x.dtype)
    if b is None:
        raise ValueError(f"align16 needs float4_e2m1fn or fp6 values, got {x.dtype}")
    if x.ndim == 0 or x.shape[-1] % 16:
        raise ValueError(f"align16 needs a last axis that is a multiple of 16, got shape {list(x.shape)}")
    groups = x.reshape(x.shape[:-1] + (x.shape[-1] // 16, 16))
    if b == 4:
        from tilec.fp4 import pack as pack4
        data = pack4(groups)
    else:
        data = pack(groups)
    out = np.zeros(groups.shape[:-1] + (16,), np.uint8)
    out[..., :2 * b] = data
    return out.reshape(x.shape)
