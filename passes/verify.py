"""tile-verify: verify the module and report the failing op at its source location.

xDSL's `VerifyException` names neither the op nor its location.  This pass (and
`verify_with_locations`, for code that verifies outside a pipeline) re-raises it as
`kernel.py:12:9: error: 'tile.matmul' op <message>`, taking the position from the
failing op's `loc(...)`, or from the nearest enclosing op that has one.  The IR
dump with the failing op marked is kept only when `debug=True`.

Input invariant:
  - any IR; ops built by the front end carry `FileLineColLoc`s.
Output IR:
  - unchanged; `VerifyException("file:line:col: error: ...")` if it does not verify.

Before:
  %c = tile.matmul %a, %b : !tile.tile<64x32xf16>, !tile.tile<16x64xf16> -> !tile.tile<64x64xf32> loc("mm.py":7:9)
After (raised):
  mm.py:7:9: error: 'tile.matmul' op matmul shapes [64, 32] and [16, 64] do not agree: inner dimensions 32 and 16 differ
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import CallSiteLoc, FileLineColLoc, FusedLoc, ModuleOp, NameLoc
from xdsl.ir import Attribute, Operation
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import VerifyException


def file_location(loc: Attribute) -> FileLineColLoc | None:
    """The first `FileLineColLoc` inside `loc` (looking through name, call-site and fused locations)."""
    if isinstance(loc, FileLineColLoc):
        return loc
    if isinstance(loc, NameLoc):
        return file_location(loc.location)
    if isinstance(loc, CallSiteLoc):
        return file_location(loc.callee)
    if isinstance(loc, FusedLoc):
        return next((f for sub in loc.locations.data if (f := file_location(sub)) is not None), None)
    return None


def format_error(op: Operation, message: str) -> str:
    """`file:line:col: error: 'op.name' op message`, located at `op` or its nearest located ancestor.

    The `'op.name' op` part is left out when the message already starts with the op name.
    """
    node: Operation | None = op
    while node is not None and (loc := file_location(node.location)) is None:
        node = node.parent_op()
    where = f"{loc.filename.data}:{loc.line.data}:{loc.column.data}: " if node is not None else ""
    what = "" if message.startswith(op.name + " ") else f"'{op.name}' op "  # no 'tile.x' op tile.x ...
    return f"{where}error: {what}{message}"


def _failing_op(module: Operation) -> tuple[Operation, VerifyException] | None:
    """The first op (inner ops first, as `verify()` goes) whose own checks fail."""
    for op in module.walk(region_first=True):
        try:
            op.verify(verify_nested_ops=False)
        except VerifyException as e:
            return op, e
    return None


def verify_with_locations(module: Operation, *, debug: bool = False) -> None:
    """`module.verify()`, re-raising a failure as `VerifyException("file:line:col: error: ...")`.

    The original exception is chained; with `debug`, its notes (xDSL's IR dump with the
    failing op marked) are copied onto the new one.
    """
    try:
        module.verify()
    except VerifyException as e:
        found = _failing_op(module)
        op, cause = found if found is not None else (module, e)
        located = VerifyException(format_error(op, str(cause)))
        if debug:
            for note in getattr(e, "__notes__", ()):
                located.add_note(note)
        raise located from e


@dataclass(frozen=True)
class TileVerifyPass(ModulePass):
    name = "tile-verify"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        verify_with_locations(op)
