"""Week 1, part 4: ``online_softmax_step(m, l, acc, scores, values) -> (m, l, acc)``, one block of the online softmax."""

from __future__ import annotations

import torch

from lcteach.grading.expectations import counted_only_if_right, expect_close, expect_tensor
from lcteach.grading.results import CheckFailed
from lcteach.grading.session import Case, check
from lcteach.kernels import finalize_softmax_state, init_softmax_state


def _fold(student, case: Case, scores: torch.Tensor, values: torch.Tensor, sizes: list[int], inputs: str):
    """Feed blocks of the given sizes to the student's step; return the final (m, l, acc)."""
    rows = scores.shape[:-1]
    m, l, acc = init_softmax_state(rows, values.shape[-1], dtype=scores.dtype, device=scores.device)
    start = 0
    for size in sizes:
        result = case.call(student, m, l, acc, scores[..., start : start + size], values[..., start : start + size, :])
        if not isinstance(result, (tuple, list)) or len(result) != 3:
            raise CheckFailed(
                f"online_softmax_step should return (m, l, acc), got {type(result).__name__}",
                "end your function with `return m_new, l_new, acc_new`",
            )
        m = expect_tensor(result[0], "m", rows, scores.dtype, "(..., Nq)", inputs)
        l = expect_tensor(result[1], "l", rows, scores.dtype, "(..., Nq)", inputs)
        acc = expect_tensor(result[2], "acc", acc.shape, scores.dtype, "(..., Nq, Dv)", inputs)
        start += size
    return m, l, acc


def _random_sizes(case: Case, n: int) -> list[int]:
    sizes = []
    while sum(sizes) < n:
        sizes.append(min(case.randint(1, 7), n - sum(sizes)))
    return sizes


def _check_fold(student, case, scores, values, sizes, what):
    inputs = f"scores {tuple(scores.shape)}, values {tuple(values.shape)}, blocks of sizes {sizes}"
    m, l, acc = _fold(student, case, scores, values, sizes, inputs)
    out, _ = finalize_softmax_state(m, l, acc)
    if not torch.isfinite(out).all():
        raise CheckFailed(
            f"{what}: acc / l contains inf or NaN",
            "keep a running maximum m and compute exp(scores - m_new); rescale the old l and acc "
            "by exp(m_old - m_new); where m_new is -inf use 0 instead (exp(-inf - -inf) is NaN)",
            details=inputs,
        )
    expected = torch.softmax(scores, dim=-1).nan_to_num(0.0) @ values
    expect_close(
        out,
        expected,
        f"{what}: acc / l",
        "when the maximum grows, multiply the old l and acc by exp(m_old - m_new) before adding the new block",
        inputs=inputs,
    )
    return m, l, inputs


def _scores_values(case: Case, scale: float = 1.0):
    rows, n, d = case.randint(2, 6), case.randint(12, 40), case.randint(2, 6)
    return case.randn(2, rows, n) * scale, case.randn(2, n, d)


def _many_blocks(student, case):
    """The comparison on ordinary blocks of random sizes, drawn now, run when called."""
    scores, values = _scores_values(case)
    sizes = _random_sizes(case, scores.shape[-1])
    return lambda: _check_fold(student, case, scores, values, sizes, "with many blocks")


@check("one block gives softmax(s) @ v")
def _online_one_block(student, case):
    scores, values = _scores_values(case)
    _check_fold(student, case, scores, values, [scores.shape[-1]], "with a single block")


@check("blocks of random sizes give the one-shot result")
def _online_many_blocks(student, case):
    _many_blocks(student, case)()


@check("m is the running max and l the sum of exp(s - m)")
def _online_state(student, case):
    scores, values = _scores_values(case)
    m, l, inputs = _check_fold(student, case, scores, values, _random_sizes(case, scores.shape[-1]), "with many blocks")
    expect_close(m, scores.amax(-1), "m", "m_new = maximum(m, scores.amax(-1))", inputs=inputs)
    expect_close(
        l,
        torch.exp(scores - scores.amax(-1, keepdim=True)).sum(-1),
        "l",
        "l_new = l * exp(m - m_new) + exp(scores - m_new).sum(-1)",
        inputs=inputs,
    )


@check("scores of size +-1000 do not overflow")
def _online_large(student, case):
    scores, values = _scores_values(case, scale=1000.0)
    sizes = _random_sizes(case, scores.shape[-1])
    counted_only_if_right(
        "large scores do not overflow",
        lambda: _check_fold(student, case, scores, values, sizes, "with scores of size +-1000"),
        _many_blocks(student, case),
    )


@check("a fully masked block (all -inf) changes nothing, even as the first block")
def _online_masked(student, case):
    scores, values = _scores_values(case)
    scores[..., :3] = float("-inf")
    sizes = [3] + _random_sizes(case, scores.shape[-1] - 3)
    counted_only_if_right(
        "a masked block changes nothing",
        lambda: _check_fold(student, case, scores, values, sizes, "after a fully masked first block"),
        _many_blocks(student, case),
    )


CHECKS = (
    _online_one_block,
    _online_many_blocks,
    _online_state,
    _online_large,
    _online_masked,
)
