# lit configuration for tilec: `lit lit/` from the repository root (or `python -m lit lit/`).
#
# Tools are the console scripts installed beside the Python running lit (its bin dir goes
# first on PATH); `filecheck` is the pure-Python port (PyPI filecheck==1.0.6).
# Substitutions (lit applies them in list order, so macros that expand to `tilec-opt`
# come before the `tilec-opt` entry; tool names match only as whole words):
#   TILEC_ROUNDTRIP          custom -> generic -> custom, checked with the CHECK prefix
#   TILEC_GENERIC_ROUNDTRIP  the generic form, checked with the CHECK-GENERIC prefix
#   tilec-opt, filecheck, python (= the Python running lit)
import os
import shutil
import sys

import lit.formats

config.name = "tilec"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir", ".py"]
config.excludes = ["lit.cfg.py", "Inputs"]
config.test_source_root = os.path.dirname(os.path.abspath(__file__))
config.test_exec_root = os.path.join(config.test_source_root, "Output")

bindir = os.path.dirname(sys.executable)
path = os.pathsep.join([bindir, os.environ.get("PATH", "")])
config.environment["PATH"] = path
for var in ("HOME", "TMPDIR", "PYTHONPATH", "TILEC_DEBUG_REWRITES"):
    if var in os.environ:
        config.environment[var] = os.environ[var]


def tool(name):
    found = shutil.which(name, path=path)
    if found is None:
        lit_config.fatal(f"{name} not found in {bindir} or on PATH; install tilec with its test extra")
    return found


def word(name):
    """`name` as a whole command word (not inside a path such as lit/tools/tilec-opt-help.mlir)."""
    return r"(?<![\w/.-])" + name.replace("-", r"\-") + r"(?![\w.-])"


config.substitutions.append(("TILEC_ROUNDTRIP",
                             "tilec-opt %s --print-op-generic --split-input-file "
                             "| tilec-opt --split-input-file | filecheck %s"))
config.substitutions.append(("TILEC_GENERIC_ROUNDTRIP",
                             "tilec-opt %s --print-op-generic --split-input-file "
                             "| filecheck %s --check-prefix=CHECK-GENERIC"))
config.substitutions.append((word("tilec-opt"), tool("tilec-opt")))
config.substitutions.append((word("filecheck"), tool("filecheck")))
config.substitutions.append((word("python"), sys.executable))
