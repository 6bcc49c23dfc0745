"""Pictures of the week-2 ideas: sparse patterns, their compositions, reachability over layers, cost over n.

Pure like lcteach.plots: each ``plot_*`` draws into the ``ax`` it is given (split into
panels where it needs several) or into a new Figure that pyplot does not manage, and
returns that Figure; no rcParams or pyplot state changes.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter
from mpl_toolkits.axes_grid1 import make_axes_locatable
from torch.nn.attention.flex_attention import and_masks, or_masks

from .complexity import AttentionCost
from .masks import MaskMod
from .patterns import PatternCost, pattern_density, pattern_flops
from .plots import _colorbar, _Figure, _heatmap, _new_axes, _two_panels, plot_mask
from .profiling import format_bytes
from .reachability import Pattern, hop_counts

COMBINE = {"and": and_masks, "or": or_masks}
_UNREACHED = "#e2e8f0"


def _name(pattern) -> str:
    return getattr(pattern, "__name__", "mask_mod")


def _cost_line(cost: PatternCost) -> str:
    return f"density {cost.density:.1%} of pairs\nFLOPs {cost.flops:.3g} vs {cost.dense_flops:.3g} dense: {cost.savings:.0%} saved vs dense"


def plot_pattern(mask_mod: MaskMod, n: int, *, head_dim: int = 64, ax: Axes | None = None, title: str | None = None) -> Figure:
    """plot_mask of ``mask_mod`` at length n, titled with its density and the score/value FLOPs
    it saves against dense attention (lcteach.complexity: 4 * head_dim per pair).

    Materialises the (n, n) mask: O(n^2) memory, for pictures up to n of a few thousand.
    """
    cost = pattern_flops(mask_mod, n, head_dim=head_dim, progress=False)
    return plot_mask(mask_mod, n, ax=ax, title=title or f"{_name(mask_mod)} at n={n}:\n{_cost_line(cost)}")


def combine(a: MaskMod, b: MaskMod, op: str) -> MaskMod:
    """and_masks(a, b) or or_masks(a, b), named "a and b" / "a or b"."""
    if op not in COMBINE:
        raise ValueError(f"op must be one of {tuple(COMBINE)}, got {op!r}")
    combined = COMBINE[op](a, b)
    combined.__name__ = f"{_name(a)} {op} {_name(b)}"
    return combined


def plot_composition(a: MaskMod, b: MaskMod, n: int, op: str = "or", *, ax: Axes | None = None) -> Figure:
    """Pattern A, pattern B and their composition (``op`` "and" or "or") side by side at length n.

    Each panel is titled with its pattern's name and density; given ``ax``, it is split in three.
    """
    combined = combine(a, b, op)
    if ax is None:
        fig = _Figure(figsize=(15, 4.8), layout="constrained")
        panels = fig.subplots(1, 3)
    else:
        divider = make_axes_locatable(ax)
        fig, panels = ax.figure, [ax] + [divider.append_axes("right", size="100%", pad=0.9) for _ in range(2)]
    labels = (f"A: {_name(a)}", f"B: {_name(b)}", f"A {op} B")
    for panel, label, mask_mod in zip(panels, labels, (a, b, combined), strict=True):
        density = pattern_density(mask_mod, n, progress=False)
        plot_mask(mask_mod, n, ax=panel, title=f"{label}\n{density:.1%} of pairs")
    fig.suptitle(f"Composing two patterns with {op}_masks (n={n})")
    return fig


def plot_hop_counts(
    pattern: Pattern, n: int | None = None, layers: int | None = None, *, ax: Axes | None = None, title: str | None = None
) -> Figure:
    """Heatmap of lcteach.hop_counts: colour = the fewest layers for key j to reach query i
    within ``layers`` (default n - 1); pairs not reached are drawn grey.

    O(layers * n^3) time, as hop_counts.
    """
    hops = hop_counts(pattern, n, layers).numpy()
    size = hops.shape[0]
    most = max(int(hops.max()), 1)
    fig, ax = _new_axes(ax, (6.5, 5))
    # One colour per hop count, fewest hops brightest; pairs not reached are masked (grey).
    cmap = colormaps["viridis_r"].resampled(most + 1).with_extremes(bad=_UNREACHED)
    norm = BoundaryNorm(np.arange(-0.5, most + 1.5), cmap.N)
    image = _heatmap(ax, np.ma.masked_less(hops, 0), cmap=cmap, norm=norm)
    bar = _colorbar(fig, image, ax, "layers (hops) from key to query")
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    unreached = int((hops < 0).sum())
    limit = size - 1 if layers is None else layers
    name = _name(pattern) if callable(pattern) else "pattern"
    ax.set_title(title or f"{name}: hops within {limit} layers\n{unreached:,} of {size * size:,} pairs not reached (grey)")
    return fig


def plot_complexity(rows: Iterable[AttentionCost], *, ax: Axes | None = None, title: str | None = None) -> Figure:
    """Log-log FLOPs (top) and memory (bottom: scores + keys/values, bytes) against n, one line
    per method, from lcteach.complexity_table rows. Given ``ax``, it is split in two."""
    rows = list(rows)
    if not rows:
        raise ValueError("plot_complexity needs at least one AttentionCost row (lcteach.complexity_table)")
    fig, top, bottom = _two_panels(ax, (8, 7.5))
    methods = dict.fromkeys(row.method for row in rows)
    for method in methods:
        mine = sorted((row for row in rows if row.method == method), key=lambda row: row.n)
        ns = [row.n for row in mine]
        top.plot(ns, [row.flops for row in mine], marker="o", markersize=3, label=method)
        bottom.plot(ns, [row.total_bytes for row in mine], marker="o", markersize=3, label=method)
    for panel in (top, bottom):
        panel.set_xscale("log", base=2)
        panel.set_yscale("log", base=2 if panel is bottom else 10)
        panel.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        panel.grid(True, which="major", alpha=0.3)
    bottom.yaxis.set_major_formatter(FuncFormatter(lambda value, _: format_bytes(value)))
    bottom.yaxis.set_minor_formatter(NullFormatter())
    top.set_ylabel("FLOPs per head")
    bottom.set_ylabel("memory per head\n(scores + K, V)")
    bottom.set_xlabel("sequence length n")
    top.legend(fontsize="small", loc="upper left", ncols=2)
    top.tick_params(labelbottom=True)
    top.set_title(title or "Cost of attention methods over n (log-log)")
    return fig
