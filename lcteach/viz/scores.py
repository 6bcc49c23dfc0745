"""Pictures of score_mods: the bias a score_mod adds to each pair, and how it maps raw scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lcteach.masks.evaluation import MaskMod, mask_name, materialize_mask
from lcteach.score_mods.evaluation import ScoreMod, materialize_scores
from lcteach.validation import check_nonnegative_int
from lcteach.viz.figures import UNREACHED_COLOR, colorbar, heatmap, new_axes, side_by_side


def plot_score_bias(
    score_mod: ScoreMod,
    n: int,
    *,
    heads: Sequence[int] = (0,),
    mask_mod: MaskMod | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """What ``score_mod`` adds to a zero score at each (query, key) pair, one panel per head in ``heads``.

    Pairs that ``mask_mod`` (if given) masks are grey: the softmax never sees them. For ALiBi
    this is -m_h (i - j): zero on the diagonal, falling with distance, steeper in head 0.
    Given ``ax``, it is split into one panel per head. O(len(heads) * n^2) memory.
    """
    heads = [check_nonnegative_int("each head", h) for h in heads]
    if not heads:
        raise ValueError("heads must name at least one head index, got an empty list")
    bias = materialize_scores(score_mod, n, heads=max(heads) + 1)[0].numpy()
    hidden = np.zeros((n, n), dtype=bool)
    if mask_mod is not None:
        hidden = ~materialize_mask(mask_mod, n)[0, 0].numpy()
    fig, panels = side_by_side(ax, len(heads), (5.5 * len(heads), 4.6))
    cmap = colormaps["viridis"].with_extremes(bad=UNREACHED_COLOR)
    for panel, h in zip(panels, heads, strict=True):
        shown = np.ma.masked_array(bias[h], hidden)
        image = heatmap(panel, shown, cmap=cmap)
        colorbar(fig, image, panel, "added to the score")
        panel.set_title(f"head {h} of {mask_name(score_mod)}\nbias from {shown.min():.3g} to {shown.max():.3g}")
    masked = f", masked by {mask_name(mask_mod)} (grey)" if mask_mod is not None else ""
    fig.suptitle(title or f"What {mask_name(score_mod)} adds to each score{masked}")
    return fig


def plot_score_curve(
    score_mod: ScoreMod,
    scores: torch.Tensor | None = None,
    *,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """The score after ``score_mod`` against the raw score, at b = h = q_idx = kv_idx = 0, with the
    identity (no score_mod) dashed. ``scores`` default: 401 values from -100 to 100 (float64)."""
    scores = torch.linspace(-100, 100, 401, dtype=torch.float64) if scores is None else scores.flatten()
    zero = torch.zeros((), dtype=torch.long)
    modified = torch.as_tensor(score_mod(scores, zero, zero, zero, zero)).broadcast_to(scores.shape)
    raw, out = scores.detach().double().numpy(), modified.detach().double().numpy()
    fig, ax = new_axes(ax, (6, 4.2))
    ax.plot(raw, raw, linestyle="--", color="grey", linewidth=1, label="no score_mod (identity)")
    ax.plot(raw, out, linewidth=2, label=mask_name(score_mod))
    ax.set_xlabel("raw score q·k / √d")
    ax.set_ylabel("score the softmax sees")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    ax.set_title(title or f"{mask_name(score_mod)}: scores in [{out.min():.3g}, {out.max():.3g}]")
    return fig
