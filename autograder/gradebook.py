"""The gradebook: reading it, recording 0 for what could not be autograded, exporting and checking it.

nbgrader's gradebook is ``gradebook.db`` in the course root (SQLite), created by
``nbgrader generate_assignment`` and written by ``nbgrader autograde``.
"""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from sqlalchemy.exc import SAWarning

from autograder.commands import nbgrader
from autograder.layout import PipelineError
from autograder.submissions import Result, Submission


@contextmanager
def gradebook(root: Path) -> Iterator[Gradebook]:
    """The course root's gradebook, which `nbgrader generate_assignment` created."""
    path = root / "gradebook.db"
    if not path.is_file():
        raise PipelineError(f"no gradebook at {path}: run `make release` first")
    # course_id "" is nbgrader's default: nbgrader_config.py sets none. Workers share the file:
    # wait for another's write lock as nbgrader_config.py's db_url does.
    with Gradebook(f"sqlite:///{path}?timeout=120", course_id="") as book:
        yield book


def graded_notebooks(root: Path, week: str) -> list[str]:
    """Names of the week's notebooks that hold graded or task cells; lectures hold none."""
    with gradebook(root) as book:
        try:
            assignment = book.find_assignment(week)
        except MissingEntry:
            raise PipelineError(f"{week} is not in {root / 'gradebook.db'}: run `make release` first") from None
        return sorted(nb.name for nb in assignment.notebooks if nb.grade_cells or nb.task_cells)


def zero_notebook(root: Path, submission: Submission, name: str) -> None:
    """Record 0 for every graded cell of a notebook that could not be autograded."""
    with gradebook(root) as book, warnings.catch_warnings():
        # nbgrader's add_submission trips SQLAlchemy 2's cascade warnings; the rows are written.
        warnings.simplefilter("ignore", SAWarning)
        book.update_or_create_student(submission.student)
        book.update_or_create_submission(submission.week, submission.student)
        for grade in book.find_submission_notebook(name, submission.week, submission.student).grades:
            grade.auto_score = 0
            grade.needs_manual_grade = False
        book.db.commit()
    for stale in (
        root / "autograded" / submission.student / submission.week / f"{name}.ipynb",
        root / "feedback" / submission.student / submission.week / f"{name}.html",
    ):
        stale.unlink(missing_ok=True)


def scores(root: Path, submission: Submission) -> tuple[float, float, list[str]]:
    """Score, maximum and the graded cells below full marks (``grade_id score/max``)."""
    with gradebook(root) as book:
        graded = book.find_submission(submission.week, submission.student)
        lost = [
            f"{grade.name} {grade.score:g}/{grade.max_score:g}"
            + (" (needs manual grading)" if grade.needs_manual_grade else "")
            for notebook in graded.notebooks
            for grade in notebook.grades
            if grade.needs_manual_grade or grade.score < grade.max_score
        ]
        return graded.score, graded.max_score, lost


def export_grades(root: Path) -> Path:
    """Export the gradebook to ``reports/grades.csv`` (one row per student and week)."""
    target = root / "reports" / "grades.csv"
    target.parent.mkdir(exist_ok=True)
    nbgrader(root, "export", f"--to={target}")
    return target


def check_gradebook(root: Path, results: list[Result]) -> list[str]:
    """Problems found in the gradebook after a batch; an empty list means it is sound.

    SQLite's own integrity check; every graded cell of the release still in the gradebook with
    its released points; one grade per graded cell of every graded submission, between 0 and
    its maximum; and the gradebook's total equal to what each submission's result reported.
    """
    path = root / "gradebook.db"
    with sqlite3.connect(path) as connection:
        problems = [f"sqlite: {row[0]}" for row in connection.execute("PRAGMA integrity_check") if row[0] != "ok"]
    with gradebook(root) as book:
        for week in sorted({r.submission.week for r in results}):
            released = _released_points(root, week)
            recorded = {
                (nb.name, cell.name): cell.max_score
                for nb in book.find_assignment(week).notebooks
                for cell in nb.grade_cells
            }
            if recorded != released:
                problems.append(f"{week}: the gradebook's graded cells or points differ from the release")
        for result in results:
            student, week = result.submission.student, result.submission.week
            try:
                submission = book.find_submission(week, student)
            except MissingEntry:
                problems.append(f"{student} {week}: no submission in the gradebook")
                continue
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    score = grade.score
                    if not grade.needs_manual_grade and (score is None or not 0 <= score <= grade.max_score):
                        problems.append(f"{student} {week} {grade.name}: score {score} outside 0..{grade.max_score:g}")
            if abs(submission.score - result.score) > 1e-9:
                problems.append(f"{student} {week}: gradebook total {submission.score:g}, reported {result.score:g}")
    return problems


def _released_points(root: Path, week: str) -> dict[tuple[str, str], float]:
    """(notebook, grade_id) -> points of every graded cell in the released notebooks of ``week``."""
    return {
        (path.stem, cell.metadata.nbgrader.grade_id): float(cell.metadata.nbgrader.points)
        for path in sorted((root / "release" / week).glob("*.ipynb"))
        for cell in nbformat.read(path, as_version=4).cells
        if cell.metadata.get("nbgrader", {}).get("grade")
    }
