"""Build the student release: solutions/<week>/*.py -> autograder/source/ -> nbgrader -> course/.

Every week folder of solutions/ is built into notebooks with deterministic cell ids, run
through `nbgrader generate_assignment`, and copied into course/<week>/, whose stale files are
removed. course/ is committed: commit it with the solutions change that produced it.
"""

from autograder.cli import argument_parser, run_script
from autograder.layout import COURSE, COURSE_ROOT
from autograder.releasing import release


def main() -> None:
    argument_parser("release", __doc__).parse_args()
    released = release(COURSE_ROOT, COURSE)
    print(f"released {', '.join(released)} into {COURSE}")


if __name__ == "__main__":
    run_script(main)
