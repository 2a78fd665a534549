"""tilec.backends.ptx.descriptors: golden values (by hand, and the ptxas-checked ones in
shared/PTX_FACTS.md), encode/decode round trips, range errors, and an sm_100a kernel that
embeds the computed descriptors as immediates and goes through ptxas."""

from __future__ import annotations

import dataclasses
import doctest
import importlib.util
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tilec import dtypes
from tilec.backends.ptx import descriptors as D
from tilec.backends.ptx import ptxas
from tilec.backends.ptx.descriptors import (
    Major, ScaleType, Sm90SmemDescriptor, Sm90Swizzle, Sm100BlockScaledInstrDescriptor,
    Sm100InstrDescriptor, Sm100ScaleFactorSmemDescriptor, Sm100SmemDescriptor, Sm100Swizzle,
    tmem_address, tmem_lanes,
)

ALL = (Sm90SmemDescriptor, Sm100SmemDescriptor, Sm100ScaleFactorSmemDescriptor,
       Sm100InstrDescriptor, Sm100BlockScaledInstrDescriptor)
ADDRS = (0x0, 0x10, 0x400, 0x4400, 0x1_0000, 0x3FF00)
BF = Sm100BlockScaledInstrDescriptor.for_mma
IF = Sm100InstrDescriptor.for_mma


# ---- golden values ----------------------------------------------------------------------------

@pytest.mark.parametrize("addr", ADDRS)
def test_sm90_kmajor_sw128_plus_2_per_k16(addr):
    d = Sm90SmemDescriptor.for_smem(addr, lbo=16, sbo=1024, layout=Sm90Swizzle.SW128)
    for k in range(4):  # H100-verified: 0x4000004000010000 | addr>>4, +2 per K16 step (32 B of fp16)
        assert d.advance_k(32 * k).encode() == (0x4000004000010000 | addr >> 4) + 2 * k


@pytest.mark.parametrize("addr", ADDRS)
def test_sm100_kmajor_sw128_fp16(addr):
    d = Sm100SmemDescriptor.for_smem(addr, lbo=16, sbo=1024, swizzle=Sm100Swizzle.SW128)
    assert d.encode() == 0x4000404000010000 | (addr >> 4 & 0x3FFF)
    assert d.advance_k(96).encode() == d.encode() + 6
    assert Sm100SmemDescriptor.for_smem(0, lbo=16, sbo=1024, swizzle=Sm100Swizzle.SW128).ptx() == "0x4000404000010000"


@pytest.mark.parametrize("addr", ADDRS)
def test_scale_factor_descriptor(addr):
    d = Sm100ScaleFactorSmemDescriptor.at(addr)
    assert d.encode() == (8 << 32) | (1 << 46) | addr >> 4
    assert Sm100SmemDescriptor.decode(d.encode()).swizzle == Sm100Swizzle.NONE


@pytest.mark.parametrize("args, kw, want", [
    (("f16", "f16", "f16", "f32", 128, 128), {}, 0x08200010),             # PTX_FACTS
    (("f16", "bf16", "bf16", "f32", 128, 128), {}, 0x08200490),           # PTX_FACTS
    (("kind::f16", dtypes.bfloat16, "bfloat16", ".f32", 128, 128), {}, 0x08200490),
    (("f16", "f16", "f16", "f16", 64, 8), {}, 0x04020000),                # D=f16, N>>3=1, M>>4=4
    (("tf32", "tf32", "tf32", "f32", 128, 256), {}, 0x08400910),          # TF32=2 at 7 and 10, N>>3=32
    (("f8f6f4", "e4m3", "e2m1", "f32", 64, 8), {}, 0x04021410),           # B=E2M1=5 at bit 10
    (("f8f6f4", "e5m2", "e3m2", "f16", 128, 16), {}, 0x08041080),         # A=1, B=4, D=f16
    (("f8f6f4", "e2m3", "e2m3", "f32", 128, 24), {}, 0x08060D90),         # E2M3=3; N=24 legal (ISA)
    (("f16", "f16", "f16", "f32", 128, 256), {"a_major": "MN", "b_major": Major.MN}, 0x08418010),
])
def test_instr_descriptor(args, kw, want):
    d = IF(*args, **kw)
    assert d.encode() == want, f"{d.ptx()} != {want:#010x}"
    assert (d.m_dim << 4, d.n_dim << 3) == (args[4], args[5])


@pytest.mark.parametrize("args, kw, want", [
    (("mxf4", "ue8m0", 128, 128), {}, 0x08A00480),                         # PTX_FACTS
    (("mxf4", "ue8m0", 128, 128, 2, 2), {}, 0x48A004A0),                   # PTX_FACTS, sf ids 2
    (("mxf4nvf4", "ue4m3", 128, 128), {}, 0x08200480),                     # PTX_FACTS (nvf4)
    (("mxf4nvf4", dtypes.float8_e8m0fnu, 128, 128), {"block": 16}, 0x08A00480),
    (("mxf4", "ue8m0", 128, 256, 0, 2), {}, 0x08C004A0),
    (("mxf4nvf4", "ue8m0", 128, 8, 2, 0), {"block": 32}, 0x48820480),
])
def test_block_scaled_instr_descriptor(args, kw, want):
    assert BF(*args, **kw).encode() == want


def test_block_scaled_m_field_matches_cutlass_encoding():
    # CUTLASS writes M>>4 at [24,29); the ISA writes M>>7 at [27,29): the same bits for M = 128, 256.
    for m in (128, 256):
        assert Sm100BlockScaledInstrDescriptor(m_dim=m >> 7).encode() == (m >> 4) << 24


def test_tmem_address_and_warp_quarters():
    assert tmem_address(0, 0) == 0 and tmem_address(32, 5) == 32 << 16 | 5
    assert tmem_address(127, 511) == 0x7F01FF
    for w in range(8):
        assert tmem_lanes(w) == range(32 * (w % 4), 32 * (w % 4) + 32)
    assert tmem_address(97, 8, warp=7) == 97 << 16 | 8
    with pytest.raises(ValueError, match=r"warp 1 may only access TMEM lanes 32\.\.63"):
        tmem_address(0, 0, warp=1)
    for lane, col in ((128, 0), (0, 512), (-1, 0)):
        with pytest.raises(ValueError, match="outside"):
            tmem_address(lane, col)


def test_str_lists_fields():
    d = Sm100SmemDescriptor.for_smem(0x400, lbo=16, sbo=1024, swizzle=Sm100Swizzle.SW128)
    assert str(d) == ("Sm100SmemDescriptor<0x4000404000010040 start_addr=64 lbo=1 sbo=64 base_offset=0 "
                      "version=1 lbo_mode=0 swizzle=SW128>")
    assert "scale_type=UE8M0" in str(BF("mxf4", "ue8m0", 128, 128))
    assert BF("mxf4nvf4", "ue4m3", 128, 128).scale_type is ScaleType.UE4M3
    assert str(Sm90SmemDescriptor()).startswith("Sm90SmemDescriptor<0x0000000000000000 start_addr=0")


def test_module_doctest():
    assert doctest.testmod(D).failed == 0


# ---- structure and round trips ----------------------------------------------------------------

@pytest.mark.parametrize("cls", ALL)
def test_fields_disjoint_and_within_width(cls):
    seen = 0
    for name, bf in cls.bitfields().items():
        assert bf.mask & seen == 0, f"{cls.__name__}.{name} overlaps another field"
        assert bf.lo + bf.width <= cls.WIDTH
        seen |= bf.mask


def _random_fields(cls, rng):
    return {name: rng.choice(bf.choices) if bf.choices else rng.randrange(1 << bf.width)
            for name, bf in cls.bitfields().items()}


@pytest.mark.parametrize("cls", ALL)
def test_encode_decode_round_trip(cls):
    rng = random.Random(f"descriptors-{cls.__name__}")
    for _ in range(500):
        d = cls(**_random_fields(cls, rng))
        v = d.encode()
        assert 0 <= v < 1 << cls.WIDTH
        assert cls.decode(v) == d and cls.decode(v).encode() == v
        for name, bf in cls.bitfields().items():  # each field lands exactly in its bits
            assert (v & bf.mask) >> bf.lo == int(getattr(d, name))


@pytest.mark.parametrize("cls", ALL)
def test_single_field_encodes_at_its_bits(cls):
    base = cls()
    for name, bf in cls.bitfields().items():
        for value in (bf.choices or (1, (1 << bf.width) - 1)):
            d = dataclasses.replace(base, **{name: value})
            assert d.encode() & bf.mask == int(value) << bf.lo
            assert d.encode() & ~bf.mask == base.encode() & ~bf.mask


# ---- range errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("cls, kw, pattern", [
    (Sm100SmemDescriptor, {"start_addr": 1 << 14}, r"start_addr = 16384 is invalid: bits \[0, 14\) allow \[0, 16383\]"),
    (Sm100SmemDescriptor, {"sbo": -1}, r"\.sbo = -1 .*\[32, 46\)"),
    (Sm100SmemDescriptor, {"version": 0}, r"\.version = 0 .*allow \{1\}"),
    (Sm100SmemDescriptor, {"swizzle": 3}, r"\.swizzle = 3 .*SW128=2"),
    (Sm100SmemDescriptor, {"base_offset": 8}, r"\.base_offset = 8 .*\[49, 52\)"),
    (Sm90SmemDescriptor, {"layout": Sm100Swizzle.SW128}, r"Sm90SmemDescriptor\.layout = .*SW64=2"),
    (Sm100ScaleFactorSmemDescriptor, {"sbo": 64}, r"\.sbo = 64 .*allow \{8\}"),
    (Sm100InstrDescriptor, {"n_dim": 64}, r"\.n_dim = 64 .*\[17, 23\) allow \[0, 63\]"),
    (Sm100InstrDescriptor, {"m_dim": 1.5}, r"\.m_dim = 1\.5"),
    (Sm100InstrDescriptor, {"a_major": 2}, r"\.a_major = 2 .*K=0, MN=1"),
    (Sm100BlockScaledInstrDescriptor, {"m_dim": 4}, r"\.m_dim = 4 .*\[27, 29\)"),
    (Sm100BlockScaledInstrDescriptor, {"scale_type": Major.MN}, r"\.scale_type"),
])
def test_field_range_errors(cls, kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        cls(**kw)


@pytest.mark.parametrize("cls, value", [
    (Sm100SmemDescriptor, 1 << 53),                 # fixed-zero bits [53, 61)
    (Sm100SmemDescriptor, 1 << 14),                 # reserved [14, 16)
    (Sm90SmemDescriptor, 1 << 46),                  # no version field on sm_90
    (Sm100InstrDescriptor, 1 << 23),                # reserved
    (Sm100InstrDescriptor, 1 << 32),                # past the 32-bit width
    (Sm100BlockScaledInstrDescriptor, 1 << 12),     # reserved (B type is 2 bits in the mxf4 kinds)
])
def test_decode_rejects_reserved_bits(cls, value):
    with pytest.raises(ValueError, match="reserved"):
        cls.decode(value)


def test_decode_rejects_illegal_field_values():
    with pytest.raises(ValueError, match="version"):
        Sm100SmemDescriptor.decode(0)
    with pytest.raises(ValueError, match="swizzle = 7"):
        Sm100SmemDescriptor.decode(0x4000000000000000 | 7 << 61 | 1 << 46)


def test_smem_byte_helpers_check_alignment_and_range():
    with pytest.raises(ValueError, match="start_addr = 0x408 bytes must be 16-byte aligned"):
        Sm100SmemDescriptor.for_smem(0x408, lbo=16, sbo=1024)
    with pytest.raises(ValueError, match="sbo = 0x40000"):
        Sm90SmemDescriptor.for_smem(0, lbo=16, sbo=1 << 18)
    d = Sm90SmemDescriptor.for_smem(0x3FFF0, lbo=16, sbo=1024)
    with pytest.raises(ValueError, match="16-byte units"):
        d.advance_k(8)
    with pytest.raises(ValueError, match="start_addr = 16384"):
        d.advance_k(16)


@pytest.mark.parametrize("args, kw, pattern", [
    (("f16", "f16", "f16", "f32", 256, 128), {},
     r"kind::f16 A=f16 B=f16 D=f32 M=256 N=128 \(A K-major, B K-major\): M must be 64 or 128"),
    (("f16", "f16", "f16", "f32", 128, 12), {}, r"N=12 .*multiple of 8 in \[8, 256\]"),
    (("f16", "f16", "f16", "f32", 64, 264), {}, r"N=264 .*multiple of 8"),
    (("f16", "f16", "f16", "f32", 64, 0), {}, r"N=0 .*multiple of 8"),
    (("f16", "e4m3", "e4m3", "f32", 128, 128), {}, r"A=e4m3 .*A/B must be in \{f16, bf16\}"),
    (("f16", "bf16", "bf16", "f16", 128, 128), {}, r"bf16 needs an f32 accumulator"),
    (("f16", "f16", "bf16", "f32", 128, 128), {}, r"A and B of one type"),
    (("tf32", "tf32", "tf32", "f16", 128, 128), {}, r"kind::tf32 .*D in \{f32\}"),
    (("f8f6f4", "e2m1", "e4m3", "f32", 128, 128), {"a_major": "MN"}, r"A MN-major.*MN-major operands"),
    (("f8f6f4", "e4m3", "e4m3", "f32", 128, 24), {"b_major": "MN"}, r"multiple of 16"),
    (("f16", "f16", "f16", "f32", 128, 24), {"a_tmem": True}, r"multiple of 16 with A in TMEM"),
    (("f16", "f16", "f16", "f32", 128, 128), {"a_tmem": True, "a_major": "MN"}, r"A in TMEM must be K-major"),
    (("i8", "s8", "s8", "s32", 128, 128), {}, r"kind must be one of f16, tf32, f8f6f4"),
    (("f16", "f16", "f16", "f32", 128, 128), {"b_major": "T"}, r"major must be 'K' or 'MN'"),
])
def test_instr_descriptor_illegal(args, kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        IF(*args, **kw)


@pytest.mark.parametrize("args, kw, pattern", [
    (("mxf4", "ue4m3", 128, 128), {}, r"kind::mxf4\.block_scale .*scale=ue4m3 block=16 .*legal: mxf4 with ue8m0"),
    (("mxf4", "ue8m0", 128, 128), {"block": 16}, r"block=16 .*legal"),
    (("mxf4nvf4", "ue4m3", 128, 128), {"block": 32}, r"block=32 .*legal"),
    (("f16", "ue8m0", 128, 128), {}, r"kind::f16\.block_scale .*legal"),
    (("mxf4", "ue8m0", 64, 128), {}, r"M=64 .*M must be 128"),
    (("mxf4", "ue8m0", 256, 128), {}, r"M=256 .*M must be 128"),
    (("mxf4", "ue8m0", 128, 260), {}, r"N=260 .*multiple of 8"),
    (("mxf4", "ue8m0", 128, 4), {}, r"N=4 .*multiple of 8"),
    (("mxf4", "ue8m0", 128, 128, 1, 0), {}, r"sfa_id=1 .*ids must be in \{0, 2\}"),
    (("mxf4nvf4", "ue4m3", 128, 128, 0, 2), {}, r"sfb_id=2: .*ids must be in \{0\} for block 16"),
])
def test_block_scaled_illegal(args, kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        BF(*args, **kw)


# ---- ptxas: the descriptors as immediates in an sm_100a kernel ----------------------------------

def _ptxas_path():
    try:
        return ptxas.find_ptxas()
    except ptxas.PtxasNotFoundError:
        return None


def _cuobjdump(ptxas_exe: str):
    """cuobjdump beside ptxas, on PATH, or in the triton wheel (not imported); None when absent."""
    cands = [Path(ptxas_exe).with_name("cuobjdump"), shutil.which("cuobjdump")]
    spec = importlib.util.find_spec("triton")
    if spec and spec.origin:
        cands.append(Path(spec.origin).parent / "backends/nvidia/bin/cuobjdump")
    return next((str(c) for c in cands if c and Path(c).is_file()), None)


KERNEL = """.version 8.7
.target sm_100a
.address_size 64
.visible .entry descriptor_immediates()
{{
    .reg .b32 %r<8>;
    .reg .pred %p<4>;
    .shared .align 16 .b32 tmem_slot;
    .shared .align 8 .b64 bar;
    mov.u32 %r0, %tid.x;
    setp.lt.u32 %p0, %r0, 32;
    mov.u32 %r1, tmem_slot;
    mov.u32 %r2, bar;
    @!%p0 bra DONE;
    tcgen05.alloc.cta_group::1.sync.aligned.shared::cta.b32 [%r1], 256;
    tcgen05.relinquish_alloc_permit.cta_group::1.sync.aligned;
    ld.shared.u32 %r3, [%r1];
    add.u32 %r4, %r3, {sfa_col};
    add.u32 %r5, %r3, {sfb_col};
    elect.sync %r6|%p1, 0xffffffff;
    @!%p1 bra DEALLOC;
    mbarrier.init.shared::cta.b64 [%r2], 1;
    setp.ne.u32 %p2, %r0, 0;
    tcgen05.cp.cta_group::1.32x128b.warpx4 [%r4], {sf_desc};
    tcgen05.mma.cta_group::1.kind::f16 [%r3], {a0}, {b0}, {idesc_f16}, %p2;
    tcgen05.mma.cta_group::1.kind::f16 [%r3], {a1}, {b1}, {idesc_bf16}, %p2;
    tcgen05.mma.cta_group::1.kind::mxf4.block_scale.scale_vec::2X [%r3], {a0}, {b0}, {idesc_mxf4}, [%r4], [%r5], %p2;
    tcgen05.mma.cta_group::1.kind::mxf4nvf4.block_scale.scale_vec::4X [%r3], {a0}, {b0}, {idesc_nvf4}, [%r4], [%r5], %p2;
    tcgen05.commit.cta_group::1.mbarrier::arrive::one.shared::cluster.b64 [%r2];
WAIT:
    mbarrier.try_wait.parity.shared::cta.b64 %p3, [%r2], 0;
    @!%p3 bra WAIT;
DEALLOC:
    tcgen05.fence::after_thread_sync;
    tcgen05.dealloc.cta_group::1.sync.aligned.b32 %r3, 256;
DONE:
    ret;
}}
"""


@pytest.mark.skipif(_ptxas_path() is None, reason="ptxas not found (pip install nvidia-cuda-nvcc)")
def test_ptxas_assembles_descriptor_immediates(tmp_path):
    sw128 = dict(lbo=16, sbo=1024, swizzle=Sm100Swizzle.SW128)
    a = Sm100SmemDescriptor.for_smem(0x400, **sw128)
    b = Sm100SmemDescriptor.for_smem(0x4400, **sw128)
    values = dict(
        a0=a, b0=b, a1=a.advance_k(32), b1=b.advance_k(32),
        sf_desc=Sm100ScaleFactorSmemDescriptor.at(0x9000),
        idesc_f16=IF("f16", "f16", "f16", "f32", 128, 128),
        idesc_bf16=IF("f16", "bf16", "bf16", "f32", 128, 128),
        idesc_mxf4=BF("mxf4", "ue8m0", 128, 128, sfa_id=2, sfb_id=2),
        idesc_nvf4=BF("mxf4nvf4", "ue4m3", 128, 128),
    )
    src = KERNEL.format(sfa_col=128, sfb_col=132, **{k: v.ptx() for k, v in values.items()})
    cubin, _ = ptxas.assemble(src, "sm_100a", name="descriptor_immediates.ptx")
    assert cubin

    tool = _cuobjdump(_ptxas_path())
    if tool is None:
        return
    (tmp_path / "k.cubin").write_bytes(cubin)
    sass = subprocess.run([tool, "-sass", str(tmp_path / "k.cubin")], capture_output=True, text=True).stdout
    if "UTCHMMA" not in sass:  # an older cuobjdump that cannot read this cubin
        pytest.skip(f"{tool} could not disassemble the sm_100a cubin")
    # ptxas materialises each descriptor as UMOVs of its 32-bit halves: the bits reach SASS unchanged.
    umov = {int(x, 16) for x in re.findall(r"UMOV\s+UR\d+,\s*(0x[0-9a-f]+)", sass)}
    for name, d in values.items():
        v = d.encode()
        for half in (v & 0xFFFF_FFFF, v >> 32):
            assert half == 0 or half in umov, f"{name} = {d.ptx()}: {half:#x} not among the UMOV immediates"
    assert sass.count("UTCHMMA") == 2 and "UTCOMMA.4X" in sass and "UTCCP" in sass
