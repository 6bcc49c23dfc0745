"""Banded attention: the causal sliding window in O(n * window) time and memory.

Query i attends to keys max(0, i - window + 1) .. i, itself included: the pattern of
``lcteach.generate_sliding_window(window)``. Cut the queries into blocks of b positions.
The queries s .. s + b - 1 of a block need the keys s - window + 1 .. s + b - 1 and no
other, so each block needs one (b, window + b - 1) tile of scores. All tiles are
computed at once with batched matrix products: about n * (window + b) scores in all,
instead of the n * n of dense attention. Smaller blocks waste less (b - 1 extra keys
per row) but copy each key into more tiles ((window + b - 1) / b of them); the default
b = max(window // 4, min(window, 64)) keeps both below 1.25x and 5x for wide windows.

Inside a tile, query row r sits at position i = s + r and key column c at position
j = s - window + 1 + c; the window keeps j with i - window < j <= i, that is
r <= c < r + window, and j >= 0 (the first tiles reach before the sequence start).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lcteach.score_mods.evaluation import ScoreMod
from lcteach.validation import check_positive_int, check_qkv, check_score_mod


def banded_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    window: int,
    *,
    block_size: int | None = None,
    scale: float | None = None,
    score_mod: ScoreMod | None = None,
) -> torch.Tensor:
    """Causal sliding-window attention, computed block by block without an (n, n) buffer.

    Shapes: q (..., N, D), k (..., N, D), v (..., N, Dv), e.g. (B, H, N, D); queries and keys
    share positions 0..N-1, so q and k must have the same length. Query i attends to keys
    j with i - window < j <= i (``window=1``: the query alone); a window >= N is causal
    attention. ``block_size`` (b) queries share one tile of window + b - 1 keys; default
    max(w // 4, min(w, 64)) with w = min(window, N), and at most w. N need not be a multiple
    of b: the last block is zero-padded and its padded rows dropped. ``scale`` defaults to
    1/sqrt(D). ``score_mod(score, b, h, q_idx, kv_idx)`` (FlexAttention convention, (B, H, N, D)
    inputs) changes each scaled score inside the band before the mask, e.g. Gemma 2's
    sliding-window layers with generate_softcap(50.0). It is called once on the tiles' grid:
    b (B, 1, 1, 1, 1), h (1, H, 1, 1, 1), q_idx (blocks, b, 1), kv_idx (blocks, 1, w + b - 1),
    positions clamped into 0 .. N - 1 (the pairs outside the band are masked anyway).
    Returns out (..., N, Dv), equal to scaled_dot_product_attention with the mask of
    generate_sliding_window(window) (and the score_mod's scores); differentiable (plain
    autograd through the tiles).
    Cost: O(N * (w + b) * (D + Dv)) time; O(N * (w + b) + N * (D + Dv) * (w + b) / b)
    memory in forward and backward (scores and weights, and the key and value tiles):
    O(N * (w + D + Dv)) with the default b.
    """
    check_qkv(q, k, v)
    check_positive_int("window", window)
    n = q.shape[-2]
    if k.shape[-2] != n:
        raise ValueError(f"banded_attention needs as many queries as keys (one sequence), got {n} and {k.shape[-2]}")
    if score_mod is not None:
        check_score_mod(score_mod, q, k)
    w = min(window, n)  # a wider window sees the same keys
    b = max(w // 4, min(w, 64)) if block_size is None else min(check_positive_int("block_size", block_size), w)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    blocks = -(-n // b)
    pad = blocks * b - n
    width = w + b - 1  # keys per tile
    q_blocks = F.pad(q, (0, 0, 0, pad)).unflatten(-2, (blocks, b))  # (..., blocks, b, D)
    # Keys get w - 1 zero rows in front, so block t's keys are rows t*b .. t*b + width - 1 of the
    # padded keys: overlapping windows of a strided view, copied into tiles by the matmul.
    k_tiles = F.pad(k, (0, 0, w - 1, pad)).unfold(-2, width, b)  # (..., blocks, D, width)
    v_tiles = F.pad(v, (0, 0, w - 1, pad)).unfold(-2, width, b).transpose(-2, -1)  # (..., blocks, width, Dv)
    scores = (q_blocks @ k_tiles).mul_(scale)  # (..., blocks, b, width); in place: one buffer
    rows, cols = torch.arange(b, device=q.device)[:, None], torch.arange(width, device=q.device)
    band = (cols < rows) | (cols >= rows + w)  # outside the band, the same in every tile
    if score_mod is None:
        scores.masked_fill_(band, float("-inf"))
    else:  # before the masks, as FlexAttention applies it; out of place: its backward may need its output
        b_idx = torch.arange(q.shape[0], device=q.device)[:, None, None, None, None]
        h_idx = torch.arange(q.shape[1], device=q.device)[None, :, None, None, None]
        starts = torch.arange(blocks, device=q.device)[:, None, None] * b  # tile t's first query
        q_idx, kv_idx = (starts + rows).clamp(max=n - 1), (starts - (w - 1) + cols).clamp(0, n - 1)
        scores = score_mod(scores, b_idx, h_idx, q_idx, kv_idx).broadcast_to(scores.shape)
        scores = scores.masked_fill(band, float("-inf"))
    first = min(blocks, -(-(w - 1) // b))  # tiles that start before position 0
    positions = torch.arange(first, device=q.device)[:, None, None] * b - (w - 1) + cols
    scores[..., :first, :, :].masked_fill_(positions < 0, float("-inf"))
    out = torch.softmax(scores, dim=-1) @ v_tiles  # every row keeps its own key: no empty row
    return out.flatten(-3, -2)[..., :n, :]
