"""The Week 1 tiling explorer: which tiles a tiled kernel computes, partly masks or skips."""

from __future__ import annotations

import ipywidgets as widgets

from lcteach.kernels.tiles import tile_status
from lcteach.masks.sliding_window import generate_sliding_window
from lcteach.measure.units import format_bytes
from lcteach.viz.tiles import plot_tiles
from lcteach.widgets.explorer import Controls, Explorer, info_line, slider


def tiling_explorer(n: int = 256, block: int = 32, *, causal: bool = True, window: int = 0) -> Explorer:
    """Cut an n x n score matrix into block_q x block_k tiles and see which tiles tiled attention computes.

    ``window`` 0 means no window; w > 0 adds a sliding window of w keys (at most n: when a
    smaller n lowers it, the info line says so). Info: tiles
    computed of all tiles, and the memory of one score tile against the dense n x n matrix (float32).
    """
    controls = {
        "n": slider("n", n, 16, 1024, 16),
        "block_q": slider("block_q", block, 8, 256, 8),
        "block_k": slider("block_k", block, 8, 256, 8),
        "causal": widgets.Checkbox(value=causal, description="causal", indent=False),
        "window": slider("window", window, 0, n),
    }

    def sync(c: Controls) -> str | None:
        old = c["window"].value
        c["window"].max = c["n"].value  # a window of n or more is plain causal
        if c["window"].value != old:
            return f"window lowered from {old} to n = {c['window'].value}: a longer window adds nothing"
        return None

    def render(n: int, block_q: int, block_k: int, causal: bool, window: int):
        mask_mod = generate_sliding_window(window) if window else None
        status = tile_status(n, n, block_q, block_k, causal=causal, mask_mod=mask_mod)
        computed, tile_bytes, dense_bytes = int((status > 0).sum()), block_q * block_k * 4, n * n * 4
        info = info_line(
            ("tiles computed", f"{computed} of {status.numel()} ({computed / status.numel():.0%})"),
            (
                "peak score-tile memory",
                f"{format_bytes(tile_bytes)} vs {format_bytes(dense_bytes)} dense ({dense_bytes / tile_bytes:,.0f}× less)",
            ),
        )
        return plot_tiles(n, n, block_q, block_k, causal=causal, mask_mod=mask_mod), info

    return Explorer(controls, render, sync)
