"""nbgrader preprocessors that make autograding trustworthy (named in nbgrader_config.py).

Autograde runs, in this order:

0. ``GradeStagedCopiesOnly`` (first of the sanitize steps): only the grader's own copy of a
   submission (``staged/``, regular files only, made by ``make grade``) is autograded; the
   formgrader's Autograde button and a bare ``nbgrader autograde`` read ``submitted/`` as
   nbgrader copies it, following links, and are refused before any kernel starts.
1. ``RestoreReleasedCells``: the notebook is rebuilt on the
   released one, so deleted, reordered, re-typed or re-labelled cells cannot change what runs.
2. ``GuardedExecute`` (nbgrader's Execute): the sandboxed kernel executes the notebook. When it
   reaches a graded cell, the cell's ``grade.<part>(fn)`` hands ``fn`` to the trusted grader in
   this process (``autograder/judging.py``), which runs the part's checks here and calls the
   student's function through the channel. A cell that times out is recorded and the next
   cells still run; when the kernel dies or ignores the interrupt, the cells after it are
   marked "not run" instead of the whole notebook being lost; each cell's output is bounded.
3. ``JudgeGradeCells``: every graded cell's outputs become the trusted grader's verdict on it.
   What the kernel printed or displayed there is dropped: it decides nothing. The code
   reading (``tampering.py``) is reported to the instructor as advice, never scored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Integer

from .copying import staged_folder
from .judging import (
    METADATA_KEY,
    GraderCall,
    JudgeSummary,
    NotebookJudge,
    PartVerdict,
    SharedMeasurer,
    course_secret,
    grader_call,
    part_seed,
)
from .tampering import inspect_cells


def _stream(text: str) -> NotebookNode:
    return nbformat.v4.new_output("stream", name="stdout", text=text)


# ---------------------------------------------------------------- 0. grade the staged copy alone


class UnstagedSubmission(Exception):
    """Autograding was asked for a submission that the grader did not copy (see GradeStagedCopiesOnly)."""


class GradeStagedCopiesOnly(NbGraderPreprocessor):
    """Refuse a notebook that is not in the grader's staged copy of its submission.

    ``make grade`` copies ``submitted/<student>/<week>/`` to ``staged/<student>/<week>/`` with
    regular files only (copying.py) and autogrades that copy. nbgrader's own autograde (the
    formgrader's Autograde button, ``nbgrader autograde`` run by hand) copies the submitted folder
    itself, following links: a link to another student's notebook would be graded as this
    student's, a link to a file of the instructor's would reach the kernel. Such a run fails here,
    with a message naming ``make grade``; nbgrader then removes what it had copied.
    """

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        info = resources["nbgrader"]
        folder = Path(os.path.abspath(resources.get("metadata", {}).get("path") or "."))
        root = os.path.abspath(CourseDirectory(config=self.config).root)
        if folder != staged_folder(root, info["student"], info["assignment"]):
            message = (
                f"not autograded: {folder} is not the grader's copy of a submission. Autograde with "
                "`make grade` (it copies each submission with regular files only, then grades the copy); "
                "the formgrader's Autograde button and a bare `nbgrader autograde` would follow links "
                "in the submission folder"
            )
            self.log.error(message)
            raise UnstagedSubmission(message)
        return nb, resources


# ---------------------------------------------------------------- 1. restore the released layout


class RestoreReleasedCells(NbGraderPreprocessor):
    """Rebuild a submission on the released notebook.

    The released cells come back in their order, type and metadata. Locked cells (tests,
    instructions) take the released source; solution cells and other editable cells take the
    student's source, matched by nbgrader grade_id, else by cell id; a deleted one comes back as
    released. Cells the student added stay after the cell they followed, as plain cells.
    """

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        info = resources["nbgrader"]
        course = CourseDirectory(config=self.config)
        path = Path(course.format_path(course.release_directory, ".", info["assignment"])) / f"{info['notebook']}.ipynb"
        if not path.is_file():
            self.log.warning("no released notebook at %s: cells are not restored", path)
            return nb, resources
        return restore_cells(nb, nbformat.read(path, as_version=4)), resources


def _key(cell: NotebookNode) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or cell.get("id")


def restore_cells(submitted: NotebookNode, released: NotebookNode) -> NotebookNode:
    """The released notebook with the student's editable cells filled in (see RestoreReleasedCells)."""
    keys = {_key(cell): cell for cell in released.cells}
    answers: dict[str, NotebookNode] = {}
    extras: dict[str | None, list[NotebookNode]] = {}  # released key they follow -> added cells
    anchor = None
    for cell in submitted.cells:
        key = _key(cell)
        if key in keys and key not in answers:
            answers[key], anchor = cell, key
        else:
            extras.setdefault(anchor, []).append(cell)
    cells = [_added(cell, f"added-{i}") for i, cell in enumerate(extras.get(None, []))]
    for key, original in keys.items():
        cell = nbformat.from_dict(json.loads(json.dumps(original)))  # a deep copy
        student = answers.get(key)
        if student is not None and not utils.is_locked(original) and isinstance(student.get("source"), str):
            cell.source = student.source
        cells.append(cell)
        cells += [_added(extra, f"added-{len(cells)}-{i}") for i, extra in enumerate(extras.get(key, []))]
    restored = nbformat.v4.new_notebook(cells=cells, metadata=released.metadata)
    restored.nbformat, restored.nbformat_minor = released.nbformat, released.nbformat_minor
    return restored


def _added(cell: NotebookNode, cell_id: str) -> NotebookNode:
    """A cell the student added, without any nbgrader role it may claim."""
    source = cell.get("source", "")
    source = source if isinstance(source, str) else "".join(map(str, source))
    kind = cell.get("cell_type") if cell.get("cell_type") in ("code", "markdown", "raw") else "raw"
    new = {
        "code": nbformat.v4.new_code_cell,
        "markdown": nbformat.v4.new_markdown_cell,
        "raw": nbformat.v4.new_raw_cell,
    }[kind](source)
    new.id = cell_id
    return new


# ---------------------------------------------------------------- 2. execute, surviving the kernel


class GuardedExecute(Execute):
    """nbgrader's Execute that survives a dead or stuck kernel and bounds each cell's output."""

    max_output_bytes = Integer(1_000_000, help="output a cell may keep (text and display data)").tag(config=True)
    max_result_bytes = Integer(50_000_000, help="size of a cell's result (a displayed value)").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._stopped: str | None = None
        self._kept: dict[int, int] = {}
        self._judge: NotebookJudge | None = None
        summary = (resources or {}).setdefault(METADATA_KEY, {})
        self._statuses = summary.setdefault("cells", {})
        self._verdicts = summary.setdefault("verdicts", {})
        try:
            return super().preprocess(nb, resources, km)
        finally:
            if self._judge is not None:
                self._judge.close()

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.source.strip():
            return cell, resources
        call = grader_call(cell.source) if utils.is_grade(cell) and not utils.is_solution(cell) else None
        judge = self._judge_for(resources) if call else None
        if judge is None:
            return self._execute(cell, resources, index)
        judge.expect(cell.id, call, [c.source for c in self.nb.cells[:index] if c.cell_type == "code"])
        try:
            return self._execute(cell, resources, index)
        finally:
            self._verdicts[cell.id] = judge.result(cell.id)

    def _judge_for(self, resources) -> NotebookJudge | None:
        """The judge of this notebook's graded cells, or None when its week has no lcteach grader."""
        if self._judge is None:
            info = resources["nbgrader"]
            module = _week_module(info["assignment"])
            if module is None or not hasattr(self.km, "grader_listener"):
                return None
            secret = course_secret(CourseDirectory(config=self.config).root)

            def seed_of(part: str) -> int:
                return part_seed(secret, info["student"], info["assignment"], info["notebook"], part)

            seconds = self.km.call_seconds
            measurer = SharedMeasurer(self.km.measuring_uid, seconds)
            self._judge = NotebookJudge(self.km.grader_listener, module, seed_of, measurer, seconds)
        return self._judge

    def _execute(self, cell, resources, index):
        if self._stopped:  # an error output: nbgrader scores any graded cell with one 0
            cell.outputs = [_error("NotRun", f"not run: {self._stopped}")]
            self._statuses[cell.id] = f"not run: {self._stopped}"
            return cell, resources
        try:
            return super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            self._stopped = f"the kernel died in cell {cell.id} (os._exit, a crash, or the CPU or memory limit)"
        except CellTimeoutError:
            self._stopped = (
                f"cell {cell.id} ran past {self.timeout} s and its kernel did not stop when interrupted; "
                "the kernel was shut down"
            )
        cell.outputs.append(_error("KernelStopped", self._stopped))
        self._statuses[cell.id] = self._stopped
        return cell, resources

    def on_cell_executed(self, **kwargs):
        super().on_cell_executed(**kwargs)
        content = kwargs["execute_reply"]["content"]
        if content.get("status") == "error" and content.get("ename") == "CellTimeoutError":
            cell_id = kwargs["cell"].id
            self._statuses[cell_id] = f"cell {cell_id} timed out after {self.timeout} s and was interrupted"

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        size = len(json.dumps(content.get("data") or content.get("text") or content.get("traceback") or ""))
        if msg["msg_type"] == "execute_result":
            if size > self.max_result_bytes:
                return super().output(
                    outs, _replace_content(msg, f"(a result of {size} bytes was dropped)"), display_id, cell_index
                )
            return super().output(outs, msg, display_id, cell_index)
        kept = self._kept.get(cell_index, 0)
        if kept >= self.max_output_bytes:
            return None
        self._kept[cell_index] = kept + size
        if kept + size > self.max_output_bytes:
            note = f"\n[output truncated: this cell wrote more than {self.max_output_bytes} bytes]\n"
            outs.append(_stream(note))
            cell_id = self.nb.cells[cell_index].id
            self._statuses.setdefault(
                f"output:{cell_id}", f"cell {cell_id}: output truncated at {self.max_output_bytes} bytes"
            )
            return None
        return super().output(outs, msg, display_id, cell_index)


def _error(name: str, message: str) -> NotebookNode:
    return nbformat.v4.new_output("error", ename=name, evalue=message, traceback=[f"{name}: {message}"])


def _replace_content(msg: dict, text: str) -> dict:
    return {**msg, "content": {**msg["content"], "data": {"text/plain": text}, "metadata": {}}}


# ---------------------------------------------------------------- 3. the verdicts


def _week_module(assignment: str):
    """lcteach's grading package of a week (``week1_foundations`` -> ``lcteach.grading.week1``), or None."""
    import importlib

    name = assignment.split("_")[0]
    if not name.isidentifier():
        return None
    try:
        return importlib.import_module(f"lcteach.grading.{name}")
    except ImportError:
        return None


class JudgeGradeCells(NbGraderPreprocessor):
    """Replace each lcteach graded cell's outputs with the trusted grader's verdict on it."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        summary = resources.get(METADATA_KEY, {})
        statuses, verdicts = summary.get("cells", {}), summary.get("verdicts", {})
        student_cells = [(c.id, c.source) for c in nb.cells if c.cell_type == "code" and not utils.is_locked(c)]
        findings = inspect_cells(student_cells)
        parts = []
        judged = _week_module(resources["nbgrader"]["assignment"]) is not None
        for cell in nb.cells:
            call = grader_call(cell.source) if judged and cell.cell_type == "code" and utils.is_grade(cell) else None
            if call is None or utils.is_solution(cell):
                continue
            points, report, failed = _verdict(call, verdicts.get(cell.id))
            status = statuses.get(cell.id)
            if status:
                report = f"{report}\n  note: {status}"
            cell.outputs = [
                _stream(report + "\n"),
                nbformat.v4.new_output(
                    "execute_result", data={"text/plain": f"{points:g}"}, execution_count=cell.get("execution_count")
                ),
            ]
            parts.append(
                PartVerdict(
                    cell.metadata.nbgrader["grade_id"],
                    call.part,
                    points,
                    float(cell.metadata.nbgrader["points"]),
                    tuple(failed),
                    status,
                )
            )
        nb.metadata[METADATA_KEY] = JudgeSummary(
            tuple(parts),
            tuple(str(f) for f in findings),
            tuple(sorted({s for s in statuses.values()} | set(_limits_hit(nb)))),
        ).to_metadata()
        return nb, resources


def _verdict(call: GraderCall, result) -> tuple[float, str, list[str]]:
    """(points, report, failed checks or reasons) for one graded cell."""
    if result is None:
        why = "the cell did not hand its function to the grader (it failed, or the kernel stopped, before the call)"
        return 0.0, f"{call.part}: no credit: {why}", ["not handed to the grader"]
    return result.points, result.report(), [o.name for o in result.outcomes if not o.passed]


# Error names and messages that say the sandbox stopped something (see sandbox.py).
_LIMIT_SIGNS = {
    "MemoryError": "memory limit",
    "Cannot allocate memory": "memory limit",
    "can't allocate memory": "memory limit",
    "Resource temporarily unavailable": "process limit",
    "File too large": "file size limit",
    "No space left on device": "disk space limit",
    "Read-only file system": "write outside the scratch folder refused",
    "Permission denied": "access refused",
    "Network is unreachable": "network refused",
    "Temporary failure in name resolution": "network refused",
    "StudentTimeout": "time limit of a graded call",
    "was still running after": "time limit of a graded call",
}


def _limits_hit(nb: NotebookNode) -> list[str]:
    text = "\n".join(
        json.dumps(output.get("traceback") or output.get("text") or output.get("evalue") or "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.output_type in ("error", "stream")
    )
    return [limit for sign, limit in _LIMIT_SIGNS.items() if sign in text]
