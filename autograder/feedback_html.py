"""Feedback HTML for autograded submissions: ``nbgrader generate_feedback``, one process each.

A submission whose feedback fails or hangs is listed and keeps no feedback file. (feedback.py
is the `make feedback` script that calls this.)
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from autograder.commands import failure_summary, run_nbgrader
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
    its own (``commands.run_nbgrader``, forked from a process that imported nbgrader once),
    ``jobs`` at once, each killed after ``timeout`` seconds: a notebook that makes nbconvert fail
    or hang costs its own feedback alone, and the report lists it. A submission whose feedback
    failed keeps no feedback file, so that nothing stale or partial is returned.
    """
    chosen = autograded_submissions(root, weeks) if submissions is None else submissions
    chosen = [s for s in chosen if any((root / "autograded" / s.student / s.week).glob("*.ipynb"))]
    for submission in chosen:
        shutil.rmtree(root / "feedback" / submission.student / submission.week, ignore_errors=True)

    def feedback(submission: Submission) -> str | None:
        args = ["generate_feedback", submission.week, f"--student={submission.student}", "--force"]
        result = run_nbgrader(args, root, timeout=timeout)
        if result.returncode is None:
            return f"feedback timed out after {result.seconds:.0f} s"
        if result.returncode != 0:
            killed = f" (killed by signal {-result.returncode})" if result.returncode < 0 else ""
            return f"feedback failed: {failure_summary(result.output)}{killed}"
        return None

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        outcomes = list(pool.map(feedback, chosen))
    failures = []
    for submission, why in zip(chosen, outcomes, strict=True):
        if why is not None:
            shutil.rmtree(root / "feedback" / submission.student / submission.week, ignore_errors=True)
            failures.append(f"{submission.student} {submission.week}: {why}")
    files = sorted(p for s in chosen for p in (root / "feedback" / s.student / s.week).glob("*.html"))
    return FeedbackReport(files, failures)
