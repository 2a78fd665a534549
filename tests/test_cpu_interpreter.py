"""The CPU simulation backend (`tilec.backends.cpu`) against independent numpy references."""

from __future__ import annotations

import gc
import math
import time
import weakref

import ml_dtypes
import numpy as np
import pytest
import tilec as ct
from xdsl.context import Context
from xdsl.dialects import arith, builtin, func, scf
from xdsl.parser import Parser

from tilec.backends.cpu import interpret_module, philox4x32_10, run_kernel
from tilec.backends.cpu import interpreter as cpu_interp
from tilec.backends.cpu import matmul as cpu_matmul
from tilec.backends.cpu import memory as cpu_memory
from tilec.backends.cpu import tile_box
from tilec.dialects.tile import Tile


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def parse(text: str) -> builtin.ModuleOp:
    ctx = Context()
    for d in (builtin.Builtin, func.Func, arith.Arith, scf.Scf, Tile):
        ctx.load_dialect(d)
    module = Parser(ctx, text).parse_module()
    module.verify()
    return module


def run(text: str, args: list, grid: tuple[int, ...]) -> None:
    module = parse(text)
    kernel = next(op for op in module.walk() if isinstance(op, func.FuncOp))
    run_kernel(kernel, args, grid)


# --------------------------------------------------------------------------- elementwise


VADD = """
func.func @vadd(%X: !tile.tensor<?xf32>, %Y: !tile.tensor<?xf32>, %Z: !tile.tensor<?xf32>,
                %W: !tile.tensor<?xf32>) {
  %i = tile.tile_idx 0
  %c128 = arith.constant 128 : i32
  %o = tile.mul %i, %c128 : i32
  %x = tile.load %X[%o] : !tile.tensor<?xf32> -> !tile.tile<128xf32>
  %y = tile.load %Y[%o] : !tile.tensor<?xf32> -> !tile.tile<128xf32>
  %z = tile.add %x, %y : !tile.tile<128xf32>
  tile.store %Z[%o], %z : !tile.tensor<?xf32>, !tile.tile<128xf32>
  %p = tile.load %X[%o] {padding = -1.0 : f64} : !tile.tensor<?xf32> -> !tile.tile<128xf32>
  tile.store %W[%o], %p : !tile.tensor<?xf32>, !tile.tile<128xf32>
  func.return
}
"""


def test_vector_add_ragged_boundary():
    n = 1000
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    z = np.zeros(n, np.float32)
    w = np.zeros(cdiv(n, 128) * 128, np.float32)
    interpret_module(parse(VADD), "vadd", [x, y, z, w], (cdiv(n, 128),))
    np.testing.assert_array_equal(z, x + y)
    np.testing.assert_array_equal(w[:n], x)
    np.testing.assert_array_equal(w[n:], -1.0)  # out-of-bounds lanes read the padding


VADD_PERSISTENT = """
func.func @vadd_persistent(%X: !tile.tensor<?xf32>, %Y: !tile.tensor<?xf32>, %Z: !tile.tensor<?xf32>) {
  %pid = tile.tile_idx 0
  %np = tile.num_tiles 0
  %n = tile.dim %X 0 : !tile.tensor<?xf32>
  %c64 = arith.constant 64 : i32
  %c63 = arith.constant 63 : i32
  %n63 = tile.add %n, %c63 : i32
  %ntiles = tile.floordiv %n63, %c64 : i32
  scf.for %t = %pid to %ntiles step %np : i32 {
    %o = tile.mul %t, %c64 : i32
    %x = tile.load %X[%o] : !tile.tensor<?xf32> -> !tile.tile<64xf32>
    %y = tile.load %Y[%o] : !tile.tensor<?xf32> -> !tile.tile<64xf32>
    %z = tile.add %x, %y : !tile.tile<64xf32>
    tile.store %Z[%o], %z : !tile.tensor<?xf32>, !tile.tile<64xf32>
  }
  func.return
}
"""


def test_grid_stride_loop_runs_per_program():
    # the lower bound is tile_idx: not uniform, so the loop runs once per program
    n = 1000
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    z = np.zeros(n, np.float32)
    run(VADD_PERSISTENT, [x, y, z], (3,))
    np.testing.assert_array_equal(z, x + y)


SCALE_ADD = """
func.func @scale_add(%X: !tile.tensor<?x?xf32>, %Y: !tile.tensor<?x?xf32>, %alpha: f32) {
  %i = tile.tile_idx 0
  %j = tile.tile_idx 1
  %c32 = arith.constant 32 : i32
  %c64 = arith.constant 64 : i32
  %r = tile.mul %i, %c32 : i32
  %c = tile.mul %j, %c64 : i32
  %x = tile.load %X[%r, %c] : !tile.tensor<?x?xf32> -> !tile.tile<32x64xf32>
  %y = tile.load %Y[%r, %c] : !tile.tensor<?x?xf32> -> !tile.tile<32x64xf32>
  %a = tile.splat %alpha : f32 -> !tile.tile<32x64xf32>
  %ax = tile.mul %a, %x : !tile.tile<32x64xf32>
  %s = tile.add %ax, %y : !tile.tile<32x64xf32>
  tile.store %Y[%r, %c], %s : !tile.tensor<?x?xf32>, !tile.tile<32x64xf32>
  func.return
}
"""


def test_scale_add_2d():
    m, n = 100, 150
    rng = np.random.default_rng(2)
    x = rng.standard_normal((m, n)).astype(np.float32)
    y = rng.standard_normal((m, n)).astype(np.float32)
    want = 2.5 * x.astype(np.float64) + y
    run(SCALE_ADD, [x, y, 2.5], (cdiv(m, 32), cdiv(n, 64)))
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)


ELEMENTWISE = """
func.func @ew(%A: !tile.tensor<?xi32>, %B: !tile.tensor<?xi32>, %FD: !tile.tensor<?xi32>,
              %RM: !tile.tensor<?xi32>, %WR: !tile.tensor<?xi32>,
              %X: !tile.tensor<?xbf16>, %Y: !tile.tensor<?xbf16>, %S: !tile.tensor<?xbf16>,
              %E: !tile.tensor<?xf32>, %ERF: !tile.tensor<?xf32>, %SEL: !tile.tensor<?xf32>) {
  %c0 = arith.constant 0 : i32
  %a = tile.load %A[%c0] : !tile.tensor<?xi32> -> !tile.tile<8xi32>
  %b = tile.load %B[%c0] : !tile.tensor<?xi32> -> !tile.tile<8xi32>
  %fd = tile.floordiv %a, %b : !tile.tile<8xi32>
  %rm = tile.rem %a, %b : !tile.tile<8xi32>
  %big = arith.constant 2147483647 : i32
  %bigt = tile.splat %big : i32 -> !tile.tile<8xi32>
  %wr = tile.add %a, %bigt : !tile.tile<8xi32>
  tile.store %FD[%c0], %fd : !tile.tensor<?xi32>, !tile.tile<8xi32>
  tile.store %RM[%c0], %rm : !tile.tensor<?xi32>, !tile.tile<8xi32>
  tile.store %WR[%c0], %wr : !tile.tensor<?xi32>, !tile.tile<8xi32>
  %x = tile.load %X[%c0] : !tile.tensor<?xbf16> -> !tile.tile<64xbf16>
  %y = tile.load %Y[%c0] : !tile.tensor<?xbf16> -> !tile.tile<64xbf16>
  %s = tile.add %x, %y : !tile.tile<64xbf16>
  %s2 = tile.mul %s, %x : !tile.tile<64xbf16>
  tile.store %S[%c0], %s2 : !tile.tensor<?xbf16>, !tile.tile<64xbf16>
  %xf = tile.cast %x : !tile.tile<64xbf16> -> !tile.tile<64xf32>
  %e = tile.exp %xf : !tile.tile<64xf32>
  %sg = tile.sigmoid %e : !tile.tile<64xf32>
  tile.store %E[%c0], %sg : !tile.tensor<?xf32>, !tile.tile<64xf32>
  %er = tile.erf %xf : !tile.tile<64xf32>
  tile.store %ERF[%c0], %er : !tile.tensor<?xf32>, !tile.tile<64xf32>
  %zf = arith.constant 0.0 : f32
  %z = tile.splat %zf : f32 -> !tile.tile<64xf32>
  %pos = tile.cmp "gt" %xf, %z : !tile.tile<64xf32> -> !tile.tile<64xi1>
  %sq = tile.sqrt %xf : !tile.tile<64xf32>
  %sel = tile.select %pos, %sq, %z : !tile.tile<64xi1>, !tile.tile<64xf32>
  tile.store %SEL[%c0], %sel : !tile.tensor<?xf32>, !tile.tile<64xf32>
  func.return
}
"""


def test_elementwise_int_semantics_and_narrow_floats():
    a = np.array([7, -7, 7, -7, 0, 5, -1, 100], np.int32)
    b = np.array([2, 2, -2, -2, 3, 5, 3, -7], np.int32)
    fd, rm, wr = (np.zeros(8, np.int32) for _ in range(3))
    rng = np.random.default_rng(3)
    x = rng.uniform(-3, 3, 64).astype(ml_dtypes.bfloat16)
    y = rng.uniform(-3, 3, 64).astype(ml_dtypes.bfloat16)
    s = np.zeros(64, ml_dtypes.bfloat16)
    e, erf, sel = (np.zeros(64, np.float32) for _ in range(3))
    run(ELEMENTWISE, [a, b, fd, rm, wr, x, y, s, e, erf, sel], (1,))
    # Python semantics: floor division, remainder has the sign of the divisor
    assert fd.tolist() == [int(p) // int(q) for p, q in zip(a, b)]
    assert rm.tolist() == [int(p) % int(q) for p, q in zip(a, b)]
    # i32 wraps
    assert wr.tolist() == [(int(p) + 2**31 - 1 + 2**31) % 2**32 - 2**31 for p in a]
    # bf16: each op in f32, rounded to bf16 after each op
    xf, yf = x.astype(np.float32), y.astype(np.float32)
    s1 = (xf + yf).astype(ml_dtypes.bfloat16).astype(np.float32)
    np.testing.assert_array_equal(s.astype(np.float32), (s1 * xf).astype(ml_dtypes.bfloat16).astype(np.float32))
    x64 = xf.astype(np.float64)
    np.testing.assert_allclose(e, 1 / (1 + np.exp(-np.exp(x64))), rtol=1e-6)
    np.testing.assert_allclose(erf, [math.erf(v) for v in x64], rtol=2e-7, atol=1e-9)
    np.testing.assert_allclose(sel, np.where(x64 > 0, np.sqrt(np.maximum(x64, 0)), 0), rtol=1e-6)


# --------------------------------------------------------------------------- casts


CASTS = """
func.func @casts(%X: !tile.tensor<?xf32>, %H: !tile.tensor<?xf16>, %B: !tile.tensor<?xbf16>,
                 %E: !tile.tensor<?xf8E4M3FN>, %I: !tile.tensor<?xi32>, %F4: !tile.tensor<?xf4E2M1FN>) {
  %c0 = arith.constant 0 : i32
  %x = tile.load %X[%c0] : !tile.tensor<?xf32> -> !tile.tile<16xf32>
  %h = tile.cast %x : !tile.tile<16xf32> -> !tile.tile<16xf16>
  tile.store %H[%c0], %h : !tile.tensor<?xf16>, !tile.tile<16xf16>
  %b = tile.cast %x : !tile.tile<16xf32> -> !tile.tile<16xbf16>
  tile.store %B[%c0], %b : !tile.tensor<?xbf16>, !tile.tile<16xbf16>
  %e = tile.cast %x : !tile.tile<16xf32> -> !tile.tile<16xf8E4M3FN>
  tile.store %E[%c0], %e : !tile.tensor<?xf8E4M3FN>, !tile.tile<16xf8E4M3FN>
  %i = tile.cast %x : !tile.tile<16xf32> -> !tile.tile<16xi32>
  tile.store %I[%c0], %i : !tile.tensor<?xi32>, !tile.tile<16xi32>
  %f4 = tile.cast %x : !tile.tile<16xf32> -> !tile.tile<16xf4E2M1FN>
  tile.store %F4[%c0], %f4 : !tile.tensor<?xf4E2M1FN>, !tile.tile<16xf4E2M1FN>
  func.return
}
"""


def test_casts_round_and_saturate():
    x = np.array([0.1, -0.1, 1.0 / 3, 2.5, -2.5, 3.7, -3.7, 100.0, 300.0, 449.0, 1e6, -1e6,
                  65504.0, 70000.0, 1e-8, 0.0], np.float32)
    h = np.zeros(16, np.float16)
    b = np.zeros(16, ml_dtypes.bfloat16)
    e = np.zeros(16, ml_dtypes.float8_e4m3fn)
    i = np.zeros(16, np.int32)
    f4 = np.zeros(16, ml_dtypes.float4_e2m1fn)
    run(CASTS, [x, h, b, e, i, f4], (1,))
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(h, x.astype(np.float16))  # f16 overflows to inf (cvt.rn)
    assert np.isinf(h[10]) and h[12] == 65504
    np.testing.assert_array_equal(b.astype(np.float32), x.astype(ml_dtypes.bfloat16).astype(np.float32))
    # e4m3: nearest even, saturating at +-448 instead of NaN
    ef = e.astype(np.float32)
    assert not np.isnan(ef).any()
    np.testing.assert_array_equal(ef, np.clip(x, -448, 448).astype(ml_dtypes.float8_e4m3fn).astype(np.float32))
    assert ef[10] == 448 and ef[11] == -448 and ef[8] == 288  # 300 rounds to 288 (RNE)
    np.testing.assert_array_equal(f4.astype(np.float32)[[3, 7, 10]], [2.0, 6.0, 6.0])  # 2.5 -> 2 (even)
    # float -> int truncates toward zero
    np.testing.assert_array_equal(i, np.trunc(x.astype(np.float64)).clip(-2**31, 2**31 - 1).astype(np.int32))
    assert i[5] == 3 and i[6] == -3


# --------------------------------------------------------------------------- matmul


def matmul_kernel(dt: str, bm: int = 64, bn: int = 64, bk: int = 32, fused_acc: bool = True) -> str:
    # fused_acc=False spells `acc = acc + a @ b`, which the K-loop GEMM fusion leaves alone
    if fused_acc:
        mma = (f"%n = tile.matmul %ta, %tb, %a : !tile.tile<{bm}x{bk}x{dt}>, !tile.tile<{bk}x{bn}x{dt}> "
               f"-> !tile.tile<{bm}x{bn}xf32>")
    else:
        mma = (f"%p = tile.matmul %ta, %tb : !tile.tile<{bm}x{bk}x{dt}>, !tile.tile<{bk}x{bn}x{dt}> "
               f"-> !tile.tile<{bm}x{bn}xf32>\n    %n = tile.add %a, %p : !tile.tile<{bm}x{bn}xf32>")
    return f"""
func.func @matmul(%A: !tile.tensor<?x?x{dt}>, %B: !tile.tensor<?x?x{dt}>, %C: !tile.tensor<?x?xf32>) {{
  %i = tile.tile_idx 0
  %j = tile.tile_idx 1
  %cm = arith.constant {bm} : i32
  %cn = arith.constant {bn} : i32
  %ck = arith.constant {bk} : i32
  %c0 = arith.constant 0 : i32
  %zf = arith.constant 0.0 : f32
  %K = tile.dim %A 1 : !tile.tensor<?x?x{dt}>
  %r = tile.mul %i, %cm : i32
  %c = tile.mul %j, %cn : i32
  %init = tile.splat %zf : f32 -> !tile.tile<{bm}x{bn}xf32>
  %acc = scf.for %k = %c0 to %K step %ck iter_args(%a = %init) -> (!tile.tile<{bm}x{bn}xf32>) : i32 {{
    %ta = tile.load %A[%r, %k] {{boundary_check = true, padding = 0.0 : f64}}
        : !tile.tensor<?x?x{dt}> -> !tile.tile<{bm}x{bk}x{dt}>
    %tb = tile.load %B[%k, %c] {{boundary_check = true, padding = 0.0 : f64}}
        : !tile.tensor<?x?x{dt}> -> !tile.tile<{bk}x{bn}x{dt}>
    {mma}
    scf.yield %n : !tile.tile<{bm}x{bn}xf32>
  }}
  tile.store %C[%r, %c], %acc : !tile.tensor<?x?xf32>, !tile.tile<{bm}x{bn}xf32>
  func.return
}}
"""


@pytest.mark.parametrize("dt, npdt, tol, fused_acc", [
    ("f32", np.float32, 1e-5, True), ("f32", np.float32, 1e-5, False),
    ("f16", np.float16, 1e-5, True), ("bf16", ml_dtypes.bfloat16, 1e-5, True)])
def test_matmul_k_loop_ragged(dt, npdt, tol, fused_acc):
    m, n, k = 200, 150, 100  # none a multiple of the 64x64x32 tiles
    rng = np.random.default_rng(4)
    a = rng.standard_normal((m, k)).astype(npdt)
    b = rng.standard_normal((k, n)).astype(npdt)
    c = np.full((m, n), np.nan, np.float32)
    run(matmul_kernel(dt, fused_acc=fused_acc), [a, b, c], (cdiv(m, 64), cdiv(n, 64)))
    want = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(c, want, rtol=tol, atol=tol * math.sqrt(k))


def test_k_loop_fusion_detection_and_fallback():
    loops = {}
    for fused_acc in (True, False):
        module = parse(matmul_kernel("f32", fused_acc=fused_acc))
        loops[fused_acc] = next(op for op in module.walk() if isinstance(op, scf.ForOp))
    assert len(cpu_matmul.fusable_k_loop_matmuls(loops[True])) == 1
    assert cpu_matmul.fusable_k_loop_matmuls(loops[False]) == []
    # tiles whose grid batches differ between iterations are accumulated step by step
    mm = next(op for op in loops[True].walk() if op.name == "tile.matmul")
    compute = cpu_matmul.matmul_fn(mm, 2)
    rng = np.random.default_rng(9)
    xs = [rng.standard_normal(s).astype(np.float32) for s in ((2, 1, 4, 3), (1, 1, 4, 3))]
    ys = [rng.standard_normal((1, 3, 3, 5)).astype(np.float32) for _ in range(2)]
    acc = np.zeros((1, 1, 4, 5), np.float32)
    got = cpu_matmul.k_loop_matmul(compute, list(zip(xs, ys)), acc)
    want = xs[0].astype(np.float64) @ ys[0] + xs[1].astype(np.float64) @ ys[1]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


BMM = """
func.func @bmm(%A: !tile.tensor<?x?x?xf32>, %Bt: !tile.tensor<?x?x?xf32>, %C: !tile.tensor<?x?x?xf32>,
               %D: !tile.tensor<?x?x?xf32>) {
  %bi = tile.tile_idx 0
  %mi = tile.tile_idx 1
  %c0 = arith.constant 0 : i32
  %c32 = arith.constant 32 : i32
  %r = tile.mul %mi, %c32 : i32
  %a3 = tile.load %A[%bi, %r, %c0] : !tile.tensor<?x?x?xf32> -> !tile.tile<1x32x16xf32>
  %bt3 = tile.load %Bt[%bi, %c0, %c0] : !tile.tensor<?x?x?xf32> -> !tile.tile<1x24x16xf32>
  %b3 = tile.permute %bt3 {perm = array<i64: 0, 2, 1>} : !tile.tile<1x24x16xf32> -> !tile.tile<1x16x24xf32>
  %a2 = tile.reshape %a3 : !tile.tile<1x32x16xf32> -> !tile.tile<32x16xf32>
  %b2 = tile.reshape %b3 : !tile.tile<1x16x24xf32> -> !tile.tile<16x24xf32>
  %p = tile.matmul %a2, %b2 : !tile.tile<32x16xf32>, !tile.tile<16x24xf32> -> !tile.tile<32x24xf32>
  %p3 = tile.reshape %p : !tile.tile<32x24xf32> -> !tile.tile<1x32x24xf32>
  tile.store %C[%bi, %r, %c0], %p3 : !tile.tensor<?x?x?xf32>, !tile.tile<1x32x24xf32>
  %q = tile.matmul %a3, %b3 : !tile.tile<1x32x16xf32>, !tile.tile<1x16x24xf32> -> !tile.tile<1x32x24xf32>
  tile.store %D[%bi, %r, %c0], %q : !tile.tensor<?x?x?xf32>, !tile.tile<1x32x24xf32>
  func.return
}
"""


def test_batched_matmul_shared_grid_axis_and_permute():
    # A's tiles vary along both grid axes, B's along axis 0 only
    rng = np.random.default_rng(5)
    a = rng.standard_normal((3, 64, 16)).astype(np.float32)
    bt = rng.standard_normal((3, 24, 16)).astype(np.float32)
    c = np.zeros((3, 64, 24), np.float32)
    d = np.zeros((3, 64, 24), np.float32)
    run(BMM, [a, bt, c, d], (3, 2))
    want = a.astype(np.float64) @ bt.astype(np.float64).transpose(0, 2, 1)
    np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d, want, rtol=1e-5, atol=1e-5)


def test_matmul_1024_speed():
    m = n = k = 1024
    rng = np.random.default_rng(6)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    c = np.zeros((m, n), np.float32)
    kernel = next(op for op in parse(matmul_kernel("f32")).walk() if isinstance(op, func.FuncOp))
    t_sim, t_np = math.inf, math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        run_kernel(kernel, [a, b, c], (16, 16))
        t1 = time.perf_counter()
        ref = a @ b
        t2 = time.perf_counter()
        t_sim, t_np = min(t_sim, t1 - t0), min(t_np, t2 - t1)
    print(f"\nmatmul 1024^3 f32: cpu backend {t_sim * 1e3:.1f} ms, numpy @ {t_np * 1e3:.1f} ms, "
          f"ratio {t_sim / t_np:.1f}x")
    np.testing.assert_allclose(c, ref, rtol=1e-4, atol=1e-3)


# --------------------------------------------------------------------------- reductions


REDUCE = """
func.func @reduce(%X: !tile.tensor<?x?xf32>, %S: !tile.tensor<?x?xf32>, %A: !tile.tensor<?xi32>,
                  %M: !tile.tensor<?x?xf32>, %H: !tile.tensor<?x?xf16>, %HS: !tile.tensor<?xf16>) {
  %i = tile.tile_idx 0
  %c0 = arith.constant 0 : i32
  %c32 = arith.constant 32 : i32
  %r = tile.mul %i, %c32 : i32
  %x = tile.load %X[%r, %c0] : !tile.tensor<?x?xf32> -> !tile.tile<32x64xf32>
  %s = tile.reduce "sum" %x {axis = 1 : i64, keepdims = true} : !tile.tile<32x64xf32> -> !tile.tile<32x1xf32>
  tile.store %S[%r, %c0], %s : !tile.tensor<?x?xf32>, !tile.tile<32x1xf32>
  %am = tile.reduce "argmax" %x {axis = 1 : i64} : !tile.tile<32x64xf32> -> !tile.tile<32xi32>
  tile.store %A[%r], %am : !tile.tensor<?xi32>, !tile.tile<32xi32>
  %mx = tile.reduce "max" %x {axis = 0 : i64, keepdims = true} : !tile.tile<32x64xf32> -> !tile.tile<1x64xf32>
  tile.store %M[%i, %c0], %mx : !tile.tensor<?x?xf32>, !tile.tile<1x64xf32>
  %h = tile.load %H[%r, %c0] : !tile.tensor<?x?xf16> -> !tile.tile<32x64xf16>
  %hs = tile.reduce "sum" %h {axis = 1 : i64} : !tile.tile<32x64xf16> -> !tile.tile<32xf16>
  tile.store %HS[%r], %hs : !tile.tensor<?xf16>, !tile.tile<32xf16>
  func.return
}
"""


def test_reductions():
    rows = 128
    rng = np.random.default_rng(7)
    x = rng.standard_normal((rows, 64)).astype(np.float32)
    x[5, 10] = x[5, 40] = 100.0  # a tie: argmax takes the first
    s = np.zeros((rows, 1), np.float32)
    am = np.zeros(rows, np.int32)
    mx = np.zeros((rows // 32, 64), np.float32)
    h = np.full((rows, 64), 0.1, np.float16)
    h[:, 0] = 2048.0  # f16 accumulation would get stuck at 2048; f32 does not
    hs = np.zeros(rows, np.float16)
    run(REDUCE, [x, s, am, mx, h, hs], (rows // 32,))
    np.testing.assert_allclose(s[:, 0], x.astype(np.float64).sum(axis=1), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(am, np.argmax(x, axis=1))
    assert am[5] == 10
    np.testing.assert_array_equal(mx, x.reshape(rows // 32, 32, 64).max(axis=1))
    want = np.float16(np.float32(2048.0) + np.float32(np.float16(0.1)) * 63)
    np.testing.assert_array_equal(hs, np.full(rows, want, np.float16))
    assert want > 2048


# --------------------------------------------------------------------------- atomics


ATOMIC = """
func.func @atomic(%O: !tile.tensor<?xf32>, %U: !tile.tensor<?xi32>) {
  %i = tile.tile_idx 0
  %c8 = arith.constant 8 : i32
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %o = tile.mul %i, %c8 : i32
  %i1 = tile.add %i, %c1 : i32
  %f = tile.cast %i1 : i32 -> f32
  %v = tile.splat %f : f32 -> !tile.tile<16xf32>
  tile.store %O[%o], %v {mode = "atomic_add"} : !tile.tensor<?xf32>, !tile.tile<16xf32>
  %ar = tile.arange : !tile.tile<4xi32>
  tile.store %U[%c0], %ar {mode = "atomic_add"} : !tile.tensor<?xi32>, !tile.tile<4xi32>
  func.return
}
"""


def test_atomic_add_overlapping_programs():
    # program i adds (i+1) to O[8i : 8i+16]: windows overlap, the last one is ragged
    g = 6
    out = np.zeros(8 * g + 4, np.float32)
    u = np.zeros(4, np.int32)
    run(ATOMIC, [out, u], (g,))
    want = np.zeros(8 * g + 8, np.float64)
    for i in range(g):
        want[8 * i: 8 * i + 16] += i + 1
    np.testing.assert_array_equal(out, want[: len(out)])
    # the same tile from every program still adds once per program
    np.testing.assert_array_equal(u, g * np.arange(4))


# --------------------------------------------------------------------------- control flow


TRIANGLE = """
func.func @tri(%X: !tile.tensor<?xf32>, %O: !tile.tensor<?x?xf32>, %P: !tile.tensor<?x?xf32>,
               %C: !tile.tensor<?xi32>) {
  %i = tile.tile_idx 0
  %j = tile.tile_idx 1
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %c2 = arith.constant 2 : i32
  %c16 = arith.constant 16 : i32
  %zf = arith.constant 0.0 : f32
  %n = tile.add %i, %c1 : i32
  %init = tile.splat %zf : f32 -> !tile.tile<16xf32>
  %one = tile.splat %c1 : i32 -> !tile.tile<1xi32>
  %acc = scf.for %k = %c0 to %n step %c1 iter_args(%a = %init) -> (!tile.tile<16xf32>) : i32 {
    %o = tile.mul %k, %c16 : i32
    %x = tile.load %X[%o] : !tile.tensor<?xf32> -> !tile.tile<16xf32>
    %s = tile.add %a, %x : !tile.tile<16xf32>
    tile.store %C[%c0], %one {mode = "atomic_add"} : !tile.tensor<?xi32>, !tile.tile<1xi32>
    scf.yield %s : !tile.tile<16xf32>
  }
  %jf = tile.cast %j : i32 -> f32
  %jt = tile.splat %jf : f32 -> !tile.tile<16xf32>
  %res = tile.add %acc, %jt : !tile.tile<16xf32>
  %res2 = tile.reshape %res : !tile.tile<16xf32> -> !tile.tile<1x16xf32>
  %col = tile.mul %j, %c16 : i32
  tile.store %O[%i, %col], %res2 : !tile.tensor<?x?xf32>, !tile.tile<1x16xf32>
  %par = tile.rem %i, %c2 : i32
  %odd = tile.cmp "eq" %par, %c1 : i32 -> i1
  %v = scf.if %odd -> (!tile.tile<1x16xf32>) {
    %neg = tile.neg %res2 : !tile.tile<1x16xf32>
    scf.yield %neg : !tile.tile<1x16xf32>
  } else {
    scf.yield %res2 : !tile.tile<1x16xf32>
  }
  tile.store %P[%i, %col], %v : !tile.tensor<?x?xf32>, !tile.tile<1x16xf32>
  func.return
}
"""


def test_non_uniform_loop_bound_and_branch():
    # program (i, j) runs i+1 iterations: the loop runs per value of i, batched over j
    gi, gj = 4, 3
    rng = np.random.default_rng(8)
    x = rng.standard_normal(16 * gi).astype(np.float32)
    o = np.zeros((gi, 16 * gj), np.float32)
    p = np.zeros((gi, 16 * gj), np.float32)
    cnt = np.zeros(1, np.int32)
    run(TRIANGLE, [x, o, p, cnt], (gi, gj))
    prefix = np.cumsum(x.reshape(gi, 16).astype(np.float64), axis=0)
    want = np.concatenate([prefix + j for j in range(gj)], axis=1)
    np.testing.assert_allclose(o, want, rtol=1e-6, atol=1e-6)
    sign = np.where(np.arange(gi) % 2 == 1, -1.0, 1.0)[:, None]
    np.testing.assert_allclose(p, sign * want, rtol=1e-6, atol=1e-6)
    assert cnt[0] == gj * sum(i + 1 for i in range(gi))  # one atomic per iteration per program


NESTED = """
func.func @nested(%O: !tile.tensor<?x?xi32>) {
  %i = tile.tile_idx 0
  %j = tile.tile_idx 1
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %c2 = arith.constant 2 : i32
  %c10 = arith.constant 10 : i32
  %ni = tile.add %i, %c1 : i32
  %nj = tile.add %j, %c1 : i32
  %acc = scf.for %a = %c0 to %ni step %c1 iter_args(%s = %c0) -> (i32) : i32 {
    %inner = scf.for %b = %c0 to %nj step %c1 iter_args(%t = %s) -> (i32) : i32 {
      %ab = tile.mul %a, %b : i32
      %ab1 = tile.add %ab, %c1 : i32
      %t2 = tile.add %t, %ab1 : i32
      scf.yield %t2 : i32
    }
    scf.yield %inner : i32
  }
  %par = tile.rem %acc, %c2 : i32
  %even = tile.cmp "eq" %par, %c0 : i32 -> i1
  %res = scf.if %even -> (i32) {
    %m = tile.mul %acc, %c10 : i32
    scf.yield %m : i32
  } else {
    scf.yield %acc : i32
  }
  %t = tile.splat %res : i32 -> !tile.tile<1x1xi32>
  tile.store %O[%i, %j], %t : !tile.tensor<?x?xi32>, !tile.tile<1x1xi32>
  func.return
}
"""


def test_nested_non_uniform_loops_with_scalar_carries():
    gi, gj = 5, 4
    out = np.zeros((gi, gj), np.int32)
    run(NESTED, [out], (gi, gj))
    want = np.zeros((gi, gj), np.int64)
    for i in range(gi):
        for j in range(gj):
            acc = sum(a * b + 1 for a in range(i + 1) for b in range(j + 1))
            want[i, j] = acc * 10 if acc % 2 == 0 else acc
    np.testing.assert_array_equal(out, want)


# --------------------------------------------------------------------------- random


PHILOX_KATS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("ctr, key, want", PHILOX_KATS)
def test_philox_known_answers(ctr, key, want):
    got = philox4x32_10(*(np.array([c], np.uint32) for c in ctr), *(np.uint32(k) for k in key))
    assert [int(w[0]) for w in got] == list(want)


RAND = """
func.func @rnd(%O: !tile.tensor<?xf32>, %seed: i64) {
  %i = tile.tile_idx 0
  %c1024 = arith.constant 1024 : i32
  %base = tile.mul %i, %c1024 : i32
  %ar = tile.arange : !tile.tile<1024xi32>
  %b = tile.splat %base : i32 -> !tile.tile<1024xi32>
  %offs = tile.add %ar, %b : !tile.tile<1024xi32>
  %u = tile.rand %seed, %offs : i64, !tile.tile<1024xi32> -> !tile.tile<1024xf32>
  tile.store %O[%base], %u : !tile.tensor<?xf32>, !tile.tile<1024xf32>
  func.return
}
"""


def test_rand_matches_philox_and_is_uniform():
    n = 64 * 1024
    seed = (7 << 32) | 12345
    u = np.zeros(n, np.float32)
    run(RAND, [u, seed], (64,))
    w0 = philox4x32_10(np.arange(n, dtype=np.uint32), 0, 0, 0, np.uint32(12345), np.uint32(7))[0]
    np.testing.assert_array_equal(u, np.minimum(w0.astype(np.float32) * np.float32(2.0**-32),
                                                np.float32(1 - 2**-24)))
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.006  # ~5 sigma
    assert abs(u.var() - 1 / 12) < 0.004
    counts = np.histogram(u, bins=16, range=(0, 1))[0]
    chi2 = ((counts - n / 16) ** 2 / (n / 16)).sum()
    assert chi2 < 45  # 15 degrees of freedom; p < 1e-4
    v = np.zeros(n, np.float32)
    run(RAND, [v, 12345], (64,))  # only the seed's high word differs
    assert np.mean(u == v) < 0.01


# --------------------------------------------------------------------------- errors


def test_unsupported_op_is_named():
    text = """
func.func @k(%X: !tile.tensor<?xf32>) {
  %c = arith.constant 1 : i32
  %d = arith.addi %c, %c : i32
  func.return
}
"""
    with pytest.raises(NotImplementedError, match="cpu backend: arith.addi is not supported"):
        run(text, [np.zeros(4, np.float32)], (1,))


def test_argument_checks():
    with pytest.raises(TypeError, match="dtype"):
        run(VADD, [np.zeros(4, np.float64)] * 4, (1,))
    with pytest.raises(TypeError, match="arguments"):
        run(VADD, [np.zeros(4, np.float32)], (1,))


# --------------------------------------------------------------------------- tile boxes (fast load/store path)


def test_find_box_recognises_end_to_end_tiles():
    col = lambda v: np.asarray(v, np.int32).reshape(-1, 1)  # noqa: E731  varies along grid axis 0
    row = lambda v: np.asarray(v, np.int32).reshape(1, -1)  # noqa: E731  varies along grid axis 1
    one = np.full((1, 1), 5, np.int32)
    box = tile_box.find_box([col([0, 64, 128]), one], (64, 32))
    assert (box.starts, box.counts, box.axes, box.extent) == ((0, 5), (3, 1), (0, -1), (192, 32))
    box = tile_box.find_box([row([-3, 13]), col([7, 39, 71])], (16, 32))  # dims on swapped grid axes
    assert (box.starts, box.counts, box.axes) == ((-3, 7), (2, 3), (1, 0))
    long = np.arange(100, dtype=np.int32).reshape(-1, 1) * 8  # the numpy check (long offset arrays)
    assert tile_box.find_box([long, one], (8, 4)).counts == (100, 1)
    assert tile_box.find_box([long, one], (16, 4)) is None
    assert tile_box.find_box([col([0, 128, 256]), one], (64, 32)) is None  # gaps
    assert tile_box.find_box([col([0, 32, 64]), one], (64, 32)) is None  # overlaps
    assert tile_box.find_box([col([128, 64, 0]), one], (64, 32)) is None  # descending
    assert tile_box.find_box([col([0, 64, 128]), col([0, 32, 64])], (64, 32)) is None  # one axis, two dims
    both = (np.arange(2).reshape(2, 1) * 64 + np.arange(3).reshape(1, 3) * 128).astype(np.int32)
    assert tile_box.find_box([both, one], (64, 32)) is None  # varies along two grid axes


def test_box_grid_views_round_trip():
    # a rank-3 tensor: dim 0 uniform, dim 1 along grid axis 2, dim 2 along grid axis 0, grid rank 3
    box = tile_box.Box((0, 0, 0), (1, 4, 3), (-1, 2, 0), (2, 5, 6))
    arr = np.arange(math.prod(box.extent)).reshape(box.extent)
    grid = tile_box.box_to_grid(arr, box, 3)
    assert grid.shape == (3, 1, 4, 2, 5, 6) and np.shares_memory(grid, arr)
    for a in range(3):
        for c in range(4):
            np.testing.assert_array_equal(grid[a, 0, c], arr[:, 5 * c:5 * c + 5, 6 * a:6 * a + 6])
    back = tile_box.grid_to_box(grid, box, 3)
    assert np.shares_memory(back, arr)
    np.testing.assert_array_equal(back, arr)
    # a value that does not vary along a box axis is broadcast to every tile of it
    np.testing.assert_array_equal(tile_box.grid_to_box(grid[:1], box, 3), np.tile(arr[:, :, :6], (1, 1, 3)))


COPY_KERNEL = """
func.func @copy(%X: !tile.tensor<?x?x{dt}>, %Y: !tile.tensor<?x?x{dt}>) {{
  %i = tile.tile_idx 0
  %j = tile.tile_idx 1
{offsets}
  %cbm = arith.constant {bm} : i32
  %cbn = arith.constant {bn} : i32
  %pr = tile.mul %i, %cbm : i32
  %pc = tile.mul %j, %cbn : i32
{body}
  func.return
}}
"""


def _offset(name: str, spec) -> str:
    """`%name = tile_idx(axis) * step + base`, or the constant `base` for axis None."""
    axis, step, base = spec
    if axis is None:
        return f"  %{name} = arith.constant {base} : i32\n"
    idx = "%i" if axis == 0 else "%j"
    return (f"  %{name}_s = arith.constant {step} : i32\n  %{name}_b = arith.constant {base} : i32\n"
            f"  %{name}_m = tile.mul {idx}, %{name}_s : i32\n  %{name} = tile.add %{name}_m, %{name}_b : i32\n")


def _copy_kernel(rows, cols, bm: int, bn: int, load_at_offsets: bool, dt: str = "f32", pad: float = -1.0,
                 mode: str = "store") -> str:
    """Load at (rows, cols) and store at the program's own slot (i*bm, j*bn), or the reverse."""
    tile = f"!tile.tile<{bm}x{bn}x{dt}>"
    tensor = f"!tile.tensor<?x?x{dt}>"
    src, dst = ("%r, %c", "%pr, %pc") if load_at_offsets else ("%pr, %pc", "%r, %c")
    body = (f"  %t = tile.load %X[{src}] {{padding = {pad} : f64}} : {tensor} -> {tile}\n"
            f"  tile.store %Y[{dst}], %t {{mode = \"{mode}\"}} : {tensor}, {tile}\n")
    return COPY_KERNEL.format(dt=dt, bm=bm, bn=bn, body=body, offsets=_offset("r", rows) + _offset("c", cols))


def _offsets_of(spec, i: int, j: int) -> int:
    axis, step, base = spec
    return base + ({0: i, 1: j}[axis] * step if axis is not None else 0)


def _ref_tile(X: np.ndarray, r: int, c: int, bm: int, bn: int, pad) -> np.ndarray:
    out = np.full((bm, bn), pad, X.dtype)
    for a in range(bm):
        for b in range(bn):
            if 0 <= r + a < X.shape[0] and 0 <= c + b < X.shape[1]:
                out[a, b] = X[r + a, c + b]
    return out


def _ref_put(Y: np.ndarray, r: int, c: int, t: np.ndarray, add: bool) -> None:
    for a in range(t.shape[0]):
        for b in range(t.shape[1]):
            if 0 <= r + a < Y.shape[0] and 0 <= c + b < Y.shape[1]:
                Y[r + a, c + b] = Y[r + a, c + b] + t[a, b] if add else t[a, b]


@pytest.fixture
def general_path_calls(monkeypatch):
    """Counts the loads and stores that take the general (gather / scatter) path."""
    calls = {"gather": 0, "scatter": 0}
    for name in calls:
        orig = getattr(cpu_memory, f"_{name}")

        def counted(*a, _orig=orig, _name=name):
            calls[_name] += 1
            return _orig(*a)
        monkeypatch.setattr(cpu_memory, f"_{name}", counted)
    return calls


# (rows, cols): (grid axis or None, step, base) per tensor dim; whether the tiles sit end to end
BOX_CASES = {
    "aligned": ((0, 16, 0), (1, 32, 0), True),
    "ragged": ((0, 16, 3), (1, 32, 5), True),
    "swapped-axes": ((1, 16, 0), (0, 32, 0), True),
    "before-start": ((0, 16, -5), (1, 32, -9), True),
    "uniform-col": ((0, 16, 2), (None, 0, 7), True),
    "all-outside": ((0, 16, 1000), (1, 32, 0), True),
    "gaps": ((0, 32, 0), (1, 32, 0), False),
    "overlap": ((0, 8, 0), (1, 32, 0), False),
    "descending": ((0, -16, 48), (1, 32, 0), False),
    "diagonal": ((0, 16, 0), (0, 32, 0), False),
}


@pytest.mark.parametrize("case", BOX_CASES)
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "general"])
def test_load_fast_path_matches_per_program_reference(case, fast, general_path_calls, monkeypatch):
    rows, cols, end_to_end = BOX_CASES[case]
    if not fast:
        monkeypatch.setattr(cpu_memory, "find_box", lambda offs, shape: None)
    gi, gj, bm, bn = 4, 3, 16, 32
    rng = np.random.default_rng(10)
    x = rng.standard_normal((60, 90)).astype(np.float32)  # neither dim a multiple of the tile
    y = np.full((gi * bm, gj * bn), np.nan, np.float32)
    run(_copy_kernel(rows, cols, bm, bn, load_at_offsets=True), [x, y], (gi, gj))
    for i in range(gi):
        for j in range(gj):
            want = _ref_tile(x, _offsets_of(rows, i, j), _offsets_of(cols, i, j), bm, bn, -1.0)
            np.testing.assert_array_equal(y[i * bm:(i + 1) * bm, j * bn:(j + 1) * bn], want)
    assert general_path_calls["gather"] == (0 if fast and end_to_end else 1)
    assert general_path_calls["scatter"] == (0 if fast else 1)  # the program's own slot: end to end


@pytest.mark.parametrize("case", BOX_CASES)
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "general"])
def test_store_fast_path_matches_per_program_reference(case, fast, general_path_calls, monkeypatch):
    rows, cols, end_to_end = BOX_CASES[case]
    if not fast:
        monkeypatch.setattr(cpu_memory, "find_box", lambda offs, shape: None)
    gi, gj, bm, bn = 4, 3, 16, 32
    rng = np.random.default_rng(11)
    x = rng.standard_normal((gi * bm, gj * bn)).astype(np.float32)
    y = np.full((60, 90), np.nan, np.float32)
    want = y.copy()
    run(_copy_kernel(rows, cols, bm, bn, load_at_offsets=False), [x, y], (gi, gj))
    for i in range(gi):  # program order: where tiles overlap the last program's write wins
        for j in range(gj):
            _ref_put(want, _offsets_of(rows, i, j), _offsets_of(cols, i, j),
                     x[i * bm:(i + 1) * bm, j * bn:(j + 1) * bn], add=False)
    np.testing.assert_array_equal(y, want)
    # a value that varies along a grid axis the offsets do not (uniform-col: axis 1) is a race
    racy = case == "uniform-col"
    assert general_path_calls["scatter"] == (0 if fast and end_to_end and not racy else 1)
    assert general_path_calls["gather"] == (0 if fast else 1)


@pytest.mark.parametrize("case", ["aligned", "ragged", "uniform-col", "overlap"])
def test_atomic_add_store_takes_the_general_path(case, general_path_calls):
    rows, cols, _ = BOX_CASES[case]
    gi, gj, bm, bn = 4, 3, 16, 32
    rng = np.random.default_rng(12)
    x = rng.integers(-50, 50, (gi * bm, gj * bn)).astype(np.int32)
    y = rng.integers(-50, 50, (60, 90)).astype(np.int32)
    want = y.copy()
    run(_copy_kernel(rows, cols, bm, bn, load_at_offsets=False, dt="i32", pad=0.0, mode="atomic_add"),
        [x, y], (gi, gj))
    for i in range(gi):
        for j in range(gj):
            _ref_put(want, _offsets_of(rows, i, j), _offsets_of(cols, i, j),
                     x[i * bm:(i + 1) * bm, j * bn:(j + 1) * bn], add=True)
    np.testing.assert_array_equal(y, want)
    assert general_path_calls["scatter"] == 1


def test_integer_load_padding_and_broadcast_store():
    # i32 tiles padded with -7; a splat (grid-uniform) value stored to every tile of a ragged box
    text = """
func.func @k(%X: !tile.tensor<?xi32>, %Y: !tile.tensor<?xi32>, %Z: !tile.tensor<?xi32>) {
  %i = tile.tile_idx 0
  %c8 = arith.constant 8 : i32
  %o = tile.mul %i, %c8 : i32
  %x = tile.load %X[%o] {padding = -7.0 : f64} : !tile.tensor<?xi32> -> !tile.tile<8xi32>
  tile.store %Y[%o], %x : !tile.tensor<?xi32>, !tile.tile<8xi32>
  %c3 = arith.constant 3 : i32
  %s = tile.splat %c3 : i32 -> !tile.tile<8xi32>
  tile.store %Z[%o], %s : !tile.tensor<?xi32>, !tile.tile<8xi32>
  func.return
}
"""
    for n in (23, 24, 21):  # the box of 3 tiles sticks out by 1, fits, sticks out by 3
        x = np.arange(n, dtype=np.int32)
        y = np.zeros(24, np.int32)
        z = np.zeros(n, np.int32)
        run(text, [x, y, z], (3,))
        np.testing.assert_array_equal(y, np.concatenate([x, np.full(24 - n, -7, np.int32)]))
        np.testing.assert_array_equal(z, np.full(n, 3, np.int32))


ALIAS = """
func.func @alias(%X: !tile.tensor<?xf32>, %Z: !tile.tensor<?xf32>, %W: !tile.tensor<?xf32>) {
  %i = tile.tile_idx 0
  %c16 = arith.constant 16 : i32
  %o = tile.mul %i, %c16 : i32
  %x = tile.load %X[%o] : !tile.tensor<?xf32> -> !tile.tile<16xf32>
  %x2 = tile.add %x, %x : !tile.tile<16xf32>
  tile.store %Z[%o], %x2 : !tile.tensor<?xf32>, !tile.tile<16xf32>
  tile.store %W[%o], %x : !tile.tensor<?xf32>, !tile.tile<16xf32>
  func.return
}
"""


@pytest.mark.parametrize("layout", ["distinct", "same", "overlapping"])
def test_loads_are_not_changed_by_later_stores(layout):
    # program order: x is read before Z is written, so W gets the old X, even where Z is X
    n = 64
    rng = np.random.default_rng(13)
    buf = rng.standard_normal(2 * n).astype(np.float32)
    x = buf[:n]
    z = {"distinct": np.zeros(n, np.float32), "same": x, "overlapping": buf[n // 2: n // 2 + n]}[layout]
    old_x = x.copy()
    w = np.zeros(n, np.float32)
    prog = cpu_interp.compiled(next(op for op in parse(ALIAS).walk() if isinstance(op, func.FuncOp)), 1)
    assert prog.frozen([x, z, w]) == (frozenset({0}) if layout == "distinct" else frozenset())
    run(ALIAS, [x, z, w], (n // 16,))
    np.testing.assert_array_equal(w, old_x)
    np.testing.assert_array_equal(z, 2 * old_x)
    if layout == "distinct":
        np.testing.assert_array_equal(x, old_x)


def test_compiled_kernel_is_cached_per_func_and_grid_rank(monkeypatch):
    compiles = []
    orig = cpu_interp._compile

    def counting(func_op, G):
        compiles.append(G)
        return orig(func_op, G)
    monkeypatch.setattr(cpu_interp, "_compile", counting)
    kernel = next(op for op in parse(VADD).walk() if isinstance(op, func.FuncOp))
    n = 256
    x = np.arange(n, dtype=np.float32)
    outs = [np.zeros(n, np.float32) for _ in range(3)]
    for grid in ((2,), (2,), (2, 1), (2,)):  # 128-element tiles: grid axis 1 is not read
        z = np.zeros(n, np.float32)
        run_kernel(kernel, [x, x, z, outs[0]], grid)
        np.testing.assert_array_equal(z, 2 * x)
    assert compiles == [1, 2]
    # the cache holds the func.func weakly: it goes with the module
    ref = weakref.ref(kernel)
    gc.collect()
    before = len(cpu_interp._PROGRAMS)
    del kernel
    gc.collect()
    assert ref() is None and len(cpu_interp._PROGRAMS) == before - 1


def test_join_views_and_copies():
    a = np.arange(6 * 32, dtype=np.float32).reshape(6, 32)
    parts = [a[:, 8 * k:8 * k + 8] for k in range(4)]  # consecutive K tiles of one tensor
    joined = cpu_matmul.join(parts, -1)
    assert np.shares_memory(joined, a) and not joined.flags.writeable
    np.testing.assert_array_equal(joined, a)
    rows = [a[2 * k:2 * k + 2] for k in range(3)]
    assert np.shares_memory(cpu_matmul.join(rows, 0), a)
    for parts2 in (parts[::-1], [parts[0], parts[2]], [parts[0], a.copy()[:, 8:16]]):  # not end to end
        got = cpu_matmul.join(parts2, -1)
        assert not np.shares_memory(got, a)
        np.testing.assert_array_equal(got, np.concatenate(parts2, axis=-1))
    # a copy keeps the parts' memory order, so the GEMM's reshape of it stays a view
    t = [np.ascontiguousarray(p.T).T for p in parts]  # column-major parts
    got = cpu_matmul.join(t, -1)
    assert got.flags.f_contiguous
    np.testing.assert_array_equal(got, a)


def test_matmul_transposed_grid_and_aliasing_output():
    # programs (i, j) compute C's tile (j, i): A's rows run along grid axis 1, B's columns along axis 0;
    # and C is passed as A too, so the loads must copy (C is written after the loop)
    text = matmul_kernel("f32").replace("%i = tile.tile_idx 0", "%i = tile.tile_idx 1").replace(
        "%j = tile.tile_idx 1", "%j = tile.tile_idx 0")
    rng = np.random.default_rng(14)
    n = 128
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    want = a.astype(np.float64) @ b
    c = np.zeros((n, n), np.float32)
    run(text, [a, b, c], (2, 2))
    np.testing.assert_allclose(c, want, rtol=1e-4, atol=1e-4)
    run(text, [a, b, a], (2, 2))
    np.testing.assert_allclose(a, want, rtol=1e-4, atol=1e-4)


@ct.kernel
def _k_loop_matmul_64(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor, BK: ct.Constant[int]):
    acc = ct.zeros([64, 64])
    for k in range(0, A.shape[1], BK):
        acc += ct.matmul(ct.load_tile(A, offset=[0, k], size=[64, BK]), ct.load_tile(B, offset=[k, 0], size=[BK, 64]))
    ct.store_tile(C, offset=[0, 0], tile=acc)


@pytest.mark.parametrize("da,db", [("float8_e5m2", "float8_e5m2"), ("float8_e4m3fn", "float6_e2m3fn"),
                                   ("bfloat16", "bfloat16")])
def test_k_loop_of_ml_dtypes_tiles_joins_their_views(da, db):
    """The K-loop fusion joins consecutive K tiles as one strided view; numpy cannot rebuild
    1-byte ml_dtypes arrays from the array interface, so the view goes through uint8."""
    rng = np.random.default_rng(7)
    a = rng.standard_normal((64, 256)).astype(getattr(ml_dtypes, da))
    b = rng.standard_normal((256, 64)).astype(getattr(ml_dtypes, db))
    c = np.full((64, 64), np.nan, np.float32)
    _k_loop_matmul_64[(1,)](a, b, c, 64)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    assert np.abs(c - ref).max() <= 1e-4 * np.abs(ref).max()
