"""Week 2, part 6: ``topk_attention(q, k, v, top_k, causal=False, mask_mod=None) -> (out, weights)``."""

from __future__ import annotations

import math

import torch

from lcteach.grading.expectations import counted_only_if_right, expect_close, expect_pair, expect_tensor
from lcteach.grading.probes import table_mask_mod
from lcteach.grading.session import Case, check
from lcteach.kernels import dense_attention as reference_attention
from lcteach.kernels import topk_attention as reference_topk


def _topk_mistakes(q, k, v, top_k: int, causal: bool, mask: torch.Tensor | None) -> dict[str, tuple]:
    n_q, n_k = q.shape[-2], k.shape[-2]
    allowed = torch.ones(n_q, n_k, dtype=torch.bool)
    allowed = allowed.tril() if causal else allowed
    allowed = allowed if mask is None else allowed & mask
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])

    def keep(order: torch.Tensor, count: int, among: torch.Tensor) -> tuple:
        kept = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, order[..., :count], True) & among
        return reference_attention(q, k, v, kept)

    descending = scores.masked_fill(~allowed, float("-inf")).sort(dim=-1, descending=True, stable=True).indices
    ascending = scores.masked_fill(~allowed, float("inf")).sort(dim=-1, stable=True).indices
    top_all = scores.sort(dim=-1, descending=True, stable=True).indices
    kept = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, descending[..., :top_k], True) & allowed
    full = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1).nan_to_num(0.0) * kept
    mistakes = {
        "keeping top_k + 1 keys per query instead of top_k": keep(descending, top_k + 1, allowed),
        "keeping the smallest scores instead of the largest": keep(ascending, top_k, allowed),
        "a softmax over all keys, zeroed outside the top k without renormalising": (full @ v, full),
        "attention without the 1/sqrt(d) scaling": reference_topk(
            q, k, v, top_k, causal=causal, scale=1.0, mask_mod=None if mask is None else table_mask_mod(mask)
        ),
    }
    if top_k > 1:
        mistakes["keeping top_k - 1 keys per query instead of top_k"] = keep(descending, top_k - 1, allowed)
    if causal or mask is not None:
        mistakes["the top k chosen among all keys before masking: choose among the allowed keys only"] = keep(
            top_all, top_k, allowed
        )
    if causal:
        mistakes["no causal mask although causal=True: keys j > i are not allowed"] = reference_topk(q, k, v, top_k)
    else:
        later = reference_topk(
            q, k.flip(-2), v.flip(-2), top_k, mask_mod=None if mask is None else table_mask_mod(mask.flip(-1))
        )
        mistakes[
            "ties at the k-th score going to the later key: sort with torch.sort(scores, dim=-1, "
            "descending=True, stable=True), which puts the earlier of equal scores first (torch.topk promises "
            "no order for ties)"
        ] = (later[0], later[1].flip(-1))
    return mistakes


def _check_topk(
    student, case: Case, q, k, v, top_k: int, causal: bool = False, table: torch.Tensor | None = None, note: str = ""
):
    kwargs = {"causal": True} if causal else {}
    if table is not None:
        kwargs["mask_mod"] = case.call(table_mask_mod, table.clone())
    result = case.call(student, q, k, v, top_k, **kwargs)
    out, weights = expect_pair(result, "topk_attention", "(out, weights)")
    expected_out, expected_weights = reference_topk(
        q, k, v, top_k, causal=causal, mask_mod=None if table is None else table_mask_mod(table)
    )
    (_, heads, n_q, d), n_k = q.shape, k.shape[-2]
    inputs = f"H={heads}, Nq={n_q}, Nk={n_k}, D={d}, top_k={top_k}{', causal=True' if causal else ''}{note}"
    out = expect_tensor(out, "out", expected_out.shape, q.dtype, "(B, H, Nq, Dv)", inputs)
    weights = expect_tensor(weights, "weights", expected_weights.shape, q.dtype, "(B, H, Nq, Nk)", inputs)
    mistakes = _topk_mistakes(q, k, v, top_k, causal, table)
    expect_close(weights, expected_weights, "weights", mistakes={n: w for n, (_, w) in mistakes.items()}, inputs=inputs)
    expect_close(
        out,
        expected_out,
        "out",
        "the weights are right, so check the product with v",
        mistakes={n: o for n, (o, _) in mistakes.items()},
        inputs=inputs,
    )


def _topk_inputs(case: Case, dtype=torch.float32, n_q: int | None = None, n_k: int | None = None):
    n_q = case.randint(4, 12) if n_q is None else n_q
    n_k = case.randint(6, 16) if n_k is None else n_k
    d, d_v, heads = case.randint(2, 8), case.randint(2, 6), case.randint(1, 3)
    return (
        case.randn(1, heads, n_q, d, dtype=dtype),
        case.randn(1, heads, n_k, d, dtype=dtype),
        case.randn(1, heads, n_k, d_v, dtype=dtype),
    )


def _ordinary_topk(student, case):
    """The comparison on ordinary inputs, drawn now, run when called."""
    q, k, v = _topk_inputs(case)
    top_k = case.randint(2, k.shape[-2] - 2)
    return lambda: _check_topk(student, case, q, k, v, top_k)


@check("keeps each query's top_k highest scores, softmax over those only")
def _topk_random(student, case):
    _ordinary_topk(student, case)()
    _check_topk(student, case, *_topk_inputs(case, torch.float64), 1)


@check("top_k >= the number of keys is dense attention")
def _topk_dense(student, case):
    q, k, v = _topk_inputs(case)
    top_k = k.shape[-2] + case.randint(0, 3)
    counted_only_if_right(
        "top_k >= Nk is right", lambda: _check_topk(student, case, q, k, v, top_k), _ordinary_topk(student, case)
    )


@check("causal=True: the top_k among keys j <= i; a row with fewer allowed keys keeps them all")
def _topk_causal(student, case):
    n = case.randint(8, 14)
    q, k, v = _topk_inputs(case, n_q=n, n_k=n)
    _check_topk(student, case, q, k, v, case.randint(3, 5), causal=True)


@check("ties at the k-th score go to the earlier key")
def _topk_ties(student, case):
    n_q, n_k, d = case.randint(4, 8), case.randint(8, 12), 2
    # Small integers: many exactly equal scores, the same in every summation order.
    q = torch.randint(-2, 3, (1, 1, n_q, d), generator=case.generator).double()
    k = torch.randint(-1, 2, (1, 1, n_k, d), generator=case.generator).double()
    v = case.randn(1, 1, n_k, 3, dtype=torch.float64)
    _check_topk(student, case, q, k, v, case.randint(2, 4), note=", tied scores")


@check("mask_mod restricts the keys; a query with no allowed key gets zero weights and output")
def _topk_mask_mod(student, case):
    q, k, v = _topk_inputs(case)
    table = torch.rand(q.shape[-2], k.shape[-2], generator=case.generator) < 0.5
    table[0] = False  # a query that may attend no key
    _check_topk(student, case, q, k, v, case.randint(2, 4), table=table, note=", mask_mod")


CHECKS = (
    _topk_random,
    _topk_dense,
    _topk_causal,
    _topk_ties,
    _topk_mask_mod,
)
