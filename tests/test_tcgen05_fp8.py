"""fp8 matmuls on sm_100a (backends/ptx/lower_tcgen05.py with the byte-element geometry of
tcgen05_layout.FP8_KINDS), without a Blackwell GPU: 2-D float8_e4m3fn / float8_e5m2 matmuls with
an f32 result select `tcgen05.mma.cta_group::1.kind::f8f6f4` (K32 per MMA, 1-byte elements
K-major), ptxas accepts the PTX for sm_100a, and the simulator (backends/sim) computes what the
CPU backend computes.  `TILEC_PTX_TCGEN05_FP8=0` keeps the previous (FMA) lowering."""

from __future__ import annotations

import re

import ml_dtypes
import numpy as np
import pytest

import ptx_kernels as K
import tilec as ct
from tilec.driver import CompileOptions, compile_kernel
from test_ptx_compile import needs_ptxas

FP8 = {"e4m3": ml_dtypes.float8_e4m3fn, "e5m2": ml_dtypes.float8_e5m2}
OPCODE = "tcgen05.mma.cta_group::1.kind::f8f6f4"


def _case(fmt: str, M: int, N: int, Kd: int, BM: int, BN: int, BK: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal((M, Kd)) * 2).astype(FP8[fmt])
    b = (rng.standard_normal((Kd, N)) * 2).astype(FP8[fmt])
    return [a, b, np.full((M, N), np.nan, np.float32), BM, BN, BK], (-(-M // BM), -(-N // BN))


def _ptx(kernel, args, num_warps: int | None = None) -> str:
    specs, _ = kernel.bind(tuple(args))
    return compile_kernel(kernel, specs, "sm_100a", CompileOptions(num_warps=num_warps)).gpu.ptx


def _mmas(ptx: str) -> set[str]:
    return set(re.findall(r"^\s*((?:tcgen05\.mma|mma|wgmma)\S*)", ptx, re.M))


def _loop_body(ptx: str) -> str:
    head = re.search(r"^\$L_for_\d+:", ptx, re.M)
    end = re.search(r"^\$L_endfor_\d+:", ptx, re.M)
    return ptx[head.start():end.start()]


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_fp8_matmul_selects_kind_f8f6f4(fmt):
    args, _ = _case(fmt, 128, 64, 128, 128, 64, 64)
    ptx = _ptx(K.matmul_2d, args)
    assert _mmas(ptx) == {OPCODE}
    body = _loop_body(ptx)
    assert body.count(OPCODE) == 2                  # BK = 64: two K32 MMAs per iteration
    assert "tcgen05.ld" not in body                 # the accumulator stays in TMEM across the K loop
    assert f"cvt.rn.satfinite.{fmt}x2.f32" in body and "st.shared.b8" in body


def test_fp8_switch_keeps_the_previous_lowering(monkeypatch):
    monkeypatch.setenv("TILEC_PTX_TCGEN05_FP8", "0")
    args, _ = _case("e4m3", 128, 64, 128, 128, 64, 64)
    assert not any(m.startswith("tcgen05") for m in _mmas(_ptx(K.matmul_2d, args)))


@needs_ptxas
@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
@pytest.mark.parametrize("BM,BN,BK,nw", [(128, 64, 64, None), (64, 32, 32, None), (128, 128, 64, 8)])
def test_ptxas_accepts_fp8_tcgen05(fmt, BM, BN, BK, nw):
    from tilec.backends.ptx.ptxas import assemble

    args, _ = _case(fmt, 256, 128, 128, BM, BN, BK)
    kernel = K.matmul_2d_8warps if nw == 8 else K.matmul_2d
    ptx = _ptx(kernel, args)
    assert OPCODE in ptx
    assemble(ptx, "sm_100a")


def _check(sim, cpu, a, b):
    ref = a.astype(np.float64) @ b.astype(np.float64)
    assert not np.isnan(sim).any()
    scale = max(1.0, float(np.abs(ref).max()))
    # fp8 products are exact in f32; only the f32 summation order differs
    np.testing.assert_allclose(sim, cpu, rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(sim, ref, rtol=0, atol=1e-6 * scale)


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
@pytest.mark.parametrize("M,N,Kd,BM,BN,BK", [
    (128, 64, 64, 128, 64, 64),        # one tile, one K step
    (130, 40, 96, 128, 64, 64),        # ragged M, N and K, a K loop of two
    (100, 24, 70, 64, 32, 32),         # BM = 64 (padded to 128 MMA rows), K loop of three, ragged K
])
def test_sim_matches_cpu(fmt, M, N, Kd, BM, BN, BK):
    args, grid = _case(fmt, M, N, Kd, BM, BN, BK)
    assert OPCODE in _ptx(K.matmul_2d, args)
    cpu = K.run_cpu(K.matmul_2d, grid, args)[-1]
    sim = K.run_sim(K.matmul_2d, grid, args, target="sm_100a")[-1]
    _check(sim, cpu, args[0], args[1])


@ct.kernel
def _one_shot(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor):
    acc = ct.full([128, 32], 0.5, ct.float32)
    a = ct.load_tile(A, offset=[0, 0], size=[128, 64])
    b = ct.load_tile(B, offset=[0, 0], size=[64, 32])
    ct.store_tile(C, offset=[0, 0], tile=ct.matmul(a, b, acc))


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_sim_nonzero_accumulator_outside_a_loop(fmt):
    """A register accumulator that is not zero goes registers -> smem -> TMEM (tcgen05.st) first."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((120, 50)).astype(FP8[fmt])      # ragged: the load pads with zeros
    b = rng.standard_normal((50, 30)).astype(FP8[fmt])
    args = [a, b, np.full((120, 30), np.nan, np.float32)]
    ptx = _ptx(_one_shot, args)
    assert OPCODE in ptx and "tcgen05.st.sync.aligned" in ptx
    cpu = K.run_cpu(_one_shot, (1,), args)[-1]
    sim = K.run_sim(_one_shot, (1,), args, target="sm_100a")[-1]
    _check(sim - 0.5, cpu - 0.5, a, b)
