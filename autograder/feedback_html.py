"""Feedback HTML for autograded submissions: ``nbgrader generate_feedback``, one process each.

feedback_worker.py forks the processes; a submission whose feedback fails or hangs is listed
and keeps no feedback file. (feedback.py is the `make feedback` script that calls this.)
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from autograder.commands import failure_summary, run_command
from autograder.submissions import Submission

FEEDBACK_TIMEOUT = 120  # seconds of wall clock for one submission's feedback HTML


@dataclass(frozen=True)
class FeedbackReport:
    files: list[Path]  # feedback HTML files written
    failures: list[str]  # "<student> <week>: <why>" for each submission whose feedback failed


def autograded_submissions(root: Path, weeks: list[str]) -> list[Submission]:
    """Submissions of the weeks with an autograded notebook, by week then student."""
    return [
        Submission(folder.parent.name, week)
        for week in weeks
        for folder in sorted((root / "autograded").glob(f"*/{week}"))
        if any(folder.glob("*.ipynb"))
    ]


def generate_feedback(
    root: Path,
    weeks: list[str],
    jobs: int = 1,
    timeout: float = FEEDBACK_TIMEOUT,
    submissions: list[Submission] | None = None,
) -> FeedbackReport:
    """Write feedback HTML for each autograded submission of the weeks (or of ``submissions``).

    Each submission's ``nbgrader generate_feedback <week> --student=<id>`` runs in a process of
    its own, ``jobs`` at once, each killed after ``timeout`` seconds (``feedback_worker.py``
    forks them from one process that imported nbgrader once): a notebook that makes nbconvert
    fail or hang costs its own feedback alone, and the report lists it. A submission whose
    feedback failed keeps no feedback file, so that nothing stale or partial is returned.
    """
    chosen = autograded_submissions(root, weeks) if submissions is None else submissions
    chosen = [s for s in chosen if any((root / "autograded" / s.student / s.week).glob("*.ipynb"))]
    if not chosen:
        return FeedbackReport([], [])
    for submission in chosen:
        shutil.rmtree(root / "feedback" / submission.student / submission.week, ignore_errors=True)
    jobs = max(1, jobs)
    pairs = [part for s in chosen for part in (s.week, s.student)]
    command = [sys.executable, "-m", "autograder.feedback_worker", f"--jobs={jobs}", f"--timeout={timeout}", "--"]
    # The worker's own bound: every submission at its timeout, plus nbgrader's start.
    result = run_command([*command, *pairs], root, timeout=timeout * (len(chosen) / jobs + 1) + 60)
    outcomes = {}
    for line in result.output.splitlines():
        if line.startswith("{"):
            try:
                outcome = json.loads(line)
                outcomes[Submission(outcome["student"], outcome["week"])] = outcome
            except (ValueError, KeyError, TypeError):
                continue
    failures = []
    for submission in chosen:
        outcome = outcomes.get(submission)
        if outcome is None:
            why = f"feedback not made: the feedback worker stopped ({failure_summary(result.output)})"
        elif outcome["status"] == "timeout":
            why = f"feedback timed out after {outcome['seconds']:.0f} s"
        elif outcome["status"] != "ok":
            why = f"feedback failed: {failure_summary(outcome.get('log', ''))}"
        else:
            continue
        shutil.rmtree(root / "feedback" / submission.student / submission.week, ignore_errors=True)
        failures.append(f"{submission.student} {submission.week}: {why}")
    files = sorted(p for s in chosen for p in (root / "feedback" / s.student / s.week).glob("*.html"))
    return FeedbackReport(files, failures)
