"""The sm_90a GEMM path (TMA + mbarrier pipeline + wgmma) on a real Hopper GPU, against torch:
fresh random inputs, outputs poisoned with NaN, 4096^3 and ragged shapes, f16 and bf16.
Skipped without an sm_90 GPU.  Also runnable without pytest: `python tests/test_gpu_gemm.py`."""

from __future__ import annotations

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from gpu_support import gpu_target_override  # noqa: E402

pytestmark = pytest.mark.gpu
torch = pytest.importorskip("torch")


def _hopper() -> bool:
    try:
        from tilec.runtime.cuda import cuda_available

        return torch.cuda.is_available() and cuda_available() and torch.cuda.get_device_capability()[0] == 9
    except Exception:  # noqa: BLE001
        return False


if __name__ != "__main__" and not _hopper():
    pytest.skip("needs an sm_90 GPU (H100 / H200) with a CUDA driver", allow_module_level=True)


def _example():
    from conftest import load_example

    return load_example("matmul").matmul_kernel


def _grouped():
    from test_wgmma_pipeline import matmul_grouped

    return matmul_grouped


def _check(kernel, grid, m, n, k, dtype, out_dtype, consts, tol, **launch):
    a = torch.randn(m, k, device="cuda", dtype=dtype)
    b = torch.randn(k, n, device="cuda", dtype=dtype)
    c = torch.full((m, n), float("nan"), device="cuda", dtype=out_dtype)
    kernel[grid](a, b, c, *consts, **launch)
    torch.cuda.synchronize()
    ref = a.double() @ b.double()
    assert not torch.isnan(c).any(), "unwritten (NaN) outputs"
    err = float((c.double() - ref).norm() / ref.norm())
    assert err < tol, f"relative error {err:.3g} >= {tol}"
    return err


def _took_wgmma(kernel) -> bool:
    """Every GPU compile of `kernel` used the target's tensor-core pipeline: wgmma on the
    device's own sm_90a, cp.async + mma.sync under `TILEC_TARGET=sm_80`."""
    want = ("cp.async.cg", "mma.sync") if gpu_target_override() == "sm_80" else ("wgmma.mma_async",)
    arts = [a for a in kernel._cache.values() if a.gpu is not None]
    return bool(arts) and all(w in a.gpu.ptx for a in arts for w in want)


TOL = {torch.float16: 2e-3, torch.bfloat16: 1.5e-2, torch.float32: 1e-5}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_matmul_4096_cubed(dtype):
    k = _example()
    k._cache.clear()   # the example kernel is shared with other GPU tests: judge only this compile
    k._plans.clear()
    n = 4096
    _check(k, (n // 128, n // 256), n, n, n, dtype, dtype, (128, 256, 64), TOL[dtype])
    assert _took_wgmma(k)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape,tiles,stages", [
    ((200, 144, 208), (64, 64, 64), 2),
    ((1000, 1008, 528), (128, 128, 64), 3),
    ((777, 4112, 1040), (128, 256, 64), 4),
    ((4100, 96, 2064), (256, 128, 64), 3),
    ((4097, 4095, 100), (128, 128, 64), None),     # unaligned rows: the register (mma.sync) path
])
def test_matmul_ragged_shapes(dtype, shape, tiles, stages):
    m, n, kk = shape
    launch = {} if stages is None else {"num_stages": stages}
    for out in (torch.float32, dtype):
        _check(_example(), (-(-m // tiles[0]), -(-n // tiles[1])), m, n, kk, dtype, out, tiles,
               max(TOL[out], TOL[dtype]) if out != torch.float32 else TOL[dtype] / 4, **launch)


def test_grouped_grid_kernel():
    m, n, k = 3000, 2048, 1024
    grid = (-(-m // 128) * -(-n // 256),)
    _grouped()._cache.clear()   # judge only this compile
    _check(_grouped(), grid, m, n, k, torch.float16, torch.float16, (128, 256, 64, 8), TOL[torch.float16])
    assert _took_wgmma(_grouped())


def small_gemms() -> None:
    """A few small GEMMs through the wgmma path, both epilogues: what compute-sanitizer watches."""
    from tilec.backends.ptx import lower_wgmma

    for tma_store in (True, False):
        lower_wgmma.TMA_STORE = tma_store
        k = __import__("tilec").kernel(_example().fn)     # fresh kernel: compiled with this epilogue
        for (m, n, kk), tiles, stages in (((200, 144, 208), (64, 64, 64), 2), ((136, 272, 336), (128, 256, 64), 4),
                                          ((300, 160, 128), (256, 128, 64), 3)):
            _check(k, (-(-m // tiles[0]), -(-n // tiles[1])), m, n, kk, torch.float16, torch.float16, tiles,
                   TOL[torch.float16], num_stages=stages)
    lower_wgmma.TMA_STORE = True
    print("small gemms ran")


def test_small_gemms_are_sanitizer_clean():
    """memcheck, racecheck and synccheck report nothing on the pipeline (TMA, mbarriers, wgmma, epilogues)."""
    import os
    import shutil
    import subprocess

    tool_path = shutil.which("compute-sanitizer") or "/usr/local/cuda/bin/compute-sanitizer"
    if not os.path.exists(tool_path):
        pytest.skip("compute-sanitizer not installed")
    for tool in ("memcheck", "racecheck", "synccheck"):
        # host API errors are cuda.bindings probing driver entry points at start-up (cuGetProcAddress)
        proc = subprocess.run([tool_path, "--tool", tool, "--report-api-errors", "no", "--error-exitcode", "9",
                               sys.executable, __file__, "--small"], capture_output=True, text=True, timeout=600)
        report = proc.stdout + proc.stderr
        assert proc.returncode == 0 and "small gemms ran" in report, f"{tool}:\n{report[-3000:]}"
        print(f"{tool}: {[line for line in report.splitlines() if 'SUMMARY' in line]}")


if __name__ == "__main__":
    if not _hopper():
        sys.exit("needs an sm_90 GPU")
    if "--small" in sys.argv:
        small_gemms()
        sys.exit(0)
    for dt_ in (torch.float16, torch.bfloat16):
        test_matmul_4096_cubed(dt_)
        print("4096^3", dt_, "ok")
    test_grouped_grid_kernel()
    print("grouped ok")
