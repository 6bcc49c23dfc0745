"""What several Week 2 parts share: odd window sizes, Longformer's global tokens and its reference
(BigBird, part 4, builds on Longformer, part 3)."""

from __future__ import annotations

import torch
from torch.nn.attention.flex_attention import or_masks

from lcteach.grading.session import Case
from lcteach.masks import generate_global as reference_global
from lcteach.masks import generate_symmetric_window as reference_symmetric_window


def odd(case: Case, low: int, high: int) -> int:
    """An odd integer in [low, high] (a symmetric window's size), drawn from the case's generator."""
    return 2 * case.randint(low // 2, (high - 1) // 2) + 1


def global_flags(global_tokens, n: int) -> torch.Tensor:
    """Bool (n,): the global positions, given as a count g (positions 0 .. g-1) or a list of positions."""
    positions = range(global_tokens) if isinstance(global_tokens, int) else global_tokens
    flags = torch.zeros(n, dtype=torch.bool)
    flags[[p for p in positions if p < n]] = True
    return flags


def longformer_reference(window: int, global_tokens, dilation: int = 1):
    """Longformer's mask_mod from the references: a symmetric window of ``window`` keys, ``dilation``
    apart, or a global token."""
    return or_masks(reference_symmetric_window(window, dilation), reference_global(global_tokens))
