"""User-facing errors.  Every mistake in a kernel is one `CompileError` that names the
kernel's file, line and column, shows the source line with a caret, and says what is
wrong in tile-API terms:

    softmax.py:12:9: error: matmul shapes [64, 32] and [64, 64] do not agree: inner dimensions 32 and 64 differ
        c = ct.matmul(a, b)
            ^^^^^^^^^^^^^^^
"""

from __future__ import annotations

import linecache
from dataclasses import dataclass


@dataclass(frozen=True)
class SourceLoc:
    """A position in the user's Python source (1-based line and column)."""

    file: str
    line: int
    col: int
    end_col: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class TilecError(Exception):
    """Base of every error tilec raises on purpose."""


class CompileError(TilecError):
    """A kernel cannot be compiled; the message starts with `file:line:col: error:`."""

    def __init__(self, message: str, loc: SourceLoc | None = None):
        self.message = message
        self.loc = loc
        super().__init__(format_diagnostic(message, loc))


class LaunchError(TilecError, TypeError):
    """A launch (`kernel[grid](*args)`) got the wrong grid or arguments.

    The message starts with the location of the launch: the innermost calling frame
    outside tilec (`train.py:40:5: error: kernel 'add' takes 3 arguments ...`)."""

    def __init__(self, message: str, loc: SourceLoc | None = None):
        self.message = message
        self.loc = loc if loc is not None else user_frame_loc()
        super().__init__(format_diagnostic(message, self.loc))


def _tilec_dirs() -> tuple[str, ...]:
    import os
    import sys

    dirs = []
    for name in ("tilec", "tilec.dialects", "tilec.passes", "tilec.backends"):
        mod = sys.modules.get(name)
        if mod is not None and getattr(mod, "__file__", None):
            dirs.append(os.path.dirname(os.path.abspath(mod.__file__)) + os.sep)
    return tuple(dirs)


def user_frame_loc() -> SourceLoc | None:
    """Where the innermost frame outside tilec's own packages is (the user's call)."""
    import inspect
    import os
    import sys

    skip = _tilec_dirs()
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(skip):
        frame = frame.f_back
    if frame is None:
        return None
    pos = inspect.getframeinfo(frame, context=0).positions
    if pos is None or pos.lineno is None or pos.col_offset is None:
        return SourceLoc(frame.f_code.co_filename, frame.f_lineno, 1)
    end = pos.end_col_offset + 1 if pos.end_lineno == pos.lineno and pos.end_col_offset is not None else None
    return SourceLoc(frame.f_code.co_filename, pos.lineno, pos.col_offset + 1, end)


def format_diagnostic(message: str, loc: SourceLoc | None, severity: str = "error") -> str:
    if loc is None:
        return f"{severity}: {message}"
    text = f"{loc}: {severity}: {message}"
    line = linecache.getline(loc.file, loc.line).rstrip("\n")
    if line:
        start = max(loc.col - 1, 0)
        end = loc.end_col - 1 if loc.end_col and loc.end_col - 1 > start else len(line.rstrip())
        text += f"\n    {line}\n    {' ' * start}{'^' * max(end - start, 1)}"
    return text
