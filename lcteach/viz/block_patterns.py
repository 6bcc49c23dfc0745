"""Pictures of content-adaptive block selection: the layouts chosen, a predictor's training loss,
and the attention mass each way of choosing keeps as the sparsity grows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from lcteach.viz.figures import ALLOWED_COLOR, MASKED_COLOR, as_matrix, heatmap, new_axes, side_by_side, to_numpy

_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_KEPT, _MISSED = "#f6ad55", "#c53030"  # a needed block the layout keeps / misses


def _sparse_log_label(value: float, _position=None) -> str:
    """Label the minor ticks 2, 3 and 5 of each decade of a log axis (the others stay blank)."""
    if value <= 0:
        return ""
    leading = value / 10 ** np.floor(np.log10(value))
    return f"{value:g}" if np.isclose(leading, (2, 3, 5)).any() else ""


def plot_training_loss(
    losses: Sequence[float], *, ax: Axes | None = None, title: str | None = None, ylabel: str = "loss"
) -> Figure:
    """The loss at every training step (log y axis when all losses are positive)."""
    values = to_numpy(losses).astype(float).ravel()
    if values.size == 0:
        raise ValueError("plot_training_loss needs at least one loss value")
    fig, ax = new_axes(ax, (6.5, 3.2))
    ax.plot(np.arange(values.size), values, color=ALLOWED_COLOR, linewidth=1.5)
    if np.all(values > 0):
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # 0.3, not 3 x 10^-1
        ax.yaxis.set_minor_formatter(FuncFormatter(_sparse_log_label))
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.set_title(title or f"Training loss: {values[0]:.3g} at step 0, {values[-1]:.3g} at the end")
    return fig


def plot_recall_vs_sparsity(
    sparsities: Sequence[float],
    recalls: Mapping[str, Sequence[float]],
    *,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """One line per way of choosing blocks: the share of the exact attention mass its layout keeps
    (``attention_recall``, y) at each sparsity (the share of key blocks skipped, x)."""
    x = to_numpy(sparsities).astype(float).ravel()
    if not recalls:
        raise ValueError("plot_recall_vs_sparsity needs at least one method")
    fig, ax = new_axes(ax, (7, 4))
    for index, (name, values) in enumerate(recalls.items()):
        y = to_numpy(values).astype(float).ravel()
        if y.shape != x.shape:
            raise ValueError(f"recalls[{name!r}] has {y.size} values for {x.size} sparsities")
        ax.plot(x, y, marker=_MARKERS[index % len(_MARKERS)], label=name, gid=name)
    ax.set_xlabel("sparsity (share of key blocks skipped)")
    ax.set_ylabel("attention mass kept (recall)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(title or "Attention mass kept by each layout, as the sparsity grows")
    return fig


def plot_layouts(
    layouts: Mapping[str, object],
    *,
    targets: Sequence[int] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Block layouts side by side (query blocks down, key blocks across; dark = computed). With
    ``targets`` (the key block each query block needs), a ring marks it: filled where the
    layout keeps it, so the missed links stand out. Layouts of shape (B, H, Tq, Tk) show [0, 0]."""
    if not layouts:
        raise ValueError("plot_layouts needs at least one layout")
    matrices = {name: as_matrix(layout, f"layout {name!r}")[0].astype(bool) for name, layout in layouts.items()}
    fig, panels = side_by_side(ax, len(matrices), (3.2 * len(matrices) + 0.5, 3.6))
    cmap = ListedColormap([MASKED_COLOR, ALLOWED_COLOR])
    for panel, (name, matrix) in zip(panels, matrices.items(), strict=True):
        heatmap(panel, matrix.astype(int), cmap=cmap, vmin=0, vmax=1)
        panel.set_xlabel("key block")
        panel.set_ylabel("query block")
        caption = name
        if targets is not None:
            wanted = to_numpy(targets).astype(int).ravel()
            if wanted.size != matrix.shape[0]:
                raise ValueError(f"targets has {wanted.size} entries for {matrix.shape[0]} query blocks")
            rows = np.arange(wanted.size)
            hit = matrix[rows, wanted]
            panel.scatter(wanted[hit], rows[hit], s=28, facecolors=_KEPT, edgecolors="black", linewidths=0.8)
            panel.scatter(wanted[~hit], rows[~hit], s=28, facecolors="none", edgecolors=_MISSED, linewidths=1.4)
            caption = f"{name}\n{hit.sum()} of {hit.size} needed blocks kept"
        panel.set_title(caption, fontsize="medium")
    if targets is not None:
        ring = {"linestyle": "none", "marker": "o"}
        handles = [
            Line2D([], [], **ring, markerfacecolor=_KEPT, markeredgecolor="black", label="needed, kept"),
            Line2D([], [], **ring, markerfacecolor="none", markeredgecolor=_MISSED, label="needed, missed"),
        ]
        where = "outside lower center" if ax is None else "lower center"
        fig.legend(handles=handles, loc=where, ncols=2, fontsize="small")
    heading = title or "Block layouts (dark: computed)"
    if ax is None:
        fig.suptitle(heading)
    else:
        panels[0].set_title(f"{heading}\n{panels[0].get_title()}", fontsize="medium")
    return fig
