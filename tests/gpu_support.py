"""What the GPU tests need to run: a CUDA torch and a working driver (`cuda.bindings`).

GPU tests are marked `gpu` and skip cleanly without them (CI has no GPU)."""


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
