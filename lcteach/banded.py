"""Banded attention: the causal sliding window in O(n * window) time and memory.

Query i attends to keys max(0, i - window + 1) .. i, itself included: the pattern of
``lcteach.generate_sliding_window(window)``. Cut the sequence into blocks of ``window``
queries. The keys of every query in block b lie in key blocks b - 1 and b, so each query
block needs a (window, 2 * window) score tile and nothing else. All tiles are computed at
once with batched matrix products: n / window tiles of window * 2 * window scores, about
2 * n * window in all, instead of the n * n of dense attention.

Inside a tile, query row r sits at position i = b * window + r and key column c at
position j = (b - 1) * window + c; the window keeps j with i - window < j <= i, that is
r < c <= r + window, and j >= 0 (block 0 has no previous block).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._validation import check_positive_int, check_qkv


def banded_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    window: int,
    *,
    scale: float | None = None,
) -> torch.Tensor:
    """Causal sliding-window attention, computed block by block without an (n, n) buffer.

    Shapes: q (..., N, D), k (..., N, D), v (..., N, Dv), e.g. (B, H, N, D); queries and keys
    share positions 0..N-1, so q and k must have the same length. Query i attends to keys
    j with i - window < j <= i (``window=1``: the query alone). A window >= N is causal
    attention. N need not be a multiple of ``window``: the last block is zero-padded and
    the padded rows are dropped. ``scale`` defaults to 1/sqrt(D).
    Returns out (..., N, Dv), equal to scaled_dot_product_attention with the mask of
    generate_sliding_window(window); differentiable (plain autograd through the blocks).
    Cost: O(N * window * (D + Dv)) time, O(N * (window + D + Dv)) memory in forward and
    backward, with w = min(window, N): (N / w) tiles of (w, 2w) scores, weights and mask.
    """
    check_qkv(q, k, v)
    check_positive_int("window", window)
    n = q.shape[-2]
    if k.shape[-2] != n:
        raise ValueError(f"banded_attention needs as many queries as keys (one sequence), got {n} and {k.shape[-2]}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    w = min(window, n)  # a wider window sees the same keys
    blocks = -(-n // w)
    pad = blocks * w - n
    q_blocks = F.pad(q, (0, 0, 0, pad)).unflatten(-2, (blocks, w))  # (..., blocks, w, D)
    # Keys get one zero block in front, so block b's 2w keys are rows b*w .. b*w + 2w of the
    # padded keys: overlapping windows of a strided view, no copy until the matmul.
    k_tiles = F.pad(k, (0, 0, w, pad)).unfold(-2, 2 * w, w)  # (..., blocks, D, 2w)
    v_tiles = F.pad(v, (0, 0, w, pad)).unfold(-2, 2 * w, w).transpose(-2, -1)  # (..., blocks, 2w, Dv)
    scores = (q_blocks @ k_tiles).mul_(scale)  # (..., blocks, w, 2w); in place: one buffer, not three
    scores.masked_fill_(~_band(blocks, w, q.device), float("-inf"))
    out = torch.softmax(scores, dim=-1) @ v_tiles  # every row keeps its own key: no empty row
    return out.flatten(-3, -2)[..., :n, :]


def _band(blocks: int, w: int, device: torch.device) -> torch.Tensor:
    """Bool (blocks, w, 2w): may query row r of block b see key column c of its tile?"""
    i = torch.arange(blocks, device=device)[:, None, None] * w + torch.arange(w, device=device)[None, :, None]
    j = torch.arange(blocks, device=device)[:, None, None] * w - w + torch.arange(2 * w, device=device)[None, None, :]
    return (j <= i) & (j > i - w) & (j >= 0)
