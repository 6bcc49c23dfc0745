"""Regenerate the feedback HTML of every autograded submission (after manual grading, say).

Writes autograder/feedback/<student>/<week>/<notebook>.html with `nbgrader generate_feedback`.
"""

from autograder.pipeline import (
    COURSE_ROOT,
    add_week_option,
    argument_parser,
    generate_feedback,
    released_weeks,
    run_script,
)


def main() -> None:
    parser = argument_parser("feedback", __doc__)
    add_week_option(parser)
    args = parser.parse_args()
    files = generate_feedback(COURSE_ROOT, released_weeks(COURSE_ROOT, args.week))
    print("\n".join(str(path) for path in files) or "no autograded submissions: run `make grade` first")


if __name__ == "__main__":
    run_script(main)
