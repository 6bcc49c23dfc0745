"""The grading pipeline end to end: a sample class and failing submissions, graded as `make grade` does."""

import csv
import shutil
import zipfile

import nbformat
import psutil
import pytest
from conftest import needs_sandbox

from autograder.demo_class import build_demo_class
from autograder.gradebook import graded_notebooks
from autograder.layout import SOLUTIONS
from autograder.pipeline import grade_class, grade_submission
from autograder.releasing import build_notebook, copy_config, generate_assignment, weeks
from autograder.report import format_report
from autograder.submissions import Submission

pytestmark = [pytest.mark.slow, needs_sandbox]


def graded_weeks(solutions):
    """The weeks with nbgrader grade cells in their sources: those a demo class can be built for."""
    return [
        week
        for week in weeks(solutions)
        if any(
            cell.metadata.get("nbgrader", {}).get("grade")
            for path in (solutions / week).glob("*.py")
            for cell in build_notebook(path).cells
        )
    ]


@pytest.fixture(scope="module", params=graded_weeks(SOLUTIONS) or ["tiny"])
def demo(request, tmp_path_factory, tiny_solutions):
    """(course root, week, results by student, report) of the demo class of each week with
    graded cells (of the tiny week while there is none), graded."""
    week = request.param
    root = tmp_path_factory.mktemp(f"demo-{week}")
    build_demo_class(root, week, tiny_solutions if week == "tiny" else SOLUTIONS)
    report = grade_class(root, [week], timeout=600, jobs=2)  # two workers share the gradebook
    print(format_report(report))
    return root, week, {r.submission.student: r for r in report.results}, report


def test_demo_class_scores_in_the_expected_order(demo):
    root, week, results, _ = demo
    full, partial, untouched = results["full"], results["partial"], results["untouched"]
    # The full solution earns every point that needs no human, and nothing else loses points.
    assert all("needs manual grading" in lost for lost in full.reason.split(", ") if full.reason)
    assert full.score > partial.score > untouched.score == 0
    assert [full.status, partial.status, untouched.status] == ["graded"] * 3
    for student, why in [("missing", "missing from the submission"), ("broken", "not a valid notebook")]:
        assert (results[student].score, results[student].status) == (0, "failed")
        assert why in results[student].reason


def test_demo_class_gets_feedback_and_csv_and_only_graded_notebooks_run(demo):
    root, week, results, report = demo
    graded = graded_notebooks(root, week)
    for student in ("full", "partial", "untouched"):
        assert sorted(p.stem for p in (root / "autograded" / student / week).glob("*.ipynb")) == graded
        assert all((root / "feedback" / student / week / f"{name}.html").is_file() for name in graded)
    for path in (root / "feedback").rglob("*.html"):  # hidden test code and its seed stay hidden
        assert "HIDDEN TESTS" not in path.read_text()
    with report.grades_csv.open() as file:
        scores = {row["student_id"]: float(row["score"]) for row in csv.DictReader(file)}
    assert scores == {student: result.score for student, result in results.items()}


def test_lms_download_crash_and_hang_cost_only_their_submission(tmp_path, tiny_solutions):
    copy_config(tmp_path)
    generate_assignment(tmp_path, "tiny", tiny_solutions)
    release = tmp_path / "release" / "tiny"
    # A Canvas download: a late re-upload of a full solution, and a zip holding an untouched release.
    # The lecture in it writes a file when it runs, which grading must not do.
    archive = tmp_path / "downloaded" / "tiny" / "archive"
    archive.mkdir(parents=True)
    full = tmp_path / "source" / "tiny" / "exercises.ipynb"
    shutil.copyfile(full, archive / "doejane_LATE_4711_99012_exercises-1.ipynb")
    with zipfile.ZipFile(archive / "submissions.zip", "w") as bundle:
        bundle.write(release / "exercises.ipynb", "roerich_4712_99013_exercises.ipynb")
        bundle.write(release / "lecture.ipynb", "roerich_4712_99014_lecture.ipynb")
    crash = Submission("crash", "tiny")
    write_submission(tmp_path, crash, "import os\nos._exit(1)")

    report = grade_class(tmp_path, ["tiny"], timeout=600)
    results = {r.submission.student: r for r in report.results}
    assert {s: (r.score, r.status) for s, r in results.items()} == {
        "crash": (0, "graded"),
        "doejane": (5, "graded"),
        "roerich": (0, "graded"),
    }
    assert any("the kernel died" in limit for limit in results["crash"].limits)
    assert (tmp_path / "submitted" / "roerich" / "tiny" / "lecture.ipynb").is_file()
    assert [p.name for p in (tmp_path / "autograded" / "roerich" / "tiny").iterdir()] == ["exercises.ipynb"]

    hang = Submission("hang", "tiny")
    write_submission(tmp_path, hang, "while True:\n    pass")
    result = grade_submission(tmp_path, hang, timeout=20)
    assert (result.score, result.status) == (0, "failed") and "timed out" in result.reason
    leftovers = [p for p in psutil.process_iter(["cwd"]) if str(tmp_path) in (p.info["cwd"] or "")]
    assert not leftovers, f"processes of the timed-out submission survived: {leftovers}"


def write_submission(root, submission, first_solution):
    """Submit the release with ``first_solution`` as the code of its first solution cell."""
    folder = submission.folder(root)
    shutil.copytree(root / "release" / submission.week, folder)
    notebook = nbformat.read(folder / "exercises.ipynb", as_version=4)
    next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("solution")).source = first_solution
    nbformat.write(notebook, folder / "exercises.ipynb")
