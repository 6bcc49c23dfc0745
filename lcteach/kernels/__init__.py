"""Attention kernels: dense, online softmax, tiled (flash-style), banded, block-sparse, FlexAttention, top-k,
content-adaptive block selection, learned block patterns.

Tensors are (batch, heads, seq, dim); each kernel's docstring gives its shapes and costs.
"""

from lcteach.kernels.banded import banded_attention
from lcteach.kernels.block_selection import block_means, block_scores, select_blocks
from lcteach.kernels.block_sparse import block_layout, block_sparse_attention, block_sparse_work
from lcteach.kernels.dense import dense_attention
from lcteach.kernels.flex import flex_block_mask, flex_fallback_reason, flex_sparse_attention
from lcteach.kernels.learned_blocks import (
    BlockPatternPredictor,
    attention_recall,
    block_attention_mass,
    distillation_loss,
    keep_counts,
    keep_top_blocks,
    layout_block_mask,
    selection_flops,
    train_block_predictor,
    window_layout,
)
from lcteach.kernels.online_softmax import (
    finalize_softmax_state,
    init_softmax_state,
    merge_attention,
    online_softmax_step,
)
from lcteach.kernels.tiled import tiled_attention
from lcteach.kernels.tiles import FULL, PARTIAL, SKIPPED, Tile, key_tiles, query_blocks, tile_mask, tile_status
from lcteach.kernels.topk import ContentAdaptiveAttention, PatternChoice, topk_attention
