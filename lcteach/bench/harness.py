"""The benchmark harness: time and measure a list of methods over sequence lengths.

Each method's time is the median of at least ``repeats`` runs after a warm-up (fast calls
are repeated for about half a second, up to 50 times), timed in rounds of one call per
method so that the load of other processes hits all methods alike; its peak memory is what
lcteach.track_peak_memory sees the call allocate (on CUDA: torch.cuda.max_memory_allocated)
plus the mask, layout or BlockMask it reads, which is built once per n beforehand ("prep").
The inputs themselves are not counted. A method is skipped at an n where its estimated
memory exceeds ``memory_limit`` or its expected time per call (quadratic extrapolation from
its previous n) exceeds ``time_limit``. A suite (lcteach.bench.sliding_window) names the
methods and writes the report.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.nn.attention.flex_attention import BlockMask

from lcteach.kernels.flex import flex_fallback_reason
from lcteach.measure.peak_memory import track_peak_memory
from lcteach.measure.units import format_bytes

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


def run_benchmark(methods: Sequence[Method], ns: Sequence[int], settings: Settings) -> list[Measurement]:
    """Measure every method at every n (see the module docstring); progress lines go to stdout."""
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
            print(f"n={n:>6}  {method.name:<24} {describe(result)}", flush=True)
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


def describe(result: Measurement) -> str:
    if result.seconds is None:
        return result.note
    memory = "memory n/a" if result.peak_bytes is None else format_bytes(result.peak_bytes)
    return f"{result.seconds * 1e3:10.2f} ms  {memory}"


def ratio(numerator: float | None, denominator: float | None, spec: str = ".1f") -> str:
    """numerator / denominator as "2.5x", or "" where either is unknown."""
    return "" if numerator is None or not denominator else f"{numerator / denominator:{spec}}x"
