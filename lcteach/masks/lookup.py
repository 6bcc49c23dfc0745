"""Lookup tables for mask_mods whose pattern is data (global positions, block layouts, random draws, documents).

Patterns drawn at random are drawn ONCE, when the mask_mod is made, into a table that the
mask_mod indexes: the mask_mod stays a pure function and the same seed gives the same mask.
"""

from __future__ import annotations

import torch


class LookupTable:
    """A lookup table for mask_mods: ``table(*indices)`` is table[indices], ``fill`` outside it
    (past its end or before position 0). ``fill`` defaults to False, for bool tables; an int
    table (document ids) takes a fill that no entry has, e.g. -1.

    Stored flat with one extra ``fill`` entry per dimension; indices are clamped onto that entry,
    so a lookup is one gather and never goes out of range, whatever index a kernel passes
    (FlexAttention may evaluate the padding past the end of its last block). Offsets are
    int64, so int32 index grids do not overflow.
    """

    def __init__(self, table: torch.Tensor, fill: bool | int = False):
        self.shape = table.shape
        padded = torch.full([size + 1 for size in table.shape], fill, dtype=table.dtype, device=table.device)
        padded[tuple(slice(0, size) for size in table.shape)] = table
        self.flat = padded.flatten()

    def __call__(self, *indices: torch.Tensor) -> torch.Tensor:
        offset = _slot(indices[0], self.shape[0]).long()
        for index, size in zip(indices[1:], self.shape[1:], strict=True):
            offset = offset * (size + 1) + _slot(index, size)
        return self.flat.to(indices[0].device)[offset]


def _slot(index: torch.Tensor, size: int) -> torch.Tensor:
    """``index`` where 0 <= index < size, else ``size`` (the padding entry, ``fill``): a negative
    position is outside the table too, never read from its other end."""
    return torch.where((index < 0) | (index >= size), size, index)
