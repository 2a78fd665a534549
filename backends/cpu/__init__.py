"""CPU simulation backend: runs tile-dialect kernels with numpy, all program instances at once."""

from .interpreter import interpret_module, run_kernel
from .philox import philox4x32_10

__all__ = ["run_kernel", "interpret_module", "philox4x32_10"]
