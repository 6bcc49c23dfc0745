"""Week 1 graders: one part per graded exercise of the Week 1 exercises notebook.

Usage in a graded cell: ``grade.dense_attention(dense_attention)`` runs the self-check on
public inputs; in a graded run the trusted grader runs the same checks on hidden inputs.
Each part's checks are the ``CHECKS`` of its own module, ``partN_<name>.py`` (N its number in
the notebook), loaded when the part first grades: importing this package loads no check and
no reference implementation. A part's record id is ``lcteach.grading.week1.<name>``; graded
records rely on it, so a part keeps its name.
"""

from lcteach.grading.session import Part

dense_attention = Part(__name__, "dense_attention", 3, "part1_dense_attention")
causal_mask = Part(__name__, "causal_mask", 1, "part2_causal_mask")
sliding_window = Part(__name__, "sliding_window", 2, "part3_sliding_window")
online_softmax_step = Part(__name__, "online_softmax_step", 3, "part4_online_softmax_step")
tiled_attention = Part(__name__, "tiled_attention", 4, "part5_tiled_attention")
process_in_chunks = Part(__name__, "process_in_chunks", 3, "part6_process_in_chunks")
fit_exponent = Part(__name__, "fit_exponent", 2, "part7_fit_exponent")
causal_tiled_attention = Part(__name__, "causal_tiled_attention", 4, "part8_causal_tiled_attention")
tiled_attention_backward = Part(__name__, "tiled_attention_backward", 4, "part9_tiled_attention_backward")
schedule_chunks = Part(__name__, "schedule_chunks", 2, "part10_schedule_chunks")

PARTS = (
    dense_attention,
    causal_mask,
    sliding_window,
    online_softmax_step,
    tiled_attention,
    process_in_chunks,
    fit_exponent,
    causal_tiled_attention,
    tiled_attention_backward,
    schedule_chunks,
)
POINTS = {part.__name__: part.points for part in PARTS}
