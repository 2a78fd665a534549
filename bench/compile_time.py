"""First-compile time of each example kernel per target, against Triton's first compile of a
matmul measured in the same run (the anchor; needs triton and a GPU, else "n/a").

Each (kernel, target) compiles in a fresh Python process with the disk cache off
(`TILEC_DISABLE_CACHE=1`), so nothing is warm but the interpreter and the imports, which
are left out of the time (`import tilec`, loading the example).  Columns:

  * trace + passes + PTX: `tilec.compile(kernel, *args, target=...)` (front end, the
    target's pass pipeline, the PTX emitter);
  * ptxas: assembling that PTX to a cubin (`backends/ptx/ptxas.py`), which a GPU launch
    adds (the driver's own JIT of the PTX is not counted);
  * a second specialisation (another BM) in the same process: the warm-process cost.

    python bench/compile_time.py [--targets sm_90a sm_80 sm_100a] [--no-triton]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: name -> (example file, kernel, python expression of the args given numpy `np`, the
#: args of a second specialisation)
CASES = {
    "vector_add f32": ("vector_add", "vector_add",
                       "[np.ones(4096, np.float32)] * 3", None),
    "bias_gelu f16": ("fused_elementwise", "bias_gelu",
                      "[np.ones((512, 512), np.float16), np.ones(512, np.float16), "
                      "np.ones((512, 512), np.float16), 0.5, 64, 64]", "-2: [32, 64]"),
    "softmax f16": ("softmax", "softmax_kernel",
                    "[np.ones((1024, 1024), np.float16), np.ones((1024, 1024), np.float16), 1, 1024]",
                    "-2: [2, 1024]"),
    "layernorm f16": ("layernorm", "layernorm_kernel",
                      "[np.ones((512, 1024), np.float16), np.ones(1024, np.float16), np.ones(1024, np.float16), "
                      "np.ones((512, 1024), np.float16), 1e-5, 1, 1024]", "-2: [2, 1024]"),
    "matmul f16": ("matmul", "matmul_kernel",
                   "[np.ones((1024, 1024), np.float16), np.ones((1024, 1024), np.float16), "
                   "np.ones((1024, 1024), np.float32), 128, 128, 64]", "-3: [64, 128, 64]"),
    "flash_attention f16 causal": ("flash_attention", "flash_attention_fwd",
                                   "[np.ones((1, 2, 256, 128), np.float16)] * 4 + [0.1, 128, 128, 128, True]",
                                   "-4: [64, 64, 128, True]"),
}

_CHILD = r"""
import importlib.util, json, sys, time
import numpy as np
import tilec
from tilec.backends.ptx.ptxas import assemble
path, kname, args_src, second, target = sys.argv[1:6]
spec = importlib.util.spec_from_file_location("ex", path)
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
kernel = getattr(mod, kname)
args = eval(args_src)
t0 = time.perf_counter()
art = tilec.compile(kernel, *args, target=target)
t1 = time.perf_counter()
out = {"compile_ms": (t1 - t0) * 1e3}
if target != "cpu":
    assemble(art.gpu.ptx, target)
    out["ptxas_ms"] = (time.perf_counter() - t1) * 1e3
if second != "None":
    cut, rest = second.split(":", 1)
    args2 = args[:int(cut)] + eval(rest)
    t2 = time.perf_counter()
    tilec.compile(kernel, *args2, target=target)
    out["second_ms"] = (time.perf_counter() - t2) * 1e3
print(json.dumps(out))
"""

_TRITON = r"""
import json, time, torch, triton, triton.language as tl

@triton.jit
def mm(a, b, c, M, N, K, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    pm, pn = tl.program_id(0), tl.program_id(1)
    rm = pm * BM + tl.arange(0, BM)
    rn = pn * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    acc = tl.zeros((BM, BN), tl.float32)
    for k in range(0, K, BK):
        x = tl.load(a + rm[:, None] * K + (k + rk)[None, :], mask=(rm[:, None] < M) & ((k + rk)[None, :] < K), other=0.0)
        y = tl.load(b + (k + rk)[:, None] * N + rn[None, :], mask=((k + rk)[:, None] < K) & (rn[None, :] < N), other=0.0)
        acc += tl.dot(x, y)
    tl.store(c + rm[:, None] * N + rn[None, :], acc, mask=(rm[:, None] < M) & (rn[None, :] < N))

a = torch.ones(1024, 1024, device="cuda", dtype=torch.float16)
c = torch.empty(1024, 1024, device="cuda", dtype=torch.float32)
torch.cuda.synchronize()
t0 = time.perf_counter()
mm[(8, 8)](a, a, c, 1024, 1024, 1024, 128, 128, 64)
torch.cuda.synchronize()
t1 = time.perf_counter()
mm[(8, 8)](a, a, c, 1024, 1024, 1024, 128, 128, 64)
torch.cuda.synchronize()
t2 = time.perf_counter()
print(json.dumps({"first_ms": (t1 - t0) * 1e3 - (t2 - t1) * 1e3}))
"""


def _run(code: str, *argv: str, env_extra: dict | None = None, script: str | None = None) -> dict | None:
    """Runs `code` in a fresh interpreter (`-c`, or from the file `script`) and returns the JSON
    object its last output line holds (None on failure, whose last error line is printed)."""
    env = {**os.environ, "TILEC_DISABLE_CACHE": "1", **(env_extra or {})}
    if script is not None:
        pathlib.Path(script).write_text(code)
    cmd = [sys.executable, script] if script is not None else [sys.executable, "-c", code]
    r = subprocess.run([*cmd, *argv], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        print(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}", file=sys.stderr)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def triton_first_compile_ms() -> float | None:
    """Triton's first call of a 1024^3 matmul minus a warm call, fresh cache directory."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        # @triton.jit needs its function's source file: run the anchor from a file, not `-c`
        out = _run(_TRITON, env_extra={"TRITON_CACHE_DIR": d}, script=os.path.join(d, "triton_anchor.py"))
    return None if out is None else out["first_ms"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", nargs="+", default=["sm_90a", "sm_80", "sm_100a"])
    ap.add_argument("--no-triton", action="store_true")
    a = ap.parse_args()
    anchor = None if a.no_triton else triton_first_compile_ms()
    anchor_txt = f"{anchor:.0f} ms" if anchor else "n/a (needs triton + a GPU)"
    print(f"Triton first compile of a 1024^3 f16 matmul (same run): {anchor_txt}\n")
    print("| kernel | target | trace + passes + PTX (ms) | ptxas (ms) | total vs Triton | 2nd specialisation (ms) |")
    print("|---|---|---|---|---|---|")
    for name, (ex, kname, args_src, second) in CASES.items():
        for target in a.targets:
            r = _run(_CHILD, str(ROOT / "examples" / f"{ex}.py"), kname, args_src, str(second), target)
            if r is None:
                print(f"| {name} | {target} | failed | | | |")
                continue
            total = r["compile_ms"] + r.get("ptxas_ms", 0.0)
            ratio = f"{total / anchor:.2f}x" if anchor else "n/a"
            second_ms = f"{r['second_ms']:.0f}" if "second_ms" in r else "-"
            print(f"| {name} | {target} | {r['compile_ms']:.0f} | {r.get('ptxas_ms', 0.0):.0f} | {ratio} | {second_ms} |")


if __name__ == "__main__":
    main()
