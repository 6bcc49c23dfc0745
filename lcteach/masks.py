"""Attention patterns as FlexAttention ``mask_mod`` functions.

A mask_mod is ``mask_mod(b, h, q_idx, kv_idx) -> bool tensor`` with True = the query may
attend to the key. Positions start at 0. The functions here use only elementwise tensor
ops, so they work on scalar indices (under ``vmap``, as FlexAttention calls them) and on
broadcast index grids (as lcteach's tiled kernel calls them). Combine them with
``torch.nn.attention.flex_attention.and_masks`` / ``or_masks``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn.attention.flex_attention import create_mask

from ._validation import check_mask_mod, check_positive_int

MaskMod = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def causal_mask(b, h, q_idx, kv_idx):
    """Query i attends to keys 0..i, itself included."""
    return q_idx >= kv_idx


def generate_sliding_window(window: int) -> MaskMod:
    """Causal sliding window of ``window`` keys that ends at the query itself.

    Query i attends to keys j with i - window < j <= i: ``window=1`` is the query alone,
    ``window=3`` is the query and the two keys before it. Each row has min(i + 1, window)
    allowed keys, so the pattern costs O(n * window) instead of O(n^2).
    """
    check_positive_int("window", window)

    def sliding_window(b, h, q_idx, kv_idx):
        return (q_idx >= kv_idx) & (q_idx - kv_idx < window)

    sliding_window.__name__ = f"sliding_window_{window}"
    return sliding_window


def materialize_mask(
    mask_mod: MaskMod,
    q_len: int,
    kv_len: int | None = None,
    *,
    batch: int | None = None,
    heads: int | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Evaluate ``mask_mod`` on every (query, key) pair with FlexAttention's ``create_mask``.

    Returns a bool tensor (batch or 1, heads or 1, q_len, kv_len). Memory O(q_len * kv_len):
    for pictures and small checks; kernels evaluate the mask tile by tile instead.
    """
    check_mask_mod(mask_mod)
    check_positive_int("q_len", q_len)
    kv_len = q_len if kv_len is None else check_positive_int("kv_len", kv_len)
    return create_mask(mask_mod, batch, heads, q_len, kv_len, device=device)
