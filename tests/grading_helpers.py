"""What the graders' tests share: grading with a trusted replay, reading failures, release stubs,
and the contract every week's exercises notebook keeps with its grader module."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest
from notebook_source import nbgrader_cells, solution_namespace

from lcteach.grading.core import judge

HIDDEN_CALL = re.compile(r"grade\.(\w+)\((\w+), seed=(\d+)\)")


def run(part, fn, capsys, seed=None):
    """Grade ``fn``, and check that the trusted replay of its grading record agrees check by check."""
    result = part(fn, seed=seed)
    report = capsys.readouterr()
    assert report.err == "", "graders must not write to stderr (nbgrader would score the cell 0)"
    replayed = judge(json.loads(json.dumps(result.record, allow_nan=False)))
    assert replayed.outcomes == result.outcomes, report.out
    assert (replayed.points, replayed.delegated_to) == (result.points, result.delegated_to)
    return result, report.out


def failed(result) -> dict[str, str]:
    """Failed check name -> its message and hint."""
    return {o.name: f"{o.message} | {o.hint}" for o in result.outcomes if not o.passed}


def release_stub(fn):
    """A function with ``fn``'s signature whose body is nbgrader's release stub."""
    namespace: dict = {}
    exec(f"def {fn.__name__}{inspect.signature(fn)}:\n    raise NotImplementedError()", namespace)
    return namespace[fn.__name__]


def graded_calls(exercises: Path) -> dict[str, tuple[str, int, dict, str]]:
    """Grader part -> (the student function its cell grades, the hidden seed, the cell's nbgrader metadata,
    the cell's source), read from the hidden call ``grade.<part>(<function>, seed=N)`` of each graded code cell."""
    calls = {}
    for cell, meta in nbgrader_cells(exercises):
        if meta.get("grade") and cell.cell_type == "code":
            part, function, seed = HIDDEN_CALL.search(cell.source).groups()
            calls[part] = (function, int(seed), meta, cell.source)
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
    @pytest.mark.parametrize("hidden", [False, True], ids=["public", "hidden"])
    def test_solution_earns_full_marks(part, hidden, capsys):
        seed = calls[part.__name__][1] if hidden else None
        result, report = run(part, student(part), capsys, seed)
        assert result.points == part.points, report
        assert float(repr(result)) == part.points

    @pytest.mark.parametrize("part", grade.PARTS, **part_ids)
    def test_release_stub_earns_nothing(part, capsys):
        result, report = run(part, release_stub(student(part)), capsys)
        assert result.points == 0
        assert "NotImplementedError" in report

    def test_graded_cells_match_the_graders():
        """Every graded code cell calls its part once visibly and once with a hidden seed; points agree."""
        assert set(calls) == set(grade.POINTS)
        for name, points in grade.POINTS.items():
            function, _, meta, source = calls[name]
            assert meta["grade_id"] == f"test_{name}" and meta["points"] == points and meta["locked"]
            visible, _ = source.split("### BEGIN HIDDEN TESTS")
            assert visible.strip() == f"grade.{name}({function})"
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
