"""Grading the submissions of a class: collect LMS downloads, autograde each submission, report.

Each submission is staged (copying.py), its graded notebooks autograded one ``nbgrader
autograde`` subprocess each (commands.py) in the sandbox (sandbox.py, cgroups.py), where the
judge (judging.py) decides; its scores come from the gradebook (gradebook.py), and the judge's
summary of each notebook (``judging.JudgeSummary``) goes into its Result. ``grade_class`` grades
a class in parallel workers, then writes the CSV, checks the gradebook, makes the feedback
(feedback_html.py) and returns the report (report.py).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import nbformat

from autograder.cgroups import CGROUP_ENV, SubmissionCgroup
from autograder.commands import failure_summary, nbgrader, run_nbgrader
from autograder.copying import STAGED, refused_members, show, stage_submission, staged_folder, unstage_submission
from autograder.feedback_html import generate_feedback
from autograder.gradebook import check_gradebook, export_grades, graded_notebooks, scores, zero_notebook
from autograder.judging import METADATA_KEY, JudgeSummary
from autograder.layout import CONFIG, PipelineError
from autograder.report import ClassReport
from autograder.sandbox import SCRATCH_ENV
from autograder.submissions import Result, Submission

DEFAULT_TIMEOUT = 300  # seconds of wall clock per submission


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
                zero_notebook(root, submission, name)
                problems.append(f"{name}.ipynb: {problem}")
    finally:
        killed = cgroup.oom_kills()
        cgroup.remove()
        shutil.rmtree(scratch, ignore_errors=True)
        unstage_submission(root, submission.student, submission.week)
    score, max_score, lost = scores(root, submission)
    judged = _judge_summary(root, submission)
    limits = judged.limits
    if killed:
        limits += (
            f"memory: the submission's processes together reached {cgroup.limits.memory_bytes // 2**20} MiB; "
            f"{killed} killed",
        )
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
        judged.failed_checks,
        (*(f"not copied: {line}" for line in copy.lines()), *limits),
        judged.findings,
    )


def _judge_summary(root: Path, submission: Submission) -> JudgeSummary:
    """Failed checks, limits hit and findings that the judge wrote into the autograded notebooks."""
    return JudgeSummary.combine(
        JudgeSummary.from_metadata(nbformat.read(path, as_version=4).metadata.get(METADATA_KEY))
        for path in sorted((root / "autograded" / submission.student / submission.week).glob("*.ipynb"))
    )


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
    path = staged_folder(root, submission.student, submission.week) / f"{name}.ipynb"
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
        "autograde",
        submission.week,
        f"--student={submission.student}",
        f"--notebook={name}",
        "--force",
        # nbgrader reads the staged copy, never the student's folder (copying.py)
        f"--CourseDirectory.submitted_directory={STAGED}",
    ]
    env = {SCRATCH_ENV: scratch, **({CGROUP_ENV: os.pathsep.join(map(str, cgroup.paths))} if cgroup.paths else {})}
    result = run_nbgrader(command, root, timeout=seconds_left, env=env)
    if result.returncode is None:
        return f"timed out after {result.seconds:.0f} s"
    if result.returncode != 0:
        return f"autograde failed: {failure_summary(result.output)}"
    return None


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
