"""lcteach.viz: week-2 pictures are labelled, pure, and draw the library's own numbers."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch.nn.attention.flex_attention import and_masks, or_masks  # noqa: E402

from lcteach.analysis import (
    complexity_table,  # noqa: E402
    hop_counts,  # noqa: E402
)
from lcteach.masks import (  # noqa: E402
    causal_mask,
    combine,
    generate_bigbird,
    generate_global,
    generate_sliding_window,
    generate_strided,
    materialize_mask,
    pattern_flops,
)
from lcteach.score_mods import generate_alibi, generate_softcap, materialize_scores  # noqa: E402
from lcteach.viz import (  # noqa: E402
    plot_complexity,
    plot_composition,
    plot_hop_counts,
    plot_pattern,
    plot_score_bias,
    plot_score_curve,
)

WINDOW, STRIDED = generate_sliding_window(3), generate_strided(4)
PLOTS = {
    "pattern": lambda ax=None: plot_pattern(generate_bigbird(3, 1, 1, 4, 16, seed=0), 16, ax=ax),
    "composition": lambda ax=None: plot_composition(WINDOW, STRIDED, 12, "and", ax=ax),
    "hop_counts": lambda ax=None: plot_hop_counts(WINDOW, 12, 3, ax=ax),
    "complexity": lambda ax=None: plot_complexity(complexity_table([256, 1024, 4096]), ax=ax),
    "score_bias": lambda ax=None: plot_score_bias(generate_alibi(4), 12, heads=(0, 3), mask_mod=causal_mask, ax=ax),
    "score_curve": lambda ax=None: plot_score_curve(generate_softcap(20.0), ax=ax),
}


def _image(ax):
    return np.ma.asarray(ax.images[0].get_array())


@pytest.mark.parametrize("name", PLOTS)
def test_plot_is_labelled_pure_and_draws_into_a_given_ax(name):
    figures, params = plt.get_fignums(), dict(matplotlib.rcParams)
    fig = PLOTS[name]()
    assert isinstance(fig, Figure) and fig.axes[0].get_title().strip()
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert all(ax.get_xlabel() for ax in panels if ax.images) and any(ax.get_xlabel() for ax in panels)
    assert all(ax.get_ylabel() for ax in fig.axes)  # colorbars included
    fig.draw_without_rendering()
    host = Figure()
    ax = host.add_subplot()
    assert PLOTS[name](ax=ax) is host
    host.draw_without_rendering()
    assert plt.get_fignums() == figures and dict(matplotlib.rcParams) == params


def test_plot_pattern_draws_the_mask_with_density_and_flops_saved():
    mask_mod = generate_bigbird(3, 1, 1, 4, 16, seed=0)
    fig = plot_pattern(mask_mod, 16)
    expected = materialize_mask(mask_mod, 16)[0, 0].numpy()
    assert np.array_equal(_image(fig.axes[0]).astype(bool), expected)
    cost = pattern_flops(mask_mod, 16, progress=False)
    title = fig.axes[0].get_title()
    assert (
        mask_mod.__name__ in title and f"{cost.density:.1%}" in title and f"{cost.savings:.0%} saved vs dense" in title
    )


@pytest.mark.parametrize("op, combinator", [("and", and_masks), ("or", or_masks)])
def test_plot_composition_shows_a_b_and_their_combination(op, combinator):
    fig = plot_composition(WINDOW, generate_global(2), 12, op)
    images = [_image(ax).astype(bool) for ax in fig.axes if ax.images]
    expected = [
        materialize_mask(m, 12)[0, 0].numpy()
        for m in (WINDOW, generate_global(2), combinator(WINDOW, generate_global(2)))
    ]
    assert len(images) == 3 and all(np.array_equal(i, e) for i, e in zip(images, expected, strict=True))
    assert fig.axes[2].get_title().startswith(f"A {op} B") and op in fig.get_suptitle()
    with pytest.raises(ValueError, match="op must be one of"):
        combine(WINDOW, STRIDED, "xor")


def test_plot_hop_counts_colours_hops_and_masks_unreached_pairs():
    fig = plot_hop_counts(WINDOW, 12, 3)
    image, hops = _image(fig.axes[0]), hop_counts(WINDOW, 12, 3).numpy()
    assert np.array_equal(image.mask, hops < 0) and np.array_equal(image.filled(-1), hops)
    assert f"{int((hops < 0).sum())} of 144 pairs not reached" in fig.axes[0].get_title()
    assert "hops" in fig.axes[1].get_ylabel()  # the colorbar


def test_plot_complexity_one_line_per_method_on_log_log_axes():
    rows = complexity_table([256, 1024, 4096])
    fig = plot_complexity(rows)
    flops, memory = fig.axes[:2]
    methods = list(dict.fromkeys(row.method for row in rows))
    assert [line.get_label() for line in flops.get_lines()] == methods
    dense = next(line for line in memory.get_lines() if line.get_label() == "dense")
    assert list(dense.get_ydata()) == [row.total_bytes for row in rows if row.method == "dense"]
    assert flops.get_xscale() == flops.get_yscale() == memory.get_yscale() == "log"
    with pytest.raises(ValueError, match="at least one"):
        plot_complexity([])


def test_plot_score_bias_draws_the_bias_of_each_head_and_hides_masked_pairs():
    fig = plot_score_bias(generate_alibi(4), 10, heads=(0, 3), mask_mod=causal_mask)
    panels = [ax for ax in fig.axes if ax.images]
    images = [_image(ax) for ax in panels]
    bias = materialize_scores(generate_alibi(4), 10, heads=4)[0].numpy()
    future = np.triu(np.ones((10, 10), dtype=bool), 1)
    for image, h in zip(images, (0, 3), strict=True):
        assert np.array_equal(image.mask, future) and np.allclose(image.filled(0), np.where(future, 0, bias[h]))
    assert (
        len(panels) == 2 and "head 3 of alibi_4_heads" in panels[1].get_title() and "causal_mask" in fig.get_suptitle()
    )
    with pytest.raises(ValueError, match="heads must name at least one head"):
        plot_score_bias(generate_alibi(4), 10, heads=())


def test_plot_score_curve_draws_the_score_mod_against_the_identity():
    fig = plot_score_curve(generate_softcap(20.0))
    identity, capped = fig.axes[0].get_lines()
    x = identity.get_xdata()
    assert np.array_equal(identity.get_ydata(), x) and np.allclose(capped.get_ydata(), 20 * np.tanh(x / 20))
    assert "softcap_20" in fig.axes[0].get_title()
