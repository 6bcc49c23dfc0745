"""The two patterns every other one is measured against: causal attention and full attention.

Both use only elementwise tensor ops, so they work on scalar indices (under ``vmap``, as
FlexAttention calls them) and on broadcast index grids (as lcteach's tiled kernel calls them).
"""

from __future__ import annotations


def causal_mask(b, h, q_idx, kv_idx):
    """Query i attends to keys 0..i, itself included."""
    return q_idx >= kv_idx


def full_mask(b, h, q_idx, kv_idx):
    """Every query attends to every key (no mask)."""
    return (q_idx >= 0) & (kv_idx >= 0)
