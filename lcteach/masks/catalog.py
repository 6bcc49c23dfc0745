"""The named patterns that lectures, widgets and experiments choose from, in one place.

- ``WINDOW_PATTERNS`` / ``window_pattern``: the Week 1 window explorer's three patterns;
- ``generate_sparse_transformer``: the Sparse Transformer's strided pattern (Child et al.,
  2019), a causal window and a causal stride of the same length;
- ``SPARSE_PATTERNS`` / ``sparse_pattern`` (with ``PATTERN_PARAMETERS``, the settings each
  reads): the Week 2 mask, composition and reachability explorers, sparse patterns and the
  two structural ones (prefix-LM, packed documents);
- ``COMBINE`` / ``combine``: and_masks / or_masks by name;
- ``recall_patterns``: the four bidirectional patterns of the associative-recall experiment.
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


def generate_sparse_transformer(stride: int) -> MaskMod:
    """The Sparse Transformer's strided pattern (Child et al., 2019), causal: query i attends
    the last ``stride`` keys, itself included (i - stride < j <= i), and every earlier key a
    multiple of ``stride`` away ((i - j) % stride == 0, j <= i).

    and_masks(causal_mask, or_masks(generate_sliding_window(stride), generate_strided(stride))),
    named "sparse_transformer_<stride>". About stride + i / stride keys in row i: O(n sqrt(n))
    pairs with stride = sqrt(n), and two layers connect every j <= i (the window reaches a
    position on i's grid, the stride carries it on).
    """
    pattern = and_masks(causal_mask, or_masks(generate_sliding_window(stride), generate_strided(stride)))
    pattern.__name__ = f"sparse_transformer_{stride}"
    return pattern


SPARSE_PATTERNS = (
    "sliding window",
    "symmetric window",
    "strided",
    "Sparse Transformer",
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
    "Sparse Transformer": {"stride"},
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
    if pattern == "Sparse Transformer":
        return generate_sparse_transformer(stride)
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
    window: int = 31,
    stride: int = 4,
    bigbird_window: int = 7,
    block_size: int = 8,
    seed: int = 0,
) -> dict[str, MaskMod]:
    """The four patterns of the associative-recall experiment, by name, all bidirectional (as
    the encoders BigBird and Longformer are): "full" (full_mask), "window_<window>"
    (generate_symmetric_window, ``window`` odd: window // 2 keys on each side), "strided_<stride>"
    (generate_strided, both ways) and "bigbird" (generate_bigbird(bigbird_window, 1, 1,
    block_size, seq_len, seed=seed): one global token, position 0, and one random block per
    query block). The query, position seq_len - 1, is an ordinary token: not global.

    For the query, the last position, bidirectional and causal rows are the same (nothing
    lies after it); the difference is for the positions in between, which may read the query
    and so relay what it asks for.
    """
    patterns = {
        "full": full_mask,
        f"window_{window}": generate_symmetric_window(window),
        f"strided_{stride}": generate_strided(stride),
        "bigbird": generate_bigbird(bigbird_window, 1, 1, block_size, seq_len, seed=seed),
    }
    for name, mask_mod in patterns.items():
        if mask_mod is not full_mask:
            mask_mod.__name__ = name
    return patterns
