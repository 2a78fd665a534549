"""The compiled form of a kernel: slots, steps and the grid context they run in.

Every SSA value gets a slot in a list `env`; every op becomes a closure
`step(env, ctx)` that reads its operands' slots and writes its results'.  A value
is a numpy array whose leading G dims are the grid dims (G = len(grid)), each of
size 1 where the value does not depend on that grid axis, followed by the tile dims.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from xdsl.dialects import func, scf
from xdsl.ir import Block, Operation, SSAValue

from tilec.dialects import tile as T

Env = list
Step = Callable[[Env, "Ctx"], None]


class Ctx:
    """The (sub-)grid being executed: `sizes` programs along each axis from `base`.

    `frozen` holds the slots of the tensors no store of this launch can write (they
    overlap no stored tensor): loads may hand out read-only views of them, uncopied.
    """

    __slots__ = ("grid", "sizes", "base", "G", "frozen", "_idx")

    def __init__(self, grid: tuple[int, ...], sizes: tuple[int, ...], base: tuple[int, ...],
                 frozen: frozenset[int] = frozenset()):
        self.grid, self.sizes, self.base, self.G = grid, sizes, base, len(grid)
        self.frozen = frozen
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

    def sub(self, axes: Sequence[int], index: Sequence[int]) -> Ctx:
        sizes, base = list(self.sizes), list(self.base)
        for a, k in zip(axes, index):
            sizes[a] = 1
            base[a] += k
        return Ctx(self.grid, tuple(sizes), tuple(base), self.frozen)


Handler = Callable[[Operation, "Compiler"], Step]


class Compiler:
    """Assigns every SSA value a slot and turns ops into closures (`handlers[type(op)]`)."""

    def __init__(self, G: int, handlers: dict[type, Handler]):
        self.G = G
        self.ones = (1,) * G
        self.handlers = handlers
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
            handler = self.handlers.get(type(op))
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


def run_steps(steps: list[Step], env: Env, ctx: Ctx) -> None:
    for step in steps:
        step(env, ctx)
