"""Running commands for the course scripts: nbgrader and the workers, each in a process of its own.

Every command runs in a process of its own inside the course root, so one failure stays in
that command; at its timeout it is killed with every process it started (kernels too). Its
output is read back into the one line that says why it failed. nbgrader commands are forked
from a server process that imported nbgrader and the judge once (``run_nbgrader``,
nbgrader_preload.py); other commands are subprocesses (``run_command``).
"""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from autograder.layout import REPO, PipelineError

# nbgrader commands are forked from one server process that imported nbgrader_preload.py.
_FORKS = multiprocessing.get_context("forkserver")
_FORKS.set_forkserver_preload(["autograder.nbgrader_preload"])
_STARTING = threading.Lock()  # processes start one at a time (make grade JOBS=N starts them from N threads)


@dataclass(frozen=True)
class CommandResult:
    returncode: int | None  # None: killed at the timeout
    output: str
    seconds: float


def run_command(
    command: list[str], cwd: Path, timeout: float | None = None, env: dict[str, str] | None = None
) -> CommandResult:
    """Run ``command`` (with ``env`` added to this environment); at the timeout kill it and every
    process it started (kernels too)."""
    start = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=_environment(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
        returncode = process.returncode
    except subprocess.TimeoutExpired:
        _kill_tree(process.pid)
        output, _ = process.communicate()
        returncode = None
    return CommandResult(returncode, output, time.monotonic() - start)


def run_nbgrader(
    args: list[str], cwd: Path, timeout: float | None = None, env: dict[str, str] | None = None
) -> CommandResult:
    """Run ``nbgrader <args>`` as ``run_command`` would, in a process forked from the server that
    imported nbgrader and the judge once: the same environment, output, exit status and timeout."""
    start = time.monotonic()
    with tempfile.NamedTemporaryFile(prefix="lcteach-nbgrader-", suffix=".log") as log:
        process = _FORKS.Process(target=_nbgrader_process, args=(args, str(cwd), _environment(env), log.name))
        with _STARTING:
            process.start()
        process.join(timeout)
        finished = process.exitcode is not None
        if not finished:
            _kill_tree(process.pid)
            process.join()
        output = Path(log.name).read_text(errors="replace")
    returncode = process.exitcode if finished else None
    return CommandResult(returncode, output, time.monotonic() - start)


def _nbgrader_process(args: list[str], cwd: str, env: dict[str, str], log: str) -> None:
    """The forked nbgrader process: a session of its own, ``env`` as its environment, its output
    in ``log``. It leaves with nbgrader's exit status, waiting for no thread nbgrader left."""
    status = 1
    try:
        os.setsid()  # its own process group: a timeout kills all of it
        descriptor = os.open(log, os.O_WRONLY | os.O_APPEND)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(descriptor, 1)
        os.dup2(descriptor, 2)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        from autograder.nbgrader_preload import NbGraderApp  # imported by the server: no time

        NbGraderApp.launch_instance(argv=args)
        status = 0
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
    except BaseException:  # noqa: BLE001 - anything at all: its traceback goes to the log, the status says failed
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _environment(env: dict[str, str] | None) -> dict[str, str]:
    """This process's environment with ``env`` added, and what the course's commands need."""
    # nbgrader runs `alembic` from PATH when it creates a gradebook: put this interpreter's scripts first;
    # nbgrader_config.py names the kernel manager in autograder.sandbox: put the repository on the path.
    return dict(
        os.environ,
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        **(env or {}),
    )


def _kill_tree(pid: int) -> None:
    # Kernels start in sessions of their own, so killing the process group is not enough.
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    with _ignore_vanished():
        os.killpg(pid, signal.SIGKILL)
    for child in children:
        with _ignore_vanished():
            child.kill()


@contextmanager
def _ignore_vanished() -> Iterator[None]:
    try:
        yield
    except (ProcessLookupError, psutil.NoSuchProcess):
        pass


def nbgrader(root: Path, *args: str) -> None:
    """Run ``nbgrader <args>`` in the course root; raise PipelineError with its errors if it fails."""
    result = run_nbgrader(list(args), root)
    if result.returncode != 0:
        raise PipelineError(f"`nbgrader {' '.join(args)}` failed in {root}:\n{_error_lines(result.output)}")


def _error_lines(output: str) -> str:
    """nbgrader's ERROR/CRITICAL log lines and the traceback lines under them; all output if none."""
    lines, keep = [], False
    for line in output.splitlines():
        if line.startswith("["):
            keep = "| ERROR]" in line or "| CRITICAL]" in line
        if keep:
            lines.append(line)
    return "\n".join(lines) or output.strip()


_EXCEPTION_LINE = re.compile(r"^\s*[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")


def failure_summary(output: str) -> str:
    """One line saying why nbgrader failed: the last exception of its traceback, else its first error."""
    errors = [line.strip() for line in _error_lines(output).splitlines() if line.strip()]
    exceptions = [line for line in errors if _EXCEPTION_LINE.match(line)]
    return (exceptions[-1:] or errors[:1] or ["no error message"])[0][:200]
