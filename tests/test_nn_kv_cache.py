"""tilec.nn.kv_cache: FP4 KV-cache compression (`compress_kv`) and reconstruction
(`decompress_kv`) on the CPU backend (numpy and CPU torch), in the PTX simulator for sm_90a
and sm_100a, and on the GPU.

References: the pages must hold exactly `tilec.fp4.quantize` of each token's head vector
(the MX / NV rules, checked independently in tests/test_fp4.py); decompressed values are
compared with a float64 decode of the stored bytes written here from ml_dtypes (nibbles
split by hand, scales widened by ml_dtypes), and with the original fp16 data within the
format's rounding bound.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from tilec import fp4
from tilec.nn.kv_cache import FORMATS, PAGE, FP4KVCache, compress_kv, decompress_kv, slots_for
from gpu_support import needs_fp8_conversions, torch_cuda_ready as _gpu_ready

F4 = ml_dtypes.float4_e2m1fn


def decode_f64(packed: np.ndarray, scales: np.ndarray, block: int) -> np.ndarray:
    """float64 values of packed e2m1 bytes [..., D/2] with scales [..., D/block]."""
    codes = np.stack([packed & 0xF, packed >> 4], -1).reshape(packed.shape[:-1] + (-1,))
    vals = codes.astype(np.uint8).view(F4).astype(np.float64)
    return vals * np.repeat(scales.astype(np.float64), block, axis=-1)


def tokens(rng, n, heads, d):
    x = rng.standard_normal((n, heads, d)) * np.exp2(rng.integers(-3, 4, (n, heads, 1)))
    return x.astype(np.float16)


def fill(cache: FP4KVCache, rng, n_tokens):
    """Prefill two sequences in bulk, then append one decode token to each."""
    heads, d = cache.heads, cache.head_dim
    pt = rng.permutation(cache.num_pages)[:2 * 4].reshape(2, 4).astype(np.int32)
    k, v = tokens(rng, n_tokens, heads, d), tokens(rng, n_tokens, heads, d)
    half = n_tokens // 2
    seq = np.array([0] * half + [1] * (n_tokens - half))
    pos = np.concatenate([np.arange(half), np.arange(n_tokens - half)])
    bulk = slice(0, n_tokens - 2)
    last = [half - 1, n_tokens - 1]
    order = [i for i in range(n_tokens) if i not in last] + last
    k, v, seq, pos = k[order], v[order], seq[order], pos[order]
    slots = slots_for(pt, seq, pos)
    compress_kv(k[bulk], v[bulk], cache, slots[bulk])           # prefill
    compress_kv(k[-2:], v[-2:], cache, slots[-2:])              # one decode step
    return k, v, slots


def check_cache(cache: FP4KVCache, k, v, slots):
    block, sname = FORMATS[cache.fmt]
    sd = getattr(ml_dtypes, sname)
    pages, rows = slots // PAGE, slots % PAGE
    for x, P, S in ((k, cache.k_pages, cache.k_scales), (v, cache.v_pages, cache.v_scales)):
        ref_q, ref_s = fp4.quantize(x.astype(np.float32), block, sd)
        np.testing.assert_array_equal(P[pages, :, rows], ref_q)
        np.testing.assert_array_equal(S[pages, :, rows].view(np.uint8), ref_s.view(np.uint8))
    written = np.zeros((cache.num_pages, PAGE), bool)
    written[pages, rows] = True
    nan = cache.k_scales.view(np.uint8).transpose(0, 2, 1, 3)[~written]
    assert (nan == (0xFF if cache.fmt == "mx" else 0x7F)).all()   # nothing else was touched


@pytest.mark.parametrize("fmt", ["mx", "nv"])
def test_compress_decompress_cpu(fmt):
    rng = np.random.default_rng(0)
    cache = FP4KVCache.empty(10, 2, 64, fmt)
    k, v, slots = fill(cache, rng, 150)
    check_cache(cache, k, v, slots)
    k2, v2 = decompress_kv(cache, slots)
    pages, rows = slots // PAGE, slots % PAGE
    for x, x2, P, S in ((k, k2, cache.k_pages, cache.k_scales), (v, v2, cache.v_pages, cache.v_scales)):
        ref = decode_f64(P[pages, :, rows], S[pages, :, rows], cache.block)
        np.testing.assert_array_equal(x2, ref.astype(np.float16))
        # e2m1 has 1 mantissa bit: |x - q| <= scale (at most a quarter of the block's amax
        # for MX's power-of-two scale, a sixth for NV's amax/6)
        amax = np.abs(x.astype(np.float64)).reshape(x.shape[:-1] + (-1, cache.block)).max(-1)
        bound = np.repeat(amax, cache.block, -1) * ((0.5 if fmt == "mx" else 1 / 6 + 1 / 16) + 2.0 ** -10)
        assert (np.abs(x2.astype(np.float64) - x) <= bound).all()   # (+ fp16 rounding of the output)


def test_cpu_torch_tensors_match_numpy():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    cache = FP4KVCache.empty(4, 2, 64, "mx")
    tcache = FP4KVCache.empty(4, 2, 64, "mx", device="cpu")
    k, v = tokens(rng, 7, 2, 64), tokens(rng, 7, 2, 64)
    slots = np.array([0, 5, 64, 65, 130, 200, 255], np.int32)
    compress_kv(k, v, cache, slots)
    compress_kv(torch.from_numpy(k), torch.from_numpy(v), tcache, torch.from_numpy(slots))
    np.testing.assert_array_equal(tcache.k_pages.numpy(), cache.k_pages)
    np.testing.assert_array_equal(tcache.v_scales.view(torch.uint8).numpy(), cache.v_scales.view(np.uint8))
    k2, _ = decompress_kv(tcache, torch.from_numpy(slots))
    assert isinstance(k2, torch.Tensor) and k2.dtype == torch.float16
    np.testing.assert_array_equal(k2.numpy(), decompress_kv(cache, slots)[0])


def test_bad_shapes_raise():
    cache = FP4KVCache.empty(2, 2, 64, "mx")
    k = np.zeros((3, 4, 64), np.float16)
    with pytest.raises(ValueError, match="heads"):
        compress_kv(k, k, cache, np.zeros(3, np.int32))
    with pytest.raises(ValueError, match="multiple"):
        FP4KVCache.empty(2, 2, 40, "mx")


def test_slots_outside_the_cache_are_refused():
    """A slot past the cache's num_pages * 64 (or negative, an unallocated page table entry
    of -1): the kernels' bounds checks would drop the write / read padding silently."""
    cache = FP4KVCache.empty(2, 2, 64, "mx")
    k = np.zeros((2, 2, 64), np.float16)
    for bad in ([0, 2 * PAGE], [-1, 3]):
        slots = np.array(bad, np.int32)
        with pytest.raises(ValueError, match="slot"):
            compress_kv(k, k, cache, slots)
        with pytest.raises(ValueError, match="slot"):
            decompress_kv(cache, slots)
    compress_kv(k, k, cache, np.array([0, 2 * PAGE - 1], np.int32))     # the last slot is fine


@pytest.mark.parametrize("target,fmt", [("sim:sm_90a", "mx"), ("sim:sm_90a", "nv"), ("sim:sm_100a", "mx"),
                                        ("sim:sm_100a", "nv"), ("sim:sm_80", "mx")])
def test_simulated_gpu_lowering(monkeypatch, target, fmt):
    """The sm_80 / sm_90a (software e2m1) and sm_100a (cvt e2m1x2) kernels in the PTX simulator."""
    monkeypatch.setenv("TILEC_TARGET", target)
    rng = np.random.default_rng(2)
    cache = FP4KVCache.empty(10, 2, 64, fmt)
    k, v, slots = fill(cache, rng, 20)
    check_cache(cache, k, v, slots)
    k2, v2 = decompress_kv(cache, slots)
    pages, rows = slots // PAGE, slots % PAGE
    np.testing.assert_array_equal(k2, decode_f64(cache.k_pages[pages, :, rows], cache.k_scales[pages, :, rows],
                                                 cache.block).astype(np.float16))


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_ready(), reason="needs an NVIDIA GPU with torch CUDA")
@pytest.mark.parametrize("fmt", ["mx", "nv"])
def test_gpu_compress_decompress(fmt):
    import torch

    rng = np.random.default_rng(3)
    cache = FP4KVCache.empty(40, 8, 128, fmt, device="cuda")
    host = FP4KVCache.empty(40, 8, 128, fmt)
    k, v = tokens(rng, 700, 8, 128), tokens(rng, 700, 8, 128)
    slots = rng.permutation(40 * PAGE)[:700].astype(np.int32)
    with needs_fp8_conversions(fmt == "nv"):
        compress_kv(torch.from_numpy(k).cuda(), torch.from_numpy(v).cuda(), cache, torch.from_numpy(slots).cuda())
    host.k_pages[:] = cache.k_pages.cpu().numpy()
    host.v_pages[:] = cache.v_pages.cpu().numpy()
    host.k_scales[:] = cache.k_scales.view(torch.uint8).cpu().numpy().view(host.k_scales.dtype)
    host.v_scales[:] = cache.v_scales.view(torch.uint8).cpu().numpy().view(host.v_scales.dtype)
    check_cache(host, k, v, slots)
    k2, v2 = decompress_kv(cache, torch.from_numpy(slots).cuda())
    pages, rows = slots // PAGE, slots % PAGE
    want = decode_f64(host.v_pages[pages, :, rows], host.v_scales[pages, :, rows], host.block)
    np.testing.assert_array_equal(v2.cpu().numpy(), want.astype(np.float16))
