"""Score modifications as FlexAttention ``score_mod`` functions: ALiBi's distance bias and tanh soft-capping.

A score_mod is ``score_mod(score, b, h, q_idx, kv_idx) -> score``: it receives the scaled score
q . k * scale of one (query, key) pair and returns the score that the softmax uses, in the
score's dtype. The mask is applied after it, so a masked pair stays masked whatever the
score_mod returns. Like a mask_mod it is built from elementwise tensor ops, because
FlexAttention calls it on scalars (under vmap) and lcteach's kernels on broadcast grids
(``dense_attention``, ``tiled_attention``, ``banded_attention``, ``block_sparse_attention`` and
``flex_sparse_attention`` take ``score_mod=``).
"""

from lcteach.score_mods.alibi import alibi_slopes, generate_alibi
from lcteach.score_mods.evaluation import ScoreMod, apply_score_mod, materialize_scores
from lcteach.score_mods.softcap import generate_softcap
