"""Symbolic values the tracer hands to kernel code in place of real data.

`Value` is a traced tile or scalar (an SSA value plus its dtype and static shape) with
Python operators, so `t * 2.0 + 1.0` in a kernel builds IR.  `TensorArg` is a global
tensor argument: `X.shape[i]` is a run-time value unless the JIT specialised it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tilec.dtypes import DType


class Value:
    """A traced tile (shape is a tuple) or scalar (shape is None)."""

    __slots__ = ("ssa", "dtype", "shape", "deps")
    # numpy should defer to our reflected operators
    __array_priority__ = 1000

    def __init__(self, ssa, dtype: DType, shape: tuple[int, ...] | None, deps: frozenset = frozenset()):
        self.ssa = ssa
        self.dtype = dtype
        self.shape = shape
        # (arg_index, axis) tensor dims this scalar is computed from: if it is used
        # where a constant is required, the JIT specialises on them.
        self.deps = deps

    @property
    def is_scalar(self) -> bool:
        return self.shape is None

    @property
    def ndim(self) -> int:
        return 0 if self.shape is None else len(self.shape)

    def __repr__(self) -> str:
        kind = "scalar" if self.shape is None else f"tile{list(self.shape)}"
        return f"<traced {kind} of {self.dtype.api_name}>"

    def __bool__(self):
        from tilec.frontend import state
        raise state.current().error(
            "a run-time value cannot be used as a Python bool here; use `if` on it directly "
            "in the kernel, or ct.where(...) for tiles")

    def __index__(self):
        from tilec.frontend import state
        if self.deps:  # a tensor dim needed as a Python int: the JIT specialises on it
            raise state.SpecializeDims(self.deps)
        raise state.current().error("a run-time value cannot be used where a compile-time integer is needed")

    def __iter__(self):
        from tilec.frontend import state
        raise state.current().error("cannot iterate over a tile; use ct.static_range over its size")

    # ---- arithmetic (implemented in tilec.frontend.ops)
    def _bin(self, kind, other, reverse=False):
        from tilec.frontend import ops
        return ops.binary(kind, other, self) if reverse else ops.binary(kind, self, other)

    def __add__(self, o): return self._bin("add", o)
    def __radd__(self, o): return self._bin("add", o, True)
    def __sub__(self, o): return self._bin("sub", o)
    def __rsub__(self, o): return self._bin("sub", o, True)
    def __mul__(self, o): return self._bin("mul", o)
    def __rmul__(self, o): return self._bin("mul", o, True)
    def __truediv__(self, o): return self._bin("div", o)
    def __rtruediv__(self, o): return self._bin("div", o, True)
    def __floordiv__(self, o): return self._bin("floordiv", o)
    def __rfloordiv__(self, o): return self._bin("floordiv", o, True)
    def __mod__(self, o): return self._bin("rem", o)
    def __rmod__(self, o): return self._bin("rem", o, True)
    def __pow__(self, o): return self._bin("pow", o)
    def __rpow__(self, o): return self._bin("pow", o, True)
    def __and__(self, o): return self._bin("and", o)
    def __rand__(self, o): return self._bin("and", o, True)
    def __or__(self, o): return self._bin("or", o)
    def __ror__(self, o): return self._bin("or", o, True)
    def __xor__(self, o): return self._bin("xor", o)
    def __rxor__(self, o): return self._bin("xor", o, True)
    def __lshift__(self, o): return self._bin("shl", o)
    def __rshift__(self, o): return self._bin("shr", o)
    def __rlshift__(self, o): return self._bin("shl", o, True)
    def __rrshift__(self, o): return self._bin("shr", o, True)

    def __matmul__(self, o):
        from tilec.frontend import ops
        return ops.matmul(self, o)

    def __rmatmul__(self, o):
        from tilec.frontend import ops
        return ops.matmul(o, self)

    def _cmp(self, pred, o):
        from tilec.frontend import ops
        return ops.compare(pred, self, o)

    def __lt__(self, o): return self._cmp("lt", o)
    def __le__(self, o): return self._cmp("le", o)
    def __gt__(self, o): return self._cmp("gt", o)
    def __ge__(self, o): return self._cmp("ge", o)
    def __eq__(self, o): return self._cmp("eq", o)  # type: ignore[override]
    def __ne__(self, o): return self._cmp("ne", o)  # type: ignore[override]
    __hash__ = object.__hash__

    def __neg__(self):
        from tilec.frontend import ops
        return ops.unary("neg", self)

    def __pos__(self):
        return self

    def __abs__(self):
        from tilec.frontend import ops
        return ops.unary("abs", self)

    def __invert__(self):
        from tilec.frontend import ops
        return ops.unary("not", self)

    # ---- tile methods users know from numpy / Triton / cuTile
    @property
    def T(self):
        from tilec.frontend import ops
        return ops.transpose(self)

    def astype(self, dtype):
        from tilec.frontend import ops
        return ops.cast(self, dtype)

    to = astype

    def reshape(self, *shape):
        from tilec.frontend import ops
        return ops.reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)

    def permute(self, *axes):
        from tilec.frontend import ops
        return ops.permute(self, axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes)

    def transpose(self, *axes):
        from tilec.frontend import ops
        return ops.permute(self, axes) if axes else ops.transpose(self)

    def sum(self, axis=None, keepdims=False):
        from tilec.frontend import ops
        return ops.reduce("sum", self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        from tilec.frontend import ops
        return ops.reduce("max", self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        from tilec.frontend import ops
        return ops.reduce("min", self, axis, keepdims)

    def __getitem__(self, index):
        from tilec.frontend import ops
        return ops.subscript(self, index)


@dataclass
class TensorArg:
    """A global tensor argument of the kernel being traced."""

    ssa: object
    dtype: DType
    static_shape: tuple  # int for a specialised dim, None for a run-time dim
    index: int           # position among the kernel's parameters
    name: str

    @property
    def ndim(self) -> int:
        return len(self.static_shape)

    @property
    def shape(self) -> tuple:
        from tilec.frontend import ops
        return tuple(d if d is not None else ops.tensor_dim(self, axis)
                     for axis, d in enumerate(self.static_shape))

    def __repr__(self) -> str:
        return f"<tensor argument {self.name}: {self.dtype.api_name}, rank {self.ndim}>"


def _tensor_misuse(self, *args):
    from tilec.frontend import state
    raise state.current().error(f"tensor argument '{self.name}' cannot be used as a value or indexed; "
                                f"load a tile from it with ct.load_tile")


for _op in ("add", "radd", "sub", "rsub", "mul", "rmul", "truediv", "rtruediv", "floordiv", "rfloordiv",
            "mod", "rmod", "pow", "rpow", "matmul", "rmatmul", "and", "rand", "or", "ror", "xor", "rxor",
            "lshift", "rlshift", "rshift", "rrshift", "lt", "le", "gt", "ge", "neg", "pos", "abs", "invert",
            "getitem", "bool", "iter"):
    setattr(TensorArg, f"__{_op}__", _tensor_misuse)
