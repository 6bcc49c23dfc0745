"""lcteach.viz.block_patterns: labelled, pure figures that draw the data they are given."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from lcteach.viz import plot_layouts, plot_recall_vs_sparsity, plot_training_loss  # noqa: E402

LAYOUT = torch.eye(6, dtype=torch.bool) | torch.eye(6, dtype=torch.bool).roll(2, 1)
TARGETS = [2, 3, 4, 5, 1, 0]  # rows 0-3 keep their target (the rolled diagonal), rows 4-5 do not
PLOTS = {
    "loss": lambda ax=None: plot_training_loss([2.0, 1.0, 0.5, 0.4], ax=ax),
    "recall": lambda ax=None: plot_recall_vs_sparsity([0.5, 0.75], {"a": [0.9, 0.6], "b": [0.8, 0.3]}, ax=ax),
    "layouts": lambda ax=None: plot_layouts({"x": LAYOUT, "y": LAYOUT[None, None]}, targets=TARGETS, ax=ax),
}


@pytest.mark.parametrize("name", PLOTS)
def test_plot_is_a_labelled_figure_that_lays_out_headless(name):
    fig = PLOTS[name]()
    assert isinstance(fig, Figure)
    assert fig.axes[0].get_title().strip() or fig.get_suptitle()
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
    fig.draw_without_rendering()


@pytest.mark.parametrize("name", PLOTS)
def test_plot_draws_into_the_given_ax_and_changes_no_global_state(name):
    fig, ax = plt.subplots()
    rc = dict(matplotlib.rcParams.copy())
    figures = plt.get_fignums()
    try:
        assert PLOTS[name](ax=ax) is fig
        assert ax.get_title()
        assert plt.get_fignums() == figures
        assert dict(matplotlib.rcParams) == rc
    finally:
        plt.close(fig)


def test_recall_lines_hold_the_values():
    fig = plot_recall_vs_sparsity([0.5, 0.75, 0.9], {"learned": [0.9, 0.8, 0.7], "window": [0.5, 0.2, 0.1]})
    line = next(line for line in fig.axes[0].get_lines() if line.get_gid() == "window")
    np.testing.assert_allclose(line.get_xdata(), [0.5, 0.75, 0.9])
    np.testing.assert_allclose(line.get_ydata(), [0.5, 0.2, 0.1])


def test_loss_curve_holds_the_losses_and_uses_a_log_axis():
    fig = plot_training_loss(torch.tensor([3.0, 2.0, 1.0]))
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), [3.0, 2.0, 1.0])
    assert fig.axes[0].get_yscale() == "log"
    assert plot_training_loss([1.0, 0.0]).axes[0].get_yscale() == "linear"


def test_layout_panels_count_the_kept_targets():
    fig = plot_layouts({"x": LAYOUT}, targets=TARGETS)
    assert fig.axes[0].get_title() == "x\n4 of 6 needed blocks kept"
    image = fig.axes[0].get_images()[0].get_array()
    np.testing.assert_array_equal(np.asarray(image), LAYOUT.numpy().astype(int))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: plot_training_loss([]), "at least one"),
        (lambda: plot_recall_vs_sparsity([0.5], {}), "at least one"),
        (lambda: plot_recall_vs_sparsity([0.5, 0.6], {"a": [0.1]}), "1 values for 2"),
        (lambda: plot_layouts({}), "at least one"),
        (lambda: plot_layouts({"x": LAYOUT}, targets=[0]), "targets"),
    ],
)
def test_bad_inputs_name_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_log_axis_labels_a_few_minor_ticks():
    label = plot_training_loss([2.0, 0.2]).axes[0].yaxis.get_minor_formatter()
    assert [label(v) for v in (0.2, 0.3, 0.4, 0.5, 0.7, 20.0, 0.0)] == ["0.2", "0.3", "", "0.5", "", "20", ""]
