"""The Week 1 window explorer: full, causal and sliding-window masks and what they save."""

from __future__ import annotations

from lcteach.masks.catalog import WINDOW_PATTERNS, window_pattern
from lcteach.masks.evaluation import materialize_mask
from lcteach.viz.masks import plot_mask
from lcteach.widgets.explorer import Controls, Explorer, dropdown, info_line, slider


def window_explorer(n: int = 32, window: int = 4, *, pattern: str = "sliding window") -> Explorer:
    """Pick a pattern (full, causal, sliding window), a length and a window; see the mask and what it saves.

    The window slider is active only for the sliding window. Info: allowed pairs, density,
    and the share of score FLOPs a mask-aware kernel saves against dense attention.
    """
    controls = {
        "pattern": dropdown("pattern", WINDOW_PATTERNS, pattern),
        "n": slider("n", n, 4, 128),
        "window": slider("window", window, 1, 64),
    }

    def sync(c: Controls) -> None:
        c["window"].disabled = c["pattern"].value != "sliding window"

    def render(pattern: str, n: int, window: int):
        mask_mod = window_pattern(pattern, window)
        allowed = int(materialize_mask(mask_mod, n).sum())
        density = allowed / n**2
        info = info_line(
            ("allowed pairs", f"{allowed:,} of {n * n:,}"),
            ("density", f"{density:.1%}"),
            ("score FLOPs saved vs dense", f"{1 - density:.1%}"),
        )
        return plot_mask(mask_mod, n), info

    return Explorer(controls, render, sync)
