"""Judging: the trusted grader runs each graded part's checks while the kernel executes the notebook.

When the sandboxed kernel reaches a graded cell, ``grade.<part>(fn)`` connects to the kernel
manager's ``grader_listener`` and hands ``fn`` over (``lcteach.grading.handoff``). A
``NotebookJudge`` thread in the nbgrader process accepts that connection, checks that it
comes from the graded cell now running and names that cell's part, and runs the part's
checks in this process (``lcteach.grading.session.judge_remote``): the inputs come from a seed
of its own for this submission and part (``part_seed``), which never enters the notebook;
the expected values are computed here; the student's function is called through the channel.
Properties measured from outside (peak memory, CPU time) come from a measuring process
(``autograder.measuring``) that has run the notebook's code cells up to that cell: one per
notebook, its graded parts in turn (``SharedMeasurer``). Any other connection is turned away.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import os
import secrets
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from autograder.measuring import MeasuringProcess
from lcteach.grading.channel import ChannelError

SECRET_FILE = ".grading_secret"  # in the course root, readable by the instructor alone
METADATA_KEY = "lcteach"  # notebook metadata: the judge's summary (JudgeSummary), read by the grading report


def course_secret(root: Path) -> bytes:
    """The course's grading secret (created on first use): seeds are derived from it."""
    path = Path(root) / SECRET_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        pass
    value = secrets.token_hex(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(value + "\n")
    return bytes.fromhex(value)


def part_seed(secret: bytes, student: str, week: str, notebook: str, part: str) -> int:
    """The hidden seed of one part of one submission: unpredictable without the secret, stable on regrading."""
    digest = hmac.new(secret, f"{student}\0{week}\0{notebook}\0{part}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:6], "big")


@dataclass(frozen=True)
class GraderCall:
    """The call that ends a graded cell: ``grade.<part>(<student>)``."""

    part: str
    student: str


def grader_call(source: str) -> GraderCall | None:
    """The ``grade.<part>(<name>)`` call that ends a graded cell's (released) source, or None."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return None
    last = body[-1] if body else None
    if not (
        isinstance(last, ast.Expr)
        and isinstance(last.value, ast.Call)
        and isinstance(last.value.func, ast.Attribute)
        and isinstance(last.value.func.value, ast.Name)
        and last.value.func.value.id == "grade"
        and len(last.value.args) == 1
        and not last.value.keywords
        and isinstance(last.value.args[0], ast.Name)
    ):
        return None
    return GraderCall(last.value.func.attr, last.value.args[0].id)


class NotebookJudge:
    """Accepts the kernel's hand-offs and judges the graded cell now running (see the module docstring).

    ``week_module`` is the grading package of the notebook's week (e.g. ``lcteach.grading.week1``);
    ``seed_of(part)`` gives a part's hidden seed; ``measurer(cells, student)`` starts a measuring
    process.
    """

    def __init__(self, listener: socket.socket, week_module, seed_of, measurer, call_seconds: float):
        self.listener, self.week_module, self.seed_of = listener, week_module, seed_of
        self.measurer, self.call_seconds = measurer, call_seconds
        self._lock = threading.Lock()
        self._current: tuple[str, GraderCall, list[str]] | None = None
        self._results: dict[str, object] = {}
        self._judging = threading.Lock()  # held while a hand-off is judged
        self._stop = threading.Event()
        self.listener.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept, name="lcteach-judge", daemon=True)
        self._thread.start()

    def expect(self, cell_id: str, call: GraderCall, cells_before: list[str]) -> None:
        """The graded cell ``cell_id`` is about to run; ``cells_before`` are the code cells above it."""
        with self._lock:
            self._current = (cell_id, call, cells_before)

    def result(self, cell_id: str, wait: float = 5.0):
        """The PartResult of a graded cell once it has run, or None when it handed nothing over."""
        finished = self._judging.acquire(timeout=wait)
        try:
            with self._lock:
                self._current = None
                return self._results.get(cell_id)
        finally:
            if finished:
                self._judging.release()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.measurer.close()  # the notebook has run: a part still being judged loses its measuring calls

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._judging:
                self._judge(connection)

    def _judge(self, connection: socket.socket) -> None:
        from lcteach.grading.channel import Client
        from lcteach.grading.session import judge_remote

        connection.settimeout(None)
        client = Client(connection, time_limit=self.call_seconds)
        try:
            hello = client.hello()
        except ChannelError:
            client.close()
            return
        with self._lock:
            current = self._current
        if type(hello) is not dict or current is None or current[0] in self._results:
            client.finish({"note": "not graded: this call is not the graded cell's"})
            return
        cell_id, call, cells_before = current
        part = getattr(self.week_module, call.part, None)
        if hello.get("part") != f"{self.week_module.__name__.rpartition('.')[2]}.{call.part}" or part is None:
            client.finish({"note": "not graded: this call grades another part than its cell"})
            return
        result = judge_remote(
            part,
            client,
            hello.get("student"),
            self.seed_of(call.part),
            lambda: self.measurer(cells_before, call.student),
        )
        with self._lock:
            self._results[cell_id] = result
        client.finish({"note": "graded by the trusted grader"})


class SharedMeasurer:
    """``measurer(cells, student)`` for NotebookJudge: the measuring process (as ``uid``) of one
    notebook, which its graded parts use in turn. Each part's cells run on top of the cells the
    last part ran (``MeasuringProcess.setup``), so torch starts once per notebook instead of once
    per measured part (about 4 s of CPU each); a process that a part left broken (a call that ran
    out of time, a crash) is killed, and the next part starts a fresh one."""

    def __init__(self, uid: int, call_seconds: float):
        self.uid, self.call_seconds = uid, call_seconds
        self._process: MeasuringProcess | None = None

    def __call__(self, cells: list[str], student: str) -> MeasuringProcess:
        process = self._process
        if process is not None and process.continues(cells):
            try:
                process.setup(cells, student)
                return process
            except ChannelError:
                pass
        self.close()
        self._process = MeasuringProcess(cells, student, self.uid, self.call_seconds)
        return self._process

    def close(self) -> None:
        if self._process is not None:
            self._process.close()
            self._process = None


# ---------------------------------------------------------------- the summary for the report


@dataclass(frozen=True)
class PartVerdict:
    """The judge's verdict on one graded cell, as the summary keeps it."""

    cell: str  # the cell's grade_id
    part: str  # the graded part its ``grade.<part>(fn)`` names
    points: float
    max_points: float
    failed: tuple[str, ...] = ()  # the checks that failed, or why it was not judged
    status: str | None = None  # what stopped or bounded the cell (a timeout, output truncated), if anything


@dataclass(frozen=True)
class JudgeSummary:
    """What the judge found in an autograded notebook: kept in its metadata, read by the grading report.

    ``JudgeGradeCells`` (preprocessors.py) writes it as ``notebook.metadata[METADATA_KEY] =
    summary.to_metadata()``; the grading (pipeline.py) reads it back with ``from_metadata``.
    """

    parts: tuple[PartVerdict, ...] = ()  # the graded cells, in notebook order
    findings: tuple[str, ...] = ()  # what the code reading (tampering.py) found: advice
    limits: tuple[str, ...] = ()  # sandbox limits hit, timeouts, cells not run

    @property
    def failed_checks(self) -> tuple[str, ...]:
        """``<part>: <check>`` for every failed check of every part."""
        return tuple(f"{verdict.part}: {check}" for verdict in self.parts for check in verdict.failed)

    def to_metadata(self) -> dict:
        """The summary as plain JSON data, for the notebook's metadata."""
        return {
            "parts": [
                {
                    "cell": verdict.cell,
                    "part": verdict.part,
                    "points": verdict.points,
                    "max_points": verdict.max_points,
                    "failed": list(verdict.failed),
                    "status": verdict.status,
                }
                for verdict in self.parts
            ],
            "findings": list(self.findings),
            "limits": list(self.limits),
        }

    @classmethod
    def from_metadata(cls, entry: object) -> JudgeSummary:
        """The summary that ``to_metadata`` wrote; empty for a missing entry, and what is malformed in
        one (a value of the wrong type, a part without its name) is left out rather than raised."""
        if not isinstance(entry, dict):
            return cls()
        parts = entry.get("parts")
        return cls(
            tuple(verdict for verdict in map(_part_verdict, parts if isinstance(parts, list) else []) if verdict),
            _strings(entry.get("findings")),
            _strings(entry.get("limits")),
        )

    @classmethod
    def combine(cls, summaries: Iterable[JudgeSummary]) -> JudgeSummary:
        """One summary for several notebooks: their parts and findings in turn, each limit once."""
        summaries = list(summaries)
        return cls(
            tuple(verdict for summary in summaries for verdict in summary.parts),
            tuple(finding for summary in summaries for finding in summary.findings),
            tuple(dict.fromkeys(limit for summary in summaries for limit in summary.limits)),
        )


def _strings(value: object) -> tuple[str, ...]:
    """The strings of a JSON list; nothing for anything else."""
    return tuple(item for item in value if isinstance(item, str)) if isinstance(value, list) else ()


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _part_verdict(entry: object) -> PartVerdict | None:
    """A part of the metadata summary, or None when it is not one."""
    if not isinstance(entry, dict) or not isinstance(entry.get("part"), str):
        return None
    cell, status = entry.get("cell"), entry.get("status")
    return PartVerdict(
        cell if isinstance(cell, str) else "",
        entry["part"],
        _number(entry.get("points")),
        _number(entry.get("max_points")),
        _strings(entry.get("failed")),
        status if isinstance(status, str) else None,
    )
