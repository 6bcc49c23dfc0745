"""The demo class: a week released in a new course root and submitted as five sample students.

``make demo`` (demo.py), ``make throughput`` (throughput.py) and the tests grade it.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from autograder.gradebook import graded_notebooks
from autograder.layout import SOLUTIONS, PipelineError
from autograder.releasing import copy_config, generate_assignment, sync_folder
from autograder.submissions import Submission

DEMO_STUDENTS = {
    "full": "every solution cell filled in from the source",
    "partial": "the first half of the solution cells filled in, the rest as released",
    "untouched": "the release as it is",
    "missing": "the lectures only, no graded notebook",
    "broken": "graded notebooks cut in half (invalid JSON)",
}


def build_demo_class(root: Path, week: str, solutions: Path = SOLUTIONS) -> None:
    """Release ``week`` in a new course root and submit it as each of DEMO_STUDENTS would.

    Every student submits all released notebooks (lectures too); the graded ones differ as
    DEMO_STUDENTS says. Solution cells are matched by grade_id between the source and the
    release notebook, so this works for any exercises notebook.
    """
    copy_config(root)
    generate_assignment(root, week, solutions)
    graded = graded_notebooks(root, week)
    if not graded:
        raise PipelineError(f"no notebook in {solutions / week} has nbgrader grade or task cells: nothing to grade")
    for student in DEMO_STUDENTS:
        folder = Submission(student, week).folder(root)
        sync_folder(root / "release" / week, folder)
        for name in graded:
            path = folder / f"{name}.ipynb"
            if student == "missing":
                path.unlink()
            elif student == "broken":
                text = path.read_text()
                path.write_text(text[: len(text) // 2])
            elif student in ("full", "partial"):
                _fill_solutions(path, root / "source" / week / f"{name}.ipynb", half=student == "partial")


def _fill_solutions(path: Path, source: Path, half: bool) -> None:
    """Copy the source's solution cells (all, or the first half) into the released notebook at ``path``."""

    def solution_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
        return [cell for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("solution")]

    answers = {cell.metadata.nbgrader.grade_id: cell.source for cell in solution_cells(nbformat.read(source, 4))}
    notebook = nbformat.read(path, as_version=4)
    cells = solution_cells(notebook)
    for cell in cells[: len(cells) // 2 if half else len(cells)]:
        cell.source = answers[cell.metadata.nbgrader.grade_id]
    nbformat.write(notebook, path)
