"""Block-sparse patterns from a (q_blocks, kv_blocks) layout."""

from __future__ import annotations

import torch

from lcteach.masks.evaluation import MaskMod
from lcteach.masks.lookup import LookupTable
from lcteach.validation import check_bool_matrix, check_positive_int


def generate_block_sparse(layout: torch.Tensor, block_size: int) -> MaskMod:
    """Block-sparse pattern from a bool (q_blocks, kv_blocks) layout: query i attends key j
    when layout[i // block_size, j // block_size]. Covers q_blocks * block_size queries and
    kv_blocks * block_size keys; False beyond. The layout is copied: changing it later does
    not change the mask. Pairs: block_size^2 * layout.sum().
    """
    blocks = LookupTable(check_bool_matrix("layout", layout).detach())
    check_positive_int("block_size", block_size)

    def block_sparse(b, h, q_idx, kv_idx):
        return blocks(q_idx // block_size, kv_idx // block_size)

    block_sparse.__name__ = f"block_sparse_{layout.shape[0]}x{layout.shape[1]}_b{block_size}"
    return block_sparse
