"""`tile.rand`: Philox4x32-10 per element, bit for bit as `backends/cpu/philox.py`.

Key (k0, k1) = (seed & 0xffffffff, seed >> 32) and the ten round keys k + r * W are
scalars (computed once); the counter is (offset, 0, 0, 0), so round 0 folds to three
multiplies.  Per round, with `mul.hi.u32` / `mul.lo.u32`:

    c0, c1, c2, c3 = hi(M1*c2) ^ c1 ^ rk0,  lo(M1*c2),  hi(M0*c0) ^ c3 ^ rk1,  lo(M0*c0)

The first output word w becomes `min(float(w) * 2**-32, 1 - 2**-24)` in f32.
"""

from __future__ import annotations

from tilec import dtypes as dt
from tilec.dialects import tile as T

from . import numerics as N
from .emitter import KernelEmitter, Val, lowers

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85


def _round_keys(em: KernelEmitter, seed: str, seed_dtype: dt.DType) -> list[tuple[str, str]]:
    def make():
        s64 = N.cast(em, seed_dtype, dt.int64, seed) if seed_dtype.bits != 64 else seed
        k0, k1 = em.new("r"), em.new("r")
        em.ins(f"mov.b64 {{{k0}, {k1}}}, {s64}")
        keys = []
        for r in range(10):
            a, b = em.new("r"), em.new("r")
            em.ins(f"add.u32 {a}, {k0}, {(r * W0) & 0xFFFFFFFF}")
            em.ins(f"add.u32 {b}, {k1}, {(r * W1) & 0xFFFFFFFF}")
            keys.append((a, b))
        return keys
    return em.memo(("philox_keys", seed), make)


def _xor(em: KernelEmitter, *xs):
    regs = [x for x in xs if x != 0]
    if not regs:
        return 0
    acc = regs[0]
    for x in regs[1:]:
        r = em.new("r")
        em.ins(f"xor.b32 {r}, {acc}, {x}")
        acc = r
    return acc


def _mul(em: KernelEmitter, part: str, m: int, x):
    if x == 0:
        return 0
    r = em.new("r")
    em.ins(f"mul.{part}.u32 {r}, {x}, {m}")
    return r


def philox_word(em: KernelEmitter, keys, counter: str) -> str:
    c0, c1, c2, c3 = counter, 0, 0, 0
    for r, (rk0, rk1) in enumerate(keys):
        last = r == len(keys) - 1
        hi0, lo0 = _mul(em, "hi", M0, c0), (None if last else _mul(em, "lo", M0, c0))
        hi1, lo1 = _mul(em, "hi", M1, c2), (None if last else _mul(em, "lo", M1, c2))
        n0 = _xor(em, hi1, c1, rk0)
        if last:
            return em.as_reg(n0)
        c0, c1, c2, c3 = n0, lo1, _xor(em, hi0, c3, rk1), lo0
    raise AssertionError


@lowers(T.RandOp)
def lower_rand(em: KernelEmitter, op: T.RandOp) -> None:
    seed = em.get(op.seed)
    offs = em.get(op.offsets)
    keys = _round_keys(em, seed.regs[0], seed.dtype)
    done: dict[str, str] = {}
    regs = []
    for x in offs.regs:
        if x not in done:
            w = philox_word(em, keys, x)
            f = N.fop(em, "cvt.rn.f32.u32", w)
            f = N.fop(em, "mul.rn.f32", f, "0f2F800000")          # * 2**-32 (exact)
            done[x] = N.fop(em, "min.f32", f, "0f3F7FFFFF")      # < 1.0
        regs.append(done[x])
    em.set(op.result, Val(dt.float32, offs.layout, regs))
