"""`tilec compile`: compile the `@ct.kernel`s of a Python file ahead of time.

    tilec compile examples/matmul.py --kernel matmul_kernel --target cpu --arg A=f16[?,?] --arg B=f16[?,?] \\
        --arg C=f32[?,?] --arg BM=64 --arg BN=64 --arg BK=32 --print-ir-after-all

Argument types come from annotations (`ct.Constant[int]` needs a value, `int`/`float`
scalars default to i32/f32) or from `--arg NAME=SPEC`, where SPEC is a tensor
`f16[?,64]` (`?` = dynamic dim), a scalar dtype `i32`/`f32`, or a constant `64`/`true`.
A tensor spec ending in `@16` (`f16[?,?]@16`) promises what a launch checks at run time:
the base address and every row are 16-byte aligned (most torch tensors are), so the
compile takes the same TMA / cp.async paths such a launch gets.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys

_TENSOR = re.compile(r"^\s*([A-Za-z0-9_]+)\s*\[(.*)\]\s*(@16)?\s*$")


def parse_arg_spec(text: str):
    from tilec import dtypes as dt
    from tilec.errors import TilecError
    from tilec.frontend.tracer import ConstantSpec, ScalarSpec, TensorSpec

    m = _TENSOR.match(text)
    if m:
        try:
            dtype = dt.lookup(m.group(1))
        except KeyError:
            raise TilecError(f"unknown dtype '{m.group(1)}' in --arg spec '{text}'") from None
        dims = []
        for d in (x.strip() for x in m.group(2).split(",") if x.strip()):
            if d == "?":
                dims.append(None)
            elif d.isdigit():
                dims.append(int(d))
            else:
                raise TilecError(f"bad dimension '{d}' in --arg spec '{text}' (use an integer or ?)")
        return TensorSpec(dtype, tuple(dims), div16=m.group(3) is not None)
    low = text.strip().lower()
    if low in ("true", "false"):
        return ConstantSpec(low == "true")
    if re.fullmatch(r"-?\d+", low):
        return ConstantSpec(int(low))
    if re.fullmatch(r"-?\d*\.\d*(e-?\d+)?", low):
        return ConstantSpec(float(low))
    try:
        return ScalarSpec(dt.lookup(text.strip()))
    except KeyError:
        raise TilecError(f"cannot read --arg spec '{text}': expected a tensor like f16[?,64], "
                         f"a dtype like i32, or a constant like 64") from None


def specs_for(kernel, given: dict):
    from tilec import dtypes as dt
    from tilec.errors import TilecError
    from tilec.frontend.tracer import ScalarSpec

    specs, missing = [], []
    for p in kernel.params:
        if p.name in given:
            specs.append(given[p.name])
            continue
        annotation = kernel.fn.__annotations__.get(p.name)
        if annotation in (int, "int"):
            specs.append(ScalarSpec(dt.int32))
        elif annotation in (float, "float"):
            specs.append(ScalarSpec(dt.float32))
        else:
            missing.append(p.name)
    if missing:
        raise TilecError(f"kernel '{kernel.name}' ({kernel.where}): give the types of "
                         + ", ".join(missing) + " with --arg NAME=SPEC (e.g. --arg X=f32[?,?] --arg BM=64)")
    return specs


def load_kernels(path: str):
    from tilec.errors import TilecError
    from tilec.jit import Kernel

    if not os.path.exists(path):
        raise TilecError(f"no such file: {path}")
    spec = importlib.util.spec_from_file_location("__tilec_compile__", os.path.abspath(path))
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    spec.loader.exec_module(mod)
    return {k.name: k for k in vars(mod).values() if isinstance(k, Kernel)}


def compile_command(args) -> int:
    from tilec.driver import CompileOptions, compile_kernel
    from tilec.errors import TilecError
    from tilec.frontend.state import SpecializeDims
    from tilec.pipelines import canonical_target, pipeline_for

    target = canonical_target(args.target)
    if args.print_pipeline:
        print(",".join(pipeline_for(target)))
        return 0
    kernels = load_kernels(args.file)
    if args.kernel:
        if args.kernel not in kernels:
            raise TilecError(f"no @kernel named '{args.kernel}' in {args.file} (found: {', '.join(kernels) or 'none'})")
        kernels = {args.kernel: kernels[args.kernel]}
    if not kernels:
        raise TilecError(f"no @tilec.kernel functions in {args.file}")
    given = {}
    for a in args.arg or []:
        name, _, spec = a.partition("=")
        if not spec:
            raise TilecError(f"--arg needs NAME=SPEC, got '{a}'")
        given[name.strip()] = parse_arg_spec(spec)
    if args.emit in ("ptx", "cubin") and target == "cpu":
        raise TilecError(f"--emit {args.emit} needs a GPU target (--target sm_90a, sm_80 or sm_100a)")
    options = CompileOptions(keep_ir=args.print_ir_after_all or bool(args.dump_dir),
                             print_ir_after=tuple(args.print_ir_after or ()), debuginfo=args.debuginfo)
    outputs = []
    for kernel in kernels.values():
        specs = specs_for(kernel, given)
        try:
            artifact = compile_kernel(kernel, specs, target, options)
        except SpecializeDims as s:
            dims = ", ".join(f"dim {axis} of '{kernel.param_names[i]}'" for i, axis in sorted(s.dims))
            raise TilecError(f"kernel '{kernel.name}' uses {dims} as a compile-time size; give it a static "
                             f"size in --arg (e.g. --arg {kernel.param_names[sorted(s.dims)[0][0]]}=f32[?,64])") from None
        for name, text in artifact.stages:
            if args.print_ir_after_all or name in (args.print_ir_after or ()):
                print(f"// -----// IR Dump After {name} ({kernel.name}) //----- //\n{text}", file=sys.stderr)
        if args.dump_dir:
            os.makedirs(args.dump_dir, exist_ok=True)
            for n, (name, text) in enumerate(artifact.stages):
                with open(os.path.join(args.dump_dir, f"{kernel.name}.{n:02d}.{name}.mlir"), "w") as f:
                    f.write(text)
        outputs.append(artifact.emit(args.emit, args.debuginfo) if args.emit in ('tile', 'ir') else artifact.emit(args.emit))
    text = b"".join(outputs) if outputs and isinstance(outputs[0], bytes) else "\n".join(outputs)
    if args.output:
        mode = "wb" if isinstance(text, bytes) else "w"
        with open(args.output, mode) as f:
            f.write(text)
    elif isinstance(text, bytes):  # --emit cubin
        sys.stdout.buffer.write(text)
    else:
        print(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tilec", description="tilec: a compiler for Python tile kernels")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compile", help="compile the kernels of a Python file")
    c.add_argument("file")
    c.add_argument("--kernel", help="compile only this kernel")
    c.add_argument("--target", default="cpu", help="cpu | sm_80 | sm_90a | sm_100a (sm_100 is an alias)")
    c.add_argument("--emit", default="ir", choices=["tile", "ir", "ptx", "cubin"])
    c.add_argument("-o", "--output")
    c.add_argument("--arg", action="append", metavar="NAME=SPEC", help="argument type, e.g. X=f16[?,64], BM=64; X=f16[?,?]@16: 16-byte aligned base and rows")
    c.add_argument("--print-ir-after-all", action="store_true", help="print the IR after every pass to stderr")
    c.add_argument("--print-ir-after", action="append", metavar="PASS", help="print the IR after PASS to stderr")
    c.add_argument("--print-pipeline", action="store_true", help="print the target's pass pipeline and exit")
    c.add_argument("--dump-dir", help="write the IR after every pass into this folder")
    c.add_argument("--debuginfo", action="store_true", help="print source locations in the IR")
    return p


def main(argv=None) -> int:
    from tilec.errors import TilecError

    args = build_parser().parse_args(argv)
    try:
        return compile_command(args)
    except TilecError as e:
        print(f"tilec: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
