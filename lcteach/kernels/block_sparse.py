"""Block-sparse attention: compute only the score blocks a block layout marks as non-empty.

Cut queries and keys into blocks of ``block_size`` positions. A block layout is a bool
matrix (q_blocks, kv_blocks): True where query block qi may attend to some key of key
block kj. ``block_sparse_attention`` gathers the list of True entries and handles them
all at once: one batched product per active block for the scores, a softmax across
the blocks of each query row (segment max with ``scatter_reduce``, segment sums with
``index_add``) and one batched product for the values. Work and memory are proportional
to the number of active blocks, never to n^2; ``block_sparse_work`` counts that work.

An optional ``mask_mod`` (FlexAttention convention) refines the pattern inside the
computed blocks, e.g. the causal triangle of diagonal blocks, and an optional
``score_mod`` changes the scores of the computed pairs (ALiBi, soft-capping).
``block_layout`` derives the layout from a mask_mod: a block is active when the mask allows
any pair in it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lcteach.kernels.tiles import tile_mask
from lcteach.masks.evaluation import MaskMod
from lcteach.score_mods.evaluation import ScoreMod
from lcteach.validation import (
    check_batch_heads,
    check_mask_mod,
    check_mask_mod_on_grids,
    check_positive_int,
    check_qkv,
    check_score_mod,
)


def block_sparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    layout: torch.Tensor,
    block_size: int,
    *,
    mask_mod: MaskMod | None = None,
    score_mod: ScoreMod | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Attention over the (query block, key block) pairs that ``layout`` marks True.

    Shapes: q (B, H, Nq, D), k (B, H, Nk, D), v (B, H, Nk, Dv). ``layout`` is a bool tensor
    (QB, KB), (H, QB, KB) or (B, H, QB, KB) (leading dims broadcast to (B, H)) with
    QB = ceil(Nq / block_size), KB = ceil(Nk / block_size): block qi covers queries
    qi*block_size .. (qi+1)*block_size - 1, likewise for keys. Sequence lengths need not
    be multiples of block_size: the last blocks are zero-padded and padded keys are never
    attended. Query i may attend to key j when its block pair is True and, if given,
    ``mask_mod(b, h, i, j)`` is True (evaluated only inside active blocks, on in-range
    positions). ``score_mod(score, b, h, i, j)`` changes each scaled score of the active blocks
    before the masks (FlexAttention convention). A query with no allowed key gets a zero
    output (SDPA would give NaN). ``scale`` defaults to 1/sqrt(D). A mask_mod or score_mod must
    give on a broadcast index grid what it gives pair by pair: checked once per call on a small
    probe grid, whatever the block size (ValueError otherwise).
    Returns out (B, H, Nq, Dv); differentiable (autograd through the gathered blocks).
    Cost, with A active (b, h, qi, kj) blocks and s = block_size: O(A * s^2 * (D + Dv))
    time (exactly ``block_sparse_work`` in matrix products) and O(A * s * (s + D + Dv)
    + B * H * (Nq + Nk) * (D + Dv)) memory, in forward and backward.
    """
    check_qkv(q, k, v)
    check_batch_heads(q, "block_sparse_attention")
    check_positive_int("block_size", block_size)
    batch, heads, n_q, _ = q.shape
    n_k = k.shape[-2]
    if mask_mod is not None:
        check_mask_mod_on_grids(mask_mod, batch, heads, n_q, n_k, q.device)
    if score_mod is not None:
        check_score_mod(score_mod, q, k)
    grid = _check_layout(layout, batch, heads, (-(-n_q // block_size), -(-n_k // block_size)))
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    b, h, qi, kj = grid.to(q.device).nonzero(as_tuple=True)  # the A active blocks
    q_blocks, k_blocks, v_blocks = (_blocks(t, block_size) for t in (q, k, v))  # (B, H, blocks, s, dim)
    scores = (q_blocks[b, h, qi] @ k_blocks[b, h, kj].transpose(-2, -1)).mul_(scale)  # (A, s, s)
    indices, real_keys = _block_indices(b, h, qi, kj, block_size, n_q, n_k)
    masked = ~_allowed(indices, real_keys, mask_mod)
    if score_mod is None:
        scores.masked_fill_(masked, float("-inf"))
    else:  # out of place: the score_mod's backward may need its output
        scores = score_mod(scores, *indices).broadcast_to(scores.shape).masked_fill(masked, float("-inf"))
    # Softmax across all blocks of a query row: every row of a query block shares one segment id.
    segment = (b * heads + h) * grid.shape[-2] + qi  # (A,)
    rows = (batch * heads * grid.shape[-2], block_size)
    with torch.no_grad():  # the shift by the row max changes no result, so it needs no gradient
        row_max = scores.new_full(rows, float("-inf"))
        row_max = row_max.scatter_reduce(0, segment[:, None].expand(-1, block_size), scores.amax(dim=-1), "amax")
        row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    # In place, as every step since the product: one (A, s, s) buffer. Masked pairs: exp(-inf) = 0.
    weights = scores.sub_(row_max[segment, :, None]).exp_()
    total = scores.new_zeros(rows).index_add(0, segment, weights.sum(dim=-1))
    summed = scores.new_zeros((*rows, v.shape[-1])).index_add(0, segment, weights @ v_blocks[b, h, kj])
    out = summed / torch.where(total > 0, total, torch.ones_like(total))[..., None]  # empty rows stay 0
    return out.reshape(batch, heads, -1, v.shape[-1])[:, :, :n_q]


def block_sparse_work(
    layout: torch.Tensor,
    block_size: int,
    head_dim: int,
    *,
    value_dim: int | None = None,
    batch: int = 1,
    heads: int = 1,
) -> int:
    """Floating-point operations of block_sparse_attention's matrix products for ``layout``.

    Each active (b, h, qi, kj) block costs one (s, D) x (D, s) product for its scores and
    one (s, s) x (s, Dv) product for its values: 2 * s^2 * (D + Dv) flops with
    s = block_size and Dv = value_dim (default head_dim). ``layout`` is as for
    block_sparse_attention; its leading dims broadcast to (batch, heads). The count is
    proportional to the number of active blocks; a dense layout of n/s x n/s blocks gives
    the 2 * n^2 * (D + Dv) of dense attention. The softmax adds O(active blocks * s^2).
    """
    check_positive_int("block_size", block_size)
    check_positive_int("head_dim", head_dim)
    value_dim = head_dim if value_dim is None else check_positive_int("value_dim", value_dim)
    check_positive_int("batch", batch)
    check_positive_int("heads", heads)
    active = int(_check_layout(layout, batch, heads).sum())
    return active * 2 * block_size**2 * (head_dim + value_dim)


def block_layout(
    mask_mod: MaskMod,
    q_len: int,
    kv_len: int | None = None,
    *,
    block_size: int,
    batch: int | None = None,
    heads: int | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """The block layout of a mask_mod: True where a block holds at least one allowed pair.

    Returns a bool tensor (batch or 1, heads or 1, ceil(q_len / s), ceil(kv_len / s)) with
    s = block_size; ``batch``/``heads`` None evaluate the mask at b = 0 / h = 0 only (for
    masks that do not depend on them). Evaluates mask_mod on one row of blocks at a time:
    O(q_len * kv_len) cheap elementwise work, O(batch * heads * s * kv_len) memory, so the
    (q_len, kv_len) mask is never materialised.
    """
    check_mask_mod(mask_mod)
    check_positive_int("q_len", q_len)
    kv_len = q_len if kv_len is None else check_positive_int("kv_len", kv_len)
    check_positive_int("block_size", block_size)
    check_mask_mod_on_grids(mask_mod, batch or 1, heads or 1, q_len, kv_len, device)
    probe = torch.empty(batch or 1, heads or 1, 0, 0, device=device)  # _tile_mask reads batch, heads, device
    kv_blocks = -(-kv_len // block_size)
    rows = []
    for i0 in range(0, q_len, block_size):
        allowed = tile_mask(probe, (i0, min(i0 + block_size, q_len), 0, kv_len), False, mask_mod)
        keys = allowed.any(dim=-2).expand(probe.shape[0], probe.shape[1], kv_len)  # any query of the block
        keys = F.pad(keys, (0, kv_blocks * block_size - kv_len))  # padded keys: False
        rows.append(keys.unflatten(-1, (kv_blocks, block_size)).any(dim=-1))
    return torch.stack(rows, dim=-2)


def _check_layout(layout, batch: int, heads: int, blocks: tuple[int, int] | None = None) -> torch.Tensor:
    """Return ``layout`` expanded to (batch, heads, q_blocks, kv_blocks), or raise naming the problem.

    ``blocks`` is the expected (q_blocks, kv_blocks); None accepts any.
    """
    if not isinstance(layout, torch.Tensor) or layout.dtype != torch.bool:
        kind = layout.dtype if isinstance(layout, torch.Tensor) else type(layout).__name__
        raise TypeError(f"layout must be a bool tensor (True = compute the block), got {kind}")
    expected = "q_blocks, kv_blocks" if blocks is None else f"{blocks[0]}, {blocks[1]}"
    if not 2 <= layout.dim() <= 4 or (blocks is not None and tuple(layout.shape[-2:]) != blocks):
        raise ValueError(
            f"layout must have shape ([B, [H,]] {expected}): one entry per (query block, key block), "
            f"got {tuple(layout.shape)}"
        )
    try:
        return layout.expand(batch, heads, *layout.shape[-2:])
    except RuntimeError:
        raise ValueError(
            f"layout's leading dims {tuple(layout.shape[:-2])} do not broadcast to (batch, heads) = ({batch}, {heads})"
        ) from None


def _blocks(x: torch.Tensor, block_size: int) -> torch.Tensor:
    """(B, H, N, dim) -> (B, H, ceil(N / s), s, dim), the last block zero-padded."""
    pad = -x.shape[-2] % block_size
    return F.pad(x, (0, 0, 0, pad)).unflatten(-2, (-1, block_size))


def _block_indices(b, h, qi, kj, block_size: int, n_q: int, n_k: int):
    """The (b, h, q_idx, kv_idx) grid of the A active blocks, b, h (A, 1, 1), q_idx (A, s, 1) and
    kv_idx (A, 1, s), and which keys are real positions (A, 1, s). Padded positions are clamped
    onto the last one (their pairs are dropped), so a mask_mod or score_mod that indexes a table
    of length n stays in range."""
    offsets = torch.arange(block_size, device=qi.device)
    q_idx = qi[:, None, None] * block_size + offsets[None, :, None]
    kv_idx = kj[:, None, None] * block_size + offsets[None, None, :]
    indices = (b[:, None, None], h[:, None, None], q_idx.clamp(max=n_q - 1), kv_idx.clamp(max=n_k - 1))
    return indices, kv_idx < n_k


def _allowed(indices: tuple[torch.Tensor, ...], real_keys: torch.Tensor, mask_mod: MaskMod | None) -> torch.Tensor:
    """Bool (A, s, s) or (A, 1, s): which pairs of each active block may attend (padded keys never do)."""
    if mask_mod is None:
        return real_keys
    return real_keys & torch.as_tensor(mask_mod(*indices), device=real_keys.device)
