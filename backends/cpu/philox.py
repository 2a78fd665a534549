"""Philox4x32-10 counter-based random numbers, vectorised over numpy uint32 arrays.

The generator of Salmon et al., "Parallel Random Numbers: As Easy as 1, 2, 3" (SC'11),
as in Random123's `philox4x32_10`: ten rounds of two 32x32->64 multiplies, with the
Weyl key schedule between rounds.  `tile.rand` draws from it (see `uniform_from_word`).
"""

from __future__ import annotations

import numpy as np

PHILOX_M0 = np.uint64(0xD2511F53)
PHILOX_M1 = np.uint64(0xCD9E8D57)
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_U32 = np.uint32


def _mulhilo(m: np.uint64, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = x.astype(np.uint64) * m
    return (p >> _SHIFT32).astype(_U32), (p & _MASK32).astype(_U32)


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Philox4x32 with 10 rounds; all arguments broadcast together (uint32 or ints).

    Returns the four output words as uint32 arrays of the broadcast shape.
    """
    c0, c1, c2, c3 = np.broadcast_arrays(*(np.asarray(c, dtype=np.uint64).astype(_U32) for c in (c0, c1, c2, c3)))
    k0 = np.asarray(k0, dtype=np.uint64)
    k1 = np.asarray(k1, dtype=np.uint64)
    for r in range(10):
        # key for round r: k + r * W (mod 2**32), computed exactly in uint64
        rk0 = ((k0 + np.uint64(r * PHILOX_W0)) & _MASK32).astype(_U32)
        rk1 = ((k1 + np.uint64(r * PHILOX_W1)) & _MASK32).astype(_U32)
        hi0, lo0 = _mulhilo(PHILOX_M0, c0)
        hi1, lo1 = _mulhilo(PHILOX_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ rk0, lo1, hi0 ^ c3 ^ rk1, lo0
    return c0, c1, c2, c3


#: largest float32 below 1.0: a word near 2**32 times 2**-32 rounds to 1.0 in f32.
_BELOW_ONE = np.float32(np.nextafter(np.float32(1.0), np.float32(0.0)))


def uniform_from_word(w: np.ndarray) -> np.ndarray:
    """uint32 word -> float32 in [0, 1): `float(w) * 2**-32`, clamped below 1."""
    x = w.astype(np.float32) * np.float32(2.0 ** -32)
    return np.minimum(x, _BELOW_ONE)


def rand(seed, offsets: np.ndarray) -> np.ndarray:
    """`tile.rand`: key (seed lo, seed hi), counter (offset, 0, 0, 0), first word -> [0, 1)."""
    seed = np.asarray(seed).astype(np.int64).view(np.uint64)
    k0 = seed & _MASK32
    k1 = (seed >> _SHIFT32) & _MASK32
    c0 = np.asarray(offsets).astype(np.int32).view(np.uint32)
    w0, _, _, _ = philox4x32_10(c0, 0, 0, 0, k0, k1)
    return uniform_from_word(w0)
