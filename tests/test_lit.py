"""Runs the FileCheck suite (`lit lit/`) as one pytest test.

lit 23 has no `__main__`, so `python -m lit` fails; this runs `lit.main.main()` in the
current interpreter instead, which is what the `lit` console script does.
"""

from __future__ import annotations

import importlib.util
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.skipif(importlib.util.find_spec("lit") is None, reason="lit is not installed (pip install lit)")
@pytest.mark.skipif(shutil.which("filecheck", path=str(pathlib.Path(sys.executable).parent)) is None
                    and shutil.which("filecheck") is None, reason="filecheck is not installed")
def test_lit_suite_passes():
    run_lit = "import sys; from lit.main import main; sys.argv[0] = 'lit'; main()"
    r = subprocess.run([sys.executable, "-c", run_lit, "lit/", "-q"], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, f"lit lit/ failed:\n{r.stdout}\n{r.stderr}"
