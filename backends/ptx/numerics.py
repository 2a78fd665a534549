"""Per-element numerics shared by the lowerings: rounding narrow floats, wrapping narrow
ints, dtype conversions, and the f32 math approximations.

Every function emits the instructions for one element (one register) and returns the
result register.  The approximations and their accuracy (f32, measured against numpy
float64 on the H100):

* `exp(x)`  = `ex2.approx.ftz(x * log2 e)`;  `log(x)` = `lg2.approx.ftz(x) * ln 2`
* `tanh`    = `tanh.approx.f32` (max relative error about 2^-11)
* `rsqrt`   = `rsqrt.approx.f32`;  `sqrt` = `sqrt.rn`;  division = `div.rn`, except by a
  divisor shared by several slots (a broadcast row sum): `rcp.rn` once, then per element
  q = x * r refined by one residual step (`div_by_reciprocal`, within 1 ulp of `div.rn`)
* `erf`     = odd Taylor series (|x| < 0.5), Abramowitz-Stegun 7.1.26 beyond (abs err < 5e-7)
* `sin/cos` = two-constant reduction to [-pi, pi], then `sin/cos.approx.f32`
* `pow`     = `ex2(y * lg2|x|)` with the sign / zero / NaN cases of C `powf`
"""

from __future__ import annotations

import math

from tilec import dtypes as dt

from .emitter import KernelEmitter
from .ptx_types import FP8, f32_imm, float_type, int_type, is_narrow_float, is_narrow_int, reg_class

LOG2E = f32_imm(math.log2(math.e))
LN2 = f32_imm(math.log(2.0))
ONE = f32_imm(1.0)
ZERO = f32_imm(0.0)

_MOV = {"p": "pred", "h": "b16", "r": "b32", "rd": "b64", "f": "f32", "fd": "f64"}


def mov(em: KernelEmitter, cls: str, dst: str, src) -> None:
    em.ins(f"mov.{_MOV[cls]} {dst}, {src}")


# ---------------------------------------------------------------------------- narrow types


def round_narrow(em: KernelEmitter, d: dt.DType, x: str) -> str:
    """f32 register `x` rounded (to nearest even) to narrow float `d`, as f32 again."""
    if not is_narrow_float(d):
        return x
    h, out = em.new("h"), em.new("f")
    if d is dt.float16:
        em.ins(f"cvt.rn.f16.f32 {h}, {x}")
        em.ins(f"cvt.f32.f16 {out}, {h}")
        narrowed(em)[out] = x
    elif d is dt.bfloat16:
        em.ins(f"cvt.rn.bf16.f32 {h}, {x}")
        em.ins(f"cvt.f32.bf16 {out}, {h}")
        narrowed(em)[out] = x
    elif d in FP8:
        em.require_sm(90, "fp8 conversions", d)
        f8, pair, lo, hi = em.new("h"), em.new("r"), em.new("h"), em.new("h")
        em.ins(f"cvt.rn.satfinite.{FP8[d]}x2.f32 {f8}, {x}, {x}")
        em.ins(f"cvt.rn.f16x2.{FP8[d]}x2 {pair}, {f8}")
        em.ins(f"mov.b32 {{{lo}, {hi}}}, {pair}")
        em.ins(f"cvt.f32.f16 {out}, {lo}")
    else:
        raise em.unsupported("arithmetic", d)
    return out


def narrowed(em: KernelEmitter) -> dict:
    """{f16/bf16-held register: the f32 register it was rounded from}.  Converting the f32
    source to 16 bits gives the same bits, so a store converts that and the round trip
    `cvt.rn.f16.f32; cvt.f32.f16` becomes dead code (ptxas drops it)."""
    table = getattr(em, "_narrowed", None)
    if table is None:
        table = em._narrowed = {}
    return table


def storage_source(em: KernelEmitter, d: dt.DType, x: str) -> str:
    """The f32 register to convert to `d`'s 16 bits for the value held in `x`."""
    return narrowed(em).get(x, x) if d in (dt.float16, dt.bfloat16) else x


def wrap_int(em: KernelEmitter, d: dt.DType, x: str) -> str:
    """32-bit register `x` wrapped to narrow integer `d` (sign- or zero-extended again)."""
    if not is_narrow_int(d):
        return x
    out = em.new("r")
    if d.is_signed:
        em.ins(f"bfe.s32 {out}, {x}, 0, {d.bits}")
    else:
        em.ins(f"and.b32 {out}, {x}, {(1 << d.bits) - 1}")
    return out


def finish(em: KernelEmitter, d: dt.DType, x: str) -> str:
    """Bring a freshly computed register back into dtype `d`'s value set."""
    if d.is_float:
        return round_narrow(em, d, x)
    return wrap_int(em, d, x)


# ---------------------------------------------------------------------------- memory <-> register


def from_storage(em: KernelEmitter, d: dt.DType, raw: str) -> str:
    """The register value of dtype `d` from its raw memory bits (`.b16` / 8-bit in `.b16`)."""
    out = em.new("f")
    if d is dt.float16:
        em.ins(f"cvt.f32.f16 {out}, {raw}")
    elif d is dt.bfloat16:
        em.ins(f"cvt.f32.bf16 {out}, {raw}")
    elif d in FP8:
        em.require_sm(90, "fp8 load", d)
        pair, lo, hi = em.new("r"), em.new("h"), em.new("h")
        em.ins(f"cvt.rn.f16x2.{FP8[d]}x2 {pair}, {raw}")
        em.ins(f"mov.b32 {{{lo}, {hi}}}, {pair}")
        em.ins(f"cvt.f32.f16 {out}, {lo}")
    else:
        raise em.unsupported("load", d)
    return out


def to_storage(em: KernelEmitter, d: dt.DType, x: str) -> str:
    """The raw `.b16` bits of narrow float register `x` (exact: `x` is already in `d`)."""
    h = em.new("h")
    x = storage_source(em, d, x)
    if d is dt.float16:
        em.ins(f"cvt.rn.f16.f32 {h}, {x}")
    elif d is dt.bfloat16:
        em.ins(f"cvt.rn.bf16.f32 {h}, {x}")
    elif d in FP8:
        em.require_sm(90, "fp8 store", d)
        zero = em.new("f")
        em.ins(f"mov.f32 {zero}, {ZERO}")
        em.ins(f"cvt.rn.satfinite.{FP8[d]}x2.f32 {h}, {zero}, {x}")
    else:
        raise em.unsupported("store", d)
    return h


# ---------------------------------------------------------------------------- casts


def cast(em: KernelEmitter, src: dt.DType, dst: dt.DType, x: str) -> str:
    """Convert register `x` of dtype `src` to `dst` with the CPU interpreter's rules:
    float -> narrower float rounds to nearest even (fp8 saturates), float -> int truncates
    toward zero and saturates (NaN -> 0), int -> int wraps, x -> bool is x != 0."""
    if src is dst:
        return x
    if dst is dt.bool_:
        p = em.new("p")
        if src.is_float:
            em.ins(f"setp.neu.{float_type(src)} {p}, {x}, {'0d0000000000000000' if src.bits == 64 else ZERO}")
        else:
            em.ins(f"setp.ne.{int_type(src)} {p}, {x}, 0")
        return p
    if src is dt.bool_:
        out = em.new(reg_class(dst))
        if dst.is_float:
            one, zero = ("0d3FF0000000000000", "0d0000000000000000") if dst.bits == 64 else (ONE, ZERO)
            em.ins(f"selp.{float_type(dst)} {out}, {one}, {zero}, {x}")
        else:
            em.ins(f"selp.{'b64' if dst.bits == 64 else 'b32'} {out}, 1, 0, {x}")
        return out
    if src.is_float and dst.is_float:
        return _float_to_float(em, src, dst, x)
    if dst.is_float:
        return _int_to_float(em, src, dst, x)
    if src.is_float:
        return _float_to_int(em, src, dst, x)
    return _int_to_int(em, src, dst, x)


def _float_to_float(em: KernelEmitter, src: dt.DType, dst: dt.DType, x: str) -> str:
    if src.bits <= 32 and dst.bits <= 32:
        if dst is dt.float32:
            return x  # a narrow value is exact in f32
        return round_narrow(em, dst, x)
    if dst.bits == 64:
        out = em.new("fd")
        em.ins(f"cvt.f64.f32 {out}, {x}")
        return out
    # f64 -> f32-held
    if dst is dt.float16 or (dst is dt.bfloat16 and em.sm >= 90):
        h, out = em.new("h"), em.new("f")
        em.ins(f"cvt.rn.{'f16' if dst is dt.float16 else 'bf16'}.f64 {h}, {x}")
        em.ins(f"cvt.f32.{'f16' if dst is dt.float16 else 'bf16'} {out}, {h}")
        return out
    f = em.new("f")
    em.ins(f"cvt.rn.f32.f64 {f}, {x}")
    return round_narrow(em, dst, f)  # bf16 on sm_80 / fp8: rounded twice


def _int_to_float(em: KernelEmitter, src: dt.DType, dst: dt.DType, x: str) -> str:
    it = int_type(src)
    if dst.bits == 64:
        out = em.new("fd")
        em.ins(f"cvt.rn.f64.{it} {out}, {x}")
        return out
    if dst is dt.float32:
        out = em.new("f")
        em.ins(f"cvt.rn.f32.{it} {out}, {x}")
        return out
    if dst is dt.float16:
        h, out = em.new("h"), em.new("f")
        em.ins(f"cvt.rn.f16.{it} {h}, {x}")
        em.ins(f"cvt.f32.f16 {out}, {h}")
        return out
    wide = em.new("fd")  # exact for 32-bit ints, then one rounding to the narrow type
    em.ins(f"cvt.rn.f64.{it} {wide}, {x}")
    return _float_to_float(em, dt.float64, dst, wide)


def _float_to_int(em: KernelEmitter, src: dt.DType, dst: dt.DType, x: str) -> str:
    ft = "f64" if src.bits == 64 else "f32"
    if dst.bits == 64 or not is_narrow_int(dst):
        out = em.new(reg_class(dst))
        em.ins(f"cvt.rzi.{int_type(dst)}.{ft} {out}, {x}")
        return out
    t, out = em.new("r"), em.new("r")
    if dst.is_signed:
        lo, hi = -(1 << (dst.bits - 1)), (1 << (dst.bits - 1)) - 1
        em.ins(f"cvt.rzi.s32.{ft} {t}, {x}")
        em.ins(f"max.s32 {t}, {t}, {lo}")
        em.ins(f"min.s32 {out}, {t}, {hi}")
    else:
        em.ins(f"cvt.rzi.u32.{ft} {t}, {x}")
        em.ins(f"min.u32 {out}, {t}, {(1 << dst.bits) - 1}")
    return out


def _int_to_int(em: KernelEmitter, src: dt.DType, dst: dt.DType, x: str) -> str:
    if dst.bits == 64 and src.bits == 64:
        return x
    if dst.bits == 64:
        out = em.new("rd")
        em.ins(f"cvt.{'s64.s32' if src.is_signed else 'u64.u32'} {out}, {x}")
        return out
    if src.bits == 64:
        t = em.new("r")
        em.ins(f"cvt.u32.u64 {t}, {x}")
        return wrap_int(em, dst, t)
    return wrap_int(em, dst, x)


# ---------------------------------------------------------------------------- f32 math


def fop(em: KernelEmitter, opcode: str, *args) -> str:
    out = em.new("f")
    em.ins(f"{opcode} {out}, {', '.join(args)}")
    return out


def exp_f32(em: KernelEmitter, x: str, scale: str = LOG2E) -> str:
    t = fop(em, "mul.rn.f32", x, scale)
    return fop(em, "ex2.approx.ftz.f32", t)


def reciprocal(em: KernelEmitter, y: str) -> tuple[str, str]:
    """(rcp.rn(y), -y) for `div_by_reciprocal`."""
    return fop(em, "rcp.rn.f32", y), fop(em, "neg.f32", y)


def div_by_reciprocal(em: KernelEmitter, x: str, r: str, ny: str) -> str:
    """x / y given r = rcp.rn(y) and ny = -y: q = x r, then q + (x - q y) r (Markstein's
    step); where q is not finite (y = 0, overflow, NaN) q itself, as div.rn gives."""
    q = fop(em, "mul.rn.f32", x, r)
    e = fop(em, "fma.rn.f32", q, ny, x)
    q1 = fop(em, "fma.rn.f32", e, r, q)
    p, out = em.new("p"), em.new("f")
    em.ins(f"testp.finite.f32 {p}, {q}")
    em.ins(f"selp.f32 {out}, {q1}, {q}, {p}")
    return out


def log_f32(em: KernelEmitter, x: str) -> str:
    t = fop(em, "lg2.approx.ftz.f32", x)
    return fop(em, "mul.rn.f32", t, LN2)


def sigmoid_f32(em: KernelEmitter, x: str) -> str:
    e = exp_f32(em, x, f32_imm(-math.log2(math.e)))
    s = fop(em, "add.rn.f32", e, ONE)
    return fop(em, "rcp.rn.f32", s)


_ERF_TAYLOR = [1.0, -1.0 / 3, 1.0 / 10, -1.0 / 42, 1.0 / 216, -1.0 / 1320, 1.0 / 9360]
_AS_P = 0.3275911
_AS_A = [0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429]


def erf_f32(em: KernelEmitter, x: str) -> str:
    """erf: Taylor series near 0 (good relative accuracy), A&S 7.1.26 elsewhere."""
    x2 = fop(em, "mul.rn.f32", x, x)
    acc = em.new("f")
    em.ins(f"mov.f32 {acc}, {f32_imm(_ERF_TAYLOR[-1])}")
    for c in reversed(_ERF_TAYLOR[:-1]):
        acc = fop(em, "fma.rn.f32", acc, x2, f32_imm(c))
    small = fop(em, "mul.rn.f32", fop(em, "mul.rn.f32", acc, x), f32_imm(2.0 / math.sqrt(math.pi)))
    ax = fop(em, "abs.f32", x)
    t = fop(em, "rcp.rn.f32", fop(em, "fma.rn.f32", ax, f32_imm(_AS_P), ONE))
    poly = em.new("f")
    em.ins(f"mov.f32 {poly}, {f32_imm(_AS_A[-1])}")
    for c in reversed(_AS_A[:-1]):
        poly = fop(em, "fma.rn.f32", poly, t, f32_imm(c))
    poly = fop(em, "mul.rn.f32", poly, t)
    e = exp_f32(em, fop(em, "neg.f32", x2))
    big = fop(em, "fma.rn.f32", fop(em, "neg.f32", poly), e, ONE)   # 1 - poly * exp(-x^2)
    big = fop(em, "copysign.f32", x, big)                           # sign of x
    p, out = em.new("p"), em.new("f")
    em.ins(f"setp.lt.f32 {p}, {ax}, {f32_imm(0.5)}")
    em.ins(f"selp.f32 {out}, {small}, {big}, {p}")
    return out


_TWO_PI_HI = 6.28125                   # exact in few bits: k * hi is exact for |k| < 2^15
_TWO_PI_LO = 2 * math.pi - 6.28125


def sincos_f32(em: KernelEmitter, x: str, which: str) -> str:
    k = fop(em, "mul.rn.f32", x, f32_imm(1.0 / (2 * math.pi)))
    k = fop(em, "cvt.rni.f32.f32", k)
    r = fop(em, "fma.rn.f32", fop(em, "neg.f32", k), f32_imm(_TWO_PI_HI), x)
    r = fop(em, "fma.rn.f32", fop(em, "neg.f32", k), f32_imm(_TWO_PI_LO), r)
    return fop(em, f"{which}.approx.f32", r)


def pow_f32(em: KernelEmitter, x: str, y: str) -> str:
    """C powf: |x|^y via ex2/lg2, negative x only for integer y (odd y keeps the sign)."""
    ax = fop(em, "abs.f32", x)
    r = fop(em, "ex2.approx.ftz.f32", fop(em, "mul.rn.f32", y, fop(em, "lg2.approx.ftz.f32", ax)))
    yint = fop(em, "cvt.rzi.f32.f32", y)
    p_int, p_neg, p_odd, p_one = em.new("p"), em.new("p"), em.new("p"), em.new("p")
    em.ins(f"setp.eq.f32 {p_int}, {yint}, {y}")
    em.ins(f"setp.lt.f32 {p_neg}, {x}, {ZERO}")
    half = fop(em, "mul.rn.f32", y, f32_imm(0.5))
    em.ins(f"setp.neu.f32 {p_odd}, {fop(em, 'cvt.rzi.f32.f32', half)}, {half}")
    em.ins(f"and.pred {p_odd}, {p_odd}, {p_int}")
    em.ins(f"and.pred {p_odd}, {p_odd}, {p_neg}")
    neg = fop(em, "neg.f32", r)
    out = em.new("f")
    em.ins(f"selp.f32 {out}, {neg}, {r}, {p_odd}")        # x < 0, odd integer y: negative
    nan = em.new("p")
    em.ins(f"not.pred {nan}, {p_int}")
    em.ins(f"and.pred {nan}, {nan}, {p_neg}")              # x < 0, y not an integer: NaN
    em.ins(f"selp.f32 {out}, 0f7FC00000, {out}, {nan}")
    em.ins(f"setp.eq.f32 {p_one}, {y}, {ZERO}")            # x ** 0 == 1 (also for NaN x)
    em.ins(f"selp.f32 {out}, {ONE}, {out}, {p_one}")
    em.ins(f"setp.eq.f32 {p_one}, {x}, {ONE}")             # 1 ** y == 1 (also for NaN y)
    em.ins(f"selp.f32 {out}, {ONE}, {out}, {p_one}")
    return out


_HALF = {dt.float16: "f16", dt.bfloat16: "bf16"}


def st_global_f32_pair(em: KernelEmitter, d: dt.DType, addr: str, lo: str, hi: str) -> None:
    """Store two adjacent f32 accumulator values at `addr` (an address expression) as `d`:
    `st.global.v2.f32`, or one `cvt.rn.{f16,bf16}x2.f32` and a 32-bit store."""
    if d is dt.float32:
        em.ins(f"st.global.v2.f32 [{addr}], {{{lo}, {hi}}}")
        return
    packed = em.new("r")
    em.ins(f"cvt.rn.{_HALF[d]}x2.f32 {packed}, {hi}, {lo}")
    em.ins(f"st.global.b32 [{addr}], {packed}")


def st_global_f32_as(em: KernelEmitter, d: dt.DType, addr: str, x: str, pred: str) -> None:
    """Store one f32 value at `addr` as `d` (f32, f16 or bf16, rounded to nearest even)
    where `pred` holds."""
    if d is dt.float32:
        em.ins(f"@{pred} st.global.f32 [{addr}], {x}")
        return
    h = em.new("h")
    em.ins(f"cvt.rn.{_HALF[d]}.f32 {h}, {x}")
    em.ins(f"@{pred} st.global.b16 [{addr}], {h}")
