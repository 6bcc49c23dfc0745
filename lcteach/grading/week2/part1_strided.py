"""Week 2, part 1: ``generate_strided(stride, causal=False)``, the strided (dilated) pattern as a mask_mod,
with one stride for every head or a sequence of strides, one per head."""

from __future__ import annotations

import torch
from torch.nn.attention.flex_attention import and_masks

from lcteach.grading.expectations import counted_only_if_right, expect_rejects_non_positive, expect_value_error
from lcteach.grading.mask_expectations import VMAP_HINT, expect_mask, grid, materialised, student_mask
from lcteach.grading.results import CheckFailed
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


def _per_head_mistakes(n_q: int, n_k: int, strides: list[int], causal: bool) -> dict[str, torch.Tensor]:
    """Masks (heads, n_q, n_k) of the ways a per-head stride goes wrong."""
    i, j = grid(n_q, n_k)
    earlier = j <= i if causal else torch.ones(n_q, n_k, dtype=torch.bool)

    def heads(order: list[int]) -> torch.Tensor:
        return torch.stack([earlier & ((i - j) % stride == 0) for stride in order])

    any_stride = torch.stack([(i - j) % stride == 0 for stride in strides]).any(dim=0) & earlier
    mistakes = {
        "every head using stride[0]: head h must use stride[h], so index the strides with h": heads(
            [strides[0]] * len(strides)
        ),
        "head h using stride[h - 1]: the head index is off by one (h starts at 0)": heads(strides[-1:] + strides[:-1]),
        "head h using stride[h + 1]: the head index is off by one (h starts at 0)": heads(strides[1:] + strides[:1]),
        "the strides in reverse order (head h using stride[H - 1 - h])": heads(strides[::-1]),
        "every head taking the keys of all the strides together: head h must use stride[h] alone": any_stride.expand(
            len(strides), n_q, n_k
        ).clone(),
    }
    if causal:
        mistakes["a per-head pattern that also looks at later keys: causal=True keeps only keys j <= i"] = torch.stack(
            [(i - j) % stride == 0 for stride in strides]
        )
    return mistakes


def _check_per_head(student, case: Case, n_q: int, n_k: int, strides, causal: bool):
    strides = list(strides)
    given = tuple(strides) if causal else strides  # a list and a tuple: any sequence of ints
    mask_mod = case.call(student, given, causal=True) if causal else case.call(student, given)
    reference = reference_strided(strides)
    expected = materialised(
        and_masks(reference_causal_mask, reference) if causal else reference, n_q, n_k, heads=len(strides)
    )
    try:
        seen = student_mask(case, mask_mod, n_q, n_k, heads=len(strides))
    except CheckFailed as failure:
        if failure.hint != VMAP_HINT:
            raise
        raise failure.reworded(
            hint="under vmap h is a tensor: stride[h] on a Python list fails; make a tensor of the strides when "
            "the mask_mod is made, strides = torch.tensor(stride), and index it inside: strides[h]"
        ) from None
    expect_mask(
        seen,
        expected,
        f"the per-head mask of generate_strided(strides{', causal=True' if causal else ''})",
        _per_head_mistakes(n_q, n_k, strides, causal),
        f"generate_strided({given!r}{', causal=True' if causal else ''}) with {len(strides)} heads, {n_q} queries "
        f"and {n_k} keys",
    )


def _random_per_head(student, case, causal: bool = True):
    """The per-head comparisons (both ways, and causal unless ``causal=False``) for random heads and
    distinct strides, drawn now, run when called. The strides are distinct, so stride[0] everywhere,
    a shifted or a reversed order all give other masks."""
    heads = case.randint(3, 5)
    pool = list(range(1, 9))
    strides = [pool.pop(case.randint(0, len(pool) - 1)) for _ in range(heads)]
    n_q, n_k = case.randint(2 * max(strides), 40), case.randint(2 * max(strides), 40)
    n = case.randint(2 * max(strides), 40)

    def compare():
        _check_per_head(student, case, n_q, n_k, strides, causal=False)
        if causal:
            _check_per_head(student, case, n, n, strides, causal=True)

    return compare


@check("a sequence of strides: head h uses stride[h], both ways and with causal=True")
def _strided_per_head(student, case):
    _random_per_head(student, case)()


@check("stride < 1 raises ValueError")
def _strided_invalid(student, case):
    expect_rejects_non_positive(case, student, "generate_strided", "stride", _random_strided)


@check("a sequence with a stride < 1, or an empty sequence, raises ValueError")
def _strided_invalid_sequence(student, case):
    good = [case.randint(1, 6) for _ in range(case.randint(2, 4))]
    at = case.randint(0, len(good))
    zero = [*good[:at], 0, *good[at:]]
    negative = [*good, -case.randint(1, 5)]
    per_head = _random_per_head(student, case, causal=False)  # causal=True has checks of its own
    hint = (
        "check every stride of the sequence, and that there is at least one: raise ValueError naming the bad "
        "stride (a sequence holds one stride per head)"
    )

    def raises():
        for bad, call in (
            (zero, "a sequence holding a stride of 0"),
            (negative, "a sequence holding a negative stride"),
            ([], "an empty sequence"),
        ):
            expect_value_error(case, student, bad, call=call, hint=hint, inputs=f"generate_strided({bad!r})")

    counted_only_if_right("it raises ValueError", raises, per_head)


CHECKS = (
    _strided_random,
    _strided_causal,
    _strided_one,
    _strided_per_head,
    _strided_invalid,
    _strided_invalid_sequence,
)
