"""What grading is about and what it gives: a submission, and the result of grading it.

The records that grading (pipeline.py), the gradebook check, feedback and the report share.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Submission:
    student: str
    week: str

    def folder(self, root: Path) -> Path:
        return root / "submitted" / self.student / self.week


@dataclass(frozen=True)
class Result:
    submission: Submission
    score: float
    max_score: float
    status: str  # "graded", or "failed" when a graded notebook could not be autograded
    reason: str  # what failed, or which graded cells lost points
    seconds: float
    failed_checks: tuple[str, ...] = ()  # "<part>: <check>" for every failed check (judging.JudgeSummary)
    limits: tuple[str, ...] = ()  # sandbox limits hit, timeouts, cells not run
    findings: tuple[str, ...] = ()  # what tampering.py found in the student's code
