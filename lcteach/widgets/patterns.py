"""The Week 2 pattern explorers: one sparse pattern with its cost, and two patterns composed."""

from __future__ import annotations

from lcteach.masks.catalog import COMBINE, PATTERN_PARAMETERS, SPARSE_PATTERNS, combine, sparse_pattern
from lcteach.masks.evaluation import pattern_density, pattern_flops
from lcteach.viz.masks import plot_composition, plot_pattern
from lcteach.widgets.explorer import Controls, Explorer, choice_slider, dropdown, info_line, slider

MOST_RANDOM_BLOCKS = 8  # the random-blocks slider's top, when a row has that many blocks


def divisors(n: int) -> list[int]:
    """The block sizes that cut n positions into whole blocks: the divisors of n, rising."""
    return [b for b in range(1, n + 1) if n % b == 0]


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
    random blocks, block size, prefix length, number of packed documents).

    The block-size slider offers only the divisors of n (random blocks and block layouts need
    whole blocks), and random blocks go up to the n / block_size blocks a row has; ``sync_pattern_controls``
    keeps both so when n or the block size moves. Raises ValueError for a block size that does not
    divide n or more random blocks than a row has.
    """
    if n % block_size:
        raise ValueError(f"block_size must divide n = {n}, got {block_size}; the divisors are {divisors(n)}")
    if random_blocks > n // block_size:
        raise ValueError(
            f"random_blocks must be at most n / block_size = {n // block_size} (the blocks of a row), got {random_blocks}"
        )
    return {
        "n": slider("n", n, 16, n_max, 16),
        "window": slider("window", window, 1, 128),
        "stride": slider("stride", stride, 1, 64),
        "global_tokens": slider("global tokens", global_tokens, 1, 16),
        "random_blocks": slider("random blocks", random_blocks, 1, min(MOST_RANDOM_BLOCKS, n // block_size)),
        "block_size": choice_slider("block size", divisors(n), block_size),
        "prefix": slider("prefix", prefix, 0, n_max),
        "documents": slider("documents", documents, 1, 16),
    }


def sync_pattern_controls(c: Controls, *patterns: str) -> str | None:
    """Enable only the sliders that the chosen patterns read; keep the block size a divisor of n
    (the largest divisor not above the old value, when n moves) and random blocks at most the
    blocks of a row. Returns a sentence naming any value it changed, else None."""
    used = set().union(*(PATTERN_PARAMETERS[pattern] for pattern in patterns))
    for name in ("window", "stride", "global_tokens", "random_blocks", "block_size", "prefix", "documents"):
        c[name].disabled = name not in used
    notes = []
    n, block, blocks = c["n"].value, c["block_size"], c["random_blocks"]
    old_block, old_count = block.value, blocks.value
    if list(block.options) != divisors(n):
        new_block = max(b for b in divisors(n) if b <= old_block)
        block.options = divisors(n)  # resets the value: set it again
        block.value = new_block
        if new_block != old_block:
            notes.append(f"block size {old_block} does not divide n = {n}: set to {new_block}")
    blocks.max = min(MOST_RANDOM_BLOCKS, n // block.value)  # lowers the value if needed
    if blocks.value != old_count:
        per_row = n // block.value
        notes.append(
            f"random blocks lowered from {old_count} to {blocks.value}: "
            f"a row of n = {n} holds only {per_row} block{'s' * (per_row != 1)} of {block.value}"
        )
    return "; ".join(notes) or None


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

    Sliders a pattern does not read are disabled; the block size offers only the divisors of
    n. An impossible value (an even symmetric window) shows a message instead of the picture.
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

    return Explorer(controls, render, lambda c: sync_pattern_controls(c, c["pattern"].value))


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

    return Explorer(controls, render, lambda c: sync_pattern_controls(c, c["A"].value, c["B"].value))
