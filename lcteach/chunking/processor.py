"""Chunked processing with overlap: run a length-limited function over a long sequence.

A sequence of n positions is cut into chunks of ``chunk_size`` that start every
``chunk_size - overlap`` positions, so consecutive chunks share ``overlap`` positions.
Each chunk is processed on its own; a position covered by two chunks is then resolved:

- ``"first"``: keep the earlier chunk's output. The later chunk's first ``overlap``
  positions serve only as left context (warm-up), so every kept position after the first
  chunk sees at least ``overlap`` earlier positions. The right choice for causal models.
- ``"center"``: split each shared region in half, so positions are taken from the chunk in
  which they sit further from a border. The right choice for bidirectional models.
- ``"mean"``: average all chunks that cover a position.

Whatever the choice, no position sees anything outside its chunk: that is what chunking
loses at the borders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from lcteach.validation import check_positive_int

RESOLUTIONS = ("first", "center", "mean")


@dataclass(frozen=True)
class Span:
    """One chunk covers positions [start, end) and contributes positions [keep_start, keep_end)."""

    start: int
    end: int
    keep_start: int
    keep_end: int


class ChunkedProcessor:
    """Split a sequence into overlapping chunks, process each, merge the results.

    Example: ``ChunkedProcessor(512, 64).process(model, x)`` runs ``model`` on chunks of
    x (..., n, d) along dim -2 and returns (..., n, d_out). Peak memory is that of one
    chunk; for causal attention the cost falls from O(n^2) to O(n * chunk_size).
    """

    def __init__(self, chunk_size: int, overlap: int = 0, resolve: str = "first"):
        check_positive_int("chunk_size", chunk_size)
        if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < chunk_size:
            raise ValueError(f"overlap must be an integer with 0 <= overlap < chunk_size={chunk_size}, got {overlap!r}")
        if resolve not in RESOLUTIONS:
            raise ValueError(f"resolve must be one of {RESOLUTIONS}, got {resolve!r}")
        self.chunk_size, self.overlap, self.resolve = chunk_size, overlap, resolve

    @property
    def stride(self) -> int:
        return self.chunk_size - self.overlap

    def __repr__(self) -> str:
        return f"ChunkedProcessor(chunk_size={self.chunk_size}, overlap={self.overlap}, resolve={self.resolve!r})"

    def spans(self, n: int) -> list[Span]:
        """The chunks for a sequence of length n, in order; their keep ranges tile [0, n)."""
        check_positive_int("n", n)
        bounds = []
        start = 0
        while True:
            end = min(start + self.chunk_size, n)
            bounds.append((start, end))
            if end == n:
                break
            start += self.stride
        spans = []
        for i, (start, end) in enumerate(bounds):
            prev_end = bounds[i - 1][1] if i else start
            next_start = bounds[i + 1][0] if i + 1 < len(bounds) else end
            if self.resolve == "center":
                keep_start = (start + prev_end + 1) // 2 if i else start
                keep_end = (next_start + end + 1) // 2 if i + 1 < len(bounds) else end
            else:  # "first"; "mean" does not use keep ranges
                keep_start, keep_end = prev_end, end
            spans.append(Span(start, end, keep_start, keep_end))
        return spans

    def process(self, fn: Callable[..., torch.Tensor], *tensors: torch.Tensor, dim: int = -2) -> torch.Tensor:
        """Apply ``fn`` to matching chunks of ``tensors`` (cut along ``dim``) and merge.

        ``fn(*chunks)`` must return a tensor whose size along ``dim`` equals the chunk's.
        """
        if not tensors:
            raise ValueError("process needs at least one tensor to split")
        n = tensors[0].shape[dim]
        if any(t.shape[dim] != n for t in tensors):
            raise ValueError(
                f"all tensors must have the same length along dim {dim}: {[t.shape[dim] for t in tensors]}"
            )
        pieces, counts, out = [], None, None
        for span in self.spans(n):
            result = fn(*(t.narrow(dim, span.start, span.end - span.start) for t in tensors))
            if not isinstance(result, torch.Tensor) or result.shape[dim] != span.end - span.start:
                raise ValueError(
                    f"fn must return a tensor with {span.end - span.start} positions along dim {dim} "
                    f"for the chunk [{span.start}, {span.end}), got {getattr(result, 'shape', type(result))}"
                )
            if self.resolve != "mean":
                pieces.append(result.narrow(dim, span.keep_start - span.start, span.keep_end - span.keep_start))
                continue
            if out is None:
                shape = list(result.shape)
                shape[dim] = n
                out = result.new_zeros(shape)
                counts = torch.zeros(n, dtype=result.dtype, device=result.device)
            out.narrow(dim, span.start, span.end - span.start).add_(result)
            counts[span.start : span.end] += 1
        if self.resolve != "mean":
            return torch.cat(pieces, dim=dim)
        view = [1] * out.dim()
        view[dim] = n
        return out / counts.view(view)


def left_context(processor: ChunkedProcessor, n: int) -> torch.Tensor:
    """For each of n positions, how many earlier positions its output has seen (int64, shape (n,)).

    That is the position minus the start of the chunk whose output it keeps ("first",
    "center"); for "mean", the smallest such value among the chunks averaged. Without
    chunking position p would see p earlier positions.
    """
    positions = torch.arange(n)
    context = positions.clone()
    for span in processor.spans(n):
        lo, hi = (span.start, span.end) if processor.resolve == "mean" else (span.keep_start, span.keep_end)
        context[lo:hi] = torch.minimum(context[lo:hi], positions[lo:hi] - span.start)
    return context
