"""`SimError`: a PTX program misbehaved (or used something the simulator does not model)."""

from __future__ import annotations


class SimError(RuntimeError):
    """Raised for misuse found while simulating PTX: races, out-of-bounds accesses, deadlocks,
    undefined registers, TMEM misuse, or an instruction the simulator does not implement.

    The message names the instruction, its PTX line and the thread (CTA and thread index).
    ``line`` and ``instr`` are also attributes (None when not tied to one instruction)."""

    def __init__(self, message: str, *, line: int | None = None, instr: str | None = None):
        super().__init__(message)
        self.line = line
        self.instr = instr
