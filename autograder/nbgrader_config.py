"""nbgrader configuration of the LCTeach course root (this folder; see README.md here).

nbgrader reads this file when it runs in this folder (the course scripts run it so), and
`make lab` adds this folder to JUPYTER_CONFIG_PATH so that the formgrader finds it too.
"""

import os

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearHiddenTests,
    ClearOutput,
    DeduplicateIds,
    GetGrades,
    IgnorePattern,
    LimitOutput,
    OverwriteCells,
    OverwriteKernelspec,
    SaveAutoGrades,
)

from autograder.preprocessors import GradeStagedCopiesOnly, GuardedExecute, JudgeGradeCells, RestoreReleasedCells
from autograder.sanitizing import HideOutputsAfterGrading, SanitizeMarkdown, SanitizeOutputs

c = get_config()  # noqa: F821 - nbgrader's config loader provides get_config

# The course root is this folder wherever nbgrader is started (make lab starts it elsewhere),
# and wherever the folder is copied (make demo grades a copy).
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
# make grade JOBS=N runs N nbgrader processes on one SQLite gradebook: a writer waits up to
# 120 s for another's lock instead of SQLite's default 5 s ("database is locked").
c.CourseDirectory.db_url = f"sqlite:///{os.path.join(c.CourseDirectory.root, 'gradebook.db')}?timeout=120"

# A graded cell gets 120 s; longer means a hang (a correct notebook runs in at most 60 s in all).
# The grading scripts also bound each submission's total wall clock (make grade TIMEOUT=...).
c.Execute.timeout = 120
# After a timeout the kernel is interrupted; if it has not finished the cell this much later,
# it ignores interrupts: GuardedExecute shuts it down and marks the remaining cells not run.
c.Execute.iopub_timeout = 20

# Autograding (autograder/preprocessors.py): the submission is rebuilt on the released notebook,
# executed by an Execute that survives a dead kernel and bounds outputs, and each graded cell's
# result is the verdict of the trusted grader, which calls the student's functions through the
# channel while the kernel runs the cell (autograder/judging.py), never the kernel's own word.
# The student's markdown and outputs are made safe to render in the formgrader and the feedback
# (autograder/sanitizing.py): markdown before the run, outputs once the scores are saved.
# Only the grader's staged copy of a submission is autograded (`make grade`): the formgrader's
# Autograde button and a bare `nbgrader autograde` read the submitted folder itself, links and all,
# and are refused with a message naming `make grade`.
c.Autograde.sanitize_preprocessors = [
    GradeStagedCopiesOnly,
    RestoreReleasedCells,
    ClearOutput,
    DeduplicateIds,
    OverwriteKernelspec,
    OverwriteCells,
    SanitizeMarkdown,
    CheckCellMetadata,
]
c.Autograde.autograde_preprocessors = [
    GuardedExecute,
    IgnorePattern,
    ClearMetadataPreprocessor,
    JudgeGradeCells,
    LimitOutput,
    SaveAutoGrades,
    AssignLatePenalties,
    SanitizeOutputs,
    CheckCellMetadata,
]
c.GuardedExecute.max_output_bytes = 1_000_000  # per cell: text, images, tracebacks
# Once the last cell has run, everything the kernel had to give is read: it is killed rather
# than left to tear down torch (about 1 s per graded notebook).
c.GuardedExecute.shutdown_kernel = "immediate"

# Student code runs in a sandbox: bubblewrap, no network, nothing of the repository but lcteach,
# a scratch copy of its folder as the only writable place, as a uid of its own, with these limits (autograder/sandbox.py).
# Autograding alone (GuardedExecute): `nbgrader validate` and the Validate button of `make lab`,
# which load this file too, run nbgrader's plain Execute in the student's own kernel.
c.GuardedExecute.kernel_manager_class = "autograder.sandbox.SandboxedKernelManager"
c.SandboxedKernelManager.memory_bytes = 4 * 2**30  # address space
c.SandboxedKernelManager.processes = 64  # processes and threads of the sandbox user
c.SandboxedKernelManager.cpu_seconds = 300  # CPU time of the kernel in all
c.SandboxedKernelManager.file_bytes = 64 * 2**20  # largest file it may write
c.SandboxedKernelManager.scratch_bytes = 256 * 2**20  # its private /tmp, the only place it can write
c.SandboxedKernelManager.call_seconds = 60  # one graded call of student code

# Feedback shows each test cell as the student received it: the hidden test code (and the
# hidden seed it passes to the grader) is cut out before the HTML is written.
# Outputs of cells after the first graded cell are not shown (student code could print the
# hidden inputs it was called with there). Student markdown and outputs are sanitised again
# (autograder/sanitizing.py), so that feedback of a notebook autograded before is safe too.
c.GenerateFeedback.preprocessors = [
    GetGrades,
    ClearHiddenTests,
    HideOutputsAfterGrading,
    SanitizeMarkdown,
    SanitizeOutputs,
    CSSHTMLHeaderPreprocessor,
]

# Collecting LMS downloads (`nbgrader zip_collect`, run by `make grade`): put the zip or the
# files from Canvas's "Download Submissions" in downloaded/<week>/archive/. Canvas names each
# file <name>_<user id>_<attachment id>_<file>.ipynb, with _LATE_ after the name for late
# work and -<n> before .ipynb for re-uploads, e.g. doejane_LATE_4711_99012_exercises-1.ipynb.
# The student id is <name> (doejane); to use Canvas's numeric user id instead, move the
# student_id group onto the first number. The regexp is matched against the absolute path.
c.FileNameCollectorPlugin.named_regexp = (
    r".*/(?P<student_id>[^/_]+)_(?:LATE_)?\d+_\d+_(?P<file_id>[^/]+?)(?:-\d+)?\.ipynb$"
)
# Skip files whose notebook name is not one of the week's released notebooks.
c.ZipCollectApp.strict = True
# Unpack the downloads with regular files only: a zip member that is a symbolic link (its Unix
# mode in the zip) or a device is never created, nor a name outside the folder (autograder/copying.py).
c.ZipCollectApp.extractor_plugin = "autograder.copying.SafeExtractor"
# `nbgrader collect` copies a student's exchange submission without following links (copying.py).
c.ExchangeFactory.collect = "autograder.copying.SafeExchangeCollect"
# grades.csv leaves a week a student never submitted empty (status "missing"), not 0 (exporting.py).
c.ExportApp.plugin_class = "autograder.exporting.CsvExport"
