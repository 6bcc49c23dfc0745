"""Measuring a student's function from outside its process.

A ``MeasuringProcess`` is a fresh sandboxed Python (``lcteach.grading.worker``) that runs the
notebook's code cells and then only the calls the grader sends it, with new processes
forbidden. The grader reads, from /proc, what each call used:

- peak memory: the process's resident high-water mark (VmHWM), reset before each call
  (``/proc/<pid>/clear_refs``), minus its resident memory before any student code ran, so
  memory the student's cells hold when the call starts counts too (a buffer allocated
  ahead of time is no way around the budget), less an allowance of ``HELD_ALLOWANCE`` of it:
  the modules, plots and small tensors an honest notebook keeps (about 20 MiB for the Week 1
  exercises) never count, a reserved (n, n) matrix of a measured length (256 MiB) still does;
- CPU time: the run time of its threads (``/proc/<pid>/task/*/schedstat``, exact, live threads),
  or the process's own count (``/proc/<pid>/stat``, clock ticks, ended threads too) when larger.

This works for an ordinary user as well as root, without a cgroup: the process cannot fork
(seccomp), so nothing it does escapes the numbers read here.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from IPython.core.inputtransformer2 import TransformerManager

from autograder.sandbox import START_SECONDS, Limits, sandbox_command, sandbox_environment, sandboxed_pythons
from lcteach.grading.channel import ChannelError, Client, Remote, recv_frame, send_frame
from lcteach.grading.local import Measured

WORKER_LIMITS = Limits(
    memory_bytes=4 * 2**30, processes=32, cpu_seconds=300, file_bytes=2**20, scratch_bytes=16 * 2**20
)


# glibc's malloc keeps freed memory resident: past its first free, a large block lands on the heap
# (the mmap threshold grows to the freed size) and stays there. A fixed threshold maps every block
# of 128 KiB or more on its own and unmaps it when freed, so the resident set the grader reads holds
# what the student's code keeps alive, not what earlier cells or calls left behind.
MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024), "MALLOC_TRIM_THRESHOLD_": str(128 * 1024)}
HELD_ALLOWANCE = 64 * 2**20  # resident memory the cells may hold before a call without it counting
CELL_MAGICS_RUN = ("time", "timeit", "capture", "prun")  # cell magics whose body the measuring process runs (once)
_IPYTHON_SYNTAX = TransformerManager()


def python_source(cell: str) -> str:
    """A notebook cell as the plain Python that IPython would run.

    Line magics and shell escapes become calls of ``get_ipython()``, which does nothing in the
    measuring process; the body of a ``%%time``-like cell magic runs as it is; a cell under any
    other cell magic (``%%bash``, ``%%writefile``) does not run there.
    """
    head, _, body = cell.lstrip().partition("\n")
    if head.startswith("%%"):
        if head[2:].partition(" ")[0] not in CELL_MAGICS_RUN:
            return ""
        cell = body
    try:
        return _IPYTHON_SYNTAX.transform_cell(cell)
    except Exception:  # noqa: BLE001 - what IPython cannot read runs as it is, and fails as it would
        return cell


class MeasuringProcess:
    """A sandboxed process holding the student's function ``student`` from ``cells`` (see the module docstring).

    After ``release()`` it can serve a later graded part of the same notebook (``setup``): only
    the cells that came since run, on top of the earlier ones, so torch starts once per notebook.
    """

    def __init__(self, cells: list[str], student: str, uid: int, call_seconds: float = 60.0):
        trusted, worker = socket.socketpair()
        command = [sys.executable, "-m", "lcteach.grading.worker", str(worker.fileno())]
        self.process = subprocess.Popen(
            sandbox_command(WORKER_LIMITS, uid) + command,
            pass_fds=[worker.fileno()],
            env=sandbox_environment(LCTEACH_GRADING="worker", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **MALLOC),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        worker.close()
        self.client = Client(trusted, time_limit=call_seconds)
        try:
            header, _ = recv_frame(trusted, time.monotonic() + START_SECONDS)
            if header.get("op") != "ready":
                raise ChannelError("the measuring process did not start")
            self.pid = self._python_pid()
            self.baseline = self._status("VmRSS")
            self.cells: list[str] = []  # the notebook cells this process has run
            self.setup(cells, student)
        except ChannelError:
            self.close()
            raise

    def continues(self, cells: list[str]) -> bool:
        """Whether this process can serve a part whose cells are ``cells``: it was released in good
        order and ``cells`` begin with the cells it ran."""
        return not self.client.closed and cells[: len(self.cells)] == self.cells

    def setup(self, cells: list[str], student: str) -> None:
        """Serve the function ``student`` that the notebook's code cells ``cells`` define; of those,
        the cells this process ran already (``continues``) do not run again."""
        new = cells[len(self.cells) :]
        self.client.time_limit, call_seconds = START_SECONDS, self.client.time_limit
        try:
            send_frame(
                self.client.sock, {"op": "setup", "cells": [python_source(c) for c in new], "student": student}, []
            )
            self.student = self.client.hello()["student"]
        except (OSError, KeyError, TypeError) as error:
            self.client.close()
            raise ChannelError(f"the measuring process did not take the notebook's cells ({error})") from None
        finally:
            self.client.time_limit = call_seconds
        self.cells = list(cells)

    def release(self) -> None:
        """The part is judged: the process waits for the next part's ``setup`` (or ``close``)."""
        self.client.done()

    def measure(self, fn: Remote, *args, **kwargs) -> Measured:
        """Call ``fn`` (a Remote of this process) once; its value, peak memory and CPU time."""
        held = self._status("VmRSS") - self.baseline  # what the cells (and earlier calls) keep
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # the high-water mark restarts from now
        cpu = self._cpu_seconds()
        value = self.client.call(fn, *args, **kwargs)
        peak = self._status("VmHWM") - self.baseline - min(held, HELD_ALLOWANCE)
        return Measured(value, peak, self._cpu_seconds() - cpu)

    def close(self) -> None:
        """End the process. Everything it had to give is read, so it is killed (bubblewrap takes the
        sandbox with it) rather than left to tear down torch: 1 to 3 s per process, counted in
        every submission's time."""
        self.client.finish()
        self.process.kill()
        self.process.wait()

    def __enter__(self) -> MeasuringProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _python_pid(self) -> int:
        """The host pid of the worker: the one Python process under bubblewrap (it cannot fork)."""
        pythons = sandboxed_pythons(self.process.pid, "lcteach.grading.worker")
        if len(pythons) != 1:
            raise ChannelError(f"expected one measuring process, found {len(pythons)}")
        return pythons[0]

    def _status(self, key: str) -> int:
        """A memory figure of /proc/<pid>/status, in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise ChannelError(f"no {key} for the measuring process")

    def _cpu_seconds(self) -> float:
        """The process's CPU time: the exact run time of its live threads, or, when larger, the
        clock-tick count of /proc/<pid>/stat, which also holds threads that have ended."""
        total = 0
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, IndexError, ValueError):
                continue
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime and stime (fields 14 and 15 of stat)
        return max(total / 1e9, ticks / os.sysconf("SC_CLK_TCK"))
