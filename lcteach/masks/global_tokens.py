"""Longformer's global tokens: a few positions that attend everywhere and are attended by all."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lcteach.masks.evaluation import MaskMod
from lcteach.masks.lookup import LookupTable
from lcteach.validation import check_nonnegative_int, check_positive_int


def _global_positions(global_tokens: int | Sequence[int]) -> list[int]:
    if isinstance(global_tokens, int) and not isinstance(global_tokens, bool):
        return list(range(check_positive_int("global_tokens", global_tokens)))
    if isinstance(global_tokens, (str, bytes)) or not isinstance(global_tokens, Sequence) or not global_tokens:
        raise ValueError(f"global_tokens must be a count >= 1 or a non-empty list of positions, got {global_tokens!r}")
    return [check_nonnegative_int("each global token position", position) for position in global_tokens]


def generate_global(global_tokens: int | Sequence[int]) -> MaskMod:
    """Longformer global attention: global tokens attend to every key and every query attends to them.

    ``global_tokens`` is a count k (the first k tokens, 0..k-1) or a list of positions.
    Allowed: q_idx global OR kv_idx global. With g global tokens out of n, 2gn - g^2 pairs.
    Combine with a window: or_masks(generate_symmetric_window(w), generate_global(g)).
    """
    positions = _global_positions(global_tokens)
    flags = torch.zeros(max(positions) + 1, dtype=torch.bool)
    flags[positions] = True
    is_global = LookupTable(flags)

    def global_tokens_mask(b, h, q_idx, kv_idx):
        return is_global(q_idx) | is_global(kv_idx)

    if isinstance(global_tokens, int):
        global_tokens_mask.__name__ = f"global_first_{global_tokens}"
    else:
        global_tokens_mask.__name__ = "global_at_" + "_".join(map(str, positions))
    return global_tokens_mask
