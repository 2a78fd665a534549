"""Row softmax of an 8192 x 8192 fp16 matrix: tilec against torch.softmax and the copy rate.

    python bench/softmax.py [--rows 8192] [--cols 8192] [--reps 50]

Bytes counted: the input read once and the output written once (4 bytes per element), so
GB/s is comparable between the kernels and with `torch.clone` (read + write), the
roofline for any softmax.  Two times per kernel: us/call, 10 launches back to back between
CUDA events (what a caller sees: it includes tilec's host launch work where that is the
longer part), and the GPU time alone, 10 launches captured in a CUDA graph and replayed.  Each tilec configuration is the example's kernel
(`examples/softmax.py`, BM rows per program, the whole row in registers) built with
`num_warps` warps.  Before timing, every configuration is checked on fresh random data
against torch in float64 (output poisoned with NaN first).  Times: median of CUDA-event-
timed launches after a warm-up.  The first call of each configuration is timed apart
(trace, passes, PTX emission, ptxas, module load), and ptxas -v's registers / spills
are printed with it.
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import re
import time

import torch

import tilec as ct
from timing import graphed, timed  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = [(1, 4), (1, 8), (1, 16), (1, 32), (2, 16), (2, 32)]   # (BM, num_warps)
PERSISTENT = [(16, 2), (16, 4), (8, 4), (8, 8), (32, 2)]          # (num_warps, programs per SM)


def copy_rows(X: ct.Tensor, Y: ct.Tensor, BM: ct.Constant[int], BN: ct.Constant[int]):
    i = ct.tile_idx(0)
    ct.store_tile(Y, offset=[i * BM, 0], tile=ct.load_tile(X, offset=[i * BM, 0], size=[BM, BN]))


def softmax_persistent(X: ct.Tensor, Y: ct.Tensor, BN: ct.Constant[int]):
    """Programs loop over rows r = pid, pid + P, ...; row r + P is loaded before row r is
    reduced, so a row is always in flight while the previous one computes."""
    pid = ct.tile_idx(0)
    step = ct.num_tiles(0)
    x = ct.load_tile(X, offset=[pid, 0], size=[1, BN], padding=float("-inf"))
    for r in range(pid, X.shape[0], step):
        nxt = ct.load_tile(X, offset=[r + step, 0], size=[1, BN], padding=float("-inf"))
        xf = x.astype(ct.float32)
        e = ct.exp(xf - ct.max(xf, axis=1, keepdims=True))
        ct.store_tile(Y, offset=[r, 0], tile=(e / ct.sum(e, axis=1, keepdims=True)).astype(Y.dtype))
        x = nxt


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod






def resources(kernel, args) -> str:
    from tilec.backends.ptx.ptxas import assemble

    art, _ = kernel.compile_for(tuple(args), "sm_90a")
    _, info = assemble(art.gpu.ptx, art.gpu.target, verbose=True)
    regs = re.findall(r"Used (\d+) registers", info)
    spill = re.findall(r"(\d+) bytes spill stores", info)
    return f"{regs[0] if regs else '?'} regs, {spill[0] if spill else '?'} B spilled, {art.gpu.smem_bytes} B smem"


def check(y, x) -> tuple[float, float]:
    ref = torch.softmax(x.double(), dim=1)
    rel = float((y.double() - ref).norm() / ref.norm())
    return rel, float((y.double() - ref).abs().max())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=8192)
    ap.add_argument("--cols", type=int, default=8192)
    ap.add_argument("--reps", type=int, default=50)
    a = ap.parse_args()
    m, n = a.rows, a.cols
    sm = load("softmax")
    dev = "cuda"
    xs = [torch.randn(m, n, device=dev, dtype=torch.float16) * 3 for _ in range(2)]
    y = torch.empty_like(xs[0])
    nbytes = 4 * m * n
    bn = sm.next_power_of_2(n)
    print(f"softmax {m}x{n} fp16 on {torch.cuda.get_device_name()}: {nbytes / 1e6:.0f} MB moved per call")

    def measure(fn):
        return timed(fn, a.reps), graphed(fn, a.reps)

    t_copy, g_copy = measure(lambda: xs[0].clone())
    t_torch, g_torch = measure(lambda: torch.softmax(xs[0], dim=1))
    rows = [("torch.clone (copy roofline)", t_copy, g_copy, "", ""), ("torch.softmax", t_torch, g_torch, "", "")]
    # tilec's own copy of the same bytes: f16 rows and f32 rows (16-byte accesses per thread)
    for d, nw in (("f16", 4), ("f16", 16), ("f32", 4), ("f32", 16)):
        cp = ct.kernel(num_warps=nw)(copy_rows)
        src = xs[0] if d == "f16" else torch.randn(m, n // 2, device=dev)
        dst = torch.empty_like(src)
        cp[(src.shape[0],)](src, dst, 1, src.shape[1])
        torch.cuda.synchronize()
        assert torch.equal(dst, src), "copy kernel is wrong"
        t, g = measure(lambda: cp[(src.shape[0],)](src, dst, 1, src.shape[1]))
        rows.append((f"tilec copy {d} rows (num_warps={nw})", t, g, "", ""))
        if d == "f16" and nw == 16:   # the same kernel timed one launch at a time (host launch work exposed)
            t1 = timed(lambda: cp[(src.shape[0],)](src, dst, 1, src.shape[1]), a.reps, inner=1)
            rows.append((f"tilec copy {d} rows (num_warps={nw}), one launch per event pair", t1, None, "", ""))
    for bm, nw in CONFIGS:
        kern = ct.kernel(num_warps=nw)(sm.softmax_kernel.fn)
        grid = (ct.cdiv(m, bm),)
        y.fill_(float("nan"))
        t0 = time.perf_counter()
        kern[grid](xs[1], y, bm, bn)
        torch.cuda.synchronize()
        first = time.perf_counter() - t0
        rel, mx = check(y, xs[1])
        res = resources(kern, (xs[1], y, bm, bn))
        ok = rel < 1e-3 and bool(torch.isfinite(y).all())
        print(f"  BM={bm} num_warps={nw:2d}: first call {first * 1e3:7.1f} ms ({res}); "
              f"rel err {rel:.2e} max {mx:.2e} {'ok' if ok else 'FAILED'}", flush=True)
        if not ok:
            continue
        t, g = measure(lambda: kern[grid](xs[0], y, bm, bn))
        rows.append((f"tilec BM={bm} num_warps={nw}", t, g, f"{first * 1e3:.0f} ms", res))

    sms = torch.cuda.get_device_properties(0).multi_processor_count
    for nw, per_sm in PERSISTENT:
        kern = ct.kernel(num_warps=nw)(softmax_persistent)
        grid = (min(m, sms * per_sm),)
        y.fill_(float("nan"))
        t0 = time.perf_counter()
        kern[grid](xs[1], y, bn)
        torch.cuda.synchronize()
        first = time.perf_counter() - t0
        rel, mx = check(y, xs[1])
        res = resources(kern, (xs[1], y, bn))
        ok = rel < 1e-3 and bool(torch.isfinite(y).all())
        print(f"  persistent num_warps={nw:2d} {grid[0]} programs: first call {first * 1e3:7.1f} ms ({res}); "
              f"rel err {rel:.2e} max {mx:.2e} {'ok' if ok else 'FAILED'}", flush=True)
        if ok:
            t, g = measure(lambda: kern[grid](xs[0], y, bn))
            rows.append((f"tilec persistent+prefetch num_warps={nw} {grid[0]} programs", t, g,
                         f"{first * 1e3:.0f} ms", res))

    ref_t, ref_g = t_torch, g_torch or t_torch
    print("\n| kernel | us/call | GB/s | GPU us (graph) | GPU GB/s | vs torch.softmax (GPU) | of copy rate (GPU) "
          "| first call | resources |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, t, g, first, res in rows:
        gt = f"{g * 1e6:.1f} | {nbytes / g / 1e9:.0f} | {ref_g / g:.2f}x | {(g_copy or t_copy) / g:.2f}" if g else \
            f"- | - | {ref_t / t:.2f}x (per call) | {t_copy / t:.2f} (per call)"
        print(f"| {name} | {t * 1e6:.1f} | {nbytes / t / 1e9:.0f} | {gt} | {first} | {res} |")


if __name__ == "__main__":
    main()
