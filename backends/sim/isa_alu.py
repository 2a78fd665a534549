"""Integer, float, logic, compare, select, conversion and math instructions.

Float arithmetic is computed in float64 and rounded once into the instruction's type with its
rounding mode (exact for f32/f16/bf16 add/sub/mul/div/sqrt, see ptx_types).  ``fma``/``mad`` of
f32 rounds a*b+c from float64: it may differ from a true fused result in the last ulp in rare
double-rounding cases.  ``.approx`` functions (ex2, lg2, sin, cos, tanh, rsqrt, rcp, sqrt,
div.approx / div.full) are computed exactly, then rounded: the hardware approximations differ
from that by up to their documented bounds (PTX ISA): ex2.approx.f32 2 ulp (+ ftz),
lg2.approx.f32 2^-22.6 absolute, sin/cos.approx.f32 2^-20.5 absolute in [-pi, pi],
tanh.approx.f32 2^-10.987 relative, rsqrt.approx.f32 2^-22.9 relative, rcp/sqrt.approx.f32
1 ulp, div.full.f32 2 ulp; tanh.approx.f16/bf16 and ex2.approx.f16 are rounded from the exact value.
"""

from __future__ import annotations

import numpy as np

from .machine import handler
from .ptx_types import SINT, UINT, convert_float, decode, flush_subnormal, is_type_name, ptx_type, round_to

F64 = np.float64
_ROUND = ("rn", "rz", "rm", "rp", "rna")
_IROUND = ("rni", "rzi", "rmi", "rpi")


def itype(ins):
    """The instruction's (last) type modifier."""
    d = ins.data
    if d is None:
        ts = [m for m in ins.mods[1:] if is_type_name(m)]
        if not ts:
            raise ValueError(f"{ins.where()}: no type in `{ins.opcode}`")
        d = ins.data = ptx_type(ts[-1])
    return d


def rmode(ins, default="rn"):
    for m in ins.mods[1:]:
        if m in _ROUND:
            return m
    return default


def has(ins, mod: str) -> bool:
    return mod in ins.mods


# ---------------------------------------------------------------------- float helpers

_HALF = {"f16x2": "f16", "bf16x2": "bf16"}


def fget(cta, op, t):
    """Operand as float64 (a packed x2 type gives an array of shape (2, T): lo, hi)."""
    if t.name in _HALF:
        raw = cta.get(op, ptx_type("b32")).astype(np.uint32)
        lo = (raw & np.uint32(0xFFFF)).astype(np.uint16)
        hi = (raw >> np.uint32(16)).astype(np.uint16)
        h = _HALF[t.name]
        return np.stack([decode(np.atleast_1d(lo), h), decode(np.atleast_1d(hi), h)])
    return np.asarray(cta.get(op, t)).astype(F64)


def fput(cta, op, t, x, mode="rn", ftz=False, sat=False, relu=False):
    """Round float64 ``x`` into type ``t`` and write it."""
    if sat:
        x = np.where(np.isnan(x), 0.0, np.clip(x, 0.0, 1.0))
    if relu:
        x = np.where(np.isnan(x), x, np.maximum(x, 0.0))
    if t.name in _HALF:
        h = _HALF[t.name]
        lo = round_to(x[0], h, mode).view(np.uint16).astype(np.uint32)
        hi = round_to(x[1], h, mode).view(np.uint16).astype(np.uint32)
        cta.set(op, ptx_type("b32"), (hi << np.uint32(16)) | lo)
        return
    if ftz and t.name == "f32":
        x = flush_subnormal(x)
    y = round_to(x, t.name, mode)
    if ftz and t.name == "f32":
        y = flush_subnormal(y).astype(np.float32)
    cta.set(op, t, y)


def _fin(cta, ins, t, op):
    x = fget(cta, op, t)
    if has(ins, "ftz") and t.name == "f32":
        x = flush_subnormal(x)
    return x


# ---------------------------------------------------------------------- integer helpers

def _wide(t, signed=None):
    s = t.kind == "s" if signed is None else signed
    return SINT[t.bits * 2] if s else UINT[t.bits * 2]


def _mulhi64(a, b, signed):
    """High 64 bits of a 64x64 product, via Python ints (object arrays)."""
    a_o = np.asarray(a).astype(object)
    b_o = np.asarray(b).astype(object)
    p = a_o * b_o
    hi = np.vectorize(lambda v: (int(v) >> 64) & (2 ** 64 - 1), otypes=[object])(p)
    out = np.array(hi, dtype=np.uint64) if np.ndim(hi) else np.uint64(hi)
    return out.view(np.int64) if signed else out


def _clamp(x, t):
    info = np.iinfo(t.np)
    return np.clip(x, info.min, info.max).astype(t.np)


# ---------------------------------------------------------------------- mov

@handler("mov")
def op_mov(cta, ins):
    t = itype(ins)
    d, a = ins.ops[0], ins.ops[1]
    if a[0] == "vec":                       # pack
        n = len(a[1])
        w = t.bits // n
        out = np.zeros(cta.T, UINT[t.bits])
        for i, e in enumerate(a[1]):
            v = np.asarray(cta.get_raw(e, w)).astype(UINT[t.bits])
            out |= v << UINT[t.bits](w * i)
        cta.set(d, ptx_type(f"b{t.bits}"), out)
        return
    if d[0] == "vec":                       # unpack
        n = len(d[1])
        w = t.bits // n
        v = np.asarray(cta.get_raw(a, t.bits))
        for i, e in enumerate(d[1]):
            part = (v >> UINT[t.bits](w * i)) & UINT[t.bits]((1 << w) - 1)
            cta.set(e, ptx_type(f"b{w}"), part.astype(UINT[w]))
        return
    if t.kind == "pred":
        cta.set(d, t, cta.get(a, t))
        return
    cta.set(d, t, np.asarray(cta.get(a, t)))


# ---------------------------------------------------------------------- add / sub / mul / mad / fma

def _int_binop(cta, ins, fn):
    t = itype(ins)
    a = cta.get(ins.ops[1], t)
    b = cta.get(ins.ops[2], t)
    if has(ins, "sat"):
        r = _clamp(fn(np.asarray(a).astype(np.int64), np.asarray(b).astype(np.int64)), t)
    else:
        r = fn(np.asarray(a), np.asarray(b)).astype(t.np)
    cta.set(ins.ops[0], t, r)


def _float_binop(cta, ins, fn):
    t = itype(ins)
    a = _fin(cta, ins, t, ins.ops[1])
    b = _fin(cta, ins, t, ins.ops[2])
    fput(cta, ins.ops[0], t, fn(a, b), rmode(ins), has(ins, "ftz"), has(ins, "sat"), has(ins, "relu"))


def _is_float(t):
    return t.kind == "f" or t.name in _HALF


@handler("add")
def op_add(cta, ins):
    t = itype(ins)
    if _is_float(t):
        _float_binop(cta, ins, np.add)
    else:
        _int_binop(cta, ins, np.add)


@handler("sub")
def op_sub(cta, ins):
    t = itype(ins)
    if _is_float(t):
        _float_binop(cta, ins, np.subtract)
    else:
        _int_binop(cta, ins, np.subtract)


@handler("mul")
def op_mul(cta, ins):
    t = itype(ins)
    if _is_float(t):
        _float_binop(cta, ins, np.multiply)
        return
    a = np.asarray(cta.get(ins.ops[1], t))
    b = np.asarray(cta.get(ins.ops[2], t))
    cta.set(*_int_mul(ins, t, a, b))


def _int_mul(ins, t, a, b):
    d = ins.ops[0]
    signed = t.kind == "s"
    if has(ins, "wide"):
        wt = ptx_type(("s" if signed else "u") + str(t.bits * 2))
        return d, wt, a.astype(wt.np) * b.astype(wt.np)
    if has(ins, "hi"):
        if t.bits == 64:
            return d, t, _mulhi64(a, b, signed).astype(t.np)
        p = a.astype(_wide(t)) * b.astype(_wide(t))
        return d, t, (p >> t.bits).astype(t.np)
    return d, t, (a * b).astype(t.np)


@handler("mul24")
def op_mul24(cta, ins):
    t = itype(ins)
    a = np.asarray(cta.get(ins.ops[1], t)).astype(np.int64)
    b = np.asarray(cta.get(ins.ops[2], t)).astype(np.int64)
    a24 = ((a << 40) >> 40) if t.kind == "s" else a & 0xFFFFFF
    b24 = ((b << 40) >> 40) if t.kind == "s" else b & 0xFFFFFF
    p = a24 * b24
    r = (p >> 16) if has(ins, "hi") else p
    cta.set(ins.ops[0], t, (r & 0xFFFFFFFF).astype(np.uint32).view(t.np) if t.kind == "s" else (r & 0xFFFFFFFF).astype(t.np))


@handler("mad", "fma")
def op_mad(cta, ins):
    t = itype(ins)
    if _is_float(t):
        a = _fin(cta, ins, t, ins.ops[1])
        b = _fin(cta, ins, t, ins.ops[2])
        c = _fin(cta, ins, t, ins.ops[3])
        fput(cta, ins.ops[0], t, a * b + c, rmode(ins), has(ins, "ftz"), has(ins, "sat"), has(ins, "relu"))
        return
    a = np.asarray(cta.get(ins.ops[1], t))
    b = np.asarray(cta.get(ins.ops[2], t))
    d, rt, p = _int_mul(ins, t, a, b)
    c = np.asarray(cta.get(ins.ops[3], rt))
    if has(ins, "sat"):
        r = _clamp(p.astype(np.int64) + c.astype(np.int64), rt)
    else:
        r = (p + c).astype(rt.np)
    cta.set(d, rt, r)


@handler("mad24")
def op_mad24(cta, ins):
    t = itype(ins)
    a = np.asarray(cta.get(ins.ops[1], t)).astype(np.int64) & 0xFFFFFF
    b = np.asarray(cta.get(ins.ops[2], t)).astype(np.int64) & 0xFFFFFF
    c = np.asarray(cta.get(ins.ops[3], t)).astype(np.int64)
    cta.set(ins.ops[0], t, ((a * b + c) & 0xFFFFFFFF).astype(np.uint32).view(t.np))


# ---------------------------------------------------------------------- div / rem

def _int_divrem(a, b, t):
    """C semantics: quotient truncates toward zero.  Division by zero (undefined in PTX) gives
    all-ones for the quotient and the dividend for the remainder."""
    a64 = a.astype(np.int64) if t.bits < 64 or t.kind == "s" else a.astype(np.uint64)
    b64 = b.astype(a64.dtype)
    zero = b64 == 0
    bs = np.where(zero, 1, b64).astype(a64.dtype)
    if t.kind == "s":
        q = np.abs(a64) // np.abs(bs)
        q = np.where((a64 < 0) != (bs < 0), -q, q)
        if t.bits == 64:
            q = q.astype(np.int64)
    else:
        q = a64 // bs
    r = a64 - q * bs
    q = np.where(zero, -1 if t.kind == "s" else np.iinfo(t.np).max, q)
    r = np.where(zero, a64, r)
    return q.astype(np.int64).astype(t.np) if t.kind == "s" else q.astype(t.np), r.astype(t.np)


@handler("div")
def op_div(cta, ins):
    t = itype(ins)
    if _is_float(t):
        _float_binop(cta, ins, np.divide)
        return
    a = np.asarray(cta.get(ins.ops[1], t))
    b = np.asarray(cta.get(ins.ops[2], t))
    q, _ = _int_divrem(np.broadcast_to(a, (cta.T,)), np.broadcast_to(b, (cta.T,)), t)
    cta.set(ins.ops[0], t, q)


@handler("rem")
def op_rem(cta, ins):
    t = itype(ins)
    a = np.asarray(cta.get(ins.ops[1], t))
    b = np.asarray(cta.get(ins.ops[2], t))
    _, r = _int_divrem(np.broadcast_to(a, (cta.T,)), np.broadcast_to(b, (cta.T,)), t)
    cta.set(ins.ops[0], t, r)


# ---------------------------------------------------------------------- min / max / neg / abs

def _fminmax(xs, is_max, nan_prop):
    out = xs[0]
    for y in xs[1:]:
        if nan_prop:
            out = np.maximum(out, y) if is_max else np.minimum(out, y)
        else:
            out = np.fmax(out, y) if is_max else np.fmin(out, y)
            # -0 < +0 for min/max
            both0 = (out == 0) & (y == 0)
            if both0.any():
                s = np.signbit(out) & np.signbit(y) if is_max else np.signbit(out) | np.signbit(y)
                out = np.where(both0, np.where(s, -0.0, 0.0), out)
    return out


@handler("min", "max")
def op_minmax(cta, ins):
    t = itype(ins)
    is_max = ins.head == "max"
    srcs = ins.ops[1:]
    if _is_float(t):
        xs = [_fin(cta, ins, t, o) for o in srcs]
        fput(cta, ins.ops[0], t, _fminmax(xs, is_max, has(ins, "NaN")), "rn", has(ins, "ftz"), relu=has(ins, "relu"))
        return
    xs = [np.asarray(cta.get(o, t)) for o in srcs]
    out = xs[0]
    for y in xs[1:]:
        out = np.maximum(out, y) if is_max else np.minimum(out, y)
    if has(ins, "relu"):
        out = np.maximum(out, 0)
    cta.set(ins.ops[0], t, np.asarray(out).astype(t.np))


def _fbits_op(cta, ins, fn):
    """neg/abs of floats on the sign bit (keeps NaN payloads and signed zeros)."""
    t = itype(ins)
    if t.name in _HALF:
        raw = np.asarray(cta.get(ins.ops[1], ptx_type("b32")))
        cta.set(ins.ops[0], ptx_type("b32"), fn(raw, np.uint32(0x80008000)))
        return
    raw = np.asarray(cta.get(ins.ops[1], ptx_type(f"b{t.bits}")))
    if has(ins, "ftz") and t.name == "f32":
        x = raw.view(np.float32)
        raw = flush_subnormal(x).astype(np.float32).view(np.uint32)
    sign = UINT[t.bits](1 << (t.bits - 1))
    cta.set(ins.ops[0], ptx_type(f"b{t.bits}"), fn(raw, sign))


@handler("neg")
def op_neg(cta, ins):
    t = itype(ins)
    if _is_float(t):
        _fbits_op(cta, ins, lambda r, s: r ^ s)
        return
    a = np.asarray(cta.get(ins.ops[1], t))
    cta.set(ins.ops[0], t, (-a.astype(np.int64)).astype(t.np) if t.bits < 64 else (~a + t.np(1)).astype(t.np))


@handler("abs")
def op_abs(cta, ins):
    t = itype(ins)
    if _is_float(t):
        _fbits_op(cta, ins, lambda r, s: r & ~s)
        return
    a = np.asarray(cta.get(ins.ops[1], t))
    cta.set(ins.ops[0], t, np.abs(a).astype(t.np))


@handler("copysign")
def op_copysign(cta, ins):
    t = itype(ins)
    a = np.asarray(cta.get(ins.ops[1], t))
    b = np.asarray(cta.get(ins.ops[2], t))
    cta.set(ins.ops[0], t, np.copysign(b, a).astype(t.np))


# ---------------------------------------------------------------------- logic / shifts / bits

def _logic(cta, ins, fn):
    t = itype(ins)
    tt = t if t.kind == "pred" else ptx_type(f"b{t.bits}")
    xs = [np.asarray(cta.get(o, tt)) for o in ins.ops[1:]]
    cta.set(ins.ops[0], tt, fn(*xs))


@handler("and")
def op_and(cta, ins):
    _logic(cta, ins, lambda a, b: a & b)


@handler("or")
def op_or(cta, ins):
    _logic(cta, ins, lambda a, b: a | b)


@handler("xor")
def op_xor(cta, ins):
    _logic(cta, ins, lambda a, b: a ^ b)


@handler("not")
def op_not(cta, ins):
    _logic(cta, ins, lambda a: ~a)


@handler("cnot")
def op_cnot(cta, ins):
    t = itype(ins)
    a = np.asarray(cta.get(ins.ops[1], t))
    cta.set(ins.ops[0], t, (a == 0).astype(t.np))


@handler("lop3")
def op_lop3(cta, ins):
    t = ptx_type("b32") if itype(ins).bits == 32 else itype(ins)
    a, b, c = (np.asarray(cta.get(o, t)) for o in ins.ops[1:4])
    lut = int(np.asarray(cta.get(ins.ops[4], ptx_type("u32"))))
    out = np.zeros(np.broadcast(a, b, c).shape, t.np)
    ones = t.np(~0 & ((1 << t.bits) - 1))
    for i in range(8):
        if lut >> i & 1:
            ma = a if i & 4 else ~a & ones
            mb = b if i & 2 else ~b & ones
            mc = c if i & 1 else ~c & ones
            out |= ma & mb & mc
    if len(ins.ops) > 5:
        raise cta.error("lop3 with a predicate output is not simulated")
    cta.set(ins.ops[0], t, out)


def _shift_amount(cta, op, bits):
    s = np.asarray(cta.get(op, ptx_type("u32"))).astype(np.uint64)
    return np.minimum(s, bits)


@handler("shl")
def op_shl(cta, ins):
    t = itype(ins)
    a = np.asarray(cta.get(ins.ops[1], ptx_type(f"b{t.bits}"))).astype(np.uint64)
    s = _shift_amount(cta, ins.ops[2], t.bits)
    mask = np.uint64((1 << t.bits) - 1) if t.bits < 64 else np.uint64(2 ** 64 - 1)
    r = np.where(s >= t.bits, np.uint64(0), (a << np.minimum(s, 63)) & mask)
    cta.set(ins.ops[0], ptx_type(f"b{t.bits}"), r.astype(UINT[t.bits]))


@handler("shr")
def op_shr(cta, ins):
    t = itype(ins)
    s = _shift_amount(cta, ins.ops[2], t.bits)
    if t.kind == "s":
        a = np.asarray(cta.get(ins.ops[1], t)).astype(np.int64)
        r = a >> np.minimum(s, 63).astype(np.int64)
        cta.set(ins.ops[0], t, r.astype(t.np))
    else:
        a = np.asarray(cta.get(ins.ops[1], ptx_type(f"b{t.bits}"))).astype(np.uint64)
        r = np.where(s >= t.bits, np.uint64(0), a >> np.minimum(s, 63))
        cta.set(ins.ops[0], ptx_type(f"b{t.bits}"), r.astype(UINT[t.bits]))


@handler("shf")
def op_shf(cta, ins):
    u = ptx_type("u32")
    a = np.asarray(cta.get(ins.ops[1], u)).astype(np.uint64)
    b = np.asarray(cta.get(ins.ops[2], u)).astype(np.uint64)
    c = np.asarray(cta.get(ins.ops[3], u)).astype(np.uint64)
    n = c & np.uint64(31) if has(ins, "wrap") else np.minimum(c, 32)
    x = (b << np.uint64(32)) | a
    if has(ins, "l"):
        r = ((x << n) >> np.uint64(32)) & np.uint64(0xFFFFFFFF)
    else:
        r = (x >> n) & np.uint64(0xFFFFFFFF)
    cta.set(ins.ops[0], ptx_type("b32"), r.astype(np.uint32))


@handler("bfe")
def op_bfe(cta, ins):
    t = itype(ins)
    a = np.asarray(cta.get(ins.ops[1], ptx_type(f"b{t.bits}"))).astype(np.uint64)
    pos = np.asarray(cta.get(ins.ops[2], ptx_type("u32"))).astype(np.int64) & 0xFF
    ln = np.asarray(cta.get(ins.ops[3], ptx_type("u32"))).astype(np.int64) & 0xFF
    bits = t.bits
    pos_c = np.minimum(pos, bits)
    ln_c = np.minimum(ln, bits)
    field = a >> pos_c.astype(np.uint64)
    m = np.where(ln_c >= 64, np.uint64(2 ** 64 - 1), (np.uint64(1) << ln_c.astype(np.uint64)) - np.uint64(1))
    v = field & m
    if t.kind == "s":
        sbit_pos = np.minimum(pos + ln - 1, bits - 1)
        sbit = (a >> sbit_pos.astype(np.uint64)) & np.uint64(1)
        sbit = np.where(ln == 0, np.uint64(0), sbit)
        ext = np.where((sbit == 1) & (ln_c < bits), ~m, np.uint64(0))
        v = v | ext
    v = np.where(ln == 0, np.uint64(0), v)
    cta.set(ins.ops[0], ptx_type(f"b{bits}"), (v & np.uint64((1 << bits) - 1 if bits < 64 else 2 ** 64 - 1)).astype(UINT[bits]))


@handler("bfi")
def op_bfi(cta, ins):
    t = itype(ins)
    bt = ptx_type(f"b{t.bits}")
    a = np.asarray(cta.get(ins.ops[1], bt)).astype(np.uint64)
    b = np.asarray(cta.get(ins.ops[2], bt)).astype(np.uint64)
    pos = np.asarray(cta.get(ins.ops[3], ptx_type("u32"))).astype(np.uint64) & np.uint64(0xFF)
    ln = np.asarray(cta.get(ins.ops[4], ptx_type("u32"))).astype(np.uint64) & np.uint64(0xFF)
    m = np.where(ln >= 64, np.uint64(2 ** 64 - 1), (np.uint64(1) << np.minimum(ln, 63)) - np.uint64(1))
    m = np.where(pos >= t.bits, np.uint64(0), m << np.minimum(pos, 63))
    r = (b & ~m) | ((a << np.minimum(pos, 63)) & m)
    cta.set(ins.ops[0], bt, (r & np.uint64((1 << t.bits) - 1 if t.bits < 64 else 2 ** 64 - 1)).astype(UINT[t.bits]))


@handler("prmt")
def op_prmt(cta, ins):
    u = ptx_type("b32")
    a = np.asarray(cta.get(ins.ops[1], u)).astype(np.uint64)
    b = np.asarray(cta.get(ins.ops[2], u)).astype(np.uint64)
    c = np.asarray(cta.get(ins.ops[3], u)).astype(np.uint64)
    x = (b << np.uint64(32)) | a
    mode = next((m for m in ins.mods[1:] if m in ("f4e", "b4e", "rc8", "ecl", "ecr", "rc16")), None)
    if mode is not None:
        raise cta.error(f"prmt.{mode} is not simulated")
    out = np.zeros(np.broadcast(a, b, c).shape, np.uint64)
    for i in range(4):
        sel = (c >> np.uint64(4 * i)) & np.uint64(0xF)
        byte = (x >> ((sel & np.uint64(7)) * np.uint64(8))) & np.uint64(0xFF)
        sign = np.where(sel & np.uint64(8), np.where(byte & np.uint64(0x80), np.uint64(0xFF), np.uint64(0)), byte)
        out |= sign << np.uint64(8 * i)
    cta.set(ins.ops[0], u, out.astype(np.uint32))


@handler("popc")
def op_popc(cta, ins):
    t = itype(ins)
    a = np.asarray(cta.get(ins.ops[1], ptx_type(f"b{t.bits}"))).astype(np.uint64)
    cnt = np.zeros(a.shape, np.uint32)
    for i in range(t.bits):
        cnt += ((a >> np.uint64(i)) & np.uint64(1)).astype(np.uint32)
    cta.set(ins.ops[0], ptx_type("u32"), cnt)


@handler("clz")
def op_clz(cta, ins):
    t = itype(ins)
    a = np.asarray(cta.get(ins.ops[1], ptx_type(f"b{t.bits}"))).astype(np.uint64)
    n = np.full(a.shape, t.bits, np.uint32)
    for i in range(t.bits):
        hit = ((a >> np.uint64(i)) & np.uint64(1)) == 1
        n = np.where(hit, np.uint32(t.bits - 1 - i), n)
    cta.set(ins.ops[0], ptx_type("u32"), n)


@handler("brev")
def op_brev(cta, ins):
    t = itype(ins)
    a = np.asarray(cta.get(ins.ops[1], ptx_type(f"b{t.bits}"))).astype(np.uint64)
    r = np.zeros(a.shape, np.uint64)
    for i in range(t.bits):
        r |= ((a >> np.uint64(i)) & np.uint64(1)) << np.uint64(t.bits - 1 - i)
    cta.set(ins.ops[0], ptx_type(f"b{t.bits}"), r.astype(UINT[t.bits]))


@handler("bfind")
def op_bfind(cta, ins):
    t = itype(ins)
    a = np.asarray(cta.get(ins.ops[1], t))
    x = a.astype(np.int64) if t.kind == "s" else a.astype(np.uint64)
    if t.kind == "s":
        x = np.where(x < 0, ~x, x).astype(np.uint64)
    n = np.full(np.shape(x), 0xFFFFFFFF, np.uint32)
    for i in range(t.bits):
        hit = ((x >> np.uint64(i)) & np.uint64(1)) == 1
        n = np.where(hit, np.uint32(i), n)
    if has(ins, "shiftamt"):
        n = np.where(n == 0xFFFFFFFF, n, np.uint32(t.bits - 1) - n)
    cta.set(ins.ops[0], ptx_type("u32"), n)


# ---------------------------------------------------------------------- compare / select

_CMP = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b, "lo": lambda a, b: a < b, "ls": lambda a, b: a <= b,
    "hi": lambda a, b: a > b, "hs": lambda a, b: a >= b,
}


def compare(cta, ins, cmp, t, a_op, b_op):
    if _is_float(t):
        a = _fin(cta, ins, t, a_op)
        b = _fin(cta, ins, t, b_op)
        nan = np.isnan(a) | np.isnan(b)
        if cmp == "num":
            return ~nan
        if cmp == "nan":
            return nan
        if cmp.endswith("u") and cmp[:-1] in _CMP:
            return _CMP[cmp[:-1]](a, b) | nan
        r = _CMP[cmp](a, b)
        return r & ~nan if cmp != "ne" else r & ~nan
    a = np.asarray(cta.get(a_op, t))
    b = np.asarray(cta.get(b_op, t))
    return _CMP[cmp](a, b)


@handler("setp")
def op_setp(cta, ins):
    t = itype(ins)
    cmp = ins.mods[1]
    boolop = ins.mods[2] if ins.mods[2] in ("and", "or", "xor") else None
    r = compare(cta, ins, cmp, t, ins.ops[1], ins.ops[2])
    if t.name in _HALF:
        raise cta.error("setp on packed .f16x2/.bf16x2 (two predicates) is not simulated")
    P = ptx_type("pred")
    r = np.broadcast_to(r, (cta.T,))
    q = ~r
    if boolop is not None:
        c = np.asarray(cta.get(ins.ops[3], P))
        f = {"and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor}[boolop]
        r, q = f(r, c), f(q, c)
    d = ins.ops[0]
    if d[0] == "pair":
        cta.set(d[1], P, r)
        cta.set(d[2], P, q)
    else:
        cta.set(d, P, r)


@handler("set")
def op_set(cta, ins):
    dt = ptx_type(ins.mods[-2])
    st = ptx_type(ins.mods[-1])
    cmp = ins.mods[1]
    boolop = ins.mods[2] if ins.mods[2] in ("and", "or", "xor") else None
    r = np.broadcast_to(compare(cta, ins, cmp, st, ins.ops[1], ins.ops[2]), (cta.T,))
    if boolop is not None:
        c = np.asarray(cta.get(ins.ops[3], ptx_type("pred")))
        r = {"and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor}[boolop](r, c)
    if dt.kind == "f":
        cta.set(ins.ops[0], dt, np.where(r, 1.0, 0.0).astype(dt.np))
    else:
        cta.set(ins.ops[0], ptx_type(f"b{dt.bits}"), np.where(r, UINT[dt.bits](~0 & ((1 << dt.bits) - 1)), UINT[dt.bits](0)))


@handler("selp")
def op_selp(cta, ins):
    t = itype(ins)
    a = cta.get(ins.ops[1], t)
    b = cta.get(ins.ops[2], t)
    c = cta.get(ins.ops[3], ptx_type("pred"))
    cta.set(ins.ops[0], t, np.where(c, a, b).astype(t.np))


@handler("slct")
def op_slct(cta, ins):
    dt = ptx_type(ins.mods[-2])
    ct = ptx_type(ins.mods[-1])
    a = cta.get(ins.ops[1], dt)
    b = cta.get(ins.ops[2], dt)
    c = np.asarray(cta.get(ins.ops[3], ct))
    cta.set(ins.ops[0], dt, np.where(c >= 0, a, b).astype(dt.np))


@handler("testp")
def op_testp(cta, ins):
    t = itype(ins)
    x = np.asarray(cta.get(ins.ops[1], t)).astype(F64)
    kind = ins.mods[1]
    tiny = float(np.finfo(t.np).tiny)
    r = {"finite": np.isfinite(x), "infinite": np.isinf(x), "number": ~np.isnan(x), "notanumber": np.isnan(x),
         "normal": np.isfinite(x) & (np.abs(x) >= tiny), "subnormal": (x != 0) & (np.abs(x) < tiny)}[kind]
    cta.set(ins.ops[0], ptx_type("pred"), r)


# ---------------------------------------------------------------------- cvt / cvta

_PACKED_DST = {"f16x2": "f16", "bf16x2": "bf16", "e4m3x2": "e4m3", "e5m2x2": "e5m2", "e2m1x2": "e2m1",
               "e2m3x2": "e2m3", "e3m2x2": "e3m2", "ue8m0x2": "ue8m0"}


def _int_from_float(x, t, mode):
    r = {"rni": np.rint, "rzi": np.trunc, "rmi": np.floor, "rpi": np.ceil}.get(mode, np.trunc)(x)
    info = np.iinfo(t.np)
    r = np.where(np.isnan(r), 0, np.clip(r, info.min, info.max))
    if t.bits == 64 and t.kind == "u":
        big = r >= 2.0 ** 63                      # above int64: convert the excess separately
        low = np.where(big, r - 2.0 ** 63, r).astype(np.int64).astype(np.uint64)
        return np.where(big, low + np.uint64(2 ** 63), low).astype(np.uint64)
    return r.astype(np.int64).astype(t.np)


@handler("cvt")
def op_cvt(cta, ins):
    mods = ins.mods[1:]
    types = [m for m in mods if is_type_name(m) or m in _PACKED_DST or m in ("e2m1x2", "e4m3x2", "e5m2x2", "ue8m0x2")]
    if len(types) != 2:
        raise cta.error("cvt needs a destination and a source type")
    dname, sname = types
    rnd = next((m for m in mods if m in _ROUND or m in _IROUND), None)
    sat = "sat" in mods
    satf = "satfinite" in mods
    relu = "relu" in mods
    ftz = "ftz" in mods
    d = ins.ops[0]
    # packed destinations: cvt.rn.f16x2.f32 d, a, b  (a -> upper half) ; cvt.rn.satfinite.e4m3x2.f32 ; e2m1x2
    if sname in _PACKED_DST and sname not in ("f16x2", "bf16x2"):     # unpack: cvt.rn.f16x2.e4m3x2 d, a / cvt.rn.bf16x2.ue8m0x2
        fmt = _PACKED_DST[sname]
        if dname not in ("f16x2", "bf16x2"):
            raise cta.error(f"cvt.{dname}.{sname} is not simulated")
        w = 4 if fmt == "e2m1" else 8
        src = np.asarray(cta.get(ins.ops[1], ptx_type("b8" if w == 4 else "b16"))).astype(np.uint32)
        lo = decode((src & np.uint32((1 << w) - 1)).astype(np.uint8), fmt)
        hi = decode(((src >> np.uint32(w)) & np.uint32((1 << w) - 1)).astype(np.uint8), fmt)
        if relu:
            lo, hi = np.maximum(lo, 0), np.maximum(hi, 0)
        fput(cta, d, ptx_type(dname), np.stack([np.atleast_1d(lo), np.atleast_1d(hi)]), "rn")
        return
    if dname in _PACKED_DST:
        fmt = _PACKED_DST[dname]
        if sname in ("f32",):
            a = np.asarray(cta.get(ins.ops[1], ptx_type("f32"))).astype(F64)
            b = np.asarray(cta.get(ins.ops[2], ptx_type("f32"))).astype(F64)
        elif sname in ("f16x2", "bf16x2"):
            pair = fget(cta, ins.ops[1], ptx_type(sname))
            a, b = pair[1], pair[0]
        else:
            raise cta.error(f"cvt.{dname}.{sname} is not simulated")
        hi = convert_float(a, fmt, rnd or "rn", satfinite=satf, relu=relu)
        lo = convert_float(b, fmt, rnd or "rn", satfinite=satf, relu=relu)
        w = 16 if fmt in ("f16", "bf16") else (4 if fmt == "e2m1" else 8)
        hb = hi.view(UINT[max(w, 8)]).astype(np.uint32)
        lb = lo.view(UINT[max(w, 8)]).astype(np.uint32)
        out = (hb << np.uint32(w)) | lb
        cta.set(d, ptx_type(f"b{2 * w if w >= 8 else 8}"), out.astype(UINT[2 * w if w >= 8 else 8]))
        return
    dt = ptx_type(dname)
    st = ptx_type(sname)
    if st.kind == "f":
        x = np.asarray(cta.get(ins.ops[1], st)).astype(F64)
        if ftz:
            x = flush_subnormal(x)
        if dt.kind == "f":
            if rnd in _IROUND:
                x = {"rni": np.rint, "rzi": np.trunc, "rmi": np.floor, "rpi": np.ceil}[rnd](x)
                y = round_to(x, dt.name, "rn")
            else:
                y = convert_float(x, dt.name, rnd or "rn", satfinite=satf, relu=relu, ftz=ftz)
                if sat:
                    y = np.where(np.isnan(y), 0, np.clip(y.astype(F64), 0, 1)).astype(dt.np)
            if ftz and dt.name == "f32":
                y = flush_subnormal(y).astype(np.float32)
            cta.set(d, dt, y)
            return
        cta.set(d, dt, _int_from_float(x, dt, rnd or "rzi"))
        return
    # integer source
    a = np.asarray(cta.get(ins.ops[1], st))
    if dt.kind == "f":
        x = a.astype(F64)       # exact below 2^53; larger 64-bit ints round twice
        cta.set(d, dt, convert_float(x, dt.name, rnd or "rn", satfinite=satf))
        return
    if sat:
        info = np.iinfo(dt.np)
        wide = a.astype(np.int64) if a.dtype != np.uint64 else a
        r = np.clip(wide, info.min, info.max) if a.dtype != np.uint64 else np.minimum(a, np.uint64(info.max))
        cta.set(d, dt, np.asarray(r).astype(dt.np))
        return
    # plain int -> int: sign/zero extension comes from the source type, then truncation
    if st.bits < dt.bits:
        r = a.astype(SINT[dt.bits] if st.kind == "s" else UINT[dt.bits])
        cta.set(d, ptx_type(f"b{dt.bits}"), r.view(UINT[dt.bits]))
    else:
        r = a.astype(UINT[st.bits]) if a.dtype.kind == "i" else a
        r = r.view(UINT[st.bits]) if r.dtype.itemsize * 8 == st.bits else r
        cta.set(d, ptx_type(f"b{dt.bits}"), np.asarray(r).astype(UINT[dt.bits]))


@handler("cvta")
def op_cvta(cta, ins):
    from .memory import CONST_WINDOW, LOCAL_WINDOW, PARAM_WINDOW, SHARED_WINDOW
    to = "to" in ins.mods
    space = next(m.split("::")[0] for m in ins.mods[1:] if m.split("::")[0] in ("global", "shared", "local", "param", "const"))
    t = itype(ins)
    a = np.asarray(cta.get(ins.ops[1], t)).astype(np.uint64)
    base = {"global": 0, "shared": SHARED_WINDOW, "local": LOCAL_WINDOW, "param": PARAM_WINDOW, "const": CONST_WINDOW}[space]
    if base == 0:
        r = a
    elif to:
        inwin = (a >= np.uint64(base)) & (a < np.uint64(base + (1 << 40)))
        m = cta.mask
        if not np.broadcast_to(inwin, (cta.T,))[m].all():
            k = int(np.argmax(m & ~np.broadcast_to(inwin, (cta.T,))))
            raise cta.error(f"cvta.to.{space}: address {int(np.broadcast_to(a, (cta.T,))[k]):#x} is not a "
                            f"generic .{space} address", k)
        r = a - np.uint64(base)
    else:
        r = a + np.uint64(base)
    cta.set(ins.ops[0], t, r.astype(t.np))


@handler("isspacep")
def op_isspacep(cta, ins):
    space = ins.mods[1].split("::")[0]
    a = np.asarray(cta.get(ins.ops[1], ptx_type("u64"))).astype(np.uint64)
    win = a >> np.uint64(40)
    r = {"global": win >= 16, "shared": win == 1, "local": win == 2, "param": win == 3, "const": win == 4}[space]
    cta.set(ins.ops[0], ptx_type("pred"), r)


# ---------------------------------------------------------------------- math functions

def _unary_math(fn):
    def h(cta, ins):
        t = itype(ins)
        x = _fin(cta, ins, t, ins.ops[1])
        fput(cta, ins.ops[0], t, fn(x), rmode(ins), has(ins, "ftz"))
    return h


handler("ex2")(_unary_math(np.exp2))
handler("lg2")(_unary_math(np.log2))
handler("sin")(_unary_math(np.sin))
handler("cos")(_unary_math(np.cos))
handler("tanh")(_unary_math(np.tanh))
handler("sqrt")(_unary_math(np.sqrt))
handler("rsqrt")(_unary_math(lambda x: 1.0 / np.sqrt(x)))
handler("rcp")(_unary_math(lambda x: 1.0 / x))
