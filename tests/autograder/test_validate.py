"""A student's `nbgrader validate` (and the Validate button) under `make lab`'s configuration never needs
the grading sandbox: nbgrader_config.py gives the sandboxed kernel manager to autograding alone."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from unprivileged import ordinary_account  # noqa: F401 - a fixture

from autograder.demo_class import _fill_solutions
from autograder.layout import REPO, SOLUTIONS
from autograder.releasing import build_notebook

pytestmark = pytest.mark.slow

WEEK = "week1_foundations"
FAKE_BWRAP = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/bwrap-called"
exit 1
"""


def fake_bwrap(folder: Path) -> Path:
    """A `bwrap` that only records that it was called (and fails), first on PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bwrap").write_text(FAKE_BWRAP)
    (folder / "bwrap").chmod(0o755)
    return folder


def lab_environment(checkout: Path, bin_folder: Path, python_bin: Path) -> dict[str, str]:
    """What `make lab` sets (the autograder's config on JUPYTER_CONFIG_PATH, the repository on
    PYTHONPATH), with the fake bwrap first on PATH."""
    return {
        "JUPYTER_CONFIG_PATH": str(checkout / "autograder"),
        "PYTHONPATH": str(checkout),
        "PATH": f"{bin_folder}:{python_bin}:/usr/local/bin:/usr/bin:/bin",
        "OMP_WAIT_POLICY": "PASSIVE",
    }


def test_validate_with_the_course_config_runs_no_sandbox(tmp_path, record_property):
    bin_folder = fake_bwrap(tmp_path / "bin")
    env = lab_environment(REPO, bin_folder, Path(sys.executable).parent)
    week = shutil.copytree(REPO / "course" / WEEK, tmp_path / WEEK)  # the release, as a student has it
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", "validate", "exercises.ipynb"],
        cwd=week,
        env={"HOME": str(tmp_path), "LANG": "C.UTF-8"} | env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    record_property("validate_seconds", time.monotonic() - start)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "PermissionError" not in output
    assert "The following cell failed" in output  # the release itself: every check cell fails
    assert not (bin_folder / "bwrap-called").exists(), "validate started the grading sandbox"


def test_validate_works_as_an_ordinary_user_under_make_lab(ordinary_account, record_property):  # noqa: F811
    """A student (not root) validates a finished notebook in their own clone, as the Validate button does."""
    workspace = ordinary_account.workspace("validate")
    try:
        checkout = ordinary_account.checkout(workspace / "LCTeach")
        bin_folder = ordinary_account.own(fake_bwrap(workspace / "bin"))
        finished = checkout / "course" / WEEK / "exercises.ipynb"
        source = workspace / "source.ipynb"
        nbformat.write(build_notebook(SOLUTIONS / WEEK / "exercises.py"), source)
        _fill_solutions(finished, source, half=False)
        source.unlink()
        ordinary_account.own(workspace)
        env = lab_environment(checkout, bin_folder, ordinary_account.bin)
        start = time.monotonic()
        result = ordinary_account.run(
            ["python", "-m", "nbgrader", "validate", "exercises.ipynb"], cwd=finished.parent, env=env, timeout=300
        )
        record_property("validate_as_user_seconds", time.monotonic() - start)
        record_property("user_venv_build_seconds", ordinary_account.venv_seconds)
        assert result.returncode == 0, result.stdout
        assert "PermissionError" not in result.stdout
        assert "Success! Your notebook passes all the tests." in result.stdout, result.stdout[-3000:]
        assert not (bin_folder / "bwrap-called").exists(), "validate started the grading sandbox"
        whoami = ordinary_account.run(["python", "-c", "import os; print(os.geteuid())"], cwd=workspace)
        assert int(whoami.stdout) == ordinary_account.uid and (
            ordinary_account.uid != 0 or not ordinary_account.switched
        )
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
