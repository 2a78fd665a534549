"""Paged FP4 attention decode (tilec.nn.paged_attention_decode) on the GPU: KV-read GB/s
against the device copy rate, time against a torch fp16 paged-attention reference, and the
attention output error of FP4 KV (MX and NV scales) against fp16 KV.

    python bench/paged_attention.py [--batch 32] [--heads 32] [--kv-heads 8] [--dim 128] [--reps 20]

A continuous batch: `batch` sequences with lengths drawn uniformly from [min_len, max_len]
(seed 0), pages of 64 tokens scattered at random over the cache, one query token each.

* KV bytes: what the kernel must read, every page the sequences touch (the last page's
  tail included) for K and V: pages * heads_kv * 64 * (D/2 + D/block) bytes (fp4 + scales).
  GB/s = KV bytes / time.  Per query head, the query heads sharing a KV head (GQA) each read
  it (the repeats are L2 hits and are not counted); per KV head, each page is read once.
* copy: `torch` `dst.copy_(src)` of a 1 GiB buffer, (read + write) bytes / time, the anchor.
* torch fp16: the same paged layout in fp16, gathered through the page table and fed to
  `scaled_dot_product_attention` with a length mask (enable_gqa), timed the same way.
* error: max |out - ref| and relative RMS, ref = float64 attention over the *unquantized*
  fp16 K/V; the torch fp16 reference's own error is printed beside it.

Times: CUDA graphs of 10 calls (GPU time without launch overhead), median of `--reps`.
The tilec kernel is timed as one program per query head (4 warps) and one program per KV
head (4 warps, the library default for power-of-two groups, and 8).
"""

from __future__ import annotations

import argparse
import datetime
import math
import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from timing import graphed, timed  # noqa: E402

from tilec.nn.kv_cache import PAGE, FORMATS, FP4KVCache, compress_kv, slots_for  # noqa: E402
from tilec.nn.paged_attention import paged_attention_decode  # noqa: E402


#: (kernel variant, num_warps, pages_per_split) timed per format: one program per query head (the
#: kernel before the per-KV-head one), one per KV head, and one per KV head and 8-page split
#: of the sequence (flash-decoding, the library default for power-of-two groups when the page
#: table is wider than 8 pages), `paged_attention_decode(variant=..., pages_per_split=...)`
VARIANTS = [("per_q_head", 4, 0), ("per_kv_head", 4, 0), ("per_kv_head", 4, 4), ("per_kv_head", 4, 8),
            ("per_kv_head", 4, 16), ("per_kv_head", 8, 8)]


def make_batch(args, dev):
    g = torch.Generator().manual_seed(0)
    lens = torch.randint(args.min_len, args.max_len + 1, (args.batch,), generator=g, dtype=torch.int32)
    need = (lens + PAGE - 1) // PAGE
    num_pages = int(need.sum()) + 8
    perm = torch.randperm(num_pages, generator=g).to(torch.int32)
    pt = torch.full((args.batch, int(need.max())), -1, dtype=torch.int32)
    start = 0
    for b, n in enumerate(need.tolist()):
        pt[b, :n] = perm[start:start + n]
        start += n
    seq = torch.repeat_interleave(torch.arange(args.batch), lens.long())
    pos = torch.cat([torch.arange(int(n)) for n in lens])
    slots = slots_for(pt, seq, pos)
    ntok = int(lens.sum())
    k = torch.randn(ntok, args.kv_heads, args.dim, generator=g).to(dev, torch.float16)
    v = torch.randn(ntok, args.kv_heads, args.dim, generator=g).to(dev, torch.float16)
    q = torch.randn(args.batch, args.heads, args.dim, generator=g).to(dev, torch.float16)
    return q, k, v, pt.to(dev), lens.to(dev), slots.to(dev), num_pages


def fp16_pages(k, slots, num_pages, dev):
    pages = torch.zeros(num_pages, k.shape[1], PAGE, k.shape[2], dtype=torch.float16, device=dev)
    s = slots.long()
    pages[s // PAGE, :, s % PAGE] = k
    return pages


def torch_paged_decode(q, kp, vp, pt, lens):
    """fp16 paged decode in plain torch: gather the pages, mask, SDPA (the reference)."""
    b, maxp = pt.shape
    idx = pt.clamp(min=0).long()
    K = kp[idx].permute(0, 2, 1, 3, 4).reshape(b, kp.shape[1], maxp * PAGE, kp.shape[3])
    V = vp[idx].permute(0, 2, 1, 3, 4).reshape(b, vp.shape[1], maxp * PAGE, vp.shape[3])
    mask = torch.arange(maxp * PAGE, device=q.device)[None, :] < lens[:, None]
    out = torch.nn.functional.scaled_dot_product_attention(q[:, :, None, :], K, V, attn_mask=mask[:, None, None, :],
                                                           enable_gqa=True)
    return out[:, :, 0, :]


def reference_f64(q, k, v, lens):
    """float64 attention of each sequence's query over its unquantized fp16 K/V."""
    out = torch.empty(q.shape, dtype=torch.float64, device=q.device)
    group = q.shape[1] // k.shape[1]
    start = 0
    for b, n in enumerate(lens.tolist()):
        K = k[start:start + n].double().repeat_interleave(group, 1).transpose(0, 1)   # [hq, n, D]
        V = v[start:start + n].double().repeat_interleave(group, 1).transpose(0, 1)
        s = (K @ q[b].double()[:, :, None])[..., 0] / math.sqrt(q.shape[2])
        out[b] = (torch.softmax(s, -1)[:, None, :] @ V)[:, 0, :]
        start += n
    return out


def errors(out, ref):
    d = out.double() - ref
    return float(d.abs().max()), float(d.pow(2).mean().sqrt() / ref.pow(2).mean().sqrt())


def gpu_time(fn, reps):
    t = graphed(fn, reps=reps)
    return t if t is not None else timed(fn, reps=reps)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--min-len", type=int, default=256)
    ap.add_argument("--max-len", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    dev = "cuda"
    print(f"# {torch.cuda.get_device_name()}  {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC  "
          f"batch {args.batch}, heads {args.heads}/{args.kv_heads} kv, D {args.dim}, lengths "
          f"U[{args.min_len}, {args.max_len}]")
    q, k, v, pt, lens, slots, num_pages = make_batch(args, dev)
    pages_used = int(((lens + PAGE - 1) // PAGE).sum())
    print(f"# {int(lens.sum())} tokens in {pages_used} pages of {PAGE}")

    src = torch.empty(1 << 29, dtype=torch.float16, device=dev)
    dst = torch.empty_like(src)
    t_copy = gpu_time(lambda: dst.copy_(src), args.reps)
    copy_gbs = 2 * src.numel() * 2 / t_copy / 1e9

    kp16, vp16 = fp16_pages(k, slots, num_pages, dev), fp16_pages(v, slots, num_pages, dev)
    ref = reference_f64(q, k, v, lens)
    out16 = torch_paged_decode(q, kp16, vp16, pt, lens)
    t16 = gpu_time(lambda: torch_paged_decode(q, kp16, vp16, pt, lens), args.reps)
    e16 = errors(out16, ref)
    bytes16 = 2 * pages_used * args.kv_heads * PAGE * args.dim * 2

    rows = [("copy 1 GiB (anchor)", t_copy, copy_gbs, None, None),
            ("torch fp16 paged (gather + SDPA)", t16, bytes16 / t16 / 1e9, e16, None)]
    for fmt in ("mx", "nv"):
        block = FORMATS[fmt][0]
        cache = FP4KVCache.empty(num_pages, args.kv_heads, args.dim, fmt, device=dev)
        compress_kv(k, v, cache, slots)
        nbytes = 2 * pages_used * args.kv_heads * PAGE * (args.dim // 2 + args.dim // block)
        for variant, nw, pps in VARIANTS:
            out = paged_attention_decode(q, cache, pt, lens, num_warps=nw, variant=variant, pages_per_split=pps)
            torch.cuda.synchronize()
            err = errors(out, ref)
            o = torch.empty_like(q)
            t = gpu_time(lambda: paged_attention_decode(q, cache, pt, lens, out=o, num_warps=nw, variant=variant,
                                                        pages_per_split=pps), args.reps)
            split = f", split every {pps} pages" if pps else ""
            name = f"tilec FP4 {fmt.upper()} paged decode, {variant.replace('_', ' ')}, {nw} warps{split}"
            rows.append((name, t, nbytes / t / 1e9, err, t16 / t))

    print("\n| kernel | time (us) | KV GB/s | of copy rate | max abs err | rel RMS err | speed-up vs torch fp16 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, t, gbs, err, speed in rows:
        e = f"{err[0]:.2e} | {err[1]:.2e}" if err else " | "
        sp = f"{speed:.2f}x" if speed else ""
        print(f"| {name} | {t * 1e6:.1f} | {gbs:.0f} | {gbs / copy_gbs:.2f} | {e} | {sp} |")


if __name__ == "__main__":
    main()
