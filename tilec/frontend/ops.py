"""Semantics of the tile API: type and shape rules, implicit casts and broadcasts, and
the IR each call emits.  The public functions in `tilec.api` are thin wrappers over
these; the AST tracer never builds ops itself.

Shape rules come from the dialect (`tile.matmul_result_shape`, ...), so a mistake is
reported once, in the user's terms, with the kernel's source location.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from xdsl.dialects import arith
from xdsl.dialects.builtin import FloatAttr, IntegerAttr

from tilec import dtypes as dt
from tilec.dialects import tile as T
from tilec.frontend.state import SpecializeDims, current
from tilec.frontend.values import TensorArg, Value

Scalar = (bool, int, float)


def _emit(op):
    return current().emit(op)


def _fail(message: str):
    raise current().error(message)


def _value(op, dtype: dt.DType, shape, deps=frozenset()) -> Value:
    return Value(op.results[0], dtype, None if shape is None else tuple(shape), deps)


# ------------------------------------------------------------------ constants


def constant(v, dtype: dt.DType | None = None) -> Value:
    """A scalar constant of `dtype` (default: the Python value's natural dtype)."""
    dtype = dtype or dt.python_scalar_dtype(v)
    if dtype.is_int and not isinstance(v, bool) and isinstance(v, int):
        lo, hi = (0, 2 ** dtype.bits) if dtype.kind == "uint" else (-2 ** (dtype.bits - 1), 2 ** (dtype.bits - 1))
        if not lo <= v < hi:
            _fail(f"the Python int {v} does not fit in {dtype.api_name}; "
                  f"cast the other operand first, e.g. .astype(ct.int64)")
    if dtype.is_float:
        attr = FloatAttr(float(v), dtype.ir_type)
    elif dtype is dt.bool_:
        attr = IntegerAttr(int(bool(v)), dtype.ir_type)
    else:
        attr = IntegerAttr(int(v), dtype.ir_type)
    return _value(_emit(arith.ConstantOp(attr, dtype.ir_type)), dtype, None)


def static_int(v, what: str) -> int:
    """`v` as a compile-time int; a run-time tensor dim triggers specialisation."""
    if isinstance(v, Value):
        if v.deps:
            raise SpecializeDims(v.deps)
        _fail(f"{what} must be a compile-time constant, got a run-time value "
              f"(pass it as a ct.Constant[int] kernel argument)")
    if isinstance(v, bool) or not isinstance(v, int):
        try:
            import numpy as np
            if isinstance(v, np.integer):
                return int(v)
        except ImportError:  # pragma: no cover
            pass
        _fail(f"{what} must be an integer, got {v!r}")
    return v


def static_shape(shape, what: str) -> tuple[int, ...]:
    if isinstance(shape, (int, Value)):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        _fail(f"{what} must be a list of compile-time integers, got {shape!r}")
    dims = tuple(static_int(d, what) for d in shape)
    if any(d <= 0 for d in dims):
        _fail(f"{what} must be positive, got {list(dims)}")
    return dims


def as_value(x, like: Value | None = None) -> Value:
    """A Value for `x`; Python scalars take `like`'s dtype under weak promotion."""
    if isinstance(x, Value):
        return x
    if isinstance(x, Scalar):
        dtype = dt.promote_with_scalar(like.dtype, x) if like is not None else dt.python_scalar_dtype(x)
        return constant(x, dtype)
    if isinstance(x, TensorArg):
        _fail(f"tensor argument '{x.name}' cannot be used as a value; load a tile from it with ct.load_tile")
    _fail(f"expected a tile or a number, got {type(x).__name__} {x!r}")


# ------------------------------------------------------------------ casts and broadcasts


def cast(x, dtype) -> Value:
    try:
        to = dt.lookup(dtype)
    except KeyError as e:
        _fail(str(e.args[0]))
    x = as_value(x)
    if x.dtype is to:
        return x
    return _value(_emit(T.CastOp(x.ssa, to.ir_type)), to, x.shape, x.deps)


def _tile_type(shape, dtype: dt.DType) -> T.TileType:
    return T.TileType(shape, dtype.ir_type)


def splat(x: Value, shape: Sequence[int]) -> Value:
    return _value(_emit(T.SplatOp(x.ssa, _tile_type(shape, x.dtype))), x.dtype, shape)


def reshape(x, shape) -> Value:
    x = as_value(x)
    shape = static_shape(shape, "reshape's shape")
    if x.is_scalar:
        if math.prod(shape) != 1:
            _fail(f"cannot reshape a scalar to {list(shape)}")
        return splat(x, shape)
    if math.prod(shape) != math.prod(x.shape):
        _fail(f"cannot reshape a tile of shape {list(x.shape)} to {list(shape)}: sizes differ")
    if tuple(shape) == x.shape:
        return x
    return _value(_emit(T.ReshapeOp(x.ssa, _tile_type(shape, x.dtype))), x.dtype, shape)


def broadcast_to(x, shape) -> Value:
    x = as_value(x)
    shape = static_shape(shape, "broadcast shape")
    if x.is_scalar:
        return splat(x, shape)
    if x.shape == shape:
        return x
    if len(x.shape) > len(shape):
        _fail(f"cannot broadcast a tile of shape {list(x.shape)} to the smaller rank shape {list(shape)}")
    if len(x.shape) < len(shape):
        x = reshape(x, (1,) * (len(shape) - len(x.shape)) + x.shape)
    if any(a != b and a != 1 for a, b in zip(x.shape, shape)):
        _fail(f"cannot broadcast a tile of shape {list(x.shape)} to {list(shape)}")
    return _value(_emit(T.BroadcastOp(x.ssa, _tile_type(shape, x.dtype))), x.dtype, shape)


def _unify(a, b, promote_ints_to_float: bool = False) -> tuple[Value, Value]:
    """Promote dtypes and broadcast shapes of two operands (scalars are weak)."""
    if not isinstance(a, Value) and not isinstance(b, Value):
        _fail(f"expected a tile operand, got {a!r} and {b!r}")
    if not isinstance(a, Value):
        a = as_value(a, like=b)
    if not isinstance(b, Value):
        b = as_value(b, like=a)
    dtype = dt.promote(a.dtype, b.dtype)
    if promote_ints_to_float and not dtype.is_float:
        dtype = dt.float32
    a, b = cast(a, dtype), cast(b, dtype)
    if a.shape == b.shape:
        return a, b
    try:
        shape = T.broadcast_shapes(a.shape or (), b.shape or ())
    except T.ShapeError as e:
        _fail(str(e))
    return broadcast_to(a, shape), broadcast_to(b, shape)


# ------------------------------------------------------------------ elementwise


_PY_BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "floordiv": lambda a, b: a // b, "rem": lambda a, b: a % b,
    "pow": lambda a, b: a ** b, "maximum": max, "minimum": min, "and": lambda a, b: a & b,
    "or": lambda a, b: a | b, "xor": lambda a, b: a ^ b, "shl": lambda a, b: a << b,
    "shr": lambda a, b: a >> b,
}


def binary(kind: str, a, b):
    """`a <kind> b` with promotion and broadcasting; Python numbers fold at trace time."""
    if not isinstance(a, Value) and not isinstance(b, Value):
        return _PY_BINARY[kind](a, b)
    if isinstance(a, TensorArg) or isinstance(b, TensorArg):
        as_value(a if isinstance(a, TensorArg) else b)
    a, b = _unify(a, b, promote_ints_to_float=kind in ("div", "pow"))
    if kind in ("and", "or", "xor", "shl", "shr") and a.dtype.is_float:
        _fail(f"bitwise '{kind}' needs integer or bool operands, got {a.dtype.api_name}")
    op = _emit(T.BINARY_OP_CLASSES[kind](a.ssa, b.ssa))
    return _value(op, a.dtype, a.shape, a.deps | b.deps)


def compare(pred: str, a, b):
    if not isinstance(a, Value) and not isinstance(b, Value):
        return {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b, "eq": a == b, "ne": a != b}[pred]
    a, b = _unify(a, b)
    return _value(_emit(T.CmpOp(pred, a.ssa, b.ssa)), dt.bool_, a.shape)


_FLOAT_UNARY = {"exp", "exp2", "log", "log2", "sqrt", "rsqrt", "tanh", "sigmoid", "erf", "sin", "cos",
                "floor", "ceil"}


def unary(kind: str, x):
    if isinstance(x, Scalar):
        x = as_value(x)
    x = as_value(x)
    if kind in _FLOAT_UNARY and not x.dtype.is_float:
        x = cast(x, dt.float32)
    if kind == "not" and x.dtype.is_float:
        _fail("'not' / '~' needs an integer or bool operand")
    return _value(_emit(T.UNARY_OP_CLASSES[kind](x.ssa)), x.dtype, x.shape, x.deps)


def where(cond, a, b) -> Value:
    if not isinstance(cond, Value):
        return a if cond else b
    if cond.dtype is not dt.bool_:
        cond = compare("ne", cond, 0)
    if isinstance(a, Scalar) and isinstance(b, Scalar):  # `1.5 if c else 2`: both weak
        a = constant(a, dt.promote(dt.python_scalar_dtype(a), dt.python_scalar_dtype(b)))
    a, b = _unify(a, b)
    try:
        shape = T.broadcast_shapes(cond.shape or (), a.shape or ()) if (cond.shape or a.shape) else None
    except T.ShapeError as e:
        _fail(f"ct.where: {e}")
    if shape is not None:
        cond, a, b = broadcast_to(cond, shape), broadcast_to(a, shape), broadcast_to(b, shape)
    return _value(_emit(T.SelectOp(cond.ssa, a.ssa, b.ssa)), a.dtype, a.shape)


# ------------------------------------------------------------------ shape manipulation


def _norm_axis(axis, rank: int) -> int:
    axis = static_int(axis, "axis")
    if not -rank <= axis < rank:
        _fail(f"axis {axis} is out of range for a tile of rank {rank}")
    return axis % rank


def permute(x, perm) -> Value:
    x = as_value(x)
    if x.is_scalar:
        _fail("cannot permute a scalar")
    perm = tuple(_norm_axis(p, x.ndim) for p in perm)
    try:
        shape = T.permute_shape(x.shape, perm)
    except T.ShapeError as e:
        _fail(str(e))
    if perm == tuple(range(x.ndim)):
        return x
    return _value(_emit(T.PermuteOp(x.ssa, perm)), x.dtype, shape)


def transpose(x) -> Value:
    """Swap the last two axes."""
    x = as_value(x)
    if x.is_scalar or x.ndim < 2:
        _fail(f"transpose needs a tile of rank >= 2, got {'a scalar' if x.is_scalar else list(x.shape)}")
    perm = list(range(x.ndim))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    return permute(x, perm)


def expand_dims(x, axis) -> Value:
    x = as_value(x)
    shape = list(x.shape or ())
    axis = static_int(axis, "axis")
    if axis < 0:
        axis += len(shape) + 1
    if not 0 <= axis <= len(shape):
        _fail(f"axis {axis} is out of range for expand_dims of a rank-{len(shape)} tile")
    shape.insert(axis, 1)
    return reshape(x, shape)


def subscript(x: Value, index) -> Value:
    """`x[:, None]`-style indexing: only full slices, `None` and `...` are supported."""
    if not isinstance(index, tuple):
        index = (index,)
    if x.is_scalar:
        _fail("cannot index a scalar")
    n_real = sum(1 for i in index if i is not None and i is not Ellipsis)
    if Ellipsis in index:
        pos = index.index(Ellipsis)
        index = index[:pos] + (slice(None),) * (x.ndim - n_real) + index[pos + 1:]
    elif n_real < x.ndim:
        index = index + (slice(None),) * (x.ndim - n_real)
    if sum(1 for i in index if i is not None) != x.ndim:
        _fail(f"too many indices for a tile of rank {x.ndim}")
    shape, src = [], iter(x.shape)
    for i in index:
        if i is None:
            shape.append(1)
        elif isinstance(i, slice) and i == slice(None):
            shape.append(next(src))
        else:
            _fail("tiles support only ':' and 'None' in subscripts (use ct.load_tile to read parts of a tensor)")
    return reshape(x, shape)


# ------------------------------------------------------------------ matmul and reductions


def matmul(a, b, acc=None, a_scale=None, b_scale=None, block=None) -> Value:
    if a_scale is not None or b_scale is not None:
        if a_scale is None or b_scale is None:
            _fail("a block-scaled matmul needs both a_scale and b_scale")
        return scaled_matmul(a, a_scale, b, b_scale, block, acc)
    if block is not None:
        _fail("matmul's block= applies to block-scaled operands; pass a_scale= and b_scale= too")
    a, b = as_value(a), as_value(b)
    if a.is_scalar or b.is_scalar:
        _fail("matmul needs two tiles, got a scalar")
    try:
        shape = T.matmul_result_shape(a.shape, b.shape)
    except T.ShapeError as e:
        _fail(str(e))
    if a.dtype is not b.dtype:
        common = dt.promote(a.dtype, b.dtype)
        a, b = cast(a, common), cast(b, common)
    out = dt.accumulator_for(a.dtype)
    c = _value(_emit(T.MatmulOp(a.ssa, b.ssa, _tile_type(shape, out))), out, shape)
    if acc is not None:
        c = binary("add", acc, c)
    return c


# ------------------------------------------------------------------ block scaling (fp4)

_SCALE_DTYPES = (dt.float8_e8m0fnu, dt.float8_e4m3fn)
_BLOCK_SCALED_DTYPES = (dt.float4_e2m1fn, dt.float8_e4m3fn, dt.float8_e5m2)
_UNSCALED_DTYPES = (dt.float32, dt.float16, dt.bfloat16)


def _lookup(dtype, what: str) -> dt.DType:
    try:
        return dt.lookup(dtype)
    except KeyError as e:
        _fail(f"{what}: {e.args[0]}")


def _tile_arg(x, what: str) -> Value:
    x = as_value(x)
    if x.is_scalar:
        _fail(f"{what} must be a tile, got a scalar")
    return x


def _scales_arg(s, what: str) -> Value:
    s = _tile_arg(s, what)
    if s.dtype not in _SCALE_DTYPES:
        _fail(f"{what} must be float8_e8m0fnu (MX) or float8_e4m3fn (NVFP4) scales, got {s.dtype.api_name}")
    return s


def _global_scale(g) -> Value:
    if isinstance(g, Value) and not g.is_scalar:
        _fail("global_scale must be a scalar (one float32 scale for the whole tensor)")
    return cast(as_value(g), dt.float32) if isinstance(g, Value) else constant(float(g), dt.float32)


def _block(block, k: int, n_scales: int, what: str) -> int:
    """`block` as given, or K / (number of scales) when None."""
    if block is None:
        if n_scales <= 0 or k % n_scales:
            _fail(f"{what}: {n_scales} scales per row do not split the {k} elements of the last axis into "
                  f"equal blocks; pass block=")
        return k // n_scales
    block = static_int(block, f"{what} block")
    if block <= 0:
        _fail(f"{what} block must be positive, got {block}")
    return block


def quantize(x, dtype=dt.float4_e2m1fn, block=32, scale_dtype=dt.float8_e8m0fnu, global_scale=None):
    x = _tile_arg(x, "quantize's input")
    to = _lookup(dtype, "quantize")
    sd = _lookup(scale_dtype, "quantize")
    if to is not dt.float4_e2m1fn:
        _fail(f"ct.quantize produces float4_e2m1fn tiles, got dtype={to.api_name}")
    if sd not in _SCALE_DTYPES:
        _fail(f"quantize scale_dtype must be float8_e8m0fnu (MX) or float8_e4m3fn (NVFP4), got {sd.api_name}")
    block = static_int(block, "quantize block")
    try:
        scale_shape = T.block_scales_shape(x.shape, block)
    except T.ShapeError as e:
        _fail(f"quantize: {e}")
    if global_scale is not None:
        x = binary("div", cast(x, dt.float32), _global_scale(global_scale))
    elif x.dtype not in _UNSCALED_DTYPES:
        x = cast(x, dt.float32)
    op = _emit(T.QuantizeOp(x.ssa, block, to.ir_type, sd.ir_type))
    return Value(op.result, to, x.shape), Value(op.scales, sd, scale_shape)


def dequantize(q, scales, block=None, dtype=dt.float32, global_scale=None) -> Value:
    q = _tile_arg(q, "dequantize's input")
    s = _scales_arg(scales, "dequantize's scales")
    out = _lookup(dtype, "dequantize")
    if q.dtype not in _BLOCK_SCALED_DTYPES:
        _fail(f"dequantize needs a float4_e2m1fn (or fp8) tile, got {q.dtype.api_name}")
    if out not in _UNSCALED_DTYPES:
        _fail(f"dequantize produces float32, float16 or bfloat16, got dtype={out.api_name}")
    block = _block(block, q.shape[-1], s.shape[-1], "dequantize")
    try:
        want = T.block_scales_shape(q.shape, block)
    except T.ShapeError as e:
        _fail(f"dequantize: {e}")
    if s.shape != want:
        _fail(f"dequantize: scales of a {list(q.shape)} tile with block {block} must have shape {list(want)}, "
              f"got {list(s.shape)}")
    if global_scale is None:
        return _value(_emit(T.DequantizeOp(q.ssa, s.ssa, block, out.ir_type)), out, q.shape)
    r = _value(_emit(T.DequantizeOp(q.ssa, s.ssa, block, dt.float32.ir_type)), dt.float32, q.shape)
    return cast(binary("mul", r, _global_scale(global_scale)), out)


def scaled_matmul(a, a_scale, b, b_scale, block=None, acc=None) -> Value:
    a, b = _tile_arg(a, "scaled matmul's a"), _tile_arg(b, "scaled matmul's b")
    sa, sb = _scales_arg(a_scale, "a_scale"), _scales_arg(b_scale, "b_scale")
    for name, v in (("a", a), ("b", b)):
        if v.dtype not in _BLOCK_SCALED_DTYPES:
            _fail(f"a block-scaled matmul needs float4_e2m1fn (or fp8 e4m3/e5m2) operands, but {name} is "
                  f"{v.dtype.api_name}; make one with ct.quantize")
    if sa.dtype is not sb.dtype:
        _fail(f"a_scale and b_scale must share a dtype, got {sa.dtype.api_name} and {sb.dtype.api_name}")
    if a.ndim != 2 or b.ndim != 2:
        _fail(f"a block-scaled matmul needs 2-D tiles, got shapes {list(a.shape)} and {list(b.shape)}")
    block = _block(block, a.shape[-1], sa.shape[-1], "scaled matmul")
    try:
        shape = T.scaled_matmul_result_shape(a.shape, sa.shape, b.shape, sb.shape, block)
    except T.ShapeError as e:
        _fail(str(e))
    c = _value(_emit(T.ScaledMatmulOp(a.ssa, sa.ssa, b.ssa, sb.ssa, block, _tile_type(shape, dt.float32))),
               dt.float32, shape)
    if acc is not None:
        c = binary("add", acc, c)
    return c


def reduce(kind: str, x, axis=None, keepdims: bool = False) -> Value:
    x = as_value(x)
    if x.is_scalar:
        _fail(f"{kind} needs a tile, got a scalar")
    if axis is None:  # all axes: flatten, reduce, restore the kept dims
        flat = reshape(x, (math.prod(x.shape),))
        r = reduce(kind, flat, 0, False)
        if keepdims:
            return reshape(r, (1,) * x.ndim)
        return _value(_emit(T.ExtractOp(r.ssa)), r.dtype, None)
    if isinstance(axis, (tuple, list)):
        if kind in ("argmax", "argmin") and len(axis) != 1:
            _fail(f"{kind} takes one axis or None (the flattened tile), got axis={tuple(axis)}")
        axes = sorted({_norm_axis(a, x.ndim) for a in axis}, reverse=True)
        for ax in axes:
            x = reduce(kind, x, ax, True)
        return x if keepdims else reshape(x, tuple(d for i, d in enumerate(x.shape) if i not in axes))
    axis = _norm_axis(axis, x.ndim)
    if kind in ("argmax", "argmin"):
        out = dt.int32
    elif kind == "sum" and x.dtype.is_float:
        out = dt.float32
    elif kind == "sum" and x.dtype.bits < 32:
        out = dt.int32
    else:
        out = x.dtype
    op = _emit(T.ReduceOp(kind, x.ssa, axis, bool(keepdims), out.ir_type))
    return _value(op, out, op.result.type.get_shape())


# ------------------------------------------------------------------ creation


def full(shape, value, dtype=None) -> Value:
    shape = static_shape(shape, "tile shape")
    if dtype is not None:
        try:
            d = dt.lookup(dtype)
        except KeyError as e:
            _fail(str(e.args[0]))
    else:
        d = dt.python_scalar_dtype(value) if not isinstance(value, Value) else value.dtype
    v = cast(value, d) if isinstance(value, Value) else constant(value, d)
    if v.shape is not None:
        _fail("ct.full takes a scalar fill value")
    return splat(v, shape)


def arange(start, stop=None) -> Value:
    if stop is None:
        start, stop = 0, start
    start, stop = static_int(start, "arange start"), static_int(stop, "arange stop")
    if stop <= start:
        _fail(f"arange needs stop > start, got {start}, {stop}")
    return _value(_emit(T.ArangeOp(stop - start, start)), dt.int32, (stop - start,))


# ------------------------------------------------------------------ grid and memory


def tile_idx(axis) -> Value:
    axis = static_int(axis, "tile_idx axis")
    if axis < 0:
        _fail(f"tile_idx axis must be >= 0, got {axis}")
    st = current()
    st.max_grid_axis = max(st.max_grid_axis, axis)
    return _value(_emit(T.TileIdxOp(axis)), dt.int32, None)


def num_tiles(axis) -> Value:
    axis = static_int(axis, "num_tiles axis")
    st = current()
    st.max_grid_axis = max(st.max_grid_axis, axis)
    return _value(_emit(T.NumTilesOp(axis)), dt.int32, None)


def tensor_dim(t: TensorArg, axis: int) -> Value:
    return _value(_emit(T.DimOp(t.ssa, axis)), dt.int32, None, frozenset({(t.index, axis)}))


def _offsets(t: TensorArg, offset, what: str) -> list:
    if not isinstance(offset, (tuple, list)):
        offset = [offset]
    if len(offset) != t.ndim:
        _fail(f"{what}: tensor '{t.name}' has rank {t.ndim}, so it needs {t.ndim} offsets, got {len(offset)}")
    out = []
    for o in offset:
        v = as_value(o) if isinstance(o, int) else o
        if not isinstance(v, Value) or not v.is_scalar or not v.dtype.is_int and v.dtype is not dt.bool_:
            _fail(f"{what}: offsets must be integer scalars, got {o!r}")
        out.append(cast(v, dt.int32).ssa)
    return out


def _tensor(t, what: str) -> TensorArg:
    if not isinstance(t, TensorArg):
        _fail(f"{what} needs a tensor argument of the kernel as its first argument, got {t!r}")
    return t


def load(t, offset, size, boundary_check: bool = True, padding=0) -> Value:
    t = _tensor(t, "load_tile")
    offs = _offsets(t, offset, "load_tile")
    shape = static_shape(size, "load_tile size")
    if len(shape) != t.ndim:
        _fail(f"load_tile: tensor '{t.name}' has rank {t.ndim}, so size needs {t.ndim} dims, got {list(shape)}")
    if not isinstance(padding, (int, float)) or isinstance(padding, bool):
        _fail(f"load_tile padding must be a number, got {padding!r}")
    _check_packed(t, shape, "load_tile")
    op = _emit(T.LoadOp(t.ssa, offs, _tile_type(shape, t.dtype), bool(boundary_check), float(padding)))
    return _value(op, t.dtype, shape)


def store(t, offset, tile, mode: str = "store") -> None:
    t = _tensor(t, "store_tile")
    if mode not in T.STORE_MODES:
        _fail(f"store_tile mode must be one of {list(T.STORE_MODES)}, got {mode!r}")
    offs = _offsets(t, offset, "store_tile")
    if not isinstance(tile, Value) or tile.is_scalar:
        _fail("store_tile needs a tile value (make one with ct.full for a constant)")
    if tile.ndim != t.ndim:
        _fail(f"store_tile: tensor '{t.name}' has rank {t.ndim} but the tile has shape {list(tile.shape)}")
    _check_packed(t, tile.shape, "store_tile")
    tile = cast(tile, t.dtype)
    _emit(T.StoreOp(t.ssa, offs, tile.ssa, mode))


def _check_packed(t: TensorArg, shape, what: str) -> None:
    try:
        T.check_packed_tile(t.dtype.ir_type, shape)
    except T.ShapeError as e:
        _fail(f"{what}: tensor '{t.name}' is packed fp4, so {e}")


def rand(seed, offsets) -> Value:
    """Philox4x32-10 uniforms in [0, 1) for each element of the i32 tile `offsets`."""
    seed = cast(as_value(seed), dt.int64) if not isinstance(seed, int) else constant(seed, dt.int64)
    offsets = as_value(offsets)
    if offsets.is_scalar or not offsets.dtype.is_int:
        _fail("rand offsets must be an integer tile")
    offsets = cast(offsets, dt.int32)
    return _value(_emit(T.RandOp(seed.ssa, offsets.ssa)), dt.float32, offsets.shape)


def program_linear_id() -> Value:
    """Row-major linear index of this program over the grid dims the kernel uses."""
    st = current()
    rank = st.max_grid_axis + 1
    if rank <= 0:
        return constant(0, dt.int32)
    lin = tile_idx(0)
    for axis in range(1, rank):
        lin = binary("add", binary("mul", lin, num_tiles(axis)), tile_idx(axis))
    return lin


def dropout(x, p, seed, offsets=None) -> Value:
    """Zero each element with probability `p`, scale the kept ones by 1/(1-p).

    The element's Philox counter is `offsets` if given, else
    `program_linear_id * numel(x) + flat element index`, so every backend drops the
    same elements for the same seed and launch.
    """
    x = as_value(x)
    if x.is_scalar:
        _fail("dropout needs a tile")
    if isinstance(p, (int, float)):
        if not 0.0 <= p < 1.0:
            _fail(f"dropout probability must be in [0, 1), got {p}")
        if p == 0.0:
            return x
    if offsets is None:
        n = math.prod(x.shape)
        lin = binary("mul", program_linear_id(), n)
        offsets = binary("add", reshape(arange(0, n), x.shape), lin)
    u = rand(seed, offsets)
    keep = compare("ge", u, p)
    scaled = binary("mul", x, binary("div", 1.0, binary("sub", 1.0, p)))
    return where(keep, scaled, 0.0)
