"""Pure plot functions by topic: ``plot_*(..., ax=None) -> Figure``; no global state is changed."""

from lcteach.viz.analysis import plot_complexity, plot_hop_counts, plot_memory_traffic
from lcteach.viz.attention import plot_attention, plot_online_softmax
from lcteach.viz.block_patterns import plot_layouts, plot_recall_vs_sparsity, plot_training_loss
from lcteach.viz.chunks import plot_chunks
from lcteach.viz.masks import plot_composition, plot_mask, plot_pattern
from lcteach.viz.recall import plot_reach_by_distance, plot_recall_accuracy
from lcteach.viz.scaling import plot_scaling
from lcteach.viz.scores import plot_score_bias, plot_score_curve
from lcteach.viz.tiles import plot_tiles
