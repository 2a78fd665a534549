"""`tilec-opt`: xdsl-opt with the tile dialect and the tilec passes.

    tilec-opt kernel.mlir -p tile-canonicalize,cse --print-ir-after-all
    tilec-opt --help                      # lists the tilec passes
    tilec-opt --help-pass tile-canonicalize

Everything `xdsl-opt` does works unchanged (`--split-input-file`, `--verify-diagnostics`,
`--parsing-diagnostics`, `--print-op-generic`, every xDSL dialect and pass).  On top:

* `--print-ir-after-all` / `--print-ir-after PASS[,PASS]`: the IR after those passes,
  on stderr, under MLIR's `// -----// IR Dump After NAME //----- //` banner;
* verification (before the first pass and after each one) reports the failing op as
  `file:line:col: error: ...` (`tilec.passes.verify`); `--debug` adds xDSL's IR dump.

Start-up stays near xdsl-opt's floor: dialects and passes are registered as lazy
factories and xDSL's plugin (`xdsl.universe` entry point) scan is skipped.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time

from xdsl.xdsl_opt_main import xDSLOptMain

from tilec.context import TILEC_DIALECTS
from tilec.passes import PASSES, TILEC_PASSES


def pass_doc(name: str, available: dict) -> str:
    """The full doc of pass `name`: a tilec pass's module docstring, else the class docstring."""
    cls = available[name]()
    if name in TILEC_PASSES:
        return sys.modules[cls.__module__].__doc__ or ""
    doc = cls.__dict__.get("__doc__") or ""  # not ModulePass's, nor a dataclass's generated signature
    return "" if doc.startswith(cls.__name__ + "(") else textwrap.dedent(doc)


class _HelpPassAction(argparse.Action):
    def __init__(self, *args, available: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.available = available

    def __call__(self, parser, namespace, values, option_string=None):
        if values not in self.available:
            parser.error(f"unknown pass {values!r}")
        print(pass_doc(values, self.available).strip() or f"{values}: no documentation")
        parser.exit()


class TilecOptMain(xDSLOptMain):
    version_format = "tilec-opt (xdsl {xdsl_version})"

    def register_all_dialects(self):
        from xdsl.dialects import get_all_dialects

        for name, factory in (get_all_dialects() | TILEC_DIALECTS).items():
            self.ctx.register_dialect(name, factory)

    def register_all_passes(self):
        from xdsl.transforms import get_all_passes

        for name, factory in (get_all_passes() | PASSES).items():
            self.register_pass(name, factory)

    def register_all_targets(self):
        from xdsl.targets import get_all_targets

        self.available_targets.update(get_all_targets())

    def register_all_arguments(self, arg_parser: argparse.ArgumentParser):
        super().register_all_arguments(arg_parser)
        arg_parser.add_argument("--print-ir-after-all", action="store_true",
                                help="print the IR to stderr after every pass")
        arg_parser.add_argument("--print-ir-after", action="append", default=[], metavar="PASS",
                                help="print the IR to stderr after the named passes (comma-separated, repeatable)")
        arg_parser.add_argument("--debug", action="store_true",
                                help="on a verification error, also print the IR with the failing op marked")
        arg_parser.add_argument("--help-pass", action=_HelpPassAction, metavar="PASS",
                                available=self.available_passes, help="print the documentation of one pass")
        for action in arg_parser._actions:  # the inherited help lists all ~140 xDSL passes
            if action.dest == "passes":
                action.help = "comma-separated pass pipeline, e.g. 'tile-canonicalize,cse' (passes listed below)"
        format_help = arg_parser.format_help
        arg_parser.format_help = lambda: format_help() + self._passes_help()

    def _passes_help(self) -> str:
        lines = ["\ntilec passes (tilec-opt --help-pass NAME for the full text):"]
        for name in TILEC_PASSES:
            summary = pass_doc(name, self.available_passes).strip().splitlines()[0]
            lines.append(f"  {name:24} {summary.removeprefix(name + ':').strip()}")
        others = ", ".join(n for n in self.available_passes if n not in TILEC_PASSES)
        lines.append("\nxDSL passes:")
        lines += textwrap.wrap(others, 88, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False)
        return "\n".join(lines) + "\n"

    def setup_pipeline(self):
        from xdsl.passes import PassPipeline
        from xdsl.printer import Printer

        from tilec.passes.verify import verify_with_locations

        args = self.args
        dump_after = {n.strip() for spec in args.print_ir_after for n in spec.split(",") if n.strip()}
        unknown = dump_after - set(self.available_passes)
        if unknown:
            raise SystemExit(f"tilec-opt: --print-ir-after: unknown pass {', '.join(sorted(unknown))}")
        start = time.perf_counter()

        def callback(prev, module, nxt) -> None:
            nonlocal start
            if args.time_passes and prev is not None:
                print(f"Pass {prev.name} took {time.perf_counter() - start} seconds")
            if not args.disable_verify:
                verify_with_locations(module, debug=args.debug)
            if prev is not None and (args.print_ir_after_all or prev.name in dump_after):
                sys.stdout.flush()
                print(f"// -----// IR Dump After {prev.name} //----- //", file=sys.stderr)
                Printer(stream=sys.stderr, print_generic_format=args.print_op_generic,
                        print_debuginfo=args.print_debuginfo).print_op(module)
                print("\n", file=sys.stderr, end="")
            if prev is not None and nxt is not None and args.print_between_passes:
                print(f"IR after {prev.name}:")
                Printer(stream=sys.stdout).print_op(module)
                print("\n\n\n")
            start = time.perf_counter()

        self.pipeline = PassPipeline.parse_spec(self.available_passes, args.passes, callback)


def main(argv: list[str] | None = None) -> None:
    TilecOptMain(description="tilec-opt: the tilec modular optimizer (xdsl-opt + the tile dialect and passes)",
                 args=argv).run()


if __name__ == "__main__":
    main()
