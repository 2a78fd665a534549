"""Unscaled fp4 / fp6 matmuls (and fp8 mixed with them) on sm_100a: `tcgen05.mma kind::f8f6f4`
with e2m1 / e2m3 / e3m2 operands (backends/ptx/tcgen05_direct.py), without a Blackwell GPU.

The operands go from global memory straight into the padded K-major shared-memory layout
(16 elements packed at the start of every 16 bytes), the instruction descriptor carries the
PTX ISA type codes of A and B, ptxas accepts the PTX for sm_100a, and the simulator (which
decodes that padded layout, `isa_tcgen05.padded_values`) computes what the CPU backend and a
float64 reference of the ml_dtypes-decoded inputs compute."""

from __future__ import annotations

import re

import ml_dtypes
import numpy as np
import pytest

import ptx_kernels as K
import tilec as ct
from tilec import fp4, fp6
from tilec.backends.ptx.descriptors import Sm100InstrDescriptor
from tilec.driver import CompileOptions, compile_kernel
from test_ptx_compile import needs_ptxas

NP = {"e4m3": ml_dtypes.float8_e4m3fn, "e5m2": ml_dtypes.float8_e5m2, "e2m3": ml_dtypes.float6_e2m3fn,
      "e3m2": ml_dtypes.float6_e3m2fn, "e2m1": ml_dtypes.float4_e2m1fn}
#: PTX ISA, instruction descriptor of kind::f8f6f4, bits 7-9 (A) / 10-12 (B)
TYPE_CODE = {"e4m3": 0, "e5m2": 1, "e2m3": 3, "e3m2": 4, "e2m1": 5}
OPCODE = "tcgen05.mma.cta_group::1.kind::f8f6f4"
PAIRS = [("e2m1", "e2m1"), ("e2m3", "e2m3"), ("e3m2", "e3m2"), ("e4m3", "e2m1"), ("e2m3", "e3m2"),
         ("e2m1", "e5m2"), ("e5m2", "e2m3")]      # the front end promotes the last pair to f16 (exact casts)


@ct.kernel
def matmul_bt(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor, BM: ct.Constant[int], BN: ct.Constant[int],
              BK: ct.Constant[int]):
    """C = A @ B.T with B given as [N, K] (K-major, how fp4 weights are usually stored)."""
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    acc = ct.zeros([BM, BN])
    for k in range(0, A.shape[1], BK):
        a = ct.load_tile(A, offset=[i * BM, k], size=[BM, BK])
        b = ct.load_tile(B, offset=[j * BN, k], size=[BN, BK])
        acc += a @ b.T
    ct.store_tile(C, offset=[i * BM, j * BN], tile=acc)


def _arg(x: np.ndarray):
    """fp4 tensors are passed packed two per byte; fp6 and fp8 one value per byte."""
    return ct.fp4_tensor(fp4.pack(x), x.shape) if x.dtype == NP["e2m1"] else x


def _case(fa, fb, M, N, Kd, BM, BN, BK, b_kmajor, seed=0):
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal((M, Kd)) * 2).astype(NP[fa])
    b = (rng.standard_normal((N, Kd) if b_kmajor else (Kd, N)) * 2).astype(NP[fb])
    kernel = matmul_bt if b_kmajor else K.matmul_2d
    args = [_arg(a), _arg(b), np.full((M, N), np.nan, np.float32), BM, BN, BK]
    ref = a.astype(np.float64) @ (b.T if b_kmajor else b).astype(np.float64)
    return kernel, args, (-(-M // BM), -(-N // BN)), ref


def _gpu(kernel, args, target="sm_100a"):
    specs, values = kernel.bind(tuple(args))
    return compile_kernel(kernel, specs, target, CompileOptions()).gpu, values


def _mmas(ptx: str) -> list[tuple[str, int]]:
    """(opcode, idesc) of every tcgen05.mma / other MMA in the PTX."""
    out = [(m.group(1), int(m.group(2), 16)) for m in
           re.finditer(r"^\s*(tcgen05\.mma\S*) \[[^\]]*\], %rd\d+, %rd\d+, 0x([0-9A-F]+),", ptx, re.M)]
    others = re.findall(r"^\s*((?:mma|wgmma)\.\S*)", ptx, re.M)
    return out + [(o, -1) for o in others]


@pytest.mark.parametrize("fa,fb", PAIRS)
@pytest.mark.parametrize("b_kmajor", [False, True])
def test_selects_kind_f8f6f4_with_the_isa_type_codes(fa, fb, b_kmajor):
    kernel, args, _, _ = _case(fa, fb, 128, 64, 128, 128, 64, 64, b_kmajor)
    ptx = _gpu(kernel, args)[0].ptx
    mmas = _mmas(ptx)
    assert mmas and {m for m, _ in mmas} == {OPCODE}
    assert len(mmas) == 2                                   # BK = 64: two K32 MMAs per K-loop iteration
    for _, idesc in mmas:
        d = Sm100InstrDescriptor.decode(idesc)
        assert (d.a_type, d.b_type, d.d_type) == (TYPE_CODE[fa], TYPE_CODE[fb], 1)
        assert (d.m_dim << 4, d.n_dim << 3, int(d.a_major), int(d.b_major)) == (128, 64, 0, 0)
    body = ptx[re.search(r"^\$L_for_\d+:", ptx, re.M).start():re.search(r"^\$L_endfor_\d+:", ptx, re.M).start()]
    assert "tcgen05.ld" not in body                          # the accumulator stays in TMEM across the K loop
    assert "ld.global.u8" in body and "bfi.b32" in body      # operands copied from global memory by the matmul
    stores = {"e2m1": "st.shared.v2.b32", "e2m3": "st.shared.b32", "e3m2": "st.shared.b32",
              "e4m3": "st.shared.v4.b32", "e5m2": "st.shared.v4.b32"}
    assert stores[fa] in body and stores[fb] in body         # 8 / 12 / 16 bytes of data per 16-byte group


@needs_ptxas
@pytest.mark.parametrize("fa,fb", PAIRS)
@pytest.mark.parametrize("BM,BN,BK,b_kmajor", [(128, 64, 64, False), (64, 32, 32, True), (128, 256, 32, True)])
def test_ptxas_accepts_f8f6f4_subbyte(fa, fb, BM, BN, BK, b_kmajor):
    from tilec.backends.ptx.ptxas import assemble

    kernel, args, _, _ = _case(fa, fb, 256, 256, 128, BM, BN, BK, b_kmajor)
    ptx = _gpu(kernel, args)[0].ptx
    assert OPCODE in ptx
    assemble(ptx, "sm_100a")


def _run(kernel, args, grid):
    """(simulator output, CPU backend output)."""
    from tilec.backends.sim.launch import run_ptx_kernel

    gpu, values = _gpu(kernel, args)
    out = args[2]
    run_ptx_kernel(gpu, values, grid)
    sim = out.copy()
    out[...] = np.nan
    kernel[grid](*args)
    return sim, out.copy()


def _check(sim, cpu, ref):
    assert not np.isnan(sim).any()
    # fp4 / fp6 / fp8 products are exact in f32; only the f32 summation order differs
    atol = 1e-6 * max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(sim, ref, rtol=0, atol=atol)
    np.testing.assert_allclose(cpu, ref, rtol=0, atol=atol)


@pytest.mark.parametrize("fa,fb", PAIRS)
@pytest.mark.parametrize("M,N,Kd,BM,BN,BK,b_kmajor", [
    (128, 64, 64, 128, 64, 64, False),      # one tile, one K step, B [K, N]
    (128, 64, 64, 128, 64, 64, True),       # B given as [N, K]
    (130, 40, 96, 128, 64, 64, True),       # ragged M, N and K, a K loop of two
    (100, 24, 70, 64, 32, 32, False),       # BM = 64 (padded to 128 MMA rows), K loop of three, ragged K
])
def test_sim_matches_cpu_and_float64(fa, fb, M, N, Kd, BM, BN, BK, b_kmajor):
    kernel, args, grid, ref = _case(fa, fb, M, N, Kd, BM, BN, BK, b_kmajor)
    _check(*_run(kernel, args, grid), ref)


def test_sim_wide_n():
    """BN = 256: B has two rows per thread (two passes of the 128 threads), ragged N = 300."""
    kernel, args, grid, ref = _case("e2m1", "e2m1", 128, 300, 64, 128, 256, 32, False, seed=3)
    _check(*_run(kernel, args, grid), ref)


def test_sim_eight_warps():
    """256 threads: only the first 128 copy A's rows, B's 128 rows per N tile in one pass."""
    rng = np.random.default_rng(6)
    a = (rng.standard_normal((256, 96)) * 2).astype(NP["e3m2"])
    b = (rng.standard_normal((96, 200)) * 2).astype(NP["e2m3"])
    args = [a, b, np.full((256, 200), np.nan, np.float32), 128, 128, 32]
    sim, cpu = _run(K.matmul_2d_8warps, args, (2, 2))
    _check(sim, cpu, a.astype(np.float64) @ b.astype(np.float64))


@ct.kernel
def _one_shot(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor):
    acc = ct.full([128, 32], 0.5, ct.float32)
    a = ct.load_tile(A, offset=[0, 0], size=[128, 64])
    b = ct.load_tile(B, offset=[0, 0], size=[32, 64])
    ct.store_tile(C, offset=[0, 0], tile=ct.matmul(a, b.T, acc))


@pytest.mark.parametrize("fa,fb", [("e2m1", "e2m3"), ("e3m2", "e4m3")])
def test_sim_nonzero_accumulator_outside_a_loop(fa, fb):
    """A register accumulator that is not zero goes registers -> smem -> TMEM (tcgen05.st) first."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((120, 50)).astype(NP[fa])          # ragged: the loads pad with zeros
    b = rng.standard_normal((30, 50)).astype(NP[fb])
    args = [_arg(a), _arg(b), np.full((120, 30), np.nan, np.float32)]
    ptx = _gpu(_one_shot, args)[0].ptx
    assert OPCODE in ptx and "tcgen05.st.sync.aligned" in ptx
    sim, cpu = _run(_one_shot, args, (1,))
    _check(sim - 0.5, cpu - 0.5, a.astype(np.float64) @ b.T.astype(np.float64))


# ---------------------------------------------------------------------------- the padded layout


@pytest.mark.parametrize("fmt", ["e2m1", "e2m3", "e3m2"])
def test_simulator_reads_only_the_padded_layout(fmt):
    """The simulator decodes 16 values from the first 8 / 12 bytes of every 16 and ignores the
    padding (poisoned here); the same values laid out densely decode to something else."""
    from tilec.backends.sim.isa_tcgen05 import padded_values

    rng = np.random.default_rng(2)
    x = (rng.standard_normal((8, 64)) * 2).astype(NP[fmt])
    img = fp6.align16(x)
    bits = 4 if fmt == "e2m1" else 6
    pad = np.zeros(16, bool)
    pad[2 * bits:] = True
    img[:, np.tile(pad, 4)] = 0xFF
    np.testing.assert_array_equal(padded_values(img, fmt), x.astype(np.float64))
    dense = fp4.pack(x) if fmt == "e2m1" else fp6.pack(x)
    dense = np.concatenate([dense, np.zeros((8, 64 - dense.shape[1]), np.uint8)], axis=1)
    assert not np.array_equal(padded_values(dense, fmt), x.astype(np.float64))


# ---------------------------------------------------------------------------- what is refused


def _compile_error(kernel, args, target):
    specs, _ = kernel.bind(tuple(args))
    with pytest.raises(ct.CompileError) as e:
        compile_kernel(kernel, specs, target, CompileOptions())
    return str(e.value)


@pytest.mark.parametrize("target", ["sm_90a", "sm_80"])
def test_fp6_matmul_elsewhere_is_a_clear_error(target):
    kernel, args, _, _ = _case("e2m3", "e2m3", 128, 64, 64, 128, 64, 64, False)
    msg = _compile_error(kernel, args, target)
    assert target in msg and ("float6_e2m3fn" in msg or "f6E2M3FN" in msg)


def test_subbyte_matmul_that_tcgen05_cannot_take_names_the_reason():
    kernel, args, _, _ = _case("e2m1", "e2m1", 128, 64, 64, 32, 64, 64, False)    # BM = 32
    msg = _compile_error(kernel, args, "sm_100a")
    assert "sm_100a" in msg and "f4E2M1FN" in msg and "kind::f8f6f4" in msg and "M % 64" in msg


def test_mixed_subbyte_pair_tcgen05_cannot_take_names_the_reason_not_the_cast():
    """e2m1 x e5m2 reaches the matmul through the front end's promoting casts; the error is
    still about the matmul (BN = 512 is over tcgen05's N <= 256), not about a cast."""
    kernel, args, _, _ = _case("e2m1", "e5m2", 128, 512, 64, 128, 512, 32, False)
    msg = _compile_error(kernel, args, "sm_100a")
    assert "`tile.matmul`" in msg and "kind::f8f6f4" in msg and "tile.cast" not in msg


# ---------------------------------------------------------------------------- TMA ALIGN16B types


@pytest.mark.parametrize("dtype,fmt", [("CU_TENSOR_MAP_DATA_TYPE_16U4_ALIGN16B", "e2m1"),
                                       ("CU_TENSOR_MAP_DATA_TYPE_16U6_ALIGN16B", "e3m2"),
                                       ("16U6_ALIGN16B", "e2m3")])
def test_sim_tensormap_expands_packed_rows_to_16_byte_groups(dtype, fmt):
    """The simulator's TMA with the 16U4 / 16U6 ALIGN16B data types reads packed rows from global
    memory and writes each 16 elements to their own 16 bytes of shared memory (the layout the
    MMA reads), padding poisoned, elements outside the tensor 0."""
    from tilec.backends.sim.tensormap import SimTensorMap

    rng = np.random.default_rng(4)
    x = (rng.standard_normal((10, 256)) * 2).astype(NP[fmt])   # driver rules: globalDim[0] % 128 == 0,
    packed = fp4.pack(x) if fmt == "e2m1" else fp6.pack(x)    # strides % 32 B, boxDim[0] == 128
    stride = -(-packed.shape[1] // 32) * 32
    g = np.zeros((10, stride), np.uint8)
    g[:, :packed.shape[1]] = packed
    tm = SimTensorMap.from_cuda_args(g, dtype, (256, 10), (stride,), (128, 4), 128)
    assert tm.box_bytes == 4 * 128                             # 16 elements -> 16 bytes of smem
    bits = 4 if fmt == "e2m1" else 6
    assert tm.tx_bytes == 4 * 128 * bits // 8                  # the mbarrier counts the bytes TMA reads
    box = tm.load_box((192, 8)).reshape(4, 128)                # columns 192..319 (256.. outside), rows 8..11
    want = np.zeros((4, 128), NP[fmt])
    want[:2, :64] = x[8:10, 192:256]
    data = np.tile(np.arange(16) < 2 * bits, 8)
    np.testing.assert_array_equal(box[:, data], fp6.align16(want)[:, data])
    assert (box[:, ~data] == 0xFF).all()
    from tilec.backends.sim.isa_tcgen05 import padded_values
    np.testing.assert_array_equal(padded_values(box, fmt), want.astype(np.float64))


@pytest.mark.parametrize("change,msg", [({"dims": (200, 10)}, "globalDim\\[0\\] must be a multiple of 128"),
                                        ({"strides": (144,)}, "multiples of 32 bytes"),
                                        ({"box": (64, 4)}, "boxDim\\[0\\] must be 128"),
                                        ({"swizzle": 64}, "swizzle")])
def test_sim_tensormap_keeps_the_driver_rules_of_packed_types(change, msg):
    """cuTensorMapEncodeTiled's extra rules for 16U4 / 16U6 ALIGN16B hold in the simulator too."""
    from tilec.backends.sim.tensormap import SimTensorMap

    kw = {"dims": (256, 10), "strides": (160,), "box": (128, 4), "swizzle": 128, **change}
    with pytest.raises(ValueError, match=msg):
        SimTensorMap.from_cuda_args(np.zeros((10, 160), np.uint8), "16U4_ALIGN16B", kw["dims"], kw["strides"],
                                    kw["box"], kw["swizzle"])


def test_switch_off_names_the_switch(monkeypatch):
    monkeypatch.setenv("TILEC_PTX_TCGEN05_FP8", "0")
    kernel, args, _, _ = _case("e2m3", "e2m3", 128, 64, 64, 128, 64, 64, True)
    msg = _compile_error(kernel, args, "sm_100a")
    assert "TILEC_PTX_TCGEN05_FP8=0" in msg and "f6E2M3FN" in msg


def test_unpacked_fp4_array_is_refused_on_a_simulated_target(monkeypatch):
    """A one-code-per-byte fp4 array would be read as packed (silently wrong): a clear error."""
    monkeypatch.setenv("TILEC_TARGET", "sim:sm_100a")
    kernel, args, grid, _ = _case("e2m1", "e2m1", 128, 64, 64, 128, 64, 32, False)
    args[0] = np.ones((128, 64), NP["e2m1"])
    with pytest.raises(ct.LaunchError, match="unpacked float4_e2m1fn.*fp4_tensor"):
        kernel[grid](*args)
