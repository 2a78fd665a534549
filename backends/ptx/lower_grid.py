"""Kernel parameters, grid queries and constants: `tile.tile_idx`, `tile.num_tiles`,
`tile.dim`, `arith.constant`.

`bind_params` declares the kernel ABI (see `emitter.py`) and loads every parameter
once at kernel entry.  Grid axes 0 and 1 are `%ctaid.x` / `%ctaid.y`; axes 2.. are
folded onto `%ctaid.z` (axis 2 fastest) and decoded with the extents passed as the
trailing `.u32` parameters.
"""

from __future__ import annotations

from xdsl.dialects import arith
from xdsl.dialects.builtin import FloatAttr, IntegerAttr
from xdsl.ir import Block

from tilec import dtypes as dt
from tilec.dialects import tile as T

from .emitter import KernelEmitter, KernelParam, TensorInfo, Val, dtype_of, lowers
from .ptx_types import float_imm, int_imm, is_narrow_float, reg_class


def _scalar_kind(d: dt.DType) -> tuple[str, str]:
    """(launch kind, ld.param type) of a scalar argument of dtype `d`."""
    if d.is_float:
        return ("f64", "f64") if d.bits == 64 else ("f32", "f32")
    if d.bits == 64:
        return "i64", "b64"
    return ("u32" if d.kind == "uint" else "i32"), "b32"


def bind_params(em: KernelEmitter, block: Block) -> None:
    """Declare the parameters and load them (pointers, dims, strides, scalars, grid extents)."""
    em.memo("tid", lambda: em._special("%tid.x"))
    for i, arg in enumerate(block.args):
        t = arg.type
        if isinstance(t, T.TensorType):
            name = f"p{i}"
            em.params.append(KernelParam(name, "ptr", ("tensor", i)))
            raw, ptr = em.new("rd"), em.new("rd")
            em.ins(f"ld.param.u64 {raw}, [{name}]")
            em.ins(f"cvta.to.global.u64 {ptr}, {raw}")
            dims: list = []
            for ax, static in enumerate(t.get_shape()):
                pname = f"p{i}_d{ax}"
                em.params.append(KernelParam(pname, "u32", ("dim", i, ax)))
                if static >= 0:
                    dims.append(static)
                else:
                    r = em.new("r")
                    em.ins(f"ld.param.u32 {r}, [{pname}]")
                    dims.append(r)
            em.tensors[arg] = TensorInfo(dtype_of(t), ptr, dims, _strides(em, dims))
            continue
        d = dtype_of(t)
        kind, ptype = _scalar_kind(d)
        name = f"p{i}"
        em.params.append(KernelParam(name, kind, ("scalar", i, d.name)))
        if d is dt.bool_:
            r, p = em.new("r"), em.new("p")
            em.ins(f"ld.param.b32 {r}, [{name}]")
            em.ins(f"setp.ne.u32 {p}, {r}, 0")
            em.set(arg, Val(d, None, [p]))
            continue
        r = em.new(reg_class(d))
        em.ins(f"ld.param.{ptype} {r}, [{name}]")
        em.set(arg, Val(d, None, [r]))
    for axis in range(2, em.grid_rank):
        em.params.append(KernelParam(f"grid{axis}", "u32", ("grid", axis)))


def _strides(em: KernelEmitter, dims: list) -> list:
    """u64 element strides of a row-major tensor (ints where the trailing dims are static)."""
    r = len(dims)
    out: list = [1] * r
    acc = 1
    for d in range(r - 2, -1, -1):
        nxt = dims[d + 1]
        if isinstance(acc, int) and isinstance(nxt, int):
            acc = acc * nxt
        else:
            reg = em.new("rd")
            if isinstance(acc, int):
                em.ins(f"mul.wide.u32 {reg}, {nxt}, {acc}")
            else:
                wide = em.new("rd")
                em.ins(f"cvt.u64.u32 {wide}, {em.as_reg(nxt)}")
                em.ins(f"mul.lo.u64 {reg}, {acc}, {wide}")
            acc = reg
        out[d] = acc
    return out


def grid_param(em: KernelEmitter, axis: int) -> str:
    def make():
        r = em.new("r")
        em.ins(f"ld.param.u32 {r}, [grid{axis}]")
        return r
    return em.memo(("grid", axis), make)


@lowers(T.TileIdxOp)
def lower_tile_idx(em: KernelEmitter, op: T.TileIdxOp) -> None:
    axis = op.axis.value.data
    if axis < 2:
        r = em.memo(("ctaid", axis), lambda: em._special("%ctaid." + "xy"[axis]))
    else:
        z = em.memo(("ctaid", 2), lambda: em._special("%ctaid.z"))
        for a in range(2, axis):
            z = em.div_u32(z, grid_param(em, a))
        r = em.rem_u32(z, grid_param(em, axis))
    em.set(op.result, Val(dt.int32, None, [r]))


@lowers(T.NumTilesOp)
def lower_num_tiles(em: KernelEmitter, op: T.NumTilesOp) -> None:
    axis = op.axis.value.data
    if axis < 2:
        r = em.memo(("nctaid", axis), lambda: em._special("%nctaid." + "xy"[axis]))
    else:
        r = grid_param(em, axis)
    em.set(op.result, Val(dt.int32, None, [r]))


@lowers(T.DimOp)
def lower_dim(em: KernelEmitter, op: T.DimOp) -> None:
    dim = em.tensors[op.tensor].dims[op.axis.value.data]
    em.set(op.result, Val(dt.int32, None, [em.as_reg(dim)]))


def constant_reg(em: KernelEmitter, d: dt.DType, value) -> str:
    """A register holding the constant `value` of dtype `d` (memoised per region)."""
    def make():
        cls = reg_class(d)
        r = em.new(cls)
        if d is dt.bool_:
            em.ins(f"setp.ne.u32 {r}, {em.as_reg(1 if value else 0)}, 0")
        elif d.is_float:
            em.ins(f"mov.{'f64' if d.bits == 64 else 'f32'} {r}, {float_imm(d, float(value))}")
        else:
            em.ins(f"mov.{'b64' if d.bits == 64 else 'b32'} {r}, {int_imm(d, int(value))}")
        return r
    key = float(value) if d.is_float else int(value)
    if d.is_float and key == 0.0:
        key = ("zero", str(value))  # keep -0.0 apart from 0.0
    return em.memo(("const", d.name, key), make)


@lowers(arith.ConstantOp)
def lower_constant(em: KernelEmitter, op: arith.ConstantOp) -> None:
    attr = op.value
    d = dtype_of(op.result.type)
    if not isinstance(attr, (IntegerAttr, FloatAttr)):
        raise em.unsupported("arith.constant", d, f"only scalar integer/float constants, got {attr}")
    value = attr.value.data
    if is_narrow_float(d) or d.is_float:
        value = float(value)
    r = constant_reg(em, d, value)
    layout = em.layout_of(op.result.type)
    em.set(op.result, Val(d, layout, [r] * (1 if layout is None else layout.num_slots), True))
