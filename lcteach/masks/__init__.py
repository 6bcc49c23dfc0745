"""Attention patterns as FlexAttention ``mask_mod`` functions, one pattern per module (as attention-gym does),
their evaluation and counting, and the catalog of named patterns.

Every ``generate_<name>`` returns ``mask_mod(b, h, q_idx, kv_idx) -> bool tensor`` (True = attend,
positions start at 0) built from elementwise tensor ops only, so it works on scalar indices under
``vmap`` (create_mask, create_block_mask), on broadcast index grids (the tiled kernels) and inside
``and_masks`` / ``or_masks``. The b index is ignored, and so is h except in generate_strided with one
stride per head: otherwise every head and batch entry gets the same pattern.
"""

from lcteach.masks.bigbird import bigbird_layout, generate_bigbird
from lcteach.masks.block_sparse import generate_block_sparse
from lcteach.masks.catalog import (
    COMBINE,
    PATTERN_PARAMETERS,
    SPARSE_PATTERNS,
    WINDOW_PATTERNS,
    combine,
    generate_sparse_transformer,
    local_block_layout,
    recall_patterns,
    sparse_pattern,
    window_pattern,
)
from lcteach.masks.causal import causal_mask, full_mask
from lcteach.masks.documents import (
    document_ids,
    document_offsets,
    generate_document_mask,
    random_document_lengths,
)
from lcteach.masks.evaluation import (
    FLOPS_PER_PAIR_PER_DIM,
    MaskMod,
    PatternCost,
    count_allowed_pairs,
    evaluate_grid,
    evaluate_rows,
    index_grid,
    mask_name,
    materialize_mask,
    pair_flops,
    pattern_density,
    pattern_flops,
)
from lcteach.masks.global_tokens import generate_global
from lcteach.masks.lookup import LookupTable
from lcteach.masks.prefix_lm import generate_prefix_lm
from lcteach.masks.random import generate_random_blocks, generate_random_tokens
from lcteach.masks.sliding_window import generate_sliding_window, generate_symmetric_window
from lcteach.masks.strided import generate_strided
