"""lcteach.chunking.scheduling: the largest chunk that fits a budget, checked by brute force and by measuring."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import one_thread, random_qkv

from lcteach.chunking import ChunkedProcessor, PlanSummary, largest_chunk, plan_chunks, plan_summary
from lcteach.kernels import dense_attention
from lcteach.measure import dense_attention_memory, peak_memory

FAST = settings(max_examples=60, deadline=None)


def toy_cost(c):
    return c * c + 10 * c


def brute_force_largest(budget, cost, overlap=0, multiple_of=1, max_chunk=None):
    limit = 10_000 if max_chunk is None else max_chunk
    fitting = [c for c in range(overlap + 1, limit + 1) if c % multiple_of == 0 and cost(c) <= budget]
    return max(fitting, default=None)


@FAST
@given(
    budget=st.integers(1, 5000),
    overlap=st.integers(0, 40),
    multiple_of=st.integers(1, 16),
    max_chunk=st.none() | st.integers(1, 80),
)
def test_largest_chunk_matches_brute_force(budget, overlap, multiple_of, max_chunk):
    expected = brute_force_largest(budget, toy_cost, overlap, multiple_of, max_chunk)
    kwargs = {"overlap": overlap, "multiple_of": multiple_of, "max_chunk": max_chunk, "cost": toy_cost}
    if expected is None:
        with pytest.raises(ValueError, match="does not fit"):
            largest_chunk(budget, **kwargs)
    else:
        assert largest_chunk(budget, **kwargs) == expected


@FAST
@given(budget=st.integers(10**5, 10**9), multiple_of=st.sampled_from([1, 8, 64]), heads=st.integers(1, 4))
def test_default_cost_is_dense_attention_and_tight(budget, multiple_of, heads):
    def cost(c):
        return dense_attention_memory(c, heads=heads, dim=32)

    try:
        c = largest_chunk(budget, heads=heads, dim=32, multiple_of=multiple_of)
    except ValueError:
        assert cost(multiple_of) > budget
        return
    assert c % multiple_of == 0
    assert cost(c) <= budget < cost(c + multiple_of)


def test_overlap_sets_the_smallest_chunk():
    assert largest_chunk(10**9, overlap=30, cost=toy_cost, max_chunk=31) == 31
    with pytest.raises(ValueError, match="lower the overlap"):
        largest_chunk(10**9, overlap=31, cost=toy_cost, max_chunk=31)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"budget_bytes": 0}, "budget_bytes"),
        ({"budget_bytes": 100, "multiple_of": 0}, "multiple_of"),
        ({"budget_bytes": 100, "overlap": -1}, "overlap"),  # used to loop forever with a custom cost
        ({"budget_bytes": 10}, "does not fit"),  # toy_cost(1) = 11
    ],
)
def test_largest_chunk_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        largest_chunk(cost=toy_cost, **kwargs)


def measured_dense_peak(n, heads, causal):
    q, k, v = random_qkv(1, heads, n, 32, dtype=torch.float32)
    with torch.no_grad(), one_thread():
        return peak_memory(dense_attention, q, k, v, causal=causal)[1]


@pytest.mark.parametrize(("causal", "heads"), [(False, 1), (True, 2)])
def test_planned_chunk_measured_peak_fits_the_budget(causal, heads):
    budget = 3 * 1024**2
    proc = plan_chunks(100_000, budget, overlap=16, heads=heads, dim=32)
    assert isinstance(proc, ChunkedProcessor) and proc.overlap == 16
    assert measured_dense_peak(proc.chunk_size, heads, causal) <= budget
    assert measured_dense_peak(proc.chunk_size + 1, heads, causal) > budget  # the largest that fits


def test_plan_never_exceeds_the_sequence():
    proc = plan_chunks(100, 10**9, overlap=8, resolve="center")
    assert proc.chunk_size == 100 and proc.resolve == "center" and len(proc.spans(100)) == 1
    assert plan_chunks(5, 10**9, overlap=8).chunk_size == 9  # a chunk must be longer than its overlap


def brute_force_spans(n, chunk, overlap):
    """Chunk bounds the slow way: a chunk starts every chunk - overlap positions until one reaches n."""
    bounds, start = [], 0
    while True:
        bounds.append((start, min(start + chunk, n)))
        if start + chunk >= n:
            return bounds
        start += chunk - overlap


@FAST
@given(n=st.integers(1, 3000), chunk=st.integers(1, 400), data=st.data())
def test_plan_summary_counts_chunks_and_recomputed_positions(n, chunk, data):
    overlap = data.draw(st.integers(0, chunk - 1), label="overlap")
    resolve = data.draw(st.sampled_from(["first", "center", "mean"]), label="resolve")
    bounds = brute_force_spans(n, chunk, overlap)
    summary = plan_summary(ChunkedProcessor(chunk, overlap, resolve), n, cost=toy_cost)
    assert isinstance(summary, PlanSummary)
    assert summary.chunks == len(bounds)
    assert summary.processed == sum(end - start for start, end in bounds)
    covered = torch.zeros(n, dtype=torch.int64)
    for start, end in bounds:
        covered[start:end] += 1
    assert summary.recomputed == int((covered - 1).sum())  # every position beyond its first computation
    assert summary.overhead == pytest.approx(summary.recomputed / n)
    assert summary.peak_bytes == toy_cost(min(chunk, n))
    stride = chunk - overlap
    closed_form = 1 if n <= chunk else 1 + -(-(n - chunk) // stride)
    assert summary.chunks == closed_form
    assert summary.fits and summary.budget_bytes is None


def test_plan_summary_of_a_plan_predicts_its_budget_and_the_measured_peak():
    budget = 2 * 1024**2
    proc = plan_chunks(10_000, budget, overlap=64, dim=32)
    summary = plan_summary(proc, 10_000, budget_bytes=budget, dim=32)
    assert summary.fits and summary.peak_bytes <= budget
    assert summary.peak_bytes == dense_attention_memory(proc.chunk_size, dim=32)
    assert summary.peak_bytes == measured_dense_peak(proc.chunk_size, 1, causal=True)
    assert not plan_summary(proc, 10_000, budget_bytes=summary.peak_bytes - 1, dim=32).fits
    # Doubling the budget lengthens the chunk, so fewer chunks and fewer recomputed positions.
    bigger = plan_summary(plan_chunks(10_000, 2 * budget, overlap=64, dim=32), 10_000, dim=32)
    assert bigger.chunk_size > summary.chunk_size
    assert bigger.chunks < summary.chunks and bigger.recomputed < summary.recomputed


def test_plan_summary_rejects_bad_arguments():
    with pytest.raises(ValueError, match="ChunkedProcessor"):
        plan_summary(128, 1000)
    with pytest.raises(ValueError, match="n must"):
        plan_summary(ChunkedProcessor(8), 0)
    with pytest.raises(ValueError, match="budget_bytes"):
        plan_summary(ChunkedProcessor(8), 10, budget_bytes=0)
