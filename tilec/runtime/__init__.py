"""tilec's GPU runtime: load cubins/PTX into the CUDA primary context and launch kernels.

Importing this package needs no GPU; `cuda_available()` says whether one can be used.
See `tilec.runtime.cuda` for the details.
"""

from tilec.runtime.cuda import (
    ARG_KINDS,
    CudaError,
    Function,
    Launcher,
    Module,
    PackedArgs,
    TensorMap,
    arch_for_compute_capability,
    cuda_available,
    current_device,
    current_device_arch,
    current_stream,
    device_pointer,
    launch,
    load_module,
    make_tma_descriptor,
    set_launch_impl,
    synchronize,
)

__all__ = [
    "ARG_KINDS",
    "CudaError",
    "Function",
    "Launcher",
    "Module",
    "PackedArgs",
    "TensorMap",
    "arch_for_compute_capability",
    "cuda_available",
    "current_device",
    "current_device_arch",
    "current_stream",
    "device_pointer",
    "launch",
    "load_module",
    "make_tma_descriptor",
    "set_launch_impl",
    "synchronize",
]
