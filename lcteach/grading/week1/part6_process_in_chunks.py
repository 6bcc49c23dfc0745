"""Week 1, part 6: ``process_in_chunks(fn, x, chunk_size, overlap)``, overlapping chunks merged back in order."""

from __future__ import annotations

import torch

from lcteach.chunking import ChunkedProcessor
from lcteach.grading.expectations import counted_only_if_right, expect_tensor
from lcteach.grading.results import CheckFailed
from lcteach.grading.session import check


def _position_probe(spans: list[tuple[int, int]]):
    """A chunk function that reports, per position, its global index and its index inside the chunk."""

    def probe(chunk: torch.Tensor) -> torch.Tensor:
        positions = chunk[..., 0]
        spans.append((int(positions[0, 0]), int(positions[0, -1]) + 1))
        return torch.stack([positions, positions - positions[..., :1]], dim=-1)

    return probe


def _spans_problem(seen: list[tuple[int, int]], expected: list[tuple[int, int]]) -> str:
    """How the chunks fn was called on differ from the expected ones, in words that name no position."""
    steps = {b[0] - a[0] for a, b in zip(seen, seen[1:])}
    step = expected[1][0] - expected[0][0] if len(expected) > 1 else None
    if not seen:
        return "fn was never called"
    if seen[0][0] != 0:
        return "the first chunk does not start at position 0"
    if any(end - start > expected[0][1] - expected[0][0] for start, end in seen):
        return "fn was called on chunks longer than chunk_size"
    if step is not None and len(steps) == 1 and steps != {step}:
        return f"your chunks start {'too far apart' if steps.pop() > step else 'too close together'}"
    if seen[: len(expected)] == expected:
        return "fn was called again after the chunk that reaches the end"
    if expected[: len(seen)] == seen:
        return "fn was not called on every chunk: the last chunk must reach the end of the sequence"
    return "fn was called on other chunks than expected"


def _spans(spans: list[tuple[int, int]]) -> str:
    shown = ", ".join(f"[{a}, {b})" for a, b in spans[:5])
    return f"{len(spans)} chunks {shown}{', ...' if len(spans) > 5 else ''}"


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
    inputs = f"n={n}, chunk_size={chunk_size}, overlap={overlap}"
    result = expect_tensor(result, "the merged output", expected.shape, x.dtype, "(B, n, d_out)", inputs)
    expected_spans = [(s.start, s.end) for s in processor.spans(n)]
    if seen_spans != expected_spans:
        raise CheckFailed(
            _spans_problem(seen_spans, expected_spans),
            "chunks start every chunk_size - overlap positions; stop after the chunk that reaches n",
            details=f"{inputs}: fn was called on {_spans(seen_spans)}; expected {_spans(expected_spans)}",
        )
    if not torch.equal(result[..., 0], expected[..., 0]):
        raise CheckFailed(
            "the output does not hold every position exactly once, in order",
            "keep, from each chunk, only the positions no earlier chunk produced, and concatenate",
            details=inputs,
        )
    if not torch.equal(result[..., 1], expected[..., 1]):
        raise CheckFailed(
            "some positions are taken from a later chunk than the first one that holds them",
            "a later chunk's first `overlap` positions are context only: drop them from its output",
            details=inputs,
        )


def _ordinary_chunks(student, case):
    """The comparison on an ordinary chunking, drawn now, run when called."""
    chunk = case.randint(6, 12)
    n, overlap = chunk * 4 + case.randint(1, 5), case.randint(1, chunk // 2)
    return lambda: _check_chunks(student, case, n, chunk, overlap)


@check("every position once, from the earliest chunk that holds it")
def _chunks_basic(student, case):
    _ordinary_chunks(student, case)()


@check("a large overlap and a short last chunk")
def _chunks_large_overlap(student, case):
    chunk = case.randint(8, 14)
    _check_chunks(student, case, case.randint(30, 60), chunk, chunk - case.randint(1, 3))


@check("overlap 0 and a sequence that fits in one chunk")
def _chunks_edges(student, case):
    chunk = case.randint(5, 10)
    short, overlap = chunk - case.randint(0, 3), case.randint(1, 3)

    def edges():
        _check_chunks(student, case, chunk * 3, chunk, 0)
        _check_chunks(student, case, short, chunk, overlap)

    counted_only_if_right("overlap 0 and a single chunk are right", edges, _ordinary_chunks(student, case))


class _EndlessChunks(Exception):
    """Raised by the grader's chunk function when a submission calls it far too often."""


def _expect_invalid(student, case, chunk: int, overlap: int, call: str, hint: str):
    calls = []

    def counting_identity(x):
        calls.append(1)
        if len(calls) > 100:
            raise _EndlessChunks()
        return x

    inputs = f"chunk_size={chunk}, overlap={overlap}"
    try:
        case.call(student, case.callback(counting_identity), torch.zeros(1, 20, 2), chunk, overlap)
    except CheckFailed as failure:
        if failure.raised_a(ValueError):
            return
        if failure.raised is not None and failure.raised.type_name == _EndlessChunks.__name__:
            raise CheckFailed(
                f"with {call} your function called fn over and over without advancing", hint, details=inputs
            ) from None
        raise CheckFailed(
            f"{call} should raise ValueError, but {failure.message}",
            hint,
            details="; ".join(text for text in (inputs, failure.details) if text),
        ) from None
    raise CheckFailed(f"{call} returned instead of raising ValueError", hint, details=inputs)


@check("overlap >= chunk_size or overlap < 0 raises ValueError")
def _chunks_invalid(student, case):
    chunk = case.randint(4, 10)
    above, below = chunk + case.randint(1, 3), -case.randint(1, 3)
    never_advance = "with overlap >= chunk_size the chunks never advance: check 0 <= overlap < chunk_size"
    skips = "with overlap < 0 the chunks skip positions: check 0 <= overlap < chunk_size"

    def raises():
        _expect_invalid(student, case, chunk, chunk, "overlap == chunk_size", f"{never_advance}, else raise ValueError")
        _expect_invalid(student, case, chunk, above, "overlap > chunk_size", f"{never_advance}, else raise ValueError")
        _expect_invalid(student, case, chunk, below, "a negative overlap", f"{skips}, else raise ValueError")

    counted_only_if_right("it raises ValueError", raises, _ordinary_chunks(student, case))


CHECKS = (
    _chunks_basic,
    _chunks_large_overlap,
    _chunks_edges,
    _chunks_invalid,
)
