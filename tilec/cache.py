"""The on-disk compile cache: compiled kernels survive the process that compiled them.

`Kernel.compile_for` looks here on a miss of its in-memory cache.  An entry is keyed
by a SHA-256 of everything the compiled IR depends on:

* the kernel's source, and recursively the source of every plain Python function
  (or other kernel) it references and the value of every global constant it reads,
  found by scanning each function's AST for free names (Triton's DependenciesFinder);
  also closure cells, default argument values and `module.NAME` / `Class.NAME` reads;
* the specialisation: the specs tuple (tensor dtypes and which dims are static,
  scalar dtypes, constant values);
* the target and the `CompileOptions`;
* the tilec version plus a hash of the source files that produce IR (`tilec/`,
  `dialects/`, `passes/`; the CPU backend only interprets IR, so its edits keep the
  cache), and the xdsl, numpy and Python versions: an edited compiler never reuses IR
  from an older one.

A CPU entry is the final IR, printed with locations, plus what rebuilds the
`driver.Artifact` (name, target, grid rank, recorded stages), as one JSON file.  A hit
parses the IR back with xDSL's `Parser`; parsing happens only there.  Each kernel's
learnt `static_dims` are stored too, keyed by the kernel's dependency hash, so a fresh
process specialises those tensor dims from its first trace.

Location: `TILEC_CACHE_DIR` (default `~/.cache/tilec`); `TILEC_CACHE_DIR=""` or
`TILEC_DISABLE_CACHE=1` turns the disk cache off.  `TILEC_DEBUG_CACHE=1` logs every
hit, miss and store to stderr; `stats` counts them in-process.  Files are written to
a temporary name and `os.replace`d into place; unreadable or corrupt entries count as
misses and are overwritten by the next store.
"""

from __future__ import annotations

from tilec.errors import TilecError

import ast
import enum
import hashlib
import inspect
import json
import os
import sys
import tempfile
import types
import weakref
from dataclasses import dataclass, fields, is_dataclass
from functools import cache
from pathlib import Path

FORMAT = 1  # bump when the entry layout changes

#: In-process counters (tests and `TILEC_DEBUG_CACHE` read them).
stats = {"hits": 0, "misses": 0, "stores": 0, "corrupt": 0, "compiles": 0, "static_dims_loaded": 0}


# --------------------------------------------------------------------------- location


def cache_dir() -> Path | None:
    """The cache directory, or None when the disk cache is disabled."""
    if os.environ.get("TILEC_DISABLE_CACHE", "") not in ("", "0"):
        return None
    env = os.environ.get("TILEC_CACHE_DIR")
    if env is not None:
        return Path(env).expanduser() if env.strip() else None
    return Path.home() / ".cache" / "tilec"


def _debug(msg: str) -> None:
    if os.environ.get("TILEC_DEBUG_CACHE", "") not in ("", "0"):
        print(f"tilec cache: {msg}", file=sys.stderr)


def _read_json(path: Path):
    """The JSON in `path`; None if it is missing, unreadable or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError):
        stats["corrupt"] += 1
        _debug(f"ignoring corrupt entry {path}")
        return None


def _write_json(path: Path, obj) -> bool:
    """Write atomically: a temporary file in the same folder, then `os.replace`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(obj, f)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except OSError as e:
        _debug(f"cannot write {path}: {e}")
        return False
    return True


# --------------------------------------------------------------------------- compiler identity


def _package_files() -> list[Path]:
    import importlib.util

    out = []
    for pkg in ("tilec", "tilec.dialects", "tilec.passes"):  # backends hash their own part
        spec = importlib.util.find_spec(pkg)
        for root in (spec.submodule_search_locations or []) if spec else []:
            out += sorted(Path(root).rglob("*.py"))
    return out


def _dist_version(module, dist: str) -> str:
    """The installed version of `dist`, from its `*.dist-info` folder name beside the
    package (importing `importlib.metadata` alone costs ~50 ms); falls back to it."""
    site = Path(module.__file__).resolve().parents[1]
    try:
        for entry in os.scandir(site):
            if entry.name.startswith(f"{dist}-") and entry.name.endswith(".dist-info"):
                return entry.name[len(dist) + 1:-len(".dist-info")]
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


@cache
def compiler_key() -> str:
    """tilec's version and a hash of its sources, and the xdsl/numpy/Python versions."""
    import numpy
    import xdsl

    import tilec

    h = hashlib.sha256()
    xdsl_version = _dist_version(xdsl, "xdsl")
    h.update(f"tilec={tilec.__version__} xdsl={xdsl_version} numpy={numpy.__version__} "
             f"py={sys.version_info[:2]}".encode())
    for path in _package_files():
        try:
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        except OSError:
            pass
    return h.hexdigest()


# --------------------------------------------------------------------------- dependencies


@dataclass(frozen=True)
class _FnInfo:
    """The parts of a function that don't change while it lives (cached per object)."""

    source_hash: str
    where: str                     # file:first line (IR locations are absolute)
    names: tuple[str, ...]         # free names read (globals, closure cells, builtins)
    attrs: tuple[tuple[str, ...], ...]  # dotted `name.attr...` chains read


_INFO: "weakref.WeakKeyDictionary[types.FunctionType, _FnInfo]" = weakref.WeakKeyDictionary()


def _fn_info(fn: types.FunctionType) -> _FnInfo:
    info = _INFO.get(fn)
    if info is not None:
        return info
    from tilec.frontend.tracer import parse_function

    lines, first = inspect.getsourcelines(fn)
    tree = parse_function(fn).tree
    bound = {a.arg for a in ast.walk(tree.args) if isinstance(a, ast.arg)}
    names, attrs = set(), set()
    # the body only: decorators, annotations and defaults are evaluated at definition time
    for node in (n for stmt in tree.body for n in ast.walk(stmt)):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Store):
                bound.add(node.id)
            else:
                names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            chain, base = [node.attr], node.value
            while isinstance(base, ast.Attribute):
                chain.append(base.attr)
                base = base.value
            if isinstance(base, ast.Name):
                attrs.add((base.id, *reversed(chain)))
    free = names - bound
    info = _FnInfo(
        source_hash=hashlib.sha256("".join(lines).encode()).hexdigest(),
        where=f"{inspect.getsourcefile(fn)}:{first}",
        names=tuple(sorted(free)),
        attrs=tuple(sorted(a for a in attrs if a[0] in free)),
    )
    _INFO[fn] = info
    return info


class Unstable(Exception):
    """A value with no reproducible description: the compile skips the disk cache."""


def _is_tilec_or_lib(obj) -> bool:
    mod = getattr(obj, "__module__", None) or getattr(obj, "__name__", "") or ""
    root = mod.split(".")[0]
    return root in ("tilec", "numpy", "math", "builtins", "ml_dtypes")


def describe(value, seen: dict | None = None) -> str:
    """A stable text for `value` as a kernel sees it; raises `Unstable` if there is none."""
    from tilec.dtypes import DType
    from tilec.jit import Kernel

    seen = {} if seen is None else seen
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return f"{type(value).__name__}:{value!r}"
    if isinstance(value, DType):
        return f"dtype:{value.name}"
    if isinstance(value, Kernel):
        value = value.fn
    if isinstance(value, types.FunctionType) and not _is_tilec_or_lib(value):
        return f"fn:{dependency_hash(value, seen)}"
    if isinstance(value, types.ModuleType):
        return f"module:{value.__name__}"
    if isinstance(value, (tuple, list, frozenset, set)):
        items = [describe(v, seen) for v in value]
        if isinstance(value, (set, frozenset)):
            items.sort()
        return f"{type(value).__name__}({','.join(items)})"
    if isinstance(value, dict):
        items = sorted(f"{describe(k, seen)}={describe(v, seen)}" for k, v in value.items())
        return f"dict({','.join(items)})"
    if isinstance(value, enum.Enum):
        return f"enum:{type(value).__module__}.{type(value).__qualname__}.{value.name}"
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, type)) or (
            callable(value) and _is_tilec_or_lib(value) and hasattr(value, "__qualname__")):
        return f"ref:{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', '?')}"
    if is_dataclass(value) and not isinstance(value, type):
        body = ",".join(f"{f.name}={describe(getattr(value, f.name), seen)}" for f in fields(value))
        return f"{type(value).__module__}.{type(value).__qualname__}({body})"
    import numpy as np

    if isinstance(value, (np.generic, np.dtype)):
        return f"np:{value!r}"
    if isinstance(value, np.ndarray):  # repr elides the middle of big arrays: hash the bytes
        data = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
        return f"ndarray:{value.dtype.str}:{value.shape}:{data}"
    text = repr(value)
    if " at 0x" in text or "object at" in text:
        raise Unstable(f"{type(value).__qualname__} has no stable description")
    return f"{type(value).__module__}.{type(value).__qualname__}:{text}"


def _lookup(fn: types.FunctionType, name: str, cells: dict):
    if name in cells:
        return True, cells[name]
    g = fn.__globals__
    if name in g:
        return True, g[name]
    b = g.get("__builtins__", __builtins__)
    b = b if isinstance(b, dict) else vars(b)
    if name in b:
        return True, b[name]
    return False, None


def dependency_hash(fn: types.FunctionType, seen: dict | None = None) -> str:
    """SHA-256 of `fn`'s source and everything it references (recursively)."""
    seen = {} if seen is None else seen
    if fn in seen:
        return seen[fn] or f"recursive:{fn.__qualname__}"
    seen[fn] = None
    info = _fn_info(fn)
    cells = {}
    if fn.__closure__:
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__):
            try:
                cells[name] = cell.cell_contents
            except ValueError:  # an empty cell
                pass
    h = hashlib.sha256()
    h.update(f"{info.source_hash}\n{info.where}\n".encode())
    for name in info.names:
        found, value = _lookup(fn, name, cells)
        h.update(f"{name}={describe(value, seen) if found else '<undefined>'}\n".encode())
    for chain in info.attrs:
        found, value = _lookup(fn, chain[0], cells)
        path = chain[0]
        for attr in chain[1:]:  # follow `mod.NAME` / `Class.NAME` through user modules and classes
            if not (found and isinstance(value, (types.ModuleType, type))) or _is_tilec_or_lib(value):
                break
            path += "." + attr
            found, value = hasattr(value, attr), getattr(value, attr, None)
            h.update(f"{path}={describe(value, seen) if found else '<undefined>'}\n".encode())
    if fn.__defaults__:
        h.update(f"defaults={describe(fn.__defaults__, seen)}\n".encode())
    if fn.__kwdefaults__:
        h.update(f"kwdefaults={describe(fn.__kwdefaults__, seen)}\n".encode())
    digest = seen[fn] = h.hexdigest()
    return digest


def _spec_text(spec) -> str:
    from tilec.frontend.tracer import ConstantSpec, ScalarSpec, TensorSpec

    if isinstance(spec, TensorSpec):
        div = ":div16" if getattr(spec, "div16", False) else ""
        return f"tensor:{spec.dtype.name}:{','.join('?' if d is None else str(d) for d in spec.static_shape)}{div}"
    if isinstance(spec, ScalarSpec):
        return f"scalar:{spec.dtype.name}"
    if isinstance(spec, ConstantSpec):
        return f"constant:{describe(spec.value)}"
    raise Unstable(f"unknown spec {spec!r}")


def artifact_key(kernel, specs, target: str, options) -> str:
    """The entry key of one compile; raises `Unstable` when it can't be computed."""
    from tilec.pipelines import canonical_target

    h = hashlib.sha256()
    h.update(f"format={FORMAT}\ncompiler={compiler_key()}\nkernel={dependency_hash(kernel.fn)}\n".encode())
    h.update(f"kernel_options={describe(kernel.options)}\n".encode())
    h.update(f"target={canonical_target(target)}\noptions={describe(options)}\n".encode())
    for spec in specs:
        h.update(f"{_spec_text(spec)}\n".encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- entries


def _print_module(module) -> str:
    import io

    from xdsl.printer import Printer

    buf = io.StringIO()
    Printer(stream=buf, print_debuginfo=True).print_op(module)
    return buf.getvalue()


def load_artifact(key: str):
    """The cached `Artifact` for `key`, or None (missing, corrupt, or disabled)."""
    root = cache_dir()
    if root is None:
        return None
    path = root / "kernels" / f"{key}.json"
    entry = _read_json(path)
    if entry is None:
        return None
    try:
        if entry["format"] != FORMAT or entry["key"] != key:
            raise ValueError("format or key mismatch")
        import time

        from xdsl.dialects.builtin import ModuleOp
        from xdsl.parser import Parser

        from tilec.context import make_context
        from tilec.driver import Artifact

        t0 = time.perf_counter()
        module = Parser(make_context(), entry["ir"], name=str(path)).parse_module()
        if not isinstance(module, ModuleOp):
            raise ValueError("not a module")
        art = Artifact(str(entry["name"]), str(entry["target"]), module, int(entry["grid_rank"]),
                       [tuple(s) for s in entry.get("stages", [])], time.perf_counter() - t0)
        art.func  # noqa: B018 - the module must hold the function
    except Exception as e:  # any damage: treat as a miss, the next store overwrites it
        stats["corrupt"] += 1
        _debug(f"ignoring corrupt entry {path}: {type(e).__name__}: {e}")
        return None
    stats["hits"] += 1
    _debug(f"hit {entry['name']} {key[:16]} ({path})")
    return art


def store_artifact(key: str, artifact) -> None:
    root = cache_dir()
    if root is None or artifact.module is None:
        return
    entry = {"format": FORMAT, "key": key, "name": artifact.name, "target": artifact.target,
             "grid_rank": artifact.grid_rank, "stages": [list(s) for s in artifact.stages],
             "ir": _print_module(artifact.module)}
    path = root / "kernels" / f"{key}.json"
    if _write_json(path, entry):
        stats["stores"] += 1
        _debug(f"stored {artifact.name} {key[:16]} ({path})")


def _static_dims_path(kernel) -> Path | None:
    root = cache_dir()
    if root is None:
        return None
    try:
        return root / "static_dims" / f"{dependency_hash(kernel.fn)}.json"
    except (Unstable, OSError, TypeError, TilecError) as e:
        _debug(f"not caching the static dims of {kernel.name}: {e}")
        return None


def _read_static_dims(path: Path) -> set:
    entry = _read_json(path)
    try:
        return {(int(i), int(a)) for i, a in entry["dims"]} if entry is not None else set()
    except (KeyError, TypeError, ValueError):
        stats["corrupt"] += 1
        _debug(f"ignoring corrupt entry {path}")
        return set()


def load_static_dims(kernel) -> set:
    """The (param index, axis) pairs earlier processes learnt for `kernel`."""
    path = _static_dims_path(kernel)
    dims = _read_static_dims(path) if path is not None else set()
    if dims:
        stats["static_dims_loaded"] += 1
        _debug(f"static dims of {kernel.name}: {sorted(dims)}")
    return dims


def store_static_dims(kernel, dims: set) -> None:
    """Add `dims` to the kernel's stored static dims (a union with what is on disk)."""
    path = _static_dims_path(kernel)
    if path is None:
        return
    merged = set(dims) | _read_static_dims(path)
    _write_json(path, {"kernel": kernel.name, "dims": sorted(merged)})


def compile_cached(kernel, specs, target: str, options, compile_fn):
    """`compile_fn(kernel, specs, target, options)` behind the disk cache."""
    from tilec.pipelines import canonical_target

    key = None
    if cache_dir() is not None and canonical_target(target) == "cpu":  # GPU artifacts: not yet
        try:
            key = artifact_key(kernel, specs, target, options)
        except (Unstable, OSError, TypeError, TilecError) as e:
            _debug(f"not caching {kernel.name}: {e}")
        if key is not None:
            hit = load_artifact(key)
            if hit is not None:
                return hit
            stats["misses"] += 1
            _debug(f"miss {kernel.name} {key[:16]}")
    stats["compiles"] += 1
    artifact = compile_fn(kernel, specs, target, options)
    if key is not None:
        store_artifact(key, artifact)
    return artifact
