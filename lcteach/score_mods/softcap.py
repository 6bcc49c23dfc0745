"""Tanh soft-capping (Gemma 2, Grok-1): squash attention logits into (-cap, cap) before the softmax."""

from __future__ import annotations

import torch

from lcteach.score_mods.evaluation import ScoreMod
from lcteach.validation import check_positive_number


def generate_softcap(cap: float) -> ScoreMod:
    """score -> cap * tanh(score / cap), smoothly bounding every score to (-cap, cap).

    Nearly the identity for |score| much smaller than cap (slope 1 at 0; 3.5% below at |score| =
    cap / 3), so ordinary scores pass unchanged, while a huge logit can beat any other by at
    most 2 * cap: one key cannot take all the weight by an outsized dot product. The gradient
    is 1 - tanh^2(score / cap): it fades for scores near the cap. Gemma 2 caps attention
    logits at 50 (``generate_softcap(50.0)``). Computed in the score's dtype.
    """
    cap = check_positive_number("cap", cap)

    def softcap(score, b, h, q_idx, kv_idx):
        return cap * torch.tanh(score / cap)

    softcap.__name__ = f"softcap_{cap:g}"
    return softcap
