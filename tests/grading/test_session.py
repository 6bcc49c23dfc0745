"""The grading engine (lcteach.grading.session): scores nbgrader can read, seeded and labelled runs,
and failures that cost only their own check."""

from __future__ import annotations

import pytest
import torch

from lcteach.grading.results import CheckFailed
from lcteach.grading.session import check, grade_part


@check("returns 1")
def returns_one(student, case):
    if case.call(student) != 1:
        raise CheckFailed("expected 1", "return 1")


@check("heavy check", weight=3)
def heavy(student, case):
    returns_one(student, case)


@check("always fails")
def always_fails(student, case):
    raise CheckFailed("expected something else", "try again")


def test_score_is_the_weighted_fraction_and_reprs_as_a_number(capsys):
    result = grade_part("demo", 2, [returns_one, heavy, always_fails], lambda: 1, seed=None)
    assert result.points == pytest.approx(2 * 4 / 5)
    assert float(repr(result)) == result.points  # nbgrader parses the cell's text/plain result
    out = capsys.readouterr()
    assert "demo (self-check): 2/3 checks passed" in out.out and "hint: try again" in out.out
    assert out.err == ""


def test_graded_run_is_labelled_and_deterministic(capsys):
    seen = []

    @check("draws")
    def draws(student, case):
        seen.append(case.randint(0, 10**9))

    grade_part("demo", 1, [draws], lambda: 1, seed=42)
    grade_part("demo", 1, [draws], lambda: 1, seed=42)
    grade_part("demo", 1, [draws], lambda: 1, seed=None)
    assert seen[0] == seen[1] != seen[2]
    assert "graded run" in capsys.readouterr().out


@check("fails on drawn inputs")
def fails_on_drawn_inputs(student, case):
    n = case.randint(10**6, 10**7)
    raise CheckFailed("the count is too high", "count again", details=f"n={n}: expected 3, got 4")


def test_graded_run_reports_show_the_diagnosis_but_not_the_hidden_inputs(capsys):
    """The message and the hint hold for any input: graded feedback shows them; the details describe
    the inputs: only the self-check shows them, and a graded run says so when it withholds them."""
    result = grade_part("demo", 1, [always_fails, fails_on_drawn_inputs], lambda: 1, seed=1234)
    out = capsys.readouterr().out
    assert result.points == 0 and "expected something else" in out and "hint: try again" in out
    assert "the count is too high" in out and "hint: count again" in out
    assert "n=" not in out and "expected 3" not in out
    assert out.count("seen on the hidden inputs") == 1  # the check with fixed inputs does not say it
    grade_part("demo", 1, [fails_on_drawn_inputs], lambda: 1, seed=None)
    assert "details: n=" in capsys.readouterr().out


def test_a_students_error_message_is_a_detail(capsys):
    """The student's own exception message may quote the hidden inputs: graded feedback names its type only."""

    def raises(*args):
        raise IndexError("index 1234567 is out of bounds")

    grade_part("demo", 1, [returns_one], raises, seed=1234)
    out = capsys.readouterr().out
    assert "your function raised IndexError" in out and "1234567" not in out
    grade_part("demo", 1, [returns_one], raises, seed=None)
    assert "1234567" in capsys.readouterr().out


def test_not_a_function_fails_every_check(capsys):
    result = grade_part("demo", 1, [returns_one, heavy], None, seed=None)
    assert result.points == 0 and "expected a function, got NoneType" in capsys.readouterr().out


def test_exceptions_fail_only_their_check(capsys):
    def broken():
        raise KeyError("oops")

    result = grade_part("demo", 1, [returns_one], broken, seed=None)
    assert result.points == 0 and "your function raised KeyError" in capsys.readouterr().out


def test_student_code_gets_copies_of_its_arguments(capsys):
    x = torch.arange(4.0)

    @check("sees its own inputs unchanged")
    def inputs_unchanged(student, case):
        data = {"x": x, "parts": [x[:2], (x[2:],)]}
        case.call(student, x, data, scale=x)
        if not (torch.equal(x, torch.arange(4.0)) and data["parts"][0] is not None and len(data["parts"]) == 2):
            raise CheckFailed("the student's function changed the grader's inputs")

    def writes_everywhere(x, data, scale):
        x.zero_()
        scale.add_(1)
        data["x"].mul_(0)
        data["parts"][0].fill_(7)
        data["parts"][1][0].fill_(7)
        data["parts"].clear()
        return None

    assert grade_part("demo", 1, [inputs_unchanged], writes_everywhere, seed=None).points == 1
    assert torch.equal(x, torch.arange(4.0))


class Counter:
    def __init__(self):
        self.calls = 0

    def step(self, x):
        self.calls += 1
        return x + self.calls


@check("keeps state between method calls")
def counts(student, case):
    counter = case.call(student)
    step = case.method(counter, "step")
    if (case.call(step, 10), case.call(step, 10)) != (11, 12):
        raise CheckFailed("the object forgot its state")


def test_objects_the_student_returns_keep_their_state_locally_and_through_the_channel(capsys):
    from types import SimpleNamespace

    from grading_helpers import grade_remotely

    assert grade_part("demo", 1, [counts], Counter, seed=None).points == 1
    part = SimpleNamespace(id="demo.counter", points=1, checks=(counts,))
    assert grade_remotely(part, Counter, seed=3).points == 1
