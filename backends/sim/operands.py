"""Shared-memory matrix operands of wgmma / tcgen05.mma, read through their descriptors.

K-major layouts, and MN-major ones for wgmma's 16-bit transpose bits (`matrix_index_mn`).  Row r of the operand
(M for A, N for B) and byte b along K (b < K * element bits / 8, 32 bytes per MMA for every
kind) sit at, before the swizzle:

    no swizzle ("interleave"): start + (r // 8) * SBO + (b // 16) * LBO + (r % 8) * 16 + b % 16
    32/64/128B swizzle:        start + (r // 8) * SBO + (r % 8) * span + b

and the swizzle XORs address bits [4, 7) with [7, 10) (`memory.swizzle`), computed on the
absolute shared address: so stepping K inside a 128B atom is ``start + 32 * k`` (desc + 2k),
exactly as CUTLASS / DeepGEMM do.  ``base_offset`` must be 0.
"""

from __future__ import annotations

import numpy as np

from .errors import SimError
from .memory import swizzle
from .ptx_types import decode

from tilec.backends.ptx.descriptors import Sm90SmemDescriptor, Sm90Swizzle, Sm100SmemDescriptor, Sm100Swizzle

_SM90_SPAN = {Sm90Swizzle.NONE: 0, Sm90Swizzle.SW128: 128, Sm90Swizzle.SW64: 64, Sm90Swizzle.SW32: 32}
_SM100_SPAN = {Sm100Swizzle.NONE: 0, Sm100Swizzle.SW128: 128, Sm100Swizzle.SW64: 64, Sm100Swizzle.SW32: 32}


def decode_desc(value: int, sm: int):
    """(start, lbo, sbo, span) in bytes from a 64-bit smem matrix descriptor; ValueError if illegal."""
    if sm == 90:
        d = Sm90SmemDescriptor.decode(value)
        span = _SM90_SPAN[d.layout]
    else:
        d = Sm100SmemDescriptor.decode(value)
        if d.swizzle not in _SM100_SPAN:
            raise ValueError(f"swizzle mode {d.swizzle.name} is not simulated")
        if d.lbo_mode:
            raise ValueError("LBO mode 1 (absolute address, sm_103a) is not simulated")
        span = _SM100_SPAN[d.swizzle]
    if d.base_offset:
        raise ValueError(f"base_offset {d.base_offset} != 0 is not simulated")
    return d.start_addr << 4, d.lbo << 4, d.sbo << 4, span


def matrix_index(start: int, lbo: int, sbo: int, span: int, rows: int, kbytes: int) -> np.ndarray:
    """Shared byte offsets [rows, kbytes] of a K-major operand."""
    r = np.arange(rows, dtype=np.int64)[:, None]
    b = np.arange(kbytes, dtype=np.int64)[None, :]
    if span == 0:
        addr = start + (r // 8) * sbo + (b // 16) * lbo + (r % 8) * 16 + b % 16
    else:
        if kbytes > span:
            raise SimError(f"a {kbytes}-byte K extent does not fit the {span}B swizzle atom")
        addr = start + (r // 8) * sbo + (r % 8) * span + b
    return swizzle(addr, span)


def matrix_index_mn(start: int, lbo: int, sbo: int, span: int, rows: int, kbytes: int, esize: int) -> np.ndarray:
    """Shared byte offsets [rows, kbytes] of an MN-major operand (wgmma transpose bit set) of
    ``esize``-byte elements: row r (M or N) is contiguous across the MN dimension.  With a
    swizzle (CuTe ``((T,span/16,m),(8,k)):((1,T,LBO),(span/16*T,SBO))`` in 16-byte units)
    element (r, k) sits before the XOR at

        start + (r*esize) % span + (r*esize // span) * LBO + (k % 8) * span + (k // 8) * SBO

    (LBO steps between span-wide column panels, SBO between 8-row groups along K); without
    one (``((T,1,m),(8,k)):((1,T,SBO),(1T,LBO))``) at
    ``start + (r*esize) % 16 + (r*esize // 16) * SBO + (k % 8) * 16 + (k // 8) * LBO``."""
    r = np.arange(rows, dtype=np.int64)[:, None]
    b = np.arange(kbytes, dtype=np.int64)[None, :]
    k, byte = b // esize, b % esize
    mb = r * esize + byte
    if span == 0:
        addr = start + mb % 16 + (mb // 16) * sbo + (k % 8) * 16 + (k // 8) * lbo
    else:
        addr = start + mb % span + (mb // span) * lbo + (k % 8) * span + (k // 8) * sbo
    return swizzle(addr, span)


def read_matrix(cta, desc: int, sm: int, rows: int, kbytes: int, issuer: int, what: str,
                mn_major_esize: int = 0) -> np.ndarray:
    """Bytes [rows, kbytes] of a shared-memory operand (async-proxy read: checked for in-flight
    copies and for generic writes without bar.sync + fence.proxy.async).  ``mn_major_esize``:
    the element size of an MN-major (transposed) operand, 0 for K-major."""
    try:
        start, lbo, sbo, span = decode_desc(int(desc), sm)
    except ValueError as e:
        raise cta.error(f"{what}: bad shared-memory descriptor {int(desc):#018x}: {e}", issuer)
    if mn_major_esize:
        idx = matrix_index_mn(start, lbo, sbo, span, rows, kbytes, mn_major_esize)
    else:
        idx = matrix_index(start, lbo, sbo, span, rows, kbytes)
    if idx.min() < 0 or idx.max() >= cta.smem.size:
        raise cta.error(f"{what}: descriptor {int(desc):#018x} reaches shared bytes [{int(idx.min()):#x}, "
                        f"{int(idx.max()):#x}] outside the CTA's {cta.smem.size} bytes", issuer)
    cta.smem.async_read_check(idx, issuer, lambda m, k: (_ for _ in ()).throw(cta.error(m, issuer)), what)
    return cta.smem.data[idx]


def values(raw: np.ndarray, fmt: str) -> np.ndarray:
    """Operand bytes [rows, kbytes] -> float64 [rows, K] for element format ``fmt``
    (e2m1 packed two per byte, element 2j in the low nibble of byte j)."""
    rows = raw.shape[0]
    if fmt in ("f16", "bf16"):
        return decode(np.ascontiguousarray(raw).view(np.uint16), fmt).reshape(rows, -1)
    if fmt == "tf32":
        return decode(np.ascontiguousarray(raw).view(np.uint32), fmt).reshape(rows, -1)
    if fmt in ("e4m3", "e5m2"):
        return decode(raw, fmt)
    if fmt == "e2m1":
        lo = decode(raw & np.uint8(0xF), "e2m1")
        hi = decode(raw >> np.uint8(4), "e2m1")
        return np.stack([lo, hi], axis=-1).reshape(rows, -1)
    raise SimError(f"operand element type {fmt} is not simulated")
