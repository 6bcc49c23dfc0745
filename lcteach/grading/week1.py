"""Week 1 graders: one function per exercise part, called from the exercises notebook.

Usage in a graded cell: ``grade.dense_attention(dense_attention)`` runs the self-check on
public inputs; the hidden test code calls it again with a secret ``seed`` for the grade.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from lcteach.chunking import ChunkedProcessor
from lcteach.kernels import dense_attention as reference_attention
from lcteach.kernels import finalize_softmax_state, init_softmax_state
from lcteach.masks import causal_mask as reference_causal_mask
from lcteach.masks import generate_sliding_window as reference_sliding_window
from lcteach.masks import materialize_mask
from lcteach.measure import fit_exponent as reference_fit_exponent
from lcteach.measure import format_bytes, peak_memory

from .core import (
    Case,
    CheckFailed,
    check,
    expect_close,
    expect_mask,
    expect_pair,
    expect_tensor,
    expect_value_error,
    make_part,
    student_mask,
)

_part = functools.partial(make_part, __name__)


# ---------------------------------------------------------------- 1. dense attention


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


dense_attention = _part(
    "dense_attention", 3, _dense_shapes, _dense_values, _dense_rows, _dense_mask, _dense_stable, _dense_float64
)


# ---------------------------------------------------------------- 2-3. mask_mods


def _causal_mistakes(n_q: int, n_k: int) -> dict[str, torch.Tensor]:
    i = torch.arange(n_q)[:, None]
    j = torch.arange(n_k)[None, :]
    return {
        "i > j: the query must also attend to itself": i > j,
        "i <= j: queries looking at the future (transposed)": i <= j,
    }


def _check_causal(student, case, n_q, n_k):
    expected = materialize_mask(reference_causal_mask, n_q, n_k)[0, 0]
    expect_mask(
        student_mask(case, student, n_q, n_k),
        expected,
        f"causal mask with {n_q} queries and {n_k} keys",
        _causal_mistakes(n_q, n_k),
    )


@check("matches the causal mask, diagonal included")
def _causal_square(student, case):
    n = case.randint(5, 40)
    _check_causal(student, case, n, n)


@check("a single token attends to itself")
def _causal_single(student, case):
    _check_causal(student, case, 1, 1)


@check("works with different numbers of queries and keys")
def _causal_rectangular(student, case):
    _check_causal(student, case, case.randint(3, 20), case.randint(21, 40))


causal_mask = _part("causal_mask", 1, _causal_square, _causal_single, _causal_rectangular)


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


sliding_window = _part("sliding_window", 2, _window_one, _window_random, _window_full, _window_invalid)


# ---------------------------------------------------------------- 4. online softmax


def _fold(student, case: Case, scores: torch.Tensor, values: torch.Tensor, sizes: list[int]):
    """Feed blocks of the given sizes to the student's step; return the final (m, l, acc)."""
    rows = scores.shape[:-1]
    m, l, acc = init_softmax_state(rows, values.shape[-1], dtype=scores.dtype, device=scores.device)
    start = 0
    for size in sizes:
        result = case.call(student, m, l, acc, scores[..., start : start + size], values[..., start : start + size, :])
        if not isinstance(result, (tuple, list)) or len(result) != 3:
            raise CheckFailed(f"online_softmax_step should return (m, l, acc), got {type(result).__name__}")
        m = expect_tensor(result[0], "m", rows, scores.dtype)
        l = expect_tensor(result[1], "l", rows, scores.dtype)
        acc = expect_tensor(result[2], "acc", acc.shape, scores.dtype)
        start += size
    return m, l, acc


def _random_sizes(case: Case, n: int) -> list[int]:
    sizes = []
    while sum(sizes) < n:
        sizes.append(min(case.randint(1, 7), n - sum(sizes)))
    return sizes


def _check_fold(student, case, scores, values, sizes, what):
    m, l, acc = _fold(student, case, scores, values, sizes)
    out, _ = finalize_softmax_state(m, l, acc)
    if not torch.isfinite(out).all():
        raise CheckFailed(
            f"{what}: acc / l contains inf or NaN",
            "keep a running maximum m and compute exp(scores - m_new); rescale the old l and acc "
            "by exp(m_old - m_new); where m_new is -inf use 0 instead (exp(-inf - -inf) is NaN)",
        )
    expected = torch.softmax(scores, dim=-1).nan_to_num(0.0) @ values
    expect_close(
        out,
        expected,
        f"{what}: acc / l",
        "when the maximum grows, multiply the old l and acc by exp(m_old - m_new) before adding the new block",
    )
    return m, l


def _scores_values(case: Case, scale: float = 1.0):
    rows, n, d = case.randint(2, 6), case.randint(12, 40), case.randint(2, 6)
    return case.randn(2, rows, n) * scale, case.randn(2, n, d)


@check("one block gives softmax(s) @ v")
def _online_one_block(student, case):
    scores, values = _scores_values(case)
    _check_fold(student, case, scores, values, [scores.shape[-1]], "a single block")


@check("blocks of random sizes give the one-shot result")
def _online_many_blocks(student, case):
    scores, values = _scores_values(case)
    _check_fold(student, case, scores, values, _random_sizes(case, scores.shape[-1]), "many blocks")


@check("m is the running max and l the sum of exp(s - m)")
def _online_state(student, case):
    scores, values = _scores_values(case)
    m, l = _check_fold(student, case, scores, values, _random_sizes(case, scores.shape[-1]), "many blocks")
    expect_close(m, scores.amax(-1), "m", "m_new = maximum(m, scores.amax(-1))")
    expect_close(
        l,
        torch.exp(scores - scores.amax(-1, keepdim=True)).sum(-1),
        "l",
        "l_new = l * exp(m - m_new) + exp(scores - m_new).sum(-1)",
    )


@check("scores of size +-1000 do not overflow")
def _online_large(student, case):
    scores, values = _scores_values(case, scale=1000.0)
    _check_fold(student, case, scores, values, _random_sizes(case, scores.shape[-1]), "large scores")


@check("a fully masked block (all -inf) changes nothing, even as the first block")
def _online_masked(student, case):
    scores, values = _scores_values(case)
    scores[..., :3] = float("-inf")
    _check_fold(student, case, scores, values, [3] + _random_sizes(case, scores.shape[-1] - 3), "a masked first block")


online_softmax_step = _part(
    "online_softmax_step", 3, _online_one_block, _online_many_blocks, _online_state, _online_large, _online_masked
)


# ---------------------------------------------------------------- 5. tiled attention


def _check_tiled(student, case, n_q, n_k, block):
    d = case.randint(2, 16)
    q, k, v = case.randn(1, 2, n_q, d), case.randn(1, 2, n_k, d), case.randn(1, 2, n_k, d)
    out, lse = expect_pair(case.call(student, q, k, v, block_size=block), "tiled_attention", "(out, lse)")
    expected_out, _ = reference_attention(q, k, v)
    out = expect_tensor(out, "out", expected_out.shape, q.dtype)
    lse = expect_tensor(lse, "lse", expected_out.shape[:-1], q.dtype)
    expect_close(
        out,
        expected_out,
        f"out (n_q={n_q}, n_k={n_k}, block_size={block})",
        "fold every key block into the running (m, l, acc) of the query block, then divide acc by l",
    )
    expected_lse = torch.logsumexp(q @ k.transpose(-2, -1) / math.sqrt(d), dim=-1)
    expect_close(lse, expected_lse, "lse", "lse = m + log(l) for each query, with the scaled scores")


@check("matches dense attention when n is a multiple of block_size")
def _tiled_even(student, case):
    block = 2 ** case.randint(2, 4)
    n = block * case.randint(2, 5)
    _check_tiled(student, case, n, n, block)


@check("ragged sizes: n not a multiple of block_size, Nq != Nk, block larger than n")
def _tiled_ragged(student, case):
    block = case.randint(5, 9)
    _check_tiled(student, case, block * 3 + case.randint(1, block - 1), block * 2 + case.randint(1, block - 1), block)
    _check_tiled(student, case, case.randint(2, 6), case.randint(2, 6), 16)


MEMORY_N = 8192  # the exercise promises O(n) memory at this length
MEMORY_DIM = 64
MEMORY_BLOCK = 256


def memory_budget(n: int, dim: int = MEMORY_DIM) -> int:
    """Bytes tiled attention may allocate at length n: 16 float32 copies of an (n, dim) tensor."""
    return 16 * n * dim * 4


def _peak_bytes(fn, *args, **kwargs) -> int:
    """Peak tensor memory of one call (the output stays in the kernel: the record needs only the number)."""
    return peak_memory(fn, *args, **kwargs)[1]


def _tiled_peak(student, case: Case, n: int) -> int:
    q, k, v = (case.randn(1, 1, n, MEMORY_DIM) for _ in range(3))
    peak = case.call(_peak_bytes, student, q, k, v, block_size=MEMORY_BLOCK)
    if type(peak) is not int:
        raise CheckFailed(f"the memory measurement returned {type(peak).__name__}")
    return peak


@check(f"peak memory is O(n): under budget at n={MEMORY_N}, about 4x when n grows 4x", weight=2)
def _tiled_memory(student, case):
    small, large = _tiled_peak(student, case, MEMORY_N // 4), _tiled_peak(student, case, MEMORY_N)
    budget = memory_budget(MEMORY_N)
    if large > budget:
        dense = MEMORY_N * MEMORY_N * 4
        raise CheckFailed(
            f"at n={MEMORY_N} your function allocated {format_bytes(large)} at its peak; the budget is "
            f"{format_bytes(budget)} (one {MEMORY_N} x {MEMORY_N} score matrix alone is {format_bytes(dense)})",
            "never build an (n, n) tensor: keep one (block, block) tile of scores at a time and "
            "write each query block's result into out as soon as it is done",
        )
    if large > 5 * max(small, 1):
        raise CheckFailed(
            f"peak memory went from {format_bytes(small)} at n={MEMORY_N // 4} to {format_bytes(large)} "
            f"at n={MEMORY_N}: x{large / max(small, 1):.1f} for 4x the tokens, faster than linear growth",
            "a buffer whose size grows with n twice (n x n, or n x n / block) is hiding in your loop",
        )


tiled_attention = _part("tiled_attention", 4, _tiled_even, _tiled_ragged, _tiled_memory)


# ---------------------------------------------------------------- 6. chunked processing


def _position_probe(spans: list[tuple[int, int]]):
    """A chunk function that reports, per position, its global index and its index inside the chunk."""

    def probe(chunk: torch.Tensor) -> torch.Tensor:
        positions = chunk[..., 0]
        spans.append((int(positions[0, 0]), int(positions[0, -1]) + 1))
        return torch.stack([positions, positions - positions[..., :1]], dim=-1)

    return probe


def _check_chunks(student, case, n, chunk_size, overlap):
    x = torch.zeros(2, n, 3)
    x[..., 0] = torch.arange(n, dtype=x.dtype)
    x[..., 1:] = case.randn(2, n, 2)
    seen_spans: list[tuple[int, int]] = []
    probe = case.guard.trusted(_position_probe(seen_spans))
    result = case.call(student, probe, x, chunk_size, overlap)
    seen_spans = [tuple(span) for span in case.observe(seen_spans)]
    processor = ChunkedProcessor(chunk_size, overlap, "first")
    expected = processor.process(_position_probe([]), x)
    what = f"n={n}, chunk_size={chunk_size}, overlap={overlap}"
    result = expect_tensor(result, f"the merged output ({what})", expected.shape, x.dtype)
    if not torch.equal(result[..., 0], expected[..., 0]):
        raise CheckFailed(
            f"{what}: the output does not hold every position exactly once, in order",
            "keep, from each chunk, only the positions no earlier chunk produced, and concatenate",
        )
    expected_spans = [(s.start, s.end) for s in processor.spans(n)]
    if seen_spans != expected_spans:
        raise CheckFailed(
            f"{what}: fn was called on {len(seen_spans)} chunks {seen_spans[:4]}..., "
            f"expected {len(expected_spans)} chunks {expected_spans[:4]}...",
            "chunks start every chunk_size - overlap positions; stop after the chunk that reaches n",
        )
    if not torch.equal(result[..., 1], expected[..., 1]):
        raise CheckFailed(
            f"{what}: some positions are taken from a later chunk than the first one that holds them",
            "a later chunk's first `overlap` positions are context only: drop them from its output",
        )


@check("every position once, from the earliest chunk that holds it")
def _chunks_basic(student, case):
    chunk = case.randint(6, 12)
    _check_chunks(student, case, chunk * 4 + case.randint(1, 5), chunk, case.randint(1, chunk // 2))


@check("overlap 0 and a sequence that fits in one chunk")
def _chunks_edges(student, case):
    chunk = case.randint(5, 10)
    _check_chunks(student, case, chunk * 3, chunk, 0)
    _check_chunks(student, case, chunk - case.randint(0, 3), chunk, case.randint(1, 3))


@check("a large overlap and a short last chunk")
def _chunks_large_overlap(student, case):
    chunk = case.randint(8, 14)
    _check_chunks(student, case, case.randint(30, 60), chunk, chunk - case.randint(1, 3))


class _EndlessChunks(Exception):
    """Raised by the grader's chunk function when a submission calls it far too often."""


@check("overlap >= chunk_size raises ValueError")
def _chunks_invalid(student, case):
    chunk = case.randint(4, 10)
    calls = []

    def counting_identity(x):
        calls.append(1)
        if len(calls) > 100:
            raise _EndlessChunks()
        return x

    try:
        case.call(student, case.guard.trusted(counting_identity), torch.zeros(1, 20, 2), chunk, chunk)
    except CheckFailed as failure:
        if "ValueError" in failure.message:
            return
        if "_EndlessChunks" in failure.message:
            raise CheckFailed(
                "with overlap == chunk_size your function called fn over and over without advancing",
                "chunks advance by chunk_size - overlap, which is 0 here: check it and raise ValueError",
            ) from None
        raise CheckFailed(f"overlap == chunk_size should raise ValueError, but {failure.message}") from None
    raise CheckFailed(
        "overlap == chunk_size returned instead of raising ValueError",
        "with overlap >= chunk_size the chunks never advance: check it and raise ValueError",
    )


process_in_chunks = _part("process_in_chunks", 3, _chunks_basic, _chunks_edges, _chunks_large_overlap, _chunks_invalid)


# ---------------------------------------------------------------- 7. fitting the exponent


def _check_fit(student, case, ns, values, expected, what):
    result = case.call(student, list(ns), list(values))
    try:
        result = float(result)
    except (TypeError, ValueError):
        raise CheckFailed(f"fit_exponent should return a number, got {type(result).__name__}") from None
    if not math.isfinite(result) or abs(result - expected) > 1e-6 * max(1.0, abs(expected)):
        hint = (
            "fit a straight line to (log n, log value) with least squares over all points, e.g. np.polyfit(x, y, 1)"
            if math.isfinite(result)
            else "the logarithm of every size and value must be finite"
        )
        endpoints = math.log(values[-1] / values[0]) / math.log(ns[-1] / ns[0])
        if math.isfinite(result) and abs(result - endpoints) < 1e-6:
            hint = (
                "you used only the first and last points; a least-squares fit uses all of them, so noise averages out"
            )
        raise CheckFailed(f"{what}: expected {expected:.4f}, got {result:.4f}", hint)


@check("an exact n^2 law gives 2")
def _fit_square(student, case):
    ns = [256 * 2**i for i in range(case.randint(3, 6))]
    _check_fit(student, case, ns, [3e-9 * n**2 for n in ns], 2.0, "values = c * n^2")


@check("exact laws with other exponents and constants")
def _fit_other(student, case):
    p = round(0.5 + 2.5 * float(torch.rand(1, generator=case.generator)), 3)
    ns = sorted({case.randint(10, 5000) for _ in range(6)})
    c = case.randint(1, 50) * 1e-3
    _check_fit(student, case, ns, [c * n**p for n in ns], p, f"values = c * n^{p}")


@check("noisy measurements: the least-squares slope on log-log axes")
def _fit_noisy(student, case):
    ns = np.array([128 * 2**i for i in range(7)], dtype=float)
    values = 1e-8 * ns**1.9 * np.exp(0.3 * case.randn(len(ns), dtype=torch.float64).numpy())
    _check_fit(student, case, ns.tolist(), values.tolist(), reference_fit_exponent(ns, values), "noisy timings")


fit_exponent = _part("fit_exponent", 2, _fit_square, _fit_other, _fit_noisy)


PARTS = (
    dense_attention,
    causal_mask,
    sliding_window,
    online_softmax_step,
    tiled_attention,
    process_in_chunks,
    fit_exponent,
)
POINTS = {part.__name__: part.points for part in PARTS}
