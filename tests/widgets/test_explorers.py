"""lcteach.widgets: setting a control's value redraws once, with the right picture and numbers."""

import gc
import weakref

import matplotlib

matplotlib.use("Agg")

import ipywidgets  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import lcteach.widgets.chunks  # noqa: E402
from lcteach.analysis import hop_counts  # noqa: E402
from lcteach.chunking import RESOLUTIONS  # noqa: E402
from lcteach.masks import (  # noqa: E402
    SPARSE_PATTERNS,
    causal_mask,
    generate_document_mask,
    generate_global,  # noqa: E402
    generate_prefix_lm,
    generate_sliding_window,
    generate_sparse_transformer,
    materialize_mask,
    random_document_lengths,
)
from lcteach.widgets import (
    Explorer,
    chunk_explorer,
    composition_explorer,
    mask_explorer,
    reachability_explorer,
    tiling_explorer,
    window_explorer,
)

EXPLORERS = {
    "window": (window_explorer, {"n": 24, "pattern": "causal", "window": 7}),
    "tiling": (tiling_explorer, {"n": 64, "block_q": 16, "block_k": 8, "causal": False, "window": 5}),
    "chunk": (chunk_explorer, {"n": 40, "chunk_size": 8, "overlap": 2, "resolve": "center"}),
}
SPARSE = {  # set in this order: the block size before the random blocks it makes room for
    "n": 32,
    "window": 3,
    "stride": 4,
    "global_tokens": 3,
    "block_size": 4,
    "random_blocks": 3,
    "prefix": 5,
    "documents": 5,
}
SPARSE_EXPLORERS = {
    "mask": (mask_explorer, {"pattern": "strided"}),
    "composition": (composition_explorer, {"A": "strided", "op": "and", "B": "BigBird"}),
    "reachability": (reachability_explorer, {"pattern": "global", "layers": 3}),
}


def _image(explorer):
    return np.asarray(explorer.figure.axes[0].images[0].get_array())


def _set(explorer, name, value):
    """Set a control and return the figure drawn before it."""
    before = explorer.figure
    explorer.controls[name].value = value
    return before


@pytest.mark.parametrize("name", EXPLORERS)
def test_explorer_shape_and_every_control_redraws(name):
    make, changes = EXPLORERS[name]
    explorer = make()
    assert isinstance(explorer, ipywidgets.VBox) and type(explorer).__name__ == "Explorer"
    assert set(explorer.controls) == set(changes)
    assert isinstance(explorer.output, ipywidgets.Output) and isinstance(explorer.info, ipywidgets.HTML)
    assert isinstance(explorer.figure, Figure) and explorer.info.value
    figures = plt.get_fignums()
    for control, value in changes.items():
        before = _set(explorer, control, value)
        assert explorer.figure is not before, control
        assert explorer.figure.axes[0].get_title()
    assert plt.get_fignums() == figures  # nothing left open in pyplot


def test_window_explorer_mask_follows_the_controls():
    explorer = window_explorer(n=16, window=3)
    assert not explorer.controls["window"].disabled
    assert _image(explorer).shape == (16, 16) and "sliding_window_3" in explorer.figure.axes[0].get_title()
    _set(explorer, "pattern", "causal")
    assert explorer.controls["window"].disabled
    assert np.array_equal(_image(explorer).astype(bool), materialize_mask(causal_mask, 16)[0, 0].numpy())
    assert "136 of 256" in explorer.info.value and "46.9%" in explorer.info.value
    _set(explorer, "n", 40)
    assert _image(explorer).shape == (40, 40)
    _set(explorer, "pattern", "full")
    assert explorer.controls["window"].disabled and _image(explorer).all()
    assert "saved vs dense: <b>0.0%</b>" in explorer.info.value
    _set(explorer, "pattern", "sliding window")
    assert not explorer.controls["window"].disabled
    before = _image(explorer)
    _set(explorer, "window", 9)
    assert _image(explorer).sum() > before.sum()


def test_tiling_explorer_counts_follow_the_controls():
    explorer = tiling_explorer(n=256, block=32)
    assert "36 of 64" in explorer.info.value and "4.0 KiB vs 256.0 KiB" in explorer.info.value
    _set(explorer, "causal", False)
    assert "64 of 64" in explorer.info.value
    _set(explorer, "window", 32)
    assert "15 of 64" in explorer.info.value and "15 of 64 tiles computed" in explorer.figure.axes[0].get_title()
    _set(explorer, "block_k", 64)
    assert "of 32" in explorer.info.value and "8.0 KiB" in explorer.info.value
    _set(explorer, "n", 64)
    assert explorer.controls["window"].max == 64 and explorer.controls["window"].value == 32
    _set(explorer, "n", 16)
    assert explorer.controls["window"].value == 16  # clamped to n


def test_chunk_explorer_overlap_max_follows_chunk_size_with_one_redraw(monkeypatch):
    calls = []
    monkeypatch.setattr(lcteach.widgets.chunks, "plot_chunks", lambda *a, **k: calls.append(a) or Figure())
    explorer = chunk_explorer(n=64, chunk_size=16, overlap=4)
    assert explorer.controls["overlap"].max == 15 and list(explorer.controls["resolve"].options) == list(RESOLUTIONS)
    _set(explorer, "overlap", 15)
    calls.clear()
    _set(explorer, "chunk_size", 8)
    assert explorer.controls["overlap"].max == 7 and explorer.controls["overlap"].value == 7
    assert len(calls) == 1 and calls[0][0].overlap == 7  # one redraw, with the clamped overlap
    _set(explorer, "chunk_size", 32)
    assert explorer.controls["overlap"].max == 31 and explorer.controls["overlap"].value == 7


def test_chunk_explorer_info_numbers():
    explorer = chunk_explorer(n=64, chunk_size=16, overlap=4)
    info = explorer.info.value
    assert "chunks: <b>5</b>" in info and "recomputed: <b>16 " in info and "<b>4 positions</b>" in info
    _set(explorer, "overlap", 0)
    assert "<b>0 positions</b>" in explorer.info.value
    _set(explorer, "n", 16)
    assert "nothing lost" in explorer.info.value
    for resolve in RESOLUTIONS:
        _set(explorer, "resolve", resolve)
        assert resolve in explorer.figure.axes[0].get_title()
    with pytest.raises(ValueError, match="overlap"):
        chunk_explorer(chunk_size=4, overlap=4)


def test_old_figures_are_freed():
    explorer = chunk_explorer()
    first = weakref.ref(explorer.figure)
    for n in (20, 30, 40):
        _set(explorer, "n", n)
    gc.collect()
    assert first() is None


def test_explorer_helper_builds_from_controls_and_render():
    slider = ipywidgets.IntSlider(value=2)
    explorer = Explorer({"k": slider}, lambda k: (Figure(), f"k={k}"))
    slider.value = 5
    assert explorer.info.value == "k=5" and explorer.values == {"k": 5}


@pytest.mark.parametrize("name", SPARSE_EXPLORERS)
def test_sparse_explorers_redraw_for_every_control_and_stay_fast(name):
    make, changes = SPARSE_EXPLORERS[name]
    explorer = make(pattern="BigBird") if name != "composition" else make(a="BigBird", b="sliding window")
    assert set(explorer.controls) == set(changes) | set(SPARSE)
    for control, value in {**changes, **SPARSE}.items():
        before = _set(explorer, control, value)
        assert explorer.figure is not None and explorer.figure is not before, control
        assert explorer.figure.axes[0].get_title() and "Cannot" not in explorer.info.value


def test_mask_explorer_draws_each_pattern_with_its_density():
    explorer = mask_explorer(n=32, pattern="global", global_tokens=2)
    expected = materialize_mask(generate_global(2), 32)[0, 0].numpy()
    assert np.array_equal(_image(explorer).astype(bool), expected)
    assert f"{expected.sum():,} of 1,024" in explorer.info.value and f"{1 - expected.mean():.1%}" in explorer.info.value
    assert explorer.controls["stride"].disabled and not explorer.controls["global_tokens"].disabled
    seen = set()
    for pattern in SPARSE_PATTERNS:
        _set(explorer, "pattern", pattern)
        assert explorer.figure is not None, explorer.info.value
        seen.add(explorer.figure.axes[0].get_title())
    assert len(seen) == len(SPARSE_PATTERNS)


@pytest.mark.parametrize(
    "make, changes, message",
    [
        (mask_explorer, {"pattern": "symmetric window", "window": 4}, "must be odd"),
        (composition_explorer, {"B": "BigBird", "window": 6}, "must be odd"),
        (reachability_explorer, {"pattern": "BigBird", "window": 8}, "must be odd"),
    ],
)
def test_invalid_values_show_only_the_message(make, changes, message):
    """An impossible value leaves the message alone: the old picture is removed, not left under it."""
    explorer = make()
    assert len(explorer.output.outputs) == 1 and "image/png" in explorer.output.outputs[0]["data"]
    for control, value in changes.items():
        _set(explorer, control, value)
    assert explorer.figure is None and "Cannot draw this" in explorer.info.value and message in explorer.info.value
    assert explorer.output.outputs == ()  # no picture at all, so no stale one
    _set(explorer, "window", 5)
    assert explorer.figure is not None and "Cannot" not in explorer.info.value  # back once the values are valid
    assert len(explorer.output.outputs) == 1 and explorer.output.outputs[0]["output_type"] == "display_data"


def test_the_picture_is_the_figure_as_png():
    import base64

    explorer = mask_explorer(n=32)
    png = base64.b64decode(explorer.output.outputs[0]["data"]["image/png"])
    assert png.startswith(b"\x89PNG")
    width, height = (int(v) for v in explorer.figure.get_size_inches() * explorer.figure.dpi)
    assert png[16:24] == width.to_bytes(4, "big") + height.to_bytes(4, "big")  # the PNG header's size: this figure


@pytest.mark.parametrize("make", [mask_explorer, composition_explorer, reachability_explorer])
def test_block_size_offers_only_the_divisors_of_n(make):
    explorer = make()
    block, n = explorer.controls["block_size"], explorer.controls["n"]
    assert isinstance(block, ipywidgets.SelectionSlider)
    assert list(block.options) == [b for b in range(1, n.value + 1) if n.value % b == 0]
    _set(explorer, "n", 48)
    assert list(block.options) == [1, 2, 3, 4, 6, 8, 12, 16, 24, 48]
    assert block.value in block.options and "Cannot" not in explorer.info.value
    with pytest.raises(ipywidgets.widgets.trait_types.traitlets.TraitError):
        block.value = 5  # not offered: a block size that does not divide n cannot be chosen


def test_moving_n_keeps_the_block_size_valid_and_says_what_changed():
    explorer = mask_explorer(pattern="BigBird", n=64, block_size=32, random_blocks=2)
    _set(explorer, "n", 48)  # 32 does not divide 48: the largest divisor below it is 24
    assert explorer.controls["block_size"].value == 24 and explorer.controls["random_blocks"].value == 2
    assert "block size 32 does not divide n = 48: set to 24" in explorer.info.value
    assert "Cannot" not in explorer.info.value and explorer.figure is not None
    _set(explorer, "n", 32)  # 24 does not divide 32: 16, and a row of 32 holds 2 blocks of 16
    assert explorer.controls["block_size"].value == 16 and explorer.controls["random_blocks"].max == 2
    _set(explorer, "block_size", 32)  # one block per row: the random blocks are lowered, and the note says so
    assert explorer.controls["random_blocks"].value == 1
    assert "random blocks lowered from 2 to 1: a row of n = 32 holds only 1 block of 32" in explorer.info.value
    _set(explorer, "window", 7)  # nothing changed by the sync: no note
    assert "lowered" not in explorer.info.value and "does not divide" not in explorer.info.value


def test_explorers_refuse_impossible_starting_values():
    with pytest.raises(ValueError, match="block_size must divide n = 256"):
        mask_explorer(block_size=7)
    with pytest.raises(ValueError, match="random_blocks must be at most n / block_size = 4"):
        composition_explorer(n=64, block_size=16, random_blocks=5)


def test_chunk_explorer_says_when_it_lowers_the_overlap():
    explorer = chunk_explorer(n=64, chunk_size=16, overlap=12)
    _set(explorer, "chunk_size", 8)
    assert explorer.controls["overlap"].value == 7
    assert "overlap lowered from 12 to 7: it must be less than chunk_size = 8" in explorer.info.value
    _set(explorer, "n", 40)
    assert "lowered" not in explorer.info.value


def test_tiling_explorer_says_when_it_lowers_the_window():
    explorer = tiling_explorer(n=256, block=32, window=100)
    _set(explorer, "n", 64)
    assert explorer.controls["window"].value == 64 and "window lowered from 100 to n = 64" in explorer.info.value


def test_composition_explorer_combines_with_and_or():
    explorer = composition_explorer(a="sliding window", b="global", op="or", n=16, window=3, global_tokens=1)
    images = [np.asarray(ax.images[0].get_array()) for ax in explorer.figure.axes if ax.images]
    assert np.array_equal(images[2].astype(bool), images[0].astype(bool) | images[1].astype(bool))
    _set(explorer, "op", "and")
    images = [np.asarray(ax.images[0].get_array()) for ax in explorer.figure.axes if ax.images]
    assert np.array_equal(images[2].astype(bool), images[0].astype(bool) & images[1].astype(bool))
    assert "A and B" in explorer.info.value


def test_reachability_explorer_hops_and_minimal_layers():
    explorer = reachability_explorer(pattern="sliding window", n=16, layers=2, window=3)
    hops = hop_counts(generate_sliding_window(3), 16, 2).numpy()
    assert np.array_equal(np.ma.asarray(explorer.figure.axes[0].images[0].get_array()).filled(-1), hops)
    assert "full reach: <b>8</b>" in explorer.info.value and "within 2 layers: <b>no</b>" in explorer.info.value
    _set(explorer, "layers", 8)
    assert "within 8 layers: <b>yes</b>" in explorer.info.value
    _set(explorer, "pattern", "strided")
    assert "full reach: <b>never</b>" in explorer.info.value


def test_reachability_explorer_has_the_sparse_transformer():
    """Window + stride (Child et al., 2019): two layers reach every earlier key."""
    explorer = reachability_explorer(pattern="Sparse Transformer", n=64, layers=3, stride=8)
    assert explorer.controls["window"].disabled and not explorer.controls["stride"].disabled
    hops = hop_counts(generate_sparse_transformer(8), 64, 3).numpy()
    assert np.array_equal(np.ma.asarray(explorer.figure.axes[0].images[0].get_array()).filled(-1), hops)
    assert (
        "full reach: <b>2</b>" in explorer.info.value and "sparse_transformer_8" in explorer.figure.axes[0].get_title()
    )
    assert "0 of 2,080 possible pairs not reached" in explorer.figure.axes[0].get_title()  # the future is not counted
    _set(explorer, "stride", 1)  # a window of 1 and every key: causal attention
    assert "full reach: <b>1</b>" in explorer.info.value


def test_mask_explorer_draws_prefix_lm_and_packed_documents():
    explorer = mask_explorer(n=32, pattern="prefix-LM", prefix=6, documents=3, seed=2)
    assert np.array_equal(_image(explorer).astype(bool), materialize_mask(generate_prefix_lm(6), 32)[0, 0].numpy())
    assert not explorer.controls["prefix"].disabled and explorer.controls["documents"].disabled
    _set(explorer, "prefix", 12)
    assert np.array_equal(_image(explorer).astype(bool), materialize_mask(generate_prefix_lm(12), 32)[0, 0].numpy())
    _set(explorer, "pattern", "packed documents")
    assert explorer.controls["prefix"].disabled and not explorer.controls["documents"].disabled
    documents = generate_document_mask(random_document_lengths(32, 3, seed=2), causal_mask)
    assert np.array_equal(_image(explorer).astype(bool), materialize_mask(documents, 32)[0, 0].numpy())
    _set(explorer, "documents", 5)
    five = generate_document_mask(random_document_lengths(32, 5, seed=2), causal_mask)
    assert np.array_equal(_image(explorer).astype(bool), materialize_mask(five, 32)[0, 0].numpy())
    assert five.__name__ in explorer.figure.axes[0].get_title()
