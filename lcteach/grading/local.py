"""The self-check's session: a part's checks run in the student's own process.

In a student's notebook ``grade.<part>(fn)`` runs the checks right there, on public inputs:
it is the student's machine, and the verdict is advice. ``LocalSession`` runs each call under
the guard (``lcteach.grading.guard``: exceptions become failed checks, stderr goes to stdout,
a call into lcteach's references is named), gives student code private copies of the
check's tensors, and measures in-process (torch's allocations and this thread's CPU time, with
the guard's profiler off), close to what the graded run measures from outside.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Measured:
    """One measured call: what it returned, its peak memory above the baseline, its CPU time."""

    value: object
    peak_bytes: int
    cpu_seconds: float


def measure_here(fn: Callable, *args, **kwargs) -> Measured:
    """Call ``fn`` twice in this thread: under torch's allocation tracker, on copies of the arguments,
    for its peak bytes; then without it, on one thread, for its CPU time and its value (the tracker
    slows loops of small operations)."""
    from lcteach.grading.guard import private_copy
    from lcteach.measure.peak_memory import peak_memory

    _, peak = peak_memory(fn, *private_copy(args), **private_copy(kwargs))  # a call that writes into its inputs
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the measuring process: this thread's CPU time is all the work
    try:
        start = time.thread_time()
        value = fn(*args, **kwargs)
        return Measured(value, peak, time.thread_time() - start)
    finally:
        torch.set_num_threads(threads)


class LocalSession:
    """Calls the student's function in this process, under the guard."""

    def __init__(self, student: Callable):
        from lcteach.grading.guard import StudentGuard

        self.student = student
        self.guard = StudentGuard()

    @property
    def delegated_to(self) -> str | None:
        return self.guard.delegated_to

    @property
    def stopped(self) -> str | None:
        return "an earlier call ran out of time" if self.guard.timed_out else None

    def call(self, fn: Callable, args: tuple, kwargs: dict):
        from lcteach.grading.guard import private_copy

        return self.guard.call(fn, *private_copy(args), **private_copy(kwargs))

    def method(self, obj, name: str) -> Callable:
        if not name.isidentifier() or name.startswith("_"):
            raise ValueError(f"not a public method name: {name!r}")
        return getattr(obj, name)

    def callback(self, fn: Callable) -> Callable:
        return self.guard.trusted(fn)

    def measure(self, args: tuple, kwargs: dict) -> Measured:
        """One guarded call (which names any delegation), then the measured one, not profiled: the
        guard's profiler would slow loops of small operations several times over."""
        from lcteach.grading.guard import StudentGuard

        self.call(self.student, args, kwargs)
        return self.call(StudentGuard.trusted(measure_here), (self.student, *args), kwargs)
