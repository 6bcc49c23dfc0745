"""lcteach.chunking.scheduling: the largest chunk that fits a budget, checked by brute force and by measuring."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import one_thread, random_qkv

from lcteach.chunking import ChunkedProcessor, largest_chunk, plan_chunks
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
