"""A numpy simulator of the PTX that tilec emits (sm_80, sm_90a, sm_100a), to check lowered
kernels without the GPU they target.

    from tilec.backends.sim import simulate, SimTensorMap
    simulate(ptx_text, "kernel", grid=(g, 1, 1), block=(128, 1, 1),
             args=[("ptr", x), ("ptr", out), ("i32", n), ("tensormap", SimTensorMap(a, box=(64, 64), swizzle=128))])

``args`` mirror `tilec.runtime.cuda.launch`: ``(kind, value)`` pairs, kinds ``ptr`` (a numpy
array: simulated global memory *is* its buffer, written in place), ``u64 i64 i32 u32 f32 f64
i16 u16 i8 u8`` (numbers) and ``tensormap`` (a `SimTensorMap`).  CTAs run one after another;
within a CTA every register is a numpy array over its threads (see machine.py for the
scheduling, memory.py for the race detector).  Misuse raises `SimError` naming the
instruction, its PTX line and the thread.
"""

from __future__ import annotations

import struct

import numpy as np

from . import isa_alu, isa_async, isa_ctrl, isa_mem, isa_mma, isa_tcgen05, isa_warp, isa_wgmma  # noqa: F401  (register handlers)
from .errors import SimError
from .machine import CTA, HANDLERS, Launch
from .memory import GlobalMemory
from .parser import parse
from .tensormap import SimTensorMap

__all__ = ["simulate", "SimError", "SimTensorMap", "parse", "supported_opcodes"]

_SCALAR = {"u64": ("Q", 8), "i64": ("q", 8), "i32": ("i", 4), "u32": ("I", 4), "f32": ("f", 4),
           "f64": ("d", 8), "i16": ("h", 2), "u16": ("H", 2), "i8": ("b", 1), "u8": ("B", 1)}
_ARCH_ONLY = {"wgmma": ("sm_90a",), "tcgen05": ("sm_100a", "sm_100f", "sm_103a", "sm_110a"),
              "setmaxnreg": ("sm_90a", "sm_100a", "sm_100f", "sm_103a", "sm_110a", "sm_120a")}


def _dims(d) -> tuple[int, int, int]:
    if isinstance(d, int):
        return (d, 1, 1)
    d = tuple(int(x) for x in d)
    return (d + (1, 1, 1))[:3]


def supported_opcodes() -> list[str]:
    """The opcode heads the simulator has handlers for."""
    return sorted(HANDLERS)


def simulate(ptx: str, kernel: str, grid, block, args: list, shared_bytes: int = 0, arch: str = "sm_100a",
             *, max_steps: int = 5_000_000, check_arch: bool = True) -> None:
    """Run ``kernel`` of the PTX module ``ptx`` on ``grid`` x ``block`` threads.

    ``shared_bytes``: dynamic shared memory (the ``.extern .shared`` arrays).  ``arch``: the GPU
    simulated: arch-specific PTX (``.target sm_90a``) must match it, and wgmma / tcgen05 need
    sm_90a / sm_100a.  ``max_steps``: instruction steps per CTA before an infinite loop is assumed.
    """
    mod = parse(ptx)
    if kernel not in mod.kernels:
        raise SimError(f"no .entry `{kernel}` in the PTX (entries: {', '.join(mod.kernels) or 'none'})")
    k = mod.kernels[kernel]
    if check_arch and mod.target.endswith(("a", "f")) and mod.target != arch:
        fam = mod.target.endswith("f") and arch.startswith(mod.target[:-1])
        if not fam:
            raise SimError(f"PTX for .target {mod.target} cannot run on {arch} (arch-specific targets run on "
                           f"that architecture only)")
    if check_arch:
        for ins in k.prog:
            allowed = _ARCH_ONLY.get(ins.head)
            if allowed and arch not in allowed:
                raise SimError(f"line {ins.line}: `{ins.opcode}` is not available on {arch} "
                               f"(only {', '.join(allowed)})", line=ins.line, instr=ins.text)
    grid, block = _dims(grid), _dims(block)
    nthreads = block[0] * block[1] * block[2]
    if not 1 <= nthreads <= 1024:
        raise SimError(f"block {block} has {nthreads} threads; a CTA has 1..1024")
    gmem = GlobalMemory()
    module_globals = {}
    for name, var in mod.globals.items():
        if var.space in ("global", "const"):
            buf = np.zeros(max(var.nbytes, 1), np.uint8)
            if var.init:
                vals = np.array([v[2] for v in var.init], dtype=np.int64)
                w = var.typ.bits // 8
                raw = (vals & ((1 << (8 * w)) - 1)).astype(f"<u{w}") if var.typ.kind != "f" else None
                if raw is None:
                    raise SimError(f"float initializers of `{name}` are not simulated")
                buf[:raw.nbytes] = raw.view(np.uint8)[:buf.size]
            module_globals[name] = gmem.add(buf, f".{var.space} {name}")
    if len(args) != len(k.params):
        raise SimError(f"kernel `{kernel}` takes {len(k.params)} parameters "
                       f"({', '.join(p.name for p in k.params)}), got {len(args)} arguments")
    off = 0
    chunks = []
    tensormaps = {}
    for i, (p, arg) in enumerate(zip(k.params, args)):
        kind, value = arg
        off = (off + p.align - 1) // p.align * p.align
        p.offset = off
        size = p.nbytes
        if kind == "ptr":
            if value is None or (isinstance(value, int) and value == 0):
                data = struct.pack("<Q", 0)
            elif isinstance(value, np.ndarray):
                data = struct.pack("<Q", gmem.add(value, f"argument {i} ({p.name})"))
            else:
                raise SimError(f"argument {i} ({p.name}): a ptr must be a numpy array (or None), not {type(value).__name__}")
        elif kind == "tensormap":
            if not isinstance(value, SimTensorMap):
                raise SimError(f"argument {i} ({p.name}): a tensormap must be a SimTensorMap")
            if size != 128 or p.align < 64:
                raise SimError(f"argument {i}: tensormap parameter `{p.name}` must be `.param .align 64 .b8 {p.name}[128]`")
            tensormaps[off] = value
            data = bytes(128)
        elif kind in _SCALAR:
            code, n = _SCALAR[kind]
            try:
                data = struct.pack("<" + code, float(value) if code in "fd" else int(value))
            except struct.error as e:
                raise SimError(f"argument {i} ({p.name}): {value!r} does not fit {kind}: {e}")
        else:
            raise SimError(f"argument {i}: unknown kind {kind!r}")
        if len(data) != size:
            raise SimError(f"argument {i} ({kind}, {len(data)} bytes) does not match parameter `{p.name}` "
                           f"(.{p.typ.name}{f'[{p.count}]' if p.count > 1 else ''}, {size} bytes)")
        chunks.append((off, data))
        off += size
    params = np.zeros(max(off, 1), np.uint8)
    for o, data in chunks:
        params[o:o + len(data)] = np.frombuffer(data, np.uint8)
    launch = Launch(k, grid, block, gmem, params, tensormaps, int(shared_bytes), arch, module_globals, max_steps)
    with np.errstate(all="ignore"):
        for z in range(grid[2]):
            for y in range(grid[1]):
                for x in range(grid[0]):
                    cta = CTA(launch, (x, y, z))
                    cta.run()
                    _finish(cta)


def _finish(cta: CTA) -> None:
    from .isa_async import drain_all
    cta.ins = None
    drain_all(cta)
    isa_tcgen05.check_exit(cta)
