"""Pictures of the analyses: hop counts through stacked layers, and the complexity of each method."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from lcteach.analysis.complexity import AttentionCost
from lcteach.analysis.reachability import Pattern, hop_counts
from lcteach.masks.evaluation import mask_name
from lcteach.measure.units import format_bytes
from lcteach.viz.figures import UNREACHED_COLOR, colorbar, heatmap, new_axes, two_panels


def plot_hop_counts(
    pattern: Pattern,
    n: int | None = None,
    layers: int | None = None,
    *,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Heatmap of lcteach.hop_counts: colour = the fewest layers for key j to reach query i
    within ``layers`` (default n - 1); pairs not reached are drawn grey.

    O(layers * n^3) time, as hop_counts.
    """
    hops = hop_counts(pattern, n, layers).numpy()
    size = hops.shape[0]
    most = max(int(hops.max()), 1)
    fig, ax = new_axes(ax, (6.5, 5))
    # One colour per hop count, fewest hops brightest; pairs not reached are masked (grey).
    cmap = colormaps["viridis_r"].resampled(most + 1).with_extremes(bad=UNREACHED_COLOR)
    norm = BoundaryNorm(np.arange(-0.5, most + 1.5), cmap.N)
    image = heatmap(ax, np.ma.masked_less(hops, 0), cmap=cmap, norm=norm)
    bar = colorbar(fig, image, ax, "layers (hops) from key to query")
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    unreached = int((hops < 0).sum())
    limit = size - 1 if layers is None else layers
    name = mask_name(pattern) if callable(pattern) else "pattern"
    ax.set_title(
        title or f"{name}: hops within {limit} layers\n{unreached:,} of {size * size:,} pairs not reached (grey)"
    )
    return fig


def plot_complexity(rows: Iterable[AttentionCost], *, ax: Axes | None = None, title: str | None = None) -> Figure:
    """Log-log FLOPs (top) and memory (bottom: scores + keys/values, bytes) against n, one line
    per method, from lcteach.complexity_table rows. Given ``ax``, it is split in two."""
    rows = list(rows)
    if not rows:
        raise ValueError("plot_complexity needs at least one AttentionCost row (lcteach.complexity_table)")
    fig, top, bottom = two_panels(ax, (8, 7.5))
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
