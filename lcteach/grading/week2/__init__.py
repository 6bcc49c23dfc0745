"""Week 2 graders: sparse patterns as mask_mods, a seeded random layout, block-sparse and top-k
attention, and reachability through stacked layers. Called from the Week 2 exercises notebook.

Usage in a graded cell: ``grade.strided(generate_strided)`` runs the self-check on public
inputs; in a graded run the trusted grader runs the same checks on hidden inputs.
Each part's checks are the ``CHECKS`` of its own module, ``partN_<name>.py`` (N its number in
the notebook), loaded when the part first grades; what several parts share is in
``common.py``. Importing this package loads no check and no reference implementation. A
part's record id is ``lcteach.grading.week2.<name>``; graded records rely on it, so a part
keeps its name.
"""

from lcteach.grading.session import Part

strided = Part(__name__, "strided", 2, "part1_strided")
random_block_layout = Part(__name__, "random_block_layout", 2, "part2_random_block_layout")
longformer = Part(__name__, "longformer", 2, "part3_longformer")
bigbird = Part(__name__, "bigbird", 3, "part4_bigbird")
block_sparse_attention = Part(__name__, "block_sparse_attention", 4, "part5_block_sparse_attention")
topk_attention = Part(__name__, "topk_attention", 3, "part6_topk_attention")
minimal_layers = Part(__name__, "minimal_layers", 2, "part7_minimal_layers")
select_blocks = Part(__name__, "select_blocks", 3, "part8_select_blocks")

PARTS = (
    strided,
    random_block_layout,
    longformer,
    bigbird,
    block_sparse_attention,
    topk_attention,
    minimal_layers,
    select_blocks,
)
POINTS = {part.__name__: part.points for part in PARTS}
