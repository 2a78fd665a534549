"""The trace state: where ops are inserted and which source line they come from.

One `TraceState` is active (in a context variable) while a kernel is being traced;
the tile API functions find it here, so their public signatures carry no hidden
builder argument.  `emit` stamps every op with the current Python source location.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field

from xdsl.builder import Builder
from xdsl.dialects.builtin import FileLineColLoc, IntAttr, StringAttr

from tilec.errors import CompileError, SourceLoc

_ACTIVE: ContextVar["TraceState | None"] = ContextVar("tilec_trace_state", default=None)


class SpecializeDims(Exception):
    """Raised when a tensor dimension is needed as a compile-time constant.

    The JIT catches it, marks those `(arg_index, axis)` dims static and traces again.
    """

    def __init__(self, dims: frozenset):
        super().__init__(f"specialise on tensor dims {sorted(dims)}")
        self.dims = dims


@dataclass
class TraceState:
    builder: Builder
    loc: SourceLoc | None = None
    max_grid_axis: int = -1
    _loc_attrs: dict = field(default_factory=dict)

    def emit(self, op):
        """Insert `op` at the current point, tagged with the current source location."""
        loc = self.loc
        if loc is not None:
            attr = self._loc_attrs.get((loc.file, loc.line, loc.col))
            if attr is None:
                attr = FileLineColLoc(StringAttr(loc.file), IntAttr(loc.line), IntAttr(loc.col))
                self._loc_attrs[(loc.file, loc.line, loc.col)] = attr
            op.location = attr
        self.builder.insert(op)
        return op

    def error(self, message: str) -> CompileError:
        return CompileError(message, self.loc)


def current() -> TraceState:
    """The active trace state; tile API calls outside a kernel get a clear error."""
    state = _ACTIVE.get()
    if state is None:
        raise CompileError("tile operations can only be used inside a @tilec.kernel function "
                           "(launch it as kernel[grid](...))")
    return state


def is_tracing() -> bool:
    """Whether a kernel is being traced in this context."""
    return _ACTIVE.get() is not None


def activate(state: TraceState):
    return _ACTIVE.set(state)


def deactivate(token) -> None:
    _ACTIVE.reset(token)
