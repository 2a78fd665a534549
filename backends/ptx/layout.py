"""The blocked register layout: which thread of a CTA holds which element of a tile.

A tile of shape S (numel N elements, flattened row-major) is spread over the CTA's
`num_threads = num_warps * 32` threads in chunks of `vec` consecutive elements:

    chunk c = t + k * num_threads        (thread t, k = 0 .. chunks_per_thread - 1)
    element e = c * vec + v              (v = 0 .. vec - 1)

so thread t holds `slots = chunks_per_thread * vec` registers, slot s = k * vec + v,
and element e = t * vec + const(s) with const(s) = k * num_threads * vec + v.  Warps
read `32 * vec` consecutive elements at once (coalesced; vectorisable once chunks are
known aligned).  `vec` depends only on N (4 when 4 | N, else 1), so every shape of
the same size has the same layout and `tile.reshape` moves no data.  Slots whose
element lies past N hold garbage and are predicated off wherever they touch memory.

    16x8 f32 tile, 4 warps (128 threads), vec = 4:  N = 128 = 32 chunks of 4
      thread 0: elements 0..3 (row 0, cols 0..3)    thread 1: elements 4..7 (row 0, cols 4..7)
      thread 31: elements 124..127                  threads 32..127: nothing (predicated off)
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Blocked:
    """The blocked layout of a tile of `shape` over `num_threads` threads."""

    shape: tuple[int, ...]
    num_threads: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def vec(self) -> int:
        return 4 if self.numel % 4 == 0 else 1

    @property
    def chunks_per_thread(self) -> int:
        return -(-self.numel // (self.vec * self.num_threads))

    @property
    def num_slots(self) -> int:
        return self.chunks_per_thread * self.vec

    def slot_const(self, slot: int) -> int:
        """Element index of `slot` minus `tid * vec`."""
        k, v = divmod(slot, self.vec)
        return k * self.num_threads * self.vec + v

    def slot_threads(self, slot: int) -> int:
        """How many threads (0..num_threads) hold a real element in `slot`: the first ones."""
        c = self.slot_const(slot)
        if c >= self.numel:
            return 0
        return min(self.num_threads, -(-(self.numel - c) // self.vec))

    def slot_always_valid(self, slot: int) -> bool:
        return self.slot_threads(slot) == self.num_threads

    def slot_never_valid(self, slot: int) -> bool:
        return self.slot_threads(slot) == 0

    def owner(self, element: int) -> tuple[int, int]:
        """(thread, slot) holding `element`."""
        c, v = divmod(element, self.vec)
        k, t = divmod(c, self.num_threads)
        return t, k * self.vec + v

    @property
    def strides(self) -> tuple[int, ...]:
        """Row-major element strides of `shape`."""
        out, acc = [], 1
        for d in reversed(self.shape):
            out.append(acc)
            acc *= d
        return tuple(reversed(out))

    def split_dim(self) -> int:
        """The smallest j such that the trailing dims j.. of `shape` tile `num_threads * vec`
        exactly (their product divides it) and a chunk never straddles a row of the last
        dim.  Coordinates of dims >= j are then `base + constant` per slot (no carries);
        dims < j come from a linear `hi` index.  Returns len(shape) when no dim qualifies."""
        r = len(self.shape)
        if r and self.vec > 1 and self.shape[-1] % self.vec:
            return r
        span = self.num_threads * self.vec
        j, prod = r, 1
        for d in range(r - 1, -1, -1):
            prod *= self.shape[d]
            if span % prod:
                break
            j = d
        return j
