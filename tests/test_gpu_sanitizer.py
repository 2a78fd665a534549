"""compute-sanitizer (memcheck and racecheck) reports nothing on the examples (GPU only)."""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.gpu
torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs an NVIDIA GPU", allow_module_level=True)

SANITIZER = shutil.which("compute-sanitizer") or "/usr/local/cuda/bin/compute-sanitizer"
if not os.path.exists(SANITIZER):
    pytest.skip("compute-sanitizer not installed", allow_module_level=True)

SCRIPT = pathlib.Path(__file__).with_name("gpu_sanitize_examples.py")


@pytest.mark.parametrize("tool", ["memcheck", "racecheck"])
def test_examples_are_sanitizer_clean(tool):
    proc = subprocess.run([SANITIZER, "--tool", tool, "--report-api-errors", "no", "--error-exitcode", "9", sys.executable, str(SCRIPT)],
                          capture_output=True, text=True, timeout=900)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report[-4000:]
    assert "ERROR SUMMARY: 0 errors" in report or "RACECHECK SUMMARY: 0 hazards" in report, report[-4000:]
    assert "all examples ran" in report
