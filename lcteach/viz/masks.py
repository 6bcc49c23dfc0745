"""Pictures of attention patterns: a mask, a pattern with its cost, and two patterns composed."""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from lcteach.masks.catalog import combine
from lcteach.masks.evaluation import MaskMod, PatternCost, mask_name, materialize_mask, pattern_density, pattern_flops
from lcteach.viz.figures import (
    ALLOWED_COLOR,
    MASKED_COLOR,
    as_matrix,
    colorbar,
    heatmap,
    new_axes,
    side_by_side,
    with_note,
)


def plot_mask(
    mask,
    n: int | None = None,
    *,
    kv_len: int | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    legend: bool = True,
) -> Figure:
    """Picture of an attention pattern: a bool mask (Nq, Nk) or (B, H, Nq, Nk), or a mask_mod materialised at length n.

    The default title names the pattern and its density, e.g. "sliding_window_4: 23% of pairs".
    ``legend=False`` leaves out the colour bar that says which colour attends (for figures that
    show one key for several panels).
    """
    if callable(mask):
        if n is None:
            raise ValueError("plot_mask needs the sequence length n to draw a mask_mod")
        name = getattr(mask, "__name__", "mask_mod")
        mask = materialize_mask(mask, n, kv_len)[0, 0]
    else:
        name = "mask"
    matrix, note = as_matrix(mask, "mask")
    if matrix.dtype != bool:
        raise TypeError(f"mask must be a bool tensor (True = attend) or a mask_mod callable, got dtype {matrix.dtype}")
    fig, ax = new_axes(ax, (6, 5))
    image = heatmap(ax, matrix, cmap=ListedColormap([MASKED_COLOR, ALLOWED_COLOR]), vmin=0, vmax=1)
    if legend:
        colorbar(fig, image, ax, "may attend?", {0.25: "masked", 0.75: "attends"})
    ax.set_title(with_note(title or f"{name}: {matrix.mean():.0%} of pairs", note))
    return fig


def _cost_line(cost: PatternCost) -> str:
    return f"density {cost.density:.1%} of pairs\nFLOPs {cost.flops:.3g} vs {cost.dense_flops:.3g} dense: {cost.savings:.0%} saved vs dense"


def plot_pattern(
    mask_mod: MaskMod, n: int, *, head_dim: int = 64, ax: Axes | None = None, title: str | None = None
) -> Figure:
    """plot_mask of ``mask_mod`` at length n, titled with its density and the score/value FLOPs
    it saves against dense attention (lcteach.analysis.complexity: 4 * head_dim per pair).

    Materialises the (n, n) mask: O(n^2) memory, for pictures up to n of a few thousand.
    """
    cost = pattern_flops(mask_mod, n, head_dim=head_dim, progress=False)
    return plot_mask(mask_mod, n, ax=ax, title=title or f"{mask_name(mask_mod)} at n={n}:\n{_cost_line(cost)}")


def plot_composition(a: MaskMod, b: MaskMod, n: int, op: str = "or", *, ax: Axes | None = None) -> Figure:
    """Pattern A, pattern B and their composition (``op`` "and" or "or") side by side at length n.

    Each panel is titled with its pattern's name and density; one legend below says which
    colour attends, so the three panels get the whole width. Given ``ax``, it is split in three.
    """
    combined = combine(a, b, op)
    fig, panels = side_by_side(ax, 3, (13.5, 5.8))
    labels = (f"A: {mask_name(a)}", f"B: {mask_name(b)}", f"A {op} B")
    for panel, label, mask_mod in zip(panels, labels, (a, b, combined), strict=True):
        density = pattern_density(mask_mod, n, progress=False)
        plot_mask(mask_mod, n, ax=panel, title=f"{label}\n{density:.1%} of pairs", legend=False)
    fig.legend(
        handles=[
            Patch(color=ALLOWED_COLOR, label="attends"),
            Patch(facecolor=MASKED_COLOR, edgecolor="0.6", label="masked"),
        ],
        loc="outside lower center" if ax is None else "lower center",
        ncols=2,
        title="may the query attend the key?",
    )
    fig.suptitle(f"Composing two patterns with {op}_masks (n={n})")
    return fig
