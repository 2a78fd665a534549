"""Numerics of the CPU backend: dtypes of IR values, and numpy functions that compute
like the GPU (narrow floats in f32 rounded back after every op, saturating casts into
fp8/fp4, truncating float -> int casts).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import ml_dtypes
import numpy as np
from xdsl.dialects.builtin import IndexType

from tilec import dtypes
from tilec.dialects import tile as T

F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)


def dtype_of(t) -> dtypes.DType:
    elt = T.element_type_of(t)
    return dtypes.int64 if isinstance(elt, IndexType) else dtypes.from_ir(elt)


def is_narrow_float(d: dtypes.DType) -> bool:
    """Floats that numpy cannot compute in natively: computed in f32, rounded back."""
    return d.is_float and d.bits < 32


def saturates(d: dtypes.DType) -> bool:
    """Casts into these clamp to the largest finite value (`cvt.rn.satfinite`)."""
    return d.is_float and d.bits <= 8 and d is not dtypes.float8_e8m0fnu


def erf(x: np.ndarray) -> np.ndarray:
    """erf in float64: Taylor series for |x| < 2, Numerical Recipes' erfc fit beyond."""
    x = np.asarray(x, dtype=F64)
    ax = np.abs(x)
    small = np.where(ax < 2.0, x, 0.0)
    x2 = small * small
    term = small.copy()
    total = small.copy()
    for n in range(1, 40):
        term *= -x2 / n
        total += term / (2 * n + 1)
    taylor = total * (2.0 / math.sqrt(math.pi))
    t = 1.0 / (1.0 + 0.5 * ax)
    poly = -ax * ax - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    tail = np.sign(x) * (1.0 - t * np.exp(poly))
    return np.where(ax < 2.0, taylor, tail)


BINARY_FUNCS = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide,
    "floordiv": np.floor_divide, "rem": np.mod, "pow": np.power,
    "maximum": np.maximum, "minimum": np.minimum,
    "and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor,
    "shl": np.left_shift, "shr": np.right_shift,
}


def unary_func(mnemonic: str, d: dtypes.DType) -> Callable[[np.ndarray], np.ndarray]:
    if mnemonic == "not":
        return np.logical_not if d is dtypes.bool_ else np.invert
    if mnemonic == "relu":
        zero = np.zeros((), d.np_dtype if not is_narrow_float(d) else F32)
        return lambda x: np.maximum(x, zero)
    if mnemonic == "rsqrt":
        return lambda x: 1.0 / np.sqrt(x)
    if mnemonic == "sigmoid":
        return lambda x: 1.0 / (1.0 + np.exp(-x))
    if mnemonic == "erf":
        return erf
    return {
        "neg": np.negative, "abs": np.abs, "exp": np.exp, "exp2": np.exp2, "log": np.log,
        "log2": np.log2, "sqrt": np.sqrt, "tanh": np.tanh, "sin": np.sin, "cos": np.cos,
        "floor": np.floor, "ceil": np.ceil,
    }[mnemonic]


def elementwise(fn: Callable, d: dtypes.DType) -> Callable:
    """Wrap a numpy function so it computes like the GPU for dtype `d` and returns `d`."""
    out = d.np_dtype
    if is_narrow_float(d):
        def narrow(*xs):
            return fn(*(x.astype(F32) for x in xs)).astype(out)
        return narrow

    def native(*xs):
        r = fn(*xs)
        return r if r.dtype == out else r.astype(out)
    return native


def make_cast(src: dtypes.DType, dst: dtypes.DType) -> Callable[[np.ndarray], np.ndarray]:
    out = dst.np_dtype
    if src is dst:
        return lambda x: x
    if dst is dtypes.bool_:
        if is_narrow_float(src):
            return lambda x: x.astype(F32) != 0
        return lambda x: x != 0
    if dst.is_float:
        # ints go through f64 (exact for <= 32 bits) so the final rounding is the only one
        wide = F64 if (not src.is_float or src is dtypes.float64) else F32
        if saturates(dst):
            big = float(ml_dtypes.finfo(out).max)
            return lambda x: np.clip(x.astype(wide), -big, big).astype(out)
        return lambda x: x.astype(wide).astype(out)
    # dst is an integer
    if src.is_float:
        info = np.iinfo(out)
        lo = float(info.min)
        hi = float(info.max) if dst.bits < 64 else float(np.nextafter(2.0**63, 0))  # largest f64 < 2**63

        def f2i(x):
            y = np.trunc(x.astype(F64))
            y = np.where(np.isnan(y), 0.0, np.clip(y, lo, hi))  # cvt.rzi.sat: NaN -> 0
            return y.astype(out)
        return f2i
    return lambda x: x.astype(out)  # int -> int wraps, bool -> 0/1
