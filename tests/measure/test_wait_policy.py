"""Importing lcteach sets OMP_WAIT_POLICY=PASSIVE (unless set), so torch's OpenMP threads sleep
while they wait, also in a plain `jupyter lab`, conda or an IDE, where the Makefile does not run.

OpenMP reads the variable once, when torch loads it: the setting takes effect when lcteach is
imported first. GNU OpenMP (the libgomp that torch's Linux wheels ship) shows what it read under
OMP_DISPLAY_ENV=VERBOSE: PASSIVE means GOMP_SPINCOUNT = 0 (no spinning), unset means 300,000.
"""

import os
import subprocess
import sys

import pytest


def run(code: str, **env: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter whose environment lacks OMP_WAIT_POLICY, plus ``env``."""
    clean = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    return subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, check=True
    )


def spin_count(code: str) -> str:
    """GOMP_SPINCOUNT as GNU OpenMP displays it after running ``code``; skips on another OpenMP runtime."""
    shown = run(code, OMP_DISPLAY_ENV="VERBOSE").stderr
    lines = [line for line in shown.splitlines() if "GOMP_SPINCOUNT" in line]
    if not lines:
        pytest.skip("torch's OpenMP runtime is not GNU libgomp: it does not display GOMP_SPINCOUNT")
    return lines[0].split("=", 1)[1].strip().strip("'")


def test_import_lcteach_sets_the_passive_wait_policy():
    code = "import os, lcteach, torch; print(os.environ['OMP_WAIT_POLICY'])"
    assert run(code).stdout.split() == ["PASSIVE"]


def test_a_policy_the_user_set_is_kept():
    code = "import os, lcteach; print(os.environ['OMP_WAIT_POLICY'])"
    assert run(code, OMP_WAIT_POLICY="ACTIVE").stdout.split() == ["ACTIVE"]


def test_openmp_threads_do_not_spin_when_lcteach_comes_before_torch():
    assert spin_count("import lcteach, torch; torch.ones(4) @ torch.ones(4)") == "0"


def test_importing_lcteach_after_torch_is_too_late():
    """Why the lectures import lcteach before torch: OpenMP has read its environment by then."""
    assert spin_count("import torch, lcteach; torch.ones(4) @ torch.ones(4)") != "0"
