"""What the graders' tests share: grading locally and through the channel, reading failures, release
stubs, and the contract every week's exercises notebook keeps with its grader module."""

from __future__ import annotations

import inspect
import re
import socket
import threading
from pathlib import Path

import pytest
import torch
from notebook_source import nbgrader_cells, solution_namespace

from lcteach.grading.channel import Client, Server
from lcteach.grading.guard import private_copy
from lcteach.grading.local import measure_here
from lcteach.grading.session import judge_remote

GRADED_CALL = re.compile(r"^grade\.(\w+)\((\w+)\)$")


class InProcessMeasurer:
    """Stands in for the measuring process in tests: measures ``fn`` in this process."""

    def __init__(self, fn):
        self.student = fn

    def measure(self, fn, *args, **kwargs):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as in the measuring process
        try:
            return measure_here(fn, *private_copy(args), **private_copy(kwargs))
        finally:
            torch.set_num_threads(threads)

    def release(self) -> None:
        pass


def grade_remotely(part, fn, seed: int | None = None, measurer=InProcessMeasurer):
    """Judge ``fn`` as the trusted grader does: the checks here, ``fn`` behind a channel in a thread;
    ``measurer(fn)`` starts what measures it."""
    trusted, student = socket.socketpair()
    served = threading.Thread(target=lambda: Server(student).serve({"student": fn}), daemon=True)
    served.start()
    client = Client(trusted, time_limit=60)
    hello = client.hello()
    try:
        return judge_remote(part, client, hello["student"], seed, lambda: measurer(fn))
    finally:
        client.finish()
        served.join(10)
        student.close()


def run(part, fn, capsys, seed=None):
    """Grade ``fn`` in this process (the self-check) and through the channel (the trusted grader);
    check that both give the same verdict check by check. (A function that delegates to lcteach is
    judged locally only: behind the channel here the references are at hand, in the sandbox not.)"""
    result = part(fn, seed=seed)
    report = capsys.readouterr()
    assert report.err == "", "graders must not write to stderr (nbgrader would score the cell 0)"
    if result.delegated_to:
        return result, report.out
    remote = grade_remotely(part, fn, seed)
    capsys.readouterr()
    assert [(o.name, o.passed) for o in remote.outcomes] == [(o.name, o.passed) for o in result.outcomes], (
        report.out + "\n" + remote.report()
    )
    return result, report.out


def failed(result) -> dict[str, str]:
    """Failed check name -> its message and hint."""
    return {o.name: f"{o.message} | {o.hint}" for o in result.outcomes if not o.passed}


def release_stub(fn):
    """A function with ``fn``'s signature whose body is nbgrader's release stub."""
    namespace: dict = {}
    exec(f"def {fn.__name__}{inspect.signature(fn)}:\n    raise NotImplementedError()", namespace)
    return namespace[fn.__name__]


def graded_calls(exercises: Path) -> dict[str, tuple[str, dict, str]]:
    """Grader part -> (the student function its cell grades, the cell's nbgrader metadata, the cell's
    source), read from the call ``grade.<part>(<function>)`` that is each graded code cell."""
    calls = {}
    for cell, meta in nbgrader_cells(exercises):
        if meta.get("grade") and cell.cell_type == "code":
            match = GRADED_CALL.match(cell.source.strip())
            assert match, f"graded cell {meta.get('grade_id')} is not one call grade.<part>(<function>)"
            part, function = match.groups()
            calls[part] = (function, meta, cell.source)
    return calls


def contract_tests(grade, exercises: Path, total_points: int):
    """The solution namespace of ``exercises`` and the tests that every week's notebook and grader pass:
    (test_solution_earns_full_marks, test_release_stub_earns_nothing, test_graded_cells_match_the_graders,
    test_total_points_and_written_answer). Bind them to those names in the week's test module."""
    solution = solution_namespace(exercises)
    calls = graded_calls(exercises)
    part_ids = {"ids": lambda part: part.__name__}

    def student(part):
        return getattr(solution, calls[part.__name__][0])

    @pytest.mark.parametrize("part", grade.PARTS, **part_ids)
    @pytest.mark.parametrize("seed", [None, 7331], ids=["public", "graded"])
    def test_solution_earns_full_marks(part, seed, capsys):
        result, report = run(part, student(part), capsys, seed)
        assert result.points == part.points, report
        assert float(repr(result)) == part.points

    @pytest.mark.parametrize("part", grade.PARTS, **part_ids)
    def test_release_stub_earns_nothing(part, capsys):
        result, report = run(part, release_stub(student(part)), capsys)
        assert result.points == 0
        assert "NotImplementedError" in report

    def test_graded_cells_match_the_graders():
        """Every graded code cell is the one call of its part, with no hidden seed in it; points agree."""
        assert set(calls) == set(grade.POINTS)
        for name, points in grade.POINTS.items():
            function, meta, source = calls[name]
            assert meta["grade_id"] == f"test_{name}" and meta["points"] == points and meta["locked"]
            assert source.strip() == f"grade.{name}({function})" and "seed" not in source
            assert callable(getattr(solution, function, None)), f"no solution cell defines {function}"

    def test_total_points_and_written_answer():
        manual = [
            meta for cell, meta in nbgrader_cells(exercises) if meta.get("grade") and cell.cell_type == "markdown"
        ]
        assert len(manual) == 1 and manual[0]["solution"]
        assert sum(grade.POINTS.values()) + manual[0]["points"] == total_points

    return solution, (
        test_solution_earns_full_marks,
        test_release_stub_earns_nothing,
        test_graded_cells_match_the_graders,
        test_total_points_and_written_answer,
    )
