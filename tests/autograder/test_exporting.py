"""grades.csv (autograder/exporting.py): a week a student never submitted is empty, never a false 0."""

import csv
import os
import sys
import warnings
from pathlib import Path

from nbgrader.api import Gradebook
from sqlalchemy.exc import SAWarning

from autograder.exporting import COLUMNS, CsvExport


def test_a_week_never_submitted_is_left_empty_and_marked_missing(tmp_path, monkeypatch):
    monkeypatch.setenv(
        "PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )  # nbgrader runs alembic
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as book, warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)
        for week in ("week1", "week2"):
            book.add_assignment(week)
            book.add_notebook("exercises", week)
            book.add_grade_cell("part", "exercises", week, max_score=4, cell_type="code")
        book.add_student("ada", first_name="Ada", last_name="Lovelace, Countess")
        book.add_student("bob")
        book.add_submission("week1", "ada")
        book.add_submission("week1", "bob")  # bob submitted week1 without his notebook: a real 0
        grade = book.find_grade("part", "exercises", "week1", "ada")
        grade.auto_score = 3
        book.db.commit()
        plugin = CsvExport(to=str(tmp_path / "grades.csv"))
        plugin.export(book)
    with (tmp_path / "grades.csv").open(newline="") as file:
        reader = csv.DictReader(file)
        assert tuple(reader.fieldnames) == COLUMNS
        rows = {(row["assignment"], row["student_id"]): row for row in reader}
    assert [(k, rows[k]["score"], rows[k]["status"]) for k in sorted(rows)] == [
        (("week1", "ada"), "3.0", "submitted"),
        (("week1", "bob"), "0.0", "submitted"),
        (("week2", "ada"), "", "missing"),
        (("week2", "bob"), "", "missing"),
    ]
    missing = rows[("week2", "ada")]
    assert (missing["raw_score"], missing["late_submission_penalty"], missing["timestamp"]) == ("", "", "")
    assert missing["max_score"] == "4.0" and missing["last_name"] == "Lovelace, Countess"
