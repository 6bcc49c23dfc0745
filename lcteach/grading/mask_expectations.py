"""Comparisons of attention masks: a student's mask_mod materialised as real code would, and
bool masks compared entry by entry, naming the mistake a wrong mask matches. Also the mask
helpers that several parts use to write down masks of mistakes and references.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.nn.attention.flex_attention import create_mask

from lcteach.grading.channel import is_function
from lcteach.grading.expectations import expect_tensor
from lcteach.grading.results import CheckFailed
from lcteach.masks import materialize_mask

if TYPE_CHECKING:
    from lcteach.grading.session import Case


def student_mask(case: Case, mask_mod, n_q: int, n_k: int) -> torch.Tensor:
    """Materialise a student's mask_mod with FlexAttention's create_mask, as real code would: bool (n_q, n_k)."""
    if not is_function(mask_mod):
        raise CheckFailed(
            f"expected a mask_mod function, got {type(mask_mod).__name__}",
            "a generate_... function must return its inner mask_mod function, not call it",
        )
    try:
        mask = case.call(create_mask, mask_mod, None, None, n_q, n_k, device="cpu")
    except CheckFailed as failure:
        if "vmap" not in failure.message:
            raise
        raise CheckFailed(
            failure.message,
            "use tensor operations (>=, -, %, &, |) on the indices, not Python "
            "if/and/or: FlexAttention calls mask_mod on tensors under torch.vmap",
        ) from None
    return expect_tensor(mask, "the materialised mask", (1, 1, n_q, n_k), torch.bool)[0, 0]


def expect_mask(seen: torch.Tensor, expected: torch.Tensor, what: str, mistakes: dict[str, torch.Tensor]) -> None:
    """Bool masks equal, or fail naming a differing entry and the known mistake ``seen`` matches, if any."""
    if torch.equal(seen, expected):
        return
    wrong = (seen != expected).nonzero()
    hint = next((f"your mask matches {name}" for name, m in mistakes.items() if torch.equal(seen, m)), "")
    i, j = wrong[0].tolist()
    raise CheckFailed(
        f"{what}: {len(wrong)} of {seen.numel()} entries differ; e.g. (query {i}, key {j}) "
        f"should be {'allowed' if expected[i, j] else 'blocked'}",
        hint,
    )


def grid(n_q: int, n_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Query indices (n_q, 1) and key indices (1, n_k), for writing down masks of mistakes."""
    return torch.arange(n_q)[:, None], torch.arange(n_k)[None, :]


def materialised(mask_mod, n_q: int, n_k: int | None = None) -> torch.Tensor:
    """A reference mask_mod as a bool (n_q, n_k) matrix."""
    return materialize_mask(mask_mod, n_q, n_k)[0, 0]
