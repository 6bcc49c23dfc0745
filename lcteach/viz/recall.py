"""Pictures of the associative-recall experiment: how many layers each distance needs to reach
the query, and the accuracy each pattern reached at each distance and depth."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from mpl_toolkits.axes_grid1 import make_axes_locatable

from lcteach.analysis.reachability import hop_counts
from lcteach.experiments.recall import RecallResults, reachable_distances
from lcteach.masks.evaluation import MaskMod
from lcteach.viz.figures import UNREACHED_COLOR, NotebookFigure, colorbar, new_axes


def _stacked_panels(ax: Axes | None, count: int, figsize: tuple[float, float]) -> tuple[Figure, list[Axes]]:
    """``count`` panels one above the other, each with its own labelled x axis: a new figure, or the given ax split."""
    if ax is None:
        fig = NotebookFigure(figsize=figsize, layout="constrained")
        return fig, list(np.atleast_1d(fig.subplots(count, 1)))
    divider = make_axes_locatable(ax)
    return ax.figure, [ax] + [divider.append_axes("bottom", size="100%", pad=0.6) for _ in range(count - 1)]


def plot_reach_by_distance(
    patterns: Mapping[str, MaskMod],
    seq_len: int,
    layers: int = 3,
    *,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """For each pattern (a row) and each distance d = 1..seq_len-1 (a column): the fewest
    stacked layers that carry the pair d positions before the query (the last position) to
    the query, from lcteach.hop_counts; grey where ``layers`` layers are not enough.

    1 is the query's own row of the mask; more means relaying through other positions.
    O(len(patterns) * layers * seq_len^3).
    """
    if not patterns:
        raise ValueError("plot_reach_by_distance needs at least one pattern")
    hops = np.stack([hop_counts(p, seq_len, layers)[-1].flip(0)[1:].numpy() for p in patterns.values()])
    fig, ax = new_axes(ax, (11, 1.2 + 0.55 * len(patterns)))
    cmap = colormaps["viridis_r"].resampled(layers).with_extremes(bad=UNREACHED_COLOR)
    norm = BoundaryNorm(np.arange(0.5, layers + 1.5), cmap.N)
    image = ax.imshow(
        np.ma.masked_less(hops, 0),
        cmap=cmap,
        norm=norm,
        aspect="auto",
        interpolation="nearest",
        extent=(0.5, seq_len - 0.5, len(patterns) - 0.5, -0.5),
    )
    for row in range(1, len(patterns)):
        ax.axhline(row - 0.5, color="white", linewidth=3)
    ax.set_yticks(range(len(patterns)), list(patterns))
    ax.set_ylabel("pattern")
    ax.set_xlabel("distance d from the query (1 = the pair just before it)")
    bar = colorbar(fig, image, ax, "layers", {h: str(h) for h in range(1, layers + 1)})
    bar.ax.tick_params(length=0)
    ax.set_title(
        title or f"Fewest layers that carry the pair at distance d to the query (grey: more than {layers}, or never)"
    )
    return fig


def plot_recall_accuracy(
    results: RecallResults,
    patterns: Mapping[str, MaskMod],
    *,
    depths: Sequence[int] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """The accuracy of every (pattern, depth) of ``results`` at every distance: one panel per
    pattern, one row per depth, colour = accuracy from 0 (white) to 1 (dark). A grey cross marks
    a distance with no path to the query within that many layers of the pattern's mask
    (``patterns``: the mask_mods by name, e.g. lcteach.recall_patterns), where no training can
    beat chance; an unmarked light cell is a path the model did not learn to use.

    ``results`` must hold one bin per distance (bin_width 1, the command's default).
    """
    names = [name for name in results.patterns if name in patterns]
    if not names:
        raise ValueError(f"none of the results' patterns {results.patterns} is in patterns {list(patterns)}")
    depths = list(results.depths if depths is None else depths)
    seq_len = results.task.seq_len
    distances = np.arange(1, seq_len)
    fig, panels = _stacked_panels(ax, len(names), (11, 1.0 + (0.32 * len(depths) + 0.95) * len(names)))
    cmap = colormaps["Blues"]
    for panel, name in zip(panels, names, strict=True):
        accuracy = np.array([results.result(name, depth).accuracy for depth in depths])
        image = panel.imshow(
            accuracy,
            cmap=cmap,
            vmin=0,
            vmax=1,
            aspect="auto",
            interpolation="nearest",
            extent=(0.5, seq_len - 0.5, len(depths) - 0.5, -0.5),
        )
        for row, depth in enumerate(depths):
            unreachable = ~np.array(reachable_distances(patterns[name], seq_len, depth))
            panel.plot(distances[unreachable], np.full(unreachable.sum(), row), "x", color="0.55", markersize=3.5)
        panel.set_yticks(range(len(depths)), [f"{depth} layer{'s' * (depth != 1)}" for depth in depths])
        panel.set_ylim(len(depths) - 0.5, -0.5)
        panel.set_title(name, fontsize="medium")
        panel.set_ylabel("depth")
        panel.set_xlabel("distance d", labelpad=1)
    panels[-1].set_xlabel("distance d between the queried pair and the query")
    bar = fig.colorbar(image, ax=panels, shrink=0.8)
    bar.set_label("accuracy (held-out)")
    bar.set_ticks([0, results.chance, 0.5, 1], labels=["0", f"chance {results.chance:.0%}", "50%", "100%"])
    fig.legend(
        handles=[Line2D([], [], linestyle="none", marker="x", color="0.55", label="no path within that many layers")],
        loc="outside lower right" if ax is None else "lower right",
        fontsize="small",
    )
    heading = title or "Associative recall: accuracy by distance, pattern and depth"
    if ax is None:
        fig.suptitle(heading, fontsize="large")
    else:  # the host figure may hold other plots: the heading goes on the first panel
        panels[0].set_title(f"{heading}\n{names[0]}", fontsize="medium")
    return fig
