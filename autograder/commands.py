"""Running commands for the course scripts: nbgrader and the workers, each in a subprocess of its own.

Every nbgrader command runs as a subprocess inside the course root, so one failure stays in
that command; at its timeout it is killed with every process it started (kernels too). Its
output is read back into the one line that says why it failed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from autograder.layout import REPO, PipelineError

# nbgrader's command line. When it is imported, jsonschema compiles the grammar of its optional IRI
# format checker (rfc3987_syntax): 2.5 s of CPU in every nbgrader process, one per graded notebook.
# No notebook schema checks an IRI, so nbgrader runs without that checker.
NBGRADER = (
    sys.executable,
    "-c",
    "import sys; sys.modules['rfc3987_syntax'] = None; from nbgrader.apps.nbgraderapp import main; main()",
)


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
    # nbgrader runs `alembic` from PATH when it creates a gradebook: put this interpreter's scripts first;
    # nbgrader_config.py names the kernel manager in autograder.sandbox: put the repository on the path.
    env = dict(
        os.environ,
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        **(env or {}),
    )
    start = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
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
    result = run_command([*NBGRADER, *args], root)
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
