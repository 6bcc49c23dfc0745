"""The sandboxes that student code runs in: the autograding kernel and the measuring processes.

Every process that runs student code starts inside bubblewrap:

- its own network namespace with no interfaces but loopback: no network;
- a read-only view of the system and the Python installation, and of lcteach only the modules
  the policy names (``lcteach.grading.policy.SANDBOX_MODULES``): no reference implementation,
  no grader check, nothing else of the repository (no ``solutions/``, no gradebook, no other
  submission);
- a private tmpfs of bounded size as /tmp, the only place it can write (/proc is read-only);
- rlimits on address space, CPU time and file size, and on processes where they hold.

As root, bubblewrap starts without a user namespace and ``setpriv`` drops the process to a uid
of its own (no account): the process limit (per uid) then counts this submission alone. As
an ordinary user, bubblewrap makes an unprivileged user namespace; the process limit would
count all of the user's own processes, so it is set to what the user runs now plus the limit.

The kernel talks to nbgrader over Unix sockets (ZeroMQ's ipc transport) that it creates in its
bounded /tmp (``KERNEL_IPC``), which nbgrader reaches from outside through
``/proc/<pid>/root``, and to the trusted grader over ``grader.sock``. That socket and the
connection file sit in a private folder on the host that the sandbox sees read-only: nothing
the kernel writes lands outside its bounded /tmp. Limits are traits, set in
``nbgrader_config.py`` (``c.SandboxedKernelManager.memory_bytes = ...``).
"""

from __future__ import annotations

import asyncio
import grp
import importlib.util
import os
import shlex
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psutil
from jupyter_client.manager import AsyncKernelManager
from traitlets import Integer, Unicode

from autograder.cgroups import CGROUP_ENV
from lcteach.grading.policy import SANDBOX_MODULES

REPO = Path(__file__).resolve().parent.parent
SCRATCH_WORKDIR = "/tmp/submission"  # the kernel's working folder inside the sandbox
SCRATCH_ENV = "LCTEACH_SCRATCH"  # a folder per submission for the kernels' private folders (pipeline.py)
GRADER_SOCKET = "grader.sock"  # in the kernel's private folder: the channel to the trusted grader
START_SECONDS = 60  # for a sandboxed Python to start
KERNEL_IPC = "/tmp/.kernel-ipc"  # inside the sandbox: the kernel's ZeroMQ sockets are KERNEL_IPC-<port>


@dataclass(frozen=True)
class Limits:
    """What one sandboxed process may use."""

    memory_bytes: int = 4 * 2**30  # address space (RLIMIT_AS)
    processes: int = 64  # processes and threads (RLIMIT_NPROC)
    cpu_seconds: int = 300  # CPU time (RLIMIT_CPU)
    file_bytes: int = 64 * 2**20  # largest file (RLIMIT_FSIZE)
    scratch_bytes: int = 256 * 2**20  # the private /tmp


def lcteach_files() -> list[Path]:
    """The files of the lcteach modules the sandbox holds (SANDBOX_MODULES), as they are on disk."""
    files = []
    for name in SANDBOX_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise RuntimeError(f"the sandbox policy names {name}, which does not exist")
        files.append(Path(spec.origin).resolve())
    return files


def rootless() -> bool:
    return os.geteuid() != 0


def sandbox_command(
    limits: Limits, uid: int, readonly: list[Path] = (), writable: list[Path] = (), workdir: str = "/tmp"
) -> list[str]:
    """The command prefix that runs a command in a sandbox (see the module docstring).

    ``readonly`` and ``writable`` are extra host paths bound at the same place; ``uid`` is the
    uid the process runs as when bubblewrap starts as root (ignored otherwise).
    """
    prefix, base = Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()
    system = [Path("/usr"), Path("/etc"), base, prefix]
    # A Python reached through a link (a .venv that links to an environment elsewhere) is
    # started by that path: the same folder is bound there too.
    aliases = {Path(p).absolute(): Path(p).resolve() for p in (sys.prefix, sys.base_prefix)}
    aliases = {alias: target for alias, target in aliases.items() if alias != target}
    files = lcteach_files()
    command = [
        "bwrap",
        "--die-with-parent",
        "--new-session",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        *(["--unshare-user"] if rootless() else ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]),
        "--symlink",
        "usr/lib",
        "/lib",
        "--symlink",
        "usr/lib64",
        "/lib64",
        "--symlink",
        "usr/bin",
        "/bin",
        "--proc",
        "/proc",
        # Read-only: a process cannot reset its own memory high-water mark (clear_refs) that the
        # trusted grader reads from outside, or write anything else of its own there.
        "--remount-ro",
        "/proc",
        "--dev",
        "/dev",
        "--perms",
        "1777",
        "--size",
        str(limits.scratch_bytes),
        "--tmpfs",
        "/tmp",
        # ipykernel exits when its parent looks gone; in the pid namespace the pid means nothing.
        "--unsetenv",
        "JPY_PARENT_PID",
    ]
    mounts = [*dict.fromkeys([*system, *readonly]), *files, *writable, *aliases]
    # Folders above the mounts: bubblewrap would create them readable by root alone.
    for folder in sorted({str(a) for m in mounts for a in Path(m).parents if a != Path("/")}, key=len):
        command += ["--perms", "0755", "--dir", folder]
    for path in [*dict.fromkeys([*system, *readonly]), *files]:
        command += ["--ro-bind", str(path), str(path)]
    for alias, target in aliases.items():
        command += ["--ro-bind", str(target), str(alias)]
    for path in writable:
        command += ["--bind", str(path), str(path)]
    command += ["--chdir", workdir, "--"]
    command = _join_cgroup() + command
    if not rootless():
        # Inside, setpriv drops to the sandbox uid for good, so that the process limit applies
        # (root is exempt from RLIMIT_NPROC) and no capability is left.
        gid = grp.getgrnam("nogroup").gr_gid
        command += [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={gid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ]
    processes = limits.processes + (_tasks_of_user() if rootless() else 0)
    command += [
        "prlimit",
        f"--as={limits.memory_bytes}",
        f"--nproc={processes}",
        f"--cpu={limits.cpu_seconds}",
        f"--fsize={limits.file_bytes}",
        "--core=0",
        "--",
    ]
    return command


def _join_cgroup() -> list[str]:
    """A prefix that moves the sandbox into the submission's cgroup before bubblewrap starts, when
    the grader made one (``LCTEACH_CGROUP``, see cgroups.py); its children stay in it."""
    paths = [p for p in os.environ.get(CGROUP_ENV, "").split(os.pathsep) if p]
    if not paths:
        return []
    targets = " ".join(shlex.quote(str(Path(p) / "cgroup.procs")) for p in paths)
    return ["sh", "-c", f'for procs in {targets}; do echo $$ > "$procs" || exit 97; done; exec "$@"', "sh"]


def _tasks_of_user() -> int:
    """Processes and threads the current user runs now (RLIMIT_NPROC counts them all)."""
    uid, count = os.getuid(), 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(entry / "task"))
            except OSError:
                continue
    return count


def sandboxed_pythons(pid: int, module: str) -> list[int]:
    """Host pids of the processes under ``pid`` that run ``python [options] -m module`` (in a sandbox)."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            command = child.cmdline()
        except psutil.Error:
            continue
        python = command[:1] and Path(command[0]).name.startswith("python")  # not bwrap, whose arguments hold it too
        if python and any(command[i : i + 2] == ["-m", module] for i in range(1, len(command))):
            found.append(child.pid)
    return found


def sandbox_environment(**extra: str) -> dict[str, str]:
    """The environment of a sandboxed process: this one's, with a home in the scratch folder."""
    return {
        **os.environ,
        "HOME": "/tmp",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
        **extra,
    }


class SandboxedKernelManager(AsyncKernelManager):
    """An AsyncKernelManager whose kernel runs in a bubblewrap sandbox (see the module docstring).

    It also opens ``grader_listener``, the socket on which the kernel's ``grade.<part>(fn)``
    hands the student's function to the trusted grader.
    """

    memory_bytes = Integer(Limits.memory_bytes, help="address-space limit of the kernel (RLIMIT_AS)").tag(config=True)
    processes = Integer(Limits.processes, help="processes and threads the sandbox may run (RLIMIT_NPROC)").tag(
        config=True
    )
    cpu_seconds = Integer(Limits.cpu_seconds, help="CPU seconds the kernel may use in all (RLIMIT_CPU)").tag(
        config=True
    )
    file_bytes = Integer(Limits.file_bytes, help="largest file the kernel may write (RLIMIT_FSIZE)").tag(config=True)
    scratch_bytes = Integer(
        Limits.scratch_bytes, help="size of the kernel's private /tmp, its only writable place"
    ).tag(config=True)
    call_seconds = Integer(60, help="time limit of one call of student code by the grader").tag(config=True)
    uid_base = Integer(
        100_000_000,
        help="as root, kernels run as uid uid_base + the grading process's pid: a uid of their "
        "own, so that the process limit (per uid) of one submission cannot starve another "
        "graded beside it; no account with such a uid may exist",
    ).tag(config=True)
    group = Unicode("nogroup", help="the unprivileged group the kernel runs as (as root)").tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.transport = "ipc"
        # Under the submission's scratch folder when the pipeline made one (it removes that folder
        # however the kernel ends, a kill included).
        self._private = Path(tempfile.mkdtemp(prefix="lcteach-kernel-", dir=os.environ.get(SCRATCH_ENV) or None))
        self.ip = str(self._private / "socket")
        self.grader_listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.grader_listener.bind(str(self._private / GRADER_SOCKET))
        self.grader_listener.listen(4)

    @property
    def limits(self) -> Limits:
        return Limits(self.memory_bytes, self.processes, self.cpu_seconds, self.file_bytes, self.scratch_bytes)

    @property
    def sandbox_uid(self) -> int:
        return self.uid_base + os.getpid()

    @property
    def measuring_uid(self) -> int:
        """As root, the uid of this submission's measuring processes: not the kernel's, whose
        threads would count against their process limit (pids stay below 2**22)."""
        return self.sandbox_uid + 2**22

    async def _async_pre_start_kernel(self, **kwargs):
        self.ip = KERNEL_IPC  # the connection file holds the kernel's own view (a restart too)
        command, kwargs = await super()._async_pre_start_kernel(**kwargs)
        uid = self.sandbox_uid
        workdir = Path(kwargs.get("cwd") or os.getcwd()).resolve()
        # The kernel reads its connection file and connects to the grader's socket in the private
        # folder, which it sees read-only.
        connection = self._private / "connection.json"
        shutil.copyfile(self.connection_file, connection)
        command = [str(connection) if part == self.connection_file else part for part in command]
        # ipykernel_launcher, behind the fence that takes torch's fused attention away first.
        command = [part if part != "ipykernel_launcher" else "lcteach.grading.kernel" for part in command]
        if not rootless():
            gid = grp.getgrnam(self.group).gr_gid
            for path in (self._private, connection, self._private / GRADER_SOCKET):
                os.chown(path, uid, gid)
        for path in (workdir, *workdir.rglob("*")):  # the sandbox user copies the submission: let it read
            os.chmod(path, path.stat().st_mode | (0o555 if path.is_dir() else 0o444))
        kwargs["env"] = sandbox_environment(
            LCTEACH_GRADING="kernel",
            LCTEACH_GRADING_SOCKET=str(self._private / GRADER_SOCKET),
        )
        # Start in a copy of the submission on the scratch tmpfs: the only writable place.
        start = [
            "sh",
            "-c",
            f'mkdir -p {SCRATCH_WORKDIR}; cp -R "$0"/. {SCRATCH_WORKDIR} 2>/dev/null; cd {SCRATCH_WORKDIR} && exec "$@"',
            str(workdir),
        ]
        prefix = sandbox_command(self.limits, uid, readonly=[workdir, self._private])
        return prefix + start + command, kwargs

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kwargs) -> None:
        """Launch, then reach the kernel's sockets in its /tmp from outside (``/proc/<pid>/root``)."""
        await super()._async_launch_kernel(kernel_cmd, **kwargs)
        process = self.provisioner.process
        for _ in range(int(START_SECONDS / 0.02)):
            pids = sandboxed_pythons(process.pid, "lcteach.grading.kernel")
            if pids or process.poll() is not None:
                break
            await asyncio.sleep(0.02)
        if pids:
            self.ip = f"/proc/{pids[0]}/root{KERNEL_IPC}"

    async def _async_interrupt_kernel(self) -> None:
        """Interrupt by a message on the control channel: ipykernel then signals itself.

        A SIGINT sent the usual way goes to bubblewrap's process group; the kernel runs in a
        session of its own inside the sandbox and would never see it.
        """
        if not self.has_kernel:
            return await super()._async_interrupt_kernel()
        self._connect_control_socket()
        self.session.send(self._control_socket, self.session.msg("interrupt_request", content={}))

    interrupt_kernel = _async_interrupt_kernel

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            self.grader_listener.close()
            shutil.rmtree(self._private, ignore_errors=True)
