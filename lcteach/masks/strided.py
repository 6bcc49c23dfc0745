"""The dilated ("strided") pattern of the Sparse Transformer, one stride for all heads or one per head."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lcteach.masks.evaluation import MaskMod
from lcteach.validation import check_positive_int


def _strides(stride: int | Sequence[int]) -> int | list[int]:
    """``stride`` as an int, or as a list of ints (one per head); ValueError unless every stride is >= 1."""
    if isinstance(stride, int) or not isinstance(stride, Sequence):  # bool is an int: check_positive_int refuses it
        return check_positive_int("stride", stride)
    if isinstance(stride, (str, bytes)) or not stride:
        raise ValueError(f"stride must be an integer >= 1 or a non-empty sequence of them, got {stride!r}")
    return [check_positive_int(f"stride[{head}]", value) for head, value in enumerate(stride)]


def generate_strided(stride: int | Sequence[int]) -> MaskMod:
    """Dilated ("strided") pattern: query i attends key j when (i - j) % stride == 0.

    NOT causal: j runs both ways, i - stride, i, i + stride, ... ; take and_masks(causal_mask,
    generate_strided(s)) for the earlier keys only. ``stride=1`` is full attention. Each row
    has about n / stride keys. Sparse Transformer's strided attention adds a local window:
    and_masks(causal_mask, or_masks(generate_sliding_window(s), generate_strided(s))),
    O(n sqrt(n)) pairs with s = sqrt(n).

    ``stride`` may also be a sequence of ints, one per head (Longformer dilates its heads
    differently): head h uses stride[h], so the mask_mod must be evaluated with exactly
    len(stride) heads (create_mask(..., H=len(stride), ...)); a head past the end is an
    IndexError. An int is the same stride on every head.
    """
    strides = _strides(stride)
    if isinstance(strides, int):

        def strided(b, h, q_idx, kv_idx):
            return (q_idx - kv_idx) % strides == 0

        strided.__name__ = f"strided_{strides}"
        return strided
    table = torch.tensor(strides)

    def strided_per_head(b, h, q_idx, kv_idx):
        return (q_idx - kv_idx) % table.to(h.device)[h] == 0

    strided_per_head.__name__ = "strided_" + "_".join(map(str, strides))
    return strided_per_head
