"""lcteach.viz.scaling: the throughput view of plot_scaling (time and memory are tested in test_plots.py)."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from lcteach.measure import ScalingReport  # noqa: E402
from lcteach.viz import plot_scaling  # noqa: E402

SIZES = (1024, 2048, 4096, 8192)
QUADRATIC = ScalingReport("dense", SIZES, tuple(1e-9 * n**2 for n in SIZES), tuple(8 * n * n for n in SIZES))
LINEAR = ScalingReport("banded", SIZES, tuple(1e-6 * n for n in SIZES), tuple(256 * n for n in SIZES))


def test_throughput_plot_draws_n_over_seconds_with_slopes_and_guides():
    fig = plot_scaling(QUADRATIC, LINEAR, metric="tokens_per_second")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    lines = ax.get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(), [n / (1e-9 * n**2) for n in SIZES])
    np.testing.assert_allclose(lines[1].get_ydata(), [1e6] * len(SIZES))
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels[:2] == ["dense (slope -1.00)", "banded (slope 0.00)"]
    guides = [line for line, label in zip(lines, labels) if "guide" in label]
    assert len(guides) == 2
    y0 = QUADRATIC.tokens_per_second[0]
    np.testing.assert_allclose(guides[0].get_ydata(), [y0, y0])  # flat: linear time
    np.testing.assert_allclose(guides[1].get_ydata(), [y0, y0 * SIZES[0] / SIZES[-1]])  # 1/n: quadratic time
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert ax.get_ylabel() == "throughput (tokens/s)" and ax.get_xlabel() == "sequence length n"
    assert ax.get_title() == "How throughput changes with n (log-log)"


def test_throughput_plot_takes_a_title_and_skips_guides_for_an_instant_run():
    instant = ScalingReport("instant", (64, 128), (0.0, 1e-3), (1, 2))
    ax = plot_scaling(instant, metric="tokens_per_second", title="custom").axes[0]
    assert ax.get_title() == "custom"
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["instant"]  # no slope through inf
    with pytest.raises(ValueError, match="metric"):
        plot_scaling(LINEAR, metric="tokens")
