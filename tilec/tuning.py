"""`@ct.autotune`: pick the fastest of several compile-time configurations per input key.

    @ct.autotune(configs=[ct.Config({"BM": 64, "BN": 64}, num_warps=4),
                          ct.Config({"BM": 128, "BN": 64}, num_warps=8, num_stages=4)],
                 key=["A", "B"])
    @ct.kernel
    def matmul(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor, BM: ct.Constant[int], BN: ct.Constant[int]):
        ...

    matmul[lambda cfg: (ct.cdiv(M, cfg["BM"]), ct.cdiv(N, cfg["BN"]))](A, B, C)

As in Triton: for each new value of `key` (the named arguments: a tensor contributes
its dtype and shape, a number its value) every config is compiled and timed on the
arguments of that launch, the winner is remembered in memory and on disk (next to the
compile cache, keyed by the kernel's dependency hash), and later launches with the same
key use it directly.  Tensors named in `restore_value` are saved before tuning and
restored after each timed run, so kernels that accumulate (atomic_add) are tuned safely.
The grid may be a function of the config's constants.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field

from tilec.errors import LaunchError


@dataclass(frozen=True)
class Config:
    """One candidate: values for the kernel's `ct.Constant` parameters plus GPU options."""

    kwargs: dict = field(default_factory=dict)
    num_warps: int | None = None
    num_stages: int | None = None

    def __hash__(self):
        return hash((tuple(sorted(self.kwargs.items())), self.num_warps, self.num_stages))

    def describe(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in sorted(self.kwargs.items()))
        return f"Config({opts}, num_warps={self.num_warps}, num_stages={self.num_stages})"


def _key_part(value) -> object:
    shape = getattr(value, "shape", None)
    if shape is not None and not isinstance(value, (int, float)):
        return (str(getattr(value, "dtype", "")), tuple(int(s) for s in shape))
    return value


class Autotuner:
    def __init__(self, kernel, configs, key, restore_value=(), warmup: int = 2, rep: int = 5):
        from tilec.jit import Kernel

        if not isinstance(kernel, Kernel):
            raise TypeError("@ct.autotune must decorate a @ct.kernel (put @ct.kernel below it)")
        if not configs:
            raise ValueError("@ct.autotune needs at least one Config")
        unknown = [k for k in (*key, *restore_value) if k not in kernel.param_names]
        if unknown:
            raise ValueError(f"@ct.autotune on '{kernel.name}': {unknown} are not parameters "
                             f"({', '.join(kernel.param_names)})")
        self.kernel = kernel
        self.configs = list(configs)
        self.key = list(key)
        self.restore_value = list(restore_value)
        self.warmup, self.rep = warmup, rep
        self.best: dict = {}
        self.timings: dict = {}   # key -> [(config, seconds)] of the last tuning run

    def __getitem__(self, grid):
        return _TunedLauncher(self, grid)

    # ------------------------------------------------------------------ disk
    def _disk_path(self):
        from tilec import cache

        root = cache.cache_dir()
        if root is None:
            return None
        try:
            dep = cache.dependency_hash(self.kernel.fn)
        except Exception:  # noqa: BLE001 - an unstable dependency: tune in memory only
            return None
        tag = abs(hash(tuple(c.describe() for c in self.configs)))
        return root / "autotune" / f"{self.kernel.name}-{dep[:16]}-{tag:x}.json"

    def _load(self, key_text: str):
        path = self._disk_path()
        if path is None or not path.exists():
            return None
        try:
            index = json.loads(path.read_text()).get(key_text)
        except (OSError, ValueError):
            return None
        return self.configs[index] if isinstance(index, int) and index < len(self.configs) else None

    def _store(self, key_text: str, config: Config) -> None:
        path = self._disk_path()
        if path is None:
            return
        try:
            data = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, ValueError):
            data = {}
        data[key_text] = self.configs.index(config)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)

    # ------------------------------------------------------------------ tuning
    def pick(self, grid, args: tuple) -> Config:
        named = dict(zip(self.kernel.param_names, args))
        key = tuple(_key_part(named[k]) for k in self.key)
        cfg = self.best.get(key)
        if cfg is None:
            key_text = repr(key)
            cfg = self._load(key_text) or self._tune(grid, args, key)
            self.best[key] = cfg
            self._store(key_text, cfg)
        return cfg

    def _tune(self, grid, args: tuple, key) -> Config:
        named = dict(zip(self.kernel.param_names, args))
        saved = {n: _copy(named[n]) for n in self.restore_value}
        results = []
        for cfg in self.configs:
            launch = _bind_config(self.kernel, grid, cfg)
            try:
                seconds = _time(lambda: launch(args), self.warmup, self.rep,
                                restore=lambda: [_restore(named[n], saved[n]) for n in saved])
            except Exception as e:  # noqa: BLE001 - a config that does not compile loses
                from tilec.errors import TilecError
                if not isinstance(e, TilecError):
                    raise
                seconds = float("inf")
            results.append((cfg, seconds))
        for n in saved:
            _restore(named[n], saved[n])
        self.timings[key] = results
        best, seconds = min(results, key=lambda r: r[1])
        if seconds == float("inf"):
            raise LaunchError(f"@ct.autotune on '{self.kernel.name}': no config compiled for key {key}")
        return best


def _bind_config(kernel, grid, cfg: Config):
    from tilec.driver import CompileOptions
    from tilec.jit import Launcher, normalize_grid

    g = normalize_grid(kernel, grid(dict(cfg.kwargs)) if callable(grid) else grid)
    launcher = Launcher(kernel, g, CompileOptions(num_warps=cfg.num_warps, num_stages=cfg.num_stages))
    return lambda args: launcher(*args, **cfg.kwargs)


class _TunedLauncher:
    def __init__(self, tuner: Autotuner, grid):
        self.tuner, self.grid = tuner, grid

    def __call__(self, *args, **kwargs):
        if kwargs:
            raise LaunchError(f"autotuned kernel '{self.tuner.kernel.name}': pass arguments positionally; "
                              f"the tuned constants come from the configs")
        cfg = self.tuner.pick(self.grid, args)
        _bind_config(self.tuner.kernel, self.grid, cfg)(args)


def _copy(x):
    return x.clone() if hasattr(x, "clone") else x.copy()


def _restore(x, saved) -> None:
    if hasattr(x, "copy_"):
        x.copy_(saved)
    else:
        x[...] = saved


def _time(run, warmup: int, rep: int, restore) -> float:
    """Median seconds of `run()` (GPU work synchronised), restoring outputs around each run."""
    sync = _synchronizer()
    for _ in range(warmup):
        run()
        restore()
    sync()
    samples = []
    for _ in range(rep):
        t0 = time.perf_counter()
        run()
        sync()
        samples.append(time.perf_counter() - t0)
        restore()
    return statistics.median(samples)


def _synchronizer():
    try:
        import torch
        if torch.cuda.is_available():
            return torch.cuda.synchronize
    except ImportError:
        pass
    return lambda: None


def autotune(configs, key, restore_value=(), warmup: int = 2, rep: int = 5):
    """Decorator: `@ct.autotune(configs=[ct.Config(...), ...], key=["A", "N"])` above `@ct.kernel`."""
    return lambda kernel: Autotuner(kernel, configs, key, restore_value, warmup, rep)
