"""lcteach.viz: every plot is labelled, pure (no pyplot or rcParams change) and draws the right data."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch.nn.attention.flex_attention import and_masks  # noqa: E402

from lcteach.chunking import RESOLUTIONS, ChunkedProcessor, left_context  # noqa: E402
from lcteach.kernels import FULL, PARTIAL, SKIPPED, tile_status
from lcteach.masks import causal_mask, generate_sliding_window, materialize_mask  # noqa: E402
from lcteach.measure import ScalingReport  # noqa: E402
from lcteach.viz import plot_attention, plot_chunks, plot_mask, plot_online_softmax, plot_scaling, plot_tiles

SIZES = (128, 256, 512, 1024)
DENSE = ScalingReport("dense", SIZES, tuple(1e-9 * n**2 for n in SIZES), tuple(8 * n * n for n in SIZES))
TILED = ScalingReport("tiled", SIZES, tuple(1e-7 * n for n in SIZES), tuple(256 * n for n in SIZES))
SCORES = torch.randn(30, generator=torch.Generator().manual_seed(0)) * 3

PLOTS = {
    "attention": lambda ax=None: plot_attention(torch.softmax(torch.randn(2, 3, 6, 6), -1), ax=ax),
    "mask": lambda ax=None: plot_mask(generate_sliding_window(4), 16, ax=ax),
    "scaling": lambda ax=None: plot_scaling(DENSE, TILED, ax=ax),
    "scaling_memory": lambda ax=None: plot_scaling(DENSE, TILED, metric="peak_bytes", ax=ax),
    "tiles": lambda ax=None: plot_tiles(64, 64, 16, 16, causal=True, ax=ax),
    "chunks": lambda ax=None: plot_chunks(ChunkedProcessor(16, 4), 64, ax=ax),
    "online_softmax": lambda ax=None: plot_online_softmax(SCORES, 4, ax=ax),
}


def _line(fig, gid):
    return next(line for ax in fig.axes for line in ax.get_lines() if line.get_gid() == gid)


@pytest.mark.parametrize("name", PLOTS)
def test_plot_is_a_labelled_figure_that_lays_out_headless(name):
    fig = PLOTS[name]()
    assert isinstance(fig, Figure)
    main = fig.axes[0]
    assert main.get_title().strip()
    assert any(ax.get_xlabel() for ax in fig.axes) and all(ax.get_ylabel() for ax in fig.axes)
    fig.draw_without_rendering()  # layout and every artist, as savefig would, minus the pixels


@pytest.mark.parametrize("name", PLOTS)
def test_plot_draws_into_the_given_ax_and_changes_no_global_state(name):
    fig, ax = plt.subplots()
    rc = dict(matplotlib.rcParams.copy())
    figures = plt.get_fignums()
    try:
        assert PLOTS[name](ax=ax) is ax.figure
        assert ax.get_title()
        PLOTS[name]()  # a new figure of its own, outside pyplot
        assert plt.get_fignums() == figures
        assert plt.gcf() is fig
        assert dict(matplotlib.rcParams.copy()) == rc
    finally:
        plt.close(fig)


def test_figures_show_themselves_in_jupyter_without_pyplot():
    assert plot_mask(causal_mask, 8)._repr_png_().startswith(b"\x89PNG")


def test_plot_attention_shows_batch0_head0_and_says_so():
    weights = torch.softmax(torch.randn(2, 3, 5, 7), -1).requires_grad_()
    fig = plot_attention(weights)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), weights[0, 0].detach().numpy(), rtol=1e-6)
    assert "[0, 0]" in ax.get_title() and (ax.get_xlabel(), ax.get_ylabel()) == ("key position", "query position")
    assert fig.axes[1].get_ylabel() == "attention weight"  # the colour bar
    assert "[0]" in plot_attention(weights[0].detach()).axes[0].get_title()
    with pytest.raises(ValueError, match="shape"):
        plot_attention(torch.ones(4))


@pytest.mark.parametrize("mask_mod", [causal_mask, generate_sliding_window(3)])
def test_plot_mask_image_is_the_materialised_mask(mask_mod):
    ax = plot_mask(mask_mod, 12).axes[0]
    expected = materialize_mask(mask_mod, 12)[0, 0]
    assert np.array_equal(np.asarray(ax.images[0].get_array(), dtype=bool), expected.numpy())
    assert ax.get_title() == f"{mask_mod.__name__}: {expected.float().mean():.0%} of pairs"


def test_plot_mask_title_and_inputs():
    assert plot_mask(generate_sliding_window(4), 16).axes[0].get_title() == "sliding_window_4: 23% of pairs"
    mask = torch.ones(1, 2, 4, 4, dtype=torch.bool).tril()
    title = plot_mask(mask).axes[0].get_title()
    assert title.startswith("mask: 62% of pairs") and "[0, 0]" in title
    assert plot_mask(mask[0, 0], title="mine").axes[0].get_title() == "mine"
    with pytest.raises(ValueError, match="length n"):
        plot_mask(causal_mask)
    with pytest.raises(TypeError, match="bool"):
        plot_mask(torch.ones(3, 3))


def test_plot_scaling_legend_carries_slopes_and_guides_are_optional():
    ax = plot_scaling(DENSE, TILED).axes[0]
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels[:2] == ["dense (slope 2.00)", "tiled (slope 1.00)"]
    assert sum("guide" in label for label in labels) == 2
    assert ax.get_xscale() == ax.get_yscale() == "log" and ax.get_ylabel() == "time (s)"
    ax = plot_scaling(DENSE, metric="peak_bytes", guides=False).axes[0]
    assert ax.get_ylabel() == "peak memory (bytes)" and len(ax.get_lines()) == 1
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), DENSE.peak_bytes)
    single = ScalingReport("one", (64,), (0.1,), (100,))
    assert plot_scaling(single).axes[0].get_legend().get_texts()[0].get_text() == "one"
    with pytest.raises(ValueError, match="metric"):
        plot_scaling(DENSE, metric="flops")
    with pytest.raises(ValueError, match="at least one"):
        plot_scaling()


def _brute_status(n_q, n_k, block_q, block_k, causal, mask_mod):
    mods = [m for m in (causal_mask if causal else None, mask_mod) if m is not None]
    allowed = materialize_mask(and_masks(*mods), n_q, n_k)[0, 0] if mods else torch.ones(n_q, n_k, dtype=torch.bool)
    rows = []
    for i0 in range(0, n_q, block_q):
        row = []
        for j0 in range(0, n_k, block_k):
            tile = allowed[i0 : i0 + block_q, j0 : j0 + block_k]
            row.append(FULL if bool(tile.all()) else PARTIAL if bool(tile.any()) else SKIPPED)
        rows.append(row)
    return torch.tensor(rows)


@settings(max_examples=40, deadline=None, database=None)
@given(
    n_q=st.integers(1, 40),
    n_k=st.integers(1, 40),
    block_q=st.integers(1, 16),
    block_k=st.integers(1, 16),
    causal=st.booleans(),
    window=st.one_of(st.none(), st.integers(1, 20)),
)
def test_tile_status_matches_brute_force_over_the_materialised_mask(n_q, n_k, block_q, block_k, causal, window):
    mask_mod = None if window is None else generate_sliding_window(window)
    status = tile_status(n_q, n_k, block_q, block_k, causal=causal, mask_mod=mask_mod)
    assert status.dtype == torch.int64
    assert torch.equal(status, _brute_status(n_q, n_k, block_q, block_k, causal, mask_mod))


def test_plot_tiles_counts_the_computed_tiles():
    assert plot_tiles(256, 256, 32, 32, causal=True).axes[0].get_title().endswith("36 of 64 tiles computed")
    window = generate_sliding_window(8)
    computed = int((tile_status(96, 80, 16, 8, mask_mod=window) > 0).sum())
    ax = plot_tiles(96, 80, 16, 8, mask_mod=window).axes[0]
    assert f"{computed} of 60 tiles computed" in ax.get_title() and "sliding_window_8" in ax.get_title()
    assert ax.images[0].get_array().shape == (96, 80)
    assert len(ax.get_legend().get_texts()) == 4


def _white_share(fig):
    """Share of the pure-white pixels inside the first axes, as drawn (the tile edges are the only white)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3]
    x0, y0, x1, y1 = (round(v) for v in fig.axes[0].get_window_extent().extents)
    height = pixels.shape[0]
    inside = pixels[height - y1 + 2 : height - y0 - 2, x0 + 2 : x1 - 2]
    return float((inside == 255).all(axis=-1).mean())


@pytest.mark.parametrize(("n", "block"), [(1024, 8), (1024, 16), (512, 8)])
def test_tile_edges_never_drown_small_tiles(n, block):
    fig = plot_tiles(n, n, block, block, causal=True)
    assert _white_share(fig) < 0.02, "the white lines between tiles cover the tiles"


def test_tile_edges_show_between_large_tiles_thinner_than_the_tiles():
    fig = plot_tiles(256, 256, 32, 32, causal=True)
    edges = [line for line in fig.axes[0].get_lines() if line.get_gid() == "tile_edge"]
    assert len(edges) == 2 * 7 and 0 < _white_share(fig) < 0.1
    assert all(0 < line.get_linewidth() <= 1.5 for line in edges)


def test_left_context_is_position_minus_the_start_of_the_chunk_it_comes_from():
    n = 50
    for resolve in RESOLUTIONS:
        processor = ChunkedProcessor(12, 5, resolve)
        expected = []
        for p in range(n):
            if resolve == "mean":
                expected.append(min(p - s.start for s in processor.spans(n) if s.start <= p < s.end))
            else:
                expected.append(next(p - s.start for s in processor.spans(n) if s.keep_start <= p < s.keep_end))
        assert left_context(processor, n).tolist() == expected
    context = left_context(ChunkedProcessor(12, 5), n)
    assert int(context[12:].min()) == 5  # "first": every position after the first chunk sees >= overlap


@pytest.mark.parametrize("resolve", RESOLUTIONS)
def test_plot_chunks_draws_one_bar_pair_per_chunk_and_the_left_context(resolve):
    processor = ChunkedProcessor(10, 3, resolve)
    fig = plot_chunks(processor, 40)
    spans = processor.spans(40)
    assert len(fig.axes[0].patches) == 2 * len(spans)
    processed = sorted((bar.get_x() + 0.5, bar.get_x() + bar.get_width() + 0.5) for bar in fig.axes[0].patches[::2])
    assert processed == [(s.start, s.end) for s in spans]
    np.testing.assert_array_equal(_line(fig, "left_context").get_ydata(), left_context(processor, 40).numpy())
    assert resolve in fig.axes[0].get_title()


@pytest.mark.parametrize("block_size", [1, 4, 7, 30, 64])
def test_plot_online_softmax_converges_to_the_exact_max_and_sum(block_size):
    fig = plot_online_softmax(SCORES, block_size)
    exact_max = SCORES.double().max()
    running_max = _line(fig, "running_max").get_ydata()
    running_sum = _line(fig, "running_sum").get_ydata()
    assert running_max[-1] == pytest.approx(float(exact_max))
    assert running_sum[-1] == pytest.approx(float(torch.exp(SCORES.double() - exact_max).sum()))
    assert np.all(np.diff(running_max) >= 0)
    assert len(running_max) == -(-30 // block_size) + 1  # one step per block, closed at the end


def test_plot_online_softmax_rejects_bad_input():
    with pytest.raises(ValueError, match="1D"):
        plot_online_softmax(torch.ones(2, 3), 2)
    with pytest.raises(ValueError, match="block_size"):
        plot_online_softmax([1.0, 2.0], 0)
