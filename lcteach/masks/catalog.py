"""The named patterns that lectures, widgets and experiments choose from, in one place.

- ``WINDOW_PATTERNS`` / ``window_pattern``: the Week 1 window explorer's three patterns;
- ``SPARSE_PATTERNS`` / ``sparse_pattern`` (with ``PATTERN_PARAMETERS``, the settings each
  reads): the Week 2 mask, composition and reachability explorers, sparse patterns and the
  two structural ones (prefix-LM, packed documents);
- ``COMBINE`` / ``combine``: and_masks / or_masks by name;
- ``recall_patterns``: the four causal patterns of the associative-recall experiment.
"""

from __future__ import annotations

import torch
from torch.nn.attention.flex_attention import and_masks, or_masks

from lcteach.masks.bigbird import generate_bigbird
from lcteach.masks.block_sparse import generate_block_sparse
from lcteach.masks.causal import causal_mask, full_mask
from lcteach.masks.documents import generate_document_mask, random_document_lengths
from lcteach.masks.evaluation import MaskMod, mask_name
from lcteach.masks.global_tokens import generate_global
from lcteach.masks.prefix_lm import generate_prefix_lm
from lcteach.masks.random import generate_random_blocks
from lcteach.masks.sliding_window import generate_sliding_window, generate_symmetric_window
from lcteach.masks.strided import generate_strided
from lcteach.validation import check_blocks

WINDOW_PATTERNS = ("full", "causal", "sliding window")


def window_pattern(pattern: str, window: int):
    """The window explorer's mask_mod for ``pattern`` (one of WINDOW_PATTERNS); ``window`` is read by "sliding window"."""
    return {"full": full_mask, "causal": causal_mask}.get(pattern) or generate_sliding_window(window)


SPARSE_PATTERNS = (
    "sliding window",
    "symmetric window",
    "strided",
    "global",
    "random blocks",
    "BigBird",
    "block-sparse",
    "prefix-LM",
    "packed documents",
)


PATTERN_PARAMETERS = {  # the sliders each pattern reads
    "sliding window": {"window"},
    "symmetric window": {"window"},
    "strided": {"stride"},
    "global": {"global_tokens"},
    "random blocks": {"random_blocks", "block_size"},
    "BigBird": {"window", "global_tokens", "random_blocks", "block_size"},
    "block-sparse": {"block_size"},
    "prefix-LM": {"prefix"},
    "packed documents": {"documents"},
}


def local_block_layout(num_blocks: int) -> torch.Tensor:
    """The block-sparse explorer's layout: each query block attends its own block, its two
    neighbours and block 0 (a block-level window plus a global block)."""
    rows, cols = torch.arange(num_blocks)[:, None], torch.arange(num_blocks)[None, :]
    return ((rows - cols).abs() <= 1) | (cols == 0)


def sparse_pattern(
    pattern: str,
    n: int,
    *,
    window: int,
    stride: int,
    global_tokens: int,
    random_blocks: int,
    block_size: int,
    prefix: int,
    documents: int,
    seed: int = 0,
) -> MaskMod:
    """The mask_mod the explorers draw for ``pattern`` (one of SPARSE_PATTERNS) at length n.

    "packed documents" packs ``documents`` causal documents of random lengths (drawn from
    ``seed``, ``random_document_lengths``) into the n positions, as pretraining does.
    Raises the library's ValueError for impossible values (an even symmetric window, a
    block size that does not divide n, more random blocks than a row has, more documents
    than positions).
    """
    if pattern == "sliding window":
        return generate_sliding_window(window)
    if pattern == "symmetric window":
        return generate_symmetric_window(window)
    if pattern == "strided":
        return generate_strided(stride)
    if pattern == "global":
        return generate_global(global_tokens)
    if pattern == "random blocks":
        return generate_random_blocks(n, block_size, random_blocks, seed=seed)
    if pattern == "BigBird":
        return generate_bigbird(window, global_tokens, random_blocks, block_size, n, seed=seed)
    if pattern == "block-sparse":
        return generate_block_sparse(local_block_layout(check_blocks(n, block_size)), block_size)
    if pattern == "prefix-LM":
        return generate_prefix_lm(prefix)
    if pattern == "packed documents":
        return generate_document_mask(random_document_lengths(n, documents, seed=seed), causal_mask)
    raise ValueError(f"pattern must be one of {SPARSE_PATTERNS}, got {pattern!r}")


COMBINE = {"and": and_masks, "or": or_masks}


def combine(a: MaskMod, b: MaskMod, op: str) -> MaskMod:
    """and_masks(a, b) or or_masks(a, b), named "a and b" / "a or b"."""
    if op not in COMBINE:
        raise ValueError(f"op must be one of {tuple(COMBINE)}, got {op!r}")
    combined = COMBINE[op](a, b)
    combined.__name__ = f"{mask_name(a)} {op} {mask_name(b)}"
    return combined


def recall_patterns(
    seq_len: int,
    *,
    window: int = 16,
    stride: int = 4,
    bigbird_window: int = 7,
    block_size: int = 8,
    seed: int = 0,
) -> dict[str, MaskMod]:
    """The four causal patterns of the experiment (see the module docstring), by name.
    BigBird: ``bigbird_window`` (odd), 1 global token at the start, 1 random block of
    ``block_size`` per query block (drawn from ``seed``), plus the query as a global token."""
    bigbird = or_masks(
        generate_bigbird(bigbird_window, 1, 1, block_size, seq_len, seed=seed),
        generate_global([seq_len - 1]),
    )
    patterns = {
        "full": causal_mask,
        f"sliding_window_{window}": generate_sliding_window(window),
        f"strided_{stride}": and_masks(causal_mask, generate_strided(stride)),
        "bigbird": and_masks(causal_mask, bigbird),
    }
    for name, mask_mod in patterns.items():
        if mask_mod is not causal_mask:  # and_masks names every result "and_mask"
            mask_mod.__name__ = name
    return patterns
