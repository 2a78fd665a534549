"""Run what tilec's PTX emitter produced (`backends.ptx.emitter.PtxKernel`) in the simulator.

    art = tilec.compile(kernel, *args, target="sm_100a")
    run_ptx_kernel(art.gpu, values, grid)          # numpy arrays in ``values`` updated in place

``values`` are the kernel's bound arguments in signature order (numpy arrays for tensors,
numbers for scalars), as `Kernel.bind` returns them.  The parameter ABI follows
`PtxKernel.params`: per tensor a pointer then its dims, scalars, then grid extents of axes
2.. (folded onto %ctaid.z, axis 2 fastest), then TMA tensor maps (role ``("tma", arg, box,
swizzle, dtype)``), built as `SimTensorMap`s over the argument arrays.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np

from . import SimTensorMap, simulate
from .tensormap import UnusedTensorMap


def ptx_kernel_args(kernel, values, grid) -> list:
    """The ``(kind, value)`` launch arguments of ``kernel`` for ``values`` and ``grid``."""
    grid = tuple(int(g) for g in grid)
    out = []
    for p in kernel.params:
        role = p.role
        if role[0] == "tensor":
            out.append(("ptr", _tensor_bytes(values[role[1]], role[1])))
        elif role[0] == "dim":
            out.append((p.kind, int(values[role[1]].shape[role[2]])))
        elif role[0] == "scalar":
            v = values[role[1]]
            out.append((p.kind, float(v) if p.kind in ("f32", "f64") else int(v)))
        elif role[0] == "grid":
            out.append((p.kind, grid[role[1]] if role[1] < len(grid) else 1))
        elif role[0] == "tma":  # a TMA tensor map: the launch's make_tma_descriptor arguments
            out.append(("tensormap", _tensor_map(values[role[1]], role)))
        else:
            raise ValueError(f"unknown parameter role {role!r}")
    return out


def _tensor_map(a, role) -> SimTensorMap:
    """The `SimTensorMap` the launch hands a "tma" parameter: over an `FP4Tensor`'s packed
    bytes for the packed types; for a "k128" role whose tensor fails `tma_ready` (the
    simulator's global buffers are 256-byte aligned, so only the K extent can fail) an
    `UnusedTensorMap`, as the GPU launch passes unused bytes: the kernel takes its direct copy."""
    from tilec.runtime.launch import tensor_map_args, tma_ready

    if not tma_ready(0, a.shape, role):
        return UnusedTensorMap(f"tensor map {role} of a tensor of shape {list(a.shape)}: K is not a multiple "
                               f"of 128, the kernel should have taken its direct copy")
    data = getattr(a, "packed", a)
    return SimTensorMap.from_cuda_args(data, *tensor_map_args(a.shape, a.strides, role))


def _tensor_bytes(a, index: int):
    """The memory a tensor argument hands the kernel: an FP4Tensor's packed bytes; an
    unpacked one-code-per-byte fp4 array is refused (the kernel reads two codes per byte)."""
    packed = getattr(a, "packed", None)
    if packed is not None:
        return packed
    if isinstance(a, np.ndarray) and a.dtype == np.dtype(ml_dtypes.float4_e2m1fn):
        from tilec.errors import LaunchError

        raise LaunchError(f"argument {index} is an unpacked float4_e2m1fn array (one code per byte); GPU and "
                          "simulated targets read fp4 packed two per byte: pass `tilec.fp4_tensor(x)`")
    return a


def launch_grid(grid) -> tuple[int, int, int]:
    """Tile grid (any rank) -> CUDA grid: axes 0, 1, then the product of the rest on z."""
    grid = tuple(int(g) for g in grid)
    gx = grid[0] if grid else 1
    gy = grid[1] if len(grid) > 1 else 1
    gz = math.prod(grid[2:]) if len(grid) > 2 else 1
    return gx, gy, gz


def run_ptx_kernel(kernel, values, grid, arch: str | None = None, **options) -> None:
    """Simulate an emitted `PtxKernel` on ``grid`` (the tile grid, any rank)."""
    arrays = [v for v in values if isinstance(v, np.ndarray)]
    for a in arrays:
        if not a.flags.c_contiguous:
            raise ValueError("tensor arguments must be C-contiguous numpy arrays (written in place)")
    simulate(kernel.ptx, kernel.name, launch_grid(grid), (kernel.num_threads, 1, 1),
             ptx_kernel_args(kernel, values, grid), shared_bytes=kernel.smem_bytes,
             arch=arch or kernel.target, **options)
