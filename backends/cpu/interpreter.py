"""CPU simulation of tile-dialect kernels: every program instance of the grid at once.

A kernel (`func.func` over `tile.*`, `arith.constant`, `scf.for`, `scf.if`) is
compiled once per launch into a list of closures `step(env, ctx)` over a slot
array `env`.  Every runtime value is a numpy array whose leading G dims are the
grid dims (G = len(grid)), each of size 1 where the value does not depend on that
grid axis, followed by the tile dims:

    tile.tile_idx 0 on grid (16, 16)        -> arange(16).reshape(16, 1)
    arith.constant 64 : i32                 -> shape (1, 1)
    tile<64x32> loaded at offsets (i*64, k) -> shape (16, 1, 64, 32)

numpy broadcasting then runs each op once per *distinct* value, not once per
program.  `scf.for` bounds and `scf.if` conditions must be grid-uniform to run
batched; when one is not (checked at run time), that op alone runs per program
instance over the grid axes its control values vary along (see `_per_program`).

Numerics follow the GPU: narrow floats (f16, bf16, fp8, fp4) are computed in f32
and rounded back after every op, matmul accumulates in f32 (ints in i32), float
`sum` accumulates in f32, i32 arithmetic wraps, integer `floordiv`/`rem` follow
Python, float -> fp8/fp4 casts saturate to the largest finite value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import ml_dtypes
import numpy as np
from xdsl.dialects import arith, func, scf
from xdsl.dialects.builtin import FloatAttr, IndexType, IntegerAttr, IntegerType, ModuleOp, Signedness
from xdsl.ir import Block, Operation, SSAValue

from tilec import dtypes
from tilec.dialects import tile as T

from .philox import rand as _philox_rand

__all__ = ["run_kernel", "interpret_module"]

Env = list
Step = Callable[[Env, "_Ctx"], None]
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)


# --------------------------------------------------------------------------- dtypes


def _dtype_of(t) -> dtypes.DType:
    elt = T.element_type_of(t)
    return dtypes.int64 if isinstance(elt, IndexType) else dtypes.from_ir(elt)


def _is_narrow_float(d: dtypes.DType) -> bool:
    """Floats that numpy cannot compute in natively: computed in f32, rounded back."""
    return d.is_float and d.bits < 32


def _saturates(d: dtypes.DType) -> bool:
    """Casts into these clamp to the largest finite value (`cvt.rn.satfinite`)."""
    return d.is_float and d.bits <= 8 and d is not dtypes.float8_e8m0fnu


def _erf(x: np.ndarray) -> np.ndarray:
    """erf in float64: Taylor series for |x| < 2, Numerical Recipes' erfc fit beyond."""
    x = np.asarray(x, dtype=_F64)
    ax = np.abs(x)
    small = np.where(ax < 2.0, x, 0.0)
    x2 = small * small
    term = small.copy()
    total = small.copy()
    for n in range(1, 40):
        term *= -x2 / n
        total += term / (2 * n + 1)
    taylor = total * (2.0 / math.sqrt(math.pi))
    t = 1.0 / (1.0 + 0.5 * ax)
    poly = -ax * ax - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    tail = np.sign(x) * (1.0 - t * np.exp(poly))
    return np.where(ax < 2.0, taylor, tail)


_BINARY_FUNCS = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide,
    "floordiv": np.floor_divide, "rem": np.mod, "pow": np.power,
    "maximum": np.maximum, "minimum": np.minimum,
    "and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor,
    "shl": np.left_shift, "shr": np.right_shift,
}


def _unary_func(mnemonic: str, d: dtypes.DType) -> Callable[[np.ndarray], np.ndarray]:
    if mnemonic == "not":
        return np.logical_not if d is dtypes.bool_ else np.invert
    if mnemonic == "relu":
        zero = np.zeros((), d.np_dtype if not _is_narrow_float(d) else _F32)
        return lambda x: np.maximum(x, zero)
    if mnemonic == "rsqrt":
        return lambda x: 1.0 / np.sqrt(x)
    if mnemonic == "sigmoid":
        return lambda x: 1.0 / (1.0 + np.exp(-x))
    if mnemonic == "erf":
        return _erf
    return {
        "neg": np.negative, "abs": np.abs, "exp": np.exp, "exp2": np.exp2, "log": np.log,
        "log2": np.log2, "sqrt": np.sqrt, "tanh": np.tanh, "sin": np.sin, "cos": np.cos,
        "floor": np.floor, "ceil": np.ceil,
    }[mnemonic]


def _elementwise(fn: Callable, d: dtypes.DType) -> Callable:
    """Wrap a numpy function so it computes like the GPU for dtype `d` and returns `d`."""
    out = d.np_dtype
    if _is_narrow_float(d):
        def narrow(*xs):
            return fn(*(x.astype(_F32) for x in xs)).astype(out)
        return narrow

    def native(*xs):
        r = fn(*xs)
        return r if r.dtype == out else r.astype(out)
    return native


def _make_cast(src: dtypes.DType, dst: dtypes.DType) -> Callable[[np.ndarray], np.ndarray]:
    out = dst.np_dtype
    if src is dst:
        return lambda x: x
    if dst is dtypes.bool_:
        if _is_narrow_float(src):
            return lambda x: x.astype(_F32) != 0
        return lambda x: x != 0
    if dst.is_float:
        # ints go through f64 (exact for <= 32 bits) so the final rounding is the only one
        wide = _F64 if (not src.is_float or src is dtypes.float64) else _F32
        if _saturates(dst):
            big = float(ml_dtypes.finfo(out).max)
            return lambda x: np.clip(x.astype(wide), -big, big).astype(out)
        return lambda x: x.astype(wide).astype(out)
    # dst is an integer
    if src.is_float:
        info = np.iinfo(out)
        lo = float(info.min)
        hi = float(info.max) if dst.bits < 64 else float(np.nextafter(2.0**63, 0))  # largest f64 < 2**63

        def f2i(x):
            y = np.trunc(x.astype(_F64))
            y = np.where(np.isnan(y), 0.0, np.clip(y, lo, hi))  # cvt.rzi.sat: NaN -> 0
            return y.astype(out)
        return f2i
    return lambda x: x.astype(out)  # int -> int wraps, bool -> 0/1


# --------------------------------------------------------------------------- context


class _Ctx:
    """The (sub-)grid being executed: `sizes` programs along each axis from `base`."""

    __slots__ = ("grid", "sizes", "base", "G", "_idx")

    def __init__(self, grid: tuple[int, ...], sizes: tuple[int, ...], base: tuple[int, ...]):
        self.grid, self.sizes, self.base, self.G = grid, sizes, base, len(grid)
        self._idx: dict[int, np.ndarray] = {}

    def tile_idx(self, axis: int) -> np.ndarray:
        v = self._idx.get(axis)
        if v is None:
            shape = [1] * self.G
            if axis < self.G:
                shape[axis] = self.sizes[axis]
                v = np.arange(self.base[axis], self.base[axis] + self.sizes[axis], dtype=np.int32)
            else:  # an axis the launch does not have: like CUDA, index 0
                v = np.zeros(1, np.int32)
            v = self._idx[axis] = v.reshape(shape)
        return v

    def num_tiles(self, axis: int) -> int:
        return self.grid[axis] if axis < self.G else 1

    def sub(self, axes: Sequence[int], index: Sequence[int]) -> _Ctx:
        sizes, base = list(self.sizes), list(self.base)
        for a, k in zip(axes, index):
            sizes[a] = 1
            base[a] += k
        return _Ctx(self.grid, tuple(sizes), tuple(base))


def _uniform(v: np.ndarray) -> bool:
    return v.size == 1 or bool(np.all(v == v.flat[0]))


def _per_program(env: Env, ctx: _Ctx, control: Sequence[int], free: Sequence[int],
                 results: Sequence[int], batched: Callable[[Env, _Ctx], bool]) -> None:
    """Run one op per program instance along the grid axes its control values vary on.

    Every value the op reads (`free`) is sliced to the program (dims of size 1 are kept),
    the op runs batched over the remaining axes, and its results are stacked back.
    """
    G = ctx.G
    batch = np.broadcast_shapes(*(env[s].shape[:G] for s in control))
    axes = [a for a in range(G) if batch[a] > 1]
    runs = []
    for index in np.ndindex(*(batch[a] for a in axes)):
        sub = env.copy()
        for s in free:
            v = env[s]
            sl = [slice(None)] * G
            for a, k in zip(axes, index):
                if v.shape[a] > 1:
                    sl[a] = slice(k, k + 1)
            sub[s] = v[tuple(sl)]
        ok = batched(sub, ctx.sub(axes, index))
        assert ok, "per-program execution must see uniform control values"
        runs.append((index, [sub[r] for r in results]))
    for j, r in enumerate(results):
        vals = [res[j] for _, res in runs]
        shape = list(np.broadcast_shapes(*(v.shape for v in vals)))
        for a in axes:
            shape[a] = batch[a]
        out = np.empty(shape, vals[0].dtype)
        for (index, _), v in zip(runs, vals):
            sl = [slice(None)] * G
            for a, k in zip(axes, index):
                sl[a] = slice(k, k + 1)
            out[tuple(sl)] = v
        env[r] = out


# --------------------------------------------------------------------------- compiler


class _Compiler:
    """Assigns every SSA value a slot and turns ops into closures."""

    def __init__(self, G: int):
        self.G = G
        self.ones = (1,) * G
        self.slots: dict[SSAValue, int] = {}
        self.n_slots = 0
        #: ops compiled to a given step instead of their handler's (K-loop matmuls)
        self.overrides: dict[Operation, Step] = {}

    def slot(self, v: SSAValue) -> int:
        s = self.slots.get(v)
        if s is None:
            s = self.slots[v] = self.new_slot()
        return s

    def new_slot(self) -> int:
        self.n_slots += 1
        return self.n_slots - 1

    def compile_block(self, block: Block) -> tuple[list[Step], list[int]]:
        """Steps of a block, and the slots its terminator yields (scf.yield / func.return)."""
        steps: list[Step] = []
        yields: list[int] = []
        for op in block.ops:
            if isinstance(op, (scf.YieldOp, func.ReturnOp)):
                yields = [self.slot(v) for v in op.operands]
                continue
            if op in self.overrides:
                steps.append(self.overrides[op])
                continue
            handler = _HANDLERS.get(type(op))
            if handler is None:
                raise NotImplementedError(f"cpu backend: {op.name} is not supported")
            steps.append(handler(op, self))
        return steps, yields

    def free_slots(self, op: Operation) -> list[int]:
        """Slots of the non-tensor values `op` and its regions read but do not define."""
        defined: set[SSAValue] = set()
        for o in op.walk():
            defined.update(o.results)
            for region in o.regions:
                for block in region.blocks:
                    defined.update(block.args)
        free: dict[int, None] = {}
        for o in op.walk():
            for v in o.operands:
                if v not in defined and not isinstance(v.type, T.TensorType):
                    free[self.slot(v)] = None
        return list(free)


def _run(steps: list[Step], env: Env, ctx: _Ctx) -> None:
    for step in steps:
        step(env, ctx)


# --------------------------------------------------------------------------- handlers
# Each handler reads the op once and returns `step(env, ctx)`.


def _h_constant(op: arith.ConstantOp, c: _Compiler) -> Step:
    attr = op.value
    d = _dtype_of(op.result.type)
    if isinstance(attr, IntegerAttr):
        raw = attr.value.data
        value = (raw != 0) if d is dtypes.bool_ else raw
        arr = np.array(value, dtype=np.int64 if d.is_int else d.np_dtype)
        arr = arr.astype(d.np_dtype)
    elif isinstance(attr, FloatAttr):
        arr = np.array(attr.value.data, dtype=_F64).astype(d.np_dtype)
    else:
        raise NotImplementedError(f"cpu backend: arith.constant of {attr} is not supported")
    if isinstance(op.result.type, T.TileType):
        arr = np.broadcast_to(arr, c.ones + op.result.type.get_shape())
    else:
        arr = arr.reshape(c.ones)
    r = c.slot(op.result)

    def step(env, ctx):
        env[r] = arr
    return step


def _h_tile_idx(op: T.TileIdxOp, c: _Compiler) -> Step:
    axis, r = op.axis.value.data, c.slot(op.result)

    def step(env, ctx):
        env[r] = ctx.tile_idx(axis)
    return step


def _h_num_tiles(op: T.NumTilesOp, c: _Compiler) -> Step:
    axis, r, ones = op.axis.value.data, c.slot(op.result), c.ones

    def step(env, ctx):
        env[r] = np.full(ones, ctx.num_tiles(axis), np.int32)
    return step


def _h_dim(op: T.DimOp, c: _Compiler) -> Step:
    axis, t, r, ones = op.axis.value.data, c.slot(op.tensor), c.slot(op.result), c.ones

    def step(env, ctx):
        env[r] = np.full(ones, env[t].shape[axis], np.int32)
    return step


def _inside(offs: list[np.ndarray], shape: tuple[int, ...], dims: tuple[int, ...]) -> bool:
    """Whether every program's tile at `offs` lies inside a tensor of extent `dims`."""
    for o, n, dim in zip(offs, shape, dims):
        lo, hi = (int(o.flat[0]),) * 2 if o.size == 1 else (int(o.min()), int(o.max()))
        if lo < 0 or hi + n > dim:
            return False
    return True


def _flat_index(offs: list[np.ndarray], aranges: list[np.ndarray], dims: tuple[int, ...],
                masked: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Flat element indices `sum_d (offset_d + arange_d) * stride_d` into a C-contiguous
    tensor of extent `dims` (batch dims, then tile dims), and, when `masked`, the
    in-bounds mask, with the indices clipped into the tensor."""
    r = len(aranges)
    flat = mask = None
    stride = 1
    for o, a, dim in reversed(list(zip(offs, aranges, dims))):
        i = o.astype(np.intp).reshape(o.shape + (1,) * r) + a
        if masked:
            m = (i >= 0) & (i < dim)
            mask = m if mask is None else mask & m
            i = np.clip(i, 0, dim - 1)
        if stride != 1:
            i = i * stride
        flat = i if flat is None else flat + i
        stride *= dim
    return flat, mask


def _tile_aranges(G: int, shape: tuple[int, ...]) -> list[np.ndarray]:
    r = len(shape)
    return [np.arange(s, dtype=np.intp).reshape((1,) * (G + d) + (s,) + (1,) * (r - d - 1))
            for d, s in enumerate(shape)]


def _h_load(op: T.LoadOp, c: _Compiler) -> Step:
    t, r = c.slot(op.tensor), c.slot(op.result)
    offsets = [c.slot(o) for o in op.offsets]
    shape = op.result.type.get_shape()
    d = _dtype_of(op.result.type)
    pad_value = op.padding.value.data
    if d.is_int or d is dtypes.bool_:
        pad_value = int(pad_value) if math.isfinite(pad_value) else 0
    pad = np.array(pad_value).astype(d.np_dtype)
    aranges = _tile_aranges(c.G, shape)
    ones, G = c.ones, c.G

    def step(env, ctx):
        X = env[t]
        offs = [env[o] for o in offsets]
        if all(o.size == 1 for o in offs):  # one tile for the whole grid: a slice
            starts = [int(o.flat[0]) for o in offs]
            if all(0 <= s and s + n <= dim for s, n, dim in zip(starts, shape, X.shape)):
                sl = tuple(slice(s, s + n) for s, n in zip(starts, shape))
                env[r] = X[sl].reshape(ones + shape).copy()  # copy: later stores must not alias
                return
        inside = _inside(offs, shape, X.shape)
        if inside:
            varying = [k for k, o in enumerate(offs) if o.size > 1]
            if len(varying) == 1:  # slice the other dims, gather whole rows along this one
                k = varying[0]
                sl = tuple(slice(None) if j == k else slice(int(o.flat[0]), int(o.flat[0]) + n)
                           for j, (o, n) in enumerate(zip(offs, shape)))
                o = offs[k].astype(np.intp)
                rows = o.reshape(o.shape + (1,)) + aranges[k].reshape(-1)
                val = np.take(X[sl], rows, axis=k)
                env[r] = np.moveaxis(val, range(k, k + G), range(G)) if k else val
                return
        if 0 in X.shape:
            bshape = np.broadcast_shapes(*(o.shape for o in offs))
            env[r] = np.full(bshape + shape, pad, d.np_dtype)
            return
        flat, mask = _flat_index(offs, aranges, X.shape, not inside)
        val = np.take(X.reshape(-1), flat)
        if mask is not None:
            np.copyto(val, pad, where=~mask)
        env[r] = val
    return step


def _h_store(op: T.StoreOp, c: _Compiler) -> Step:
    t, v = c.slot(op.tensor), c.slot(op.value)
    offsets = [c.slot(o) for o in op.offsets]
    shape = op.value.type.get_shape()
    d = _dtype_of(op.value.type)
    atomic = op.mode.data == "atomic_add"
    aranges = _tile_aranges(c.G, shape)
    narrow = _is_narrow_float(d) or d is dtypes.bool_

    def step(env, ctx):
        X = env[t]
        val = env[v]
        if atomic:  # every program adds, even where they hold the same value
            val = np.broadcast_to(val, np.broadcast_shapes(val.shape, ctx.sizes + shape))
        offs = [env[o] for o in offsets]
        if 0 in X.shape:
            return
        inside = _inside(offs, shape, X.shape)
        flat, mask = _flat_index(offs, aranges, X.shape, not inside)
        full = np.broadcast_shapes(flat.shape, val.shape)
        flat = np.broadcast_to(flat, full)
        val = np.broadcast_to(val, full)
        if mask is not None:
            mask = np.broadcast_to(mask, full)
            flat, val = flat[mask], val[mask]
        Xf = X.reshape(-1)
        if not atomic:
            Xf[flat] = val
        elif narrow:  # sum each address's contributions in f64, round once
            where, inv = np.unique(flat.reshape(-1), return_inverse=True)
            add = np.bincount(inv, weights=val.reshape(-1).astype(_F64), minlength=len(where))
            Xf[where] = (Xf[where].astype(_F64) + add).astype(X.dtype)
        else:
            np.add.at(Xf, flat, val)
    return step


def _h_splat(op: T.SplatOp, c: _Compiler) -> Step:
    s, r = c.slot(op.scalar), c.slot(op.result)
    shape = op.result.type.get_shape()
    tail = (1,) * len(shape)

    def step(env, ctx):
        x = env[s]
        env[r] = np.broadcast_to(x.reshape(x.shape + tail), x.shape + shape)
    return step


def _h_broadcast(op: T.BroadcastOp, c: _Compiler) -> Step:
    s, r, G = c.slot(op.source), c.slot(op.result), c.G
    shape = op.result.type.get_shape()

    def step(env, ctx):
        x = env[s]
        env[r] = np.broadcast_to(x, x.shape[:G] + shape)
    return step


def _h_reshape(op: T.ReshapeOp, c: _Compiler) -> Step:
    s, r, G = c.slot(op.source), c.slot(op.result), c.G
    shape = op.result.type.get_shape()

    def step(env, ctx):
        x = env[s]
        env[r] = x.reshape(x.shape[:G] + shape)
    return step


def _h_permute(op: T.PermuteOp, c: _Compiler) -> Step:
    s, r, G = c.slot(op.source), c.slot(op.result), c.G
    axes = tuple(range(G)) + tuple(G + p for p in T._get_ints(op.perm))

    def step(env, ctx):
        env[r] = env[s].transpose(axes)
    return step


def _h_arange(op: T.ArangeOp, c: _Compiler) -> Step:
    n = op.result.type.get_shape()[0]
    start = op.start.value.data
    arr = np.arange(start, start + n, dtype=np.int64).astype(np.int32).reshape(c.ones + (n,))
    r = c.slot(op.result)

    def step(env, ctx):
        env[r] = arr
    return step


def _binary_handler(mnemonic: str):
    fn = _BINARY_FUNCS[mnemonic]

    def handler(op: T.BinaryOp, c: _Compiler) -> Step:
        d = _dtype_of(op.result.type)
        f = fn
        if mnemonic == "div" and d.is_int:  # C-style truncating division
            f = lambda a, b: np.trunc(np.true_divide(a, b))  # noqa: E731
        if d is dtypes.bool_ and mnemonic in ("add", "sub"):
            f = np.logical_xor  # i1 arithmetic is mod 2
        g = _elementwise(f, d)
        a, b, r = c.slot(op.lhs), c.slot(op.rhs), c.slot(op.result)

        def step(env, ctx):
            env[r] = g(env[a], env[b])
        return step
    return handler


def _unary_handler(mnemonic: str):
    def handler(op: T.UnaryOp, c: _Compiler) -> Step:
        d = _dtype_of(op.result.type)
        g = _elementwise(_unary_func(mnemonic, d), d)
        s, r = c.slot(op.source), c.slot(op.result)

        def step(env, ctx):
            env[r] = g(env[s])
        return step
    return handler


_CMP = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
        "gt": np.greater, "ge": np.greater_equal}


def _h_cmp(op: T.CmpOp, c: _Compiler) -> Step:
    fn = _CMP[op.predicate.data]
    narrow = _is_narrow_float(_dtype_of(op.lhs.type))
    a, b, r = c.slot(op.lhs), c.slot(op.rhs), c.slot(op.result)
    if narrow:
        def step(env, ctx):
            env[r] = fn(env[a].astype(_F32), env[b].astype(_F32))
    else:
        def step(env, ctx):
            env[r] = fn(env[a], env[b])
    return step


def _h_select(op: T.SelectOp, c: _Compiler) -> Step:
    cond, a, b, r = c.slot(op.cond), c.slot(op.true_value), c.slot(op.false_value), c.slot(op.result)
    out = _dtype_of(op.result.type).np_dtype

    def step(env, ctx):
        v = np.where(env[cond], env[a], env[b])
        env[r] = v if v.dtype == out else v.astype(out)
    return step


def _h_cast(op: T.CastOp, c: _Compiler) -> Step:
    f = _make_cast(_dtype_of(op.source.type), _dtype_of(op.result.type))
    s, r = c.slot(op.source), c.slot(op.result)

    def step(env, ctx):
        env[r] = f(env[s])
    return step


def _matmul2d(a: np.ndarray, b: np.ndarray, G: int) -> np.ndarray:
    """Grid-batched `a @ b` of 2-D tiles as a few large GEMMs.

    Grid axes only `a` varies along fold into the GEMM's M, those only `b` varies along
    into N, and those both vary along stay a batch: a (16,1,64,32) @ b (1,16,32,64) is
    one (1024x32) @ (32x1024) product instead of 256 small ones.
    """
    ba, bb = a.shape[:G], b.shape[:G]
    shared = [i for i in range(G) if ba[i] > 1 and bb[i] > 1]
    a_only = [i for i in range(G) if ba[i] > 1 and bb[i] == 1]
    b_only = [i for i in range(G) if bb[i] > 1 and ba[i] == 1]
    M, K = a.shape[G:]
    N = b.shape[-1]
    S = [ba[i] for i in shared]
    PA = [ba[i] for i in a_only]
    PB = [bb[i] for i in b_only]
    ps, pa, pb = math.prod(S), math.prod(PA), math.prod(PB)
    unit_a = [i for i in range(G) if ba[i] == 1]
    unit_b = [i for i in range(G) if bb[i] == 1]
    # a -> (S, A_only, M, K) -> (ps, pa*M, K)
    a2 = a.transpose(shared + a_only + unit_a + [G, G + 1]).reshape(ps, pa * M, K)
    # b -> (S, K, B_only, N) -> (ps, K, pb*N)
    nb = len(b_only)
    b3 = b.transpose(shared + b_only + unit_b + [G, G + 1]).reshape([ps] + PB + [K, N])
    b2 = b3.transpose([0, 1 + nb] + list(range(1, 1 + nb)) + [2 + nb]).reshape(ps, K, pb * N)
    prod = np.matmul(a2, b2)
    # (S, A_only, M, B_only, N) -> grid order + (M, N)
    prod = prod.reshape(S + PA + [M] + PB + [N])
    ns, na = len(shared), len(a_only)
    pos = {ax: k for k, ax in enumerate(shared)}
    pos.update({ax: ns + k for k, ax in enumerate(a_only)})
    pos.update({ax: ns + na + 1 + k for k, ax in enumerate(b_only)})
    perm = [pos[i] for i in range(G) if i in pos] + [ns + na, ns + na + 1 + nb]
    out_shape = tuple(max(ba[i], bb[i]) for i in range(G)) + (M, N)
    return prod.transpose(perm).reshape(out_shape)


def _matmul_fn(op: T.MatmulOp, G: int) -> Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]:
    """`compute(x, y, acc)`: grid-batched `x @ y (+ acc)` with the op's numerics."""
    src = _dtype_of(op.lhs.type)
    out = _dtype_of(op.result.type).np_dtype
    rank2 = op.lhs.type.rank == 2 and op.rhs.type.rank == 2
    if src.is_float:
        accum = _F64 if src is dtypes.float64 else _F32
    else:
        accum = np.dtype(np.int32)
    exact_f64_bits = 2 * src.bits if src.is_int or src is dtypes.bool_ else 0

    def compute(x, y, z):
        if src.is_float:
            work = accum
        elif src.bits <= 16 and x.shape[-1] * 2**exact_f64_bits < 2**53:
            work = _F64  # exact in f64, and fast (BLAS)
        else:
            work = np.dtype(np.int64)  # wraps mod 2**32 like i32 once cast back
        if x.dtype != work:
            x = x.astype(work)
        if y.dtype != work:
            y = y.astype(work)
        p = _matmul2d(x, y, G) if rank2 else np.matmul(x, y)
        if p.dtype != accum:
            p = p.astype(accum)
        if z is not None:
            if z.dtype != accum:
                z = z.astype(accum)
            if np.broadcast_shapes(p.shape, z.shape) == p.shape:
                np.add(p, z, out=p)  # p is fresh: accumulate in place
            else:
                p = p + z
        return p if p.dtype == out else p.astype(out)
    return compute


def _h_matmul(op: T.MatmulOp, c: _Compiler) -> Step:
    a, b = c.slot(op.lhs), c.slot(op.rhs)
    acc = c.slot(op.acc) if op.acc is not None else None
    r = c.slot(op.result)
    compute = _matmul_fn(op, c.G)

    def step(env, ctx):
        env[r] = compute(env[a], env[b], None if acc is None else env[acc])
    return step


def _h_reduce(op: T.ReduceOp, c: _Compiler) -> Step:
    kind = op.kind.data
    axis = c.G + op.axis.value.data
    keep = op.keepdims.value.data != 0
    src = _dtype_of(op.source.type)
    out = _dtype_of(op.result.type).np_dtype
    s, r = c.slot(op.source), c.slot(op.result)
    up = _F32 if _is_narrow_float(src) else None
    if kind == "sum":
        if src.is_float:
            acc = _F64 if src is dtypes.float64 else _F32
        else:
            acc = out if np.dtype(out).kind in "iu" else np.dtype(np.int32)

        def reduce(x):
            return np.sum(x, axis=axis, dtype=acc, keepdims=keep)
    else:
        fn = {"max": np.max, "min": np.min, "argmax": np.argmax, "argmin": np.argmin}[kind]

        def reduce(x):
            return fn(x if up is None else x.astype(up), axis=axis, keepdims=keep)

    def step(env, ctx):
        v = reduce(env[s])
        env[r] = v if v.dtype == out else v.astype(out)
    return step


def _h_rand(op: T.RandOp, c: _Compiler) -> Step:
    seed, offs, r = c.slot(op.seed), c.slot(op.offsets), c.slot(op.result)
    tail = (1,) * op.offsets.type.rank
    st = op.seed.type
    unsigned = isinstance(st, IntegerType) and st.signedness.data == Signedness.UNSIGNED

    def step(env, ctx):
        sd = env[seed]
        sd = sd.astype(np.uint64).view(np.int64) if unsigned else sd.astype(np.int64)
        env[r] = _philox_rand(sd.reshape(sd.shape + tail), env[offs])
    return step


def _fusable_k_loop_matmuls(op: scf.ForOp) -> list[tuple[int, T.MatmulOp]]:
    """Carries of `op` that only feed a K-loop accumulation `acc = matmul(a, b, acc)`.

    The carried block argument's one use is the `acc` of a matmul in the loop body, and
    that matmul's one use is the yield of the same carry, so no one sees the partial sums
    and the loop may run the whole K extent as one GEMM.  Only when the accumulator is
    f32 / f64 / i32, where rounding it once per step is not part of the semantics.
    """
    body = op.body.block
    yield_op = body.last_op
    if not isinstance(yield_op, scf.YieldOp):
        return []
    found = []
    for k, (arg, yv) in enumerate(zip(body.args[1:], yield_op.operands)):
        if not arg.has_one_use():
            continue
        mm = arg.get_user_of_unique_use()
        if (isinstance(mm, T.MatmulOp) and mm.acc is arg and mm.parent is body
                and yv is mm.result and mm.result.has_one_use()
                and _dtype_of(mm.result.type) in (dtypes.float32, dtypes.float64, dtypes.int32)):
            found.append((k, mm))
    return found


def _h_for(op: scf.ForOp, c: _Compiler) -> Step:
    lb, ub, st = c.slot(op.lb), c.slot(op.ub), c.slot(op.step)
    init = [c.slot(v) for v in op.iter_args]
    body = op.body.block
    iv = c.slot(body.args[0])
    carried = [c.slot(x) for x in body.args[1:]]
    # K-loop accumulations: each iteration only records its (a, b) tiles (see below)
    fused = []  # (carry index, pending-list slot, compute)
    for k, mm in _fusable_k_loop_matmuls(op):
        pend, x, y = c.new_slot(), c.slot(mm.lhs), c.slot(mm.rhs)

        def record(env, ctx, pend=pend, x=x, y=y):
            env[pend].append((env[x], env[y]))
        c.overrides[mm] = record
        fused.append((k, pend, _matmul_fn(mm, c.G)))
    fused_idx = {k for k, _, _ in fused}
    steps, yields = c.compile_block(body)
    kept = [(k, carried[k], y) for k, y in enumerate(yields) if k not in fused_idx]
    results = [c.slot(x) for x in op.res]
    free = c.free_slots(op)
    iv_dtype = _dtype_of(op.lb.type).np_dtype
    ones = c.ones

    def batched(env, ctx) -> bool:
        l, u, s = env[lb], env[ub], env[st]
        if not (_uniform(l) and _uniform(u) and _uniform(s)):
            return False
        l, u, s = int(l.flat[0]), int(u.flat[0]), int(s.flat[0])
        if s <= 0 and l < u:
            raise ValueError(f"cpu backend: scf.for step must be positive, got {s}")
        vals = [env[i] for i in init]
        for _, pend, _ in fused:
            env[pend] = []
        if l < u:
            for i in range(l, u, s):
                env[iv] = np.full(ones, i, iv_dtype)
                for k, arg, _ in kept:
                    env[arg] = vals[k]
                for f in steps:
                    f(env, ctx)
                for k, _, y in kept:
                    vals[k] = env[y]
        for k, pend, compute in fused:
            vals[k] = _k_loop_matmul(compute, env[pend], vals[k])
        for k, x in zip(results, vals):
            env[k] = x
        return True

    def step(env, ctx):
        if not batched(env, ctx):
            _per_program(env, ctx, (lb, ub, st), free, results, batched)
    return step


def _k_loop_matmul(compute, pairs: list[tuple[np.ndarray, np.ndarray]], acc: np.ndarray) -> np.ndarray:
    """`acc + sum_k a_k @ b_k` as one GEMM over the concatenated K extent.

    A GEMM with K = 32 runs at a fraction of BLAS speed and each step would rewrite the
    whole accumulator; one (M x K_total) @ (K_total x N) product is as fast as numpy `@`.
    The f32 sum is the same, in a different order (as a GPU's MMA order is its own).
    """
    if not pairs:
        return acc
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    if len(pairs) == 1:
        return compute(xs[0], ys[0], acc)
    xb, yb = xs[0].shape[:-1], ys[0].shape[:-2] + ys[0].shape[-1:]
    if any(x.shape[:-1] != xb for x in xs) or any(y.shape[:-2] + y.shape[-1:] != yb for y in ys):
        for x, y in pairs:  # tiles of different grid batches: accumulate step by step
            acc = compute(x, y, acc)
        return acc
    return compute(np.concatenate(xs, axis=-1), np.concatenate(ys, axis=-2), acc)


def _h_if(op: scf.IfOp, c: _Compiler) -> Step:
    cond = c.slot(op.cond)
    then_steps, then_yields = c.compile_block(op.true_region.block)
    if op.false_region.blocks:
        else_steps, else_yields = c.compile_block(op.false_region.block)
    else:
        else_steps, else_yields = [], []
    results = [c.slot(x) for x in op.output]
    free = c.free_slots(op)

    def batched(env, ctx) -> bool:
        v = env[cond]
        if not _uniform(v):
            return False
        steps, yields = (then_steps, then_yields) if v.flat[0] else (else_steps, else_yields)
        for f in steps:
            f(env, ctx)
        for k, y in zip(results, yields):
            env[k] = env[y]
        return True

    def step(env, ctx):
        if not batched(env, ctx):
            _per_program(env, ctx, (cond,), free, results, batched)
    return step


_HANDLERS: dict[type, Callable[[Operation, _Compiler], Step]] = {
    arith.ConstantOp: _h_constant,
    scf.ForOp: _h_for,
    scf.IfOp: _h_if,
    T.TileIdxOp: _h_tile_idx,
    T.NumTilesOp: _h_num_tiles,
    T.DimOp: _h_dim,
    T.LoadOp: _h_load,
    T.StoreOp: _h_store,
    T.SplatOp: _h_splat,
    T.BroadcastOp: _h_broadcast,
    T.ReshapeOp: _h_reshape,
    T.PermuteOp: _h_permute,
    T.ArangeOp: _h_arange,
    T.CmpOp: _h_cmp,
    T.SelectOp: _h_select,
    T.CastOp: _h_cast,
    T.MatmulOp: _h_matmul,
    T.ReduceOp: _h_reduce,
    T.RandOp: _h_rand,
    **{cls: _binary_handler(m) for m, cls in T.BINARY_OP_CLASSES.items()},
    **{cls: _unary_handler(m) for m, cls in T.UNARY_OP_CLASSES.items()},
}


# --------------------------------------------------------------------------- entry points


def _bind_arg(arg_type, value, index: int, ones: tuple[int, ...]):
    if isinstance(arg_type, T.TensorType):
        if not isinstance(value, np.ndarray):
            raise TypeError(f"argument {index}: expected a numpy array for {arg_type}, got {type(value).__name__}")
        want = _dtype_of(arg_type).np_dtype
        if value.dtype != want:
            raise TypeError(f"argument {index}: array has dtype {value.dtype}, the kernel expects {want}")
        static = arg_type.get_shape()
        if value.ndim != len(static) or any(s >= 0 and s != n for s, n in zip(static, value.shape)):
            raise ValueError(f"argument {index}: array of shape {value.shape} does not fit {arg_type}")
        if not value.flags.c_contiguous:
            raise ValueError(f"argument {index}: array must be C-contiguous")
        return value
    d = _dtype_of(arg_type)
    if d.is_int:  # wrap to the type's width, as the launch would
        v = int(value) % 2**d.bits
        if d.is_signed and v >= 2 ** (d.bits - 1):
            v -= 2**d.bits
        arr = np.array(v, dtype=d.np_dtype)
    elif d is dtypes.bool_:
        arr = np.array(bool(value))
    else:
        arr = np.array(float(value), dtype=_F64).astype(d.np_dtype)
    return arr.reshape(ones)


def run_kernel(func_op, args: list, grid: tuple[int, ...]) -> None:
    """Execute a `func.func` of the tile dialect over the whole launch grid.
    args: one per func argument, in order: numpy arrays for !tile.tensor args (written in place,
    C-contiguous, dtype equal to the tensor element type's numpy dtype via tilec.dtypes.from_ir(...).np_dtype),
    Python int/float for scalar args (i32/i64/f32/...)."""
    grid = tuple(int(g) for g in grid)
    if any(g <= 0 for g in grid):
        raise ValueError(f"grid dimensions must be positive, got {grid}")
    block = func_op.body.block
    if len(args) != len(block.args):
        raise TypeError(f"kernel @{func_op.sym_name.data} takes {len(block.args)} arguments, got {len(args)}")
    comp = _Compiler(len(grid))
    arg_slots = [comp.slot(a) for a in block.args]
    steps, _ = comp.compile_block(block)
    env: Env = [None] * comp.n_slots
    for k, (a, value) in enumerate(zip(block.args, args)):
        env[arg_slots[k]] = _bind_arg(a.type, value, k, comp.ones)
    ctx = _Ctx(grid, grid, (0,) * len(grid))
    with np.errstate(all="ignore"):
        _run(steps, env, ctx)


def interpret_module(module: ModuleOp, kernel_name: str, args: list, grid: tuple[int, ...]) -> None:
    """`run_kernel` on the `func.func @kernel_name` of `module`."""
    for op in module.walk():
        if isinstance(op, func.FuncOp) and op.sym_name.data == kernel_name:
            return run_kernel(op, args, grid)
    raise KeyError(f"no func.func @{kernel_name} in the module")
