"""Week 1, part 1: ``dense_attention(q, k, v, mask=None) -> (out, weights)``, softmax(q k^T / sqrt(d)) v."""

from __future__ import annotations

import math

import torch

from lcteach.grading.channel import tool
from lcteach.grading.expectations import counted_only_if_right, expect_close, expect_pair, expect_tensor
from lcteach.grading.results import CheckFailed
from lcteach.grading.session import Case, check
from lcteach.kernels import dense_attention as reference_attention

INPUTS_PROBE = "call_and_inputs"  # the student's side's probe: a call, and its arguments afterwards (channel.TOOLS)

STABLE_TOLERANCES = (1e-3, 1e-4)  # (rtol, atol) at scores near 1000: float32 rounds them to ~1e-4


def _random_qkv(case: Case, dtype=torch.float32):
    b, h, n_q, n_k = case.randint(1, 2), case.randint(1, 3), case.randint(3, 12), case.randint(3, 12)
    d, d_v = case.randint(2, 8), case.randint(2, 8)
    return (
        case.randn(b, h, n_q, d, dtype=dtype),
        case.randn(b, h, n_k, d, dtype=dtype),
        case.randn(b, h, n_k, d_v, dtype=dtype),
    )


def _random_mask(case: Case, n_q: int, n_k: int) -> torch.Tensor:
    """A random bool (n_q, n_k) mask in which every query may attend at least one key."""
    mask = torch.rand(n_q, n_k, generator=case.generator) < 0.6
    mask[torch.arange(n_q), torch.randint(0, n_k, (n_q,), generator=case.generator)] = True
    return mask


def _sizes(q, k, v, mask=None) -> str:
    (b, h, n_q, d), n_k, d_v = q.shape, k.shape[-2], v.shape[-1]
    text = f"B={b}, H={h}, Nq={n_q}, Nk={n_k}, D={d}, Dv={d_v}, {str(q.dtype).removeprefix('torch.')}"
    return text + (", with a mask" if mask is not None else "")


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


def _judge_attention(result, q, k, v, mask=None, compare=True, tolerances=None):
    """(out, weights) of a returned pair, checked for type, shape and dtype; compared with the
    reference when ``compare``."""
    out, weights = expect_pair(result, "dense_attention", "(out, weights)")
    expected_out, expected_weights = reference_attention(q, k, v, mask)
    inputs = _sizes(q, k, v, mask)
    out = expect_tensor(out, "out", expected_out.shape, q.dtype, "(B, H, Nq, Dv)", inputs)
    weights = expect_tensor(weights, "weights", expected_weights.shape, q.dtype, "(B, H, Nq, Nk)", inputs)
    if compare:
        mistakes = _attention_mistakes(q, k, v, mask)
        expect_close(
            weights,
            expected_weights,
            "weights",
            mistakes={n: w for n, (_, w) in mistakes.items()},
            inputs=inputs,
            tolerances=tolerances,
        )
        expect_close(
            out,
            expected_out,
            "out",
            "weights are right, so check the final product with v",
            mistakes={n: o for n, (o, _) in mistakes.items()},
            inputs=inputs,
            tolerances=tolerances,
        )
    return out, weights


def _run_attention(student, case: Case, q, k, v, mask=None, compare=True, tolerances=None):
    args = (q, k, v) if mask is None else (q, k, v, mask)
    return _judge_attention(case.call(student, *args), q, k, v, mask, compare, tolerances)


@check("matches softmax(q k^T / sqrt(d)) v on random inputs")
def _dense_values(student, case):
    _run_attention(student, case, *_random_qkv(case))


@check("a boolean mask: False pairs get zero weight")
def _dense_mask(student, case):
    q, k, v = _random_qkv(case)
    _run_attention(student, case, q, k, v, _random_mask(case, q.shape[-2], k.shape[-2]))


@check("float64 inputs give float64 results to 1e-9")
def _dense_float64(student, case):
    _run_attention(student, case, *_random_qkv(case, torch.float64))


def _property_of_a_call(student, case: Case, holds: str, prop) -> None:
    """One call on random inputs: ``prop(out, weights, q, k, v)`` tests a property of its (shape- and
    dtype-checked) result, which counts only when the result's values are right."""
    q, k, v = _random_qkv(case)
    result = case.call(student, q, k, v)

    def judged():
        out, weights = _judge_attention(result, q, k, v, compare=False)
        prop(out, weights, q, k, v)

    counted_only_if_right(holds, judged, lambda: _judge_attention(result, q, k, v))


@check("returns (out, weights) with shapes (B, H, Nq, Dv) and (B, H, Nq, Nk), finite")
def _dense_shapes(student, case):
    def finite(out, weights, q, k, v):
        if not (torch.isfinite(out).all() and torch.isfinite(weights).all()):
            raise CheckFailed(
                "on ordinary random inputs your output contains inf or NaN",
                "print the scores, the weights and the output of a small example to see where it starts",
                details=_sizes(q, k, v),
            )

    _property_of_a_call(student, case, "the shapes are right", finite)


@check("each row of the weights sums to 1")
def _dense_rows(student, case):
    def rows_sum_to_one(out, weights, q, k, v):
        expect_close(
            weights.sum(-1),
            torch.ones(weights.shape[:-1]),
            "the row sums of the weights",
            "normalise over the key axis (the last one)",
            inputs=_sizes(q, k, v),
        )

    _property_of_a_call(student, case, "the rows sum to 1", rows_sum_to_one)


def _large_scores(case: Case):
    """q, k, v whose scores are about 1000 in every row, with O(1) differences between keys: exp
    overflows without the max-subtraction, and the scaling still matters."""
    q, k, v = _random_qkv(case)
    q[..., 0] = 32.0  # 32 * 32 = 1024 is exact in float32: the offset adds no rounding of its own
    k[..., 0] = 32.0
    return q, k, v


@check("stable for large scores (no overflow in exp)")
def _dense_stable(student, case):
    q, k, v = _large_scores(case)
    ordinary = _random_qkv(case)

    def stable():
        result = case.call(student, q, k, v)
        out, weights = _judge_attention(result, q, k, v, compare=False)
        if not (torch.isfinite(out).all() and torch.isfinite(weights).all()):
            raise CheckFailed(
                "with scores near 1000 your output contains inf or NaN",
                "subtract each row's maximum score before exp: softmax does not change, exp cannot overflow",
                details=_sizes(q, k, v),
            )
        try:
            _judge_attention(result, q, k, v, tolerances=STABLE_TOLERANCES)
        except CheckFailed as large:
            raise CheckFailed(
                f"right on ordinary inputs, but not with scores near 1000: {large.message}",
                "subtract each row's maximum score before exp: softmax does not change, exp cannot overflow",
                details=large.details,
            ) from None

    counted_only_if_right("the output stays right", stable, lambda: _run_attention(student, case, *ordinary))


INPUTS_HINT = (
    "compute new tensors (q / math.sqrt(d), not q /= ... or q.div_(...)): the caller still needs its "
    "tensors, and self-attention, dense_attention(x, x, x), passes one tensor as q, k and v"
)


@check("leaves q, k, v and mask unchanged, so that dense_attention(x, x, x) is self-attention")
def _dense_inputs_unchanged(student, case):
    q, k, v = _random_qkv(case)
    mask = _random_mask(case, q.shape[-2], k.shape[-2])
    args, returned = (q, k, v, mask), []

    def unchanged():
        probed = case.call(tool(INPUTS_PROBE), student, *args)
        if not isinstance(probed, (tuple, list)) or len(probed) != 2 or len(probed[1]) != len(args):
            raise CheckFailed("the grader's probe of the arguments returned no result")
        returned.append(probed[0])
        for name, before, now in zip(("q", "k", "v", "mask"), args, probed[1], strict=True):
            same = type(now) is torch.Tensor and now.shape == before.shape and now.dtype == before.dtype
            if not (same and torch.equal(now, before)):
                raise CheckFailed(f"your function changed its argument {name} in place", INPUTS_HINT)

    def values():
        if returned:
            _judge_attention(returned[0], q, k, v, mask)
        else:  # the call itself failed: the values are judged on a call of their own
            _run_attention(student, case, *args)

    counted_only_if_right("the arguments are left unchanged", unchanged, values)


CHECKS = (
    _dense_values,
    _dense_mask,
    _dense_float64,
    _dense_shapes,
    _dense_rows,
    _dense_stable,
    _dense_inputs_unchanged,
)
