"""Shared code of the course scripts: build and release notebooks, grade submissions.

A *course root* is an nbgrader course directory: ``nbgrader_config.py``, ``source/<week>/``
(built here from ``solutions/``), ``release/<week>/``, ``submitted/<student>/<week>/``,
``autograded/``, ``feedback/`` and ``gradebook.db``. The repository's course root is
``autograder/``; the demo and the tests build their own in a temporary folder. Every nbgrader
command runs as a subprocess inside the course root, so one failure stays in that command.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
import nbformat
import psutil
from nbgrader.api import Gradebook, MissingEntry
from sqlalchemy.exc import SAWarning

from autograder.cgroups import CGROUP_ENV, SubmissionCgroup
from autograder.copying import STAGED, refused_members, show, stage_submission, unstage_submission
from autograder.preprocessors import METADATA_KEY
from autograder.sandbox import SCRATCH_ENV

REPO = Path(__file__).resolve().parent.parent
COURSE_ROOT = REPO / "autograder"
SOLUTIONS = REPO / "solutions"
COURSE = REPO / "course"
CONFIG = "nbgrader_config.py"

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
# Cell metadata that jupytext keeps only to round-trip the text file; not part of the notebook.
JUPYTEXT_CELL_KEYS = ("cell_marker", "lines_to_next_cell", "lines_to_end_of_cell_marker")
# Files that tools leave next to notebooks; never part of a release.
IGNORED_NAMES = {".ipynb_checkpoints", "__pycache__"}
DEFAULT_TIMEOUT = 300  # seconds of wall clock per submission
FEEDBACK_TIMEOUT = 120  # seconds of wall clock for one submission's feedback HTML


class PipelineError(Exception):
    """A step of the course pipeline failed; the message says which and what to do."""


# ---------------------------------------------------------------- building and releasing


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


# ---------------------------------------------------------------- running nbgrader


@dataclass(frozen=True)
class CommandResult:
    returncode: int | None  # None: killed at the timeout
    output: str
    seconds: float


def run_command(
    command: list[str], cwd: Path, timeout: float | None = None, env: dict[str, str] | None = None
) -> CommandResult:
    """Run ``command`` (with ``env`` added to this environment); at the timeout kill it and every
    process it started (kernels too)."""
    # nbgrader runs `alembic` from PATH when it creates a gradebook: put this interpreter's scripts first;
    # nbgrader_config.py names the kernel manager in autograder.sandbox: put the repository on the path.
    env = dict(
        os.environ,
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        **(env or {}),
    )
    start = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
        returncode = process.returncode
    except subprocess.TimeoutExpired:
        _kill_tree(process.pid)
        output, _ = process.communicate()
        returncode = None
    return CommandResult(returncode, output, time.monotonic() - start)


def _kill_tree(pid: int) -> None:
    # Kernels start in sessions of their own, so killing the process group is not enough.
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    with _ignore_vanished():
        os.killpg(pid, signal.SIGKILL)
    for child in children:
        with _ignore_vanished():
            child.kill()


@contextmanager
def _ignore_vanished() -> Iterator[None]:
    try:
        yield
    except (ProcessLookupError, psutil.NoSuchProcess):
        pass


def nbgrader(root: Path, *args: str) -> None:
    """Run ``nbgrader <args>`` in the course root; raise PipelineError with its errors if it fails."""
    result = run_command([sys.executable, "-m", "nbgrader", *args], root)
    if result.returncode != 0:
        raise PipelineError(f"`nbgrader {' '.join(args)}` failed in {root}:\n{_error_lines(result.output)}")


def _error_lines(output: str) -> str:
    """nbgrader's ERROR/CRITICAL log lines and the traceback lines under them; all output if none."""
    lines, keep = [], False
    for line in output.splitlines():
        if line.startswith("["):
            keep = "| ERROR]" in line or "| CRITICAL]" in line
        if keep:
            lines.append(line)
    return "\n".join(lines) or output.strip()


_EXCEPTION_LINE = re.compile(r"^\s*[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")


def _failure_summary(output: str) -> str:
    """One line saying why nbgrader failed: the last exception of its traceback, else its first error."""
    errors = [line.strip() for line in _error_lines(output).splitlines() if line.strip()]
    exceptions = [line for line in errors if _EXCEPTION_LINE.match(line)]
    return (exceptions[-1:] or errors[:1] or ["no error message"])[0][:200]


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


# ---------------------------------------------------------------- grading


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
    failed_checks: tuple[str, ...] = ()  # "<part>: <check>" for every failed check (autograder/preprocessors.py)
    limits: tuple[str, ...] = ()  # sandbox limits hit, timeouts, cells not run
    findings: tuple[str, ...] = ()  # what tampering.py found in the student's code


def collect_downloads(root: Path, week: str) -> bool:
    """Run ``nbgrader zip_collect`` when LMS downloads wait in ``downloaded/<week>/archive/``."""
    archive = root / "downloaded" / week / "archive"
    if not archive.is_dir() or not any(archive.iterdir()):
        return False
    nbgrader(root, "zip_collect", week, "--force")
    return True


def unmatched_downloads(root: Path, week: str) -> list[str]:
    """LMS download files (in the archive folder or its zips) that zip_collect will skip, and why."""
    import zipfile

    from nbgrader.plugins.zipcollect import FileNameCollectorPlugin

    archive = root / "downloaded" / week / "archive"
    if not archive.is_dir():
        return []
    pattern = re.compile(
        _config_value(root, "FileNameCollectorPlugin.named_regexp")
        or FileNameCollectorPlugin.named_regexp.default_value
    )
    released = {p.stem for p in (root / "release" / week).glob("*.ipynb")}
    names, skipped = [], []
    for path in sorted(archive.rglob("*")):
        if path.is_symlink():
            skipped.append(f"{week}: {path.name}: a symbolic link, not extracted")
        elif zipfile.is_zipfile(path):
            # copying.SafeExtractor unpacks regular files only: links in a zip are never created
            refused = refused_members(path)
            skipped += [f"{week}: {path.name}:{line}" for line in refused]
            refused_names = {line.rsplit(": ", 1)[0] for line in refused}
            names += [
                f"{path.name}:{n}"
                for n in zipfile.ZipFile(path).namelist()
                if not n.endswith("/") and show(n) not in refused_names
            ]
        elif path.is_file():
            names.append(path.name)
    for name in names:
        match = pattern.match("/" + name.replace(":", "/"))
        if match is None:
            skipped.append(f"{week}: {name}: not an LMS submission file name (<student>_<id>_<id>_<notebook>.ipynb)")
        elif match.group("file_id") not in released:
            skipped.append(
                f"{week}: {name}: {match.group('file_id')}.ipynb is not a notebook of {week} "
                f"({', '.join(sorted(released))})"
            )
    return skipped


def _config_value(root: Path, name: str) -> str | None:
    """A string setting of the course root's nbgrader_config.py, e.g. ``FileNameCollectorPlugin.named_regexp``."""
    from traitlets.config import PyFileConfigLoader

    config = PyFileConfigLoader(CONFIG, path=str(root)).load_config()
    section, key = name.split(".")
    value = config.get(section, {}).get(key)
    return value if isinstance(value, str) else None


def find_submissions(root: Path, weeks: list[str]) -> list[Submission]:
    """Every ``submitted/<student>/<week>/`` folder of the given weeks, by week then student."""
    submitted = root / "submitted"
    students = sorted(p.name for p in submitted.iterdir() if p.is_dir()) if submitted.is_dir() else []
    return [Submission(s, w) for w in weeks for s in students if (submitted / s / w).is_dir()]


def grade_submission(root: Path, submission: Submission, timeout: float = DEFAULT_TIMEOUT) -> Result:
    """Autograde one submission in the course root, within ``timeout`` seconds of wall clock.

    The submission is first copied to ``staged/<student>/<week>/`` with regular files and
    folders only (``autograder/copying.py``): links, fifos, devices and what passes the copy's
    bounds are refused, listed in the result's limits and summed up in its reason, and nbgrader
    reads the copy alone. Only the week's graded notebooks are autograded (one ``nbgrader
    autograde`` subprocess each), so lectures in the submission are never executed. A graded
    notebook that is missing, is not valid notebook JSON, crashes nbgrader or runs out of time
    scores 0 in the gradebook, and the result says why; its other notebooks are graded as usual.
    """
    start = time.monotonic()
    deadline = start + timeout
    problems = []
    copy = stage_submission(root, submission.student, submission.week)
    refused = dict(copy.refused)
    cgroup = SubmissionCgroup(f"{submission.student}-{submission.week}-{os.getpid()}")
    scratch = tempfile.mkdtemp(prefix="lcteach-sub-")  # the kernels' private folders: removed below
    try:
        for name in graded_notebooks(root, submission.week):
            problem = _autograde_notebook(root, submission, name, deadline - time.monotonic(), refused, cgroup, scratch)
            if problem:
                _zero_notebook(root, submission, name)
                problems.append(f"{name}.ipynb: {problem}")
    finally:
        cgroup.remove()
        shutil.rmtree(scratch, ignore_errors=True)
        unstage_submission(root, submission.student, submission.week)
    score, max_score, lost = _scores(root, submission)
    failed, limits, findings = _judge_summary(root, submission)
    reason = "; ".join(
        [*(problems or ([", ".join(lost)] if lost else [])), *([copy.summary()] if copy.refused else [])]
    )
    return Result(
        submission,
        score,
        max_score,
        "failed" if problems else "graded",
        reason,
        time.monotonic() - start,
        failed,
        (*(f"not copied: {line}" for line in copy.lines()), *limits),
        findings,
    )


def _judge_summary(root: Path, submission: Submission) -> tuple[tuple[str, ...], ...]:
    """Failed checks, limits hit and findings that the judge wrote into the autograded notebooks."""
    failed, limits, findings = [], [], []
    for path in sorted((root / "autograded" / submission.student / submission.week).glob("*.ipynb")):
        summary = nbformat.read(path, as_version=4).metadata.get(METADATA_KEY, {})
        failed += [f"{part['part']}: {check}" for part in summary.get("parts", []) for check in part["failed"]]
        limits += summary.get("limits", [])
        findings += summary.get("findings", [])
    return tuple(failed), tuple(dict.fromkeys(limits)), tuple(findings)


def _autograde_notebook(
    root: Path,
    submission: Submission,
    name: str,
    seconds_left: float,
    refused: dict[str, str],
    cgroup: SubmissionCgroup,
    scratch: str,
) -> str | None:
    """Autograde one notebook of a staged submission; return why it failed, or None.

    ``refused`` maps the paths that the staging copy refused to why (see copying.py); the
    sandboxed processes start in the submission's ``cgroup`` (see cgroups.py)."""
    path = root / STAGED / submission.student / submission.week / f"{name}.ipynb"
    if not path.is_file():
        why = refused.get(f"{name}.ipynb") or refused.get(".")
        return f"not graded: {why}" if why else "missing from the submission"
    try:
        nbformat.read(path, as_version=4)
    except Exception as error:  # noqa: BLE001 - any failure to read means a malformed notebook
        cause = error.__cause__ or error  # nbformat's NotJSONError wraps the JSON parser's message
        return f"not a valid notebook ({type(cause).__name__}: {str(cause).splitlines()[0][:120]})"
    if seconds_left <= 0:
        return "not run: the submission's time was used up"
    command = [
        sys.executable,
        "-m",
        "nbgrader",
        "autograde",
        submission.week,
        f"--student={submission.student}",
        f"--notebook={name}",
        "--force",
        # nbgrader reads the staged copy, never the student's folder (copying.py)
        f"--CourseDirectory.submitted_directory={STAGED}",
    ]
    env = {SCRATCH_ENV: scratch, **({CGROUP_ENV: os.pathsep.join(map(str, cgroup.paths))} if cgroup.paths else {})}
    result = run_command(command, root, timeout=seconds_left, env=env)
    if result.returncode is None:
        return f"timed out after {result.seconds:.0f} s"
    if result.returncode != 0:
        return f"autograde failed: {_failure_summary(result.output)}"
    return None


def _zero_notebook(root: Path, submission: Submission, name: str) -> None:
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


def _scores(root: Path, submission: Submission) -> tuple[float, float, list[str]]:
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


@dataclass(frozen=True)
class FeedbackReport:
    files: list[Path]  # feedback HTML files written
    failures: list[str]  # "<student> <week>: <why>" for each submission whose feedback failed


def autograded_submissions(root: Path, weeks: list[str]) -> list[Submission]:
    """Submissions of the weeks with an autograded notebook, by week then student."""
    return [
        Submission(folder.parent.name, week)
        for week in weeks
        for folder in sorted((root / "autograded").glob(f"*/{week}"))
        if any(folder.glob("*.ipynb"))
    ]


def generate_feedback(
    root: Path,
    weeks: list[str],
    jobs: int = 1,
    timeout: float = FEEDBACK_TIMEOUT,
    submissions: list[Submission] | None = None,
) -> FeedbackReport:
    """Write feedback HTML for each autograded submission of the weeks (or of ``submissions``).

    Each submission's ``nbgrader generate_feedback <week> --student=<id>`` runs in a process of
    its own, ``jobs`` at once, each killed after ``timeout`` seconds (``feedback_worker.py``
    forks them from one process that imported nbgrader once): a notebook that makes nbconvert
    fail or hang costs its own feedback alone, and the report lists it. A submission whose
    feedback failed keeps no feedback file, so that nothing stale or partial is returned.
    """
    chosen = autograded_submissions(root, weeks) if submissions is None else submissions
    chosen = [s for s in chosen if any((root / "autograded" / s.student / s.week).glob("*.ipynb"))]
    if not chosen:
        return FeedbackReport([], [])
    for submission in chosen:
        shutil.rmtree(root / "feedback" / submission.student / submission.week, ignore_errors=True)
    jobs = max(1, jobs)
    pairs = [part for s in chosen for part in (s.week, s.student)]
    command = [sys.executable, "-m", "autograder.feedback_worker", f"--jobs={jobs}", f"--timeout={timeout}", "--"]
    # The worker's own bound: every submission at its timeout, plus nbgrader's start.
    result = run_command([*command, *pairs], root, timeout=timeout * (len(chosen) / jobs + 1) + 60)
    outcomes = {}
    for line in result.output.splitlines():
        if line.startswith("{"):
            try:
                outcome = json.loads(line)
                outcomes[Submission(outcome["student"], outcome["week"])] = outcome
            except (ValueError, KeyError, TypeError):
                continue
    failures = []
    for submission in chosen:
        outcome = outcomes.get(submission)
        if outcome is None:
            why = f"feedback not made: the feedback worker stopped ({_failure_summary(result.output)})"
        elif outcome["status"] == "timeout":
            why = f"feedback timed out after {outcome['seconds']:.0f} s"
        elif outcome["status"] != "ok":
            why = f"feedback failed: {_failure_summary(outcome.get('log', ''))}"
        else:
            continue
        shutil.rmtree(root / "feedback" / submission.student / submission.week, ignore_errors=True)
        failures.append(f"{submission.student} {submission.week}: {why}")
    files = sorted(p for s in chosen for p in (root / "feedback" / s.student / s.week).glob("*.html"))
    return FeedbackReport(files, failures)


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


def grade_class(root: Path, weeks: list[str], timeout: float = DEFAULT_TIMEOUT, jobs: int = 1) -> ClassReport:
    """Collect LMS downloads, autograde every submission of the weeks, write the CSV, then feedback.

    ``jobs`` submissions are graded at once, each in its own nbgrader process (the gradebook
    is SQLite, which serialises their short writes). Prints a progress line per submission as
    it finishes. The grades and the CSV are written before any feedback, and each submission's
    feedback is made on its own (generate_feedback): a failing submission costs only itself.
    """
    if jobs < 1:
        raise PipelineError(f"JOBS must be at least 1, got {jobs}")
    if shutil.which("bwrap") is None:
        raise PipelineError(
            "grading runs each submission in a bubblewrap sandbox, and bwrap is not installed: "
            "`sudo apt-get install bubblewrap` (see the sandbox section of README.md)"
        )
    start = time.monotonic()
    gradable, skipped = [], []
    for week in weeks:
        if not graded_notebooks(root, week):
            print(f"{week} has no notebook with graded cells: nothing to grade")
            continue
        gradable.append(week)
        skipped += unmatched_downloads(root, week)
        if collect_downloads(root, week):
            print(f"collected LMS downloads of {week} into {root / 'submitted'}")
    submissions = find_submissions(root, gradable)
    if not submissions:
        raise PipelineError(
            f"no submissions of {', '.join(weeks)}: put them in {root}/submitted/<student>/<week>/ "
            f"(nbgrader collect) or LMS zips in {root}/downloaded/<week>/archive/"
        )
    results = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        running = [pool.submit(grade_submission, root, submission, timeout) for submission in submissions]
        for number, done in enumerate(as_completed(running), 1):
            result = done.result()
            print(
                f"[{number}/{len(submissions)}] {result.submission.student} {result.submission.week} "
                f"{result.score:g}/{result.max_score:g} {result.status} ({result.seconds:.1f} s)",
                flush=True,
            )
            results.append(result)
    results.sort(key=lambda r: submissions.index(r.submission))
    grades_csv = export_grades(root)
    problems = check_gradebook(root, results)
    feedback = generate_feedback(root, gradable, jobs, submissions=[r.submission for r in results])
    return ClassReport(
        results,
        feedback.files,
        grades_csv,
        time.monotonic() - start,
        problems,
        skipped,
        feedback.failures,
        SubmissionCgroup.probe(),
    )


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


def argument_parser(script: str, doc: str) -> argparse.ArgumentParser:
    """The command line parser of ``python -m autograder.<script>``, described by its docstring."""
    return argparse.ArgumentParser(
        prog=f"python -m autograder.{script}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_week_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--week", action="append", help="a released week (repeatable; default: every released week)")


def add_jobs_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="submissions graded at once (default 1)")


def add_timeout_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"wall clock allowed per submission (default {DEFAULT_TIMEOUT})",
    )


def run_script(main: Callable[[], None]) -> None:
    """Run a course script's ``main``; a PipelineError ends it with its message and status 1."""
    try:
        main()
    except PipelineError as error:
        sys.exit(f"error: {error}")


# ---------------------------------------------------------------- the demo class

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
