"""Feedback HTML for many submissions, each in a process of its own (run by feedback_html.generate_feedback).

    python -m autograder.feedback_worker --jobs N --timeout SECONDS <week> <student> [<week> <student> ...]

Run in the course root. Importing nbgrader takes about 2.5 s, writing one submission's feedback
a fraction of that; so this process imports it once and forks one child per submission, which
runs ``nbgrader generate_feedback <week> --student=<student> --force`` in itself and exits.
A child that fails, crashes or runs past the timeout (then it is killed, with its process
group) costs that submission's feedback alone. For each submission one JSON line goes to
stdout: ``{"student", "week", "status": "ok" | "failed" | "timeout", "seconds", "log"}`` with the
end of the child's log when it did not succeed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time

LOG_TAIL = 4000  # characters of a failed child's log sent back


def _child(week: str, student: str, log_fd: int) -> None:
    """Write one submission's feedback in this (forked) process, then leave without cleanup."""
    status = 1
    try:
        os.setsid()  # its own process group: the parent kills all of it at the timeout
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        from nbgrader.apps.generatefeedbackapp import GenerateFeedbackApp

        try:
            GenerateFeedbackApp.launch_instance(argv=[week, f"--student={student}", "--force"])
            status = 0
        except SystemExit as stop:
            status = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # noqa: BLE001 - anything at all: report it through the log and the status
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _tail(path: str) -> str:
    with open(path, errors="replace") as file:
        return file.read()[-LOG_TAIL:]


def run(submissions: list[tuple[str, str]], jobs: int, timeout: float) -> None:
    pending = list(submissions)
    running: dict[int, tuple[str, str, float, str]] = {}  # pid -> week, student, start, log path
    while pending or running:
        while pending and len(running) < jobs:
            week, student = pending.pop(0)
            log_fd, log_path = tempfile.mkstemp(prefix="lcteach-feedback-", suffix=".log")
            pid = os.fork()
            if pid == 0:
                _child(week, student, log_fd)
            os.close(log_fd)
            running[pid] = (week, student, time.monotonic(), log_path)
        for pid, (week, student, start, log_path) in list(running.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            late = not done and time.monotonic() - start > timeout
            if late:
                for kill in (os.killpg, os.kill):  # its group, then itself if it never got its group
                    try:
                        kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                os.waitpid(pid, 0)
            elif not done:
                continue
            code = None if late else os.waitstatus_to_exitcode(status)
            outcome = "timeout" if late else "ok" if code == 0 else "failed"
            line = {"student": student, "week": week, "status": outcome, "seconds": time.monotonic() - start}
            if outcome != "ok":
                line["log"] = _tail(log_path) + ("" if late or code >= 0 else f"\nkilled by signal {-code}")
            print(json.dumps(line), flush=True)
            os.unlink(log_path)
            del running[pid]
        if running:
            time.sleep(0.05)


def _warm_up() -> None:
    """Render a small notebook of our own with the feedback template, so that what nbconvert does
    once per process (lazy imports, Pygments, Mistune) is done here, before the forks: a child
    then takes about 0.5 s instead of 1.5 s. Only trusted content runs in this process."""
    import nbformat
    from nbconvert.exporters import HTMLExporter
    from nbgrader.server_extensions.formgrader import handlers
    from traitlets.config import Config

    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Warm-up\n\n$x$ **b** `c`\n\n| a |\n|---|\n| 1 |"),
            nbformat.v4.new_code_cell(
                "def f(x):\n    return x",
                outputs=[
                    nbformat.v4.new_output("stream", name="stdout", text="\x1b[31mx\x1b[0m"),
                    nbformat.v4.new_output("error", ename="E", evalue="v", traceback=["t"]),
                ],
            ),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    notebook.metadata["language_info"] = {"name": "python"}
    config = Config()
    config.HTMLExporter.template_name = "feedback"
    config.HTMLExporter.extra_template_basedirs = [handlers.template_path]
    config.HTMLExporter.extra_template_paths = [os.path.join(handlers.static_path, "node_modules/bootstrap/dist/css")]
    resources = {"nbgrader": {"notebook": "warm-up", "score": 0, "max_score": 0, "late_penalty": 0}}
    HTMLExporter(config=config).from_notebook_node(notebook, resources=resources)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m autograder.feedback_worker", description=__doc__)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("pairs", nargs="*", metavar="WEEK STUDENT")
    args = parser.parse_args()
    if len(args.pairs) % 2:
        parser.error("give a week and a student for each submission")
    # Import what every child needs once, here, before any fork (no thread is started by it):
    # nbgrader, and what the course root's nbgrader_config.py imports (the preprocessors).
    import nbgrader.apps.generatefeedbackapp  # noqa: F401
    from traitlets.config import PyFileConfigLoader

    for step in (lambda: PyFileConfigLoader("nbgrader_config.py", path=os.getcwd()).load_config(), _warm_up):
        try:
            step()
        except Exception:  # noqa: BLE001 - only a speed-up: each child does it again, and reports errors
            pass

    run(list(zip(args.pairs[::2], args.pairs[1::2])), max(1, args.jobs), args.timeout)


if __name__ == "__main__":
    main()
