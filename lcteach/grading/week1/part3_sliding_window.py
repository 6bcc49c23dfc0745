"""Week 1, part 3: ``generate_sliding_window(window)``, a causal window of ``window`` keys, the query included."""

from __future__ import annotations

import torch

from lcteach.grading.expectations import expect_value_error
from lcteach.grading.mask_expectations import expect_mask, student_mask
from lcteach.grading.session import check
from lcteach.masks import generate_sliding_window as reference_sliding_window
from lcteach.masks import materialize_mask


def _window_mistakes(n: int, window: int) -> dict[str, torch.Tensor]:
    i = torch.arange(n)[:, None]
    j = torch.arange(n)[None, :]
    return {
        f"a window of {window + 1} keys: a window of w keys includes the query itself": (i >= j) & (i - j <= window),
        f"a window of {window - 1} keys: a window of w keys includes the query itself": (i >= j) & (i - j < window - 1),
        "a window that also looks at future keys": (i - j).abs() < window,
    }


def _check_window(student, case, n: int, window: int):
    mask_mod = case.call(student, window)
    expected = materialize_mask(reference_sliding_window(window), n)[0, 0]
    expect_mask(
        student_mask(case, mask_mod, n, n),
        expected,
        f"sliding window {window} over {n} tokens",
        _window_mistakes(n, window),
    )


@check("window=1: each query sees only itself")
def _window_one(student, case):
    _check_window(student, case, case.randint(4, 30), 1)


@check("matches the reference for random n and window")
def _window_random(student, case):
    n = case.randint(10, 48)
    _check_window(student, case, n, case.randint(2, n - 2))


@check("a window as long as the sequence is the causal mask")
def _window_full(student, case):
    n = case.randint(4, 30)
    _check_window(student, case, n, n + case.randint(0, 5))


@check("window < 1 raises ValueError")
def _window_invalid(student, case):
    for bad in (0, -case.randint(1, 5)):
        expect_value_error(
            case,
            student,
            bad,
            call=f"generate_sliding_window({bad})",
            hint="check the argument first: `if window < 1: raise ValueError(...)` with a message naming it",
        )


CHECKS = (
    _window_one,
    _window_random,
    _window_full,
    _window_invalid,
)
