"""PTX scalar types as numpy dtypes, and the float conversions the simulator needs.

Registers hold raw bits (`uint8/16/32/64`, `bool` for `.pred`); an instruction reinterprets
them in its own type (`view`).  `convert_float` rounds float64 values into any narrow float
format with the PTX rounding modes (``rn rz rm rp rna``) and the ``.satfinite`` / ``.relu``
rules; the fp8/fp6/fp4 formats come from ml_dtypes.

Round-to-nearest into a format of p significand bits through float64 (53 bits) is exact:
double rounding is innocuous when 53 >= 2p + 2 (f32: p = 24), so `add.f32` etc. computed in
float64 and rounded once give the IEEE result.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

UINT = {1: np.uint8, 8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}
SINT = {8: np.int8, 16: np.int16, 32: np.int32, 64: np.int64}
FLOAT = {"f16": np.float16, "bf16": ml_dtypes.bfloat16, "f32": np.float32, "f64": np.float64,
         "e4m3": ml_dtypes.float8_e4m3fn, "e5m2": ml_dtypes.float8_e5m2, "e2m1": ml_dtypes.float4_e2m1fn,
         "e2m3": ml_dtypes.float6_e2m3fn, "e3m2": ml_dtypes.float6_e3m2fn, "ue8m0": ml_dtypes.float8_e8m0fnu,
         "ue4m3": ml_dtypes.float8_e4m3fn, "tf32": np.float32}
#: bits of each format (packed element width, not storage width)
FBITS = {"f16": 16, "bf16": 16, "f32": 32, "f64": 64, "e4m3": 8, "e5m2": 8, "e2m1": 4, "e2m3": 6,
         "e3m2": 6, "ue8m0": 8, "ue4m3": 8, "tf32": 32}
#: largest finite value of each narrow format (for .satfinite)
MAX_FINITE = {"f16": 65504.0, "bf16": float(ml_dtypes.finfo(ml_dtypes.bfloat16).max), "f32": float(np.finfo(np.float32).max),
              "e4m3": 448.0, "e5m2": 57344.0, "e2m1": 6.0, "e2m3": 7.5, "e3m2": 28.0, "ue4m3": 448.0,
              "ue8m0": 2.0 ** 127, "tf32": float(np.finfo(np.float32).max), "f64": float(np.finfo(np.float64).max)}


class PtxType:
    """One PTX type name: ``kind`` in {'u', 's', 'b', 'f', 'pred'} and its width in bits."""

    __slots__ = ("name", "kind", "bits")

    def __init__(self, name: str):
        self.name = name
        if name == "pred":
            self.kind, self.bits = "pred", 1
        elif name in ("f16x2", "bf16x2"):
            self.kind, self.bits = "b", 32
        elif name in FLOAT:
            self.kind, self.bits = "f", {"tf32": 32}.get(name, FBITS[name] if FBITS[name] >= 8 else 8)
        elif name[0] in "usb" and name[1:].isdigit():
            self.kind, self.bits = name[0], int(name[1:])
        else:
            raise KeyError(name)

    @property
    def np(self):
        """The numpy dtype of a value of this type (ints signed/unsigned, floats as themselves)."""
        if self.kind == "pred":
            return np.bool_
        if self.kind == "f":
            return FLOAT[self.name]
        if self.kind == "s":
            return SINT[self.bits]
        return UINT[self.bits]

    @property
    def raw(self):
        """The unsigned dtype holding the raw bits."""
        return np.bool_ if self.kind == "pred" else UINT[self.bits]

    def __repr__(self) -> str:
        return f".{self.name}"


_TYPES: dict[str, PtxType] = {}


def ptx_type(name: str) -> PtxType:
    t = _TYPES.get(name)
    if t is None:
        t = _TYPES[name] = PtxType(name)
    return t


def is_type_name(s: str) -> bool:
    try:
        ptx_type(s)
        return True
    except KeyError:
        return False


# ------------------------------------------------------------------ float conversion

def round_to(x: np.ndarray, fmt: str, mode: str = "rn") -> np.ndarray:
    """float64 ``x`` rounded into ``fmt`` (f16, bf16, f32, f64, tf32 or a <= 8-bit format).

    mode: rn (nearest even), rz (toward zero), rm (toward -inf), rp (toward +inf), rna (nearest,
    ties away from zero).  Overflow follows IEEE: rn -> inf, directed modes -> inf or max finite.
    """
    x = np.asarray(x, dtype=np.float64)
    if fmt == "f64":
        return x.copy()
    if fmt == "tf32":
        return _round_tf32(x, mode)
    if FBITS[fmt] <= 8:
        return _round_table(x, fmt, mode)
    dt = FLOAT[fmt]
    y = x.astype(dt)
    if mode == "rn":
        return y
    back = y.astype(np.float64)
    ok = ~np.isnan(x) & ~np.isinf(x)
    if mode == "rz":
        wrong, target = ok & (np.abs(back) > np.abs(x)), np.zeros_like(x)
    elif mode == "rm":
        wrong, target = ok & (back > x), np.full_like(x, -np.inf)
    elif mode == "rp":
        wrong, target = ok & (back < x), np.full_like(x, np.inf)
    elif mode == "rna":
        other = np.nextafter(y, np.where(back < x, np.inf, -np.inf).astype(dt))
        ob = other.astype(np.float64)
        wrong = ok & (back != x) & (np.abs(x - back) == np.abs(ob - x)) & (np.abs(ob) > np.abs(back))
        return np.where(wrong, other, y).astype(dt)
    else:
        raise ValueError(f"unknown rounding mode .{mode}")
    return np.where(wrong, np.nextafter(y, target.astype(dt)), y).astype(dt)


def _round_tf32(x: np.ndarray, mode: str) -> np.ndarray:
    b = x.astype(np.float32).view(np.uint32)   # already rn to f32; tf32 keeps 10 mantissa bits
    f = x.astype(np.float32)
    if mode in ("rn", "rna"):
        lsb = (b >> np.uint32(13)) & np.uint32(1)
        add = np.uint32(0xFFF) + lsb if mode == "rn" else np.uint32(0x1000)
        r = ((b + add) & np.uint32(0xFFFFE000)).astype(np.uint32)
        r = np.where(np.isfinite(f), r, b)
    else:
        r = (b & np.uint32(0xFFFFE000)).astype(np.uint32)
    return r.view(np.float32)


_TABLES: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def _table(fmt: str):
    t = _TABLES.get(fmt)
    if t is None:
        n = 1 << FBITS[fmt] if FBITS[fmt] <= 8 else 0
        codes = np.arange(n, dtype=np.uint8)
        vals = codes.view(FLOAT[fmt]).astype(np.float64)
        ok = np.isfinite(vals)
        order = np.argsort(vals[ok], kind="stable")
        v, c = vals[ok][order], codes[ok][order]
        # drop -0 duplicates (keep the +0 code for 0)
        keep = np.ones(len(v), bool)
        keep[1:] = v[1:] != v[:-1]
        t = _TABLES[fmt] = (v[keep], c[keep])
    return t


_SIGN_BIT = {"e2m1": 0x8, "e2m3": 0x20, "e3m2": 0x20, "e4m3": 0x80, "e5m2": 0x80}


def _round_table(x: np.ndarray, fmt: str, mode: str) -> np.ndarray:
    """Round into a <= 8-bit format by searching its sorted table of finite values; values past
    the largest finite one go to it (callers apply .satfinite / NaN rules first)."""
    v, c = _table(fmt)
    n = len(v)
    i = np.searchsorted(v, x, side="right") - 1
    lo_i, hi_i = np.clip(i, 0, n - 1), np.clip(i + 1, 0, n - 1)
    lo, hi = v[lo_i], v[hi_i]
    exact = lo == x
    if mode == "rz":
        pick = np.where(x >= 0, lo_i, hi_i)
    elif mode == "rm":
        pick = lo_i
    elif mode == "rp":
        pick = hi_i
    else:
        dlo, dhi = np.abs(x - lo), np.abs(hi - x)
        if mode == "rna":
            tie = np.where(x >= 0, hi_i, lo_i)
        else:
            tie = np.where(c[lo_i] & 1, hi_i, lo_i)
        pick = np.where(dlo < dhi, lo_i, np.where(dhi < dlo, hi_i, tie))
    pick = np.where(exact, lo_i, pick)
    pick = np.where(i < 0, 0, pick)
    code = c[pick].astype(np.uint8)
    sb = _SIGN_BIT.get(fmt)
    if sb is not None:
        negzero = (v[pick] == 0) & np.signbit(x)
        code = np.where(negzero, code | np.uint8(sb), code).astype(np.uint8)
    if fmt in ("e4m3", "e5m2", "ue8m0"):
        code = np.where(np.isnan(x), np.uint8(0x7F if fmt != "ue8m0" else 0xFF), code).astype(np.uint8)
    return code.view(FLOAT[fmt])


def convert_float(x, fmt: str, mode: str = "rn", satfinite: bool = False, relu: bool = False,
                  ftz: bool = False) -> np.ndarray:
    """Round float64 ``x`` to ``fmt`` with PTX ``cvt`` modifiers; returns an array of FLOAT[fmt].

    ``.satfinite``: +-inf and out-of-range values clamp to +-MAX_FINITE; NaN stays NaN where the
    format has one, else (e2m1, e2m3, e3m2) becomes +MAX_FINITE.  ``.relu``: negatives (and NaN,
    for formats with NaN: canonical NaN is kept) clamp to 0.  ue8m0: unsigned power of two.
    """
    x = np.asarray(x, dtype=np.float64)
    if ftz:
        x = flush_subnormal(x, "f32")
    if relu:
        x = np.where(x < 0, 0.0, x)
    if fmt == "ue8m0":
        return _to_ue8m0(x, mode, satfinite)
    nan = np.isnan(x)
    if satfinite or fmt in ("e2m1", "e2m3", "e3m2", "e4m3", "ue4m3"):
        m = MAX_FINITE[fmt]
        clipped = np.clip(x, -m, m)
        if fmt == "ue4m3":
            clipped = np.abs(clipped)
        if not satfinite and fmt in ("e4m3",):
            # without .satfinite an e4m3 overflow is NaN (no inf in the format)
            clipped = np.where(np.abs(x) > m, np.nan, clipped)
        x = clipped
        if fmt in ("e2m1", "e2m3", "e3m2"):
            x = np.where(nan, m, x)
    if fmt in ("e2m1", "e2m3", "e3m2", "e4m3", "e5m2", "ue4m3"):
        return _round_table(x, fmt if fmt != "ue4m3" else "e4m3", mode if mode != "rna" else "rn")
    return round_to(x, fmt, mode)


def _to_ue8m0(x: np.ndarray, mode: str, satfinite: bool) -> np.ndarray:
    """f32/f64 -> ue8m0 code (2^(e-127)); rz truncates the mantissa, rp rounds up."""
    f = np.abs(x).astype(np.float32)
    b = f.view(np.uint32)
    e = ((b >> np.uint32(23)) & np.uint32(0xFF)).astype(np.int64)
    mant = b & np.uint32(0x7FFFFF)
    if mode == "rp":
        e = np.where((mant != 0) & (e < 255), e + 1, e)
    e = np.where(e == 0, 0, e)
    inf = np.isinf(f)
    e = np.where(inf, 254 if satfinite else 255, e)
    e = np.where(np.isnan(x), 255, e)
    e = np.where(~inf & ~np.isnan(x) & (e > 254), 254 if satfinite else 255, e)
    return e.astype(np.uint8).view(ml_dtypes.float8_e8m0fnu)


def flush_subnormal(x: np.ndarray, fmt: str = "f32") -> np.ndarray:
    """.ftz: subnormal f32 inputs/results become sign-preserving zero."""
    tiny = float(np.finfo(np.float32).tiny) if fmt == "f32" else float(np.finfo(np.float64).tiny)
    x = np.asarray(x)
    return np.where((np.abs(x) < tiny) & (x != 0), np.copysign(0.0, x).astype(x.dtype), x)


def decode(raw: np.ndarray, fmt: str) -> np.ndarray:
    """Raw codes (uint8 for <= 8-bit formats, uint16/32 otherwise) -> float64 values."""
    if fmt == "tf32":
        return (raw.astype(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32).astype(np.float64)
    if fmt in ("e2m1", "e2m3", "e3m2"):
        mask = (1 << FBITS[fmt]) - 1
        return (raw.astype(np.uint8) & np.uint8(mask)).view(FLOAT[fmt]).astype(np.float64)
    if fmt == "ue4m3":
        return (raw.astype(np.uint8) & np.uint8(0x7F)).view(ml_dtypes.float8_e4m3fn).astype(np.float64)
    dt = np.dtype(FLOAT[fmt])
    return raw.astype(UINT[dt.itemsize * 8]).view(dt).astype(np.float64)


def encode(values: np.ndarray) -> np.ndarray:
    """An array of FLOAT[fmt] -> its raw unsigned codes."""
    return values.view(UINT[values.dtype.itemsize * 8])
