"""FP4 (e2m1) on the host: packing two per byte, block-scaled quantization, and the
`FP4Tensor` wrapper that passes packed data to a kernel.

**Packed layout.** An fp4 tensor of logical shape `[..., n]` is stored as uint8
`[..., ceil(n / 2)]`: along the innermost dim, element `2i` is the LOW nibble and
element `2i+1` the HIGH nibble of byte `i` (an odd `n` leaves the last high nibble 0).
A nibble is the e2m1 code: sign bit 3, exponent bits 2..1, mantissa bit 0 (0x7 = 6.0,
0x9 = -0.5).  This is PTX's order when one `cvt.rn.satfinite.e2m1x2.f32 d, a, b` makes
a byte: its first source goes to the upper nibble, so pass `a` = element 2i+1,
`b` = element 2i.

**Block scaling** (`quantize`, and in kernels `ct.quantize` / `tile.quantize`, which
compute exactly the same numbers): the last axis is cut into blocks of `block`
elements, each with one scale, computed in float32 from the block's largest magnitude
`amax`:

* ``scale_dtype=float8_e8m0fnu`` (MXFP4, OCP MX rule): `scale = 2^(floor(log2(amax)) - 2)`
  (2 is e2m1's largest exponent), clamped to [2^-127, 2^127]; an all-zero block gets
  2^-127, a block holding inf or NaN gets the NaN scale (0xFF);
* ``scale_dtype=float8_e4m3fn`` (NVFP4, usually ``block=16``): `scale = amax / 6`
  rounded to nearest-even e4m3, saturating at 448; a block whose scale rounds to 0
  quantizes to zeros.  An optional per-tensor float32 ``global_scale`` g divides the
  input first: `quantize(x, g) = quantize(x / g)`, and dequantizing multiplies it back.

Then `q = x / scale`, rounded to nearest-even e2m1 and saturated to +-6 (as
`cvt.rn.satfinite`).  Dequantizing `q * scale` is exact in float32.

Only numpy and ml_dtypes: nibbles are e2m1 codes as ml_dtypes stores them (one per
byte), so no lookup tables.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np

F4 = np.dtype(ml_dtypes.float4_e2m1fn)
E8M0 = np.dtype(ml_dtypes.float8_e8m0fnu)
E4M3 = np.dtype(ml_dtypes.float8_e4m3fn)
F32 = np.dtype(np.float32)

E2M1_MAX = 6.0        # largest finite e2m1
E2M1_EMAX = 2         # its exponent: 6 = 1.5 * 2^2
E4M3_MAX = 448.0

__all__ = ["FP4Tensor", "fp4_tensor", "pack", "unpack", "quantize", "dequantize", "to_e2m1"]


# --------------------------------------------------------------------------- packing


def to_e2m1(x) -> np.ndarray:
    """`x` rounded to nearest-even e2m1, saturating to +-6 (one value per byte).

    Like a kernel's cast, the value is a float32 first (narrower floats exactly; float64
    is rounded to float32, as `cvt` to e2m1 reads f32), then rounded once to e2m1."""
    x = np.asarray(x)
    if x.dtype == F4:
        return x
    if x.dtype != F32:
        x = x.astype(F32)
    return np.clip(x, -E2M1_MAX, E2M1_MAX).astype(F4)


def pack(x) -> np.ndarray:
    """Pack `x` (`ml_dtypes.float4_e2m1fn`, or floats rounded with `to_e2m1`) two per byte
    along the last axis: uint8 `[..., ceil(n/2)]`, element 2i in the low nibble of byte i,
    element 2i+1 in the high nibble."""
    codes = to_e2m1(x)
    if codes.ndim == 0:
        raise ValueError("pack needs an array of rank >= 1, got a scalar")
    codes = codes.view(np.uint8) & np.uint8(0xF)
    if codes.shape[-1] % 2:
        codes = np.concatenate([codes, np.zeros(codes.shape[:-1] + (1,), np.uint8)], axis=-1)
    return np.ascontiguousarray(codes[..., 0::2] | (codes[..., 1::2] << np.uint8(4)))


def unpack(packed, n: int | None = None) -> np.ndarray:
    """The `ml_dtypes.float4_e2m1fn` array (one element per byte) of packed uint8 data;
    `n`: the logical innermost extent (default: two per byte; `2 * bytes - 1` drops the
    padding nibble of an odd extent)."""
    p = np.asarray(packed)
    if p.dtype != np.uint8:
        raise TypeError(f"packed fp4 data must be uint8, got {p.dtype}")
    if p.ndim == 0:
        raise ValueError("unpack needs an array of rank >= 1, got a scalar")
    nb = p.shape[-1]
    n = 2 * nb if n is None else int(n)
    if (n + 1) // 2 != nb:
        raise ValueError(f"{nb} packed bytes per row hold {2 * nb - 1} or {2 * nb} fp4 values, not {n}")
    codes = np.empty(p.shape[:-1] + (2 * nb,), np.uint8)
    codes[..., 0::2] = p & np.uint8(0xF)
    codes[..., 1::2] = p >> np.uint8(4)
    return codes[..., :n].copy().view(F4) if n != 2 * nb else codes.view(F4)


# --------------------------------------------------------------------------- block scaling


def _scale_dtype(scale_dtype) -> np.dtype:
    from tilec import dtypes as dt

    try:
        d = dt.lookup(scale_dtype)
    except KeyError:
        d = None
    if d is None or d.np_dtype not in (E8M0, E4M3):
        raise ValueError(f"scale_dtype must be float8_e8m0fnu (MX) or float8_e4m3fn (NVFP4), got {scale_dtype!r}")
    return d.np_dtype


def block_scales(amax: np.ndarray, scale_dtype: np.dtype) -> np.ndarray:
    """The scale of each block from its largest magnitude `amax` (float32), in `scale_dtype`."""
    amax = np.asarray(amax, F32)
    if scale_dtype == E8M0:
        _, e = np.frexp(amax)                      # amax = m * 2^e, m in [0.5, 1): floor(log2) = e - 1
        exp = np.where(amax > 0, e.astype(np.int32) - 1 - E2M1_EMAX, -127)
        scale = np.ldexp(np.float32(1), np.clip(exp, -127, 127)).astype(F32)
        scale = np.where(np.isfinite(amax), scale, np.float32(np.nan))
        return scale.astype(E8M0)
    # e4m3: amax / 6, nearest even, saturating (ml_dtypes turns overflow into NaN)
    s = np.minimum(amax / np.float32(E2M1_MAX), np.float32(E4M3_MAX))
    return s.astype(E4M3)


def quantize_values(x, block: int, scale_dtype=E8M0) -> tuple[np.ndarray, np.ndarray]:
    """Block-scale `x` along its last axis: (e2m1 values one per byte, scales).

    The semantics of `tile.quantize`, shared by `quantize` and the CPU backend; `x` is
    computed in float32 (f16/bf16 exactly; wider floats are rounded to f32 first)."""
    sd = _scale_dtype(scale_dtype)
    x = np.asarray(x)
    if x.dtype != F32:
        x = x.astype(F32)
    if x.ndim == 0 or block <= 0 or x.shape[-1] % block:
        raise ValueError(f"block {block} must be positive and divide the last dim of a {list(x.shape)} array")
    xb = x.reshape(x.shape[:-1] + (x.shape[-1] // block, block))
    amax = np.max(np.abs(xb), axis=-1)
    scales = block_scales(amax, sd)
    s = scales.astype(F32)[..., None]
    with np.errstate(all="ignore"):
        scaled = xb / s
    if sd == E4M3:
        scaled = np.where(s > 0, scaled, np.float32(0))
    return to_e2m1(scaled).reshape(x.shape), scales


def dequantize_values(q, scales, block: int) -> np.ndarray:
    """`q * scales` in float32, each scale repeated over its `block` elements of the last axis."""
    q = np.asarray(q)
    s = np.asarray(scales).astype(F32)
    k = q.shape[-1]
    out = q.astype(F32).reshape(q.shape[:-1] + (k // block, block)) * s[..., None]  # leading dims broadcast
    return out.reshape(out.shape[:-2] + (k,))


def quantize(x, block: int = 32, scale_dtype=ml_dtypes.float8_e8m0fnu,
             global_scale: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Host reference of `ct.quantize`: `(packed, scales)` for `x` `[..., K]`.

    packed: uint8 `[..., K/2]` (see `pack`); scales: `scale_dtype` `[..., K/block]`.
    MXFP4: ``block=32, scale_dtype=float8_e8m0fnu``; NVFP4: ``block=16,
    scale_dtype=float8_e4m3fn`` with an optional float32 ``global_scale`` that divides
    `x` first (the module docstring has the rules).
    """
    x = np.asarray(x)
    if global_scale is not None:
        x = x.astype(F32) / np.float32(global_scale)
    q, scales = quantize_values(x, block, scale_dtype)
    return pack(q), scales


def dequantize(packed, scales, block: int | None = None, global_scale: float | None = None,
               n: int | None = None) -> np.ndarray:
    """float32 values of packed fp4 data and its block scales (`quantize`'s inverse up to
    rounding); `block` defaults to `n / scales.shape[-1]`."""
    q = unpack(packed, n)
    s = np.asarray(scales)
    if block is None:
        block = q.shape[-1] // max(s.shape[-1], 1)
    if s.shape != q.shape[:-1] + (q.shape[-1] // block,) or q.shape[-1] % block:
        raise ValueError(f"scales of shape {list(s.shape)} do not fit {list(q.shape)} fp4 values with block {block}")
    out = dequantize_values(q, s, block)
    return out * np.float32(global_scale) if global_scale is not None else out


# --------------------------------------------------------------------------- kernel arguments


class _Flags:
    c_contiguous = True


class FP4Tensor:
    """An fp4 tensor argument stored packed, two elements per byte (`ct.fp4_tensor`).

    `packed`: C-contiguous uint8 `[..., ceil(n/2)]` (a numpy array, or a GPU tensor for
    GPU launches); `shape`: the logical shape `[..., n]` the kernel sees.  On the CPU
    backend the kernel reads the packed bytes and, where it stores into the tensor,
    writes them back packed when the launch ends.
    """

    __slots__ = ("packed", "shape")
    dtype = F4
    flags = _Flags()

    def __init__(self, packed, shape=None):
        pshape = tuple(int(d) for d in packed.shape)
        pdtype = str(getattr(packed, "dtype", "")).removeprefix("torch.")
        if pdtype != "uint8":
            raise TypeError(f"packed fp4 data must be uint8, got {pdtype or type(packed).__name__}")
        if not pshape:
            raise ValueError("packed fp4 data needs rank >= 1")
        shape = pshape[:-1] + (2 * pshape[-1],) if shape is None else tuple(int(d) for d in shape)
        if len(shape) != len(pshape) or shape[:-1] != pshape[:-1] or (shape[-1] + 1) // 2 != pshape[-1]:
            raise ValueError(f"packed fp4 data of shape {list(pshape)} does not hold a {list(shape)} tensor "
                             f"(expected packed shape {list(shape[:-1]) + [(shape[-1] + 1) // 2]})")
        if isinstance(packed, np.ndarray) and not packed.flags.c_contiguous:
            raise ValueError("packed fp4 data must be C-contiguous")
        self.packed, self.shape = packed, shape

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def strides(self) -> tuple[int, ...]:
        return tuple(getattr(self.packed, "strides", ()))

    def numpy(self) -> np.ndarray:
        """The values as `ml_dtypes.float4_e2m1fn`, one per byte (host data only)."""
        return unpack(self.packed, self.shape[-1])

    def __repr__(self) -> str:
        return f"FP4Tensor(shape={list(self.shape)}, packed={type(self.packed).__name__}{list(self.packed.shape)})"


def fp4_tensor(data, shape=None) -> FP4Tensor:
    """An fp4 kernel argument: `data` is packed uint8 (with the logical `shape`, default
    two values per byte) or an array of values to round to e2m1 and pack."""
    dtype = str(getattr(data, "dtype", "")).removeprefix("torch.")
    if dtype == "uint8":
        return FP4Tensor(data, shape)
    x = np.asarray(data)
    if shape is not None and tuple(shape) != x.shape:
        raise ValueError(f"values of shape {list(x.shape)} given with shape {list(shape)}")
    return FP4Tensor(pack(x), x.shape)
