"""Every example, and the kernel zoo of `ptx_kernels.py`, on a real GPU with torch CUDA
tensors: fresh random inputs, outputs poisoned with NaN, ragged shapes, compared with
numpy float64 (examples) or with the CPU interpreter (zoo).  Skipped without a GPU."""

from __future__ import annotations

import numpy as np
import pytest

import ptx_kernels as K
from gpu_support import torch_cuda_ready as _gpu_ready

pytestmark = pytest.mark.gpu
torch = pytest.importorskip("torch")


if not _gpu_ready():
    pytest.skip("needs an NVIDIA GPU with a CUDA driver", allow_module_level=True)


def cuda(a):
    return K.to_torch(a)


def host(t, like=None):
    return K.from_torch(t, like) if like is not None else t.cpu().numpy()


def poisoned(shape, dtype=torch.float32):
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return torch.full(shape, float("nan"), dtype=dtype, device="cuda")


# ---------------------------------------------------------------------------- examples


def test_vector_add(example):
    mod = example("vector_add")
    rng = np.random.default_rng()
    for n in (1, 1023, 1_000_003):
        x, y = (rng.standard_normal(n, dtype=np.float32) for _ in range(2))
        z = poisoned(n)
        mod.add(cuda(x), cuda(y), z)
        assert np.max(np.abs(host(z) - mod.reference(x, y))) < 1e-6


def test_vector_add_past_2_31_elements(example):
    """A 1-D int8 tensor of 2^31 + 1000 elements: offsets wrap i32 but address right."""
    mod = example("vector_add")
    n = 2 ** 31 + 1000
    x = torch.randint(-128, 128, (n,), dtype=torch.int8, device="cuda")
    y = torch.randint(-128, 128, (n,), dtype=torch.int8, device="cuda")
    z = torch.full((n,), 77, dtype=torch.int8, device="cuda")
    mod.add(x, y, z)
    torch.cuda.synchronize()
    expect = x + y  # int8 wraps, as in the kernel
    assert torch.equal(z[-5000:], expect[-5000:])
    assert torch.equal(z[2 ** 31 - 3000: 2 ** 31 + 3000], expect[2 ** 31 - 3000: 2 ** 31 + 3000])
    assert bool((z == expect).all())
    del x, y, z, expect
    torch.cuda.empty_cache()


def test_fused_elementwise(example):
    mod = example("fused_elementwise")
    rng = np.random.default_rng()
    for m, n in ((300, 500), (33, 70)):
        x = rng.standard_normal((m, n)).astype(np.float16)
        b = rng.standard_normal(n).astype(np.float16)
        y = poisoned((m, n), torch.float16)
        mod.launch(cuda(x), cuda(b), y, 0.75)
        assert np.max(np.abs(host(y).astype(np.float64) - mod.reference(x, b, 0.75))) < 1e-2


@pytest.mark.parametrize("dtype", [np.float16, K.BF16, np.float32])
@pytest.mark.parametrize("shape", [(200, 136, 100), (131, 70, 77), (64, 64, 32)])
def test_matmul(example, dtype, shape):
    mod = example("matmul")
    rng = np.random.default_rng()
    m, n, k = shape
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    c = poisoned((m, n))
    mod.matmul(cuda(a), cuda(b), c)
    ref = mod.reference(a, b)
    assert np.max(np.abs(host(c) - ref)) / np.max(np.abs(ref)) < 1e-5


def test_softmax(example):
    mod = example("softmax")
    rng = np.random.default_rng()
    for m, n in ((123, 781), (5, 64)):
        x = (rng.standard_normal((m, n)) * 3).astype(np.float16)
        y = poisoned((m, n), torch.float16)
        mod.softmax(cuda(x), y)
        assert np.max(np.abs(host(y).astype(np.float64) - mod.reference(x))) < 1e-3


def test_layernorm(example):
    mod = example("layernorm")
    rng = np.random.default_rng()
    m, n = 77, 300
    x = (rng.standard_normal((m, n)) * 2 + 1).astype(np.float32)
    w, b = (rng.standard_normal(n).astype(np.float32) for _ in range(2))
    y = poisoned((m, n))
    mod.layernorm(cuda(x), cuda(w), cuda(b), y)
    assert np.max(np.abs(host(y) - mod.reference(x, w, b))) < 1e-4


def test_matmul_relu_dropout(example):
    mod = example("matmul_relu_dropout")
    rng = np.random.default_rng()
    m, n, k, p, seed = 100, 70, 90, 0.25, int(rng.integers(0, 2 ** 31))
    a = rng.standard_normal((m, k)).astype(np.float16)
    b = rng.standard_normal((k, n)).astype(np.float16)
    y = poisoned((m, n))
    mod.launch(cuda(a), cuda(b), y, 0.5, p, seed)
    assert np.max(np.abs(host(y) - mod.reference(a, b, 0.5, p, seed))) < 1e-3


@pytest.mark.parametrize("causal", [False, True])
def test_flash_attention(example, causal):
    mod = example("flash_attention")
    rng = np.random.default_rng()
    q, k, v = (rng.standard_normal((2, 3, 150, 32)).astype(np.float16) for _ in range(3))
    o = poisoned(q.shape, torch.float16)
    mod.attention(cuda(q), cuda(k), cuda(v), o, causal)
    assert np.max(np.abs(host(o).astype(np.float64) - mod.reference(q, k, v, causal))) < 2e-2


def test_vector_access_alignment_views(example):
    """Vector loads/stores need 16-byte aligned rows (`TensorSpec.div16`): views that start
    4 bytes into a buffer take the scalar path, views 16 bytes in the vector path; both right."""
    mod = example("vector_add")
    rng = np.random.default_rng()
    n = 100_003
    for shift in (1, 4):   # f32 elements: 4 bytes (misaligned) and 16 bytes (aligned)
        bufs = [cuda(rng.standard_normal(n + shift, dtype=np.float32)) for _ in range(2)]
        x, y = (b[shift:] for b in bufs)
        z = poisoned(n + shift)[shift:]
        mod.add(x, y, z)
        assert np.max(np.abs(host(z) - mod.reference(host(x), host(y)))) < 1e-6
    sm = example("softmax")
    m, n = 37, 1024
    for shift in (3, 8):   # f16 elements: 6 bytes (misaligned) and 16 bytes (aligned)
        buf = cuda((rng.standard_normal(m * n + shift) * 3).astype(np.float16))
        x = buf[shift:].view(m, n)
        y = poisoned(m * n + shift, torch.float16)[shift:].view(m, n)
        sm.softmax(x, y)
        assert np.max(np.abs(host(y).astype(np.float64) - sm.reference(host(x)))) < 1e-3


@pytest.mark.parametrize("bm,num_warps", [(1, 16), (2, 32), (1, 4)])
def test_softmax_bench_configs(example, bm, num_warps):
    """The configurations bench/softmax.py times, on full and ragged shapes."""
    import tilec as ct

    sm = example("softmax")
    kern = ct.kernel(num_warps=num_warps)(sm.softmax_kernel.fn)
    rng = np.random.default_rng()
    for m, n in ((64, 8192), (33, 5000)):
        x = (rng.standard_normal((m, n)) * 3).astype(np.float16)
        y = poisoned((m, n), torch.float16)
        kern[(ct.cdiv(m, bm),)](cuda(x), y, bm, sm.next_power_of_2(n))
        assert np.max(np.abs(host(y).astype(np.float64) - sm.reference(x))) < 1e-3


@pytest.mark.parametrize("causal", [False, True])
def test_flash_attention_head_dim_128_8_warps(example, causal):
    """bench/attention.py's shape family (head_dim 128, 8 warps) on a ragged sequence."""
    import tilec as ct

    mod = example("flash_attention")
    kern = ct.kernel(num_warps=8)(mod.flash_attention_fwd.fn)
    rng = np.random.default_rng()
    q, k, v = (rng.standard_normal((1, 2, 300, 128)).astype(np.float16) for _ in range(3))
    o = poisoned(q.shape, torch.float16)
    kern[(ct.cdiv(300, 64), 2, 1)](cuda(q), cuda(k), cuda(v), o, 1.0 / np.sqrt(128), 64, 64, 128, causal)
    assert np.max(np.abs(host(o).astype(np.float64) - mod.reference(q, k, v, causal))) < 2e-2


# ---------------------------------------------------------------------------- launch paths


class _CudaArray:
    """A foreign GPU array: `__cuda_array_interface__` (and `shape`, which the example's
    host code reads), nothing torch-specific."""

    def __init__(self, t):
        self._t = t
        self.__cuda_array_interface__ = t.__cuda_array_interface__
        self.shape = tuple(self.__cuda_array_interface__["shape"])


def test_cuda_array_interface_and_side_stream(example):
    mod = example("vector_add")
    rng = np.random.default_rng()
    x, y = (rng.standard_normal(5000, dtype=np.float32) for _ in range(2))
    z = poisoned(5000)
    mod.add(_CudaArray(cuda(x)), _CudaArray(cuda(y)), _CudaArray(z))
    torch.cuda.synchronize()
    assert np.max(np.abs(host(z) - mod.reference(x, y))) < 1e-6
    s = torch.cuda.Stream()
    xs, ys, zs = cuda(x), cuda(y), poisoned(5000)
    torch.cuda.current_stream().synchronize()
    with torch.cuda.stream(s):
        for _ in range(3):
            mod.add(xs, ys, zs)
    s.synchronize()
    assert np.max(np.abs(host(zs) - mod.reference(x, y))) < 1e-6


# ---------------------------------------------------------------------------- the zoo vs the CPU backend


@pytest.mark.parametrize("case", K.CASES, ids=[c[0] for c in K.CASES])
def test_kernel_matches_cpu(case):
    name, kernel, grid, make, tol, targets = case
    from tilec.runtime.launch import _gpu_target, target_override

    target = target_override() or _gpu_target()
    if target not in targets:
        pytest.skip(f"{name} is not supported on {target}")
    args = make(np.random.default_rng())
    ref = K.run_cpu(kernel, grid, args)
    got = K.run_gpu(kernel, grid, args)
    err = K.max_error(ref, got)
    assert err <= tol, f"{name}: max error {err:.3g} > {tol}"
