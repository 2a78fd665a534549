"""tilec: a Python compiler for GPU tile kernels, built on xDSL.

    import tilec as ct

    @ct.kernel
    def add(X: ct.Tensor, Y: ct.Tensor, Z: ct.Tensor):
        i = ct.tile_idx(0)
        x = ct.load_tile(X, offset=[i * 1024], size=[1024])
        y = ct.load_tile(Y, offset=[i * 1024], size=[1024])
        ct.store_tile(Z, offset=[i * 1024], tile=x + y)

    add[(ct.cdiv(n, 1024),)](x, y, z)
"""

from tilec.api import (  # noqa: F401
    Constant, Tensor, abs, arange, argmax, argmin, astype, bid, broadcast_to, cdiv, ceil, cos, dropout,
    erf, exp, exp2, expand_dims, floor, full, load_tile, log, log2, matmul, max, maximum, min, minimum,
    num_tiles, ones, permute, rand, relu, reshape, rsqrt, sigmoid, sin, sqrt, static_range, store_tile,
    sum, tanh, tile_idx, transpose, where, zeros,
)
from tilec.dtypes import (  # noqa: F401
    bfloat16, bool_, float4_e2m1fn, float8_e4m3fn, float8_e5m2, float8_e8m0fnu, float16, float32, float64,
    int8, int16, int32, int64, uint8,
)
from tilec.errors import CompileError, LaunchError, TilecError  # noqa: F401
from tilec.jit import Kernel, kernel  # noqa: F401

__version__ = "0.1.0"


def compile(kernel, *args, target: str = "cpu", **options):
    """Compile `kernel` ahead of time for example `args`; returns the driver's Artifact
    (`artifact.stages` holds the IR after each pass when `keep_ir=True`)."""
    from tilec.driver import CompileOptions

    artifact, _ = kernel.compile_for(args, target, CompileOptions(**options))
    return artifact
