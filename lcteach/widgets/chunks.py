"""The Week 1 chunk explorer: chunks, overlap and the left context each position keeps."""

from __future__ import annotations

import torch

from lcteach.chunking.processor import RESOLUTIONS, ChunkedProcessor, left_context
from lcteach.viz.chunks import plot_chunks
from lcteach.widgets.explorer import Controls, Explorer, dropdown, info_line, slider


def chunk_explorer(n: int = 64, chunk_size: int = 16, overlap: int = 4, *, resolve: str = "first") -> Explorer:
    """Cut n positions into overlapping chunks and see what each position keeps of its left context.

    The overlap slider's maximum follows chunk_size (overlap < chunk_size); when a smaller
    chunk size lowers the overlap, the info line says so. Info: the number of chunks, the
    positions computed twice, and the least left context any position gets once chunking
    has cut it off.
    """
    ChunkedProcessor(chunk_size, overlap, resolve)  # reject impossible settings here, with its message
    controls = {
        "n": slider("n", n, 8, 256),
        "chunk_size": slider("chunk_size", chunk_size, 2, 128),
        "overlap": slider("overlap", overlap, 0, chunk_size - 1),
        "resolve": dropdown("resolve", RESOLUTIONS, resolve),
    }

    def sync(c: Controls) -> str | None:
        old = c["overlap"].value
        c["overlap"].max = c["chunk_size"].value - 1  # also lowers overlap's value if needed
        if c["overlap"].value != old:
            return f"overlap lowered from {old} to {c['overlap'].value}: it must be less than chunk_size = {c['chunk_size'].value}"
        return None

    def render(n: int, chunk_size: int, overlap: int, resolve: str):
        processor = ChunkedProcessor(chunk_size, overlap, resolve)
        spans = processor.spans(n)
        wasted = sum(span.end - span.start for span in spans) - n
        context = left_context(processor, n)
        cut = context < torch.arange(n)  # positions that see less than without chunking
        least = f"{int(context[cut].min())} positions" if bool(cut.any()) else "nothing lost (one chunk)"
        info = info_line(
            ("chunks", str(len(spans))),
            ("positions recomputed", f"{wasted} ({wasted / n:.0%} extra work)"),
            ("least left context after a cut", least),
        )
        return plot_chunks(processor, n), info

    return Explorer(controls, render, sync)
