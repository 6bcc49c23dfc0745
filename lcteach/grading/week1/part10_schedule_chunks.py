"""Week 1, part 10: ``schedule_chunks(n, budget_bytes, overlap, bytes_per_token, bytes_per_pair)``,
the chunk spans of the largest chunk whose memory fits a budget."""

from __future__ import annotations

from lcteach.chunking import ChunkedProcessor, largest_chunk
from lcteach.grading.expectations import counted_only_if_right, expect_value_error
from lcteach.grading.results import CheckFailed
from lcteach.grading.session import Case, check


def chunk_cost(c: int, bytes_per_token: int, bytes_per_pair: int) -> int:
    """Peak bytes of one chunk of c tokens: activations grow with c, attention scores with c^2."""
    return bytes_per_token * c + bytes_per_pair * c * c


def expected_spans(n: int, budget: int, overlap: int, per_token: int, per_pair: int) -> list[tuple[int, int]]:
    size = largest_chunk(budget, overlap=overlap, max_chunk=n, cost=lambda c: chunk_cost(c, per_token, per_pair))
    return [(span.start, span.end) for span in ChunkedProcessor(size, overlap).spans(n)]


def _as_spans(result) -> list[tuple[int, int]]:
    if not isinstance(result, list) or not all(
        isinstance(span, tuple) and len(span) == 2 and all(type(x) is int for x in span) for span in result
    ):
        raise CheckFailed(
            f"schedule_chunks should return a list of (start, end) tuples of ints, got {_describe(result)}",
            "build the list with spans.append((start, end)), start and end Python ints",
        )
    return result


def _describe(result) -> str:
    if isinstance(result, list) and result:
        return f"a list of {type(result[0]).__name__}"
    return type(result).__name__


def _spans_problem(seen: list[tuple[int, int]], expected: list[tuple[int, int]], size: int) -> str:
    """What differs, in words that name no drawn number."""
    seen_size = max((end - start for start, end in seen), default=0)
    if seen_size > size:
        return "your chunks are longer than the budget allows: the largest chunk must cost at most budget_bytes"
    if seen_size and seen_size < size:
        return "your chunks are shorter than the budget allows: take the LARGEST chunk c with cost(c) <= budget_bytes"
    if seen and seen[0][0] != 0:
        return "the first chunk must start at position 0"
    if seen[: len(expected)] == expected:
        return "there are chunks after the one that reaches position n"
    if expected[: len(seen)] == seen:
        return "the last chunk must reach position n"
    return "the chunks must start every chunk - overlap positions, each (start, min(start + chunk, n))"


def _check(student, case: Case, n: int, budget: int, overlap: int, per_token: int, per_pair: int) -> None:
    seen = _as_spans(case.call(student, n, budget, overlap, per_token, per_pair))
    expected = expected_spans(n, budget, overlap, per_token, per_pair)
    if seen != expected:
        size = expected[0][1] - expected[0][0]
        shown = ", ".join(f"({a}, {b})" for a, b in expected[:4])
        raise CheckFailed(
            f"the spans differ: {_spans_problem(seen, expected, size)}",
            "cost(c) = bytes_per_token * c + bytes_per_pair * c**2; find the largest c <= n with cost(c) <= "
            "budget_bytes, then cut as in Part 6",
            details=f"n={n}, budget_bytes={budget}, overlap={overlap}, bytes_per_token={per_token}, "
            f"bytes_per_pair={per_pair}: expected {len(expected)} spans {shown}{', ...' if len(expected) > 4 else ''}, "
            f"got {len(seen)}",
        )


def _draw(case: Case) -> tuple[int, int, int, int, int]:
    """n, a budget that fits a chunk of 40 to 400 tokens, an overlap below it, the two costs per token and pair."""
    per_token, per_pair = 4 * case.randint(64, 512), 4 * case.randint(1, 16)
    size = case.randint(40, 400)
    budget = chunk_cost(size, per_token, per_pair) + case.randint(0, per_pair * size)
    return case.randint(3 * size, 12 * size), budget, case.randint(0, size // 3), per_token, per_pair


@check("the spans of the largest chunk that fits, for random budgets and overlaps")
def _schedule_random(student, case):
    for _ in range(3):
        _check(student, case, *_draw(case))


@check("a budget of exactly cost(c) fits c; the whole sequence in one chunk when it fits; no overlap")
def _schedule_edges(student, case):
    n, _, overlap, per_token, per_pair = _draw(case)
    size = case.randint(overlap + 2, n - 1)
    _check(student, case, n, chunk_cost(size, per_token, per_pair), overlap, per_token, per_pair)
    _check(student, case, n, chunk_cost(size, per_token, per_pair) - 1, overlap, per_token, per_pair)
    _check(student, case, n, chunk_cost(n, per_token, per_pair) + case.randint(0, 1000), overlap, per_token, per_pair)
    _check(student, case, n, chunk_cost(size, per_token, per_pair), 0, per_token, per_pair)


@check("raises ValueError when no chunk longer than the overlap fits the budget")
def _schedule_refuses(student, case):
    n, budget, overlap, per_token, per_pair = _draw(case)
    overlap = case.randint(8, 32)
    too_small = chunk_cost(overlap + 1, per_token, per_pair) - 1

    def raises():
        expect_value_error(
            case,
            student,
            n,
            too_small,
            overlap,
            per_token,
            per_pair,
            call="a budget below the cost of a chunk of overlap + 1 tokens",
            hint="if even c = overlap + 1 costs more than budget_bytes, raise ValueError saying the budget is too small",
            inputs=f"n={n}, budget_bytes={too_small}, overlap={overlap}",
        )

    counted_only_if_right(
        "it raises ValueError", raises, lambda: _check(student, case, n, budget, 0, per_token, per_pair)
    )


CHECKS = (
    _schedule_random,
    _schedule_edges,
    _schedule_refuses,
)
