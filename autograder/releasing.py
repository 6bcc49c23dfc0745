"""Building and releasing the notebooks: solutions/<week>/*.py -> source/ -> nbgrader -> course/.

Notebook sources are jupytext py:percent files; they are built into notebooks with
deterministic cell ids, released by ``nbgrader generate_assignment`` in a course root, and
copied into ``course/``. Also: which weeks a course root has released.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import jupytext
import nbformat

from autograder.commands import nbgrader
from autograder.layout import CONFIG, COURSE_ROOT, SOLUTIONS, PipelineError

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
# Cell metadata that jupytext keeps only to round-trip the text file; not part of the notebook.
JUPYTEXT_CELL_KEYS = ("cell_marker", "lines_to_next_cell", "lines_to_end_of_cell_marker")
# Files that tools leave next to notebooks; never part of a release.
IGNORED_NAMES = {".ipynb_checkpoints", "__pycache__"}


def weeks(solutions: Path = SOLUTIONS) -> list[str]:
    """The weeks of the course: the folders in ``solutions``, in name order."""
    return sorted(p.name for p in solutions.iterdir() if p.is_dir() and p.name not in IGNORED_NAMES)


def build_notebook(path: Path) -> nbformat.NotebookNode:
    """Read a jupytext py:percent notebook source as a notebook with deterministic cell ids.

    A cell's id is its nbgrader ``grade_id`` when it has one, else ``cell-<index>``; the
    notebook metadata is the python3 kernelspec alone, so the build does not depend on the
    jupytext version or on who ran it.
    """
    notebook = jupytext.read(path, fmt="py:percent")
    notebook.nbformat_minor = max(notebook.nbformat_minor, 5)  # cell ids need nbformat 4.5
    notebook.metadata = nbformat.NotebookNode(kernelspec=KERNELSPEC, language_info={"name": "python"})
    seen: set[str] = set()
    for index, cell in enumerate(notebook.cells):
        for key in JUPYTEXT_CELL_KEYS:
            cell.metadata.pop(key, None)
        cell.id = cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell-{index}"
        if cell.id in seen:
            raise PipelineError(f"{path}: two cells get the id {cell.id!r}; give each nbgrader cell its own grade_id")
        seen.add(cell.id)
    try:
        nbformat.validate(notebook)
    except nbformat.ValidationError as error:
        raise PipelineError(f"{path}: not a valid notebook once built: {error.message}") from None
    return notebook


def build_source(root: Path, week: str, solutions: Path = SOLUTIONS) -> None:
    """Write ``root/source/<week>/<name>.ipynb`` for every ``solutions/<week>/<name>.py``."""
    sources = sorted((solutions / week).glob("*.py"))
    if not sources:
        raise PipelineError(f"{solutions / week} holds no notebook sources (*.py in jupytext py:percent format)")
    target = root / "source" / week
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for path in sources:
        nbformat.write(build_notebook(path), target / f"{path.stem}.ipynb")


def generate_assignment(root: Path, week: str, solutions: Path = SOLUTIONS) -> None:
    """Build the week's source notebooks and run ``nbgrader generate_assignment`` on them."""
    build_source(root, week, solutions)
    nbgrader(root, "generate_assignment", week, "--force")


def sync_folder(source: Path, target: Path) -> None:
    """Make ``target`` an exact copy of ``source``: copy every file, remove every other entry."""
    target.mkdir(parents=True, exist_ok=True)
    wanted = {p.name for p in source.iterdir() if p.name not in IGNORED_NAMES}
    for entry in target.iterdir():
        if entry.name not in wanted:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    for name in sorted(wanted):
        if (source / name).is_dir():
            sync_folder(source / name, target / name)
        else:
            shutil.copyfile(source / name, target / name)


def release(root: Path, course: Path, solutions: Path = SOLUTIONS) -> list[str]:
    """Release every week of ``solutions`` through ``root`` and make ``course`` equal the result."""
    released = weeks(solutions)
    for week in released:
        generate_assignment(root, week, solutions)
    course.mkdir(exist_ok=True)
    staged = root / "release"
    for entry in course.iterdir():
        if entry.name not in released:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    for week in released:
        sync_folder(staged / week, course / week)
    return released


def copy_config(root: Path) -> None:
    """Make ``root`` a course root with the repository's nbgrader configuration."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(COURSE_ROOT / CONFIG, root / CONFIG)


def released_weeks(root: Path, chosen: list[str] | None = None) -> list[str]:
    """The ``chosen`` weeks, or every week released in the course root; all must be released."""
    release_dir = root / "release"
    released = sorted(p.name for p in release_dir.iterdir() if p.is_dir()) if release_dir.is_dir() else []
    unknown = sorted(set(chosen or []) - set(released))
    if unknown or not released:
        raise PipelineError(
            f"not released: {', '.join(unknown) or 'any week'} "
            f"(released: {', '.join(released) or 'none'}); run `make release` first"
        )
    return chosen or released
