"""Tile IR -> PTX text for one kernel (`emit_kernel`), for sm_80, sm_90a and sm_100a.

One walk over the canonicalised `func.func`: each op is handed to the lowering
registered for its class (`lower_*.py`, one module per op family), which appends PTX
lines through this `KernelEmitter`.  A tile value becomes a list of virtual registers,
one per slot of its blocked layout (`layout.py`); a scalar is one register computed
redundantly by every thread.  Control flow is uniform across the CTA (scalars are),
so loops and branches are plain `bra`s and `bar.sync` may sit anywhere.  Data that
crosses threads (reductions, broadcasts, permutes, matmul operands) goes through the
dynamic shared memory `smem`, whose size is the largest any op needs.

Kernel ABI (`PtxKernel.params`, in order): per tensor argument a `.u64` pointer then
one `.u32` per dim (tensors are contiguous row-major); per scalar argument one
`.b32` / `.b64` / `.f32` / `.f64`; then, if the kernel reads grid axis >= 2, the grid
extents of axes 2 .. R-1 as `.u32` (axes 2.. of the launch grid are folded onto
`%ctaid.z`, axis 2 fastest).  Block = (num_warps * 32, 1, 1).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from xdsl.dialects import func, scf
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Operation, SSAValue

from tilec import dtypes as dt
from tilec.dialects import tile as T
from tilec.errors import CompileError, SourceLoc

from .layout import Blocked
from .ptx_types import REG_DECL, reg_class

#: target -> (PTX .version, numeric sm) ; sm_100a needs PTX ISA 8.6
TARGETS = {"sm_80": ("8.0", 80), "sm_90a": ("8.0", 90), "sm_100a": ("8.6", 100)}
#: the most shared memory one CTA of the target's architecture may use (the opt-in maximum:
#: A100 163 KiB; H100 and B200 227 KiB).  Smaller parts (sm_86/sm_89: 99 KiB) are checked at load.
SMEM_PER_CTA = {"sm_80": 163 * 1024, "sm_90a": 227 * 1024, "sm_100a": 227 * 1024}


class LoweringError(CompileError):
    """A tile op (with these operand dtypes) has no lowering for the target."""


@dataclass(frozen=True)
class KernelParam:
    """One `.param` of the kernel: its PTX name, launch kind and what it carries."""

    name: str
    kind: str        # "ptr" | "u32" | "i32" | "i64" | "f32" | "f64"  (tilec.runtime.cuda ARG_KINDS)
    role: tuple      # ("tensor", arg) | ("dim", arg, axis) | ("scalar", arg, dtype name) | ("grid", axis)


@dataclass(frozen=True)
class PtxKernel:
    """The emitted kernel: PTX text plus what a launcher needs to call it."""

    name: str
    target: str
    ptx: str
    params: tuple[KernelParam, ...]
    num_threads: int
    smem_bytes: int
    grid_rank: int
    #: launched with programmatic dependent launch (`launch_pdl=True`): the kernel lets the next
    #: one start (`griddepcontrol.launch_dependents`) and waits for the previous one
    #: (`griddepcontrol.wait`) before touching global memory (`KernelEmitter.defer_dependency_wait`)
    pdl: bool = False


@dataclass
class Val:
    """A lowered value: `regs[s]` holds slot s of `layout` (a scalar has layout None, one reg).

    A register name is a string; lowering helpers also accept Python ints as immediates.
    `uniform`: every slot holds the same value in every thread (a splat of a scalar), so
    the value can move to any layout without touching shared memory."""

    dtype: dt.DType
    layout: Blocked | None
    regs: list
    uniform: bool = False

    @property
    def is_scalar(self) -> bool:
        return self.layout is None


Lowering = Callable[["KernelEmitter", Operation], None]
LOWERINGS: dict[type, Lowering] = {}

#: Kernel-level hooks, `hook(em)`, run in order after the parameters are bound and before
#: the body is lowered: a lowering module that needs per-kernel set-up (tensor-memory
#: allocation, mbarriers) appends one when imported.  A hook may declare module-scope
#: variables (`em.decls`) and register code for the single kernel exit (`em.at_exit`).
KERNEL_HOOKS: list[Callable[["KernelEmitter"], None]] = []


def lowers(*op_classes: type):
    """Register a lowering function for the given op classes."""
    def deco(fn: Lowering) -> Lowering:
        for c in op_classes:
            LOWERINGS[c] = fn
        return fn
    return deco


def dtype_of(t) -> dt.DType:
    return dt.from_ir(T.element_type_of(t))


def source_loc(op: Operation) -> SourceLoc | None:
    from tilec.passes.verify import file_location

    while op is not None:
        loc = file_location(op.location) if getattr(op, "location", None) is not None else None
        if loc is not None:
            return SourceLoc(loc.filename.data, loc.line.data, loc.column.data)
        op = op.parent_op()
    return None


class KernelEmitter:
    """Builds the PTX of one kernel; lowerings call its register/instruction helpers."""

    def __init__(self, func_op: func.FuncOp, target: str, num_warps: int = 4, div16: tuple = (), pdl: bool = False):
        if target not in TARGETS:
            raise LoweringError(f"unknown PTX target '{target}'; expected one of {', '.join(TARGETS)}")
        if num_warps not in (1, 2, 4, 8, 16, 32):
            raise LoweringError(f"num_warps must be a power of two in 1..32, got {num_warps}")
        self.func = func_op
        self.target = target
        self.sm = TARGETS[target][1]
        self.num_warps = num_warps
        self.num_threads = num_warps * 32
        self.lines: list[str] = []
        self.counts: dict[str, int] = {c: 0 for c in REG_DECL}
        self.values: dict[SSAValue, Val] = {}
        self.params: list[KernelParam] = []
        self.smem_bytes = 0
        self._labels = itertools.count()
        self._scopes: list[dict] = [{}]   # memo of registers valid in the current region and outer ones
        self.tensors: dict[SSAValue, "TensorInfo"] = {}
        self.grid_rank = 0
        self.current_op: Operation | None = None
        self.div16 = tuple(div16)   # per kernel argument: `TensorSpec.div16` (vector accesses allowed)
        self.decls: list[str] = []                          # extra module-scope declarations
        self._exit_code: list[Callable[[], None]] = []     # emitted before the final `ret`
        self.pdl = pdl and self.sm >= 90                   # griddepcontrol needs sm_90
        self._dependency_wait: int | None = None           # line of the kernel-entry griddepcontrol.wait

    def at_exit(self, emit: Callable[[], None]) -> None:
        """Run `emit()` at the kernel's single exit, before `ret` (last registered runs first).
        Control flow is uniform, so every thread reaches it."""
        self._exit_code.append(emit)

    # ------------------------------------------------------------------ text
    def new(self, cls: str) -> str:
        n = self.counts[cls]
        self.counts[cls] = n + 1
        return f"%{cls}{n}"

    def ins(self, text: str) -> None:
        self.lines.append(f"\t{text};")

    def comment(self, text: str) -> None:
        self.lines.append(f"\t// {text}")

    def label(self, hint: str) -> str:
        return f"$L_{hint}_{next(self._labels)}"

    def place(self, label: str) -> None:
        self.lines.append(f"{label}:")

    def bar(self) -> None:
        self.ins("bar.sync 0")

    # ------------------------------------------------------------------ programmatic dependent launch
    def defer_dependency_wait(self, op: Operation) -> bool:
        """With `launch_pdl`, the kernel waits for the previous kernel in the stream right at
        entry.  The lowering of a top-level `op` (in the kernel's body block, so every path runs
        it) whose first global accesses do not depend on that kernel (the W4A16 loop's weight
        prologue) may take the wait over: this removes the entry wait and returns True when
        nothing emitted since then touches global memory; the lowering then emits
        `griddepcontrol.wait` (`dependency_wait`) on each of its paths before its dependent
        accesses.  False: no launch_pdl, a nested op, or too late (keep going as emitted)."""
        i = self._dependency_wait
        if i is None or op.parent_block() is not self.func.body.block \
                or any(_touches_global(line) for line in self.lines[i + 1:]):
            return False
        del self.lines[i]
        self._dependency_wait = None
        return True

    def dependency_wait(self) -> None:
        """Wait until the previous kernel in the stream has completed and its writes are visible."""
        self.ins("griddepcontrol.wait")

    # ------------------------------------------------------------------ memo scopes
    def memo(self, key, make: Callable[[], object]):
        """`make()` once per key within the current region (and the regions around it)."""
        for scope in reversed(self._scopes):
            if key in scope:
                return scope[key]
        v = self._scopes[-1][key] = make()
        return v

    def push_scope(self) -> None:
        self._scopes.append({})

    def pop_scope(self) -> None:
        self._scopes.pop()

    def snapshot(self) -> tuple:
        """State to `restore` after a trial emission (e.g. to learn a loop's yielded layouts)."""
        return (len(self.lines), dict(self.counts), [dict(s) for s in self._scopes], self.smem_bytes,
                len(getattr(self, "decls", ())), len(getattr(self, "_exit_code", ())))

    def restore(self, snap: tuple) -> None:
        n, counts, scopes, smem, n_decls, n_exit = snap
        del self.lines[n:]
        self.counts = counts
        self._scopes = scopes
        self.smem_bytes = smem
        for name, keep in (("decls", n_decls), ("_exit_code", n_exit)):
            if hasattr(self, name):
                del getattr(self, name)[keep:]

    # ------------------------------------------------------------------ errors
    def unsupported(self, what: str, d: dt.DType | None = None, why: str = "") -> LoweringError:
        """The error for an op (`what` = its name, or a phrase about the current op) with
        operands of dtype `d` that the target cannot do: names op, dtype and target."""
        op = self.current_op
        if what.split(" ")[0].count(".") or op is None:
            name = what
        else:
            name, why = op.name, (f"{what}; {why}" if why else what)
        msg = f"`{name}` with `{d.name}` operands" if d is not None else f"`{name}`"
        msg += f" is not implemented for `{self.target}`"
        if why:
            msg += f" ({why})"
        return LoweringError(msg, source_loc(op) if op is not None else None)

    def require_sm(self, sm: int, what: str, d: dt.DType | None = None) -> None:
        if self.sm < sm:
            raise self.unsupported(what, d, f"needs sm_{sm} or newer")

    # ------------------------------------------------------------------ values
    def get(self, v: SSAValue) -> Val:
        """The value of `v` in its canonical layout (`layout.Blocked` for tiles).  Lowerings
        that accept other layouts (a reduction result kept in its source's layout,
        `layout.Sliced`) read `get_any`; this converts such a value once per region."""
        val = self.values[v]
        if val.layout is None or (isinstance(val.layout, Blocked) and val.layout.canonical):
            return val
        from .exchange import to_canonical

        return self.memo(("canonical", v), lambda: to_canonical(self, val))

    def get_any(self, v: SSAValue) -> Val:
        """The value of `v` in whatever layout its lowering left it."""
        return self.values[v]

    def set(self, v: SSAValue, val: Val) -> None:
        self.values[v] = val

    def layout_of(self, t) -> Blocked | None:
        return Blocked(t.get_shape(), self.num_threads) if isinstance(t, T.TileType) else None

    def fresh(self, d: dt.DType, layout: Blocked | None) -> Val:
        n = 1 if layout is None else layout.num_slots
        cls = reg_class(d)
        return Val(d, layout, [self.new(cls) for _ in range(n)])

    def as_reg(self, x, cls: str = "r", typ: str = "b32") -> str:
        """A register holding `x` (an immediate int is moved into a fresh one)."""
        if isinstance(x, str):
            return x
        r = self.new(cls)
        self.ins(f"mov.{typ} {r}, {x}")
        return r

    # ------------------------------------------------------------------ u32 index arithmetic (folds ints)
    def add_u32(self, a, b):
        if isinstance(a, int) and isinstance(b, int):
            return (a + b) & 0xFFFFFFFF
        if b == 0:
            return a
        if a == 0:
            return b
        if isinstance(a, int):
            a, b = b, a
        return self.memo(("add", a, b), lambda: self._op2("add.u32", a, b))

    def mul_u32(self, a, b):
        if isinstance(a, int) and isinstance(b, int):
            return (a * b) & 0xFFFFFFFF
        if isinstance(a, int):
            a, b = b, a
        if b == 0:
            return 0
        if b == 1:
            return a
        return self.memo(("mul", a, b), lambda: self._op2("mul.lo.u32", a, b))

    def div_u32(self, a, c):
        """`a / c` (unsigned); `c` an int or a register."""
        if isinstance(a, int) and isinstance(c, int):
            return a // c
        if c == 1:
            return a
        return self.memo(("div", a, c), lambda: self._op2("div.u32", self.as_reg(a), c))

    def rem_u32(self, a, c):
        """`a % c` (unsigned); `c` an int or a register."""
        if isinstance(a, int) and isinstance(c, int):
            return a % c
        if c == 1:
            return 0
        return self.memo(("rem", a, c), lambda: self._op2("rem.u32", self.as_reg(a), c))

    def _op2(self, opcode: str, a, b) -> str:
        r = self.new("r")
        self.ins(f"{opcode} {r}, {a}, {b}")
        return r

    # ------------------------------------------------------------------ thread geometry
    @property
    def tid(self) -> str:
        return self.memo("tid", lambda: self._special("%tid.x"))

    def _special(self, sreg: str) -> str:
        r = self.new("r")
        self.ins(f"mov.u32 {r}, {sreg}")
        return r

    def slot_pred(self, layout: Blocked, slot: int) -> str | None:
        """Predicate 'this thread holds a real element in `slot`' (None: every thread does)."""
        n = layout.slot_threads(slot)
        if n >= layout.num_threads:
            return None
        def make():
            p = self.new("p")
            self.ins(f"setp.lt.u32 {p}, {self.tid}, {n}")
            return p
        return self.memo(("slotp", n), make)

    def element_index(self, layout: Blocked, slot: int):
        """The row-major element index of `slot` in this thread (u32 register or int)."""
        base = self.mul_u32(self.tid, layout.vec)
        return self.add_u32(base, layout.slot_const(slot))

    def coords(self, layout: Blocked, slot: int) -> list:
        """Per-dim coordinates (u32 regs or ints) of this thread's element in `slot`."""
        return self.memo(("coords", layout.shape, layout.num_threads, layout.vec, slot),
                         lambda: self._coords(layout, slot))

    def _coords(self, layout: Blocked, slot: int) -> list:
        shape = layout.shape
        r = len(shape)
        if r == 0:
            return []
        j = layout.split_dim()
        c = layout.slot_const(slot)
        P = 1
        for d in shape[j:]:
            P *= d
        base = self.mul_u32(self.tid, layout.vec)
        out: list = [0] * r
        if j < r:
            lo_base = self.memo(("lobase", shape, layout.num_threads, layout.vec),
                                lambda: self._digits(self.rem_u32(base, P), shape[j:]))
            lo_c = c % P
            digits_c = _int_digits(lo_c, shape[j:])
            for d in range(j, r):
                out[d] = self.add_u32(lo_base[d - j], digits_c[d - j])
            hi = self.add_u32(self.div_u32(base, P), c // P) if j > 0 else 0
        else:
            hi = self.add_u32(base, c)
        # dims < j from hi: the first dim takes the quotient (valid elements are in range)
        for d in range(j - 1, 0, -1):
            out[d] = self.rem_u32(hi, shape[d])
            hi = self.div_u32(hi, shape[d])
        if j > 0:
            out[0] = hi
        return [0 if shape[d] == 1 else out[d] for d in range(r)]

    def _digits(self, x, dims) -> list:
        out = [0] * len(dims)
        for d in range(len(dims) - 1, 0, -1):
            out[d] = self.rem_u32(x, dims[d])
            x = self.div_u32(x, dims[d])
        if dims:
            out[0] = x
        return out

    # ------------------------------------------------------------------ shared memory
    @property
    def smem_base(self) -> str:
        def make():
            r = self.new("r")
            self.ins(f"mov.u32 {r}, smem")
            return r
        return self.memo("smem", make)

    def reserve_smem(self, nbytes: int) -> None:
        self.smem_bytes = max(self.smem_bytes, (nbytes + 15) // 16 * 16)

    # ------------------------------------------------------------------ walking
    def emit_block(self, block: Block) -> list[SSAValue]:
        """Lower the ops of `block`; returns the operands of its terminator (yield / return)."""
        for op in block.ops:
            if isinstance(op, (scf.YieldOp, func.ReturnOp)):
                return list(op.operands)
            self.emit_op(op)
        return []

    def emit_op(self, op: Operation) -> None:
        fn = LOWERINGS.get(type(op))
        prev, self.current_op = self.current_op, op
        try:
            if fn is None:
                d = None
                if op.operands:
                    try:
                        d = dtype_of(op.operands[0].type)
                    except KeyError:
                        d = None
                raise self.unsupported(op.name, d)
            fn(self, op)
        finally:
            self.current_op = prev

    # ------------------------------------------------------------------ kernel
    def run(self) -> PtxKernel:
        from . import lower_control, lower_elementwise, lower_grid, lower_matmul, lower_memory  # noqa: F401
        from . import lower_random, lower_reduce, lower_shape, lower_tcgen05  # noqa: F401
        from . import lower_tgpu_memory, lower_wgmma  # noqa: F401  (sm_90a: tgpu stage buffers, TMA, wgmma)
        from . import lower_tgpu_attention  # noqa: F401  (sm_90a: tgpu.mask, tgpu.turn for flash attention)
        from . import lower_cp_async, lower_mma_sync  # noqa: F401  (sm_80: tgpu cp.async stages, mma.sync)
        from . import lower_scaled_mma  # noqa: F401  (sm_100a: block-scaled fp4 tcgen05; after memory/shape)
        from . import lower_w4a16  # noqa: F401  (sm_80 / sm_90a: weight-only fp4 K loops on mma.sync)
        from . import lower_quantize  # noqa: F401  (tile.quantize / tile.dequantize, every target)

        block = self.func.body.block
        name = self.func.sym_name.data
        self.grid_rank = 1 + max([op.axis.value.data for op in self.func.walk()
                                  if isinstance(op, (T.TileIdxOp, T.NumTilesOp))], default=-1)
        lower_grid.bind_params(self, block)
        for hook in KERNEL_HOOKS:
            hook(self)
        if self.pdl:
            self.ins("griddepcontrol.launch_dependents")
            self._dependency_wait = len(self.lines)
            self.dependency_wait()
        self.emit_block(block)
        for emit in reversed(self._exit_code):
            emit()
        self.ins("ret")
        self._check_smem(name)
        return PtxKernel(name, self.target, self.render(name), tuple(self.params), self.num_threads,
                         self.smem_bytes, self.grid_rank, self.pdl)

    def _check_smem(self, name: str) -> None:
        """A kernel that needs more shared memory than any CTA of the target may use could
        never launch: say so at compile time, with the kernel's location."""
        limit = SMEM_PER_CTA[self.target]
        if self.smem_bytes > limit:
            raise LoweringError(f"kernel `{name}` needs {self.smem_bytes} B of shared memory, more than the "
                                f"{limit} B a CTA may use on `{self.target}`; use smaller tiles or fewer stages "
                                f"(num_stages=)", source_loc(self.func))

    def render(self, name: str) -> str:
        version = getattr(self, "ptx_version", None) or TARGETS[self.target][0]   # an op may need a newer ISA
        head = [
            f"// tilec: kernel {name} for {self.target}, {self.num_warps} warps, {self.smem_bytes} B shared memory",
            f".version {version}",
            f".target {self.target}",
            ".address_size 64",
            "",
            ".extern .shared .align 16 .b8 smem[];",
            *self.decls,
            "",
            f".visible .entry {name}(",
            ",\n".join(f"\t.param {_param_decl(p)}" for p in self.params),
            f")",
            f".maxntid {self.num_threads}, 1, 1",
            "{",
        ]
        decls = [f"\t.reg {REG_DECL[c]} %{c}<{n}>;" for c, n in self.counts.items() if n]
        return "\n".join(head + decls + self.lines + ["}", ""])


_MEMORY_OPS = ("ld", "st", "atom", "red", "cp", "multimem", "tensormap")   # not prefetch: no effect on results
_STATE_SPACES = (".shared", ".param", ".local", ".const", ".global")


def _touches_global(line: str) -> bool:
    """Whether a PTX line is an instruction that may access global memory (a `.global` state
    space, or a memory instruction without one: generic addressing)."""
    text = line.strip()
    if not text or text.startswith("//") or text.endswith(":"):
        return False
    if text.startswith("@"):
        text = text.split(None, 1)[1] if " " in text else ""
    mnemonic = text.split(None, 1)[0] if text else ""
    if mnemonic.split(".", 1)[0] not in _MEMORY_OPS:
        return False
    return ".global" in mnemonic or not any(sp in mnemonic for sp in _STATE_SPACES)


_PARAM_TYPES = {"ptr": "u64", "u32": "u32", "i32": "b32", "i64": "b64", "f32": "f32", "f64": "f64"}


def _param_decl(p: KernelParam) -> str:
    """`.u64 p0`, or for a TMA tensor map (kind "tensormap") `.align 64 .b8 p0_tma0[128]`."""
    if p.kind == "tensormap":
        return f".align 64 .b8 {p.name}[128]"
    return f".{_PARAM_TYPES[p.kind]} {p.name}"


def _int_digits(x: int, dims) -> list[int]:
    out = [0] * len(dims)
    for d in range(len(dims) - 1, -1, -1):
        x, out[d] = divmod(x, dims[d])
    return out


@dataclass
class TensorInfo:
    """A tensor argument: global pointer register, dims (u32 regs or static ints),
    and u64 element strides (registers or ints), computed once at kernel entry."""

    dtype: dt.DType
    ptr: str
    dims: list
    strides: list = field(default_factory=list)


def emit_kernel(module: ModuleOp | func.FuncOp, target: str, num_warps: int = 4, div16: tuple = (),
                pdl: bool = False) -> PtxKernel:
    """PTX for the single `func.func` of a canonicalised tile-IR module.  `div16[i]`: kernel
    argument i is a tensor whose rows are 16-byte aligned (`TensorSpec.div16`); `pdl`: the
    kernel is launched with programmatic dependent launch (sm_90+; ignored before)."""
    f = module
    if isinstance(module, ModuleOp):
        funcs = [op for op in module.body.block.ops if isinstance(op, func.FuncOp)]
        if len(funcs) != 1:
            raise LoweringError(f"expected one func.func in the module, found {len(funcs)}")
        f = funcs[0]
    # --- tgpu (sm_90a wgmma pipelines): one warpgroup per 64 accumulator rows, set by tile-promote-smem
    fixed = f.attributes.get("tgpu.num_warps")
    if fixed is not None:
        num_warps = fixed.value.data
    # -----------------------------------------------------------------------------------
    return KernelEmitter(f, target, num_warps, div16, pdl).run()
