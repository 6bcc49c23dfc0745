"""Pictures of chunked processing: the chunks and the left context each position keeps."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from lcteach.chunking.processor import ChunkedProcessor, left_context
from lcteach.viz.figures import DARK_COLOR, LIGHT_COLOR, two_panels


def plot_chunks(processor: ChunkedProcessor, n: int, *, ax: Axes | None = None, title: str | None = None) -> Figure:
    """The chunks of ``processor`` over n positions (top) and the left context each position keeps (bottom).

    Light bars are the positions a chunk processes; dark bars the outputs it contributes
    (for "mean" every processed position contributes to an average). Given ``ax``, it is
    split into the two panels.
    """
    spans = processor.spans(n)
    fig, top, bottom = two_panels(ax, (8, 6))
    for index, span in enumerate(spans):
        keep = (span.start, span.end) if processor.resolve == "mean" else (span.keep_start, span.keep_end)
        # Position p is the cell [p - 0.5, p + 0.5), as in the panel below.
        top.barh(
            index,
            span.end - span.start,
            left=span.start - 0.5,
            height=0.7,
            color=LIGHT_COLOR,
            edgecolor=DARK_COLOR,
            linewidth=0.8,
        )
        top.barh(index, keep[1] - keep[0], left=keep[0] - 0.5, height=0.35, color=DARK_COLOR)
    top.set_ylim(len(spans) - 0.4, -0.6)  # chunk 0 on top
    top.yaxis.set_major_locator(MaxNLocator(integer=True))
    top.set_ylabel("chunk")
    kept = "output averaged" if processor.resolve == "mean" else "output kept"
    top.legend(
        handles=[
            Patch(facecolor=LIGHT_COLOR, edgecolor=DARK_COLOR, label="positions processed"),
            Patch(color=DARK_COLOR, label=kept),
        ],
        loc="upper right",
        fontsize="small",
    )
    wasted = sum(s.end - s.start for s in spans) - n
    top.set_title(
        title
        or f"chunk_size={processor.chunk_size}, overlap={processor.overlap}, resolve={processor.resolve!r}:\n"
        f"{len(spans)} chunks, {wasted} positions recomputed"
    )
    positions = np.arange(n)
    bottom.plot(positions, positions, "--", color="0.5", linewidth=1, label="without chunking (p)")
    context = left_context(processor, n).numpy()
    label = "with chunking" + (" (least of the chunks averaged)" if processor.resolve == "mean" else "")
    bottom.step(positions, context, where="mid", color=DARK_COLOR, linewidth=1.8, label=label, gid="left_context")
    if processor.overlap:
        bottom.axhline(
            processor.overlap, color="#dd6b20", linestyle=":", linewidth=1.2, label=f"overlap = {processor.overlap}"
        )
    bottom.set_xlim(-0.5, n - 0.5)
    bottom.set_ylim(bottom=0)
    bottom.set_xlabel("position")
    bottom.set_ylabel("left context\n(earlier positions seen)")
    bottom.legend(loc="upper left", fontsize="small")
    top.tick_params(labelbottom=True)
    return fig
