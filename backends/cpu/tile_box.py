"""Tiles that sit end to end: a whole grid's loads or stores as one slice of the tensor.

When each tensor dim's offset is either the same for every program, or an arithmetic
progression along one grid axis whose step is the tile's extent on that dim (the usual
`tile_idx(a) * n + base`), the grid's tiles cover a box of the tensor with no gaps and
no overlaps, and the grid-batched tiles are a reshaped view of that box:

    offsets (i*64, k) of 64x32 tiles, i < 16   ->   X[0:1024, k:k+32]
    viewed as (16, 64, 1, 32) -> (16, 1, 64, 32)   (grid dims (i, j), then the tile)

`find_box` recognises this from the offset arrays at run time (they hold one element
per program along one axis: cheap to check); `box_to_grid` views a box-shaped array as
grid-batched tiles and `grid_to_box` goes back, both without copying where the memory
order allows.  A box that sticks out of the tensor (a ragged last tile) is read through
a padded copy (`read_box`) and written through its in-bounds part (`write_box`).
"""

from __future__ import annotations

import functools

import numpy as np


class Box:
    """The tiles of a grid, end to end: `counts[d]` tiles of `shape[d]` elements from
    `starts[d]` along tensor dim d, running along grid axis `axes[d]` (-1: one tile,
    the same for every program).  `extent[d] = counts[d] * shape[d]`."""

    __slots__ = ("starts", "counts", "axes", "shape", "extent")

    def __init__(self, starts: tuple[int, ...], counts: tuple[int, ...], axes: tuple[int, ...],
                 shape: tuple[int, ...]):
        self.starts, self.counts, self.axes, self.shape = starts, counts, axes, shape
        self.extent = tuple(c * n for c, n in zip(counts, shape))

    def __repr__(self) -> str:
        return f"Box(starts={self.starts}, counts={self.counts}, axes={self.axes}, shape={self.shape})"

    def inside(self, dims: tuple[int, ...]) -> bool:
        for s, e, dim in zip(self.starts, self.extent, dims):
            if s < 0 or s + e > dim:
                return False
        return True

    def region(self) -> tuple:
        """The box as an index of the tensor (`...` for a rank-0 tensor: a view, not a scalar)."""
        return tuple(slice(s, s + e) for s, e in zip(self.starts, self.extent)) or (Ellipsis,)

    def covers(self, value: np.ndarray, G: int) -> bool:
        """Whether `value` varies along no grid axis but the box's.  Otherwise programs
        that write the same tile would write different values: a race, which the
        general store path settles the way numpy does (the last program wins)."""
        return all(n == 1 or a in self.axes for a, n in enumerate(value.shape[:G]))


def find_box(offsets: list[np.ndarray], shape: tuple[int, ...]) -> Box | None:
    """The box the grid's tiles at `offsets` (one array per tensor dim, grid-shaped) fill,
    or None when they do not sit end to end."""
    starts, counts, axes = [], [], []
    for o, n in zip(offsets, shape):
        size = o.size
        if size == 1:
            starts.append(o.item())
            counts.append(1)
            axes.append(-1)
            continue
        if size not in o.shape:  # varies along more than one grid axis
            return None
        a = o.shape.index(size)
        if a in axes:
            return None
        v = o.reshape(size)
        start = v.item(0)
        if size <= 48:  # Python beats numpy's call overhead on short lists
            if v.tolist() != list(range(start, start + n * size, n)):
                return None
        elif not (v[1:] - v[:-1] == n).all():
            return None
        starts.append(start)
        counts.append(size)
        axes.append(a)
    return Box(tuple(starts), tuple(counts), tuple(axes), shape)


@functools.lru_cache(maxsize=1024)
def _layout(counts: tuple[int, ...], axes: tuple[int, ...], shape: tuple[int, ...], G: int):
    """The interleaved split (c0, n0, c1, n1, ...) of a box, the permutation that brings
    its tile-count dims into grid-axis order ahead of the tile dims, the shape after it,
    its inverse, and the grid-batched shape (grid dims, then the tile)."""
    D = len(shape)
    split = tuple(x for c, n in zip(counts, shape) for x in (c, n))
    mapped = sorted((a, d) for d, a in enumerate(axes) if a >= 0)
    perm = tuple([2 * d for _, d in mapped] + [2 * d for d in range(D) if axes[d] < 0]
                 + [2 * d + 1 for d in range(D)])
    grid = [1] * G
    for a, d in mapped:
        grid[a] = counts[d]
    inverse = tuple(int(i) for i in np.argsort(perm))
    return split, perm, tuple(split[p] for p in perm), inverse, tuple(grid) + tuple(shape)


def box_to_grid(arr: np.ndarray, box: Box, G: int) -> np.ndarray:
    """A view of `arr` (shaped `box.extent`) as grid-batched tiles: grid dims, tile dims."""
    split, perm, _, _, full = _layout(box.counts, box.axes, box.shape, G)
    # splitting dims, transposing, and moving size-1 dims never copy
    return arr.reshape(split).transpose(perm).reshape(full)


def grid_to_box(value: np.ndarray, box: Box, G: int) -> np.ndarray:
    """Grid-batched tiles (broadcastable to the box's grid, see `Box.covers`) as one
    array shaped `box.extent`: a view when their memory order allows, else a copy."""
    _, _, permuted, inverse, full = _layout(box.counts, box.axes, box.shape, G)
    if value.shape != full:
        value = np.broadcast_to(value, full)
    return value.reshape(permuted).transpose(inverse).reshape(box.extent)


def _clip(box: Box, dims: tuple[int, ...]) -> tuple[tuple[slice, ...], tuple[slice, ...]] | None:
    """The box's part inside the tensor, as (tensor slices, box slices); None if empty."""
    src, dst = [], []
    for s, e, dim in zip(box.starts, box.extent, dims):
        lo, hi = max(s, 0), min(s + e, dim)
        if lo >= hi:
            return None
        src.append(slice(lo, hi))
        dst.append(slice(lo - s, hi - s))
    return tuple(src), tuple(dst)


def read_box(X: np.ndarray, box: Box, pad: np.ndarray) -> np.ndarray:
    """A copy of the box of `X`, elements outside `X` set to `pad`."""
    out = np.empty(box.extent, X.dtype)
    clip = _clip(box, X.shape)
    if clip is None:
        out.fill(pad)
        return out
    src, dst = clip
    out[dst] = X[src]
    for d, (s, sl) in enumerate(zip(box.starts, dst)):  # the slabs before and after X, per dim
        lead = (slice(None),) * d
        if sl.start > 0:
            out[lead + (slice(0, sl.start),)] = pad
        if sl.stop < box.extent[d]:
            out[lead + (slice(sl.stop, None),)] = pad
    return out


def write_box(X: np.ndarray, box: Box, value: np.ndarray) -> None:
    """Store `value` (shaped `box.extent`) at the box of `X`, dropping what lies outside."""
    if box.inside(X.shape):
        X[box.region()] = value
        return
    clip = _clip(box, X.shape)
    if clip is not None:
        X[clip[0]] = value[clip[1]]
