"""Memory-budgeted chunking: the largest chunk whose attention fits a memory budget.

``largest_chunk`` finds the chunk size, ``plan_chunks`` turns it into a ChunkedProcessor and
``plan_summary`` says what a plan costs: how many chunks, how many positions are computed
twice because consecutive chunks overlap, and the predicted peak bytes of its largest chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from lcteach.chunking.processor import ChunkedProcessor
from lcteach.measure.oom import dense_attention_memory
from lcteach.measure.units import format_bytes
from lcteach.validation import check_positive_int


def _dense_cost(batch: int, heads: int, dim: int, dtype: torch.dtype) -> Callable[[int], int]:
    """The default cost of a chunk of c positions: dense attention within it (forward, no_grad)."""

    def cost(c: int) -> int:
        return dense_attention_memory(c, batch=batch, heads=heads, dim=dim, dtype=dtype)

    return cost


def largest_chunk(
    budget_bytes: int,
    *,
    overlap: int = 0,
    batch: int = 1,
    heads: int = 1,
    dim: int = 64,
    dtype: torch.dtype = torch.float32,
    multiple_of: int = 1,
    max_chunk: int | None = None,
    cost: Callable[[int], int] | None = None,
) -> int:
    """Largest chunk size c (a multiple of ``multiple_of``, > overlap) with cost(c) <= budget.

    ``cost(c)`` gives the peak bytes of processing one chunk of c positions; by default it
    is dense attention within the chunk (profiling.dense_attention_memory). Found by
    binary search, so the cost must grow with c. Raises ValueError if no chunk fits.
    """
    check_positive_int("budget_bytes", budget_bytes)
    check_positive_int("multiple_of", multiple_of)
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
        # A negative overlap would start the search at a chunk of 0 and loop forever.
        raise ValueError(f"overlap must be an integer >= 0, got {overlap!r}")
    if cost is None:
        cost = _dense_cost(batch, heads, dim, dtype)

    def fits(units: int) -> bool:
        size = units * multiple_of
        return (max_chunk is None or size <= max_chunk) and cost(size) <= budget_bytes

    lo = overlap // multiple_of + 1  # in units of multiple_of; the smallest chunk longer than the overlap
    if not fits(lo):
        raise ValueError(
            f"a budget of {format_bytes(budget_bytes)} (max_chunk={max_chunk}) does not fit even a chunk of "
            f"{lo * multiple_of} positions (needs {format_bytes(cost(lo * multiple_of))}); "
            "raise the budget or lower the overlap"
        )
    hi = 2 * lo
    while fits(hi):  # double until too big, then bisect: lo always fits, hi never does
        if hi * multiple_of > 2**50:
            raise ValueError("cost(c) never exceeds the budget; pass max_chunk to bound the chunk size")
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo * multiple_of


def plan_chunks(n: int, budget_bytes: int, *, overlap: int = 0, resolve: str = "first", **kwargs) -> ChunkedProcessor:
    """A ChunkedProcessor for a sequence of n positions whose every chunk fits ``budget_bytes``.

    Keyword arguments go to ``largest_chunk``; the chunk never exceeds n.
    """
    check_positive_int("n", n)
    kwargs.setdefault("max_chunk", max(n, overlap + 1))
    return ChunkedProcessor(largest_chunk(budget_bytes, overlap=overlap, **kwargs), overlap, resolve)


@dataclass(frozen=True)
class PlanSummary:
    """What a chunk plan for n positions costs.

    ``chunks`` chunks of at most ``chunk_size`` positions cover the sequence; together they
    compute ``processed`` positions, of which ``recomputed = processed - n`` are computed a
    second time because consecutive chunks share ``overlap`` positions. ``peak_bytes`` is the
    predicted cost of the largest chunk (the peak of the whole plan, since chunks run one at
    a time), ``budget_bytes`` the budget it was planned for (None if unknown).
    """

    n: int
    chunk_size: int
    overlap: int
    chunks: int
    processed: int
    peak_bytes: int
    budget_bytes: int | None = None

    @property
    def recomputed(self) -> int:
        return self.processed - self.n

    @property
    def overhead(self) -> float:
        """Extra work from the overlap: recomputed positions per position of the sequence."""
        return self.recomputed / self.n

    @property
    def fits(self) -> bool:
        """Whether the largest chunk's predicted peak stays within the budget (True without one)."""
        return self.budget_bytes is None or self.peak_bytes <= self.budget_bytes


def plan_summary(
    processor: ChunkedProcessor,
    n: int,
    *,
    budget_bytes: int | None = None,
    batch: int = 1,
    heads: int = 1,
    dim: int = 64,
    dtype: torch.dtype = torch.float32,
    cost: Callable[[int], int] | None = None,
) -> PlanSummary:
    """Count the chunks, processed and recomputed positions and the predicted peak of a plan.

    ``cost(c)`` is the peak bytes of one chunk of c positions, as in ``largest_chunk``
    (default: dense attention within the chunk, with the given batch, heads, dim and dtype).
    With stride s = chunk_size - overlap there are 1 + ceil((n - chunk_size) / s) chunks when
    n > chunk_size, so about n * overlap / s positions are recomputed. O(n / s) time.
    """
    if not isinstance(processor, ChunkedProcessor):
        raise ValueError(f"processor must be a ChunkedProcessor, got {type(processor).__name__}")
    check_positive_int("n", n)
    if budget_bytes is not None:
        check_positive_int("budget_bytes", budget_bytes)
    if cost is None:
        cost = _dense_cost(batch, heads, dim, dtype)
    lengths = [span.end - span.start for span in processor.spans(n)]
    return PlanSummary(
        n=n,
        chunk_size=processor.chunk_size,
        overlap=processor.overlap,
        chunks=len(lengths),
        processed=sum(lengths),
        peak_bytes=max(cost(length) for length in set(lengths)),
        budget_bytes=budget_bytes,
    )
