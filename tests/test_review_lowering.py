"""Review of the sm_80 / sm_90a lowering passes: kernels that a matcher must not take as
they are, or that must keep their exact semantics when it does (PTX simulator vs CPU)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import tilec as ct
from tilec.driver import CompileOptions, compile_kernel


def _run(kernel, grid, args, target, monkeypatch, **kw):
    monkeypatch.setenv("TILEC_TARGET", target)
    kernel[grid](*args, **kw)


@ct.kernel
def attention_double_cast(Q: ct.Tensor, K: ct.Tensor, V: ct.Tensor, O: ct.Tensor,
                          BM: ct.Constant[int], BN: ct.Constant[int], D: ct.Constant[int]):
    q = ct.load_tile(Q, offset=[0, 0], size=[BM, D])
    m_i = ct.full([BM, 1], float("-inf"), ct.float32)
    acc = ct.zeros([BM, D], ct.float32)
    for start in range(0, K.shape[0], BN):
        k = ct.load_tile(K, offset=[start, 0], size=[BN, D])
        s = ct.matmul(q, k.T)
        m_new = ct.maximum(m_i, ct.max(s, axis=1, keepdims=True))
        p = ct.exp(s - m_new)
        v = ct.load_tile(V, offset=[start, 0], size=[BN, D])
        acc = acc * ct.exp(m_i - m_new) + ct.matmul(p.astype(v.dtype), v)
        m_i = m_new
    ct.store_tile(O, offset=[0, 0], tile=acc.astype(ct.float16).astype(ct.bfloat16))


def test_attention_epilogue_keeps_both_roundings(monkeypatch):
    """`acc.astype(f16).astype(bf16)` rounds twice (7.7e6 overflows f16 to inf): the TMA
    store of the fragments (one f32 -> bf16 rounding) must not swallow both casts."""
    q, k = np.zeros((64, 64), np.float16), np.zeros((128, 64), np.float16)
    v = np.full((128, 64), 60000, np.float16)
    specs, _ = attention_double_cast.bind((q, k, v, np.zeros((64, 64), ml_dtypes.bfloat16), 64, 64, 64))
    ir = compile_kernel(attention_double_cast, specs, "sm_90a", CompileOptions()).ir()
    assert "tgpu.wgmma_reg_a" in ir                       # still the wgmma attention path
    assert "-> !tile.tile<64x64xf16>" in ir.split("tgpu.wgmma_reg_a")[-1]   # the f16 rounding is kept
    o = np.zeros((64, 64), ml_dtypes.bfloat16)
    _run(attention_double_cast, (1,), (q, k, v, o, 64, 64, 64), "sim:sm_90a", monkeypatch)
    assert np.all(np.isinf(o.astype(np.float32)))


@ct.kernel
def w4a16_padded_colsum(X: ct.Tensor, WQ: ct.Tensor, WS: ct.Tensor, Y: ct.Tensor, BM: ct.Constant[int],
                        BN: ct.Constant[int], BK: ct.Constant[int], BLOCK: ct.Constant[int]):
    j = ct.tile_idx(0)
    acc = ct.zeros([BM, BN], ct.float32)
    for k in range(X.shape[1] // BK):
        x = ct.load_tile(X, offset=[0, k * BK], size=[BM, BK], padding=1.0)
        wq = ct.load_tile(WQ, offset=[j * BN, k * BK], size=[BN, BK])
        ws = ct.load_tile(WS, offset=[j * BN, k * (BK // BLOCK)], size=[BN, BK // BLOCK])
        acc = ct.matmul(x, ct.dequantize(wq, ws, dtype=x.dtype).T, acc)
    ct.store_tile(Y, offset=[j * BN], tile=ct.sum(acc, axis=0))


@pytest.mark.parametrize("target", ["sim:sm_90a", "sim:sm_80"])
def test_w4a16_padded_activations_are_not_the_fast_loop(monkeypatch, target):
    """X rows past M read as 1.0 (`padding=1.0`) and the column sums see them; w4a16.mma_loop
    zero-fills those rows, so the loop must keep the generic lowering."""
    from tilec import fp4

    rng = np.random.default_rng(0)
    m, n, k = 5, 64, 256
    x = rng.standard_normal((m, k)).astype(np.float16)
    w = rng.standard_normal((n, k)).astype(np.float32)
    q, s = fp4.quantize(w, 32, ml_dtypes.float8_e8m0fnu)
    args = lambda y: (x, ct.fp4_tensor(q, (n, k)), s, y, 8, 64, 128, 32)  # noqa: E731
    ref, y = np.zeros(n, np.float32), np.zeros(n, np.float32)
    w4a16_padded_colsum[(1,)](*args(ref))                                  # CPU backend
    _run(w4a16_padded_colsum, (1,), args(y), target, monkeypatch)
    np.testing.assert_allclose(y, ref, rtol=1e-3, atol=1e-2)


@ct.kernel
def matmul_store_shifted(A: ct.Tensor, B: ct.Tensor, Z: ct.Tensor, C: ct.Tensor, BM: ct.Constant[int],
                         BN: ct.Constant[int], BK: ct.Constant[int], FROM_Z: ct.Constant[int]):
    """Tile i stores at rows (i - 1) * BM: tile 0 lies wholly above C (nothing is written)."""
    i = ct.tile_idx(0)
    acc = ct.load_tile(Z, offset=[i * BM, 0], size=[BM, BN]) if FROM_Z else ct.zeros([BM, BN], ct.float32)
    for k in range(ct.cdiv(A.shape[1], BK)):
        a = ct.load_tile(A, offset=[i * BM, k * BK], size=[BM, BK])
        b = ct.load_tile(B, offset=[k * BK, 0], size=[BK, BN])
        acc = ct.matmul(a, b, acc)
    ct.store_tile(C, offset=[i * BM - BM, 0], tile=acc)


@pytest.mark.parametrize("from_z", [0, 1])     # 0: !tgpu.mma_acc (mma_acc_store); 1: warp strips (store_fragment)
@pytest.mark.parametrize("target", ["sim:sm_80"])
def test_fragment_store_at_negative_offset_writes_nothing_outside(monkeypatch, target, from_z):
    """The whole-tile fast path tested `r0 + BM <= rows` in u32: r0 = -BM wraps to 0 and the
    vector stores wrote BM rows before C (the simulator reports the out-of-bounds access)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((128, 32)).astype(np.float16)
    b = rng.standard_normal((32, 64)).astype(np.float16)
    z = np.zeros((128, 64), np.float32)
    ref = np.zeros((128, 64), np.float32)
    matmul_store_shifted[(2,)](a, b, z, ref, 64, 64, 32, from_z)                    # CPU backend
    big = np.zeros((256, 64), np.float32)
    c = big[128:]                                                                  # memory right before C
    _run(matmul_store_shifted, (2,), (a, b, z, c, 64, 64, 32, from_z), target, monkeypatch)
    assert not big[:128].any()
    np.testing.assert_allclose(c, ref, rtol=1e-5, atol=1e-5)


@ct.kernel
def attention_carried_position(Q: ct.Tensor, K: ct.Tensor, V: ct.Tensor, O: ct.Tensor,
                               BM: ct.Constant[int], BN: ct.Constant[int], D: ct.Constant[int]):
    """K / V rows from a carried `pos` (pointer-increment style), not from the loop counter."""
    q = ct.load_tile(Q, offset=[0, 0], size=[BM, D])
    m_i = ct.full([BM, 1], float("-inf"), ct.float32)
    l_i = ct.zeros([BM, 1], ct.float32)
    acc = ct.zeros([BM, D], ct.float32)
    pos = 0
    for j in range(0, ct.cdiv(K.shape[0], BN)):
        k = ct.load_tile(K, offset=[pos, 0], size=[BN, D])
        s = ct.matmul(q, k.T)
        m_new = ct.maximum(m_i, ct.max(s, axis=1, keepdims=True))
        p = ct.exp(s - m_new)
        alpha = ct.exp(m_i - m_new)
        l_i = l_i * alpha + ct.sum(p, axis=1, keepdims=True)
        v = ct.load_tile(V, offset=[pos, 0], size=[BN, D])
        acc = acc * alpha + ct.matmul(p.astype(v.dtype), v)
        m_i = m_new
        pos = pos + BN
    ct.store_tile(O, offset=[0, 0], tile=acc / l_i)


def test_attention_offsets_from_a_carried_value_are_left_alone(monkeypatch):
    """The TMA producer recomputes the K / V offsets S - 1 iterations ahead from the counter; a
    carried `pos` cannot be: it used to reach the emitter as a dangling block argument (KeyError)."""
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((n, 64)).astype(np.float16) for n in (64, 256, 256))
    ref, o = np.zeros((64, 64), np.float32), np.zeros((64, 64), np.float32)
    attention_carried_position[(1,)](q, k, v, ref, 64, 64, 64)                      # CPU backend
    specs, _ = attention_carried_position.bind((q, k, v, o, 64, 64, 64))
    assert "tgpu.wgmma_reg_a" not in compile_kernel(attention_carried_position, specs, "sm_90a",
                                                    CompileOptions()).ir()
    _run(attention_carried_position, (1,), (q, k, v, o, 64, 64, 64), "sim:sm_90a", monkeypatch)
    np.testing.assert_allclose(o, ref, rtol=1e-3, atol=1e-3)


@ct.kernel
def matmul_then_peek(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor, D: ct.Tensor, BM: ct.Constant[int],
                     BN: ct.Constant[int], BK: ct.Constant[int]):
    acc = ct.zeros([BM, BN], ct.float32)
    for k in range(ct.cdiv(A.shape[1], BK)):
        a = ct.load_tile(A, offset=[0, k * BK], size=[BM, BK])
        b = ct.load_tile(B, offset=[k * BK, 0], size=[BK, BN])
        acc = ct.matmul(a, b, acc)
    ct.store_tile(C, offset=[0, 0], tile=acc)
    x = ct.load_tile(C, offset=[0, 0], size=[1, 1]).sum()
    ct.store_tile(D, offset=[0, 0], tile=ct.full([BM, BN], 0.0, ct.float32) + x)


@pytest.mark.parametrize("target,store", [("sm_80", "tgpu.mma_acc_store")])
def test_one_element_load_sees_stores_the_passes_rewrote(target, store):
    """The one-element load is read by every thread only for tensors the kernel never writes;
    C's `tile.store` became a tgpu fragment store, which still writes C (another warp may
    store C[0, 0] after this thread read it)."""
    from tilec.backends.ptx.lower_memory import _never_written

    a, b = np.zeros((64, 32), np.float16), np.zeros((32, 64), np.float16)
    c, d = np.zeros((64, 64), np.float32), np.zeros((64, 64), np.float32)
    specs, _ = matmul_then_peek.bind((a, b, c, d, 64, 64, 32))
    art = compile_kernel(matmul_then_peek, specs, target, CompileOptions())
    assert store in art.ir()
    func = next(o for o in art.module.walk() if o.name == "func.func")
    tensor_c = func.body.block.args[2]

    class _Em:
        def memo(self, key, make):
            return make()
    em = _Em()
    em.func = func
    assert not _never_written(em, tensor_c)


def test_warp_strips_option_with_a_tile_strips_cannot_take(example):
    """`tile-pipeline-cp-async{warp-strips=true}` with BM = 32 (strips need BM in {64, 128}): the
    register path, not a raw xDSL VerifyException about a "wgmma accumulator" on sm_80."""
    from tilec import dtypes as dt
    from tilec.backends.sim.launch import run_ptx_kernel
    from tilec.frontend.tracer import ConstantSpec, TensorSpec
    import tilec.pipelines as P

    kern = example("matmul").matmul_kernel
    t = TensorSpec(dt.float16, (None, None), div16=True)
    specs = [t, t, TensorSpec(dt.float32, (None, None), div16=True), *map(ConstantSpec, (32, 64, 32))]
    names = tuple(x.replace("tile-pipeline-cp-async", "tile-pipeline-cp-async{warp-strips=true}")
                  for x in P.PIPELINES["sm_80"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(P.PIPELINES, "sm_80", names)
        gpu = compile_kernel(kern, specs, "sm_80").gpu
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((70, 96)).astype(np.float16), rng.standard_normal((96, 72)).astype(np.float16)
    c = np.full((70, 72), np.nan, np.float32)
    run_ptx_kernel(gpu, [a, b, c], (ct.cdiv(70, 32), ct.cdiv(72, 64)))
    np.testing.assert_allclose(c, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-4, atol=1e-4)


@ct.kernel
def fp4_dequantize_at(Q: ct.Tensor, S: ct.Tensor, Y: ct.Tensor, C0: int):
    t = ct.load_tile(Q, offset=[0, C0], size=[4, 32])
    s = ct.load_tile(S, offset=[0, 0], size=[4, 1])
    ct.store_tile(Y, offset=[0, 0], tile=ct.dequantize(t, s, block=32))


@pytest.mark.parametrize("target", ["sim:sm_90a", "sim:sm_80"])
def test_fp4_tile_at_an_odd_run_time_offset_traps_instead_of_shifting(monkeypatch, target):
    """fp4 tiles start on whole bytes (as on the CPU backend); a run-time odd innermost
    offset used to read the neighbouring nibbles silently.  Even offsets still match."""
    from tilec.backends.sim.errors import SimError

    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 64)).astype(np.float32)
    s = np.ones((4, 1), ml_dtypes.float8_e8m0fnu)
    ref = np.clip(w, -6, 6).astype(ml_dtypes.float4_e2m1fn).astype(np.float64)
    y = np.full((4, 32), np.nan, np.float32)
    _run(fp4_dequantize_at, (1,), [ct.fp4_tensor(w), s, y, 2], target, monkeypatch)
    np.testing.assert_array_equal(y, ref[:, 2:34])
    with pytest.raises(SimError, match="trap"):
        _run(fp4_dequantize_at, (1,), [ct.fp4_tensor(w), s, y, 1], target, monkeypatch)


def test_fp4_tile_at_a_provably_even_offset_has_no_check():
    from tilec import dtypes as dt
    from tilec.frontend.tracer import ConstantSpec, TensorSpec

    @ct.kernel
    def fp4_tiles(Q: ct.Tensor, S: ct.Tensor, Y: ct.Tensor, BK: ct.Constant[int]):
        i = ct.tile_idx(0)
        t = ct.load_tile(Q, offset=[0, i * BK], size=[4, BK])
        s = ct.load_tile(S, offset=[0, i], size=[4, 1])
        ct.store_tile(Y, offset=[0, i * BK], tile=ct.dequantize(t, s, block=32))

    specs = [TensorSpec(dt.float4_e2m1fn, (None, None)), TensorSpec(dt.float8_e8m0fnu, (None, None)),
             TensorSpec(dt.float32, (None, None)), ConstantSpec(32)]
    ptx = compile_kernel(fp4_tiles, specs, "sm_90a", CompileOptions()).gpu.ptx
    assert "trap" not in ptx


@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
def test_kernel_needing_more_shared_memory_than_a_cta_has_is_a_compile_error(target, example):
    """BM=128, BN=256, BK=256 f16 stages 192 KiB per stage pair: it could never launch."""
    from tilec import dtypes as dt
    from tilec.backends.ptx.emitter import LoweringError
    from tilec.frontend.tracer import ConstantSpec, TensorSpec

    kern = example("matmul").matmul_kernel
    specs = [TensorSpec(dt.float16, (None, None), div16=True), TensorSpec(dt.float16, (None, None), div16=True),
             TensorSpec(dt.float32, (None, None), div16=True), ConstantSpec(128), ConstantSpec(256),
             ConstantSpec(256)]
    with pytest.raises(LoweringError, match=r"needs \d+ B of shared memory, more than the \d+ B a CTA may use") as e:
        compile_kernel(kern, specs, target, CompileOptions())
    assert "matmul.py" in str(e.value)
