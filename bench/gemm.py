"""GEMM on a Hopper GPU: tilec's sm_90a path (TMA + mbarrier pipeline + wgmma) against
torch.matmul (cuBLAS) and a Triton matmul (the tutorial kernel, autotuned over Hopper configs).

    python bench/gemm.py                       # fp16 and bf16, 4096^3 and 8192^3
    python bench/gemm.py --sizes 4096 --dtypes f16 --json out.json
    python bench/gemm.py --target sm_80        # tilec's Ampere path (cp.async + mma.sync) on this GPU

C = A @ B with A [M, K] and B [K, N] row-major and C in the input dtype (what torch.matmul
returns), accumulated in f32.  tilec is autotuned here over a few tile configs (BM, BN, BK,
num_stages) of a grouped-order kernel (1-D grid, GROUP_M row blocks per group for L2 reuse)
and of examples/matmul.py's 2-D grid kernel.  Times are medians of triton.testing.do_bench
(CUDA events, L2 flushed between runs) on fresh random data; every result is checked
against torch first.  "compile" is the first call of the first config: trace + passes +
PTX (`Artifact.compile_seconds`) and the whole first launch (ptxas and module load too).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import pathlib
import platform
import sys
import time

import torch
import triton
import triton.language as tl
from triton.testing import do_bench

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import tilec as ct  # noqa: E402


sys.path.insert(0, str(ROOT / "examples"))
from matmul import matmul_grouped  # noqa: E402  (examples/matmul.py)


def _example_kernel():
    spec = importlib.util.spec_from_file_location("matmul_example", ROOT / "examples" / "matmul.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.matmul_kernel


#: (kernel, BM, BN, BK, num_stages); grouped kernels use GROUP_M = 8
#: (BK = 128 with 2 stages measured 420-525 TFLOP/s on the H100, so it is not tried.)
CONFIGS = [("grouped", 128, 256, 64, 4), ("grouped", 128, 256, 64, 3), ("grouped", 128, 128, 64, 4),
           ("grouped", 256, 128, 64, 4), ("2d", 128, 256, 64, 4)]
#: `--target sm_80` (TILEC_TARGET=sm_80: cp.async pipeline + mma.sync over 4 or 8 warps of <= 64x64)
SM80_CONFIGS = [("grouped", 128, 128, 32, 3), ("grouped", 128, 128, 32, 4), ("grouped", 128, 128, 64, 3),
                ("grouped", 128, 256, 32, 3), ("grouped", 256, 128, 32, 3), ("2d", 128, 256, 32, 3)]


def tilec_launcher(kind, bm, bn, bk, stages, m, n):
    if kind == "grouped":
        grid = (triton.cdiv(m, bm) * triton.cdiv(n, bn),)
        return lambda a, b, c: matmul_grouped[grid](a, b, c, bm, bn, bk, 8, num_stages=stages)
    kernel = _example_kernel()
    grid = (triton.cdiv(m, bm), triton.cdiv(n, bn))
    return lambda a, b, c: kernel[grid](a, b, c, bm, bn, bk, num_stages=stages)


# ----------------------------------------------------------------------------------- Triton

@triton.autotune(configs=[
    triton.Config({"BM": 128, "BN": 256, "BK": 64, "GROUP_M": 8}, num_stages=3, num_warps=8),
    triton.Config({"BM": 128, "BN": 256, "BK": 64, "GROUP_M": 8}, num_stages=4, num_warps=8),
    triton.Config({"BM": 128, "BN": 128, "BK": 64, "GROUP_M": 8}, num_stages=4, num_warps=8),
    triton.Config({"BM": 256, "BN": 128, "BK": 64, "GROUP_M": 8}, num_stages=3, num_warps=8),
], key=["M", "N", "K"])
@triton.jit
def triton_matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K, sam, sak, sbk, sbn, scm, scn,
                         BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GROUP_M: tl.constexpr):
    pid = tl.program_id(0)
    num_m = tl.cdiv(M, BM)
    num_n = tl.cdiv(N, BN)
    in_group = GROUP_M * num_n
    first_m = (pid // in_group) * GROUP_M
    size_m = min(num_m - first_m, GROUP_M)
    pid_m = first_m + (pid % in_group) % size_m
    pid_n = (pid % in_group) // size_m
    offs_am = (pid_m * BM + tl.arange(0, BM)) % M
    offs_bn = (pid_n * BN + tl.arange(0, BN)) % N
    offs_k = tl.arange(0, BK)
    a_ptrs = a_ptr + offs_am[:, None] * sam + offs_k[None, :] * sak
    b_ptrs = b_ptr + offs_k[:, None] * sbk + offs_bn[None, :] * sbn
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BK)):
        a = tl.load(a_ptrs, mask=offs_k[None, :] < K - k * BK, other=0.0)
        b = tl.load(b_ptrs, mask=offs_k[:, None] < K - k * BK, other=0.0)
        acc = tl.dot(a, b, acc)
        a_ptrs += BK * sak
        b_ptrs += BK * sbk
    offs_cm = pid_m * BM + tl.arange(0, BM)
    offs_cn = pid_n * BN + tl.arange(0, BN)
    c_ptrs = c_ptr + scm * offs_cm[:, None] + scn * offs_cn[None, :]
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=(offs_cm[:, None] < M) & (offs_cn[None, :] < N))


def triton_matmul(a, b, c):
    m, k = a.shape
    n = b.shape[1]
    grid = lambda meta: (triton.cdiv(m, meta["BM"]) * triton.cdiv(n, meta["BN"]),)  # noqa: E731
    triton_matmul_kernel[grid](a, b, c, m, n, k, a.stride(0), a.stride(1), b.stride(0), b.stride(1),
                               c.stride(0), c.stride(1))


# ----------------------------------------------------------------------------------- bench

def rel_err(c, ref) -> float:
    return float((c.float() - ref.float()).norm() / ref.float().norm())


def probe_mn_major_descriptor() -> str:
    """Check the MN-major B descriptor convention on this GPU with one small GEMM (N = 128 spans
    two 64-column panels, so LBO matters).  Only if it is wrong, try the other convention (a
    wrong descriptor may read outside shared memory and fault) and keep it when it is right."""
    from tilec.backends.ptx import lower_wgmma

    a = torch.randn(256, 256, device="cuda", dtype=torch.float16)
    b = torch.randn(256, 256, device="cuda", dtype=torch.float16)
    ref = a.float() @ b.float()
    errs = {}
    for conv in (True, False):
        lower_wgmma.MN_LBO_IS_PANEL_STRIDE = conv
        c = torch.full((256, 256), float("nan"), device="cuda", dtype=torch.float16)
        k = ct.kernel(matmul_grouped.fn)            # a fresh kernel: no cached artifact
        k[(4,)](a, b, c, 128, 128, 64, 8, num_stages=2)
        torch.cuda.synchronize()
        errs[conv] = rel_err(c, ref)
        if errs[conv] < 2e-3:
            break
    else:
        lower_wgmma.MN_LBO_IS_PANEL_STRIDE = True
    print(f"MN-major B descriptor probe, relative error per convention (True: LBO = panel stride): {errs}; "
          f"using MN_LBO_IS_PANEL_STRIDE = {lower_wgmma.MN_LBO_IS_PANEL_STRIDE}", flush=True)
    return "panel" if lower_wgmma.MN_LBO_IS_PANEL_STRIDE else "row8"


_first_compile: list = []


def bench_one(dtype, size, rows, log):
    m = n = k = size
    flop = 2 * m * n * k
    a = torch.randn(m, k, device="cuda", dtype=dtype)
    b = torch.randn(k, n, device="cuda", dtype=dtype)
    ref = torch.matmul(a, b)
    c = torch.empty_like(ref)
    t_torch = do_bench(lambda: torch.matmul(a, b, out=c), return_mode="median")
    triton_matmul(a, b, c)
    e_triton = rel_err(c, ref)
    t_triton = do_bench(lambda: triton_matmul(a, b, c), return_mode="median")
    best = None
    for cfg in CONFIGS:
        run = tilec_launcher(*cfg, m, n)
        c.fill_(float("nan"))
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        try:
            run(a, b, c)
            torch.cuda.synchronize()
        except Exception as e:  # noqa: BLE001 - a config that fails loses, and says why
            log(f"  tilec {cfg}: FAILED {type(e).__name__}: {str(e).splitlines()[0]}")
            continue
        first = time.perf_counter() - t0
        if not _first_compile and cfg[0] == "grouped":
            arts = list(matmul_grouped._cache.values())
            _first_compile.append((arts[0].compile_seconds if len(arts) == 1 else float("nan"), first))
        err = rel_err(c, ref)
        ok = err < (2e-3 if dtype == torch.float16 else 1.5e-2) and not torch.isnan(c).any()
        t = do_bench(lambda: run(a, b, c), return_mode="median") if ok else float("inf")
        log(f"  tilec {cfg}: {flop / t / 1e9 if ok else 0:7.1f} TFLOP/s  err {err:.2e}  first call {first * 1e3:.0f} ms")
        if ok and (best is None or t < best[0]):
            best = (t, cfg)
    name = {torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]
    tf = lambda t: flop / t / 1e9  # noqa: E731  (ms -> TFLOP/s)
    row = {"dtype": name, "size": size, "torch_tflops": tf(t_torch), "triton_tflops": tf(t_triton),
           "triton_err": e_triton, "tilec_tflops": tf(best[0]) if best else 0.0,
           "tilec_config": best[1] if best else None}
    rows.append(row)
    log(f"{name} {size}^3: torch {row['torch_tflops']:.1f}  triton {row['triton_tflops']:.1f}  "
        f"tilec {row['tilec_tflops']:.1f} TFLOP/s ({row['tilec_config']})")
    del a, b, c, ref
    torch.cuda.empty_cache()


def epilogue_ab(dtype, size, cfg, log) -> dict:
    """The best config again with the epilogue storing straight from the registers
    (lower_wgmma.TMA_STORE = False) instead of through shared memory and TMA."""
    from tilec.backends.ptx import lower_wgmma

    global matmul_grouped
    a = torch.randn(size, size, device="cuda", dtype=dtype)
    b = torch.randn(size, size, device="cuda", dtype=dtype)
    c = torch.empty(size, size, device="cuda", dtype=dtype)
    out = {}
    saved = matmul_grouped
    try:
        for tma_store in (True, False):
            lower_wgmma.TMA_STORE = tma_store
            matmul_grouped = ct.kernel(saved.fn)     # fresh: no artifact from the other setting
            run = tilec_launcher(*cfg, size, size)
            run(a, b, c)
            out[tma_store] = 2 * size ** 3 / do_bench(lambda: run(a, b, c), return_mode="median") / 1e9
    finally:
        lower_wgmma.TMA_STORE = True
        matmul_grouped = saved
    log(f"epilogue A/B, {cfg} {size}^3: TMA store {out[True]:.1f} TFLOP/s, straight from registers {out[False]:.1f}")
    return {"cfg": cfg, "size": size, "tma_store_tflops": out[True], "register_store_tflops": out[False]}


def launch_overhead(log) -> dict:
    """Host time per launch of a cached kernel (256^3 f16: the GPU finishes first, so the
    host's launch path is what is timed), against torch.matmul and the Triton matmul."""
    n = 256
    a = torch.randn(n, n, device="cuda", dtype=torch.float16)
    b = torch.randn(n, n, device="cuda", dtype=torch.float16)
    c = torch.empty(n, n, device="cuda", dtype=torch.float16)
    run = tilec_launcher("2d", 128, 128, 64, 3, n, n)
    fns = {"tilec": lambda: run(a, b, c), "torch": lambda: torch.matmul(a, b, out=c),
           "triton": lambda: triton_matmul(a, b, c)}
    out = {}
    for name, fn in fns.items():
        for _ in range(20):
            fn()
        torch.cuda.synchronize()
        reps = 2000
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
        out[name] = (time.perf_counter() - t0) / reps * 1e6
    log("host us per launch (256^3 f16, cached): " + ", ".join(f"{k} {v:.1f}" for k, v in out.items()))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192])
    p.add_argument("--dtypes", nargs="+", default=["f16", "bf16"])
    p.add_argument("--json", default=None)
    p.add_argument("--target", choices=["sm_90a", "sm_80"], default=None,
                   help="tilec target (default: the GPU's own); sm_80 forces the cp.async + mma.sync path")
    args = p.parse_args()
    if args.target == "sm_80":
        import os

        os.environ["TILEC_TARGET"] = "sm_80"
        CONFIGS[:] = SM80_CONFIGS
    log = lambda s: print(s, flush=True)  # noqa: E731
    props = torch.cuda.get_device_properties(0)
    log(f"device: {props.name}, {props.multi_processor_count} SMs; torch {torch.__version__}, "
        f"triton {triton.__version__}, python {platform.python_version()}")
    conv = probe_mn_major_descriptor() if args.target != "sm_80" else None   # an sm_90a wgmma detail
    rows = []
    for d in args.dtypes:
        for s in args.sizes:
            bench_one({"f16": torch.float16, "bf16": torch.bfloat16}[d], s, rows, log)
    extra = {"launch_us": launch_overhead(log)}
    if rows and rows[0]["tilec_config"] and args.target != "sm_80":
        r0 = rows[0]
        extra["epilogue"] = epilogue_ab({"fp16": torch.float16, "bf16": torch.bfloat16}[r0["dtype"]], r0["size"],
                                        r0["tilec_config"], log)
    log("")
    log("| dtype | M=N=K | cuBLAS TFLOP/s | Triton TFLOP/s | tilec TFLOP/s | tilec/cuBLAS | tilec/Triton | "
        "tilec config (kernel, BM, BN, BK, stages) |")
    log("|---|---|---|---|---|---|---|---|")
    for r in rows:
        log(f"| {r['dtype']} | {r['size']} | {r['torch_tflops']:.1f} | {r['triton_tflops']:.1f} | "
            f"{r['tilec_tflops']:.1f} | {r['tilec_tflops'] / r['torch_tflops']:.2f}x | "
            f"{r['tilec_tflops'] / r['triton_tflops']:.2f}x | {r['tilec_config']} |")
    if _first_compile:
        cs, first = _first_compile[0]
        log(f"\ntilec compile, first config (trace + passes + PTX): {cs * 1e3:.0f} ms; its first call "
            f"(+ ptxas, module load, TMA descriptors, launch): {first * 1e3:.0f} ms")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(
            {"date": datetime.date.today().isoformat(), "device": props.name, "mn_major_convention": conv,
             "target": args.target or "native",
             "first_compile_s": _first_compile[0] if _first_compile else None, "rows": rows, **extra},
            indent=1, default=str))


if __name__ == "__main__":
    main()
