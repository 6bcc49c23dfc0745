"""What student code may use from lcteach in a graded run: tools, never answers.

One policy, read by the autograder's sandbox (it mounts these modules and nothing else of
lcteach, so the reference implementations are not there to call) and by the code reading
(``autograder/tampering.py``, an advisory report to the instructor).
"""

# Modules a graded function may call: they hold no reference answer and need none.
STUDENT_TOOLS = (
    "lcteach.measure.peak_memory",  # track_peak_memory, peak_memory
    "lcteach.measure.units",  # format_bytes
    "lcteach.validation",  # argument checks
)

# Tools that are no answer either, but draw or benchmark with the references: a student may
# use them in a notebook, and the self-check does not hold them against a graded function,
# but graded runs do not have them (the sandbox holds no reference).
PRESENTATION_TOOLS = (
    "lcteach.viz",  # pictures
    "lcteach.widgets",  # explorers
    "lcteach.bench",  # the benchmark harness
)

# What the student's side of grading runs: the notebooks' ``grade.<part>(fn)`` hand-off to the
# trusted grader, the channel, the grader's probes, the measuring process. No part's checks,
# expected values or references: those live in the trusted process only.
GRADING_SIDE = (
    "lcteach.grading",
    "lcteach.grading.channel",
    "lcteach.grading.handoff",
    "lcteach.grading.kernel",
    "lcteach.grading.probes",
    "lcteach.grading.results",
    "lcteach.grading.session",
    "lcteach.grading.worker",
    "lcteach.grading.week1",
    "lcteach.grading.week2",
)

# Every lcteach module the sandbox holds (packages by their __init__), parents included.
SANDBOX_MODULES = ("lcteach", "lcteach.lazy", "lcteach.measure", *STUDENT_TOOLS, *GRADING_SIDE)
