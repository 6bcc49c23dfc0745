"""Sparse attention patterns (strided, global, random, block-sparse, BigBird) and what they cost.

Every ``generate_<name>`` returns a FlexAttention mask_mod ``(b, h, q_idx, kv_idx) -> bool``
(True = attend, positions start at 0) built from elementwise tensor ops only, so it works
on scalar indices under ``vmap`` (create_mask, create_block_mask), on broadcast index grids
(lcteach.tiled_attention) and inside ``and_masks`` / ``or_masks``. The b and h indices are
ignored: every head and batch entry gets the same pattern.

Patterns drawn at random are drawn ONCE, when the mask_mod is made, from ``seed``, into a
lookup table that the mask_mod indexes: the mask_mod stays a pure function and the same seed
gives the same mask. A table covers positions 0..seq_len-1; a position past its end is
attended by no query and attends no key (False), so the mask_mod never indexes out of range.

``count_allowed_pairs`` / ``pattern_density`` / ``pattern_flops`` evaluate any mask_mod a
block of query rows at a time: O(q_len * kv_len) evaluations in O(block * kv_len) memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.nn.attention.flex_attention import or_masks
from tqdm.auto import tqdm

from ._validation import (
    check_blocks,
    check_bool_matrix,
    check_fraction,
    check_mask_mod,
    check_nonnegative_int,
    check_positive_int,
    check_symmetric_window,
)
from .complexity import pair_flops
from .masks import MaskMod

_GRID_ELEMENTS = 1 << 18  # (query, key) pairs evaluated at once by count_allowed_pairs


class _Table:
    """A bool lookup table for mask_mods: ``table(*indices)`` is table[indices], False past its end.

    Stored flat with one extra False entry per dimension; indices are clamped onto that entry,
    so a lookup is one gather and never goes out of range, whatever index a kernel passes
    (FlexAttention may evaluate the padding past the end of its last block). Offsets are
    int64, so int32 index grids do not overflow.
    """

    def __init__(self, table: torch.Tensor):
        self.shape = table.shape
        padded = torch.zeros([size + 1 for size in table.shape], dtype=torch.bool, device=table.device)
        padded[tuple(slice(0, size) for size in table.shape)] = table
        self.flat = padded.flatten()

    def __call__(self, *indices: torch.Tensor) -> torch.Tensor:
        offset = indices[0].clamp(max=self.shape[0]).long()
        for index, size in zip(indices[1:], self.shape[1:], strict=True):
            offset = offset * (size + 1) + index.clamp(max=size)
        return self.flat.to(indices[0].device)[offset]


def generate_strided(stride: int) -> MaskMod:
    """Dilated ("strided") pattern: query i attends key j when (i - j) % stride == 0.

    NOT causal: j runs both ways, i - stride, i, i + stride, ... ; take and_masks(causal_mask,
    generate_strided(s)) for the earlier keys only. ``stride=1`` is full attention. Each row
    has about n / stride keys. Sparse Transformer's strided attention adds a local window:
    and_masks(causal_mask, or_masks(generate_sliding_window(s), generate_strided(s))),
    O(n sqrt(n)) pairs with s = sqrt(n).
    """
    check_positive_int("stride", stride)

    def strided(b, h, q_idx, kv_idx):
        return (q_idx - kv_idx) % stride == 0

    strided.__name__ = f"strided_{stride}"
    return strided


def generate_symmetric_window(window: int) -> MaskMod:
    """Bidirectional window of ``window`` keys centred on the query (BigBird, Longformer).

    Query i attends key j when |i - j| <= window // 2: the query itself and window // 2 keys
    on each side, so ``window`` must be odd; window=3 is i-1, i, i+1. As with the causal
    lcteach.generate_sliding_window, ``window`` counts the keys of a row, the query
    included; rows within window // 2 of an end have fewer. O(n * window) pairs.
    (The papers' w with w/2 keys per side is window = w + 1 here.)
    """
    radius = check_symmetric_window(window) // 2

    def symmetric_window(b, h, q_idx, kv_idx):
        return (q_idx - kv_idx).abs() <= radius

    symmetric_window.__name__ = f"symmetric_window_{window}"
    return symmetric_window


def _global_positions(global_tokens: int | Sequence[int]) -> list[int]:
    if isinstance(global_tokens, int) and not isinstance(global_tokens, bool):
        return list(range(check_positive_int("global_tokens", global_tokens)))
    if isinstance(global_tokens, (str, bytes)) or not isinstance(global_tokens, Sequence) or not global_tokens:
        raise ValueError(f"global_tokens must be a count >= 1 or a non-empty list of positions, got {global_tokens!r}")
    return [check_nonnegative_int("each global token position", position) for position in global_tokens]


def generate_global(global_tokens: int | Sequence[int]) -> MaskMod:
    """Longformer global attention: global tokens attend to every key and every query attends to them.

    ``global_tokens`` is a count k (the first k tokens, 0..k-1) or a list of positions.
    Allowed: q_idx global OR kv_idx global. With g global tokens out of n, 2gn - g^2 pairs.
    Combine with a window: or_masks(generate_symmetric_window(w), generate_global(g)).
    """
    positions = _global_positions(global_tokens)
    flags = torch.zeros(max(positions) + 1, dtype=torch.bool)
    flags[positions] = True
    is_global = _Table(flags)

    def global_tokens_mask(b, h, q_idx, kv_idx):
        return is_global(q_idx) | is_global(kv_idx)

    if isinstance(global_tokens, int):
        global_tokens_mask.__name__ = f"global_first_{global_tokens}"
    else:
        global_tokens_mask.__name__ = "global_at_" + "_".join(map(str, positions))
    return global_tokens_mask


def generate_block_sparse(layout: torch.Tensor, block_size: int) -> MaskMod:
    """Block-sparse pattern from a bool (q_blocks, kv_blocks) layout: query i attends key j
    when layout[i // block_size, j // block_size]. Covers q_blocks * block_size queries and
    kv_blocks * block_size keys; False beyond. The layout is copied: changing it later does
    not change the mask. Pairs: block_size^2 * layout.sum().
    """
    blocks = _Table(check_bool_matrix("layout", layout).detach())
    check_positive_int("block_size", block_size)

    def block_sparse(b, h, q_idx, kv_idx):
        return blocks(q_idx // block_size, kv_idx // block_size)

    block_sparse.__name__ = f"block_sparse_{layout.shape[0]}x{layout.shape[1]}_b{block_size}"
    return block_sparse


def _random_rows(rows: int, cols: int, per_row: int, generator: torch.Generator) -> torch.Tensor:
    """Bool (rows, cols) with exactly ``per_row`` True per row, at distinct uniformly random columns."""
    ranks = torch.rand(rows, cols, generator=generator).argsort(dim=-1)
    return torch.zeros(rows, cols, dtype=torch.bool).scatter_(-1, ranks[:, :per_row], True)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(check_nonnegative_int("seed", seed))


def generate_random_blocks(seq_len: int, block_size: int, blocks_per_row: int, *, seed: int) -> MaskMod:
    """Each block of ``block_size`` queries attends ``blocks_per_row`` distinct key blocks drawn
    at random (BigBird's random attention). ``block_size`` must divide ``seq_len``; the
    (seq_len / block_size)^2 layout is drawn from ``seed`` (same seed, same mask) and the
    query's own block is not guaranteed. Pairs: seq_len * blocks_per_row * block_size.
    """
    num_blocks = check_blocks(seq_len, block_size)
    check_positive_int("blocks_per_row", blocks_per_row)
    if blocks_per_row > num_blocks:
        raise ValueError(f"blocks_per_row must be at most the {num_blocks} key blocks of a row, got {blocks_per_row}")
    layout = _random_rows(num_blocks, num_blocks, blocks_per_row, _generator(seed))
    random_blocks = generate_block_sparse(layout, block_size)
    random_blocks.__name__ = f"random_blocks_{blocks_per_row}x{block_size}_seed{seed}"
    return random_blocks


def generate_random_tokens(seq_len: int, *, seed: int, density: float | None = None, count: int | None = None) -> MaskMod:
    """Token-level random pattern over ``seq_len`` positions, drawn from ``seed``; give exactly
    one of ``density`` (each pair allowed independently with that probability) or ``count``
    (each query attends exactly ``count`` distinct random keys). The query itself is not
    guaranteed. The table is a (seq_len, seq_len) bool matrix: O(seq_len^2) bytes, which is
    why BigBird draws random BLOCKS instead.
    """
    check_positive_int("seq_len", seq_len)
    if (density is None) == (count is None):
        raise ValueError(f"give exactly one of density or count, got density={density!r}, count={count!r}")
    generator = _generator(seed)
    if density is not None:
        drawn = torch.rand(seq_len, seq_len, generator=generator) < check_fraction("density", density)
        name = f"random_tokens_density{density:g}_seed{seed}"
    else:
        check_positive_int("count", count)
        if count > seq_len:
            raise ValueError(f"count must be at most seq_len = {seq_len} keys per row, got {count}")
        drawn = _random_rows(seq_len, seq_len, count, generator)
        name = f"random_tokens_{count}_seed{seed}"
    table = _Table(drawn)

    def random_tokens(b, h, q_idx, kv_idx):
        return table(q_idx, kv_idx)

    random_tokens.__name__ = name
    return random_tokens


def generate_bigbird(
    window: int, num_global: int, num_random_blocks: int, block_size: int, seq_len: int, *, seed: int
) -> MaskMod:
    """BigBird (ITC), built as or_masks(symmetric window, global tokens, random blocks).

    - window: generate_symmetric_window(window), bidirectional as in the paper: |i - j| <=
      window // 2 (``window`` odd, the query included);
    - global: the first ``num_global`` tokens (generate_global); 0 leaves them out;
    - random: ``num_random_blocks`` random key blocks of ``block_size`` per query block
      (generate_random_blocks, from ``seed``); 0 leaves them out.
    ``block_size`` must divide ``seq_len`` (checked even when there are no random blocks).
    Positions past ``seq_len`` get only the window and the global tokens.
    O(n (window + num_global + num_random_blocks * block_size)) pairs.
    """
    check_blocks(seq_len, block_size)
    check_nonnegative_int("num_global", num_global)
    check_nonnegative_int("num_random_blocks", num_random_blocks)
    parts = [generate_symmetric_window(window)]
    if num_global:
        parts.append(generate_global(num_global))
    if num_random_blocks:
        parts.append(generate_random_blocks(seq_len, block_size, num_random_blocks, seed=seed))
    bigbird = or_masks(*parts)
    bigbird.__name__ = f"bigbird_w{window}_g{num_global}_r{num_random_blocks}x{block_size}_seed{seed}"
    return bigbird


def evaluate_rows(mask_mod: MaskMod, q_idx: torch.Tensor, kv_len: int) -> torch.Tensor:
    """The mask_mod on queries ``q_idx`` (1-D int tensor) against keys 0..kv_len-1, with b = h = 0.

    One call on a broadcast (len(q_idx), 1) x (1, kv_len) grid; returns bool (len(q_idx), kv_len).
    """
    check_mask_mod(mask_mod)
    kv_idx = torch.arange(kv_len, dtype=q_idx.dtype, device=q_idx.device)
    zero = torch.zeros((), dtype=q_idx.dtype, device=q_idx.device)
    allowed = torch.as_tensor(mask_mod(zero, zero, q_idx[:, None], kv_idx[None, :]), device=q_idx.device)
    return allowed.broadcast_to(len(q_idx), kv_len)


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


@dataclass(frozen=True)
class PatternCost:
    """Counted cost of a pattern: its allowed pairs against all q_len * kv_len pairs.

    FLOPs follow lcteach.complexity: 4 * head_dim per pair (q.k and weights @ v).
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
