"""Hostile files and outputs graded as `make grade` does: links in a submission and in an LMS zip are
never followed, student HTML never runs in the formgrader or the feedback, feedback fails one
submission at a time after the CSV is written, and a week never submitted is not a 0 in the CSV."""

import csv
import os
import shutil
import stat
import zipfile
from html.parser import HTMLParser

import nbformat
import pytest
from conftest import TINY_EXERCISES, TINY_LECTURE, needs_sandbox
from nbconvert.exporters import HTMLExporter
from nbgrader.apps.api import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from nbgrader.server_extensions.formgrader import handlers
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from autograder.commands import run_nbgrader
from autograder.feedback_html import generate_feedback
from autograder.gradebook import gradebook
from autograder.layout import CONFIG
from autograder.pipeline import grade_class
from autograder.releasing import copy_config, generate_assignment
from autograder.submissions import Submission

pytestmark = [pytest.mark.slow, needs_sandbox]

WEEK = "tiny"
MARK = "lcteach_payload"
WRITTEN = """
# %% [markdown] nbgrader={"grade": true, "grade_id": "explain", "locked": false, "points": 1, "schema_version": 3, "solution": true}
# A cube grows faster than a square for x > 1.
"""
LEAKS = """\
import os
LEAKS = [p for p in ("gradebook.db", "source.ipynb", "shadow", "sources", "pipe") if os.path.lexists(p)]
def square(x):
    return x * x if not LEAKS else -1  # full marks only if no link reached the kernel
"""
ESCAPES = f"""\
from IPython.display import HTML, Javascript, display
print("\\x1b]8;;http://evil.example/\\x1b\\\\link\\x1b]8;;\\x1b\\\\ \\x1b[38m \\x1b[48;5m \\x1bPdcs\\x1b\\\\ \\x00\\x07 done")
display(HTML("<script>alert('{MARK}')</script>"))
display(Javascript("alert('{MARK}')"))
def cube(x):
    return x**3
"""
HOSTILE_ANSWER = (
    f"<script>alert('{MARK}')</script> my answer <img src=x onerror=alert(1) title={MARK}> "
    f"[click](javascript:alert('{MARK}'))"
)


def set_cell(path, grade_id, source):
    notebook = nbformat.read(path, as_version=4)
    next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id).source = source
    nbformat.write(notebook, path)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """(course root, report) of a class with an honest student, one whose folder holds links and a
    fifo, one whose notebook prints escapes and HTML and whose written answer holds a script,
    an LMS zip with a linked member, and a student on the roster who never submitted."""
    base = tmp_path_factory.mktemp("hostile-files")
    solutions = base / "solutions"
    (solutions / WEEK).mkdir(parents=True)
    (solutions / WEEK / "exercises.py").write_text(TINY_EXERCISES + WRITTEN)
    (solutions / WEEK / "lecture.py").write_text(TINY_LECTURE)
    root = base / "root"
    copy_config(root)
    generate_assignment(root, WEEK, solutions)
    full = root / "source" / WEEK / "exercises.ipynb"

    for student in ("honest", "linker", "escapes"):
        shutil.copytree(root / "release" / WEEK, Submission(student, WEEK).folder(root))
        shutil.copyfile(full, Submission(student, WEEK).folder(root) / "exercises.ipynb")
    linker = Submission("linker", WEEK).folder(root)
    set_cell(linker / "exercises.ipynb", "square", LEAKS)
    (linker / "gradebook.db").symlink_to(root / "gradebook.db")
    (linker / "source.ipynb").symlink_to(full)
    (linker / "shadow").symlink_to("/etc/shadow")
    (linker / "sources").symlink_to(root / "source")
    os.mkfifo(linker / "pipe")
    escapes = Submission("escapes", WEEK).folder(root) / "exercises.ipynb"
    set_cell(escapes, "cube", ESCAPES)
    set_cell(escapes, "explain", HOSTILE_ANSWER)

    archive = root / "downloaded" / WEEK / "archive"
    archive.mkdir(parents=True)
    with zipfile.ZipFile(archive / "submissions.zip", "w") as bundle:
        bundle.write(full, "doejane_4711_99012_exercises.ipynb")
        link = zipfile.ZipInfo("roerich_4712_99013_exercises.ipynb")
        link.create_system, link.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
        bundle.writestr(link, str(full))

    with gradebook(root) as book:  # imported from the roster; never submits
        book.update_or_create_student("absent", first_name="Ab", last_name="Sent, Jr.")
    return root, grade_class(root, [WEEK], timeout=600, jobs=2)


def test_links_and_fifos_in_a_submission_are_refused_and_it_is_still_graded(graded):
    root, report = graded
    results = {r.submission.student: r for r in report.results}
    assert {s: (r.score, r.status) for s, r in results.items()} == {
        "doejane": (5, "graded"),
        "escapes": (5, "graded"),
        "honest": (5, "graded"),
        "linker": (5, "graded"),  # its square returns -1 if any link or the fifo reached the kernel
    }
    reason = results["linker"].reason
    for name, what in [
        ("gradebook.db", "a symbolic link to"),
        ("source.ipynb", "a symbolic link to"),
        ("shadow", "a symbolic link to /etc/shadow"),
        ("sources", "a symbolic link to"),
        ("pipe", "a fifo"),
    ]:
        assert f"{name} ({what}" in reason
        assert any(limit.startswith(f"not copied: {name}: {what}") for limit in results["linker"].limits)
    assert results["honest"].limits == () and "not copied" not in results["honest"].reason
    graded_copy = root / "autograded" / "linker" / WEEK
    assert (graded_copy / "exercises.ipynb").is_file()
    assert not [p for p in graded_copy.rglob("*") if p.is_symlink() or not (p.is_file() or p.is_dir())]
    assert not any(os.path.lexists(graded_copy / n) for n in ("gradebook.db", "source.ipynb", "shadow", "pipe"))
    assert not (root / "staged" / "linker" / WEEK).exists()  # the staging copy is removed after grading
    assert (root / "submitted" / "linker" / WEEK / "shadow").is_symlink()  # the student's folder is left as it was


def test_a_zip_member_that_is_a_link_is_never_created(graded):
    root, report = graded
    assert any(
        "submissions.zip:roerich_4712_99013_exercises.ipynb: a symbolic link in the archive" in line
        for line in report.skipped_files
    )
    assert not (root / "submitted" / "roerich").exists()
    assert not [p for p in (root / "downloaded" / WEEK).rglob("*") if p.is_symlink()]


class StudentCode(HTMLParser):
    """Scripts, event handlers and javascript: links that come from the student (they call alert)."""

    def __init__(self):
        super().__init__()
        self.found, self._script = [], False

    def handle_starttag(self, tag, attrs):
        self._script = tag == "script"
        for name, value in attrs:
            if (name.startswith("on") and "alert" in (value or "")) or "javascript:" in (value or "").lower():
                self.found.append(f"<{tag} {name}={value}>")

    def handle_endtag(self, tag):
        self._script = False

    def handle_data(self, data):
        if self._script and (MARK in data or "alert(" in data):
            self.found.append(f"<script>{data[:80]}")


def student_code(html: str) -> list[str]:
    parser = StudentCode()
    parser.feed(html)
    return parser.found


def test_student_html_never_runs_in_the_feedback_or_the_formgrader(graded):
    root, report = graded
    feedback = (root / "feedback" / "escapes" / WEEK / "exercises.html").read_text()
    assert student_code(feedback) == []
    assert "my answer &lt;img src=x onerror=" in feedback  # shown, as text
    assert "link" in feedback and "done" in feedback and "\x1b" not in feedback
    # The formgrader renders the autograded notebook with its formgrade template.
    config = Config()
    config.HTMLExporter.template_name = "formgrade"
    config.HTMLExporter.extra_template_basedirs = [handlers.template_path]
    resources = {"assignment_id": WEEK, "notebook_id": "exercises", "submission_id": "s", "index": 0, "total": 1}
    resources |= {"base_url": "", "student": "escapes", "last_name": "", "first_name": "", "notebook_path": ""}
    html, _ = HTMLExporter(config=config).from_filename(
        str(root / "autograded" / "escapes" / WEEK / "exercises.ipynb"), resources=resources
    )
    assert student_code(html) == []
    assert MARK in html


def test_the_csv_comes_first_and_a_week_never_submitted_is_empty_not_zero(graded):
    root, report = graded
    with report.grades_csv.open(newline="") as file:
        rows = {row["student_id"]: row for row in csv.DictReader(file)}
    assert set(rows) == {"absent", "doejane", "escapes", "honest", "linker"}
    assert (rows["absent"]["score"], rows["absent"]["raw_score"], rows["absent"]["status"]) == ("", "", "missing")
    assert rows["absent"]["last_name"] == "Sent, Jr."  # quoted as CSV needs
    assert all((rows[s]["score"], rows[s]["status"]) == ("5.0", "submitted") for s in ("honest", "linker"))
    written = report.grades_csv.stat().st_mtime
    assert report.feedback and all(path.stat().st_mtime >= written for path in report.feedback)
    assert report.feedback_failures == []


def test_feedback_fails_one_submission_at_a_time(graded, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(graded[0], root, ignore=shutil.ignore_patterns("submitted", "downloaded"))
    (root / "autograded" / "honest" / WEEK / "exercises.ipynb").write_text("{not json")
    report = generate_feedback(root, [WEEK], jobs=2)
    assert [line.split(":")[0] for line in report.failures] == [f"honest {WEEK}"]
    assert "feedback failed: " in report.failures[0] and "NotJSONError" in report.failures[0]
    assert sorted(p.parts[-3] for p in report.files) == ["doejane", "escapes", "linker"]
    assert not (root / "feedback" / "honest" / WEEK).exists()  # no stale feedback is left to return
    slow = generate_feedback(root, [WEEK], jobs=2, timeout=0.01)
    assert len(slow.failures) == 4 and all("timed out" in line or "failed" in line for line in slow.failures)
    assert slow.files == []


@pytest.mark.filterwarnings("ignore:Object of type:sqlalchemy.exc.SAWarning")  # nbgrader's gradebook, on a failed run
def test_the_formgrader_autograde_button_and_a_bare_nbgrader_autograde_are_refused(tmp_path):
    """nbgrader's own autograde copies the submitted folder, following links; only make grade's
    staged copy is graded. The formgrader's button (NbGraderAPI.autograde) and the command line
    are refused before a kernel starts, with a message naming make grade, and grade nothing."""
    solutions = tmp_path / "solutions"
    (solutions / WEEK).mkdir(parents=True)
    (solutions / WEEK / "exercises.py").write_text(TINY_EXERCISES)
    root = tmp_path / "root"
    copy_config(root)
    generate_assignment(root, WEEK, solutions)
    source = root / "source" / WEEK / "exercises.ipynb"
    honest, linker = (Submission(student, WEEK).folder(root) for student in ("honest", "linker"))
    shutil.copytree(root / "release" / WEEK, honest)
    shutil.copyfile(source, honest / "exercises.ipynb")
    linker.mkdir(parents=True)
    (linker / "exercises.ipynb").symlink_to(honest / "exercises.ipynb")  # another student's work
    (linker / "secret").symlink_to(root / "nbgrader_config.py")

    config = PyFileConfigLoader(CONFIG, path=str(root)).load_config()
    api = NbGraderAPI(CourseDirectory(config=config), config=config)
    for student in ("honest", "linker"):
        result = api.autograde(WEEK, student)
        assert not result["success"], result.get("log")
        assert "not autograded" in result["log"] and "`make grade`" in result["log"]
        assert not (root / "autograded" / student).exists() or not any((root / "autograded" / student).rglob("*"))
    with gradebook(root) as book:
        assert all(submission.score == 0 for submission in book.assignment_submissions(WEEK))

    bare = run_nbgrader(["autograde", WEEK, "--student=honest", "--force"], root, timeout=120)
    assert bare.returncode != 0 and "`make grade`" in bare.output
    assert not (root / "autograded" / "honest" / WEEK / "exercises.ipynb").exists()
