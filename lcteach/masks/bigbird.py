"""BigBird: a symmetric window, global tokens and random blocks, composed with or_masks (token level),
and the paper's block layout (ITC), where the random blocks never land on window or global blocks."""

from __future__ import annotations

import torch
from torch.nn.attention.flex_attention import or_masks

from lcteach.masks.evaluation import MaskMod
from lcteach.masks.global_tokens import generate_global
from lcteach.masks.random import generate_random_blocks, random_rows
from lcteach.masks.sliding_window import generate_symmetric_window
from lcteach.validation import check_blocks, check_nonnegative_int, check_positive_int, check_symmetric_window


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


def bigbird_layout(
    num_blocks: int, window_blocks: int, global_blocks: int, random_blocks: int, *, seed: int
) -> torch.Tensor:
    """BigBird's block layout (ITC), the one its block-sparse kernels compute: a bool tensor
    (num_blocks, num_blocks), True at [qi, kj] when query block qi attends key block kj.

    - window: |qi - kj| <= window_blocks // 2 (``window_blocks`` odd, the query's own block included);
    - global: the first ``global_blocks`` blocks attend every block and every block attends them;
    - random: each other row gets exactly ``random_blocks`` more distinct key blocks, drawn uniformly
      from ``seed`` among the blocks the window and the global blocks leave free in that row, as in
      the paper and Hugging Face's BigBird (so they never land on a window or global block).
    Use it with generate_block_sparse(layout, block_size). At most (num_blocks - global_blocks) *
    (window_blocks + global_blocks + random_blocks) + global_blocks * num_blocks True blocks:
    O(num_blocks (window_blocks + global_blocks + random_blocks)) blocks of block_size^2 pairs.
    Drawing it takes O(num_blocks^2 log num_blocks) time (one sort of a row's keys per row).
    """
    check_positive_int("num_blocks", num_blocks)
    check_symmetric_window(window_blocks, "window_blocks")
    if check_nonnegative_int("global_blocks", global_blocks) > num_blocks:
        raise ValueError(f"global_blocks must be at most num_blocks = {num_blocks}, got {global_blocks}")
    check_nonnegative_int("random_blocks", random_blocks)
    blocks = torch.arange(num_blocks)
    layout = (blocks[:, None] - blocks[None, :]).abs() <= window_blocks // 2
    layout[:global_blocks] = True
    layout[:, :global_blocks] = True
    taken = layout[global_blocks:]  # the rows that draw random blocks, row i here being block global_blocks + i
    free = num_blocks - taken.sum(-1)
    short = (free < random_blocks).nonzero().flatten()
    if len(short):
        row = int(short[0])
        raise ValueError(
            f"row {global_blocks + row} has {int(free[row])} free blocks, fewer than random_blocks = {random_blocks} "
            f"(window_blocks = {window_blocks} and global_blocks = {global_blocks} take the other "
            f"{num_blocks - int(free[row])} of num_blocks = {num_blocks})"
        )
    layout[global_blocks:] |= random_rows(
        num_blocks - global_blocks, num_blocks, random_blocks, seed=seed, exclude=taken
    )
    return layout
