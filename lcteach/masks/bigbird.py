"""BigBird: a symmetric window, global tokens and random blocks, composed with or_masks."""

from __future__ import annotations

from torch.nn.attention.flex_attention import or_masks

from lcteach.masks.evaluation import MaskMod
from lcteach.masks.global_tokens import generate_global
from lcteach.masks.random import generate_random_blocks
from lcteach.masks.sliding_window import generate_symmetric_window
from lcteach.validation import check_blocks, check_nonnegative_int


def generate_bigbird(
    window: int, num_global: int, num_random_blocks: int, block_size: int, seq_len: int, *, seed: int
) -> MaskMod:
    """BigBird (ITC), built as or_masks(symmetric window, global tokens, random blocks).

    - window: generate_symmetric_window(window), bidirectional as in the paper: |i - j| <=
      window // 2 (``window`` odd, the query included);
    - global: the first ``num_global`` tokens (generate_global); 0 leaves them out;
    - random: ``num_random_blocks`` random key blocks of ``block_size`` per query block
      (generate_random_blocks, from ``seed``); 0 leaves them out.
    ``block_size`` must divide ``seq_len`` (checked even when there are no random blocks).
    Positions past ``seq_len`` get only the window and the global tokens.
    O(n (window + num_global + num_random_blocks * block_size)) pairs.
    """
    check_blocks(seq_len, block_size)
    check_nonnegative_int("num_global", num_global)
    check_nonnegative_int("num_random_blocks", num_random_blocks)
    parts = [generate_symmetric_window(window)]
    if num_global:
        parts.append(generate_global(num_global))
    if num_random_blocks:
        parts.append(generate_random_blocks(seq_len, block_size, num_random_blocks, seed=seed))
    bigbird = or_masks(*parts)
    bigbird.__name__ = f"bigbird_w{window}_g{num_global}_r{num_random_blocks}x{block_size}_seed{seed}"
    return bigbird
