"""Block-scaled FP4 matmuls on sm_100a (backends/ptx/lower_scaled_mma.py), without a Blackwell
GPU: examples/fp4_matmul.py selects tcgen05.mma kind::mxf4 (MXFP4) / kind::mxf4nvf4 (NVFP4)
block_scale, ptxas accepts the PTX, and the simulator (backends/sim) computes what the CPU
backend and the example's float64 reference compute.  What the lowering cannot take keeps the
clear "not implemented for `sm_100a`" error."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import tilec as ct
from tilec import fp4
from tilec.driver import CompileOptions, compile_kernel
from test_ptx_compile import needs_ptxas

ROOT = Path(__file__).resolve().parents[1]


def _example():
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        return importlib.import_module("fp4_matmul")
    finally:
        sys.path.remove(str(ROOT / "examples"))


def _case(variant: str, m: int, n: int, k: int, BN: int = 64, BK: int = 64, seed: int = 0, BM: int = 128):
    """(example module, kernel args, grid, float64 reference) of the example's data."""
    ex = _example()
    block, scale_dtype, per_tensor = ex.VARIANTS[variant]
    rng = np.random.default_rng(seed)
    x, w = ex.data(rng, m, k), ex.data(rng, n, k)
    gx = float(np.abs(x).max()) / (6 * 448) if per_tensor else None
    gw = float(np.abs(w).max()) / (6 * 448) if per_tensor else None
    pa, sa = fp4.quantize(x, block, scale_dtype, global_scale=gx)
    pb, sb = fp4.quantize(w, block, scale_dtype, global_scale=gw)
    out_scale = float(np.float32(gx) * np.float32(gw)) if per_tensor else 1.0
    args = (ct.fp4_tensor(pa, (m, k)), sa, ct.fp4_tensor(pb, (n, k)), sb, np.full((m, n), np.nan, np.float32),
            out_scale, BM, BN, BK, block)
    grid = (ct.cdiv(m, BM), ct.cdiv(n, BN))
    return ex, args, grid, ex.reference(pa, sa, pb, sb, k, out_scale)


def _gpu(ex, args):
    specs, values = ex.fp4_matmul_kernel.bind(args)
    return compile_kernel(ex.fp4_matmul_kernel, specs, "sm_100a", CompileOptions()).gpu, values


OPCODE = {"mxfp4": "tcgen05.mma.cta_group::1.kind::mxf4.block_scale.scale_vec::2X",
          "nvfp4": "tcgen05.mma.cta_group::1.kind::mxf4nvf4.block_scale.scale_vec::4X"}


@pytest.mark.parametrize("variant", ["mxfp4", "nvfp4"])
def test_example_selects_block_scaled_tcgen05(variant):
    ex, args, _, _ = _case(variant, 128, 64, 128)
    ptx = _gpu(ex, args)[0].ptx
    mmas = re.findall(r"^\s*(tcgen05\.mma\S*)", ptx, re.M)
    assert mmas and set(mmas) == {OPCODE[variant]}
    assert len(mmas) == 1                       # BK = 64: one K64 MMA per K-loop iteration
    assert ptx.count("tcgen05.cp.cta_group::1.32x128b.warpx4") == 2     # SFA and SFB: one word each
    assert "tcgen05.ld.sync.aligned" in ptx and "tcgen05.commit" in ptx
    # the accumulator stays in TMEM across the K loop
    body = ptx[re.search(r"^\$L_for_\d+:", ptx, re.M).start():re.search(r"^\$L_endfor_\d+:", ptx, re.M).start()]
    assert "tcgen05.ld" not in body and "tcgen05.mma" in body
    assert (".version 8.7" in ptx) == (variant == "nvfp4")   # kind::mxf4nvf4 needs PTX ISA 8.7


@needs_ptxas
@pytest.mark.parametrize("variant", ["mxfp4", "nvfp4"])
@pytest.mark.parametrize("BM", [128, 64])
def test_ptxas_accepts_block_scaled_tcgen05(variant, BM):
    from tilec.backends.ptx.ptxas import assemble

    ex, args, _, _ = _case(variant, 128, 64, 128, BM=BM)
    assemble(_gpu(ex, args)[0].ptx, "sm_100a")


@pytest.mark.parametrize("variant,m,n,k,BN,BM", [
    ("mxfp4", 128, 64, 128, 64, 128),
    ("nvfp4", 128, 64, 128, 64, 128),
    ("mxfp4", 128, 40, 128, 64, 128),      # ragged N (tile 64)
    ("nvfp4", 128, 40, 128, 64, 128),
    ("mxfp4", 130, 24, 64, 128, 128),      # ragged M and N, N tile 128
    ("nvfp4", 200, 100, 192, 128, 128),
    ("mxfp4", 100, 40, 128, 64, 64),       # BM = 64 (the example's default): padded to 128 MMA rows
    ("nvfp4", 256, 192, 512, 64, 64),      # the example's main() sizes and tiles
])
def test_sim_matches_cpu_and_reference(variant, m, n, k, BN, BM):
    from tilec.backends.sim.launch import run_ptx_kernel

    ex, args, grid, ref = _case(variant, m, n, k, BN, BM=BM)
    gpu, values = _gpu(ex, args)
    sim_out = args[4].copy()
    run_ptx_kernel(gpu, [sim_out if v is args[4] else v for v in values], grid)
    cpu_out = args[4].copy()
    ex.fp4_matmul_kernel[grid](*args[:4], cpu_out, *args[5:])
    assert not np.isnan(sim_out).any()
    np.testing.assert_array_equal(sim_out, cpu_out)
    assert np.max(np.abs(sim_out - ref)) / np.max(np.abs(ref)) < 1e-5


@pytest.mark.parametrize("BN,BK", [(256, 64), (64, 32)])
def test_unsupported_shapes_keep_the_clear_error(BN, BK):
    """N tile > 128 or K tile not a multiple of 64: the not-implemented error, never wrong code."""
    ex, args, _, _ = _case("mxfp4", 128, 256, 128, BN=BN, BK=BK)
    specs, _ = ex.fp4_matmul_kernel.bind(args)
    with pytest.raises(ct.CompileError, match=r"is not implemented for `sm_100a`"):
        compile_kernel(ex.fp4_matmul_kernel, specs, "sm_100a", CompileOptions())


@ct.kernel
def _one_shot(A: ct.Tensor, SA: ct.Tensor, B: ct.Tensor, SB: ct.Tensor, C: ct.Tensor):
    acc = ct.full([128, 32], 0.5, ct.float32)
    a = ct.load_tile(A, offset=[0, 0], size=[128, 128])
    b = ct.load_tile(B, offset=[0, 0], size=[32, 128])
    sa = ct.load_tile(SA, offset=[0, 0], size=[128, 4], padding=1.0)
    sb = ct.load_tile(SB, offset=[0, 0], size=[32, 4], padding=1.0)
    ct.store_tile(C, offset=[0, 0], tile=ct.matmul(a, b.T, acc, a_scale=sa, b_scale=sb))


def test_sim_nonzero_accumulator_outside_a_loop():
    """A register accumulator that is not zero goes registers -> smem -> TMEM (tcgen05.st) first."""
    from tilec.backends.sim.launch import run_ptx_kernel

    rng = np.random.default_rng(1)
    pa, sa = fp4.quantize(rng.standard_normal((128, 128)).astype(np.float32))
    pb, sb = fp4.quantize(rng.standard_normal((32, 128)).astype(np.float32))
    args = (ct.fp4_tensor(pa, (128, 128)), sa, ct.fp4_tensor(pb, (32, 128)), sb, np.full((128, 32), np.nan, np.float32))
    specs, values = _one_shot.bind(args)
    gpu = compile_kernel(_one_shot, specs, "sm_100a", CompileOptions()).gpu
    assert OPCODE["mxfp4"] in gpu.ptx and "tcgen05.st.sync.aligned" in gpu.ptx
    run_ptx_kernel(gpu, values, (1,))
    cpu = np.full((128, 32), np.nan, np.float32)
    _one_shot[(1,)](*args[:4], cpu)
    np.testing.assert_array_equal(args[4], cpu)
