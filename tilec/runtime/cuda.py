"""CUDA driver layer: context, modules, kernel launch, device pointers and TMA descriptors.

Built on ``cuda.bindings.driver`` (cuda-bindings 12.8+ / 13.x), using only calls present
in both.  Nothing here touches the driver until it is needed: importing this module is
safe on a machine with no GPU, and `cuda_available()` answers False there without raising.

Context.  tilec uses the device's *primary* context, the one the CUDA runtime and
therefore PyTorch use, so kernels launched here see torch tensors and run in order on
torch's streams.  When torch is already imported, its current device is used; otherwise
``TILEC_CUDA_DEVICE`` (default 0).  The context is made current lazily on each thread
that launches.

Launch.  ``launch(fn, grid, block, smem, stream, args)`` takes ``args`` as a list of
``(kind, value)`` pairs, with kinds ``ptr u64 i64 i32 u32 f32 f64 i16 u16 i8 u8 tensormap``,
or as a `PackedArgs` filled beforehand.  The argument layout (a ctypes buffer plus the
``void*[]`` array handed to ``cuLaunchKernel``) is built once per kind signature and
cached on the function; each launch only packs values with one ``struct.pack_into``.
For the lowest overhead bind the signature once: ``k = fn.launcher(("ptr", "ptr", "i32"))``
then ``k(grid, block, ptr_a, ptr_b, n)``.  A `PackedArgs` buffer is reused across launches
(the driver copies the arguments at launch), so a launcher must not be shared between
threads launching at the same time.

The launch call itself is ``cuda.bindings``' ``cuLaunchKernel`` (measured fastest on the lent
H100, see tests/test_cuda_runtime.py::TestOnGPU::test_launch_overhead); ``TILEC_LAUNCH_IMPL=ctypes``
or ``set_launch_impl("ctypes")`` calls libcuda's ``cuLaunchKernel`` through ctypes instead.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys
import threading
from typing import Any, Iterable, Sequence

__all__ = [
    "ARG_KINDS",
    "CudaError",
    "Function",
    "Launcher",
    "Module",
    "PackedArgs",
    "TensorMap",
    "cuda_available",
    "current_device",
    "current_device_arch",
    "current_stream",
    "device_pointer",
    "launch",
    "load_module",
    "make_tma_descriptor",
    "synchronize",
]

# ----------------------------------------------------------------------------- errors


class CudaError(RuntimeError):
    """A CUDA driver call failed; ``code`` is the CUresult as an int."""

    def __init__(self, code: int, call: str, detail: str = ""):
        self.code = int(code)
        name, desc = _error_strings(self.code)
        msg = f"{call} failed: {name} ({self.code}): {desc}"
        if detail:
            msg += f"\n{detail}"
        super().__init__(msg)


def _error_strings(code: int) -> tuple[str, str]:
    try:
        drv = _driver()
        err, name = drv.cuGetErrorName(drv.CUresult(code))
        err2, desc = drv.cuGetErrorString(drv.CUresult(code))
        return (name.decode() if int(err) == 0 else "CUDA_ERROR_?",
                desc.decode() if int(err2) == 0 else "unknown error")
    except Exception:  # noqa: BLE001 - error reporting must never raise
        return "CUDA_ERROR_?", "unknown error"


def _check(result, call: str):
    """Unpack a cuda.bindings result tuple, raising `CudaError` on a non-zero CUresult."""
    err = result[0]
    if int(err) != 0:
        raise CudaError(int(err), call)
    if len(result) == 1:
        return None
    return result[1] if len(result) == 2 else result[1:]


# ----------------------------------------------------------------------------- driver state

_lock = threading.Lock()
_tls = threading.local()
_state: "_State | None" = None
_init_error: BaseException | None = None


_drv = None


def _driver():
    global _drv
    if _drv is None:
        from cuda.bindings import driver

        _drv = driver
    return _drv


class _State:
    """The initialised driver: device, primary context and cached attributes."""

    def __init__(self):
        drv = _driver()
        _check(drv.cuInit(0), "cuInit")
        count = _check(drv.cuDeviceGetCount(), "cuDeviceGetCount")
        if count < 1:
            raise RuntimeError("the CUDA driver reports no devices")
        self.ordinal = _pick_ordinal()
        if not 0 <= self.ordinal < count:
            raise RuntimeError(f"CUDA device {self.ordinal} requested, {count} present")
        self.device = _check(drv.cuDeviceGet(self.ordinal), "cuDeviceGet")
        self.context = _check(drv.cuDevicePrimaryCtxRetain(self.device), "cuDevicePrimaryCtxRetain")
        _check(drv.cuCtxSetCurrent(self.context), "cuCtxSetCurrent")
        attr = drv.CUdevice_attribute
        get = lambda a: _check(drv.cuDeviceGetAttribute(a, self.device), "cuDeviceGetAttribute")  # noqa: E731
        self.cc = (get(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
                   get(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR))
        self.max_smem_optin = get(attr.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
        self.sm_count = get(attr.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
        self.driver_version = _check(drv.cuDriverGetVersion(), "cuDriverGetVersion")
        self.name = _check(drv.cuDeviceGetName(256, self.device), "cuDeviceGetName").split(b"\0")[0].decode()
        _tls.ctx_ok = True


def _pick_ordinal() -> int:
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_available():
                return int(torch.cuda.current_device())  # also initialises torch's (primary) context
        except Exception:  # noqa: BLE001 - fall back to the environment
            pass
    return int(os.environ.get("TILEC_CUDA_DEVICE", "0"))


def _get_state() -> _State:
    global _state, _init_error
    st = _state
    if st is not None:
        if not getattr(_tls, "ctx_ok", False):
            _check(_driver().cuCtxSetCurrent(st.context), "cuCtxSetCurrent")
            _tls.ctx_ok = True
        return st
    with _lock:
        if _state is None:
            if _init_error is not None:
                raise RuntimeError(f"CUDA is unavailable: {_init_error}") from _init_error
            try:
                _state = _State()
            except Exception as exc:  # DynamicLibNotFoundError, CudaError, ImportError ...
                _init_error = exc
                raise
    return _get_state()


def cuda_available() -> bool:
    """True when cuda.bindings, a driver and at least one GPU are usable.  Never raises."""
    try:
        _get_state()
        return True
    except Exception:  # noqa: BLE001 - a missing libcuda raises a non-CUDA error type
        return False


def current_device() -> dict:
    """Facts about the device in use: ordinal, name, cc, sm_count, max_smem_optin, driver_version."""
    st = _get_state()
    return {"ordinal": st.ordinal, "name": st.name, "cc": st.cc, "sm_count": st.sm_count,
            "max_smem_optin": st.max_smem_optin, "driver_version": st.driver_version}


def arch_for_compute_capability(major: int, minor: int) -> str:
    """9.0 -> sm_90a, 10.0 -> sm_100a, 12.0 -> sm_120a (arch-specific from Hopper on); 8.6 -> sm_86."""
    return f"sm_{major}{minor}{'a' if major >= 9 else ''}"


def current_device_arch() -> str:
    """The ptxas target for the current device, e.g. ``"sm_90a"`` on an H100."""
    return arch_for_compute_capability(*_get_state().cc)


def synchronize() -> None:
    """Wait for all work on the context (every stream) to finish."""
    _get_state()
    _check(_driver().cuCtxSynchronize(), "cuCtxSynchronize")


_torch_raw_stream = None  # torch._C._cuda_getCurrentRawStream, once torch is seen


def current_stream() -> int:
    """torch's current stream on our device when torch is imported, else 0 (legacy default)."""
    global _torch_raw_stream
    if _torch_raw_stream is not None:
        return _torch_raw_stream(_state.ordinal)
    torch = sys.modules.get("torch")
    if torch is None:
        return 0
    st = _get_state()
    raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    if raw is None:
        return torch.cuda.current_stream(st.ordinal).cuda_stream
    _torch_raw_stream = raw
    return raw(st.ordinal)


# ----------------------------------------------------------------------------- modules


class Module:
    """A loaded CUDA module (cubin, fatbin or PTX text)."""

    def __init__(self, handle, image_kind: str):
        self.handle = handle
        self.image_kind = image_kind
        self._functions: dict[str, Function] = {}

    def function(self, name: str) -> "Function":
        """The kernel `name` (the PTX ``.entry`` name), cached."""
        fn = self._functions.get(name)
        if fn is None:
            _get_state()
            drv = _driver()
            err, h = drv.cuModuleGetFunction(self.handle, name.encode())
            if int(err) != 0:
                raise CudaError(int(err), f"cuModuleGetFunction({name!r})")
            fn = self._functions[name] = Function(h, name, self)
        return fn

    def unload(self) -> None:
        """Unload the module; its functions become invalid."""
        if self.handle is not None:
            _get_state()
            _check(_driver().cuModuleUnload(self.handle), "cuModuleUnload")
            self.handle = None
            self._functions.clear()

    def __del__(self):
        try:
            if self.handle is not None and _state is not None and not sys.is_finalizing():
                _driver().cuModuleUnload(self.handle)
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass


def load_module(image: bytes | bytearray | str) -> Module:
    """Load a cubin/fatbin (bytes) or PTX (str, JIT-compiled by the driver) into the context.

    A PTX that the driver cannot JIT raises `CudaError` with the JIT error log.  The
    driver JIT accepts only PTX ``.version`` up to what the driver knows (driver 580,
    CUDA 13.0: 9.0); assemble newer PTX with ptxas instead.
    """
    _get_state()
    drv = _driver()
    if isinstance(image, str):
        data, kind = image.encode() + b"\0", "ptx"
    elif isinstance(image, (bytes, bytearray, memoryview)):
        data, kind = bytes(image), "cubin"
        if data[:4] != b"\x7fELF" and data[:4] != b"\x50\xed\x55\xba" and b".version" in data[:4096]:
            data, kind = data.rstrip(b"\0") + b"\0", "ptx"  # PTX given as bytes
    else:
        raise TypeError(f"load_module takes cubin bytes or PTX text, not {type(image).__name__}")
    buf = ctypes.create_string_buffer(data, len(data))
    log = bytearray(16384)
    opts = [drv.CUjit_option.CU_JIT_ERROR_LOG_BUFFER, drv.CUjit_option.CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES]
    err, handle = drv.cuModuleLoadDataEx(ctypes.addressof(buf), len(opts), opts, [log, len(log)])
    if int(err) != 0:
        text = bytes(log).split(b"\0")[0].decode(errors="replace").strip()
        raise CudaError(int(err), f"cuModuleLoadDataEx({kind})", text)
    return Module(handle, kind)


# ----------------------------------------------------------------------------- arguments

# kind -> (struct code, size, alignment)
ARG_KINDS: dict[str, tuple[str, int, int]] = {
    "ptr": ("Q", 8, 8), "u64": ("Q", 8, 8), "i64": ("q", 8, 8),
    "i32": ("i", 4, 4), "u32": ("I", 4, 4), "f32": ("f", 4, 4), "f64": ("d", 8, 8),
    "i16": ("h", 2, 2), "u16": ("H", 2, 2), "i8": ("b", 1, 1), "u8": ("B", 1, 1),
    "tensormap": ("128s", 128, 64),
}


class PackedArgs:
    """A reusable argument buffer for one kind signature.

    ``pack(*values)`` writes the values (pointers as ints, tensormaps as 128 bytes) and
    returns the address of the ``void*[]`` array for ``cuLaunchKernel``'s kernelParams.
    """

    __slots__ = ("kinds", "_fmt", "_buf", "_base", "_params", "address", "_pack_into")

    def __init__(self, kinds: Sequence[str]):
        self.kinds = tuple(kinds)
        fmt, offsets, off = ["<"], [], 0
        for k in self.kinds:
            try:
                code, size, align = ARG_KINDS[k]
            except KeyError:
                raise ValueError(f"unknown kernel argument kind {k!r}; known: {sorted(ARG_KINDS)}") from None
            pad = -off % align
            if pad:
                fmt.append(f"{pad}x")
            off += pad
            offsets.append(off)
            fmt.append(code)
            off += size
        self._fmt = "".join(fmt)
        self._buf = ctypes.create_string_buffer(max(off, 1) + 64)
        addr = ctypes.addressof(self._buf)
        self._base = -addr % 64  # 64-byte aligned start (tensormaps)
        n = len(self.kinds)
        self._params = (ctypes.c_void_p * max(n, 1))(*[addr + self._base + o for o in offsets])
        self.address = ctypes.addressof(self._params) if n else 0
        self._pack_into = struct.Struct(self._fmt).pack_into

    def pack(self, *values) -> int:
        """Write the argument values; returns the kernelParams address."""
        self._pack_into(self._buf, self._base, *values)
        return self.address

    def pack_converted(self, values: Iterable[Any]) -> int:
        """Like `pack`, converting tensors to pointers and TensorMaps to bytes first."""
        return self.pack(*[_convert(k, v) for k, v in zip(self.kinds, values)])


_tensor_type = None  # torch.Tensor, recorded by device_pointer the first time it sees one


def _convert(kind: str, value):
    if kind == "ptr":
        if type(value) is _tensor_type and value.is_cuda:
            return value.data_ptr()
        return value if type(value) is int else device_pointer(value)
    if kind == "tensormap":
        return value if type(value) is bytes else _tensormap_bytes(value)
    return value


# ----------------------------------------------------------------------------- launch


def _open_libcuda():
    try:
        f = ctypes.CDLL("libcuda.so.1").cuLaunchKernel
    except (OSError, AttributeError):
        return None
    f.restype = ctypes.c_int
    u = ctypes.c_uint
    f.argtypes = [ctypes.c_void_p, u, u, u, u, u, u, u, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    return f


# Measured on the lent H100 (driver 580.159.04, cuda-bindings 13.3.1, host us per launch): a bare
# cuda.bindings cuLaunchKernel 5.7; Launcher 7.2 through cuda.bindings, 10.0 through ctypes
# (which releases the GIL and converts 11 argtypes), so "bindings" is the default.
_impl = os.environ.get("TILEC_LAUNCH_IMPL", "bindings")
_ctypes_launch = None
_streams: dict[int, Any] = {}  # int handle -> CUstream (saves a CUstream construction per launch)


def _cu_stream(handle: int):
    s = _streams.get(handle)
    if s is None:
        if len(_streams) > 256:
            _streams.clear()
        s = _streams[handle] = _driver().CUstream(handle)
    return s


def _raw_launch(fn, gx, gy, gz, bx, by, bz, smem, stream, params) -> int:
    """cuLaunchKernel with an int stream handle and an int kernelParams address; returns the CUresult."""
    if _impl == "ctypes":
        global _ctypes_launch
        if _ctypes_launch is None:
            _ctypes_launch = _open_libcuda() or False
        if _ctypes_launch:
            return _ctypes_launch(fn.ptr, gx, gy, gz, bx, by, bz, smem, stream, params, None)
    s = _streams.get(stream)
    if s is None:
        s = _cu_stream(stream)
    return _drv.cuLaunchKernel(fn.handle, gx, gy, gz, bx, by, bz, smem, s, params, 0)[0]


def set_launch_impl(impl: str) -> None:
    """Choose how cuLaunchKernel is called: ``"bindings"`` (default) or ``"ctypes"``."""
    global _impl
    if impl not in ("ctypes", "bindings"):
        raise ValueError(f"launch impl must be 'bindings' or 'ctypes', got {impl!r}")
    _impl = impl


def _dims(d) -> tuple[int, int, int]:
    if type(d) is int:
        return d, 1, 1
    d = tuple(d)
    return (d + (1, 1, 1))[:3] if len(d) < 3 else d


class Function:
    """A kernel in a loaded module."""

    def __init__(self, handle, name: str, module: Module):
        drv = _driver()
        self.handle, self.name, self.module = handle, name, module
        self.ptr = int(handle)  # raw CUfunction for the ctypes launch path
        attr = drv.CUfunction_attribute
        get = lambda a: _check(drv.cuFuncGetAttribute(a, handle), "cuFuncGetAttribute")  # noqa: E731
        self.num_regs = get(attr.CU_FUNC_ATTRIBUTE_NUM_REGS)
        self.static_smem = get(attr.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES)
        self.max_threads_per_block = get(attr.CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK)
        self.max_dynamic_smem = get(attr.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES)
        self._layouts: dict[tuple[str, ...], PackedArgs] = {}

    def __repr__(self) -> str:
        return (f"Function({self.name!r}, regs={self.num_regs}, static_smem={self.static_smem}, "
                f"max_dynamic_smem={self.max_dynamic_smem})")

    def set_max_dynamic_shared_memory(self, nbytes: int) -> None:
        """Allow launches with up to `nbytes` of dynamic shared memory."""
        st = _get_state()
        if self.static_smem + nbytes > st.max_smem_optin:
            raise ValueError(
                f"kernel {self.name!r}: {nbytes} B dynamic + {self.static_smem} B static shared memory "
                f"exceeds the device limit of {st.max_smem_optin} B per block")
        drv = _driver()
        _check(drv.cuFuncSetAttribute(
            self.handle, drv.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, nbytes),
            f"cuFuncSetAttribute({self.name!r}, MAX_DYNAMIC_SHARED_SIZE_BYTES={nbytes})")
        self.max_dynamic_smem = nbytes

    def layout(self, kinds: Sequence[str]) -> PackedArgs:
        """The cached `PackedArgs` of this function for a kind signature."""
        kinds = tuple(kinds)
        pa = self._layouts.get(kinds)
        if pa is None:
            pa = self._layouts[kinds] = PackedArgs(kinds)
        return pa

    def launcher(self, kinds: Sequence[str], block=(128, 1, 1), shared_mem_bytes: int = 0,
                 pdl: bool = False) -> "Launcher":
        """A callable bound to this kernel, signature and block shape (the fast path); `pdl`:
        launch with programmatic dependent launch (`cuLaunchKernelEx`, see `Launcher`)."""
        return Launcher(self, kinds, block, shared_mem_bytes, pdl)

    def __call__(self, grid, block, args, shared_mem_bytes: int = 0, stream=None) -> None:
        launch(self, grid, block, shared_mem_bytes, stream, args)


class Launcher:
    """``launcher(grid, *values, stream=None)`` launches with a pre-built argument layout.

    Pointer values must be ints and tensormap values 128-byte ``bytes`` (use
    `device_pointer` / ``TensorMap.bytes``); this skips all per-argument conversion.

    ``pdl=True`` launches through ``cuLaunchKernelEx`` with the programmatic stream
    serialization attribute: the kernel may begin while the previous kernel in the stream is
    still running (once that one executes ``griddepcontrol.launch_dependents`` or exits), so
    it must itself wait (``griddepcontrol.wait``) before reading what that kernel wrote.
    In a CUDA graph capture the dependency becomes a programmatic edge.
    """

    def __init__(self, fn: Function, kinds: Sequence[str], block, shared_mem_bytes: int, pdl: bool = False):
        _get_state()
        self.fn = fn
        self.args = PackedArgs(kinds)  # private buffer (not shared with fn.layout)
        self.block = _dims(block)
        self.smem = int(shared_mem_bytes)
        if self.smem > fn.max_dynamic_smem:
            fn.set_max_dynamic_shared_memory(self.smem)
        self._cu_launch = _driver().cuLaunchKernel
        self._pack = self.args._pack_into
        self._buf, self._base, self._params = self.args._buf, self.args._base, self.args.address
        self.pdl = pdl
        self._pdl_launches: dict = {}  # grid -> `_pdl_launch(grid)` (one launch config per grid)

    def _pdl_launch(self, grid):
        """``launch(stream)`` of this kernel on `grid` by ``cuLaunchKernelEx`` with programmatic
        stream serialization (one launch config, only its stream set per call)."""
        drv = _driver()
        gx, gy, gz = (grid, 1, 1) if type(grid) is int else _dims(grid)
        cfg = drv.CUlaunchConfig()
        cfg.gridDimX, cfg.gridDimY, cfg.gridDimZ = gx, gy, gz
        cfg.blockDimX, cfg.blockDimY, cfg.blockDimZ = self.block
        cfg.sharedMemBytes = self.smem
        attr = drv.CUlaunchAttribute()
        attr.id = drv.CUlaunchAttributeID.CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION
        attr.value.programmaticStreamSerializationAllowed = 1
        cfg.attrs = [attr]
        cfg.numAttrs = 1
        launch_ex, handle, params, name = drv.cuLaunchKernelEx, self.fn.handle, self._params, self.fn.name

        def launch(stream):
            cfg.hStream = stream
            err = launch_ex(cfg, handle, params, 0)[0]
            if err:
                raise CudaError(int(err), f"cuLaunchKernelEx({name!r}, programmatic stream serialization)")
        return launch

    def __call__(self, grid, *values, stream=None) -> None:
        if not getattr(_tls, "ctx_ok", False):
            _get_state()
        gx, gy, gz = (grid, 1, 1) if type(grid) is int else _dims(grid)
        bx, by, bz = self.block
        if stream is None:
            stream = current_stream()
        elif type(stream) is not int:
            stream = _stream_handle(stream)
        self._pack(self._buf, self._base, *values)
        if self.pdl:
            launch = self._pdl_launches.get((gx, gy, gz))
            if launch is None:
                if len(self._pdl_launches) > 64:
                    self._pdl_launches.clear()
                launch = self._pdl_launches[(gx, gy, gz)] = self._pdl_launch((gx, gy, gz))
            launch(_cu_stream(stream))
            return
        if _impl == "bindings":
            s = _streams.get(stream)
            if s is None:
                s = _cu_stream(stream)
            err = self._cu_launch(self.fn.handle, gx, gy, gz, bx, by, bz, self.smem, s, self._params, 0)[0]
        else:
            err = _raw_launch(self.fn, gx, gy, gz, bx, by, bz, self.smem, stream, self._params)
        if err:
            raise CudaError(int(err), f"cuLaunchKernel({self.fn.name!r})")

    def fast_parts(self, grid) -> tuple:
        """``(pack_into, buf, offset, launch)`` for a fixed grid, for generated launch code
        (tilec.runtime.fast_launch): ``pack_into(buf, offset, *values)`` writes the argument
        buffer, ``launch()`` launches it on torch's current stream.  Same effect as
        ``self(grid, *values)`` with less per-call work: the grid, block and buffer are bound
        once and the stream is read through torch's raw getter."""
        gx, gy, gz = (grid, 1, 1) if type(grid) is int else _dims(grid)
        bx, by, bz = self.block
        smem, params, handle, name = self.smem, self._params, self.fn.handle, self.fn.name
        buf, base, pack_into = self._buf, self._base, self._pack
        stream_of = stream_reader()
        cu_launch, streams, tls = self._cu_launch, _streams, _tls
        if self.pdl:
            launch_pdl = self._pdl_launch((gx, gy, gz))

            def launch():
                if not getattr(tls, "ctx_ok", False):
                    _get_state()
                h = stream_of()
                s = streams.get(h)
                launch_pdl(s if s is not None else _cu_stream(h))
            return pack_into, buf, base, launch

        def launch():
            if not getattr(tls, "ctx_ok", False):
                _get_state()
            h = stream_of()
            s = streams.get(h)
            if s is None:
                s = _cu_stream(h)
            if _impl != "bindings":
                err = _raw_launch(self.fn, gx, gy, gz, bx, by, bz, smem, h, params)
            else:
                err = cu_launch(handle, gx, gy, gz, bx, by, bz, smem, s, params, 0)[0]
            if err:
                raise CudaError(int(err), f"cuLaunchKernel({name!r})")
        return pack_into, buf, base, launch


def stream_reader():
    """A zero-argument callable giving `current_stream()`'s handle: torch's raw current-stream
    getter bound to our device when torch has one (one C call per launch), else `current_stream`."""
    import functools

    torch = sys.modules.get("torch")
    raw = getattr(getattr(torch, "_C", None), "_cuda_getCurrentRawStream", None) if torch is not None else None
    if raw is None:
        return current_stream
    return functools.partial(raw, _get_state().ordinal)


def _stream_handle(stream) -> int:
    for attr in ("cuda_stream", "handle"):  # torch.cuda.Stream, cuda.core Stream
        h = getattr(stream, attr, None)
        if h is not None:
            return int(h)
    return int(stream)  # CUstream or an int-like handle


def launch(function: Function, grid, block, shared_mem_bytes: int = 0, stream=None, args=()) -> None:
    """Launch `function` on a ``grid`` of ``block``-shaped CTAs.

    ``grid``/``block``: an int or a tuple of up to 3 ints.  ``stream``: an int handle, an
    object with ``.cuda_stream`` (torch.cuda.Stream) or ``.handle``, or None for torch's
    current stream (0 when torch is not imported).  ``args``: a list of ``(kind, value)``
    (a ``ptr`` value may be a tensor or anything `device_pointer` accepts; a
    ``tensormap`` value a `TensorMap`, a CUtensorMap or 128 bytes), a `PackedArgs`
    already packed, or an int kernelParams address.  Dynamic shared memory above the
    kernel's current limit raises the limit first.
    """
    if not getattr(_tls, "ctx_ok", False):
        _get_state()
    if isinstance(args, PackedArgs):
        params = args.address
    elif type(args) is int:
        params = args
    else:
        kinds = tuple([a[0] for a in args])
        pa = function._layouts.get(kinds) or function.layout(kinds)
        params = pa.pack(*[v if type(v) is int else _convert(k, v) for k, v in args])
    if stream is None:
        stream = current_stream()
    elif type(stream) is not int:
        stream = _stream_handle(stream)
    if shared_mem_bytes > function.max_dynamic_smem:
        function.set_max_dynamic_shared_memory(shared_mem_bytes)
    gx, gy, gz = (grid, 1, 1) if type(grid) is int else _dims(grid)
    bx, by, bz = (block, 1, 1) if type(block) is int else _dims(block)
    err = _raw_launch(function, gx, gy, gz, bx, by, bz, shared_mem_bytes, stream, params)
    if err:
        raise CudaError(int(err), f"cuLaunchKernel({function.name!r})")


# ----------------------------------------------------------------------------- pointers

_DL_CPU, _DL_CUDA, _DL_CUDA_HOST, _DL_CUDA_MANAGED = 1, 2, 3, 13


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int), ("device_id", ctypes.c_int)]


class _DLTensorHead(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int),
                ("dtype", ctypes.c_uint32), ("shape", ctypes.c_void_p), ("strides", ctypes.c_void_p),
                ("byte_offset", ctypes.c_uint64)]


def _dlpack_pointer(obj) -> int:
    capsule = obj.__dlpack__()
    get_ptr = ctypes.pythonapi.PyCapsule_GetPointer
    get_ptr.restype, get_ptr.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    is_valid = ctypes.pythonapi.PyCapsule_IsValid
    is_valid.restype, is_valid.argtypes = ctypes.c_int, [ctypes.py_object, ctypes.c_char_p]
    name = b"dltensor_versioned" if is_valid(capsule, b"dltensor_versioned") else b"dltensor"
    head = get_ptr(capsule, name)
    if name == b"dltensor_versioned":  # DLManagedTensorVersioned: version(8), manager_ctx, deleter, flags
        head += 8 + 8 + 8 + 8
    t = _DLTensorHead.from_address(head)
    return (t.data or 0) + t.byte_offset  # capsule's destructor releases the export


def device_pointer(obj) -> int:
    """The device address of a GPU array: an int, a torch CUDA tensor, anything with
    ``__cuda_array_interface__``, or a DLPack CUDA array.  A CPU array raises ValueError."""
    if type(obj) is int:
        return obj
    is_cuda = getattr(obj, "is_cuda", None)
    if is_cuda is not None and hasattr(obj, "data_ptr"):  # torch.Tensor
        global _tensor_type
        if _tensor_type is None and type(obj).__module__ == "torch":
            _tensor_type = type(obj)
        if not is_cuda:
            raise ValueError(f"expected a CUDA tensor, got a tensor on {getattr(obj, 'device', 'cpu')}; "
                             "move it with .cuda()")
        return obj.data_ptr()
    cai = getattr(obj, "__cuda_array_interface__", None)
    if cai is not None:
        return int(cai["data"][0] or 0)
    dev = getattr(obj, "__dlpack_device__", None)
    if dev is not None:
        dtype, _ = dev()
        if int(dtype) not in (_DL_CUDA, _DL_CUDA_MANAGED):
            raise ValueError(f"expected a CUDA array, got {type(obj).__name__} on DLPack device type "
                             f"{int(dtype)} ({'CPU' if int(dtype) == _DL_CPU else 'not CUDA'})")
        return _dlpack_pointer(obj)
    if hasattr(obj, "__array_interface__"):
        raise ValueError(f"expected a CUDA array, got a host (CPU) array of type {type(obj).__name__}")
    raise TypeError(f"cannot take a device pointer of {type(obj).__name__}: pass an int, a CUDA tensor, "
                    "an object with __cuda_array_interface__ or a DLPack CUDA array")


# ----------------------------------------------------------------------------- TMA

# dtype spellings -> CUtensorMapDataType member name (suffix after CU_TENSOR_MAP_DATA_TYPE_)
_TMA_DTYPES = {
    "u8": "UINT8", "uint8": "UINT8", "i8": "UINT8", "int8": "UINT8",
    "f8E4M3FN": "UINT8", "f8E5M2": "UINT8", "f8E8M0FNU": "UINT8",
    "float8_e4m3fn": "UINT8", "float8_e5m2": "UINT8", "float8_e8m0fnu": "UINT8",
    "u16": "UINT16", "uint16": "UINT16", "i16": "UINT16", "int16": "UINT16",
    "u32": "UINT32", "uint32": "UINT32", "i32": "INT32", "int32": "INT32",
    "u64": "UINT64", "uint64": "UINT64", "i64": "INT64", "int64": "INT64",
    "f16": "FLOAT16", "float16": "FLOAT16", "half": "FLOAT16",
    "bf16": "BFLOAT16", "bfloat16": "BFLOAT16",
    "f32": "FLOAT32", "float32": "FLOAT32", "float": "FLOAT32", "f32_ftz": "FLOAT32_FTZ",
    "f64": "FLOAT64", "float64": "FLOAT64", "double": "FLOAT64",
    "tf32": "TFLOAT32", "tf32_ftz": "TFLOAT32_FTZ",
    # packed sub-byte types (CUDA 12.8+): dims count elements, the global rows are packed (fp4 two
    # per byte, fp6 four in three bytes), shared memory gets every 16 elements in 16 bytes (ALIGN16B)
    "16u4_align16b": "16U4_ALIGN16B", "16u6_align16b": "16U6_ALIGN16B", "16u4_align8b": "16U4_ALIGN8B",
}
_TMA_BITS = {8: "UINT8", 16: "UINT16", 32: "UINT32", 64: "UINT64"}
_TMA_ELEM_BYTES = {"UINT8": 1, "UINT16": 2, "UINT32": 4, "INT32": 4, "UINT64": 8, "INT64": 8,
                   "FLOAT16": 2, "BFLOAT16": 2, "FLOAT32": 4, "FLOAT32_FTZ": 4, "FLOAT64": 8,
                   "TFLOAT32": 4, "TFLOAT32_FTZ": 4}
#: packed types -> bits per element in global memory (`check_packed_tma`)
PACKED_TMA_BITS = {"16U4_ALIGN16B": 4, "16U6_ALIGN16B": 6, "16U4_ALIGN8B": 4}
_SWIZZLE = {0: "NONE", 32: "32B", 64: "64B", 128: "128B"}
_L2 = {0: "NONE", 64: "L2_64B", 128: "L2_128B", 256: "L2_256B"}
_INTERLEAVE = {0: "NONE", 16: "16B", 32: "32B"}


def _tma_dtype(dtype):
    drv = _driver()
    if isinstance(dtype, drv.CUtensorMapDataType):
        return dtype, None
    if type(dtype) is int:
        name = _TMA_BITS.get(dtype)
        if name is None:
            raise ValueError(f"dtype_bits must be 8, 16, 32 or 64, got {dtype}")
    else:
        key = getattr(dtype, "name", None) or str(dtype).removeprefix("torch.")
        if key not in _TMA_DTYPES and str(dtype).removeprefix("torch.") in _TMA_DTYPES:
            key = str(dtype).removeprefix("torch.")
        name = _TMA_DTYPES.get(key) or _TMA_DTYPES.get(key.lower())
        if name is None:
            raise ValueError(
                f"no TMA data type for {dtype!r}; pass a CUtensorMapDataType (e.g. 16U4_ALIGN8B for "
                f"unpacked fp4) or one of {sorted(_TMA_DTYPES)}; pack fp4 pairs as uint8")
    member = getattr(drv.CUtensorMapDataType, "CU_TENSOR_MAP_DATA_TYPE_" + name, None)
    if member is None:
        import cuda.bindings

        raise ValueError(f"the installed cuda.bindings {getattr(cuda.bindings, '__version__', '?')} has no "
                         f"CU_TENSOR_MAP_DATA_TYPE_{name} (the packed sub-byte TMA types need cuda-bindings "
                         f"and a driver of CUDA 12.8 or newer)")
    return member, _TMA_ELEM_BYTES.get(name)


def check_packed_tma(ptr: int, name: str, dims, strides, box, swizzle: int, oob_fill_nan: bool) -> None:
    """Raise ValueError where a packed-type tensor map (`name`: "16U4_ALIGN16B", "16U6_ALIGN16B",
    "16U4_ALIGN8B") breaks `cuTensorMapEncodeTiled`'s rules (CUDA driver API, Tensor Map Object
    Management): ALIGN16B types need a 32-byte aligned address, globalDim[0] % 128 == 0, strides
    multiples of 32 bytes, boxDim[0] == 128, swizzle NONE / 128B / 128B_ATOM_32B (loads; `swizzle`
    in bytes or a CU_TENSOR_MAP_SWIZZLE_* name); 16U4_ALIGN8B needs
    globalDim[0] even; none of them takes the NaN out-of-bounds fill.  dims count elements."""
    what = f"TMA {name} (dims={tuple(dims)} strides={tuple(strides)} box={tuple(box)})"
    if oob_fill_nan:
        raise ValueError(f"{what}: the NaN out-of-bounds fill is not allowed for packed types")
    if name == "16U4_ALIGN8B":
        if dims[0] % 2:
            raise ValueError(f"{what}: globalDim[0] must be even")
        return
    if ptr % 32:
        raise ValueError(f"{what}: global address {ptr:#x} is not 32-byte aligned")
    if dims[0] % 128:
        raise ValueError(f"{what}: globalDim[0] must be a multiple of 128")
    if any(s % 32 for s in strides):
        raise ValueError(f"{what}: global strides must be multiples of 32 bytes")
    if box[0] != 128:
        raise ValueError(f"{what}: boxDim[0] must be 128")
    mode = _SWIZZLE.get(swizzle, "?") if isinstance(swizzle, int) else str(swizzle)
    if mode.removeprefix("CU_TENSOR_MAP_SWIZZLE_") not in ("NONE", "128B", "128B_ATOM_32B"):
        raise ValueError(f"{what}: swizzle must be NONE, 128B or 128B_ATOM_32B for loads, got {swizzle!r}")


def _enum(enum_cls, prefix: str, table: dict, value, what: str):
    if isinstance(value, enum_cls):
        return value
    if value not in table:
        raise ValueError(f"{what} must be one of {sorted(table)} (bytes) or a {enum_cls.__name__}, got {value!r}")
    return getattr(enum_cls, prefix + table[value])


class TensorMap:
    """A 128-byte TMA descriptor (``CUtensorMap``).

    Pass it as a kernel argument of kind ``tensormap`` (PTX ``.param .align 64 .b8 t[128]``,
    read through ``cvta.param``).  ``.bytes`` is the raw descriptor, ``.cu`` the cuda.bindings
    object (``.cu.getPtr()`` for kernelParams-style launches), ``.key`` its cache key.
    """

    __slots__ = ("cu", "bytes", "key")

    def __init__(self, cu, key):
        self.cu = cu
        self.bytes = ctypes.string_at(cu.getPtr(), 128)
        self.key = key

    def __bytes__(self) -> bytes:
        return self.bytes

    def __repr__(self) -> str:
        return f"TensorMap{self.key}"


def _tensormap_bytes(value) -> bytes:
    if isinstance(value, TensorMap):
        return value.bytes
    if isinstance(value, (bytes, bytearray, memoryview)):
        b = bytes(value)
    elif hasattr(value, "getPtr"):
        b = ctypes.string_at(value.getPtr(), 128)
    else:
        raise TypeError(f"a tensormap argument must be a TensorMap, CUtensorMap or 128 bytes, not {type(value)}")
    if len(b) != 128:
        raise ValueError(f"a tensormap argument must be 128 bytes, got {len(b)}")
    return b


_tma_cache: dict[tuple, TensorMap] = {}
_TMA_CACHE_MAX = 4096


def make_tma_descriptor(ptr, dtype, global_dims: Sequence[int], global_strides_bytes: Sequence[int],
                        box_dims: Sequence[int], swizzle=0, elem_strides=1, *, interleave=0,
                        l2_promotion=128, oob_fill_nan: bool = False, cache: bool = True) -> TensorMap:
    """Encode a tiled TMA descriptor with ``cuTensorMapEncodeTiled``.

    All sequences go innermost dimension first (rank 1..5).
    ``ptr``: device address (or tensor), 16-byte aligned.  ``dtype``: a CUtensorMapDataType,
    a name (``"f16"``, ``"bf16"``, ``"f32"``, ``"u8"``, a tilec/torch dtype) or a bit width
    (8/16/32/64 -> unsigned ints of that size).  ``global_strides_bytes``: strides in bytes of
    dims 1..rank-1 (rank-1 values; a leading element-size stride for dim 0 is dropped),
    multiples of 16.  ``box_dims``: the shared-memory box, each in 1..256.  ``swizzle``:
    0/32/64/128 (bytes) or a CUtensorMapSwizzle.  ``elem_strides``: an int for all dims or
    a sequence.  Descriptors are cached by all arguments (``cache=False`` to skip).
    Packed sub-byte types (``"16u4_align16b"``: fp4 two per byte, ``"16u6_align16b"``: fp6
    four in three bytes) take dims in elements and the strides of the packed rows, and follow
    the driver's extra rules (`check_packed_tma`)."""
    ptr = device_pointer(ptr)
    gd = tuple(int(d) for d in global_dims)
    rank = len(gd)
    gs = tuple(int(s) for s in global_strides_bytes)
    if len(gs) == rank:
        gs = gs[1:]
    bd = tuple(int(b) for b in box_dims)
    es = (int(elem_strides),) * rank if isinstance(elem_strides, int) else tuple(int(e) for e in elem_strides)
    key = (ptr, str(dtype), gd, gs, bd, str(swizzle), es, str(interleave), str(l2_promotion), oob_fill_nan)
    if cache:
        hit = _tma_cache.get(key)
        if hit is not None:
            return hit
    _get_state()
    drv = _driver()
    if not 1 <= rank <= 5 or len(gs) != rank - 1 or len(bd) != rank or len(es) != rank:
        raise ValueError(f"TMA descriptor: rank {rank} needs rank-1 strides and rank box dims/element "
                         f"strides, got dims={gd} strides={gs} box={bd} elem_strides={es}")
    if ptr % 16:
        raise ValueError(f"TMA global address {ptr:#x} is not 16-byte aligned")
    if any(s % 16 for s in gs):
        raise ValueError(f"TMA global strides must be multiples of 16 bytes, got {gs}")
    if any(not 1 <= b <= 256 for b in bd):
        raise ValueError(f"TMA box dims must be in 1..256, got {bd}")
    dt, _elem = _tma_dtype(dtype)
    sw = _enum(drv.CUtensorMapSwizzle, "CU_TENSOR_MAP_SWIZZLE_", _SWIZZLE, swizzle, "swizzle")
    il = _enum(drv.CUtensorMapInterleave, "CU_TENSOR_MAP_INTERLEAVE_", _INTERLEAVE, interleave, "interleave")
    l2 = _enum(drv.CUtensorMapL2promotion, "CU_TENSOR_MAP_L2_PROMOTION_", _L2, l2_promotion, "l2_promotion")
    packed = dt.name.removeprefix("CU_TENSOR_MAP_DATA_TYPE_")
    if packed in PACKED_TMA_BITS:
        check_packed_tma(ptr, packed, gd, gs, bd, sw.name, oob_fill_nan)
    oob = (drv.CUtensorMapFloatOOBfill.CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA if oob_fill_nan
           else drv.CUtensorMapFloatOOBfill.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE)
    err, tmap = drv.cuTensorMapEncodeTiled(
        dt, drv.cuuint32_t(rank), ptr,
        [drv.cuuint64_t(d) for d in gd], [drv.cuuint64_t(s) for s in gs],
        [drv.cuuint32_t(b) for b in bd], [drv.cuuint32_t(e) for e in es], il, sw, l2, oob)
    if int(err) != 0:
        raise CudaError(int(err), "cuTensorMapEncodeTiled",
                        f"dtype={dt.name} dims={gd} strides={gs} box={bd} elem_strides={es} "
                        f"swizzle={sw.name} interleave={il.name} (the box's inner dimension times the "
                        f"element size must not exceed the swizzle span)")
    tm = TensorMap(tmap, key)
    if cache:
        if len(_tma_cache) >= _TMA_CACHE_MAX:
            _tma_cache.clear()
        _tma_cache[key] = tm
    return tm
