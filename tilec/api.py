"""The tile API that kernels are written in (`import tilec as ct`).

Every function here may be called only inside a `@ct.kernel` function, where its
arguments are traced tiles/scalars (or Python numbers, folded at trace time).  Shapes
are compile-time; offsets, loop bounds and tensor dims may be run-time values.
"""

from __future__ import annotations

import functools
import inspect
import sys
from typing import Generic, TypeVar

from tilec.errors import CompileError, SourceLoc
from tilec.frontend import ops
from tilec.frontend.state import is_tracing

_T = TypeVar("_T")


def _kernel_only(fn):
    """Mark a tile-API function usable only while a kernel is traced.  Called from plain
    Python, it raises one CompileError located at the caller's line."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not is_tracing():
            raise CompileError(f"ct.{fn.__name__}() can only be used inside a @tilec.kernel function; "
                               f"launch the kernel as kernel[grid](...)", _caller_loc())
        return fn(*args, **kwargs)
    return wrapper


def _caller_loc() -> SourceLoc | None:
    frame = sys._getframe(2)
    info = inspect.getframeinfo(frame, context=0)
    pos = info.positions
    if pos is None or pos.col_offset is None:
        return SourceLoc(info.filename, info.lineno, 1)
    end = pos.end_col_offset + 1 if pos.end_lineno == pos.lineno and pos.end_col_offset is not None else None
    return SourceLoc(info.filename, pos.lineno, pos.col_offset + 1, end)


class Tensor:
    """Annotation for a global tensor argument (numpy array on the CPU target, a torch
    CUDA tensor or any `__cuda_array_interface__` / DLPack array on GPU targets).
    Arrays must be C-contiguous."""


class Constant(Generic[_T]):
    """Annotation `ct.Constant[int]`: the argument is a compile-time constant; each new
    value compiles a specialised kernel (like Triton's `tl.constexpr`)."""


# ------------------------------------------------------------------ grid


@_kernel_only
def tile_idx(axis: int):
    """Index of this program instance along launch-grid axis `axis` (an i32 scalar)."""
    return ops.tile_idx(axis)


@_kernel_only
def num_tiles(axis: int):
    """Number of program instances along launch-grid axis `axis` (an i32 scalar)."""
    return ops.num_tiles(axis)


bid = tile_idx


# ------------------------------------------------------------------ memory


@_kernel_only
def load_tile(t, offset, size, boundary_check: bool = True, padding=0):
    """Load the tile of shape `size` whose first element is at `offset` of tensor `t`.

    offset: one integer scalar per tensor dimension, in elements (run-time values allowed).
    size: compile-time tile shape, one entry per tensor dimension.
    boundary_check: elements outside the tensor read as `padding` (default 0); with
        False the caller promises the whole tile is in bounds.
    Returns a tile of shape `size` and the tensor's dtype.
    """
    return ops.load(t, offset, size, boundary_check, padding)


@_kernel_only
def store_tile(t, offset, tile, mode: str = "store"):
    """Write `tile` into tensor `t` at element `offset`; only in-bounds elements are written.

    The tile is cast to the tensor's dtype (round to nearest even).
    mode: "store" overwrites; "atomic_add" adds atomically into the tensor.
    """
    return ops.store(t, offset, tile, mode)


# ------------------------------------------------------------------ math


@_kernel_only
def matmul(a, b, acc=None, *, a_scale=None, b_scale=None, block=None):
    """`a @ b` (+ `acc`) for 2-D tiles, batched over leading dims; accumulates in float32
    (int32 for integer inputs).

    With `a_scale` and `b_scale` it is the block-scaled product `ct.scaled_matmul`
    (e.g. MXFP4 / NVFP4 on sm_100a's tcgen05 kind::mxf4 / kind::mxf4nvf4)."""
    return ops.matmul(a, b, acc, a_scale, b_scale, block)


@_kernel_only
def scaled_matmul(a, a_scale, b, b_scale, block=None, acc=None):
    """Block-scaled `a @ b` (+ `acc`), in float32:
    `out[m, n] = sum_k a[m, k] * a_scale[m, k // block] * b[k, n] * b_scale[n, k // block]`.

    a: [M, K] float4_e2m1fn tile (float8_e4m3fn / float8_e5m2 also accepted).
    a_scale: [M, K / block] float8_e8m0fnu (MX) or float8_e4m3fn (NVFP4) scales.
    b: [K, N] tile like `a`; with B stored K-major (as FP4 hardware needs) load the
        [N, K] tile and pass its `.T`.
    b_scale: [N, K / block], one row of scales per output column (the hardware's SFB),
        the same dtype as `a_scale`.
    block: elements per scale along K (32 for MXFP4, 16 for NVFP4); by default
        K / a_scale.shape[-1].  It must divide K.
    Each product is exact; the sum is in float32 in the target's order.
    """
    return ops.scaled_matmul(a, a_scale, b, b_scale, block, acc)


@_kernel_only
def quantize(x, dtype="float4_e2m1fn", block: int = 32, scale_dtype="float8_e8m0fnu", global_scale=None):
    """Block-scaled quantization of `x` along its last axis: returns `(q, scales)`.

    x: float tile `[..., K]` (other dtypes are cast to float32); K must be a multiple of
        `block`.
    dtype: the element type of `q`, float4_e2m1fn (the only one so far).
    block: elements per scale (32 for MXFP4, 16 for NVFP4).
    scale_dtype: float8_e8m0fnu (MX: scale = 2**(floor(log2(amax)) - 2), amax the block's
        largest magnitude) or float8_e4m3fn (NVFP4: scale = amax / 6 rounded to e4m3).
    global_scale: optional float32 scalar (NVFP4's per-tensor scale): `x` is divided by
        it first.
    Returns q `[..., K]` (x / scale, nearest even, saturated to +-6) and scales
    `[..., K / block]`, the same numbers as the host reference `tilec.fp4.quantize`.
    """
    return ops.quantize(x, dtype, block, scale_dtype, global_scale)


@_kernel_only
def dequantize(q, scales, block=None, dtype="float32", global_scale=None):
    """`q * scales` with each scale repeated over its `block` elements of the last axis
    (times `global_scale` if given), exact in float32, then cast to `dtype` (float32,
    float16 or bfloat16).  `block` defaults to `q.shape[-1] / scales.shape[-1]`."""
    return ops.dequantize(q, scales, block, dtype, global_scale)


@_kernel_only
def sum(x, axis=None, keepdims: bool = False):
    """Sum over `axis` (int, tuple, negative allowed, or None for all); float sums are float32."""
    return ops.reduce("sum", x, axis, keepdims)


@_kernel_only
def max(x, axis=None, keepdims: bool = False):
    """Maximum over `axis` (None: all axes)."""
    return ops.reduce("max", x, axis, keepdims)


@_kernel_only
def min(x, axis=None, keepdims: bool = False):
    """Minimum over `axis` (None: all axes)."""
    return ops.reduce("min", x, axis, keepdims)


@_kernel_only
def argmax(x, axis=None, keepdims: bool = False):
    """Index (int32) of the first maximum along `axis` (None: of the flattened tile)."""
    return ops.reduce("argmax", x, axis, keepdims)


@_kernel_only
def argmin(x, axis=None, keepdims: bool = False):
    """Index (int32) of the first minimum along `axis` (None: of the flattened tile)."""
    return ops.reduce("argmin", x, axis, keepdims)


def _unary(kind: str, doc: str):
    def f(x):
        return ops.unary(kind, x)
    f.__name__ = f.__qualname__ = kind
    f.__doc__ = doc
    return _kernel_only(f)


exp = _unary("exp", "Elementwise e**x (integers are cast to float32 first).")
exp2 = _unary("exp2", "Elementwise 2**x.")
log = _unary("log", "Elementwise natural logarithm.")
log2 = _unary("log2", "Elementwise base-2 logarithm.")
sqrt = _unary("sqrt", "Elementwise square root.")
rsqrt = _unary("rsqrt", "Elementwise 1/sqrt(x).")
tanh = _unary("tanh", "Elementwise hyperbolic tangent.")
sigmoid = _unary("sigmoid", "Elementwise 1/(1+exp(-x)).")
erf = _unary("erf", "Elementwise error function.")
sin = _unary("sin", "Elementwise sine.")
cos = _unary("cos", "Elementwise cosine.")
floor = _unary("floor", "Elementwise round toward -inf.")
ceil = _unary("ceil", "Elementwise round toward +inf.")
abs = _unary("abs", "Elementwise absolute value.")
relu = _unary("relu", "Elementwise max(x, 0).")


@_kernel_only
def maximum(a, b):
    """Elementwise maximum with broadcasting (NaN-propagating)."""
    return ops.binary("maximum", a, b)


@_kernel_only
def minimum(a, b):
    """Elementwise minimum with broadcasting (NaN-propagating)."""
    return ops.binary("minimum", a, b)


@_kernel_only
def where(cond, a, b):
    """Elementwise `a` where `cond` else `b`, with broadcasting."""
    return ops.where(cond, a, b)


# ------------------------------------------------------------------ shapes


@_kernel_only
def transpose(x):
    """Swap the last two axes of a tile."""
    return ops.transpose(x)


@_kernel_only
def permute(x, axes):
    """Reorder axes: result axis i is `x`'s axis `axes[i]`."""
    return ops.permute(x, axes)


@_kernel_only
def reshape(x, shape):
    """Same elements (row-major order), new compile-time shape."""
    return ops.reshape(x, shape)


@_kernel_only
def broadcast_to(x, shape):
    """Stretch size-1 (or missing leading) dims to `shape`."""
    return ops.broadcast_to(x, shape)


@_kernel_only
def expand_dims(x, axis: int):
    """Insert a size-1 axis at `axis`."""
    return ops.expand_dims(x, axis)


@_kernel_only
def astype(x, dtype):
    """Convert to `dtype` (float narrowing rounds to nearest even, saturating for fp8/fp4)."""
    return ops.cast(x, dtype)


# ------------------------------------------------------------------ creation and random


@_kernel_only
def full(shape, value, dtype=None):
    """A tile of compile-time `shape` filled with `value` (a number or run-time scalar)."""
    return ops.full(shape, value, dtype)


@_kernel_only
def zeros(shape, dtype="float32"):
    """A tile of zeros (float32 by default)."""
    return ops.full(shape, 0, dtype)


@_kernel_only
def ones(shape, dtype="float32"):
    """A tile of ones (float32 by default)."""
    return ops.full(shape, 1, dtype)


@_kernel_only
def arange(start, stop=None):
    """The int32 tile [start, ..., stop-1] (compile-time bounds)."""
    return ops.arange(start, stop)


@_kernel_only
def rand(seed, offsets):
    """Uniform float32 in [0, 1) per element of the integer tile `offsets`, from
    Philox4x32-10 keyed by `seed` (same numbers on every backend, as Triton's tl.rand)."""
    return ops.rand(seed, offsets)


@_kernel_only
def dropout(x, p, seed, offsets=None):
    """Zero each element of `x` with probability `p` and scale the rest by 1/(1-p).

    The mask comes from `rand(seed, offsets)`; by default offsets are
    `program_linear_id * x.size + element index`, so each program drops different
    elements and every backend drops the same ones for the same seed.
    """
    return ops.dropout(x, p, seed, offsets)


def static_range(*args):
    """Like `range`, but the loop is unrolled at trace time (bounds must be constants)."""
    return range(*args)


def cdiv(a, b):
    """Ceiling division `(a + b - 1) // b` (works on Python ints and traced scalars)."""
    return (a + b - 1) // b
