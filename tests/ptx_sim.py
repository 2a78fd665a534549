"""A small PTX simulator for the instruction subset `backends/ptx/emitter.py` produces (tests
only: the full simulator of `backends/sim/` can replace it once it runs these kernels).

It runs a kernel's CTAs one after another on numpy: every register is an array over
the CTA's threads, and the scheduler always executes the lowest program counter among
the runnable threads, all threads at that PC together (min-PC SIMT; correct for the
structured, barrier-free divergence the emitter produces: forward skips and loops).
`bar.sync` parks threads until every live thread of the CTA has arrived.

    ptx_sim.run(artifact.gpu, [x, y, z], grid=(4,))     # numpy arrays are updated in place

Floating point follows IEEE f32 (numpy); the `.approx` functions use numpy's exact
ones, `fma` rounds the exact f64 result once to f32.  It checks what it can: reads and
writes outside the arrays or outside the declared shared memory raise `SimError`.
"""

from __future__ import annotations

import math
import re

import ml_dtypes
import numpy as np

from tilec import dtypes as dt


class SimError(RuntimeError):
    pass


_REG_DTYPE = {"pred": np.bool_, "b16": np.uint16, "b32": np.uint32, "b64": np.uint64,
              "f32": np.float32, "f64": np.float64}
_TYPE_NP = {"f32": np.float32, "f64": np.float64, "s32": np.int32, "u32": np.uint32, "b32": np.uint32,
            "s64": np.int64, "u64": np.uint64, "b64": np.uint64, "s16": np.int16, "u16": np.uint16,
            "b16": np.uint16, "s8": np.int8, "u8": np.uint8, "b8": np.uint8, "pred": np.bool_,
            "f16": np.float16, "bf16": ml_dtypes.bfloat16}
_GLOBAL_BASE = 1 << 40
_GLOBAL_STRIDE = 1 << 36


def _split_operands(text: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def _imm(tok: str):
    if tok.startswith("0f"):
        return np.array(int(tok[2:], 16), np.uint32).view(np.float32)[()]
    if tok.startswith("0d"):
        return np.array(int(tok[2:], 16), np.uint64).view(np.float64)[()]
    return int(tok, 0)


class _Cta:
    def __init__(self, prog: "_Program", T: int, ctaid, nctaid, params: dict, memory: "_Memory"):
        self.p, self.T = prog, T
        self.regs: dict[str, np.ndarray] = {}
        for name, typ in prog.reg_types.items():
            self.regs[name] = np.zeros(T, _REG_DTYPE[typ])
        self.special = {"%tid.x": np.arange(T, dtype=np.uint32)}
        for ax, (c, n) in enumerate(zip(ctaid, nctaid)):
            self.special["%ctaid." + "xyz"[ax]] = np.full(T, c, np.uint32)
            self.special["%nctaid." + "xyz"[ax]] = np.full(T, n, np.uint32)
        self.params = params
        self.mem = memory
        self.smem = np.zeros(max(prog.smem_bytes, 1), np.uint8)

    # ---------------------------------------------------------------- operands
    def read(self, tok: str, typ: str):
        npt = _TYPE_NP.get(typ, np.uint32)
        if tok.startswith("%"):
            if tok in self.special:
                return self.special[tok].astype(npt)
            v = self.regs[tok]
            if v.dtype == np.bool_ or npt == np.bool_:
                return v
            if v.dtype.itemsize == np.dtype(npt).itemsize:
                return v.view(npt)
            if np.dtype(npt).kind in "iu" and v.dtype.kind in "iu":
                return v.astype(npt)
            raise SimError(f"register {tok} ({v.dtype}) read as {typ}")
        if tok == "smem":
            return np.zeros(self.T, npt)
        val = _imm(tok)
        if isinstance(val, int):
            val = np.array(val & ((1 << (8 * np.dtype(npt).itemsize)) - 1) if val < 0 and np.dtype(npt).kind == "u"
                           else val).astype(npt)
        return np.full(self.T, val, dtype=npt)

    def write(self, tok: str, value, mask, typ: str):
        reg = self.regs[tok]
        value = np.asarray(value)
        if reg.dtype == np.bool_:
            v = value.astype(np.bool_)
        elif value.dtype.itemsize == reg.dtype.itemsize and value.dtype.kind != "b":
            v = value.view(reg.dtype) if value.dtype != reg.dtype else value
        elif value.dtype.kind in "iub":
            v = value.astype(np.int64).astype(reg.dtype) if reg.dtype.kind in "iu" else value.astype(reg.dtype)
        else:
            raise SimError(f"cannot write {value.dtype} into {tok} ({reg.dtype})")
        reg[mask] = np.broadcast_to(v, reg.shape)[mask]


class _Memory:
    def __init__(self, arrays):
        self.arrays = arrays
        self.bufs = [a.reshape(-1).view(np.uint8) for a in arrays]

    def locate(self, addr: np.ndarray, nbytes: int, mask):
        out = []
        for t in np.nonzero(mask)[0]:
            a = int(addr[t])
            k = (a - _GLOBAL_BASE) // _GLOBAL_STRIDE
            off = a - _GLOBAL_BASE - k * _GLOBAL_STRIDE
            if not 0 <= k < len(self.bufs) or off < 0 or off + nbytes > self.bufs[k].size:
                raise SimError(f"thread {t}: global access of {nbytes} B at {a:#x} is outside every array")
            out.append((t, k, off))
        return out


class _Program:
    def __init__(self, ptx: str):
        self.reg_types: dict[str, str] = {}
        self.params: list[str] = []
        self.insts: list[tuple] = []
        self.labels: dict[str, int] = {}
        self.smem_bytes = 0
        body = False
        for raw in ptx.splitlines():
            line = raw.split("//")[0].strip()
            if not line:
                continue
            m = re.match(r"\.param \.\w+ (\w+)", line)
            if m:
                self.params.append(m.group(1))
                continue
            if line == "{":
                body = True
                continue
            if not body or line == "}":
                continue
            m = re.match(r"\.reg \.(\w+) %(\w+)<(\d+)>;", line)
            if m:
                for i in range(int(m.group(3))):
                    self.reg_types[f"%{m.group(2)}{i}"] = m.group(1)
                continue
            if line.endswith(":"):
                self.labels[line[:-1]] = len(self.insts)
                continue
            line = line.rstrip(";")
            guard = None
            m = re.match(r"@(!?)(%p\d+) (.*)", line)
            if m:
                guard = (m.group(1) == "!", m.group(2))
                line = m.group(3)
            opcode, _, rest = line.partition(" ")
            self.insts.append((guard, opcode, _split_operands(rest)))


def _f(x):
    return np.asarray(x)


def run(kernel, args: list, grid, smem_bytes: int | None = None) -> None:
    """Run `kernel` (an emitter `PtxKernel`) over `grid` with `args` (numpy arrays updated in
    place, Python numbers for scalars), in the argument order of the kernel's function."""
    prog = _Program(kernel.ptx)
    prog.smem_bytes = kernel.smem_bytes if smem_bytes is None else smem_bytes
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    mem = _Memory(arrays)
    index_of = {id(a): k for k, a in enumerate(arrays)}
    grid = tuple(int(g) for g in grid)
    params = {}
    for p in kernel.params:
        role = p.role
        if role[0] == "tensor":
            params[p.name] = _GLOBAL_BASE + index_of[id(args[role[1]])] * _GLOBAL_STRIDE
        elif role[0] == "dim":
            params[p.name] = args[role[1]].shape[role[2]]
        elif role[0] == "scalar":
            d = dt.lookup(role[2])
            v = args[role[1]]
            if d.is_float:
                params[p.name] = float(np.array(v).astype(d.np_dtype))
            else:
                params[p.name] = int(v)
        else:
            params[p.name] = grid[role[1]]
    gx = grid[0]
    gy = grid[1] if len(grid) > 1 else 1
    gz = math.prod(grid[2:]) if len(grid) > 2 else 1
    for z in range(gz):
        for y in range(gy):
            for x in range(gx):
                _run_cta(prog, kernel.num_threads, (x, y, z), (gx, gy, gz), params, mem)


def _run_cta(prog: _Program, T: int, ctaid, nctaid, params, mem) -> None:
    cta = _Cta(prog, T, ctaid, nctaid, params, mem)
    pc = np.zeros(T, np.int64)
    done = np.zeros(T, bool)
    waiting = np.zeros(T, bool)
    steps = 0
    while True:
        runnable = ~done & ~waiting
        if not runnable.any():
            if done.all():
                return
            if (waiting | done).all():
                if done.any():
                    raise SimError("bar.sync reached by only part of the CTA (others returned)")
                waiting[:] = False
                pc += 1
                continue
        cur = pc[runnable].min()
        mask = runnable & (pc == cur)
        steps += 1
        if steps > 5_000_000:
            raise SimError("simulation step limit reached (infinite loop?)")
        guard, opcode, ops = prog.insts[cur]
        exec_mask = mask
        if guard is not None:
            g = cta.regs[guard[1]]
            exec_mask = mask & (~g if guard[0] else g)
        nxt = _execute(cta, opcode, ops, exec_mask, mask, prog)
        if nxt is None:
            pc[mask] += 1
        elif nxt == "ret":
            done |= exec_mask
            pc[mask & ~exec_mask] += 1
        elif nxt == "bar":
            waiting |= mask
        else:
            pc[exec_mask] = nxt
            pc[mask & ~exec_mask] += 1


def _cvt_float(src_t: str, x):
    if src_t in ("f16", "bf16"):
        return x.view(_TYPE_NP[src_t]).astype(np.float32)
    return x


def _execute(cta: _Cta, opcode: str, ops: list[str], m, full, prog):
    parts = opcode.split(".")
    base = parts[0]
    typ = parts[-1]
    R = cta.read
    W = lambda tok, v, t=typ: cta.write(tok, v, m, t)  # noqa: E731
    if base == "bra":
        return prog.labels[ops[0]]
    if base == "ret":
        return "ret"
    if base == "bar":
        return "bar"
    if not m.any():
        return None
    with np.errstate(all="ignore"):
        if base == "mov":
            if ops[1].startswith("{"):           # pack
                halves = [R(h.strip(), "b16" if typ == "b32" else "b32") for h in ops[1][1:-1].split(",")]
                wide = np.uint32 if typ == "b32" else np.uint64
                sh = 16 if typ == "b32" else 32
                W(ops[0], halves[0].astype(wide) | (halves[1].astype(wide) << wide(sh)))
            elif ops[0].startswith("{"):         # unpack
                dst = [h.strip() for h in ops[0][1:-1].split(",")]
                v = R(ops[1], typ)
                sh, narrow = (16, np.uint16) if typ == "b32" else (32, np.uint32)
                W(dst[0], (v & ((1 << sh) - 1)).astype(narrow), "b")
                W(dst[1], (v >> sh).astype(narrow), "b")
            else:
                W(ops[0], R(ops[1], typ))
            return None
        if base == "ld" and parts[1] == "param":
            W(ops[0], np.full(cta.T, cta.params[ops[1][1:-1]]).astype(_TYPE_NP[typ]))
            return None
        if base == "cvta":
            W(ops[0], R(ops[1], "u64"))
            return None
        if base == "ldmatrix":
            return _ldmatrix(cta, parts, ops, m)
        if base == "mma":
            return _mma(cta, parts, ops, m)
        if base in ("ld", "st", "red") and ("v2" in parts or "v4" in parts):
            return _vector_shared(cta, parts, ops, m)
        if base in ("ld", "st", "red"):
            return _memory_op(cta, parts, ops, m)
        if base == "setp":
            cmp, t = parts[1], parts[2]
            a, b = R(ops[1], t), R(ops[2], t)
            res = {"eq": lambda: a == b, "ne": lambda: a != b, "lt": lambda: a < b, "le": lambda: a <= b,
                   "gt": lambda: a > b, "ge": lambda: a >= b, "neu": lambda: ~(a == b),
                   "nan": lambda: np.isnan(a) | np.isnan(b), "num": lambda: ~(np.isnan(a) | np.isnan(b))}[cmp]()
            W(ops[0], res)
            return None
        if base == "testp":
            x = R(ops[1], typ)
            W(ops[0], {"infinite": np.isinf, "finite": np.isfinite, "nan": np.isnan,
                       "number": lambda v: ~np.isnan(v)}[parts[1]](x))
            return None
        if base == "selp":
            W(ops[0], np.where(R(ops[3], "pred"), R(ops[1], typ), R(ops[2], typ)))
            return None
        if typ == "pred":
            vals = [R(o, "pred") for o in ops[1:]]
            r = {"and": lambda: vals[0] & vals[1], "or": lambda: vals[0] | vals[1],
                 "xor": lambda: vals[0] ^ vals[1], "not": lambda: ~vals[0]}[base]()
            W(ops[0], r)
            return None
        if base == "cvt":
            return _cvt(cta, parts, ops, W)
        if typ in ("f32", "f64"):
            return _float_op(cta, parts, ops, W, typ)
        return _int_op(cta, parts, ops, W, typ)


def _float_op(cta, parts, ops, W, typ):
    R = cta.read
    base = parts[0]
    npt = _TYPE_NP[typ]
    a = [R(o, typ) for o in ops[1:]]
    if base == "fma" or base == "mad":
        r = (a[0].astype(np.float64) * a[1].astype(np.float64) + a[2].astype(np.float64)).astype(npt)
    elif base == "add":
        r = a[0] + a[1]
    elif base == "sub":
        r = a[0] - a[1]
    elif base == "mul":
        r = a[0] * a[1]
    elif base == "div":
        r = a[0] / a[1]
    elif base in ("max", "min"):
        fn = np.maximum if base == "max" else np.minimum
        r = fn(a[0], a[1]) if "NaN" in parts else (np.fmax if base == "max" else np.fmin)(a[0], a[1])
    elif base == "neg":
        r = -a[0]
    elif base == "abs":
        r = np.abs(a[0])
    elif base == "ex2":
        r = np.exp2(a[0])
    elif base == "lg2":
        r = np.log2(a[0])
    elif base == "sqrt":
        r = np.sqrt(a[0])
    elif base == "rsqrt":
        r = (1.0 / np.sqrt(a[0].astype(np.float64))).astype(npt)
    elif base == "rcp":
        r = npt(1.0) / a[0]
    elif base == "tanh":
        r = np.tanh(a[0])
    elif base == "sin":
        r = np.sin(a[0])
    elif base == "cos":
        r = np.cos(a[0])
    elif base == "copysign":
        r = np.copysign(a[1], a[0])
    else:
        raise SimError(f"unsupported float instruction {'.'.join(parts)}")
    W(ops[0], np.asarray(r).astype(npt))
    return None


def _int_op(cta, parts, ops, W, typ):
    R = cta.read
    base = parts[0]
    bits = 64 if typ.endswith("64") else 32
    signed = typ[0] == "s"
    it = np.dtype(f"{'i' if signed else 'u'}{bits // 8}")   # arithmetic type (wraps)
    ut = np.dtype(f"u{bits // 8}")

    def val(o, t=None):
        return R(o, t or typ).astype(it)

    if base in ("add", "sub", "and", "or", "xor", "max", "min"):
        a, b = val(ops[1]), val(ops[2])
        r = {"add": np.add, "sub": np.subtract, "and": np.bitwise_and, "or": np.bitwise_or,
             "xor": np.bitwise_xor, "max": np.maximum, "min": np.minimum}[base](a, b)
    elif base in ("mul", "mad"):
        mode = parts[1]
        a, b = val(ops[1]), val(ops[2])
        if mode == "wide":
            wt = np.int64 if signed else np.uint64
            r = a.astype(wt) * b.astype(wt)
            if base == "mad":
                r = r + R(ops[3], "s64" if signed else "u64").astype(wt)
            W(ops[0], r.astype(np.uint64), "u64")
            return None
        if mode == "hi":
            if bits == 32:
                wt = np.int64 if signed else np.uint64
                r = (a.astype(wt) * b.astype(wt)) >> wt(32)
            else:
                r = np.array([(int(x) * int(y)) >> 64 for x, y in zip(a, b)], dtype=object)
                r = np.array([x & ((1 << 64) - 1) for x in r], dtype=np.uint64).view(it)
        else:
            r = a * b
            if base == "mad":
                r = r + val(ops[3])
    elif base in ("div", "rem"):
        a, b = val(ops[1]), val(ops[2])
        bz = np.where(b == 0, 1, b).astype(it)
        if signed:
            q = (np.abs(a.astype(np.int64)) // np.abs(bz.astype(np.int64))).astype(it)
            q = np.where((a < 0) != (bz < 0), -q, q).astype(it)
        else:
            q = a // bz
        r = q if base == "div" else a - q * bz
        r = np.where(b == 0, 0, r).astype(it)
    elif base == "neg":
        r = -val(ops[1])
    elif base == "abs":
        r = np.abs(val(ops[1]))
    elif base == "not":
        r = ~val(ops[1])
    elif base in ("shl", "shr"):
        a = val(ops[1])
        k = R(ops[2], "u32").astype(np.int64)
        ks = np.minimum(k, bits - 1).astype(it)
        if base == "shl":
            r = np.where(k >= bits, 0, a << ks)
        else:
            r = np.where(k >= bits, np.where(a < 0, -1, 0) if signed else 0, a >> ks)
    elif base == "bfe":
        a = R(ops[1], "u32" if bits == 32 else "u64").astype(np.uint64)
        pos, ln = int(ops[2]), int(ops[3])
        f = (a >> np.uint64(pos)) & np.uint64((1 << ln) - 1)
        r = f.astype(np.int64)
        if signed:
            r = np.where(r >> (ln - 1) & 1, r - (1 << ln), r)
    else:
        raise SimError(f"unsupported integer instruction {'.'.join(parts)}")
    W(ops[0], np.asarray(r).astype(it).view(ut))
    return None


def _cvt(cta, parts, ops, W):
    R = cta.read
    mods = [p for p in parts[1:] if p in ("rn", "rz", "rm", "rp", "rni", "rzi", "rmi", "rpi", "sat", "satfinite", "ftz")]
    types = [p for p in parts[1:] if p not in mods]
    dst, src = types[0], types[1]
    if dst in ("e4m3x2", "e5m2x2"):
        f8 = ml_dtypes.float8_e4m3fn if dst == "e4m3x2" else ml_dtypes.float8_e5m2
        big = float(ml_dtypes.finfo(f8).max)
        hi, lo = R(ops[1], "f32"), R(ops[2], "f32")
        enc = lambda v: np.clip(v, -big, big).astype(f8).view(np.uint8).astype(np.uint16)  # noqa: E731
        W(ops[0], (enc(hi) << np.uint16(8)) | enc(lo), "b16")
        return None
    if dst == "f16x2":
        f8 = ml_dtypes.float8_e4m3fn if src == "e4m3x2" else ml_dtypes.float8_e5m2
        raw = R(ops[1], "b16")
        lo = (raw & 0xFF).astype(np.uint8).view(f8).astype(np.float16).view(np.uint16).astype(np.uint32)
        hi = (raw >> 8).astype(np.uint8).view(f8).astype(np.float16).view(np.uint16).astype(np.uint32)
        W(ops[0], lo | (hi << np.uint32(16)), "b32")
        return None
    x = R(ops[1], src if src not in ("f16", "bf16") else "b16")
    if src in ("f16", "bf16"):
        x = x.view(_TYPE_NP[src]).astype(np.float32)
        src = "f32"
    if dst in ("f16", "bf16"):
        W(ops[0], np.asarray(x).astype(_TYPE_NP[dst]).view(np.uint16), "b16")
        return None
    if dst in ("f32", "f64"):
        npt = _TYPE_NP[dst]
        xf = x.astype(np.float64) if src[0] in "su" and src.endswith("64") is False else x
        if src in ("f32", "f64") and any(m in mods for m in ("rni", "rzi", "rmi", "rpi")):
            fn = {"rni": np.rint, "rzi": np.trunc, "rmi": np.floor, "rpi": np.ceil}[[m for m in mods if m.endswith("i")][0]]
            W(ops[0], fn(x).astype(npt))
        else:
            W(ops[0], np.asarray(xf).astype(npt))
        return None
    # to integer
    npt = _TYPE_NP[dst]
    if src in ("f32", "f64"):
        info = np.iinfo(npt)
        y = np.trunc(x.astype(np.float64))
        y = np.where(np.isnan(y), 0, np.clip(y, info.min, info.max))
        W(ops[0], y.astype(npt))
    else:
        W(ops[0], x.astype(npt))
    return None


def _memory_op(cta, parts, ops, m):
    R = cta.read
    space = parts[1]
    typ = parts[-1]
    if parts[0] == "ld":
        dst, addr_tok = ops[0], ops[1]
    else:
        addr_tok, dst = ops[0], ops[1]
    inner = addr_tok[1:-1]
    off = 0
    if "+" in inner:
        inner, o = inner.split("+")
        off = int(o)
    size = {"f32": 4, "b32": 4, "s32": 4, "u32": 4, "f64": 8, "b64": 8, "u64": 8, "b16": 2, "s16": 2,
            "u16": 2, "b8": 1, "u8": 1, "s8": 1, "f16": 2, "bf16": 2}[typ]
    if space == "shared":
        addr = R(inner, "u32").astype(np.int64) + off if inner != "smem" else np.full(cta.T, off)
        idx = np.nonzero(m)[0]
        a = addr[idx]
        if (a < 0).any() or (a + size > cta.p.smem_bytes).any():
            bad = int(a[(a < 0) | (a + size > cta.p.smem_bytes)][0])
            raise SimError(f"shared access of {size} B at {bad} outside the {cta.p.smem_bytes} B declared")
        if parts[0] == "ld":
            vals = np.stack([cta.smem[x:x + size] for x in a]).view(_TYPE_NP[typ]).reshape(-1) if len(a) else None
            out = np.zeros(cta.T, _TYPE_NP[typ])
            if vals is not None:
                out[idx] = vals
            cta.write(dst, out, m, typ)
        else:
            v = R(dst, typ if typ not in ("b8", "b16") else ("b32" if cta.regs[dst].dtype.itemsize == 4 else "b16"))
            v = np.asarray(v).astype(_TYPE_NP[typ]) if typ in ("b8", "b16") else v
            for t in idx:
                cta.smem[addr[t]:addr[t] + size] = np.frombuffer(np.asarray(v[t]).astype(_TYPE_NP[typ]).tobytes(), np.uint8)
        return None
    addr = R(inner, "u64").astype(object) + off
    locs = cta.mem.locate(addr, size, m)
    npt = _TYPE_NP[typ]
    if parts[0] == "ld":
        out = np.zeros(cta.T, npt)
        for t, k, o in locs:
            out[t] = cta.mem.bufs[k][o:o + size].view(npt)[0]
        cta.write(dst, out, m, typ)
        return None
    src_reg = cta.regs[dst] if dst.startswith("%") else None
    if parts[0] == "st":
        v = R(dst, typ if typ not in ("b8", "b16") else ("b32" if src_reg.dtype.itemsize == 4 else "b16"))
        for t, k, o in locs:
            cta.mem.bufs[k][o:o + size] = np.frombuffer(np.asarray(v[t]).astype(npt).tobytes(), np.uint8)
        return None
    # red.global.add
    rt = typ
    v = R(dst, rt if rt not in ("f16", "bf16") else "b16")
    for t, k, o in locs:
        cur = cta.mem.bufs[k][o:o + size].view(npt if rt not in ("f16", "bf16") else _TYPE_NP[rt])
        if rt in ("f16", "bf16"):
            add = np.array(v[t]).view(_TYPE_NP[rt])
            cur[0] = (cur[0].astype(np.float32) + add.astype(np.float32)).astype(_TYPE_NP[rt])
        else:
            cur[0] = np.array(cur[0] + np.asarray(v[t]).astype(npt)).astype(npt)
    return None


def _regs(tok: str) -> list[str]:
    return [t.strip() for t in tok.strip()[1:-1].split(",")]


def _addr(cta, tok: str):
    inner = tok[1:-1]
    off = 0
    if "+" in inner:
        inner, o = inner.split("+")
        off = int(o)
    return cta.read(inner, "u32").astype(np.int64) + off


def _smem_read(cta, a: int, n: int) -> np.ndarray:
    if a < 0 or a + n > cta.p.smem_bytes:
        raise SimError(f"shared access of {n} B at {a} outside the {cta.p.smem_bytes} B declared")
    return cta.smem[a:a + n]


def _warps(cta, m, what: str):
    for w in range(cta.T // 32):
        lanes = slice(32 * w, 32 * w + 32)
        if m[lanes].any():
            if not m[lanes].all():
                raise SimError(f"{what} executed by a partial warp {w}")
            yield w, lanes


def _vector_shared(cta, parts, ops, m):
    typ = parts[-1]
    n = int([p for p in parts if p.startswith("v")][0][1:])
    size = 4 if typ in ("f32", "b32", "u32") else 8
    if parts[1] != "shared":
        raise SimError(f"vector access only to shared memory here: {'.'.join(parts)}")
    if parts[0] == "ld":
        dst, addr = _regs(ops[0]), _addr(cta, ops[1])
        vals = [np.zeros(cta.T, _TYPE_NP[typ]) for _ in range(n)]
        for t in np.nonzero(m)[0]:
            raw = _smem_read(cta, int(addr[t]), n * size).view(_TYPE_NP[typ])
            for i in range(n):
                vals[i][t] = raw[i]
        for r, v in zip(dst, vals):
            cta.write(r, v, m, typ)
    else:
        addr, src = _addr(cta, ops[0]), _regs(ops[1])
        vals = [cta.read(r, typ) for r in src]
        for t in np.nonzero(m)[0]:
            a = int(addr[t])
            _smem_read(cta, a, n * size)
            cta.smem[a:a + n * size] = np.frombuffer(np.array([v[t] for v in vals], _TYPE_NP[typ]).tobytes(), np.uint8)
    return None


def _ldmatrix(cta, parts, ops, m):
    """ldmatrix.sync.aligned.m8n8.x{1,2,4}.shared.b16 (no .trans): matrix i's rows come from
    lanes 8i..8i+7; lane l gets row l/4, columns 2(l%4), 2(l%4)+1 of every matrix."""
    if "trans" in parts:
        raise SimError("ldmatrix .trans is not simulated")
    num = int([p for p in parts if p.startswith("x")][0][1:])
    dst = _regs(ops[0])
    addr = _addr(cta, ops[1])
    out = [np.zeros(cta.T, np.uint32) for _ in range(num)]
    for w, lanes in _warps(cta, m, "ldmatrix"):
        base = 32 * w
        for i in range(num):
            mat = np.stack([_smem_read(cta, int(addr[base + 8 * i + r]), 16).view(np.uint16) for r in range(8)])
            for lane in range(32):
                lo, hi = mat[lane // 4, 2 * (lane % 4)], mat[lane // 4, 2 * (lane % 4) + 1]
                out[i][base + lane] = np.uint32(lo) | (np.uint32(hi) << np.uint32(16))
    for r, v in zip(dst, out):
        cta.write(r, v, m, "b32")
    return None


def _mma(cta, parts, ops, m):
    """mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32 with the fragment
    layouts of the PTX ISA (g = lane / 4, c = lane % 4)."""
    if "m16n8k16" not in parts or parts[-4:] not in (["f32", "f16", "f16", "f32"], ["f32", "bf16", "bf16", "f32"]):
        raise SimError(f"unsupported mma {'.'.join(parts)}")
    half = _TYPE_NP[parts[-3]]
    d_regs, a_regs, b_regs, c_regs = (_regs(o) for o in ops)
    av = [cta.read(r, "b32") for r in a_regs]
    bv = [cta.read(r, "b32") for r in b_regs]
    cv = [cta.read(r, "f32") for r in c_regs]
    out = [np.zeros(cta.T, np.float32) for _ in range(4)]

    def pair(v):
        return (np.array(v & 0xFFFF, np.uint16).view(half).astype(np.float64),
                np.array(v >> 16, np.uint16).view(half).astype(np.float64))
    for w, lanes in _warps(cta, m, "mma.sync"):
        A = np.zeros((16, 16))
        B = np.zeros((16, 8))
        C = np.zeros((16, 8))
        for lane in range(32):
            t = 32 * w + lane
            g, c = lane // 4, lane % 4
            for reg, (r0, c0) in enumerate(((g, 2 * c), (g + 8, 2 * c), (g, 2 * c + 8), (g + 8, 2 * c + 8))):
                A[r0, c0], A[r0, c0 + 1] = pair(av[reg][t])
            for reg, k0 in enumerate((2 * c, 2 * c + 8)):
                B[k0, g], B[k0 + 1, g] = pair(bv[reg][t])
            C[g, 2 * c], C[g, 2 * c + 1], C[g + 8, 2 * c], C[g + 8, 2 * c + 1] = (cv[i][t] for i in range(4))
        D = (A @ B + C).astype(np.float32)
        for lane in range(32):
            t = 32 * w + lane
            g, c = lane // 4, lane % 4
            out[0][t], out[1][t], out[2][t], out[3][t] = D[g, 2 * c], D[g, 2 * c + 1], D[g + 8, 2 * c], D[g + 8, 2 * c + 1]
    for r, v in zip(d_regs, out):
        cta.write(r, v, m, "f32")
    return None
