"""Dense scaled dot-product attention: the O(n^2) baseline every other method is checked against."""

from __future__ import annotations

import math

import torch

from lcteach.score_mods.evaluation import ScoreMod, apply_score_mod
from lcteach.validation import check_mask, check_qkv, check_score_mod


def dense_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    causal: bool = False,
    scale: float | None = None,
    score_mod: ScoreMod | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(score_mod(q k^T * scale)) v with the attention weights.

    Shapes: q (B, H, Nq, D), k (B, H, Nk, D), v (B, H, Nk, Dv); any leading dims work.
    ``mask`` is a bool tensor broadcastable to (B, H, Nq, Nk), True = attend.
    ``causal=True`` lets query i see keys j <= i (query and key positions both start at 0).
    ``scale`` defaults to 1/sqrt(D). ``score_mod(score, b, h, q_idx, kv_idx)`` (FlexAttention
    convention, (B, H, N, D) inputs) changes each scaled score before the mask is applied,
    e.g. lcteach.score_mods.generate_alibi(H).
    Returns (out (B, H, Nq, Dv), weights (B, H, Nq, Nk)). A query that may attend to no key
    gets zero weights and a zero output rather than NaN.
    Cost: O(Nq*Nk*D) time and O(Nq*Nk) memory: two (Nq, Nk) buffers exist at the peak
    (the exponentiated scores and the normalised weights); see profiling.dense_attention_memory.
    A score_mod adds one more, plus what its own ops keep for the backward pass.
    """
    check_qkv(q, k, v)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)).mul_(scale)
    if score_mod is not None:
        check_score_mod(score_mod, q, k)
        # A copy: the in-place steps below must leave the score_mod's output (its backward may need it) intact.
        scores = apply_score_mod(score_mod, scores).clone(memory_format=torch.contiguous_format)
    if mask is not None:
        check_mask(mask, q, k)
        scores.masked_fill_(~mask, float("-inf"))
    if causal:
        n_q, n_k = q.shape[-2], k.shape[-2]
        # A temporary, freed at once: holding it would add an (Nq, Nk) bool buffer to the peak.
        scores.masked_fill_(torch.ones(n_q, n_k, dtype=torch.bool, device=q.device).triu_(1), float("-inf"))
    row_max = scores.detach().amax(dim=-1, keepdim=True)  # a constant shift: no gradient, no saved scores
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    exp_scores = scores.sub_(row_max).exp_()  # in place: two (Nq, Nk) buffers at the peak
    total = exp_scores.sum(dim=-1, keepdim=True)
    weights = exp_scores / torch.where(total > 0, total, torch.ones_like(total))
    return weights @ v, weights
