"""Week 1, part 2: ``causal_mask(b, h, q_idx, kv_idx)``, the causal mask_mod (the diagonal included)."""

from __future__ import annotations

import torch

from lcteach.grading.expectations import counted_only_if_right
from lcteach.grading.mask_expectations import expect_mask, materialised, student_mask
from lcteach.grading.session import check
from lcteach.masks import causal_mask as reference_causal_mask


def _causal_mistakes(n_q: int, n_k: int) -> dict[str, torch.Tensor]:
    i = torch.arange(n_q)[:, None]
    j = torch.arange(n_k)[None, :]
    return {
        "i > j: the query must also attend to itself": i > j,
        "i <= j: queries looking at the future (transposed)": i <= j,
    }


def _check_causal(student, case, n_q, n_k):
    expected = materialised(reference_causal_mask, n_q, n_k)
    expect_mask(
        student_mask(case, student, n_q, n_k),
        expected,
        "your causal mask",
        _causal_mistakes(n_q, n_k),
        f"{n_q} queries and {n_k} keys",
    )


@check("matches the causal mask, diagonal included")
def _causal_square(student, case):
    n = case.randint(5, 40)
    _check_causal(student, case, n, n)


@check("works with different numbers of queries and keys")
def _causal_rectangular(student, case):
    _check_causal(student, case, case.randint(3, 20), case.randint(21, 40))


@check("a single token attends to itself")
def _causal_single(student, case):
    n = case.randint(5, 40)
    counted_only_if_right(
        "a single token attends to itself",
        lambda: _check_causal(student, case, 1, 1),
        lambda: _check_causal(student, case, n, n),
    )


CHECKS = (
    _causal_square,
    _causal_rectangular,
    _causal_single,
)
