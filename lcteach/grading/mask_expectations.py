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
from lcteach.masks import evaluate_grid

if TYPE_CHECKING:
    from lcteach.grading.session import Case

VMAP_HINT = (
    "use tensor operations (>=, -, %, &, |) on the indices, not Python if/and/or: "
    "FlexAttention calls mask_mod on tensors under torch.vmap"
)


def student_mask(case: Case, mask_mod, n_q: int, n_k: int, heads: int | None = None) -> torch.Tensor:
    """Materialise a student's mask_mod with FlexAttention's create_mask, as real code would: bool
    (n_q, n_k) for one head, or bool (heads, n_q, n_k) when ``heads`` is given (h runs over 0 .. heads-1)."""
    if not is_function(mask_mod):
        raise CheckFailed(
            f"expected a mask_mod function, got {type(mask_mod).__name__}",
            "a generate_... function must return its inner mask_mod function, not call it",
        )
    try:
        mask = case.call(create_mask, mask_mod, None, heads, n_q, n_k, device="cpu")
    except CheckFailed as failure:
        if "vmap" not in failure.full_text():
            raise
        raise failure.reworded(f"{failure.message}: your mask_mod does not work under torch.vmap", VMAP_HINT) from None
    if heads is None:
        return expect_tensor(mask, "the materialised mask", (1, 1, n_q, n_k), torch.bool, "(1, 1, Nq, Nk)", "")[0, 0]
    return expect_tensor(mask, "the materialised mask", (1, heads, n_q, n_k), torch.bool, "(1, H, Nq, Nk)", "")[0]


def expect_mask(
    seen: torch.Tensor, expected: torch.Tensor, what: str, mistakes: dict[str, torch.Tensor], inputs: str = ""
) -> None:
    """Bool masks equal, or fail naming the kind of difference and the known mistake ``seen`` matches,
    if any. ``what`` names the mask in words that hold for any input; ``inputs`` (the call and the
    sizes) and the differing entries go into the details. Masks are (n_q, n_k), or (heads, n_q, n_k)
    for a mask materialised per head."""
    if torch.equal(seen, expected):
        return
    wrong = (seen != expected).nonzero()
    extra, missing = bool((seen & ~expected).any()), bool((~seen & expected).any())
    kind = (
        "allows pairs it should block and blocks pairs it should allow"
        if extra and missing
        else "allows pairs it should block"
        if extra
        else "blocks pairs it should allow"
    )
    hint = next((f"your mask matches {name}" for name, m in mistakes.items() if torch.equal(seen, m)), "")
    *head, i, j = wrong[0].tolist()
    where = f"head {head[0]}, " if head else ""
    example = f"({where}query {i}, key {j}) should be {'allowed' if expected[tuple(wrong[0])] else 'blocked'}"
    raise CheckFailed(
        f"{what} {kind}",
        hint,
        details=f"{inputs + ': ' if inputs else ''}{len(wrong)} of {seen.numel()} entries differ; e.g. {example}",
    )


def grid(n_q: int, n_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Query indices (n_q, 1) and key indices (1, n_k), for writing down masks of mistakes."""
    return torch.arange(n_q)[:, None], torch.arange(n_k)[None, :]


def materialised(mask_mod, n_q: int, n_k: int | None = None, heads: int | None = None) -> torch.Tensor:
    """A reference mask_mod as a bool (n_q, n_k) matrix, or (heads, n_q, n_k) when ``heads`` is given.
    On the broadcast grid (``evaluate_grid``): the trusted grader never imports torch._dynamo."""
    mask = evaluate_grid(mask_mod, n_q, n_k, heads=heads or 1)[0]
    return mask[0] if heads is None else mask
