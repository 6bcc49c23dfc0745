"""Evaluating score_mods: the ScoreMod type, a score_mod applied to a block of scores, and its full matrix."""

from __future__ import annotations

from collections.abc import Callable

import torch

from lcteach.masks.evaluation import index_grid
from lcteach.validation import check_positive_int, check_score_mod_on_grids

ScoreMod = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def apply_score_mod(score_mod: ScoreMod, scores: torch.Tensor, q_start: int = 0, kv_start: int = 0) -> torch.Tensor:
    """``score_mod`` on a block of scores (B, H, Nq', Nk') whose first query is at position q_start
    and first key at kv_start (0, 0: the whole matrix). Returns (B, H, Nq', Nk') in scores' dtype.
    One call on the block's broadcast index grid (``index_grid``); differentiable."""
    batch, heads, n_q, n_k = scores.shape
    positions = (
        torch.arange(q_start, q_start + n_q, device=scores.device),
        torch.arange(kv_start, kv_start + n_k, device=scores.device),
    )
    return torch.as_tensor(score_mod(scores, *index_grid(batch, heads, *positions))).broadcast_to(scores.shape)


def materialize_scores(
    score_mod: ScoreMod,
    q_len: int,
    kv_len: int | None = None,
    *,
    batch: int = 1,
    heads: int = 1,
    scores: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``score_mod`` on every (query, key) pair of a (batch, heads, q_len, kv_len) matrix of ``scores``.

    ``scores`` defaults to zeros, which gives the bias a score_mod adds (ALiBi's -m_h (i - j));
    given scores (broadcastable to that shape) take their dtype and device. Memory
    O(batch * heads * q_len * kv_len): for pictures and small checks.
    """
    check_positive_int("q_len", q_len)
    kv_len = q_len if kv_len is None else check_positive_int("kv_len", kv_len)
    shape = (check_positive_int("batch", batch), check_positive_int("heads", heads), q_len, kv_len)
    scores = torch.zeros(shape, dtype=dtype, device=device) if scores is None else scores.broadcast_to(shape)
    check_score_mod_on_grids(score_mod, batch, heads, q_len, kv_len, dtype=scores.dtype, device=scores.device)
    return apply_score_mod(score_mod, scores)
