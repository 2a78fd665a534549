"""Broadcasts, layout conversions and reductions that stay in registers (`exchange.register_map`,
`lower_reduce._length_one`, `lower_elementwise._into`) and the shared-memory exchanges they
replace: numbers through the PTX simulator against numpy, and the emitted PTX's barriers.

`register_map` is checked semantically: every thread of the source layout gets, per slot, the
coordinates of the element it holds (from the layout's definition, `element = tid * vec +
const(slot)`); following the map must give each destination slot the source element its own
coordinates name (stretched dims at 0, reduced lines for `Sliced`).
"""

from __future__ import annotations

import numpy as np
import pytest

import tilec as ct
from tilec.backends.ptx.exchange import register_map
from tilec.backends.ptx.layout import Blocked, Sliced


def _coords(layout, t: int, s: int):
    """(coords, valid) of what thread t's slot s holds, straight from the layout definition."""
    p = layout.parent if isinstance(layout, Sliced) else layout
    e = t * p.vec + p.slot_const(s)
    if e >= p.numel:
        return None
    c = list(np.unravel_index(e, p.shape))
    if isinstance(layout, Sliced):
        c = [0 if d in layout.axes else x for d, x in enumerate(c)]
    return tuple(int(x) for x in c)


LAYOUT_PAIRS = [
    (Blocked((1, 32, 128), 128), Blocked((4, 32, 128), 128)),
    (Blocked((1, 128), 128), Blocked((64, 128), 128)),
    (Sliced(Blocked((64, 128), 128), (0,)), Blocked((1, 128), 128)),
    (Sliced(Blocked((64, 128), 128), (1,)), Blocked((64, 1), 128)),
    (Sliced(Blocked((64, 128), 128), (0, 1)), Blocked((1, 1), 128)),
    (Sliced(Blocked((4, 64, 128), 256), (1,)), Blocked((4, 1, 128), 256)),
    (Blocked((1, 64, 128), 256), Blocked((8, 64, 128), 256)),
    (Blocked((1, 24, 5), 64), Blocked((3, 24, 5), 64)),
    (Blocked((1, 1), 128), Sliced(Blocked((64, 128), 128), (0, 1))),
    (Blocked((64, 1), 128), Blocked((64, 128), 128)),
    (Blocked((2, 1, 64), 32), Blocked((2, 16, 64), 32)),
    (Blocked((16, 64), 128, True), Blocked((16, 64), 128)),
]


@pytest.mark.parametrize("src,dst", LAYOUT_PAIRS)
def test_register_map_moves_the_right_elements(src, dst):
    m = register_map(src, dst)
    expected_copy = {0: True, 1: False, 2: True, 3: False, 4: True, 5: False, 6: True, 8: False, 9: False}
    i = LAYOUT_PAIRS.index((src, dst))
    if i in expected_copy:          # hand-derived in exchange.register_map's docstring / the bit fields
        assert (m is not None) == expected_copy[i], m
    if m is None:
        return
    sshape = src.shape
    for t in range(dst.num_threads):
        for s in range(dst.num_slots):
            want = _coords(dst, t, s)
            if want is None:
                continue
            want = tuple(0 if n == 1 else c for c, n in zip(want, sshape))
            assert _coords(src, t, m[s]) == want, (t, s, m[s])
    # 5: thread t of [4, 1, 128] wants head t // 32, which the source keeps in k bits (a slot
    # that depends on the thread): not a register move


# ---------------------------------------------------------------------------- kernels on the simulator

@ct.kernel
def bcast_heads(X: ct.Tensor, Y: ct.Tensor):
    x = ct.load_tile(X, offset=[0, 0, 0], size=[1, 32, 128])
    ct.store_tile(Y, offset=[0, 0, 0], tile=ct.broadcast_to(x, [4, 32, 128]) * 2.0)


@ct.kernel
def bcast_rows(X: ct.Tensor, Y: ct.Tensor):        # [1, 128] -> [64, 128]: stays an exchange
    x = ct.load_tile(X, offset=[0, 0], size=[1, 128])
    ct.store_tile(Y, offset=[0, 0], tile=ct.broadcast_to(x, [64, 128]) + 1.0)


@ct.kernel
def bcast_odd(X: ct.Tensor, Y: ct.Tensor):         # not powers of two
    x = ct.load_tile(X, offset=[0, 0, 0], size=[1, 24, 5])
    ct.store_tile(Y, offset=[0, 0, 0], tile=ct.broadcast_to(x, [3, 24, 5]) - 1.0)


@ct.kernel
def masked_rows(X: ct.Tensor, Y: ct.Tensor, n: int):
    x = ct.load_tile(X, offset=[0, 0], size=[64, 128])
    s = ct.where(ct.arange(64)[:, None] < n, ct.sum(x, axis=1, keepdims=True), 0.0)
    ct.store_tile(Y, offset=[0, 0], tile=s * x)


@ct.kernel
def col_sum_plus(X: ct.Tensor, A: ct.Tensor, Y: ct.Tensor):     # canonical [1, 128] + Sliced [1, 128]
    x = ct.load_tile(X, offset=[0, 0], size=[64, 128])
    a = ct.load_tile(A, offset=[0, 0], size=[1, 128])
    ct.store_tile(Y, offset=[0, 0], tile=a * 3.0 + ct.sum(x, axis=0, keepdims=True))


@ct.kernel
def length_one(X: ct.Tensor, H: ct.Tensor, S: ct.Tensor, M: ct.Tensor, I: ct.Tensor, P: ct.Tensor, Y: ct.Tensor):
    x = ct.load_tile(X, offset=[0, 0], size=[64, 1])
    h = ct.load_tile(H, offset=[0, 0], size=[8, 1])
    ct.store_tile(S, offset=[0], tile=ct.sum(x, axis=1))                        # i32 [64, 1] -> [64]
    ct.store_tile(M, offset=[0, 0], tile=ct.max(h, axis=1, keepdims=True))      # f16, keepdims
    ct.store_tile(I, offset=[0], tile=ct.argmax(h, axis=1))                     # index 0
    k = ct.load_tile(P, offset=[1], size=[1]).sum()                             # a scalar from one element
    ct.store_tile(Y, offset=[0], tile=ct.load_tile(X, offset=[k, 0], size=[4, 1]).reshape([4]))


@ct.kernel
def running_max(X: ct.Tensor, Y: ct.Tensor, nb: int):
    """A loop carrying reduction results ([64, 1] row max, [1, 1] total) in their Sliced layouts."""
    m = ct.full([64, 1], float("-inf"), ct.float32)
    tot = ct.zeros([1, 1], ct.float32)
    for j in range(0, nb):
        x = ct.load_tile(X, offset=[0, j * 32], size=[64, 32])
        m = ct.maximum(m, ct.max(x, axis=1, keepdims=True))
        tot = tot + ct.sum(ct.sum(x, axis=1, keepdims=True), axis=0, keepdims=True)
    ct.store_tile(Y, offset=[0, 0], tile=m - tot)


def _sim(monkeypatch, target="sim:sm_90a"):
    monkeypatch.setenv("TILEC_TARGET", target)


@pytest.mark.parametrize("target", ["sim:sm_90a", "sim:sm_80"])
def test_broadcasts(monkeypatch, target):
    _sim(monkeypatch, target)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 32, 128)).astype(np.float32)
    y = np.zeros((4, 32, 128), np.float32)
    bcast_heads[(1,)](x, y)
    np.testing.assert_array_equal(y, np.broadcast_to(x, y.shape) * 2)
    x = rng.standard_normal((1, 128)).astype(np.float32)
    y = np.zeros((64, 128), np.float32)
    bcast_rows[(1,)](x, y)
    np.testing.assert_array_equal(y, np.broadcast_to(x, y.shape) + 1)
    x = rng.standard_normal((1, 24, 5)).astype(np.float32)
    y = np.zeros((3, 24, 5), np.float32)
    bcast_odd[(1,)](x, y)
    np.testing.assert_array_equal(y, np.broadcast_to(x, y.shape) - 1)


def test_elementwise_keeps_reduced_layouts(monkeypatch):
    _sim(monkeypatch)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 128)).astype(np.float32)
    y = np.zeros_like(x)
    masked_rows[(1,)](x, y, 37)
    rows = np.where(np.arange(64)[:, None] < 37, x.astype(np.float64).sum(1, keepdims=True), 0)
    np.testing.assert_allclose(y, rows * x, rtol=1e-5, atol=1e-4)
    a = rng.standard_normal((1, 128)).astype(np.float32)
    y = np.zeros((1, 128), np.float32)
    col_sum_plus[(1,)](x, a, y)
    np.testing.assert_allclose(y, a * 3.0 + x.astype(np.float64).sum(0, keepdims=True), rtol=1e-5, atol=1e-4)


def test_reductions_over_length_one(monkeypatch):
    _sim(monkeypatch)
    rng = np.random.default_rng(2)
    x = rng.integers(-1000, 1000, (64, 1)).astype(np.int32)
    h = rng.standard_normal((8, 1)).astype(np.float16)
    h[3, 0] = np.nan
    p = np.array([0, 5], np.int32)
    s, m, i, y = np.zeros(64, np.int32), np.zeros((8, 1), np.float16), np.ones(8, np.int32), np.zeros(4, np.int32)
    length_one[(1,)](x, h, s, m, i, p, y)
    np.testing.assert_array_equal(s, x[:, 0])
    np.testing.assert_array_equal(m, h)          # NaN stays NaN
    np.testing.assert_array_equal(i, np.zeros(8))
    np.testing.assert_array_equal(y, x[5:9, 0])


def test_loop_carries_reduced_layouts(monkeypatch):
    _sim(monkeypatch)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 96)).astype(np.float32)
    y = np.zeros((64, 1), np.float32)
    running_max[(1,)](x, y, 3)
    np.testing.assert_allclose(y, x.max(1, keepdims=True) - x.astype(np.float64).sum(), rtol=1e-5, atol=1e-3)


def _ptx(kernel, args, target="sm_90a"):
    from tilec.driver import CompileOptions, compile_kernel

    specs, _ = kernel.bind(args)
    return compile_kernel(kernel, specs, target, CompileOptions()).gpu.ptx


def test_no_exchange_in_register_moves():
    """The moves above emit no shared memory and no barrier of their own; [1, 128] -> [64, 128] needs one
    exchange (2 bar.sync), and shares one ld.shared per distinct element (4 per thread)."""
    f = np.zeros((64, 128), np.float32)
    for kernel, args in ((bcast_heads, (np.zeros((1, 32, 128), np.float32), np.zeros((4, 32, 128), np.float32))),
                         (masked_rows, (f, f, 3))):
        ptx = _ptx(kernel, args)
        assert "bar.sync" not in ptx and "st.shared" not in ptx and "ld.shared" not in ptx, kernel.name
    # the column sum crosses warps (one round through smem, 2 bar.sync); adding it to a canonical
    # [1, 128] tile is a register copy (it was a second round)
    assert _ptx(col_sum_plus, (f, np.zeros((1, 128), np.float32), f)).count("bar.sync") == 2
    ptx = _ptx(bcast_rows, (np.zeros((1, 128), np.float32), f))
    assert ptx.count("bar.sync") == 2 and ptx.count("ld.shared") == 4
    i, h = np.zeros((64, 1), np.int32), np.zeros((8, 1), np.float16)
    ptx = _ptx(length_one, (i, h, np.zeros(64, np.int32), h, np.zeros(8, np.int32), np.zeros(2, np.int32),
                            np.zeros(4, np.int32)))
    assert "bar.sync" not in ptx and "st.shared" not in ptx   # P is never stored: every thread loads P[1]


@ct.kernel
def store_then_read(X: ct.Tensor, Y: ct.Tensor):
    """Y[0] is written, then read back as a scalar: that one-element load stays in thread 0
    (which wrote it) and reaches the others through shared memory."""
    ct.store_tile(Y, offset=[0], tile=ct.load_tile(X, offset=[0], size=[1]) + 7)
    k = ct.load_tile(Y, offset=[0], size=[1]).sum()
    ct.store_tile(Y, offset=[1], tile=ct.load_tile(X, offset=[k], size=[2]))


def test_one_element_load_of_a_written_tensor(monkeypatch):
    ptx = _ptx(store_then_read, (np.zeros(4, np.int32), np.zeros(3, np.int32)))
    assert ptx.count("bar.sync") == 2
    _sim(monkeypatch)
    x, y = np.array([-6, 11, 22, 33], np.int32), np.zeros(3, np.int32)
    store_then_read[(1,)](x, y)
    np.testing.assert_array_equal(y, [1, 11, 22])


@pytest.mark.parametrize("fmt", ["mx", "nv"])
@pytest.mark.parametrize("rows,m", [(13, 8), (16, 8), (5, 2)])
def test_dequantize_reads_its_scales(monkeypatch, fmt, rows, m):
    """`tile.dequantize` of scales loaded from a tensor the kernel never writes: each chunk's
    thread reads its scale from global memory (an [8, 64] tile; the ragged last tile of 13 rows
    takes the bounds-checked path with the padding); a [2, 64] tile (fewer elements than 128
    threads x 4) keeps the shared-memory exchange.  Against the host's fp4.dequantize."""
    import ml_dtypes
    from test_ptx_quantize import dequant

    from tilec import fp4

    block, sd = (32, ml_dtypes.float8_e8m0fnu) if fmt == "mx" else (16, ml_dtypes.float8_e4m3fn)
    k = 64
    rng = np.random.default_rng(rows)
    packed = rng.integers(0, 256, (rows, k // 2), dtype=np.uint8)
    codes = rng.integers(100, 140, (rows, k // block)) if fmt == "mx" else rng.integers(1, 0x7F, (rows, k // block))
    scales = codes.astype(np.uint8).view(sd)
    y = np.full((rows, k), np.nan, np.float32)
    _sim(monkeypatch)
    dequant[(-(-rows // m),)](ct.fp4_tensor(packed, (rows, k)), scales, y, m, k, block)
    np.testing.assert_array_equal(y, fp4.dequantize(packed, scales, block).astype(np.float32))
    ptx = _ptx(dequant, (ct.fp4_tensor(packed, (rows, k)), scales, y, m, k, block))
    assert ("bar.sync" in ptx) == (m == 2)
