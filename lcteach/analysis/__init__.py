"""Analyses of attention: closed-form complexity, reachability through stacked layers, and memory traffic."""

from lcteach.analysis.complexity import (
    AttentionCost,
    bigbird_cost,
    complexity_table,
    dense_cost,
    format_complexity_table,
    hierarchical_cost,
    linear_attention_cost,
    longformer_cost,
    memory_augmented_cost,
    sliding_window_cost,
    strided_cost,
)
from lcteach.analysis.memory_traffic import (
    MemoryTraffic,
    flash_attention_traffic,
    flash_block_sizes,
    simulate_flash_traffic,
    standard_attention_traffic,
)
from lcteach.analysis.reachability import Pattern, hop_counts, minimal_layers_for_full_reach
