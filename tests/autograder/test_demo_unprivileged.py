"""An instructor who is not root runs `make demo`: release, submit and grade a sample class in the sandbox."""

import re
import shutil
import time

import pytest
from conftest import needs_sandbox
from unprivileged import ordinary_account  # noqa: F401 - a fixture

pytestmark = [pytest.mark.slow, needs_sandbox]

WEEK = "week1_foundations"


def test_make_demo_grades_a_class_as_an_ordinary_user(ordinary_account, record_property):  # noqa: F811
    workspace = ordinary_account.workspace("demo")
    try:
        checkout = ordinary_account.checkout(workspace / "LCTeach")
        # The account's environment stands in for the .venv that `make` would build (it holds the
        # same pinned dependencies); the checkout's own lcteach is found on PYTHONPATH.
        venv = ordinary_account.python.parent.parent
        (checkout / ".venv").symlink_to(venv)
        (venv / ".installed").touch()  # newer than pyproject.toml: make does not rebuild it
        start = time.monotonic()
        result = ordinary_account.run(
            ["make", "--no-print-directory", "demo", f"WEEK={WEEK}"],
            cwd=checkout,
            env={"PYTHONPATH": str(checkout)},
            timeout=900,
        )
        record_property("demo_seconds", time.monotonic() - start)
        output = result.stdout
        assert result.returncode == 0, output[-6000:]
        assert "PermissionError" not in output and "Traceback" not in output, output[-6000:]
        scores = dict(re.findall(r"^(full|partial|untouched|missing|broken)\s+\S+\s+(\S+)", output, re.M))
        assert scores["full"] == "28/30" and scores["untouched"] == "0/30", output[-6000:]
        assert "gradebook check: sound" in output
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
