"""The blocked register layout: which thread of a CTA holds which element of a tile.

A tile of shape S (numel N elements, flattened row-major) is spread over the CTA's
`num_threads = num_warps * 32` threads in chunks of `vec` consecutive elements:

    chunk c = t + k * num_threads        (thread t, k = 0 .. chunks_per_thread - 1)
    element e = c * vec + v              (v = 0 .. vec - 1)

so thread t holds `slots = chunks_per_thread * vec` registers, slot s = k * vec + v,
and element e = t * vec + const(s) with const(s) = k * num_threads * vec + v.  Warps
read `32 * vec` consecutive elements at once (coalesced; vectorisable once chunks are
known aligned).  `vec` depends only on N (4 when 4 | N, else 1), so every shape of the
same size has the same layout and `tile.reshape` moves no data.  A `wide` layout, the one
non-canonical blocked layout, has `vec` = 8 (`Blocked.wide`).  Slots whose element lies
past N hold garbage and are predicated off wherever they touch memory.

    16x8 f32 tile, 4 warps (128 threads), vec = 4:  N = 128 = 32 chunks of 4
      thread 0: elements 0..3 (row 0, cols 0..3)    thread 1: elements 4..7 (row 0, cols 4..7)
      thread 31: elements 124..127                  threads 32..127: nothing (predicated off)

When the shape, `num_threads` and `vec` are powers of two, every coordinate of a tile is
a bit field of the element index e = (k * num_threads + t) * vec + v: its low log2(vec)
bits come from the slot's v, the next log2(num_threads) from the thread (the lane bits
first, then the warp bits), the rest from the slot's k (`Blocked.bit_sources`).  A
reduction then folds the v and k bits in registers, the lane bits with `shfl.sync.bfly`
and the warp bits with one round through shared memory (`lower_reduce.py`).

`Sliced(parent, axes)` is such a reduction's result left where the reduction put it:
slot s of a thread holds the value of the reduced line through the element that slot s
holds in `parent` (so slots and threads differing only in the bits of `axes` hold the
same value, in one register per thread).  Broadcasting it back to `parent`'s shape
moves no data; other consumers convert it (`exchange.to_layout`).

`Mma(shape, num_threads)` is the wgmma accumulator layout of an [M, N] tile (M = 64 per
warpgroup): thread t holds N/2 slots, slot s = 4i + q at row 16*(t/32) + (t%32)/4 + 8*(q/2)
and column 8i + 2*(t%4) + q%2.  An S = Q K^T accumulator stays there through the softmax
math (elementwise per slot, row reductions folded in registers and across the 4 lanes of a
quad), so flash attention never moves S through shared memory.  In the slot / thread /
register-bit terms above: vec = 2 (q%2), k = s/2; row bits = (k bit 0, thread bits 2..7),
column bits = (v bit 0, thread bits 0..1, k bits 1..).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Blocked:
    """The blocked layout of a tile of `shape` over `num_threads` threads."""

    shape: tuple[int, ...]
    num_threads: int
    #: 8-element chunks, so a 16-bit chunk is one 16-byte access: the layout `tile.load`
    #: gives a 16-bit tile that flows only through layout-agnostic ops into stores and
    #: reductions (`vectorize.wide_ok`).  Other lowerings assume canonical layouts, which
    #: `KernelEmitter.get` converts to.  Measured on the H100 (bench/RESULTS.md): f16
    #: softmax 8192x8192 2494 -> 2644 GB/s with 16-byte instead of 8-byte accesses.
    wide: bool = False

    @property
    def canonical(self) -> bool:
        return not self.wide

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def vec(self) -> int:
        if self.wide:
            return 8
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

    @property
    def is_pow2(self) -> bool:
        """Every dim, `num_threads` and `vec` a power of two: coordinates are bit fields."""
        return all(n & (n - 1) == 0 for n in (*self.shape, self.num_threads, self.vec))

    def dim_bits(self, dim: int) -> range:
        """The element-index bits holding coordinate `dim` (power-of-two layouts)."""
        lo = sum(n.bit_length() - 1 for n in self.shape[dim + 1:])
        return range(lo, lo + self.shape[dim].bit_length() - 1)

    def bit_sources(self, dim: int) -> tuple[list[int], list[int], list[int]]:
        """(v bits, thread bits, k bits) of coordinate `dim`: bit positions within the
        slot's v, the thread index and the slot's k (power-of-two layouts only)."""
        lv = self.vec.bit_length() - 1
        lt = self.num_threads.bit_length() - 1
        vb, tb, kb = [], [], []
        for b in self.dim_bits(dim):
            if b < lv:
                vb.append(b)
            elif b < lv + lt:
                tb.append(b - lv)
            else:
                kb.append(b - lv - lt)
        return vb, tb, kb

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


@dataclass(frozen=True)
class Sliced:
    """A reduction's result over `axes` held in its source's layout `parent` (see the module
    docstring).  Its tile shape is `parent.shape` with `axes` set to 1, or removed when
    `dropped` (a reduction without keepdims).  Slot s is valid where `parent`'s slot s is."""

    parent: Blocked
    axes: tuple[int, ...]
    dropped: bool = False

    @property
    def shape(self) -> tuple[int, ...]:
        if self.dropped:
            return tuple(n for d, n in enumerate(self.parent.shape) if d not in self.axes)
        return tuple(1 if d in self.axes else n for d, n in enumerate(self.parent.shape))

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def num_threads(self) -> int:
        return self.parent.num_threads

    @property
    def num_slots(self) -> int:
        return self.parent.num_slots

    def slot_threads(self, slot: int) -> int:
        return self.parent.slot_threads(slot)

    def slot_always_valid(self, slot: int) -> bool:
        return self.parent.slot_always_valid(slot)

    def slot_never_valid(self, slot: int) -> bool:
        return self.parent.slot_never_valid(slot)

    def rep_slot(self, slot: int) -> int:
        """The first slot of this thread holding the same value as `slot` (the slot with the
        in-register bits of `axes` cleared)."""
        p = self.parent
        k, v = divmod(slot, p.vec)
        for a in self.axes:
            vb, _, kb = p.bit_sources(a)
            for b in vb:
                v &= ~(1 << b)
            for b in kb:
                k &= ~(1 << b)
        return k * p.vec + v

    def result_coords(self, parent_coords: list) -> list:
        """This tile's coordinates of the value at `parent_coords`."""
        if self.dropped:
            return [c for d, c in enumerate(parent_coords) if d not in self.axes]
        return [0 if d in self.axes else c for d, c in enumerate(parent_coords)]


@dataclass(frozen=True)
class Mma:
    """The wgmma accumulator register layout of an [M, N] tile (module docstring): every slot of
    every thread is a real element; `num_threads` must be 2 * M (one warpgroup per 64 rows)."""

    shape: tuple[int, int]
    num_threads: int

    vec = 2
    wide = False
    canonical = False

    def __post_init__(self):
        m, n = self.shape
        if m % 64 or n % 8 or self.num_threads != 2 * m:
            raise ValueError(f"no wgmma accumulator layout for {list(self.shape)} over {self.num_threads} threads")

    @property
    def numel(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def num_slots(self) -> int:
        return self.shape[1] // 2

    def slot_threads(self, slot: int) -> int:
        return self.num_threads

    def slot_always_valid(self, slot: int) -> bool:
        return True

    def slot_never_valid(self, slot: int) -> bool:
        return False

    @property
    def is_pow2(self) -> bool:
        return all(n & (n - 1) == 0 for n in self.shape)

    def slot_offsets(self, slot: int) -> tuple[int, int]:
        """(row, column) of `slot` minus those of slot 0 in the same thread."""
        i, q = divmod(slot, 4)
        return 8 * (q // 2), 8 * i + q % 2

    def bit_sources(self, dim: int) -> tuple[list[int], list[int], list[int]]:
        """(v bits, thread bits, k bits) of coordinate `dim`, as `Blocked.bit_sources`."""
        if dim == 0:
            return [], list(range(2, self.shape[0].bit_length())), [0]    # row bits 0-2, 4.. ; bit 3 = k bit 0
        return [0], [0, 1], list(range(1, (self.shape[1] // 8).bit_length()))
