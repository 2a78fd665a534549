"""The flash-attention `tgpu` ops (dialects/tgpu/attention.py) as sm_90a PTX.

`tgpu.mask` (a select skipped on provably full tiles: one uniform branch around the mask
math) and `tgpu.turn` (warpgroup turns on named barriers 1..W) serve flash attention.
"""

from __future__ import annotations

from tilec.dialects import tgpu as G

from . import numerics as N
from .emitter import KernelEmitter, Val, lowers
from .lower_tgpu_memory import _scalar


# ---------------------------------------------------------------------------- masks


@lowers(G.MaskOp)
def lower_mask(em: KernelEmitter, op: G.MaskOp) -> None:
    """The result starts as `a`; unless `full`, the condition is computed (in `a`'s layout,
    recomputed from its index math where it can be) and `b` selected where it is false,
    all inside one uniform branch."""
    from .lower_elementwise import operands, select
    from .ptx_types import reg_class

    a = em.get_any(op.true_value)
    d = a.dtype
    cls = reg_class(d)
    out = []
    for r in a.regs:
        t = em.new(cls)
        N.mov(em, cls, t, r)
        out.append(t)
    done = em.label("mask_done")
    em.ins(f"@{_scalar(em, op.full)} bra.uni {done}")
    em.push_scope()
    (c, x, y), layout = operands(em, op.cond, op.true_value, op.false_value)
    if layout != a.layout:          # `a` left its layout: select into fresh registers instead
        raise em.unsupported("tgpu.mask", d, f"the condition cannot be brought to the value's layout {a.layout}")
    for s, (cr, yr) in enumerate(zip(c.regs, y.regs)):
        N.mov(em, cls, out[s], select(em, d, cr, out[s], yr))
    em.pop_scope()
    em.place(done)
    em.set(op.result, Val(d, a.layout, out))


# ---------------------------------------------------------------------------- warpgroup turns


@lowers(G.TurnOp)
def lower_turn(em: KernelEmitter, op: G.TurnOp) -> None:
    """Warpgroup w's turn is named barrier 1 + w over 256 threads: its own 128 (`bar.sync`)
    and the previous warpgroup's 128 (`bar.arrive` when it passes the turn).  Each warpgroup
    runs its own copy of the instruction, predicated on its index (uniform per warp), so
    barrier ids are immediates."""
    nwg = em.num_threads // 128
    if nwg < 2:
        return
    wg = em.memo("tgpu_wg", lambda: em._op2("shr.u32", em.tid, 7))

    def is_wg(w: int) -> str:
        def make():
            p = em.new("p")
            em.ins(f"setp.eq.u32 {p}, {wg}, {w}")
            return p
        return em.memo(("tgpu_is_wg", w), make)

    kind = op.kind.data
    if kind == "start":                 # the last warpgroup passes the first turn to warpgroup 0
        em.ins(f"@{is_wg(nwg - 1)} bar.arrive 1, 256")
    elif kind == "finish":              # warpgroup 0 takes back the turn the last one passed
        em.ins(f"@{is_wg(0)} bar.sync 1, 256")
    else:
        for w in range(nwg):
            target = 1 + w if kind == "wait" else 1 + (w + 1) % nwg
            em.ins(f"@{is_wg(w)} bar.{'sync' if kind == 'wait' else 'arrive'} {target}, 256")
