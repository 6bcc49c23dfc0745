"""Where the course is, and the error every step of the course scripts raises.

A *course root* is an nbgrader course directory: ``nbgrader_config.py``, ``source/<week>/``
(built from ``solutions/``, releasing.py), ``release/<week>/``, ``submitted/<student>/<week>/``,
``autograded/``, ``feedback/`` and ``gradebook.db``. The repository's course root is
``autograder/``; the demo and the tests build their own in a temporary folder.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COURSE_ROOT = REPO / "autograder"
SOLUTIONS = REPO / "solutions"
COURSE = REPO / "course"
CONFIG = "nbgrader_config.py"


class PipelineError(Exception):
    """A step of the course pipeline failed; the message says which and what to do."""
