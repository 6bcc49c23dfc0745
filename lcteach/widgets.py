"""Interactive explorers for JupyterLab: sliders and menus over lcteach.plots.

Each ``*_explorer()`` returns an :class:`Explorer`, a VBox that shows its controls, a
line of numbers (``.info``) and the picture (``.output``). Changing a control's value,
by hand or by setting ``.value`` in code, redraws at once. The explorers hold no logic of
their own: the pictures come from lcteach.plots and the numbers from the library.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

import ipywidgets as widgets
import torch
from IPython.display import clear_output, display
from matplotlib.figure import Figure

from ._validation import check_blocks
from .chunking import RESOLUTIONS, ChunkedProcessor
from .masks import MaskMod, causal_mask, generate_sliding_window, materialize_mask
from .pattern_plots import (
    COMBINE,
    combine,
    plot_composition,
    plot_hop_counts,
    plot_pattern,
)
from .patterns import (
    generate_bigbird,
    generate_block_sparse,
    generate_global,
    generate_random_blocks,
    generate_strided,
    generate_symmetric_window,
    pattern_density,
    pattern_flops,
)
from .plots import left_context, plot_chunks, plot_mask, plot_tiles, tile_status
from .profiling import format_bytes
from .reachability import minimal_layers_for_full_reach

Render = Callable[..., tuple[Figure, str]]
Controls = dict[str, widgets.ValueWidget]


class Explorer(widgets.VBox):
    """Controls, an info line and a picture; redraws whenever a control's value changes.

    ``controls`` maps names to widgets; ``render(**values)`` returns (Figure, info HTML).
    ``sync(controls)``, if given, adjusts dependent controls (limits, enabled state)
    before each redraw; changes it makes do not trigger redraws of their own.
    Attributes: ``controls``, ``output`` (ipywidgets.Output), ``info`` (ipywidgets.HTML),
    ``figure`` (the last Figure drawn; None while the values are invalid).

    A ValueError from ``render`` (an impossible combination of values, e.g. a block size
    that does not divide n) is shown as a message in ``info`` instead of a picture.
    """

    def __init__(self, controls: Controls, render: Render, sync: Callable[[Controls], None] | None = None):
        self.controls = dict(controls)
        self.output = widgets.Output()
        self.info = widgets.HTML()
        self.figure: Figure | None = None
        self._render, self._sync, self._syncing = render, sync, False
        bar = widgets.HBox(list(self.controls.values()), layout=widgets.Layout(flex_flow="row wrap"))
        super().__init__([bar, self.info, self.output])
        for control in self.controls.values():
            control.observe(self._changed, names="value")
        self._changed()

    @property
    def values(self) -> dict[str, object]:
        return {name: control.value for name, control in self.controls.items()}

    def _changed(self, change=None) -> None:
        if self._syncing:
            return
        if self._sync is not None:
            self._syncing = True
            try:
                self._sync(self.controls)
            finally:
                self._syncing = False
        self.redraw()

    def redraw(self) -> None:
        """Render the current values: new figure and info, the old figure closed."""
        old = self.figure
        try:
            self.figure, self.info.value = self._render(**self.values)
        except ValueError as error:  # the library's message says what is wrong and why
            self.figure = None
            self.info.value = f'<span style="color:#c53030">Cannot draw this: {escape(str(error))}</span>'
        with self.output:
            clear_output(wait=True)
            if self.figure is not None:
                display(self.figure)
        if old is not None:
            import matplotlib.pyplot as plt  # here, so that importing lcteach does not import pyplot

            plt.close(old)  # frees it if pyplot manages it; lcteach.plots figures are freed when dropped anyway


def _slider(name: str, value: int, low: int, high: int, step: int = 1) -> widgets.IntSlider:
    return widgets.IntSlider(
        value=value, min=low, max=max(high, value), step=step, description=name,
        continuous_update=False, style={"description_width": "initial"},
    )


def _dropdown(name: str, options, value) -> widgets.Dropdown:
    return widgets.Dropdown(options=list(options), value=value, description=name, style={"description_width": "initial"})


def _info(*items: tuple[str, str]) -> str:
    return " &nbsp;·&nbsp; ".join(f"{label}: <b>{value}</b>" for label, value in items)


# ---------------------------------------------------------------- masks

PATTERNS = ("full", "causal", "sliding window")


def full(b, h, q_idx, kv_idx):
    """Every query attends to every key (no mask)."""
    return (q_idx >= 0) & (kv_idx >= 0)


def _pattern(pattern: str, window: int):
    return {"full": full, "causal": causal_mask}.get(pattern) or generate_sliding_window(window)


def window_explorer(n: int = 32, window: int = 4, *, pattern: str = "sliding window") -> Explorer:
    """Pick a pattern (full, causal, sliding window), a length and a window; see the mask and what it saves.

    The window slider is active only for the sliding window. Info: allowed pairs, density,
    and the share of score FLOPs a mask-aware kernel saves against dense attention.
    """
    controls = {
        "pattern": _dropdown("pattern", PATTERNS, pattern),
        "n": _slider("n", n, 4, 128),
        "window": _slider("window", window, 1, 64),
    }

    def sync(c: Controls) -> None:
        c["window"].disabled = c["pattern"].value != "sliding window"

    def render(pattern: str, n: int, window: int):
        mask_mod = _pattern(pattern, window)
        allowed = int(materialize_mask(mask_mod, n).sum())
        density = allowed / n**2
        info = _info(
            ("allowed pairs", f"{allowed:,} of {n * n:,}"),
            ("density", f"{density:.1%}"),
            ("score FLOPs saved vs dense", f"{1 - density:.1%}"),
        )
        return plot_mask(mask_mod, n), info

    return Explorer(controls, render, sync)


# ---------------------------------------------------------------- tiles


def tiling_explorer(n: int = 256, block: int = 32, *, causal: bool = True, window: int = 0) -> Explorer:
    """Cut an n x n score matrix into block_q x block_k tiles and see which tiles tiled attention computes.

    ``window`` 0 means no window; w > 0 adds a sliding window of w keys. Info: tiles
    computed of all tiles, and the memory of one score tile against the dense n x n matrix (float32).
    """
    controls = {
        "n": _slider("n", n, 16, 1024, 16),
        "block_q": _slider("block_q", block, 8, 256, 8),
        "block_k": _slider("block_k", block, 8, 256, 8),
        "causal": widgets.Checkbox(value=causal, description="causal", indent=False),
        "window": _slider("window", window, 0, n),
    }

    def sync(c: Controls) -> None:
        c["window"].max = c["n"].value  # a window of n or more is plain causal

    def render(n: int, block_q: int, block_k: int, causal: bool, window: int):
        mask_mod = generate_sliding_window(window) if window else None
        status = tile_status(n, n, block_q, block_k, causal=causal, mask_mod=mask_mod)
        computed, tile_bytes, dense_bytes = int((status > 0).sum()), block_q * block_k * 4, n * n * 4
        info = _info(
            ("tiles computed", f"{computed} of {status.numel()} ({computed / status.numel():.0%})"),
            ("peak score-tile memory", f"{format_bytes(tile_bytes)} vs {format_bytes(dense_bytes)} dense ({dense_bytes / tile_bytes:,.0f}× less)"),
        )
        return plot_tiles(n, n, block_q, block_k, causal=causal, mask_mod=mask_mod), info

    return Explorer(controls, render, sync)


# ---------------------------------------------------------------- chunks


def chunk_explorer(n: int = 64, chunk_size: int = 16, overlap: int = 4, *, resolve: str = "first") -> Explorer:
    """Cut n positions into overlapping chunks and see what each position keeps of its left context.

    The overlap slider's maximum follows chunk_size (overlap < chunk_size). Info: the
    number of chunks, the positions computed twice, and the least left context any
    position gets once chunking has cut it off.
    """
    ChunkedProcessor(chunk_size, overlap, resolve)  # reject impossible settings here, with its message
    controls = {
        "n": _slider("n", n, 8, 256),
        "chunk_size": _slider("chunk_size", chunk_size, 2, 128),
        "overlap": _slider("overlap", overlap, 0, chunk_size - 1),
        "resolve": _dropdown("resolve", RESOLUTIONS, resolve),
    }

    def sync(c: Controls) -> None:
        c["overlap"].max = c["chunk_size"].value - 1  # also lowers overlap's value if needed

    def render(n: int, chunk_size: int, overlap: int, resolve: str):
        processor = ChunkedProcessor(chunk_size, overlap, resolve)
        spans = processor.spans(n)
        wasted = sum(span.end - span.start for span in spans) - n
        context = left_context(processor, n)
        cut = context < torch.arange(n)  # positions that see less than without chunking
        least = f"{int(context[cut].min())} positions" if bool(cut.any()) else "nothing lost (one chunk)"
        info = _info(
            ("chunks", str(len(spans))),
            ("positions recomputed", f"{wasted} ({wasted / n:.0%} extra work)"),
            ("least left context after a cut", least),
        )
        return plot_chunks(processor, n), info

    return Explorer(controls, render, sync)


# ---------------------------------------------------------------- sparse patterns

SPARSE_PATTERNS = ("sliding window", "symmetric window", "strided", "global", "random blocks", "BigBird", "block-sparse")
_PATTERN_PARAMS = {  # the sliders each pattern reads
    "sliding window": {"window"},
    "symmetric window": {"window"},
    "strided": {"stride"},
    "global": {"global_tokens"},
    "random blocks": {"random_blocks", "block_size"},
    "BigBird": {"window", "global_tokens", "random_blocks", "block_size"},
    "block-sparse": {"block_size"},
}


def local_block_layout(num_blocks: int) -> torch.Tensor:
    """The block-sparse explorer's layout: each query block attends its own block, its two
    neighbours and block 0 (a block-level window plus a global block)."""
    rows, cols = torch.arange(num_blocks)[:, None], torch.arange(num_blocks)[None, :]
    return ((rows - cols).abs() <= 1) | (cols == 0)


def sparse_pattern(
    pattern: str, n: int, *, window: int, stride: int, global_tokens: int, random_blocks: int, block_size: int, seed: int = 0
) -> MaskMod:
    """The mask_mod the explorers draw for ``pattern`` (one of SPARSE_PATTERNS) at length n.

    Raises the library's ValueError for impossible values (an even symmetric window, a
    block size that does not divide n, more random blocks than a row has).
    """
    if pattern == "sliding window":
        return generate_sliding_window(window)
    if pattern == "symmetric window":
        return generate_symmetric_window(window)
    if pattern == "strided":
        return generate_strided(stride)
    if pattern == "global":
        return generate_global(global_tokens)
    if pattern == "random blocks":
        return generate_random_blocks(n, block_size, random_blocks, seed=seed)
    if pattern == "BigBird":
        return generate_bigbird(window, global_tokens, random_blocks, block_size, n, seed=seed)
    if pattern == "block-sparse":
        return generate_block_sparse(local_block_layout(check_blocks(n, block_size)), block_size)
    raise ValueError(f"pattern must be one of {SPARSE_PATTERNS}, got {pattern!r}")


def _sparse_controls(n: int, window: int, stride: int, global_tokens: int, random_blocks: int, block_size: int, n_max: int) -> Controls:
    return {
        "n": _slider("n", n, 16, n_max, 16),
        "window": _slider("window", window, 1, 128),
        "stride": _slider("stride", stride, 1, 64),
        "global_tokens": _slider("global tokens", global_tokens, 1, 16),
        "random_blocks": _slider("random blocks", random_blocks, 1, 8),
        "block_size": _slider("block size", block_size, 1, 128),
    }


def _enable_for(c: Controls, *patterns: str) -> None:
    """Enable only the sliders that the chosen patterns read."""
    used = set().union(*(_PATTERN_PARAMS[pattern] for pattern in patterns))
    for name in ("window", "stride", "global_tokens", "random_blocks", "block_size"):
        c[name].disabled = name not in used


def mask_explorer(
    pattern: str = "BigBird", n: int = 256, *, window: int = 15, stride: int = 16, global_tokens: int = 2,
    random_blocks: int = 2, block_size: int = 16, seed: int = 0,
) -> Explorer:
    """Pick a sparse pattern and its parameters; see its mask, density and FLOPs saved vs dense.

    Sliders a pattern does not read are disabled. Impossible values (an even symmetric
    window, a block size that does not divide n) show a message instead of the picture.
    Random patterns are drawn from ``seed``.
    """
    controls = {"pattern": _dropdown("pattern", SPARSE_PATTERNS, pattern)}
    controls |= _sparse_controls(n, window, stride, global_tokens, random_blocks, block_size, 1024)

    def render(pattern: str, n: int, **params):
        mask_mod = sparse_pattern(pattern, n, seed=seed, **params)
        cost = pattern_flops(mask_mod, n, progress=False)
        info = _info(
            ("allowed pairs", f"{cost.allowed_pairs:,} of {cost.total_pairs:,}"),
            ("density", f"{cost.density:.1%}"),
            ("FLOPs saved vs dense", f"{cost.savings:.1%} ({cost.speedup:.1f}× fewer)"),
        )
        return plot_pattern(mask_mod, n), info

    return Explorer(controls, render, lambda c: _enable_for(c, c["pattern"].value))


def composition_explorer(
    a: str = "sliding window", b: str = "global", op: str = "or", n: int = 64, *, window: int = 5, stride: int = 8,
    global_tokens: int = 2, random_blocks: int = 1, block_size: int = 8, seed: int = 0,
) -> Explorer:
    """Join two sparse patterns with and_masks / or_masks; see A, B and the result side by side.

    Both patterns read the same parameter sliders. Info: the density of A, B and A op B.
    """
    controls = {"A": _dropdown("A", SPARSE_PATTERNS, a), "op": _dropdown("op", tuple(COMBINE), op), "B": _dropdown("B", SPARSE_PATTERNS, b)}
    controls |= _sparse_controls(n, window, stride, global_tokens, random_blocks, block_size, 256)

    def render(A: str, op: str, B: str, n: int, **params):
        first, second = (sparse_pattern(name, n, seed=seed, **params) for name in (A, B))
        densities = [pattern_density(m, n, progress=False) for m in (first, second, combine(first, second, op))]
        info = _info(*((label, f"{d:.1%}") for label, d in zip(("A", "B", f"A {op} B"), densities, strict=True)))
        return plot_composition(first, second, n, op), info

    return Explorer(controls, render, lambda c: _enable_for(c, c["A"].value, c["B"].value))


def reachability_explorer(
    pattern: str = "sliding window", n: int = 64, layers: int = 8, *, window: int = 5, stride: int = 8,
    global_tokens: int = 1, random_blocks: int = 1, block_size: int = 8, seed: int = 0,
) -> Explorer:
    """Stack ``layers`` layers of a sparse pattern; see how many layers each key needs to reach
    each query (grey: not within the layers). Info: the fewest layers for full reach."""
    controls = {"pattern": _dropdown("pattern", SPARSE_PATTERNS, pattern), "layers": _slider("layers", layers, 1, 256)}
    controls |= _sparse_controls(n, window, stride, global_tokens, random_blocks, block_size, 256)

    def render(pattern: str, layers: int, n: int, **params):
        mask_mod = sparse_pattern(pattern, n, seed=seed, **params)
        needed = minimal_layers_for_full_reach(mask_mod, n)
        info = _info(
            ("minimal layers for full reach", "never" if needed is None else str(needed)),
            (f"full reach within {layers} layers", "yes" if needed is not None and needed <= layers else "no"),
        )
        return plot_hop_counts(mask_mod, n, layers), info

    return Explorer(controls, render, lambda c: _enable_for(c, c["pattern"].value))
