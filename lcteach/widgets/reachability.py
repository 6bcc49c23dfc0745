"""The Week 2 reachability explorer: what a pattern reaches through stacked layers."""

from __future__ import annotations

from lcteach.analysis.reachability import minimal_layers_for_full_reach
from lcteach.masks.catalog import SPARSE_PATTERNS, sparse_pattern
from lcteach.viz.analysis import plot_hop_counts
from lcteach.widgets.explorer import Explorer, dropdown, info_line, slider
from lcteach.widgets.patterns import pattern_controls, sync_pattern_controls


def reachability_explorer(
    pattern: str = "sliding window",
    n: int = 64,
    layers: int = 8,
    *,
    window: int = 5,
    stride: int = 8,
    global_tokens: int = 1,
    random_blocks: int = 1,
    block_size: int = 8,
    prefix: int = 16,
    documents: int = 3,
    seed: int = 0,
) -> Explorer:
    """Stack ``layers`` layers of a sparse pattern (any of lcteach.masks.SPARSE_PATTERNS, the Sparse
    Transformer's window + stride among them); see how many layers each key needs to reach each
    query (grey: not within the layers; white: the future of a causal pattern, which no depth
    reaches and which is not counted). Info: the fewest layers for full reach."""
    controls = {"pattern": dropdown("pattern", SPARSE_PATTERNS, pattern), "layers": slider("layers", layers, 1, 256)}
    controls |= pattern_controls(n, window, stride, global_tokens, random_blocks, block_size, prefix, documents, 256)

    def render(pattern: str, layers: int, n: int, **params):
        mask_mod = sparse_pattern(pattern, n, seed=seed, **params)
        needed = minimal_layers_for_full_reach(mask_mod, n)
        info = info_line(
            ("minimal layers for full reach", "never" if needed is None else str(needed)),
            (f"full reach within {layers} layers", "yes" if needed is not None and needed <= layers else "no"),
        )
        return plot_hop_counts(mask_mod, n, layers), info

    return Explorer(controls, render, lambda c: sync_pattern_controls(c, c["pattern"].value))
