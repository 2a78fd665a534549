"""`tilec compile`: argument specs, pass dumps, kernel selection and error messages."""

import pathlib
import subprocess
import sys

import pytest

from tilec.cli import main, parse_arg_spec

ROOT = pathlib.Path(__file__).resolve().parents[1]
MATMUL = str(ROOT / "examples" / "matmul.py")
MATMUL_ARGS = ["--kernel", "matmul_kernel", "--arg", "A=f16[?,?]", "--arg", "B=f16[?,?]", "--arg", "C=f32[?,?]",
               "--arg", "BM=64", "--arg", "BN=64", "--arg", "BK=32"]


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_arg_specs():
    from tilec import dtypes as dt
    from tilec.frontend.tracer import ConstantSpec, ScalarSpec, TensorSpec

    assert parse_arg_spec("f16[?,64]") == TensorSpec(dt.float16, (None, 64))
    assert parse_arg_spec("bfloat16[8]") == TensorSpec(dt.bfloat16, (8,))
    assert parse_arg_spec("i32") == ScalarSpec(dt.int32)
    assert parse_arg_spec("64") == ConstantSpec(64)
    assert parse_arg_spec("true") == ConstantSpec(True)
    assert parse_arg_spec("f16[?,?]@16") == TensorSpec(dt.float16, (None, None), div16=True)


def test_aligned_arg_specs_compile_the_path_an_aligned_launch_gets(capsys, tmp_path):
    """`@16` tensors (what a launch sees for 16-byte aligned torch tensors) take the sm_90a
    TMA + wgmma path; without it the matmul stays on registers (no TMA)."""
    out = tmp_path / "mm.ptx"
    base = ["compile", str(pathlib.Path(__file__).parents[1] / "examples" / "matmul.py"), "--kernel", "matmul_kernel", "--target", "sm_90a", "--emit", "ptx",
            "--arg", "BM=128", "--arg", "BN=128", "--arg", "BK=64", "-o", str(out)]
    assert main(base + ["--arg", "A=f16[?,?]@16", "--arg", "B=f16[?,?]@16", "--arg", "C=f32[?,?]@16"]) == 0
    assert "cp.async.bulk.tensor" in out.read_text() and "wgmma.mma_async" in out.read_text()
    assert main(base + ["--arg", "A=f16[?,?]", "--arg", "B=f16[?,?]", "--arg", "C=f32[?,?]"]) == 0
    assert "cp.async.bulk.tensor" not in out.read_text()


def test_emit_ir_after_canonicalize(capsys):
    rc, out, err = run(capsys, "compile", MATMUL, "--target", "cpu", *MATMUL_ARGS)
    assert rc == 0
    assert "func.func @matmul_kernel(%A: !tile.tensor<?x?xf16>" in out
    # the canonicalised K loop carries the accumulator through tile.matmul's acc operand
    assert "tile.matmul %a, %b, %" in out and "scf.for" in out


def test_print_ir_after_all_shows_every_pass(capsys):
    from tilec.pipelines import pipeline_for

    rc, out, err = run(capsys, "compile", MATMUL, *MATMUL_ARGS, "--print-ir-after-all")
    assert rc == 0
    for name in ("trace", *pipeline_for("cpu")):
        assert f"// -----// IR Dump After {name} (matmul_kernel) //----- //" in err


def test_print_ir_after_one_pass_and_dump_dir(capsys, tmp_path):
    rc, out, err = run(capsys, "compile", MATMUL, *MATMUL_ARGS, "--print-ir-after", "trace",
                       "--dump-dir", str(tmp_path))
    assert rc == 0
    assert "IR Dump After trace" in err and "IR Dump After tile-canonicalize" not in err
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files[0] == "matmul_kernel.00.trace.mlir" and any("tile-canonicalize" in f for f in files)
    assert "tile.load" in (tmp_path / files[0]).read_text()


def test_output_file_and_pipeline(capsys, tmp_path):
    out_file = tmp_path / "k.mlir"
    rc, out, _ = run(capsys, "compile", MATMUL, *MATMUL_ARGS, "-o", str(out_file))
    assert rc == 0 and out == "" and "tile.store" in out_file.read_text()
    rc, out, _ = run(capsys, "compile", MATMUL, "--print-pipeline", "--target", "sm_100")
    assert rc == 0 and out.strip().endswith("emit-ptx")


def test_missing_arg_types_are_named(capsys):
    rc, _, err = run(capsys, "compile", MATMUL, "--arg", "A=f16[?,?]")
    assert rc == 1
    assert "B, C, BM, BN, BK" in err and "--arg NAME=SPEC" in err


@pytest.mark.parametrize("argv, message", [
    (["--kernel", "nope"], "no @kernel named 'nope'"),
    (["--arg", "A=f17[?,?]"], "unknown dtype 'f17'"),
    (["--arg", "A=f16[x]"], "bad dimension 'x'"),
    (["--emit", "ptx"], "needs a GPU target"),
    (["--target", "sm_42"], "unknown target 'sm_42'"),
])
def test_bad_invocations(capsys, argv, message):
    rc, _, err = run(capsys, "compile", MATMUL, *MATMUL_ARGS, *argv)
    assert rc == 1 and message in err and "Traceback" not in err


def test_console_script_runs():
    proc = subprocess.run([sys.executable, "-m", "tilec.cli", "compile", MATMUL, *MATMUL_ARGS, "--emit", "tile"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "tile.load" in proc.stdout
