"""Analyses of attention patterns: closed-form complexity and reachability through stacked layers."""

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
from lcteach.analysis.reachability import Pattern, hop_counts, minimal_layers_for_full_reach
