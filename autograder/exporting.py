"""``nbgrader export``'s CSV for the LMS, without false zeros (named in nbgrader_config.py).

nbgrader's own CSV exporter writes a score of 0 for every week a student never submitted, and
an LMS upload turns that into a grade of 0. This one writes the same columns, one row per
student and week, leaves ``timestamp``, ``raw_score``, ``late_submission_penalty`` and
``score`` empty for a week with no submission, and adds a ``status`` column: ``submitted`` or
``missing``. A submission that came without its notebook, or could not be graded, is a
submission: it keeps the 0 it was given. Fields are quoted as CSV needs (a name with a comma).
"""

from __future__ import annotations

import csv

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import ExportPlugin

COLUMNS = (
    "assignment",
    "duedate",
    "timestamp",
    "student_id",
    "last_name",
    "first_name",
    "email",
    "raw_score",
    "late_submission_penalty",
    "score",
    "max_score",
    "status",
)


def grade_rows(gradebook: Gradebook, assignments=(), students=()) -> list[dict[str, str]]:
    """One row per (assignment, student) of the gradebook, as COLUMNS; empty scores when missing."""
    rows = []
    for assignment in gradebook.assignments:
        if assignments and assignment.name not in assignments:
            continue
        for student in gradebook.students:
            if students and student.id not in students:
                continue
            row = {
                "assignment": assignment.name,
                "duedate": assignment.duedate,
                "student_id": student.id,
                "last_name": student.last_name,
                "first_name": student.first_name,
                "email": student.email,
                "max_score": assignment.max_score,
            }
            try:
                submission = gradebook.find_submission(assignment.name, student.id)
            except MissingEntry:
                row.update(timestamp="", raw_score="", late_submission_penalty="", score="", status="missing")
            else:
                penalty = submission.late_submission_penalty or 0.0
                row.update(
                    timestamp=submission.timestamp,
                    raw_score=submission.score,
                    late_submission_penalty=penalty,
                    score=max(0.0, submission.score - penalty),
                    status="submitted",
                )
            rows.append({key: "" if row[key] is None else str(row[key]) for key in COLUMNS})
    return rows


class CsvExport(ExportPlugin):
    """nbgrader's CSV export (``--to`` the file, default grades.csv) with missing weeks left empty."""

    def export(self, gradebook: Gradebook) -> None:
        destination = self.to or "grades.csv"
        self.log.info("Exporting grades to %s", destination)
        rows = grade_rows(gradebook, [str(a) for a in self.assignment], [str(s) for s in self.student])
        with open(destination, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
