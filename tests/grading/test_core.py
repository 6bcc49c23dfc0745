"""The grading engine: scores nbgrader can read, a guard that survives broken and sneaky code."""

from __future__ import annotations

import sys
import time
import warnings

import pytest
import torch

from lcteach.grading import core
from lcteach.grading.core import CheckFailed, check, grade_part


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


def test_graded_run_reports_do_not_describe_the_hidden_inputs(capsys):
    result = grade_part("demo", 1, [always_fails], lambda: 1, seed=1234)
    out = capsys.readouterr().out
    assert result.points == 0 and "always fails" in out
    assert "expected something else" not in out and "try again" not in out


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


def test_warnings_and_stderr_are_sent_to_stdout(capsys):
    def noisy():
        warnings.warn("something deprecated", DeprecationWarning, stacklevel=2)
        print("a progress bar", file=sys.stderr)
        return 1

    result = grade_part("demo", 1, [returns_one], noisy, seed=None)
    out = capsys.readouterr()
    assert result.points == 1 and out.err == ""
    assert "something deprecated" in out.out and "a progress bar" in out.out


def test_endless_loops_are_stopped(monkeypatch, capsys):
    monkeypatch.setattr(core, "CALL_TIME_LIMIT", 0.5)

    def endless():
        while True:
            pass

    start = time.perf_counter()
    result = grade_part("demo", 1, [returns_one, returns_one], endless, seed=None)
    assert time.perf_counter() - start < 5
    assert result.points == 0 and "still running after 0.5 s" in capsys.readouterr().out


def test_delegation_is_caught_through_any_alias(capsys):
    from lcteach.kernels import merge_attention as innocent_name

    def sneaky():
        x = torch.zeros(1, 1)
        innocent_name(x, torch.zeros(1), x, torch.zeros(1))
        return 1

    result = grade_part("demo", 1, [returns_one], sneaky, seed=None)
    assert result.points == 0 and "lcteach.kernels.online_softmax.merge_attention" in capsys.readouterr().out


def test_switching_off_the_guard_is_caught(capsys):
    def tamper():
        sys.setprofile(None)
        return 1

    result = grade_part("demo", 1, [returns_one], tamper, seed=None)
    assert result.points == 0 and "sys.setprofile" in capsys.readouterr().out
    assert sys.getprofile() is None


def test_trusted_callbacks_may_use_the_reference(capsys):
    import lcteach

    @check("calls back")
    def calls_back(student, case):
        callback = case.guard.trusted(lambda: lcteach.fit_exponent([1, 2], [1, 4]))
        if case.call(student, callback) != 2:
            raise CheckFailed("expected 2")

    result = grade_part("demo", 1, [calls_back], lambda cb: round(cb()), seed=None)
    assert result.points == 1, capsys.readouterr().out


def test_guard_restores_threads_and_profile(capsys):
    threads = torch.get_num_threads()
    grade_part("demo", 1, [returns_one], lambda: torch.get_num_threads(), seed=None)
    assert torch.get_num_threads() == threads and sys.getprofile() is None


def test_expect_close_names_a_matching_mistake():
    expected = torch.ones(3)
    with pytest.raises(CheckFailed) as failure:
        core.expect_close(torch.full((3,), 2.0), expected, "out", mistakes={"doubling": torch.full((3,), 2.0)})
    assert failure.value.hint == "your result matches doubling"
    assert "max abs error 1" in failure.value.message


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_tolerances_accept_reordered_sums_and_reject_real_errors(dtype):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1000, generator=generator, dtype=torch.float64)
    exact = x.sum().to(dtype)
    reordered = x.to(dtype).flip(0).cumsum(0)[-1]
    core.expect_close(reordered.reshape(1), exact.reshape(1), "sum")
    with pytest.raises(CheckFailed):
        core.expect_close((exact * 1.1 + 1).reshape(1), exact.reshape(1), "sum")


def test_expect_tensor_rejects_lookalikes():
    class AlwaysEqual:
        def __eq__(self, other):
            return True

    with pytest.raises(CheckFailed, match="should be a torch.Tensor"):
        core.expect_tensor(AlwaysEqual(), "out")
    with pytest.raises(CheckFailed, match="shape"):
        core.expect_tensor(torch.zeros(2, 3), "out", (3, 2))
    with pytest.raises(CheckFailed, match="dtype"):
        core.expect_tensor(torch.zeros(2), "out", (2,), torch.float64)
