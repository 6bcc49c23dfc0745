"""Pictures of the tiles a tiled kernel computes, partly masks or skips."""

from __future__ import annotations

import torch
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MultipleLocator

from lcteach.kernels.tiles import FULL, PARTIAL, SKIPPED, tile_mask, tile_status
from lcteach.masks.evaluation import MaskMod
from lcteach.viz.figures import (
    FULL_TILE_COLOR,
    MASKED_PAIR_COLOR,
    PARTIAL_TILE_COLOR,
    SKIPPED_TILE_COLOR,
    grid_line_width,
    heatmap,
    new_axes,
)


def _pattern_name(causal: bool, mask_mod: MaskMod | None) -> str:
    names = (["causal"] if causal else []) + ([getattr(mask_mod, "__name__", "mask_mod")] if mask_mod else [])
    return " & ".join(names) or "no mask"


def plot_tiles(
    n_q: int,
    n_k: int,
    block_q: int,
    block_k: int,
    *,
    causal: bool = False,
    mask_mod: MaskMod | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """The (n_q, n_k) score matrix cut into tiles, each coloured by what tiled_attention does with it.

    Blue: computed, every pair allowed. Orange: computed but partly masked (the light pairs
    are computed and then thrown away). Grey: skipped, never computed. White lines separate
    the tiles where the tiles are large enough for them. Builds the full
    (n_q, n_k) mask for the picture, so keep n in the thousands at most.
    """
    status = tile_status(n_q, n_k, block_q, block_k, causal=causal, mask_mod=mask_mod)
    allowed = tile_mask(torch.empty(1, 1, 0, 0), (0, n_q, 0, n_k), causal, mask_mod)
    allowed = torch.ones(n_q, n_k, dtype=torch.bool) if allowed is None else allowed.expand(1, 1, n_q, n_k)[0, 0]
    per_pair = status.repeat_interleave(block_q, 0)[:n_q].repeat_interleave(block_k, 1)[:, :n_k]
    # Colour index: 0 skipped, 1 masked pair in a partial tile, 2 allowed pair in a partial tile, 3 full tile.
    colour = torch.where(per_pair == PARTIAL, 1 + allowed.long(), torch.where(per_pair == FULL, 3, 0))
    fig, ax = new_axes(ax, (8.8, 5.5))
    cmap = ListedColormap([SKIPPED_TILE_COLOR, MASKED_PAIR_COLOR, PARTIAL_TILE_COLOR, FULL_TILE_COLOR])
    heatmap(ax, colour.numpy(), cell_grid=max(block_q, block_k) <= 8, cmap=cmap, vmin=-0.5, vmax=3.5)
    # White lines between tiles, as wide as the tiles leave room for: none when tiles are a few points wide.
    width = grid_line_width(ax, max(n_q, n_k), min(block_q, block_k), 1.5)
    for axis, n, block, line in ((ax.xaxis, n_k, block_k, ax.axvline), (ax.yaxis, n_q, block_q, ax.axhline)):
        for edge in range(block, n, block) if width else ():
            line(edge - 0.5, color="white", linewidth=width, gid="tile_edge")
        if n <= 8 * block:  # few tiles: a tick at the start of each
            axis.set_major_locator(MultipleLocator(block))
    counts = {kind: int((status == kind).sum()) for kind in (FULL, PARTIAL, SKIPPED)}
    handles = [
        Patch(color=FULL_TILE_COLOR, label=f"computed, all pairs allowed ({counts[FULL]})"),
        Patch(color=PARTIAL_TILE_COLOR, label=f"computed, partly masked ({counts[PARTIAL]})"),
        Patch(color=MASKED_PAIR_COLOR, label="masked pair (computed, discarded)"),
        Patch(color=SKIPPED_TILE_COLOR, label=f"skipped: no allowed pair ({counts[SKIPPED]})"),
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", title="tile status")
    computed = counts[FULL] + counts[PARTIAL]
    default = (
        f"{_pattern_name(causal, mask_mod)}, {block_q}×{block_k} tiles:\n{computed} of {status.numel()} tiles computed"
    )
    ax.set_title(title or default)
    return fig
