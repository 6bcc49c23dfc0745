"""Week 1, part 1: ``dense_attention(q, k, v, mask=None) -> (out, weights)``, softmax(q k^T / sqrt(d)) v."""

from __future__ import annotations

import math

import torch

from lcteach.grading.expectations import expect_close, expect_pair, expect_tensor
from lcteach.grading.results import CheckFailed
from lcteach.grading.session import Case, check
from lcteach.kernels import dense_attention as reference_attention


def _random_qkv(case: Case, dtype=torch.float32):
    b, h, n_q, n_k = case.randint(1, 2), case.randint(1, 3), case.randint(3, 12), case.randint(3, 12)
    d, d_v = case.randint(2, 8), case.randint(2, 8)
    return (
        case.randn(b, h, n_q, d, dtype=dtype),
        case.randn(b, h, n_k, d, dtype=dtype),
        case.randn(b, h, n_k, d_v, dtype=dtype),
    )


def _attention_mistakes(q, k, v, mask=None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Outputs and weights of the usual wrong versions, to name the mistake in a hint."""
    raw = q @ k.transpose(-2, -1)
    d = q.shape[-1]
    variants = {
        "attention without the 1/sqrt(d) scaling": (raw, -1),
        "scaling by 1/d instead of 1/sqrt(d)": (raw / d, -1),
        "a softmax over the query axis (dim=-2) instead of the key axis": (raw / math.sqrt(d), -2),
    }
    out = {}
    for name, (scores, axis) in variants.items():
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=axis).nan_to_num(0.0)
        out[name] = (weights @ v, weights)
    if mask is not None:
        weights = torch.softmax(raw / math.sqrt(d), dim=-1) * mask
        out["zeroing masked weights after the softmax without renormalising"] = (weights @ v, weights)
        weights = torch.softmax((raw / math.sqrt(d)).masked_fill(mask, float("-inf")), dim=-1).nan_to_num(0.0)
        out["an inverted mask (True must mean 'may attend')"] = (weights @ v, weights)
    return out


def _run_attention(student, case: Case, q, k, v, mask=None, compare=True):
    args = (q, k, v) if mask is None else (q, k, v, mask)
    out, weights = expect_pair(case.call(student, *args), "dense_attention", "(out, weights)")
    expected_out, expected_weights = reference_attention(q, k, v, mask)
    out = expect_tensor(out, "out", expected_out.shape, q.dtype)
    weights = expect_tensor(weights, "weights", expected_weights.shape, q.dtype)
    if compare:
        mistakes = _attention_mistakes(q, k, v, mask)
        expect_close(weights, expected_weights, "weights", mistakes={n: w for n, (_, w) in mistakes.items()})
        expect_close(
            out,
            expected_out,
            "out",
            "weights are right, so check the final product with v",
            mistakes={n: o for n, (o, _) in mistakes.items()},
        )
    return out, weights


@check("returns (out, weights) with shapes (B, H, Nq, Dv) and (B, H, Nq, Nk), finite")
def _dense_shapes(student, case):
    out, weights = _run_attention(student, case, *_random_qkv(case), compare=False)
    if not (torch.isfinite(out).all() and torch.isfinite(weights).all()):
        raise CheckFailed(
            "on ordinary random inputs your output contains inf or NaN",
            "print the scores, the weights and the output of a small example to see where it starts",
        )


@check("matches softmax(q k^T / sqrt(d)) v on random inputs")
def _dense_values(student, case):
    _run_attention(student, case, *_random_qkv(case))


@check("each row of the weights sums to 1")
def _dense_rows(student, case):
    _, weights = _run_attention(student, case, *_random_qkv(case), compare=False)
    expect_close(
        weights.sum(-1),
        torch.ones(weights.shape[:-1]),
        "row sums of the weights",
        "normalise over the key axis (the last one)",
    )


@check("a boolean mask: False pairs get zero weight")
def _dense_mask(student, case):
    q, k, v = _random_qkv(case)
    mask = torch.rand(q.shape[-2], k.shape[-2], generator=case.generator) < 0.6
    mask[torch.arange(q.shape[-2]), torch.randint(0, k.shape[-2], (q.shape[-2],), generator=case.generator)] = True
    _run_attention(student, case, q, k, v, mask)


@check("stable for large scores (no overflow in exp)")
def _dense_stable(student, case):
    q, k, v = _random_qkv(case)
    out, weights = _run_attention(student, case, q * 200, k * 200, v, compare=False)
    if not (torch.isfinite(out).all() and torch.isfinite(weights).all()):
        raise CheckFailed(
            "with scores in the thousands your output contains inf or NaN",
            "subtract each row's maximum score before exp: softmax does not change, exp cannot overflow",
        )
    _run_attention(student, case, q * 200, k * 200, v)


@check("float64 inputs give float64 results to 1e-9")
def _dense_float64(student, case):
    _run_attention(student, case, *_random_qkv(case, torch.float64))


CHECKS = (
    _dense_shapes,
    _dense_values,
    _dense_rows,
    _dense_mask,
    _dense_stable,
    _dense_float64,
)
