"""Paged decode attention over an FP4 KV cache (tilec.nn), as in continuous batching: a few
sequences of different lengths are prefilled into 64-token pages scattered over the cache
(FP4 e2m1 with MX or NV block scales), then one decode step attends each sequence's new
query token to its pages.  Checked against float64 attention over the dequantized cache
and over the original fp16 K/V (the FP4 error).

    python examples/paged_attention.py            # numpy: the CPU backend
    TILEC_TARGET=sim:sm_90a python examples/paged_attention.py   # through the PTX simulator

With torch CUDA tensors the same calls run on the GPU (bench/paged_attention.py).
"""

import math

import numpy as np

from tilec.nn import compress_kv, decompress_kv, paged_attention_decode
from tilec.nn.kv_cache import PAGE, FP4KVCache, slots_for


def attention_f64(q, K, V):
    """q [hq, D], K/V [hkv, n, D] -> [hq, D] in float64 (query head h reads KV head h // group)."""
    group = q.shape[0] // K.shape[0]
    out = np.empty(q.shape)
    for h in range(q.shape[0]):
        s = K[h // group] @ q[h] / math.sqrt(q.shape[1])
        p = np.exp(s - s.max())
        out[h] = p / p.sum() @ V[h // group]
    return out


def main(lens=(1, 70, 64, 150), heads=4, kv_heads=2, d=64, fmt="mx", seed=0) -> float:
    rng = np.random.default_rng(seed)
    need = [(n + PAGE - 1) // PAGE for n in lens]
    cache = FP4KVCache.empty(sum(need) + 2, kv_heads, d, fmt)
    perm = rng.permutation(cache.num_pages).astype(np.int32)
    page_table = np.full((len(lens), max(need)), -1, np.int32)
    for b, start in enumerate(np.cumsum([0] + need[:-1])):
        page_table[b, :need[b]] = perm[start:start + need[b]]
    kv = []
    for b, n in enumerate(lens):   # prefill: every token of sequence b into its pages
        k, v = (rng.standard_normal((n, kv_heads, d)).astype(np.float16) for _ in range(2))
        compress_kv(k, v, cache, slots_for(page_table, np.full(n, b), np.arange(n)))
        kv.append((k, v))
    q = rng.standard_normal((len(lens), heads, d)).astype(np.float16)
    seq_lens = np.array(lens, np.int32)
    out = paged_attention_decode(q, cache, page_table, seq_lens)

    worst_kernel = worst_fp4 = 0.0
    for b, (k, v) in enumerate(kv):
        slots = slots_for(page_table, np.full(lens[b], b), np.arange(lens[b]))
        kd, vd = decompress_kv(cache, slots, dtype="float32")        # exact dequantized K/V
        ref_q = attention_f64(q[b].astype(np.float64), kd.transpose(1, 0, 2).astype(np.float64),
                              vd.transpose(1, 0, 2).astype(np.float64))
        ref_16 = attention_f64(q[b].astype(np.float64), k.transpose(1, 0, 2).astype(np.float64),
                               v.transpose(1, 0, 2).astype(np.float64))
        worst_kernel = max(worst_kernel, float(np.abs(out[b] - ref_q).max()))
        worst_fp4 = max(worst_fp4, float(np.abs(out[b] - ref_16).max()))
    print(f"paged FP4 ({fmt}) decode, lengths {list(lens)}, {heads}/{kv_heads} heads, D {d}: "
          f"max |out - f64 over the FP4 cache| = {worst_kernel:.2e}, vs fp16 K/V = {worst_fp4:.2e}")
    assert worst_kernel < 2e-3, worst_kernel
    return worst_kernel


if __name__ == "__main__":
    main(fmt="mx")
    main(fmt="nv")
