"""A fresh measuring process: it runs a student's notebook code and then only the calls it is sent.

The trusted grader measures what it cannot trust a student's process to report (peak memory,
work) from outside a process that does nothing else: ``python -m lcteach.grading.worker FD``,
started in a sandbox of its own with a connected socket as file descriptor ``FD``.

1. It imports torch, runs one tiny attention computation and one ``create_mask`` (so that
   torch's lazy allocations happen before anything is measured), puts up the kernel's fence (no fused attention,
   ``lcteach.grading.kernel``) and forbids itself new processes: a seccomp filter
   refuses fork, vfork and any clone that is not a thread, so every byte and every CPU second
   of the work stays in this one process, where the grader reads them (/proc/<pid>/status,
   /proc/<pid>/task/*/schedstat). Threads may run: they are part of the process.
2. It sends ``ready``: the grader reads its resident memory now, before any student code.
3. It receives ``setup`` with the notebook's code cells and the name of the student's
   function, runs the cells with their output discarded (a cell that fails is skipped, as
   in the notebook), and serves the function over the channel (``channel.Server``) until
   the grader says done.
4. The next graded part's ``setup`` brings only the cells that came since: they run in the same
   namespace, on top of the last part's, as they would in a fresh process that ran them all.
   The process ends when the grader closes the channel.

Everything here runs before the student's code, so the filter is in place before any student
code can run; once set, a seccomp filter cannot be removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import platform
import socket
import struct
import sys

from lcteach.grading.channel import ChannelError, Server, recv_frame, send_frame
from lcteach.grading.kernel import fence

# x86_64 and aarch64 syscall numbers; aarch64 has no fork or vfork syscalls.
_SYSCALLS = {
    "x86_64": {"arch": 0xC000003E, "clone": 56, "clone3": 435, "fork": 57, "vfork": 58},
    "aarch64": {"arch": 0xC00000B7, "clone": 220, "clone3": 435},
}
_CLONE_THREAD = 0x00010000
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_EPERM, _ENOSYS = 1, 38


def _bpf(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def forbid_new_processes() -> None:
    """Install a seccomp filter that refuses every new process (threads stay allowed)."""
    numbers = _SYSCALLS.get(platform.machine())
    if numbers is None:
        raise OSError(f"no process filter for {platform.machine()}")
    load, jeq, jset, jge, ret = 0x20, 0x15, 0x45, 0x35, 0x06
    program = [
        _bpf(load, 0, 0, 4),  # the architecture
        _bpf(jeq, 1, 0, numbers["arch"]),
        _bpf(ret, 0, 0, _ERRNO | _EPERM),
        _bpf(load, 0, 0, 0),  # the syscall number
        _bpf(jge, 0, 1, 0x40000000),  # x32 syscalls
        _bpf(ret, 0, 0, _ERRNO | _EPERM),
    ]
    for name in ("fork", "vfork"):
        if name in numbers:
            program += [_bpf(jeq, 0, 1, numbers[name]), _bpf(ret, 0, 0, _ERRNO | _EPERM)]
    program += [
        _bpf(jeq, 0, 1, numbers["clone3"]),  # glibc falls back to clone for threads
        _bpf(ret, 0, 0, _ERRNO | _ENOSYS),
        _bpf(jeq, 0, 3, numbers["clone"]),
        _bpf(load, 0, 0, 16),  # clone's flags (low 32 bits of the first argument)
        _bpf(jset, 1, 0, _CLONE_THREAD),
        _bpf(ret, 0, 0, _ERRNO | _EPERM),
        _bpf(ret, 0, 0, _ALLOW),
    ]
    code = b"".join(program)
    buffer = ctypes.create_string_buffer(code)

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(program), ctypes.cast(buffer, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_no_new_privs, pr_set_seccomp, seccomp_mode_filter = 38, 22, 2
    if libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if libc.prctl(pr_set_seccomp, seccomp_mode_filter, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")


def _warm_up() -> None:
    import torch

    torch.set_num_threads(1)
    q = torch.randn(1, 1, 64, 16, dtype=torch.float64)
    for dtype in (torch.float32, torch.float64):
        x = q.to(dtype)
        scores = (x @ x.transpose(-2, -1)).masked_fill(torch.ones(64, 64, dtype=torch.bool).tril() == 0, -1e9)
        (torch.softmax(scores - scores.amax(-1, keepdim=True), -1) @ x).exp().logsumexp(-1).sum().item()
    # FlexAttention's create_mask (vmap) takes some 70 MiB the first time: before the baseline, not in it.
    from torch.nn.attention.flex_attention import create_mask

    create_mask(lambda b, h, q_idx, kv_idx: q_idx >= kv_idx, None, None, 8, 8, device="cpu")


class _Shell:
    """What ``get_ipython()`` returns here: every method does nothing (magics, shell escapes)."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


def run_cells(cells: list[str], namespace: dict | None = None, first: int = 0) -> dict:
    """Run notebook cells (as plain Python, ``measuring.python_source``) in ``namespace`` (a new
    one by default), their output discarded; a cell that fails is skipped. ``first`` is the
    notebook index of the first cell, for tracebacks."""
    if namespace is None:
        shell = _Shell()
        namespace = {"__name__": "__main__", "get_ipython": lambda: shell}
    sink = io.StringIO()
    for index, source in enumerate(cells, first):
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            try:
                exec(compile(source, f"<cell {index}>", "exec"), namespace)  # noqa: S102 - the student's own code
            except BaseException:  # noqa: BLE001 - as in the notebook, a failing cell does not stop the next
                pass
        sink.seek(0)
        sink.truncate()
    return namespace


def main(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    _warm_up()
    fence()
    forbid_new_processes()
    send_frame(sock, {"op": "ready"}, [])
    namespace, count = None, 0
    while True:  # one graded part after another
        try:
            header, _ = recv_frame(sock)
        except ChannelError:  # the grader closed the channel: nothing is left to measure
            return
        cells, name = header.get("cells"), header.get("student")
        if header.get("op") != "setup" or type(cells) is not list or type(name) is not str:
            raise ChannelError("expected the setup frame")
        cells = [cell for cell in cells if type(cell) is str]
        namespace = run_cells(cells, namespace, count)
        count += len(cells)
        Server(sock).serve({"student": namespace.get(name)})


if __name__ == "__main__":
    os.environ["LCTEACH_GRADING"] = "worker"  # the notebook's grade.<part>(...) calls do nothing here
    main(int(sys.argv[1]))
