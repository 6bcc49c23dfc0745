"""Pictures of the week-1 ideas: attention weights, masks, tiles, chunks, scaling, online softmax.

Every ``plot_*`` function is pure: it draws into the ``ax`` it is given, or into a new
Figure that pyplot does not manage, and returns that Figure. It never changes rcParams
or pyplot's current figure, so it is safe in loops, widgets and headless tests (Agg).
A returned Figure shows itself in Jupyter even when pyplot was never imported, and it is
freed like any other object once nothing refers to it (no ``plt.close`` needed).

Inputs may be torch tensors (any device, with or without grad) or array-likes.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator, NullFormatter
from mpl_toolkits.axes_grid1 import make_axes_locatable

from ._validation import check_positive_int
from .chunking import ChunkedProcessor
from .masks import MaskMod, materialize_mask
from .online_softmax import init_softmax_state, online_softmax_step
from .profiling import ScalingReport, format_bytes
from .tiled import _key_tiles, _query_blocks, _tile_mask

# Tile statuses returned by tile_status.
SKIPPED, PARTIAL, FULL = 0, 1, 2

_CELL_GRID_MAX = 32  # draw a line between cells up to this many rows/columns
_ALLOWED, _MASKED = "#2b6cb0", "#edf2f7"
_FULL_TILE, _PARTIAL_TILE, _MASKED_PAIR, _SKIPPED_TILE = "#2b6cb0", "#dd6b20", "#fbd38d", "#e2e8f0"
_LIGHT, _DARK = "#bee3f8", "#2c5282"


class _Figure(Figure):
    """A Figure that renders itself as PNG in Jupyter without pyplot's inline backend."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png")
        return buffer.getvalue()


# ---------------------------------------------------------------- helpers


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = _Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _two_panels(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes, Axes]:
    """A top and a bottom panel sharing x: a new figure, or the given ax split in two."""
    if ax is None:
        fig = _Figure(figsize=figsize, layout="constrained")
        top, bottom = fig.subplots(2, 1, sharex=True)
        return fig, top, bottom
    bottom = make_axes_locatable(ax).append_axes("bottom", size="100%", pad=0.5, sharex=ax)
    return ax.figure, ax, bottom


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.double() if x.is_floating_point() else x
        return x.numpy()
    return np.asarray(x)


def _matrix(x, what: str) -> tuple[np.ndarray, str]:
    """A 2D array from a 2D, 3D (heads, q, k) or 4D (batch, heads, q, k) input, and a note on what was kept."""
    array = _to_numpy(x)
    if array.ndim not in (2, 3, 4):
        raise ValueError(f"{what} must have shape (Nq, Nk), (H, Nq, Nk) or (B, H, Nq, Nk), got {array.shape}")
    if array.ndim == 2:
        return array, ""
    lead = array.ndim - 2
    return array[(0,) * lead], f"showing [{', '.join(['0'] * lead)}] of a {tuple(array.shape)} tensor"


def _with_note(title: str, note: str) -> str:
    return f"{title}\n({note})" if note else title


def _heatmap(ax: Axes, matrix: np.ndarray, *, cell_grid: bool = True, **imshow_kw):
    """imshow with query rows down and key columns across, integer ticks and, for small matrices, cell lines."""
    image = ax.imshow(matrix, interpolation="nearest", aspect="equal", **imshow_kw)
    ax.set_xlabel("key position")
    ax.set_ylabel("query position")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 4, 5, 8, 10]))
    n_rows, n_cols = matrix.shape[:2]
    if cell_grid and max(n_rows, n_cols) <= _CELL_GRID_MAX:  # two line collections: cheaper than minor ticks
        ax.vlines(np.arange(1, n_cols) - 0.5, -0.5, n_rows - 0.5, colors="white", linewidth=0.5)
        ax.hlines(np.arange(1, n_rows) - 0.5, -0.5, n_cols - 0.5, colors="white", linewidth=0.5)
    return image


def _colorbar(fig: Figure, image, ax: Axes, label: str, ticks: dict[float, str] | None = None):
    bar = fig.colorbar(image, ax=ax, shrink=0.85)
    bar.set_label(label)
    if ticks:
        bar.set_ticks(list(ticks), labels=list(ticks.values()))
    return bar


# ---------------------------------------------------------------- attention and masks


def plot_attention(weights, *, ax: Axes | None = None, title: str = "Attention weights", annotate: bool | None = None) -> Figure:
    """Heatmap of attention weights (Nq, Nk); of (H, Nq, Nk) or (B, H, Nq, Nk) input, head [0] / [0, 0] is shown.

    ``annotate`` writes each weight in its cell (default: when the matrix is at most 10 x 10).
    """
    matrix, note = _matrix(weights, "weights")
    fig, ax = _new_axes(ax, (6, 5))
    image = _heatmap(ax, matrix, cmap="viridis", vmin=0.0, vmax=max(float(np.nanmax(matrix)), 1e-12))
    _colorbar(fig, image, ax, "attention weight")
    if max(matrix.shape) <= 10 if annotate is None else annotate:
        middle = image.norm.vmax / 2
        for (i, j), value in np.ndenumerate(matrix):
            color = "black" if value > middle else "white"
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color=color)
    ax.set_title(_with_note(title, note))
    return fig


def plot_mask(mask, n: int | None = None, *, kv_len: int | None = None, ax: Axes | None = None, title: str | None = None) -> Figure:
    """Picture of an attention pattern: a bool mask (Nq, Nk) or (B, H, Nq, Nk), or a mask_mod materialised at length n.

    The default title names the pattern and its density, e.g. "sliding_window_4: 23% of pairs".
    """
    if callable(mask):
        if n is None:
            raise ValueError("plot_mask needs the sequence length n to draw a mask_mod")
        name = getattr(mask, "__name__", "mask_mod")
        mask = materialize_mask(mask, n, kv_len)[0, 0]
    else:
        name = "mask"
    matrix, note = _matrix(mask, "mask")
    if matrix.dtype != bool:
        raise TypeError(f"mask must be a bool tensor (True = attend) or a mask_mod callable, got dtype {matrix.dtype}")
    fig, ax = _new_axes(ax, (6, 5))
    image = _heatmap(ax, matrix, cmap=ListedColormap([_MASKED, _ALLOWED]), vmin=0, vmax=1)
    _colorbar(fig, image, ax, "may attend?", {0.25: "masked", 0.75: "attends"})
    ax.set_title(_with_note(title or f"{name}: {matrix.mean():.0%} of pairs", note))
    return fig


# ---------------------------------------------------------------- scaling

_METRICS = {"seconds": ("time (s)", "time_exponent"), "peak_bytes": ("peak memory (bytes)", "memory_exponent")}


def plot_scaling(
    *reports: ScalingReport,
    metric: str = "seconds",
    ax: Axes | None = None,
    title: str | None = None,
    guides: bool = True,
) -> Figure:
    """Log-log plot of ScalingReports: one line per report, its fitted slope in the legend.

    ``metric`` is "seconds" or "peak_bytes". ``guides`` adds dashed n^1 and n^2 reference
    lines through the first report's first point, so a slope can be read at a glance.
    """
    if not reports:
        raise ValueError("plot_scaling needs at least one ScalingReport")
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {tuple(_METRICS)}, got {metric!r}")
    ylabel, exponent = _METRICS[metric]
    fig, ax = _new_axes(ax, (6.5, 4.5))
    for report in reports:
        try:
            label = f"{report.label} (slope {getattr(report, exponent):.2f})"
        except ValueError:  # a single point or a zero value: no slope to fit
            label = report.label
        ax.plot(report.seq_lens, getattr(report, metric), marker="o", label=label)
    n0, y0 = reports[0].seq_lens[0], getattr(reports[0], metric)[0]
    if guides and y0 > 0:
        sizes = np.array([min(min(r.seq_lens) for r in reports), max(max(r.seq_lens) for r in reports)], dtype=float)
        for power, style, name in ((1, "--", "n"), (2, ":", "n²")):
            ax.plot(sizes, y0 * (sizes / n0) ** power, style, color="0.45", linewidth=1.2, label=f"∝ {name} (guide)", zorder=1)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    if metric == "peak_bytes":
        ax.set_yscale("log", base=2)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: format_bytes(value)))
        ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_yscale("log")
    ax.set_xlabel("sequence length n")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(title or f"How {'time' if metric == 'seconds' else 'peak memory'} grows with n (log-log)")
    return fig


# ---------------------------------------------------------------- tiles


def tile_status(
    n_q: int, n_k: int, block_q: int, block_k: int, *, causal: bool = False, mask_mod: MaskMod | None = None
) -> torch.Tensor:
    """Status of every (block_q, block_k) tile of the (n_q, n_k) score matrix, as tiled_attention sees it.

    Returns an int64 tensor (ceil(n_q / block_q), ceil(n_k / block_k)): SKIPPED (0) for a tile
    with no allowed pair (tiled_attention never computes it), PARTIAL (1) for a computed tile
    with some masked pairs, FULL (2) for a computed tile with every pair allowed.
    ``causal`` and ``mask_mod`` mean what they mean for tiled_attention (mask_mod sees b = h = 0).
    Uses tiled_attention's own tile walk, so the count is exactly the tiles it computes.
    Cost: one mask evaluation per computed tile, O(block_q * block_k) memory.
    """
    for name, value in (("n_q", n_q), ("n_k", n_k), ("block_q", block_q), ("block_k", block_k)):
        check_positive_int(name, value)
    probe = torch.empty(1, 1, 0, 0)  # the tile walk reads only batch, heads and device from q
    status = torch.full((-(-n_q // block_q), -(-n_k // block_k)), SKIPPED, dtype=torch.int64)
    for row, (i0, i1) in enumerate(_query_blocks(n_q, block_q)):
        for (_, _, j0, _), allowed in _key_tiles(probe, i0, i1, n_k, block_k, causal, mask_mod):
            status[row, j0 // block_k] = FULL if allowed is None or bool(allowed.all()) else PARTIAL
    return status


def _pattern_name(causal: bool, mask_mod: MaskMod | None) -> str:
    names = (["causal"] if causal else []) + ([getattr(mask_mod, "__name__", "mask_mod")] if mask_mod else [])
    return " & ".join(names) or "no mask"


def plot_tiles(
    n_q: int,
    n_k: int,
    block_q: int,
    block_k: int,
    *,
    causal: bool = False,
    mask_mod: MaskMod | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """The (n_q, n_k) score matrix cut into tiles, each coloured by what tiled_attention does with it.

    Blue: computed, every pair allowed. Orange: computed but partly masked (the light pairs
    are computed and then thrown away). Grey: skipped, never computed. Builds the full
    (n_q, n_k) mask for the picture, so keep n in the thousands at most.
    """
    status = tile_status(n_q, n_k, block_q, block_k, causal=causal, mask_mod=mask_mod)
    allowed = _tile_mask(torch.empty(1, 1, 0, 0), (0, n_q, 0, n_k), causal, mask_mod)
    allowed = torch.ones(n_q, n_k, dtype=torch.bool) if allowed is None else allowed.expand(1, 1, n_q, n_k)[0, 0]
    per_pair = status.repeat_interleave(block_q, 0)[:n_q].repeat_interleave(block_k, 1)[:, :n_k]
    # Colour index: 0 skipped, 1 masked pair in a partial tile, 2 allowed pair in a partial tile, 3 full tile.
    colour = torch.where(per_pair == PARTIAL, 1 + allowed.long(), torch.where(per_pair == FULL, 3, 0))
    fig, ax = _new_axes(ax, (8.8, 5.5))
    cmap = ListedColormap([_SKIPPED_TILE, _MASKED_PAIR, _PARTIAL_TILE, _FULL_TILE])
    _heatmap(ax, colour.numpy(), cell_grid=max(block_q, block_k) <= 8, cmap=cmap, vmin=-0.5, vmax=3.5)
    for axis, n, block, line in ((ax.xaxis, n_k, block_k, ax.axvline), (ax.yaxis, n_q, block_q, ax.axhline)):
        for edge in range(block, n, block):
            line(edge - 0.5, color="white", linewidth=1.5)
        if n <= 8 * block:  # few tiles: a tick at the start of each
            axis.set_major_locator(MultipleLocator(block))
    counts = {kind: int((status == kind).sum()) for kind in (FULL, PARTIAL, SKIPPED)}
    handles = [
        Patch(color=_FULL_TILE, label=f"computed, all pairs allowed ({counts[FULL]})"),
        Patch(color=_PARTIAL_TILE, label=f"computed, partly masked ({counts[PARTIAL]})"),
        Patch(color=_MASKED_PAIR, label="masked pair (computed, discarded)"),
        Patch(color=_SKIPPED_TILE, label=f"skipped: no allowed pair ({counts[SKIPPED]})"),
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", title="tile status")
    computed = counts[FULL] + counts[PARTIAL]
    default = (
        f"{_pattern_name(causal, mask_mod)}, {block_q}×{block_k} tiles:\n"
        f"{computed} of {status.numel()} tiles computed"
    )
    ax.set_title(title or default)
    return fig


# ---------------------------------------------------------------- chunks


def left_context(processor: ChunkedProcessor, n: int) -> torch.Tensor:
    """For each of n positions, how many earlier positions its output has seen (int64, shape (n,)).

    That is the position minus the start of the chunk whose output it keeps ("first",
    "center"); for "mean", the smallest such value among the chunks averaged. Without
    chunking position p would see p earlier positions.
    """
    positions = torch.arange(n)
    context = positions.clone()
    for span in processor.spans(n):
        lo, hi = (span.start, span.end) if processor.resolve == "mean" else (span.keep_start, span.keep_end)
        context[lo:hi] = torch.minimum(context[lo:hi], positions[lo:hi] - span.start)
    return context


def plot_chunks(processor: ChunkedProcessor, n: int, *, ax: Axes | None = None, title: str | None = None) -> Figure:
    """The chunks of ``processor`` over n positions (top) and the left context each position keeps (bottom).

    Light bars are the positions a chunk processes; dark bars the outputs it contributes
    (for "mean" every processed position contributes to an average). Given ``ax``, it is
    split into the two panels.
    """
    spans = processor.spans(n)
    fig, top, bottom = _two_panels(ax, (8, 6))
    for index, span in enumerate(spans):
        keep = (span.start, span.end) if processor.resolve == "mean" else (span.keep_start, span.keep_end)
        # Position p is the cell [p - 0.5, p + 0.5), as in the panel below.
        top.barh(index, span.end - span.start, left=span.start - 0.5, height=0.7, color=_LIGHT, edgecolor=_DARK, linewidth=0.8)
        top.barh(index, keep[1] - keep[0], left=keep[0] - 0.5, height=0.35, color=_DARK)
    top.set_ylim(len(spans) - 0.4, -0.6)  # chunk 0 on top
    top.yaxis.set_major_locator(MaxNLocator(integer=True))
    top.set_ylabel("chunk")
    kept = "output averaged" if processor.resolve == "mean" else "output kept"
    top.legend(
        handles=[Patch(facecolor=_LIGHT, edgecolor=_DARK, label="positions processed"), Patch(color=_DARK, label=kept)],
        loc="upper right", fontsize="small",
    )
    wasted = sum(s.end - s.start for s in spans) - n
    top.set_title(
        title
        or f"chunk_size={processor.chunk_size}, overlap={processor.overlap}, resolve={processor.resolve!r}:\n"
        f"{len(spans)} chunks, {wasted} positions recomputed"
    )
    positions = np.arange(n)
    bottom.plot(positions, positions, "--", color="0.5", linewidth=1, label="without chunking (p)")
    context = left_context(processor, n).numpy()
    label = "with chunking" + (" (least of the chunks averaged)" if processor.resolve == "mean" else "")
    bottom.step(positions, context, where="mid", color=_DARK, linewidth=1.8, label=label, gid="left_context")
    if processor.overlap:
        bottom.axhline(processor.overlap, color="#dd6b20", linestyle=":", linewidth=1.2, label=f"overlap = {processor.overlap}")
    bottom.set_xlim(-0.5, n - 0.5)
    bottom.set_ylim(bottom=0)
    bottom.set_xlabel("position")
    bottom.set_ylabel("left context\n(earlier positions seen)")
    bottom.legend(loc="upper left", fontsize="small")
    top.tick_params(labelbottom=True)
    return fig


# ---------------------------------------------------------------- online softmax


def plot_online_softmax(scores, block_size: int, *, ax: Axes | None = None, title: str | None = None) -> Figure:
    """Running max m (top) and running normaliser l (bottom) of the online softmax over a 1D score vector.

    The scores are folded in blocks of ``block_size`` with lcteach.online_softmax; dashed
    lines mark the exact max and sum of exp(s - max). l drops whenever m grows (it is
    rescaled by exp(m_old - m_new)); the dotted line l * exp(m - m_final) shows the same
    partial sum on the final scale, which only grows, up to the exact value.
    """
    check_positive_int("block_size", block_size)
    s = torch.as_tensor(scores).detach().cpu().to(torch.float64)
    if s.dim() != 1 or s.numel() == 0:
        raise ValueError(f"scores must be a non-empty 1D vector, got shape {tuple(s.shape)}")
    n = s.numel()
    state = init_softmax_state((1,), 1, dtype=s.dtype, device=s.device)
    ones = torch.ones(n, 1, dtype=s.dtype)
    starts = list(range(0, n, block_size))
    running_m, running_l = [], []
    for j0 in starts:
        state = online_softmax_step(*state, s[None, j0 : j0 + block_size], ones[j0 : j0 + block_size])
        running_m.append(state[0].item())
        running_l.append(state[1].item())
    exact_m = s.max().item()
    exact_l = torch.exp(s - exact_m).sum().item()
    m, l = np.array(running_m), np.array(running_l)
    edges = np.array([*starts, n]) - 0.5
    fig, top, bottom = _two_panels(ax, (8, 6))
    top.plot(np.arange(n), s.numpy(), "o", color="0.6", markersize=3.5, label="scores s_j")
    top.plot(edges, np.append(m, m[-1]), drawstyle="steps-post", color=_DARK, linewidth=2, label="running max m", gid="running_max")
    top.axhline(exact_m, color="#dd6b20", linestyle="--", linewidth=1.2, label=f"exact max = {exact_m:.3g}")
    bottom.plot(edges, np.append(l, l[-1]), drawstyle="steps-post", color=_DARK, linewidth=2, label="running l (relative to running m)", gid="running_sum")
    rescaled = l * np.exp(m - exact_m)
    bottom.plot(edges, np.append(rescaled, rescaled[-1]), drawstyle="steps-post", color="#2f855a", linestyle=":", linewidth=1.8, label="l · exp(m − m_final)")
    bottom.axhline(exact_l, color="#dd6b20", linestyle="--", linewidth=1.2, label=f"exact Σ exp(s − max) = {exact_l:.3g}")
    for panel in (top, bottom):
        for edge in edges[1:-1]:
            panel.axvline(edge, color="0.85", linewidth=0.8, zorder=0)
        panel.legend(fontsize="small", loc="best")
    top.set_ylabel("score / running max m")
    bottom.set_ylabel("running normaliser l")
    bottom.set_xlabel(f"key position (blocks of {block_size}, grey lines = block borders)")
    bottom.set_ylim(bottom=0)
    top.tick_params(labelbottom=True)
    top.set_title(title or f"Online softmax over {len(starts)} blocks of {block_size} scores:\nrunning max m and normaliser l after each block")
    return fig
