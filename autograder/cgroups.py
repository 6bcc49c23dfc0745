"""One cgroup per submission: memory, processes and CPU weight limited for the whole tree.

rlimits hold per process, so forked children together could hold more than the memory limit,
and a submission's busy processes could take the CPU from the one graded beside it. When the
grading user may create cgroups, every sandboxed process of a submission (its kernel and its
measuring processes) starts inside the submission's cgroup:

- cgroup v2 (a stock Debian or Ubuntu desktop: systemd delegates a subtree to each user, and
  to root the whole tree): a child of the highest cgroup above this process that the user can
  write, with ``memory.max``, ``pids.max`` and ``cpu.weight``;
- cgroup v1 as root (hybrid hierarchies, as on our machines): the same under the memory, pids
  and cpu controllers' own trees (``memory.limit_in_bytes``, ``pids.max``, ``cpu.shares``).

Where neither is possible the submission keeps the per-process limits, and ``enforced()``
says so in the report. The cgroup is removed, its processes killed, when the submission is
done.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_ENV = "LCTEACH_CGROUP"  # the submission's cgroup folders, os.pathsep-separated, for the sandbox
V1_CONTROLLERS = ("memory", "pids", "cpu")


@dataclass(frozen=True)
class GroupLimits:
    memory_bytes: int = 6 * 2**30  # the submission's processes together
    processes: int = 256
    cpu_weight: int = 100  # v2's default weight: each submission gets an equal share


class SubmissionCgroup:
    """The cgroup of one submission (``paths`` empty when none could be made)."""

    def __init__(self, name: str, limits: GroupLimits = GroupLimits()):
        self.name, self.limits = name, limits
        self.paths: list[Path] = []
        self.version: int | None = None
        try:
            self._create()
        except OSError:
            self.remove()
            self.paths, self.version = [], None

    @classmethod
    def probe(cls) -> str:
        """What ``enforced()`` says on this machine, found by making and removing a cgroup."""
        group = cls(f"probe-{os.getpid()}")
        try:
            return group.enforced()
        finally:
            group.remove()

    def enforced(self) -> str:
        """A line for the report: which limits hold for the submission as a whole."""
        if not self.paths:
            return "no cgroup could be made: memory, process and CPU limits hold per process only"
        return (
            f"cgroup v{self.version} per submission: {self.limits.memory_bytes // 2**20} MiB, "
            f"{self.limits.processes} processes, CPU weight {self.limits.cpu_weight}"
        )

    def add(self, pid: int) -> None:
        """Move process ``pid`` (and so the children it starts from now on) into the cgroup."""
        for path in self.paths:
            (path / "cgroup.procs").write_text(str(pid))

    def oom_kills(self) -> int:
        """How many of the submission's processes the kernel killed at the memory limit."""
        for name in ("memory.events", "memory.oom_control"):  # v2, v1: a line "oom_kill N"
            for path in self.paths:
                try:
                    lines = (path / name).read_text().splitlines()
                except OSError:
                    continue
                for line in lines:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and value.strip().isdigit():
                        return int(value)
        return 0

    def remove(self) -> None:
        """Kill what is left in the cgroup and remove it."""
        for path in reversed(self.paths):
            for _ in range(50):
                pids = _pids(path)
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.02)
            try:
                path.rmdir()
            except OSError:
                pass

    def _create(self) -> None:
        unified = _own_v2_cgroup()
        if unified is not None:
            parent = _writable_ancestor(unified)
            if parent is not None and {"memory", "pids", "cpu"} <= _controllers(parent):
                (parent / "cgroup.subtree_control").write_text("+memory +pids +cpu")
                base = parent / "lcteach"
                base.mkdir(exist_ok=True)
                (base / "cgroup.subtree_control").write_text("+memory +pids +cpu")
                path = base / self.name
                path.mkdir()
                self.paths, self.version = [path], 2
                (path / "memory.max").write_text(str(self.limits.memory_bytes))
                if (path / "memory.swap.max").exists():
                    (path / "memory.swap.max").write_text("0")
                (path / "pids.max").write_text(str(self.limits.processes))
                (path / "cpu.weight").write_text(str(self.limits.cpu_weight))
                return
        if os.geteuid() != 0 or not all((CGROUP_ROOT / c / "cgroup.procs").exists() for c in V1_CONTROLLERS):
            return
        for controller in V1_CONTROLLERS:
            path = CGROUP_ROOT / controller / "lcteach" / self.name
            path.mkdir(parents=True)
            self.paths.append(path)
        self.version = 1
        memory, pids, cpu = self.paths
        (memory / "memory.limit_in_bytes").write_text(str(self.limits.memory_bytes))
        (pids / "pids.max").write_text(str(self.limits.processes))
        (cpu / "cpu.shares").write_text(str(self.limits.cpu_weight * 1024 // 100))


def _pids(path: Path) -> list[int]:
    try:
        return [int(line) for line in (path / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _own_v2_cgroup() -> Path | None:
    """This process's cgroup in the v2 hierarchy, when that hierarchy has controllers."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            path = CGROUP_ROOT / line[3:].lstrip("/")
            if (CGROUP_ROOT / "cgroup.controllers").exists() and path.is_dir():
                return path
    return None


def _writable_ancestor(path: Path) -> Path | None:
    """The highest cgroup at or above ``path`` whose children this user may create (its delegated subtree)."""
    best = None
    for candidate in [path, *path.parents]:
        if CGROUP_ROOT not in (candidate, *candidate.parents):
            break
        if os.access(candidate, os.W_OK) and os.access(candidate / "cgroup.procs", os.W_OK):
            best = candidate
    return best


def _controllers(path: Path) -> set[str]:
    try:
        return set((path / "cgroup.controllers").read_text().split())
    except OSError:
        return set()
