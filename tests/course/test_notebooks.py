"""Every solutions notebook (lectures and exercises, as `make release` builds them) runs top to
bottom under nbval without an error or stderr output, within its time budget. The run times
are reported at the end of the test session."""

import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from autograder.layout import SOLUTIONS
from autograder.releasing import build_notebook

BUDGET = 60  # seconds per notebook on 2 idle cores, kernel start included (DESIGN.md)
CELL_TIMEOUT = 300  # a hang; slower than the budget on a busy machine is judged below
NOTEBOOKS = sorted(SOLUTIONS.glob("*/*.py"))
REPO = Path(__file__).resolve().parents[2]


def children_cpu_seconds() -> float:
    """CPU seconds of the finished child processes (nbval and the kernel it waited for)."""
    times = os.times()
    return times.children_user + times.children_system


@pytest.mark.slow
@pytest.mark.parametrize("source", NOTEBOOKS, ids=[str(p.relative_to(SOLUTIONS)) for p in NOTEBOOKS])
def test_notebook_runs_clean_within_budget(source: Path, tmp_path, record_property):
    path = tmp_path / f"{source.stem}.ipynb"
    nbformat.write(build_notebook(source), path)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval-lax",
        "--nbval-current-env",
        f"--nbval-cell-timeout={CELL_TIMEOUT}",
        "-p",
        "tests.nbval_strict",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        "-q",
        "--rootdir",
        str(tmp_path),
        str(path),
    ]
    cpu_before, start = children_cpu_seconds(), time.monotonic()
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds, cpu_seconds = time.monotonic() - start, children_cpu_seconds() - cpu_before
    record_property("wall_seconds", seconds)
    record_property("cpu_seconds", cpu_seconds)
    assert run.returncode == 0, f"nbval failed on {source.name}:\n{run.stdout[-6000:]}\n{run.stderr[-2000:]}"
    # Wall time is the budget's measure, but it grows with the load of a shared machine while CPU
    # time does not; and a notebook that computes (rather than sleeps) uses at least as much CPU
    # time as wall time. So min(wall, CPU) equals the wall time on an idle machine and never
    # underestimates it on a busy one.
    assert min(seconds, cpu_seconds) <= BUDGET, (
        f"{source.name} took {seconds:.0f} s of wall clock and {cpu_seconds:.0f} s of CPU; the budget is {BUDGET} s"
    )
