"""lcteach.chunking.processor.ChunkedProcessor: spans, the context each kept position sees, and merging."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import grid_mask, loop_attention, random_qkv

from lcteach.chunking import ChunkedProcessor, Span
from lcteach.kernels import dense_attention

FAST = settings(max_examples=50, deadline=None)
RESOLVES = ("first", "center", "mean")


@st.composite
def processors(draw, resolve=st.sampled_from(RESOLVES)):  # noqa: B008 (hypothesis strategies as defaults)
    chunk = draw(st.integers(1, 12))
    return ChunkedProcessor(chunk, draw(st.integers(0, chunk - 1)), draw(resolve))


def chunk_starts(n, chunk, overlap):
    """Brute force: chunks start every chunk - overlap positions until one reaches n."""
    starts = [0]
    while starts[-1] + chunk < n:
        starts.append(starts[-1] + chunk - overlap)
    return starts


@FAST
@given(proc=processors(), n=st.integers(1, 40))
def test_spans_cover_the_sequence_and_keep_ranges_tile_it(proc, n):
    spans = proc.spans(n)
    assert [s.start for s in spans] == chunk_starts(n, proc.chunk_size, proc.overlap)
    assert [s.end for s in spans] == [min(s.start + proc.chunk_size, n) for s in spans]
    assert spans[0].keep_start == 0 and spans[-1].keep_end == n
    for span, following in zip(spans, spans[1:]):
        assert span.keep_end == following.keep_start
    for span in spans:
        assert span.start <= span.keep_start < span.keep_end <= span.end


@FAST
@given(proc=processors(st.just("first")), n=st.integers(1, 40))
def test_first_gives_every_later_kept_position_overlap_context(proc, n):
    spans = proc.spans(n)
    assert spans[0].start == 0
    for span in spans[1:]:
        assert span.keep_start - span.start >= proc.overlap


@FAST
@given(proc=processors(st.just("center")), n=st.integers(1, 40))
def test_center_keeps_positions_away_from_inner_borders(proc, n):
    spans = proc.spans(n)
    for span in spans[1:]:
        assert span.keep_start - span.start >= (proc.overlap + 1) // 2
    for span in spans[:-1]:
        assert span.end - span.keep_end >= proc.overlap // 2


@FAST
@given(proc=processors(), n=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_identity_returns_the_input(proc, n, seed):
    x = torch.randn(2, n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    torch.testing.assert_close(proc.process(lambda chunk: chunk, x), x, rtol=1e-15, atol=0)


def chunk_of_first(p, chunk, overlap):
    """Brute force: the earliest chunk start whose chunk [start, start + chunk) contains p."""
    return next(s for s in range(0, p + 1, chunk - overlap) if p < s + chunk)


@FAST
@given(chunk=st.integers(1, 8), overlap_frac=st.floats(0, 0.99), n=st.integers(1, 20), seed=st.integers(0, 2**8))
def test_first_with_causal_attention_matches_brute_force(chunk, overlap_frac, n, seed):
    overlap = int(overlap_frac * chunk)
    q, k, v = random_qkv(1, 2, n, 4, seed=seed)
    got = ChunkedProcessor(chunk, overlap, "first").process(lambda *qkv: dense_attention(*qkv, causal=True)[0], q, k, v)
    starts = [chunk_of_first(p, chunk, overlap) for p in range(n)]
    visible = grid_mask(lambda i, j: starts[i] <= j <= i, n)  # causal, and nothing before its chunk
    torch.testing.assert_close(got, loop_attention(q, k, v, visible)[0], rtol=1e-10, atol=1e-10)


@FAST
@given(chunk=st.integers(1, 8), overlap_frac=st.floats(0, 0.99), n=st.integers(1, 20))
def test_mean_averages_every_chunk_that_covers_a_position(chunk, overlap_frac, n):
    overlap = int(overlap_frac * chunk)
    x = torch.arange(1.0, n + 1, dtype=torch.float64)[:, None]
    got = ChunkedProcessor(chunk, overlap, "mean").process(lambda c: c.cumsum(-2), x)
    starts = chunk_starts(n, chunk, overlap)
    for p in range(n):
        running_sums = [sum(range(s + 1, p + 2)) for s in starts if s <= p < s + chunk]
        assert got[p, 0].item() == pytest.approx(sum(running_sums) / len(running_sums), rel=1e-12)


def test_process_splits_along_dim_and_several_tensors():
    a, b = torch.arange(10.0).view(1, 10, 1).expand(2, 10, 3), torch.ones(2, 10, 3)
    proc = ChunkedProcessor(4, 1, "center")
    torch.testing.assert_close(proc.process(lambda x, y: x + y, a, b, dim=1), a + b)
    seen = []
    proc.process(lambda x: seen.append(x.shape) or x, torch.zeros(3, 10), dim=-1)
    assert seen == [(3, s.end - s.start) for s in proc.spans(10)]


def test_single_chunk_when_the_sequence_is_short():
    assert ChunkedProcessor(16, 4).spans(10) == [Span(0, 10, 0, 10)]


def test_repr_and_stride():
    proc = ChunkedProcessor(8, 3, "mean")
    assert proc.stride == 5 and repr(proc) == "ChunkedProcessor(chunk_size=8, overlap=3, resolve='mean')"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0,), "chunk_size"),
        ((4, 4), "overlap"),
        ((4, -1), "overlap"),
        ((4, True), "overlap"),
        ((4, 1, "last"), "resolve"),
    ],
)
def test_bad_construction_raises(args, message):
    with pytest.raises(ValueError, match=message):
        ChunkedProcessor(*args)


@pytest.mark.parametrize(
    ("fn", "tensors", "message"),
    [
        (lambda x: x[..., :-1, :], (torch.zeros(10, 2),), "fn must return a tensor with"),
        (lambda x: x.tolist(), (torch.zeros(10, 2),), "fn must return a tensor with"),
        (lambda x: x, (), "at least one tensor"),
        (lambda x, y: x, (torch.zeros(10, 2), torch.zeros(9, 2)), "same length"),
    ],
)
def test_bad_process_calls_raise(fn, tensors, message):
    with pytest.raises(ValueError, match=message):
        ChunkedProcessor(4, 1).process(fn, *tensors)


def test_spans_of_an_empty_sequence_raise():
    with pytest.raises(ValueError, match="n must be"):
        ChunkedProcessor(4).spans(0)
