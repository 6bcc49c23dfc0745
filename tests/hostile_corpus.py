"""The hostile corpus's harness: crafted submissions graded in one batch with honest neighbours.

A ``Case`` starts from a week's full solution and edits it the way a student trying a trick
would (issue 10 lists the families of tricks; ``FAMILIES`` names them). It says the score the
submission must get: exactly what its functions earn, never more, and the strings its report
and its feedback must (not) contain. ``grade_corpus`` releases the week into a new course root,
submits every case and the honest neighbours, grades them all in one ``grade_class`` batch with
two workers, as `make grade JOBS=2` does, and returns a ``Corpus`` that the test files of the
weeks (tests/autograder/test_hostile_week*.py) check case by case.

Many cases probe the sandbox from inside the kernel; they report success through a *canary*:
the probe appends what it managed to do to the notebook's global ``ESCAPED`` list, and
``canary(week)`` makes the week's last graded function return nothing while that list is
non-empty. A probe that is refused as it must be costs nothing; one that gets through costs
the canary part's points, so the score shows it.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from autograder.demo_class import build_demo_class
from autograder.judging import course_secret, part_seed
from autograder.layout import REPO
from autograder.pipeline import grade_class
from autograder.report import ClassReport
from autograder.submissions import Result

FAMILIES = {
    1: "measurement evaded in the student's process",
    2: "delegation to a reference or to fused attention",
    3: "forged records, outputs or grader objects",
    4: "expected values read off the call stack",
    5: "code reading evaded",
    6: "limits per submission",
    7: "scratch space",
    8: "links and fifos in the submission folder",
    9: "ANSI escapes and control characters",
    10: "HTML and scripts in answers and outputs",
    11: "hidden seed and inputs kept out of the feedback",
    "sandbox": "sandbox escape: files, network, writes outside",
    "files": "submission files: archives, notebook format, extra files",
    "time": "time limits of calls and cells",
    "kernel": "the kernel dies or exits",
    "cells": "test cells and metadata edited",
}

ROOT_MARK, WEEK_MARK, REPO_MARK = "@ROOT@", "@WEEK@", "@REPO@"
MARK = "lcteach_payload"  # what a hostile script or handler would say; must never be live in HTML
LEAK = "LEAK" + "ED"  # hidden inputs printed by a case come after this marker; never in feedback
LEAK_CODE = "'LEAK' + 'ED'"  # the marker as code: the cell's source, shown in the feedback, never holds it
NOTEBOOK = "exercises"
LMS_IDS = "4711_99012"  # the numbers of a Canvas download's file name


@dataclass(frozen=True)
class Week:
    """A graded week: its parts' points and the written answers a human grades."""

    name: str
    points: dict[str, float]
    written: dict[str, float]
    canary: str  # the last graded part: the canary wraps its function

    @property
    def honest(self) -> float:
        """Every auto-graded point."""
        return sum(self.points.values())

    @property
    def max_score(self) -> float:
        return self.honest + sum(self.written.values())

    def without(self, *parts: str, **partial: float) -> float:
        """The honest score less every point of ``parts`` and ``partial[part]`` points of those."""
        return self.honest - sum(self.points[p] for p in parts) - sum(partial.values())

    def only(self, *parts: str) -> float:
        """The points of ``parts`` alone (the parts graded before the kernel stopped, say)."""
        return sum(self.points[p] for p in parts)


WEEK1 = Week(
    "week1_foundations",
    {
        "dense_attention": 3,
        "causal_mask": 1,
        "sliding_window": 2,
        "online_softmax_step": 3,
        "tiled_attention": 4,
        "process_in_chunks": 3,
        "fit_exponent": 2,
        "causal_tiled_attention": 4,
        "tiled_attention_backward": 4,
        "schedule_chunks": 2,
    },
    {"written_chunk_borders": 2},
    "schedule_chunks",
)
WEEK2 = Week(
    "week2_sparse",
    {
        "strided": 2,
        "random_block_layout": 2,
        "longformer": 2,
        "bigbird": 3,
        "block_sparse_attention": 4,
        "topk_attention": 3,
        "minimal_layers": 2,
        "select_blocks": 3,
    },
    {"written_reach": 2},
    "select_blocks",
)


@dataclass(frozen=True)
class Context:
    """Where a case is being submitted: what its edits may point at."""

    root: Path
    week: Week

    def fill(self, text: str) -> str:
        return text.replace(ROOT_MARK, str(self.root)).replace(WEEK_MARK, self.week.name).replace(REPO_MARK, str(REPO))


Edit = Callable[[dict, Context], None]  # changes the notebook (as JSON data)
FileEdit = Callable[[Path, Context], None]  # changes the submission folder once the notebook is written
ZipEdit = Callable[[zipfile.ZipFile, Context], None]  # adds members to the case's LMS zip


@dataclass(frozen=True)
class Case:
    """One crafted submission and what grading it must give (see the module docstring).

    ``score`` is the exact auto-graded score; ``report`` strings must be in the report's lines
    for the student (reason, failed checks, limits, findings), ``not_report`` must not;
    ``feedback`` / ``not_feedback`` likewise for the feedback HTML. ``bug`` names a grader bug
    the case shows today: its test is marked xfail(strict=True) with that reason. A case with
    ``zip_members`` is uploaded as an LMS download zip instead of a folder (its name is then the
    student id of a Canvas file name, so it holds no underscore).
    """

    name: str
    family: int | str
    edits: tuple[Edit, ...] = ()
    score: float | None = None  # None: the submission is not graded at all (refused upload)
    report: tuple[str, ...] = ()
    not_report: tuple[str, ...] = ()
    feedback: tuple[str, ...] = ()
    not_feedback: tuple[str, ...] = ()
    files: tuple[FileEdit, ...] = ()
    zip_members: tuple[ZipEdit, ...] | None = None
    zip_notebook: bool = True  # whether the LMS zip holds the (edited) notebook as a regular file
    bug: str | None = None
    note: str = ""  # what the case tries, for the corpus table

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"{self.name}: unknown family {self.family!r}")
        if self.zip_members is not None and "_" in self.name:
            raise ValueError(f"{self.name}: an LMS upload's student id holds no underscore")


def params(cases: list[Case]) -> list:
    """``pytest.param`` per case, xfail where the case shows a known grader bug (not strict: some of
    those bugs show only when the machine's timing lets them)."""
    return [
        pytest.param(case, id=case.name, marks=[pytest.mark.xfail(strict=False, reason=case.bug)] if case.bug else [])
        for case in cases
    ]


def selected(cases: list[Case]) -> list[Case]:
    """The cases named in LCTEACH_HOSTILE_CASES (comma-separated), or all of them: a quick run of a few."""
    names = [n.strip() for n in os.environ.get("LCTEACH_HOSTILE_CASES", "").split(",") if n.strip()]
    return [c for c in cases if not names or c.name in names]


# ---------------------------------------------------------------- notebook edits


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return source if isinstance(source, str) else "".join(source)


def find_cell(nb: dict, key: str) -> dict:
    """The cell whose nbgrader grade_id or cell id is ``key``, or (``~text``) the first whose source holds text."""
    for cell in nb["cells"]:
        if key.startswith("~"):
            if key[1:] in _source(cell):
                return cell
        elif key in (cell.get("metadata", {}).get("nbgrader", {}).get("grade_id"), cell.get("id")):
            return cell
    raise KeyError(f"no cell {key!r} in the notebook")


def _change(key: str, change: Callable[[str, Context], str]) -> Edit:
    def edit(nb: dict, ctx: Context) -> None:
        cell = find_cell(nb, key)
        cell["source"] = change(_source(cell), ctx)

    return edit


def prefix(key: str, code: str) -> Edit:
    """Run ``code`` at the top of a cell (before the function it defines)."""
    return _change(key, lambda src, ctx: ctx.fill(code) + "\n" + src)


def suffix(key: str, code: str) -> Edit:
    """Run ``code`` after a cell's own code, e.g. to wrap or redefine the function it defined."""
    return _change(key, lambda src, ctx: src + "\n" + ctx.fill(code))


def replace(key: str, source: str) -> Edit:
    """Replace a cell's source."""
    return _change(key, lambda src, ctx: ctx.fill(source))


def add_cell(after: str, source: str, cell_type: str = "code") -> Edit:
    """Add a cell after the cell ``after`` (see find_cell)."""

    def edit(nb: dict, ctx: Context) -> None:
        index = nb["cells"].index(find_cell(nb, after))
        cell = {"cell_type": cell_type, "id": f"added-{len(nb['cells'])}", "metadata": {}, "source": ctx.fill(source)}
        if cell_type == "code":
            cell |= {"execution_count": None, "outputs": []}
        nb["cells"].insert(index + 1, cell)

    return edit


def delete(key: str) -> Edit:
    return lambda nb, ctx: nb["cells"].remove(find_cell(nb, key))


def move_to_top(key: str) -> Edit:
    def edit(nb: dict, ctx: Context) -> None:
        cell = find_cell(nb, key)
        nb["cells"].remove(cell)
        nb["cells"].insert(0, cell)

    return edit


def retype(key: str, source: str) -> Edit:
    """Turn a cell into a markdown cell holding ``source``."""

    def edit(nb: dict, ctx: Context) -> None:
        cell = find_cell(nb, key)
        cell.update(cell_type="markdown", source=source)
        cell.pop("outputs", None), cell.pop("execution_count", None)

    return edit


def metadata(key: str, **changes) -> Edit:
    """Change a cell's nbgrader metadata."""
    return lambda nb, ctx: find_cell(nb, key)["metadata"].setdefault("nbgrader", {}).update(changes)


def top_level(**changes) -> Edit:
    """Change the notebook's top-level fields (nbformat, metadata)."""
    return lambda nb, ctx: nb.update(changes)


def strip_cell_ids() -> Edit:
    def edit(nb: dict, ctx: Context) -> None:
        for cell in nb["cells"]:
            cell.pop("id", None)

    return edit


def canary(week: Week) -> Edit:
    """Make the week's last graded function return nothing while the notebook's ESCAPED list is not empty."""
    name = week.canary  # the part and its function share the name in both weeks
    code = (
        f"_canary_{name} = {name}\n"
        f"def {name}(*args, **kwargs):\n"
        "    if globals().get('ESCAPED'):\n"
        "        return None  # a probe got through: the canary part loses its points\n"
        f"    return _canary_{name}(*args, **kwargs)\n"
    )
    return suffix(week.canary, code)


def probe(key: str, code: str) -> Edit:
    """Run ``code`` at the top of a cell with ``ESCAPED`` (a list) and ``escaped(what)`` defined;
    the code calls ``escaped(...)`` for every thing the sandbox let through (see canary)."""
    setup = (
        "ESCAPED = globals().get('ESCAPED', [])\n"
        "def escaped(what):\n"
        "    ESCAPED.append(str(what))\n"
        "    print('escaped:', what)\n"
    )
    return prefix(key, setup + code)


# ---------------------------------------------------------------- submission folder edits


def symlink(name: str, target: str) -> FileEdit:
    """A symbolic link ``name`` in the submission folder pointing at ``target`` (marks filled in)."""

    def edit(folder: Path, ctx: Context) -> None:
        path = folder / name
        path.unlink(missing_ok=True)
        path.symlink_to(ctx.fill(target))

    return edit


def fifo(name: str) -> FileEdit:
    def edit(folder: Path, ctx: Context) -> None:
        path = folder / name
        path.unlink(missing_ok=True)
        os.mkfifo(path)

    return edit


def write_file(name: str, data: bytes | str) -> FileEdit:
    def edit(folder: Path, ctx: Context) -> None:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)

    return edit


def hardlink(name: str, target: str) -> FileEdit:
    """A second hard link ``name`` to the course's file ``target`` (marks filled in)."""
    return lambda folder, ctx: os.link(ctx.fill(target), folder / name)


def remove_file(name: str) -> FileEdit:
    return lambda folder, ctx: (folder / name).unlink()


def truncate_notebook() -> FileEdit:
    """Cut the notebook's JSON in half."""

    def edit(folder: Path, ctx: Context) -> None:
        path = folder / f"{NOTEBOOK}.ipynb"
        text = path.read_text()
        path.write_text(text[: len(text) // 2])

    return edit


def zip_link(member: str, target: str) -> ZipEdit:
    """A zip member that is a symbolic link (its Unix mode in the external attributes)."""

    def edit(bundle: zipfile.ZipFile, ctx: Context) -> None:
        info = zipfile.ZipInfo(member)
        info.create_system, info.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
        bundle.writestr(info, ctx.fill(target))

    return edit


def zip_file(member: str, data: bytes | str) -> ZipEdit:
    return lambda bundle, ctx: bundle.writestr(member, data)


def lms_name(student: str, notebook: str = NOTEBOOK) -> str:
    """The file name Canvas gives a student's upload of ``notebook``."""
    return f"{student}_{LMS_IDS}_{notebook}.ipynb"


# ---------------------------------------------------------------- grading the corpus


@dataclass
class Corpus:
    root: Path
    week: Week
    report: ClassReport
    results: dict[str, Result]
    cases: dict[str, Case]
    honest: list[str]
    host_tmp: Path  # the grader's temporary folder during the batch (removed after it): kernels' folders went there
    seconds: float
    leftovers: list[str] = field(default_factory=list)  # what was left in host_tmp after the batch

    def feedback(self, student: str) -> str:
        path = self.root / "feedback" / student / self.week.name / f"{NOTEBOOK}.html"
        return path.read_text() if path.is_file() else ""

    def autograded_path(self, student: str) -> Path:
        return self.root / "autograded" / student / self.week.name / f"{NOTEBOOK}.ipynb"

    def autograded(self, student: str) -> dict:
        return json.loads(self.autograded_path(student).read_text())

    def lost_points(self, student: str) -> str:
        """The grader's verdicts (message and hint of each failed check) of the parts that lost
        points, as the graded cells show them: what a wrong score prints, in a test and in the table."""
        if not self.autograded_path(student).is_file():
            return ""
        outputs = [o for cell in graded_cell_outputs(self.autograded(student)).values() for o in cell]
        texts = (stream_text(o) for o in outputs if o["output_type"] == "stream")
        return "\n".join(text.rstrip() for text in texts if "\u2717" in text)

    def table(self) -> str:
        """case, family, expected, got (and seconds): the corpus table of issue 10's closing note,
        then the verdicts that lost points of every submission that did not get its expected score."""
        rows = [("case", "family", "expected", "got", "seconds", "bug")]
        wrong = []
        for name, case in [*self.cases.items(), *((n, None) for n in self.honest)]:
            result = self.results.get(name)
            got = "not graded" if result is None else f"{result.score:g}"
            seconds = "" if result is None else f"{result.seconds:.0f}"
            if case is None:
                expected = f"{self.week.honest:g}"
                rows.append((name, "honest", expected, got, seconds, ""))
            else:
                expected = "not graded" if case.score is None else f"{case.score:g}"
                rows.append((name, str(case.family), expected, got, seconds, "xfail" if case.bug else ""))
            if got != expected:
                wrong.append(f"\n{name} scored {got} instead of {expected}:\n{self.lost_points(name)}")
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        table = "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
        count = len(self.results)
        return (
            f"{table}\ngraded {count} submissions in {self.seconds:.0f} s ({60 * count / self.seconds:.1f} per minute)"
            + "".join(wrong)
        )


def grade_corpus(
    base: Path,
    week: Week,
    cases: list[Case],
    honest: dict[str, tuple[Edit, ...]],
    config: str = "",
    timeout: float = 600,
    jobs: int = 2,
) -> Corpus:
    """Release ``week`` in a new course root under ``base``, submit ``cases`` and the ``honest``
    neighbours (name -> edits of the full solution; "full" is the full solution itself), and
    grade them all in one ``grade_class`` batch of ``jobs`` workers."""
    names = [c.name for c in cases] + list(honest)
    if len(set(names)) != len(names):
        raise ValueError("two submissions with one name")
    root = base / "course"
    build_demo_class(root, week.name)
    with (root / "nbgrader_config.py").open("a") as file:
        file.write("\n" + config + "\n")
    submitted = root / "submitted"
    full = submitted / "full" / week.name
    source = json.loads((full / f"{NOTEBOOK}.ipynb").read_text())
    for student in ("partial", "untouched", "missing", "broken"):
        shutil.rmtree(submitted / student)
    ctx = Context(root, week)
    archive = root / "downloaded" / week.name / "archive"
    for name, edits, files, members, in_zip in [
        *((c.name, c.edits, c.files, c.zip_members, c.zip_notebook) for c in cases),
        *((name, edits, (), None, False) for name, edits in honest.items()),
    ]:
        notebook = json.loads(json.dumps(source))
        for edit in edits:
            edit(notebook, ctx)
        text = json.dumps(notebook)
        if members is not None:
            archive.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(archive / f"{name}.zip", "w") as bundle:
                if in_zip:
                    bundle.writestr(lms_name(name), text)
                for member in members:
                    member(bundle, ctx)
            continue
        folder = submitted / name / week.name
        if name != "full":
            shutil.copytree(full, folder)
        (folder / f"{NOTEBOOK}.ipynb").write_text(text)
        for change in files:
            change(folder, ctx)
    # A short path: the kernels' sockets are made in it, and a Unix socket's path holds 107 bytes at most.
    host_tmp = Path(tempfile.mkdtemp(prefix="lchx-"))
    # The grader's temporary folders (the kernels' private folders among them) go where the test sees them.
    saved = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"] = tempfile.tempdir = str(host_tmp)
    start = time.monotonic()
    try:
        report = grade_class(root, [week.name], timeout=timeout, jobs=jobs)
    finally:
        tempfile.tempdir = saved[1]
        if saved[0] is None:
            os.environ.pop("TMPDIR")
        else:
            os.environ["TMPDIR"] = saved[0]
    seconds = time.monotonic() - start
    results = {r.submission.student: r for r in report.results}
    leftovers = sorted(str(p.relative_to(host_tmp)) for p in host_tmp.rglob("*") if "lcteach" in p.name)
    shutil.rmtree(host_tmp, ignore_errors=True)
    return Corpus(root, week, report, results, {c.name: c for c in cases}, list(honest), host_tmp, seconds, leftovers)


def regrade(corpus: Corpus, students: list[str], base: Path) -> dict[str, Result]:
    """Grade ``students`` of the corpus again, alone and with one worker, in a copy of its course root."""
    root = base / "again"
    runtime = shutil.ignore_patterns("autograded", "feedback", "downloaded", "reports", "staged")

    def ignored(folder: str, names: list[str]) -> set[str]:
        """Runtime folders, and every other student's submission (their fifos and links are not copied)."""
        others = {n for n in names if n not in students} if Path(folder) == corpus.root / "submitted" else set()
        return set(runtime(folder, names)) | others

    shutil.copytree(corpus.root, root, symlinks=True, ignore=ignored)  # links in the copied folders stay links
    return {r.submission.student: r for r in grade_class(root, [corpus.week.name], timeout=600, jobs=1).results}


# ---------------------------------------------------------------- what the tests check


def report_lines(result: Result) -> str:
    """Everything the report says about one student."""
    return "\n".join(
        [
            result.reason,
            *result.failed_checks,
            *(f"limit: {x}" for x in result.limits),
            *(f"found: {x}" for x in result.findings),
        ]
    )


class LiveCode(HTMLParser):
    """Student code that would run in a browser: scripts with its mark, event handlers, javascript: links."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []
        self._script = False

    def handle_starttag(self, tag, attrs):
        self._script = tag == "script"
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}={value}>")
            if value and "javascript:" in value.lower().replace(" ", ""):
                self.found.append(f"<{tag} {name}={value}>")
        if tag in ("iframe", "object", "embed"):
            self.found.append(f"<{tag}>")

    def handle_endtag(self, tag):
        self._script = False

    def handle_data(self, data):
        if self._script and (MARK in data or "alert(" in data):
            self.found.append(f"<script>{data[:80]}")


def live_code(html: str) -> list[str]:
    parser = LiveCode()
    parser.feed(html)
    return parser.found


def stream_text(output: dict) -> str:
    """The text of a stream output (a string, or the list of strings a saved notebook may hold)."""
    text = output.get("text", "")
    return "".join(text) if isinstance(text, list) else text


def graded_cell_outputs(notebook: dict) -> dict[str, list[dict]]:
    """grade_id -> outputs of every graded test cell of an autograded notebook."""
    return {
        cell["metadata"]["nbgrader"]["grade_id"]: cell.get("outputs", [])
        for cell in notebook["cells"]
        if cell["cell_type"] == "code"
        and cell.get("metadata", {}).get("nbgrader", {}).get("grade")
        and not cell["metadata"]["nbgrader"].get("solution")
    }


def verdict_problems(corpus: Corpus, student: str) -> list[str]:
    """How the graded cells' outputs differ from the trusted grader's verdict alone (empty: they do not)."""
    problems = []
    for grade_id, outputs in graded_cell_outputs(corpus.autograded(student)).items():
        part = grade_id.removeprefix("test_")
        kinds = [o["output_type"] for o in outputs]
        if kinds != ["stream", "execute_result"]:
            problems.append(f"{grade_id}: outputs {kinds}, expected the verdict's stream and its points")
            continue
        text = stream_text(outputs[0])
        if not (text.startswith(f"{part} (graded run): ") or text.startswith(f"{part}: no credit: ")):
            problems.append(f"{grade_id}: the stream is not the grader's verdict: {text[:120]!r}")
        if LEAK in text or MARK in text:
            problems.append(f"{grade_id}: the verdict holds the student's output: {text[:120]!r}")
    return problems


def seed_problems(corpus: Corpus, student: str) -> list[str]:
    """Hidden seeds or the course secret found in a student's feedback."""
    html = corpus.feedback(student)
    secret = course_secret(corpus.root)
    problems = [f"the course secret is in the feedback of {student}"] if secret.hex() in html else []
    for part in corpus.week.points:
        seed = part_seed(secret, student, corpus.week.name, NOTEBOOK, part)
        if str(seed) in html or hex(seed) in html:
            problems.append(f"the hidden seed of {part} is in the feedback of {student}")
    return problems


def check_case(corpus: Corpus, case: Case) -> None:
    """Assert everything a case expects of its grading."""
    result = corpus.results.get(case.name)
    if case.score is None:
        assert result is None, f"{case.name} should not have been graded: {report_lines(result)}"
        return
    assert result is not None, f"{case.name} was not graded"
    lines = report_lines(result)
    assert (result.score, result.max_score) == (case.score, corpus.week.max_score), (
        f"{lines}\n{corpus.lost_points(case.name)}"
    )
    for text in case.report:
        assert text in lines, f"{text!r} not in the report of {case.name}:\n{lines}"
    for text in case.not_report:
        assert text not in lines, f"{text!r} in the report of {case.name}:\n{lines}"
    if corpus.autograded_path(case.name).is_file():
        assert verdict_problems(corpus, case.name) == []
        html = corpus.feedback(case.name)
        assert html, f"no feedback for {case.name}: {corpus.report.feedback_failures}"
        assert live_code(html) == []
        assert "\x1b" not in html and LEAK not in html
        assert seed_problems(corpus, case.name) == []
        for text in case.feedback:
            assert text in html, f"{text!r} not in the feedback of {case.name}"
        for text in case.not_feedback:
            assert text not in html, f"{text!r} in the feedback of {case.name}"


def check_honest(corpus: Corpus, student: str) -> None:
    """An honest neighbour: every auto-graded point, a clean report, the verdicts alone in graded cells."""
    result = corpus.results[student]
    written = ", ".join(f"{name} 0/{points:g} (needs manual grading)" for name, points in corpus.week.written.items())
    assert (result.score, result.max_score, result.status) == (
        corpus.week.honest,
        corpus.week.max_score,
        "graded",
    ), f"{report_lines(result)}\n{corpus.lost_points(student)}"
    assert result.reason == written, result.reason
    assert (result.failed_checks, result.limits, result.findings) == ((), (), ())
    assert verdict_problems(corpus, student) == []
    assert seed_problems(corpus, student) == []
    assert live_code(corpus.feedback(student)) == []


def check_batch(corpus: Corpus) -> None:
    """What the whole batch must leave: a sound gradebook, a CSV row and feedback per graded
    submission, no staged copy, no kernel folder, nothing written outside the sandbox."""
    report = corpus.report
    assert report.gradebook_problems == []
    assert report.feedback_failures == []
    with report.grades_csv.open() as file:
        header, *rows = [line.rstrip("\n") for line in file]
    assert len(rows) >= len(corpus.results)
    assert not any((corpus.root / "staged").glob("*/*")), "staged copies were left"
    assert corpus.leftovers == [], f"kernel folders left in the host's temporary folder: {corpus.leftovers}"
    assert not (corpus.root / "hacked").exists() and not (REPO / "lcteach" / "hacked.py").exists()
    assert not Path("/usr/hacked").exists()
    for path in (corpus.root / "autograded").glob(f"*/{corpus.week.name}/*"):
        assert path.stat().st_size < 3 * 2**20, f"{path} is {path.stat().st_size} bytes: its output was not bounded"


def corpus_tests(week: Week, cases: list[Case], honest_variant: tuple[Edit, ...], config: str):
    """The corpus fixture and the tests every week's corpus passes: bind them in the week's test
    module as ``corpus, test_hostile_submission_scores_what_it_earns, test_honest_neighbours_keep_every_point,
    test_the_batch_survives = corpus_tests(...)``. ``config`` goes into the course root's nbgrader_config.py."""

    @pytest.fixture(scope="module")
    def corpus(tmp_path_factory):
        graded = grade_corpus(
            tmp_path_factory.mktemp(f"hostile-{week.name}"),
            week,
            cases,
            {"full": (), "honest_variant": honest_variant},
            config=config,
        )
        print(f"\n{graded.table()}")
        tables = REPO / "build" / "corpus"  # the table of the last run, kept for the maintainers
        tables.mkdir(parents=True, exist_ok=True)
        (tables / f"{week.name}.txt").write_text(graded.table() + "\n")
        return graded

    @pytest.mark.parametrize("case", params(cases))
    def test_hostile_submission_scores_what_it_earns(corpus, case):
        check_case(corpus, case)

    @pytest.mark.parametrize("student", ["full", "honest_variant"])
    def test_honest_neighbours_keep_every_point(corpus, student):
        check_honest(corpus, student)

    def test_the_batch_survives(corpus):
        check_batch(corpus)

    return (
        corpus,
        test_hostile_submission_scores_what_it_earns,
        test_honest_neighbours_keep_every_point,
        test_the_batch_survives,
    )
