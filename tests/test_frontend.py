"""The front end, one behaviour per tiny kernel, run on the CPU backend and checked
against numpy float64 (or a value derived by hand).

Kernels take the operation under test as a `ct.Constant` (an `operator` function or a
`ct` function), so one kernel serves many operations and the Python-level dispatch
(`OP(x, y)` at trace time) is itself part of what is tested.
"""

from __future__ import annotations

import math
import operator

import ml_dtypes
import numpy as np
import pytest

import tilec as ct

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _no_disk_cache(monkeypatch):
    monkeypatch.setenv("TILEC_DISABLE_CACHE", "1")   # trace every kernel: the front end is under test


def f64(a):
    return np.asarray(a).astype(np.float64)


# ======================================================================== elementwise


@ct.kernel
def binary_kernel(X: ct.Tensor, Y: ct.Tensor, Z: ct.Tensor, OP: ct.Constant, N: ct.Constant[int]):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[i * N], size=[N])
    y = ct.load_tile(Y, offset=[i * N], size=[N])
    ct.store_tile(Z, offset=[i * N], tile=OP(x, y))


def run_binary(op, x, y, out_dtype=np.float32, n=16):
    z = np.full(x.shape, 77, out_dtype)
    binary_kernel[(ct.cdiv(x.size, n),)](x, y, z, op, n)
    return z


FLOAT_BINOPS = [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow,
                ct.maximum, ct.minimum]


@pytest.mark.parametrize("op", FLOAT_BINOPS, ids=lambda f: f.__name__)
def test_float_binary(op):
    x = RNG.uniform(0.5, 3, 40).astype(np.float32)
    y = RNG.uniform(-2, 2, 40).astype(np.float32)
    ref = {ct.maximum: np.maximum, ct.minimum: np.minimum}.get(op, op)(f64(x), f64(y))
    np.testing.assert_allclose(run_binary(op, x, y), ref, rtol=1e-6)


# Python semantics: // rounds toward -inf, % takes the sign of the divisor
INT_X = np.array([7, -7, 7, -7, 0, 5, -1, 100, -100, 3, -3, 9, 1, -9, 6, -6], np.int32)
INT_Y = np.array([2, 2, -2, -2, 3, -5, 3, 7, 7, -4, -4, 9, -1, 2, -6, 4], np.int32)


@pytest.mark.parametrize("op", [operator.add, operator.sub, operator.mul, operator.floordiv,
                                operator.mod, ct.maximum, ct.minimum], ids=lambda f: f.__name__)
def test_int_binary_python_semantics(op):
    z = run_binary(op, INT_X, INT_Y, np.int32)
    ref = np.array([{ct.maximum: max, ct.minimum: min}.get(op, op)(int(a), int(b))
                    for a, b in zip(INT_X, INT_Y)])
    np.testing.assert_array_equal(z, ref)


def _rsub(x, y): return 3 - x                     # noqa: E704
def _rdiv(x, y): return 3 / x                     # noqa: E704
def _rfloordiv(x, y): return -7 // x              # noqa: E704
def _rmod(x, y): return -7 % x                    # noqa: E704
def _rpow(x, y): return 2 ** x                    # noqa: E704
def _radd_mul(x, y): return 1 + 2 * x             # noqa: E704


@pytest.mark.parametrize("op,ref", [(_rsub, lambda x: 3 - x), (_rdiv, lambda x: 3 / x),
                                    (_rfloordiv, lambda x: -7 // x), (_rmod, lambda x: -7 % x),
                                    (_rpow, lambda x: 2.0 ** x), (_radd_mul, lambda x: 1 + 2 * x)],
                         ids=lambda f: getattr(f, "__name__", ""))
def test_python_scalar_on_the_left(op, ref):
    x = np.array([1, -2, 3, -4, 5, 2, -3, 7], np.int32)
    np.testing.assert_allclose(run_binary(op, x, x), ref(f64(x)), rtol=1e-6)
    xf = x.astype(np.float32)
    np.testing.assert_allclose(run_binary(op, xf, xf), ref(f64(xf)), rtol=1e-6)


def test_int_true_division_is_float():
    z = run_binary(operator.truediv, INT_X, INT_Y, np.float32)
    np.testing.assert_allclose(z, INT_X / INT_Y, rtol=1e-7)


def test_int_pow():
    x = np.arange(-3, 13, dtype=np.int32)
    y = np.array([0, 1, 2, 3] * 4, np.int32)
    np.testing.assert_allclose(run_binary(operator.pow, x, y), f64(x) ** y, rtol=1e-7)


@pytest.mark.parametrize("op", [operator.lt, operator.le, operator.gt, operator.ge, operator.eq,
                                operator.ne], ids=lambda f: f.__name__)
def test_comparisons(op):
    x = np.array([1, 2, 3, -1, 0, 5, 5, -7] * 2, np.float32)
    y = np.array([1, 3, 2, -1, 1, 5, 4, -8] * 2, np.float32)
    np.testing.assert_array_equal(run_binary(op, x, y, np.bool_), op(x, y))


@pytest.mark.parametrize("op", [operator.and_, operator.or_, operator.xor], ids=lambda f: f.__name__)
def test_bitwise(op):
    np.testing.assert_array_equal(run_binary(op, INT_X, INT_Y, np.int32), op(INT_X, INT_Y))
    a = np.array([True, False] * 8)
    b = np.array([True, True, False, False] * 4)
    np.testing.assert_array_equal(run_binary(op, a, b, np.bool_), op(a, b))


@ct.kernel
def unary_kernel(X: ct.Tensor, Z: ct.Tensor, OP: ct.Constant, N: ct.Constant[int]):
    x = ct.load_tile(X, offset=[0], size=[N])
    ct.store_tile(Z, offset=[0], tile=OP(x))


def run_unary(op, x, out_dtype=np.float32):
    z = np.full(x.shape, 77, out_dtype)
    unary_kernel[(1,)](x, z, op, x.size)
    return z


def test_unary_neg_abs_pos():
    x = np.array([1.5, -2.25, 0.0, -0.0, 3.0, -7.5, 1e-3, -1e3], np.float32)
    np.testing.assert_array_equal(run_unary(operator.neg, x), -x)
    np.testing.assert_array_equal(run_unary(abs, x), np.abs(x))
    np.testing.assert_array_equal(run_unary(ct.abs, x), np.abs(x))
    np.testing.assert_array_equal(run_unary(operator.pos, x), x)
    i = np.array([3, -4, 0, 2**31 - 1], np.int32)
    np.testing.assert_array_equal(run_unary(operator.neg, i, np.int32), -i)
    np.testing.assert_array_equal(run_unary(abs, i, np.int32), np.abs(i))


def test_invert_ints_and_bools():
    i = np.array([0, 1, -1, 5, -6, 2**31 - 1, -2**31, 100], np.int32)
    np.testing.assert_array_equal(run_unary(operator.invert, i, np.int32), ~i)
    b = np.array([True, False, False, True])
    np.testing.assert_array_equal(run_unary(operator.invert, b, np.bool_), ~b)
    u = np.array([0, 1, 200, 255], np.uint8)
    np.testing.assert_array_equal(run_unary(operator.invert, u, np.uint8), ~u)


def _erf(x):
    return np.array([math.erf(v) for v in x])


MATH = [
    (ct.exp, np.exp, (-5, 5)), (ct.exp2, np.exp2, (-5, 5)), (ct.log, np.log, (0.01, 10)),
    (ct.log2, np.log2, (0.01, 10)), (ct.sqrt, np.sqrt, (0, 10)), (ct.rsqrt, lambda v: 1 / np.sqrt(v), (0.01, 10)),
    (ct.tanh, np.tanh, (-4, 4)), (ct.sigmoid, lambda v: 1 / (1 + np.exp(-v)), (-8, 8)),
    (ct.erf, _erf, (-4, 4)), (ct.sin, np.sin, (-6, 6)), (ct.cos, np.cos, (-6, 6)),
    (ct.floor, np.floor, (-5, 5)), (ct.ceil, np.ceil, (-5, 5)), (ct.relu, lambda v: np.maximum(v, 0), (-3, 3)),
]


@pytest.mark.parametrize("fn,ref,lohi", MATH, ids=[m[0].__name__ for m in MATH])
def test_math_functions(fn, ref, lohi):
    x = RNG.uniform(*lohi, 64).astype(np.float32)
    x[:4] = [lohi[0], lohi[1], 0.5, 1.0] if lohi[0] >= 0 else [lohi[0], lohi[1], -0.5, 0.0]
    np.testing.assert_allclose(run_unary(fn, x), ref(f64(x)), rtol=2e-6, atol=2e-6)


def test_math_on_ints_is_float32():
    x = np.array([1, 4, 9, 16], np.int32)
    np.testing.assert_allclose(run_unary(ct.sqrt, x), [1, 2, 3, 4])
    np.testing.assert_array_equal(run_unary(ct.relu, np.array([-3, 0, 4, -1], np.int32), np.int32), [0, 0, 4, 0])


def test_math_on_f16_rounds_to_f16():
    x = RNG.uniform(-3, 3, 32).astype(np.float16)
    z = run_unary(ct.exp, x, np.float32)
    np.testing.assert_array_equal(z, np.exp(x.astype(np.float32)).astype(np.float16).astype(np.float32))


@ct.kernel
def where_kernel(C: ct.Tensor, X: ct.Tensor, Z1: ct.Tensor, Z2: ct.Tensor, Z3: ct.Tensor,
                 M: ct.Constant[int], N: ct.Constant[int]):
    c = ct.load_tile(C, offset=[0], size=[M])          # [M] conditions, broadcast over rows
    x = ct.load_tile(X, offset=[0, 0], size=[N, M])    # [N, M]
    ct.store_tile(Z1, offset=[0, 0], tile=ct.where(c[None, :] > 0, x, -1.0))
    ct.store_tile(Z2, offset=[0, 0], tile=ct.where(c > 0, 2, x))
    col = ct.sum(x, axis=1, keepdims=True)             # [N, 1]
    ct.store_tile(Z3, offset=[0, 0], tile=ct.where(c > 0, col, 0))


def test_where_broadcast_and_scalars():
    c = np.array([1, -1, 2, 0], np.int32)
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    z1, z2, z3 = (np.zeros((3, 4), np.float32) for _ in range(3))
    where_kernel[(1,)](c, x, z1, z2, z3, 4, 3)
    np.testing.assert_array_equal(z1, np.where(c > 0, x, -1.0))
    np.testing.assert_array_equal(z2, np.where(c > 0, 2.0, x))
    np.testing.assert_allclose(z3, np.where(c > 0, x.sum(1, keepdims=True), 0), rtol=1e-6)


# ======================================================================== dtypes


@ct.kernel
def promote_kernel(X: ct.Tensor, Y: ct.Tensor, Z: ct.Tensor, OP: ct.Constant, WANT: ct.Constant,
                   N: ct.Constant[int]):
    x = ct.load_tile(X, offset=[0], size=[N])
    y = ct.load_tile(Y, offset=[0], size=[N])
    z = OP(x, y)
    assert z.dtype is WANT, f"got {z.dtype}"
    ct.store_tile(Z, offset=[0], tile=z.astype(ct.float64))


@ct.kernel
def promote_scalar_kernel(X: ct.Tensor, Z: ct.Tensor, S: ct.Constant, WANT: ct.Constant, N: ct.Constant[int]):
    x = ct.load_tile(X, offset=[0], size=[N])
    z = x * S
    assert z.dtype is WANT, f"got {z.dtype}"
    ct.store_tile(Z, offset=[0], tile=z.astype(ct.float64))


@pytest.mark.parametrize("a,b,want", [
    (np.float16, np.float32, ct.float32), (np.float16, ml_dtypes.bfloat16, ct.float32),
    (np.uint8, np.int8, ct.int16), (np.int8, np.int32, ct.int32), (np.bool_, np.int8, ct.int8),
    (np.int32, np.float16, ct.float16), (np.float16, np.float16, ct.float16),
], ids=lambda v: getattr(v, "__name__", repr(v)))
def test_promotion_between_tiles(a, b, want):
    x = np.array([1, 2, 3, 100, 0, 1, 0, 1], a)
    y = np.array([1, 0, 1, 100, 1, 1, 0, 0], b)
    z = np.zeros(8, np.float64)
    promote_kernel[(1,)](x, y, z, operator.add, want, 8)
    np.testing.assert_array_equal(z, (f64(x) + f64(y)).astype(want.np_dtype))


def test_int_pow_is_float32():
    x, y = np.array([2, 3, -2, 5], np.int32), np.array([2, -1, 3, 0], np.int32)
    z = np.zeros(4, np.float64)
    promote_kernel[(1,)](x, y, z, operator.pow, ct.float32, 4)
    np.testing.assert_array_equal(z, (f64(x) ** y).astype(np.float32))


def test_int_division_is_float32():
    x, y = np.array([1, 7, -7, 2], np.int32), np.array([3, 2, 2, 4], np.int32)
    z = np.zeros(4, np.float64)
    promote_kernel[(1,)](x, y, z, operator.truediv, ct.float32, 4)
    np.testing.assert_array_equal(z, (x / y).astype(np.float32))


@pytest.mark.parametrize("xdt,s,want", [
    (np.int32, 2.5, ct.float32), (np.float16, 2.0, ct.float16), (np.int8, 3, ct.int8),
    (np.bool_, 3, ct.int32), (ml_dtypes.bfloat16, 0.1, ct.bfloat16),
], ids=lambda v: getattr(v, "__name__", repr(v)))
def test_promotion_with_python_scalar(xdt, s, want):
    x = np.array([1, 3, 0, 1], xdt)
    z = np.zeros(4, np.float64)
    promote_scalar_kernel[(1,)](x, z, s, want, 4)
    np.testing.assert_array_equal(z, (f64(x) * s).astype(want.np_dtype))


def test_f16_times_python_float_rounds_in_f16():
    x = np.array([1.0009765625, 2049, 0.1, 65504], np.float16)   # 65504 * 2 overflows f16 -> inf
    z = np.zeros(4, np.float64)
    promote_scalar_kernel[(1,)](x, z, 2.0, ct.float16, 4)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(z, (x * np.float16(2.0)))
    assert np.isinf(z[3])


@ct.kernel
def cast_kernel(X: ct.Tensor, Z: ct.Tensor, TO: ct.Constant, N: ct.Constant[int]):
    x = ct.load_tile(X, offset=[0], size=[N])
    ct.store_tile(Z, offset=[0], tile=x.astype(TO).astype(ct.float32))


def _ties(dtype):
    """Values exactly halfway between neighbours of `dtype` (round to even decides), plus
    random values, overflow and non-finite ones."""
    info = ml_dtypes.finfo(dtype)
    one = np.float64(1)
    eps = float(info.eps)
    big = min(float(info.max) * 4, 3e38)
    vals = [one + eps / 2, one + 3 * eps / 2, 2 + eps, 2 + 3 * eps, -(one + eps / 2), -(one + 3 * eps / 2),
            big, -big, float(info.max), float(info.smallest_normal) / 2]
    rest = RNG.standard_normal(64 - len(vals)) * 3
    return np.array(vals + list(rest), np.float32)


@pytest.mark.parametrize("to,npd,saturate", [
    (ct.float16, np.float16, False), (ct.bfloat16, ml_dtypes.bfloat16, False),
    (ct.float8_e4m3fn, ml_dtypes.float8_e4m3fn, True), (ct.float8_e5m2, ml_dtypes.float8_e5m2, True),
], ids=["f16", "bf16", "e4m3fn", "e5m2"])
def test_float_narrowing_round_to_nearest_even(to, npd, saturate):
    x = _ties(npd)
    if not saturate:
        x = x[f64(np.abs(x)) <= float(ml_dtypes.finfo(npd).max) * 1.5]
    z = np.zeros(x.shape, np.float32)
    cast_kernel[(1,)](x, z, to, x.size)
    src = np.clip(x, -float(ml_dtypes.finfo(npd).max), float(ml_dtypes.finfo(npd).max)) if saturate else x
    np.testing.assert_array_equal(z, src.astype(npd).astype(np.float32))
    # hand-checked ties: 1 + eps/2 -> 1 (even), 1 + 3eps/2 -> 1 + 2eps
    eps = float(ml_dtypes.finfo(npd).eps)
    assert z[0] == 1.0 and z[1] == 1 + 2 * eps and z[4] == -1.0
    if saturate:
        big = float(ml_dtypes.finfo(npd).max)
        assert z[6] == big and z[7] == -big


def test_float_to_int_truncates():
    x = np.array([2.7, -2.7, 0.5, -0.5, 3.0, -3.99, 100.9, -100.1], np.float32)
    for to, npd in ((ct.int32, np.int32), (ct.int8, np.int8), ("int16", np.int16)):
        z = np.zeros(8, np.float32)
        cast_kernel[(1,)](x, z, to, 8)
        np.testing.assert_array_equal(z, np.trunc(x))


# ======================================================================== matmul


@ct.kernel
def matmul2d_kernel(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor, USE_OP: ct.Constant[bool],
                    M: ct.Constant[int], N: ct.Constant[int], K: ct.Constant[int]):
    a = ct.load_tile(A, offset=[0, 0], size=[M, K])
    b = ct.load_tile(B, offset=[0, 0], size=[K, N])
    c = a @ b if USE_OP else ct.matmul(a, b)
    ct.store_tile(C, offset=[0, 0], tile=c)


@pytest.mark.parametrize("use_op", [False, True], ids=["ct.matmul", "@"])
def test_matmul_2d(use_op):
    a = RNG.standard_normal((16, 8)).astype(np.float16)
    b = RNG.standard_normal((8, 24)).astype(np.float16)
    c = np.zeros((16, 24), np.float32)
    matmul2d_kernel[(1,)](a, b, c, use_op, 16, 24, 8)
    np.testing.assert_allclose(c, f64(a) @ f64(b), rtol=1e-5, atol=1e-5)


@ct.kernel
def matmul_dtype_kernel(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor, WANT: ct.Constant,
                        M: ct.Constant[int], N: ct.Constant[int], K: ct.Constant[int]):
    c = ct.load_tile(A, offset=[0, 0], size=[M, K]) @ ct.load_tile(B, offset=[0, 0], size=[K, N])
    assert c.dtype is WANT
    ct.store_tile(C, offset=[0, 0], tile=c)


def test_matmul_int8_accumulates_in_int32():
    a = np.full((4, 64), 127, np.int8)
    b = np.full((64, 4), -128, np.int8)
    b[:, 0] = 127
    c = np.zeros((4, 4), np.int32)
    matmul_dtype_kernel[(1,)](a, b, c, ct.int32, 4, 4, 64)
    np.testing.assert_array_equal(c, a.astype(np.int64) @ b.astype(np.int64))   # |c| ~ 1e6 > 2**15


@ct.kernel
def matmul_batched_kernel(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor, H: ct.Constant[int], HB: ct.Constant[int],
                          M: ct.Constant[int], N: ct.Constant[int], K: ct.Constant[int]):
    b = ct.tile_idx(0)
    a = ct.load_tile(A, offset=[b, 0, 0, 0], size=[1, H, M, K])
    w = ct.load_tile(B, offset=[b, 0, 0, 0], size=[1, HB, K, N])    # HB = 1: broadcast over heads
    ct.store_tile(C, offset=[b, 0, 0, 0], tile=a @ w)


@pytest.mark.parametrize("batch,h,hb,m,n,k", [(1, 1, 1, 32, 32, 16), (2, 3, 1, 16, 32, 8), (2, 2, 2, 8, 4, 24)])
def test_matmul_batched_4d(batch, h, hb, m, n, k):
    a = RNG.standard_normal((batch, h, m, k)).astype(np.float16)
    b = RNG.standard_normal((batch, hb, k, n)).astype(np.float16)
    c = np.zeros((batch, h, m, n), np.float32)
    matmul_batched_kernel[(batch,)](a, b, c, h, hb, m, n, k)
    np.testing.assert_allclose(c, f64(a) @ f64(b), rtol=1e-5, atol=1e-5)


@ct.kernel
def matmul_kloop_kernel(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor,
                        BM: ct.Constant[int], BN: ct.Constant[int], BK: ct.Constant[int]):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    acc = ct.zeros([BM, BN])
    for k in range(0, A.shape[1], BK):
        acc += ct.load_tile(A, offset=[i * BM, k], size=[BM, BK]) @ ct.load_tile(B, offset=[k, j * BN], size=[BK, BN])
    ct.store_tile(C, offset=[i * BM, j * BN], tile=acc)


def test_matmul_accumulate_in_runtime_loop():
    a = RNG.standard_normal((20, 37)).astype(ml_dtypes.bfloat16)
    b = RNG.standard_normal((37, 12)).astype(ml_dtypes.bfloat16)
    c = np.full((20, 12), np.nan, np.float32)
    matmul_kloop_kernel[(3, 2)](a, b, c, 8, 8, 16)
    np.testing.assert_allclose(c, f64(a) @ f64(b), rtol=1e-5, atol=1e-5)
    c2 = np.full((20, 12), np.nan, np.float32)
    a2 = RNG.standard_normal((20, 5)).astype(ml_dtypes.bfloat16)
    matmul_kloop_kernel[(3, 2)](a2, b[:5].copy(), c2, 8, 8, 16)     # K < BK: one ragged step
    np.testing.assert_allclose(c2, f64(a2) @ f64(b[:5]), rtol=1e-5, atol=1e-5)
    assert len(matmul_kloop_kernel._cache) == 1                        # K is a run-time value


# ======================================================================== reductions


@ct.kernel
def reduce_kernel(X: ct.Tensor, Z: ct.Tensor, FN: ct.Constant, AXIS: ct.Constant, KEEP: ct.Constant[bool],
                  SHAPE: ct.Constant, OUT: ct.Constant):
    x = ct.load_tile(X, offset=[0, 0, 0], size=SHAPE)
    r = FN(x, axis=AXIS, keepdims=KEEP)
    shape = () if r.shape is None else tuple(r.shape)   # a full reduction is a scalar
    assert shape == OUT, f"shape {r.shape}"
    assert r.dtype is (ct.int32 if FN in (ct.argmax, ct.argmin) else ct.float32)
    ct.store_tile(Z, offset=[0], tile=ct.full([1], r) if r.shape is None else r.reshape([math.prod(OUT)]))


REDUCTIONS = [(ct.sum, np.sum), (ct.max, np.max), (ct.min, np.min), (ct.argmax, np.argmax), (ct.argmin, np.argmin)]


@pytest.mark.parametrize("fn,ref,axis", [
    (fn, ref, axis) for fn, ref in REDUCTIONS for axis in [0, 1, -1, -3, (0, 2), (-1, 0, 1), (1,), None]
    if not (fn in (ct.argmax, ct.argmin) and isinstance(axis, tuple) and len(axis) > 1)   # an error: test_errors
], ids=lambda v: getattr(v, "__name__", repr(v)))
@pytest.mark.parametrize("keep", [False, True])
def test_reductions(fn, ref, axis, keep):
    shape = (3, 5, 4)
    x = RNG.integers(-20, 20, shape).astype(np.float32)   # many ties: argmax must pick the first
    if fn in (ct.argmax, ct.argmin) and isinstance(axis, tuple):
        want = ref(x, axis=axis[0], keepdims=keep)
    elif fn in (ct.argmax, ct.argmin) and axis is None and keep:
        want = ref(x).reshape((1, 1, 1))          # index into the flattened tile
    else:
        want = ref(x, axis=axis, keepdims=keep)
    want = np.asarray(want)
    z = np.full(want.size, -999, np.float32)
    reduce_kernel[(1,)](x, z, fn, axis, keep, shape, tuple(want.shape))
    np.testing.assert_allclose(z, want.reshape(-1), rtol=1e-6)


@ct.kernel
def reduce_methods_kernel(X: ct.Tensor, Z: ct.Tensor):
    x = ct.load_tile(X, offset=[0, 0], size=[4, 8]).astype(ct.float16)
    s = x.sum(axis=1)                     # f16 sums accumulate (and return) in f32
    assert s.dtype is ct.float32
    m = x.max(0, True).astype(ct.float32)     # [1, 8]
    n = x.min()
    ct.store_tile(Z, offset=[0], tile=ct.reshape(s, [4]) + ct.sum(m) + n)


def test_reduction_methods_and_f16_sum():
    x = RNG.uniform(-4, 4, (4, 8)).astype(np.float32)
    z = np.zeros(4, np.float32)
    reduce_methods_kernel[(1,)](x, z)
    h = f64(x.astype(np.float16))
    np.testing.assert_allclose(z, h.sum(1) + h.max(0).sum() + h.min(), rtol=1e-5)


# ======================================================================== shapes


@ct.kernel
def shapes_kernel(X: ct.Tensor, Z1: ct.Tensor, Z2: ct.Tensor, Z3: ct.Tensor, Z4: ct.Tensor, Z5: ct.Tensor,
                  Z6: ct.Tensor, Z7: ct.Tensor):
    x = ct.load_tile(X, offset=[0, 0, 0], size=[2, 3, 4])
    ct.store_tile(Z1, offset=[0, 0, 0], tile=ct.transpose(x))                     # [2, 4, 3]
    ct.store_tile(Z2, offset=[0, 0, 0], tile=x.T)                                 # [2, 4, 3]
    ct.store_tile(Z3, offset=[0, 0, 0], tile=ct.permute(x, [2, 0, 1]))            # [4, 2, 3]
    ct.store_tile(Z4, offset=[0, 0], tile=x.reshape(6, 4))                        # [6, 4]
    row = x.reshape([24])[None, :]                                                # [1, 24]
    ct.store_tile(Z5, offset=[0, 0], tile=ct.broadcast_to(row, [3, 24]) + ct.arange(3)[:, None])
    col = ct.expand_dims(ct.arange(5), 1)                                         # [5, 1]
    ct.store_tile(Z6, offset=[0, 0], tile=ct.broadcast_to(col, [5, 2]) * ct.expand_dims(ct.arange(2), -2))
    ct.store_tile(Z7, offset=[0, 0, 0, 0], tile=x[None, ...].permute(0, 3, 1, 2).transpose(0, 2, 1, 3))


@ct.kernel
def transpose2d_kernel(X: ct.Tensor, Z1: ct.Tensor, Z2: ct.Tensor, Z3: ct.Tensor):
    x = ct.load_tile(X, offset=[0, 0], size=[3, 5])
    ct.store_tile(Z1, offset=[0, 0], tile=x.T)
    ct.store_tile(Z2, offset=[0, 0], tile=ct.transpose(x) * 2)
    ct.store_tile(Z3, offset=[0, 0], tile=x.permute(1, 0) @ x)          # [5, 3] @ [3, 5]


def test_transpose_2d():
    x = RNG.standard_normal((3, 5)).astype(np.float32)
    z1, z2, z3 = np.zeros((5, 3), np.float32), np.zeros((5, 3), np.float32), np.zeros((5, 5), np.float32)
    transpose2d_kernel[(1,)](x, z1, z2, z3)
    np.testing.assert_array_equal(z1, x.T)
    np.testing.assert_array_equal(z2, x.T * 2)
    np.testing.assert_allclose(z3, f64(x).T @ f64(x), rtol=1e-5, atol=1e-6)


def test_shape_ops():
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    outs = [np.zeros(s, np.float32) for s in [(2, 4, 3), (2, 4, 3), (4, 2, 3), (6, 4), (3, 24), (5, 2), (1, 2, 4, 3)]]
    shapes_kernel[(1,)](x, *outs)
    np.testing.assert_array_equal(outs[0], np.swapaxes(x, -1, -2))
    np.testing.assert_array_equal(outs[1], np.swapaxes(x, -1, -2))
    np.testing.assert_array_equal(outs[2], x.transpose(2, 0, 1))
    np.testing.assert_array_equal(outs[3], x.reshape(6, 4))
    np.testing.assert_array_equal(outs[4], x.reshape(1, 24) + np.arange(3, dtype=np.float32)[:, None])
    np.testing.assert_array_equal(outs[5], np.arange(5)[:, None] * np.arange(2)[None, :])
    np.testing.assert_array_equal(outs[6], x[None].transpose(0, 3, 1, 2).transpose(0, 2, 1, 3))


@ct.kernel
def creation_kernel(Z1: ct.Tensor, Z2: ct.Tensor, Z3: ct.Tensor, Z4: ct.Tensor, Z5: ct.Tensor, v: float):
    ct.store_tile(Z1, offset=[0, 0], tile=ct.full([2, 3], 7))
    ct.store_tile(Z2, offset=[0, 0], tile=ct.zeros([2, 3], ct.int32) + ct.ones([2, 3], "float16"))
    ct.store_tile(Z3, offset=[0], tile=ct.arange(3, 11))
    ct.store_tile(Z4, offset=[0, 0], tile=ct.full([2, 3], v, ct.float16))     # run-time fill value
    z = ct.zeros([4])
    assert z.dtype is ct.float32 and ct.ones([4], ct.int8).dtype is ct.int8 and ct.full([1], 1.5).dtype is ct.float32
    ct.store_tile(Z5, offset=[0], tile=ct.full([4], ct.tile_idx(0) + 3) + z)


def test_creation():
    z1, z2, z4 = np.zeros((2, 3), np.int32), np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32)
    z3, z5 = np.zeros(8, np.int32), np.zeros(4, np.float32)
    creation_kernel[(1,)](z1, z2, z3, z4, z5, 0.1)
    assert (z1 == 7).all() and (z2 == 1).all() and (z5 == 3).all()
    np.testing.assert_array_equal(z3, np.arange(3, 11))
    np.testing.assert_array_equal(z4, np.full((2, 3), np.float16(0.1), np.float32))


# ======================================================================== random


@ct.kernel
def rand_kernel(Z: ct.Tensor, seed: int, BN: ct.Constant[int]):
    i = ct.tile_idx(0)
    offs = i * BN + ct.arange(BN)
    ct.store_tile(Z, offset=[i * BN], tile=ct.rand(seed, offs))


def test_rand_uniform_and_reproducible():
    n = 8192
    a, b, c = (np.zeros(n, np.float32) for _ in range(3))
    rand_kernel[(n // 512,)](a, 123, 512)
    rand_kernel[(n // 512,)](b, 123, 512)
    rand_kernel[(n // 512,)](c, 124, 512)
    np.testing.assert_array_equal(a, b)
    assert np.mean(a == c) < 0.01
    assert 0 <= a.min() and a.max() < 1
    assert abs(a.mean() - 0.5) < 0.02 and abs(a.var() - 1 / 12) < 0.01
    hist = np.histogram(a, bins=8, range=(0, 1))[0]
    assert hist.min() > 0.8 * n / 8
    assert len(np.unique(a)) > 0.95 * n                     # counters differ -> numbers differ


@ct.kernel
def dropout_kernel(X: ct.Tensor, Z: ct.Tensor, p: float, seed: int, BM: ct.Constant[int], BN: ct.Constant[int]):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    x = ct.load_tile(X, offset=[i * BM, j * BN], size=[BM, BN])
    ct.store_tile(Z, offset=[i * BM, j * BN], tile=ct.dropout(x, p, seed))


def test_dropout():
    x = RNG.uniform(1, 2, (64, 128)).astype(np.float32)
    runs = {}
    for seed in (5, 5, 6):
        for p in (0.25, 0.7):
            z = np.zeros_like(x)
            dropout_kernel[(4, 2)](x, z, p, seed, 16, 64)
            kept = z != 0
            assert abs(np.mean(~kept) - p) < 0.03, (p, np.mean(~kept))
            np.testing.assert_allclose(z[kept], x[kept] / (1 - p), rtol=1e-6)
            runs.setdefault((seed, p), []).append(kept)
    np.testing.assert_array_equal(*runs[(5, 0.25)])            # same seed -> same mask
    assert np.mean(runs[(5, 0.25)][0] != runs[(6, 0.25)][0]) > 0.2
    for kept in runs[(5, 0.25)]:                               # every tile drops different elements
        t = kept.reshape(4, 16, 2, 64).transpose(0, 2, 1, 3).reshape(8, -1)
        assert len({row.tobytes() for row in t}) == 8


# ======================================================================== memory


@ct.kernel
def load_pad_kernel(X: ct.Tensor, Z: ct.Tensor, PAD: ct.Constant, SIZE: ct.Constant, BC: ct.Constant[bool]):
    offs = []
    for d in ct.static_range(len(SIZE)):
        offs.append(ct.tile_idx(d) * SIZE[d])
    x = ct.load_tile(X, offset=offs, size=SIZE, padding=PAD, boundary_check=BC)
    ct.store_tile(Z, offset=offs, tile=x)


def _padded_reference(x, size, grid, pad):
    full = np.full([g * s for g, s in zip(grid, size)], pad, x.dtype)
    full[tuple(slice(0, n) for n in x.shape)] = x
    return full


@pytest.mark.parametrize("shape,size", [((37,), (16,)), ((5, 7), (4, 4)), ((3, 5, 6), (2, 4, 4)),
                                        ((2, 3, 5, 3), (1, 2, 4, 2))], ids=["1d", "2d", "3d", "4d"])
@pytest.mark.parametrize("pad", [0, -1.5, float("-inf")], ids=["0", "-1.5", "-inf"])
def test_load_boundary_padding(shape, size, pad):
    x = RNG.standard_normal(shape).astype(np.float32)
    grid = tuple(-(-n // s) for n, s in zip(shape, size))
    z = np.full([g * s for g, s in zip(grid, size)], np.nan, np.float32)   # larger than X: sees the padding
    load_pad_kernel[grid](x, z, pad, size, True)
    np.testing.assert_array_equal(z, _padded_reference(x, size, grid, pad))


def test_load_without_boundary_check_in_bounds():
    x = RNG.standard_normal((8, 12)).astype(np.float32)
    z = np.zeros_like(x)
    load_pad_kernel[(2, 3)](x, z, 0, (4, 4), False)
    np.testing.assert_array_equal(z, x)


def test_load_pad_int_tensor():
    x = np.arange(10, dtype=np.int32)
    z = np.zeros(16, np.int32)
    load_pad_kernel[(2,)](x, z, -3, (8,), True)
    np.testing.assert_array_equal(z, list(range(10)) + [-3] * 6)


@ct.kernel
def shifted_copy_kernel(X: ct.Tensor, Z: ct.Tensor, shift: int, BM: ct.Constant[int], BN: ct.Constant[int]):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    r = i * BM - shift          # not a multiple of the tile, negative for the first row of tiles
    c = j * BN + shift
    x = ct.load_tile(X, offset=[r, c], size=[BM, BN])
    ct.store_tile(Z, offset=[r, c], tile=x + 1.0)


def test_unaligned_offsets_and_in_bounds_store():
    x = RNG.standard_normal((11, 13)).astype(np.float32)
    for shift in (0, 3, 5):
        z = np.full((11, 13), np.nan, np.float32)
        grid = (-(-(11 + shift) // 4), -(-(13 - shift) // 4))
        shifted_copy_kernel[grid](x, z, shift, 4, 4)
        want = np.full((11, 13), np.nan, np.float32)
        want[:, shift:] = x[:, shift:] + 1      # columns left of `shift` are never covered
        np.testing.assert_array_equal(z, want)


@ct.kernel
def store_oob_kernel(Z: ct.Tensor, r: int, c: int):
    ct.store_tile(Z, offset=[r, c], tile=ct.full([4, 4], 1.0) + ct.arange(4)[None, :])


def test_store_writes_only_in_bounds():
    for r, c in ((-2, -3), (4, 3), (-10, 0), (6, 6)):
        z = np.zeros((6, 6), np.float32)
        store_oob_kernel[(1,)](z, r, c)
        want = np.zeros((10 + 6 + 10, 10 + 6 + 10), np.float32)
        want[10 + r:10 + r + 4, 10 + c:10 + c + 4] = 1 + np.arange(4)
        np.testing.assert_array_equal(z, want[10:16, 10:16])


@ct.kernel
def atomic_sum_kernel(X: ct.Tensor, Z: ct.Tensor, BN: ct.Constant[int]):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    x = ct.load_tile(X, offset=[i, j * BN], size=[1, BN])
    ct.store_tile(Z, offset=[0], tile=ct.sum(x, axis=1), mode="atomic_add")       # every program: Z[0]
    ct.store_tile(Z, offset=[1], tile=ct.full([2], 1.0), mode="atomic_add")       # Z[1], Z[2] += 1


def test_atomic_add_from_many_programs():
    x = RNG.integers(-5, 5, (6, 40)).astype(np.float32)
    z = np.array([0.5, 10, 0, 0], np.float32)
    atomic_sum_kernel[(6, 5)](x, z, 8)
    np.testing.assert_array_equal(z, [0.5 + x.sum(), 10 + 30, 30, 0])


# ======================================================================== grids


@ct.kernel
def grid_kernel(Z: ct.Tensor, RANK: ct.Constant[int]):
    lin = 0
    for d in ct.static_range(RANK):
        lin = lin * ct.num_tiles(d) + ct.tile_idx(d)
    idx = []
    for d in ct.static_range(RANK):
        idx = idx + [ct.tile_idx(d)]
    ct.store_tile(Z, offset=idx, tile=ct.full([1] * RANK, lin))


@pytest.mark.parametrize("grid", [(5,), (2, 3), (2, 3, 4), (2, 1, 3, 2), (2, 2, 1, 3, 2)])
def test_grid_ranks_tile_idx_num_tiles(grid):
    z = np.full(grid, -1, np.int32)
    grid_kernel[grid](z, len(grid))
    np.testing.assert_array_equal(z, np.arange(math.prod(grid)).reshape(grid))


@ct.kernel
def attention_grid_kernel(X: ct.Tensor, Z: ct.Tensor, T: ct.Constant[int]):
    b = ct.tile_idx(0)
    h = ct.tile_idx(1)
    i = ct.tile_idx(2)
    j = ct.tile_idx(3)
    x = ct.load_tile(X, offset=[b, h, i * T, j * T], size=[1, 1, T, T])
    ct.store_tile(Z, offset=[b, h, j * T, i * T], tile=x.permute(0, 1, 3, 2) * (1 + j + ct.num_tiles(3) * i))


def test_4d_grid_like_attention():
    b, h, s = 2, 3, 32
    x = RNG.standard_normal((b, h, s, s)).astype(np.float32)
    z = np.zeros_like(x)
    attention_grid_kernel[b, h, s // 16, s // 16](x, z, 16)
    scale = np.kron(1 + np.arange(2)[None, :] + 2 * np.arange(2)[:, None], np.ones((16, 16))).T.astype(np.float32)
    np.testing.assert_array_equal(z, np.swapaxes(x, -1, -2) * scale)


# ======================================================================== run-time sizes and specialisation


@ct.kernel
def rowsum_kernel(X: ct.Tensor, Z: ct.Tensor, BM: ct.Constant[int], BN: ct.Constant[int]):
    i = ct.tile_idx(0)
    acc = ct.zeros([BM])
    n = X.shape[1]
    for j in range(0, n, BN):
        acc = acc + ct.sum(ct.load_tile(X, offset=[i * BM, j], size=[BM, BN]), axis=1)
    ct.store_tile(Z, offset=[i * BM], tile=acc + X.shape[0] * 1000)


def test_runtime_shape_one_compilation():
    for m, n in ((5, 7), (9, 33), (16, 100), (1, 1)):
        x = RNG.standard_normal((m, n)).astype(np.float32)
        z = np.zeros(m, np.float32)
        rowsum_kernel[(-(-m // 4),)](x, z, 4, 8)
        np.testing.assert_allclose(z, x.sum(1) + m * 1000, rtol=1e-6)
    assert len(rowsum_kernel._cache) == 1
    rowsum_kernel[(1,)](np.zeros((3, 3), np.float32), np.zeros(3, np.float32), 4, 16)
    assert len(rowsum_kernel._cache) == 2                   # a new Constant value compiles again


@ct.kernel
def whole_row_kernel(X: ct.Tensor, Z: ct.Tensor):
    i = ct.tile_idx(0)
    n = X.shape[1]                          # used as a tile size: the JIT specialises on it
    x = ct.load_tile(X, offset=[i, 0], size=[1, n])
    ct.store_tile(Z, offset=[i, 0], tile=x - ct.max(x, axis=1, keepdims=True))


def test_shape_as_tile_size_specialises():
    k = whole_row_kernel
    for n, compiled in ((6, 1), (6, 1), (9, 2), (6, 2)):
        x = RNG.standard_normal((3, n)).astype(np.float32)
        x2 = RNG.standard_normal((5, n)).astype(np.float32)   # dim 0 stays dynamic
        for a in (x, x2):
            z = np.zeros_like(a)
            k[(a.shape[0],)](a, z)
            np.testing.assert_array_equal(z, a - a.max(1, keepdims=True))
        assert len(k._cache) == compiled
    assert k.static_dims == {(0, 1)}


@ct.kernel
def scalar_args_kernel(Z: ct.Tensor, a: int, b: float, c, d, N: ct.Constant[int]):
    t = ct.arange(N) * a + b
    ct.store_tile(Z, offset=[0], tile=t * c + d)


def test_scalar_args():
    z = np.zeros(4, np.float32)
    scalar_args_kernel[(1,)](z, 3, 0.5, 2, np.float32(0.25), 4)
    np.testing.assert_array_equal(z, (np.arange(4) * 3 + 0.5) * 2 + 0.25)
    scalar_args_kernel[(1,)](z, -1, 1.5, 1, 0.0, 4)
    np.testing.assert_array_equal(z, np.arange(4) * -1 + 1.5)
    assert len(scalar_args_kernel._cache) == 1


# ======================================================================== control flow


@ct.kernel
def loops_kernel(Z: ct.Tensor, lo: int, hi: int, step: int, N: ct.Constant[int]):
    t = ct.zeros([N])          # carried tile
    s = 0                      # carried Python int -> i32 scalar
    f = 0.5                    # carried Python float -> f32 scalar
    count = 0
    for i in range(lo, hi, step):
        t = t + i
        s = s + i * i
        f = f * 2
        for j in range(i):     # nested, bound from the outer induction variable
            count += 1
    for k in range(3):         # single-argument range with a constant bound is still a loop
        s += k
    ct.store_tile(Z, offset=[0], tile=t)
    ct.store_tile(Z, offset=[N], tile=ct.full([N], s))
    ct.store_tile(Z, offset=[2 * N], tile=ct.full([N], f))
    ct.store_tile(Z, offset=[3 * N], tile=ct.full([N], count))


@pytest.mark.parametrize("lo,hi,step", [(0, 5, 1), (2, 11, 3), (5, 5, 1), (7, 3, 2), (-4, 4, 3)])
def test_for_loops_runtime_bounds_and_carried_values(lo, hi, step):
    z = np.zeros(16, np.float32)
    loops_kernel[(1,)](z, lo, hi, step, 4)
    r = list(range(lo, hi, step))
    np.testing.assert_array_equal(z.reshape(4, 4), [[sum(r)] * 4, [sum(i * i for i in r) + 3] * 4,
                                                    [0.5 * 2 ** len(r)] * 4, [sum(max(i, 0) for i in r)] * 4])
    assert len(loops_kernel._cache) == 1


@ct.kernel
def static_range_kernel(X: ct.Tensor, Z: ct.Tensor, N: ct.Constant[int], REPS: ct.Constant[int]):
    acc = ct.zeros([N])
    pieces = []
    for r in ct.static_range(1, REPS + 1, 2):      # unrolled: r is a Python int
        acc = acc + ct.load_tile(X, offset=[r], size=[N]) * r
        pieces.append(r)
    for w in (10.0, 20.0):                         # iterating a Python tuple unrolls too
        acc = acc + w
    ct.store_tile(Z, offset=[0], tile=acc + len(pieces) * 100)


def test_static_range_unrolls():
    x = np.arange(16, dtype=np.float32)
    z = np.zeros(4, np.float32)
    static_range_kernel[(1,)](x, z, 4, 5)
    rs = [1, 3, 5]
    np.testing.assert_array_equal(z, sum(x[r:r + 4] * r for r in rs) + 30 + 300)


@ct.kernel
def static_if_kernel(X: ct.Tensor, Z: ct.Tensor, MODE: ct.Constant[str], FLAG: ct.Constant[bool]):
    x = ct.load_tile(X, offset=[0], size=[4])
    if MODE == "double":
        y = x * 2
    elif MODE == "neg":
        y = -x
    else:
        y = x
    if FLAG:
        y = y + 100
    if not FLAG and MODE != "neg":
        y = y - 100
    ct.store_tile(Z, offset=[0], tile=y)


def test_compile_time_if():
    x = np.arange(4, dtype=np.float32)
    for mode, flag, want in (("double", True, 2 * x + 100), ("neg", False, -x), ("id", False, x - 100),
                             ("neg", True, 100 - x)):
        z = np.zeros(4, np.float32)
        static_if_kernel[(1,)](x, z, mode, flag)
        np.testing.assert_array_equal(z, want)


@ct.kernel
def runtime_if_kernel(X: ct.Tensor, Z: ct.Tensor, a: int, b: int):
    x = ct.load_tile(X, offset=[0], size=[4])
    y = x
    s = 1
    if a > 0:
        y = x * 2                # assigned in both branches
        s = 10
        only_then = 5.0          # bound in one branch only: not visible after the if
    else:
        y = x * 3
    if a > b:                    # assigned in the then-branch only: else keeps the old value
        y = y + 1
        if b > 0:                # nested run-time if
            s = s + 1000
        else:
            s = s - 1000
    elif a == b:
        s = 42                   # Python constant in one branch, run-time value in the other
    ct.store_tile(Z, offset=[0], tile=y + s)


@pytest.mark.parametrize("a,b", [(1, 0), (1, 2), (-1, -2), (-1, -1), (2, 1), (0, 0), (3, 3)])
def test_runtime_if(a, b):
    x = np.arange(4, dtype=np.float32)
    y, s = (x * 2, 10) if a > 0 else (x * 3, 1)
    if a > b:
        y = y + 1
        s = s + 1000 if b > 0 else s - 1000
    elif a == b:
        s = 42
    z = np.zeros(4, np.float32)
    runtime_if_kernel[(1,)](x, z, a, b)
    np.testing.assert_array_equal(z, y + s)
    assert len(runtime_if_kernel._cache) == 1


@ct.kernel
def if_in_loop_kernel(X: ct.Tensor, Z: ct.Tensor, n: int, thresh: float):
    pos = ct.zeros([4])
    neg = ct.zeros([4])
    npos = 0
    for i in range(n):
        x = ct.load_tile(X, offset=[i * 4], size=[4])
        if i * 0.5 > thresh:
            pos = pos + x
            npos += 1
        else:
            neg = neg + x
    ct.store_tile(Z, offset=[0], tile=pos)
    ct.store_tile(Z, offset=[4], tile=neg)
    ct.store_tile(Z, offset=[8], tile=ct.full([4], npos))


def test_runtime_if_inside_loop():
    x = RNG.standard_normal(40).astype(np.float32)
    z = np.zeros(12, np.float32)
    if_in_loop_kernel[(1,)](x, z, 10, 1.25)
    rows = x.reshape(10, 4)
    sel = np.arange(10) * 0.5 > 1.25
    np.testing.assert_allclose(z[:4], rows[sel].sum(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(z[4:8], rows[~sel].sum(0), rtol=1e-5, atol=1e-6)
    assert (z[8:] == sel.sum()).all()


@ct.kernel
def per_program_if_kernel(Z: ct.Tensor):
    i = ct.tile_idx(0)
    v = ct.full([2], 1.0)
    if i % 2 == 0:                  # differs between programs of one launch
        v = v * 10
    k = 0
    for j in range(i):              # trip count differs between programs
        k += j
    ct.store_tile(Z, offset=[2 * i], tile=v + k)


def test_runtime_control_flow_varies_per_program():
    z = np.zeros(10, np.float32)
    per_program_if_kernel[(5,)](z)
    want = [(10.0 if i % 2 == 0 else 1.0) + sum(range(i)) for i in range(5)]
    np.testing.assert_array_equal(z, np.repeat(want, 2))


def helper_sum_rows(X, row, n, width):
    """A plain Python helper: inlined by the tracer, with its own loop and a return value."""
    acc = ct.zeros([width])
    for r in range(n):
        acc = acc + ct.load_tile(X, offset=[row + r, 0], size=[1, width]).reshape([width])
    return acc, n


def helper_scale(t, factor=2.0):
    if factor == 1.0:
        return t
    return t * factor


def helper_bias(t, bias=None):
    if bias is None:               # `is` on a traced value is decided while tracing
        return t
    if bias is not None and t is not bias:
        return t + bias
    return t * 100


@ct.kernel
def helper_kernel(X: ct.Tensor, Z: ct.Tensor, n: int, W: ct.Constant[int]):
    total, count = helper_sum_rows(X, 1, n, W)
    out = helper_scale(total) + helper_scale(count, factor=1.0)
    ct.store_tile(Z, offset=[0], tile=helper_bias(helper_bias(out), bias=ct.full([W], 0.25)))


def test_inlined_helper_function():
    x = RNG.standard_normal((6, 8)).astype(np.float32)
    z = np.zeros(8, np.float32)
    helper_kernel[(1,)](x, z, 3, 8)
    np.testing.assert_allclose(z, x[1:4].sum(0) * 2 + 3 + 0.25, rtol=1e-5)


class Model:
    def __init__(self, bias):
        self.bias = bias

    @ct.kernel
    def add_kernel(X: ct.Tensor, Z: ct.Tensor, bias: float, N: ct.Constant[int]):
        i = ct.tile_idx(0)
        ct.store_tile(Z, offset=[i * N], tile=ct.load_tile(X, offset=[i * N], size=[N]) + bias)

    def __call__(self, x):
        z = np.zeros_like(x)
        self.add_kernel[(ct.cdiv(x.size, 8),)](x, z, self.bias, 8)
        return z


def test_kernel_in_class_body():
    x = RNG.standard_normal(20).astype(np.float32)
    np.testing.assert_allclose(Model(1.5)(x), x + np.float32(1.5))


@ct.kernel
def builtins_kernel(Z: ct.Tensor, a: int, b: int, f: float):
    lo = min(a, b)                  # builtins on run-time scalars
    hi = max(a, b, 3)
    pick = a if a > b else b * 10   # ternary on run-time scalars
    g = 1.5 if f > 0 else -2.5      # ternary of two Python numbers
    t = ct.arange(4)
    ct.store_tile(Z, offset=[0], tile=ct.full([4], lo))
    ct.store_tile(Z, offset=[4], tile=ct.full([4], hi))
    ct.store_tile(Z, offset=[8], tile=ct.full([4], pick))
    ct.store_tile(Z, offset=[12], tile=ct.full([4], g))
    ct.store_tile(Z, offset=[16], tile=max(t, a) + min(f, 0.0))


@pytest.mark.parametrize("a,b,f", [(1, 2, 0.5), (5, -3, -1.0), (2, 2, 0.0)])
def test_min_max_builtins_and_ternary(a, b, f):
    z = np.zeros(20, np.float32)
    builtins_kernel[(1,)](z, a, b, f)
    np.testing.assert_array_equal(z.reshape(5, 4), [[min(a, b)] * 4, [max(a, b, 3)] * 4,
                                                    [a if a > b else b * 10] * 4, [1.5 if f > 0 else -2.5] * 4,
                                                    np.maximum(np.arange(4), a) + min(f, 0.0)])


@ct.kernel
def merge_kernel(Z: ct.Tensor, a: int):
    g = 1                          # int in one branch, float in the other: float32 after the if
    k = 4                          # the same compile-time value in both branches stays compile-time
    if a > 0:
        g = 2
        k = 8
        h = 0.5
    else:
        g = 2.5
        k = 8
        h = ct.tile_idx(0) + 1     # i32 scalar vs Python float -> float32
    t = ct.zeros([k])              # k is usable as a tile size after the run-time if
    ct.store_tile(Z, offset=[0], tile=t + g + h)


@pytest.mark.parametrize("a", [1, 0])
def test_runtime_if_merges_python_numbers(a):
    z = np.zeros(8, np.float32)
    merge_kernel[(1,)](z, a)
    np.testing.assert_array_equal(z, np.full(8, 2 + 0.5 if a > 0 else 2.5 + 1))


@ct.kernel
def logic_kernel(Z: ct.Tensor, i: int, n: int):
    inside = 0 <= i < n            # chained comparison on run-time scalars
    v = 0
    if inside and not i == 2:
        v = 1
    elif i < 0 or i > 100:
        v = 2
    ct.store_tile(Z, offset=[0], tile=ct.full([1], v))


@pytest.mark.parametrize("i,want", [(0, 1), (2, 0), (4, 1), (5, 0), (-3, 2), (101, 2)])
def test_boolean_logic_on_runtime_scalars(i, want):
    z = np.full(1, -1, np.int32)
    logic_kernel[(1,)](z, i, 5)
    assert z[0] == want


@ct.kernel
def shift_kernel(X: ct.Tensor, Z: ct.Tensor, N: ct.Constant[int]):
    x = ct.load_tile(X, offset=[0], size=[N])
    ct.store_tile(Z, offset=[0], tile=(1 << x) + (x >> 1) + (-64 >> x) + (x << 2))


def test_shifts():
    x = np.arange(6, dtype=np.int32)
    z = np.zeros(6, np.int32)
    shift_kernel[(1,)](x, z, 6)
    np.testing.assert_array_equal(z, (1 << x) + (x >> 1) + (-64 >> x) + (x << 2))


double_then_relu = lambda t: ct.relu(t) * 2 + 1  # noqa: E731


@ct.kernel
def lambda_kernel(X: ct.Tensor, Z: ct.Tensor):
    x = ct.load_tile(X, offset=[0], size=[4])
    ct.store_tile(Z, offset=[0], tile=double_then_relu(x))


def test_module_level_lambda_is_inlined():
    x = np.array([-1, 0, 1, 2], np.float32)
    z = np.zeros(4, np.float32)
    lambda_kernel[(1,)](x, z)
    np.testing.assert_array_equal(z, np.maximum(x, 0) * 2 + 1)


BLOCK_FOR_RANK = (None, 8, 4, 2)


@ct.kernel
def python_uses_of_dims_kernel(X: ct.Tensor, Z: ct.Tensor):
    rows = list(range(X.shape[0]))             # a dim as a Python int (via __index__)
    width = BLOCK_FOR_RANK[X.shape[0]]         # ... and as a Python index
    acc = ct.zeros([width])
    for r in rows:                             # unrolled: iterating a Python list
        acc = acc + ct.load_tile(X, offset=[r, 0], size=[1, width]).reshape([width])
    for r in ct.static_range(X.shape[0]):
        acc = acc + r
    ct.store_tile(Z, offset=[0], tile=acc)


def test_dims_used_as_python_ints_specialise():
    for rows in (2, 3):
        x = RNG.standard_normal((rows, 8)).astype(np.float32)
        z = np.zeros(8, np.float32)
        python_uses_of_dims_kernel[(1,)](x, z)
        w = BLOCK_FOR_RANK[rows]
        want = np.zeros(8, np.float32)
        want[:w] = x[:, :w].sum(0) + sum(range(rows))
        np.testing.assert_allclose(z, want, rtol=1e-6)
    assert python_uses_of_dims_kernel.static_dims == {(0, 0)}


@ct.kernel
def loop_in_if_kernel(Z: ct.Tensor, a: int, n: int):
    t = ct.zeros([4])
    s = ct.tile_idx(0) * 1.0            # a run-time f32 scalar carried through both loops
    if a > 0:
        for i in range(n):
            for j in range(i, n):       # inner bounds from the outer induction variable
                if (i + j) % 2 == 0:
                    t = t + j
                s = s + 1
    else:
        t = t - 1
    ct.store_tile(Z, offset=[0], tile=t * 100 + s)


@pytest.mark.parametrize("a,n", [(1, 5), (0, 5), (1, 0), (1, 1)])
def test_loops_and_ifs_nested(a, n):
    z = np.zeros(4, np.float32)
    loop_in_if_kernel[(1,)](z, a, n)
    if a > 0:
        pairs = [(i, j) for i in range(n) for j in range(i, n)]
        want = sum(j for i, j in pairs if (i + j) % 2 == 0) * 100 + len(pairs)
    else:
        want = -100
    np.testing.assert_array_equal(z, np.full(4, want, np.float32))


@ct.kernel
def misc_kernel(X: ct.Tensor, Z1: ct.Tensor, Z2: ct.Tensor, Z3: ct.Tensor):
    x = ct.load_tile(X, offset=[0], size=[4])
    total = x.sum() + x.max(0) * 2                   # rank-0 tiles broadcast like scalars
    ct.store_tile(Z1, offset=[0], tile=x + total)
    ct.store_tile(Z2, offset=[0], tile=ct.where(x > 0, 1, 2.5))   # two Python numbers -> f32
    u = x.astype(ct.uint8)
    ct.store_tile(Z3, offset=[0], tile=(u - 1) + (u // 3))          # uint8 arithmetic wraps


def test_rank0_where_numbers_uint8():
    x = np.array([0, 1, 200, 255], np.float32)
    z1, z2, z3 = np.zeros(4, np.float32), np.zeros(4, np.float32), np.zeros(4, np.int32)
    misc_kernel[(1,)](x, z1, z2, z3)
    np.testing.assert_array_equal(z1, x + x.sum() + 2 * x.max())
    np.testing.assert_array_equal(z2, np.where(x > 0, 1.0, 2.5))
    u = x.astype(np.uint8)
    np.testing.assert_array_equal(z3, (u - np.uint8(1)) + u // 3)


@ct.kernel
def api_odds_kernel(A: ct.Tensor, B: ct.Tensor, I8: ct.Tensor, Z1: ct.Tensor, Z2: ct.Tensor, Z3: ct.Tensor,
                    Z4: ct.Tensor, s: float):
    a = ct.load_tile(A, offset=[0, 0], size=[4, 8])              # f16
    b = ct.load_tile(B, offset=[0, 0], size=[8, 4])              # f32: a is cast to f32
    c0 = ct.full([4, 4], 0.5)
    ct.store_tile(Z1, offset=[0, 0], tile=ct.matmul(a, b, acc=c0))
    q = ct.load_tile(I8, offset=[0], size=[16])                  # int8: the sum is int32
    total = ct.sum(q, axis=0, keepdims=True)
    assert total.dtype is ct.int32 and len(q) == 16
    ct.store_tile(Z2, offset=[0], tile=total)
    n = int(s * 2)                                               # float scalar -> int32 (truncates)
    f = float(ct.tile_idx(0) + 3)                                # int scalar -> float32
    ct.store_tile(Z3, offset=[0], tile=ct.full([2], n) + f + ct.arange(-1, 1))
    row = ct.arange(3)
    m = row[:, None, None] + row[None, :, None] * 10 + ct.arange(2)[None, None, :] * 100   # [3, 3, 2]
    ct.store_tile(Z4, offset=[0, 0, 0], tile=ct.where(ct.full([3, 3, 2], True), m, -1))


def test_api_odds_and_ends():
    a = RNG.standard_normal((4, 8)).astype(np.float16)
    b = RNG.standard_normal((8, 4)).astype(np.float32)
    q = np.full(16, 100, np.int8)
    z1, z2, z3, z4 = np.zeros((4, 4), np.float32), np.zeros(1, np.int32), np.zeros(2, np.float32), \
        np.zeros((3, 3, 2), np.int32)
    api_odds_kernel[(1,)](a, b, q, z1, z2, z3, z4, 3.7)
    np.testing.assert_allclose(z1, f64(a) @ f64(b) + 0.5, rtol=1e-5, atol=1e-5)
    assert z2[0] == 1600
    np.testing.assert_array_equal(z3, [7 + 3 - 1, 7 + 3 + 0])
    i = np.arange(3)
    np.testing.assert_array_equal(z4, i[:, None, None] + i[None, :, None] * 10 + np.arange(2)[None, None, :] * 100)


def test_full_reduction_is_a_scalar_usable_in_runtime_if():
    """ct.sum(x) over all axes is a scalar: it can drive an `if` and fill a tile."""
    import tilec as ct

    @ct.kernel
    def k(X: ct.Tensor, Y: ct.Tensor):
        i = ct.tile_idx(0)
        x = ct.load_tile(X, [i * 16], [16])
        s = ct.sum(x)
        if s > 0.0:
            ct.store_tile(Y, [i * 16], ct.full([16], s, ct.float32))
        else:
            ct.store_tile(Y, [i * 16], ct.full([16], ct.max(x), ct.float32))

    x = np.random.default_rng(5).standard_normal(64).astype(np.float32)
    y = np.full(64, np.nan, np.float32)
    k[(4,)](x, y)
    chunks = x.astype(np.float64).reshape(4, 16)
    ref = np.concatenate([np.full(16, c.sum() if c.sum() > 0 else c.max()) for c in chunks])
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)
