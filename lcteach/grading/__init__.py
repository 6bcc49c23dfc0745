"""Graders for the course's exercises: ``from lcteach.grading import week1 as grade``.

Each week module exposes one function per graded part, ``grade.<part>(student_fn, seed=None)``;
``lcteach.grading.core`` holds the engine they share, ``lcteach.grading.record`` the records
the kernel writes and ``lcteach.grading.policy`` what student code may use. This module holds
what the autograder needs without loading torch (the release builds notebooks with it).
"""

MIMETYPE = "application/vnd.lcteach.grading-record+json"  # the output bundle a grading record travels in


class RecordError(ValueError):
    """A grading record is damaged or was not written by lcteach.grading."""
