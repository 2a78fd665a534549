"""Elementwise ops: the binary and unary `tile.*` ops, `tile.cmp`, `tile.select`, `tile.cast`.

Each op runs per slot on registers.  Tile operands have one shape; `operands` puts them
in one layout: the layout of the non-uniform ones when they agree (a reduction result
kept in its source's layout stays there, `layout.Sliced`); a wgmma accumulator layout
(`layout.Mma`) when one operand has it (the others are recomputed there or converted);
else the layout of a reduction result among them (`Sliced`) that every other operand reaches
without shared memory (a register copy, `exchange.register_map`, or recomputed from
`arange`s and splats, `lower_shape.recompute`); else the canonical one.  Two
slots holding the same operand registers (a splat, a reduced row) share one result
register.  Narrow
floats are computed in f32 and rounded back, narrow ints wrapped back (`numerics.finish`).
Integer `floordiv` / `rem` follow Python (round toward -inf, remainder takes the sign
of the divisor; division by zero gives 0 as numpy does).
"""

from __future__ import annotations

from collections.abc import Callable

from tilec import dtypes as dt
from tilec.dialects import tile as T

from . import numerics as N
from .emitter import KernelEmitter, Val, dtype_of, lowers
from .layout import Blocked, Mma, Sliced
from .ptx_types import float_type, int_type, reg_class


def operands(em: KernelEmitter, *values) -> tuple[list[Val], object]:
    """The values of `values` (SSA values of one shape) in a common layout, and that layout
    (None for scalars)."""
    raw = [em.get_any(v) for v in values]
    tiles = [r for r in raw if r.layout is not None]
    if not tiles:
        return raw, None
    placed = {r.layout for r in tiles if not r.uniform}
    mma = [lay for lay in placed if _on_mma(lay)]
    if len(placed) > 1 and len(mma) == 1:
        return _into_mma(em, values, raw, mma[0]), mma[0]
    if len(placed) > 1 and not mma:
        order = dict.fromkeys(r.layout for r in tiles if not r.uniform and isinstance(r.layout, Sliced))
        for lay in order:       # in operand order (deterministic output)
            moved = _into(em, values, raw, lay)
            if moved is not None:
                return moved, lay
    layout = placed.pop() if len(placed) == 1 else Blocked(tuple(tiles[0].layout.shape), em.num_threads)
    out = []
    for v, r in zip(values, raw):
        if r.layout is None or r.layout == layout:
            out.append(r)
        elif r.uniform:
            out.append(Val(r.dtype, layout, [r.regs[0]] * layout.num_slots, True))
        else:
            out.append(em.get(v))  # here `layout` is the canonical one
    return out, layout


def _into(em: KernelEmitter, values, raw: list[Val], layout) -> list[Val] | None:
    """The operands in `layout` when each gets there without an exchange: already in it, a
    splat, a register copy (`exchange.register_map`) or recomputed from `arange`s, splats and
    elementwise ops (`lower_shape.recompute`); None when one would need shared memory.
    E.g. `where(rows < n, sum(k * q, axis=1, keepdims=True), -inf)`: the row sums stay where the
    reduction left them (`Sliced`), the mask is recomputed at their coordinates, instead of
    both going to the canonical [BM, 1] layout through shared memory (2 bar.sync)."""
    from .exchange import in_registers
    from .lower_shape import recompute

    out = []
    for v, r in zip(values, raw):
        if r.layout is None or r.layout == layout:
            out.append(r)
        elif r.uniform:
            out.append(Val(r.dtype, layout, [r.regs[0]] * layout.num_slots, True))
        else:
            moved = in_registers(em, r, layout)
            if moved is None:
                regs = recompute(em, v, layout, lambda c: c, budget=16)
                if regs is None:
                    return None
                moved = Val(r.dtype, layout, regs)
            out.append(moved)
    return out


def _on_mma(layout) -> bool:
    """A wgmma accumulator layout (`layout.Mma`) or a reduction left in one."""
    return isinstance(layout, Mma) or (isinstance(layout, Sliced) and isinstance(layout.parent, Mma))


def _into_mma(em: KernelEmitter, values, raw: list[Val], layout) -> list[Val]:
    """The operands in the accumulator layout `layout`: masks and index tiles made of
    `arange`s, splats and elementwise ops are recomputed at its coordinates, anything else
    goes through shared memory (the accumulator never leaves its registers)."""
    from .exchange import to_layout
    from .lower_shape import recompute

    out = []
    for v, r in zip(values, raw):
        if r.layout is None or r.layout == layout:
            out.append(r)
        elif r.uniform:
            out.append(Val(r.dtype, layout, [r.regs[0]] * layout.num_slots, True))
        else:
            regs = recompute(em, v, layout, lambda c: c, budget=32)
            out.append(Val(r.dtype, layout, regs) if regs is not None else to_layout(em, r, layout))
    return out


def _map(em: KernelEmitter, out_dtype: dt.DType, operands: list[Val], fn: Callable[..., str], layout) -> Val:
    """Apply `fn(*regs) -> reg` slot by slot, once per distinct operand-register tuple."""
    n = 1 if layout is None else layout.num_slots
    done: dict[tuple, str] = {}
    regs = []
    for s in range(n):
        key = tuple(v.regs[s] for v in operands)
        if key not in done:
            done[key] = fn(*key)
        regs.append(done[key])
    return Val(out_dtype, layout, regs, all(v.uniform or v.is_scalar for v in operands))


# ---------------------------------------------------------------------------- binary


def _float_binary(em: KernelEmitter, kind: str, d: dt.DType, a: str, b: str) -> str:
    ft = float_type(d)
    cls = reg_class(d)
    out = em.new(cls)
    simple = {"add": "add.rn", "sub": "sub.rn", "mul": "mul.rn", "div": "div.rn"}
    if kind in simple:
        em.ins(f"{simple[kind]}.{ft} {out}, {a}, {b}")
    elif kind in ("maximum", "minimum"):
        m = "max" if kind == "maximum" else "min"
        if ft == "f32":
            em.ins(f"{m}.NaN.f32 {out}, {a}, {b}")
        else:  # no .NaN form for f64: propagate by hand
            t, s, p = em.new(cls), em.new(cls), em.new("p")
            em.ins(f"{m}.f64 {t}, {a}, {b}")
            em.ins(f"add.rn.f64 {s}, {a}, {b}")
            em.ins(f"setp.nan.f64 {p}, {a}, {b}")
            em.ins(f"selp.f64 {out}, {s}, {t}, {p}")
    elif kind in ("floordiv", "rem"):
        return _float_divmod(em, kind, d, a, b)
    elif kind == "pow":
        if ft != "f32":
            raise em.unsupported("tile.pow", d)
        out = N.pow_f32(em, a, b)
    else:
        raise em.unsupported(f"tile.{kind}", d)
    return N.finish(em, d, out) if ft == "f32" else out


def _float_divmod(em: KernelEmitter, kind: str, d: dt.DType, a: str, b: str) -> str:
    """numpy's float floor_divide / remainder: fmod in f64 (exact for f32 operands), then
    the result takes the divisor's sign; floordiv = (a - mod) / b rounded to an integer."""
    if d.bits == 64:
        ad, bd = a, b
    else:
        ad, bd = em.new("fd"), em.new("fd")
        em.ins(f"cvt.f64.f32 {ad}, {a}")
        em.ins(f"cvt.f64.f32 {bd}, {b}")
    q, r, nb, fix, p1, p2 = (em.new("fd"), em.new("fd"), em.new("fd"), em.new("p"), em.new("p"), em.new("p"))
    em.ins(f"div.rn.f64 {q}, {ad}, {bd}")
    em.ins(f"cvt.rzi.f64.f64 {q}, {q}")
    em.ins(f"neg.f64 {nb}, {bd}")
    em.ins(f"fma.rn.f64 {r}, {nb}, {q}, {ad}")                 # fmod(a, b)
    em.ins(f"setp.ne.f64 {fix}, {r}, 0d0000000000000000")
    em.ins(f"setp.lt.f64 {p1}, {r}, 0d0000000000000000")
    em.ins(f"setp.lt.f64 {p2}, {bd}, 0d0000000000000000")
    em.ins(f"xor.pred {p1}, {p1}, {p2}")
    em.ins(f"and.pred {fix}, {fix}, {p1}")                     # r != 0 and sign(r) != sign(b)
    em.ins(f"@{fix} add.rn.f64 {r}, {r}, {bd}")
    em.ins(f"@{fix} sub.rn.f64 {q}, {q}, 0d3FF0000000000000")
    if kind == "rem":
        em.ins(f"setp.eq.f64 {p1}, {r}, 0d0000000000000000")
        em.ins(f"@{p1} copysign.f64 {r}, {bd}, 0d0000000000000000")  # zero takes b's sign
        res = r
    else:
        inf = em.new("p")  # b == 0 or a non-finite quotient: a / b as numpy gives it
        em.ins(f"testp.infinite.f64 {inf}, {q}")
        em.ins(f"setp.eq.f64 {p1}, {bd}, 0d0000000000000000")
        em.ins(f"or.pred {p1}, {p1}, {inf}")
        em.ins(f"@{p1} div.rn.f64 {q}, {ad}, {bd}")
        res = q
    if d.bits == 64:
        return res
    out = em.new("f")
    em.ins(f"cvt.rn.f32.f64 {out}, {res}")
    return N.finish(em, d, out)


def _int_binary(em: KernelEmitter, kind: str, d: dt.DType, a: str, b: str) -> str:
    it, bt = int_type(d), ("b64" if d.bits == 64 else "b32")
    cls = reg_class(d)
    out = em.new(cls)
    simple = {"add": f"add.{it}", "sub": f"sub.{it}", "mul": f"mul.lo.{it}", "maximum": f"max.{it}",
              "minimum": f"min.{it}", "and": f"and.{bt}", "or": f"or.{bt}", "xor": f"xor.{bt}",
              "shl": f"shl.{bt}", "shr": f"shr.{it}"}
    if kind in simple:
        if kind in ("shl", "shr") and d.bits == 64:
            s = em.new("r")
            em.ins(f"cvt.u32.u64 {s}, {b}")
            b = s
        em.ins(f"{simple[kind]} {out}, {a}, {b}")
    elif kind in ("div", "floordiv", "rem"):
        q, r, z = em.new(cls), em.new(cls), em.new("p")
        em.ins(f"div.{it} {q}, {a}, {b}")
        em.ins(f"rem.{it} {r}, {a}, {b}")
        res = q if kind in ("div", "floordiv") else r
        if d.is_signed and kind != "div":
            # Python: when r != 0 and r, b differ in sign, q -= 1 and r += b
            fix, x, ps = em.new("p"), em.new(cls), em.new("p")
            em.ins(f"xor.{bt} {x}, {r}, {b}")
            em.ins(f"setp.lt.{it} {ps}, {x}, 0")
            em.ins(f"setp.ne.{it} {fix}, {r}, 0")
            em.ins(f"and.pred {fix}, {fix}, {ps}")
            adj = em.new(cls)
            if kind == "floordiv":
                em.ins(f"sub.{it} {adj}, {q}, 1")
            else:
                em.ins(f"add.{it} {adj}, {r}, {b}")
            res2 = em.new(cls)
            em.ins(f"selp.{bt} {res2}, {adj}, {res}, {fix}")
            res = res2
        em.ins(f"setp.eq.{it} {z}, {b}, 0")
        em.ins(f"selp.{bt} {out}, 0, {res}, {z}")
    elif kind == "pow":
        out = _int_pow(em, d, a, b)
    else:
        raise em.unsupported(f"tile.{kind}", d)
    return N.wrap_int(em, d, out)


def _int_pow(em: KernelEmitter, d: dt.DType, a: str, b: str) -> str:
    """Square-and-multiply over the bits of a non-negative exponent (a negative one gives 0)."""
    it, bt, cls = int_type(d), ("b64" if d.bits == 64 else "b32"), reg_class(d)
    res, base, e, p, bit = em.new(cls), em.new(cls), em.new(cls), em.new("p"), em.new(cls)
    head, done = em.label("ipow"), em.label("ipow_end")
    em.ins(f"mov.{bt} {res}, 1")
    em.ins(f"mov.{bt} {base}, {a}")
    em.ins(f"mov.{bt} {e}, {b}")
    em.ins(f"setp.lt.{it} {p}, {e}, 0")
    em.ins(f"@{p} mov.{bt} {res}, 0")
    em.ins(f"@{p} bra {done}")
    em.place(head)
    em.ins(f"setp.eq.{it} {p}, {e}, 0")
    em.ins(f"@{p} bra {done}")
    em.ins(f"and.{bt} {bit}, {e}, 1")
    em.ins(f"setp.ne.{it} {p}, {bit}, 0")
    em.ins(f"@{p} mul.lo.{it} {res}, {res}, {base}")
    em.ins(f"mul.lo.{it} {base}, {base}, {base}")
    em.ins(f"shr.u{'64' if d.bits == 64 else '32'} {e}, {e}, 1")
    em.ins(f"bra {head}")
    em.place(done)
    return res


def _bool_binary(em: KernelEmitter, kind: str, a: str, b: str) -> str:
    ops = {"and": "and", "or": "or", "xor": "xor", "add": "xor", "sub": "xor", "mul": "and",
           "maximum": "or", "minimum": "and"}
    if kind not in ops:
        raise em.unsupported(f"tile.{kind}", dt.bool_)
    out = em.new("p")
    em.ins(f"{ops[kind]}.pred {out}, {a}, {b}")
    return out


def binary(em: KernelEmitter, kind: str, d: dt.DType, a: str, b: str) -> str:
    if d is dt.bool_:
        return _bool_binary(em, kind, a, b)
    if d.is_float:
        return _float_binary(em, kind, d, a, b)
    return _int_binary(em, kind, d, a, b)


def _shared_divisor(em: KernelEmitter, d: dt.DType):
    """Division by a divisor register shared by several slots (a broadcast row sum):
    one reciprocal per divisor, then a multiply and a residual step per element."""
    recips: dict[str, tuple[str, str]] = {}

    def fn(x: str, y: str) -> str:
        if y not in recips:
            recips[y] = N.reciprocal(em, y)
        return N.finish(em, d, N.div_by_reciprocal(em, x, *recips[y]))
    return fn


def _binary_lowering(kind: str):
    def lower(em: KernelEmitter, op) -> None:
        (a, b), layout = operands(em, op.lhs, op.rhs)
        d = a.dtype
        if d.is_float and d.bits < 16 and d not in N.FP8:
            raise em.unsupported(f"tile.{kind}", d)
        fn = lambda x, y: binary(em, kind, d, x, y)  # noqa: E731
        if kind == "div" and d.is_float and d.bits <= 32 and layout is not None and \
                (b.uniform or len(set(b.regs)) < len(b.regs)):
            fn = _shared_divisor(em, d)
        em.set(op.result, _map(em, d, [a, b], fn, layout))
    return lower


for _kind, _cls in T.BINARY_OP_CLASSES.items():
    lowers(_cls)(_binary_lowering(_kind))


# ---------------------------------------------------------------------------- unary

_F32_UNARY = {
    "neg": lambda em, x: N.fop(em, "neg.f32", x),
    "abs": lambda em, x: N.fop(em, "abs.f32", x),
    "relu": lambda em, x: N.fop(em, "max.NaN.f32", x, N.ZERO),
    "exp": lambda em, x: N.exp_f32(em, x),
    "exp2": lambda em, x: N.fop(em, "ex2.approx.ftz.f32", x),
    "log": lambda em, x: N.log_f32(em, x),
    "log2": lambda em, x: N.fop(em, "lg2.approx.ftz.f32", x),
    "sqrt": lambda em, x: N.fop(em, "sqrt.rn.f32", x),
    "rsqrt": lambda em, x: N.fop(em, "rsqrt.approx.f32", x),
    "tanh": lambda em, x: N.fop(em, "tanh.approx.f32", x),
    "sigmoid": lambda em, x: N.sigmoid_f32(em, x),
    "erf": lambda em, x: N.erf_f32(em, x),
    "sin": lambda em, x: N.sincos_f32(em, x, "sin"),
    "cos": lambda em, x: N.sincos_f32(em, x, "cos"),
    "floor": lambda em, x: N.fop(em, "cvt.rmi.f32.f32", x),
    "ceil": lambda em, x: N.fop(em, "cvt.rpi.f32.f32", x),
}


def _f64_unary(em: KernelEmitter, kind: str, x: str) -> str:
    out = em.new("fd")
    simple = {"neg": "neg.f64", "abs": "abs.f64", "sqrt": "sqrt.rn.f64", "floor": "cvt.rmi.f64.f64",
              "ceil": "cvt.rpi.f64.f64"}
    if kind in simple:
        em.ins(f"{simple[kind]} {out}, {x}")
    elif kind == "relu":
        t, p = em.new("fd"), em.new("p")
        em.ins(f"max.f64 {t}, {x}, 0d0000000000000000")
        em.ins(f"setp.nan.f64 {p}, {x}, {x}")
        em.ins(f"selp.f64 {out}, {x}, {t}, {p}")
    elif kind == "rsqrt":
        s = em.new("fd")
        em.ins(f"sqrt.rn.f64 {s}, {x}")
        em.ins(f"div.rn.f64 {out}, 0d3FF0000000000000, {s}")
    else:
        raise em.unsupported(f"tile.{kind}", dt.float64)
    return out


def _int_unary(em: KernelEmitter, kind: str, d: dt.DType, x: str) -> str:
    it, bt = int_type(d), ("b64" if d.bits == 64 else "b32")
    out = em.new(reg_class(d))
    if kind == "neg":
        em.ins(f"neg.{'s64' if d.bits == 64 else 's32'} {out}, {x}")
    elif kind == "abs":
        if not d.is_signed:
            return x
        em.ins(f"abs.{it} {out}, {x}")
    elif kind == "relu":
        if not d.is_signed:
            return x
        em.ins(f"max.{it} {out}, {x}, 0")
    elif kind == "not":
        em.ins(f"not.{bt} {out}, {x}")
    else:
        raise em.unsupported(f"tile.{kind}", d)
    return N.wrap_int(em, d, out)


def unary(em: KernelEmitter, kind: str, d: dt.DType, x: str) -> str:
    if d is dt.bool_:
        if kind == "not":
            out = em.new("p")
            em.ins(f"not.pred {out}, {x}")
            return out
        if kind in ("abs", "relu", "neg"):
            return x
        raise em.unsupported(f"tile.{kind}", d)
    if d.is_float:
        if d.bits == 64:
            return _f64_unary(em, kind, x)
        if kind not in _F32_UNARY:
            raise em.unsupported(f"tile.{kind}", d)
        return N.round_narrow(em, d, _F32_UNARY[kind](em, x))
    return _int_unary(em, kind, d, x)


_NEG_LOG2E = N.f32_imm(-1.4426950408889634)


def _exp_of_difference(em: KernelEmitter, op) -> Val | None:
    """`exp(a - b)` (f32) where `b` is shared by several slots (a broadcast row max, softmax's
    `exp(s - m)`): `ex2(fma(a, log2 e, -b log2 e))`, one multiply per distinct `b`, as flash
    attention computes it; None for other exps."""
    sub = op.source.owner
    if not isinstance(sub, T.BINARY_OP_CLASSES["sub"]) or dtype_of(op.result.type) is not dt.float32 \
            or dtype_of(sub.lhs.type) is not dt.float32:
        return None
    (a, b), layout = operands(em, sub.lhs, sub.rhs)
    if layout is None or a.uniform or not (b.uniform or len(set(b.regs)) < len(b.regs)):
        return None
    scaled: dict[str, str] = {}

    def fn(x: str, y: str) -> str:
        if y not in scaled:
            scaled[y] = N.fop(em, "mul.rn.f32", y, _NEG_LOG2E)
        return N.fop(em, "ex2.approx.ftz.f32", N.fop(em, "fma.rn.f32", x, N.LOG2E, scaled[y]))
    return _map(em, dt.float32, [a, b], fn, layout)


def _unary_lowering(kind: str):
    def lower(em: KernelEmitter, op) -> None:
        if kind == "exp":
            fused = _exp_of_difference(em, op)
            if fused is not None:
                em.set(op.result, fused)
                return
        a = em.get_any(op.source)
        em.set(op.result, _map(em, a.dtype, [a], lambda x: unary(em, kind, a.dtype, x), a.layout))
    return lower


for _kind, _cls in T.UNARY_OP_CLASSES.items():
    lowers(_cls)(_unary_lowering(_kind))


# ---------------------------------------------------------------------------- cmp / select / cast

_CMP_FLOAT = {"eq": "eq", "ne": "neu", "lt": "lt", "le": "le", "gt": "gt", "ge": "ge"}


def compare(em: KernelEmitter, pred: str, d: dt.DType, a: str, b: str) -> str:
    out = em.new("p")
    if d is dt.bool_:
        a, b = N.cast(em, d, dt.int32, a), N.cast(em, d, dt.int32, b)
        em.ins(f"setp.{pred}.u32 {out}, {a}, {b}")
    elif d.is_float:
        em.ins(f"setp.{_CMP_FLOAT[pred]}.{float_type(d)} {out}, {a}, {b}")
    else:
        em.ins(f"setp.{pred}.{int_type(d)} {out}, {a}, {b}")
    return out


@lowers(T.CmpOp)
def lower_cmp(em: KernelEmitter, op: T.CmpOp) -> None:
    (a, b), layout = operands(em, op.lhs, op.rhs)
    pred = op.predicate.data
    em.set(op.result, _map(em, dt.bool_, [a, b], lambda x, y: compare(em, pred, a.dtype, x, y), layout))


def select(em: KernelEmitter, d: dt.DType, c: str, a: str, b: str) -> str:
    if a == b:
        return a
    if d is dt.bool_:
        t, f, nc, out = em.new("p"), em.new("p"), em.new("p"), em.new("p")
        em.ins(f"and.pred {t}, {c}, {a}")
        em.ins(f"not.pred {nc}, {c}")
        em.ins(f"and.pred {f}, {nc}, {b}")
        em.ins(f"or.pred {out}, {t}, {f}")
        return out
    out = em.new(reg_class(d))
    typ = float_type(d) if d.is_float else ("b64" if d.bits == 64 else "b32")
    em.ins(f"selp.{typ} {out}, {a}, {b}, {c}")
    return out


@lowers(T.SelectOp)
def lower_select(em: KernelEmitter, op: T.SelectOp) -> None:
    (c, a, b), layout = operands(em, op.cond, op.true_value, op.false_value)
    d = a.dtype
    em.set(op.result, _map(em, d, [c, a, b], lambda x, y, z: select(em, d, x, y, z), layout))


@lowers(T.CastOp)
def lower_cast(em: KernelEmitter, op: T.CastOp) -> None:
    a = em.get_any(op.source)
    src, dst = a.dtype, dtype_of(op.result.type)
    for d in (src, dst):
        if d.is_float and d.bits < 16 and d not in N.FP8:
            raise em.unsupported("tile.cast", d)
    em.set(op.result, _map(em, dst, [a], lambda x: N.cast(em, src, dst, x), a.layout))
