"""Launching compiled kernels on the GPU: `kernel[grid](*cuda_tensors)`.

The JIT (`tilec.jit.Launcher`) asks `target_for_args` which target the arguments
select: "cpu" for numpy arrays, the current device's PTX target (sm_90a on an H100,
sm_80 for any sm_8x, sm_100a on Blackwell) when they are torch CUDA tensors or
objects with `__cuda_array_interface__`.  `device_array` wraps such a tensor in a
`DeviceArray`: the numpy-like view (dtype, shape, strides, flags) that
`Kernel.bind` reads, plus the device pointer.

`launch_artifact` packs the parameters in the order `backends.ptx.emitter` declares
them (pointer + u32 dims per tensor, scalars, grid extents of axes >= 2), loads the
cubin once per (device, PTX) and launches on torch's current stream.  The grid's
axes 2.. are folded onto `gridDim.z`.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from tilec.errors import LaunchError

__all__ = ["DeviceArray", "device_array", "is_device_array", "target_for_args", "launch_artifact"]


@dataclass(frozen=True)
class _Flags:
    c_contiguous: bool


class DeviceArray:
    """A GPU array as `Kernel.bind` sees it: numpy dtype, shape, strides (bytes), flags,
    plus `ptr` (device address), `device` (ordinal) and `obj` (the original object,
    kept alive until the launch)."""

    __slots__ = ("obj", "ptr", "shape", "dtype", "strides", "flags", "device")

    def __init__(self, obj, ptr: int, shape, dtype, strides, device: int):
        self.obj, self.ptr, self.device = obj, int(ptr), int(device)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        item = self.dtype.itemsize
        if strides is None:
            strides = _contiguous_strides(self.shape, item)
        self.strides = tuple(int(s) for s in strides)
        self.flags = _Flags(self.strides == _contiguous_strides(self.shape, item) or 0 in self.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __repr__(self) -> str:
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype}, device={self.device})"


def _contiguous_strides(shape, item: int) -> tuple[int, ...]:
    out, acc = [], item
    for n in reversed(shape):
        out.append(acc)
        acc *= max(n, 1)
    return tuple(reversed(out))


_NP_DTYPES: dict = {}  # torch dtype -> numpy dtype (one lookup per launched tensor)


def _torch_np_dtype(tdtype):
    hit = _NP_DTYPES.get(tdtype)
    if hit is None:
        hit = _NP_DTYPES[tdtype] = _torch_np_dtype_uncached(tdtype)
    return hit


def _torch_np_dtype_uncached(tdtype):
    import ml_dtypes

    name = str(tdtype).removeprefix("torch.")
    table = {"float32": np.float32, "float16": np.float16, "float64": np.float64, "bfloat16": ml_dtypes.bfloat16,
             "int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64, "uint8": np.uint8,
             "uint32": np.uint32, "bool": np.bool_, "float8_e4m3fn": ml_dtypes.float8_e4m3fn,
             "float8_e5m2": ml_dtypes.float8_e5m2, "float8_e8m0fnu": ml_dtypes.float8_e8m0fnu}
    if name not in table:
        raise LaunchError(f"torch dtype {tdtype} has no tilec equivalent")
    return np.dtype(table[name])


def is_device_array(a) -> bool:
    """True for torch CUDA tensors and objects with `__cuda_array_interface__` (also as
    the packed data of a `tilec.fp4.FP4Tensor`)."""
    from tilec.fp4 import FP4Tensor

    if isinstance(a, FP4Tensor):
        return is_device_array(a.packed)
    if type(a).__module__.startswith("torch"):
        dev = getattr(a, "device", None)
        return dev is not None and getattr(dev, "type", "cpu") == "cuda"
    return hasattr(a, "__cuda_array_interface__")


def device_array(a) -> DeviceArray:
    """The `DeviceArray` of a torch CUDA tensor or a `__cuda_array_interface__` object.

    A `tilec.fp4.FP4Tensor` over GPU data gives the pointer of its packed bytes with the
    tensor's logical shape and the fp4 dtype: an fp4 kernel parameter is the address of
    the packed data plus the logical dims (its `strides` are not the packed ones; over
    non-contiguous packed data it is not `c_contiguous`, so `Kernel.bind` refuses it)."""
    from tilec.fp4 import FP4Tensor

    if isinstance(a, FP4Tensor):
        packed = device_array(a.packed)
        out = DeviceArray(a, packed.ptr, a.shape, a.dtype, None, packed.device)
        if not packed.flags.c_contiguous:    # the kernel reads contiguous packed rows: `bind` refuses it
            out.strides, out.flags = packed.strides, _Flags(False)
        return out
    if type(a).__module__.startswith("torch"):
        item = a.element_size()
        return DeviceArray(a, a.data_ptr(), a.shape, _torch_np_dtype(a.dtype),
                           tuple(s * item for s in a.stride()), a.device.index or 0)
    cai = a.__cuda_array_interface__
    dtype = np.dtype(cai["typestr"])
    if cai.get("descr") and len(cai["descr"]) == 1 and cai["descr"][0][0] == "":
        dtype = np.dtype(cai["descr"][0][1])
    device = 0
    try:
        from tilec.runtime.cuda import current_device
        device = current_device()["ordinal"]
    except Exception:  # noqa: BLE001 - no driver: the launch reports it
        pass
    return DeviceArray(a, cai["data"][0] or 0, cai["shape"], dtype, cai.get("strides"), device)


def _gpu_target() -> str:
    """The PTX target tilec uses for the current device."""
    from tilec.runtime.cuda import current_device

    try:
        major, minor = current_device()["cc"]
    except Exception as e:  # noqa: BLE001
        raise LaunchError(f"GPU tensors were passed but CUDA is unavailable: {e}") from None
    if major == 9:
        return "sm_90a"
    if major == 8:
        return "sm_80"
    if major == 10:
        return "sm_100a"
    raise LaunchError(f"no tilec GPU target for compute capability {major}.{minor} "
                      f"(supported: sm_80 family, sm_90a, sm_100a)")


def target_override() -> str | None:
    """`TILEC_TARGET`: `sim:sm_100a` (or `sim:sm_90a`, `sim:sm_80`) runs host-array launches
    through the PTX simulator; `sm_80` / `sm_90a` forces that GPU target on a newer GPU."""
    import os

    value = os.environ.get("TILEC_TARGET", "").strip()
    if not value:
        return None
    from tilec.pipelines import GPU_TARGETS, canonical_target

    arch = canonical_target(value.removeprefix("sim:"))
    if arch not in GPU_TARGETS:
        raise LaunchError(f"TILEC_TARGET={value!r}: expected one of {', '.join(GPU_TARGETS)} "
                          f"or sim:<one of them>")
    return ("sim:" if value.startswith("sim:") else "") + arch


def target_for_args(args) -> str:
    """"cpu" unless some argument lives on a GPU (then every array argument must);
    `TILEC_TARGET` may pick a simulated target for host arrays or an older GPU target."""
    gpu = [a for a in args if is_device_array(a)]
    override = target_override()
    if not gpu:
        return override if override and override.startswith("sim:") else "cpu"
    if override and not override.startswith("sim:"):
        _gpu_target()  # there must be a GPU
        return override
    from tilec.fp4 import FP4Tensor

    for a in args:
        a = a.packed if isinstance(a, FP4Tensor) else a
        if isinstance(a, np.ndarray) or (type(a).__module__.startswith("torch") and hasattr(a, "device")
                                         and not is_device_array(a)):
            raise LaunchError("kernel arguments mix host arrays and GPU tensors; move them all to one device")
    return _gpu_target()


# ----------------------------------------------------------------------------- launching

_loaded: dict[tuple, object] = {}
_lock = threading.Lock()


def _launcher(artifact, device: int):
    """The `tilec.runtime.cuda.Launcher` of `artifact` on `device` (loaded once)."""
    gpu = artifact.gpu
    key = (device, gpu.target, gpu.ptx, getattr(gpu, "pdl", False))
    hit = _loaded.get(key)
    if hit is not None:
        return hit
    from tilec.runtime import cuda

    with _lock:
        hit = _loaded.get(key)
        if hit is not None:
            return hit
        if gpu.target != _gpu_target():  # e.g. sm_80 code on an H100: the driver JITs the PTX
            image = gpu.ptx
        else:
            try:
                image = artifact.cubin()
            except FileNotFoundError:  # no ptxas: the driver JIT-compiles the PTX (.version <= 9.0)
                image = gpu.ptx
        module = cuda.load_module(image)
        fn = module.function(gpu.name)
        launcher = fn.launcher([p.kind for p in gpu.params], (gpu.num_threads, 1, 1), gpu.smem_bytes,
                               getattr(gpu, "pdl", False))
        launcher.module = module  # keep the module alive with its launcher
        _loaded[key] = launcher
        return launcher


def _scalar(kind: str, dtype_name: str, value):
    from tilec import dtypes as dt

    d = dt.lookup(dtype_name)
    if d.is_float:
        return float(np.array(value, dtype=np.float64).astype(d.np_dtype))
    v = int(value)
    if d.bits == 1:
        return int(bool(v))
    if kind == "u32":
        return v & 0xFFFFFFFF
    if kind == "i32":
        v &= (1 << d.bits) - 1
        v = v - (1 << d.bits) if d.is_signed and v >= 1 << (d.bits - 1) else v
        return v
    return v


_tensor_maps: dict[tuple, bytes] = {}
#: L2 sector promotion of the TMA tile loads (bytes; CUTLASS and DeepGEMM use 256)
L2_PROMOTION = 256


#: packed TMA data types (role dtype names) -> bits per element in global memory
PACKED_TMA_BITS = {"16u4_align16b": 4, "16u6_align16b": 6}
#: role dtype: an FP4Tensor's packed rows read as bytes (UINT8 map, innermost dim = row bytes)
FP4_AS_BYTES = "fp4_bytes"


def tensor_map_args(shape, strides_bytes, role) -> tuple:
    """`make_tma_descriptor` / `SimTensorMap.from_cuda_args` arguments after the pointer for a
    "tensormap" kernel parameter with role `("tma", arg, box, swizzle, dtype[, "k128"])`: dtype,
    dims and byte strides (innermost first), box, swizzle.  For the packed types ("16u4_align16b":
    fp4 two per byte, an `FP4Tensor`) dims count elements (the logical shape) and the strides are
    those of contiguous packed rows, ceil(n * bits / 8) bytes a row, whatever `strides_bytes`
    says (a GPU `FP4Tensor`'s `DeviceArray` carries one-byte-per-element strides; the kernels
    read packed fp4 rows as contiguous too, `tcgen05_direct._fp4_row_bytes`)."""
    box, swizzle, dtype = role[2:5]
    bits = 4 if dtype == FP4_AS_BYTES else PACKED_TMA_BITS.get(dtype)
    if bits:
        row = -(-int(shape[-1]) * bits // 8)
        pitch, st = row, []
        for d in reversed(shape[:-1]):       # dims 1..r-1 innermost first: row pitch, then products
            st.append(pitch)
            pitch *= int(d)
        if dtype == FP4_AS_BYTES:            # the packed rows as bytes: the innermost dim counts bytes
            return "u8", (row, *(int(d) for d in reversed(shape[:-1]))), tuple(st), box, swizzle
        return dtype, tuple(reversed(shape)), tuple(st), box, swizzle
    return dtype, tuple(reversed(shape)), tuple(reversed(strides_bytes))[1:], box, swizzle


def tma_ready(ptr: int, shape, role) -> bool:
    """Whether the tensor map of a role with a "kN" suffix may be built: an innermost extent
    that is a multiple of N elements and a 16-byte aligned base (32-byte for "k128", the
    tcgen05 kind::f8f6f4 maps, whose packed 16U4 / 16U6 ALIGN16B types the driver holds to it).  The kernel makes the same test on the pointer and
    dims it receives (`backends/ptx/tcgen05_f8f6f4_tma.guard`, `lower_w4a16_tma._entry_test`)
    and, when it fails, copies the operands itself and never reads the map.  Roles without a
    suffix: always True."""
    if len(role) < 6 or not str(role[5]).startswith("k"):
        return True
    align = 32 if role[4] in PACKED_TMA_BITS or role[5] == "k128" else 16
    return int(ptr) % align == 0 and int(shape[-1]) % int(role[5][1:]) == 0


def tensor_map_bytes(array: DeviceArray, role) -> bytes:
    """The 128-byte TMA descriptor of `array` for a "tensormap" parameter (cached per pointer,
    shape, strides and box)."""
    key = (array.ptr, array.shape, role)         # bound tensors are contiguous: the shape fixes the strides
    hit = _tensor_maps.get(key)
    if hit is None and not tma_ready(array.ptr, array.shape, role):
        return bytes(128)                        # the kernel takes its direct-copy path (tma_ready)
    if hit is None:
        from tilec.runtime.cuda import make_tma_descriptor

        if len(_tensor_maps) > 4096:
            _tensor_maps.clear()
        hit = _tensor_maps[key] = make_tma_descriptor(array.ptr, *tensor_map_args(array.shape, array.strides, role),
                                                      l2_promotion=L2_PROMOTION, cache=False).bytes
    return hit


def tensor_map_getter(role, itemsize: int):
    """For generated launch code (tilec.runtime.fast_launch): `get(ptr, shape)`, the descriptor
    bytes of a contiguous tensor of `itemsize`-byte elements, through `tensor_map_bytes`'s cache."""
    dtype = np.dtype(f"V{itemsize}")             # only the size matters (contiguous strides)
    maps = _tensor_maps

    def get(ptr: int, shape) -> bytes:
        shape = tuple(shape)
        hit = maps.get((ptr, shape, role))
        return hit if hit is not None else tensor_map_bytes(DeviceArray(None, ptr, shape, dtype, None, -1), role)
    return get


def launch_artifact(artifact, values: list, grid: tuple[int, ...]) -> None:
    """Launch a GPU `artifact` with the run-time `values` of `Kernel.bind` on `grid`."""
    gpu = artifact.gpu
    devices = {v.device for v in values if isinstance(v, DeviceArray)}
    if len(devices) > 1:
        raise LaunchError(f"kernel '{artifact.name}': tensors on several devices {sorted(devices)}")
    from tilec.runtime.cuda import current_device

    device = current_device()["ordinal"]
    if devices and devices != {device}:
        raise LaunchError(f"kernel '{artifact.name}': tensors are on cuda:{devices.pop()}, the current "
                          f"device is cuda:{device} (use torch.cuda.device(...))")
    args = []
    for p in gpu.params:
        role = p.role
        if role[0] == "tensor":
            args.append(values[role[1]].ptr)
        elif role[0] == "dim":
            n = values[role[1]].shape[role[2]]
            if n >= 1 << 32:
                raise LaunchError(f"kernel '{artifact.name}': tensor dim {n} does not fit 32 bits")
            args.append(n)
        elif role[0] == "scalar":
            args.append(_scalar(p.kind, role[2], values[role[1]]))
        elif role[0] == "tma":
            args.append(tensor_map_bytes(values[role[1]], role))
        else:
            axis = role[1]
            args.append(grid[axis] if axis < len(grid) else 1)
    gx = grid[0]
    gy = grid[1] if len(grid) > 1 else 1
    gz = math.prod(grid[2:]) if len(grid) > 2 else 1
    if gx >= 1 << 31 or gy > 65535 or gz > 65535:
        raise LaunchError(f"kernel '{artifact.name}': grid {grid} exceeds the CUDA limits "
                          f"(x < 2^31, y <= 65535, axes 2.. together <= 65535)")
    _launcher(artifact, device)((gx, gy, gz), *args)


def prepare_launch(artifact, grid: tuple[int, ...], value_args: tuple[int, ...]):
    """A launch closure for `artifact` on `grid` taking the raw launch arguments (torch CUDA
    tensors and numbers of the signature the JIT keyed it by): per call it reads only data
    pointers, dims and scalars, so a cached launch costs little more than `cuLaunchKernel`.
    `value_args[k]` is the launch-argument position of the k-th bound value."""
    from tilec.fp4 import FP4Tensor
    from tilec.runtime.cuda import current_device

    gpu = artifact.gpu
    launcher = _launcher(artifact, current_device()["ordinal"])
    getters = []
    for p in gpu.params:
        role = p.role
        if role[0] in ("tensor", "dim", "scalar", "tma"):
            i = value_args[role[1]]
        if role[0] == "tensor":   # an FP4Tensor argument passes its packed bytes' address
            getters.append(lambda a, i=i: (a[i].packed if type(a[i]) is FP4Tensor else a[i]).data_ptr())
        elif role[0] == "dim":
            getters.append(lambda a, i=i, ax=role[2]: a[i].shape[ax])
        elif role[0] == "scalar":
            getters.append(lambda a, i=i, kind=p.kind, name=role[2]: _scalar(kind, name, a[i]))
        elif role[0] == "tma":
            getters.append(lambda a, i=i, role=role: tensor_map_bytes(device_array(a[i]), role))
        else:
            extent = grid[role[1]] if role[1] < len(grid) else 1
            getters.append(lambda a, extent=extent: extent)
    dims = (grid[0], grid[1] if len(grid) > 1 else 1, math.prod(grid[2:]) if len(grid) > 2 else 1)

    def launch(args):
        launcher(dims, *[g(args) for g in getters])
    launch.fast = lambda kernel, args: _fast_launch(kernel, args, gpu, value_args, grid, launcher, dims)
    return launch


def _fast_launch(kernel, args, gpu, value_args, grid, launcher, dims):
    """The generated fast function of a plan for `args` (tilec.runtime.fast_launch), or None."""
    from tilec.runtime.fast_launch import build_fast_launch

    parts = getattr(launcher, "fast_parts", None)
    if parts is None:
        return None
    return build_fast_launch(kernel, args, gpu, value_args, grid, *parts(dims))
