"""Regenerate the feedback HTML of every autograded submission (after manual grading, say).

Writes autograder/feedback/<student>/<week>/<notebook>.html with `nbgrader generate_feedback`,
one subprocess per submission: a submission whose feedback fails or hangs is listed, and costs
no other its feedback.
"""

from autograder.cli import add_jobs_option, add_week_option, argument_parser, run_script
from autograder.feedback_html import generate_feedback
from autograder.layout import COURSE_ROOT
from autograder.releasing import released_weeks


def main() -> None:
    parser = argument_parser("feedback", __doc__)
    add_week_option(parser)
    add_jobs_option(parser)
    args = parser.parse_args()
    report = generate_feedback(COURSE_ROOT, released_weeks(COURSE_ROOT, args.week), args.jobs)
    print("\n".join(str(path) for path in report.files) or "no autograded submissions: run `make grade` first")
    for line in report.failures:
        print(f"feedback not written: {line}")


if __name__ == "__main__":
    run_script(main)
