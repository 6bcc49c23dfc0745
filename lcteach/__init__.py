"""lcteach: reference implementations for the LCTeach long-context course.

One concept per module; the most used names are re-exported here.
"""

from .attention import dense_attention
from .banded import banded_attention
from .block_sparse import block_layout, block_sparse_attention, block_sparse_work
from .chunking import ChunkedProcessor, Span
from .flex import flex_block_mask, flex_fallback_reason, flex_sparse_attention
from .masks import causal_mask, generate_sliding_window, materialize_mask
from .memory import peak_memory, track_peak_memory
from .online_softmax import finalize_softmax_state, init_softmax_state, merge_attention, online_softmax_step
from .plots import plot_attention, plot_chunks, plot_mask, plot_online_softmax, plot_scaling, plot_tiles, tile_status
from .profiling import ScalingReport, dense_attention_memory, diagnose_oom, fit_exponent, format_bytes, profile_scaling
from .scheduling import largest_chunk, plan_chunks
from .tiled import tiled_attention
from .widgets import chunk_explorer, tiling_explorer, window_explorer

__all__ = [
    "ChunkedProcessor",
    "ScalingReport",
    "Span",
    "banded_attention",
    "block_layout",
    "block_sparse_attention",
    "block_sparse_work",
    "causal_mask",
    "chunk_explorer",
    "dense_attention",
    "dense_attention_memory",
    "diagnose_oom",
    "finalize_softmax_state",
    "fit_exponent",
    "flex_block_mask",
    "flex_fallback_reason",
    "flex_sparse_attention",
    "format_bytes",
    "generate_sliding_window",
    "init_softmax_state",
    "largest_chunk",
    "materialize_mask",
    "merge_attention",
    "online_softmax_step",
    "peak_memory",
    "plan_chunks",
    "plot_attention",
    "plot_chunks",
    "plot_mask",
    "plot_online_softmax",
    "plot_scaling",
    "plot_tiles",
    "profile_scaling",
    "tile_status",
    "tiled_attention",
    "tiling_explorer",
    "track_peak_memory",
    "window_explorer",
]
