"""fp4 / fp6 / fp8 operands of unscaled sm_100a kind::f8f6f4 matmuls fed by TMA through the
warp-specialised tcgen05 pipeline (backends/ptx/tcgen05_f8f6f4_tma.py), without a Blackwell GPU:
fp4 by 16U4_ALIGN16B maps (TMA writes the padded groups), fp6 (one code per byte in global
memory) as UINT8 and packed in shared memory by warps 2.., fp8 as UINT8.

The kernel tests at run time whether the tensors suit TMA (32-byte aligned, K % 128 == 0) and
otherwise runs the direct copy; the simulator runs each path with the *other* one replaced by a
`trap`, so a pass shows which path computed the result.  References: float64 products of the
ml_dtypes-decoded inputs; the tensor-map arguments are checked against the driver's documented
rules for `cuTensorMapEncodeTiled` (no GPU needed)."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

import tilec as ct
from test_ptx_compile import needs_ptxas
from test_tcgen05_f8f6f4 import NP, OPCODE, _case, _gpu

TMA_COPY = "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"


def _only(gpu, path: str):
    """`gpu` with the other branch of the run-time TMA test made a `trap`."""
    m = re.search(r"^\s*@!%p\d+ bra (\$L_tc_direct_loop_\d+);\n", gpu.ptx, re.M)
    assert m, "no run-time TMA test in the PTX"
    if path == "tma":
        ptx = gpu.ptx.replace(f"\n{m.group(1)}:\n", f"\n{m.group(1)}:\n\ttrap;\n", 1)
    else:
        ptx = gpu.ptx[:m.end()] + "\ttrap;\n" + gpu.ptx[m.end():]
    assert ptx.count("trap;") == 1
    return dataclasses.replace(gpu, ptx=ptx)


def _sim(kernel, args, grid, path: str) -> np.ndarray:
    from tilec.backends.sim.launch import run_ptx_kernel

    gpu, values = _gpu(kernel, args)
    run_ptx_kernel(_only(gpu, path), values, grid)
    return args[2].copy()


def _close(sim: np.ndarray, ref: np.ndarray) -> None:
    """fp4 / fp8 products are exact in f32: only the f32 summation order differs from float64."""
    assert not np.isnan(sim).any()
    np.testing.assert_allclose(sim, ref, rtol=0, atol=1e-6 * max(1.0, float(np.abs(ref).max())))


def _roles(gpu) -> list[tuple]:
    return [p.role for p in gpu.params if p.role[0] == "tma"]


ROLE = {"e2m1": "16u4_align16b", "e4m3": "u8", "e5m2": "u8", "e2m3": "u8", "e3m2": "u8"}


@pytest.mark.parametrize("fa,fb", [("e2m1", "e2m1"), ("e2m3", "e2m3"), ("e3m2", "e3m2"), ("e4m3", "e2m1"),
                                   ("e2m1", "e5m2"), ("e3m2", "e2m1"), ("e4m3", "e2m3")])
@pytest.mark.parametrize("M,N,Kd,BM,BN,BK", [
    (128, 64, 256, 128, 64, 128),      # two K steps of 128
    (130, 72, 384, 128, 64, 128),      # ragged M and N: TMA fills the rows outside with zeros
    (100, 40, 256, 64, 32, 128),       # BM = 64 (the MMA reads 128 rows), BN = 32
    (128, 128, 512, 128, 128, 256),    # BK = 256: two 128-k panels per stage
])
def test_tma_pipeline_matches_float64(fa, fb, M, N, Kd, BM, BN, BK):
    kernel, args, grid, ref = _case(fa, fb, M, N, Kd, BM, BN, BK, True)
    gpu, _ = _gpu(kernel, args)
    assert _roles(gpu) == [("tma", 0, (128, BM), 128, ROLE[fa], "k128"),
                           ("tma", 1, (128, BN), 128, ROLE[fb], "k128")]
    assert gpu.ptx.count(TMA_COPY) == 2 * (BK // 128)
    sim = _sim(kernel, args, grid, "tma")
    _close(sim, ref)


def test_tma_stage_layout_descriptors_and_idesc():
    """Both operands K-major 128B-swizzled (SBO 1024 B), K32 per MMA = +32 B (descriptor + 2)
    inside a 128-k panel; one expect_tx of the bytes TMA reads: packed fp4 is half a byte per
    element although it fills a byte of shared memory (DeepGEMM's sm100 fp8 x fp4 GEMM expects
    half the unpacked smem size for its 16U4_ALIGN16B operand)."""
    from tilec.backends.ptx.descriptors import Sm100InstrDescriptor

    kernel, args, _, _ = _case("e2m1", "e2m1", 128, 64, 256, 128, 64, 128, True)
    full = _gpu(kernel, args)[0].ptx
    m = re.search(r"^\s*@!%p\d+ bra (\$L_tc_direct_loop_\d+);\n", full, re.M)
    ptx = full[m.end():full.index(f"\n{m.group(1)}:")]          # the TMA branch only
    assert re.search(rf"mbarrier\.arrive\.expect_tx\.shared::cta\.b64 _, \[%r\d+\], {(128 * 128 + 64 * 128) // 2};", ptx)
    # SM100 smem descriptor: start >> 4 at [0,14), LBO >> 4 at [16,30), SBO >> 4 at [32,46), version 1 at
    # bit 46, swizzle at [61,64) (2 = 128B): LBO 16 B (unused when swizzled), SBO 8 rows x 128 B
    want = (16 >> 4) << 16 | (1024 >> 4) << 32 | 1 << 46 | 2 << 61
    descs = re.findall(r"// ([AB]) smem descriptor Sm100SmemDescriptor<0x([0-9A-F]+) ", ptx)
    assert sorted(descs) == [("A", f"{want:016X}"), ("B", f"{want:016X}")]
    mmas = re.findall(r"tcgen05\.mma\.cta_group::1\.kind::f8f6f4 \[%r\d+\], %rd\d+, %rd\d+, 0x([0-9A-F]+),", ptx)
    assert len(mmas) == 4                                        # BK 128 / K32
    d = Sm100InstrDescriptor.decode(int(mmas[0], 16))
    assert (d.a_type, d.b_type, int(d.a_major), int(d.b_major), d.n_dim << 3, d.m_dim << 4) == (5, 5, 0, 0, 64, 128)
    steps = re.findall(r"add\.s64 %rd\d+, %rd\d+, (\d+);", ptx)
    assert sorted(set(int(x) for x in steps)) == [2, 4, 6]     # K32 steps 1..3 at +32, +64, +96 bytes (>> 4)


@pytest.mark.parametrize("fa,fb", [("e2m1", "e4m3"), ("e2m3", "e2m1")])
@pytest.mark.parametrize("Kd", [200, 320])
def test_k_extent_not_a_multiple_of_128_takes_the_direct_copy(fa, fb, Kd):
    """The launch passes an unused map and the kernel's run-time test picks the direct copy."""
    kernel, args, grid, ref = _case(fa, fb, 130, 64, Kd, 128, 64, 128, True, seed=5)
    sim = _sim(kernel, args, grid, "direct")
    _close(sim, ref)


@pytest.mark.parametrize("fa,fb,b_kmajor,BK,why", [
    ("e2m1", "e2m1", False, 128, "B given as [K, N]: TMA would group 16 consecutive n (MN-major)"),
    ("e2m3", "e3m2", False, 256, "B given as [K, N]"),
    ("e2m1", "e2m1", True, 64, "boxDim[0] of the packed types is 128 elements"),
])
def test_what_tma_does_not_take_keeps_the_direct_copy(fa, fb, b_kmajor, BK, why):
    kernel, args, grid, ref = _case(fa, fb, 130, 64, 256, 128, 64, BK, b_kmajor, seed=7)
    gpu, values = _gpu(kernel, args)
    assert TMA_COPY not in gpu.ptx and not _roles(gpu), why
    assert "ld.global.u8" in gpu.ptx and OPCODE in gpu.ptx
    from tilec.backends.sim.launch import run_ptx_kernel

    run_ptx_kernel(gpu, values, grid)
    _close(args[2].copy(), ref)


def test_fp6_operands_are_packed_in_shared_memory_before_the_mma():
    """fp6 stages: warps 2.. wait full[s], pack every 16-byte chunk (16 codes -> 12 bytes, in place),
    fence for the async proxy and arrive on ready[s] (one arrival per repacking thread, 64 with 4
    warps); the MMA warp waits ready[s], not full[s].  An fp4 x fp4 loop has no such ring."""
    kernel, args, _, _ = _case("e3m2", "e2m1", 128, 64, 256, 128, 64, 128, True)
    ptx = _gpu(kernel, args)[0].ptx
    assert re.search(r"^\.shared \.align 8 \.b64 tc_ready0\[\d\];", ptx, re.M)
    inits = re.findall(r"mbarrier\.init\.shared::cta\.b64 \[%r\d+\+\d+\], (\d+);", ptx)
    assert inits.count("64") >= 2
    body = ptx[ptx.index("pack 16 codes per 16 bytes in place"):]
    assert "ld.shared.v4.b32" in body and "st.shared.v2.b32" in body and "bfe.u32" in body
    assert body.index("fence.proxy.async.shared::cta") < body.index("mbarrier.arrive.shared::cta.b64")
    issuer = body[body.index("mov.u32 %r", body.index("mbarrier.arrive.shared::cta.b64")):]
    assert "tc_ready0" in issuer[:issuer.index("tcgen05.mma")]
    kernel, args, _, _ = _case("e2m1", "e2m1", 128, 64, 256, 128, 64, 128, True)
    assert "tc_ready0" not in _gpu(kernel, args)[0].ptx


@needs_ptxas
@pytest.mark.parametrize("fa,fb,BM,BN,BK", [("e2m1", "e2m1", 128, 64, 128), ("e4m3", "e2m1", 64, 128, 256),
                                            ("e2m3", "e3m2", 128, 64, 128), ("e3m2", "e2m1", 128, 128, 256),
                                            ("e2m1", "e5m2", 128, 128, 128)])
def test_ptxas_accepts_the_tma_pipeline(fa, fb, BM, BN, BK):
    from tilec.backends.ptx.ptxas import assemble

    kernel, args, _, _ = _case(fa, fb, 256, 256, 512, BM, BN, BK, True)
    ptx = _gpu(kernel, args)[0].ptx
    assert TMA_COPY in ptx and OPCODE in ptx
    assemble(ptx, "sm_100a")


# ---------------------------------------------------------------------------- launch-side tensor maps


def test_tensor_map_args_of_a_packed_fp4_operand():
    """dims count fp4 elements (the logical shape), the stride is the packed row's bytes; box and
    swizzle as the kernel asks.  A GPU FP4Tensor's DeviceArray carries one-byte-per-element
    strides: the packed contiguous ones are derived from the shape (K / 2 bytes a row)."""
    from tilec.runtime.launch import tensor_map_args

    role = ("tma", 0, (128, 64), 128, "16u4_align16b", "k128")
    f4 = ct.fp4_tensor(np.zeros((300, 512), NP["e2m1"]))
    assert tensor_map_args(f4.shape, f4.strides, role) == ("16u4_align16b", (512, 300), (256,), (128, 64), 128)
    assert tensor_map_args((300, 512), (512, 1), role) == ("16u4_align16b", (512, 300), (256,), (128, 64), 128)
    assert tensor_map_args((2, 300, 512), None, role)[2] == (256, 256 * 300)
    u8 = np.zeros((64, 384), NP["e4m3"])
    assert tensor_map_args(u8.shape, u8.strides, ("tma", 1, (128, 64), 128, "u8", "k128")) == \
        ("u8", (384, 64), (384,), (128, 64), 128)


def test_the_driver_rules_hold_for_every_map_the_launch_builds():
    """Whenever `tma_ready` lets the launch build a map, the arguments meet cuTensorMapEncodeTiled's
    rules for 16U4_ALIGN16B (address % 32, globalDim[0] % 128, strides % 32, boxDim[0] == 128, 128B
    swizzle); the rest are refused by `check_packed_tma` and by `tma_ready` alike."""
    from tilec.runtime.cuda import check_packed_tma
    from tilec.runtime.launch import tensor_map_args, tma_ready

    role = ("tma", 0, (128, 128), 128, "16u4_align16b", "k128")
    for ptr in (0x10000, 0x10010, 0x10020):
        for k in (64, 128, 200, 256, 384, 1000, 1024):
            shape = (257, k)
            dtype, dims, strides, box, swz = tensor_map_args(shape, None, role)
            legal = True
            try:
                check_packed_tma(ptr, dtype.upper(), dims, strides, box, swz, False)
            except ValueError:
                legal = False
            assert tma_ready(ptr, shape, role) == legal == (ptr % 32 == 0 and k % 128 == 0)
    assert tma_ready(0x10010, (8, 100), ("tma", 0, (64, 64), 128, "f16"))      # unguarded roles: always


@pytest.mark.parametrize("kw,msg", [({"ptr": 0x10010}, "32-byte aligned"), ({"box": (64, 64)}, "boxDim\\[0\\]"),
                                    ({"swizzle": 64}, "swizzle"), ({"strides": (272,)}, "multiples of 32"),
                                    ({"dims": (200, 64)}, "multiple of 128"), ({"nan": True}, "NaN")])
def test_check_packed_tma_names_the_rule(kw, msg):
    from tilec.runtime.cuda import check_packed_tma

    a = {"ptr": 0x10000, "dims": (256, 64), "strides": (128,), "box": (128, 64), "swizzle": 128, "nan": False, **kw}
    with pytest.raises(ValueError, match=msg):
        check_packed_tma(a["ptr"], "16U4_ALIGN16B", a["dims"], a["strides"], a["box"], a["swizzle"], a["nan"])


def test_runtime_data_type_enum_is_the_drivers():
    """cuda.h numbers CUtensorMapDataType ... TFLOAT32_FTZ = 12, 16U4_ALIGN8B, 16U4_ALIGN16B,
    16U6_ALIGN16B: the runtime resolves the kernel's role names to those members."""
    pytest.importorskip("cuda.bindings")
    from tilec.runtime.cuda import _tma_dtype

    assert [int(_tma_dtype(n)[0]) for n in ("16u4_align8b", "16u4_align16b", "16U6_ALIGN16B", "u8")] == [13, 14, 15, 0]


def test_missing_enum_in_old_bindings_is_a_clear_error(monkeypatch):
    pytest.importorskip("cuda.bindings")
    from tilec.runtime import cuda

    class Old:
        class CUtensorMapDataType:
            pass
    monkeypatch.setattr(cuda, "_drv", Old)
    with pytest.raises(ValueError, match="no CU_TENSOR_MAP_DATA_TYPE_16U4_ALIGN16B.*12.8"):
        cuda._tma_dtype("16u4_align16b")


def test_unused_sim_tensor_map_refuses_a_copy():
    """A tensor unfit for TMA gets a map the kernel must not use: reading it is an error, not data."""
    from tilec.backends.sim.launch import ptx_kernel_args
    from tilec.backends.sim.tensormap import UnusedTensorMap

    kernel, args, grid, _ = _case("e2m1", "e2m1", 128, 64, 200, 128, 64, 128, True)
    gpu, values = _gpu(kernel, args)
    maps = [v for k, v in ptx_kernel_args(gpu, values, grid) if k == "tensormap"]
    assert len(maps) == 2 and all(isinstance(m, UnusedTensorMap) for m in maps)
    with pytest.raises(ValueError, match="unused tensor map"):
        maps[0].load_box((0, 0))


def test_gpu_launch_builds_the_maps_the_driver_rules_allow(monkeypatch):
    """`tensor_map_bytes` (the GPU launch) encodes an FP4Tensor operand as 16U4_ALIGN16B with its
    packed pointer, element dims, packed row stride, the kernel's box and 128B swizzle, and hands
    over 128 unused bytes (no driver call) when the kernel's run-time test will pick the direct copy."""
    import importlib

    cuda = importlib.import_module("tilec.runtime.cuda")
    launch = importlib.import_module("tilec.runtime.launch")
    calls = []

    class Encoded:
        bytes = b"\x01" * 128
    monkeypatch.setattr(cuda, "make_tma_descriptor", lambda *a, **k: calls.append((a, k)) or Encoded)
    role = ("tma", 0, (128, 128), 128, "16u4_align16b", "k128")
    fp4_arr = launch.DeviceArray(None, 0x7000_0000, (300, 512), NP["e2m1"], None, 0)   # a GPU FP4Tensor's view
    assert launch.tensor_map_bytes(fp4_arr, role) == Encoded.bytes
    (args, kw), = calls
    assert args == (0x7000_0000, "16u4_align16b", (512, 300), (256,), (128, 128), 128)
    assert kw["cache"] is False
    calls.clear()
    for ptr, shape in ((0x7000_0010, (300, 512)), (0x7100_0000, (300, 200))):
        assert launch.tensor_map_bytes(launch.DeviceArray(None, ptr, shape, NP["e2m1"], None, 0), role) == bytes(128)
    assert not calls


def test_sim_target_launch_uses_the_tensor_maps(monkeypatch):
    """`kernel[grid](...)` on sim:sm_100a: the launch builds SimTensorMaps over the FP4Tensor's
    packed bytes (16U4_ALIGN16B) and the TMA branch computes the float64 product."""
    from tilec.backends.sim import launch as sim_launch

    monkeypatch.setenv("TILEC_TARGET", "sim:sm_100a")
    built = []
    orig = sim_launch._tensor_map
    monkeypatch.setattr(sim_launch, "_tensor_map", lambda a, role: built.append(orig(a, role)) or built[-1])
    kernel, args, grid, ref = _case("e2m1", "e2m1", 192, 96, 384, 128, 64, 128, True, seed=11)
    kernel[grid](*args)
    assert [(m.packed_bits, m.dims, m.box) for m in built[:2]] == [(4, (384, 192), (128, 128)), (4, (384, 96), (128, 64))]
    assert all(m.array is a.packed for m, a in zip(built, args[:2]))
    _close(args[2], ref)


@ct.kernel(num_warps=8)
def matmul_bt_8warps(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor, BM: ct.Constant[int], BN: ct.Constant[int],
                     BK: ct.Constant[int]):
    """C = A @ B.T with B given as [N, K], 8 warps (6 of them pack fp6 stages)."""
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    acc = ct.zeros([BM, BN])
    for k in range(0, A.shape[1], BK):
        a = ct.load_tile(A, offset=[i * BM, k], size=[BM, BK])
        b = ct.load_tile(B, offset=[j * BN, k], size=[BN, BK])
        acc += a @ b.T
    ct.store_tile(C, offset=[i * BM, j * BN], tile=acc)


@pytest.mark.parametrize("fa,fb", [("e2m3", "e3m2"), ("e2m1", "e2m3")])
def test_eight_warps_two_m_blocks(fa, fb):
    """BM = 256 (two 128-row MMA blocks, a 256-row A box), 8 warps: 192 packing threads, whose
    chunk count (a multiple of 64) does not divide evenly: the ready[s] count is 192."""
    rng = np.random.default_rng(9)
    a = (rng.standard_normal((300, 384)) * 2).astype(NP[fa])
    b = (rng.standard_normal((100, 384)) * 2).astype(NP[fb])
    from test_tcgen05_f8f6f4 import _arg

    args = [_arg(a), _arg(b), np.full((300, 100), np.nan, np.float32), 256, 64, 128]
    gpu, _ = _gpu(matmul_bt_8warps, args)
    assert _roles(gpu)[0][2] == (128, 256)
    if "e2m3" in (fa, fb) or "e3m2" in (fa, fb):
        assert re.search(r"mbarrier\.init\.shared::cta\.b64 \[%r\d+\+0\], 192;", gpu.ptx)
    _close(_sim(matmul_bt_8warps, args, (2, 2), "tma"), a.astype(np.float64) @ b.T.astype(np.float64))


def test_switch_off_keeps_the_direct_copy(monkeypatch):
    monkeypatch.setenv("TILEC_PTX_TCGEN05_TMA", "0")
    kernel, args, _, _ = _case("e2m1", "e2m3", 128, 64, 256, 128, 64, 128, True)
    gpu, _ = _gpu(kernel, args)
    assert TMA_COPY not in gpu.ptx and not _roles(gpu) and "ld.global.u8" in gpu.ptx
