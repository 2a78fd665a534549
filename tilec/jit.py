"""`@ct.kernel` and `kernel[grid](*args)`: argument binding, specialisation and caching.

A launch maps each argument to a spec (tensor dtype and rank, scalar dtype, or the
value of a `ct.Constant`), looks the spec up in the kernel's cache, compiles on a miss
and runs the artifact on the backend that owns the arrays (numpy -> CPU simulation).

Tensor dims stay dynamic unless the kernel uses one where a compile-time value is
needed (a tile size): the tracer then asks for that dim to be specialised and the
kernel is traced again with it fixed; later launches specialise on it from the start.
"""

from __future__ import annotations

import inspect
import os
import struct
import threading
from dataclasses import dataclass

import numpy as np

from tilec import dtypes as dt
from tilec.errors import LaunchError, TilecError
from tilec.fp4 import FP4Tensor


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "tensor" | "constant" | "scalar" | "any"


def _param_kind(annotation) -> str:
    from tilec.api import Constant, Tensor

    if annotation is inspect.Parameter.empty:
        return "any"
    if annotation is Tensor or annotation == "ct.Tensor" or annotation == "Tensor":
        return "tensor"
    origin = getattr(annotation, "__origin__", None)
    if annotation is Constant or origin is Constant or (isinstance(annotation, str) and "Constant" in annotation):
        return "constant"
    if annotation in (int, float, "int", "float"):
        return "scalar"
    return "any"


class Kernel:
    """A tile kernel.  Launch with `kernel[grid](*args)`; compile ahead of time with
    `tilec.compile(kernel, ...)` or the `tilec compile` command."""

    def __init__(self, fn, **options):
        self.fn = fn
        self.name = fn.__name__
        self.options = options
        sig = self.signature = inspect.signature(fn)
        self.params = [Param(p.name, _param_kind(p.annotation)) for p in sig.parameters.values()]
        self.param_names = [p.name for p in self.params]
        self.static_dims: set = set()       # (param index, axis) learnt from tracing
        self._plans = PlanCache()           # (grid, options, TILEC_TARGET, launch_signature) -> closure
        self._launchers: dict = {}          # grid tuple -> Launcher (kernel[grid] on the hot path)
        self._disk_dims_loaded = False      # static_dims merged with the disk cache's yet?
        self._cache: dict = {}
        self._lock = threading.Lock()
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    @property
    def where(self) -> str:
        code = self.fn.__code__
        return f"{code.co_filename}:{code.co_firstlineno}"

    def __repr__(self) -> str:
        return f"<tilec kernel {self.name} at {self.where}>"

    def __get__(self, obj, objtype=None):
        return self  # never binds `self`: kernels in class bodies launch as self.k[grid](...)

    def __getitem__(self, grid) -> "Launcher":
        launcher = self._launchers.get(grid) if type(grid) is tuple else None
        if launcher is None:
            launcher = Launcher(self, normalize_grid(self, grid))
            if type(grid) is tuple and len(self._launchers) < 256:
                self._launchers[grid] = launcher
        return launcher

    def __call__(self, *args, **kwargs):
        raise LaunchError(f"kernel '{self.name}' ({self.where}) must be launched with a grid: "
                          f"{self.name}[grid](...)")

    # ---------------------------------------------------------------- binding
    def complete_args(self, args: tuple, kwargs: dict) -> tuple:
        """Positional arguments with keywords and parameter defaults filled in."""
        if not kwargs and len(args) == len(self.params):
            return args
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as e:
            raise LaunchError(f"kernel '{self.name}' ({self.where}) takes {len(self.params)} arguments "
                              f"({', '.join(self.param_names)}), got {len(args) + len(kwargs)}: {e}") from None
        bound.apply_defaults()
        return tuple(bound.arguments[p.name] for p in self.params)

    def launch_signature(self, args: tuple):
        """A cheap key of everything `bind` derives specs from (dtypes, ranks, contiguity,
        static dims, 16-byte alignment, scalar kinds, constant values), or None when an
        argument is of a kind only the full path handles."""
        if len(args) != len(self.params):
            return None
        parts = []
        for i, (p, a) in enumerate(zip(self.params, args)):
            t = type(a)
            if p.kind == "constant":
                parts.append(("c", t, a))
            elif t is int:
                parts.append(-2**31 <= a < 2**31)
            elif t is float:
                parts.append(1.5)
            elif t is np.ndarray:
                parts.append((a.dtype, a.ndim, a.flags.c_contiguous, self._static_sizes(i, a.shape)))
            elif t is _torch_tensor_type(t) and a.is_cuda:
                shape = a.shape
                aligned = a.data_ptr() % 16 == 0 and (len(shape) < 2 or shape[-1] * a.element_size() % 16 == 0)
                parts.append((a.dtype, len(shape), a.is_contiguous(), a.get_device(), aligned,
                              self._static_sizes(i, shape) if self.static_dims else ()))
            elif t is FP4Tensor and _torch_tensor_type(type(a.packed)) is type(a.packed) and a.packed.is_cuda:
                # packed GPU fp4: the kernel sees the logical shape and the packed bytes' address;
                # alignment as `bind` derives it (base pointer, logical innermost dim x 1 byte)
                shape, packed = a.shape, a.packed
                aligned = packed.data_ptr() % 16 == 0 and (len(shape) < 2 or shape[-1] % 16 == 0)
                parts.append(("fp4", packed.dtype, len(shape), packed.is_contiguous(), packed.get_device(), aligned,
                              self._static_sizes(i, shape) if self.static_dims else ()))
            else:
                return None
        try:
            hash(tuple(parts))
        except TypeError:
            return None
        return tuple(parts)

    def _static_sizes(self, index: int, shape) -> tuple:
        if not self.static_dims:
            return ()
        return tuple(shape[ax] for (i, ax) in self.static_dims if i == index and ax < len(shape))

    def bind(self, args: tuple) -> tuple[list, list]:
        """Specs (for compiling) and run-time values (for launching) of `args`."""
        from tilec.frontend.tracer import ConstantSpec, ScalarSpec, TensorSpec

        if len(args) != len(self.params):
            raise LaunchError(f"kernel '{self.name}' ({self.where}) takes {len(self.params)} arguments "
                              f"({', '.join(self.param_names)}), got {len(args)}")
        specs, values = [], []
        for i, (p, a) in enumerate(zip(self.params, args)):
            if p.kind == "constant":
                try:
                    hash(a)
                except TypeError:
                    raise LaunchError(f"kernel '{self.name}': constant argument '{p.name}' must be hashable") from None
                specs.append(ConstantSpec(a))
                continue
            array = as_host_array(a) if not isinstance(a, (bool, int, float, np.generic)) else None
            if array is not None:
                if p.kind in ("scalar", "constant"):
                    raise LaunchError(f"kernel '{self.name}': argument '{p.name}' must be a number, got an array")
                if not array.flags.c_contiguous:
                    raise LaunchError(f"kernel '{self.name}': tensor argument '{p.name}' is not contiguous "
                                      f"(strides {array.strides}); pass np.ascontiguousarray(...)")
                try:
                    dtype = dt.from_numpy(array.dtype)
                except KeyError:
                    raise LaunchError(f"kernel '{self.name}': tensor argument '{p.name}' has unsupported dtype "
                                      f"{array.dtype}") from None
                shape = tuple(array.shape[ax] if (i, ax) in self.static_dims else None for ax in range(array.ndim))
                specs.append(TensorSpec(dtype, shape, _div16(array)))
                values.append(array)
                continue
            if p.kind == "tensor":
                raise LaunchError(f"kernel '{self.name}': argument '{p.name}' must be a tensor "
                                  f"(numpy array or GPU tensor), got {type(a).__name__}")
            if isinstance(a, (bool, np.bool_)):
                specs.append(ConstantSpec(bool(a)))
            elif isinstance(a, (int, np.integer)):
                specs.append(ScalarSpec(dt.int32 if -2**31 <= int(a) < 2**31 else dt.int64))
                values.append(int(a))
            elif isinstance(a, (float, np.floating)):
                specs.append(ScalarSpec(dt.float32))
                values.append(float(a))
            else:
                raise LaunchError(f"kernel '{self.name}': argument '{p.name}' has unsupported type "
                                  f"{type(a).__name__}")
        return specs, values

    # ---------------------------------------------------------------- compiling
    def compile_for(self, args: tuple, target: str = "cpu", options=None):
        """Bind `args`, compile (or fetch from the in-memory, then the disk cache) and
        return (artifact, run-time values)."""
        from tilec import cache
        from tilec.driver import CompileOptions, compile_kernel
        from tilec.frontend.state import SpecializeDims

        options = options or CompileOptions()
        for _ in range(64):
            specs, values = self.bind(args)
            if target == "cpu":  # alignment only matters to the GPU backends' vector accesses
                specs = [_no_div16(s) for s in specs]
            key = (target, tuple(specs), options)
            hit = self._cache.get(key)
            if hit is not None:
                return hit, values
            if not self._disk_dims_loaded:  # first miss: start from the dims earlier runs learnt
                self._disk_dims_loaded = True
                if self._learn_dims(cache.load_static_dims(self), persist=False):
                    continue
            try:
                artifact = cache.compile_cached(self, specs, target, options, compile_kernel)
            except SpecializeDims as s:
                self._learn_dims(s.dims, persist=True)
                continue
            self._cache[key] = artifact
            return artifact, values
        raise LaunchError(f"kernel '{self.name}': could not settle which tensor dims to specialise")

    def _learn_dims(self, dims, persist: bool) -> bool:
        """Mark tensor dims static; True if that changed anything (then re-bind)."""
        from tilec import cache

        with self._lock:
            new = set(dims) - self.static_dims
            self.static_dims |= new
            if new:
                self._plans.clear()
            snapshot = set(self.static_dims)
        if new and persist:
            cache.store_static_dims(self, snapshot)
        return bool(new)


class PlanCache(dict):
    """`Kernel._plans`: a dict whose `generation` changes on `clear()`, so the fast launch
    functions Launchers keep (built from a plan) go stale with it."""

    generation = 0

    def clear(self) -> None:
        self.generation += 1
        super().clear()


class Launcher:
    """`kernel[grid]`: launches `kernel` on `grid`.  The steady state costs one call of the
    generated fast function of the last plan used (tilec.runtime.fast_launch), which checks
    the arguments against that plan's signature and launches; on a mismatch the launch
    takes the plan dict (keyed by `Kernel.launch_signature`), then the compile path."""

    def __init__(self, kernel: Kernel, grid: tuple[int, ...], options=None):
        self.kernel = kernel
        self.grid = grid
        self.options = options  # driver.CompileOptions (num_warps, num_stages) or None
        self._fast = None       # (_target_token(), PlanCache, its generation, fast function)
        self._by_options: dict = {}  # launch keywords (num_stages=, num_warps=) -> Launcher

    def __call__(self, *args, **kwargs):
        if kwargs:
            tuned = self._with_options(kwargs)
            if tuned is not None:  # `num_stages=3`: that Launcher's fast path, not a re-bind per call
                return tuned(*args)
        fast = self._fast
        if fast is not None and not kwargs and fast[1] is self.kernel._plans and fast[1].generation == fast[2] \
                and _target_token() == fast[0]:
            try:
                if fast[3](args):
                    return
            except TilecError as e:
                raise e.with_traceback(None) from e.__cause__
        if not kwargs:  # a launch plan for this exact signature
            plan = self.kernel._plans.get((self.grid, self.options, _target_env(), self.kernel.launch_signature(args)))
            if plan is not None:
                try:
                    plan(args)
                except TilecError as e:
                    raise e.with_traceback(None) from e.__cause__
                except (OverflowError, struct.error):
                    if getattr(plan, "fast", None) is None:   # not a GPU plan (which packs before launching)
                        raise
                    plan = None       # a dim >= 2^32...: nothing launched; the general path says what
                if plan is not None:
                    self._set_fast(plan, args)
                    return
        try:
            options = self.options
            if kwargs and not _LAUNCH_KEYWORDS.isdisjoint(kwargs):
                options = _launch_options(self.kernel, options, kwargs)
            args = self.kernel.complete_args(args, kwargs)
            from tilec.runtime.launch import target_for_args
            target = target_for_args(args)  # "cpu" for host arrays, the device's sm_* for GPU tensors
            simulate = target.startswith("sim:")
            artifact, values = self.kernel.compile_for(args, target.removeprefix("sim:"), options)
            if artifact.grid_rank > len(self.grid):
                raise LaunchError(f"kernel '{self.kernel.name}' ({self.kernel.where}) reads grid axis "
                                  f"{artifact.grid_rank - 1} but was launched on a {len(self.grid)}-D grid "
                                  f"{self.grid}")
            if simulate:
                from tilec.backends.sim.launch import run_ptx_kernel
                run_ptx_kernel(artifact.gpu, values, self.grid)
                return
            if target != "cpu":
                from tilec.runtime.launch import launch_artifact
                launch_artifact(artifact, values, self.grid)
            else:
                from tilec.backends.cpu.interpreter import run_kernel
                run_kernel(artifact.func, values, self.grid)
            if options is self.options:
                self._remember_plan(args, artifact, target)
        except Exception as e:
            # (TilecError is the module's: a local import here would make the name local to the
            # whole method, and the `except TilecError` clauses above an UnboundLocalError)
            if isinstance(e, TilecError):
                raise e.with_traceback(None) from e.__cause__
            raise


    def _remember_plan(self, args: tuple, artifact, target: str) -> None:
        """After a successful slow launch, keep a plan that repeats it for the same signature."""
        signature = self.kernel.launch_signature(args)
        if signature is None:
            return
        from tilec.frontend.tracer import ConstantSpec

        specs, _ = self.kernel.bind(args)
        value_args = tuple(i for i, s in enumerate(specs) if not isinstance(s, ConstantSpec))
        if target == "cpu":
            from tilec.backends.cpu.interpreter import run_kernel

            func, grid = artifact.func, self.grid
            plan = lambda a: run_kernel(func, [a[i] for i in value_args], grid)  # noqa: E731
        else:
            from tilec.runtime.launch import prepare_launch

            plan = prepare_launch(artifact, self.grid, value_args)
        self.kernel._plans[(self.grid, self.options, _target_env(), signature)] = plan
        # the fast function is generated on the plan's first reuse (`__call__`), not here: a
        # Launcher made per call (autotune configs) never pays for generating one

    def _with_options(self, kwargs: dict) -> "Launcher | None":
        """The Launcher of this grid with the compile options that launch keywords made of
        `num_stages` / `num_warps` select (cached per keyword set), or None for other keywords."""
        try:
            key = tuple(kwargs.items())
            hit = self._by_options.get(key)
        except TypeError:
            return None
        if hit is None:
            names = set(kwargs)
            if not names <= _LAUNCH_KEYWORDS or names & set(self.kernel.param_names):
                return None
            options = _launch_options(self.kernel, self.options, dict(kwargs))
            hit = Launcher(self.kernel, self.grid, options)
            if len(self._by_options) < 64:
                self._by_options[key] = hit
        return hit

    def _set_fast(self, plan, args: tuple) -> None:
        """Make `plan`'s fast function (if it has one for `args`) this Launcher's first try."""
        build = getattr(plan, "fast", None)
        if build is None:
            self._fast = None
            return
        cache = plan.fast_cache = getattr(plan, "fast_cache", None) or {}
        sig = self.kernel.launch_signature(args)
        fn = cache.get(sig)
        if fn is None and sig not in cache:
            fn = cache[sig] = build(self.kernel, args)
        plans = self.kernel._plans
        gen = getattr(plans, "generation", None)   # a plain dict put there by hand: no fast path
        self._fast = None if fn is None or gen is None else (_target_token(), plans, gen, fn)


_TORCH_TENSOR: list = []


def _torch_tensor_type(t):
    """`torch.Tensor` once torch is imported (resolved on first sight of a torch object)."""
    if _TORCH_TENSOR:
        return _TORCH_TENSOR[0]
    if t.__module__ == "torch" and t.__name__ == "Tensor":
        _TORCH_TENSOR.append(t)
        return t
    return None


#: launch keywords that select compile options (as in Triton): `num_stages=`, `num_warps=`,
#: `launch_pdl=` (programmatic dependent launch, `driver.CompileOptions.launch_pdl`)
_LAUNCH_KEYWORDS = frozenset(("num_stages", "num_warps", "launch_pdl"))


def _launch_options(kernel: Kernel, options, kwargs: dict):
    """`kernel[grid](..., num_stages=3, num_warps=8, launch_pdl=True)`: launch keywords that are
    not kernel parameters override the compile options (as in Triton); removed from `kwargs`."""
    from dataclasses import replace

    from tilec.driver import CompileOptions

    picked = {k: kwargs.pop(k) for k in _LAUNCH_KEYWORDS if k in kwargs and k not in kernel.param_names}
    if not picked:
        return options
    key = (options, *sorted(picked.items()))
    hit = _OPTIONS.get(key)
    if hit is None:
        hit = _OPTIONS[key] = replace(options or CompileOptions(), **picked)
    return hit


_OPTIONS: dict = {}  # (options, launch keywords) -> CompileOptions: no dataclass copy per launch


_ENV_DATA = getattr(os.environ, "_data", None)   # the bytes dict behind os.environ (posix CPython)
_ENV_KEY = os.environ.encodekey("TILEC_TARGET") if _ENV_DATA is not None and hasattr(os.environ, "encodekey") else None


def _target_env() -> str:
    """`TILEC_TARGET` (see `runtime.launch.target_override`): part of every launch-plan key."""
    return os.environ.get("TILEC_TARGET", "")


def _target_token():
    """`TILEC_TARGET` as cheaply as it can be read, for the fast path's equality test: read per
    launch (tests and users change it between launches) from the bytes dict behind `os.environ`
    when there is one, instead of `os.environ.get`'s key encoding and value decoding."""
    if _ENV_KEY is not None:
        return _ENV_DATA.get(_ENV_KEY)
    return os.environ.get("TILEC_TARGET")


def normalize_grid(kernel: Kernel, grid) -> tuple[int, ...]:
    if isinstance(grid, (int, np.integer)):
        grid = (grid,)
    if not isinstance(grid, (tuple, list)) or not grid:
        raise LaunchError(f"kernel '{kernel.name}': the grid must be an int or a tuple of ints, got {grid!r}")
    out = []
    for g in grid:
        if isinstance(g, bool) or not isinstance(g, (int, np.integer)) or g < 1:
            raise LaunchError(f"kernel '{kernel.name}': grid dims must be positive ints, got {tuple(grid)}")
        out.append(int(g))
    return tuple(out)


def _div16(array) -> bool:
    """The `TensorSpec.div16` bit: the base address and, for rank >= 2, the row pitch
    (innermost dim x element size) are multiples of 16 bytes, so every row starts 16-byte
    aligned."""
    ptr = getattr(array, "ptr", None)
    if ptr is None:
        try:
            ptr = array.ctypes.data
        except AttributeError:
            return False
    return ptr % 16 == 0 and (array.ndim < 2 or array.shape[-1] * array.dtype.itemsize % 16 == 0)


def _no_div16(spec):
    from dataclasses import replace

    return replace(spec, div16=False) if getattr(spec, "div16", False) else spec


def as_host_array(a):
    """A numpy view of a host array argument, or None if `a` is not an array.  A packed
    `tilec.fp4.FP4Tensor` stands for itself (its dtype and logical shape are the tensor's)."""
    if isinstance(a, np.ndarray):
        return a
    if isinstance(a, FP4Tensor):
        from tilec.runtime.launch import device_array, is_device_array
        return device_array(a) if is_device_array(a.packed) else a
    mod = type(a).__module__
    if mod.startswith("torch"):
        if a.device.type != "cpu":  # a GPU tensor: dtype/shape/pointer view for the GPU launch path
            from tilec.runtime.launch import device_array
            return device_array(a)
        import ml_dtypes
        if str(a.dtype) == "torch.bfloat16":
            return a.view(__import__("torch").int16).numpy().view(ml_dtypes.bfloat16)
        return a.numpy()
    if hasattr(a, "__array_interface__"):
        return np.asarray(a)
    if hasattr(a, "__cuda_array_interface__"):
        from tilec.runtime.launch import device_array
        return device_array(a)
    return None


def kernel(fn=None, **options):
    """Decorator making a tile kernel: `@ct.kernel` or `@ct.kernel(num_warps=8)`."""
    if fn is None:
        return lambda f: Kernel(f, **options)
    return Kernel(fn, **options)
