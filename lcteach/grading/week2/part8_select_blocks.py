"""Week 2, part 8: ``select_blocks(q, k, block_size, keep, causal=False)``, the content-adaptive
block layout: each query block keeps the key blocks whose mean keys best match its mean query."""

from __future__ import annotations

import torch

from lcteach.grading.expectations import counted_only_if_right, expect_tensor
from lcteach.grading.mask_expectations import expect_mask
from lcteach.grading.results import CheckFailed
from lcteach.grading.session import Case, check
from lcteach.kernels import block_means
from lcteach.kernels import select_blocks as reference_select


def _top(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """The layout of the ``keep`` largest entries per row of (Tq, Tk) scores (-inf never kept)."""
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices[..., : min(keep, scores.shape[-1])]
    return torch.zeros(scores.shape, dtype=torch.bool).scatter_(-1, order, True) & (scores > float("-inf"))


def _causal(scores: torch.Tensor, *, own_block: bool = True) -> torch.Tensor:
    rows, columns = torch.arange(scores.shape[-2])[:, None], torch.arange(scores.shape[-1])[None, :]
    scores = scores.masked_fill(columns > rows, float("-inf"))
    return scores.masked_fill(columns == rows, float("inf")) if own_block else scores


def _mistakes(q, k, block_size: int, keep: int, causal: bool) -> dict[str, torch.Tensor]:
    """Layouts (Tq, Tk) of the classic mistakes, for batch 0, head 0."""
    q0, k0 = q[0, 0], k[0, 0]
    means = block_means(q0, block_size) @ block_means(k0, block_size).T
    pad_q, pad_k = -q0.shape[0] % block_size, -k0.shape[0] % block_size
    padded = torch.nn.functional.pad
    zero_padded = (
        padded(q0, (0, 0, 0, pad_q)).unflatten(0, (-1, block_size)).mean(1)
        @ padded(k0, (0, 0, 0, pad_k)).unflatten(0, (-1, block_size)).mean(1).T
    )
    sums = (
        padded(q0, (0, 0, 0, pad_q)).unflatten(0, (-1, block_size)).sum(1)
        @ padded(k0, (0, 0, 0, pad_k)).unflatten(0, (-1, block_size)).sum(1).T
    )
    first_rows = q0[::block_size] @ k0[::block_size].T
    prepare = _causal if causal else (lambda scores: scores)
    mistakes = {
        "the LOWEST-scoring key blocks: keep the keep highest scores": _top(prepare(-means), keep),
        # with causal=True this layout is the own block added on top of keep others (named below)
        "one key block too many per query block (keep + 1)": None if causal else _top(means, keep + 1),
        "one key block too few per query block (keep - 1)": _top(prepare(means), keep - 1) if keep > 1 else None,
        "blocks scored by their first rows: score a block by the mean of all its rows": _top(prepare(first_rows), keep),
    }
    if pad_q or pad_k:
        mistakes["means that count the zero padding of the last block: divide by its real rows"] = _top(
            prepare(zero_padded), keep
        )
        mistakes["blocks scored by their sums: a short last block must not lose for having fewer rows"] = _top(
            prepare(sums), keep
        )
    if causal:
        mistakes["the causal layout without its own block forced in: block i always keeps block i"] = _top(
            _causal(means, own_block=False), keep
        )
        mistakes["no causal restriction: a query block keeps no later key block"] = _top(means, keep)
        own = torch.eye(*means.shape, dtype=torch.bool)
        mistakes["its own block added on top of keep others: the own block counts as one of the keep"] = own | _top(
            _causal(means, own_block=False).masked_fill(own, float("-inf")), keep
        )
    return {name: layout for name, layout in mistakes.items() if layout is not None}


def _check(student, case: Case, n_q: int, n_k: int, block_size: int, keep: int, causal: bool = False):
    batch, heads, d = case.randint(1, 2), case.randint(1, 2), case.randint(2, 12)
    q, k = case.randn(batch, heads, n_q, d), case.randn(batch, heads, n_k, d)
    result = (
        case.call(student, q, k, block_size, keep, causal=True)
        if causal
        else case.call(student, q, k, block_size, keep)
    )
    expected = reference_select(q, k, block_size, keep, causal=causal)
    inputs = f"Nq={n_q}, Nk={n_k}, block_size={block_size}, keep={keep}{', causal' if causal else ''}"
    layout = expect_tensor(result, "the layout", expected.shape, torch.bool, "(B, H, Tq, Tk)", inputs)
    mistakes = _mistakes(q, k, block_size, keep, causal)
    for b in range(batch):
        for h in range(heads):
            if b or h:
                mistakes = {}  # the mistakes are written down for batch 0, head 0
            expect_mask(
                layout[b, h],
                expected[b, h],
                "the layout",
                mistakes,
                f"{inputs}, batch {b}, head {h} (entries are (query block, key block))",
            )


@check("keeps each query block's keep best key blocks, n a multiple of block_size")
def _select_even(student, case):
    block_size = case.randint(2, 6)
    q_blocks, k_blocks = case.randint(3, 8), case.randint(4, 10)
    _check(student, case, q_blocks * block_size, k_blocks * block_size, block_size, case.randint(1, k_blocks - 2))


@check("ragged sizes: the last block's mean is over its real rows")
def _select_ragged(student, case):
    block_size = case.randint(4, 8)
    n_q = block_size * case.randint(2, 6) + case.randint(1, block_size - 1)
    n_k = block_size * case.randint(3, 8) + case.randint(1, block_size - 1)
    for _ in range(2):
        _check(student, case, n_q, n_k, block_size, case.randint(1, 3))


@check("causal: no later key block, the query block's own block always kept and counted in keep")
def _select_causal(student, case):
    block_size = case.randint(2, 6)
    n = block_size * case.randint(5, 9) + case.randint(0, block_size - 1)
    _check(student, case, n, n, block_size, case.randint(2, 4), causal=True)


@check("keep larger than the number of key blocks keeps them all; the layout is a bool tensor")
def _select_everything(student, case):
    block_size = case.randint(2, 5)
    n_q, n_k = block_size * case.randint(2, 4), block_size * case.randint(2, 4)
    q, k = case.randn(1, 1, n_q, 4), case.randn(1, 1, n_k, 4)
    keep = n_k // block_size + case.randint(0, 3)

    def keeps_all():
        result = expect_tensor(
            case.call(student, q, k, block_size, keep),
            "the layout",
            (1, 1, n_q // block_size, n_k // block_size),
            torch.bool,
            "(B, H, Tq, Tk)",
            f"Nq={n_q}, Nk={n_k}, block_size={block_size}, keep={keep}",
        )
        if not bool(result.all()):
            raise CheckFailed(
                "with keep at least the number of key blocks, some blocks were not kept",
                "take min(keep, Tk) blocks per row: torch.topk refuses k > Tk, so clamp it",
            )

    counted_only_if_right(
        "every block is kept", keeps_all, lambda: _check(student, case, n_q, n_k, block_size, case.randint(1, 2))
    )


CHECKS = (
    _select_even,
    _select_ragged,
    _select_causal,
    _select_everything,
)
