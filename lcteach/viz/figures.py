"""What every plot shares: a Figure that shows itself in Jupyter, axes, heatmaps, colour bars, the palette.

Every ``plot_*`` function of lcteach.viz is pure: it draws into the ``ax`` it is given, or
into a new Figure that pyplot does not manage, and returns that Figure. It never changes
rcParams or pyplot's current figure, so it is safe in loops, widgets and headless tests
(Agg). A returned Figure shows itself in Jupyter even when pyplot was never imported, and it
is freed like any other object once nothing refers to it (no ``plt.close`` needed).

Inputs may be torch tensors (any device, with or without grad) or array-likes.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from mpl_toolkits.axes_grid1 import make_axes_locatable

_CELL_GRID_MAX = 32  # draw a line between cells up to this many rows/columns
_GRID_SHARE = 0.12  # a grid line takes at most this share of the cell (or tile) it borders
_GRID_MIN_WIDTH = 0.3  # points: thinner grid lines are left out, the cells are too small for them


ALLOWED_COLOR, MASKED_COLOR = "#2b6cb0", "#edf2f7"


FULL_TILE_COLOR, PARTIAL_TILE_COLOR, MASKED_PAIR_COLOR, SKIPPED_TILE_COLOR = "#2b6cb0", "#dd6b20", "#fbd38d", "#e2e8f0"


LIGHT_COLOR, DARK_COLOR = "#bee3f8", "#2c5282"


UNREACHED_COLOR = "#e2e8f0"


FUTURE_COLOR = "#ffffff"


class NotebookFigure(Figure):
    """A Figure that renders itself as PNG in Jupyter without pyplot's inline backend."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png")
        return buffer.getvalue()


def new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = NotebookFigure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def two_panels(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes, Axes]:
    """A top and a bottom panel sharing x: a new figure, or the given ax split in two."""
    if ax is None:
        fig = NotebookFigure(figsize=figsize, layout="constrained")
        top, bottom = fig.subplots(2, 1, sharex=True)
        return fig, top, bottom
    bottom = make_axes_locatable(ax).append_axes("bottom", size="100%", pad=0.5, sharex=ax)
    return ax.figure, ax, bottom


def side_by_side(ax: Axes | None, count: int, figsize: tuple[float, float]) -> tuple[Figure, list[Axes]]:
    """``count`` panels in a row: a new figure, or the given ax split into ``count``."""
    if ax is None:
        fig = NotebookFigure(figsize=figsize, layout="constrained")
        return fig, list(np.atleast_1d(fig.subplots(1, count)))
    divider = make_axes_locatable(ax)
    return ax.figure, [ax] + [divider.append_axes("right", size="100%", pad=0.9) for _ in range(count - 1)]


def to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.double() if x.is_floating_point() else x
        return x.numpy()
    return np.asarray(x)


def as_matrix(x, what: str) -> tuple[np.ndarray, str]:
    """A 2D array from a 2D, 3D (heads, q, k) or 4D (batch, heads, q, k) input, and a note on what was kept."""
    array = to_numpy(x)
    if array.ndim not in (2, 3, 4):
        raise ValueError(f"{what} must have shape (Nq, Nk), (H, Nq, Nk) or (B, H, Nq, Nk), got {array.shape}")
    if array.ndim == 2:
        return array, ""
    lead = array.ndim - 2
    return array[(0,) * lead], f"showing [{', '.join(['0'] * lead)}] of a {tuple(array.shape)} tensor"


def with_note(title: str, note: str) -> str:
    return f"{title}\n({note})" if note else title


def grid_line_width(ax: Axes, cells: int, span: int, most: float) -> float:
    """Width in points for lines every ``span`` cells across ``cells`` cells of ``ax``: at most
    ``most``, and at most a small share of the gap between two lines as drawn (so that lines never
    drown the cells or tiles between them); 0 when that leaves a hairline, and no line should be drawn.

    The gap is measured on the axes' current size; a constrained layout may shrink it a little.
    """
    box = ax.get_position().transformed(ax.figure.transFigure)  # display units (pixels)
    side = min(box.width, box.height) * 72 / ax.figure.dpi  # points; aspect "equal" fits the smaller side
    gap = side * span / max(cells, 1)
    width = min(most, _GRID_SHARE * gap)
    return width if width >= _GRID_MIN_WIDTH else 0.0


def heatmap(ax: Axes, matrix: np.ndarray, *, cell_grid: bool = True, **imshow_kw):
    """imshow with query rows down and key columns across, integer ticks and, for small matrices,
    thin lines between the cells (left out where the cells are too small to leave room for them)."""
    image = ax.imshow(matrix, interpolation="nearest", aspect="equal", **imshow_kw)
    ax.set_xlabel("key position")
    ax.set_ylabel("query position")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 4, 5, 8, 10]))
    n_rows, n_cols = matrix.shape[:2]
    width = grid_line_width(ax, max(n_rows, n_cols), 1, 0.5) if cell_grid else 0.0
    if width and max(n_rows, n_cols) <= _CELL_GRID_MAX:  # two line collections: cheaper than minor ticks
        ax.vlines(np.arange(1, n_cols) - 0.5, -0.5, n_rows - 0.5, colors="white", linewidth=width)
        ax.hlines(np.arange(1, n_rows) - 0.5, -0.5, n_cols - 0.5, colors="white", linewidth=width)
    return image


def colorbar(fig: Figure, image, ax: Axes, label: str, ticks: dict[float, str] | None = None):
    bar = fig.colorbar(image, ax=ax, shrink=0.85)
    bar.set_label(label)
    if ticks:
        bar.set_ticks(list(ticks), labels=list(ticks.values()))
    return bar
