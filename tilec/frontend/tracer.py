"""The AST tracer: walks a kernel's Python source and evaluates it on symbolic values.

Python-level values (ints, floats, tuples, dtypes, functions) are computed at trace
time, so `TILE = 64; size=[TILE, TILE]` is just Python.  Values that exist only at run
time are `Value`s, and operations on them build `tile` IR through `tilec.frontend.ops`.

Control flow:
* `for i in range(a, b, s)` becomes `scf.for` (i32); the loop-carried values are the
  names assigned in the body that were already bound before it (a syntactic rule, no
  dry run).  `ct.static_range` and iteration over Python sequences unroll.
* `if` on a compile-time value traces only the taken branch; on a run-time scalar it
  becomes `scf.if` yielding the names assigned in either branch.
* A call to a plain Python function is inlined by tracing its source.

This module handles syntax only; every type and shape rule lives in `ops`.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import operator
import textwrap
import types
from dataclasses import dataclass

from xdsl.builder import Builder
from xdsl.dialects import func, scf
from xdsl.ir import Block, Region
from xdsl.rewriter import InsertPoint

from tilec import dtypes as dt
from tilec.errors import CompileError, SourceLoc
from tilec.frontend import ops
from tilec.frontend.state import SpecializeDims, TraceState, current
from tilec.frontend.values import TensorArg, Value


@dataclass(frozen=True)
class TensorSpec:
    dtype: dt.DType
    static_shape: tuple  # int where specialised, None where dynamic
    #: the base address and (rank >= 2) the row pitch, innermost dim x element size, are
    #: multiples of 16 bytes, so every row starts 16-byte aligned: GPU backends may then
    #: use vector accesses (the launch path computes it, like Triton's `tt.divisibility`)
    div16: bool = False


@dataclass(frozen=True)
class ScalarSpec:
    dtype: dt.DType


@dataclass(frozen=True)
class ConstantSpec:
    value: object


class _Unusable:
    """What a name is bound to after run-time control flow left it without one value
    (bound in one branch only, or to different compile-time values); using it is an error."""

    def __init__(self, message: str):
        self.message = message


class _Return(Exception):
    def __init__(self, value, loc=None):
        self.value = value
        self.loc = loc


@dataclass
class ParsedFunction:
    fn: types.FunctionType
    tree: ast.FunctionDef
    file: str
    line_offset: int
    col_offset: int


_PARSED: dict = {}


def parse_function(fn) -> ParsedFunction:
    """The function's AST (cached per code object) with the offsets to real positions."""
    key = fn.__code__
    hit = _PARSED.get(key)
    if hit is not None:
        return ParsedFunction(fn, hit.tree, hit.file, hit.line_offset, hit.col_offset)
    try:
        lines, first = inspect.getsourcelines(fn)
    except (OSError, TypeError) as e:
        raise CompileError(f"cannot read the source of kernel '{fn.__name__}': {e}") from None
    src = "".join(lines)
    dedented = textwrap.dedent(src)
    indent = len(lines[0]) - len(lines[0].lstrip())
    try:
        tree = ast.parse(dedented)
    except SyntaxError:
        tree = ast.Module(body=[], type_ignores=[])
    fdef = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
    if fdef is None:  # a lambda: trace it as `def <lambda>(args): return body`
        lambdas = [n for n in ast.walk(tree) if isinstance(n, ast.Lambda)]
        if len(lambdas) != 1:
            raise CompileError(f"cannot find the source of '{fn.__name__}' to inline it; "
                               f"define it with 'def' on lines of its own")
        lam = lambdas[0]
        fdef = ast.copy_location(ast.FunctionDef(name=fn.__name__, args=lam.args, decorator_list=[],
                                                 body=[ast.copy_location(ast.Return(lam.body), lam.body)]), lam)
    parsed = ParsedFunction(fn, fdef, inspect.getsourcefile(fn) or "<unknown>", first - 1, indent)
    _PARSED[key] = parsed
    return parsed


def assigned_names(stmts) -> set[str]:
    """Names bound anywhere in `stmts` (the syntactic loop-carried rule)."""
    names: set[str] = set()
    for s in stmts:
        for node in ast.walk(s):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return names


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
           ast.Pow: operator.pow, ast.MatMult: operator.matmul, ast.BitAnd: operator.and_,
           ast.BitOr: operator.or_, ast.BitXor: operator.xor, ast.LShift: operator.lshift,
           ast.RShift: operator.rshift}
_CMPOPS = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
           ast.Eq: operator.eq, ast.NotEq: operator.ne}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert}


def _is_user_function(obj) -> bool:
    """A plain Python function a kernel calls is inlined (traced like the kernel's own body)
    unless it is part of tilec's API, numpy or math.  The library kernels in `tilec.nn` are
    kernel code like a user's: their helpers are inlined too."""
    if not isinstance(obj, types.FunctionType):
        return False
    mod = getattr(obj, "__module__", "") or ""
    if mod.startswith("tilec.nn."):
        return True
    return not (mod == "tilec" or mod.startswith("tilec.") or mod.startswith("numpy") or mod == "math")


class FunctionTracer(ast.NodeVisitor):
    """Evaluates one function body; nested calls get their own FunctionTracer."""

    def __init__(self, parsed: ParsedFunction, scope: dict):
        self.p = parsed
        self.scope = scope
        self.fn_globals = parsed.fn.__globals__
        closure = inspect.getclosurevars(parsed.fn) if parsed.fn.__closure__ else None
        self.nonlocals = dict(closure.nonlocals) if closure else {}
        self.runtime_depth = 0      # > 0 inside a run-time `for` body or `if` branch
        self.assign_locs: dict = {}  # name -> SourceLoc of its latest assignment

    # ---------------------------------------------------------------- locations
    def loc_of(self, node) -> SourceLoc | None:
        if not hasattr(node, "lineno"):
            return None
        end = node.end_col_offset + 1 + self.p.col_offset if node.end_lineno == node.lineno else None
        return SourceLoc(self.p.file, node.lineno + self.p.line_offset, node.col_offset + 1 + self.p.col_offset, end)

    def visit(self, node):
        st = current()
        prev = st.loc
        loc = self.loc_of(node)
        if loc is not None:
            st.loc = loc
        try:
            return super().visit(node)
        except (CompileError, SpecializeDims, _Return):
            raise
        except Exception as e:  # a Python error while evaluating user code
            msg = str(e)
            for cls, word in ((Value, "tile"), (TensorArg, "tensor")):  # our classes in user terms
                msg = msg.replace(f"'{cls.__name__}'", f"'{word}'").replace(f"type {cls.__name__} ", f"a {word} ")
            raise CompileError(f"{type(e).__name__}: {msg}", st.loc) from e
        finally:
            st.loc = prev

    def generic_visit(self, node):
        raise current().error(f"unsupported Python syntax in a kernel: {type(node).__name__}")

    # ---------------------------------------------------------------- statements
    def run_body(self, stmts):
        for s in stmts:
            self.visit(s)

    def visit_Expr(self, node):
        self.visit(node.value)

    def visit_Pass(self, node):
        pass

    def visit_Assign(self, node):
        value = self.visit(node.value)
        for target in node.targets:
            self.assign(target, value)

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.assign(node.target, self.visit(node.value))

    def visit_AugAssign(self, node):
        if not isinstance(node.target, ast.Name):
            raise current().error("augmented assignment is supported only to a plain name")
        cur = self.lookup(node.target.id)
        self.assign(node.target, _BINOPS[type(node.op)](cur, self.visit(node.value)))

    def assign(self, target, value):
        if isinstance(target, ast.Name):
            self.assign_locs[target.id] = current().loc
            if isinstance(value, Value) and value.ssa.name_hint is None and not value.ssa.uses:
                value.ssa.name_hint = target.id
            self.scope[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            if isinstance(value, Value):
                raise current().error("cannot unpack a tile into several names")
            values = list(value)
            if len(values) != len(target.elts):
                raise current().error(f"cannot unpack {len(values)} values into {len(target.elts)} names")
            for t, v in zip(target.elts, values):
                self.assign(t, v)
        else:
            raise current().error("only assignments to names are supported in kernels "
                                  "(write tensors with ct.store_tile)")

    def visit_Return(self, node):
        if self.runtime_depth:
            raise current().error("'return' inside a run-time 'for' or 'if' is not supported; "
                                  "guard the rest of the kernel with the 'if' instead")
        raise _Return(self.visit(node.value) if node.value is not None else None, current().loc)

    def visit_Assert(self, node):
        test = self.visit(node.test)
        if isinstance(test, Value):
            raise current().error("assert needs a compile-time condition")
        if not test:
            msg = self.visit(node.msg) if node.msg is not None else "assertion failed"
            raise current().error(f"static assertion failed: {msg}")

    def visit_Break(self, node):
        raise current().error("'break' is not supported in tilec kernels yet; "
                              "bound the loop instead or guard the body with an if")

    def visit_Continue(self, node):
        raise current().error("'continue' is not supported in tilec kernels yet; "
                              "guard the rest of the body with an if")

    def visit_While(self, node):
        raise current().error("'while' loops are not supported yet; use 'for i in range(...)'")

    # ---- if
    def visit_If(self, node):
        test = self.visit(node.test)
        if not isinstance(test, Value):
            self.run_body(node.body if test else node.orelse)
            return
        if not test.is_scalar:
            raise current().error("an 'if' condition must be a scalar; for tiles use ct.where(...)")
        if test.dtype is not dt.bool_:
            test = ops.compare("ne", test, 0)
        before = dict(self.scope)
        candidates = sorted(assigned_names(node.body) | assigned_names(node.orelse))

        then_scope, then_block = self._trace_branch(node.body, before)
        else_scope, else_block = self._trace_branch(node.orelse, before)
        results, same = [], {}
        st = current()
        for n in candidates:
            if n not in then_scope or n not in else_scope:
                same[n] = _Unusable(f"'{n}' is assigned in only one branch of the run-time 'if' on line "
                                    f"{st.loc.line}; assign it before the 'if' too")
                continue
            a, b = then_scope[n], else_scope[n]
            numbers = [isinstance(x, (int, float)) for x in (a, b)]
            if not isinstance(a, Value) and not isinstance(b, Value) and (not all(numbers) or _same(a, b)):
                same[n] = a if _same(a, b) else _Unusable(
                    f"'{n}' is the compile-time value {a!r} in one branch and {b!r} in the other of the "
                    f"run-time 'if' on line {st.loc.line}")
                continue
            if not all(isinstance(x, Value) or f for x, f in zip((a, b), numbers)):
                same[n] = _Unusable(f"'{n}' is {_describe(a)} in one branch and {_describe(b)} in the other "
                                    f"of the run-time 'if' on line {st.loc.line}")
                continue
            if all(numbers):  # two Python numbers: one dtype for both (1 vs 2.5 -> float32)
                d = dt.promote(dt.python_scalar_dtype(a), dt.python_scalar_dtype(b))
                va, vb = self._materialise_in(then_block, a, dtype=d), self._materialise_in(else_block, b, dtype=d)
            else:
                like = a if isinstance(a, Value) else b
                va, vb = self._materialise_in(then_block, a, like), self._materialise_in(else_block, b, like)
            if va.dtype is not vb.dtype and any(numbers):  # weak Python number: promote both sides
                common = dt.promote(va.dtype, vb.dtype)
                va = self._materialise_in(then_block, va, dtype=common)
                vb = self._materialise_in(else_block, vb, dtype=common)
            if va.dtype is not vb.dtype or va.shape != vb.shape:
                raise st.error(f"'{n}' has type {_describe(va)} in one branch and {_describe(vb)} in the other")
            results.append((n, va, vb))
        for block, idx in ((then_block, 1), (else_block, 2)):
            with_builder(block, lambda r=results, i=idx: st.emit(scf.YieldOp(*[x[i].ssa for x in r])))
        if_op = st.emit(scf.IfOp(test.ssa, [r[1].ssa.type for r in results],
                                 Region(then_block), Region(else_block)))
        self.scope = before
        self.scope.update(same)
        for (n, va, _), res in zip(results, if_op.results):
            res.name_hint = n
            self.scope[n] = Value(res, va.dtype, va.shape)

    def _trace_branch(self, stmts, before):
        block = Block()
        self.scope = dict(before)
        self.runtime_depth += 1
        try:
            with_builder(block, lambda: self.run_body(stmts))
        finally:
            self.runtime_depth -= 1
        return self.scope, block

    def _materialise_in(self, block, v, like=None, dtype=None):
        """`v` as a Value made in `block`: of `dtype` if given, else weakly promoted with `like`."""
        if isinstance(v, Value) and (dtype is None or v.dtype is dtype):
            return v
        if isinstance(v, Value):
            return with_builder(block, lambda: ops.cast(v, dtype))
        return with_builder(block, lambda: ops.constant(v, dtype) if dtype is not None else ops.as_value(v, like))

    # ---- for
    def visit_For(self, node):
        if node.orelse:
            raise current().error("for-else is not supported in kernels")
        it = node.iter
        if isinstance(it, ast.Call):
            fn = self.visit(it.func)
            from tilec import api
            if fn is range or fn is api.static_range:
                args = [self.visit(a) for a in it.args]
                if it.keywords:
                    raise current().error("range() takes no keyword arguments")
                if fn is api.static_range:
                    self._unrolled(node, range(*[ops.static_int(a, "static_range bound") for a in args]))
                    return
                self._scf_for(node, args)
                return
        seq = self.visit(it)
        if isinstance(seq, Value):
            raise current().error("cannot iterate over a tile")
        self._unrolled(node, seq)

    def _unrolled(self, node, seq):
        for v in seq:
            self.assign(node.target, v)
            self.run_body(node.body)

    def _scf_for(self, node, args):
        st = current()
        if not 1 <= len(args) <= 3:
            raise st.error("range() takes 1 to 3 arguments")
        if len(args) == 1:
            args = [0, args[0], 1]
        elif len(args) == 2:
            args = [args[0], args[1], 1]
        if isinstance(args[2], int) and args[2] <= 0:
            raise st.error("range() step must be positive in a kernel loop")
        bounds = []
        for a in args:
            v = ops.as_value(a) if not isinstance(a, Value) else a
            if not v.is_scalar or not (v.dtype.is_int or v.dtype is dt.bool_):
                raise st.error(f"range() bounds must be integer scalars, got {_describe(v)}")
            bounds.append(ops.cast(v, dt.int32))
        if not isinstance(node.target, ast.Name):
            raise st.error("the loop variable must be a single name")
        before = dict(self.scope)
        carried = []
        for n in sorted(assigned_names(node.body) - {node.target.id}):
            if n in before and isinstance(before[n], (Value, int, float)) and not isinstance(before[n], bool):
                carried.append(n)
        inits = [ops.as_value(before[n]) for n in carried]
        block = Block(arg_types=[dt.int32.ir_type, *[v.ssa.type for v in inits]])
        block.args[0].name_hint = node.target.id
        self.scope[node.target.id] = Value(block.args[0], dt.int32, None)
        for n, v, arg in zip(carried, inits, block.args[1:]):
            arg.name_hint = n
            self.scope[n] = Value(arg, v.dtype, v.shape)

        end_scope = {}

        def body():
            self.runtime_depth += 1
            try:
                self.run_body(node.body)
            finally:
                self.runtime_depth -= 1
            end_scope.update(self.scope)
            outs = []
            for n, v in zip(carried, inits):
                new = self.scope.get(n)
                if isinstance(new, (int, float)):
                    new = ops.as_value(new, v)
                where = self.assign_locs.get(n) or st.loc  # the assignment that changed it
                if not isinstance(new, Value) or new.shape != v.shape:
                    raise CompileError(f"loop-carried '{n}' changes from {_describe(v)} to {_describe(new)} "
                                       f"inside the loop; give it its final shape before the loop "
                                       f"(e.g. ct.zeros(...))", where)
                if new.dtype is not v.dtype:
                    if isinstance(before[n], Value):
                        raise CompileError(f"loop-carried '{n}' changes dtype from {v.dtype.api_name} to "
                                           f"{new.dtype.api_name} inside the loop; cast it with .astype(...)",
                                           where)
                    if dt.promote(v.dtype, new.dtype) is not v.dtype:  # a Python number: never narrow it
                        raise CompileError(f"loop-carried '{n}' starts as the Python number {before[n]!r} "
                                           f"({v.dtype.api_name}) but becomes {new.dtype.api_name} inside the "
                                           f"loop; start it with that type (e.g. '{n} = 0.0')", where)
                    new = ops.cast(new, v.dtype)
                outs.append(new.ssa)
            st.emit(scf.YieldOp(*outs))

        with_builder(block, body)
        loop = st.emit(scf.ForOp(bounds[0].ssa, bounds[1].ssa, bounds[2].ssa, [v.ssa for v in inits], Region(block)))
        self.scope = before
        for n, v, res in zip(carried, inits, loop.results):
            res.name_hint = n
            self.scope[n] = Value(res, v.dtype, v.shape)
        for n in assigned_names(node.body) | {node.target.id}:
            if n not in carried and n in end_scope and not (n in before and _same(before[n], end_scope[n])):
                self.scope[n] = _Unusable(
                    f"'{n}' is {'the loop variable' if n == node.target.id else 'assigned'} in the run-time "
                    f"loop on line {node.lineno + self.p.line_offset} and cannot be used after it; to carry a "
                    f"value out of the loop, give '{n}' a number or tile value before the loop")

    # ---------------------------------------------------------------- expressions
    def visit_Constant(self, node):
        return node.value

    def visit_Name(self, node):
        return self.lookup(node.id)

    def lookup(self, name):
        for table in (self.scope, self.nonlocals, self.fn_globals):
            if name in table:
                if isinstance(table[name], _Unusable):
                    raise current().error(table[name].message)
                return table[name]
        if hasattr(builtins, name):
            return getattr(builtins, name)
        raise current().error(f"name '{name}' is not defined")

    def visit_Attribute(self, node):
        base = self.visit(node.value)
        try:
            return getattr(base, node.attr)
        except AttributeError:
            raise current().error(f"{_describe(base)} has no attribute '{node.attr}'") from None

    def visit_Tuple(self, node):
        return tuple(self.visit(e) for e in node.elts)

    def visit_List(self, node):
        return [self.visit(e) for e in node.elts]

    def visit_Dict(self, node):
        return {self.visit(k): self.visit(v) for k, v in zip(node.keys, node.values)}

    def visit_Slice(self, node):
        return slice(*(self.visit(x) if x is not None else None for x in (node.lower, node.upper, node.step)))

    def visit_Subscript(self, node):
        base = self.visit(node.value)
        index = self.visit(node.slice)
        if isinstance(base, Value):
            return base[index]
        if isinstance(index, Value):  # a tensor dim specialises; other run-time values cannot index
            index = ops.static_int(index, "an index into a Python sequence")
        return base[index]

    def visit_BinOp(self, node):
        return _BINOPS[type(node.op)](self.visit(node.left), self.visit(node.right))

    def visit_UnaryOp(self, node):
        v = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            if isinstance(v, Value):
                return ops.compare("eq", v, 0) if v.dtype is not dt.bool_ else ops.unary("not", v)
            return not v
        return _UNARY[type(node.op)](v)

    def visit_BoolOp(self, node):
        is_and = isinstance(node.op, ast.And)
        result = self.visit(node.values[0])
        for expr in node.values[1:]:
            if not isinstance(result, Value):  # Python short-circuit at trace time
                if (not result) if is_and else result:
                    return result
                result = self.visit(expr)
                continue
            rhs = self.visit(expr)
            a = result if result.dtype is dt.bool_ else ops.compare("ne", result, 0)
            b = rhs if (isinstance(rhs, Value) and rhs.dtype is dt.bool_) or isinstance(rhs, bool) \
                else ops.compare("ne", rhs, 0)
            result = ops.binary("and" if is_and else "or", a, b)
        return result

    def visit_Compare(self, node):
        left = self.visit(node.left)
        result = None
        for op, comp in zip(node.ops, node.comparators):
            right = self.visit(comp)
            if isinstance(op, (ast.Is, ast.IsNot, ast.In, ast.NotIn)):
                # identity is known while tracing (`t is None` on a tile is fine); membership is not
                if isinstance(op, (ast.In, ast.NotIn)) and (isinstance(left, Value) or isinstance(right, Value)):
                    raise current().error("'in' needs compile-time operands")
                r = {ast.Is: operator.is_, ast.IsNot: operator.is_not,
                     ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}[type(op)](left, right)
            else:
                r = _CMPOPS[type(op)](left, right)
            result = r if result is None else (result and r if not isinstance(r, Value) and not isinstance(result, Value)
                                               else ops.binary("and", result, r))
            left = right
        return result

    def visit_IfExp(self, node):
        test = self.visit(node.test)
        if not isinstance(test, Value):
            return self.visit(node.body) if test else self.visit(node.orelse)
        return ops.where(test, self.visit(node.body), self.visit(node.orelse))

    def visit_JoinedStr(self, node):
        return "".join(str(self.visit(v)) for v in node.values)

    def visit_FormattedValue(self, node):
        return format(self.visit(node.value))

    def visit_ListComp(self, node):
        raise current().error("comprehensions are not supported in kernels; use a for loop")

    visit_GeneratorExp = visit_SetComp = visit_DictComp = visit_ListComp

    def visit_Lambda(self, node):
        raise current().error("lambda is not supported in kernels; define a function outside the kernel")

    def visit_Call(self, node):
        fn = self.visit(node.func)
        args = []
        for a in node.args:
            if isinstance(a, ast.Starred):
                args.extend(self.visit(a.value))
            else:
                args.append(self.visit(a))
        kwargs = {}
        for k in node.keywords:
            if k.arg is None:
                kwargs.update(self.visit(k.value))
            else:
                kwargs[k.arg] = self.visit(k.value)
        from tilec.jit import Kernel
        if isinstance(fn, Kernel):
            fn = fn.fn
        if _is_user_function(fn):
            return inline_call(fn, args, kwargs)
        if fn in (builtins.min, builtins.max) and any(isinstance(a, Value) for a in args):
            kind = "minimum" if fn is builtins.min else "maximum"
            out = args[0]
            for a in args[1:]:
                out = ops.binary(kind, out, a)
            return out
        if fn in (builtins.float, builtins.int, builtins.bool) and args and isinstance(args[0], Value):
            return ops.cast(args[0], {float: dt.float32, int: dt.int32, bool: dt.bool_}[fn])
        if fn is builtins.len and args and isinstance(args[0], Value):
            return args[0].shape[0]
        return fn(*args, **kwargs)


def with_builder(block: Block, thunk):
    """Run `thunk` with ops inserted at the end of `block`."""
    st = current()
    saved = st.builder
    st.builder = Builder(InsertPoint.at_end(block))
    try:
        return thunk()
    finally:
        st.builder = saved


def _same(a, b) -> bool:
    """Whether two compile-time values are interchangeable (`is`, or equal and of one type)."""
    if a is b:
        return True
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return False


def _describe(v) -> str:
    if isinstance(v, types.ModuleType):
        return f"module '{v.__name__}'"
    if isinstance(v, Value):
        return f"a scalar of {v.dtype.api_name}" if v.is_scalar else f"a {list(v.shape)} tile of {v.dtype.api_name}"
    return repr(v)


def inline_call(fn, args, kwargs):
    """Trace a plain Python function's body in place, with `args` bound to its parameters."""
    parsed = parse_function(fn)
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as e:
        raise current().error(f"bad call to '{fn.__name__}': {e}") from None
    bound.apply_defaults()
    tracer = FunctionTracer(parsed, dict(bound.arguments))
    try:
        tracer.run_body(parsed.tree.body)
    except _Return as r:
        return r.value
    return None


def trace_kernel(fn, specs: list, param_names: list[str]):
    """Trace `fn` for the given argument specs; returns (module, func_op, TraceState)."""
    from xdsl.dialects.builtin import FileLineColLoc, IntAttr, ModuleOp, StringAttr

    from tilec.dialects.tile import TensorType

    parsed = parse_function(fn)
    arg_types = []
    for spec in specs:
        if isinstance(spec, TensorSpec):
            arg_types.append(TensorType([-1 if d is None else d for d in spec.static_shape], spec.dtype.ir_type))
        elif isinstance(spec, ScalarSpec):
            arg_types.append(spec.dtype.ir_type)
    block = Block(arg_types=arg_types)
    state = TraceState(Builder(InsertPoint.at_end(block)))
    scope = {}
    it = iter(block.args)
    for arg, name in zip(block.args, [n for n, s in zip(param_names, specs) if not isinstance(s, ConstantSpec)]):
        arg.name_hint = name
    for i, (name, spec) in enumerate(zip(param_names, specs)):
        if isinstance(spec, TensorSpec):
            scope[name] = TensorArg(next(it), spec.dtype, spec.static_shape, i, name)
        elif isinstance(spec, ScalarSpec):
            scope[name] = Value(next(it), spec.dtype, None)
        else:
            scope[name] = spec.value
    from tilec.frontend.state import activate, deactivate
    token = activate(state)
    try:
        tracer = FunctionTracer(parsed, scope)
        state.loc = tracer.loc_of(parsed.tree)
        try:
            tracer.run_body(parsed.tree.body)
        except _Return as r:
            if r.value is not None:
                raise CompileError("a kernel cannot return a value; write results with ct.store_tile",
                                   r.loc) from None
        state.emit(func.ReturnOp())
    finally:
        deactivate(token)
    fop = func.FuncOp(fn.__name__, (arg_types, []), Region(block))
    def_loc = FunctionTracer(parsed, {}).loc_of(parsed.tree)
    fop.location = FileLineColLoc(StringAttr(def_loc.file), IntAttr(def_loc.line), IntAttr(def_loc.col))
    module = ModuleOp([fop])
    return module, fop, state
