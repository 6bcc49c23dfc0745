"""Pictures of attention weights and of the online softmax's running state."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lcteach.kernels.online_softmax import init_softmax_state, online_softmax_step
from lcteach.validation import check_positive_int
from lcteach.viz.figures import DARK_COLOR, as_matrix, colorbar, heatmap, new_axes, two_panels, with_note


def plot_attention(
    weights, *, ax: Axes | None = None, title: str = "Attention weights", annotate: bool | None = None
) -> Figure:
    """Heatmap of attention weights (Nq, Nk); of (H, Nq, Nk) or (B, H, Nq, Nk) input, head [0] / [0, 0] is shown.

    ``annotate`` writes each weight in its cell (default: when the matrix is at most 10 x 10).
    """
    matrix, note = as_matrix(weights, "weights")
    fig, ax = new_axes(ax, (6, 5))
    image = heatmap(ax, matrix, cmap="viridis", vmin=0.0, vmax=max(float(np.nanmax(matrix)), 1e-12))
    colorbar(fig, image, ax, "attention weight")
    if max(matrix.shape) <= 10 if annotate is None else annotate:
        middle = image.norm.vmax / 2
        for (i, j), value in np.ndenumerate(matrix):
            color = "black" if value > middle else "white"
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color=color)
    ax.set_title(with_note(title, note))
    return fig


def plot_online_softmax(scores, block_size: int, *, ax: Axes | None = None, title: str | None = None) -> Figure:
    """Running max m (top) and running normaliser l (bottom) of the online softmax over a 1D score vector.

    The scores are folded in blocks of ``block_size`` with lcteach.kernels.online_softmax; dashed
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
    fig, top, bottom = two_panels(ax, (8, 6))
    top.plot(np.arange(n), s.numpy(), "o", color="0.6", markersize=3.5, label="scores s_j")
    top.plot(
        edges,
        np.append(m, m[-1]),
        drawstyle="steps-post",
        color=DARK_COLOR,
        linewidth=2,
        label="running max m",
        gid="running_max",
    )
    top.axhline(exact_m, color="#dd6b20", linestyle="--", linewidth=1.2, label=f"exact max = {exact_m:.3g}")
    bottom.plot(
        edges,
        np.append(l, l[-1]),
        drawstyle="steps-post",
        color=DARK_COLOR,
        linewidth=2,
        label="running l (relative to running m)",
        gid="running_sum",
    )
    rescaled = l * np.exp(m - exact_m)
    bottom.plot(
        edges,
        np.append(rescaled, rescaled[-1]),
        drawstyle="steps-post",
        color="#2f855a",
        linestyle=":",
        linewidth=1.8,
        label="l · exp(m − m_final)",
    )
    bottom.axhline(
        exact_l, color="#dd6b20", linestyle="--", linewidth=1.2, label=f"exact Σ exp(s − max) = {exact_l:.3g}"
    )
    for panel in (top, bottom):
        for edge in edges[1:-1]:
            panel.axvline(edge, color="0.85", linewidth=0.8, zorder=0)
        panel.legend(fontsize="small", loc="best")
    top.set_ylabel("score / running max m")
    bottom.set_ylabel("running normaliser l")
    bottom.set_xlabel(f"key position (blocks of {block_size}, grey lines = block borders)")
    bottom.set_ylim(bottom=0)
    top.tick_params(labelbottom=True)
    top.set_title(
        title
        or f"Online softmax over {len(starts)} blocks of {block_size} scores:\nrunning max m and normaliser l after each block"
    )
    return fig
