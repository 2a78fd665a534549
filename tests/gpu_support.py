"""What the GPU tests need to run: a CUDA torch and a working driver (`cuda.bindings`).

GPU tests are marked `gpu` and skip cleanly without them (CI has no GPU)."""

import contextlib


def torch_cuda_ready() -> bool:
    """True when torch sees a CUDA device and tilec's driver layer initialises."""
    try:
        import torch

        if not torch.cuda.is_available():
            return False
        from tilec.runtime.cuda import cuda_available

        return cuda_available()
    except Exception:  # noqa: BLE001 - no torch, no driver, no device: not ready
        return False


def gpu_target_override() -> str:
    """`TILEC_TARGET` when it names a real GPU target (`sm_80` runs the whole GPU suite on the
    Ampere path of an H100), else "" (the device's own target)."""
    import os

    value = os.environ.get("TILEC_TARGET", "").strip()
    return "" if value.startswith("sim:") else value


@contextlib.contextmanager
def needs_fp8_conversions(uses_fp8: bool):
    """Wraps a GPU launch that converts to or from fp8 (NV block scales).  On the device's own
    target it runs the body.  Under `TILEC_TARGET=sm_80`, which has no fp8 `cvt`, the launch
    must raise tilec's clear error naming sm_90; the test then stops as skipped."""
    if not (uses_fp8 and gpu_target_override() == "sm_80"):
        yield
        return
    import pytest

    from tilec.errors import TilecError

    with pytest.raises(TilecError, match=r"not implemented for `sm_80`.*needs sm_90"):
        yield
    pytest.skip("sm_80 has no fp8 conversions: the launch raised the clear error (checked)")
