"""lcteach: reference implementations for the LCTeach long-context course.

One concept per module; the most used names are re-exported here.
"""

from .attention import dense_attention
from .banded import banded_attention
from .block_sparse import block_layout, block_sparse_attention, block_sparse_work
from .chunking import ChunkedProcessor, Span
from .complexity import (
    AttentionCost,
    bigbird_cost,
    complexity_table,
    dense_cost,
    format_complexity_table,
    hierarchical_cost,
    linear_attention_cost,
    longformer_cost,
    memory_augmented_cost,
    pair_flops,
    sliding_window_cost,
    strided_cost,
)
from .flex import flex_block_mask, flex_fallback_reason, flex_sparse_attention
from .masks import causal_mask, generate_sliding_window, materialize_mask
from .memory import peak_memory, track_peak_memory
from .online_softmax import (
    finalize_softmax_state,
    init_softmax_state,
    merge_attention,
    online_softmax_step,
)
from .pattern_plots import (
    plot_complexity,
    plot_composition,
    plot_hop_counts,
    plot_pattern,
)
from .patterns import (
    PatternCost,
    count_allowed_pairs,
    evaluate_rows,
    generate_bigbird,
    generate_block_sparse,
    generate_global,
    generate_random_blocks,
    generate_random_tokens,
    generate_strided,
    generate_symmetric_window,
    pattern_density,
    pattern_flops,
)
from .plots import (
    plot_attention,
    plot_chunks,
    plot_mask,
    plot_online_softmax,
    plot_scaling,
    plot_tiles,
    tile_status,
)
from .profiling import (
    ScalingReport,
    dense_attention_memory,
    diagnose_oom,
    fit_exponent,
    format_bytes,
    profile_scaling,
)
from .reachability import hop_counts, minimal_layers_for_full_reach
from .scheduling import largest_chunk, plan_chunks
from .tiled import tiled_attention
from .topk import ContentAdaptiveAttention, PatternChoice, topk_attention
from .widgets import (
    chunk_explorer,
    composition_explorer,
    mask_explorer,
    reachability_explorer,
    tiling_explorer,
    window_explorer,
)

__all__ = [
    "AttentionCost",
    "ChunkedProcessor",
    "ContentAdaptiveAttention",
    "PatternChoice",
    "PatternCost",
    "ScalingReport",
    "Span",
    "banded_attention",
    "bigbird_cost",
    "block_layout",
    "block_sparse_attention",
    "block_sparse_work",
    "causal_mask",
    "chunk_explorer",
    "complexity_table",
    "composition_explorer",
    "count_allowed_pairs",
    "dense_attention",
    "dense_attention_memory",
    "dense_cost",
    "diagnose_oom",
    "evaluate_rows",
    "finalize_softmax_state",
    "fit_exponent",
    "flex_block_mask",
    "flex_fallback_reason",
    "flex_sparse_attention",
    "format_bytes",
    "format_complexity_table",
    "generate_bigbird",
    "generate_block_sparse",
    "generate_global",
    "generate_random_blocks",
    "generate_random_tokens",
    "generate_sliding_window",
    "generate_strided",
    "generate_symmetric_window",
    "hierarchical_cost",
    "hop_counts",
    "init_softmax_state",
    "largest_chunk",
    "linear_attention_cost",
    "longformer_cost",
    "mask_explorer",
    "materialize_mask",
    "memory_augmented_cost",
    "merge_attention",
    "minimal_layers_for_full_reach",
    "online_softmax_step",
    "pair_flops",
    "pattern_density",
    "pattern_flops",
    "peak_memory",
    "plan_chunks",
    "plot_attention",
    "plot_chunks",
    "plot_complexity",
    "plot_composition",
    "plot_hop_counts",
    "plot_mask",
    "plot_online_softmax",
    "plot_pattern",
    "plot_scaling",
    "plot_tiles",
    "profile_scaling",
    "reachability_explorer",
    "sliding_window_cost",
    "strided_cost",
    "tile_status",
    "tiled_attention",
    "tiling_explorer",
    "topk_attention",
    "track_peak_memory",
    "window_explorer",
]
