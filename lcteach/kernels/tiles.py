"""Tiles of the score matrix: the walk over (query block, key block) tiles that tiled kernels share.

A tile is (i0, i1, j0, j1): query rows i0:i1 against keys j0:j1. ``key_tiles`` yields the
tiles of a block of query rows that hold at least one allowed pair, with their masks;
``tile_status`` classifies every tile as SKIPPED, PARTIAL or FULL, exactly as
``tiled_attention`` treats it.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from lcteach.masks.evaluation import MaskMod, call_on_grid
from lcteach.validation import check_mask_mod_on_grids, check_positive_int

Tile = tuple[int, int, int, int]  # query rows i0:i1 against keys j0:j1


def query_blocks(n_q: int, block_q: int) -> Iterator[tuple[int, int]]:
    for i0 in range(0, n_q, block_q):
        yield i0, min(i0 + block_q, n_q)


def tile_mask(q: torch.Tensor, tile: Tile, causal: bool, mask_mod: MaskMod | None):
    """Boolean mask of one tile (broadcastable to (..., i1-i0, j1-j0)), or None if all True."""
    i0, i1, j0, j1 = tile
    allowed = None
    device = q.device
    if causal and j1 - 1 > i0:
        rows = torch.arange(i0, i1, device=device)[:, None]
        allowed = rows >= torch.arange(j0, j1, device=device)[None, :]
    if mask_mod is not None:
        positions = torch.arange(i0, i1, device=device), torch.arange(j0, j1, device=device)
        custom = call_on_grid(mask_mod, q.shape[0], q.shape[1], *positions)
        allowed = custom if allowed is None else allowed & custom
    return allowed


def key_tiles(q, i0: int, i1: int, n_k: int, block_k: int, causal: bool, mask_mod):
    """Yield (tile, mask) for the key blocks of query rows i0:i1 with at least one allowed pair."""
    for j0 in range(0, n_k, block_k):
        if causal and j0 > i1 - 1:
            return
        tile = (i0, i1, j0, min(j0 + block_k, n_k))
        allowed = tile_mask(q, tile, causal, mask_mod)
        if allowed is None or bool(allowed.any()):
            yield tile, allowed


# Tile statuses returned by tile_status.
SKIPPED, PARTIAL, FULL = 0, 1, 2


def tile_status(
    n_q: int, n_k: int, block_q: int, block_k: int, *, causal: bool = False, mask_mod: MaskMod | None = None
) -> torch.Tensor:
    """Status of every (block_q, block_k) tile of the (n_q, n_k) score matrix, as tiled_attention sees it.

    Returns an int64 tensor (ceil(n_q / block_q), ceil(n_k / block_k)): SKIPPED (0) for a tile
    with no allowed pair (tiled_attention never computes it), PARTIAL (1) for a computed tile
    with some masked pairs, FULL (2) for a computed tile with every pair allowed.
    ``causal`` and ``mask_mod`` mean what they mean for tiled_attention (mask_mod sees b = h = 0).
    Uses tiled_attention's own tile walk, so the count is exactly the tiles it computes.
    Cost: the mask evaluated on every pair of every tile the walk visits (n_q x n_k evaluations at
    most), O(block_q * block_k) memory at a time.
    """
    for name, value in (("n_q", n_q), ("n_k", n_k), ("block_q", block_q), ("block_k", block_k)):
        check_positive_int(name, value)
    if mask_mod is not None:
        check_mask_mod_on_grids(mask_mod, 1, 1, n_q, n_k)
    probe = torch.empty(1, 1, 0, 0)  # the tile walk reads only batch, heads and device from q
    status = torch.full((-(-n_q // block_q), -(-n_k // block_k)), SKIPPED, dtype=torch.int64)
    for row, (i0, i1) in enumerate(query_blocks(n_q, block_q)):
        for (_, _, j0, _), allowed in key_tiles(probe, i0, i1, n_k, block_k, causal, mask_mod):
            status[row, j0 // block_k] = FULL if allowed is None or bool(allowed.all()) else PARTIAL
    return status
