"""Pictures of the analyses: hop counts through stacked layers, the complexity of each method, memory traffic."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from lcteach.analysis.complexity import AttentionCost
from lcteach.analysis.memory_traffic import flash_attention_traffic, standard_attention_traffic
from lcteach.analysis.reachability import Pattern, hop_counts
from lcteach.masks.evaluation import mask_name
from lcteach.measure.units import format_bytes
from lcteach.validation import check_positive_int
from lcteach.viz.figures import FUTURE_COLOR, UNREACHED_COLOR, colorbar, heatmap, new_axes, two_panels

# One (colour, marker) per method of lcteach.complexity_table, so that lines that run close
# together or on top of each other (the sliding window and Longformer at the same window)
# stay apart; dashed lines are causal methods, solid ones bidirectional.
_METHOD_COLORS = colormaps["tab10"].colors
_METHOD_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">", "h")


def plot_hop_counts(
    pattern: Pattern,
    n: int | None = None,
    layers: int | None = None,
    *,
    causal: bool | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Heatmap of lcteach.hop_counts: colour = the fewest layers for key j to reach query i
    within ``layers`` (default n - 1); pairs not reached are drawn grey.

    For a causal pattern (``causal``; None reads it off the pattern: no query attends a later
    key) the future, j > i, is not a pair that depth could ever reach: it is drawn white and
    left out of the count of pairs not reached, which the title gives out of the pairs a
    pattern of that kind could reach (n(n + 1)/2 causal, n^2 bidirectional).
    O(layers * n^3) time, as hop_counts.
    """
    hops = hop_counts(pattern, n, layers).numpy()
    size = hops.shape[0]
    above = np.triu(np.ones((size, size), dtype=bool), 1)
    if causal is None:  # one layer reaches every pair the pattern allows: causal iff nothing above is reached
        causal = not (hops[above] >= 0).any()
    future = above if causal else np.zeros((size, size), dtype=bool)
    most = max(int(hops.max()), 1)
    fig, ax = new_axes(ax, (6.5, 5))
    # One colour per hop count, fewest hops brightest; pairs not reached are masked (grey).
    cmap = colormaps["viridis_r"].resampled(most + 1).with_extremes(bad=UNREACHED_COLOR)
    norm = BoundaryNorm(np.arange(-0.5, most + 1.5), cmap.N)
    image = heatmap(ax, np.ma.masked_less(hops, 0), cmap=cmap, norm=norm)
    handles = [Patch(facecolor=UNREACHED_COLOR, edgecolor="0.6", label=f"not reached within {layers or size - 1}")]
    if causal:  # the future on top, in its own colour
        ax.imshow(
            np.ma.masked_where(~future, future),
            cmap=ListedColormap([FUTURE_COLOR]),
            interpolation="nearest",
            aspect="equal",
        )
        handles.append(
            Patch(facecolor=FUTURE_COLOR, edgecolor="0.6", label="future: a causal pattern never looks ahead")
        )
    bar = colorbar(fig, image, ax, "layers (hops) from key to query")
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=1, fontsize="small")
    unreached, possible = int(((hops < 0) & ~future).sum()), int((~future).sum())
    limit = size - 1 if layers is None else layers
    name = mask_name(pattern) if callable(pattern) else "pattern"
    kind = "causal" if causal else "bidirectional"
    ax.set_title(
        title
        or f"{name} ({kind}): hops within {limit} layers\n{unreached:,} of {possible:,} possible pairs not reached (grey)"
    )
    return fig


def plot_complexity(rows: Iterable[AttentionCost], *, ax: Axes | None = None, title: str | None = None) -> Figure:
    """Log-log FLOPs (top) and memory (bottom: scores + keys/values, bytes) against n, one line
    per method, from lcteach.complexity_table rows. Every method has its own colour and hollow
    marker, so that lines on top of each other stay visible; causal methods are dashed.
    Given ``ax``, it is split in two."""
    rows = list(rows)
    if not rows:
        raise ValueError("plot_complexity needs at least one AttentionCost row (lcteach.complexity_table)")
    fig, top, bottom = two_panels(ax, (8, 8.5))
    methods = dict.fromkeys(row.method for row in rows)
    for index, method in enumerate(methods):
        mine = sorted((row for row in rows if row.method == method), key=lambda row: row.n)
        ns = [row.n for row in mine]
        style = {
            "color": _METHOD_COLORS[index % len(_METHOD_COLORS)],
            "marker": _METHOD_MARKERS[index % len(_METHOD_MARKERS)],
            "linestyle": "--" if mine[0].causal else "-",
            "markersize": 6,
            "markerfacecolor": "none",  # hollow: a marker on top of another leaves it visible
            "linewidth": 1.4,
            "label": method,
        }
        top.plot(ns, [row.flops for row in mine], **style)
        bottom.plot(ns, [row.total_bytes for row in mine], **style)
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
    top.legend(fontsize="small", loc="upper left", ncols=2, title="dashed: causal, solid: bidirectional")
    top.tick_params(labelbottom=True)
    top.set_title(title or "Cost of attention methods over n (log-log)")
    return fig


def plot_memory_traffic(
    n_values: Sequence[int],
    head_dim: int,
    sram_elements: Sequence[int],
    *,
    marks: Mapping[str, int] | None = None,
    loop_order: str = "kv_outer",
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Log-log elements moved between main and on-chip memory by one attention forward pass
    against the on-chip memory size M (``sram_elements``), one colour per n of ``n_values``:
    standard attention dashed (lcteach.standard_attention_traffic, flat in M), the tiled
    pass solid (lcteach.flash_attention_traffic with blocks from M, ``loop_order``).
    ``marks`` maps a label to an on-chip size in elements, drawn as a dotted vertical line.
    O(len(n_values) * len(sram_elements)) time."""
    n_values, sizes = list(n_values), sorted(sram_elements)
    if not n_values or not sizes:
        raise ValueError("plot_memory_traffic needs at least one n and at least one on-chip size")
    for n in n_values:
        check_positive_int("n", n)
    for size in [*sizes, *(marks or {}).values()]:
        check_positive_int("sram_elements", size)
    fig, ax = new_axes(ax, (8, 5))
    for index, n in enumerate(n_values):
        color = _METHOD_COLORS[index % len(_METHOD_COLORS)]
        standard = standard_attention_traffic(n, head_dim).elements
        flash = [flash_attention_traffic(n, head_dim, sram_elements=m, loop_order=loop_order).elements for m in sizes]
        ax.plot(sizes, [standard] * len(sizes), color=color, linestyle="--", label=f"standard, n = {n:,}")
        ax.plot(sizes, flash, color=color, linestyle="-", linewidth=1.8, label=f"tiled (flash), n = {n:,}")
    for label, size in (marks or {}).items():
        ax.axvline(size, color="0.35", linestyle=":", linewidth=1.2, gid=f"mark: {label}")
        ax.annotate(
            label,
            (size, 0.98),
            xycoords=("data", "axes fraction"),
            rotation=90,
            ha="right",
            va="top",
            fontsize="small",
            color="0.25",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=10)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("on-chip memory M (elements)")
    ax.set_ylabel("elements moved to and from main memory")
    ax.legend(fontsize="small", loc="lower left", title="dashed: standard, solid: tiled")
    ax.set_title(title or f"Memory traffic of one attention forward pass, d = {head_dim} (log-log)")
    return fig
