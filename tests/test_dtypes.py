"""`tilec.dtypes`: the promotion table, weak Python scalars, and the numpy / IR mapping
(plus one kernel per dtype showing that a tensor of it loads and stores unchanged)."""

from __future__ import annotations

import itertools

import ml_dtypes
import numpy as np
import pytest

import tilec as ct
from tilec import dtypes as dt

FLOATS = [d for d in dt.ALL if d.is_float]
INTS = [d for d in dt.ALL if d.is_int]
NAMES = {d.name: d for d in dt.ALL}


@pytest.fixture(autouse=True)
def _no_disk_cache(monkeypatch):
    monkeypatch.setenv("TILEC_DISABLE_CACHE", "1")   # trace every kernel: the front end is under test


def exact_values(d: dt.DType) -> np.ndarray:
    """Every finite value of an <= 16-bit float, a dense sample of wider ones, the
    extremes of integers."""
    if d.is_float and d.bits <= 16:
        raw = np.arange(2 ** d.bits, dtype=np.uint16 if d.bits == 16 else np.uint8)
        with np.errstate(invalid="ignore"):
            vals = raw.view(d.np_dtype).astype(np.float64)
        return vals[np.isfinite(vals)]
    if d.is_float:
        info = ml_dtypes.finfo(d.np_dtype)
        return np.array([float(info.max), -float(info.max), float(info.smallest_subnormal), 1 + float(info.eps)])
    if d is dt.bool_:
        return np.array([0, 1], np.float64)
    info = np.iinfo(d.np_dtype)
    return np.array([info.min, info.max, 0, 1], dtype=object)


# ======================================================================== the table


# (a, b) -> promote(a, b), the rules of the module docstring, written out by hand
TABLE = {
    ("f16", "f32"): "f32", ("f16", "bf16"): "f32", ("bf16", "f32"): "f32", ("f32", "f64"): "f64",
    ("f8E4M3FN", "f8E5M2"): "f16", ("f8E4M3FN", "f16"): "f16", ("f8E5M2", "bf16"): "bf16",
    ("f4E2M1FN", "f8E4M3FN"): "f8E4M3FN", ("f4E2M1FN", "f8E5M2"): "f8E5M2",
    ("i8", "i16"): "i16", ("i8", "i32"): "i32", ("i32", "i64"): "i64",
    ("ui8", "i8"): "i16", ("ui8", "i16"): "i16", ("ui8", "i32"): "i32", ("ui32", "i32"): "i64",
    ("ui32", "i8"): "i64", ("ui32", "i64"): "i64", ("ui8", "ui32"): "ui32",
    ("i1", "i8"): "i8", ("i1", "ui8"): "ui8", ("i1", "f16"): "f16",
    ("i32", "f16"): "f16", ("i64", "bf16"): "bf16", ("ui8", "f32"): "f32", ("i8", "f8E4M3FN"): "f8E4M3FN",
}


@pytest.mark.parametrize("a,b", list(TABLE), ids=[f"{a}+{b}" for a, b in TABLE])
def test_promotion_table(a, b):
    assert dt.promote(NAMES[a], NAMES[b]) is NAMES[TABLE[(a, b)]]
    assert dt.promote(NAMES[b], NAMES[a]) is NAMES[TABLE[(a, b)]]


def test_promote_is_commutative_and_idempotent():
    for a, b in itertools.product(dt.ALL, repeat=2):
        assert dt.promote(a, b) is dt.promote(b, a), (a, b)
    for a in dt.ALL:
        assert dt.promote(a, a) is a


def test_promote_result_dominates_both_sides():
    """promote(a, b) then promote with a or b again changes nothing (a least upper bound)."""
    for a, b in itertools.product(dt.ALL, repeat=2):
        c = dt.promote(a, b)
        assert dt.promote(c, a) is c and dt.promote(c, b) is c, (a, b, c)


@pytest.mark.parametrize("a,b", [(a, b) for a, b in itertools.combinations(dt.ALL, 2)
                                 if a.kind == b.kind or (a.is_int and b.is_int) or dt.bool_ in (a, b)],
                         ids=lambda d: d.name)
def test_promotion_within_a_kind_is_lossless(a, b):
    """Between two floats, or two integers (or bool and anything), the result holds every
    value of both inputs exactly (floats beating integers is the one lossy rule)."""
    c = dt.promote(a, b)
    for src in (a, b):
        vals = exact_values(src)
        if c.is_float:
            back = vals.astype(np.float64).astype(c.np_dtype).astype(np.float64)
            np.testing.assert_array_equal(back, vals.astype(np.float64), err_msg=f"{src.name} -> {c.name}")
        else:
            lo, hi = (0, 1) if c is dt.bool_ else (np.iinfo(c.np_dtype).min, np.iinfo(c.np_dtype).max)
            assert all(lo <= int(v) <= hi for v in vals), f"{src.name} -> {c.name}"


def test_floats_beat_integers():
    for f, i in itertools.product(FLOATS, INTS + [dt.bool_]):
        assert dt.promote(f, i) is (f if f is not dt.float8_e8m0fnu else dt.bfloat16)


def test_e8m0_promotes_like_bf16():
    """e8m0 holds only powers of two (no zero, no sign): mixed with anything else it
    becomes a type that holds its values and the other side's."""
    e8 = dt.float8_e8m0fnu
    assert dt.promote(e8, e8) is e8
    assert dt.promote(e8, dt.bfloat16) is dt.bfloat16 and dt.promote(e8, dt.float8_e4m3fn) is dt.bfloat16
    assert dt.promote(e8, dt.float16) is dt.float32 and dt.promote(e8, dt.bool_) is dt.bfloat16


@pytest.mark.parametrize("d,value,want", [
    (dt.float16, 2.0, dt.float16), (dt.float16, 2, dt.float16), (dt.bfloat16, 1e10, dt.bfloat16),
    (dt.int8, 3, dt.int8), (dt.int32, 2.5, dt.float32), (dt.uint8, 1.0, dt.float32),
    (dt.bool_, 1, dt.int32), (dt.bool_, 1.0, dt.float32), (dt.bool_, True, dt.bool_),
    (dt.int16, True, dt.int16), (dt.float8_e4m3fn, 0.5, dt.float8_e4m3fn),
])
def test_weak_python_scalars(d, value, want):
    assert dt.promote_with_scalar(d, value) is want


def test_python_scalar_dtype():
    assert dt.python_scalar_dtype(True) is dt.bool_
    assert dt.python_scalar_dtype(1) is dt.int32 and dt.python_scalar_dtype(-2**31) is dt.int32
    assert dt.python_scalar_dtype(2**31) is dt.int64
    assert dt.python_scalar_dtype(1.0) is dt.float32
    with pytest.raises(TypeError):
        dt.python_scalar_dtype("1")


def test_accumulators():
    for d in FLOATS:
        assert dt.accumulator_for(d) is dt.float32 or d is dt.float64
    for d in INTS:
        assert dt.accumulator_for(d) is dt.int32


# ======================================================================== numpy and IR mapping


@pytest.mark.parametrize("d", dt.ALL, ids=lambda d: d.name)
def test_numpy_and_ir_round_trip(d):
    assert dt.from_numpy(d.np_dtype) is d
    assert dt.lookup(d) is d and dt.lookup(d.name) is d and dt.lookup(d.api_name) is d
    assert dt.lookup(d.np_dtype) is d
    assert dt.from_ir(d.ir_type) is d
    assert d.ir_type is d.ir_type                      # built once
    assert d.np_dtype.itemsize * 8 >= d.bits and (d.bits < 8 or d.np_dtype.itemsize * 8 == d.bits)
    assert repr(d) == f"tilec.{d.api_name}"
    assert (d.np_dtype.kind == "f" or d.np_dtype.kind == "V") == d.is_float or d is dt.bool_



def test_every_dtype_is_exported():
    for d in dt.ALL:
        assert getattr(ct, d.api_name if d is not dt.bool_ else "bool_") is d, d


def test_numpy_scalar_types_and_names():
    assert dt.lookup(np.float16) is dt.float16 and dt.lookup("float32") is dt.float32
    assert dt.lookup(ml_dtypes.bfloat16) is dt.bfloat16 and dt.lookup(ml_dtypes.float8_e5m2) is dt.float8_e5m2
    assert dt.lookup(np.bool_) is dt.bool_ and dt.lookup("i1") is dt.bool_
    assert dt.lookup(np.uint32) is dt.uint32
    for bad in ("float17", np.complex64, np.uint16, object, None, 3):
        with pytest.raises(KeyError):
            dt.lookup(bad)
    with pytest.raises(KeyError):
        dt.from_numpy(np.complex128)


# ======================================================================== every dtype through a kernel


@ct.kernel
def copy_kernel(X: ct.Tensor, Z: ct.Tensor, N: ct.Constant[int]):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[i * N], size=[N])
    assert x.dtype is Z.dtype
    ct.store_tile(Z, offset=[i * N], tile=x)


@pytest.mark.parametrize("d", dt.ALL, ids=lambda d: d.name)
def test_every_dtype_loads_and_stores_unchanged(d):
    vals = exact_values(d)
    if d.is_float:
        vals = vals[np.isfinite(vals.astype(np.float64))]
    x = np.resize(np.asarray(vals).astype(d.np_dtype), 37)
    z = np.zeros_like(x)
    copy_kernel[(3,)](x, z, 16)
    assert z.dtype == x.dtype
    np.testing.assert_array_equal(z.view(np.uint8), x.view(np.uint8))
