"""Grade the class in autograder/: collect LMS zips, autograde, feedback, grades CSV, table.

Submissions come from autograder/submitted/<student>/<week>/ (where `nbgrader collect` puts
them) and from LMS downloads in autograder/downloaded/<week>/archive/ (`nbgrader zip_collect`;
nbgrader_config.py describes the file names). Each submission is autograded on its own within
a wall-clock timeout; one that is missing, malformed, crashes or hangs scores 0 with a reason.
Feedback goes to autograder/feedback/, grades to autograder/reports/grades.csv.
"""

from autograder.cli import add_jobs_option, add_timeout_option, add_week_option, argument_parser, run_script
from autograder.layout import COURSE_ROOT
from autograder.pipeline import grade_class
from autograder.releasing import released_weeks
from autograder.report import format_report


def main() -> None:
    parser = argument_parser("grade", __doc__)
    add_week_option(parser)
    add_timeout_option(parser)
    add_jobs_option(parser)
    args = parser.parse_args()
    print(format_report(grade_class(COURSE_ROOT, released_weeks(COURSE_ROOT, args.week), args.timeout, args.jobs)))


if __name__ == "__main__":
    run_script(main)
