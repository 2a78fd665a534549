"""`scf.for` and `scf.if` as uniform branches (every thread of the CTA takes the same path,
since loop bounds and conditions are scalars, and scalars are the same in every thread).

    scf.for %iv = %lb to %ub step %s iter_args(%x = %init)       mov iv, lb;  mov x, init
                                                          head:  setp.ge.s32 p, iv, ub;  @p bra end
      body ... scf.yield %x'                                     body;  mov x, x' (parallel copy)
                                                                 add.s32 iv, iv, s;  bra head
                                                          end:   results = x

Loop-carried tiles get fresh registers per slot; `scf.yield` copies into them with a
parallel copy (through temporaries when a yielded register is itself carried).  A
carried tile lives in the layout the body yields it in (a reduced row kept in its
source's layout, `layout.Sliced`, stays there across iterations): the body is emitted
once on trial to learn those layouts, then for real; the initial values are converted
once before the loop.
"""

from __future__ import annotations

from xdsl.dialects import arith, scf
from xdsl.dialects.builtin import IntegerAttr

from . import numerics as N
from .emitter import KernelEmitter, Val, dtype_of, lowers
from .layout import Sliced
from .ptx_types import reg_class


def parallel_copy(em: KernelEmitter, dsts: list[Val], srcs: list[Val]) -> None:
    """`dsts[i].regs[s] = srcs[i].regs[s]` for all i, s, as if all at once."""
    pairs, seen = [], {}
    for dv, sv in zip(dsts, srcs):
        cls = reg_class(dv.dtype)
        for d, s in zip(dv.regs, sv.regs):
            if d != s and d not in seen:
                seen[d] = s
                pairs.append((cls, d, s))
            assert seen.get(d, s) == s, f"parallel copy writes {d} twice"
    targets = {d for _, d, _ in pairs}
    staged = []
    for cls, d, s in pairs:
        if s in targets:
            t = em.new(cls)
            N.mov(em, cls, t, s)
            s = t
        staged.append((cls, d, s))
    for cls, d, s in staged:
        N.mov(em, cls, d, s)


def _positive_constant(v) -> bool:
    op = v.owner
    return isinstance(op, arith.ConstantOp) and isinstance(op.value, IntegerAttr) and op.value.value.data > 0


def fresh_like(em: KernelEmitter, d, layout) -> Val:
    """Fresh registers for a value of `layout` (one per distinct value of a `Sliced` one)."""
    if not isinstance(layout, Sliced):
        return em.fresh(d, layout)
    cls, regs = reg_class(d), []
    for s in range(layout.num_slots):
        rep = layout.rep_slot(s)
        regs.append(regs[rep] if rep != s else em.new(cls))
    return Val(d, layout, regs)


def _in(em: KernelEmitter, v, layout) -> Val:
    from .exchange import to_layout

    val = em.get_any(v)
    return val if layout is None or val.layout == layout else to_layout(em, val, layout)


def _yield_layouts(em: KernelEmitter, op: scf.ForOp, layouts: list, free: list) -> list:
    """The layouts the body yields its carried values in when they enter in `layouts`
    (a trial emission, undone); a `free` one enters as a splat, which fits any layout."""
    snap = em.snapshot()
    try:
        body = op.body.block
        em.push_scope()
        em.set(body.args[0], Val(dtype_of(body.args[0].type), None, [em.new("r")]))
        for arg, v, lay, f in zip(body.args[1:], op.iter_args, layouts, free):
            val = fresh_like(em, em.get_any(v).dtype, lay)
            if f and lay is not None:
                val = Val(val.dtype, lay, [val.regs[0]] * len(val.regs), True)
            em.set(arg, val)
        yields = em.emit_block(body)
        out = []
        for y, lay in zip(yields, layouts):
            val = em.get_any(y)
            out.append(lay if val.layout is None or val.uniform else val.layout)
        em.pop_scope()
        return out
    finally:
        em.restore(snap)


def _carried_layouts(em: KernelEmitter, op: scf.ForOp) -> list:
    inits = [em.get_any(v) for v in op.iter_args]
    layouts = [v.layout for v in inits]
    if all(lay is None for lay in layouts):
        return layouts
    free = [v.uniform for v in inits]     # a splat start adopts what the body yields
    for _ in range(3):  # to a fixed point (a step or two in practice)
        new = _yield_layouts(em, op, layouts, free)
        if new == layouts:
            break
        layouts, free = new, [False] * len(new)
    return layouts


@lowers(scf.ForOp)
def lower_for(em: KernelEmitter, op: scf.ForOp) -> None:
    lb, ub, step = (em.get(v).regs[0] for v in (op.lb, op.ub, op.step))
    body = op.body.block
    layouts = _carried_layouts(em, op)
    carried = [fresh_like(em, em.get_any(v).dtype, lay) for v, lay in zip(op.iter_args, layouts)]
    parallel_copy(em, carried, [_in(em, v, lay) for v, lay in zip(op.iter_args, layouts)])
    iv = em.new("r")
    em.ins(f"mov.b32 {iv}, {lb}")
    head, end = em.label("for"), em.label("endfor")
    p = em.new("p")
    if not _positive_constant(op.step):  # a step <= 0 would never end: run no iteration
        em.ins(f"setp.le.s32 {p}, {step}, 0")
        em.ins(f"@{p} bra {end}")
    em.place(head)
    em.ins(f"setp.ge.s32 {p}, {iv}, {ub}")
    em.ins(f"@{p} bra {end}")
    em.push_scope()
    em.set(body.args[0], Val(dtype_of(body.args[0].type), None, [iv]))
    for arg, val in zip(body.args[1:], carried):
        em.set(arg, val)
    yields = em.emit_block(body)
    parallel_copy(em, carried, [_in(em, v, c.layout) for v, c in zip(yields, carried)])
    em.pop_scope()
    em.ins(f"add.s32 {iv}, {iv}, {step}")
    em.ins(f"bra {head}")
    em.place(end)
    for res, val in zip(op.results, carried):
        em.set(res, val)


@lowers(scf.IfOp)
def lower_if(em: KernelEmitter, op: scf.IfOp) -> None:
    cond = em.get(op.cond).regs[0]
    results = [em.fresh(dtype_of(r.type), em.layout_of(r.type)) for r in op.results]
    other, end = em.label("else"), em.label("endif")
    em.ins(f"@!{cond} bra {other}")
    em.push_scope()
    ys = em.emit_block(op.true_region.block)
    parallel_copy(em, results, [em.get(v) for v in ys])
    em.pop_scope()
    em.ins(f"bra {end}")
    em.place(other)
    if op.false_region.blocks:
        em.push_scope()
        ys = em.emit_block(op.false_region.block)
        parallel_copy(em, results, [em.get(v) for v in ys])
        em.pop_scope()
    em.place(end)
    for res, val in zip(op.results, results):
        em.set(res, val)

