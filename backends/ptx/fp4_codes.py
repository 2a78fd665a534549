"""Per-element e2m1 (fp4) and ue8m0 conversions between f32 registers and their codes.

A tile of `float4_e2m1fn` or `float8_e8m0fnu` lives in `%f` registers holding the exact
f32 value (as every narrow float, `ptx_types.py`); memory holds codes.  These helpers
turn one into the other for `fp4_memory.py` (loads / stores) and `lower_quantize.py`.

e2m1 code -> f32 (every target, 6 integer ops + 1 mul; the code's 3 magnitude bits land
in the f32 exponent/mantissa, and 2^126 rebiases; code 1 becomes the subnormal 2^-127
which the non-ftz `mul` turns into 0.5 exactly):

    and.b32 %r1, %r0, 7;  shl.b32 %r1, %r1, 22;  and.b32 %r2, %r0, 8;  shl.b32 %r2, %r2, 28
    or.b32 %r1, %r1, %r2;  mov.b32 %f1, %r1;  mul.rn.f32 %f2, %f1, 0f7E800000

f32 -> e2m1 code, nearest even, saturating to +-6 (sm_80 / sm_90a have no e2m1 `cvt`):
the code of |x| is the number of rounding thresholds it passes,
(|x| > 0.25) + (|x| >= 0.75) + (|x| > 1.25) + (|x| >= 1.75) + (|x| > 2.5) + (|x| >= 3.5)
+ (|x| > 5) (strict where the tie goes down to an even code), `set.*.u32.f32` giving -1
per passed threshold; the sign bit is x's.  On sm_100a one instruction makes two codes:

    { .reg .b8 %c; cvt.rn.satfinite.e2m1x2.f32 %c, %f_hi, %f_lo; cvt.u32.u8 %r0, %c; }

A NaN encodes as a zero of its sign (the CPU's ml_dtypes gives some zero too; a NaN only
reaches an encoder from a block whose NaN scale makes every dequantized value NaN).

ue8m0 code e <-> f32: 2^(e-127), e = 0 is the subnormal 2^-127 (bits 0x00400000), 255 NaN;
the code of an f32 that is such a value is `(bits >> 23) & 0xFF`.
"""

from __future__ import annotations

from .emitter import KernelEmitter

TWO_126 = "0f7E800000"
#: (threshold, strict) per e2m1 code step, in the order of the codes
_THRESHOLDS = ((0.25, True), (0.75, False), (1.25, True), (1.75, False), (2.5, True), (3.5, False), (5.0, True))


def codes_of(em: KernelEmitter) -> dict:
    """{f32 register holding an e2m1 value: u32 register with its code}, so a store of a
    freshly quantized value reuses the code instead of encoding again."""
    table = getattr(em, "_fp4_codes", None)
    if table is None:
        table = em._fp4_codes = {}
    return table


def _hw(em: KernelEmitter) -> bool:
    return em.sm >= 100


def decode_e2m1(em: KernelEmitter, code: str) -> str:
    """The f32 value of the e2m1 code in the low 4 bits of u32 register `code` (bits above
    4 are ignored)."""
    m, s, f, out = em.new("r"), em.new("r"), em.new("f"), em.new("f")
    em.ins(f"and.b32 {m}, {code}, 7")
    em.ins(f"shl.b32 {m}, {m}, 22")
    em.ins(f"and.b32 {s}, {code}, 8")
    em.ins(f"shl.b32 {s}, {s}, 28")
    em.ins(f"or.b32 {m}, {m}, {s}")
    em.ins(f"mov.b32 {f}, {m}")
    em.ins(f"mul.rn.f32 {out}, {f}, {TWO_126}")
    return out


def decode_byte(em: KernelEmitter, byte: str) -> tuple[str, str]:
    """(low nibble's value, high nibble's value) of a packed byte in u32 register `byte`."""
    if _hw(em):
        pair, lo, hi, flo, fhi = em.new("r"), em.new("h"), em.new("h"), em.new("f"), em.new("f")
        _scoped(em, f"cvt.u8.u32 %tc, {byte}; cvt.rn.f16x2.e2m1x2 {pair}, %tc;")
        em.ins(f"mov.b32 {{{lo}, {hi}}}, {pair}")
        em.ins(f"cvt.f32.f16 {flo}, {lo}")
        em.ins(f"cvt.f32.f16 {fhi}, {hi}")
        return flo, fhi
    hi = em.new("r")
    em.ins(f"shr.u32 {hi}, {byte}, 4")
    return decode_e2m1(em, byte), decode_e2m1(em, hi)


def encode_e2m1(em: KernelEmitter, x: str) -> str:
    """u32 register with the e2m1 code (nearest even, saturating) of f32 register `x`."""
    a, acc, sign = em.new("f"), em.new("r"), em.new("r")
    em.ins(f"abs.f32 {a}, {x}")
    em.ins(f"mov.b32 {acc}, 0")
    for t, strict in _THRESHOLDS:
        s = em.new("r")
        em.ins(f"set.{'gt' if strict else 'ge'}.u32.f32 {s}, {a}, {_imm(t)}")
        em.ins(f"sub.u32 {acc}, {acc}, {s}")
    em.ins(f"mov.b32 {sign}, {x}")
    em.ins(f"shr.u32 {sign}, {sign}, 28")
    em.ins(f"and.b32 {sign}, {sign}, 8")
    out = em.new("r")
    em.ins(f"or.b32 {out}, {acc}, {sign}")
    return out


def encode_pair(em: KernelEmitter, lo: str, hi: str) -> str:
    """u32 register holding the byte (lo code | hi code << 4) of two f32 registers, each
    rounded to e2m1 (nearest even, saturating)."""
    out = em.new("r")
    if _hw(em):
        _scoped(em, f"cvt.rn.satfinite.e2m1x2.f32 %tc, {hi}, {lo}; cvt.u32.u8 {out}, %tc;")
        return out
    table = codes_of(em)
    cl = table.get(lo) or encode_e2m1(em, lo)
    ch = table.get(hi) or encode_e2m1(em, hi)
    em.ins(f"shl.b32 {out}, {ch}, 4")
    em.ins(f"or.b32 {out}, {out}, {cl}")
    return out


def round_e2m1(em: KernelEmitter, x: str) -> str:
    """f32 register `x` rounded to e2m1 (nearest even, saturating), as f32; on sm_80 / sm_90a
    its code is remembered in `codes_of(em)` for the store that follows."""
    if _hw(em):
        out, _ = decode_byte(em, encode_pair(em, x, x))
        return out
    code = encode_e2m1(em, x)
    out = decode_e2m1(em, code)
    codes_of(em)[out] = code
    return out


# ---------------------------------------------------------------------------- ue8m0


def decode_e8m0(em: KernelEmitter, code: str) -> str:
    """The f32 value of the ue8m0 code in u32 register `code` (0..255)."""
    b, p, f = em.new("r"), em.new("p"), em.new("f")
    em.ins(f"shl.b32 {b}, {code}, 23")
    em.ins(f"setp.eq.u32 {p}, {code}, 0")
    em.ins(f"selp.b32 {b}, 4194304, {b}, {p}")          # 2^-127: subnormal 0x00400000
    em.ins(f"setp.eq.u32 {p}, {code}, 255")
    em.ins(f"selp.b32 {b}, 2147483647, {b}, {p}")       # NaN 0x7FFFFFFF
    em.ins(f"mov.b32 {f}, {b}")
    return f


def encode_e8m0(em: KernelEmitter, x: str) -> str:
    """The ue8m0 code (u32) of f32 register `x`, which holds 2^k (k in [-127, 127]) or NaN."""
    b = em.new("r")
    em.ins(f"mov.b32 {b}, {x}")
    em.ins(f"shr.u32 {b}, {b}, 23")
    em.ins(f"and.b32 {b}, {b}, 255")
    return b


def _scoped(em: KernelEmitter, body: str) -> None:
    """`body` in a PTX scope declaring the .b8 register `%tc` (the e2m1x2 cvts need one;
    the emitter's register classes have no 8-bit one)."""
    em.lines.append(f"\t{{ .reg .b8 %tc; {body} }}")


def _imm(x: float) -> str:
    from .ptx_types import f32_imm

    return f32_imm(x)
