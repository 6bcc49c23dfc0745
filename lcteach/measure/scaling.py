"""Measure how attention scales: wall time and peak memory over sequence lengths.

``profile_scaling`` runs an attention function at growing n and ``fit_exponent`` turns the
measurements into the exponent p of cost ~ n^p. ``best_seconds`` times any call the same way
(warm-up runs, then the best of several), for timings that profile_scaling does not cover.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from lcteach.measure.peak_memory import peak_memory
from lcteach.measure.units import format_bytes
from lcteach.validation import check_positive_int

AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], object]


MIN_PART = 3  # the fewest points of each part of a fit with one break
TIE_RTOL = 1e-9  # totals of squared residuals this close (relative) are a tie: the earlier split wins


def _least_squares_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, sum of squared residuals) of the least-squares line through the points (x, y)."""
    x_centred, y_centred = x - x.mean(), y - y.mean()
    slope = float((x_centred * y_centred).sum() / (x_centred**2).sum())
    residuals = y_centred - slope * x_centred
    return slope, float((residuals**2).sum())


def split_fits(x: np.ndarray, y: np.ndarray, min_part: int = MIN_PART) -> list[tuple[float, float, float]]:
    """(total squared residuals, lower slope, upper slope) of a least-squares line through each part of
    the points (x, y) split into the first k and the rest, for every k that leaves both parts at least
    ``min_part`` points, in order of k."""
    fits = []
    for k in range(min_part, len(x) - min_part + 1):
        (lower, lower_sse), (upper, upper_sse) = _least_squares_line(x[:k], y[:k]), _least_squares_line(x[k:], y[k:])
        fits.append((lower_sse + upper_sse, lower, upper))
    return fits


def fit_exponent(sizes: Sequence[float], values: Sequence[float], breaks: int = 0) -> float:
    """The exponent p in values ~ c * sizes^p, fitted on log-log axes by least squares.

    ``breaks=0``: the slope of one line through all the points. ``breaks=1``: for every split of
    the points (sizes strictly increasing) into a lower and an upper part of at least 3 points
    each, a line fitted to each part; the split with the least total of squared residuals wins
    (ties: the earliest), and its upper part's slope, the large-n regime, is returned.
    """
    if isinstance(breaks, bool) or breaks not in (0, 1):
        raise ValueError(f"breaks must be 0 (one line) or 1 (one break), got {breaks!r}")
    sizes_arr = np.asarray(sizes, dtype=np.float64)
    values_arr = np.asarray(values, dtype=np.float64)
    if breaks == 1 and (sizes_arr.shape != values_arr.shape or sizes_arr.ndim != 1 or sizes_arr.size < 2 * MIN_PART):
        raise ValueError(
            f"breaks=1 needs at least {2 * MIN_PART} (size, value) pairs of equal length, {MIN_PART} on each side "
            f"of the break, got {sizes_arr.size} and {values_arr.size}"
        )
    if sizes_arr.shape != values_arr.shape or sizes_arr.size < 2:
        raise ValueError(
            f"need at least two (size, value) pairs of equal length, got {sizes_arr.size} and {values_arr.size}"
        )
    both = np.concatenate([sizes_arr.ravel(), values_arr.ravel()])
    if not (np.all(np.isfinite(both)) and np.all(both > 0)):  # checked before np.log, which would warn
        raise ValueError("sizes and values must be positive and finite to fit on a log-log scale")
    x, y = np.log(sizes_arr), np.log(values_arr)
    if breaks == 0:
        if np.ptp(x) == 0:
            raise ValueError("sizes must not all be equal")
        return float(np.polyfit(x, y, 1)[0])
    if not np.all(np.diff(sizes_arr) > 0):
        raise ValueError("breaks=1 needs strictly increasing sizes: the parts are the smaller and the larger ones")
    best_total, best_slope = math.inf, math.nan
    for total, _, upper_slope in split_fits(x, y):
        if total < best_total * (1 - TIE_RTOL):  # the first split beats inf; a later one must fit better
            best_total, best_slope = total, upper_slope
    return float(best_slope)


def best_seconds(
    fn: Callable[..., object],
    *args,
    repeats: int = 3,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
    **kwargs,
) -> float:
    """Seconds of ``fn(*args, **kwargs)``: ``warmup`` untimed runs, then the best of ``repeats``.

    The warm-up pays the one-off costs (first-touch page faults, allocator growth, thread
    start-up, lazy initialisation) and the minimum drops the runs that another process
    interrupted: noise on a shared machine only ever adds time. CUDA work is synchronised.
    ``clock`` is wall time by default. ``time.thread_time`` counts the CPU time of the calling
    thread instead: on a busy machine it leaves out the time spent waiting for a core, which
    no minimum removes once a run outlasts the scheduler's time slice. It measures all the
    work only when torch runs on that one thread (``torch.set_num_threads(1)``);
    ``time.process_time`` counts every thread of the process.
    """
    check_positive_int("repeats", repeats)
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative int, got {warmup!r}")
    for _ in range(warmup):
        fn(*args, **kwargs)
    best = math.inf
    for _ in range(repeats):
        start = clock()
        fn(*args, **kwargs)
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        best = min(best, clock() - start)
    return best


@dataclass(frozen=True)
class ScalingReport:
    """Measurements of one attention function: best-of-repeats seconds and peak bytes per n.

    ``fit_from`` restricts the fitted exponents to the lengths n >= fit_from: one regime, where
    the term that grows fastest dominates, instead of a line through two regimes (small n,
    where fixed costs and caches weigh, and large n) whose slope belongs to neither.
    """

    label: str
    seq_lens: tuple[int, ...]
    seconds: tuple[float, ...]
    peak_bytes: tuple[int, ...]
    fit_from: int | None = None

    def _fitted(self, values: Sequence[float]) -> float:
        pairs = [(n, value) for n, value in zip(self.seq_lens, values) if self.fit_from is None or n >= self.fit_from]
        if len(pairs) < 2:
            raise ValueError(f"fewer than two lengths n >= fit_from={self.fit_from} to fit an exponent")
        return fit_exponent(*zip(*pairs))

    @property
    def time_exponent(self) -> float:
        return self._fitted(self.seconds)

    @property
    def memory_exponent(self) -> float:
        return self._fitted(self.peak_bytes)

    @property
    def tokens_per_second(self) -> tuple[float, ...]:
        """Throughput at each length: n / seconds (inf for a run too fast for the clock to see)."""
        return tuple(n / s if s > 0 else math.inf for n, s in zip(self.seq_lens, self.seconds))

    @property
    def throughput_exponent(self) -> float:
        """p in tokens/s ~ n^p: since tokens/s = n / seconds, 1 - time_exponent (0 for linear-time
        methods, -1 for quadratic)."""
        return 1 - self.time_exponent

    def table(self, *, throughput: bool = False) -> str:
        """A plain-text table, one row per sequence length, with the fitted exponents.

        ``throughput=True`` adds a tokens-per-second column.
        """
        header = f"{'n':>8} {'time (ms)':>11} {'peak memory':>12}" + (f" {'tokens/s':>11}" if throughput else "")
        lines = [f"{self.label}", header]
        for n, s, b, rate in zip(self.seq_lens, self.seconds, self.peak_bytes, self.tokens_per_second):
            lines.append(f"{n:>8} {s * 1e3:>11.2f} {format_bytes(b):>12}" + (f" {rate:>11,.0f}" if throughput else ""))
        if sum(self.fit_from is None or n >= self.fit_from for n in self.seq_lens) > 1:
            regime = "" if self.fit_from is None else f" (n >= {self.fit_from:,})"
            lines.append(
                f"fitted exponents{regime}: time ~ n^{self.time_exponent:.2f}, memory ~ n^{self.memory_exponent:.2f}"
            )
        return "\n".join(lines)


def profile_scaling(
    attention_fn: AttentionFn,
    seq_lens: Sequence[int],
    *,
    batch: int = 1,
    heads: int = 1,
    dim: int = 64,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    repeats: int = 3,
    seed: int = 0,
    label: str | None = None,
    progress: bool = True,
    fit_from: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> ScalingReport:
    """Time and measure ``attention_fn(q, k, v)`` on random (batch, heads, n, dim) inputs.

    For each n: one warm-up run under lcteach.measure's tracker for the peak bytes it
    allocates, then the best of ``repeats`` timed runs (``best_seconds``, whose ``clock`` is
    this one: wall time by default). Runs under no_grad. ``fit_from`` is the report's: its
    exponents fit only n >= fit_from.
    """
    if not seq_lens:
        raise ValueError("seq_lens must list at least one sequence length")
    for n in seq_lens:
        check_positive_int("each sequence length", n)
    check_positive_int("repeats", repeats)
    generator = torch.Generator().manual_seed(seed)
    seconds, peaks = [], []
    for n in tqdm(seq_lens, desc=label or "profiling", disable=not progress, leave=False):
        q, k, v = (torch.randn(batch, heads, n, dim, generator=generator, dtype=dtype).to(device) for _ in range(3))
        with torch.no_grad():
            _, peak = peak_memory(attention_fn, q, k, v)  # doubles as the warm-up run
            seconds.append(best_seconds(attention_fn, q, k, v, repeats=repeats, warmup=0, clock=clock))
        peaks.append(peak)
    name = label or getattr(attention_fn, "__name__", "attention")
    return ScalingReport(name, tuple(seq_lens), tuple(seconds), tuple(peaks), fit_from)
