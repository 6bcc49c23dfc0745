"""Week 1, part 6: ``process_in_chunks(fn, x, chunk_size, overlap)``, overlapping chunks merged back in order."""

from __future__ import annotations

import torch

from lcteach.chunking import ChunkedProcessor
from lcteach.grading.expectations import expect_tensor
from lcteach.grading.results import CheckFailed
from lcteach.grading.session import check


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
    probe = case.callback(_position_probe(seen_spans))
    result = case.call(student, probe, x, chunk_size, overlap)
    seen_spans = [tuple(span) for span in seen_spans]
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
        case.call(student, case.callback(counting_identity), torch.zeros(1, 20, 2), chunk, chunk)
    except CheckFailed as failure:
        if failure.raised_a(ValueError):
            return
        if failure.raised is not None and failure.raised.type_name == _EndlessChunks.__name__:
            raise CheckFailed(
                "with overlap == chunk_size your function called fn over and over without advancing",
                "chunks advance by chunk_size - overlap, which is 0 here: check it and raise ValueError",
            ) from None
        raise CheckFailed(f"overlap == chunk_size should raise ValueError, but {failure.message}") from None
    raise CheckFailed(
        "overlap == chunk_size returned instead of raising ValueError",
        "with overlap >= chunk_size the chunks never advance: check it and raise ValueError",
    )


CHECKS = (
    _chunks_basic,
    _chunks_edges,
    _chunks_large_overlap,
    _chunks_invalid,
)
