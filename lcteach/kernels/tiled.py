"""Flash-style tiled attention: exact attention in O(n) memory, forward and backward.

The (Nq, Nk) score matrix is never built. Queries are cut into blocks of ``block_q`` rows
and keys into blocks of ``block_k``; each query block sweeps over the key blocks with the
online softmax (lcteach.kernels.online_softmax), so only a (block_q, block_k) tile of scores
exists at a time. The backward pass recomputes the tiles from the saved log-sum-exp, as
FlashAttention does, so training also stays in O(n) memory.
"""

from __future__ import annotations

import math

import torch

from lcteach.kernels.online_softmax import finalize_softmax_state, init_softmax_state, online_softmax_step
from lcteach.kernels.tiles import Tile, key_tiles, query_blocks
from lcteach.masks.evaluation import MaskMod
from lcteach.score_mods.evaluation import ScoreMod, apply_score_mod
from lcteach.validation import (
    check_mask_mod,
    check_mask_mod_on_grids,
    check_positive_int,
    check_qkv,
    check_score_mod,
)


def tiled_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    block_q: int = 64,
    block_k: int = 64,
    causal: bool = False,
    mask_mod: MaskMod | None = None,
    score_mod: ScoreMod | None = None,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention computed tile by tile with the online softmax.

    Shapes: q (B, H, Nq, D), k (B, H, Nk, D), v (B, H, Nk, Dv); without ``mask_mod`` and
    ``score_mod`` any leading dims work. ``causal`` means key j is visible to query i when
    j <= i. ``mask_mod(b, h, q_idx, kv_idx)`` (FlexAttention convention) is evaluated on each
    tile's broadcast index grid; tiles it fully masks are skipped, as are tiles above
    the causal diagonal. ``score_mod(score, b, h, q_idx, kv_idx)`` changes each scaled score
    of a computed tile before the masks (FlexAttention convention).
    Returns (out (B, H, Nq, Dv), lse (B, H, Nq)) where lse is the log-sum-exp of each
    query's scaled (and score_mod-ed) scores (-inf for a query that may attend to no key;
    its output is 0). Both outputs are differentiable in q, k and v (the backward pass runs
    the score_mod's own backward on each recomputed tile; tensors a score_mod captures get
    no gradient: use block_sparse_attention or dense_attention to learn them).
    Cost: O(Nq*Nk*D) time, O((Nq + Nk)*D + block_q*block_k) memory in forward and backward.
    """
    check_qkv(q, k, v)
    check_positive_int("block_q", block_q)
    check_positive_int("block_k", block_k)
    if mask_mod is not None:
        check_mask_mod(mask_mod, q)
        check_mask_mod_on_grids(mask_mod, *q.shape[:2], q.shape[-2], k.shape[-2], q.device)
    if score_mod is not None:
        check_score_mod(score_mod, q, k)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    return _TiledAttention.apply(q, k, v, block_q, block_k, causal, mask_mod, score_mod, scale)


def _raw_scores(q, k, tile: Tile, scale: float) -> torch.Tensor:
    i0, i1, j0, j1 = tile
    return (q[..., i0:i1, :] @ k[..., j0:j1, :].transpose(-2, -1)) * scale


def _modified(raw: torch.Tensor, tile: Tile, score_mod: ScoreMod | None) -> torch.Tensor:
    return raw if score_mod is None else apply_score_mod(score_mod, raw, tile[0], tile[2])


def _masked(scores: torch.Tensor, allowed) -> torch.Tensor:
    return scores if allowed is None else scores.masked_fill(~allowed, float("-inf"))


class _TiledAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, block_q, block_k, causal, mask_mod, score_mod, scale):
        rows = q.shape[:-1]
        out = q.new_zeros((*rows, v.shape[-1]))
        lse = q.new_full(rows, float("-inf"))
        for i0, i1 in query_blocks(q.shape[-2], block_q):
            state = init_softmax_state((*rows[:-1], i1 - i0), v.shape[-1], dtype=q.dtype, device=q.device)
            for tile, allowed in key_tiles(q, i0, i1, k.shape[-2], block_k, causal, mask_mod):
                j0, j1 = tile[2:]
                scores = _masked(_modified(_raw_scores(q, k, tile, scale), tile, score_mod), allowed)
                state = online_softmax_step(*state, scores, v[..., j0:j1, :])
            out[..., i0:i1, :], lse[..., i0:i1] = finalize_softmax_state(*state)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.config = (block_q, block_k, causal, mask_mod, score_mod, scale)
        return out, lse

    @staticmethod
    def backward(ctx, d_out, d_lse):
        q, k, v, out, lse = ctx.saved_tensors
        block_q, block_k, causal, mask_mod, score_mod, scale = ctx.config
        d_out = torch.zeros_like(out) if d_out is None else d_out
        d_lse = torch.zeros_like(lse) if d_lse is None else d_lse
        # d(out_i)/d(score_ij) contracts to p_ij * (dO_i . v_j - dO_i . out_i); d(lse_i) adds p_ij.
        row_term = d_lse - (d_out * out).sum(dim=-1)
        safe_lse = torch.where(torch.isfinite(lse), lse, torch.full_like(lse, float("inf")))
        dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
        tiles = (
            tile_and_mask
            for i0, i1 in query_blocks(q.shape[-2], block_q)
            for tile_and_mask in key_tiles(q, i0, i1, k.shape[-2], block_k, causal, mask_mod)
        )
        for tile, allowed in tiles:
            i0, i1, j0, j1 = tile
            raw = _raw_scores(q, k, tile, scale).requires_grad_(score_mod is not None)
            with torch.enable_grad():  # the score_mod's own graph, for its backward below
                scores = _modified(raw, tile, score_mod)
            p = torch.exp(_masked(scores.detach(), allowed) - safe_lse[..., i0:i1, None])
            do_i = d_out[..., i0:i1, :]
            dv[..., j0:j1, :] += p.transpose(-2, -1) @ do_i
            ds = p * (do_i @ v[..., j0:j1, :].transpose(-2, -1) + row_term[..., i0:i1, None])
            if score_mod is not None:  # from d(modified score) to d(raw score): ds * score_mod'(raw)
                (ds,) = torch.autograd.grad(scores, raw, ds)
            dq[..., i0:i1, :] += (ds @ k[..., j0:j1, :]) * scale
            dk[..., j0:j1, :] += (ds.transpose(-2, -1) @ q[..., i0:i1, :]) * scale
        return dq, dk, dv, None, None, None, None, None, None
