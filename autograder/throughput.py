"""Measure grading throughput: one sample class graded with 1 worker, then with --jobs workers.

The class is the demo class of a week, repeated to --size submissions (full, partial and
untouched solutions in turn). Both runs grade identical copies, each in a new course root,
with the code `make grade` runs; the scores must agree. Prints both reports' throughput and
the speedup. On a quiet machine: other work on the cores skews the ratio.
"""

import shutil
import tempfile
from pathlib import Path

from autograder.cli import add_jobs_option, add_timeout_option, argument_parser, run_script
from autograder.demo_class import build_demo_class
from autograder.layout import PipelineError
from autograder.pipeline import grade_class
from autograder.releasing import weeks

KINDS = ("full", "partial", "untouched")


def build_class(root: Path, week: str, size: int) -> None:
    """The demo class of ``week`` in ``root``, its submissions repeated to ``size`` students."""
    build_demo_class(root, week)
    submitted = root / "submitted"
    for number in range(size):
        shutil.copytree(submitted / KINDS[number % len(KINDS)], submitted / f"student{number + 1:03d}")
    for demo in submitted.iterdir():
        if not demo.name.startswith("student"):
            shutil.rmtree(demo)


def main() -> None:
    parser = argument_parser("throughput", __doc__)
    parser.add_argument("--week", default=weeks()[0], help="the week to grade (default: %(default)s)")
    parser.add_argument("--size", type=int, default=40, help="submissions in the class (default: %(default)s)")
    add_timeout_option(parser)
    add_jobs_option(parser)
    args = parser.parse_args()
    if args.jobs < 2:
        raise PipelineError("give --jobs 2 or more: the run with 1 worker is the baseline")
    base = Path(tempfile.mkdtemp(prefix="lcteach-throughput-"))
    build_class(base / "one", args.week, args.size)
    shutil.copytree(base / "one", base / "many")
    reports = {}
    for jobs, root in ((1, base / "one"), (args.jobs, base / "many")):
        print(f"grading {args.size} submissions of {args.week} with {jobs} worker(s)", flush=True)
        reports[jobs] = grade_class(root, [args.week], args.timeout, jobs)
    one, many = reports[1], reports[args.jobs]
    if [(r.submission, r.score) for r in one.results] != [(r.submission, r.score) for r in many.results]:
        raise PipelineError("the two runs gave different scores")
    for jobs, report in reports.items():
        seconds = [r.seconds for r in report.results]
        print(
            f"{jobs} worker(s): {len(seconds)} submissions in {report.seconds:.0f} s, "
            f"{60 * len(seconds) / report.seconds:.1f} per minute; per submission {min(seconds):.1f}-"
            f"{max(seconds):.1f} s, mean {sum(seconds) / len(seconds):.1f} s"
        )
    print(f"speedup with {args.jobs} workers: {one.seconds / many.seconds:.2f}x (scores identical)")
    shutil.rmtree(base)


if __name__ == "__main__":
    run_script(main)
