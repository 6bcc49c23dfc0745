"""lcteach.viz: week-2 pictures and the analysis plots are labelled, pure, and draw the library's own numbers."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch.nn.attention.flex_attention import and_masks, or_masks  # noqa: E402

from lcteach.analysis import (
    complexity_table,  # noqa: E402
    flash_attention_traffic,  # noqa: E402
    hop_counts,  # noqa: E402
    standard_attention_traffic,  # noqa: E402
)
from lcteach.experiments import load_recall_results  # noqa: E402
from lcteach.masks import (  # noqa: E402
    causal_mask,
    combine,
    generate_bigbird,
    generate_global,
    generate_sliding_window,
    generate_strided,
    generate_symmetric_window,
    materialize_mask,
    pattern_flops,
    recall_patterns,
)
from lcteach.score_mods import generate_alibi, generate_softcap, materialize_scores  # noqa: E402
from lcteach.viz import (  # noqa: E402
    plot_complexity,
    plot_composition,
    plot_hop_counts,
    plot_memory_traffic,
    plot_pattern,
    plot_reach_by_distance,
    plot_recall_accuracy,
    plot_score_bias,
    plot_score_curve,
)

WINDOW, STRIDED = generate_sliding_window(3), generate_strided(4)
PLOTS = {
    "pattern": lambda ax=None: plot_pattern(generate_bigbird(3, 1, 1, 4, 16, seed=0), 16, ax=ax),
    "composition": lambda ax=None: plot_composition(WINDOW, STRIDED, 12, "and", ax=ax),
    "hop_counts": lambda ax=None: plot_hop_counts(WINDOW, 12, 3, ax=ax),
    "complexity": lambda ax=None: plot_complexity(complexity_table([256, 1024, 4096]), ax=ax),
    "memory_traffic": lambda ax=None: plot_memory_traffic(
        [256, 4096], 64, [2**k for k in range(8, 20)], marks={"H100 SM": 116_736}, ax=ax
    ),
    "score_bias": lambda ax=None: plot_score_bias(generate_alibi(4), 12, heads=(0, 3), mask_mod=causal_mask, ax=ax),
    "score_curve": lambda ax=None: plot_score_curve(generate_softcap(20.0), ax=ax),
    "reach_by_distance": lambda ax=None: plot_reach_by_distance(recall_patterns(16, block_size=4), 16, 3, ax=ax),
    "recall_accuracy": lambda ax=None: plot_recall_accuracy(load_recall_results(), recall_patterns(64), ax=ax),
}


def _image(ax):
    return np.ma.asarray(ax.images[0].get_array())


def _image_at(ax, index):
    return np.ma.asarray(ax.images[index].get_array())


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
    assert len(fig.axes) == 3 and len(fig.legends) == 1  # one legend for the three panels, no colour bars
    with pytest.raises(ValueError, match="op must be one of"):
        combine(WINDOW, STRIDED, "xor")


def test_plot_hop_counts_colours_hops_and_masks_unreached_pairs():
    fig = plot_hop_counts(WINDOW, 12, 3)
    image, hops = _image(fig.axes[0]), hop_counts(WINDOW, 12, 3).numpy()
    assert np.array_equal(image.mask, hops < 0) and np.array_equal(image.filled(-1), hops)
    assert "hops" in fig.axes[1].get_ylabel()  # the colorbar


def test_plot_hop_counts_does_not_count_the_future_of_a_causal_pattern():
    """A causal pattern's future (j > i) is no pair that depth could reach: drawn apart, not counted."""
    fig = plot_hop_counts(WINDOW, 12, 3)
    hops = hop_counts(WINDOW, 12, 3).numpy()
    future = np.triu(np.ones((12, 12), dtype=bool), 1)
    overlay = _image_at(fig.axes[0], 1)
    assert np.array_equal(~overlay.mask, future)  # the second image covers exactly the future
    unreached = int(((hops < 0) & ~future).sum())
    assert unreached > 0 and f"{unreached} of 78 possible pairs not reached" in fig.axes[0].get_title()
    assert "(causal)" in fig.axes[0].get_title()
    labels = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert any("future" in label for label in labels) and any("not reached" in label for label in labels)
    reached = plot_hop_counts(WINDOW, 12)  # every past pair within 11 layers
    assert "0 of 78 possible pairs not reached" in reached.axes[0].get_title()


def test_plot_hop_counts_of_a_bidirectional_pattern_counts_every_pair():
    symmetric = generate_symmetric_window(3)
    fig = plot_hop_counts(symmetric, 12, 3)
    hops = hop_counts(symmetric, 12, 3).numpy()
    assert len(fig.axes[0].images) == 1 and "(bidirectional)" in fig.axes[0].get_title()
    assert f"{int((hops < 0).sum())} of 144 possible pairs not reached" in fig.axes[0].get_title()
    forced = plot_hop_counts(symmetric, 12, 3, causal=True)  # told causal: the upper triangle is set apart
    assert len(forced.axes[0].images) == 2


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


def test_plot_complexity_lines_stay_apart_and_causal_ones_are_dashed():
    """Nine methods, some of them on top of each other (the sliding window and Longformer): every line
    has its own colour and hollow marker, so none hides another, and the line style says causal or not."""
    rows = complexity_table([256, 1024, 4096])
    flops = plot_complexity(rows).axes[0]
    lines = flops.get_lines()
    styles = [(line.get_color(), line.get_marker()) for line in lines]
    assert len(set(c for c, _ in styles)) == len(lines) and len(set(m for _, m in styles)) == len(lines)
    assert all(line.get_markerfacecolor() == "none" for line in lines)
    causal = {row.method: row.causal for row in rows}
    for line in lines:
        assert line.get_linestyle() == ("--" if causal[line.get_label()] else "-"), line.get_label()
    assert "dashed: causal" in flops.get_legend().get_title().get_text()


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


def test_plot_composition_panels_are_large():
    fig = plot_composition(WINDOW, generate_global(2), 64, "or")
    fig.draw_without_rendering()
    sizes = [ax.get_window_extent().width / fig.dpi for ax in fig.axes]
    assert len(sizes) == 3 and min(sizes) >= 3.5, f"each panel should be at least 3.5 inches wide, got {sizes}"


def test_plot_reach_by_distance_colours_the_query_row_of_the_hop_counts():
    patterns = recall_patterns(32, window=15, block_size=8)
    fig = plot_reach_by_distance(patterns, 32, 2)
    image = _image(fig.axes[0])
    for row, mask_mod in enumerate(patterns.values()):
        hops = hop_counts(mask_mod, 32, 2)[-1].flip(0)[1:].numpy()
        assert np.array_equal(image.mask[row], hops < 0) and np.array_equal(image.filled(-1)[row], hops)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == list(patterns)
    with pytest.raises(ValueError, match="at least one pattern"):
        plot_reach_by_distance({}, 32)


def test_plot_recall_accuracy_draws_every_result_and_marks_distances_without_a_path():
    shipped = load_recall_results()
    patterns = recall_patterns(shipped.task.seq_len)
    fig = plot_recall_accuracy(shipped, patterns)
    panels = [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]
    assert [ax.get_title() for ax in panels] == shipped.patterns
    window = panels[shipped.patterns.index("window_31")]
    expected = np.array([shipped.result("window_31", depth).accuracy for depth in shipped.depths])
    assert np.allclose(_image(window), expected)
    crosses = window.get_lines()  # one line of crosses per depth: the distances beyond 15 per layer
    assert [len(line.get_xdata()) for line in crosses] == [63 - 15 * depth for depth in shipped.depths]
    with pytest.raises(ValueError, match="none of the results' patterns"):
        plot_recall_accuracy(shipped, {"other": causal_mask})


def test_plot_memory_traffic_draws_the_closed_forms_against_on_chip_size():
    sizes = [2**k for k in range(6, 21)]
    fig = plot_memory_traffic([4096, 65_536], 64, sizes, marks={"A100 SM": 83_968, "CPU L2": 524_288})
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}
    assert list(lines) == [
        "standard, n = 4,096",
        "tiled (flash), n = 4,096",
        "standard, n = 65,536",
        "tiled (flash), n = 65,536",
    ]
    for n in (4096, 65_536):
        flash, standard = lines[f"tiled (flash), n = {n:,}"], lines[f"standard, n = {n:,}"]
        assert list(flash.get_xdata()) == sizes
        assert list(flash.get_ydata()) == [flash_attention_traffic(n, 64, sram_elements=m).elements for m in sizes]
        assert set(standard.get_ydata()) == {standard_attention_traffic(n, 64).elements}
        assert standard.get_linestyle() == "--" and flash.get_linestyle() == "-"
    marks = {line.get_gid(): line.get_xdata()[0] for line in ax.get_lines() if line.get_gid()}
    assert marks == {"mark: A100 SM": 83_968, "mark: CPU L2": 524_288}
    assert {text.get_text() for text in ax.texts} == {"A100 SM", "CPU L2"}
    assert ax.get_xscale() == ax.get_yscale() == "log" and "d = 64" in ax.get_title()
    assert "on-chip memory" in ax.get_xlabel() and "main memory" in ax.get_ylabel()


def test_plot_memory_traffic_follows_the_loop_order_and_rejects_empty_input():
    sizes = [2**k for k in range(8, 16)]
    fig = plot_memory_traffic([1024], 32, sizes, loop_order="q_outer")
    flash = next(line for line in fig.axes[0].get_lines() if line.get_label().startswith("tiled"))
    expected = [flash_attention_traffic(1024, 32, sram_elements=m, loop_order="q_outer").elements for m in sizes]
    assert list(flash.get_ydata()) == expected
    with pytest.raises(ValueError, match="at least one n"):
        plot_memory_traffic([], 64, sizes)
    with pytest.raises(ValueError, match="sram_elements must be an integer >= 1"):
        plot_memory_traffic([1024], 64, sizes, marks={"nothing": 0})
