"""Shared fixtures and reporting of the test suite."""

import os
import shutil
from pathlib import Path

import pytest
import torch

# Grading runs student code in a bubblewrap sandbox (autograder/sandbox.py). Without bwrap the
# tests that grade are skipped with this reason; CI (CI=true) always runs them.
needs_sandbox = pytest.mark.skipif(
    shutil.which("bwrap") is None and not os.environ.get("CI"),
    reason="grading needs bubblewrap (apt-get install bubblewrap); CI runs these tests",
)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

TINY_EXERCISES = """\
# %% [markdown]
# # Tiny exercises: two graded parts

# %% nbgrader={"grade": false, "grade_id": "square", "locked": false, "schema_version": 3, "solution": true}
def square(x):
    ### BEGIN SOLUTION
    return x * x
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "square_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
assert square(3) == 9
### BEGIN HIDDEN TESTS
assert square(-2) == 4
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "cube", "locked": false, "schema_version": 3, "solution": true}
def cube(x):
    ### BEGIN SOLUTION
    return x**3
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "cube_tests", "locked": true, "points": 3, "schema_version": 3, "solution": false}
assert cube(2) == 8
"""

# A lecture that leaves a mark in its working folder, so a test can tell whether it ran.
TINY_LECTURE = """\
# %% [markdown]
# # Tiny lecture

# %%
open("lecture-ran", "w").close()
"""


@pytest.fixture(scope="session")
def tiny_solutions(tmp_path_factory) -> Path:
    """A solutions/ tree with one week, ``tiny``: a graded exercises notebook and a lecture."""
    solutions = tmp_path_factory.mktemp("solutions")
    (solutions / "tiny").mkdir()
    (solutions / "tiny" / "exercises.py").write_text(TINY_EXERCISES)
    (solutions / "tiny" / "lecture.py").write_text(TINY_LECTURE)
    return solutions


def pytest_terminal_summary(terminalreporter):
    """Print the times that tests recorded as ``<what>_seconds`` properties (notebook runs)."""
    timed = sorted(
        (report.nodeid, "  ".join(f"{name.removesuffix('_seconds')} {value:6.1f} s" for name, value in times))
        for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", [])
        if report.when == "call"
        and (times := [(name, value) for name, value in report.user_properties if name.endswith("_seconds")])
    )
    if timed:
        terminalreporter.section("recorded times")
        for nodeid, times in timed:
            terminalreporter.write_line(f"{times}  {nodeid}")
