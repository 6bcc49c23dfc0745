"""nbgrader commands forked from the preloaded server (commands.run_nbgrader) behave as subprocesses."""

import subprocess
import sys

import nbgrader

from autograder.commands import failure_summary, run_command, run_nbgrader
from autograder.layout import COURSE_ROOT, REPO


def test_a_forked_command_prints_and_exits_as_nbgrader_does(tmp_path):
    result = run_nbgrader(["--version"], tmp_path)
    assert result.returncode == 0
    assert nbgrader.__version__ in result.output


def test_a_failing_command_reports_its_error_and_status(tmp_path):
    forked = run_nbgrader(["autograde", "no_such_week", "--student=nobody"], COURSE_ROOT)
    spawned = run_command(
        [sys.executable, "-m", "nbgrader", "autograde", "no_such_week", "--student=nobody"], COURSE_ROOT
    )
    assert forked.returncode == spawned.returncode != 0
    assert failure_summary(forked.output) == failure_summary(spawned.output)


def test_each_command_runs_in_a_fresh_process(tmp_path):
    """Two commands in turn: the second starts clean, as a subprocess would (nbgrader's app is a
    singleton per process: a reused process would refuse or mix up the second)."""
    first = run_nbgrader(["--version"], tmp_path)
    second = run_nbgrader(["--version"], tmp_path)
    assert first.returncode == second.returncode == 0
    assert first.output == second.output


def test_the_server_imports_every_check_and_starts_no_thread():
    """What the server preloads: every week's part modules (a forked autograde imports nothing of
    the judge), and no Python thread, which a fork would silently lose."""
    probe = (
        "import threading, pkgutil, importlib, sys\n"
        "import autograder.nbgrader_preload\n"
        "import lcteach.grading\n"
        "weeks = [m.name for m in pkgutil.iter_modules(lcteach.grading.__path__, 'lcteach.grading.') if m.ispkg]\n"
        "parts = [p.name for w in weeks for p in pkgutil.iter_modules(importlib.import_module(w).__path__, w + '.')]\n"
        "assert len(weeks) >= 2 and len(parts) >= 18, (weeks, parts)\n"
        "missing = [p for p in parts if p not in sys.modules]\n"
        "assert not missing, missing\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
