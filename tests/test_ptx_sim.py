"""tilec.backends.sim: the PTX simulator, against numpy float64 / exact-integer references.

Hand-written kernels (vector add, shared-memory reduction, shuffles, atomics), the misuse it
must report (races, deadlocks, out-of-bounds, undefined registers, mbarrier and TMEM misuse),
the verified kernels of shared/ptx/ (skipped when that folder is absent), and PTX from
tilec's own emitter compared with the CPU backend.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from tilec.backends.sim import SimError, SimTensorMap, simulate
from tilec.backends.sim.ptx_types import convert_float, round_to

SHARED_PTX = Path(os.environ.get("TILEC_SHARED_PTX", "/work/shared/ptx"))


def shared_ptx(name: str) -> str:
    p = SHARED_PTX / name
    if not p.exists():
        pytest.skip(f"{p} not found (set TILEC_SHARED_PTX)")
    return p.read_text()


def edit(text: str, old: str, new: str, count: int = 1) -> str:
    assert text.count(old) >= count, f"pattern not found: {old!r}"
    return text.replace(old, new, count)


def raises(match: str, fn, *args, **kw) -> SimError:
    with pytest.raises(SimError, match=match) as e:
        fn(*args, **kw)
    return e.value


HEAD = ".version 8.0\n.target sm_80\n.address_size 64\n"

# ---------------------------------------------------------------------------- vector add

VADD = HEAD + r"""
.visible .entry vadd(.param .u64 x, .param .u64 y, .param .u64 z, .param .u32 n)
{
    .reg .b32 %r<8>;
    .reg .b64 %rd<8>;
    .reg .f32 %f<4>;
    .reg .pred %p<2>;
    mov.u32 %r0, %tid.x;
    mov.u32 %r1, %ctaid.x;
    mov.u32 %r2, %ntid.x;
    mad.lo.u32 %r3, %r1, %r2, %r0;
    ld.param.u32 %r4, [n];
    setp.ge.u32 %p0, %r3, %r4;
    @%p0 bra DONE;
    ld.param.u64 %rd0, [x];
    ld.param.u64 %rd1, [y];
    ld.param.u64 %rd2, [z];
    cvta.to.global.u64 %rd0, %rd0;
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    mul.wide.u32 %rd3, %r3, 4;
    add.s64 %rd4, %rd0, %rd3;
    add.s64 %rd5, %rd1, %rd3;
    add.s64 %rd6, %rd2, %rd3;
    ld.global.f32 %f0, [%rd4];
    ld.global.f32 %f1, [%rd5];
    add.f32 %f2, %f0, %f1;
    st.global.f32 [%rd6], %f2;
DONE:
    ret;
}
"""


def _vadd_args(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n).astype(np.float32)
    y = rng.standard_normal(n).astype(np.float32)
    return x, y, np.full(n, np.nan, np.float32)


def test_vector_add_bounds_predicate():
    x, y, z = _vadd_args()
    simulate(VADD, "vadd", (8, 1, 1), (128, 1, 1), [("ptr", x), ("ptr", y), ("ptr", z), ("u32", 1000)])
    np.testing.assert_array_equal(z, (x.astype(np.float64) + y).astype(np.float32))


def test_bra_uni_is_checked_per_warp():
    """`bra.uni` promises one guard value per warp (PTX), not per CTA: n = 992 leaves the last
    CTA's warp 3 wholly past the end (the warps differ, each is uniform) and runs; n = 1000 splits
    warp 3 at lane 8, which the simulator reports."""
    uni = edit(VADD, "@%p0 bra DONE;", "@%p0 bra.uni DONE;")
    x, y, z = _vadd_args(992)
    simulate(uni, "vadd", 8, 128, [("ptr", x), ("ptr", y), ("ptr", z), ("u32", 992)])
    np.testing.assert_array_equal(z, (x.astype(np.float64) + y).astype(np.float32))
    x, y, z = _vadd_args()
    e = raises(r"bra.uni with a predicate that differs across the active threads of a warp", simulate, uni,
               "vadd", 8, 128, [("ptr", x), ("ptr", y), ("ptr", z), ("u32", 1000)])
    assert "CTA (7,0,0)" in str(e) and "warp 3" in str(e)


def test_out_of_bounds_global_is_reported():
    x, y, z = _vadd_args()
    e = raises(r"out-of-bounds global access", simulate, edit(VADD, "@%p0 bra DONE;", ""), "vadd", 8, 128,
               [("ptr", x), ("ptr", y), ("ptr", z), ("u32", 1000)])
    assert "ld.global.f32 %f0" in str(e) and "thread (104,0,0)" in str(e) and "CTA (7,0,0)" in str(e)
    assert e.line == 28


def test_undefined_register_is_reported():
    x, y, z = _vadd_args()
    bad = edit(VADD, "add.f32 %f2, %f0, %f1;", "add.f32 %f2, %f0, %f3;")
    raises(r"add.f32 %f2, %f0, %f3.*reads register %f3 before any write", simulate, bad, "vadd", 8, 128,
           [("ptr", x), ("ptr", y), ("ptr", z), ("u32", 1000)])


def test_argument_mismatch():
    x, y, z = _vadd_args()
    raises(r"takes 4 parameters", simulate, VADD, "vadd", 1, 32, [("ptr", x)])
    raises(r"does not match parameter `n`", simulate, VADD, "vadd", 1, 32,
           [("ptr", x), ("ptr", y), ("ptr", z), ("u64", 3)])


# ---------------------------------------------------------------------------- shared-memory reduction

REDUCE = HEAD + r"""
.visible .entry reduce(.param .u64 x, .param .u64 out)
{
    .reg .b32 %r<16>;
    .reg .b64 %rd<8>;
    .reg .pred %p<4>;
    .shared .align 4 .b32 buf[128];
    mov.u32 %r0, %tid.x;
    mov.u32 %r1, %ctaid.x;
    ld.param.u64 %rd0, [x];
    cvta.to.global.u64 %rd0, %rd0;
    mad.lo.u32 %r2, %r1, 128, %r0;
    mul.wide.u32 %rd1, %r2, 4;
    add.s64 %rd2, %rd0, %rd1;
    ld.global.u32 %r3, [%rd2];
    mov.u32 %r4, buf;
    shl.b32 %r5, %r0, 2;
    add.u32 %r6, %r4, %r5;
    st.shared.u32 [%r6], %r3;
    bar.sync 0;
    mov.u32 %r7, 64;
LOOP:
    setp.ge.u32 %p0, %r0, %r7;
    @%p0 bra SKIP;
    shl.b32 %r8, %r7, 2;
    add.u32 %r9, %r6, %r8;
    ld.shared.u32 %r10, [%r9];
    ld.shared.u32 %r11, [%r6];
    add.u32 %r11, %r11, %r10;
    st.shared.u32 [%r6], %r11;
SKIP:
    bar.sync 0;
    shr.u32 %r7, %r7, 1;
    setp.ne.u32 %p1, %r7, 0;
    @%p1 bra LOOP;
    setp.ne.u32 %p2, %r0, 0;
    @%p2 bra END;
    ld.shared.u32 %r12, [buf];
    ld.param.u64 %rd3, [out];
    cvta.to.global.u64 %rd3, %rd3;
    mul.wide.u32 %rd4, %r1, 4;
    add.s64 %rd5, %rd3, %rd4;
    st.global.u32 [%rd5], %r12;
END:
    ret;
}
"""


def _reduce_args():
    x = np.random.default_rng(1).integers(0, 1 << 20, 3 * 128).astype(np.uint32)
    return x, np.zeros(3, np.uint32)


def test_shared_reduction_with_bar_sync():
    x, out = _reduce_args()
    simulate(REDUCE, "reduce", 3, 128, [("ptr", x), ("ptr", out)])
    np.testing.assert_array_equal(out, x.reshape(3, 128).sum(1, dtype=np.uint64).astype(np.uint32))


def test_missing_bar_sync_is_a_race():
    x, out = _reduce_args()
    bad = edit(REDUCE, "SKIP:\n    bar.sync 0;", "SKIP:")
    e = raises(r"shared-memory race", simulate, bad, "reduce", 3, 128, [("ptr", x), ("ptr", out)])
    assert "ld.shared.u32 %r10" in str(e) and "written by thread" in str(e)
    bad = edit(REDUCE, "st.shared.u32 [%r6], %r3;\n    bar.sync 0;", "st.shared.u32 [%r6], %r3;")
    raises(r"ld.shared.u32 %r10.*race.*written by thread 64 at line 22", simulate, bad, "reduce", 3, 128,
           [("ptr", x), ("ptr", out)])


def test_bar_sync_not_reached_by_all_threads_is_a_deadlock():
    x, out = _reduce_args()
    # the barrier inside the `tid < s` branch: the other threads skip it and exit
    bad = edit(REDUCE, "st.shared.u32 [%r6], %r11;\nSKIP:\n    bar.sync 0;",
               "st.shared.u32 [%r6], %r11;\n    bar.sync 0;\nSKIP:")
    raises(r"line \d+: `bar.sync 0`: deadlock: barrier 0 is waited on by 64 threads but expects 128",
           simulate, bad, "reduce", 1, 128, [("ptr", x), ("ptr", out)])


def test_out_of_bounds_shared_is_reported():
    x, out = _reduce_args()
    bad = edit(REDUCE, "shl.b32 %r5, %r0, 2;", "shl.b32 %r5, %r0, 3;")
    raises(r"st.shared.u32 \[%r6\], %r3.*out-of-bounds shared access of 4 bytes at offset 0x200", simulate, bad,
           "reduce", 1, 128, [("ptr", x), ("ptr", out)])


# ---------------------------------------------------------------------------- warp shuffles, divergence, atomics

SHFL = HEAD + r"""
.visible .entry warpsum(.param .u64 x, .param .u64 out)
{
    .reg .b32 %r<8>;
    .reg .b64 %rd<8>;
    .reg .f32 %f<4>;
    .reg .pred %p<2>;
    mov.u32 %r0, %tid.x;
    ld.param.u64 %rd0, [x];
    mul.wide.u32 %rd1, %r0, 4;
    add.s64 %rd2, %rd0, %rd1;
    ld.global.f32 %f0, [%rd2];
    mov.u32 %r1, 16;
LOOP:
    shfl.sync.bfly.b32 %f1, %f0, %r1, 31, 0xffffffff;
    add.f32 %f0, %f0, %f1;
    shr.u32 %r1, %r1, 1;
    setp.ne.u32 %p0, %r1, 0;
    @%p0 bra LOOP;
    ld.param.u64 %rd3, [out];
    add.s64 %rd4, %rd3, %rd1;
    st.global.f32 [%rd4], %f0;
    ret;
}
"""


def test_shfl_butterfly_reduction():
    x = np.random.default_rng(2).standard_normal(64).astype(np.float32)
    out = np.zeros(64, np.float32)
    simulate(SHFL, "warpsum", 1, 64, [("ptr", x), ("ptr", out)])
    ref = np.repeat(x.reshape(2, 32).astype(np.float64).sum(1), 32)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5)
    assert (out.reshape(2, 32) == out.reshape(2, 32)[:, :1]).all()    # every lane holds the same sum


def test_shfl_in_divergent_code_is_reported():
    x = np.zeros(64, np.float32)
    bad = edit(SHFL, "LOOP:\n", "setp.lt.u32 %p1, %r0, 8;\n    @%p1 bra LOOP;\n    ret;\nLOOP:\n")
    raises(r"shfl.sync: membermask 0xffffffff names lane 8, which has exited", simulate, bad, "warpsum", 1, 64,
           [("ptr", x), ("ptr", np.zeros(64, np.float32))])


ATOMIC = HEAD + r"""
.visible .entry atomics(.param .u64 acc, .param .u64 cnt, .param .u64 old, .param .u64 x)
{
    .reg .b32 %r<8>;
    .reg .b64 %rd<12>;
    .reg .f32 %f<2>;
    .reg .pred %p<2>;
    mov.u32 %r0, %tid.x;
    ld.param.u64 %rd0, [acc];
    ld.param.u64 %rd1, [cnt];
    ld.param.u64 %rd2, [old];
    ld.param.u64 %rd3, [x];
    mul.wide.u32 %rd4, %r0, 4;
    add.s64 %rd5, %rd3, %rd4;
    ld.global.f32 %f0, [%rd5];
    red.global.add.f32 [%rd0], %f0;
    and.b32 %r1, %r0, 1;
    setp.eq.u32 %p0, %r1, 0;
    @%p0 bra EVEN;
    atom.global.add.u32 %r2, [%rd1], 1;
    bra.uni JOIN;
EVEN:
    atom.global.add.u32 %r2, [%rd1], 1000;
JOIN:
    add.s64 %rd6, %rd2, %rd4;
    st.global.u32 [%rd6], %r2;
    ret;
}
"""


def test_atomics_serialise_in_thread_order_and_branches_reconverge():
    x = np.random.default_rng(3).standard_normal(96).astype(np.float32)
    acc, cnt, old = np.zeros(1, np.float32), np.zeros(1, np.uint32), np.zeros(96, np.uint32)
    simulate(ATOMIC, "atomics", 1, 96, [("ptr", acc), ("ptr", cnt), ("ptr", old), ("ptr", x)])
    seq = np.float32(0)
    for v in x:
        seq = np.float32(seq + v)
    assert acc[0] == seq
    assert cnt[0] == 48 * 1000 + 48
    # odd threads ran first (fall-through path), each seeing the previous count
    np.testing.assert_array_equal(old[1::2], np.arange(48))
    np.testing.assert_array_equal(old[0::2], 48 + 1000 * np.arange(48))


# ---------------------------------------------------------------------------- conversions

CVT = ".version 8.6\n.target sm_100a\n.address_size 64\n" + r"""
.visible .entry cvts(.param .u64 x, .param .u64 out)
{
    .reg .b16 %h<8>;
    .reg .b32 %r<4>;
    .reg .b64 %rd<8>;
    .reg .f32 %f<2>;
    mov.u32 %r0, %tid.x;
    ld.param.u64 %rd0, [x];
    ld.param.u64 %rd1, [out];
    mul.wide.u32 %rd2, %r0, 4;
    add.s64 %rd3, %rd0, %rd2;
    ld.global.f32 %f0, [%rd3];
    cvt.rn.f16.f32 %h0, %f0;
    cvt.rz.f16.f32 %h1, %f0;
    cvt.rm.f16.f32 %h2, %f0;
    cvt.rp.f16.f32 %h3, %f0;
    cvt.rn.bf16.f32 %h4, %f0;
    cvt.rn.satfinite.e4m3x2.f32 %h5, %f0, %f0;
    cvt.rp.satfinite.ue8m0x2.f32 %h6, %f0, %f0;
    mul.wide.u32 %rd4, %r0, 14;
    add.s64 %rd5, %rd1, %rd4;
    st.global.b16 [%rd5], %h0;
    st.global.b16 [%rd5+2], %h1;
    st.global.b16 [%rd5+4], %h2;
    st.global.b16 [%rd5+6], %h3;
    st.global.b16 [%rd5+8], %h4;
    st.global.b16 [%rd5+10], %h5;
    st.global.b16 [%rd5+12], %h6;
    ret;
}
"""


def test_cvt_rounding_modes():
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.standard_normal(100) * 10, [1 + 2.0 ** -11, -(1 + 2.0 ** -11), 1e6, -1e6, 500.0]])
    x = x.astype(np.float32)
    out = np.zeros((len(x), 7), np.uint16)
    simulate(CVT, "cvts", 1, len(x), [("ptr", x), ("ptr", out)])
    f16 = out[:, :4].view(np.float16).astype(np.float64)
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(f16[:, 0], x.astype(np.float16))
    assert (np.abs(f16[:, 1]) <= np.abs(x64)).all() and (f16[:, 2] <= x64).all() and (f16[:, 3] >= x64).all()
    assert np.isinf(f16[-3, 0]) and f16[-3, 1] == 65504 and f16[-2, 2] == -np.inf and f16[-2, 3] == -65504
    np.testing.assert_array_equal(out[:, 4].view(ml_dtypes.bfloat16), x.astype(ml_dtypes.bfloat16))
    e4 = (out[:, 5] & 0xFF).astype(np.uint8).view(ml_dtypes.float8_e4m3fn).astype(np.float64)
    np.testing.assert_array_equal(e4, np.clip(x64, -448, 448).astype(ml_dtypes.float8_e4m3fn).astype(np.float64))
    assert (out[:, 5] >> 8 == out[:, 5] & 0xFF).all()
    ue = (out[:, 6] & 0xFF).astype(np.uint8).view(ml_dtypes.float8_e8m0fnu).astype(np.float64)
    np.testing.assert_array_equal(ue, 2.0 ** np.ceil(np.log2(np.abs(x64))))


def test_round_to_directed_and_narrow_formats():
    x = np.array([0.25, 0.75, 1.25, 2.5, 3.5, 5.0, -0.3, 100.0])
    assert convert_float(x, "e2m1", "rn", satfinite=True).astype(float).tolist() == [0, 1, 1, 2, 4, 4, -0.5, 6]
    assert convert_float(x, "e2m1", "rz", satfinite=True).astype(float).tolist() == [0, 0.5, 1, 2, 3, 4, 0, 6]
    y = np.array([1 / 3, -1 / 3])
    assert round_to(y, "f32", "rp")[0] > y[0] > round_to(y, "f32", "rm")[0]
    assert round_to(y, "bf16", "rz").astype(float).tolist() == [0.33203125, -0.33203125]


# ---------------------------------------------------------------------------- shared/ptx kernels: sm_80, sm_90

def test_sm80_mma_ldmatrix_cpasync():
    ptx = shared_ptx("sm80_mma_ldmatrix_cpasync.ptx")
    rng = np.random.default_rng(5)
    a = rng.standard_normal((16, 16)).astype(np.float16)
    bt = rng.standard_normal((8, 16)).astype(np.float16)
    d = np.full((16, 8), np.nan, np.float32)
    simulate(ptx, "mma_m16n8k16", 1, 32, [("ptr", a), ("ptr", bt), ("ptr", d)], arch="sm_80")
    ref = a.astype(np.float64) @ bt.astype(np.float64).T
    np.testing.assert_allclose(d, ref, rtol=0, atol=1e-6)
    # reading the cp.async destination before cp.async.wait_group
    bad = edit(ptx, "cp.async.wait_group 0;", "")
    raises(r"ldmatrix.*while an async copy into it \(issued at line \d+\) is still in flight", simulate, bad,
           "mma_m16n8k16", 1, 32, [("ptr", a), ("ptr", bt), ("ptr", d)], arch="sm_80")


def test_sm80_e2m1_decode_software():
    ptx = shared_ptx("sm80_e2m1_decode_software.ptx")
    q = np.random.default_rng(6).integers(0, 2 ** 32, 64, dtype=np.uint64).astype(np.uint32)
    q[0] = 0x76543210
    q[1] = 0xFEDCBA98
    dq = np.zeros((64, 8), np.float16)
    simulate(ptx, "e2m1_decode_sw", 1, 64, [("ptr", q), ("ptr", dq)], arch="sm_80")
    nib = ((q[:, None] >> (4 * np.arange(8, dtype=np.uint32))) & 0xF).astype(np.uint8)
    ref = nib.view(ml_dtypes.float4_e2m1fn).astype(np.float16)
    np.testing.assert_array_equal(dq.view(np.uint16), ref.view(np.uint16))    # including -0


def test_sm90_tma_2d_load_store_with_oob_and_swizzle():
    ptx = shared_ptx("sm90_tma_2d_load_store.ptx")
    src = np.random.default_rng(7).standard_normal((200, 152)).astype(np.float16)
    for sw in (0, 128):
        dst = np.full_like(src, np.nan)
        simulate(ptx, "tma_copy_tile", 1, 128, [("tensormap", SimTensorMap(src, (64, 64), sw)),
                                                ("tensormap", SimTensorMap(dst, (64, 64), sw)),
                                                ("u32", 128), ("u32", 160)], arch="sm_90")
        ref = np.full_like(src, np.nan)
        ref[160:200, 128:152] = src[160:200, 128:152]     # out-of-bounds box parts: loaded as 0, not stored
        np.testing.assert_array_equal(dst, ref)


def test_sm90_tma_misuse():
    ptx = shared_ptx("sm90_tma_2d_load_store.ptx")
    src = np.zeros((64, 64), np.float16)
    args = [("tensormap", SimTensorMap(src, (64, 64))), ("tensormap", SimTensorMap(src.copy(), (64, 64))),
            ("u32", 0), ("u32", 0)]
    raises(r"cvta.param.*MISALIGNED", simulate, edit(ptx, "cvta.param.u64 %rd0, %rd0;", ""), "tma_copy_tile", 1,
           128, args, arch="sm_90")
    raises(r"mbarrier.try_wait.*deadlock: mbarrier at shared offset 0x2000 can never complete.*tx-count 8192",
           simulate, edit(ptx, "[%r2], 8192;", "[%r2], 16384;"), "tma_copy_tile", 1, 128, args, arch="sm_90")
    raises(r"used before mbarrier.init", simulate, edit(ptx, "mbarrier.init.shared::cta.b64 [%r2], 1;", ""),
           "tma_copy_tile", 1, 128, args, arch="sm_90")
    raises(r"cannot run on sm_100a", simulate, shared_ptx("sm90a_wgmma_m64n128k16_f16_tma.ptx"),
           "wgmma_f16_tile", 1, 128, [])


SWZ = ".version 8.0\n.target sm_90\n.address_size 64\n" + r"""
.visible .entry dump(.param .align 64 .b8 tmap[128], .param .u64 out)
{
    .reg .b32 %r<8>;
    .reg .b64 %rd<8>;
    .reg .pred %p<4>;
    .shared .align 1024 .b8 tile[8192];
    .shared .align 8 .b64 bar;
    mov.u32 %r0, %tid.x;
    mov.u32 %r1, tile;
    mov.u32 %r2, bar;
    setp.eq.u32 %p0, %r0, 0;
    @!%p0 bra S0;
    mbarrier.init.shared::cta.b64 [%r2], 1;
    mbarrier.arrive.expect_tx.shared::cta.b64 %rd0, [%r2], 8192;
    mov.u64 %rd1, tmap;
    cvta.param.u64 %rd1, %rd1;
    mov.u32 %r3, 0;
    cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%r1], [%rd1, {%r3, %r3}], [%r2];
S0:
    bar.sync 0;
W:
    mbarrier.try_wait.parity.shared::cta.b64 %p1, [%r2], 0;
    @!%p1 bra W;
    shl.b32 %r4, %r0, 4;
    add.u32 %r5, %r1, %r4;
    ld.shared.v4.b32 {%r0, %r1, %r2, %r3}, [%r5];
    ld.param.u64 %rd2, [out];
    cvta.to.global.u64 %rd2, %rd2;
    cvt.u64.u32 %rd3, %r4;
    add.s64 %rd4, %rd2, %rd3;
    st.global.v4.b32 [%rd4], {%r0, %r1, %r2, %r3};
    ret;
}
"""


def test_tma_128b_swizzle_places_chunks_by_the_xor_pattern():
    src = np.arange(64 * 128, dtype=np.uint32).astype(np.uint8).reshape(64, 128)
    out = np.zeros(8192, np.uint8)
    simulate(SWZ, "dump", 1, 512, [("tensormap", SimTensorMap(src, (128, 64), 128)), ("ptr", out)], arch="sm_90")
    r, c, b = np.meshgrid(np.arange(64), np.arange(8), np.arange(16), indexing="ij")
    np.testing.assert_array_equal(out[r * 128 + (c ^ (r % 8)) * 16 + b], src[r, c * 16 + b])


@pytest.mark.parametrize("dtype,fname,kernel", [
    (np.float16, "sm90a_wgmma_m64n128k16_f16_tma.ptx", "wgmma_f16_tile"),
    (ml_dtypes.bfloat16, "sm90a_wgmma_m64n128k16_bf16_tma.ptx", "wgmma_bf16_tile")])
def test_sm90a_wgmma_tma(dtype, fname, kernel):
    ptx = shared_ptx(fname)
    rng = np.random.default_rng(8)
    a = rng.standard_normal((64, 64)).astype(dtype)
    b = rng.standard_normal((128, 64)).astype(dtype)
    c = np.full((64, 128), np.nan, np.float32)
    simulate(ptx, kernel, 1, 128, [("tensormap", SimTensorMap(a, (64, 64), 128)),
                                   ("tensormap", SimTensorMap(b, (64, 128), 128)), ("ptr", c)], arch="sm_90a")
    ref = a.astype(np.float64) @ b.astype(np.float64).T
    np.testing.assert_allclose(c, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_sm90a_setmaxnreg():
    simulate(shared_ptx("sm90a_setmaxnreg_warpspecialized.ptx"), "warp_specialized", 1, 384, [("ptr", None)],
             arch="sm_90a")


# ---------------------------------------------------------------------------- shared/ptx kernels: sm_100a

def _f16_tcgen05_args(seed=9):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((128, 64)).astype(np.float16)
    b = rng.standard_normal((128, 64)).astype(np.float16)
    c = np.full((128, 128), np.nan, np.float32)
    return a, b, c, [("tensormap", SimTensorMap(a, (64, 128), 128)),
                     ("tensormap", SimTensorMap(b, (64, 128), 128)), ("ptr", c)]


def test_sm100a_tcgen05_mma_f16():
    a, b, c, args = _f16_tcgen05_args()
    simulate(shared_ptx("sm100a_tcgen05_mma_f16_tma.ptx"), "tcgen05_f16_tile", 1, 128, args)
    ref = a.astype(np.float64) @ b.astype(np.float64).T
    np.testing.assert_allclose(c, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("old,new,match", [
    ("[%r14], 128;", "[%r14], 64;", r"tcgen05.mma.*touches TMEM columns \[0, 128\) outside the allocated columns \(\[0, 64\)\)"),
    ("shl.b32        %r30, %r1, 21;", "mov.u32        %r30, 0;", r"tcgen05.ld.*warp 1 may access TMEM lanes 32..63 only"),
    ("    mbarrier.try_wait.parity.shared::cta.b64 %p5, [%r13], 0;\n    @!%p5 bra      WAIT_MMA;\n", "",
     r"tcgen05.ld reads TMEM cells written by a tcgen05.mma that is not known to be complete"),
    ("    tcgen05.dealloc.cta_group::1.sync.aligned.b32 %r15, 128;\n", "", r"exits with TMEM still allocated"),
    ("tcgen05.relinquish_alloc_permit.cta_group::1.sync.aligned;\n", "tcgen05.relinquish_alloc_permit.cta_group::1.sync.aligned;\n"
     "    tcgen05.alloc.cta_group::1.sync.aligned.shared::cta.b32 [%r14], 128;\n", r"tcgen05.alloc after tcgen05.relinquish"),
    ("mov.u32        %r23, 0x08200010;", "mov.u32        %r23, 0x08A00010;", r"bad instruction descriptor 0x08a00010"),
    ("@!%p0 bra      SETUP_DONE;", "setp.eq.u32    %p0, %r0, 0;\n    @!%p0 bra      SETUP_DONE;",
     r"tcgen05.alloc.* must be executed by all threads of the warp together"),
])
def test_sm100a_tcgen05_misuse(old, new, match):
    ptx = edit(shared_ptx("sm100a_tcgen05_mma_f16_tma.ptx"), old, new)
    raises(match, simulate, ptx, "tcgen05_f16_tile", 1, 128, _f16_tcgen05_args()[3])


def _pack_e2m1(codes):
    return (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8)


def _utccp_order(sf):
    """[128 rows, nsf] scale bytes -> [nsf/4, 128] uint32: word w of row i*32+l at index l*4+i."""
    words = np.zeros((128, sf.shape[1] // 4), np.uint32)
    for j in range(sf.shape[1]):
        words[:, j // 4] |= sf[:, j].astype(np.uint32) << (8 * (j % 4))
    l, i = np.meshgrid(np.arange(32), np.arange(4), indexing="ij")
    out = np.zeros((words.shape[1], 128), np.uint32)
    out[:, (l * 4 + i).reshape(-1)] = words[(i * 32 + l).reshape(-1)].T
    return out


@pytest.mark.parametrize("fname,kernel,vs,scale", [
    ("sm100a_tcgen05_mma_mxf4_blockscaled.ptx", "tcgen05_mxf4_tile", 32, ml_dtypes.float8_e8m0fnu),
    ("sm100a_tcgen05_mma_nvf4_blockscaled.ptx", "tcgen05_nvf4_tile", 16, ml_dtypes.float8_e4m3fn)])
def test_sm100a_block_scaled_fp4(fname, kernel, vs, scale):
    ptx = shared_ptx(fname)
    rng = np.random.default_rng(10)
    ca, cb = rng.integers(0, 16, (128, 256)), rng.integers(0, 16, (128, 256))
    lo, hi = (118, 136) if scale == ml_dtypes.float8_e8m0fnu else (0x18, 0x50)
    sfa = rng.integers(lo, hi, (128, 256 // vs)).astype(np.uint8)
    sfb = rng.integers(lo, hi, (128, 256 // vs)).astype(np.uint8)

    def deq(codes, sf):     # independent reference: ml_dtypes decodes of e2m1 and the scale format
        v = codes.astype(np.uint8).view(ml_dtypes.float4_e2m1fn).astype(np.float64)
        return v * np.repeat(sf.view(scale).astype(np.float64), vs, axis=1)
    ref = deq(ca, sfa) @ deq(cb, sfb).T
    c = np.full((128, 128), np.nan, np.float32)
    args = [("tensormap", SimTensorMap(_pack_e2m1(ca), (128, 128), 128)),
            ("tensormap", SimTensorMap(_pack_e2m1(cb), (128, 128), 128)),
            ("ptr", _utccp_order(sfa)), ("ptr", _utccp_order(sfb)), ("ptr", c)]
    simulate(ptx, kernel, 1, 128, args)
    np.testing.assert_allclose(c, ref, rtol=0, atol=1e-6 * np.abs(ref).max())
    # scale factors copied to two lane quarters only (rows 32..63 land in quarters 2 and 3)
    bad = ptx.replace(".32x128b.warpx4", ".64x128b.warpx2::01_23", 1)
    raises(r"SFA: the scale factors of row 0 differ between TMEM lane quarters 0 and 2", simulate, bad,
           kernel, 1, 128, args)


def test_sm100a_fp4_e2m1_cvt():
    ptx = shared_ptx("sm100a_fp4_e2m1_cvt.ptx")
    x = (np.random.default_rng(11).standard_normal((64, 8)) * 4).astype(np.float32)
    x[0] = [0.25, 0.75, -2.5, 7.0, -100.0, 1e-3, 5.0, -0.0]
    q, dq = np.zeros(64, np.uint32), np.zeros((64, 8), np.float16)
    simulate(ptx, "fp4_roundtrip", 1, 64, [("ptr", x), ("ptr", q), ("ptr", dq)])
    ref = np.clip(x, -6, 6).astype(ml_dtypes.float4_e2m1fn).astype(np.float64)    # RN-even, satfinite
    nib = ((q[:, None] >> (4 * np.arange(8, dtype=np.uint32))) & 0xF).astype(np.uint8)
    np.testing.assert_array_equal(nib.view(ml_dtypes.float4_e2m1fn).astype(np.float64), ref)
    np.testing.assert_array_equal(dq.astype(np.float64), ref)
    assert x[0].tolist()[:5] == [0.25, 0.75, -2.5, 7.0, -100.0] and ref[0].tolist()[:5] == [0, 1, -2, 6, -6]


def test_sm100a_tmem_alloc():
    out = np.full(2, 0xFFFF, np.uint32)
    simulate(shared_ptx("sm100a_tmem_alloc.ptx"), "tmem_alloc_demo", 1, 128, [("ptr", out[:1])])
    assert out[0] == 0


# ---------------------------------------------------------------------------- tilec's emitter

@pytest.mark.parametrize("target", ["sm_100a", "sm_90a"])
def test_emitter_vector_add_and_softmax_match_cpu_backend(example, target):
    import tilec as ct
    from tilec.backends.sim.launch import run_ptx_kernel
    from tilec.driver import compile_kernel
    va, sm = example("vector_add"), example("softmax")
    rng = np.random.default_rng(12)
    x = rng.standard_normal(3000, dtype=np.float32)
    y = rng.standard_normal(3000, dtype=np.float32)
    z, zc = np.full_like(x, np.nan), np.full_like(x, np.nan)
    specs, values = va.vector_add.bind((x, y, z))
    run_ptx_kernel(compile_kernel(va.vector_add, specs, target).gpu, values, (ct.cdiv(3000, va.TILE),))
    va.add(x, y, zc)
    np.testing.assert_array_equal(z, zc)
    xs = (rng.standard_normal((37, 100)) * 3).astype(np.float16)
    ys, yc = np.full(xs.shape, np.nan, np.float16), np.full(xs.shape, np.nan, np.float16)
    specs, values = sm.softmax_kernel.bind((xs, ys, 4, 128))
    run_ptx_kernel(compile_kernel(sm.softmax_kernel, specs, target).gpu, values, (ct.cdiv(37, 4),))
    sm.softmax(xs, yc, 4)
    assert np.abs(ys.astype(np.float64) - yc.astype(np.float64)).max() <= 1e-3   # ex2.approx vs exp: f16 ulps
    assert np.abs(ys.astype(np.float64) - sm.reference(xs)).max() < 1e-3


def test_supported_opcodes_listed():
    from tilec.backends.sim import supported_opcodes
    ops = supported_opcodes()
    for head in ("mov", "cvt", "shfl", "mma", "ldmatrix", "wgmma", "tcgen05", "mbarrier", "cp.async", "cp.async.bulk"):
        assert head in ops
    assert re.fullmatch(r"[\w.]+", " ".join(ops).replace(" ", "")) is not None


WS = ".version 8.0\n.target sm_90\n.address_size 64\n" + r"""
.visible .entry ws(.param .u64 out)
{
    .reg .b32 %r<8>;
    .reg .b64 %rd<8>;
    .reg .pred %p<4>;
    .shared .align 8 .b64 full;
    .shared .align 4 .b32 data[32];
    mov.u32 %r0, %tid.x;
    mov.u32 %r1, full;
    setp.eq.u32 %p0, %r0, 0;
    @!%p0 bra S0;
    mbarrier.init.shared::cta.b64 [%r1], 32;
S0:
    bar.sync 0;
    setp.lt.u32 %p1, %r0, 32;
    @%p1 bra PRODUCER;
    // consumer warp (placed first): wait for the producer warp, then read its data
    and.b32 %r2, %r0, 31;
W:
    mbarrier.try_wait.parity.shared::cta.b64 %p2, [%r1], 0;
    @!%p2 bra W;
    shl.b32 %r3, %r2, 2;
    mov.u32 %r4, data;
    add.u32 %r4, %r4, %r3;
    ld.shared.u32 %r5, [%r4];
    ld.param.u64 %rd0, [out];
    mul.wide.u32 %rd1, %r2, 4;
    add.s64 %rd2, %rd0, %rd1;
    st.global.u32 [%rd2], %r5;
    bra.uni END;
PRODUCER:
    mul.lo.u32 %r5, %r0, %r0;
    shl.b32 %r3, %r0, 2;
    mov.u32 %r4, data;
    add.u32 %r4, %r4, %r3;
    st.shared.u32 [%r4], %r5;
    mbarrier.arrive.shared::cta.b64 %rd3, [%r1];
END:
    ret;
}
"""


def test_warp_specialised_mbarrier_handoff():
    out = np.zeros(32, np.uint32)
    simulate(WS, "ws", 1, 64, [("ptr", out)], arch="sm_90")
    np.testing.assert_array_equal(out, np.arange(32) ** 2)
    # the producer arrives before writing: under this schedule the consumer reads first (write after read)
    bad = edit(WS, "    st.shared.u32 [%r4], %r5;\n    mbarrier.arrive.shared::cta.b64 %rd3, [%r1];\n",
               "    mbarrier.arrive.shared::cta.b64 %rd3, [%r1];\n    st.shared.u32 [%r4], %r5;\n")
    raises(r"st.shared.u32 \[%r4\], %r5.*race: writes byte 0x\w+ that thread 32 read at line 29", simulate, bad, "ws", 1, 64, [("ptr", out)], arch="sm_90")
    # one arrival short: the consumer can never finish waiting
    raises(r"mbarrier.try_wait.*deadlock.*pending arrivals 1 of 33", simulate,
           edit(WS, "[%r1], 32;", "[%r1], 33;"), "ws", 1, 64, [("ptr", out)], arch="sm_90")


TMEM_LD = ".version 8.6\n.target sm_100a\n.address_size 64\n" + r"""
.visible .entry tmem_shapes(.param .u64 out)
{
    .reg .b32 %r<40>;
    .reg .b64 %rd<4>;
    .reg .pred %p<2>;
    .shared .align 16 .b32 slot;
    mov.u32 %r0, %tid.x;
    shr.u32 %r1, %r0, 5;
    setp.eq.u32 %p0, %r1, 0;
    @!%p0 bra A;
    tcgen05.alloc.cta_group::1.sync.aligned.shared::cta.b32 [slot], 32;
A:
    bar.sync 0;
    ld.shared.u32 %r2, [slot];
    shl.b32 %r3, %r1, 21;
    add.u32 %r4, %r2, %r3;
    mul.lo.u32 %r5, %r0, 100;
    add.u32 %r10, %r5, 0;
    add.u32 %r11, %r5, 1;
    add.u32 %r12, %r5, 2;
    add.u32 %r13, %r5, 3;
    add.u32 %r14, %r5, 4;
    add.u32 %r15, %r5, 5;
    add.u32 %r16, %r5, 6;
    add.u32 %r17, %r5, 7;
    tcgen05.st.sync.aligned.32x32b.x8.b32 [%r4], {%r10, %r11, %r12, %r13, %r14, %r15, %r16, %r17};
    tcgen05.wait::st.sync.aligned;
    tcgen05.ld.sync.aligned.16x256b.x1.b32 {%r20, %r21, %r22, %r23}, [%r4];
    tcgen05.ld.sync.aligned.16x64b.x2.b32 {%r24, %r25}, [%r4];
    tcgen05.ld.sync.aligned.16x128b.x1.b32 {%r26, %r27}, [%r4];
    tcgen05.wait::ld.sync.aligned;
    ld.param.u64 %rd0, [out];
    mul.wide.u32 %rd1, %r0, 32;
    add.s64 %rd2, %rd0, %rd1;
    st.global.v4.b32 [%rd2], {%r20, %r21, %r22, %r23};
    st.global.v4.b32 [%rd2+16], {%r24, %r25, %r26, %r27};
    bar.sync 0;
    @!%p0 bra B;
    tcgen05.dealloc.cta_group::1.sync.aligned.b32 %r2, 32;
B:
    ret;
}
"""


def test_tcgen05_ld_shapes():
    out = np.zeros((128, 8), np.uint32)
    simulate(TMEM_LD, "tmem_shapes", 1, 128, [("ptr", out)])
    tid = np.arange(128)
    w, t = tid // 32, tid % 32

    def cell(lane, col):          # written by 32x32b.x8: lane L, column c holds L * 100 + c
        return lane * 100 + col
    for q in range(4):            # 16x256b: mma-C-like fragment
        np.testing.assert_array_equal(out[:, q], cell(32 * w + t // 4 + 8 * (q // 2), 2 * (t % 4) + q % 2))
    for j in range(2):            # 16x64b.x2
        np.testing.assert_array_equal(out[:, 4 + j], cell(32 * w + t // 4 + 8 * (t % 2), 2 * j + (t // 2) % 2))
    for h in range(2):            # 16x128b
        np.testing.assert_array_equal(out[:, 6 + h], cell(32 * w + t // 4 + 8 * h, t % 4))
