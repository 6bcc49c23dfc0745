"""What student code may use from lcteach in a graded function: tools, never answers.

One list, read by the guard in the kernel (``lcteach.grading.core``) and by the code reading
(``autograder/tampering.py``). Everything else in lcteach is a reference implementation that
earns no credit when a graded function calls it.
"""

STUDENT_TOOLS = (
    "lcteach.viz",  # pictures
    "lcteach.widgets",  # explorers
    "lcteach.measure.peak_memory",  # track_peak_memory, peak_memory
    "lcteach.measure.units",  # format_bytes
    "lcteach.validation",  # argument checks
    "lcteach.bench",  # the benchmark harness
)
