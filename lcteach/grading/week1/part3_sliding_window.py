"""Week 1, part 3: ``generate_sliding_window(window)``, a causal window of ``window`` keys, the query included."""

from __future__ import annotations

import torch

from lcteach.grading.expectations import counted_only_if_right, expect_rejects_non_positive
from lcteach.grading.mask_expectations import expect_mask, materialised, student_mask
from lcteach.grading.session import check
from lcteach.masks import generate_sliding_window as reference_sliding_window


def _window_mistakes(n: int, window: int) -> dict[str, torch.Tensor]:
    i = torch.arange(n)[:, None]
    j = torch.arange(n)[None, :]
    return {
        "a window one key too long (window + 1 keys): a window of w keys includes the query itself": (i >= j)
        & (i - j <= window),
        "a window one key too short (window - 1 keys): a window of w keys includes the query itself": (i >= j)
        & (i - j < window - 1),
        "a window that also looks at future keys": (i - j).abs() < window,
    }


def _check_window(student, case, n: int, window: int):
    mask_mod = case.call(student, window)
    expected = materialised(reference_sliding_window(window), n)
    expect_mask(
        student_mask(case, mask_mod, n, n),
        expected,
        "your sliding window's mask",
        _window_mistakes(n, window),
        f"generate_sliding_window({window}) over {n} tokens",
    )


def _random_window(student, case):
    n = case.randint(10, 48)
    window = case.randint(2, n - 2)
    return lambda: _check_window(student, case, n, window)


@check("matches the reference for random n and window")
def _window_random(student, case):
    _random_window(student, case)()


@check("window=1: each query sees only itself")
def _window_one(student, case):
    n = case.randint(4, 30)
    counted_only_if_right(
        "window=1 is right", lambda: _check_window(student, case, n, 1), _random_window(student, case)
    )


@check("a window as long as the sequence is the causal mask")
def _window_full(student, case):
    n = case.randint(4, 30)
    window = n + case.randint(0, 5)
    counted_only_if_right(
        "a window covering the sequence is right",
        lambda: _check_window(student, case, n, window),
        _random_window(student, case),
    )


@check("window < 1 raises ValueError")
def _window_invalid(student, case):
    expect_rejects_non_positive(case, student, "generate_sliding_window", "window", _random_window)


CHECKS = (
    _window_random,
    _window_one,
    _window_full,
    _window_invalid,
)
