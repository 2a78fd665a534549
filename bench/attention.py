"""Flash-attention forward (fp16, head_dim 128): tilec against torch SDPA, with a breakdown.

    python bench/attention.py [--reps 5] [--quick]

Shapes: 2x32x2048x128 and 1x16x8192x128 (batch x heads x seq x head_dim), causal and not.
FLOPs counted: 4 * B * H * S^2 * D (two matmuls), halved when causal.  tilec runs the
example kernel (`examples/flash_attention.py`) built with several (num_warps, BM, BN);
each is checked first against SDPA in float32 on fresh random data (output poisoned with
NaN).  Times: median of CUDA-event-timed calls after a warm-up; the first call (trace,
passes, PTX, ptxas, load) is timed apart, and ptxas -v's registers / spills printed.

Breakdown (own timers: the same loop with parts removed, timed the same way):
  loads      K and V tiles loaded and summed into the accumulator (no matmul, no softmax)
  matmuls    loads + S = Q K^T and acc += S V (no scaling, masking or softmax)
  full       the example kernel
so full - matmuls is what the online softmax and the masks cost, and matmuls - loads what
the two matmuls cost.  With head_dim 128 all three take the sm_90a wgmma path
(passes/attention_wgmma.py: TMA K / V rings, S and O accumulated in registers, one
warpgroup per 64 rows of q).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import pathlib
import re
import time

import torch

import tilec as ct
from functools import partial  # noqa: E402

from timing import timed as _timed  # noqa: E402

# 10 calls per CUDA-event pair, SDPA timed the same way: with 2 per pair the ~10 us host launch
# of the first call showed in the 0.2-0.4 ms problems (bench/RESULTS.md)
timed = partial(_timed, inner=10)

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHAPES = [(2, 32, 2048, 128), (1, 16, 8192, 128)]
CONFIGS = [(8, 128, 128), (8, 128, 64), (4, 64, 64)]   # (num_warps, BM, BN); the wgmma path sets 2*BM threads


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def loads_only(Q: ct.Tensor, K: ct.Tensor, V: ct.Tensor, O: ct.Tensor, scale: float, BM: ct.Constant[int],
               BN: ct.Constant[int], D: ct.Constant[int], CAUSAL: ct.Constant[bool]):
    m_blk = ct.tile_idx(0)
    h = ct.tile_idx(1)
    b = ct.tile_idx(2)
    seq = Q.shape[2]
    acc = ct.zeros([BN, D], ct.float32)
    hi = seq
    if CAUSAL:
        hi = min((m_blk + 1) * BM, seq)
    for start in range(0, hi, BN):
        k = ct.load_tile(K, offset=[b, h, start, 0], size=[1, 1, BN, D]).reshape([BN, D])
        v = ct.load_tile(V, offset=[b, h, start, 0], size=[1, 1, BN, D]).reshape([BN, D])
        acc = acc + k.astype(ct.float32) + v.astype(ct.float32)
    out = (acc * scale).astype(O.dtype)
    ct.store_tile(O, offset=[b, h, m_blk * BM, 0], tile=out.reshape([1, 1, BN, D]))


def matmuls_only(Q: ct.Tensor, K: ct.Tensor, V: ct.Tensor, O: ct.Tensor, scale: float, BM: ct.Constant[int],
                 BN: ct.Constant[int], D: ct.Constant[int], CAUSAL: ct.Constant[bool]):
    m_blk = ct.tile_idx(0)
    h = ct.tile_idx(1)
    b = ct.tile_idx(2)
    seq = Q.shape[2]
    q = ct.load_tile(Q, offset=[b, h, m_blk * BM, 0], size=[1, 1, BM, D]).reshape([BM, D])
    acc = ct.zeros([BM, D], ct.float32)
    hi = seq
    if CAUSAL:
        hi = min((m_blk + 1) * BM, seq)
    for start in range(0, hi, BN):
        k = ct.load_tile(K, offset=[b, h, start, 0], size=[1, 1, BN, D]).reshape([BN, D])
        s = ct.matmul(q, k.T)
        v = ct.load_tile(V, offset=[b, h, start, 0], size=[1, 1, BN, D]).reshape([BN, D])
        acc = ct.matmul(s.astype(v.dtype), v, acc)
    out = (acc * scale).reshape([1, 1, BM, D]).astype(O.dtype)
    ct.store_tile(O, offset=[b, h, m_blk * BM, 0], tile=out)




def resources(kernel, args) -> str:
    from tilec.backends.ptx.ptxas import assemble

    art, _ = kernel.compile_for(tuple(args), "sm_90a")
    _, info = assemble(art.gpu.ptx, art.gpu.target, verbose=True)
    regs = re.findall(r"Used (\d+) registers", info)
    spill = re.findall(r"(\d+) bytes spill stores", info)
    return f"{regs[0] if regs else '?'} regs, {spill[0] if spill else '?'} B spill, {art.gpu.smem_bytes // 1024} KiB smem"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="first shape and two configs only")
    a = ap.parse_args()
    fa = load("flash_attention")
    sdpa = torch.nn.functional.scaled_dot_product_attention
    shapes = SHAPES[:1] if a.quick else SHAPES
    configs = CONFIGS[:2] if a.quick else CONFIGS
    table = []
    for (B, H, S, D) in shapes:
        q, k, v = (torch.randn(B, H, S, D, device="cuda", dtype=torch.float16) for _ in range(3))
        o = torch.empty_like(q)
        scale = 1.0 / math.sqrt(D)
        for causal in (False, True):
            flops = 4 * B * H * S * S * D / (2 if causal else 1)
            tag = f"{B}x{H}x{S}x{D} {'causal' if causal else 'full'}"
            ref = sdpa(q.float(), k.float(), v.float(), is_causal=causal)
            t_ref = timed(lambda: sdpa(q, k, v, is_causal=causal), a.reps)
            table.append((tag, "torch SDPA", t_ref, flops / t_ref / 1e12, 1.0, "", ""))
            print(f"{tag}: SDPA {flops / t_ref / 1e12:.0f} TFLOP/s", flush=True)
            for nw, bm, bn in configs:
                kern = ct.kernel(num_warps=nw)(fa.flash_attention_fwd.fn)
                grid = (ct.cdiv(S, bm), H, B)
                args = (q, k, v, o, scale, bm, bn, D, causal)
                o.fill_(float("nan"))
                t0 = time.perf_counter()
                kern[grid](*args)
                torch.cuda.synchronize()
                first = time.perf_counter() - t0
                err = float((o.float() - ref).norm() / ref.norm())
                res = resources(kern, args)
                ok = err < 1e-2 and bool(torch.isfinite(o).all())
                print(f"  num_warps={nw} BM={bm} BN={bn}: first call {first * 1e3:.0f} ms ({res}), "
                      f"rel err {err:.1e} {'ok' if ok else 'FAILED'}", flush=True)
                if not ok:
                    continue
                t = timed(lambda: kern[grid](*args), a.reps)
                parts = []
                for name, fn in (("loads", loads_only), ("matmuls", matmuls_only)):
                    pk = ct.kernel(num_warps=nw)(fn)
                    parts.append((name, timed(lambda: pk[grid](*args), a.reps)))
                split = ", ".join(f"{n} {pt * 1e3:.2f} ms" for n, pt in parts)
                print(f"    {t * 1e3:.2f} ms = {flops / t / 1e12:.1f} TFLOP/s ({t_ref / t:.3f}x SDPA); {split}; "
                      f"softmax+layouts ~{(t - parts[1][1]) * 1e3:.2f} ms", flush=True)
                table.append((tag, f"tilec nw={nw} BM={bm} BN={bn}", t, flops / t / 1e12, t_ref / t,
                              f"{first * 1e3:.0f} ms", f"{res}; {split}"))
    print("\n| problem | kernel | time (ms) | TFLOP/s | vs SDPA | first call | notes |")
    print("|---|---|---|---|---|---|---|")
    for tag, name, t, tf, ratio, first, notes in table:
        print(f"| {tag} | {name} | {t * 1e3:.2f} | {tf:.1f} | {ratio:.3f}x | {first} | {notes} |")


if __name__ == "__main__":
    main()
