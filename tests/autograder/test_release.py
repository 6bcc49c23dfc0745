"""`make release`: notebook build, nbgrader generate_assignment, and course/ kept in sync."""

import json
import shutil
from pathlib import Path

import pytest

from autograder.layout import COURSE, SOLUTIONS, PipelineError
from autograder.releasing import IGNORED_NAMES, build_notebook, copy_config, release


def tree(folder: Path) -> dict[str, object]:
    """Every file under ``folder`` by relative path: notebooks as parsed JSON, others as bytes."""
    return {
        str(path.relative_to(folder)): json.loads(path.read_text()) if path.suffix == ".ipynb" else path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not IGNORED_NAMES & set(path.relative_to(folder).parts)
    }


def release_into(tmp: Path, solutions: Path, course: Path) -> dict[str, object]:
    root = tmp / "root"
    copy_config(root)
    release(root, course, solutions)
    return tree(course)


def test_course_matches_a_fresh_release(tmp_path):
    expected = release_into(tmp_path, SOLUTIONS, tmp_path / "course")
    committed = tree(COURSE)
    stale = sorted(set(committed) - set(expected))
    absent = sorted(set(expected) - set(committed))
    changed = sorted(name for name in set(expected) & set(committed) if expected[name] != committed[name])
    assert not (stale or absent or changed), (
        f"course/ is not what `make release` writes: stale {stale}, absent {absent}, changed {changed}. "
        "Run `make release` and commit course/ with the solutions change."
    )


def test_release_is_deterministic_and_removes_stale_files(tmp_path, tiny_solutions):
    first = release_into(tmp_path / "first", tiny_solutions, tmp_path / "first" / "course")
    course = tmp_path / "second" / "course"
    (course / "tiny").mkdir(parents=True)
    (course / "tiny" / "old_exercises.ipynb").write_text("{}")
    (course / "retired_week").mkdir()
    assert release_into(tmp_path / "second", tiny_solutions, course) == first
    assert sorted(first) == ["tiny/exercises.ipynb", "tiny/lecture.ipynb"]


def test_build_gives_deterministic_ids_and_python3_kernel(tiny_solutions):
    notebook = build_notebook(tiny_solutions / "tiny" / "exercises.py")
    assert [cell.id for cell in notebook.cells] == ["cell-0", "square", "square_tests", "cube", "cube_tests"]
    assert notebook.metadata == {
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
        "language_info": {"name": "python"},
    }
    assert all(set(cell.metadata) <= {"nbgrader"} for cell in notebook.cells)
    assert build_notebook(tiny_solutions / "tiny" / "exercises.py") == notebook


def test_build_rejects_a_repeated_grade_id(tmp_path, tiny_solutions):
    source = tmp_path / "twice.py"
    text = (tiny_solutions / "tiny" / "exercises.py").read_text()
    source.write_text(text.replace('"grade_id": "cube"', '"grade_id": "square"'))
    with pytest.raises(PipelineError, match="two cells get the id 'square'"):
        build_notebook(source)


def test_release_of_an_empty_week_says_what_is_missing(tmp_path, tiny_solutions):
    solutions = tmp_path / "solutions"
    shutil.copytree(tiny_solutions, solutions)
    (solutions / "empty").mkdir()
    with pytest.raises(PipelineError, match="empty holds no notebook sources"):
        release_into(tmp_path, solutions, tmp_path / "course")
