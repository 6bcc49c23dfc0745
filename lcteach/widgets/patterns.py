"""The Week 2 pattern explorers: one sparse pattern with its cost, and two patterns composed."""

from __future__ import annotations

from lcteach.masks.catalog import COMBINE, PATTERN_PARAMETERS, SPARSE_PATTERNS, combine, sparse_pattern
from lcteach.masks.evaluation import pattern_density, pattern_flops
from lcteach.viz.masks import plot_composition, plot_pattern
from lcteach.widgets.explorer import Controls, Explorer, dropdown, info_line, slider


def pattern_controls(
    n: int,
    window: int,
    stride: int,
    global_tokens: int,
    random_blocks: int,
    block_size: int,
    prefix: int,
    documents: int,
    n_max: int,
) -> Controls:
    """The sliders of the Week 2 pattern explorers, by name (n, window, stride, global tokens,
    random blocks, block size, prefix length, number of packed documents)."""
    return {
        "n": slider("n", n, 16, n_max, 16),
        "window": slider("window", window, 1, 128),
        "stride": slider("stride", stride, 1, 64),
        "global_tokens": slider("global tokens", global_tokens, 1, 16),
        "random_blocks": slider("random blocks", random_blocks, 1, 8),
        "block_size": slider("block size", block_size, 1, 128),
        "prefix": slider("prefix", prefix, 0, n_max),
        "documents": slider("documents", documents, 1, 16),
    }


def enable_pattern_controls(c: Controls, *patterns: str) -> None:
    """Enable only the sliders that the chosen patterns read."""
    used = set().union(*(PATTERN_PARAMETERS[pattern] for pattern in patterns))
    for name in ("window", "stride", "global_tokens", "random_blocks", "block_size", "prefix", "documents"):
        c[name].disabled = name not in used


def mask_explorer(
    pattern: str = "BigBird",
    n: int = 256,
    *,
    window: int = 15,
    stride: int = 16,
    global_tokens: int = 2,
    random_blocks: int = 2,
    block_size: int = 16,
    prefix: int = 64,
    documents: int = 4,
    seed: int = 0,
) -> Explorer:
    """Pick a sparse pattern and its parameters; see its mask, density and FLOPs saved vs dense.

    Sliders a pattern does not read are disabled. Impossible values (an even symmetric
    window, a block size that does not divide n) show a message instead of the picture.
    Random patterns and the document lengths are drawn from ``seed``.
    """
    controls = {"pattern": dropdown("pattern", SPARSE_PATTERNS, pattern)}
    controls |= pattern_controls(n, window, stride, global_tokens, random_blocks, block_size, prefix, documents, 1024)

    def render(pattern: str, n: int, **params):
        mask_mod = sparse_pattern(pattern, n, seed=seed, **params)
        cost = pattern_flops(mask_mod, n, progress=False)
        info = info_line(
            ("allowed pairs", f"{cost.allowed_pairs:,} of {cost.total_pairs:,}"),
            ("density", f"{cost.density:.1%}"),
            ("FLOPs saved vs dense", f"{cost.savings:.1%} ({cost.speedup:.1f}× fewer)"),
        )
        return plot_pattern(mask_mod, n), info

    return Explorer(controls, render, lambda c: enable_pattern_controls(c, c["pattern"].value))


def composition_explorer(
    a: str = "sliding window",
    b: str = "global",
    op: str = "or",
    n: int = 64,
    *,
    window: int = 5,
    stride: int = 8,
    global_tokens: int = 2,
    random_blocks: int = 1,
    block_size: int = 8,
    prefix: int = 16,
    documents: int = 3,
    seed: int = 0,
) -> Explorer:
    """Join two sparse patterns with and_masks / or_masks; see A, B and the result side by side.

    Both patterns read the same parameter sliders. Info: the density of A, B and A op B.
    """
    controls = {
        "A": dropdown("A", SPARSE_PATTERNS, a),
        "op": dropdown("op", tuple(COMBINE), op),
        "B": dropdown("B", SPARSE_PATTERNS, b),
    }
    controls |= pattern_controls(n, window, stride, global_tokens, random_blocks, block_size, prefix, documents, 256)

    def render(A: str, op: str, B: str, n: int, **params):
        first, second = (sparse_pattern(name, n, seed=seed, **params) for name in (A, B))
        densities = [pattern_density(m, n, progress=False) for m in (first, second, combine(first, second, op))]
        info = info_line(*((label, f"{d:.1%}") for label, d in zip(("A", "B", f"A {op} B"), densities, strict=True)))
        return plot_composition(first, second, n, op), info

    return Explorer(controls, render, lambda c: enable_pattern_controls(c, c["A"].value, c["B"].value))
