"""Lint over the lit tests in lit/: the mistakes FileCheck lets through silently.

* a check directive without its colon (`// CHECK foo`, `// CHECK-NEXT foo`) is not a
  check at all: filecheck 1.0.6 (and LLVM's) ignores the line and the test still passes;
* `VAL_0`-style capture names say nothing; name captures after the operand (`%[[ACC]]`);
* several functions in one file need `// -----` between them (one behaviour per case),
  unless the file says `// lint: allow-multiple-functions`;
* every test has a RUN line, and lit/dialects/tile/ops.mlir round-trips every tile op.
"""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LIT = ROOT / "lit"
TESTS = sorted(p for p in LIT.rglob("*") if p.suffix in (".mlir", ".py") and p.name != "lit.cfg.py"
               and "Output" not in p.relative_to(LIT).parts)

DEFAULT_PREFIXES = {"CHECK", "CHECK-GENERIC"}  # CHECK-GENERIC: TILEC_GENERIC_ROUNDTRIP
PREFIX_FLAG = re.compile(r"--check-prefix(?:es)?[= ]([\w,-]+)")
COMMENT = r"^\s*(?://(?!/)|#)\s*"  # `//` or `#`, but not a `///` doc comment
SUFFIXES = r"(?:-(?:NEXT|SAME|NOT|LABEL|DAG|EMPTY|COUNT-\d+))?"
FUNC_DEF = re.compile(r'^\s*(?:%[\w.]+ = )?(?:func\.func\b|"func\.func")')


def _ids(paths):
    return [str(p.relative_to(LIT)) for p in paths]


def missing_colon_lines(text: str) -> list[str]:
    prefixes = set(DEFAULT_PREFIXES)
    for m in PREFIX_FLAG.finditer(text):
        prefixes.update(m.group(1).split(","))
    alt = "|".join(sorted((re.escape(p) for p in prefixes), key=len, reverse=True))
    bad = re.compile(COMMENT + rf"(?:{alt}){SUFFIXES}(?![\w:-])")
    return [f"{n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1) if bad.match(line)]


def test_lit_tests_exist():
    assert TESTS, f"no lit tests found under {LIT}"


@pytest.mark.parametrize("path", TESTS, ids=_ids(TESTS))
def test_check_directives_have_colons(path: pathlib.Path):
    bad = missing_colon_lines(path.read_text())
    assert not bad, "check directive without ':' (FileCheck silently ignores it):\n" + "\n".join(bad)


@pytest.mark.parametrize("path", TESTS, ids=_ids(TESTS))
def test_no_val_n_capture_names(path: pathlib.Path):
    bad = [f"{n}: {line.strip()}" for n, line in enumerate(path.read_text().splitlines(), 1)
           if re.search(r"VAL_[0-9]", line)]
    assert not bad, "name captures after the operand, not VAL_N:\n" + "\n".join(bad)


@pytest.mark.parametrize("path", TESTS, ids=_ids(TESTS))
def test_several_functions_are_split(path: pathlib.Path):
    text = path.read_text()
    funcs = sum(1 for line in text.splitlines() if FUNC_DEF.match(line))
    if funcs > 1 and "// -----" not in text and "lint: allow-multiple-functions" not in text:
        pytest.fail(f"{funcs} functions but no `// -----`: one behaviour per split-input-file case")


@pytest.mark.parametrize("path", TESTS, ids=_ids(TESTS))
def test_has_run_line(path: pathlib.Path):
    assert re.search(r"^\s*(//|#)\s*RUN:", path.read_text(), re.M), "no RUN: line, lit would fail the file"


def test_ops_mlir_covers_every_tile_op():
    from tilec.dialects.tile import Tile

    text = (LIT / "dialects" / "tile" / "ops.mlir").read_text()
    missing = [op.name for op in Tile.operations if not re.search(rf"^\s*[^/].*\b{re.escape(op.name)}\b", text, re.M)]
    assert not missing, f"ops without a round-trip case in lit/dialects/tile/ops.mlir: {missing}"


@pytest.mark.parametrize("line, bad", [
    ("// CHECK foo", True), ("//  CHECK-NEXT   foo", True), ("// CHECK-LABEL func.func @f", True),
    ("# CHECK-NOT foo", True), ("// CHECK-GENERIC foo", True), ("// CHECK-COUNT-2 foo", True),
    ("// CHECK: foo", False), ("//  CHECK-NEXT: foo", False), ("/// CHECK lines below", False),
    ("// CHECKS are fine", False), ("// RUN: filecheck %s", False),
])
def test_lint_itself(line: str, bad: bool):
    assert bool(missing_colon_lines(line)) == bad
    assert bool(missing_colon_lines("// RUN: x | filecheck %s --check-prefix=DUMP\n// DUMP foo")) is True
