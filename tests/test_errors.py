"""Every user mistake is one located error in the user's terms.

A compile error is one `tilec.CompileError` whose message starts with
`<kernel file>:<line>:<col>: error:`, shows the source line with a caret under the
offending expression, and whose traceback holds no frame of tilec's front end or of
xDSL.  A launch error is one `tilec.LaunchError` located the same way at the launch.

Expected lines come from `# ERR` markers in the kernels below (found with
`inspect.getsourcelines`), never from hard-coded numbers.
"""

from __future__ import annotations

import inspect
import os
import re
import traceback

import numpy as np
import pytest

import tilec as ct

HERE = os.path.abspath(__file__)
FORBIDDEN_FRAMES = (os.sep + os.path.join("tilec", "frontend") + os.sep, os.sep + "xdsl" + os.sep)


@pytest.fixture(autouse=True)
def _no_disk_cache(monkeypatch):
    monkeypatch.setenv("TILEC_DISABLE_CACHE", "1")   # every launch traces: the errors come from the tracer


def marker_line(fn, tag: str = "# ERR") -> tuple[int, str]:
    """(absolute line number, text) of the one line of `fn`'s source holding `tag`."""
    lines, first = inspect.getsourcelines(getattr(fn, "fn", fn))
    hits = [(first + i, text) for i, text in enumerate(lines) if re.search(rf"{re.escape(tag)}\b", text)]
    assert len(hits) == 1, f"want one '{tag}' marker in {fn}, found {len(hits)}"
    return hits[0]


def check_diagnostic(excinfo, file: str, line: int, text: str, caret_at: str | None, *fragments: str):
    """The error is located at `file:line`, shows `text` with a caret under `caret_at`
    (a substring of the line), says every fragment, and hides tilec/xDSL frames."""
    msg = str(excinfo.value)
    head, *rest = msg.split("\n")
    m = re.match(rf"^{re.escape(file)}:(\d+):(\d+): error: (.*)$", head)
    assert m, f"bad first line: {head!r}"
    assert int(m.group(1)) == line, f"points at line {m.group(1)}, expected {line}:\n{msg}"
    assert msg.count("error:") == 1, msg
    assert len(rest) == 2, f"want the source line and a caret line:\n{msg}"
    assert rest[0].strip() == text.strip(), msg
    caret = rest[1]
    assert set(caret.strip()) == {"^"}, msg
    col = int(m.group(2))
    assert caret.index("^") - 4 == col - 1, f"caret and column disagree:\n{msg}"
    if caret_at is not None:
        want = text.index(caret_at) + 1
        assert col == want, f"column {col}, expected {want} (at {caret_at!r}):\n{msg}"
    for f in fragments:
        assert f in m.group(3), f"{f!r} not in {m.group(3)!r}"
    for frame in traceback.extract_tb(excinfo.tb):
        assert not any(p in frame.filename for p in FORBIDDEN_FRAMES), f"internal frame {frame.filename}"
    assert "Traceback" not in msg and "xdsl" not in msg.lower() and "!tile." not in msg


def compile_error(kernel, args, grid=(1,), caret_at=None, *fragments, tag="# ERR"):
    line, text = marker_line(kernel, tag)
    with pytest.raises(ct.CompileError) as excinfo:
        kernel[grid](*args)
    check_diagnostic(excinfo, HERE, line, text, caret_at, *fragments)
    return excinfo.value


def f32(*shape):
    return np.zeros(shape, np.float32)


# ======================================================================== unsupported Python


@ct.kernel
def k_while(X: ct.Tensor, n: int):
    i = 0
    while i < n:  # ERR
        i += 1


@ct.kernel
def k_lambda(X: ct.Tensor):
    f = lambda t: t + 1  # ERR  # noqa: E731


@ct.kernel
def k_listcomp(X: ct.Tensor):
    offs = [ct.tile_idx(d) for d in range(2)]  # ERR


@ct.kernel
def k_break(X: ct.Tensor, n: int):
    for i in range(n):
        if i > 3:
            break  # ERR


@ct.kernel
def k_continue(X: ct.Tensor, n: int):
    for i in ct.static_range(4):
        continue  # ERR


@ct.kernel
def k_try(X: ct.Tensor):
    try:  # ERR
        x = ct.load_tile(X, offset=[0], size=[4])
    except Exception:
        pass


@ct.kernel
def k_with(X: ct.Tensor):
    with open("f"):  # ERR
        pass


@ct.kernel
def k_nested_def(X: ct.Tensor):
    def g(t):  # ERR
        return t


@pytest.mark.parametrize("kernel,args,caret,words", [
    (k_while, (f32(4), 3), "while", ("'while'", "range")),
    (k_lambda, (f32(4),), "lambda", ("lambda",)),
    (k_listcomp, (f32(4),), "[ct.tile_idx", ("comprehension",)),
    (k_break, (f32(4), 3), "break", ("'break'",)),
    (k_continue, (f32(4), 3), "continue", ("'continue'",)),
    (k_try, (f32(4),), "try", ("Try",)),
    (k_with, (f32(4),), "with", ("With",)),
    (k_nested_def, (f32(4),), "def", ("FunctionDef",)),
], ids=lambda v: v.name if isinstance(v, ct.Kernel) else "")
def test_unsupported_python(kernel, args, caret, words):
    compile_error(kernel, args, (1,), caret, *words)


# ======================================================================== shapes and types


@ct.kernel
def k_matmul_shapes(A: ct.Tensor, B: ct.Tensor):
    a = ct.load_tile(A, offset=[0, 0], size=[64, 32])
    b = ct.load_tile(B, offset=[0, 0], size=[64, 64])
    c = ct.matmul(a, b)  # ERR


@ct.kernel
def k_matmul_op_shapes(A: ct.Tensor):
    a = ct.load_tile(A, offset=[0, 0], size=[8, 4])
    c = a @ a  # ERR


@ct.kernel
def k_runtime_tile_size(X: ct.Tensor, n: int):
    x = ct.load_tile(X, offset=[0], size=[n])  # ERR


@ct.kernel
def k_offsets_rank(X: ct.Tensor):
    x = ct.load_tile(X, offset=[0], size=[4, 4])  # ERR


@ct.kernel
def k_store_offsets_rank(X: ct.Tensor):
    ct.store_tile(X, offset=[0, 0, 0], tile=ct.zeros([4, 4]))  # ERR


@ct.kernel
def k_unknown_dtype(X: ct.Tensor):
    x = ct.load_tile(X, offset=[0], size=[4])
    y = x.astype("float17")  # ERR


@ct.kernel
def k_undefined_name(X: ct.Tensor):
    x = ct.load_tile(X, offset=[0], size=[4])
    ct.store_tile(X, offset=[0], tile=x + undefined_thing)  # ERR  # noqa: F821


@ct.kernel
def k_carried_shape(X: ct.Tensor, n: int):
    acc = ct.zeros([4])
    for i in range(n):
        acc = ct.load_tile(X, offset=[0, 0], size=[4, 4])  # ERR
    ct.store_tile(X, offset=[0, 0], tile=acc[None, :])


@ct.kernel
def k_carried_int_becomes_float(X: ct.Tensor, n: int):
    s = 0
    for i in range(n):
        s = s + 0.5  # ERR
    ct.store_tile(X, offset=[0], tile=ct.full([1], s))


@ct.kernel
def k_store_scalar(X: ct.Tensor):
    ct.store_tile(X, offset=[0], tile=ct.tile_idx(0) * 2.0)  # ERR


@ct.kernel
def k_store_python_number(X: ct.Tensor):
    ct.store_tile(X, offset=[0], tile=1.0)  # ERR


@ct.kernel
def k_axis_range(X: ct.Tensor):
    x = ct.load_tile(X, offset=[0, 0], size=[4, 4])
    s = ct.sum(x, axis=2)  # ERR


@ct.kernel
def k_axis_range_negative(X: ct.Tensor):
    x = ct.load_tile(X, offset=[0, 0], size=[4, 4])
    s = x.max(axis=(0, -3))  # ERR


@ct.kernel
def k_argmax_tuple(X: ct.Tensor):
    x = ct.load_tile(X, offset=[0, 0], size=[4, 4])
    s = ct.argmax(x, axis=(0, 1))  # ERR


@ct.kernel
def k_broadcast(X: ct.Tensor):
    a = ct.load_tile(X, offset=[0, 0], size=[4, 8])
    b = ct.load_tile(X, offset=[0, 0], size=[4, 4])
    c = a + b  # ERR


@ct.kernel
def k_broadcast_to(X: ct.Tensor):
    a = ct.load_tile(X, offset=[0, 0], size=[4, 8])
    c = ct.broadcast_to(a, [4, 4])  # ERR


@ct.kernel
def k_reshape(X: ct.Tensor):
    a = ct.load_tile(X, offset=[0, 0], size=[4, 8])
    c = a.reshape([4, 4])  # ERR


@ct.kernel
def k_if_on_tile(X: ct.Tensor):
    a = ct.load_tile(X, offset=[0], size=[4])
    if a > 0:  # ERR
        a = a + 1


@ct.kernel
def k_return_in_runtime_if(X: ct.Tensor):
    if ct.tile_idx(0) > 0:
        return  # ERR
    ct.store_tile(X, offset=[0], tile=ct.zeros([4]))


@ct.kernel
def k_return_value(X: ct.Tensor):
    return ct.load_tile(X, offset=[0], size=[4])  # ERR


@ct.kernel
def k_one_branch_name(X: ct.Tensor, n: int):
    if n > 0:
        y = ct.zeros([4])
    ct.store_tile(X, offset=[0], tile=y)  # ERR


@ct.kernel
def k_name_from_loop(X: ct.Tensor, n: int):
    for i in range(n):
        y = ct.zeros([4]) + i
    ct.store_tile(X, offset=[0], tile=y)  # ERR


@ct.kernel
def k_int_overflow(X: ct.Tensor):
    x = ct.load_tile(X, offset=[0], size=[4])
    ct.store_tile(X, offset=[0], tile=x * 3_000_000_000)  # ERR


@ct.kernel
def k_tensor_as_value(X: ct.Tensor):
    ct.store_tile(X, offset=[0], tile=X + 1)  # ERR


@ct.kernel
def k_unknown_attr(X: ct.Tensor):
    x = ct.load_tile(X, offset=[0], size=[4])
    ct.store_tile(X, offset=[0], tile=ct.softmax(x))  # ERR


@ct.kernel
def k_bad_keyword(X: ct.Tensor):
    x = ct.load_tile(X, offsets=[0], size=[4])  # ERR


@ct.kernel
def k_static_assert(X: ct.Tensor, N: ct.Constant[int]):
    assert N % 16 == 0, f"N must be a multiple of 16, got {N}"  # ERR


@ct.kernel
def k_bad_mode(X: ct.Tensor):
    ct.store_tile(X, offset=[0], tile=ct.zeros([4]), mode="atomic_max")  # ERR


@ct.kernel
def k_bitwise_float(X: ct.Tensor):
    x = ct.load_tile(X, offset=[0], size=[4])
    y = x & x  # ERR


@ct.kernel
def k_where_shapes(X: ct.Tensor):
    c = ct.arange(4) > 1
    y = ct.where(c, ct.zeros([3]), 0.0)  # ERR


@ct.kernel
def k_python_builtin_on_tile(X: ct.Tensor):
    x = ct.load_tile(X, offset=[0], size=[4])
    y = round(x)  # ERR


@ct.kernel
def k_in_runtime(X: ct.Tensor):
    if ct.tile_idx(0) in (1, 2):  # ERR
        ct.store_tile(X, offset=[0], tile=ct.zeros([4]))


CASES = [
    (k_matmul_shapes, (f32(64, 64), f32(64, 64)), "ct.matmul", ("[64, 32]", "[64, 64]", "inner dimensions 32 and 64")),
    (k_matmul_op_shapes, (f32(8, 4),), "a @ a", ("[8, 4]", "inner dimensions 4 and 8")),
    (k_runtime_tile_size, (f32(8), 4), "ct.load_tile", ("size", "compile-time constant", "ct.Constant[int]")),
    (k_offsets_rank, (f32(8, 8),), "ct.load_tile", ("'X'", "rank 2", "2 offsets, got 1")),
    (k_store_offsets_rank, (f32(8, 8),), "ct.store_tile", ("'X'", "rank 2", "2 offsets, got 3")),
    (k_unknown_dtype, (f32(4),), "x.astype", ("unknown dtype", "float17")),
    (k_undefined_name, (f32(4),), "undefined_thing", ("'undefined_thing' is not defined",)),
    (k_carried_shape, (f32(4, 4), 2), "acc =", ("'acc'", "[4]", "[4, 4]")),
    (k_carried_int_becomes_float, (f32(4), 2), "s = s", ("'s'", "int32", "float32", "s = 0.0")),
    (k_store_scalar, (f32(4),), "ct.store_tile", ("tile value",)),
    (k_store_python_number, (f32(4),), "ct.store_tile", ("tile value",)),
    (k_axis_range, (f32(4, 4),), "ct.sum", ("axis 2", "rank 2")),
    (k_axis_range_negative, (f32(4, 4),), "x.max", ("axis -3", "rank 2")),
    (k_argmax_tuple, (f32(4, 4),), "ct.argmax", ("one axis",)),
    (k_broadcast, (f32(4, 8),), "a + b", ("[4, 8]", "[4, 4]", "broadcast")),
    (k_broadcast_to, (f32(4, 8),), "ct.broadcast_to", ("[4, 8]", "[4, 4]")),
    (k_reshape, (f32(4, 8),), "a.reshape", ("[4, 8]", "[4, 4]", "sizes differ")),
    (k_if_on_tile, (f32(4),), "if", ("scalar", "ct.where")),
    (k_return_in_runtime_if, (f32(4),), "return", ("'return'",)),
    (k_return_value, (f32(4),), "return", ("cannot return a value",)),
    (k_one_branch_name, (f32(4), 1), "y)", ("'y'", "one branch")),
    (k_name_from_loop, (f32(4), 1), "y)", ("'y'", "loop")),
    (k_int_overflow, (np.zeros(4, np.int32),), "x * 3", ("3000000000", "int32")),
    (k_tensor_as_value, (f32(4),), "X + 1", ("'X'", "ct.load_tile")),
    (k_unknown_attr, (f32(4),), "ct.softmax", ("module 'tilec' has no attribute 'softmax'",)),
    (k_bad_keyword, (f32(4),), "ct.load_tile", ("offsets",)),
    (k_static_assert, (f32(4), 40), "assert", ("N must be a multiple of 16, got 40",)),
    (k_bad_mode, (f32(4),), "ct.store_tile", ("atomic_max",)),
    (k_bitwise_float, (f32(4),), "x & x", ("integer or bool", "float32")),
    (k_where_shapes, (f32(4),), "ct.where", ("[4]", "[3]", "broadcast")),
    (k_python_builtin_on_tile, (f32(4),), "round", ("a tile", "__round__")),
    (k_in_runtime, (f32(4),), "ct.tile_idx(0) in", ("'in'", "compile-time")),
]


@pytest.mark.parametrize("kernel,args,caret,words", CASES, ids=[c[0].name for c in CASES])
def test_compile_errors(kernel, args, caret, words):
    compile_error(kernel, args, (1,), caret, *words)


# ======================================================================== errors in inlined helpers


def helper_with_mistake(t):
    return t.reshape([3, 3])  # ERR


@ct.kernel
def k_calls_helper(X: ct.Tensor):
    x = ct.load_tile(X, offset=[0], size=[4])
    ct.store_tile(X, offset=[0], tile=helper_with_mistake(x))


def test_error_in_helper_points_into_the_helper():
    line, text = marker_line(helper_with_mistake)
    with pytest.raises(ct.CompileError) as excinfo:
        k_calls_helper[(1,)](f32(4))
    check_diagnostic(excinfo, HERE, line, text, "t.reshape", "[4]", "[3, 3]")


def test_error_in_kernel_of_a_class_body():
    class Holder:
        @ct.kernel
        def k(X: ct.Tensor):
            y = ct.load_tile(X, offset=[0], size=[4]) @ ct.zeros([4, 4])  # ERR

        def run(self):
            self.k[(1,)](f32(4))

    line, text = marker_line(Holder.k)
    with pytest.raises(ct.CompileError) as excinfo:
        Holder().run()
    check_diagnostic(excinfo, HERE, line, text, "ct.load_tile", "rank >= 2")


def test_error_is_raised_again_on_the_next_launch():
    for _ in range(2):   # a failed compile must not leave a half-built cache entry behind
        compile_error(k_reshape, (f32(4, 8),), (1,), "a.reshape")
    assert not k_reshape._cache


# ======================================================================== launch errors


@ct.kernel
def k_launch(X: ct.Tensor, n: int, BLOCK: ct.Constant[int]):
    i = ct.tile_idx(0)
    ct.store_tile(X, offset=[i * BLOCK], tile=ct.full([BLOCK], n))


@ct.kernel
def k_grid3(X: ct.Tensor):
    k = ct.tile_idx(2)
    ct.store_tile(X, offset=[k], tile=ct.zeros([1]))


def launch_error(fn, tag, *fragments, cls=ct.LaunchError):
    """Run `fn` (which launches on the line marked `tag`) and check the located error."""
    line, text = marker_line(fn, tag)
    with pytest.raises(cls) as excinfo:
        fn()
    check_diagnostic(excinfo, HERE, line, text, None, *fragments)
    return excinfo.value


def test_launch_wrong_number_of_arguments():
    def go():
        k_launch[(1,)](f32(4), 3)  # L1
    launch_error(go, "# L1", "k_launch", "takes 3 arguments", "got 2")


def test_launch_number_where_tensor_expected():
    def go():
        k_launch[(1,)](3.0, 3, 4)  # L2
    launch_error(go, "# L2", "'X'", "must be a tensor", "float")


def test_launch_array_where_number_expected():
    def go():
        k_launch[(1,)](f32(4), f32(4), 4)  # L3
    launch_error(go, "# L3", "'n'", "must be a number")


def test_launch_grid_rank_too_small():
    def go():
        k_grid3[(2, 2)](f32(4))  # L4
    launch_error(go, "# L4", "grid axis 2", "2-D grid")


def test_launch_non_contiguous():
    def go():
        k_launch[(1,)](f32(8)[::2], 3, 4)  # L5
    launch_error(go, "# L5", "'X'", "not contiguous", "ascontiguousarray")


def test_launch_unsupported_dtype():
    def go():
        k_launch[(1,)](np.zeros(4, np.complex64), 3, 4)  # L6
    launch_error(go, "# L6", "'X'", "complex64")


def test_launch_without_grid():
    def go():
        k_launch(f32(4), 3, 4)  # L7
    launch_error(go, "# L7", "k_launch", "grid")


@pytest.mark.parametrize("grid", [(), (0,), (2, -1), "x", (1.5,)], ids=repr)
def test_launch_bad_grid(grid):
    def go():
        k_launch[grid](f32(4), 3, 4)  # L8
    launch_error(go, "# L8", "grid")


def test_tile_api_outside_a_kernel():
    def go():
        ct.load_tile(f32(4), offset=[0], size=[4])  # L9
    err = launch_error(go, "# L9", "ct.load_tile()", "inside a @tilec.kernel", cls=ct.CompileError)
    assert isinstance(err, ct.CompileError)

    def go2():
        y = ct.exp(1.0) + ct.zeros([4])  # L10
    launch_error(go2, "# L10", "ct.exp()", cls=ct.CompileError)
    assert ct.cdiv(10, 4) == 3 and list(ct.static_range(2)) == [0, 1]   # host helpers keep working


def test_errors_are_tilec_errors():
    assert issubclass(ct.CompileError, ct.TilecError) and issubclass(ct.LaunchError, ct.TilecError)
    assert issubclass(ct.LaunchError, TypeError)
