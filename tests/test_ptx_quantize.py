"""`tile.quantize` / `tile.dequantize` and packed fp4 / ue8m0 loads and stores on the PTX path
(backends/ptx/lower_quantize.py, fp4_memory.py, fp4_codes.py): run in the PTX simulator for
sm_80, sm_90a and sm_100a (software e2m1 conversions on the first two, `cvt ... e2m1x2` on
sm_100a), assembled by ptxas, and on the GPU when there is one.

The reference is the host `tilec.fp4` (MX / NV rules, itself checked against brute-force
rounding in tests/test_fp4.py), bit for bit; one case checks every e2m1 rounding threshold
against hand-derived codes.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import tilec as ct
from tilec import fp4
from tilec.driver import CompileOptions, compile_kernel
from test_ptx_compile import needs_ptxas
from gpu_support import needs_fp8_conversions, torch_cuda_ready as _gpu_ready

F4, E8M0, E4M3 = ml_dtypes.float4_e2m1fn, ml_dtypes.float8_e8m0fnu, ml_dtypes.float8_e4m3fn
SIM = ["sim:sm_80", "sim:sm_90a", "sim:sm_100a"]
FMTS = {"mx": (32, E8M0), "nv": (16, E4M3)}


@ct.kernel
def quant(X: ct.Tensor, Q: ct.Tensor, S: ct.Tensor, M: ct.Constant[int], K: ct.Constant[int],
          B: ct.Constant[int], NV: ct.Constant[bool]):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[i * M, 0], size=[M, K])
    if NV:
        q, s = ct.quantize(x, block=B, scale_dtype=ct.float8_e4m3fn)
    else:
        q, s = ct.quantize(x, block=B, scale_dtype=ct.float8_e8m0fnu)
    ct.store_tile(Q, offset=[i * M, 0], tile=q)
    ct.store_tile(S, offset=[i * M, 0], tile=s)


@ct.kernel
def dequant(Q: ct.Tensor, S: ct.Tensor, Y: ct.Tensor, M: ct.Constant[int], K: ct.Constant[int],
            B: ct.Constant[int]):
    i = ct.tile_idx(0)
    q = ct.load_tile(Q, offset=[i * M, 0], size=[M, K])
    s = ct.load_tile(S, offset=[i * M, 0], size=[M, K // B], padding=1.0)
    ct.store_tile(Y, offset=[i * M, 0], tile=ct.dequantize(q, s, block=B, dtype=Y.dtype))


@ct.kernel
def copy_fp4(X: ct.Tensor, Y: ct.Tensor, M: ct.Constant[int], N: ct.Constant[int], PAD: ct.Constant[float]):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    t = ct.load_tile(X, offset=[i * M, j * N], size=[M, N], padding=PAD)
    ct.store_tile(Y, offset=[i * M, j * N], tile=t)


def data(rng, m, k, block):
    """Blocks of very different magnitudes, a zero block, ties and subnormals."""
    x = rng.standard_normal((m, k)) * np.exp2(rng.integers(-20, 20, (m, k // block))).repeat(block, 1)
    x = x.astype(np.float32)
    x[0, :block] = 0.0
    if m > 1:
        x[1, :block] = np.float32(6.0) * np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -6.0] * (block // 8)) / 6
    if m > 2:
        x[2, :block] = np.float32(2.0 ** -140)      # subnormal amax
    return x


def run_target(monkeypatch, target, fn):
    monkeypatch.setenv("TILEC_TARGET", target)
    import tilec.backends.sim.launch as sim_launch

    calls = []
    real = sim_launch.run_ptx_kernel
    monkeypatch.setattr(sim_launch, "run_ptx_kernel", lambda k, v, g: (calls.append(k.target), real(k, v, g))[1])
    out = fn()
    assert calls and set(calls) == {target.removeprefix("sim:")}   # it really ran in the simulator
    return out


def quantize_on(m, k, block, sd, x, grid_rows):
    q = ct.fp4_tensor(np.zeros((x.shape[0], k // 2), np.uint8), x.shape)
    s = np.zeros((x.shape[0], k // block), sd)
    quant[(x.shape[0] // grid_rows,)](x, q, s, grid_rows, k, block, sd is E4M3)
    return q.packed, s


@pytest.mark.parametrize("target", SIM)
@pytest.mark.parametrize("fmt", ["mx", "nv"])
@pytest.mark.parametrize("shape", [(8, 64), (3, 96), (32, 128)])
def test_quantize_matches_host_reference(monkeypatch, target, fmt, shape):
    block, sd = FMTS[fmt]
    m, k = shape
    x = data(np.random.default_rng(m * k), 2 * m, k, block)
    ref_q, ref_s = fp4.quantize(x, block, sd)
    if fmt == "nv" and target == "sim:sm_80":
        with pytest.raises(ct.CompileError, match="float8_e4m3fn scales.*sm_80"):
            run_target(monkeypatch, target, lambda: quantize_on(m, k, block, sd, x, m))
        return
    q, s = run_target(monkeypatch, target, lambda: quantize_on(m, k, block, sd, x, m))
    np.testing.assert_array_equal(s.view(np.uint8), ref_s.view(np.uint8))
    np.testing.assert_array_equal(q, ref_q)


def test_rounding_thresholds_hand_derived(monkeypatch):
    """amax 6 gives the MX scale 2^(floor(log2 6) - 2) = 1, so the codes are the values' own:
    ties go to the even code (0.25 -> 0, 0.75 -> 1.0, 1.25 -> 1.0, 1.75 -> 2, 2.5 -> 2,
    3.5 -> 4, 5 -> 4), above 6 saturates."""
    vals = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.0, -0.26, -0.74, -1.3, 5.1, -5.0, 0.0, -0.0, 0.1]
    codes = [0x0, 0x2, 0x2, 0x4, 0x4, 0x6, 0x6, 0x7, 0x9, 0x9, 0xB, 0x7, 0xE, 0x0, 0x8, 0x0]
    x = np.array([vals * 2] * 4, np.float32)
    x[:, 16] = 6.0                                       # amax 6 in the second block too
    for target in SIM:
        q, s = run_target(monkeypatch, target, lambda: quantize_on(4, 32, 32, E8M0, x, 4))
        assert (s.view(np.uint8) == 127).all()           # scale 2^0
        want = np.array(codes * 2, np.uint8)
        want[16] = 0x7
        got = np.stack([q[0] & 0xF, q[0] >> 4], 1).reshape(-1)
        np.testing.assert_array_equal(got, want, err_msg=target)


@pytest.mark.parametrize("target", SIM)
@pytest.mark.parametrize("fmt", ["mx", "nv"])
@pytest.mark.parametrize("out", [np.float32, np.float16])
def test_dequantize_matches_host_reference(monkeypatch, target, fmt, out):
    block, sd = FMTS[fmt]
    m, k = 8, 64
    rng = np.random.default_rng(1)
    packed = rng.integers(0, 256, (2 * m, k // 2), dtype=np.uint8)
    codes = rng.integers(100, 140, (2 * m, k // block)) if fmt == "mx" else rng.integers(1, 0x7F, (2 * m, k // block))
    scales = codes.astype(np.uint8).view(sd)
    ref = fp4.dequantize(packed, scales, block).astype(out)
    if fmt == "nv" and target == "sim:sm_80":
        return   # e4m3 loads need sm_90 (fp8 conversions)
    y = np.full((2 * m, k), np.nan, out)
    run_target(monkeypatch, target, lambda: dequant[(2,)](ct.fp4_tensor(packed, (2 * m, k)), scales, y, m, k, block))
    np.testing.assert_array_equal(y, ref)


@pytest.mark.parametrize("target", SIM)
def test_ragged_fp4_loads_and_stores(monkeypatch, target):
    """An fp4 tensor with an odd logical width: out-of-bounds elements read the padding, the
    last byte's high nibble is stored as 0, nothing outside the tensor is written."""
    rng = np.random.default_rng(2)
    vals = rng.choice(np.arange(16, dtype=np.uint8), (5, 37)).view(F4)
    src = ct.fp4_tensor(fp4.pack(vals), (5, 37))
    for pad in (0.0, 1.5):
        dst = ct.fp4_tensor(np.full((5, 19), 0x77, np.uint8), (5, 37))
        run_target(monkeypatch, target, lambda: copy_fp4[(2, 2)](src, dst, 4, 20, pad))
        np.testing.assert_array_equal(dst.packed, fp4.pack(vals))


@pytest.mark.parametrize("target", SIM)
def test_e8m0_padding_and_nan(monkeypatch, target):
    """ue8m0 scale loads: code 0 is 2^-127, 255 NaN, out of bounds the padding (1.0 here)."""
    packed = np.full((4, 16), 0x22, np.uint8)     # every value 1.0
    codes = np.array([[0, 127, 255, 200]] * 3, np.uint8)
    y = np.zeros((4, 32), np.float32)
    q = ct.fp4_tensor(packed, (4, 32))
    run_target(monkeypatch, target, lambda: dequant[(1,)](q, codes.view(E8M0), y, 4, 32, 8))
    want = np.ones((4, 32), np.float32)
    want[:3] = np.repeat(np.array([2.0 ** -127, 1.0, np.nan, 2.0 ** 73], np.float32), 8)
    np.testing.assert_array_equal(y, want)


def _ptx(kernel, args, target):
    specs, _ = kernel.bind(args)
    return compile_kernel(kernel, specs, target, CompileOptions()).gpu.ptx


@needs_ptxas
@pytest.mark.parametrize("target", ["sm_80", "sm_90a", "sm_100a"])
def test_assembles(target):
    from tilec.backends.ptx.ptxas import assemble

    x = np.zeros((64, 64), np.float32)
    q = ct.fp4_tensor(np.zeros((64, 32), np.uint8), (64, 64))
    for fmt in (("mx",) if target == "sm_80" else ("mx", "nv")):
        block, sd = FMTS[fmt]
        s = np.zeros((64, 64 // block), sd)
        for kernel, args in ((quant, (x, q, s, 64, 64, block, fmt == "nv")), (dequant, (q, s, x, 64, 64, block))):
            ptx = _ptx(kernel, args, target)
            assemble(ptx, target)
            hw = "e2m1x2" in ptx
            assert hw == (target == "sm_100a"), (target, kernel.name)


# ----------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_ready(), reason="needs an NVIDIA GPU with torch CUDA")
@pytest.mark.parametrize("fmt", ["mx", "nv"])
def test_gpu_quantize_dequantize(fmt):
    import torch

    block, sd = FMTS[fmt]
    m, k = 256, 128
    x = data(np.random.default_rng(3), m, k, block)
    ref_q, ref_s = fp4.quantize(x, block, sd)
    tsd = torch.float8_e8m0fnu if fmt == "mx" else torch.float8_e4m3fn
    q = torch.zeros((m, k // 2), dtype=torch.uint8, device="cuda")
    s = torch.zeros((m, k // block), dtype=tsd, device="cuda")
    with needs_fp8_conversions(fmt == "nv"):
        quant[(m // 64,)](torch.from_numpy(x).cuda(), ct.fp4_tensor(q, (m, k)), s, 64, k, block, fmt == "nv")
    np.testing.assert_array_equal(q.cpu().numpy(), ref_q)
    np.testing.assert_array_equal(s.view(torch.uint8).cpu().numpy(), ref_s.view(np.uint8))
    y = torch.full((m, k), float("nan"), dtype=torch.float32, device="cuda")
    dequant[(m // 64,)](ct.fp4_tensor(q, (m, k)), s, y, 64, k, block)
    np.testing.assert_array_equal(y.cpu().numpy(), fp4.dequantize(ref_q, ref_s, block))


def test_fp4_store_of_a_tile_without_4_element_chunks_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TILEC_TARGET", "sim:sm_90a")
    x = ct.fp4_tensor(np.zeros((1, 3), np.uint8), (1, 6))
    y = ct.fp4_tensor(np.zeros((1, 3), np.uint8), (1, 6))
    with pytest.raises(ct.CompileError, match=r"`tile\.store` with `f4E2M1FN` operands is not implemented for "
                                              r"`sm_90a` \(an fp4 tile store needs .* a multiple of 4 elements\)"):
        copy_fp4[(1, 1)](x, y, 1, 6, 0.0)


@ct.kernel
def widen(X: ct.Tensor, Y: ct.Tensor, M: ct.Constant[int], N: ct.Constant[int]):
    t = ct.load_tile(X, offset=[0, 0], size=[M, N], padding=-3.0)
    ct.store_tile(Y, offset=[0, 0], tile=ct.dequantize(t, ct.full([M, N // 2], 1.0, ct.float8_e8m0fnu), block=2))


@pytest.mark.parametrize("target", SIM)
def test_fp4_loads_of_odd_sized_tiles(monkeypatch, target):
    """A [3, 6] tile (18 elements: 1-element chunks, one byte per element) and a [3, 8] one
    over a [2, 5] fp4 tensor: values, the padding outside (-3), and the odd row's last nibble."""
    vals = np.arange(10, dtype=np.uint8).reshape(2, 5).view(F4)
    x = ct.fp4_tensor(fp4.pack(vals), (2, 5))
    for n in (6, 8):
        y = np.full((3, n), np.nan, np.float32)
        run_target(monkeypatch, target, lambda: widen[(1,)](x, y, 3, n))
        want = np.full((3, n), -3.0, np.float32)
        want[:2, :5] = vals.astype(np.float32)
        np.testing.assert_array_equal(y, want)
