"""Locate NVIDIA's `ptxas`, report its version, and assemble PTX text into a cubin.

Search order for the executable (the first hit wins):

1. the environment variable ``TILEC_PTXAS`` (a path to the executable);
2. the PyPI wheel ``nvidia-cuda-nvcc``: ``nvidia/cu13/bin/ptxas`` (CUDA 13 layout) or
   ``nvidia/cuda_nvcc/bin/ptxas`` (CUDA 12 layout) in any ``nvidia`` namespace folder;
3. ``/usr/local/cuda/bin/ptxas``;
4. ``ptxas`` on ``PATH``.

``assemble(ptx, "sm_90a")`` returns ``(cubin_bytes, info_text)``; ``info_text`` is what
ptxas printed (warnings, and with ``verbose=True`` the ``-v`` resource report).  A failed
assembly raises `PtxasError`, whose message is ptxas' own, with the temporary file name
replaced by ``name`` and the offending PTX lines quoted.

This module needs neither a GPU nor a CUDA driver.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

__all__ = [
    "PtxasError",
    "PtxasNotFoundError",
    "assemble",
    "find_ptxas",
    "ptxas_version",
    "ptxas_version_tuple",
]

_ARCH_RE = re.compile(r"^sm_\d{2,3}[af]?$")
_LINE_RE = re.compile(r", line (\d+);")
_WHEEL_SUBPATHS = ("cu13/bin/ptxas", "cuda_nvcc/bin/ptxas")


class PtxasNotFoundError(FileNotFoundError):
    """No ptxas executable was found (see the module docstring for the search order)."""


class PtxasError(RuntimeError):
    """ptxas rejected the PTX.

    Attributes: ``log`` (ptxas' output, temporary paths replaced by the input name),
    ``lines`` (the 1-based PTX line numbers ptxas complained about), ``returncode``,
    ``arch`` and ``ptxas`` (the executable that ran).
    """

    def __init__(self, log: str, lines: list[int], returncode: int, arch: str, ptxas: str, ptx: str):
        self.log, self.lines, self.returncode, self.arch, self.ptxas = log, lines, returncode, arch, ptxas
        src = ptx.splitlines()
        quoted = [f"  {n:5d} | {src[n - 1]}" for n in lines[:5] if 0 < n <= len(src)]
        text = f"ptxas failed for {arch} (exit {returncode}):\n{log.rstrip()}"
        if quoted:
            text += "\n" + "\n".join(quoted)
        super().__init__(text)


def _is_exe(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_file() and os.access(p, os.X_OK)


def _wheel_candidates() -> list[Path]:
    """ptxas locations inside the `nvidia` namespace package (nvidia-cuda-nvcc wheel)."""
    try:
        spec = importlib.util.find_spec("nvidia")
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(root) / sub for root in spec.submodule_search_locations for sub in _WHEEL_SUBPATHS]


@functools.lru_cache(maxsize=8)
def _resolve(env_value: str | None) -> str:
    if env_value:
        if not _is_exe(env_value):
            raise PtxasNotFoundError(f"TILEC_PTXAS={env_value!r} is not an executable file")
        return str(Path(env_value).resolve())
    for cand in _wheel_candidates():
        if _is_exe(cand):
            return str(cand)
    if _is_exe("/usr/local/cuda/bin/ptxas"):
        return "/usr/local/cuda/bin/ptxas"
    found = shutil.which("ptxas")
    if found:
        return found
    raise PtxasNotFoundError(
        "ptxas not found: set TILEC_PTXAS, `pip install nvidia-cuda-nvcc`, "
        "or install the CUDA toolkit (/usr/local/cuda/bin/ptxas or ptxas on PATH)"
    )


def find_ptxas() -> str:
    """Path of the ptxas executable; raises `PtxasNotFoundError` when there is none."""
    return _resolve(os.environ.get("TILEC_PTXAS") or None)


@functools.lru_cache(maxsize=8)
def _version_of(exe: str) -> str:
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"\bV(\d+\.\d+\.\d+)", out) or re.search(r"release (\d+\.\d+)", out)
    if not m:
        raise RuntimeError(f"cannot parse the version printed by {exe}:\n{out}")
    return m.group(1)


def ptxas_version(ptxas: str | None = None) -> str:
    """The ptxas version as a string, e.g. ``"13.5.37"`` (part of compile-cache keys)."""
    return _version_of(ptxas or find_ptxas())


def ptxas_version_tuple(ptxas: str | None = None) -> tuple[int, ...]:
    """The ptxas version as a tuple of ints, e.g. ``(13, 5, 37)``."""
    return tuple(int(x) for x in ptxas_version(ptxas).split("."))


def assemble(
    ptx: str,
    arch: str,
    verbose: bool = False,
    *,
    extra_args: Sequence[str] = (),
    name: str = "kernel.ptx",
    ptxas: str | None = None,
) -> tuple[bytes, str]:
    """Assemble PTX text for `arch` ("sm_90a", "sm_80", "sm_100a", ...) into a cubin.

    Returns ``(cubin_bytes, info_text)``.  ``verbose`` adds ``-v`` (registers, spills,
    static shared memory per kernel); ``extra_args`` go to ptxas unchanged (for example
    ``["--maxrregcount", "128", "--warn-on-spills"]``).  Raises `PtxasError` when ptxas
    fails and `PtxasNotFoundError` when there is no ptxas.
    """
    if not _ARCH_RE.match(arch):
        raise ValueError(f"arch must look like 'sm_90a', 'sm_80' or 'sm_100a', got {arch!r}")
    exe = ptxas or find_ptxas()
    with tempfile.TemporaryDirectory(prefix="tilec-ptxas-") as tmp:
        src = Path(tmp) / "input.ptx"
        out = Path(tmp) / "output.cubin"
        src.write_text(ptx)
        cmd = [exe, f"-arch={arch}", "-o", str(out), *extra_args]
        if verbose:
            cmd.append("-v")
        cmd.append(str(src))
        proc = subprocess.run(cmd, capture_output=True, text=True)
        log = (proc.stdout + proc.stderr).replace(str(src), name).replace(tmp, "<tmp>")
        if proc.returncode != 0:
            lines = [int(n) for n in _LINE_RE.findall(log)]
            raise PtxasError(log, sorted(set(lines)), proc.returncode, arch, exe, ptx)
        return out.read_bytes(), log
