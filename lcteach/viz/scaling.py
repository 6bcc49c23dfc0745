"""Log-log pictures of how time and memory grow with n."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from lcteach.measure.scaling import ScalingReport
from lcteach.measure.units import format_bytes
from lcteach.viz.figures import new_axes

_METRICS = {
    "seconds": ("time (s)", "time_exponent"),
    "peak_bytes": ("peak memory (bytes)", "memory_exponent"),
    "tokens_per_second": ("throughput (tokens/s)", "throughput_exponent"),
}
# Reference slopes per metric: (power, line style, name). Throughput n / time is flat for a
# linear-time method and falls like 1/n for a quadratic one.
_GUIDES = {
    "seconds": ((1, "--", "n"), (2, ":", "n²")),
    "peak_bytes": ((1, "--", "n"), (2, ":", "n²")),
    "tokens_per_second": ((0, "--", "n⁰: O(n) time"), (-1, ":", "1/n: O(n²) time")),
}
_TITLES = {"seconds": "time", "peak_bytes": "peak memory", "tokens_per_second": "throughput"}


def plot_scaling(
    *reports: ScalingReport,
    metric: str = "seconds",
    ax: Axes | None = None,
    title: str | None = None,
    guides: bool = True,
) -> Figure:
    """Log-log plot of ScalingReports: one line per report, its fitted slope in the legend.

    ``metric`` is "seconds", "peak_bytes" or "tokens_per_second" (n / seconds). ``guides``
    adds dashed and dotted reference lines through the first report's first point, so a slope
    can be read at a glance: n^1 and n^2 for time and memory, n^0 and n^-1 for throughput (the
    throughput of a linear-time method stays flat, that of a quadratic one halves per doubling).
    """
    if not reports:
        raise ValueError("plot_scaling needs at least one ScalingReport")
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {tuple(_METRICS)}, got {metric!r}")
    ylabel, exponent = _METRICS[metric]
    fig, ax = new_axes(ax, (6.5, 4.5))
    for report in reports:
        try:
            label = f"{report.label} (slope {round(getattr(report, exponent), 2) + 0.0:.2f})"  # + 0.0: no "-0.00"
        except ValueError:  # a single point or a zero value: no slope to fit
            label = report.label
        ax.plot(report.seq_lens, getattr(report, metric), marker="o", label=label)
    n0, y0 = reports[0].seq_lens[0], getattr(reports[0], metric)[0]
    if guides and 0 < y0 < np.inf:
        sizes = np.array([min(min(r.seq_lens) for r in reports), max(max(r.seq_lens) for r in reports)], dtype=float)
        for power, style, name in _GUIDES[metric]:
            ax.plot(
                sizes,
                y0 * (sizes / n0) ** power,
                style,
                color="0.45",
                linewidth=1.2,
                label=f"∝ {name} (guide)",
                zorder=1,
            )
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
    verb = "changes" if metric == "tokens_per_second" else "grows"
    ax.set_title(title or f"How {_TITLES[metric]} {verb} with n (log-log)")
    return fig
