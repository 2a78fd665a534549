"""Flash attention on the sm_90a wgmma path (passes/attention_wgmma.py): q / K / V by TMA
into swizzled shared memory, S = Q K^T and O += P V on wgmma with S, P and O in registers
(`layout.Mma`), the softmax math in place.  Without a GPU the PTX runs on the simulator
(races, deadlocks and async-proxy misuse are errors there) and must match numpy float64;
ptxas must accept it without spills.  The GPU tests run the bench's shapes family."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

import ptx_kernels as K
import tilec as ct
from tilec.driver import CompileOptions, compile_kernel

from conftest import load_example  # noqa: E402
from gpu_support import torch_cuda_ready as _gpu_ready

fa = load_example("flash_attention")
BF16 = ml_dtypes.bfloat16


def _args(rng, shape, dtype, bm, bn, causal):
    q, k, v = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    return [q, k, v, np.full(shape, np.nan, dtype), 1.0 / math.sqrt(shape[-1]), bm, bn, shape[-1], causal]


def _compile(args):
    specs, values = fa.flash_attention_fwd.bind(tuple(args))
    return compile_kernel(fa.flash_attention_fwd, specs, "sm_90a", CompileOptions()), values


def _on_fast_path(art) -> bool:
    ir, ptx = art.ir(), art.gpu.ptx
    return "tgpu.wgmma_reg_a" in ir and "tile.matmul" not in ir and "cp.async.bulk.tensor.4d" in ptx \
        and "mma.sync" not in ptx


CONFIGS = [  # (dtype, (B, H, S, D), BM, BN)
    (np.float16, (1, 2, 150, 128), 128, 64),
    (np.float16, (1, 1, 200, 128), 128, 128),
    (np.float16, (2, 1, 130, 64), 64, 64),
    (BF16, (1, 1, 100, 128), 64, 32),
]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype,shape,bm,bn", CONFIGS,
                         ids=[f"{np.dtype(c[0]).name}-{'x'.join(map(str, c[1]))}-{c[2]}x{c[3]}" for c in CONFIGS])
def test_simulated_matches_float64(dtype, shape, bm, bn, causal):
    from tilec.backends.sim.launch import run_ptx_kernel

    rng = np.random.default_rng(1)
    args = _args(rng, shape, dtype, bm, bn, causal)
    art, values = _compile(args)
    assert _on_fast_path(art)
    assert art.gpu.num_threads == 2 * bm
    b, h, s, _ = shape
    run_ptx_kernel(art.gpu, values, (ct.cdiv(s, bm), h, b))
    out = args[3].astype(np.float64)
    ref = fa.reference(*args[:3], causal)
    tol = 2e-2 if dtype is BF16 else 4e-3
    assert np.max(np.abs(out - ref)) < tol


def test_ping_pong_turns_simulated(monkeypatch):
    """`tile-attention-wgmma{ping-pong=true}`: the two warpgroups take turns at the tensor cores
    on named barriers 1 and 2 (balanced: no barrier left pending, no deadlock in the simulator)."""
    import tilec.pipelines as P
    from tilec.backends.sim.launch import run_ptx_kernel

    on = tuple("tile-attention-wgmma{ping-pong=true}" if n == "tile-attention-wgmma" else n
               for n in P.PIPELINES["sm_90a"])
    monkeypatch.setitem(P.PIPELINES, "sm_90a", on)
    for causal in (False, True):
        args = _args(np.random.default_rng(2), (1, 1, 200, 128), np.float16, 128, 64, causal)
        art, values = _compile(args)
        assert art.ir().count("tgpu.turn") == 6 and "bar.arrive 2, 256" in art.gpu.ptx
        run_ptx_kernel(art.gpu, values, (2, 1, 1))
        assert np.max(np.abs(args[3].astype(np.float64) - fa.reference(*args[:3], causal))) < 4e-3


def test_accumulator_never_leaves_registers_in_the_loop():
    """S, the masks, the row max / sum and P stay in the wgmma layout: the loop body has no
    barrier (no shared-memory exchange) and reduces rows with two quad shuffles each."""
    art, _ = _compile(_args(np.random.default_rng(0), (1, 1, 256, 128), np.float16, 128, 64, True))
    ptx = art.gpu.ptx
    start = ptx.index("wgmma.fence")
    end = ptx.rindex("wgmma.wait_group")
    body = ptx[start:end]
    assert "bar." not in body and "st.shared" not in body and "ld.shared" not in body
    assert body.count("shfl.sync.bfly") == 8      # max and sum, 2 values per thread, lanes 1 and 2
    assert body.count("wgmma.mma_async") == 128 // 16 + 64 // 16


@ct.kernel
def attention_with_bias(Q: ct.Tensor, K: ct.Tensor, V: ct.Tensor, Bias: ct.Tensor, O: ct.Tensor,
                        BM: ct.Constant[int], BN: ct.Constant[int], D: ct.Constant[int]):
    """A [BM, BN] bias loaded before the loop: it is in a blocked layout, so adding it to S
    would move it through shared memory, which the TMA ring occupies."""
    q = ct.load_tile(Q, offset=[0, 0], size=[BM, D])
    bias = ct.load_tile(Bias, offset=[0, 0], size=[BM, BN])
    m_i = ct.full([BM, 1], float("-inf"), ct.float32)
    acc = ct.zeros([BM, D], ct.float32)
    for start in range(0, K.shape[0], BN):
        k = ct.load_tile(K, offset=[start, 0], size=[BN, D])
        s = ct.matmul(q, k.T) + bias
        m_new = ct.maximum(m_i, ct.max(s, axis=1, keepdims=True))
        p = ct.exp(s - m_new)
        v = ct.load_tile(V, offset=[start, 0], size=[BN, D])
        acc = acc * ct.exp(m_i - m_new) + ct.matmul(p.astype(v.dtype), v)
        m_i = m_new
    ct.store_tile(O, offset=[0, 0], tile=acc)


def test_loop_needing_shared_memory_is_left_alone():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((128, 128)).astype(np.float16) for _ in range(3))
    args = [q, k, v, rng.standard_normal((128, 64)).astype(np.float32), np.zeros((128, 128), np.float32), 128, 64, 128]
    specs, _ = attention_with_bias.bind(tuple(args))
    art = compile_kernel(attention_with_bias, specs, "sm_90a", CompileOptions())
    assert "tgpu.wgmma_reg_a" not in art.ir() and "mma.sync" in art.gpu.ptx


def test_small_head_dim_falls_back():
    """head_dim 32 is no whole 128-byte swizzle panel: the generic mma.sync path runs."""
    art, _ = _compile(_args(np.random.default_rng(0), (1, 1, 100, 32), np.float16, 64, 64, False))
    assert "tgpu." not in art.ir() and "mma.sync" in art.gpu.ptx


def _ptxas():
    from tilec.backends.ptx.ptxas import PtxasNotFoundError, find_ptxas

    try:
        return find_ptxas()
    except PtxasNotFoundError:
        return None


@pytest.mark.skipif(_ptxas() is None, reason="ptxas not found (pip install nvidia-cuda-nvcc)")
@pytest.mark.parametrize("bm,bn", [(128, 64), (128, 128), (64, 64)])
def test_ptxas_accepts_without_spills(bm, bn):
    from tilec.backends.ptx.ptxas import assemble

    art, _ = _compile(_args(np.random.default_rng(0), (1, 1, 512, 128), np.float16, bm, bn, True))
    cubin, info = assemble(art.gpu.ptx, "sm_90a", verbose=True)
    assert cubin[:4] == b"\x7fELF"
    assert " 0 bytes spill stores" in info and "serializ" not in info, info


# ---------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_ready(), reason="needs an NVIDIA GPU with a CUDA driver")
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("bm,bn", [(None, None), (128, 64), (64, 64)])
def test_gpu_matches_float64(bm, bn, causal):
    import torch

    rng = np.random.default_rng()
    shape = (2, 3, 333, 128)
    q, k, v = (rng.standard_normal(shape).astype(np.float16) for _ in range(3))
    o = torch.full(shape, float("nan"), dtype=torch.float16, device="cuda")
    fa.attention(*(K.to_torch(x) for x in (q, k, v)), o, causal, BM=bm, BN=bn)
    err = np.max(np.abs(o.cpu().numpy().astype(np.float64) - fa.reference(q, k, v, causal)))
    assert err < 4e-3
