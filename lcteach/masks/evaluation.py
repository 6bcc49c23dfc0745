"""Evaluating mask_mods: the MaskMod type, materialised masks, rows of a mask, and counting pairs.

A mask_mod is ``mask_mod(b, h, q_idx, kv_idx) -> bool tensor`` with True = the query may
attend to the key (FlexAttention's convention). Positions start at 0.
``count_allowed_pairs`` / ``pattern_density`` / ``pattern_flops`` evaluate any mask_mod a
block of query rows at a time: O(q_len * kv_len) evaluations in O(block * kv_len) memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn.attention.flex_attention import create_mask
from tqdm.auto import tqdm

from lcteach.validation import check_mask_mod, check_positive_int

MaskMod = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def materialize_mask(
    mask_mod: MaskMod,
    q_len: int,
    kv_len: int | None = None,
    *,
    batch: int | None = None,
    heads: int | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Evaluate ``mask_mod`` on every (query, key) pair with FlexAttention's ``create_mask``.

    Returns a bool tensor (batch or 1, heads or 1, q_len, kv_len). Memory O(q_len * kv_len):
    for pictures and small checks; kernels evaluate the mask tile by tile instead.
    """
    check_mask_mod(mask_mod)
    check_positive_int("q_len", q_len)
    kv_len = q_len if kv_len is None else check_positive_int("kv_len", kv_len)
    return create_mask(mask_mod, batch, heads, q_len, kv_len, device=device)


def index_grid(
    batch: int, heads: int, q_idx: torch.Tensor, kv_idx: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The broadcast index grid on which lcteach's kernels call mask_mods and score_mods.

    Given 1-D query and key positions, returns b (batch, 1, 1, 1), h (1, heads, 1, 1),
    q_idx (1, 1, Nq, 1) and kv_idx (1, 1, 1, Nk), on the positions' device: a mask_mod of
    elementwise ops then returns a (batch or 1, heads or 1, Nq, Nk) bool tensor.
    """
    device = q_idx.device
    b = torch.arange(batch, device=device)[:, None, None, None]
    h = torch.arange(heads, device=device)[None, :, None, None]
    return b, h, q_idx[None, None, :, None], kv_idx[None, None, None, :]


def call_on_grid(mask_mod: MaskMod, batch: int, heads: int, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
    """``mask_mod`` called once on ``index_grid(batch, heads, q_idx, kv_idx)``: a bool tensor
    broadcastable to (batch, heads, Nq, Nk), on the positions' device."""
    return torch.as_tensor(mask_mod(*index_grid(batch, heads, q_idx, kv_idx)), device=q_idx.device)


def evaluate_grid(
    mask_mod: MaskMod,
    q_len: int,
    kv_len: int | None = None,
    *,
    batch: int = 1,
    heads: int = 1,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """The mask_mod in one call on the broadcast index grid (``index_grid``), as lcteach's kernels
    call it: bool (batch, heads, q_len, kv_len).

    For mask_mods of elementwise ops (all of lcteach's). ``materialize_mask`` takes any mask_mod
    that FlexAttention takes, through vmap, at the price of importing torch._dynamo on its first
    call (about 3 s of CPU).
    """
    check_mask_mod(mask_mod)
    check_positive_int("q_len", q_len)
    kv_len = q_len if kv_len is None else check_positive_int("kv_len", kv_len)
    positions = torch.arange(q_len, device=device), torch.arange(kv_len, device=device)
    return call_on_grid(mask_mod, batch, heads, *positions).broadcast_to(batch, heads, q_len, kv_len)


def evaluate_rows(mask_mod: MaskMod, q_idx: torch.Tensor, kv_len: int) -> torch.Tensor:
    """The mask_mod on queries ``q_idx`` (1-D int tensor) against keys 0..kv_len-1, with b = h = 0.

    One call on a broadcast (len(q_idx), 1) x (1, kv_len) grid; returns bool (len(q_idx), kv_len).
    """
    check_mask_mod(mask_mod)
    kv_idx = torch.arange(kv_len, dtype=q_idx.dtype, device=q_idx.device)
    zero = torch.zeros((), dtype=q_idx.dtype, device=q_idx.device)
    allowed = torch.as_tensor(mask_mod(zero, zero, q_idx[:, None], kv_idx[None, :]), device=q_idx.device)
    return allowed.broadcast_to(len(q_idx), kv_len)


_GRID_ELEMENTS = 1 << 18  # (query, key) pairs evaluated at once by count_allowed_pairs


def count_allowed_pairs(
    mask_mod: MaskMod,
    q_len: int,
    kv_len: int | None = None,
    *,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> int:
    """How many (query, key) pairs ``mask_mod`` allows, with b = h = 0.

    Evaluates blocks of about 2^18 pairs (whole rows) on int32 index grids on ``device``:
    O(q_len * kv_len) mask evaluations, O(2^18 + kv_len) memory, never a q_len x kv_len
    buffer. On one idle CPU core each elementwise op of the mask_mod costs about 0.5 ns a
    pair: ~10 s for a sliding window at n = 65,536 and about 4x that for BigBird (its
    random blocks are a gather). A progress bar appears when it takes more than 1 s.
    """
    check_positive_int("q_len", q_len)
    kv_len = q_len if kv_len is None else check_positive_int("kv_len", kv_len)
    rows = max(1, _GRID_ELEMENTS // kv_len)
    total = 0
    for start in tqdm(range(0, q_len, rows), desc="counting pairs", disable=not progress, delay=1.0, leave=False):
        q_idx = torch.arange(start, min(start + rows, q_len), dtype=torch.int32, device=device)
        total += int(torch.count_nonzero(evaluate_rows(mask_mod, q_idx, kv_len)))
    return total


def pattern_density(
    mask_mod: MaskMod,
    q_len: int,
    kv_len: int | None = None,
    *,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> float:
    """Fraction of the q_len x kv_len pairs that ``mask_mod`` allows (count_allowed_pairs / total)."""
    kv_len = q_len if kv_len is None else kv_len
    return count_allowed_pairs(mask_mod, q_len, kv_len, device=device, progress=progress) / (q_len * kv_len)


FLOPS_PER_PAIR_PER_DIM = 4  # q.k (2d) + weights @ v (2d)


def pair_flops(pairs: int, head_dim: int) -> int:
    """FLOPs of ``pairs`` (query, key) pairs at head dimension d: 4 * d * pairs."""
    return FLOPS_PER_PAIR_PER_DIM * head_dim * pairs


@dataclass(frozen=True)
class PatternCost:
    """Counted cost of a pattern: its allowed pairs against all q_len * kv_len pairs.

    FLOPs follow lcteach.analysis.complexity: 4 * head_dim per pair (q.k and weights @ v).
    """

    allowed_pairs: int
    total_pairs: int
    head_dim: int

    @property
    def density(self) -> float:
        return self.allowed_pairs / self.total_pairs

    @property
    def flops(self) -> int:
        return pair_flops(self.allowed_pairs, self.head_dim)

    @property
    def dense_flops(self) -> int:
        return pair_flops(self.total_pairs, self.head_dim)

    @property
    def savings(self) -> float:
        """Fraction of the dense FLOPs that the pattern does not spend: 1 - density."""
        return 1.0 - self.density

    @property
    def speedup(self) -> float:
        """dense_flops / flops; inf for a pattern that allows no pair."""
        return self.dense_flops / self.flops if self.flops else float("inf")


def pattern_flops(
    mask_mod: MaskMod,
    q_len: int,
    kv_len: int | None = None,
    *,
    head_dim: int = 64,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> PatternCost:
    """Count ``mask_mod``'s pairs (count_allowed_pairs) and price them against dense attention."""
    check_positive_int("head_dim", head_dim)
    kv_len = q_len if kv_len is None else kv_len
    allowed = count_allowed_pairs(mask_mod, q_len, kv_len, device=device, progress=progress)
    return PatternCost(allowed, q_len * kv_len, head_dim)


def mask_name(pattern) -> str:
    return getattr(pattern, "__name__", "mask_mod")
