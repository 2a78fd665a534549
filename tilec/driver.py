"""The compiler driver: trace a kernel for an argument signature, run the target's pass
pipeline, and keep the IR after each pass when asked.

    artifact = compile_kernel(kernel, specs, target="cpu", options=CompileOptions(keep_ir=True))
    artifact.stages     # [("trace", text), ("tile-canonicalize", text), ...]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tilec.errors import CompileError, TilecError


@dataclass(frozen=True)
class CompileOptions:
    keep_ir: bool = False                  # record the IR after every pass (--print-ir-after-all)
    print_ir_after: tuple[str, ...] = ()   # pass names whose output IR is recorded
    verify: bool = False                   # verify after every pass (tests / --debug)
    debuginfo: bool = False                # print locations in recorded IR
    num_warps: int | None = None           # GPU: warps per program (default: kernel option, else 4)
    num_stages: int | None = None          # GPU: software-pipeline depth of async copies
    #: GPU (sm_90+): programmatic dependent launch: the kernel may start while the previous
    #: kernel in the stream finishes, and waits for it before touching global memory (the
    #: W4A16 loop first prefetches its weights: they must not be written by that kernel)
    launch_pdl: bool | None = None

    def kernel_option(self, kernel, name: str, default):
        """This compile's `name` if set, else the kernel's `@ct.kernel(name=...)`, else `default`."""
        value = getattr(self, name)
        if value is None:
            value = getattr(kernel, "options", {}).get(name, default)
        return value


@dataclass
class Artifact:
    """The result of compiling one specialisation of a kernel for one target."""

    name: str
    target: str
    module: object                 # builtin.module with one func.func
    grid_rank: int                 # number of grid axes the kernel reads
    stages: list = field(default_factory=list)   # [(stage name, IR text)]
    compile_seconds: float = 0.0
    gpu: object = None             # GPU targets: backends.ptx.emitter.PtxKernel (PTX text + ABI)
    _cubin: bytes | None = field(default=None, repr=False)

    @property
    def func(self):
        return self.module.body.block.first_op

    def ir(self) -> str:
        return str(self.module)

    def cubin(self) -> bytes:
        """The PTX assembled by ptxas for this artifact's target (cached)."""
        if self.gpu is None:
            raise TilecError(f"a cubin needs a GPU target, not '{self.target}'")
        if self._cubin is None:
            from tilec.backends.ptx.ptxas import assemble

            self._cubin, _ = assemble(self.gpu.ptx, self.gpu.target, name=f"{self.name}.ptx")
        return self._cubin

    def emit(self, kind: str, debuginfo: bool = False):
        """The artifact as `tile` / `ir` text (or, on GPU targets, `ptx` text / `cubin` bytes)."""
        if kind in ("tile", "ir"):
            return _print(self.module, debuginfo)
        if kind == "ptx" and self.gpu is not None:
            return self.gpu.ptx
        if kind == "cubin" and self.gpu is not None:
            return self.cubin()
        raise TilecError(f"--emit {kind} is not available for target '{self.target}'")


def _print(module, debuginfo: bool) -> str:
    import io

    from xdsl.printer import Printer

    buf = io.StringIO()
    Printer(stream=buf, print_debuginfo=debuginfo).print_op(module)
    return buf.getvalue()


def trace(fn, specs, param_names):
    """Trace only (front end): returns (module, TraceState)."""
    from tilec.frontend.tracer import trace_kernel

    module, _, state = trace_kernel(fn, specs, param_names)
    return module, state


def run_pipeline(module, target: str, options: CompileOptions, stages: list | None = None,
                 num_stages: int | None = None) -> None:
    from xdsl.passes import PassPipeline

    from tilec.context import make_context
    from tilec.passes import PASSES
    from tilec.pipelines import passes_for

    names = passes_for(target, num_stages)
    ctx = make_context()
    def callback(prev, mod, _next):
        if prev is None:
            return
        if options.verify:
            verify_module(mod)
        if stages is not None and (options.keep_ir or prev.name in options.print_ir_after):
            stages.append((prev.name, _print(mod, options.debuginfo)))

    PassPipeline.parse_spec(PASSES, ",".join(names), callback).apply(ctx, module)


def verify_module(module) -> None:
    """Verify IR; a failure is an internal error, reported at the kernel line that made the op."""
    from xdsl.utils.exceptions import VerifyException

    from tilec.passes.verify import verify_with_locations

    try:
        verify_with_locations(module)
    except VerifyException as e:
        raise CompileError(f"internal error: the IR tilec built does not verify: {e}") from e


def compile_kernel(kernel, specs, target: str = "cpu", options: CompileOptions = CompileOptions()) -> Artifact:
    """Trace `kernel` for `specs` and lower it for `target`."""
    t0 = time.perf_counter()
    module, state = trace(kernel.fn, specs, kernel.param_names)
    stages: list = []
    if options.keep_ir or "trace" in options.print_ir_after:
        stages.append(("trace", _print(module, options.debuginfo)))
    if options.verify:
        verify_module(module)
    mark_div16_args(module, specs)
    try:
        run_pipeline(module, target, options, stages, options.kernel_option(kernel, "num_stages", None))
    except TilecError:
        raise
    gpu = _emit_gpu(kernel, module, target, options, stages, specs)
    return Artifact(kernel.name, target, module, state.max_grid_axis + 1, stages, time.perf_counter() - t0,
                    gpu=gpu)


def mark_div16_args(module, specs) -> None:
    """Tag tensor arguments whose spec is 16-byte aligned (`TensorSpec.div16`) with `{tile.div16}`,
    the fact passes need for TMA (like Triton's `tt.divisibility = 16`)."""
    from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, UnitAttr

    from tilec.frontend.tracer import ConstantSpec

    flags = [bool(getattr(s, "div16", False)) for s in specs if not isinstance(s, ConstantSpec)]
    if not any(flags):
        return
    f = module.body.block.first_op
    old = f.arg_attrs.data if f.arg_attrs is not None else [DictionaryAttr({})] * len(flags)
    f.arg_attrs = ArrayAttr([DictionaryAttr({**a.data, "tile.div16": UnitAttr()}) if flag else a
                             for a, flag in zip(old, flags)])


def _emit_gpu(kernel, module, target: str, options: CompileOptions, stages: list, specs=()):
    """The final stage of a GPU pipeline: PTX text and launch ABI (None for the CPU)."""
    from tilec.pipelines import FINAL_STAGES, canonical_target, pipeline_for

    target = canonical_target(target)
    if not any(n in FINAL_STAGES for n in pipeline_for(target)):
        return None
    from tilec.backends.ptx.emitter import emit_kernel

    from tilec.frontend.tracer import ConstantSpec

    div16 = tuple(bool(getattr(s, "div16", False)) for s in specs if not isinstance(s, ConstantSpec))
    gpu = emit_kernel(module, target, num_warps=int(options.kernel_option(kernel, "num_warps", 4)), div16=div16,
                      pdl=bool(options.kernel_option(kernel, "launch_pdl", False)))
    if options.keep_ir or "emit-ptx" in options.print_ir_after:
        stages.append(("emit-ptx", gpu.ptx))
    return gpu
