"""The report of a graded class: what grading gave, and the table `make grade` prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from autograder.submissions import Result


@dataclass(frozen=True)
class ClassReport:
    results: list[Result]
    feedback: list[Path]  # feedback HTML files
    grades_csv: Path
    seconds: float
    gradebook_problems: list[str]  # check_gradebook's findings; empty when the gradebook is sound
    skipped_files: list[str]  # LMS download files that matched no student or notebook
    feedback_failures: list[str] = field(default_factory=list)  # "<student> <week>: <why>"
    limits: str = ""  # which limits held for each submission as a whole (cgroups.py)


def format_report(report: ClassReport) -> str:
    """The results table, each student's failed checks, limits and findings, the gradebook check,
    throughput, the feedback files and the CSV."""
    rows = [("student", "week", "score", "time", "status", "reason")] + [
        (
            r.submission.student,
            r.submission.week,
            f"{r.score:g}/{r.max_score:g}",
            f"{r.seconds:.0f} s",
            r.status,
            r.reason or "-",
        )
        for r in report.results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    table = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[5] for row in rows]
    details = [
        f"  {r.submission.student} {r.submission.week}: {label}: {item}"
        for r in report.results
        for label, items in (("failed", r.failed_checks), ("limit", r.limits), ("found", r.findings))
        for item in items
    ]
    count = len(report.results)
    problems = report.gradebook_problems
    return "\n".join(
        [
            *table,
            *(["", "details:", *details] if details else []),
            *(
                ["", "LMS files skipped:", *(f"  {line}" for line in report.skipped_files)]
                if report.skipped_files
                else []
            ),
            "",
            *([f"limits per submission: {report.limits}"] if report.limits else []),
            "gradebook check: " + ("sound" if not problems else f"{len(problems)} problems"),
            *(f"  {problem}" for problem in problems),
            f"graded {count} submissions in {report.seconds:.0f} s ({60 * count / report.seconds:.1f} per minute)",
            "feedback:",
            *(f"  {path}" for path in report.feedback),
            *(
                [f"feedback not written for {len(report.feedback_failures)} submissions:"]
                + [f"  {line}" for line in report.feedback_failures]
                if report.feedback_failures
                else []
            ),
            f"grades: {report.grades_csv}",
        ]
    )
