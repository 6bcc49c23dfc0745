"""The budgets of the measured checks: peak memory that must grow linearly, and CPU time as a
share of lean masked dense attention's.

A check whose point is a kernel's memory or work measures the student's call in the measuring
process (``case.measure``) and holds the numbers to a budget here; the CPU-time yardstick is
timed in the trusted process on inputs of the same size.
"""

from __future__ import annotations

import math
import time

import torch

from lcteach.grading.expectations import counted_if_right, counted_only_if_right
from lcteach.grading.results import CheckFailed
from lcteach.measure import format_bytes


def layout_mask(layout: torch.Tensor, block_size: int, n_q: int, n_k: int) -> torch.Tensor:
    """The (n_q, n_k) token mask of a (q_blocks, kv_blocks) block layout."""
    return layout.repeat_interleave(block_size, 0).repeat_interleave(block_size, 1)[:n_q, :n_k]


def dense_seconds(q, k, v, mask, repeats: int = 3) -> float:
    """CPU seconds of lean masked dense attention in one thread, the best of ``repeats``: one product
    for the scores, scaled, masked and normalised in place, one product with v (as lean as dense
    attention gets in torch or numpy)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        best = math.inf
        for _ in range(repeats):
            start = time.thread_time()
            scores = q @ k.transpose(-2, -1)
            scores.mul_(1 / math.sqrt(q.shape[-1])).masked_fill_(~mask, -math.inf)
            torch.softmax(scores, dim=-1).nan_to_num_(0.0) @ v
            best = min(best, time.thread_time() - start)
        return best
    finally:
        torch.set_num_threads(threads)


def rehearse(call_and_judge) -> None:
    """Before a measured check starts its measuring process (about 4 s of CPU): ``call_and_judge()``
    calls the student's function in its own process on small inputs like the measured ones and
    judges the values; when they are wrong the check fails as not counted, measuring nothing, since
    numbers measured for wrong values could not count anyway."""
    with counted_if_right():
        call_and_judge()


def fastest_measured_call(case, repeats: int, draw, judge, *, call_and_judge, **kwargs) -> tuple[float, tuple]:
    """The least CPU time of ``repeats`` measured calls of the student's function, each on new
    inputs ``draw()`` (so a remembered answer is no shortcut) with ``kwargs``, each judged right
    by ``judge(value, *inputs)`` first; and the last inputs, for timing the yardstick on.
    ``call_and_judge`` is the rehearsal (``rehearse``) that comes first."""
    rehearse(call_and_judge)
    seconds = []
    for _ in range(repeats):
        inputs = draw()
        measured = case.measure(*inputs, **kwargs)
        judge(measured.value, *inputs)
        seconds.append(measured.cpu_seconds)
    return min(seconds), inputs


def expect_work_share(seconds: float, dense: float, ratio: float, setting: str, hint: str) -> None:
    """The student's best CPU time ``seconds`` within ``ratio`` of dense attention's ``dense``;
    ``setting`` names the measured sizes (fixed by the check, not drawn)."""
    if seconds > ratio * dense:
        raise CheckFailed(
            f"{setting}: your function took {seconds * 1e3:.0f} ms of CPU time, {seconds / dense:.0%} of lean "
            f"masked dense attention's {dense * 1e3:.0f} ms on inputs of the same size; the budget is {ratio:.0%}",
            hint,
        )


def linear_memory_budget(n: int, dim: int) -> int:
    """Bytes an O(n)-memory kernel may allocate at length n: 16 float32 copies of an (n, dim) tensor
    (32 MiB at n = 8192, d = 64: an (n, n) float32 matrix of 256 MiB does not fit, a (256, n)
    strip of 8 MiB does)."""
    return 16 * n * dim * 4


def check_linear_memory(
    measure_at, judge, n: int, dim: int, *, what: str, matrix: str, hint: str, call_and_judge
) -> None:
    """The memory check of an O(n) kernel: ``measure_at(m)`` makes one measured call at length m
    and returns (its peak bytes, its value, its inputs), at n / 4 and then at n; the peaks must
    keep to ``linear_memory_budget`` and grow linearly (``expect_linear_memory``), and they count
    only when ``judge(value, inputs)`` finds both values right (``counted_only_if_right``).
    ``call_and_judge`` is the rehearsal (``rehearse``) that comes first."""
    rehearse(call_and_judge)
    (small, *small_run), (large, *large_run) = measure_at(n // 4), measure_at(n)
    counted_only_if_right(
        "the memory is within the budget",
        lambda: expect_linear_memory(
            small, large, n, linear_memory_budget(n, dim), what=what, matrix=matrix, hint=hint
        ),
        lambda: [judge(*run) for run in (small_run, large_run)],
    )


def expect_linear_memory(small: int, large: int, n: int, budget: int, *, what: str, matrix: str, hint: str) -> None:
    """Peak bytes ``large`` at length n within ``budget`` and at most 5x ``small``, the peak at n / 4
    (or 5x an eighth of the budget, when ``small`` is less).
    ``what`` names the measured function ("your function"), ``matrix`` the (n, n) tensor it must avoid."""
    if large > budget:
        raise CheckFailed(
            f"at n={n} {what} used {format_bytes(large)} at its peak; the budget is {format_bytes(budget)} "
            f"(one {n} x {n} {matrix} alone is {format_bytes(4 * n * n)})",
            hint,
        )
    if large > 5 * max(small, budget // 8):  # a floor: near zero, noise would make any growth look fast
        raise CheckFailed(
            f"peak memory went from {format_bytes(small)} at n={n // 4} to {format_bytes(large)} at n={n}: "
            f"x{large / max(small, budget // 8):.1f} for 4x the tokens, faster than linear growth",
            "a buffer whose size grows with n twice (n x n, or n x n / block) is hiding in your loop",
        )
