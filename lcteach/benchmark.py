"""Benchmark sliding-window attention: every kernel of the course against dense SDPA.

    python -m lcteach.benchmark --out DIR [--ns 1024,2048,...] [--window 256] [--device cpu|cuda]

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

Each method's time is the median of at least ``--repeats`` runs after a warm-up (fast
calls are repeated for about half a second, up to 50 times), timed in rounds of one call
per method so that the load of other processes hits all methods alike; its peak memory
is what lcteach.track_peak_memory sees the call allocate (on CUDA:
torch.cuda.max_memory_allocated) plus the mask, layout or BlockMask it reads, which is
built once per n beforehand ("prep"). The inputs themselves are not counted. A method is
skipped at an n where its estimated memory exceeds ``--memory-limit`` or its expected
time per call (quadratic extrapolation from its previous n) exceeds ``--time-limit``.
The report (a markdown table, checks and notes) is printed and written to
DIR/results.md; DIR/scaling.png holds log-log plots of time and memory against n.
Progress goes to stdout.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch.nn.attention.flex_attention import BlockMask, flex_attention

from ._validation import check_positive_int
from .banded import banded_attention
from .block_sparse import block_sparse_attention
from .flex import flex_block_mask, flex_fallback_reason, flex_sparse_attention
from .masks import generate_sliding_window, materialize_mask
from .memory import track_peak_memory
from .plots import plot_scaling
from .profiling import ScalingReport, fit_exponent, format_bytes
from .tiled import tiled_attention

DEFAULT_NS = (1024, 2048, 4096, 8192, 16384, 32768, 65536)
BASELINE = "sdpa, dense bool mask"
# Bytes per (query, key) pair the masked baseline needs at its peak, measured with torch 2.13:
# create_mask holds about 10 (bool results and int64 index differences) while it builds the
# mask; the call then holds the 1-byte mask and a float copy of it.
_CREATE_MASK_PAIR_BYTES = 10
# Fast calls are timed until about this many seconds have passed, in at most this many runs.
_TIMED_SECONDS, _MAX_RUNS = 0.5, 50


@dataclass(frozen=True)
class Method:
    """One way to compute the attention: ``call(q, k, v, prepare(n))``.

    ``flex``: runs compiled FlexAttention where flex_fallback_reason allows it (compiled
    code allocates outside lcteach's memory tracker); where it does not, a method with
    ``fallback`` runs its own eager path and one without is skipped.
    ``pair_bytes``: bytes per (query, key) pair it needs, for the memory estimate.
    """

    name: str
    call: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, object], object]
    prepare: Callable[[int], object] | None = None
    flex: bool = False
    fallback: bool = False
    pair_bytes: float = 0.0


@dataclass(frozen=True)
class Measurement:
    """One method at one n: median seconds, peak bytes and prep seconds (None: not measured)."""

    method: str
    n: int
    seconds: float | None = None
    peak_bytes: int | None = None
    prep_seconds: float | None = None
    note: str = ""


@dataclass(frozen=True)
class Settings:
    window: int
    device: torch.device
    heads: int = 1
    dim: int = 64
    repeats: int = 3
    memory_limit: int = 8 * 2**30
    time_limit: float = 30.0
    seed: int = 0
    dtype: torch.dtype = torch.float32


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


def run_benchmark(ns: Sequence[int], settings: Settings) -> list[Measurement]:
    """Measure every method at every n (see the module docstring); progress lines go to stdout."""
    methods = sliding_window_methods(settings)
    generator = torch.Generator().manual_seed(settings.seed)
    results: list[Measurement] = []
    last: dict[str, tuple[int, float]] = {}  # method -> (n, seconds) of its latest run
    for n in ns:
        shape = (1, settings.heads, n, settings.dim)
        q, k, v = (torch.randn(shape, generator=generator, dtype=settings.dtype).to(settings.device) for _ in range(3))
        skipped = {m.name: _skip_reason(m, n, last.get(m.name), settings, (q, k, v)) for m in methods}
        ready = {m.name: _prepare(m, n, q, k, v, settings) for m in methods if not skipped[m.name]}
        print(f"n={n:>6}  timing {len(ready)} methods", flush=True)
        seconds = _time_interleaved({name: p.run for name, p in ready.items()}, settings.repeats)
        for method in methods:
            if method.name in ready:
                p = ready[method.name]
                result = Measurement(method.name, n, seconds[method.name], p.peak_bytes, p.prep_seconds, p.note)
                last[method.name] = (n, result.seconds)
            else:
                result = Measurement(method.name, n, note=skipped[method.name])
            results.append(result)
            print(f"n={n:>6}  {method.name:<24} {_describe(result)}", flush=True)
    return results


def _skip_reason(method: Method, n: int, previous: tuple[int, float] | None, settings: Settings, qkv) -> str:
    needed = method.pair_bytes * n * n
    if needed > settings.memory_limit:
        limit = format_bytes(settings.memory_limit)
        return f"skipped: needs about {format_bytes(needed)} for n x n buffers (limit {limit})"
    if previous is not None:
        expected = previous[1] * (n / previous[0]) ** 2
        if expected > settings.time_limit:
            return f"skipped: about {expected:.0f} s per call expected (limit {settings.time_limit:g} s)"
    if method.flex and not method.fallback and (reason := flex_fallback_reason(*qkv)):
        return f"skipped: {reason}"
    return ""


@dataclass(frozen=True)
class _Prepared:
    """A method ready to time at one n: its call, prep seconds, peak bytes and notes."""

    run: Callable[[], None]
    prep_seconds: float | None
    peak_bytes: int | None
    note: str


def _prepare(method: Method, n: int, q, k, v, settings: Settings) -> _Prepared:
    """Build the method's state for n, warm it up and measure its peak memory."""
    start = time.perf_counter()
    state = method.prepare(n) if method.prepare else None
    prep = time.perf_counter() - start if method.prepare else None
    device = settings.device

    def run():
        with torch.no_grad():
            method.call(q, k, v, state)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fallback = flex_fallback_reason(q, k, v) if method.flex else None
    compiled = method.flex and fallback is None
    if compiled or device.type == "cuda":
        run()  # warm-up: compiles, initialises CUDA libraries
    peak = _peak_bytes(run, device, trackable=not compiled)  # on CPU also the warm-up
    notes = []
    if peak is None:
        notes.append("memory n/a: compiled code allocates outside the tracker")
    else:
        peak += _nbytes(state)
    if fallback:
        notes.append(f"ran lcteach's fallback: {fallback}")
    return _Prepared(run, prep, peak, "; ".join(notes))


def _time_interleaved(runs: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each run, timed in rounds of one call each.

    Rounds spread a change in the machine's load (other processes) over all methods alike.
    Every run gets at least ``repeats`` calls; fast ones more, up to _TIMED_SECONDS in all.
    """
    seconds: dict[str, list[float]] = {name: [] for name in runs}

    def wants_more(times: list[float]) -> bool:
        return len(times) < repeats or (len(times) < _MAX_RUNS and sum(times) < _TIMED_SECONDS)

    while pending := [name for name, times in seconds.items() if wants_more(times)]:
        for name in pending:
            start = time.perf_counter()
            runs[name]()
            seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in seconds.items()}


def _peak_bytes(run: Callable[[], None], device: torch.device, trackable: bool) -> int | None:
    """Peak bytes ``run`` allocates: CUDA statistics on CUDA, lcteach's tracker for eager CPU code."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        run()
        return torch.cuda.max_memory_allocated(device) - base
    if not trackable:
        return None
    with track_peak_memory() as report:
        run()
    return report.peak_bytes


def _nbytes(state) -> int:
    """Bytes of the tensors in a prepared mask, layout or BlockMask."""
    parts = state.as_tuple() if isinstance(state, BlockMask) else (state,)
    return sum(t.numel() * t.element_size() for t in parts if isinstance(t, torch.Tensor))


def _describe(result: Measurement) -> str:
    if result.seconds is None:
        return result.note
    memory = "memory n/a" if result.peak_bytes is None else format_bytes(result.peak_bytes)
    return f"{result.seconds * 1e3:10.2f} ms  {memory}"


def _ratio(numerator: float | None, denominator: float | None, spec: str = ".1f") -> str:
    """numerator / denominator as "2.5x", or "" where either is unknown."""
    return "" if numerator is None or not denominator else f"{numerator / denominator:{spec}}x"


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
        speed_up = _ratio(base.seconds, r.seconds)
        memory_ratio = _ratio(r.peak_bytes, base.peak_bytes, ".3g")
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
        speed_up = _ratio(seconds(BASELINE, n), seconds("banded_attention", n))
        overhead = _ratio(seconds("flex_sparse_attention", n), seconds("flex_attention, direct", n), ".2f")
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


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lcteach.benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for results.md and scaling.png")
    parser.add_argument("--ns", type=_int_list, default=list(DEFAULT_NS), help="sequence lengths, e.g. 1024,2048")
    parser.add_argument("--window", type=int, default=256, help="keys per query, the query included (default 256)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--dim", type=int, default=64, help="head dimension")
    parser.add_argument(
        "--repeats", type=int, default=3, help="at least this many timed runs per measurement, after a warm-up"
    )
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parser.add_argument("--threads", type=int, default=cores, help=f"torch CPU threads (default: all {cores})")
    parser.add_argument(
        "--memory-limit",
        type=float,
        default=None,
        help="GiB a method may need; default 40%% of the free memory of the device",
    )
    parser.add_argument(
        "--time-limit", type=float, default=30.0, help="expected seconds per call above which an n is skipped"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    for name in ("window", "heads", "dim", "repeats", "threads"):
        try:
            check_positive_int(f"--{name}", getattr(args, name))
        except ValueError as error:
            parser.error(str(error))
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    device = torch.device(args.device)
    if args.memory_limit is None:
        free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else psutil.virtual_memory().available
        memory_limit = int(0.4 * free)
    else:
        memory_limit = int(args.memory_limit * 2**30)
    torch.set_num_threads(args.threads)
    settings = Settings(
        args.window,
        device,
        heads=args.heads,
        dim=args.dim,
        repeats=args.repeats,
        memory_limit=memory_limit,
        time_limit=args.time_limit,
    )
    results = run_benchmark(args.ns, settings)
    report = format_report(results, settings)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(report)
    plot_benchmark(results, settings).savefig(args.out / "scaling.png", dpi=110)
    print()
    print(report, end="")
    print(f"wrote {args.out / 'results.md'} and {args.out / 'scaling.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
