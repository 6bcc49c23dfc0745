"""The sandbox that autograding kernels run in.

nbgrader executes a submission in a Jupyter kernel. Here that kernel is started by
``SandboxedKernelManager`` inside bubblewrap, as an unprivileged uid of its own (no account):

- its own network namespace with no interfaces but loopback: no network;
- a read-only view of the system, the Python installation and the ``lcteach`` package, and
  nothing else of the repository: no ``solutions/``, no gradebook, no other submission;
- the submission's folder read-only; the kernel starts in a copy of it under /tmp, a private
  tmpfs of bounded size, which is the only place it can write;
- rlimits on address space, processes, CPU time and file size.

The kernel talks to nbgrader over Unix sockets (ZeroMQ's ipc transport) in a private folder,
since TCP on the host's loopback is out of its reach. Limits are traits, set in
``nbgrader_config.py`` (``c.SandboxedKernelManager.memory_bytes = ...``).
"""

from __future__ import annotations

import grp
import os
import shutil
import sys
import tempfile
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import Integer, Unicode

LCTEACH = Path(__file__).resolve().parent.parent / "lcteach"
SCRATCH_WORKDIR = "/tmp/submission"  # the kernel's working folder inside the sandbox


class SandboxedKernelManager(AsyncKernelManager):
    """An AsyncKernelManager whose kernel runs in a bubblewrap sandbox (see the module docstring)."""

    memory_bytes = Integer(4 * 2**30, help="address-space limit of the kernel (RLIMIT_AS)").tag(config=True)
    processes = Integer(64, help="processes and threads the sandbox user may run (RLIMIT_NPROC)").tag(config=True)
    cpu_seconds = Integer(300, help="CPU seconds the kernel may use in all (RLIMIT_CPU)").tag(config=True)
    file_bytes = Integer(64 * 2**20, help="largest file the kernel may write (RLIMIT_FSIZE)").tag(config=True)
    scratch_bytes = Integer(256 * 2**20, help="size of the kernel's private /tmp, its only writable place").tag(
        config=True
    )
    call_seconds = Integer(60, help="time limit of one graded call of student code (LCTEACH_CALL_TIME_LIMIT)").tag(
        config=True
    )
    uid_base = Integer(
        100_000_000,
        help="kernels run as uid uid_base + the grading process's pid: a uid of "
        "their own, so that the process limit (per uid) of one submission cannot starve "
        "another graded beside it; no account with such a uid may exist",
    ).tag(config=True)
    group = Unicode("nogroup", help="the unprivileged group the kernel runs as").tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.transport = "ipc"
        self._private = Path(tempfile.mkdtemp(prefix="lcteach-kernel-"))
        self.ip = str(self._private / "socket")

    async def _async_pre_start_kernel(self, **kwargs):
        command, kwargs = await super()._async_pre_start_kernel(**kwargs)
        uid, gid = self.uid_base + os.getpid(), grp.getgrnam(self.group).gr_gid
        workdir = Path(kwargs.get("cwd") or os.getcwd()).resolve()
        # The kernel reads its connection file and creates its sockets in the private folder,
        # which becomes the sandbox user's.
        connection = self._private / "connection.json"
        shutil.copyfile(self.connection_file, connection)
        command = [str(connection) if part == self.connection_file else part for part in command]
        for path in (self._private, connection):
            os.chown(path, uid, gid)
        for path in (workdir, *workdir.rglob("*")):  # the sandbox user copies the submission: let it read
            os.chmod(path, path.stat().st_mode | (0o555 if path.is_dir() else 0o444))
        kwargs["env"] = {
            **kwargs.get("env", os.environ),
            "HOME": "/tmp",
            "MPLCONFIGDIR": "/tmp/matplotlib",
            # lcteach.grading: put the grading record in each graded cell's result; call limit
            "LCTEACH_GRADING_RECORD": "1",
            "LCTEACH_CALL_TIME_LIMIT": str(self.call_seconds),
        }
        # Start in a copy of the submission on the scratch tmpfs: the only writable place.
        start = [
            "sh",
            "-c",
            f'mkdir -p {SCRATCH_WORKDIR}; cp -R "$0"/. {SCRATCH_WORKDIR} 2>/dev/null; cd {SCRATCH_WORKDIR} && exec "$@"',
            str(workdir),
        ]
        return self._sandbox(uid, gid, workdir) + start + command, kwargs

    def _sandbox(self, uid: int, gid: int, workdir: Path) -> list[str]:
        prefix = Path(sys.prefix).resolve()
        base = Path(sys.base_prefix).resolve()
        readonly = ["/usr", "/etc", str(base), str(prefix), str(LCTEACH)]
        # bubblewrap starts as root (it must read the Python installation under /root) without a
        # user namespace; inside, setpriv drops to the sandbox user for good, so that the process
        # limit applies (root is exempt from RLIMIT_NPROC) and no capability is left.
        command = [
            "bwrap",
            "--die-with-parent",
            "--new-session",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--cap-add",
            "CAP_SETUID",
            "--cap-add",
            "CAP_SETGID",
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
            "--dev",
            "/dev",
            "--perms",
            "1777",
            "--size",
            str(self.scratch_bytes),
            "--tmpfs",
            "/tmp",
            # ipykernel exits when its parent looks gone; in the pid namespace the pid means nothing.
            "--unsetenv",
            "JPY_PARENT_PID",
        ]
        readonly.append(str(workdir))
        mounts = [*dict.fromkeys(readonly), str(self._private)]
        # Folders above the mounts: bubblewrap would create them readable by root alone.
        for folder in sorted({str(a) for m in mounts for a in Path(m).parents if a != Path("/")}, key=len):
            command += ["--perms", "0755", "--dir", folder]
        for path in dict.fromkeys(readonly):
            command += ["--ro-bind", path, path]
        command += [
            "--bind",
            str(self._private),
            str(self._private),
            "--chdir",
            "/tmp",
            "--",
            "setpriv",
            f"--reuid={uid}",
            f"--regid={gid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
            "prlimit",
            f"--as={self.memory_bytes}",
            f"--nproc={self.processes}",
            f"--cpu={self.cpu_seconds}",
            f"--fsize={self.file_bytes}",
            "--core=0",
            "--",
        ]
        return command

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
            shutil.rmtree(self._private, ignore_errors=True)
