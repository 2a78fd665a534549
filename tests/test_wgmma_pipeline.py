"""The sm_90a matmul path without a GPU: tile-select-mma, tile-promote-smem and tile-async-copy
turn the K loop of examples/matmul.py into a TMA + mbarrier + wgmma pipeline (dialects/tgpu/,
backends/ptx/lower_tgpu_memory.py, lower_wgmma.py).  The PTX runs on the simulator
(backends/sim, with its race, deadlock and async-proxy checks), tensor maps built from the
artifact's ABI, and must match the CPU backend on ragged shapes; ptxas must accept it."""

from __future__ import annotations

import numpy as np
import pytest

import ml_dtypes
import ptx_kernels as K
import tilec as ct
from tilec import dtypes as dt
from tilec.driver import CompileOptions, compile_kernel
from tilec.errors import CompileError
from tilec.frontend.tracer import ConstantSpec, TensorSpec

BF16 = ml_dtypes.bfloat16


from conftest import load_example  # noqa: E402

matmul_grouped = load_example("matmul").matmul_grouped


@ct.kernel
def matmul_bias_relu(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor, BM: ct.Constant[int], BN: ct.Constant[int],
                     BK: ct.Constant[int]):
    """The accumulator starts from C's tile (not a splat) and goes through relu: both conversions
    between fragments and tiles go through shared memory."""
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    acc = ct.load_tile(C, offset=[i * BM, j * BN], size=[BM, BN])
    for k in range(ct.cdiv(A.shape[1], BK)):
        a = ct.load_tile(A, offset=[i * BM, k * BK], size=[BM, BK])
        b = ct.load_tile(B, offset=[k * BK, j * BN], size=[BK, BN])
        acc = acc + ct.matmul(a, b)
    ct.store_tile(C, offset=[i * BM, j * BN], tile=ct.relu(acc))


def _args(rng, m, n, k, dtype, out_dtype, tiles):
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    return [a, b, np.full((m, n), np.nan, out_dtype), *tiles]


def _compile(kernel, args, num_stages=None):
    specs, values = kernel.bind(tuple(args))
    return compile_kernel(kernel, specs, "sm_90a", CompileOptions(num_stages=num_stages)), values


def _run_sim(kernel, grid, args, num_stages=None, copy=True):
    from tilec.backends.sim.launch import run_ptx_kernel

    if copy:
        args = [x.copy() if isinstance(x, np.ndarray) else x for x in args]
    art, values = _compile(kernel, args, num_stages)
    run_ptx_kernel(art.gpu, values, grid)
    return art, K.outputs(args)


def _on_wgmma_path(art) -> bool:
    return "tgpu.wgmma" in art.ir() and "wgmma.mma_async" in art.gpu.ptx and "cp.async.bulk.tensor" in art.gpu.ptx


CONFIGS = [  # (dtype, C dtype, (M, N, K), (BM, BN, BK), num_stages)
    (np.float16, np.float32, (200, 144, 208), (64, 64, 64), 2),
    (np.float16, np.float32, (200, 144, 208), (128, 128, 64), 3),
    (BF16, np.float32, (200, 144, 208), (128, 128, 64), 4),
    (np.float16, np.float16, (136, 272, 208), (128, 256, 64), None),
    (BF16, BF16, (72, 80, 400), (64, 64, 128), 2),
    (np.float16, np.float32, (256, 64, 64), (256, 64, 64), 2),
]


@pytest.mark.parametrize("dtype,out,shape,tiles,stages", CONFIGS,
                         ids=[f"{np.dtype(c[0]).name}-{'x'.join(map(str, c[2]))}-{'x'.join(map(str, c[3]))}-s{c[4]}"
                              for c in CONFIGS])
def test_example_matmul_on_the_wgmma_path_matches_cpu(example, dtype, out, shape, tiles, stages):
    kernel = example("matmul").matmul_kernel
    m, n, _ = shape
    args = _args(np.random.default_rng(3), *shape, dtype, out, tiles)
    grid = (-(-m // tiles[0]), -(-n // tiles[1]))
    art, got = _run_sim(kernel, grid, args, stages)
    assert _on_wgmma_path(art)
    ref = K.run_cpu(kernel, grid, args)
    tol = 1e-4 if out == np.float32 else 1e-2   # f32 sums in another order; 8-bit mantissas
    assert K.max_error(ref, got) <= tol


def test_grouped_grid_kernel_matches_cpu():
    m, n, k, tiles = 300, 208, 144, (128, 64, 64, 2)
    args = _args(np.random.default_rng(4), m, n, k, np.float16, np.float32, tiles)
    grid = (-(-m // 128) * -(-n // 64),)
    art, got = _run_sim(matmul_grouped, grid, args, 3)
    assert _on_wgmma_path(art)
    assert K.max_error(K.run_cpu(matmul_grouped, grid, args), got) <= 1e-4


def test_accumulator_through_shared_memory_both_ways():
    rng = np.random.default_rng(5)
    args = _args(rng, 136, 112, 208, np.float16, np.float32, (64, 64, 64))
    args[2] = rng.standard_normal((136, 112)).astype(np.float32)
    art, got = _run_sim(matmul_bias_relu, (3, 2), args)
    ir = art.ir()
    assert _on_wgmma_path(art) and "tgpu.to_fragment" in ir and "tgpu.from_fragment" in ir
    assert K.max_error(K.run_cpu(matmul_bias_relu, (3, 2), args), got) <= 1e-4


def test_unaligned_output_is_stored_straight_from_the_fragments(example):
    """C's base is 4 bytes off 16-byte alignment: no TMA store, predicated st.global instead."""
    kernel = example("matmul").matmul_kernel
    args = _args(np.random.default_rng(10), 200, 144, 208, np.float16, np.float32, (128, 128, 64))
    args[2] = np.full(200 * 144 + 1, np.nan, np.float32)[1:].reshape(200, 144)
    ref = K.run_cpu(kernel, (2, 2), args)
    art, got = _run_sim(kernel, (2, 2), args, copy=False)
    assert _on_wgmma_path(art) and "st.global.f32" in art.gpu.ptx and ".global.shared::cta.bulk_group" not in art.gpu.ptx
    assert K.max_error(ref, got) <= 1e-4


def test_unaligned_rows_keep_the_register_path(example):
    """K = 100 f16 elements is a 200-byte row: no TMA (rows must be 16-byte multiples, div16)."""
    kernel = example("matmul").matmul_kernel
    args = _args(np.random.default_rng(6), 70, 64, 100, np.float16, np.float32, (64, 64, 64))
    art, got = _run_sim(kernel, (2, 1), args)
    assert "tgpu." not in art.ir() and "mma.sync" in art.gpu.ptx
    assert K.max_error(K.run_cpu(kernel, (2, 1), args), got) <= 1e-4


def test_tensor_map_abi_is_recorded(example):
    kernel = example("matmul").matmul_kernel
    args = _args(np.random.default_rng(7), 128, 256, 64, np.float16, np.float16, (128, 256, 64))
    art, _ = _compile(kernel, args)
    tmaps = [(p.name, p.role) for p in art.gpu.params if p.kind == "tensormap"]
    assert tmaps == [("p0_tma0", ("tma", 0, (64, 128), 128, "f16")), ("p1_tma0", ("tma", 1, (64, 64), 128, "f16")),
                     ("p2_tma0", ("tma", 2, (64, 128), 128, "f16"))]    # A, B loads; the epilogue's C store
    assert art.gpu.num_threads == 256 and f".param .align 64 .b8 p0_tma0[128]" in art.gpu.ptx


def test_num_stages_from_kernel_option_compile_option_and_default(example):
    base = example("matmul").matmul_kernel
    args = _args(np.random.default_rng(8), 128, 256, 64, np.float16, np.float32, (128, 256, 64))

    def stages(kernel, options=None):
        specs, _ = kernel.bind(tuple(args))
        ir = compile_kernel(kernel, specs, "sm_90a", options or CompileOptions()).ir()
        return int(ir.split("tgpu.mbarrier<")[1].split(">")[0])
    assert stages(base) == 4
    assert stages(ct.kernel(base.fn, num_stages=3)) == 3
    assert stages(base, CompileOptions(num_stages=2)) == 2
    with pytest.raises(CompileError, match=r"num_stages=5 does not fit this K loop: 5 x 48 KiB of buffers"):
        stages(base, CompileOptions(num_stages=5))


def test_launch_keywords_set_compile_options(example):
    from tilec.jit import _launch_options

    kw = {"num_stages": 3, "BM": 64}
    opts = _launch_options(example("matmul").matmul_kernel, None, kw)
    assert opts.num_stages == 3 and kw == {"BM": 64}


def test_matmul_without_an_instruction_names_dtypes_and_target():
    @ct.kernel
    def mm4(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor):
        a = ct.load_tile(A, offset=[0, 0], size=[64, 64])
        b = ct.load_tile(B, offset=[0, 0], size=[64, 64])
        ct.store_tile(C, offset=[0, 0], tile=ct.matmul(a, b))
    t = TensorSpec(dt.float4_e2m1fn, (None, None))
    with pytest.raises(CompileError, match="matmul of float4_e2m1fn x float4_e2m1fn tiles has no MMA or FMA "
                                           "instruction on sm_90a"):
        compile_kernel(mm4, [t, t, TensorSpec(dt.float32, (None, None))], "sm_90a")


def test_simulator_catches_a_missing_full_barrier_wait(example):
    """Without the consumers' wait on the full barrier, wgmma reads a stage TMA is still filling."""
    from tilec.backends.sim import SimError, simulate
    from tilec.backends.sim.launch import launch_grid, ptx_kernel_args

    kernel = example("matmul").matmul_kernel
    args = _args(np.random.default_rng(9), 64, 64, 128, np.float16, np.float32, (64, 64, 64))
    art, values = _compile(kernel, args, 2)
    lines = art.gpu.ptx.splitlines()
    i = next(n for n, line in enumerate(lines) if "mbarrier.try_wait" in line and "[%r" in line
             and n > next(k for k, x in enumerate(lines) if "wgmma" in x) - 8)
    bad = "\n".join(lines[:i] + [f"\tsetp.eq.u32 {lines[i].split()[1].rstrip(',')}, 0, 0;"] + lines[i + 1:])
    with pytest.raises(SimError, match="in flight"):
        simulate(bad, art.gpu.name, launch_grid((1, 1)), (art.gpu.num_threads, 1, 1),
                 ptx_kernel_args(art.gpu, values, (1, 1)), shared_bytes=art.gpu.smem_bytes, arch="sm_90a")


def _ptxas():
    from tilec.backends.ptx.ptxas import PtxasNotFoundError, find_ptxas

    try:
        return find_ptxas()
    except PtxasNotFoundError:
        return None


@pytest.mark.skipif(_ptxas() is None, reason="ptxas not found (pip install nvidia-cuda-nvcc)")
@pytest.mark.parametrize("tiles", [(64, 256, 64, 4), (128, 128, 64, 4), (128, 256, 64, 4), (256, 128, 64, 3)])
def test_ptxas_accepts_without_spills(example, tiles):
    from tilec.backends.ptx.ptxas import assemble

    *t, stages = tiles
    args = _args(np.random.default_rng(0), 512, 512, 512, np.float16, np.float16, t)
    art, _ = _compile(example("matmul").matmul_kernel, args, stages)
    cubin, info = assemble(art.gpu.ptx, "sm_90a", verbose=True)
    assert cubin[:4] == b"\x7fELF"
    assert " 0 bytes spill stores" in info and "serializ" not in info, info
