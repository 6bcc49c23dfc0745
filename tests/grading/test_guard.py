"""The guard student code runs under (lcteach.grading.guard): clean stderr, a time limit, delegation
caught however it is reached, and the interpreter's state restored."""

from __future__ import annotations

import sys
import time
import warnings

import torch

from lcteach.grading import guard
from lcteach.grading.results import CheckFailed
from lcteach.grading.session import check, grade_part


@check("returns 1")
def returns_one(student, case):
    if case.call(student) != 1:
        raise CheckFailed("expected 1", "return 1")


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
    monkeypatch.setattr(guard, "CALL_TIME_LIMIT", 0.5)

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
        callback = case.callback(lambda: lcteach.fit_exponent([1, 2], [1, 4]))
        if case.call(student, callback) != 2:
            raise CheckFailed("expected 2")

    result = grade_part("demo", 1, [calls_back], lambda cb: round(cb()), seed=None)
    assert result.points == 1, capsys.readouterr().out


def test_guard_restores_threads_and_profile(capsys):
    threads = torch.get_num_threads()
    grade_part("demo", 1, [returns_one], lambda: torch.get_num_threads(), seed=None)
    assert torch.get_num_threads() == threads and sys.getprofile() is None
