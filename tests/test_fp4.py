"""FP4 (e2m1) with block scales: host packing and quantization (`tilec.fp4`), fp4 tiles in
kernels (packed loads and stores, casts, `ct.quantize` / `ct.dequantize`, the
block-scaled matmul) on the CPU backend, and the errors.

References are independent of the code under test: e2m1 / e4m3 rounding by brute force
over every value of the format (decoded with ml_dtypes, ties to the even code), scale
exponents from Python's `math.frexp`, nibbles split by hand.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

import tilec as ct
from tilec import fp4

F4, E8M0, E4M3 = ml_dtypes.float4_e2m1fn, ml_dtypes.float8_e8m0fnu, ml_dtypes.float8_e4m3fn
RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _no_disk_cache(monkeypatch):
    monkeypatch.setenv("TILEC_DISABLE_CACHE", "1")


# ======================================================================== independent references

E2M1_VALUES = np.arange(8, dtype=np.uint8).view(F4).astype(np.float64)          # codes 0..7: 0 .. 6
E4M3_VALUES = np.arange(127, dtype=np.uint8).view(E4M3).astype(np.float64)      # codes 0..126: 0 .. 448


def round_to_grid(v: float, grid: np.ndarray) -> int:
    """Code of the nearest grid value to |v| (ties to the even code), saturating at the top."""
    d = np.abs(grid - min(abs(v), grid[-1]))
    best = np.flatnonzero(d == d.min())
    return int(best[0] if len(best) == 1 else best[best % 2 == 0][0])


def ref_e2m1(v: float) -> float:
    return math.copysign(E2M1_VALUES[round_to_grid(v, E2M1_VALUES)], v)


def ref_quantize(x: np.ndarray, block: int, scale: str):
    """(values as float64, scales as float64) of one row, block by block."""
    q, s = [], []
    for blk in x.astype(np.float32).reshape(-1, block):
        amax = float(np.max(np.abs(blk)))
        if scale == "e8m0":
            e = math.frexp(amax)[1] - 1 - 2 if amax > 0 else -127      # floor(log2(amax)) - emax(e2m1)
            sc = 2.0 ** min(max(e, -127), 127)
        else:
            sc = float(E4M3_VALUES[round_to_grid(float(np.float32(amax) / np.float32(6)), E4M3_VALUES)])
        s.append(sc)
        q.extend(ref_e2m1(float(np.float32(v) / np.float32(sc))) if sc > 0 else 0.0 for v in blk)
    return np.array(q), np.array(s)


def split_nibbles(packed: np.ndarray) -> np.ndarray:
    out = np.empty(packed.shape[:-1] + (2 * packed.shape[-1],), np.uint8)
    out[..., 0::2], out[..., 1::2] = packed & 0xF, packed >> 4
    return out


# ======================================================================== host: packing


def test_pack_unpack_round_trip_every_byte():
    """All 16 codes in both nibbles: unpack then pack gives the byte back, and unpack
    decodes each nibble as the e2m1 value of its code."""
    packed = np.arange(256, dtype=np.uint8).reshape(16, 16)
    vals = fp4.unpack(packed)
    assert vals.dtype == F4 and vals.shape == (16, 32)
    np.testing.assert_array_equal(fp4.pack(vals), packed)
    codes = split_nibbles(packed)
    np.testing.assert_array_equal(vals.astype(np.float64), codes.view(F4).astype(np.float64))


def test_nibble_order_low_is_even_element():
    """Element 2i in the low nibble, 2i+1 in the high one (0x7 = 6.0, 0x9 = -0.5, 0x2 = 1.0)."""
    packed = fp4.pack(np.array([6.0, 1.0, -0.5, 0.0], np.float32))
    assert packed.tolist() == [0x27, 0x09]
    assert fp4.unpack(np.array([0x9F], np.uint8)).astype(float).tolist() == [-6.0, -0.5]


def test_pack_odd_extent_pads_the_high_nibble():
    x = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 6.0]], np.float32)
    packed = fp4.pack(x)
    assert packed.shape == (2, 2) and (packed[:, 1] >> 4).tolist() == [0, 0]
    np.testing.assert_array_equal(fp4.unpack(packed, 3).astype(np.float32), x)


def test_pack_rounds_floats_nearest_even_with_saturation():
    x = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 5.0, 7.0, 1e9, -np.inf, -0.2], np.float32)
    got = fp4.unpack(fp4.pack(x)).astype(np.float64)
    np.testing.assert_array_equal(got, [ref_e2m1(v) for v in x])


def test_unpack_errors():
    with pytest.raises(TypeError, match="must be uint8"):
        fp4.unpack(np.zeros(4, np.int8))
    with pytest.raises(ValueError, match="hold 7 or 8 fp4 values, not 5"):
        fp4.unpack(np.zeros(4, np.uint8), 5)


# ======================================================================== host: quantization


def quant_data():
    x = RNG.standard_normal((6, 64)).astype(np.float32)
    x[0, 5] = 75.0                          # outlier: its block saturates (75 / 16 = 4.7 -> 4, 60 / 8 ...)
    x[1, :32] = 0.0                         # all-zero block
    x[2, :32] = 7.5                         # 7.5 / 2 = 3.75 -> 4 (scale 2^(2-2))
    x[2, 32:] = np.nextafter(np.float32(4), 0)   # amax just below 4: scale 2^-1, 7.99.. saturates to 6
    x[3] *= 1e-30                           # tiny values
    x[4, :32] = -2.0 ** np.arange(-16, 16)  # exact powers of two
    return x


def test_quantize_mxfp4_matches_reference():
    x = quant_data()
    packed, scales = fp4.quantize(x)
    assert packed.shape == (6, 32) and packed.dtype == np.uint8 and scales.shape == (6, 2) and scales.dtype == E8M0
    got = split_nibbles(packed).view(F4).astype(np.float64)
    for r in range(x.shape[0]):
        q, s = ref_quantize(x[r], 32, "e8m0")
        np.testing.assert_array_equal(got[r], q)
        np.testing.assert_array_equal(scales[r].astype(np.float64), s)
    assert scales.view(np.uint8)[1, 0] == 0                    # zero block: 2^-127
    assert got[2, 32:].tolist() == [6.0] * 32                   # saturated


def test_quantize_mx_saturates_and_zero_blocks_dequantize_to_zero():
    x = np.zeros((1, 64), np.float32)
    x[0, 32:] = [7.0] + [1.0] * 31          # amax 7: scale 2^0, 7 -> 6
    deq = fp4.dequantize(*fp4.quantize(x))
    assert deq[0, :32].tolist() == [0.0] * 32 and deq[0, 32] == 6.0


def test_quantize_mx_nonfinite_block_gets_nan_scale():
    x = np.ones((1, 64), np.float32)
    x[0, 3] = np.inf
    _, scales = fp4.quantize(x)
    assert scales.view(np.uint8).tolist() == [[0xFF, 125]]


def test_quantize_nvfp4_matches_reference():
    x = quant_data()[:, :48]
    packed, scales = fp4.quantize(x, block=16, scale_dtype=E4M3)
    assert scales.shape == (6, 3) and scales.dtype == E4M3
    got = split_nibbles(packed).view(F4).astype(np.float64)
    for r in range(x.shape[0]):
        q, s = ref_quantize(x[r], 16, "e4m3")
        np.testing.assert_array_equal(got[r], q)
        np.testing.assert_array_equal(scales[r].astype(np.float64), s)


def test_quantize_nvfp4_global_scale_divides_first():
    x = RNG.standard_normal((4, 32)).astype(np.float32) * 5000      # beyond e4m3's 448 * 6 without it
    g = float(np.abs(x).max()) / (6 * 448)
    p1, s1 = fp4.quantize(x, 16, E4M3, global_scale=g)
    p2, s2 = fp4.quantize(x / np.float32(g), 16, E4M3)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(s1.view(np.uint8), s2.view(np.uint8))
    deq = fp4.dequantize(p1, s1, global_scale=g)
    assert np.max(np.abs(deq - x)) / np.max(np.abs(x)) < 0.2      # half the largest e2m1 step, 1 of 6


def test_quantize_errors():
    with pytest.raises(ValueError, match="divide the last dim"):
        fp4.quantize(np.ones((2, 48), np.float32))
    with pytest.raises(ValueError, match="scale_dtype must be"):
        fp4.quantize(np.ones((2, 32), np.float32), scale_dtype=np.float16)


# ======================================================================== kernels: load, store, cast


@ct.kernel
def cast_kernel(X: ct.Tensor, Y: ct.Tensor, N: ct.Constant[int], DT: ct.Constant):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[i * N], size=[N])
    ct.store_tile(Y, offset=[i * N], tile=x.astype(DT).astype(ct.float32))


@pytest.mark.parametrize("src", [np.float32, np.float16, ml_dtypes.bfloat16], ids=lambda d: np.dtype(d).name)
def test_cast_to_fp4_rounds_nearest_even_and_saturates(src):
    grid = np.arange(-7, 7.25, 0.25)          # every tie and midpoint of e2m1, and beyond +-6
    x = np.concatenate([grid, [100.0, -1e4, np.inf, -np.inf]]).astype(src)
    y = np.zeros(x.shape, np.float32)
    cast_kernel[(1,)](x, y, x.size, ct.float4_e2m1fn)
    np.testing.assert_array_equal(y, [ref_e2m1(float(v)) for v in x.astype(np.float64)])
    np.testing.assert_array_equal(y, x.astype(np.float32).clip(-6, 6).astype(F4).astype(np.float32))  # ml_dtypes


@pytest.mark.parametrize("dst", [ct.float16, ct.bfloat16, ct.float32])
def test_cast_from_fp4_is_exact(dst):
    x = np.tile(np.arange(16, dtype=np.uint8).view(F4), 2)
    y = np.zeros(32, np.float32)
    cast_kernel[(1,)](x, y, 32, dst)
    np.testing.assert_array_equal(y, x.astype(np.float32))


@ct.kernel
def copy_kernel(X: ct.Tensor, Y: ct.Tensor, BM: ct.Constant[int], BN: ct.Constant[int]):
    i, j = ct.tile_idx(0), ct.tile_idx(1)
    t = ct.load_tile(X, offset=[i * BM, j * BN], size=[BM, BN])
    ct.store_tile(Y, offset=[i * BM, j * BN], tile=t * 2.0)


def test_packed_load_store_and_writeback():
    """Packed fp4 tensors: a tile is loaded from packed bytes and stored back packed (fp4
    arithmetic rounds back to e2m1); ragged edges keep the bytes outside the tensor."""
    x = RNG.integers(0, 16, (10, 22), dtype=np.uint8).view(F4)
    X = ct.fp4_tensor(fp4.pack(x), (10, 22))
    Y = ct.fp4_tensor(np.full((10, 11), 0x33, np.uint8), (10, 22))
    copy_kernel[(3, 3)](X, Y, 4, 8)
    want = (x.astype(np.float32) * 2).clip(-6, 6).astype(F4)
    np.testing.assert_array_equal(Y.numpy().view(np.uint8), want.view(np.uint8))
    y_unpacked = np.zeros((10, 22), F4)      # the unpacked ml_dtypes form is accepted too
    copy_kernel[(3, 3)](x, y_unpacked, 4, 8)
    np.testing.assert_array_equal(y_unpacked.view(np.uint8), want.view(np.uint8))


def test_packed_tensor_of_odd_extent():
    x = RNG.integers(0, 16, (4, 7), dtype=np.uint8).view(F4)
    y = np.zeros((4, 8), np.float32)

    @ct.kernel
    def widen(X: ct.Tensor, Y: ct.Tensor):
        ct.store_tile(Y, offset=[0, 0], tile=ct.load_tile(X, offset=[0, 0], size=[4, 8]).astype(ct.float32))

    widen[(1,)](ct.fp4_tensor(fp4.pack(x), (4, 7)), y)
    np.testing.assert_array_equal(y[:, :7], x.astype(np.float32))
    assert (y[:, 7] == 0).all()


# ======================================================================== kernels: quantize / dequantize


@ct.kernel
def quantize_kernel(X: ct.Tensor, Q: ct.Tensor, S: ct.Tensor, D: ct.Tensor, BM: ct.Constant[int],
                    K: ct.Constant[int], BLOCK: ct.Constant[int], SDT: ct.Constant):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[i * BM, 0], size=[BM, K])
    q, s = ct.quantize(x, ct.float4_e2m1fn, block=BLOCK, scale_dtype=SDT)
    ct.store_tile(Q, offset=[i * BM, 0], tile=q)
    ct.store_tile(S, offset=[i * BM, 0], tile=s)
    ct.store_tile(D, offset=[i * BM, 0], tile=ct.dequantize(q, s))


@pytest.mark.parametrize("block, sdt", [(32, E8M0), (16, E4M3)], ids=["mxfp4", "nvfp4"])
@pytest.mark.parametrize("src", [np.float32, ml_dtypes.bfloat16], ids=["f32", "bf16"])
def test_in_kernel_quantize_matches_host(block, sdt, src):
    x = quant_data().astype(src)
    m, k = x.shape
    Q = ct.fp4_tensor(np.zeros((m, k // 2), np.uint8), (m, k))
    S = np.zeros((m, k // block), sdt)
    D = np.zeros((m, k), np.float32)
    quantize_kernel[(3,)](x, Q, S, D, 2, k, block, sdt)
    hp, hs = fp4.quantize(x, block, sdt)
    np.testing.assert_array_equal(Q.packed, hp)
    np.testing.assert_array_equal(S.view(np.uint8), hs.view(np.uint8))
    np.testing.assert_array_equal(D, fp4.dequantize(hp, hs))


@ct.kernel
def nvfp4_global_kernel(X: ct.Tensor, D: ct.Tensor, g: float):
    x = ct.load_tile(X, offset=[0, 0], size=[4, 32])
    q, s = ct.quantize(x, block=16, scale_dtype=ct.float8_e4m3fn, global_scale=g)
    ct.store_tile(D, offset=[0, 0], tile=ct.dequantize(q, s, global_scale=g, dtype=ct.float16))


def test_in_kernel_global_scale():
    x = RNG.standard_normal((4, 32)).astype(np.float32) * 3000
    g = float(np.abs(x).max()) / (6 * 448)
    d = np.zeros((4, 32), np.float16)
    nvfp4_global_kernel[(1,)](x, d, g)
    want = fp4.dequantize(*fp4.quantize(x, 16, E4M3, global_scale=g), global_scale=g)
    np.testing.assert_array_equal(d, want.astype(np.float16))


# ======================================================================== kernels: block-scaled matmul


def scaled_reference(a, sa, b, sb):
    """float64 sum_k a[m,k] sa[m,k/blk] b[k,n] sb[n,k/blk] of unpacked values."""
    blk = a.shape[1] // sa.shape[1]
    da = a.astype(np.float64) * np.repeat(sa.astype(np.float64), blk, axis=1)
    db = b.astype(np.float64) * np.repeat(sb.astype(np.float64), blk, axis=1).T
    return da @ db


@ct.kernel
def scaled_mm_kernel(A: ct.Tensor, SA: ct.Tensor, B: ct.Tensor, SB: ct.Tensor, C: ct.Tensor,
                     M: ct.Constant[int], N: ct.Constant[int], K: ct.Constant[int], BLOCK: ct.Constant):
    j = ct.tile_idx(0)
    a = ct.load_tile(A, offset=[0, 0], size=[M, K])
    sa = ct.load_tile(SA, offset=[0, 0], size=[M, K // 32 if BLOCK is None else K // BLOCK])
    b = ct.load_tile(B, offset=[0, j * N], size=[K, N])
    sb = ct.load_tile(SB, offset=[j * N, 0], size=[N, sa.shape[1]])
    ct.store_tile(C, offset=[0, j * N], tile=ct.scaled_matmul(a, sa, b, sb, block=BLOCK))


@pytest.mark.parametrize("dtype, sdt, block", [(F4, E8M0, 32), (F4, E4M3, 16), (F4, E8M0, None),
                                               (ml_dtypes.float8_e4m3fn, E8M0, 32)],
                         ids=["mxfp4", "nvfp4", "block-inferred", "mxfp8"])
def test_scaled_matmul_single_product(dtype, sdt, block):
    m, n, k = 16, 8, 64
    nb = k // (block or 32)
    a = RNG.standard_normal((m, k)).astype(np.float32).clip(-6, 6).astype(dtype)
    b = RNG.standard_normal((k, 3 * n)).astype(np.float32).clip(-6, 6).astype(dtype)
    sa = (2.0 ** RNG.integers(-3, 4, (m, nb))).astype(sdt)
    sb = (2.0 ** RNG.integers(-3, 4, (3 * n, nb)) * 1.25).astype(sdt)
    c = np.zeros((m, 3 * n), np.float32)
    scaled_mm_kernel[(3,)](a, sa, b, sb, c, m, n, k, block)
    np.testing.assert_allclose(c, scaled_reference(a, sa, b, sb), rtol=1e-6, atol=1e-6)


@ct.kernel
def k_loop_kernel(A: ct.Tensor, SA: ct.Tensor, B: ct.Tensor, SB: ct.Tensor, C: ct.Tensor, P: ct.Tensor,
                  BK: ct.Constant[int]):
    acc = ct.zeros([16, 16])
    for k in range(A.shape[1] // BK):
        a = ct.load_tile(A, offset=[0, k * BK], size=[16, BK])
        b = ct.load_tile(B, offset=[0, k * BK], size=[16, BK])
        sa = ct.load_tile(SA, offset=[0, k * (BK // 32)], size=[16, BK // 32])
        sb = ct.load_tile(SB, offset=[0, k * (BK // 32)], size=[16, BK // 32])
        acc = acc + ct.matmul(a, b.T, a_scale=sa, b_scale=sb)
        ct.store_tile(P, offset=[0, 0], tile=acc)      # the partial sum escapes: no K-loop fusion
    ct.store_tile(C, offset=[0, 0], tile=acc)


def test_scaled_matmul_k_loop_unfused_matches_reference():
    x, w = RNG.standard_normal((16, 128)), RNG.standard_normal((16, 128))
    pa, sa = fp4.quantize(x)
    pb, sb = fp4.quantize(w)
    c, p = np.zeros((16, 16), np.float32), np.zeros((16, 16), np.float32)
    k_loop_kernel[(1,)](ct.fp4_tensor(pa), sa, ct.fp4_tensor(pb), sb, c, p, 64)
    ref = scaled_reference(fp4.unpack(pa), sa, fp4.unpack(pb).T, sb)
    np.testing.assert_allclose(c, ref, rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(c, p)


@pytest.mark.parametrize("variant", ["mxfp4", "nvfp4"])
def test_fp4_matmul_example(example, variant):
    mod = example("fp4_matmul")
    assert mod.main(m=70, n=40, k=128, variant=variant) < 1e-5


def test_fp4_matmul_example_reference_is_independent(example):
    """The example's decode reads nibbles itself: it agrees with tilec.fp4's."""
    mod = example("fp4_matmul")
    packed, scales = fp4.quantize(RNG.standard_normal((3, 64)))
    np.testing.assert_array_equal(mod.decode(packed, scales, 64), fp4.dequantize(packed, scales))


# ======================================================================== errors


def compile_error(kernel, *args):
    with pytest.raises(ct.CompileError) as e:
        kernel[(1,)](*args)
    return str(e.value)


@ct.kernel
def quantize_block_kernel(X: ct.Tensor, Q: ct.Tensor, BLOCK: ct.Constant[int]):
    x = ct.load_tile(X, offset=[0, 0], size=[4, 48])
    q, s = ct.quantize(x, block=BLOCK)
    ct.store_tile(Q, offset=[0, 0], tile=q)


def test_error_quantize_block_does_not_divide():
    msg = compile_error(quantize_block_kernel, np.zeros((4, 48), np.float32), np.zeros((4, 48), F4), 32)
    assert "quantize: block 32 does not divide the last dim 48 of a [4, 48] tile" in msg
    assert "q, s = ct.quantize(x, block=BLOCK)" in msg


@ct.kernel
def bad_scaled_kernel(A: ct.Tensor, SA: ct.Tensor, B: ct.Tensor, SB: ct.Tensor, C: ct.Tensor,
                      K: ct.Constant[int], SA_SHAPE: ct.Constant, SB_SHAPE: ct.Constant, BLOCK: ct.Constant):
    a = ct.load_tile(A, offset=[0, 0], size=[16, K])
    b = ct.load_tile(B, offset=[0, 0], size=[K, 8])
    sa = ct.load_tile(SA, offset=[0, 0], size=SA_SHAPE)
    sb = ct.load_tile(SB, offset=[0, 0], size=SB_SHAPE)
    ct.store_tile(C, offset=[0, 0], tile=ct.matmul(a, b, a_scale=sa, b_scale=sb, block=BLOCK))


@pytest.mark.parametrize("k, sa_shape, sb_shape, block, words", [
    (48, [16, 1], [8, 1], 32, "block 32 does not divide K = 48 of a scaled matmul"),
    (48, [16, 5], [8, 5], None, "5 scales per row do not split the 48 elements"),
    (64, [16, 2], [2, 8], 32, "b_scale must have shape [N, K/block] = [8, 2] for a [16, 64] @ [64, 8] matmul "
                              "with block 32, got [2, 8]"),
    (64, [16, 4], [8, 4], 32, "a_scale must have shape [M, K/block] = [16, 2]"),
], ids=["block-vs-k", "inferred-block-vs-k", "b-scale-transposed", "a-scale-shape"])
def test_error_scaled_matmul_shapes(k, sa_shape, sb_shape, block, words):
    args = (np.zeros((16, k), F4), np.ones(sa_shape, E8M0), np.zeros((k, 8), F4), np.ones(sb_shape, E8M0),
            np.zeros((16, 8), np.float32), k, tuple(sa_shape), tuple(sb_shape), block)
    msg = compile_error(bad_scaled_kernel, *args)
    assert words in msg and "ct.matmul(a, b, a_scale=sa, b_scale=sb, block=BLOCK)" in msg


def test_error_scaled_matmul_operand_dtypes():
    args = (np.zeros((16, 64), np.float16), np.ones((16, 2), E8M0), np.zeros((64, 8), np.float16),
            np.ones((8, 2), E8M0), np.zeros((16, 8), np.float32), 64, (16, 2), (8, 2), 32)
    assert "needs float4_e2m1fn (or fp8 e4m3/e5m2) operands, but a is float16" in compile_error(bad_scaled_kernel,
                                                                                               *args)
    args = (np.zeros((16, 64), F4), np.ones((16, 2), E8M0), np.zeros((64, 8), F4),
            np.ones((8, 2), E4M3), np.zeros((16, 8), np.float32), 64, (16, 2), (8, 2), 32)
    assert "a_scale and b_scale must share a dtype" in compile_error(bad_scaled_kernel, *args)


def test_error_matmul_needs_both_scales():
    @ct.kernel
    def one_scale(A: ct.Tensor, SA: ct.Tensor, C: ct.Tensor):
        a = ct.load_tile(A, offset=[0, 0], size=[16, 32])
        sa = ct.load_tile(SA, offset=[0, 0], size=[16, 1])
        ct.store_tile(C, offset=[0, 0], tile=ct.matmul(a, a.T, a_scale=sa))

    msg = compile_error(one_scale, np.zeros((16, 32), F4), np.ones((16, 1), E8M0), np.zeros((16, 16), np.float32))
    assert "needs both a_scale and b_scale" in msg


def test_error_odd_fp4_tile_and_offset():
    @ct.kernel
    def odd(X: ct.Tensor, Y: ct.Tensor, N: ct.Constant[int], OFF: ct.Constant[int]):
        ct.store_tile(Y, offset=[0], tile=ct.load_tile(X, offset=[OFF], size=[N]).astype(ct.float32))

    x, y = np.zeros(16, F4), np.zeros(16, np.float32)
    msg = compile_error(odd, x, y, 7, 0)
    assert "load_tile: tensor 'X' is packed fp4, so a float4_e2m1fn tile of a tensor needs an even innermost" in msg
    with pytest.raises(ValueError, match="innermost offset 1: a packed fp4 tile must start on a byte boundary"):
        odd[(1,)](x, y, 8, 1)


def test_fp4_tensor_errors():
    with pytest.raises(ValueError, match=r"does not hold a \[4, 10\] tensor \(expected packed shape \[4, 5\]\)"):
        ct.fp4_tensor(np.zeros((4, 4), np.uint8), (4, 10))
    with pytest.raises(TypeError, match="must be uint8"):
        fp4.FP4Tensor(np.zeros((4, 4), np.int8))


def test_nv_quantize_is_not_implemented_on_sm_80():
    """The PTX backends name the op, dtype and target for what they cannot lower: e4m3 (NVFP4)
    scales need sm_90's fp8 conversions (MX quantize works on sm_80: tests/test_ptx_quantize.py)."""
    @ct.kernel
    def q_only(X: ct.Tensor, S: ct.Tensor):
        q, s = ct.quantize(ct.load_tile(X, offset=[0, 0], size=[32, 64]), block=16, scale_dtype=ct.float8_e4m3fn)
        ct.store_tile(S, offset=[0, 0], tile=s)

    with pytest.raises(ct.CompileError, match=r"`tile\.quantize to float8_e4m3fn scales` with `f32` operands is "
                                              r"not implemented for `sm_80`"):
        ct.compile(q_only, np.zeros((32, 64), np.float32), np.zeros((32, 4), E4M3), target="sm_80")


# ======================================================================== GPU argument plumbing (no GPU needed)


class _FakeCudaArray:
    dtype = np.dtype(np.uint8)

    def __init__(self, shape, ptr=0x1000):
        self.shape = shape
        self.__cuda_array_interface__ = {"shape": shape, "typestr": "|u1", "data": (ptr, False), "version": 3}


def test_fp4_tensor_over_device_data_passes_packed_pointer_and_logical_shape():
    from tilec.runtime.launch import device_array, is_device_array

    t = ct.fp4_tensor(_FakeCudaArray((8, 16)))
    assert is_device_array(t)
    d = device_array(t)
    assert d.ptr == 0x1000 and d.shape == (8, 32) and d.dtype == np.dtype(F4) and d.flags.c_contiguous
