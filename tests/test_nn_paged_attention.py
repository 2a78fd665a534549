"""tilec.nn.paged_attention_decode: decode attention over paged FP4 K/V, for a batch of
sequences of ragged lengths (1, 63, 64, 65, 300, ...), with grouped-query heads.

The reference is float64 numpy: K/V decoded from the cache's bytes with ml_dtypes
(`decode_f64` of test_nn_kv_cache), then softmax(q K^T / sqrt(D)) V per sequence and head.
Every page no sequence owns holds random bytes with NaN scales, and so does the tail of
each sequence's last page, so reading a token past a sequence's end shows up as NaN.
"""

from __future__ import annotations

import numpy as np
import pytest

from tilec.nn.kv_cache import PAGE, FP4KVCache, compress_kv, slots_for
from tilec.nn.paged_attention import paged_attention_decode
from test_nn_kv_cache import decode_f64
from gpu_support import needs_fp8_conversions, torch_cuda_ready as _gpu_ready

NAN_CODE = {"mx": 0xFF, "nv": 0x7F}


def build(rng, lens, hq, hkv, d, fmt, device=None):
    """(q, cache, page_table, seq_lens, K and V as written in fp16) with poisoned pages."""
    need = [(n + PAGE - 1) // PAGE for n in lens]
    num_pages = sum(need) + 3
    cache = FP4KVCache.empty(num_pages, hkv, d, fmt)
    for a in (cache.k_pages, cache.v_pages):
        a[:] = rng.integers(0, 256, a.shape, dtype=np.uint8)
    perm = rng.permutation(num_pages).astype(np.int32)
    pt = np.full((len(lens), max(need) + 1), -1, np.int32)    # past the end: never read
    start = 0
    for b, n in enumerate(need):
        pt[b, :n] = perm[start:start + n]
        start += n
    ks, vs = [], []
    for b, n in enumerate(lens):
        k = rng.standard_normal((n, hkv, d)).astype(np.float16)
        v = rng.standard_normal((n, hkv, d)).astype(np.float16)
        compress_kv(k, v, cache, slots_for(pt, np.full(n, b), np.arange(n)))
        ks.append(k)
        vs.append(v)
    q = rng.standard_normal((len(lens), hq, d)).astype(np.float16)
    return q, cache, pt, np.array(lens, np.int32), ks, vs


def attention_f64(q, K, V, group):
    """q [hq, D], K/V [hkv, n, D] float64 -> [hq, D]."""
    out = np.empty(q.shape)
    for h in range(q.shape[0]):
        s = K[h // group] @ q[h] / np.sqrt(q.shape[1])
        p = np.exp(s - s.max())
        out[h] = (p / p.sum()) @ V[h // group]
    return out


def reference(q, cache, pt, lens):
    """float64 attention over the K/V stored in the cache (decoded from its bytes)."""
    group = q.shape[1] // cache.heads
    out = np.empty(q.shape)
    for b, n in enumerate(lens):
        pages = pt[b, :(n + PAGE - 1) // PAGE]

        def seq(P, S):
            x = decode_f64(P[pages], S[pages], cache.block)          # [pages, hkv, 64, D]
            return x.transpose(1, 0, 2, 3).reshape(cache.heads, -1, cache.head_dim)[:, :n]
        out[b] = attention_f64(q[b].astype(np.float64), seq(cache.k_pages, cache.k_scales),
                               seq(cache.v_pages, cache.v_scales), group)
    return out


LENS = [1, 63, 64, 65, 300, 130]


@pytest.mark.parametrize("fmt", ["mx", "nv"])
def test_cpu_ragged_batch_gqa(fmt):
    rng = np.random.default_rng(0)
    q, cache, pt, lens, ks, vs = build(rng, LENS, 4, 2, 64, fmt)
    out = paged_attention_decode(q, cache, pt, lens)
    assert out.dtype == np.float16 and not np.isnan(out).any()
    ref = reference(q, cache, pt, lens)
    np.testing.assert_allclose(out.astype(np.float64), ref, atol=2e-3, rtol=2e-3)
    # against the unquantized fp16 K/V: FP4's error, far larger than the kernel's own
    exact = np.stack([attention_f64(q[b].astype(np.float64), ks[b].transpose(1, 0, 2).astype(np.float64),
                                    vs[b].transpose(1, 0, 2).astype(np.float64), 2) for b in range(len(LENS))])
    err = np.abs(out - exact).max()
    assert 1e-3 < err < 0.5, err


@pytest.mark.parametrize("hq,hkv", [(4, 2), (8, 2), (6, 2), (2, 2)])
def test_cpu_both_variants_agree(hq, hkv):
    """Per-KV-head programs (power-of-two groups) and per-query-head programs give the
    reference; a group of 3 or 1 always takes the per-query-head kernel."""
    rng = np.random.default_rng(5)
    q, cache, pt, lens, _, _ = build(rng, [70, 5], hq, hkv, 64, "nv")
    ref = reference(q, cache, pt, lens)
    for variant in (None, "per_q_head"):
        out = paged_attention_decode(q, cache, pt, lens, variant=variant)
        np.testing.assert_allclose(out.astype(np.float64), ref, atol=2e-3, rtol=2e-3)
    with pytest.raises(ValueError, match="variant"):
        paged_attention_decode(q, cache, pt, lens, variant="bogus")


@pytest.mark.parametrize("fmt", ["mx", "nv"])
def test_cpu_sequences_split_over_programs(fmt):
    """Flash-decoding: with pages_per_split = 1, 2 or 3 each sequence's pages spread over several
    programs (the short ones leave programs with no page, whose state is m = -inf, l = 0) and a
    second kernel merges them; every split gives the reference, as does no split at all."""
    rng = np.random.default_rng(0)
    q, cache, pt, lens, _, _ = build(rng, LENS, 4, 2, 64, fmt)
    ref = reference(q, cache, pt, lens)
    for pps in (0, 1, 2, 3):
        out = paged_attention_decode(q, cache, pt, lens, pages_per_split=pps)
        np.testing.assert_allclose(out.astype(np.float64), ref, atol=2e-3, rtol=2e-3)
    with pytest.raises(ValueError, match="pages_per_split"):
        paged_attention_decode(q, cache, pt, lens, pages_per_split=-1)


def test_sequence_length_changes_the_answer():
    """Each sequence sees exactly its first seq_lens[b] tokens: shortening a sequence by one
    token gives the reference of the shorter sequence."""
    rng = np.random.default_rng(1)
    q, cache, pt, lens, _, _ = build(rng, [65, 64], 2, 2, 64, "mx")
    shorter = lens - 1
    np.testing.assert_allclose(paged_attention_decode(q, cache, pt, shorter).astype(np.float64),
                               reference(q, cache, pt, shorter), atol=2e-3, rtol=2e-3)


def test_bad_arguments():
    cache = FP4KVCache.empty(2, 2, 64, "mx")
    pt, lens = np.zeros((1, 1), np.int32), np.ones(1, np.int32)
    with pytest.raises(ValueError, match="multiple"):
        paged_attention_decode(np.zeros((1, 3, 64), np.float16), cache, pt, lens)
    with pytest.raises(ValueError, match="head_dim"):
        paged_attention_decode(np.zeros((1, 2, 32), np.float16), cache, pt, lens)


def test_page_tables_and_lengths_outside_the_cache_are_refused():
    """Host page tables / lengths that would make the kernel read outside what the sequence owns
    (a page index past the cache or -1 inside the sequence, a length past the page table, a
    length of 0) are refused: the kernel's bounds checks would read zeros (or page 0) silently."""
    rng = np.random.default_rng(0)
    q, cache, pt, lens, _, _ = build(rng, [65, 10], 2, 2, 64, "mx")
    paged_attention_decode(q, cache, pt, lens)                           # valid
    bad_page = pt.copy()
    bad_page[0, 1] = -1                                                  # inside sequence 0's 65 tokens
    too_far = pt.copy()
    too_far[1, 0] = cache.num_pages
    for table, n, what in [(bad_page, lens, "page"), (too_far, lens, "page"),
                           (pt, np.array([65, 64 * pt.shape[1] + 1], np.int32), "seq_lens"),
                           (pt, np.array([65, 0], np.int32), "seq_lens")]:
        with pytest.raises(ValueError, match=what):
            paged_attention_decode(q, cache, table, n)


def test_out_of_the_wrong_shape_is_refused():
    """A preallocated `out` that is not [batch, heads_q, D]: the kernel's stores would be clipped
    to it silently (part of the answer missing), so the call refuses it."""
    cache = FP4KVCache.empty(2, 2, 64, "mx")
    pt, lens = np.zeros((1, 1), np.int32), np.ones(1, np.int32)
    q = np.zeros((1, 2, 64), np.float16)
    for shape in [(1, 2, 32), (1, 1, 64), (2, 2, 64)]:
        with pytest.raises(ValueError, match="out"):
            paged_attention_decode(q, cache, pt, lens, out=np.zeros(shape, np.float16))


@pytest.mark.parametrize("target,fmt,variant", [("sim:sm_90a", "mx", "per_q_head"), ("sim:sm_90a", "mx", None),
                                                ("sim:sm_90a", "nv", None), ("sim:sm_100a", "nv", None),
                                                ("sim:sm_80", "mx", "per_q_head"), ("sim:sm_90a", "mx", "split")])
def test_simulated_gpu_lowering(monkeypatch, target, fmt, variant):
    """The PTX of the kernels, run by the simulator, against the float64 reference: one
    program per query head, per KV head (the default for a power-of-two group), or per KV
    head and one-page split of the sequence, merged by the combine kernel."""
    monkeypatch.setenv("TILEC_TARGET", target)
    rng = np.random.default_rng(2)
    q, cache, pt, lens, _, _ = build(rng, [1, 65, 64], 4, 2, 64, fmt)
    import tilec.backends.sim.launch as sim_launch

    calls = []
    real = sim_launch.run_ptx_kernel
    monkeypatch.setattr(sim_launch, "run_ptx_kernel", lambda k, v, g: (calls.append(k.name), real(k, v, g))[1])
    split = variant == "split"
    out = paged_attention_decode(q, cache, pt, lens, variant=None if split else variant,
                                 pages_per_split=1 if split else None)
    assert calls == (["_paged_decode_gqa_split", "_combine_splits"] if split else
                     ["_paged_decode" if variant == "per_q_head" else "_paged_decode_gqa"])
    np.testing.assert_allclose(out.astype(np.float64), reference(q, cache, pt, lens), atol=2e-3, rtol=2e-3)


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_ready(), reason="needs an NVIDIA GPU with torch CUDA")
@pytest.mark.parametrize("fmt,variant", [("mx", None), ("nv", None), ("mx", "per_q_head")])
def test_gpu_ragged_batch(fmt, variant):
    import torch

    rng = np.random.default_rng(3)
    lens = [1, 63, 64, 65, 300, 1000, 129]
    q, cache, pt, lens_np, _, _ = build(rng, lens, 8, 2, 128, fmt)
    g = FP4KVCache(*(torch.from_numpy(a.view(np.uint8)).cuda() for a in
                     (cache.k_pages, cache.v_pages, cache.k_scales, cache.v_scales)), fmt=fmt)
    sd = torch.float8_e8m0fnu if fmt == "mx" else torch.float8_e4m3fn
    g.k_scales, g.v_scales = g.k_scales.view(sd), g.v_scales.view(sd)
    ref = reference(q, cache, pt, lens_np)
    for pps in (None, 0):     # the 1000-token sequence is split over programs by default; 0: never
        with needs_fp8_conversions(fmt == "nv"):
            out = paged_attention_decode(torch.from_numpy(q).cuda(), g, torch.from_numpy(pt).cuda(),
                                         torch.from_numpy(lens_np).cuda(), variant=variant, pages_per_split=pps)
        torch.cuda.synchronize()
        got = out.cpu().numpy().astype(np.float64)
        assert not np.isnan(got).any()
        np.testing.assert_allclose(got, ref, atol=2e-3, rtol=2e-3)


def test_example_cpu(example):
    """examples/paged_attention.py on the CPU backend (MX and NV)."""
    mod = example("paged_attention")
    assert mod.main(fmt="mx") < 2e-3
    assert mod.main(fmt="nv", lens=(3, 64, 129)) < 2e-3


@pytest.mark.parametrize("target", ["sm_80", "sm_90a", "sm_100a"])
def test_kernels_assemble(target):
    """compress_kv, decompress_kv and both decode kernels for D = 128 with MX and NV scales pass
    ptxas (sm_100a: hardware e2m1x2 conversions; sm_80 / sm_90a: software; NV needs sm_90)."""
    from test_ptx_compile import _ptxas
    if _ptxas() is None:
        pytest.skip("ptxas not found (pip install nvidia-cuda-nvcc)")
    from tilec.backends.ptx.ptxas import assemble
    from tilec.driver import CompileOptions, compile_kernel
    from tilec.nn import kv_cache as KV, paged_attention as PA

    for fmt in ("mx",) if target == "sm_80" else ("mx", "nv"):
        cache = FP4KVCache.empty(4, 2, 128, fmt)
        kp, vp, ks, vs = cache.kernel_args()
        tok, slots = np.zeros((3, 2, 128), np.float16), np.zeros(3, np.int32)
        q, pt, lens = np.zeros((2, 4, 128), np.float16), np.zeros((2, 2), np.int32), np.ones(2, np.int32)
        wa, wm = np.zeros((2, 4, 3, 128), np.float32), np.zeros((2, 4, 3), np.float32)
        for kernel, args in ((KV._compress, (tok, tok, slots, kp, vp, ks, vs, 2, 128, cache.block, fmt == "nv")),
                             (KV._decompress, (kp, vp, ks, vs, slots, tok, tok, 2, 128, cache.block)),
                             (PA._paged_decode, (q, kp, vp, ks, vs, pt, lens, q, 0.1, 128, cache.block, 2)),
                             (PA._paged_decode_gqa, (q, kp, vp, ks, vs, pt, lens, q, 0.1, 128, cache.block, 2)),
                             (PA._paged_decode_gqa_split, (q, kp, vp, ks, vs, pt, lens, wa, wm, wm, 0.1, 128,
                                                           cache.block, 2, 8)),
                             (PA._combine_splits, (wa, wm, wm, q, 128, 4))):
            specs, _ = kernel.bind(args)
            ptx = compile_kernel(kernel, specs, target, CompileOptions()).gpu.ptx
            assemble(ptx, target)
            dequantizes = kernel is not PA._combine_splits
            assert ("e2m1x2" in ptx) == (target == "sm_100a" and dequantizes), (kernel.name, target)


def test_cpu_torch_tensors():
    """CPU torch tensors run on the CPU backend and give numpy's answer, in q's dtype."""
    torch = pytest.importorskip("torch")
    from tilec.nn import FP4KVCache as Cache, paged_attention_decode as decode

    rng = np.random.default_rng(4)
    q, cache, pt, lens, _, _ = build(rng, [5, 70], 2, 1, 64, "nv")
    tcache = Cache(*(torch.from_numpy(a.view(np.uint8).copy()) for a in
                     (cache.k_pages, cache.v_pages, cache.k_scales, cache.v_scales)), fmt="nv")
    tcache.k_scales = tcache.k_scales.view(torch.float8_e4m3fn)
    tcache.v_scales = tcache.v_scales.view(torch.float8_e4m3fn)
    out = decode(torch.from_numpy(q), tcache, torch.from_numpy(pt), torch.from_numpy(lens))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float16
    np.testing.assert_array_equal(out.numpy(), paged_attention_decode(q, cache, pt, lens))


def _page_loop(ptx: str) -> list[str]:
    """The instructions of the page loop's body on the path of a page that is entirely inside
    the tensor (the per-element `$L_ragged` branches of the loads skipped)."""
    lines = ptx.split("\n")
    start = next(i for i, ln in enumerate(lines) if ln.startswith("$L_for"))
    end = next(i for i, ln in enumerate(lines) if ln.strip().startswith("bra $L_for"))
    out, ragged = [], False
    for ln in lines[start + 1:end + 1]:
        s = ln.strip()
        if s.startswith("$L_ragged"):
            ragged = True
        elif s.startswith("$L_loaded"):
            ragged = False
        elif s and not ragged and not s.startswith("//") and not s.endswith(":"):
            out.append(s)
    return out


@pytest.mark.parametrize("fmt", ["mx", "nv"])
def test_barriers_and_instructions_per_page(fmt):
    """Regression pin for the sm_90a decode kernels (D = 128, 4 warps, 4 query heads per KV
    head): bar.sync per page was 19 and ~2565 instructions per thread for each query head.
    Now 6 bar.sync per page: the max and the sum of the scores over the page's 64 tokens and
    the P.V sum over them cross warps (2 + 2 + 2); the page index (every thread loads it), the
    K/V scales (each chunk's thread reads its own), the broadcasts, the masked scores and the
    online-softmax updates stay in registers.  Per KV head, a page costs well under half the
    instructions of the four per-query-head programs it replaces."""
    from tilec.driver import CompileOptions, compile_kernel
    from tilec.nn import paged_attention as PA

    cache = FP4KVCache.empty(4, 2, 128, fmt)
    kp, vp, ks, vs = cache.kernel_args()
    q, pt, lens = np.zeros((2, 8, 128), np.float16), np.zeros((2, 2), np.int32), np.ones(2, np.int32)
    per_head = {}
    for kernel in (PA._paged_decode, PA._paged_decode_gqa):
        specs, _ = kernel.bind((q, kp, vp, ks, vs, pt, lens, q, 0.1, 128, cache.block, 4))
        body = _page_loop(compile_kernel(kernel, specs, "sm_90a", CompileOptions()).gpu.ptx)
        assert sum(s.startswith("bar.sync") for s in body) <= 6, kernel.name
        per_head[kernel.name] = len(body) * (1 if kernel is PA._paged_decode else 1 / 4)
    assert per_head["_paged_decode_gqa"] < 0.5 * per_head["_paged_decode"], per_head
