"""tilec.nn.quantize_fp4 and tilec.nn.FP4Linear: CPU backend, the PTX simulator (sm_90a /
sm_80, the W4A16 lowering) and, marked `gpu`, the GPU.

References are independent: `tilec.fp4.quantize` (numpy + ml_dtypes) for the quantizer, and
float64 products with the weights decoded by `tilec.fp4.dequantize` for the layer.
"""

import ml_dtypes
import numpy as np
import pytest

import tilec as ct
from tilec import fp4

torch = pytest.importorskip("torch")

from tilec.nn import FP4Linear, quantize_fp4  # noqa: E402
from tilec.nn.linear import plan, w4a16_splitk_kernel  # noqa: E402
from gpu_support import needs_fp8_conversions, torch_cuda_ready as _gpu_ready

FORMATS = {"mx": (32, ml_dtypes.float8_e8m0fnu), "nv": (16, ml_dtypes.float8_e4m3fn)}


def with_outliers(rng, shape, n=4, scale=1.0):
    x = rng.standard_normal(shape).astype(np.float32) * scale
    x.flat[rng.integers(0, x.size, n)] = rng.choice([-1, 1], n) * rng.uniform(20, 60, n) * scale
    return x


def host_scales(t, fmt):
    return t.cpu().view(torch.uint8).numpy().view(FORMATS[fmt][1]) if isinstance(t, torch.Tensor) else t


@pytest.mark.parametrize("fmt", ["mx", "nv"])
@pytest.mark.parametrize("kind", ["numpy", "torch", "bf16"])
def test_quantize_fp4_matches_host_reference(fmt, kind):
    rng = np.random.default_rng(0)
    x = with_outliers(rng, (3, 13, 256))
    if kind == "bf16":
        x = x.astype(ml_dtypes.bfloat16).astype(np.float32)
        arg = torch.from_numpy(x).to(torch.bfloat16)
    else:
        arg = torch.from_numpy(x) if kind == "torch" else x
    packed, scales, g = quantize_fp4(arg, fmt)
    block, sdt = FORMATS[fmt]
    ref_q, ref_s = fp4.quantize(x, block, sdt, global_scale=g)
    assert tuple(packed.shape) == (3, 13, 128) and tuple(scales.shape) == (3, 13, 256 // block)
    assert np.array_equal(np.asarray(packed), ref_q)
    assert np.array_equal(host_scales(scales, fmt).view(np.uint8), ref_s.view(np.uint8))
    if fmt == "nv":
        assert g == pytest.approx(float(np.abs(x).max()) / (6 * 448), rel=1e-6)
    else:
        assert g is None


def test_quantize_fp4_rejects_ragged_blocks():
    with pytest.raises(ValueError, match="multiple of 32"):
        quantize_fp4(np.zeros((4, 40), np.float32), "mx")
    with pytest.raises(ValueError, match="'mx'"):
        quantize_fp4(np.zeros((4, 64), np.float32), "int4")


def test_quantize_fp4_rejects_a_global_scale_that_zeroes_or_poisons_the_tensor():
    """NV's per-tensor scale multiplies every value: 0 (or one that underflows float32), NaN or
    inf (an inf in the input makes amax inf) would turn the whole tensor into zeros / NaN."""
    x = np.ones((2, 32), np.float32)
    for g in (0.0, -1.0, 1e-60, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="global_scale"):
            quantize_fp4(x, "nv", global_scale=g)
    x[0, 0] = np.inf
    with pytest.raises(ValueError, match="global_scale"):
        quantize_fp4(x, "nv")
    assert quantize_fp4(np.zeros((2, 32), np.float32), "nv").global_scale == 1.0     # all zeros: 1.0


def reference(layer, x):
    y = x.double().cpu().numpy() @ layer.dequantized_weight().T
    if layer.bias is not None:
        y = y + layer.bias.detach().double().cpu().numpy()
    return y


def rel_err(y, ref):
    return float(np.max(np.abs(y.double().numpy() - ref)) / np.max(np.abs(ref)))


def make_layer(k, n, bias, fmt, seed=0):
    torch.manual_seed(seed)
    lin = torch.nn.Linear(k, n, bias=bias)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(with_outliers(np.random.default_rng(seed), (n, k), scale=0.05)))
    return lin, FP4Linear.from_float(lin, fmt)


TOL = {torch.float16: 2e-3, torch.bfloat16: 8e-3}   # the output's rounding (f32 accumulation)


@pytest.mark.parametrize("target", ["cpu", "sim:sm_90a", "sim:sm_80", "sim:sm_100a"])
@pytest.mark.parametrize("shape,fmt,dtype,bias", [
    ((1, 512), "mx", torch.float16, True),
    ((2, 3, 256), "nv", torch.bfloat16, False),     # leading dims flattened
    ((40, 256), "mx", torch.bfloat16, True),        # the 32-token tiles
])
def test_fp4_linear_host(monkeypatch, target, shape, fmt, dtype, bias):
    lin, layer = make_layer(shape[-1], 96, bias, fmt)    # quantized on the CPU backend
    if target != "cpu":
        monkeypatch.setenv("TILEC_TARGET", target)
    x = torch.randn(*shape).to(dtype)
    y = layer(x)
    assert y.dtype == dtype and tuple(y.shape) == (*shape[:-1], 96)
    ref = reference(layer, x.reshape(-1, shape[-1])).reshape(*shape[:-1], 96)
    assert rel_err(y, ref) < TOL[dtype]
    # and the quantized layer is close to the fp32 one (FP4's own error, not the kernel's)
    exact = x.double().numpy() @ lin.weight.detach().double().numpy().T
    assert rel_err(y - (layer.bias if bias else 0), exact) < 0.25


def test_fp4_linear_numpy_and_empty_batches():
    lin, layer = make_layer(256, 64, True, "mx")
    x = np.random.default_rng(7).standard_normal((3, 256)).astype(ml_dtypes.bfloat16)
    y = layer(x)
    assert isinstance(y, np.ndarray) and y.dtype == x.dtype and y.shape == (3, 64)
    ref = x.astype(np.float64) @ layer.dequantized_weight().T + layer.bias.detach().double().numpy()
    assert float(np.max(np.abs(y.astype(np.float64) - ref)) / np.max(np.abs(ref))) < TOL[torch.bfloat16]
    assert layer(torch.zeros(0, 5, 256, dtype=torch.float16)).shape == (0, 5, 64)
    assert layer(np.zeros((0, 256), np.float16)).shape == (0, 64)


def test_fp4_linear_from_float_and_errors():
    lin, layer = make_layer(256, 32, True, "nv")
    assert layer.weight_packed.shape == (32, 128) and layer.weight_scale.dtype == torch.float8_e4m3fn
    assert layer.global_scale > 0 and "scale='nv'" in repr(layer)
    fresh = FP4Linear(256, 32, True, "nv")
    fresh.load_state_dict(layer.state_dict())          # packed weights, scales, bias, global scale
    x = torch.randn(3, 256).to(torch.float16)
    assert torch.equal(fresh(x), layer(x))
    with pytest.raises(ValueError, match=r"inputs \[\.\.\., 256\]"):
        layer(torch.zeros(2, 128, dtype=torch.float16))
    with pytest.raises(TypeError, match="float16 or bfloat16"):
        layer(torch.zeros(2, 256))
    with pytest.raises(ValueError, match="multiple of 128"):
        FP4Linear(100, 8)


def test_prepared_calls_are_not_state():
    """The per-shape CUDA closures (`_hot`) stay out of the pickled state and of copies (rebuilt
    on demand; this torch cannot pickle float8 tensors, so the state itself is checked)."""
    import copy

    _, layer = make_layer(256, 64, True, "mx")
    layer.__dict__["_hot"] = {("shape",): lambda me, x: None}
    assert "_hot" not in layer.__getstate__()
    clone = copy.deepcopy(layer)
    assert "_hot" not in clone.__dict__
    x = torch.randn(2, 256).half()
    assert torch.equal(clone(x), layer(x))
    layer.float()                                        # _apply (.to / .cuda / dtype casts) drops them too
    assert "_hot" not in layer.__dict__


def test_plan_splits_k_only_for_small_grids():
    assert plan(1, 8192, 8192) == (8, 1)           # 128 CTAs already
    assert plan(16, 1024, 4096) == (16, 8)         # 16 CTAs -> 128
    assert plan(64, 1024, 4096)[1] == 1            # prefill never splits


@pytest.mark.parametrize("target", ["sim:sm_90a", "sim:sm_80"])
def test_split_k_atomic_add(monkeypatch, target):
    """The decode kernel's split-K variant: red.global.add of the K slices' partial sums."""
    import tilec as ct

    monkeypatch.setenv("TILEC_TARGET", target)
    rng = np.random.default_rng(3)
    m, n, k = 3, 64, 1024
    x = rng.standard_normal((m, k)).astype(np.float16)
    q, s = fp4.quantize(with_outliers(rng, (n, k)), 32, ml_dtypes.float8_e8m0fnu)
    y = np.zeros((m, n), np.float32)
    w4a16_splitk_kernel[(1, 1, 2)](x, ct.fp4_tensor(q, (n, k)), s, y, 0.5, 8, 64, 256, 32, 2)
    ref = x.astype(np.float64) @ fp4.dequantize(q, s, 32).astype(np.float64).T * 0.5
    assert float(np.max(np.abs(y - ref)) / np.max(np.abs(ref))) < 2e-6


# ------------------------------------------------------------------------------------ GPU


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_ready(), reason="needs an NVIDIA GPU with a CUDA driver")
@pytest.mark.parametrize("m,n,k,fmt,dtype,bias", [
    (1, 8192, 1024, "mx", torch.float16, False),    # decode, no split
    (16, 512, 2048, "nv", torch.float16, True),     # decode, split-K + atomics
    (5, 1024, 1024, "mx", torch.bfloat16, True),    # ragged tokens, split-K
    (77, 320, 512, "nv", torch.bfloat16, False),    # 32-token tiles, ragged N
])
def test_fp4_linear_cuda(m, n, k, fmt, dtype, bias):
    lin, layer = make_layer(k, n, bias, fmt)
    layer = layer.cuda()
    for i in range(3):     # later calls take the JIT's generated fast launch function (FP4Tensor included)
        x = torch.randn(m, k).to(dtype)
        y = layer(x.cuda())
        assert y.dtype == dtype and y.is_cuda
        assert rel_err(y.cpu(), reference(layer, x)) < TOL[dtype]
    from tilec.nn import linear as L

    bm, split = L.plan(m, n, k)
    kern, grid = (L.w4a16_kernel, (ct.cdiv(m, bm), ct.cdiv(n, L.BN))) if split == 1 else \
        (L.w4a16_splitk_kernel, (ct.cdiv(m, bm), ct.cdiv(n, L.BN), split))
    opts = dict(L.launch_options(m), launch_pdl=True)      # steady-state calls: programmatic dependent launch
    fast = kern[grid]._with_options(opts)._fast
    assert fast is not None and "a1.packed" in fast[3].source


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_ready(), reason="needs an NVIDIA GPU with a CUDA driver")
@pytest.mark.parametrize("shape,n,bias", [((2, 1, 1024), 8192, True), ((3, 512), 256, False)])
def test_fp4_linear_cuda_steady_state_follows_the_module(shape, n, bias):
    """The prepared per-shape closure (`_hot`) serves repeated calls (no split and split-K), and
    gives way to the general path when the weights are replaced or the input is not contiguous."""
    k = shape[-1]
    _, layer = make_layer(k, n, bias, "mx", seed=3)
    layer = layer.cuda()
    x = torch.randn(*shape).half()
    for _ in range(3):
        y = layer(x.cuda())
        assert y.shape == (*shape[:-1], n) and rel_err(y.cpu().reshape(-1, n), reference(layer, x.reshape(-1, k))) \
            < TOL[torch.float16]
    assert len(layer._hot) == 1
    _, other = make_layer(k, n, bias, "mx", seed=4)
    layer.weight_packed = other.weight_packed.cuda()          # a new tensor: the closure must notice
    layer.weight_scale = other.weight_scale.cuda()
    y = layer(x.cuda())
    assert rel_err(y.cpu().reshape(-1, n), reference(layer, x.reshape(-1, k))) < TOL[torch.float16]
    y = layer(x.cuda())                                       # the closure of the new weights
    _, third = make_layer(k, n, bias, "mx", seed=5)
    with torch.no_grad():                                     # modified in place: the version counters
        layer.weight_packed.copy_(third.weight_packed.cuda())  # send the call to the general launch
        layer.weight_scale.copy_(third.weight_scale.cuda())
    y = layer(x.cuda())
    assert rel_err(y.cpu().reshape(-1, n), reference(layer, x.reshape(-1, k))) < TOL[torch.float16]
    xt = torch.randn(k, shape[0]).half().cuda().T             # not contiguous
    if len(shape) == 2:
        assert rel_err(layer(xt).cpu(), reference(layer, xt.cpu())) < TOL[torch.float16]


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_ready(), reason="needs an NVIDIA GPU with a CUDA driver")
@pytest.mark.parametrize("fmt", ["mx", "nv"])
def test_quantize_fp4_cuda(fmt):
    x = with_outliers(np.random.default_rng(5), (64, 512))
    with needs_fp8_conversions(fmt == "nv"):
        packed, scales, g = quantize_fp4(torch.from_numpy(x).cuda(), fmt)
    block, sdt = FORMATS[fmt]
    ref_q, ref_s = fp4.quantize(x, block, sdt, global_scale=g)
    assert packed.is_cuda and np.array_equal(packed.cpu().numpy(), ref_q)
    assert np.array_equal(host_scales(scales, fmt).view(np.uint8), ref_s.view(np.uint8))
