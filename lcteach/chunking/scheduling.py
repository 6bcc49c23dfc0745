"""Memory-budgeted chunking: the largest chunk whose attention fits a memory budget."""

from __future__ import annotations

from collections.abc import Callable

import torch

from lcteach.chunking.processor import ChunkedProcessor
from lcteach.measure.oom import dense_attention_memory
from lcteach.measure.units import format_bytes
from lcteach.validation import check_positive_int


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

        def cost(c: int) -> int:
            return dense_attention_memory(c, batch=batch, heads=heads, dim=dim, dtype=dtype)

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
