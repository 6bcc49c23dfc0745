"""Learned / content-dependent sparsity: top-k attention and a module that picks its pattern from the input.

``topk_attention`` keeps, for each query, only its ``top_k`` highest scores. The pattern
depends on the content, so it cannot be a fixed mask_mod; this reference computes the full
score matrix to find them (O(Nq * Nk) memory).

``ContentAdaptiveAttention`` measures where attention mass falls for a few sampled queries
and runs the cheapest fixed pattern that keeps enough of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn.attention.flex_attention import and_masks, or_masks

from lcteach.kernels.dense import dense_attention
from lcteach.kernels.tiled import tiled_attention
from lcteach.masks.causal import causal_mask
from lcteach.masks.evaluation import MaskMod, evaluate_grid, evaluate_rows
from lcteach.masks.sliding_window import generate_sliding_window
from lcteach.masks.strided import generate_strided
from lcteach.validation import check_fraction, check_mask_mod, check_positive_int, check_qkv


def _allowed_keys(q, k, causal: bool, mask_mod: MaskMod | None) -> torch.Tensor:
    """Bool mask broadcastable to (..., Nq, Nk): causal (j <= i) and/or the mask_mod's pattern."""
    n_q, n_k = q.shape[-2], k.shape[-2]
    allowed = torch.ones(n_q, n_k, dtype=torch.bool, device=q.device)
    if causal:
        allowed = allowed.tril()
    if mask_mod is not None:
        check_mask_mod(mask_mod, q)
        allowed = allowed & evaluate_grid(mask_mod, n_q, n_k, batch=q.shape[0], heads=q.shape[1], device=q.device)
    return allowed


def topk_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    top_k: int,
    *,
    causal: bool = False,
    mask_mod: MaskMod | None = None,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention in which each query keeps only its ``top_k`` highest-scoring allowed keys.

    Shapes: q (B, H, Nq, D), k (B, H, Nk, D), v (B, H, Nk, Dv) (any leading dims without
    ``mask_mod``). Allowed keys: j <= i if ``causal``, and where ``mask_mod`` is True.
    Ties at the k-th score go to the EARLIER key (stable sort), so a row keeps exactly
    min(top_k, allowed keys) keys; a row with fewer allowed keys than top_k keeps them all;
    a row with none gets zero weights and a zero output. The softmax runs over the kept keys.
    Returns (out (B, H, Nq, Dv), weights (B, H, Nq, Nk)), zero outside the kept keys.
    Cost: O(Nq Nk D) time and O(Nq Nk) memory (scores, a sort per row, then dense_attention).
    """
    check_qkv(q, k, v)
    check_positive_int("top_k", top_k)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    allowed = _allowed_keys(q, k, causal, mask_mod)
    scores = (q @ k.transpose(-2, -1)).mul_(scale).masked_fill_(~allowed, float("-inf"))
    best = torch.sort(scores, dim=-1, descending=True, stable=True).indices[..., :top_k]
    kept = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, best, True) & allowed
    return dense_attention(q, k, v, kept, scale=scale)


def _mass_inside(weights: torch.Tensor, rows: torch.Tensor, mask_mod: MaskMod) -> float:
    """Mean over batch, heads and rows of the weight that query rows ``rows`` put on ``mask_mod``'s keys."""
    inside = evaluate_rows(mask_mod, rows, weights.shape[-1])
    return float((weights * inside).sum(-1).mean())


@dataclass(frozen=True)
class PatternChoice:
    """What ContentAdaptiveAttention measured and chose.

    ``local_mass`` / ``strided_mass``: mean attention weight that the sampled queries put on
    the keys of the sliding-window / strided pattern (1.0 = all of it).
    """

    name: str  # "dense", "sliding_window" or "strided"
    mask_mod: MaskMod
    seq_len: int
    local_mass: float
    strided_mass: float


class ContentAdaptiveAttention(torch.nn.Module):
    """Causal self-attention that picks a pattern from the input, deterministically.

    Candidates, all causal:
    - "sliding_window": lcteach.generate_sliding_window(window) (the query and window-1 keys before it);
    - "strided": Sparse Transformer strided attention with stride s = ``stride`` or floor(sqrt(n)):
      and_masks(causal_mask, or_masks(generate_sliding_window(s), generate_strided(s)));
    - "dense": causal_mask.
    Features: the sequence length n, and for ``num_samples`` query positions spread evenly
    over 0..n-1 (no randomness) the exact causal softmax of their scores, averaged over
    batch, heads and samples, measured inside each sparse pattern.
    Rule, in this order: n <= ``dense_max_len`` -> dense (short: dense is cheap and exact);
    local_mass >= ``coverage`` -> sliding_window; strided_mass >= ``coverage`` -> strided;
    otherwise dense (a sparse pattern would drop more than 1 - coverage of the mass).
    One pattern serves the whole batch. Measuring costs O(num_samples * n * D).

    forward(q, k, v) with q, k, v (B, H, n, D) returns the output (B, H, n, D) computed with
    lcteach.tiled_attention and the chosen mask_mod, and stores the choice in ``last_choice``.
    """

    def __init__(
        self,
        *,
        window: int = 64,
        stride: int | None = None,
        dense_max_len: int = 256,
        coverage: float = 0.9,
        num_samples: int = 8,
    ):
        super().__init__()
        self.window = check_positive_int("window", window)
        self.stride = None if stride is None else check_positive_int("stride", stride)
        self.dense_max_len = check_positive_int("dense_max_len", dense_max_len)
        self.coverage = check_fraction("coverage", coverage)
        self.num_samples = check_positive_int("num_samples", num_samples)
        self.last_choice: PatternChoice | None = None

    def candidates(self, n: int) -> dict[str, MaskMod]:
        """The three patterns at sequence length n."""
        stride = math.isqrt(n) if self.stride is None else self.stride
        strided = and_masks(causal_mask, or_masks(generate_sliding_window(stride), generate_strided(stride)))
        strided.__name__ = f"sparse_transformer_{stride}"
        return {"dense": causal_mask, "sliding_window": generate_sliding_window(self.window), "strided": strided}

    def choose(self, q: torch.Tensor, k: torch.Tensor) -> PatternChoice:
        """Measure the features of (q, k), both (B, H, n, D), and apply the rule."""
        if q.dim() != 4 or q.shape != k.shape:
            raise ValueError(
                f"ContentAdaptiveAttention is self-attention on (B, H, n, D) inputs, got q {tuple(q.shape)}, k {tuple(k.shape)}"
            )
        n = q.shape[-2]
        patterns = self.candidates(n)
        rows = torch.linspace(0, n - 1, min(self.num_samples, n), device=q.device).round().long().unique()
        scores = (q[..., rows, :] @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        causal = evaluate_rows(causal_mask, rows, n)
        weights = torch.softmax(scores.masked_fill(~causal, float("-inf")).double(), dim=-1)
        local = _mass_inside(weights, rows, patterns["sliding_window"])
        strided = _mass_inside(weights, rows, patterns["strided"])
        name = self._rule(n, local, strided)
        return PatternChoice(name, patterns[name], n, local, strided)

    def _rule(self, n: int, local_mass: float, strided_mass: float) -> str:
        if n > self.dense_max_len:
            if local_mass >= self.coverage:
                return "sliding_window"
            if strided_mass >= self.coverage:
                return "strided"
        return "dense"

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        check_qkv(q, k, v)
        self.last_choice = self.choose(q, k)
        out, _ = tiled_attention(q, k, v, causal=True, mask_mod=self.last_choice.mask_mod)
        return out
