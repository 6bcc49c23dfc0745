"""ALiBi (Press et al., 2022): no position embeddings, a penalty on the score that grows linearly with distance."""

from __future__ import annotations

import torch

from lcteach.score_mods.evaluation import ScoreMod
from lcteach.validation import check_positive_int


def alibi_slopes(heads: int) -> torch.Tensor:
    """ALiBi's slopes m_h = 2^(-8 (h + 1) / heads) for heads h = 0 .. heads - 1: float64 (heads,).

    A geometric sequence from 2^(-8 / heads) (head 0, the steepest: the most local) down to
    2^-8 (the last head, nearly flat: almost global). 8 heads: 1/2, 1/4, ..., 1/256.
    """
    check_positive_int("heads", heads)
    return torch.exp2(-8.0 * torch.arange(1, heads + 1, dtype=torch.float64) / heads)


def generate_alibi(heads: int) -> ScoreMod:
    """ALiBi's bias: add m_h * (j - i) to the score of query i and key j in head h (slopes: ``alibi_slopes``).

    Off-by-ones: h counts from 0, as FlexAttention's h index, so head 0 has the slope
    2^(-8 / heads), not 2^0; the bias is 0 for the query itself (j = i) and -m_h per position
    back. For keys after the query (j > i) it is positive: ALiBi is meant for causal attention,
    so combine it with causal_mask. For ``heads`` not a power of two the paper interleaves the
    slopes of the two nearest powers; this uses 2^(-8 (h + 1) / heads) for every head count,
    as attention-gym's generate_alibi_bias does. Heads past ``heads - 1`` get ever flatter slopes.
    Computed in the score's dtype; adds one multiply-add per pair.
    """
    check_positive_int("heads", heads)

    def alibi(score, b, h, q_idx, kv_idx):
        slope = torch.exp2((h + 1).to(score.dtype) * (-8.0 / heads))
        return score + slope * (kv_idx - q_idx).to(score.dtype)

    alibi.__name__ = f"alibi_{heads}_heads"
    return alibi
