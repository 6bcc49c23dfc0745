"""The sliding-window suite: every kernel of the course against dense SDPA.

For each sequence length n, one head of causal sliding-window attention (query i sees
keys i - window + 1 .. i) is computed by

- ``scaled_dot_product_attention`` with the dense (n, n) bool mask (the baseline) and
  without any mask (dense attention over all keys: a different, unmasked result, for
  the cost of the fused dense kernel);
- ``lcteach.tiled_attention`` with the window's mask_mod (tiles of ``window``);
- ``lcteach.banded_attention`` (its default query blocks);
- ``lcteach.block_sparse_attention`` on the window's block layout (blocks of ``window``);
- ``lcteach.flex_sparse_attention`` and ``flex_attention`` called directly (compiled,
  same cached BlockMask).

The report (a markdown table, checks and notes) and the log-log plots of time and memory
against n are written by ``python -m lcteach.bench``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch.nn.attention.flex_attention import BlockMask, flex_attention

from lcteach.bench.harness import Measurement, Method, Settings, ratio
from lcteach.kernels.banded import banded_attention
from lcteach.kernels.block_sparse import block_sparse_attention
from lcteach.kernels.flex import flex_block_mask, flex_sparse_attention
from lcteach.kernels.tiled import tiled_attention
from lcteach.masks.evaluation import materialize_mask
from lcteach.masks.sliding_window import generate_sliding_window
from lcteach.measure.scaling import ScalingReport, fit_exponent
from lcteach.measure.units import format_bytes
from lcteach.viz.scaling import plot_scaling

DEFAULT_NS = (1024, 2048, 4096, 8192, 16384, 32768, 65536)


BASELINE = "sdpa, dense bool mask"


# Bytes per (query, key) pair the masked baseline needs at its peak, measured with torch 2.13:
# create_mask holds about 10 (bool results and int64 index differences) while it builds the
# mask; the call then holds the 1-byte mask and a float copy of it.
_CREATE_MASK_PAIR_BYTES = 10


def sliding_window_methods(settings: Settings) -> list[Method]:
    """The benchmarked methods for the causal sliding window of ``settings.window``, baseline first."""
    window, device, heads = settings.window, settings.device, settings.heads
    mask_mod = generate_sliding_window(window)
    direct = torch.compile(flex_attention, dynamic=True)
    pair_bytes = max(_CREATE_MASK_PAIR_BYTES, 1 + torch.finfo(settings.dtype).bits // 8)

    def block_mask(n: int) -> BlockMask:  # the object flex_sparse_attention finds in its cache
        return flex_block_mask(mask_mod, 1, heads, n, n, device=device)

    return [
        Method(
            BASELINE,
            lambda q, k, v, mask: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
            prepare=lambda n: materialize_mask(mask_mod, n, device=device),
            pair_bytes=pair_bytes,
        ),
        Method("sdpa, no mask", lambda q, k, v, _: F.scaled_dot_product_attention(q, k, v)),
        Method(
            "tiled_attention",
            lambda q, k, v, _: tiled_attention(q, k, v, block_q=window, block_k=window, mask_mod=mask_mod),
        ),
        Method("banded_attention", lambda q, k, v, _: banded_attention(q, k, v, window)),
        Method(
            "block_sparse_attention",
            lambda q, k, v, layout: block_sparse_attention(q, k, v, layout, window, mask_mod=mask_mod),
            prepare=lambda n: window_layout(n, window, device),
        ),
        Method(
            "flex_sparse_attention",
            lambda q, k, v, _: flex_sparse_attention(q, k, v, mask_mod),
            prepare=block_mask,
            flex=True,
            fallback=True,
        ),
        Method(
            "flex_attention, direct",
            lambda q, k, v, mask: direct(q, k, v, block_mask=mask),
            prepare=block_mask,
            flex=True,
        ),
    ]


def window_layout(n: int, window: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Block layout of generate_sliding_window(window) for blocks of ``window`` positions.

    Query block b needs key blocks b - 1 and b: a bool (blocks, blocks) band, built in
    O(blocks^2) instead of lcteach.block_layout's O(n^2) mask evaluation.
    """
    blocks = -(-n // window)
    ones = torch.ones(blocks, blocks, dtype=torch.bool, device=device)
    return ones.tril() & ones.triu(-1)


def format_report(results: Sequence[Measurement], settings: Settings) -> str:
    """The markdown report: one table row per (n, method), then checks against the targets and notes."""
    by_key = {(r.method, r.n): r for r in results}
    threads = f", {torch.get_num_threads()} threads" if settings.device.type == "cpu" else ""
    lines = [
        f"# Sliding-window attention, window {settings.window}",
        "",
        f"{settings.device.type}{threads}, {str(settings.dtype).removeprefix('torch.')}, batch 1, "
        f"{settings.heads} head(s), head dim {settings.dim}; median of >= {settings.repeats} runs after a warm-up; "
        f"torch {torch.__version__}.",
        "",
        "| n | method | time (ms) | peak memory | speed-up vs masked SDPA | memory vs masked SDPA | prep (s) | note |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        base = by_key.get((BASELINE, r.n), Measurement(BASELINE, r.n))
        time_ms = "" if r.seconds is None else f"{r.seconds * 1e3:.2f}"
        memory = "" if r.peak_bytes is None else format_bytes(r.peak_bytes)
        speed_up = ratio(base.seconds, r.seconds)
        memory_ratio = ratio(r.peak_bytes, base.peak_bytes, ".3g")
        prep = "" if r.prep_seconds is None else f"{r.prep_seconds:.2f}"
        lines.append(f"| {r.n} | {r.method} | {time_ms} | {memory} | {speed_up} | {memory_ratio} | {prep} | {r.note} |")
    lines += ["", "## Checks", "", *_checks(results, by_key), "", "## Notes", ""]
    lines += [
        "- peak memory: tensors the call allocates plus the mask, layout or BlockMask it reads (q, k, v not counted); "
        + ("torch.cuda.max_memory_allocated." if settings.device.type == "cuda" else "lcteach.track_peak_memory."),
        "- memory n/a: on CPU, compiled FlexAttention allocates its buffers inside generated C++ code, which "
        "lcteach's tracker (a TorchDispatchMode) cannot see; on CUDA it is measured.",
        "- prep: one-time work per n (dense mask with create_mask, block layout, or BlockMask with create_block_mask, "
        "compiled for large masks); not in the time column.",
        "- sdpa, no mask attends to every key: it shows the cost of the fused dense kernel, not the window's result.",
    ]
    return "\n".join(lines) + "\n"


def _checks(results: Sequence[Measurement], by_key: dict) -> list[str]:
    lines = [
        "| n | banded speed-up vs masked SDPA (target >= 10x at 16384) "
        "| flex_sparse_attention / flex_attention time (target <= 1.2) |",
        "| ---: | ---: | ---: |",
    ]

    def seconds(method: str, n: int) -> float | None:
        return by_key[(method, n)].seconds if (method, n) in by_key else None

    for n in sorted({r.n for r in results}):
        speed_up = ratio(seconds(BASELINE, n), seconds("banded_attention", n))
        overhead = ratio(seconds("flex_sparse_attention", n), seconds("flex_attention, direct", n), ".2f")
        lines.append(f"| {n} | {speed_up} | {overhead} |")
    banded = [r for r in results if r.method == "banded_attention" and r.peak_bytes]
    if len(banded) >= 2:
        slope = fit_exponent([r.n for r in banded], [r.peak_bytes for r in banded])
        lines += ["", f"banded_attention peak memory grows as n^{slope:.2f} (target: linear, n^1)."]
    return lines


def plot_benchmark(results: Sequence[Measurement], settings: Settings) -> Figure:
    """Log-log time and peak memory against n, one line per method, with n and n^2 guides."""
    fig = Figure(figsize=(14, 5.5), layout="constrained")
    time_ax, memory_ax = fig.subplots(1, 2)
    timed, measured = [], []
    for name in dict.fromkeys(r.method for r in results):
        points = [r for r in results if r.method == name and r.seconds is not None]
        if points:
            timed.append(ScalingReport(name, *zip(*((r.n, r.seconds, r.peak_bytes or 0) for r in points))))
        with_memory = [r for r in points if r.peak_bytes is not None]
        if with_memory:
            measured.append(ScalingReport(name, *zip(*((r.n, r.seconds, r.peak_bytes) for r in with_memory))))
    where = f"window {settings.window}, {settings.device.type}"
    plot_scaling(*timed, metric="seconds", ax=time_ax, title=f"Time per call vs n ({where})")
    plot_scaling(*measured, metric="peak_bytes", ax=memory_ax, title=f"Peak memory vs n ({where})")
    fig.suptitle("Causal sliding-window attention: lcteach kernels, FlexAttention and SDPA")
    return fig
