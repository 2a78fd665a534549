"""CPU simulation of tile-dialect kernels: every program instance of the grid at once.

A kernel (`func.func` over `tile.*`, `arith.constant`, `scf.for`, `scf.if`) is
compiled once per (kernel, grid rank) into a list of closures `step(env, ctx)` over a
slot array `env` (`program.py`), and the compiled program is kept with the `func.func`
for later launches.  Every runtime value is a numpy array whose leading G dims are the
grid dims (G = len(grid)), each of size 1 where the value does not depend on that grid
axis, followed by the tile dims:

    tile.tile_idx 0 on grid (16, 16)        -> arange(16).reshape(16, 1)
    arith.constant 64 : i32                 -> shape (1, 1)
    tile<64x32> loaded at offsets (i*64, k) -> shape (16, 1, 64, 32)

numpy broadcasting then runs each op once per *distinct* value, not once per
program.  `scf.for` bounds and `scf.if` conditions must be grid-uniform to run
batched; when one is not (checked at run time), that op alone runs per program
instance over the grid axes its control values vary along (`control.py`).

Loads and stores of tiles that sit end to end are slices of the tensor (`memory.py`,
`tile_box.py`); a K loop of `acc = matmul(a, b, acc)` is one GEMM (`matmul.py`).

Numerics follow the GPU (`numerics.py`): narrow floats (f16, bf16, fp8, fp4) are
computed in f32 and rounded back after every op, matmul accumulates in f32 (ints in
i32), float `sum` accumulates in f32, i32 arithmetic wraps, integer `floordiv`/`rem`
follow Python, float -> fp8/fp4 casts saturate to the largest finite value.

The compiled program is cached on the `func.func` object: a kernel must not be
rewritten after its first launch.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
from xdsl.dialects import arith, func, scf
from xdsl.dialects.builtin import ModuleOp

from tilec import dtypes, fp4
from tilec.dialects import tile as T

from . import block_scale, control, grid_ops, math_ops, matmul, memory, shape_ops
from .numerics import F64, dtype_of
from .program import Compiler, Ctx, Handler, Step, run_steps

__all__ = ["run_kernel", "interpret_module"]

HANDLERS: dict[type, Handler] = {
    arith.ConstantOp: grid_ops.h_constant,
    T.TileIdxOp: grid_ops.h_tile_idx,
    T.NumTilesOp: grid_ops.h_num_tiles,
    T.DimOp: grid_ops.h_dim,
    scf.ForOp: control.h_for,
    scf.IfOp: control.h_if,
    T.LoadOp: memory.h_load,
    T.StoreOp: memory.h_store,
    T.SplatOp: shape_ops.h_splat,
    T.BroadcastOp: shape_ops.h_broadcast,
    T.ReshapeOp: shape_ops.h_reshape,
    T.PermuteOp: shape_ops.h_permute,
    T.ArangeOp: shape_ops.h_arange,
    T.ExtractOp: shape_ops.h_extract,
    T.CmpOp: math_ops.h_cmp,
    T.SelectOp: math_ops.h_select,
    T.CastOp: math_ops.h_cast,
    T.MatmulOp: matmul.h_matmul,
    T.ScaledMatmulOp: matmul.h_scaled_matmul,
    T.QuantizeOp: block_scale.h_quantize,
    T.DequantizeOp: block_scale.h_dequantize,
    T.ReduceOp: math_ops.h_reduce,
    T.RandOp: math_ops.h_rand,
    **{cls: math_ops.binary_handler(m) for m, cls in T.BINARY_OP_CLASSES.items()},
    **{cls: math_ops.unary_handler(m) for m, cls in T.UNARY_OP_CLASSES.items()},
}


# --------------------------------------------------------------------------- arguments


@dataclass(frozen=True)
class _TensorArg:
    index: int
    type_text: str
    dtype: np.dtype
    static: tuple[int, ...]

    def bind(self, value, ones: tuple[int, ...]) -> np.ndarray:
        if isinstance(value, fp4.FP4Tensor):
            if self.dtype != fp4.F4:
                raise TypeError(f"argument {self.index}: a packed fp4 tensor was passed, "
                                f"the kernel expects {self.dtype}")
            if not isinstance(value.packed, np.ndarray):
                raise TypeError(f"argument {self.index}: the cpu backend needs packed fp4 data in a numpy array, "
                                f"got {type(value.packed).__name__}")
            value = value.numpy()  # unpacked, one element per byte; stores are packed back (run_kernel)
        if not isinstance(value, np.ndarray):
            raise TypeError(f"argument {self.index}: expected a numpy array for {self.type_text}, "
                            f"got {type(value).__name__}")
        if value.dtype != self.dtype:
            raise TypeError(f"argument {self.index}: array has dtype {value.dtype}, the kernel expects {self.dtype}")
        if value.ndim != len(self.static) or any(s >= 0 and s != n for s, n in zip(self.static, value.shape)):
            raise ValueError(f"argument {self.index}: array of shape {value.shape} does not fit {self.type_text}")
        if not value.flags.c_contiguous:
            raise ValueError(f"argument {self.index}: array must be C-contiguous")
        return value


@dataclass(frozen=True)
class _ScalarArg:
    dtype: dtypes.DType

    def bind(self, value, ones: tuple[int, ...]) -> np.ndarray:
        d = self.dtype
        if d.is_int:  # wrap to the type's width, as the launch would
            v = int(value) % 2**d.bits
            if d.is_signed and v >= 2 ** (d.bits - 1):
                v -= 2**d.bits
            arr = np.array(v, dtype=d.np_dtype)
        elif d is dtypes.bool_:
            arr = np.array(bool(value))
        else:
            arr = np.array(float(value), dtype=F64).astype(d.np_dtype)
        return arr.reshape(ones)


def _arg_binder(arg_type, index: int) -> _TensorArg | _ScalarArg:
    if isinstance(arg_type, T.TensorType):
        return _TensorArg(index, str(arg_type), dtype_of(arg_type).np_dtype, tuple(arg_type.get_shape()))
    return _ScalarArg(dtype_of(arg_type))


# --------------------------------------------------------------------------- compiled kernels


@dataclass(frozen=True)
class _Program:
    """A kernel compiled for one grid rank.  Arguments occupy slots 0..n_args-1."""

    name: str
    steps: list[Step]
    n_slots: int
    args: list[_TensorArg | _ScalarArg]
    loaded: tuple[int, ...]   # tensor argument slots some load reads
    stored: tuple[int, ...]   # tensor argument slots some store writes
    opaque: bool              # a store writes a tensor that is not an argument

    def frozen(self, env: list) -> frozenset[int]:
        """The loaded tensors no store of this launch can write: loads may view them."""
        if self.opaque:
            return frozenset()
        stored = [env[s] for s in self.stored]
        return frozenset(t for t in self.loaded if not any(np.may_share_memory(env[t], y) for y in stored))


def _compile(func_op: func.FuncOp, G: int) -> _Program:
    block = func_op.body.block
    comp = Compiler(G, HANDLERS)
    arg_slots = {a: comp.slot(a) for a in block.args}
    steps, _ = comp.compile_block(block)
    loaded, stored, opaque = set(), set(), False
    for op in func_op.walk():
        if isinstance(op, (T.LoadOp, T.StoreOp)):
            s = arg_slots.get(op.tensor)
            if s is not None:
                (loaded if isinstance(op, T.LoadOp) else stored).add(s)
            elif isinstance(op, T.StoreOp):
                opaque = True
    return _Program(func_op.sym_name.data, steps, comp.n_slots,
                    [_arg_binder(a.type, k) for k, a in enumerate(block.args)],
                    tuple(sorted(loaded)), tuple(sorted(stored)), opaque)


#: func.func -> {grid rank: program}; entries go when the func.func does
_PROGRAMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled(func_op: func.FuncOp, G: int) -> _Program:
    """The program of `func_op` for a rank-G grid, compiled on first use."""
    by_rank = _PROGRAMS.get(func_op)
    if by_rank is None:
        by_rank = _PROGRAMS.setdefault(func_op, {})
    prog = by_rank.get(G)
    if prog is None:
        prog = by_rank[G] = _compile(func_op, G)
    return prog


# --------------------------------------------------------------------------- entry points


def run_kernel(func_op, args: list, grid: tuple[int, ...]) -> None:
    """Execute a `func.func` of the tile dialect over the whole launch grid.
    args: one per func argument, in order: numpy arrays for !tile.tensor args (written in place,
    C-contiguous, dtype equal to the tensor element type's numpy dtype via tilec.dtypes.from_ir(...).np_dtype;
    an fp4 tensor may also be a packed `tilec.fp4.FP4Tensor`), Python int/float for scalar args
    (i32/i64/f32/...)."""
    grid = tuple(int(g) for g in grid)
    if any(g <= 0 for g in grid):
        raise ValueError(f"grid dimensions must be positive, got {grid}")
    G = len(grid)
    prog = compiled(func_op, G)
    if len(args) != len(prog.args):
        raise TypeError(f"kernel @{prog.name} takes {len(prog.args)} arguments, got {len(args)}")
    env: list = [None] * prog.n_slots
    ones = (1,) * G
    unpacked: dict = {}  # packed fp4 buffer -> its one unpacked array, so aliases stay aliases
    for k, (binder, value) in enumerate(zip(prog.args, args)):
        if isinstance(value, fp4.FP4Tensor) and isinstance(value.packed, np.ndarray):
            key = (value.packed.__array_interface__["data"][0], value.packed.shape, value.shape)
            if key not in unpacked:
                unpacked[key] = binder.bind(value, ones)
            env[k] = unpacked[key]
        else:
            env[k] = binder.bind(value, ones)
    ctx = Ctx(grid, grid, (0,) * G, prog.frozen(env))
    with np.errstate(all="ignore"):
        run_steps(prog.steps, env, ctx)
    for k in prog.stored:  # packed fp4 tensors the kernel may have written: pack them back
        if isinstance(args[k], fp4.FP4Tensor):
            args[k].packed[...] = fp4.pack(env[k])


def interpret_module(module: ModuleOp, kernel_name: str, args: list, grid: tuple[int, ...]) -> None:
    """`run_kernel` on the `func.func @kernel_name` of `module`."""
    for op in module.walk():
        if isinstance(op, func.FuncOp) and op.sym_name.data == kernel_name:
            return run_kernel(op, args, grid)
    raise KeyError(f"no func.func @{kernel_name} in the module")
