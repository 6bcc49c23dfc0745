"""The command line of the course scripts (``python -m autograder.<script>``): parser, options, errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from autograder.layout import PipelineError
from autograder.pipeline import DEFAULT_TIMEOUT


def argument_parser(script: str, doc: str) -> argparse.ArgumentParser:
    """The command line parser of ``python -m autograder.<script>``, described by its docstring."""
    return argparse.ArgumentParser(
        prog=f"python -m autograder.{script}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_week_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--week", action="append", help="a released week (repeatable; default: every released week)")


def add_jobs_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="submissions graded at once (default 1)")


def add_timeout_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"wall clock allowed per submission (default {DEFAULT_TIMEOUT})",
    )


def run_script(main: Callable[[], None]) -> None:
    """Run a course script's ``main``; a PipelineError ends it with its message and status 1."""
    try:
        main()
    except PipelineError as error:
        sys.exit(f"error: {error}")
