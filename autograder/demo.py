"""The instructor's tour: release a week in a new course root, submit it as a sample class,
grade the class with the code `make grade` runs, and print the table and the feedback files.

The course root stays for you to open the feedback and the gradebook; nothing else is in it,
so delete it when done.
"""

import tempfile
from pathlib import Path

from autograder.cli import add_jobs_option, add_timeout_option, argument_parser, run_script
from autograder.demo_class import DEMO_STUDENTS, build_demo_class
from autograder.layout import PipelineError
from autograder.pipeline import grade_class
from autograder.releasing import weeks
from autograder.report import format_report


def main() -> None:
    parser = argument_parser("demo", __doc__)
    parser.add_argument("--week", default=weeks()[0], help="the week to demo (default: %(default)s)")
    parser.add_argument("--dir", type=Path, help="course root to create (default: a new temporary folder)")
    add_timeout_option(parser)
    add_jobs_option(parser)
    args = parser.parse_args()
    if args.dir and args.dir.exists() and any(args.dir.iterdir()):
        raise PipelineError(f"{args.dir} is not empty: give a new folder to --dir")
    root = (args.dir or Path(tempfile.mkdtemp(prefix="lcteach-demo-"))).resolve()
    print(f"building a sample class for {args.week} in {root}")
    build_demo_class(root, args.week)
    for student, submits in DEMO_STUDENTS.items():
        print(f"  {student:10} submits {submits}")
    print(format_report(grade_class(root, [args.week], args.timeout, args.jobs)))
    print(f"course root: {root}")


if __name__ == "__main__":
    run_script(main)
