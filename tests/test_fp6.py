"""fp6 dtypes (`ct.float6_e2m3fn`, `ct.float6_e3m2fn`): the host helpers of `tilec.fp6`
(rounding, dense 4-in-3 packing, the padded 16-byte group layout of kind::f8f6f4), the
promotion rules, and the CPU backend (loads, casts both ways, stores, matmul) against
ml_dtypes / numpy float64."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import tilec as ct
from tilec import dtypes as dt
from tilec import fp4, fp6

E2M3, E3M2 = ml_dtypes.float6_e2m3fn, ml_dtypes.float6_e3m2fn


def test_dtypes_are_exported_with_ml_dtypes_storage():
    assert ct.float6_e2m3fn is dt.float6_e2m3fn and ct.float6_e3m2fn is dt.float6_e3m2fn
    assert dt.from_numpy(E2M3) is dt.float6_e2m3fn and dt.lookup("f6E3M2FN") is dt.float6_e3m2fn
    assert (dt.float6_e2m3fn.bits, dt.float6_e2m3fn.np_dtype.itemsize) == (6, 1)
    assert str(dt.float6_e3m2fn.ir_type) == "f6E3M2FN"


def test_promotion():
    # e2m3 + e3m2: the next wider float e4m3 holds every value of both
    assert dt.promote(dt.float6_e2m3fn, dt.float6_e3m2fn) is dt.float8_e4m3fn
    for d in (E2M3, E3M2):
        v = np.arange(64, dtype=np.uint8).view(d).astype(np.float64)
        np.testing.assert_array_equal(v.astype(ml_dtypes.float8_e4m3fn).astype(np.float64), v)
    assert dt.promote(dt.float6_e2m3fn, dt.float4_e2m1fn) is dt.float6_e2m3fn
    assert dt.promote(dt.float6_e3m2fn, dt.float8_e5m2) is dt.float8_e5m2
    # e5m2 has two mantissa bits, e2m3 three: 1.125 is not an e5m2, so the pair goes to f16
    assert float(np.float32(1.125).astype(ml_dtypes.float8_e5m2)) != 1.125
    assert dt.promote(dt.float6_e2m3fn, dt.float8_e5m2) is dt.float16
    assert dt.promote_with_scalar(dt.float6_e2m3fn, 2.0) is dt.float6_e2m3fn


def test_pack_hand_derived_bytes():
    # e2m3 (bias 1): 1.0 = 0b001000, 2.0 = 0b010000, 3.0 = 0b010100, -1.0 = 0b101000
    x = np.array([1.0, 2.0, 3.0, -1.0], E2M3)
    assert list(x.view(np.uint8)) == [0b001000, 0b010000, 0b010100, 0b101000]
    # bits [6i, 6i+6): byte0 = c0 | c1 << 6, byte1 = c1 >> 2 | c2 << 4, byte2 = c2 >> 4 | c3 << 2
    assert list(fp6.pack(x)) == [0x08, 0x44, 0xA1]
    # e3m2 (bias 3): 0.25 = 0b000100, -28 = -1.75 * 2^4 = 0b111111 (bits 24..29 = byte 3);
    # 5 values take ceil(30 / 8) = 4 bytes
    y = np.array([0.25, 0.0, 0.0, 0.0, -28.0], E3M2)
    assert list(y.view(np.uint8)[[0, 4]]) == [0b000100, 0b111111]
    assert list(fp6.pack(y)) == [0x04, 0x00, 0x00, 0b111111]


@pytest.mark.parametrize("d", [E2M3, E3M2])
@pytest.mark.parametrize("n", [1, 3, 4, 16, 37])
def test_pack_unpack_round_trip(d, n):
    rng = np.random.default_rng(n)
    codes = rng.integers(0, 64, (3, n), dtype=np.uint8).view(d)        # every code, incl. -0
    p = fp6.pack(codes)
    assert p.dtype == np.uint8 and p.shape == (3, -(-6 * n // 8))
    back = fp6.unpack(p, d, n)
    assert back.dtype == d
    np.testing.assert_array_equal(back.view(np.uint8), codes.view(np.uint8))


def test_unpack_rejects_a_wrong_length():
    with pytest.raises(ValueError, match="do not hold exactly 5"):
        fp6.unpack(np.zeros(3, np.uint8), "float6_e2m3fn", 5)
    with pytest.raises(ValueError, match="float6_e2m3fn or float6_e3m2fn"):
        fp6.pack(np.zeros(4, np.float32), "float8_e4m3fn")


def test_round_to_saturates_like_a_kernel_cast():
    x = np.array([100.0, -100.0, 0.3, 7.4], np.float32)
    np.testing.assert_array_equal(fp6.round_to(x, "float6_e2m3fn").astype(np.float32), [7.5, -7.5, 0.25, 7.5])
    np.testing.assert_array_equal(fp6.round_to(x, ct.float6_e3m2fn).astype(np.float32), [28, -28, 0.3125, 7.0])


@pytest.mark.parametrize("d", [E2M3, E3M2, ml_dtypes.float4_e2m1fn])
def test_align16_is_the_padded_group_layout(d):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((2, 48)) * 2).astype(d)
    img = fp6.align16(x)
    assert img.shape == (2, 48) and img.dtype == np.uint8
    b = 4 if d == ml_dtypes.float4_e2m1fn else 6
    for g in range(3):
        grp = x[:, 16 * g:16 * g + 16]
        dense = fp4.pack(grp) if b == 4 else fp6.pack(grp)
        np.testing.assert_array_equal(img[:, 16 * g:16 * g + 2 * b], dense)
        assert not img[:, 16 * g + 2 * b:16 * g + 16].any()


# ---------------------------------------------------------------------------- CPU backend


@ct.kernel
def _cast_roundtrip(X: ct.Tensor, Q: ct.Tensor, Y: ct.Tensor):
    x = ct.load_tile(X, offset=[0, 0], size=[8, 16])
    q = x.astype(Q.dtype)
    ct.store_tile(Q, offset=[0, 0], tile=q)
    ct.store_tile(Y, offset=[0, 0], tile=ct.load_tile(Q, offset=[0, 0], size=[8, 16]).astype(ct.float32) * 2.0)


@pytest.mark.parametrize("d", [E2M3, E3M2])
def test_cpu_cast_store_load(d):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((8, 16)) * 8).astype(np.float32)
    q = np.zeros((8, 16), d)
    y = np.zeros((8, 16), np.float32)
    _cast_roundtrip[(1,)](x, q, y)
    big = float(ml_dtypes.finfo(d).max)
    want = np.clip(x, -big, big).astype(d)              # nearest even, saturating
    np.testing.assert_array_equal(q.view(np.uint8), want.view(np.uint8))
    np.testing.assert_array_equal(y, want.astype(np.float32) * 2)


@ct.kernel
def _matmul(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor):
    a = ct.load_tile(A, offset=[0, 0], size=[32, 64])
    b = ct.load_tile(B, offset=[0, 0], size=[64, 16])
    ct.store_tile(C, offset=[0, 0], tile=ct.matmul(a, b))


@pytest.mark.parametrize("da,db", [(E2M3, E2M3), (E3M2, E3M2), (E2M3, E3M2), (ml_dtypes.float8_e4m3fn, E3M2)])
def test_cpu_matmul(da, db):
    rng = np.random.default_rng(1)
    a = (rng.standard_normal((30, 60)) * 2).astype(da)      # ragged: the tile loads pad with zeros
    b = (rng.standard_normal((60, 10)) * 2).astype(db)
    c = np.full((30, 10), np.nan, np.float32)
    _matmul[(1,)](a, b, c)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(c, ref, rtol=0, atol=1e-6 * float(np.abs(ref).max()))
