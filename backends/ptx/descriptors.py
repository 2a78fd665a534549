"""MMA descriptors for sm_90a ``wgmma`` and sm_100a ``tcgen05``, built from named bit fields.

Tensor-core MMAs take operand layouts and shapes as packed integers. Each class is a frozen
dataclass whose fields are bit ranges: ``encode()`` packs, ``decode(int)`` unpacks (rejecting set
reserved bits), an out-of-range value raises ValueError naming the field and its allowed values,
``ptx()`` is the PTX immediate and ``str()`` lists the fields (IR dumps, FileCheck).

* `Sm90SmemDescriptor`: 64-bit GMMA matrix descriptor, the A/B operands of ``wgmma.mma_async``.
* `Sm100SmemDescriptor`: 64-bit UMMA matrix descriptor, ``a_desc``/``b_desc`` of ``tcgen05.mma``.
* `Sm100ScaleFactorSmemDescriptor`: ``tcgen05.cp`` source of block scale factors (no swizzle, SBO 128 B).
* `Sm100InstrDescriptor`: 32-bit ``idesc`` of ``tcgen05.mma`` kind::f16 / tf32 / f8f6f4.
* `Sm100BlockScaledInstrDescriptor`: ``idesc`` of kind::mxf4 / mxf4nvf4 ``.block_scale``.
* `tmem_address`, `tmem_lanes`: TMEM address ``lane << 16 | column``; warp w owns lanes 32*(w%4)..+31.

Address/LBO/SBO fields hold bytes >> 4, as the hardware does; ``for_smem`` takes bytes. Sources:
PTX ISA "Shared memory descriptor" / "Instruction descriptor" tables, CUTLASS
``cute/arch/mma_sm{90,100}_desc.hpp``; assembled with ptxas (shared/PTX_FACTS.md, the tests).

Worked example: a 128x128 fp16 tile, f32 accumulator, both operands K-major with 128B swizzle
(8-row x 128 B atoms, so SBO = 1024 B; LBO is unused and conventionally 16 B)::

    >>> a = Sm100SmemDescriptor.for_smem(0x400, lbo=16, sbo=1024, swizzle=Sm100Swizzle.SW128)
    >>> a.ptx()                          # SW128 = 2<<61 | version 1<<46 | SBO 0x40<<32 | LBO 1<<16 | 0x400>>4
    '0x4000404000010040'
    >>> a.advance_k(32).ptx()            # the next K16 step inside the atom: +32 B, i.e. +2
    '0x4000404000010042'
    >>> idesc = Sm100InstrDescriptor.for_mma("f16", "f16", "f16", "f32", M=128, N=128)
    >>> idesc.ptx()                      # D=f32 1<<4 | N>>3=16 <<17 | M>>4=8 <<24
    '0x08200010'
    >>> print(idesc)
    Sm100InstrDescriptor<0x08200010 sparse_selector=0 sparse=0 saturate=0 d_type=1 a_type=0 b_type=0 negate_a=0 negate_b=0 a_major=K b_major=K n_dim=16 m_dim=8 max_shift=0>

PTX: ``tcgen05.mma.cta_group::1.kind::f16 [%r_d], %rd_a, %rd_b, 0x08200010, %p_acc;``. With a
run-time address, emit ``for_smem(0, ...).encode() | ((addr >> 4) & 0x3FFF)``.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True)
class BitField:
    """Bits ``[lo, lo + width)`` of a descriptor. ``choices``, when set, lists the only legal values."""
    lo: int
    width: int
    choices: tuple[int, ...] | None = None

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lo

    def allowed(self) -> str:
        if self.choices is None:
            return f"[0, {(1 << self.width) - 1}]"
        return "{" + ", ".join(f"{c.name}={int(c)}" if isinstance(c, enum.Enum) else str(c)
                               for c in self.choices) + "}"


def bits(lo: int, width: int, default: int = 0, choices=None):
    """Declare a descriptor field at bits ``[lo, lo + width)``; an IntEnum default restricts it to that enum."""
    if choices is None and isinstance(default, enum.IntEnum):
        choices = tuple(type(default))
    return field(default=default, metadata={"bits": BitField(lo, width, None if choices is None else tuple(choices))})


class Descriptor:
    """Base class. Subclasses are frozen dataclasses whose fields are all declared with `bits`."""
    WIDTH: ClassVar[int] = 64

    @classmethod
    def bitfields(cls) -> dict[str, BitField]:
        return {f.name: f.metadata["bits"] for f in dataclasses.fields(cls)}

    def __post_init__(self) -> None:
        for name, bf in self.bitfields().items():
            v = getattr(self, name)
            etype = type(bf.choices[0]) if bf.choices and isinstance(bf.choices[0], enum.Enum) else None
            ok = isinstance(v, int) and 0 <= v < (1 << bf.width) and (bf.choices is None or v in bf.choices)
            if not ok or (isinstance(v, enum.Enum) and type(v) is not etype):
                raise ValueError(f"{type(self).__name__}.{name} = {v!r} is invalid: "
                                 f"bits [{bf.lo}, {bf.lo + bf.width}) allow {bf.allowed()}")
            object.__setattr__(self, name, etype(v) if etype else int(v))

    def encode(self) -> int:
        out = 0
        for name, bf in self.bitfields().items():
            out |= int(getattr(self, name)) << bf.lo
        return out

    @classmethod
    def decode(cls, value: int):
        """The descriptor whose encoding is ``value``; ValueError when a reserved bit or a field is illegal."""
        fields = cls.bitfields()
        used = sum(bf.mask for bf in fields.values())
        if not 0 <= value < (1 << cls.WIDTH) or value & ~used:
            raise ValueError(f"{cls.__name__}.decode({value:#x}): bits {value & ~used:#x} are outside "
                             f"every field (reserved) or past bit {cls.WIDTH - 1}")
        return cls(**{name: (value & bf.mask) >> bf.lo for name, bf in fields.items()})

    def ptx(self) -> str:
        """The encoding as a PTX immediate: ``0x`` and WIDTH/4 upper-case hex digits."""
        return f"0x{self.encode():0{self.WIDTH // 4}X}"

    def __str__(self) -> str:
        parts = (f"{n}={v.name if isinstance(v, enum.Enum) else v}"
                 for n, v in ((n, getattr(self, n)) for n in self.bitfields()))
        return f"{type(self).__name__}<{self.ptx()} {' '.join(parts)}>"


# Hardware codes. Sm90Swizzle: GMMA layout_type, bits [62, 64). Sm100Swizzle: UMMA swizzle, bits [61, 64)
# (3, 5, 7 invalid). Major: the idesc "transpose" bits. ScaleType: block-scaled idesc bit 23.
Sm90Swizzle = enum.IntEnum("Sm90Swizzle", {"NONE": 0, "SW128": 1, "SW64": 2, "SW32": 3})
Sm100Swizzle = enum.IntEnum("Sm100Swizzle", {"NONE": 0, "SW128_BASE32B": 1, "SW128": 2, "SW64": 4, "SW32": 6})
Major = enum.IntEnum("Major", {"K": 0, "MN": 1})
ScaleType = enum.IntEnum("ScaleType", {"UE4M3": 0, "UE8M0": 1})


@dataclass(frozen=True)
class _SmemDescriptor(Descriptor):
    """The fields that the sm_90 and sm_100 shared-memory matrix descriptors share."""
    start_addr: int = bits(0, 14)   # shared::cta byte address >> 4
    lbo: int = bits(16, 14)         # leading-dimension byte offset >> 4
    sbo: int = bits(32, 14)         # stride-dimension byte offset >> 4
    base_offset: int = bits(49, 3)  # (pattern start >> 7) & 7 when the swizzle pattern is not aligned

    @classmethod
    def for_smem(cls, address: int, *, lbo: int, sbo: int, **fields):
        """Build from byte values: each must be 16-byte aligned and below 256 KiB (0x40000)."""
        enc = {}
        for name, v in (("start_addr", address), ("lbo", lbo), ("sbo", sbo)):
            if v % 16 or not 0 <= v < 1 << 18:
                raise ValueError(f"{cls.__name__}: {name} = {v:#x} bytes must be 16-byte aligned and in [0, 0x40000)")
            enc[name] = v >> 4
        return cls(**enc, **fields)

    def advance_k(self, nbytes: int):
        """This descriptor moved ``nbytes`` along K: 32 B per K16 step of a 16-bit type inside a swizzle atom."""
        if nbytes % 16:
            raise ValueError(f"advance_k({nbytes}): the start address moves in 16-byte units")
        return dataclasses.replace(self, start_addr=self.start_addr + (nbytes >> 4))


@dataclass(frozen=True)
class Sm90SmemDescriptor(_SmemDescriptor):
    """wgmma GMMA matrix descriptor. K-major SW128: ``for_smem(a, lbo=16, sbo=1024, layout=SW128)``."""
    layout: Sm90Swizzle = bits(62, 2, Sm90Swizzle.NONE)


@dataclass(frozen=True)
class Sm100SmemDescriptor(_SmemDescriptor):
    """tcgen05 UMMA matrix descriptor: the sm_90 fields plus version (must be 1), LBO mode and a 3-bit swizzle."""
    version: int = bits(46, 2, 1, choices=(1,))
    lbo_mode: int = bits(52, 1)     # 0: LBO is a relative offset, 1: an absolute address (sm_103a)
    swizzle: Sm100Swizzle = bits(61, 3, Sm100Swizzle.NONE)


@dataclass(frozen=True)
class Sm100ScaleFactorSmemDescriptor(Sm100SmemDescriptor):
    """tcgen05.cp source for scale factors: ``(8 << 32) | (1 << 46) | addr >> 4`` (DeepGEMM ``make_sf_desc``)."""
    lbo: int = bits(16, 14, 0, choices=(0,))
    sbo: int = bits(32, 14, 8, choices=(8,))
    swizzle: Sm100Swizzle = bits(61, 3, Sm100Swizzle.NONE, choices=(Sm100Swizzle.NONE,))

    @classmethod
    def at(cls, address: int) -> Sm100ScaleFactorSmemDescriptor:
        return cls.for_smem(address, lbo=0, sbo=128)


_ALIASES = {"float16": "f16", "half": "f16", "bfloat16": "bf16", "float32": "f32", "float8_e4m3fn": "e4m3",
            "f8e4m3fn": "e4m3", "float8_e5m2": "e5m2", "f8e5m2": "e5m2", "float4_e2m1fn": "e2m1",
            "f4e2m1fn": "e2m1", "float8_e8m0fnu": "ue8m0", "f8e8m0fnu": "ue8m0", "float6_e2m3fn": "e2m3",
            "f6e2m3fn": "e2m3", "float6_e3m2fn": "e3m2", "f6e3m2fn": "e3m2"}
_AB_CODES = {"f16": {"f16": 0, "bf16": 1}, "tf32": {"tf32": 2},
             "f8f6f4": {"e4m3": 0, "e5m2": 1, "e2m3": 3, "e3m2": 4, "e2m1": 5}}
_D_CODES = {"f16": {"f16": 0, "f32": 1}, "tf32": {"f32": 1}, "f8f6f4": {"f16": 0, "f32": 1}}
_MN_MAJOR_TYPES = ("f16", "bf16", "tf32", "e4m3", "e5m2")


def _ptx_name(x) -> str:
    """'f16', 'kind::f16', '.bf16', a tilec DType or its name ('float8_e4m3fn') -> the PTX spelling."""
    s = str(getattr(x, "name", x)).lower().lstrip(".").removeprefix("kind::")
    return _ALIASES.get(s, s)


def _major(x) -> Major:
    if str(getattr(x, "name", x)).upper() not in Major.__members__:
        raise ValueError(f"major must be 'K' or 'MN', got {x!r}")
    return Major[str(getattr(x, "name", x)).upper()]


@dataclass(frozen=True)
class Sm100InstrDescriptor(Descriptor):
    """tcgen05.mma instruction descriptor for kind::f16, kind::tf32 and kind::f8f6f4 (and kind::i8)."""
    WIDTH: ClassVar[int] = 32
    sparse_selector: int = bits(0, 2)
    sparse: int = bits(2, 1)
    saturate: int = bits(3, 1)      # integer kinds only
    d_type: int = bits(4, 2)        # F16 = 0, F32 = 1 (S32 = 2 for kind::i8)
    a_type: int = bits(7, 3)        # per kind: see _AB_CODES
    b_type: int = bits(10, 3)
    negate_a: int = bits(13, 1)
    negate_b: int = bits(14, 1)
    a_major: Major = bits(15, 1, Major.K)
    b_major: Major = bits(16, 1, Major.K)
    n_dim: int = bits(17, 6)        # N >> 3
    m_dim: int = bits(24, 5)        # M >> 4
    max_shift: int = bits(30, 2)    # .ws B-reuse shift: 0 none, 1/2/3 = 8/16/32

    @classmethod
    def for_mma(cls, kind, a_dtype, b_dtype, d_dtype, M: int, N: int, a_major="K", b_major="K",
                *, a_tmem: bool = False) -> Sm100InstrDescriptor:
        """idesc of a dense cta_group::1 MMA, A from smem (TMEM if ``a_tmem``); ValueError if illegal.

        PTX ISA "Matrix shape" table and CUTLASS atoms: M in {64, 128}; N a multiple of 8 in [8, 256],
        of 16 if A is in TMEM with M = 128 or an f8f6f4 B is MN-major; kind::f16 needs A, B of one
        type and bf16 an f32 D; MN-major only for f16/bf16/tf32/e4m3/e5m2.
        """
        k, a, b, d = map(_ptx_name, (kind, a_dtype, b_dtype, d_dtype))
        am, bm = _major(a_major), _major(b_major)

        def bad(why: str):
            return ValueError(f"tcgen05.mma.cta_group::1.kind::{k} A={a} B={b} D={d} M={M} N={N} "
                              f"(A {am.name}-major, B {bm.name}-major): {why}")
        if k not in _AB_CODES:
            raise bad(f"kind must be one of {', '.join(_AB_CODES)}")
        codes = _AB_CODES[k]
        if a not in codes or b not in codes or d not in _D_CODES[k]:
            raise bad(f"A/B must be in {{{', '.join(codes)}}} and D in {{{', '.join(_D_CODES[k])}}}")
        if k == "f16" and (a != b or (a == "bf16" and d != "f32")):
            raise bad("kind::f16 needs A and B of one type, and bf16 needs an f32 accumulator")
        if M not in (64, 128):
            raise bad("M must be 64 or 128 for cta_group::1")
        if N % 8 or not 8 <= N <= 256:
            raise bad("N must be a multiple of 8 in [8, 256]")
        if N % 16 and ((a_tmem and M == 128) or (k == "f8f6f4" and bm == Major.MN)):
            raise bad("N must be a multiple of 16 with A in TMEM and M = 128, or an MN-major f8f6f4 B")
        if (am == Major.MN and a not in _MN_MAJOR_TYPES) or (bm == Major.MN and b not in _MN_MAJOR_TYPES):
            raise bad(f"MN-major operands must be one of {', '.join(_MN_MAJOR_TYPES)}")
        if a_tmem and am == Major.MN:
            raise bad("A in TMEM must be K-major")
        return cls(d_type=_D_CODES[k][d], a_type=codes[a], b_type=codes[b], a_major=am, b_major=bm,
                   n_dim=N >> 3, m_dim=M >> 4)


@dataclass(frozen=True)
class Sm100BlockScaledInstrDescriptor(Descriptor):
    """tcgen05.mma idesc for kind::mxf4 / kind::mxf4nvf4 ``.block_scale`` (A/B type E2M1 = 1)."""
    WIDTH: ClassVar[int] = 32
    sparse: int = bits(2, 1)
    sfb_id: int = bits(4, 2)        # byte of the 32-bit TMEM column holding B's first scale factor
    a_type: int = bits(7, 3)
    b_type: int = bits(10, 2)
    negate_a: int = bits(13, 1)
    negate_b: int = bits(14, 1)
    a_major: Major = bits(15, 1, Major.K)
    b_major: Major = bits(16, 1, Major.K)
    n_dim: int = bits(17, 6)        # N >> 3
    scale_type: ScaleType = bits(23, 1, ScaleType.UE4M3)
    m_dim: int = bits(27, 2)        # M >> 7 (CUTLASS writes M >> 4 at [24, 29): same bits for M = 128, 256)
    sfa_id: int = bits(29, 2)
    k_dim: int = bits(31, 1)        # 0: dense K = 64; 1: dense K = 96 (sm_103a)

    @classmethod
    def for_mma(cls, kind, scale_dtype, M: int, N: int, sfa_id: int = 0, sfb_id: int = 0,
                *, block: int | None = None) -> Sm100BlockScaledInstrDescriptor:
        """idesc of a dense cta_group::1 block-scaled MMA, A and B K-major E2M1; ValueError if illegal.

        ``block`` (elements per scale: 32 = ``.block32``/``scale_vec::2X``, 16 = ``.block16``/``4X``;
        default 16 for ue4m3, else 32) is in the opcode, not the idesc, but fixes the legal sf ids:
        {0, 2} for 32, {0} for 16. mxf4: ue8m0/32; mxf4nvf4: ue4m3/16 or ue8m0/16|32. M = 128;
        N a multiple of 8 in [8, 256].
        """
        k, s = _ptx_name(kind), _ptx_name(scale_dtype)
        block = block if block is not None else (16 if s == "ue4m3" else 32)
        legal = {("mxf4", "ue8m0"): (32,), ("mxf4nvf4", "ue8m0"): (16, 32), ("mxf4nvf4", "ue4m3"): (16,)}
        ids = (0, 2) if block == 32 else (0,)

        def bad(why: str):
            return ValueError(f"tcgen05.mma.cta_group::1.kind::{k}.block_scale A=e2m1 B=e2m1 scale={s} "
                              f"block={block} M={M} N={N} sfa_id={sfa_id} sfb_id={sfb_id}: {why}")
        if block not in legal.get((k, s), ()):
            raise bad("legal: mxf4 with ue8m0 (block 32); mxf4nvf4 with ue4m3 (block 16) or ue8m0 (16 or 32)")
        if M != 128:
            raise bad("M must be 128 for cta_group::1")
        if N % 8 or not 8 <= N <= 256:
            raise bad("N must be a multiple of 8 in [8, 256]")
        if sfa_id not in ids or sfb_id not in ids:
            raise bad(f"scale-factor ids must be in {set(ids)} for block {block}")
        return cls(sfb_id=sfb_id, a_type=1, b_type=1, n_dim=N >> 3, m_dim=M >> 7, sfa_id=sfa_id,
                   scale_type=ScaleType.UE8M0 if s == "ue8m0" else ScaleType.UE4M3)


TMEM_LANES, TMEM_COLUMNS = 128, 512


def tmem_lanes(warp: int) -> range:
    """The TMEM lanes that warp ``warp`` may ``tcgen05.ld``/``st``: ``32*(warp%4)`` to ``32*(warp%4)+31``."""
    q = 32 * (warp % 4)
    return range(q, q + 32)


def tmem_address(lane: int, column: int, *, warp: int | None = None) -> int:
    """TMEM address ``lane << 16 | column``; with ``warp``, also checks that the warp may access ``lane``."""
    if not 0 <= lane < TMEM_LANES or not 0 <= column < TMEM_COLUMNS:
        raise ValueError(f"TMEM lane {lane} / column {column} outside [0, {TMEM_LANES}) x [0, {TMEM_COLUMNS})")
    if warp is not None and lane not in tmem_lanes(warp):
        r = tmem_lanes(warp)
        raise ValueError(f"warp {warp} may only access TMEM lanes {r.start}..{r.stop - 1} (32*(warp%4)), not {lane}")
    return lane << 16 | column
