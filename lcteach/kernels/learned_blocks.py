"""A learned block pattern predictor: which key blocks will each query block need?

``select_blocks`` (MoBA, Quest) scores a pair of blocks by the dot product of their mean
vectors. ``BlockPatternPredictor`` learns that score instead, as SeerAttention (Gao et al.
2024) does: two small projections W_q, W_k of shape (D, r) map the mean-pooled query and key
blocks to r dimensions, and the score of a block pair is the dot product there,

    score(i, j) = (mean(q block i) W_q) . (mean(k block j) W_k).

With r = D and W_q = W_k = I it is exactly ``select_blocks``' score. The projections are
trained by distillation (``train_block_predictor``): the target is the attention mass each key
block really gets from each query block (``block_attention_mass``, computed exactly on
training inputs), the loss the KL divergence from that target to the softmax of the predicted
scores. A layout then keeps, per query block, the top fraction 1 - ``sparsity`` of the key
blocks (``keep_top_blocks``), and ``attention_recall`` measures how much of the exact
attention mass falls inside the kept blocks.

Cost of deciding, with Tq, Tk blocks: pooling O((Nq + Nk) D), projections O((Tq + Tk) D r),
scores O(Tq Tk r) (``selection_flops``), against O(Nq Nk D) for attention itself.
"""

from __future__ import annotations

import math
import sys

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention.flex_attention import BlockMask
from tqdm.auto import tqdm

from lcteach.kernels.block_selection import block_means, check_qk, keep_highest
from lcteach.validation import check_positive_int


def check_sparsity(sparsity) -> float:
    """Return ``sparsity`` as a float, or raise ValueError if it is not a number in [0, 1)."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be a number in [0, 1) (the fraction of key blocks skipped), got {sparsity!r}")
    return float(sparsity)


def keep_counts(allowed: torch.Tensor | int, sparsity: float) -> torch.Tensor:
    """How many of ``allowed`` blocks a row keeps: ceil((1 - sparsity) * allowed), at least 1.

    ``allowed``: an int or an integer tensor (one count per row); returns a long tensor of its
    shape. The kept share is therefore at least 1 - sparsity (exactly that when it divides evenly).
    """
    sparsity = check_sparsity(sparsity)
    allowed = torch.as_tensor(allowed, dtype=torch.float64)
    # - 1e-9: in floats (1 - 0.7) * 10 is 3.0000000000000004, and a ceil of it would keep 4 blocks
    kept = torch.ceil((1 - sparsity) * allowed - 1e-9).to(torch.long)
    return kept.clamp(min=1)


def keep_top_blocks(scores: torch.Tensor, sparsity: float, *, causal: bool = False) -> torch.Tensor:
    """The layout keeping, per query block (row), the highest-scoring fraction 1 - sparsity of key blocks.

    scores (..., Tq, Tk). Returns a bool layout of the same shape. A row keeps
    ``keep_counts(allowed, sparsity)`` blocks, allowed = Tk, or with ``causal`` (Tq == Tk)
    allowed = i + 1 for row i: it may keep only key blocks j <= i and always keeps its own
    block i, as ``select_blocks`` does. Ties go to the earlier block. O(Tq Tk log Tk).
    """
    sparsity = check_sparsity(sparsity)
    n_q_blocks, n_k_blocks = scores.shape[-2:]
    allowed = torch.arange(1, n_q_blocks + 1) if causal else torch.full((n_q_blocks,), n_k_blocks)
    return keep_highest(scores.detach(), keep_counts(allowed, sparsity), causal=causal)


def window_layout(
    q_blocks: int, k_blocks: int, sparsity: float, *, causal: bool = False, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The fixed local pattern with the same budget: each query block keeps the key blocks nearest to it.

    Returns a bool (q_blocks, k_blocks) layout with ``keep_counts`` blocks per row, as
    ``keep_top_blocks`` of the score -|i - j| (a band around the diagonal; of two blocks at the
    same distance the earlier one wins). It does not look at the input at all.
    """
    check_positive_int("q_blocks", q_blocks)
    check_positive_int("k_blocks", k_blocks)
    rows = torch.arange(q_blocks, device=device)[:, None]
    distance = (rows - torch.arange(k_blocks, device=device)[None, :]).abs()
    return keep_top_blocks(-distance.to(torch.float32), sparsity, causal=causal)


def attention_probabilities(
    q: torch.Tensor, k: torch.Tensor, *, causal: bool = False, scale: float | None = None
) -> torch.Tensor:
    """The exact attention weights softmax(q k^T * scale) (B, H, Nq, Nk), causal if asked. O(Nq Nk D)."""
    check_qk(q, k, causal)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    scores = (q @ k.transpose(-2, -1)) * scale
    if causal:
        n = q.shape[-2]
        future = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    return scores.softmax(dim=-1)


def _mass_per_key_block(probabilities: torch.Tensor, block_size: int) -> torch.Tensor:
    """(B, H, Nq, Nk) -> (B, H, Nq, Tk): each query's attention mass in each key block."""
    pad = -probabilities.shape[-1] % block_size
    return F.pad(probabilities, (0, pad)).unflatten(-1, (-1, block_size)).sum(dim=-1)


def block_attention_mass(
    q: torch.Tensor, k: torch.Tensor, block_size: int, *, causal: bool = False, scale: float | None = None
) -> torch.Tensor:
    """(B, H, Tq, Tk): the attention mass each key block gets from each query block, averaged over
    the block's real queries, so every row sums to 1. The distillation target, and the oracle's
    score. Exact: O(Nq Nk D) time, O(Nq Nk) memory.
    """
    check_positive_int("block_size", block_size)
    per_query = _mass_per_key_block(attention_probabilities(q, k, causal=causal, scale=scale), block_size)
    return block_means(per_query, block_size)


def attention_recall(
    q: torch.Tensor,
    k: torch.Tensor,
    layout: torch.Tensor,
    block_size: int,
    *,
    causal: bool = False,
    scale: float | None = None,
) -> float:
    """The fraction of the exact attention mass inside the kept blocks, averaged over all queries.

    q (B, H, Nq, D), k (B, H, Nk, D); ``layout`` bool (Tq, Tk), (H, Tq, Tk) or (B, H, Tq, Tk)
    (leading dims broadcast), Tq = ceil(Nq / block_size), Tk = ceil(Nk / block_size). 1 means
    the layout loses nothing; block-sparse attention on it renormalises over what it keeps,
    so 1 - recall is the mass it drops. O(Nq Nk D) time, O(Nq Nk) memory.
    """
    check_positive_int("block_size", block_size)
    check_qk(q, k, causal)
    blocks = (-(-q.shape[-2] // block_size), -(-k.shape[-2] // block_size))
    if not isinstance(layout, torch.Tensor) or layout.dtype != torch.bool:
        raise TypeError(f"layout must be a bool tensor, got {getattr(layout, 'dtype', type(layout).__name__)}")
    if not 2 <= layout.dim() <= 4 or tuple(layout.shape[-2:]) != blocks:
        raise ValueError(f"layout must have shape ([B, [H,]] {blocks[0]}, {blocks[1]}), got {tuple(layout.shape)}")
    mass = _mass_per_key_block(attention_probabilities(q, k, causal=causal, scale=scale), block_size)
    rows = layout.to(q.device).repeat_interleave(block_size, dim=-2)[..., : q.shape[-2], :]  # (.., Nq, Tk)
    return float((mass * rows).sum(dim=-1).mean())


def layout_block_mask(layout: torch.Tensor, block_size: int) -> BlockMask:
    """A FlexAttention BlockMask that computes exactly the blocks ``layout`` keeps, each in full.

    ``layout`` bool (Tq, Tk), (H, Tq, Tk) or (B, H, Tq, Tk), for Tq * block_size queries and
    Tk * block_size keys (lengths that are multiples of the block size); leading dims of 1
    broadcast over the batch and heads. Built directly with ``BlockMask.from_kv_blocks``: every
    kept block is a "full" block, so the compiled kernel runs no mask_mod inside it, and
    building costs O(B H Tq Tk log Tk), never the (Nq, Nk) mask that ``create_block_mask``
    evaluates. Its mask_mod (``layout[b, h, q_idx // s, kv_idx // s]``) gives the same pattern
    to the uncompiled flex_attention, which reads only the mask_mod.
    """
    check_positive_int("block_size", block_size)
    if not isinstance(layout, torch.Tensor) or layout.dtype != torch.bool:
        raise TypeError(f"layout must be a bool tensor, got {getattr(layout, 'dtype', type(layout).__name__)}")
    if not 2 <= layout.dim() <= 4:
        raise ValueError(f"layout must have shape ([B, [H,]] Tq, Tk), got {tuple(layout.shape)}")
    layout = layout.detach().reshape((1,) * (4 - layout.dim()) + tuple(layout.shape)).clone()
    counts = layout.sum(dim=-1, dtype=torch.int32)
    indices = torch.sort((~layout).to(torch.int8), dim=-1, stable=True).indices.to(torch.int32)  # kept blocks first
    n_batch, n_heads = layout.shape[:2]

    def layout_mask(b, h, q_idx, kv_idx):
        return layout[b % n_batch, h % n_heads, q_idx // block_size, kv_idx // block_size]

    layout_mask.__name__ = f"layout_{layout.shape[-2]}x{layout.shape[-1]}_b{block_size}"
    return BlockMask.from_kv_blocks(
        torch.zeros_like(counts),  # no partial blocks: every kept block is computed in full
        torch.zeros_like(indices),
        counts,
        indices,
        BLOCK_SIZE=block_size,
        mask_mod=layout_mask,
        seq_lengths=(layout.shape[-2] * block_size, layout.shape[-1] * block_size),
    )


def selection_flops(n_q: int, n_k: int, dim: int, block_size: int, rank: int | None = None) -> int:
    """Floating-point operations to score all block pairs: (Nq + Nk) D additions to pool the
    blocks, 2 (Tq + Tk) D r for the two projections (none when ``rank`` is None: select_blocks)
    and 2 Tq Tk r (r = D without projections) for the scores; the sort adds O(Tq Tk log Tk)."""
    for name, value in (("n_q", n_q), ("n_k", n_k), ("dim", dim), ("block_size", block_size)):
        check_positive_int(name, value)
    t_q, t_k = -(-n_q // block_size), -(-n_k // block_size)
    if rank is None:
        return (n_q + n_k) * dim + 2 * t_q * t_k * dim
    check_positive_int("rank", rank)
    return (n_q + n_k) * dim + 2 * (t_q + t_k) * dim * rank + 2 * t_q * t_k * rank


class BlockPatternPredictor(nn.Module):
    """Scores (query block, key block) pairs with learned low-rank projections of the block means.

    Parameters ``w_q``, ``w_k`` of shape (dim, rank), initialised N(0, 1/dim) from ``seed``
    (``identity=True``: rank must equal dim and both start as the identity, which makes the
    scores those of ``select_blocks``). 2 * dim * rank parameters.
    """

    def __init__(
        self, dim: int, rank: int, *, seed: int = 0, identity: bool = False, dtype: torch.dtype = torch.float32
    ):
        super().__init__()
        check_positive_int("dim", dim)
        check_positive_int("rank", rank)
        if identity and rank != dim:
            raise ValueError(f"identity projections need rank == dim, got rank {rank} and dim {dim}")
        if identity:
            w_q, w_k = torch.eye(dim, dtype=dtype), torch.eye(dim, dtype=dtype)
        else:
            generator = torch.Generator().manual_seed(seed)
            w_q, w_k = (torch.randn(dim, rank, generator=generator, dtype=dtype) / math.sqrt(dim) for _ in range(2))
        self.dim, self.rank = dim, rank
        self.w_q, self.w_k = nn.Parameter(w_q), nn.Parameter(w_k)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, rank={self.rank}"

    def project(self, means: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """(..., T, D) block means -> (..., T, r), in the means' dtype and device."""
        if means.shape[-1] != self.dim:
            raise ValueError(f"the predictor was built for head dimension {self.dim}, got {means.shape[-1]}")
        return means @ weight.to(dtype=means.dtype, device=means.device)

    def scores_from_means(self, q_means: torch.Tensor, k_means: torch.Tensor) -> torch.Tensor:
        """(B, H, Tq, D), (B, H, Tk, D) block means -> (B, H, Tq, Tk) scores. O((Tq + Tk) D r + Tq Tk r)."""
        return self.project(q_means, self.w_q) @ self.project(k_means, self.w_k).transpose(-2, -1)

    def forward(self, q: torch.Tensor, k: torch.Tensor, block_size: int) -> torch.Tensor:
        """q (B, H, Nq, D), k (B, H, Nk, D) -> (B, H, Tq, Tk) block-pair scores (differentiable)."""
        check_positive_int("block_size", block_size)
        check_qk(q, k, False)
        return self.scores_from_means(block_means(q, block_size), block_means(k, block_size))

    @torch.no_grad()
    def layout(
        self, q: torch.Tensor, k: torch.Tensor, block_size: int, sparsity: float, *, causal: bool = False
    ) -> torch.Tensor:
        """Bool layout (B, H, Tq, Tk) keeping per query block the top fraction 1 - sparsity of key
        blocks by predicted score (``keep_top_blocks``; with ``causal``, only blocks j <= i, the
        diagonal always). Cost: ``selection_flops`` plus the sort."""
        check_sparsity(sparsity)
        check_qk(q, k, causal)
        return keep_top_blocks(self(q, k, block_size), sparsity, causal=causal)


def distillation_loss(scores: torch.Tensor, target: torch.Tensor, *, causal: bool = False) -> torch.Tensor:
    """KL(target || softmax(scores)) per query block row, averaged: 0 when the predicted block
    distribution equals the target mass. scores, target (..., Tq, Tk); with ``causal`` future
    blocks (j > i) are left out of the softmax (their target mass is 0)."""
    if causal:
        future = torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    log_predicted = scores.log_softmax(dim=-1)
    terms = torch.xlogy(target, target) - torch.where(target > 0, target * log_predicted, 0)
    return terms.sum(dim=-1).mean()


def train_block_predictor(
    predictor: BlockPatternPredictor,
    q: torch.Tensor,
    k: torch.Tensor,
    block_size: int,
    *,
    steps: int = 300,
    lr: float = 0.05,
    causal: bool = False,
    scale: float | None = None,
    progress: bool = False,
) -> list[float]:
    """Distil the exact block attention mass of the training inputs q, k (B, H, N, D) into ``predictor``.

    The target (``block_attention_mass``) and the block means are computed once; then ``steps``
    full-batch Adam steps minimise ``distillation_loss``. Deterministic given the predictor's
    initialisation. Returns the loss before each step. Cost: O(B H Nq Nk D) once for the target,
    then O(steps * B H (Tq + Tk) D r + Tq Tk r) for training.
    """
    check_positive_int("block_size", block_size)
    check_positive_int("steps", steps)
    check_qk(q, k, causal)
    with torch.no_grad():
        target = block_attention_mass(q, k, block_size, causal=causal, scale=scale)
        q_means, k_means = block_means(q, block_size), block_means(k, block_size)
    optimizer = torch.optim.Adam(predictor.parameters(), lr=lr)
    losses = []
    for _ in tqdm(
        range(steps), desc="training the block predictor", disable=not progress, leave=False, file=sys.stdout
    ):
        loss = distillation_loss(predictor.scores_from_means(q_means, k_means), target, causal=causal)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
