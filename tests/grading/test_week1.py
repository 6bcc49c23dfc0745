"""Week 1 graders: the solutions earn full marks, the release earns 0, realistic mistakes lose
points with a hint that names them, and delegating to a reference earns nothing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from grading_helpers import contract_tests, failed, run
from notebook_source import SOLUTIONS
from variants_week1 import (
    attention_with,
    causal_python_if,
    chunks_with,
    fit_endpoints,
    fit_with,
    fit_without_logs,
    online_with,
    tiled_quadratic,
    tiled_strips,
    window_with,
)

import lcteach
from lcteach.grading import week1 as grade

EXERCISES = SOLUTIONS / "week1_foundations" / "exercises.py"
(
    SOLUTION,
    (
        test_solution_earns_full_marks,
        test_release_stub_earns_nothing,
        test_graded_cells_match_the_graders,
        test_total_points_and_written_answer,
    ),
) = contract_tests(grade, EXERCISES, total_points=30)


# ---------------------------------------------------------------- realistic mistakes


@pytest.mark.parametrize(
    ("mutant", "failing", "hint"),
    [
        (attention_with(scale=lambda d: 1.0), "matches softmax", "without the 1/sqrt(d) scaling"),
        (attention_with(scale=lambda d: 1 / d), "matches softmax", "1/d instead of 1/sqrt(d)"),
        (attention_with(axis=-2), "each row of the weights sums to 1", ""),
        (attention_with(subtract_max=False), "stable for large scores", "subtract each row's maximum"),
        (attention_with(mask_mode="inverted"), "a boolean mask", "inverted mask"),
        (attention_with(mask_mode="after"), "a boolean mask", "without renormalising"),
        (attention_with(dtype=torch.float32), "float64 inputs", "dtype"),
    ],
    ids=[
        "no-scale",
        "scale-1/d",
        "softmax-over-queries",
        "no-max-subtraction",
        "inverted-mask",
        "mask-after-softmax",
        "forces-float32",
    ],
)
def test_dense_attention_mutants(mutant, failing, hint, capsys):
    result, report = run(grade.dense_attention, mutant, capsys)
    assert result.points < grade.POINTS["dense_attention"], report
    failures = failed(result)
    assert any(name.startswith(failing) and hint in text for name, text in failures.items()), report


def test_softmax_over_queries_is_named(capsys):
    result, report = run(grade.dense_attention, attention_with(axis=-2), capsys)
    assert "query axis" in report


@pytest.mark.parametrize(
    ("mutant", "hint"),
    [
        (lambda b, h, q, kv: q > kv, "the query must also attend to itself"),
        (lambda b, h, q, kv: q <= kv, "transposed"),
    ],
    ids=["strict", "transposed"],
)
def test_causal_mutants(mutant, hint, capsys):
    result, report = run(grade.causal_mask, mutant, capsys)
    assert result.points < grade.POINTS["causal_mask"] and hint in report, report


def test_causal_mask_with_python_if_gets_the_vmap_hint(capsys):
    result, report = run(grade.causal_mask, causal_python_if, capsys)
    assert result.points == 0 and "vmap" in report


@pytest.mark.parametrize(
    ("mutant", "lost", "hint"),
    [
        (window_with(upper=lambda q, kv, w: q - kv <= w), 2, "includes the query itself"),
        (window_with(upper=lambda q, kv, w: (q - kv).abs() < w, causal=False), 2, "future keys"),
        (window_with(check=False), 1, "raise ValueError"),
    ],
    ids=["window-plus-one", "non-causal", "no-validation"],
)
def test_sliding_window_mutants(mutant, lost, hint, capsys):
    result, report = run(grade.sliding_window, mutant, capsys)
    assert sum(not o.passed for o in result.outcomes) >= lost and hint in report, report
    assert result.points < grade.POINTS["sliding_window"]


@pytest.mark.parametrize(
    ("mutant", "failing", "hint"),
    [
        (online_with(rescale=False), "blocks of random sizes", "exp(m_old - m_new)"),
        (online_with(subtract_max=False), "scores of size +-1000", "running maximum"),
        (online_with(guard_inf=False), "a fully masked block", "exp(-inf - -inf) is NaN"),
    ],
    ids=["no-rescale", "no-max", "nan-on-masked-block"],
)
def test_online_softmax_mutants(mutant, failing, hint, capsys):
    result, report = run(grade.online_softmax_step, mutant, capsys)
    failures = failed(result)
    assert any(name.startswith(failing) and hint in text for name, text in failures.items()), report
    assert result.points < grade.POINTS["online_softmax_step"]


def test_quadratic_buffer_fails_the_memory_check(capsys):
    result, report = run(grade.tiled_attention, tiled_quadratic, capsys)
    assert set(failed(result)) == {o.name for o in result.outcomes if "peak memory" in o.name}, report
    assert result.points == 2 and "256.0 MiB" in report


def test_linear_strips_meet_the_budget(capsys):
    result, report = run(grade.tiled_attention, tiled_strips, capsys)
    assert result.points == grade.POINTS["tiled_attention"], report


def test_tiled_mistakes_in_values(capsys):
    def no_log_max(q, k, v, block_size=128):
        out, lse = SOLUTION.tiled_attention(q, k, v, block_size)
        return out, torch.log(torch.exp(lse - lse.amax(-1, keepdim=True)))

    def drops_last_block(q, k, v, block_size=128):
        n = q.shape[-2] // block_size * block_size
        out, lse = SOLUTION.tiled_attention(q[..., : max(n, 1), :], k, v, block_size)
        full_out = torch.zeros(*q.shape[:-1], v.shape[-1])
        full_out[..., : out.shape[-2], :] = out
        return full_out, torch.nn.functional.pad(lse, (0, q.shape[-2] - lse.shape[-1]))

    result, report = run(grade.tiled_attention, no_log_max, capsys)
    assert "lse = m + log(l)" in report and result.points < 4
    result, report = run(grade.tiled_attention, drops_last_block, capsys)
    assert any(name.startswith("ragged") for name in failed(result)), report


def _refuses_only_large_overlaps(chunk_size, overlap):
    """The argument check of these mutants: overlap >= chunk_size raises, a negative overlap does not."""
    return overlap < chunk_size


@pytest.mark.parametrize(
    ("mutant", "hint"),
    [
        (chunks_with(keep="last", check=_refuses_only_large_overlaps), "context only"),
        (chunks_with(step_extra=1, check=_refuses_only_large_overlaps), "chunks start every chunk_size - overlap"),
        (chunks_with(check=lambda c, o: True), "raise ValueError"),
    ],
    ids=["later-chunk-wins", "stride-off-by-one", "no-validation"],
)
def test_chunk_mutants(mutant, hint, capsys):
    result, report = run(grade.process_in_chunks, mutant, capsys)
    assert result.points < grade.POINTS["process_in_chunks"] and hint in report, report


def test_fit_exponent_mutants(capsys):
    result, report = run(grade.fit_exponent, fit_endpoints, capsys)
    assert result.points < 2 and "first and last points" in report
    result, _ = run(grade.fit_exponent, fit_without_logs, capsys)
    assert result.points == 0


@pytest.mark.parametrize(
    ("mutant", "failing", "hint"),
    [
        (fit_with(slope_of="lower"), "breaks=1: an exact law", "the lower part's"),
        (fit_with(one_line=True), "breaks=1: an exact law", "one line through all the points"),
        (fit_with(choose="slope-change"), "breaks=1: an exact law", "where the slope changes most"),
        (fit_with(min_part=2), "breaks=1: noisy", "a part have 2 points"),
        (fit_with(check_breaks=False), "breaks=1 with fewer than 6", "only breaks=0 and breaks=1"),
    ],
    ids=["lower-slope", "one-line", "largest-slope-change", "parts-of-two", "any-breaks"],
)
@pytest.mark.parametrize("seed", [None, 7331], ids=["public", "hidden"])
def test_fit_exponent_one_break_mutants(mutant, failing, hint, seed, capsys):
    result, report = run(grade.fit_exponent, mutant, capsys, seed)
    failed = [o for o in result.outcomes if o.name.startswith(failing)]
    assert result.points < grade.POINTS["fit_exponent"] and failed and not failed[0].passed, report
    assert hint in f"{failed[0].message} {failed[0].hint}", report


def test_fit_exponent_without_breaks_is_told_to_add_it(capsys):
    """Last week's two-argument function keeps the breaks=0 points and is told what to add."""

    def fit_exponent(ns, values):
        return float(np.polyfit(np.log(ns), np.log(values), 1)[0])

    result, report = run(grade.fit_exponent, fit_exponent, capsys)
    assert sum(not o.passed for o in result.outcomes) == 3 and "add the argument breaks=0" in report, report


# ---------------------------------------------------------------- delegation


@pytest.mark.parametrize(
    ("part", "cheat", "named"),
    [
        (
            grade.dense_attention,
            lambda q, k, v, mask=None: lcteach.dense_attention(q, k, v, mask),
            "lcteach.kernels.dense",
        ),
        (
            grade.tiled_attention,
            lambda q, k, v, block_size=128: lcteach.tiled_attention(q, k, v),
            "lcteach.kernels.tiled",
        ),
        (grade.causal_mask, lcteach.causal_mask, "lcteach.masks"),
        (grade.fit_exponent, lcteach.fit_exponent, "lcteach.measure.scaling"),
        (grade.online_softmax_step, lcteach.online_softmax_step, "lcteach.kernels.online_softmax"),
        (
            grade.process_in_chunks,
            lambda fn, x, c, o: lcteach.ChunkedProcessor(c, o).process(fn, x, dim=1),
            "lcteach.chunking",
        ),
    ],
    ids=["dense", "tiled", "causal", "fit", "online", "chunks"],
)
def test_delegating_to_lcteach_earns_nothing(part, cheat, named, capsys):
    result, report = run(part, cheat, capsys)
    assert result.points == 0 and named in report, report


def test_delegating_to_fused_attention_earns_nothing(capsys):
    from torch.nn.functional import scaled_dot_product_attention as fused

    def cheat(q, k, v, block_size=128):
        out = fused(q, k, v)
        return out, torch.logsumexp(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1)

    result, report = run(grade.tiled_attention, cheat, capsys)
    assert result.points == 0 and "scaled_dot_product_attention" in report
