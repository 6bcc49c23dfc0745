"""Chunked processing of long sequences, memory-budgeted chunk scheduling and CPU offload.

The offload module loads on first use: it needs lcteach.kernels, which the chunking tools
that graders and plots import do not.
"""

from lcteach.chunking.processor import RESOLUTIONS, ChunkedProcessor, Span, left_context
from lcteach.chunking.scheduling import PlanSummary, largest_chunk, plan_chunks, plan_summary
from lcteach.lazy import lazy_exports

_HOME = dict.fromkeys(("OffloadedAttention", "offloaded_attention", "pinned_host_copy"), "lcteach.chunking.offload")
__all__ = sorted(
    [*_HOME, "RESOLUTIONS", "ChunkedProcessor", "Span", "left_context"]
    + ["PlanSummary", "largest_chunk", "plan_chunks", "plan_summary"]
)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _HOME)
