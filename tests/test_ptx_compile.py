"""The PTX backend without a GPU: every example compiles for sm_80, sm_90a and sm_100a and
ptxas accepts it; the emitted PTX computes what the CPU interpreter computes (run on
the PTX simulator, `tilec.backends.sim`); unsupported combinations fail clearly."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import ptx_kernels as K
from tilec import dtypes as dt
from tilec.driver import compile_kernel
from tilec.errors import CompileError
from tilec.frontend.tracer import ConstantSpec, ScalarSpec, TensorSpec

TARGETS = ("sm_80", "sm_90a", "sm_100a")


def _ptxas():
    from tilec.backends.ptx.ptxas import PtxasNotFoundError, find_ptxas

    try:
        return find_ptxas()
    except PtxasNotFoundError:
        return None


needs_ptxas = pytest.mark.skipif(_ptxas() is None, reason="ptxas not found (pip install nvidia-cuda-nvcc)")


def _t(d, rank):
    return TensorSpec(d, (None,) * rank)


C = ConstantSpec
EXAMPLES = {
    "vector_add": ("vector_add", [_t(dt.float32, 1)] * 3),
    "fused_elementwise": ("bias_gelu", [_t(dt.float16, 2), _t(dt.float16, 1), _t(dt.float16, 2),
                                        ScalarSpec(dt.float32), C(32), C(64)]),
    "matmul": ("matmul_kernel", [_t(dt.float16, 2), _t(dt.float16, 2), _t(dt.float32, 2), C(64), C(64), C(32)]),
    "softmax": ("softmax_kernel", [_t(dt.float16, 2), _t(dt.float16, 2), C(4), C(1024)]),
    "layernorm": ("layernorm_kernel", [_t(dt.float32, 2), _t(dt.float32, 1), _t(dt.float32, 1),
                                       _t(dt.float32, 2), ScalarSpec(dt.float32), C(8), C(512)]),
    "matmul_relu_dropout": ("matmul_relu_scale_dropout", [_t(dt.float16, 2), _t(dt.float16, 2), _t(dt.float32, 2),
                                                          ScalarSpec(dt.float32), ScalarSpec(dt.float32),
                                                          ScalarSpec(dt.int32), C(32), C(32), C(32)]),
    "flash_attention": ("flash_attention_fwd", [_t(dt.float16, 4)] * 4 + [ScalarSpec(dt.float32), C(64), C(64),
                                                                         C(32), C(True)]),
}
#: examples whose kernels only sm_100a lowers (block-scaled FP4 MMA): the CLI test below takes them too
SM100_ONLY_EXAMPLES = {
    "fp4_matmul": ("fp4_matmul_kernel", [_t(dt.float4_e2m1fn, 2), _t(dt.float8_e8m0fnu, 2), _t(dt.float4_e2m1fn, 2),
                                         _t(dt.float8_e8m0fnu, 2), _t(dt.float32, 2), ScalarSpec(dt.float32),
                                         C(128), C(128), C(64), C(32)]),
}


@needs_ptxas
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", list(EXAMPLES))
def test_example_assembles(example, name, target):
    from tilec.backends.ptx.ptxas import assemble

    kname, specs = EXAMPLES[name]
    artifact = compile_kernel(getattr(example(name), kname), specs, target)
    ptx = artifact.emit("ptx")
    assert f".target {target}" in ptx and f".entry {kname}(" in ptx
    cubin, _ = assemble(ptx, target)
    assert cubin[:4] == b"\x7fELF"


@pytest.mark.parametrize("case", K.CASES, ids=[c[0] for c in K.CASES])
def test_kernel_on_simulator_matches_cpu(case):
    name, kernel, grid, make, tol, targets = case
    args = make(np.random.default_rng(1))
    ref = K.run_cpu(kernel, grid, args)
    got = K.run_sim(kernel, grid, args, "sm_90a")
    assert K.max_error(ref, got) <= tol


def _examples_small():
    rng = np.random.default_rng(0)
    f16 = np.float16
    yield "vector_add", "vector_add", (3,), [rng.standard_normal(2100).astype(np.float32)] * 2 + \
        [np.full(2100, np.nan, np.float32)], 0.0
    yield "fused_elementwise", "bias_gelu", (2, 2), [rng.standard_normal((50, 70)).astype(f16),
                                                     rng.standard_normal(70).astype(f16),
                                                     np.full((50, 70), np.nan, f16), 0.75, 32, 64], 4e-3
    yield "matmul", "matmul_kernel", (3, 2), [rng.standard_normal((70, 50)).astype(f16),
                                              rng.standard_normal((50, 40)).astype(f16),
                                              np.full((70, 40), np.nan, np.float32), 32, 32, 16], 1e-5
    yield "softmax", "softmax_kernel", (3,), [(rng.standard_normal((9, 100)) * 3).astype(f16),
                                              np.full((9, 100), np.nan, f16), 4, 128], 1e-3
    yield "layernorm", "layernorm_kernel", (2,), [rng.standard_normal((10, 90)).astype(np.float32),
                                                  rng.standard_normal(90).astype(np.float32),
                                                  rng.standard_normal(90).astype(np.float32),
                                                  np.full((10, 90), np.nan, np.float32), 1e-5, 8, 128], 1e-5
    yield "matmul_relu_dropout", "matmul_relu_scale_dropout", (2, 2), [
        rng.standard_normal((40, 30)).astype(f16), rng.standard_normal((30, 40)).astype(f16),
        np.full((40, 40), np.nan, np.float32), 0.5, 0.3, 1234, 32, 32, 32], 1e-5
    q, k, v = (rng.standard_normal((1, 2, 40, 16)).astype(f16) for _ in range(3))
    for causal in (False, True):
        yield "flash_attention", "flash_attention_fwd", (2, 2, 1), [q, k, v, np.full(q.shape, np.nan, f16), 0.25,
                                                                     32, 32, 16, causal], 1e-3


@pytest.mark.parametrize("target", ["sm_80", "sm_90a", "sm_100a"])
@pytest.mark.parametrize("matmul", ["mma", "fma"])
@pytest.mark.parametrize("item", list(_examples_small()), ids=lambda it: it[0])
def test_example_on_simulator_matches_cpu(example, item, matmul, target, monkeypatch):
    """Every example's lowering for every GPU target, run in the PTX simulator, gives the
    tile-level CPU backend's result."""
    if matmul == "fma":  # f16 matmuls on CUDA cores instead of the target's tensor-core path
        monkeypatch.setenv("TILEC_PTX_MMA", "0")
        monkeypatch.setenv("TILEC_PTX_TCGEN05", "0")
    name, kname, grid, args, tol = item
    kernel = getattr(example(name), kname)
    assert K.max_error(K.run_cpu(kernel, grid, args), K.run_sim(kernel, grid, args, target)) <= tol


def test_unsupported_combination_names_op_dtype_and_target(tmp_path):
    src = tmp_path / "fp8.py"
    src.write_text("import tilec as ct\n\n@ct.kernel\ndef to_fp8(X: ct.Tensor, Y: ct.Tensor):\n"
                   "    x = ct.load_tile(X, offset=[0], size=[64])\n"
                   "    ct.store_tile(Y, offset=[0], tile=ct.exp(x).astype(ct.float8_e4m3fn))\n"
                   "\n@ct.kernel\ndef exp64(X: ct.Tensor):\n"
                   "    x = ct.load_tile(X, offset=[0], size=[64])\n"
                   "    ct.store_tile(X, offset=[0], tile=ct.exp(x))\n")
    from tilec.cli import load_kernels

    kernels = load_kernels(str(src))
    specs = [_t(dt.float32, 1), _t(dt.float8_e4m3fn, 1)]
    with pytest.raises(CompileError) as e:
        compile_kernel(kernels["to_fp8"], specs, "sm_80")
    msg = str(e.value)
    assert "`tile.cast` with `f8E4M3FN` operands is not implemented for `sm_80`" in msg
    assert "fp8.py:6:" in msg
    compile_kernel(kernels["to_fp8"], specs, "sm_90a")  # fine on Hopper
    with pytest.raises(CompileError, match="`tile.exp` with `f64` operands is not implemented for `sm_90a`"):
        compile_kernel(kernels["exp64"], [_t(dt.float64, 1)], "sm_90a")


def test_cli_emits_ptx_and_cubin(tmp_path):
    args = ["compile", "examples/matmul.py", "--kernel", "matmul_kernel", "--target", "sm_90a", "--arg", "A=f16[?,?]", "--arg", "B=f16[?,?]",
            "--arg", "C=f32[?,?]", "--arg", "BM=64", "--arg", "BN=64", "--arg", "BK=32"]
    root = K.__file__.rsplit("/tests/", 1)[0]
    r = subprocess.run([sys.executable, "-m", "tilec.cli", *args, "--emit", "ptx"], cwd=root,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert ".target sm_90a" in r.stdout and "bar.sync" in r.stdout
    assert "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32" in r.stdout
    r = subprocess.run([sys.executable, "-m", "tilec.cli", *args, "--print-pipeline"], cwd=root,
                       capture_output=True, text=True)
    from tilec.pipelines import pipeline_for

    assert r.stdout.strip() == ",".join(pipeline_for("sm_90a")) and r.stdout.strip().endswith(",emit-ptx")
    if _ptxas() is not None:
        out = tmp_path / "matmul.cubin"
        r = subprocess.run([sys.executable, "-m", "tilec.cli", *args, "--emit", "cubin", "-o", str(out)],
                           cwd=root, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert out.read_bytes()[:4] == b"\x7fELF"


def test_kernel_abi_lists_tensor_dims_scalars_and_grid_extents():
    art = compile_kernel(K.grid4, [_t(dt.float32, 1), _t(dt.float32, 1)], "sm_90a")
    roles = [(p.kind, p.role) for p in art.gpu.params]
    assert roles == [("ptr", ("tensor", 0)), ("u32", ("dim", 0, 0)), ("ptr", ("tensor", 1)),
                     ("u32", ("dim", 1, 0)), ("u32", ("grid", 2)), ("u32", ("grid", 3))]
    assert art.gpu.num_threads == 128 and art.gpu.grid_rank == 4
    wide = compile_kernel(K.wide_softmax, [_t(dt.float32, 2), _t(dt.float32, 2), C(2048)], "sm_80")
    assert wide.gpu.num_threads == 256 and ".maxntid 256, 1, 1" in wide.gpu.ptx


@needs_ptxas
@pytest.mark.parametrize("case", K.CASES, ids=[c[0] for c in K.CASES])
def test_kernel_assembles_for_every_target(case):
    from tilec.backends.ptx.ptxas import assemble

    name, kernel, grid, make, tol, targets = case
    specs, _ = kernel.bind(tuple(make(np.random.default_rng(1))))
    for target in targets:
        assemble(compile_kernel(kernel, specs, target).gpu.ptx, target)


def _cli_arg(name, spec) -> str:
    if isinstance(spec, TensorSpec):
        return f"{name}={spec.dtype.name}[{','.join('?' if d is None else str(d) for d in spec.static_shape)}]"
    if isinstance(spec, ScalarSpec):
        return f"{name}={spec.dtype.name}"
    return f"{name}={str(spec.value).lower()}"


@needs_ptxas
@pytest.mark.parametrize("name", list(EXAMPLES) + list(SM100_ONLY_EXAMPLES))
def test_cli_compiles_every_example_for_sm_100(example, name, tmp_path):
    """`tilec compile examples/<each>.py --target sm_100 --emit ptx` writes PTX that
    `ptxas --gpu-name sm_100a` accepts."""
    from tilec.backends.ptx.ptxas import assemble
    from tilec.cli import main

    kname, specs = {**EXAMPLES, **SM100_ONLY_EXAMPLES}[name]
    kernel = getattr(example(name), kname)
    argv = ["compile", f"examples/{name}.py", "--kernel", kname, "--target", "sm_100", "--emit", "ptx",
            "-o", str(tmp_path / f"{name}.ptx")]
    for pname, spec in zip(kernel.param_names, specs):
        argv += ["--arg", _cli_arg(pname, spec)]
    root = K.__file__.rsplit("/tests/", 1)[0]
    import os

    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(argv) == 0
    finally:
        os.chdir(cwd)
    ptx = (tmp_path / f"{name}.ptx").read_text()
    assert ".target sm_100a" in ptx
    cubin, _ = assemble(ptx, "sm_100a")
    assert cubin[:4] == b"\x7fELF"
