"""Week 2, part 1: ``generate_strided(stride, causal=False)``, the strided (dilated) pattern as a mask_mod."""

from __future__ import annotations

import torch
from torch.nn.attention.flex_attention import and_masks

from lcteach.grading.expectations import counted_only_if_right, expect_rejects_non_positive
from lcteach.grading.mask_expectations import expect_mask, grid, materialised, student_mask
from lcteach.grading.session import Case, check
from lcteach.masks import causal_mask as reference_causal_mask
from lcteach.masks import generate_strided as reference_strided


def _strided_mistakes(n_q: int, n_k: int, stride: int, causal: bool) -> dict[str, torch.Tensor]:
    i, j = grid(n_q, n_k)
    earlier = j <= i if causal else torch.ones(n_q, n_k, dtype=torch.bool)
    on_stride = (i - j) % stride == 0
    mistakes = {
        "a stride one too large: keys i, i - stride, i + stride, ... are exactly `stride` apart": earlier
        & ((i - j) % (stride + 1) == 0),
        "keys at multiples of the stride (kv_idx % stride == 0) instead of multiples of the stride away from the "
        "query ((q_idx - kv_idx) % stride == 0)": earlier & (j % stride == 0),
        "the pattern without the query itself: a distance of 0 is a multiple of the stride": earlier
        & on_stride
        & (i != j),
    }
    if stride > 1:
        mistakes["a stride one too small: keys are exactly `stride` apart"] = earlier & ((i - j) % (stride - 1) == 0)
    if causal:
        mistakes["a pattern that also looks at later keys: causal=True keeps only keys j <= i"] = on_stride
        mistakes["later keys instead of earlier ones (q_idx and kv_idx swapped)"] = on_stride & (j >= i)
    else:
        mistakes["only earlier keys: without causal=True the pattern looks both ways"] = on_stride & (j <= i)
    return mistakes


def _check_strided(student, case: Case, n_q: int, n_k: int, stride: int, causal: bool):
    mask_mod = case.call(student, stride, causal=True) if causal else case.call(student, stride)
    reference = reference_strided(stride)
    expected = materialised(and_masks(reference_causal_mask, reference) if causal else reference, n_q, n_k)
    what = f"the mask of generate_strided(stride{', causal=True' if causal else ''})"
    inputs = f"generate_strided({stride}{', causal=True' if causal else ''}) with {n_q} queries and {n_k} keys"
    expect_mask(
        student_mask(case, mask_mod, n_q, n_k), expected, what, _strided_mistakes(n_q, n_k, stride, causal), inputs
    )


def _random_strided(student, case):
    """The comparison for a random n and stride, drawn now, run when called."""
    stride = case.randint(2, 7)
    n_q, n_k = case.randint(3 * stride, 60), case.randint(3 * stride, 60)
    return lambda: _check_strided(student, case, n_q, n_k, stride, causal=False)


@check("matches (i - j) % stride == 0 in both directions, for random n and stride")
def _strided_random(student, case):
    _random_strided(student, case)()


@check("causal=True keeps only the earlier keys, the query included")
def _strided_causal(student, case):
    stride = case.randint(2, 7)
    n = case.randint(3 * stride, 60)
    _check_strided(student, case, n, n, stride, causal=True)


@check("stride=1 is full attention (with causal=True: the causal mask)")
def _strided_one(student, case):
    n = case.randint(4, 24)

    def stride_one():
        _check_strided(student, case, n, n, 1, causal=False)
        _check_strided(student, case, n, n, 1, causal=True)

    counted_only_if_right("stride=1 is right", stride_one, _random_strided(student, case))


@check("stride < 1 raises ValueError")
def _strided_invalid(student, case):
    expect_rejects_non_positive(case, student, "generate_strided", "stride", _random_strided)


CHECKS = (
    _strided_random,
    _strided_causal,
    _strided_one,
    _strided_invalid,
)
