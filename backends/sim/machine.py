"""The interpreter: one CTA at a time, every register a numpy array over the CTA's threads.

Scheduling.  The CTA's threads form *groups* (pc, thread mask, state).  Each step runs the
runnable group with the smallest pc, so after a divergent branch the paths run one after the
other and re-merge when their pcs meet: the "min-pc" rule, which reconverges at the immediate
post-dominator for code laid out in program order (as compilers emit it).  A group is
RUN, BAR (waiting in ``bar.sync``/``barrier.sync``) or PARK (its ``mbarrier.try_wait`` failed:
it sleeps until some mbarrier changes).  With nothing runnable, pending async work (TMA,
bulk copies, tcgen05.commit) is completed; if that changes nothing either, the CTA is
deadlocked and the waiting instruction is reported.

Instruction handlers live in the ``isa_*`` modules and register themselves by opcode head
(`handler`).  A plain handler ``fn(cta, ins)`` computes over all threads and writes through
``cta.set`` under ``cta.mask`` (the group's threads whose guard predicate holds); a control
handler ``fn(cta, ins, group, gmask)`` moves pcs and reshapes groups itself.
"""

from __future__ import annotations

import numpy as np

from .errors import SimError
from .memory import (LOCAL_WINDOW, PARAM_WINDOW, SHARED_WINDOW, WINDOW_SIZE,
                     GlobalMemory, SharedMemory)
from .parser import Instr, Kernel
from .ptx_types import SINT, UINT, PtxType, ptx_type

RUN, BAR, PARK = 0, 1, 2
PLAIN, CTRL = 0, 1

HANDLERS: dict[str, tuple[object, int]] = {}


def handler(*heads: str, kind: int = PLAIN):
    """Register ``fn`` for instructions whose opcode starts with one of ``heads``
    (a head is the first dot-part, or several dotted parts for e.g. ``cp.async.bulk``)."""
    def deco(fn):
        for h in heads:
            HANDLERS[h] = (fn, kind)
        return fn
    return deco


def bind(ins: Instr) -> None:
    """Find the handler of ``ins`` (longest registered dotted prefix of its opcode)."""
    for n in range(len(ins.mods), 0, -1):
        hit = HANDLERS.get(".".join(ins.mods[:n]))
        if hit is not None:
            ins.exec, ins.kind = hit
            return
    raise SimError(f"{ins.where()}: instruction `{ins.opcode}` is not supported by the PTX simulator",
                   line=ins.line, instr=ins.text)


class Group:
    __slots__ = ("pc", "mask", "state", "info", "full")

    def __init__(self, pc: int, mask: np.ndarray, state: int = RUN, info=None, full: bool = False):
        self.pc, self.mask, self.state, self.info, self.full = pc, mask, state, info, full


class Launch:
    """What all CTAs of one `simulate` call share: kernel, global memory, params, options."""

    def __init__(self, kernel: Kernel, grid, block, gmem: GlobalMemory, param_bytes: np.ndarray,
                 tensormaps: dict, shared_bytes: int, arch: str, module_globals: dict, max_steps: int):
        self.kernel = kernel
        self.grid = grid
        self.block = block
        self.gmem = gmem
        self.param_bytes = param_bytes
        self.tensormaps = tensormaps          # param offset -> SimTensorMap
        self.shared_bytes = shared_bytes
        self.arch = arch
        self.module_globals = module_globals  # name -> global address
        self.max_steps = max_steps
        self.reg_types: list[PtxType] = [t for _, t in kernel.regs]
        self.shared_layout, self.static_smem = _layout(
            [v for v in kernel.vars.values() if v.space == "shared"], shared_bytes)
        self.local_layout, self.local_size = _layout([v for v in kernel.vars.values() if v.space == "local"], 0)
        self.sm = int("".join(ch for ch in arch.split("_")[1] if ch.isdigit())) if "_" in arch else 100


def _layout(variables, dynamic: int):
    """Offsets of static variables in declaration order, then the extern (dynamic) arrays."""
    offs, off = {}, 0
    for v in variables:
        if v.extern:
            continue
        off = (off + v.align - 1) // v.align * v.align
        offs[v.name] = off
        off += v.nbytes
    static = off
    for v in variables:
        if v.extern:
            a = max(v.align, 16)
            off = (static + a - 1) // a * a
            offs[v.name] = off
    total = (max(off, static) + dynamic) if any(v.extern for v in variables) else static + dynamic
    return offs, total


class CTA:
    """The state of one thread block while it runs."""

    def __init__(self, launch: Launch, ctaid: tuple[int, int, int]):
        self.L = launch
        k = launch.kernel
        bx, by, bz = launch.block
        self.T = T = bx * by * bz
        self.ctaid = ctaid
        lin = np.arange(T, dtype=np.int64)
        self.tid = (lin % bx, (lin // bx) % by, lin // (bx * by))
        self.lane = lin % 32
        self.warp = lin // 32
        self.nwarps = (T + 31) // 32
        self.regs = [np.zeros(T, t.raw) for t in launch.reg_types]
        self.defined = [np.zeros(T, bool) for _ in launch.reg_types]
        self.full_def = [False] * len(launch.reg_types)
        self.exited = np.zeros(T, bool)
        self.smem = SharedMemory(launch.static_smem, T, self.warp)
        self.local = np.zeros((T, max(launch.local_size, 1)), np.uint8)
        self.groups: list[Group] = [Group(0, np.ones(T, bool), full=True)]
        self.mask = self.groups[0].mask
        self.full = True
        self.ins: Instr | None = None
        self.park: np.ndarray | None = None
        self.park_key = None
        self.steps = 0
        self.clock = 0
        # state owned by the ISA modules
        self.barriers: dict[int, np.ndarray] = {}        # bar id -> arrived mask
        self.mbars: dict = {}                              # smem offset -> MBarrier
        self.mbar_version = 0
        self.stall_version = -1
        self.async_ops: list = []                          # pending TMA / bulk / commit operations
        self.cp_async: list = []                           # pending sm80 cp.async copies
        self.cp_committed = np.zeros(T, np.int64)
        self.tmem = None
        self.ext: dict = {}

    # ------------------------------------------------------------------ errors
    def thread_str(self, t: int) -> str:
        x, y, z = (int(a[t]) for a in self.tid)
        return (f"thread ({x},{y},{z}) [linear {t}, warp {t // 32}, lane {t % 32}] of CTA "
                f"({self.ctaid[0]},{self.ctaid[1]},{self.ctaid[2]})")

    def error(self, msg: str, t: int | None = None, ins: Instr | None = None) -> SimError:
        ins = ins or self.ins
        where = f"{ins.where()}: " if ins is not None else ""
        who = f" [{self.thread_str(t)}]" if t is not None else ""
        return SimError(f"{where}{msg}{who}", line=ins.line if ins else None, instr=ins.text if ins else None)

    def err_at(self, tids: np.ndarray):
        """An ``err(msg, k)`` callback for memory helpers: k indexes ``tids``."""
        def err(msg: str, k: int):
            raise self.error(msg, int(tids[k]) if len(tids) else None)
        return err

    def active(self) -> np.ndarray:
        return np.nonzero(self.mask)[0]

    # ------------------------------------------------------------------ registers
    def undefined(self, idx: int, mask: np.ndarray) -> SimError:
        bad = mask & ~self.defined[idx]
        t = int(np.argmax(bad))
        return self.error(f"reads register {self.L.kernel.regs[idx][0]} before any write to it", t)

    def get(self, op, t: PtxType):
        """Operand ``op`` as values of type ``t``: an array over all threads, or a numpy scalar."""
        tag = op[0]
        if tag == "reg":
            idx = op[1]
            if not self.full_def[idx]:
                d = self.defined[idx]
                if not d[self.mask].all():
                    raise self.undefined(idx, self.mask)
            v = as_type(self.regs[idx], self.L.reg_types[idx], t)
            if op[2]:
                if t.kind != "pred":
                    raise self.error("`!` negation applies to predicates only")
                v = ~v
            return v
        if tag == "imm":
            return imm_value(op, t)
        if tag == "special":
            return self.special(op[1], t)
        if tag in ("sym", "symoff"):
            v = self.symbol_address(op[1]) + (op[2] if tag == "symoff" else 0)
            return np.array(v & ((1 << t.bits) - 1), UINT[t.bits]).view(t.np)[()]
        raise self.error(f"operand {op!r} cannot be read as a value")

    def get_raw(self, op, bits: int):
        """Operand as raw unsigned bits of width ``bits``."""
        return self.get(op, ptx_type(f"b{bits}"))

    def set(self, op, t: PtxType, value) -> None:
        """Write ``value`` (of type ``t``) into register operand ``op`` for the threads of ``cta.mask``."""
        tag = op[0]
        if tag == "sink":
            return
        if tag != "reg":
            raise self.error(f"destination {op!r} is not a register")
        idx = op[1]
        rt = self.L.reg_types[idx]
        value = np.asarray(value)
        if t.kind == "pred" or rt.kind == "pred":
            if t.kind != rt.kind:
                raise self.error(f"type mismatch: .{t.name} value written to predicate register "
                                 f"{self.L.kernel.regs[idx][0]}" if rt.kind == "pred" else
                                 f"predicate written to .{rt.name} register {self.L.kernel.regs[idx][0]}")
            bits = value.astype(bool)
        else:
            if value.dtype != t.np:
                value = value.astype(t.np)
            bits = value.view(UINT[t.bits]) if value.dtype.itemsize * 8 == t.bits else value.astype(UINT[t.bits])
            if rt.bits != t.bits:
                if rt.bits > t.bits and t.kind == "s":
                    bits = bits.view(SINT[t.bits]).astype(SINT[rt.bits]).view(UINT[rt.bits])
                else:
                    bits = bits.astype(UINT[rt.bits])
        reg = self.regs[idx]
        if self.full:
            reg[...] = bits
            if not self.full_def[idx]:
                self.full_def[idx] = True
                self.defined[idx][:] = True
        else:
            m = self.mask
            reg[m] = bits[m] if bits.ndim else bits
            if not self.full_def[idx]:
                self.defined[idx][m] = True

    def special(self, name: str, t: PtxType):
        base, _, comp = name.partition(".")
        axis = "xyz".index(comp) if comp in ("x", "y", "z") else 0
        L = self.L
        if base == "%tid":
            v = self.tid[axis]
        elif base == "%ntid":
            v = L.block[axis]
        elif base == "%ctaid":
            v = self.ctaid[axis]
        elif base == "%nctaid":
            v = L.grid[axis]
        elif base == "%laneid":
            v = self.lane
        elif base == "%warpid":
            v = self.warp
        elif base == "%nwarpid":
            v = self.nwarps
        elif base in ("%smid", "%gridid", "%cluster_ctarank", "%is_explicit_cluster"):
            v = 0
        elif base in ("%nsmid", "%cluster_nctarank"):
            v = 1
        elif base in ("%clusterid",):
            v = self.ctaid[axis]
        elif base in ("%nclusterid",):
            v = L.grid[axis]
        elif base in ("%cluster_ctaid",):
            v = 0
        elif base in ("%cluster_nctaid",):
            v = 1
        elif base in ("%clock", "%clock64", "%globaltimer", "%globaltimer_lo", "%globaltimer_hi"):
            v = self.steps
        elif base.startswith("%lanemask_"):
            lane = self.lane.astype(np.uint64)
            one = np.uint64(1)
            rel = base[len("%lanemask_"):]
            lt = (one << lane) - one
            v = {"eq": one << lane, "lt": lt, "le": (lt << one) | one, "gt": ~((lt << one) | one) & np.uint64(0xFFFFFFFF),
                 "ge": ~lt & np.uint64(0xFFFFFFFF)}[rel]
        elif base in ("%dynamic_smem_size",):
            v = L.shared_bytes
        elif base in ("%total_smem_size", "%aggr_smem_size"):
            v = self.smem.size
        else:
            raise self.error(f"special register {name} is not simulated")
        if t.kind == "f":
            raise self.error(f"special register {name} read as .{t.name}")
        return np.asarray(v).astype(np.int64).astype(t.np) if np.ndim(v) else np.array(int(v) & ((1 << t.bits) - 1), UINT[t.bits]).view(t.np)[()]

    # ------------------------------------------------------------------ addresses
    def symbol_address(self, name: str) -> int:
        L = self.L
        var = L.kernel.vars.get(name)
        if var is not None:
            if var.space == "shared":
                return L.shared_layout[name]
            if var.space == "local":
                return L.local_layout[name]
            if var.space == "param":
                return var.offset
        if name in L.module_globals:
            return L.module_globals[name]
        if name in L.shared_layout:
            return L.shared_layout[name]
        raise self.error(f"`{name}` has no address")

    def address(self, op) -> np.ndarray:
        """The address of a ``("addr", base, off)`` operand for every thread (uint64 array)."""
        if op[0] != "addr":
            raise self.error(f"expected a [address] operand, got {op!r}")
        base, off = op[1], op[2]
        if base is None:
            return np.full(self.T, off & (2 ** 64 - 1), np.uint64)
        if base[0] == "sym":
            return np.full(self.T, (self.symbol_address(base[1]) + off) & (2 ** 64 - 1), np.uint64)
        idx = base[1]
        rt = self.L.reg_types[idx]
        v = self.get(base, ptx_type(f"u{rt.bits}" if rt.bits in (32, 64) else "u64"))
        return (v.astype(np.uint64) + np.uint64(off & (2 ** 64 - 1))).astype(np.uint64)

    def space_of(self, ins: Instr) -> str:
        """The state space named by the instruction's modifiers ('' for generic)."""
        for m in ins.mods[1:]:
            s = m.split("::")[0]
            if s in ("global", "shared", "local", "param", "const"):
                return s
        return ""

    def resolve(self, addr: np.ndarray, space: str, tids: np.ndarray):
        """Split generic addresses into (space, per-thread offsets) groups: yields (space, sel, off)."""
        if space:
            if space == "shared":
                a = addr.astype(np.int64)
                # a 64-bit shared::cta address may arrive as a generic-window address
                gen = (a >= SHARED_WINDOW) & (a < SHARED_WINDOW + WINDOW_SIZE)
                a = np.where(gen, a - SHARED_WINDOW, a)
                yield "shared", np.ones(len(addr), bool), a
            elif space == "param":
                a = addr.astype(np.int64)
                a = np.where((a >= PARAM_WINDOW) & (a < PARAM_WINDOW + WINDOW_SIZE), a - PARAM_WINDOW, a)
                yield "param", np.ones(len(addr), bool), a
            elif space == "local":
                a = addr.astype(np.int64)
                a = np.where((a >= LOCAL_WINDOW) & (a < LOCAL_WINDOW + WINDOW_SIZE), a - LOCAL_WINDOW, a)
                yield "local", np.ones(len(addr), bool), a
            else:                               # global, const (module variables live in global memory)
                yield "global", np.ones(len(addr), bool), addr
            return
        a = addr.astype(np.uint64)
        win = (a >> np.uint64(40)).astype(np.int64)
        for w, sp in ((1, "shared"), (2, "local"), (3, "param"), (4, "const")):
            sel = win == w
            if sel.any():
                yield sp, sel, (a[sel] - np.uint64(w << 40)).astype(np.int64)
        sel = win >= 16
        if sel.any():
            yield "global", sel, a[sel]
        bad = (win == 0) | ((win > 4) & (win < 16))
        if bad.any():
            k = int(np.argmax(bad))
            raise self.error(f"generic address {int(a[k]):#x} is in no state space (a missing cvta?)", int(tids[k]))

    def mem_read(self, addr: np.ndarray, size: int, space: str, tids: np.ndarray) -> np.ndarray:
        """Bytes [n, size] at ``addr`` (one address per thread in ``tids``)."""
        self.check_align(addr, size, tids)
        out = np.empty((len(tids), size), np.uint8)
        for sp, sel, off in self.resolve(addr, space, tids):
            t = tids[sel]
            err = self.err_at(t)
            if sp == "global":
                out[sel] = self.L.gmem.read(off, size, err)
            elif sp == "shared":
                out[sel] = self.smem.read(off, size, t, err, line=self.ins.line)
            elif sp == "local":
                self._local_bounds(off, size, t)
                out[sel] = self.local[t[:, None], off[:, None] + np.arange(size)]
            elif sp == "param":
                pb = self.L.param_bytes
                if (off < 0).any() or (off + size > len(pb)).any():
                    k = int(np.argmax((off < 0) | (off + size > len(pb))))
                    err(f"out-of-bounds param access at offset {int(off[k])} (params are {len(pb)} bytes)", k)
                out[sel] = pb[off[:, None] + np.arange(size)]
            else:
                err(f"generic address in the .{sp} window is not simulated", 0)
        return out

    def mem_write(self, addr: np.ndarray, data: np.ndarray, space: str, tids: np.ndarray) -> None:
        size = data.shape[1]
        self.check_align(addr, size, tids)
        for sp, sel, off in self.resolve(addr, space, tids):
            t = tids[sel]
            err = self.err_at(t)
            if sp == "global":
                self.L.gmem.write(off, data[sel], err)
            elif sp == "shared":
                self.smem.write(off, data[sel], t, err, self.ins.line)
            elif sp == "local":
                self._local_bounds(off, size, t)
                self.local[t[:, None], off[:, None] + np.arange(size)] = data[sel]
            else:
                err(f"stores to .{sp} space are not allowed", 0)

    def _local_bounds(self, off, size, tids):
        bad = (off < 0) | (off + size > self.L.local_size)
        if bad.any():
            k = int(np.argmax(bad))
            raise self.error(f"out-of-bounds local access of {size} bytes at offset {int(off[k])} "
                             f"(local frame is {self.L.local_size} bytes)", int(tids[k]))

    def check_align(self, addr: np.ndarray, size: int, tids: np.ndarray) -> None:
        if size > 1:
            bad = (addr.astype(np.uint64) % np.uint64(min(size, 16))) != 0
            if bad.any():
                k = int(np.argmax(bad))
                raise self.error(f"misaligned {size}-byte access at address {int(addr[k]):#x}", int(tids[k]))

    # ------------------------------------------------------------------ scheduling
    def run(self) -> None:
        prog = self.L.kernel.prog
        nprog = len(prog)
        max_steps = self.L.max_steps
        groups = self.groups
        while True:
            if len(groups) == 1 and groups[0].state == RUN:
                g = groups[0]
            else:
                g = self._pick()
                if g is None:
                    break
            if g.pc >= nprog:            # fell off the end: implicit ret
                self.exit_threads(g, g.mask)
                continue
            ins = prog[g.pc]
            if ins.exec is None:
                bind(ins)
            self.ins = ins
            mask = g.mask
            if ins.guard is not None:
                gi, neg = ins.guard
                if not self.full_def[gi] and not self.defined[gi][mask].all():
                    raise self.undefined(gi, mask)
                p = self.regs[gi]
                gmask = mask & ~p if neg else mask & p
                full = False
            else:
                gmask = mask
                full = g.full
            self.steps += 1
            if self.steps > max_steps:
                raise self.error(f"more than {max_steps} instruction steps in one CTA: an infinite loop? "
                                 f"(raise max_steps if the kernel is just long)")
            if ins.kind == CTRL:
                self.mask, self.full = gmask, False
                ins.exec(self, ins, g, gmask)
            else:
                if gmask is mask or gmask.any():
                    self.mask = gmask
                    self.full = full
                    ins.exec(self, ins)
                g.pc += 1
                if self.park is not None:
                    self._park(g)
            if len(groups) > 1:
                self._merge()

    def _pick(self) -> Group | None:
        groups = self.groups
        while True:
            best = None
            for g in groups:
                if g.state == RUN and (best is None or g.pc < best.pc):
                    best = g
            if best is not None:
                return best
            if not groups:
                return None
            self._stalled()

    def _stalled(self) -> None:
        """Nothing can run: finish pending async work, or report the deadlock."""
        from .isa_async import drain_all
        parked = [g for g in self.groups if g.state == PARK]
        if drain_all(self):
            for g in parked:
                g.state = RUN
            return
        if parked:
            # let the sleepers look once more; if their barrier is unchanged they fail in try_wait
            self.stall_version = self.mbar_version
            for g in parked:
                g.state = RUN
            return
        bars = [g for g in self.groups if g.state == BAR]
        g = bars[0]
        ins = self.L.kernel.prog[g.pc]
        bid, expected = g.info
        arrived = self.barriers.get(bid, np.zeros(self.T, bool))
        missing = ~arrived & ~self.exited
        ex = int(self.exited.sum())
        waiting = int(arrived.sum())
        t = int(np.argmax(missing)) if missing.any() else None
        where = ""
        if t is not None:
            other = [h for h in self.groups if h.mask[t]]
            if other:
                where = f"; thread {t} is blocked at line {self.L.kernel.prog[other[0].pc].line}"
        msg = (f"deadlock: barrier {bid} is waited on by {waiting} threads but expects {expected}"
               f"{f' ({ex} threads have exited)' if ex else ''}: not all threads reach this bar.sync{where}")
        raise self.error(msg, int(np.argmax(g.mask)), ins)

    def _park(self, g: Group) -> None:
        pm = self.park
        self.park = None
        key = self.park_key
        rest = g.mask & ~pm
        if rest.any():
            g.mask = rest
            g.full = False
            self.groups.append(Group(g.pc, pm, PARK, key))
        else:
            g.state, g.info = PARK, key

    def wake(self) -> None:
        """An mbarrier changed: parked groups may run again."""
        self.mbar_version += 1
        for g in self.groups:
            if g.state == PARK:
                g.state = RUN

    def _merge(self) -> None:
        groups = self.groups
        seen: dict[int, Group] = {}
        out = []
        for g in groups:
            if g.state != RUN:
                out.append(g)
                continue
            h = seen.get(g.pc)
            if h is None:
                seen[g.pc] = g
                out.append(g)
            else:
                h.mask = h.mask | g.mask
                h.full = bool(h.mask.all())
        if len(out) != len(groups):
            groups[:] = out

    def split(self, g: Group, taken: np.ndarray, target: int) -> None:
        """Branch: threads of ``taken`` (within g) go to ``target``, the others fall through."""
        if not taken.any():
            g.pc += 1
            return
        rest = g.mask & ~taken
        if not rest.any():
            g.pc = target
            return
        g.mask, g.full = rest, False
        g.pc += 1
        self.groups.append(Group(target, taken, RUN))

    def exit_threads(self, g: Group, m: np.ndarray) -> None:
        self.exited |= m
        rest = g.mask & ~m
        if rest.any():
            g.mask, g.full = rest, False
            g.pc += 1
        else:
            self.groups.remove(g)
        self.full = False
        # a barrier may now be complete only if it counted exited threads: it does not (strict)


# ---------------------------------------------------------------------- value helpers

def as_type(raw: np.ndarray, rt: PtxType, t: PtxType) -> np.ndarray:
    """Reinterpret a register's raw bits as type ``t`` (truncating / zero- or sign-extending)."""
    if t.kind == "pred" or rt.kind == "pred":
        if t.kind != rt.kind:
            raise SimError(f"a .{rt.name} register used as .{t.name}")
        return raw
    W, w = rt.bits, t.bits
    if W == w:
        return raw if t.np == raw.dtype else raw.view(t.np)
    if W > w:
        return raw.astype(UINT[w]).view(t.np)
    if t.kind == "s" and rt.kind == "s":
        return raw.view(SINT[W]).astype(t.np)
    return raw.astype(UINT[w]).view(t.np)


def imm_value(op, t: PtxType):
    """An immediate as a numpy scalar of type ``t``: hex floats (0f / 0d) are bit patterns,
    integers wrap to the type's width, decimal floats are values."""
    _, kind, v = op
    if t.kind == "pred":
        return np.bool_(v != 0)
    if t.kind == "f":
        if kind == "f32hex" and t.name == "f32" or kind == "f64hex" and t.name == "f64":
            return np.array(v, UINT[t.bits]).view(t.np)[()]
        if kind == "f32hex":
            v = float(np.array(v, np.uint32).view(np.float32))
        elif kind == "f64hex":
            v = float(np.array(v, np.uint64).view(np.float64))
        return np.array(float(v)).astype(t.np)[()]
    if kind == "float":
        raise SimError(f"float immediate {v} used as .{t.name}")
    return np.array(int(v) & ((1 << t.bits) - 1), UINT[t.bits]).view(t.np)[()]
