"""PTX text -> `Module` of `Kernel`s: declarations resolved, instructions as compact records.

Each `Instr` keeps its opcode split on dots (``mods``), its guard predicate, its operands as
small tagged tuples and its source line; labels become instruction indices and every
register name an index into the kernel's register file (nested ``{ }`` scopes shadow).
Parsing is cached per PTX text (`parse`).

Operands (all tuples, first element the tag)::

    ("reg", idx, negated)      %r3, !%p1            ("imm", kind, value)  42, 0x7F, 0f3F800000, 1.5
    ("sym", name)              a variable or param  ("special", "%tid.x")
    ("addr", base, offset)     [%rd1+16], [smem], [8]       base: a reg/sym operand or None
    ("vec", [ops])             {%f0, %f1, _}        ("taddr", tmap, vec)  [%rd0, {%r1, %r2}]
    ("label", name)            a branch target      ("sink",)             _
    ("pair", a, b)             %r1|%p2 (setp / elect.sync two destinations)
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from .errors import SimError
from .ptx_types import PtxType, ptx_type

_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_LABEL = re.compile(r"([A-Za-z_$][\w$]*)\s*:(?!:)")
_IDENT = re.compile(r"[%A-Za-z_$][\w$]*")
_SPECIAL = {"%tid", "%ntid", "%ctaid", "%nctaid", "%laneid", "%warpid", "%nwarpid", "%smid", "%nsmid",
            "%gridid", "%clock", "%clock64", "%lanemask_eq", "%lanemask_le", "%lanemask_lt",
            "%lanemask_ge", "%lanemask_gt", "%dynamic_smem_size", "%total_smem_size", "%aggr_smem_size",
            "%globaltimer", "%globaltimer_lo", "%globaltimer_hi", "%cluster_ctarank", "%cluster_nctarank",
            "%clusterid", "%nclusterid", "%cluster_ctaid", "%cluster_nctaid", "%is_explicit_cluster",
            "%reserved_smem_offset_begin", "%reserved_smem_offset_end", "%reserved_smem_offset_cap"}


@dataclass
class Var:
    """A ``.shared`` / ``.local`` / ``.global`` / ``.const`` / ``.param`` variable."""

    name: str
    space: str          # shared | local | global | const | param
    typ: PtxType
    count: int          # elements (0 for an unsized extern array)
    align: int
    extern: bool = False
    init: list | None = None
    offset: int = 0     # assigned by the machine (shared/local/param layouts)

    @property
    def nbytes(self) -> int:
        return max(self.typ.bits // 8, 1) * self.count


@dataclass
class Instr:
    """One instruction: ``opcode`` (full dotted text), ``mods`` (its dot-separated parts),
    ``guard`` (reg index, negated) or None, ``ops`` (operand tuples), ``line`` and ``text``."""

    opcode: str
    mods: tuple
    guard: tuple | None
    ops: list
    line: int
    text: str
    pc: int = 0
    exec: object = None      # bound handler, set lazily by the machine
    kind: int = 0            # 0 plain, 1 control (handler manages the thread groups)
    data: object = None      # per-instruction cache for handlers

    @property
    def head(self) -> str:
        return self.mods[0]

    def where(self) -> str:
        return f"line {self.line}: `{self.text}`"


@dataclass
class Kernel:
    name: str
    params: list[Var]
    regs: list[tuple[str, PtxType]]          # index -> (name, type)
    vars: dict[str, Var]                    # kernel-scope shared/local variables + params
    prog: list[Instr]
    labels: dict[str, int]
    directives: dict = field(default_factory=dict)


@dataclass
class Module:
    version: str
    target: str
    kernels: dict[str, Kernel]
    globals: dict[str, Var]


def _strip(text: str) -> str:
    """Remove comments (keeping newlines so line numbers survive) and .loc/.file/.section lines."""
    text = _COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    out = []
    for ln in text.split("\n"):
        s = ln.strip()
        if s.startswith((".loc", ".file", ".section", "@@DWARF")):
            out.append("")
        else:
            out.append(ln)
    return "\n".join(out)


def split_top(s: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside [] {} ()."""
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    tail = "".join(cur).strip()
    if tail or parts:
        parts.append(tail)
    return [p for p in parts if p != ""] if parts != [""] else []


def parse_int(tok: str) -> int | None:
    t = tok.strip()
    neg = t.startswith("-")
    if neg or t.startswith("+"):
        t = t[1:].strip()
    t = t.rstrip("Uu")
    try:
        if t.lower().startswith("0x"):
            v = int(t, 16)
        elif t.lower().startswith("0b"):
            v = int(t, 2)
        elif len(t) > 1 and t.startswith("0") and t.isdigit():
            v = int(t, 8)
        elif t.isdigit():
            v = int(t)
        else:
            return None
    except ValueError:
        return None
    return -v if neg else v


def parse_imm(tok: str):
    """An immediate operand tuple, or None."""
    t = tok.strip()
    body = t[1:] if t[:1] in "+-" else t
    neg = t.startswith("-")
    if re.fullmatch(r"0[fF][0-9a-fA-F]{8}", body):
        bits = int(body[2:], 16)
        return ("imm", "f32hex", bits ^ (0x80000000 if neg else 0))
    if re.fullmatch(r"0[dD][0-9a-fA-F]{16}", body):
        bits = int(body[2:], 16)
        return ("imm", "f64hex", bits ^ (1 << 63 if neg else 0))
    v = parse_int(t)
    if v is not None:
        return ("imm", "int", v)
    if re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?", t):
        return ("imm", "float", float(t))
    return None


class _Scopes:
    def __init__(self, kernel_regs: list, module_vars: dict):
        self.stack: list[dict] = [{}]
        self.regs = kernel_regs
        self.module_vars = module_vars

    def declare_reg(self, name: str, typ: PtxType) -> None:
        self.stack[-1][name] = ("reg", len(self.regs))
        self.regs.append((name, typ))

    def declare_var(self, var: Var) -> None:
        self.stack[-1][var.name] = ("var", var)

    def lookup(self, name: str):
        for scope in reversed(self.stack):
            hit = scope.get(name)
            if hit is not None:
                return hit
        v = self.module_vars.get(name)
        return ("var", v) if v is not None else None


_DECL_SPACES = (".reg", ".shared", ".local", ".global", ".const", ".param")


def _parse_decl(stmt: str, line: int) -> tuple[str, PtxType, list, int, bool, str | None]:
    """``.reg .b32 %r<8>, %x;`` / ``.shared .align 16 .b8 buf[256];`` -> (space, type, names, align, extern, init)."""
    init = None
    if "=" in stmt:
        stmt, init = stmt.split("=", 1)
    toks = stmt.replace(",", " , ").split()
    extern = False
    align = 0
    space = None
    typ = None
    names_text = []
    i = 0
    while i < len(toks):
        t = toks[i]
        if t == ".extern":
            extern = True
        elif t in (".visible", ".weak", ".common"):
            pass
        elif t in _DECL_SPACES or t.startswith(".shared::"):
            space = t.split("::")[0][1:]
        elif t == ".align":
            align = int(toks[i + 1])
            i += 1
        elif t in (".v2", ".v4", ".v8"):
            raise SimError(f"line {line}: vector variable declarations are not simulated: `{stmt.strip()}`")
        elif t.startswith(".") and typ is None and _is_type(t[1:]):
            typ = ptx_type(t[1:])
        elif t.startswith(".ptr") or t.startswith(".global") or t.startswith(".shared"):
            pass   # .param .u64 .ptr.global.align 8 name
        else:
            names_text.append(t)
        i += 1
    names = [n for n in " ".join(names_text).split(",") if n.strip()]
    return space, typ, [n.strip() for n in names], align, extern, init


def _is_type(s: str) -> bool:
    try:
        ptx_type(s)
        return True
    except KeyError:
        return False


def _expand_names(name: str) -> list[tuple[str, int | None]]:
    """``%r<4>`` -> %r0..%r3; ``buf[256]`` -> (buf, 256); ``x`` -> (x, None)."""
    m = re.fullmatch(r"(\S+?)<(\d+)>", name)
    if m:
        return [(f"{m.group(1)}{i}", None) for i in range(int(m.group(2)))]
    m = re.fullmatch(r"(\S+?)\s*\[\s*(\d*)\s*\](\s*\[\s*(\d+)\s*\])?", name)
    if m:
        n = int(m.group(2)) if m.group(2) else 0
        if m.group(4):
            n *= int(m.group(4))
        return [(m.group(1), n)]
    return [(name, None)]


def _parse_init(init: str | None) -> list | None:
    if init is None:
        return None
    vals = []
    for tok in re.split(r"[\s,{}]+", init.strip()):
        if not tok:
            continue
        imm = parse_imm(tok)
        if imm is None:
            raise SimError(f"unsupported variable initializer `{tok}`")
        vals.append(imm)
    return vals


class _KernelParser:
    def __init__(self, name: str, params_text: str, body: str, body_line: int, module_vars: dict, directives: dict):
        self.name = name
        self.regs: list = []
        self.scopes = _Scopes(self.regs, module_vars)
        self.vars: dict[str, Var] = {}
        self.prog: list[Instr] = []
        self.labels: dict[str, int] = {}
        self.params: list[Var] = []
        self.directives = directives
        for v in module_vars.values():            # module-scope .shared arrays belong to every CTA
            if v.space == "shared":
                self.vars[v.name] = v
        for ptext in split_top(params_text):
            space, typ, names, align, _, _ = _parse_decl(ptext, body_line)
            for nm, count in (x for n in names for x in _expand_names(n)):
                var = Var(nm, "param", typ, 1 if count is None else count, align or max(typ.bits // 8, 1))
                self.params.append(var)
                self.vars[nm] = var
                self.scopes.declare_var(var)
        self._parse_body(body, body_line)

    # ------------------------------------------------------------------ body
    def _parse_body(self, body: str, line0: int) -> None:
        i, n, line = 0, len(body), line0
        while i < n:
            ch = body[i]
            if ch == "\n":
                line += 1
                i += 1
                continue
            if ch.isspace() or ch == ";":
                i += 1
                continue
            if ch == "{":
                self.scopes.stack.append({})
                i += 1
                continue
            if ch == "}":
                self.scopes.stack.pop()
                i += 1
                continue
            m = _LABEL.match(body, i)
            if m:
                self.labels[m.group(1)] = len(self.prog)
                line += body.count("\n", i, m.end())
                i = m.end()
                continue
            j = body.find(";", i)
            if j < 0:
                raise SimError(f"line {line}: statement without ';': `{body[i:i + 60].strip()}`")
            stmt = body[i:j]
            self._statement(" ".join(stmt.split()), line)
            line += stmt.count("\n")
            i = j + 1
        # resolve label operands
        for ins in self.prog:
            for k, op in enumerate(ins.ops):
                if op[0] == "label" and op[1] not in self.labels:
                    raise SimError(f"line {ins.line}: unknown label `{op[1]}` in `{ins.text}`")

    def _statement(self, s: str, line: int) -> None:
        if s.startswith("."):
            head = s.split()[0]
            if head in _DECL_SPACES or head in (".extern",) or head.startswith(".shared"):
                self._declare(s, line)
            elif head in (".pragma", ".maxnreg", ".maxntid", ".reqntid", ".minnctapersm", ".noreturn"):
                self.directives[head] = s
            else:
                raise SimError(f"line {line}: unsupported directive `{s}`")
            return
        guard = None
        if s.startswith("@"):
            g, s = s.split(None, 1)
            neg = g.startswith("@!")
            name = g[2:] if neg else g[1:]
            r = self.scopes.lookup(name)
            if r is None or r[0] != "reg":
                raise SimError(f"line {line}: unknown guard predicate `{name}`")
            guard = (r[1], neg)
        parts = s.split(None, 1)
        opcode = parts[0]
        ops = [self._operand(o, line, s) for o in split_top(parts[1])] if len(parts) > 1 else []
        text = (f"@{'!' if guard and guard[1] else ''}{self.regs[guard[0]][0]} " if guard else "") + s
        self.prog.append(Instr(opcode, tuple(opcode.split(".")), guard, ops, line, text, pc=len(self.prog)))

    def _declare(self, s: str, line: int) -> None:
        space, typ, names, align, extern, init = _parse_decl(s, line)
        if typ is None:
            raise SimError(f"line {line}: declaration without a type: `{s}`")
        for raw in names:
            for nm, count in _expand_names(raw):
                if space == "reg":
                    self.scopes.declare_reg(nm, typ)
                else:
                    var = Var(nm, space, typ, 1 if count is None else count, align or max(typ.bits // 8, 1),
                              extern, _parse_init(init))
                    self.vars[nm] = var
                    self.scopes.declare_var(var)

    def _operand(self, o: str, line: int, stmt: str):
        o = o.strip()
        if o == "_":
            return ("sink",)
        if o.startswith("{"):
            inner = o[1:-1] if o.endswith("}") else o[1:]
            return ("vec", [self._operand(x, line, stmt) for x in split_top(inner)])
        if o.startswith("["):
            inner = o[1:o.rindex("]")].strip()
            parts = split_top(inner)
            if len(parts) == 2 and parts[1].startswith("{"):
                return ("taddr", self._operand(parts[0], line, stmt), self._operand(parts[1], line, stmt))
            if len(parts) != 1:
                raise SimError(f"line {line}: unsupported address `{o}` in `{stmt}`")
            return self._address(inner, line, stmt)
        if "|" in o:
            a, b = o.split("|", 1)
            return ("pair", self._operand(a, line, stmt), self._operand(b, line, stmt))
        neg = o.startswith("!")
        name = o[1:].strip() if neg else o
        imm = parse_imm(name) if not neg else None
        if imm is not None:
            return imm
        base = name.split(".")[0]
        if base in _SPECIAL:
            return ("special", name)
        r = self.scopes.lookup(name)
        if r is not None:
            if r[0] == "reg":
                return ("reg", r[1], neg)
            return ("sym", name)
        # a label (branch target) or an unknown name
        if _IDENT.fullmatch(name):
            return ("label", name)
        # sym+offset expressions used as values, e.g. `mov.u64 %rd, buf+16`
        m = re.fullmatch(r"([%A-Za-z_$][\w$]*)\s*\+\s*(.+)", name)
        if m and self.scopes.lookup(m.group(1)) is not None and parse_int(m.group(2)) is not None:
            return ("symoff", m.group(1), parse_int(m.group(2)))
        raise SimError(f"line {line}: cannot parse operand `{o}` in `{stmt}`")

    def _address(self, inner: str, line: int, stmt: str):
        m = re.fullmatch(r"([^+\-]+?)\s*(?:([+-])\s*(.+))?", inner)
        if not m:
            raise SimError(f"line {line}: unsupported address `[{inner}]` in `{stmt}`")
        base_s, sign, off_s = m.group(1).strip(), m.group(2), m.group(3)
        off = 0
        if off_s is not None:
            v = parse_int(off_s.replace(" ", ""))
            if v is None:
                raise SimError(f"line {line}: unsupported address offset `[{inner}]` in `{stmt}`")
            off = -v if sign == "-" else v
        iv = parse_int(base_s)
        if iv is not None:
            return ("addr", None, iv + off)
        base = self._operand(base_s, line, stmt)
        if base[0] not in ("reg", "sym"):
            raise SimError(f"line {line}: address base `{base_s}` is not a register or variable in `{stmt}`")
        return ("addr", base, off)

    def kernel(self) -> Kernel:
        return Kernel(self.name, self.params, self.regs, self.vars, self.prog, self.labels, self.directives)


_ENTRY = re.compile(r"(?:\.visible\s+|\.weak\s+|\.extern\s+)*\.(entry|func)\s+(?:\([^)]*\)\s*)?([\w$]+)\s*\(?", re.S)


def _match_brace(text: str, i: int, open_ch: str, close_ch: str) -> int:
    depth = 0
    for j in range(i, len(text)):
        if text[j] == open_ch:
            depth += 1
        elif text[j] == close_ch:
            depth -= 1
            if depth == 0:
                return j
    raise SimError(f"unbalanced '{open_ch}' in PTX")


@functools.lru_cache(maxsize=64)
def parse(text: str) -> Module:
    """Parse a PTX module (cached per text)."""
    src = _strip(text)
    version = target = ""
    kernels: dict[str, Kernel] = {}
    module_vars: dict[str, Var] = {}
    i, n = 0, len(src)
    while i < n:
        m = _ENTRY.search(src, i)
        head = src[i:m.start()] if m else src[i:]
        # module-level statements before the next entry (.version etc. end at the line, not ';')
        for dm in re.finditer(r"^\s*\.(version|target|address_size)\s+([^\s;]+)", head, re.M):
            if dm.group(1) == "version":
                version = dm.group(2)
            elif dm.group(1) == "target":
                target = dm.group(2).rstrip(",")
        head = re.sub(r"^\s*\.(version|target|address_size)\s+[^\n]*$", "", head, flags=re.M)
        for stmt in head.split(";"):
            s = " ".join(stmt.split())
            if not s:
                continue
            toks = s.split()
            if toks[0] == ".version":
                version = toks[1]
            elif toks[0] == ".target":
                target = toks[1].rstrip(",")
            elif toks[0] in (".address_size",):
                pass
            elif any(t in toks for t in (".global", ".shared", ".const")):
                line = src.count("\n", 0, i) + 1
                space, typ, names, align, extern, init = _parse_decl(s, line)
                for raw in names:
                    for nm, count in _expand_names(raw):
                        module_vars[nm] = Var(nm, space, typ, 1 if count is None else count,
                                              align or max(typ.bits // 8, 1), extern, _parse_init(init))
            else:
                raise SimError(f"unsupported module-level statement `{s}`")
        if not m:
            break
        kind, name = m.group(1), m.group(2)
        j = m.end()
        params_text = ""
        if src[j - 1] == "(" or src[j:].lstrip().startswith("("):
            k = src.index("(", j - 1)
            e = _match_brace(src, k, "(", ")")
            params_text = src[k + 1:e]
            j = e + 1
        b = src.index("{", j)
        semi = src.find(";", j)
        directives = {"perf": " ".join(src[j:b].split())}
        if kind == "func" and 0 <= semi < b:      # a prototype: .func foo(...) ;
            i = semi + 1
            continue
        e = _match_brace(src, b, "{", "}")
        body_line = src.count("\n", 0, b + 1) + 1
        kp = _KernelParser(name, params_text, src[b + 1:e], body_line, module_vars, directives)
        if kind == "entry":
            kernels[name] = kp.kernel()
        i = e + 1
    return Module(version, target, kernels, module_vars)
