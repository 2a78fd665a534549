"""`tile.load` and `tile.store`: every program's tile at once.

Fast path: when the grid's tiles sit end to end (`tile_box.py`), a load is a slice of
the tensor viewed as grid-batched tiles, and a store assigns into that slice; only a
box that sticks out of the tensor (a ragged last tile) goes through a padded copy or is
clipped.  A load hands out a read-only view, uncopied, when no store of the launch can
write the tensor (`Ctx.frozen`); otherwise it copies, so later stores cannot change it.

General path (any other offsets, and every `atomic_add`): element indices
`offset + arange` per program, a gather (`np.take`) or a scatter, masked at the
tensor's bounds.

fp4 tensors arrive unpacked (one element per byte, `run_kernel` unpacks a packed
`tilec.fp4.FP4Tensor` and packs it back); as on the GPU, where two elements share a
byte, a tile's innermost offset must be even, and is checked here.
"""

from __future__ import annotations

import math

import numpy as np

from tilec import dtypes
from tilec.dialects import tile as T

from .numerics import F64, dtype_of, is_narrow_float
from .program import Compiler, Step
from .tile_box import box_to_grid, find_box, grid_to_box, read_box, write_box


def h_load(op: T.LoadOp, c: Compiler) -> Step:
    t, r = c.slot(op.tensor), c.slot(op.result)
    offsets = [c.slot(o) for o in op.offsets]
    shape = op.result.type.get_shape()
    d = dtype_of(op.result.type)
    pad_value = op.padding.value.data
    if d.is_int or d is dtypes.bool_:
        pad_value = int(pad_value) if math.isfinite(pad_value) else 0
    pad = np.array(pad_value).astype(d.np_dtype)
    aranges = _tile_aranges(c.G, shape)
    G = c.G
    packed = d is dtypes.float4_e2m1fn

    def step(env, ctx):
        X = env[t]
        offs = [env[o] for o in offsets]
        if packed:
            _check_byte_offset(offs[-1], "load")
        box = find_box(offs, shape)
        if box is None:
            env[r] = _gather(X, offs, shape, aranges, pad, G)
        elif not box.inside(X.shape):
            env[r] = box_to_grid(read_box(X, box, pad), box, G)
        elif t in ctx.frozen:
            view = X[box.region()]
            view.flags.writeable = False
            env[r] = box_to_grid(view, box, G)
        else:
            env[r] = box_to_grid(X[box.region()].copy(), box, G)
    return step


def h_store(op: T.StoreOp, c: Compiler) -> Step:
    t, v = c.slot(op.tensor), c.slot(op.value)
    offsets = [c.slot(o) for o in op.offsets]
    shape = op.value.type.get_shape()
    d = dtype_of(op.value.type)
    atomic = op.mode.data == "atomic_add"
    aranges = _tile_aranges(c.G, shape)
    narrow = is_narrow_float(d) or d is dtypes.bool_
    G = c.G
    packed = d is dtypes.float4_e2m1fn

    def step(env, ctx):
        X = env[t]
        val = env[v]
        offs = [env[o] for o in offsets]
        if packed:
            _check_byte_offset(offs[-1], "store")
        if not atomic:
            box = find_box(offs, shape)
            if box is not None and box.covers(val, G):
                write_box(X, box, grid_to_box(val, box, G))
                return
        else:  # every program adds, even where they hold the same value
            val = np.broadcast_to(val, np.broadcast_shapes(val.shape, ctx.sizes + shape))
        _scatter(X, offs, val, shape, aranges, atomic, narrow)
    return step


def _check_byte_offset(off: np.ndarray, what: str) -> None:
    """fp4 tensors are packed two elements per byte: a tile starts on a byte boundary."""
    if (off & 1).any():
        odd = int(off.flat[int(np.argmax((off & 1).reshape(-1)))])
        raise ValueError(f"cpu backend: fp4 tile {what} at innermost offset {odd}: a packed fp4 tile must start "
                         f"on a byte boundary (an even element offset)")


# --------------------------------------------------------------------------- general path


def _tile_aranges(G: int, shape: tuple[int, ...]) -> list[np.ndarray]:
    r = len(shape)
    return [np.arange(s, dtype=np.intp).reshape((1,) * (G + d) + (s,) + (1,) * (r - d - 1))
            for d, s in enumerate(shape)]


def _inside(offs: list[np.ndarray], shape: tuple[int, ...], dims: tuple[int, ...]) -> bool:
    """Whether every program's tile at `offs` lies inside a tensor of extent `dims`."""
    for o, n, dim in zip(offs, shape, dims):
        lo, hi = (int(o.flat[0]),) * 2 if o.size == 1 else (int(o.min()), int(o.max()))
        if lo < 0 or hi + n > dim:
            return False
    return True


def _flat_index(offs: list[np.ndarray], aranges: list[np.ndarray], dims: tuple[int, ...],
                masked: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Flat element indices `sum_d (offset_d + arange_d) * stride_d` into a C-contiguous
    tensor of extent `dims` (batch dims, then tile dims), and, when `masked`, the
    in-bounds mask, with the indices clipped into the tensor."""
    r = len(aranges)
    flat = mask = None
    stride = 1
    for o, a, dim in reversed(list(zip(offs, aranges, dims))):
        i = o.astype(np.intp).reshape(o.shape + (1,) * r) + a
        if masked:
            m = (i >= 0) & (i < dim)
            mask = m if mask is None else mask & m
            i = np.clip(i, 0, dim - 1)
        if stride != 1:
            i = i * stride
        flat = i if flat is None else flat + i
        stride *= dim
    return flat, mask


def _gather(X: np.ndarray, offs: list[np.ndarray], shape: tuple[int, ...], aranges: list[np.ndarray],
            pad: np.ndarray, G: int) -> np.ndarray:
    inside = _inside(offs, shape, X.shape)
    if inside:
        varying = [k for k, o in enumerate(offs) if o.size > 1]
        if len(varying) == 1:  # slice the other dims, gather whole rows along this one
            k = varying[0]
            sl = tuple(slice(None) if j == k else slice(int(o.flat[0]), int(o.flat[0]) + n)
                       for j, (o, n) in enumerate(zip(offs, shape)))
            o = offs[k].astype(np.intp)
            rows = o.reshape(o.shape + (1,)) + aranges[k].reshape(-1)
            val = np.take(X[sl], rows, axis=k)
            return np.moveaxis(val, range(k, k + G), range(G)) if k else val
    if 0 in X.shape:
        bshape = np.broadcast_shapes(*(o.shape for o in offs))
        return np.full(bshape + shape, pad, X.dtype)
    flat, mask = _flat_index(offs, aranges, X.shape, not inside)
    val = np.take(X.reshape(-1), flat)
    if mask is not None:
        np.copyto(val, pad, where=~mask)
    return val


def _scatter(X: np.ndarray, offs: list[np.ndarray], val: np.ndarray, shape: tuple[int, ...],
             aranges: list[np.ndarray], atomic: bool, narrow: bool) -> None:
    if 0 in X.shape:
        return
    inside = _inside(offs, shape, X.shape)
    flat, mask = _flat_index(offs, aranges, X.shape, not inside)
    full = np.broadcast_shapes(flat.shape, val.shape)
    flat = np.broadcast_to(flat, full)
    val = np.broadcast_to(val, full)
    if mask is not None:
        mask = np.broadcast_to(mask, full)
        flat, val = flat[mask], val[mask]
    Xf = X.reshape(-1)
    if not atomic:
        Xf[flat] = val
    elif narrow:  # sum each address's contributions in f64, round once
        where, inv = np.unique(flat.reshape(-1), return_inverse=True)
        add = np.bincount(inv, weights=val.reshape(-1).astype(F64), minlength=len(where))
        Xf[where] = (Xf[where].astype(F64) + add).astype(X.dtype)
    else:
        np.add.at(Xf, flat, val)
