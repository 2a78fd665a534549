"""tilec: a Python compiler for GPU tile kernels, built on xDSL.

    import tilec as ct

    @ct.kernel
    def add(X: ct.Tensor, Y: ct.Tensor, Z: ct.Tensor):
        i = ct.tile_idx(0)
        x = ct.load_tile(X, offset=[i * 1024], size=[1024])
        y = ct.load_tile(Y, offset=[i * 1024], size=[1024])
        ct.store_tile(Z, offset=[i * 1024], tile=x + y)

    add[(ct.cdiv(n, 1024),)](x, y, z)

Names are loaded on first use (PEP 562), so `import tilec` and the runtime/tool
modules do not pay for the front end (xDSL, numpy) until a kernel is defined.
"""

import importlib

__version__ = "0.1.0"

_API = ("Constant", "Tensor", "abs", "arange", "argmax", "argmin", "astype", "bid", "broadcast_to", "cdiv",
        "ceil", "cos", "dequantize", "dropout", "erf", "exp", "exp2", "expand_dims", "floor", "full", "load_tile",
        "log", "log2", "matmul", "max", "maximum", "min", "minimum", "num_tiles", "ones", "permute", "quantize",
        "rand", "relu", "reshape", "rsqrt", "scaled_matmul", "sigmoid", "sin", "sqrt", "static_range",
        "store_tile", "sum", "tanh", "tile_idx", "transpose", "where", "zeros")
_DTYPES = ("bfloat16", "bool_", "float4_e2m1fn", "float6_e2m3fn", "float6_e3m2fn", "float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu", "float16",
           "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint32")
_EXPORTS = {**{n: "tilec.api" for n in _API}, **{n: "tilec.dtypes" for n in _DTYPES},
            "CompileError": "tilec.errors", "LaunchError": "tilec.errors", "TilecError": "tilec.errors",
            "Kernel": "tilec.jit", "kernel": "tilec.jit", "autotune": "tilec.tuning", "Config": "tilec.tuning",
            "FP4Tensor": "tilec.fp4", "fp4_tensor": "tilec.fp4"}
_SUBMODULES = ("fp4", "fp6", "nn")   # `tilec.fp4` / `tilec.fp6`: host-side packing; `tilec.nn`: library kernels

__all__ = sorted(_EXPORTS) + list(_SUBMODULES) + ["compile", "__version__"]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"tilec.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tilec' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__


def compile(kernel, *args, target: str = "cpu", **options):
    """Compile `kernel` ahead of time for example `args`; returns the driver's Artifact
    (`artifact.stages` holds the IR after each pass when `keep_ir=True`)."""
    from tilec.driver import CompileOptions
    from tilec.errors import TilecError

    try:
        artifact, _ = kernel.compile_for(args, target, CompileOptions(**options))
    except TilecError as e:
        raise e.with_traceback(None) from e.__cause__
    return artifact
