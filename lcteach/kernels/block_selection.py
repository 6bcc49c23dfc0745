"""Content-adaptive block selection: each query block keeps the key blocks its content points at.

The pattern is chosen from the input, as in MoBA (Lu et al. 2025) and Quest (Tang et al.
2024): every block of ``block_size`` queries and keys is summarised by its mean vector, a
block pair is scored by the dot product of the two means, and each query block keeps its
``keep`` highest-scoring key blocks. The result is a block layout for
``block_sparse_attention``: scoring costs O(Tq * Tk * D) for Tq, Tk blocks instead of
O(Nq * Nk * D) for every pair, which is what makes the selection cheaper than the attention
it prunes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lcteach.validation import check_positive_int


def block_means(x: torch.Tensor, block_size: int) -> torch.Tensor:
    """(B, H, N, D) -> (B, H, ceil(N / s), D): the mean of each block of s = block_size rows.

    The last block may be shorter; its mean is over its real rows only.
    """
    check_positive_int("block_size", block_size)
    n = x.shape[-2]
    pad = -n % block_size
    sums = F.pad(x, (0, 0, 0, pad)).unflatten(-2, (-1, block_size)).sum(dim=-2)
    counts = torch.full((sums.shape[-2],), block_size, dtype=x.dtype, device=x.device)
    counts[-1] = block_size - pad
    return sums / counts[:, None]


def block_scores(q: torch.Tensor, k: torch.Tensor, block_size: int) -> torch.Tensor:
    """(B, H, Tq, Tk) scores of block pairs: the dot product of the query block's and the key block's means."""
    return block_means(q, block_size) @ block_means(k, block_size).transpose(-2, -1)


def check_qk(q: torch.Tensor, k: torch.Tensor, causal: bool) -> None:
    """Raise naming the problem unless q (B, H, Nq, D) and k (B, H, Nk, D) are floating-point
    tensors of one dtype with the same B, H and D (and Nq == Nk when ``causal``)."""
    if not isinstance(q, torch.Tensor) or not isinstance(k, torch.Tensor):
        raise TypeError(f"q and k must be torch.Tensors, got {type(q).__name__} and {type(k).__name__}")
    if q.dim() != 4 or k.dim() != 4 or q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must be (B, H, N, D) with the same B, H and D, got {tuple(q.shape)} and {tuple(k.shape)}"
        )
    if not q.is_floating_point() or q.dtype != k.dtype:
        raise ValueError(f"q and k must share a floating-point dtype, got {q.dtype} and {k.dtype}")
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(f"causal attention needs as many queries as keys, got {q.shape[-2]} and {k.shape[-2]}")


def keep_highest(scores: torch.Tensor, keep: int | torch.Tensor, *, causal: bool = False) -> torch.Tensor:
    """The bool layout (..., Tq, Tk) keeping each row's ``keep`` highest scores (an int, or a long
    tensor (Tq,) of counts per row), at most the row's allowed blocks. With ``causal`` (Tq == Tk),
    row i may keep only blocks j <= i and always keeps its own block i, which counts as one of
    the ``keep``. Ties go to the earlier block (a stable sort). O(Tq Tk log Tk).
    """
    n_q_blocks, n_k_blocks = scores.shape[-2:]
    if causal and n_q_blocks != n_k_blocks:
        raise ValueError(f"a causal layout needs as many query as key blocks, got {n_q_blocks} and {n_k_blocks}")
    columns = torch.arange(n_k_blocks, device=scores.device)
    allowed = torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device)
    if causal:
        rows = torch.arange(n_q_blocks, device=scores.device)[:, None]
        allowed = columns <= rows
        scores = scores.masked_fill(~allowed, float("-inf")).masked_fill(columns == rows, float("inf"))
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices
    ranks = torch.empty_like(order).scatter_(-1, order, columns.expand_as(order).contiguous())
    keep = torch.as_tensor(keep, device=scores.device)
    return (ranks < (keep[:, None] if keep.dim() else keep)) & allowed


def select_blocks(
    q: torch.Tensor, k: torch.Tensor, block_size: int, keep: int, *, causal: bool = False
) -> torch.Tensor:
    """The layout that keeps, for each query block, its ``keep`` highest-scoring key blocks.

    q (B, H, Nq, D), k (B, H, Nk, D). Returns a bool layout (B, H, Tq, Tk), Tq = ceil(Nq / s),
    Tk = ceil(Nk / s), with exactly min(keep, allowed blocks) True per row. With ``causal``
    (Nq == Nk), query block i may keep only key blocks j <= i and always keeps its own block
    i, which counts as one of the ``keep``. Ties between equal scores are broken in favour of
    the earlier block. Cost: O((Nq + Nk) D + Tq Tk D) time, O(Tq Tk) memory.
    """
    check_positive_int("block_size", block_size)
    check_positive_int("keep", keep)
    check_qk(q, k, causal)
    return keep_highest(block_scores(q, k, block_size), keep, causal=causal)
