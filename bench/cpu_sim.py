"""CPU-simulation benchmark: tilec's CPU backend against numpy and Triton's interpreter.

    python bench/cpu_sim.py                # the full table (about a minute, Triton included)
    python bench/cpu_sim.py --quick        # fewer repetitions
    python bench/cpu_sim.py --no-triton    # skip the Triton interpreter column

Workloads: vector add of 2^20 fp32 (examples/vector_add.py, 1024-element tiles) and fp32
matmul 256^3, 512^3, 1024^3 (examples/matmul.py, 64x64 tiles, BK=32).  Times are the
median of warm runs (the first launch, which compiles, is excluded).  The Triton column
runs equivalent Triton kernels under TRITON_INTERPRET=1 on CPU torch tensors, in a
subprocess (the interpreter must be chosen before triton is imported); it stays empty,
with a note, when triton or torch does not import.

Also printed: the first-call compile time of the matmul example (trace + passes, in a
fresh process with the disk cache disabled; `import tilec` and the kernel's definition
excluded), the same first call served from a warm disk cache, and the import time of
`tilec` (lazy) and of its front end.

Targets: matmul 1024^3 within 5x of numpy's `@`; >= 100x faster than Triton's
interpreter; first-call compile < 0.3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MATMUL_SIZES = (256, 512, 1024)
VEC_N = 1 << 20
BM = BN = 64
BK = 32
VEC_TILE = 1024


def _median_time(fn, reps: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _load_example(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_example_{name}", ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _inputs(seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    vec = (rng.standard_normal(VEC_N, dtype=np.float32), rng.standard_normal(VEC_N, dtype=np.float32))
    mats = {n: (rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32))
            for n in MATMUL_SIZES}
    return vec, mats


# --------------------------------------------------------------------------- tilec and numpy


def bench_tilec_numpy(reps: int) -> dict:
    import numpy as np

    import tilec as ct

    va, mm = _load_example("vector_add"), _load_example("matmul")
    assert va.TILE == VEC_TILE
    vec, mats = _inputs()
    out = {}
    x, y = vec
    z = np.empty_like(x)
    grid = (ct.cdiv(VEC_N, VEC_TILE),)
    va.vector_add[grid](x, y, z)
    np.testing.assert_allclose(z, x + y, rtol=1e-6)
    out["vector add 2^20 fp32"] = (_median_time(lambda: va.vector_add[grid](x, y, z), reps * 2),
                                   _median_time(lambda: x + y, reps * 2))
    for n in MATMUL_SIZES:
        a, b = mats[n]
        c = np.empty((n, n), np.float32)
        grid = (ct.cdiv(n, BM), ct.cdiv(n, BN))
        mm.matmul_kernel[grid](a, b, c, BM, BN, BK)
        np.testing.assert_allclose(c, a @ b, rtol=1e-3, atol=1e-3)
        out[f"matmul {n}^3 fp32"] = (_median_time(lambda: mm.matmul_kernel[grid](a, b, c, BM, BN, BK), reps),
                                     _median_time(lambda: a @ b, reps))
    return out


# --------------------------------------------------------------------------- Triton interpreter

TRITON_WORKER = r'''
import json, os, statistics, sys, time
os.environ["TRITON_INTERPRET"] = "1"
sys.path.insert(0, sys.argv[1])
from cpu_sim import BK, BM, BN, MATMUL_SIZES, VEC_N, VEC_TILE, _inputs, _median_time
try:
    import torch
    import triton
    import triton.language as tl
except Exception as e:  # noqa: BLE001
    print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
    sys.exit(0)


@triton.jit
def add_kernel(X, Y, Z, N, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    tl.store(Z + offs, tl.load(X + offs, mask=mask) + tl.load(Y + offs, mask=mask), mask=mask)


@triton.jit
def matmul_kernel(A, B, C, M, N, K, sam, sak, sbk, sbn, scm, scn,
                  BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    i = tl.program_id(0)
    j = tl.program_id(1)
    rm = i * BM + tl.arange(0, BM)
    rn = j * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BK)):
        kk = k * BK + rk
        a = tl.load(A + rm[:, None] * sam + kk[None, :] * sak, mask=(rm[:, None] < M) & (kk[None, :] < K), other=0.0)
        b = tl.load(B + kk[:, None] * sbk + rn[None, :] * sbn, mask=(kk[:, None] < K) & (rn[None, :] < N), other=0.0)
        acc += tl.dot(a, b)
    tl.store(C + rm[:, None] * scm + rn[None, :] * scn, acc, mask=(rm[:, None] < M) & (rn[None, :] < N))


reps = int(sys.argv[2])
vec, mats = _inputs()
out = {"versions": f"triton {triton.__version__}, torch {torch.__version__}"}
x, y = (torch.from_numpy(v) for v in vec)
z = torch.empty_like(x)
grid = (triton.cdiv(VEC_N, VEC_TILE),)
run = lambda: add_kernel[grid](x, y, z, VEC_N, BLOCK=VEC_TILE)
run()
assert torch.allclose(z, x + y)
out["vector add 2^20 fp32"] = _median_time(run, reps, warmup=0)
for n in MATMUL_SIZES:
    a, b = (torch.from_numpy(m) for m in mats[n])
    c = torch.empty((n, n), dtype=torch.float32)
    grid = (triton.cdiv(n, BM), triton.cdiv(n, BN))
    run = lambda: matmul_kernel[grid](a, b, c, n, n, n, a.stride(0), a.stride(1), b.stride(0), b.stride(1),
                                      c.stride(0), c.stride(1), BM=BM, BN=BN, BK=BK)
    t0 = time.perf_counter()
    run()
    first = time.perf_counter() - t0
    assert torch.allclose(c, a @ b, rtol=1e-3, atol=1e-3)
    # the 1024^3 case takes seconds per call: its checked first call is one of the samples
    out[f"matmul {n}^3 fp32"] = first if n >= 1024 else _median_time(run, reps, warmup=0)
print(json.dumps(out))
'''


def bench_triton(reps: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix="_triton_worker.py", delete=False) as f:
        f.write(TRITON_WORKER)
    try:
        env = {**os.environ, "TRITON_INTERPRET": "1"}
        proc = subprocess.run([sys.executable, f.name, str(Path(__file__).parent), str(reps)],
                              capture_output=True, text=True, env=env, timeout=1800)
    finally:
        os.unlink(f.name)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": f"worker failed (rc {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}"}
    return json.loads(lines[-1])


# --------------------------------------------------------------------------- compile and import time

COMPILE_PROBE = r'''
import json, sys, time
import numpy as np
import tilec as ct
import importlib.util
spec = importlib.util.spec_from_file_location("mm", sys.argv[1])
mm = importlib.util.module_from_spec(spec); spec.loader.exec_module(mm)
a = np.zeros((1024, 1024), np.float32)
t0 = time.perf_counter()
ct.compile(mm.matmul_kernel, a, a, a, 64, 64, 32)
first = time.perf_counter() - t0
h = a.astype(np.float16)
t0 = time.perf_counter()
ct.compile(mm.matmul_kernel, h, h, a, 64, 64, 32)   # a new specialisation, everything imported
second = time.perf_counter() - t0
print(json.dumps({"first": first, "second": second}))
'''


def _probe(code: str, args: list[str], env: dict) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True,
                          env={**os.environ, **env})
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_compile(runs: int) -> dict:
    example = str(ROOT / "examples" / "matmul.py")
    cold = [_probe(COMPILE_PROBE, [example], {"TILEC_DISABLE_CACHE": "1"}) for _ in range(runs)]
    with tempfile.TemporaryDirectory() as d:
        _probe(COMPILE_PROBE, [example], {"TILEC_CACHE_DIR": d})  # fills the cache
        warm = [_probe(COMPILE_PROBE, [example], {"TILEC_CACHE_DIR": d}) for _ in range(runs)]
    imp = "import json, time; t = time.perf_counter(); import tilec; print(json.dumps({'t': time.perf_counter() - t}))"
    # `import tilec` is lazy: the front end (xDSL, numpy, the tile dialect) loads on first use
    imp_fe = ("import json, time; t = time.perf_counter(); import tilec as ct; ct.kernel, ct.load_tile; "
              "print(json.dumps({'t': time.perf_counter() - t}))")
    med = lambda rows, k: statistics.median(r[k] for r in rows)  # noqa: E731
    return {
        "first": med(cold, "first"), "second": med(cold, "second"), "disk_hit": med(warm, "first"),
        "import": statistics.median(_probe(imp, [], {})["t"] for _ in range(runs)),
        "import_front_end": statistics.median(_probe(imp_fe, [], {})["t"] for _ in range(runs)),
    }


# --------------------------------------------------------------------------- report


def device() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}"


def _revision() -> str:
    """The commit, and a hash of backends/cpu/interpreter.py when the tree is dirty."""
    import hashlib

    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown revision"
    if not dirty:
        return rev
    interp = hashlib.sha256((ROOT / "backends" / "cpu" / "interpreter.py").read_bytes()).hexdigest()[:10]
    return f"{rev}+dirty (interpreter.py sha256 {interp})"


def _fmt(t: float | None) -> str:
    if t is None:
        return ""
    return f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.2f} s"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--no-triton", action="store_true", help="skip the Triton interpreter column")
    ap.add_argument("--json", metavar="PATH", help="also write the raw numbers as JSON")
    args = ap.parse_args(argv)
    reps = 3 if args.quick else 11

    os.environ.setdefault("TILEC_DISABLE_CACHE", "1")  # runs are warm anyway; keep ~/.cache clean
    import numpy as np

    print(f"device: {device()}; python {platform.python_version()}, numpy {np.__version__}; "
          f"tilec at {_revision()}")
    rows = bench_tilec_numpy(reps)
    triton = {"error": "skipped (--no-triton)"} if args.no_triton else bench_triton(3 if args.quick else 5)
    comp = bench_compile(3 if args.quick else 5)

    header = ("workload", "tilec cpu", "numpy", "tilec/numpy", "triton interp", "triton/tilec")
    table = []
    for name, (t_tilec, t_np) in rows.items():
        t_tr = triton.get(name)
        table.append((name, _fmt(t_tilec), _fmt(t_np), f"{t_tilec / t_np:.1f}x", _fmt(t_tr),
                      f"{t_tr / t_tilec:.0f}x" if t_tr else ""))
    widths = [max(len(r[i]) for r in (header, *table)) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in table:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
    if "error" in triton:
        print(f"note: Triton interpreter column empty: {triton['error']}")
    else:
        print(f"Triton interpreter: {triton['versions']} (TRITON_INTERPRET=1, CPU tensors)")
    mm1024 = rows[f"matmul {MATMUL_SIZES[-1]}^3 fp32"]
    print(f"target matmul 1024^3 within 5x of numpy: {mm1024[0] / mm1024[1]:.2f}x "
          f"({'met' if mm1024[0] / mm1024[1] <= 5 else 'MISSED'})")
    if "error" not in triton:
        worst = min(triton[n] / t for n, (t, _) in rows.items())
        print(f"target >= 100x faster than the Triton interpreter: worst {worst:.0f}x "
              f"({'met' if worst >= 100 else 'MISSED'})")
    print(f"matmul example first-call compile (trace + passes, fresh process, cache off): "
          f"{comp['first'] * 1e3:.1f} ms ({'met' if comp['first'] < 0.3 else 'MISSED'} < 300 ms); "
          f"a second specialisation: {comp['second'] * 1e3:.1f} ms; "
          f"first call from a warm disk cache: {comp['disk_hit'] * 1e3:.1f} ms")
    print(f"import tilec: {comp['import'] * 1e3:.1f} ms (lazy); with the front end loaded "
          f"(ct.kernel, ct.load_tile): {comp['import_front_end'] * 1e3:.0f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "triton": triton, "compile": comp}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
