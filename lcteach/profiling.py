"""Measure how attention scales: wall time and peak memory over sequence lengths.

``profile_scaling`` runs an attention function at growing n, ``fit_exponent`` turns the
measurements into the exponent p of cost ~ n^p, ``dense_attention_memory`` predicts the
memory of dense attention at any n without running it, and ``diagnose_oom`` explains in
plain words whether it fits and what to use instead.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ._validation import check_positive_int
from .memory import peak_memory

AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], object]


def fit_exponent(sizes: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of log(values) against log(sizes): p in values ~ c * sizes^p."""
    sizes_arr = np.asarray(sizes, dtype=np.float64)
    values_arr = np.asarray(values, dtype=np.float64)
    if sizes_arr.shape != values_arr.shape or sizes_arr.size < 2:
        raise ValueError(f"need at least two (size, value) pairs of equal length, got {sizes_arr.size} and {values_arr.size}")
    both = np.concatenate([sizes_arr.ravel(), values_arr.ravel()])
    if not (np.all(np.isfinite(both)) and np.all(both > 0)):  # checked before np.log, which would warn
        raise ValueError("sizes and values must be positive and finite to fit on a log-log scale")
    x, y = np.log(sizes_arr), np.log(values_arr)
    if np.ptp(x) == 0:
        raise ValueError("sizes must not all be equal")
    return float(np.polyfit(x, y, 1)[0])


@dataclass(frozen=True)
class ScalingReport:
    """Measurements of one attention function: best-of-repeats seconds and peak bytes per n."""

    label: str
    seq_lens: tuple[int, ...]
    seconds: tuple[float, ...]
    peak_bytes: tuple[int, ...]

    @property
    def time_exponent(self) -> float:
        return fit_exponent(self.seq_lens, self.seconds)

    @property
    def memory_exponent(self) -> float:
        return fit_exponent(self.seq_lens, self.peak_bytes)

    def table(self) -> str:
        """A plain-text table, one row per sequence length, with the fitted exponents."""
        lines = [f"{self.label}", f"{'n':>8} {'time (ms)':>11} {'peak memory':>12}"]
        for n, s, b in zip(self.seq_lens, self.seconds, self.peak_bytes):
            lines.append(f"{n:>8} {s * 1e3:>11.2f} {format_bytes(b):>12}")
        if len(self.seq_lens) > 1:
            lines.append(f"fitted exponents: time ~ n^{self.time_exponent:.2f}, memory ~ n^{self.memory_exponent:.2f}")
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
) -> ScalingReport:
    """Time and measure ``attention_fn(q, k, v)`` on random (batch, heads, n, dim) inputs.

    For each n: one warm-up run under lcteach.memory's tracker for the peak bytes it
    allocates, then the best of ``repeats`` timed runs. Runs under no_grad.
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
            best = math.inf
            for _ in range(repeats):
                start = time.perf_counter()
                attention_fn(q, k, v)
                if q.device.type == "cuda":
                    torch.cuda.synchronize(q.device)
                best = min(best, time.perf_counter() - start)
        seconds.append(best)
        peaks.append(peak)
    name = label or getattr(attention_fn, "__name__", "attention")
    return ScalingReport(name, tuple(seq_lens), tuple(seconds), tuple(peaks))


def dense_attention_memory(
    n: int,
    kv_len: int | None = None,
    *,
    batch: int = 1,
    heads: int = 1,
    dim: int = 64,
    dtype: torch.dtype = torch.float32,
) -> int:
    """Peak bytes that lcteach.dense_attention allocates for n queries and kv_len keys.

    Two (n, kv_len) buffers per head (exponentiated scores and normalised weights), the
    (n, dim) output and two per-row vectors: 2*n*kv_len + n*dim + 2*n elements per head.
    The n^2 term dominates: at n = 65,536 one head needs 32 GiB in float32.
    """
    check_positive_int("n", n)
    kv_len = n if kv_len is None else check_positive_int("kv_len", kv_len)
    per_head = 2 * n * kv_len + n * dim + 2 * n
    return batch * heads * per_head * torch.finfo(dtype).bits // 8


def format_bytes(nbytes: float) -> str:
    """Human-readable size with binary units: 1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(nbytes) < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Diagnosis:
    """Whether dense attention fits in memory, what it needs, and what to do about it."""

    fits: bool
    needed_bytes: int
    available_bytes: int
    message: str

    def __str__(self) -> str:
        return self.message


def diagnose_oom(
    n: int,
    available_bytes: int,
    *,
    batch: int = 1,
    heads: int = 1,
    dim: int = 64,
    dtype: torch.dtype = torch.float32,
    training: bool = False,
) -> Diagnosis:
    """Explain whether dense attention at length n fits in ``available_bytes``, and if not, why and what to use.

    ``training=True`` counts the weights kept for the backward pass as well.
    """
    check_positive_int("available_bytes", available_bytes)
    needed = dense_attention_memory(n, batch=batch, heads=heads, dim=dim, dtype=dtype)
    itemsize = torch.finfo(dtype).bits // 8
    if training:
        needed += batch * heads * n * n * itemsize
    matrix = batch * heads * n * n * itemsize
    head = (
        f"Dense attention at n={n:,} (batch {batch}, {heads} heads, {dtype}) needs about {format_bytes(needed)}; "
        f"{format_bytes(available_bytes)} is available. The n x n score matrices alone (one per head) take {format_bytes(matrix)}, "
        f"and it grows 4x each time n doubles."
    )
    if needed <= available_bytes:
        return Diagnosis(True, needed, available_bytes, head + " It fits.")
    linear = 4 * batch * heads * n * dim * itemsize
    advice = [
        f"Switch to tiled (flash) attention: the same result, computed block by block, in about "
        f"{format_bytes(linear)} (O(n*d)), because no n x n matrix is ever stored.",
    ]
    if training:
        advice.append(
            "For training, tiled attention recomputes the tiles in the backward pass instead of storing the weights; "
            "gradient checkpointing of whole layers trades compute for the remaining activations."
        )
    if dtype == torch.float32:
        advice.append("bfloat16 halves every buffer, but does not change the n^2 growth.")
    advice.append(
        "If each token only needs nearby context, a sliding window of w keys costs O(n*w); "
        "chunking costs O(n*chunk) but loses context across chunk borders."
    )
    return Diagnosis(False, needed, available_bytes, head + " It does not fit.\n- " + "\n- ".join(advice))
