"""The dilated ("strided") pattern of the Sparse Transformer."""

from __future__ import annotations

from lcteach.masks.evaluation import MaskMod
from lcteach.validation import check_positive_int


def generate_strided(stride: int) -> MaskMod:
    """Dilated ("strided") pattern: query i attends key j when (i - j) % stride == 0.

    NOT causal: j runs both ways, i - stride, i, i + stride, ... ; take and_masks(causal_mask,
    generate_strided(s)) for the earlier keys only. ``stride=1`` is full attention. Each row
    has about n / stride keys. Sparse Transformer's strided attention adds a local window:
    and_masks(causal_mask, or_masks(generate_sliding_window(s), generate_strided(s))),
    O(n sqrt(n)) pairs with s = sqrt(n).
    """
    check_positive_int("stride", stride)

    def strided(b, h, q_idx, kv_idx):
        return (q_idx - kv_idx) % stride == 0

    strided.__name__ = f"strided_{stride}"
    return strided
