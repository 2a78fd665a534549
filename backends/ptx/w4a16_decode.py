"""How `w4a16.mma_loop` turns packed e2m1 words into mma.sync operands (lower_w4a16.py's decode).

A thread holds, per weight row and K chunk, 32-bit words of 8 e2m1 codes (K elements k0..k7,
low nibble first) and the words' block scales.  mma.sync's K order inside a thread is free as
long as A (the weights) and B (the activations) agree, so each scheme picks the pairing that
is cheapest to decode and permutes the activation registers to match (one `prmt` per f16x2).

**bits** (sm_80, and bf16 activations): a word yields four f16x2 / bf16x2 registers pairing
(k_i, k_{i+4}), the 3 magnitude bits of each code placed in the exponent/mantissa, the sign
at bit 15 (PTX_FACTS.md section 6):

    y_i = ((w << (9 - 4i)) & 0x0E000E00) | ((w << (12 - 4i)) & 0x80008000)   // q * 2^-14 (f16)

(bf16: magnitude bits at 6..8, y = q * 2^-126).  4 integer ops per f16x2 pair.

**e4m3** (f16 activations on sm_89+): the word's codes become e4m3 bytes, four codes per
integer op, then `cvt.rn.f16x2.e4m3x2` (one instruction, exact) makes two halves of a byte pair:

    lo = ((w << 4) & 0x80808080) | ((w << 2) & 0x1C1C1C1C)   // codes k0 k2 k4 k6, q * 2^-6
    hi = (w & 0x80808080) | ((w >> 2) & 0x1C1C1C1C)          // codes k1 k3 k5 k7
    y = cvt(lo.lo16) = (k0, k2), cvt(hi.lo16) = (k1, k3), cvt(lo.hi16) = (k4, k6), cvt(hi.hi16) = (k5, k7)

Per word, before and after (f16, one multiply by the scale each):

    before: 15 integer ops + 4 mul.f16x2
    after:   7 integer ops + 4 cvt + 4 mul.f16x2

**Scales** multiply each pair once, so a weight is the activation type's rounding of
q * scale, as `tile.dequantize` defines.  MX (e8m0 e, scale 2^(e-127)): the folded splat
scale * 2^EXP (EXP = 14 / 126 / 6 for bits-f16 / bits-bf16 / e4m3) is exact in the activation
type over `fold_range`, so one multiply rounds q * scale once; a chunk whose scales all lie
there takes that path (`vote.sync.all`), others a two-multiply fallback.  NV (e4m3 scale
bytes, f16): y * s is exact (q * s * 2^-EXP has at most 6 significant bits and stays in f16's
range), and the accumulator is multiplied by 2^EXP after the loop (`acc_factor`).
"""

from __future__ import annotations

from .emitter import KernelEmitter

#: f16 activations on sm_89+ decode through e4m3 bytes and `cvt.rn.f16x2.e4m3x2`; False keeps
#: the bit placement everywhere (bench/fp4.py --sweep compares the two)
VIA_E4M3 = True

# bit placement: (magnitude shift, magnitude mask, 2^EXP as a splat, EXP, f32 2^EXP)
_BITS = {"f16": (9, 0x0E000E00, "0x74007400", 14, "0f46800000"),
         "bf16": (6, 0x01C001C0, "0x7E807E80", 126, None)}
_E4M3 = (None, None, "0x54005400", 6, "0f42800000")
_ONE = {"f16": "0x3C003C00", "bf16": "0x3F803F80"}


class Decoder:
    """The decode scheme of one kernel: `pairs` (unscaled operands of a word), `activations`
    (the matching B registers), the scale splats and the MX fold test."""

    def __init__(self, em: KernelEmitter, act: str, block: int):
        self.em, self.act, self.block = em, act, block
        self.via_e4m3 = VIA_E4M3 and act == "f16" and em.sm >= 89
        self.shift, self.mask, pow2, self.exp, self.acc_factor = _E4M3 if self.via_e4m3 else _BITS[act]
        #: f16 with NV scales accumulates q * s * 2^-EXP (exact, one multiply): the fragments
        #: start at 0 and end as d * 2^EXP + init
        self.scaled_acc = act == "f16" and block == 16
        self.pow2, self.nzero = em.new("r"), em.new("r")
        em.ins(f"mov.b32 {self.pow2}, {pow2}")
        em.ins(f"mov.b32 {self.nzero}, 0x80008000")   # -0.0 x2: x + -0 == x for every x

    # ---- weights
    def pairs(self, w: str) -> list[str]:
        """Four unscaled registers of the codes in `w`: steps 0 and 1 of the word's two mma.syncs
        take (pairs[0], pairs[1]) and (pairs[2], pairs[3]) as their (a0, a2) / (a1, a3)."""
        return self._pairs_e4m3(w) if self.via_e4m3 else self._pairs_bits(w)

    def _pairs_bits(self, w: str) -> list[str]:
        em, out = self.em, []
        for i in range(4):
            a, b, y = em.new("r"), em.new("r"), em.new("r")
            sa, sb = self.shift - 4 * i, 12 - 4 * i
            em.ins(f"shl.b32 {a}, {w}, {sa}" if sa >= 0 else f"shr.u32 {a}, {w}, {-sa}")
            if sb:
                em.ins(f"shl.b32 {b}, {w}, {sb}")
                em.ins(f"and.b32 {b}, {b}, 0x80008000")
            else:
                em.ins(f"and.b32 {b}, {w}, 0x80008000")
            em.ins(f"lop3.b32 {y}, {a}, {b}, {self.mask}, 0xEC")          # (a & mask) | b
            out.append(y)
        return out

    def _pairs_e4m3(self, w: str) -> list[str]:
        em = self.em
        lo, hi, s, m = em.new("r"), em.new("r"), em.new("r"), em.new("r")
        em.ins(f"shl.b32 {s}, {w}, 4")
        em.ins(f"and.b32 {s}, {s}, 0x80808080")
        em.ins(f"shl.b32 {m}, {w}, 2")
        em.ins(f"lop3.b32 {lo}, {m}, {s}, 0x1C1C1C1C, 0xEC")           # low nibbles -> e4m3 bytes
        s2, m2 = em.new("r"), em.new("r")
        em.ins(f"and.b32 {s2}, {w}, 0x80808080")
        em.ins(f"shr.u32 {m2}, {w}, 2")
        em.ins(f"lop3.b32 {hi}, {m2}, {s2}, 0x1C1C1C1C, 0xEC")         # high nibbles -> e4m3 bytes
        halves = {r: (em.new("h"), em.new("h")) for r in (lo, hi)}
        for r, (h0, h1) in halves.items():
            em.ins(f"mov.b32 {{{h0}, {h1}}}, {r}")
        out = []
        for r, half in ((lo, 0), (hi, 0), (lo, 1), (hi, 1)):     # (k0,k2) (k1,k3) (k4,k6) (k5,k7)
            y = em.new("r")
            em.ins(f"cvt.rn.f16x2.e4m3x2 {y}, {halves[r][half]}")
            out.append(y)
        return out

    # ---- activations
    def activations(self, x: list[str]) -> list[str]:
        """The B registers (b0, b1 of step 0, then of step 1) of one 16-byte piece x[0..3]
        = halves (x0,x1) (x2,x3) (x4,x5) (x6,x7), paired as `pairs` pairs the weights."""
        em = self.em
        b = [em.new("r") for _ in range(4)]
        lo_hi = ((0, 2), (1, 3)) if not self.via_e4m3 else ((0, 1), (2, 3))
        for n, (p, q) in enumerate(lo_hi):            # bits: (x0,x4) (x1,x5) | (x2,x6) (x3,x7)
            em.ins(f"prmt.b32 {b[2 * n]}, {x[p]}, {x[q]}, 0x5410")       # e4m3: (x0,x2) (x1,x3) | (x4,x6) (x5,x7)
            em.ins(f"prmt.b32 {b[2 * n + 1]}, {x[p]}, {x[q]}, 0x7632")
        return b

    # ---- scales
    def scale(self, y: str, scale) -> None:
        """y *= scale in place (one rounding); `scale` a splat or a (pre, scale) pair."""
        em = self.em
        for s in (scale if isinstance(scale, tuple) else (scale,)):
            if self.act == "f16":
                em.ins(f"mul.rn.f16x2 {y}, {y}, {s}")
            else:
                em.ins(f"fma.rn.bf16x2 {y}, {y}, {s}, {self.nzero}")

    def fold_range(self, e: str) -> str:
        """Predicate: the MX folded splat of scale byte `e` is exact (and the one multiply
        rounds q * scale once): 1 <= e <= 128 for the bit placement, e <= 136 through e4m3."""
        em, p = self.em, self.em.new("p")
        if self.via_e4m3:
            em.ins(f"setp.lt.u32 {p}, {e}, 137")
        else:
            t = em.new("r")
            em.ins(f"add.u32 {t}, {e}, -1")
            em.ins(f"setp.lt.u32 {p}, {t}, 128")
        return p

    def splat(self, e: str, fold: bool = False) -> str:
        """The splat of scale byte `e`: e8m0 (MX) 2^(e-127), times 2^EXP when `fold`; e4m3 (NV)
        its value (exact in f16 / bf16)."""
        em, f = self.em, self.em.new("f")
        if self.block == 32:                         # e8m0: 2^(e - 127) as f32 bits
            b = em.new("r")
            if fold:
                em.ins(f"mad.lo.u32 {b}, {e}, 8388608, {self.exp << 23}")
            else:
                em.ins(f"shl.b32 {b}, {e}, 23")
            em.ins(f"mov.b32 {f}, {b}")
        else:                                        # e4m3 -> f16 bits of s * 2^-8 -> f32 * 2^8
            s, m, h = em.new("r"), em.new("r"), em.new("h")
            em.ins(f"and.b32 {s}, {e}, 128")
            em.ins(f"shl.b32 {s}, {s}, 8")
            em.ins(f"and.b32 {m}, {e}, 127")
            em.ins(f"shl.b32 {m}, {m}, 7")
            em.ins(f"or.b32 {s}, {s}, {m}")
            em.ins(f"cvt.u16.u32 {h}, {s}")
            em.ins(f"cvt.f32.f16 {f}, {h}")
            em.ins(f"mul.f32 {f}, {f}, 0f43800000")
        h, out = em.new("h"), em.new("r")
        em.ins(f"cvt.rn.{self.act}.f32 {h}, {f}")
        em.ins(f"mov.b32 {out}, {{{h}, {h}}}")
        return out

    def fallback(self, e: str) -> tuple[str, str]:
        """(pre-multiplier, scale) splats of the two-multiply MX decode: (1, folded splat) where
        that is exact (`fold_range`), else (2^EXP, plain splat): q * scale rounds once, so every
        scale a chunk holds decodes as on the one-multiply path where that one is exact."""
        em = self.em
        folded, plain = self.splat(e, fold=True), self.splat(e)
        p, pre, sc = self.fold_range(e), em.new("r"), em.new("r")
        em.ins(f"selp.b32 {pre}, {_ONE[self.act]}, {self.pow2}, {p}")
        em.ins(f"selp.b32 {sc}, {folded}, {plain}, {p}")
        return pre, sc
