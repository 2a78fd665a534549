"""First numbers for the PTX backend on a GPU (no tuning yet): each example against torch.

    python bench/gpu_examples.py        # needs a CUDA GPU and torch

Times are the median of CUDA-event-timed batches of back-to-back launches after a warm-up
(compile excluded); before 2026-11-25's GPU section they were single launches with a
synchronize after each, which also counted the host's launch work.
"""

from __future__ import annotations

import importlib.util
import pathlib

import torch
from timing import graphed, timed  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod






def gpu_note(fn, per_byte: float, unit: str) -> str:
    g = graphed(fn)
    return f"   [GPU time alone (CUDA graph): {per_byte / g:7.0f} {unit}]" if g else ""


def main() -> None:
    dev = "cuda"
    va = load("vector_add")
    n = 1 << 26
    x, y, z = (torch.randn(n, device=dev) for _ in range(3))
    t, tt = timed(lambda: va.add(x, y, z)), timed(lambda: torch.add(x, y, out=z))
    print(f"vector_add f32 n=2^26: tilec {12 * n / t / 1e9:7.0f} GB/s   torch {12 * n / tt / 1e9:7.0f} GB/s"
          + gpu_note(lambda: va.add(x, y, z), 12 * n / 1e9, "GB/s"))

    mm = load("matmul")
    for m in (1024, 4096):
        a = torch.randn(m, m, device=dev, dtype=torch.float16)
        b = torch.randn(m, m, device=dev, dtype=torch.float16)
        c = torch.empty(m, m, device=dev, dtype=torch.float32)
        t = timed(lambda: mm.matmul(a, b, c, 64, 64, 32), reps=5)
        tt = timed(lambda: torch.matmul(a, b), reps=5)
        print(f"matmul f16 {m}^3 (64x64x32 tiles, mma.sync): tilec {2 * m ** 3 / t / 1e12:6.1f} TFLOP/s   "
              f"torch {2 * m ** 3 / tt / 1e12:6.1f} TFLOP/s")

    sm = load("softmax")
    x = torch.randn(8192, 1000, device=dev, dtype=torch.float16)
    y = torch.empty_like(x)
    t, tt = timed(lambda: sm.softmax(x, y)), timed(lambda: torch.softmax(x, dim=1))
    print(f"softmax f16 8192x1000: tilec {4 * x.numel() / t / 1e9:7.0f} GB/s   torch {4 * x.numel() / tt / 1e9:7.0f} GB/s"
          + gpu_note(lambda: sm.softmax(x, y), 4 * x.numel() / 1e9, "GB/s"))

    fa = load("flash_attention")
    q, k, v = (torch.randn(4, 16, 1024, 64, device=dev, dtype=torch.float16) for _ in range(3))
    o = torch.empty_like(q)
    flops = 4 * 4 * 16 * 1024 * 1024 * 64
    t = timed(lambda: fa.attention(q, k, v, o, False), reps=5)
    tt = timed(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v), reps=5)
    print(f"flash_attention f16 4x16x1024x64: tilec {flops / t / 1e12:6.1f} TFLOP/s   torch {flops / tt / 1e12:6.1f}")


if __name__ == "__main__":
    main()
