"""The `edgescribe` entry point: what it settles before any subcommand's imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = r"""
import os, sys
import edgescribe.cli
# The variable is read when NumPy loads its BLAS: the entry point must set it before NumPy is imported.
print("numpy-loaded" if "numpy" in sys.modules else "numpy-not-loaded", os.environ.get("OPENBLAS_NUM_THREADS"))
"""


def _probe(**env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    r = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**base, **env}, capture_output=True,
                       text=True, timeout=60, check=True)
    return r.stdout.strip()


def test_numpy_blas_runs_one_thread_unless_the_user_says_otherwise():
    assert _probe() == "numpy-not-loaded 1"
    assert _probe(OPENBLAS_NUM_THREADS="3") == "numpy-not-loaded 3"
