"""Week 2, part 4: ``generate_bigbird(window, global_tokens, layout, block_size, causal=False)``, BigBird by composition."""

from __future__ import annotations

import torch
from torch.nn.attention.flex_attention import and_masks, or_masks

from lcteach.grading.mask_expectations import expect_mask, grid, materialised, student_mask
from lcteach.grading.session import Case, check
from lcteach.grading.week2.common import global_flags, longformer_reference, odd
from lcteach.kernels import block_layout as reference_block_layout
from lcteach.masks import causal_mask as reference_causal_mask
from lcteach.masks import generate_bigbird as reference_bigbird
from lcteach.masks import generate_block_sparse as reference_block_sparse_mask
from lcteach.masks import generate_random_blocks as reference_random_blocks
from lcteach.masks import generate_symmetric_window as reference_symmetric_window


def _bigbird_reference(window: int, global_tokens, layout: torch.Tensor, block_size: int, causal: bool):
    parts = or_masks(longformer_reference(window, global_tokens), reference_block_sparse_mask(layout, block_size))
    return and_masks(reference_causal_mask, parts) if causal else parts


def _bigbird_mistakes(n, window, global_tokens, layout, block_size, causal) -> dict[str, torch.Tensor]:
    i, j = grid(n, n)
    window_mask = materialised(reference_symmetric_window(window), n)
    g = global_flags(global_tokens, n)
    global_mask = g[:, None] | g[None, :]
    blocks = layout[i // block_size, j // block_size]
    earlier = j <= i if causal else torch.ones(n, n, dtype=torch.bool)
    mistakes = {
        "the layout transposed: query i attends key j when layout[i // block_size, j // block_size]": earlier
        & (window_mask | global_mask | layout.T[i // block_size, j // block_size]),
        "and_masks where BigBird takes the union (or_masks) of its parts": earlier
        & (window_mask | global_mask)
        & blocks,
        "the window and global tokens without the random blocks": earlier & (window_mask | global_mask),
        "the random blocks alone": earlier & blocks,
    }
    if block_size <= min(layout.shape):
        mistakes["block indices from % instead of //: position i lies in block i // block_size"] = earlier & (
            window_mask | global_mask | layout[i % block_size, j % block_size]
        )
    if causal:
        mistakes["no causal mask although causal=True: and_masks(causal, bigbird)"] = window_mask | global_mask | blocks
        whole = "and_masks(causal, ...) must wrap the whole union"
        mistakes[f"the causal mask on the Longformer part only: {whole}, random blocks included"] = (
            (j <= i) & (window_mask | global_mask)
        ) | blocks
        mistakes[f"the causal mask on the window only: {whole}"] = ((j <= i) & window_mask) | global_mask | blocks
    else:
        mistakes["a causal mask although causal=False"] = (j <= i) & (window_mask | global_mask | blocks)
    return mistakes


def _check_bigbird(
    student,
    case: Case,
    window: int,
    global_tokens,
    layout: torch.Tensor,
    block_size: int,
    causal: bool,
    expected: torch.Tensor | None = None,
):
    n = layout.shape[0] * block_size
    args = (window, global_tokens, layout, block_size)
    mask_mod = case.call(student, *args, causal=True) if causal else case.call(student, *args)
    if expected is None:
        expected = materialised(_bigbird_reference(window, global_tokens, layout, block_size, causal), n)
    call = f"generate_bigbird({window}, {global_tokens!r}, layout, {block_size}{', causal=True' if causal else ''})"
    expect_mask(
        student_mask(case, mask_mod, n, n),
        expected,
        f"your BigBird mask{' with causal=True' if causal else ''}",
        _bigbird_mistakes(n, window, global_tokens, layout, block_size, causal),
        f"{call} over {n} tokens, {int(layout.sum())} of {layout.numel()} blocks in the layout",
    )


@check("equals BigBird (lcteach.generate_bigbird) with the random layout of the same seed")
def _bigbird_seeded(student, case):
    block_size, blocks = case.randint(2, 4), case.randint(6, 10)
    n, per_row, seed = block_size * blocks, case.randint(1, 2), case.randint(0, 10**6)
    window, num_global = odd(case, 3, 7), case.randint(1, 2)
    # The layout generate_random_blocks draws from this seed: a block is active when it allows any pair.
    layout = reference_block_layout(
        reference_random_blocks(n, block_size, per_row, seed=seed), n, block_size=block_size
    )[0, 0]
    expected = materialised(reference_bigbird(window, num_global, per_row, block_size, n, seed=seed), n)
    _check_bigbird(student, case, window, num_global, layout, block_size, False, expected)


def _random_layout(case: Case, blocks: int, density: float) -> torch.Tensor:
    return torch.rand(blocks, blocks, generator=case.generator) < density


@check("any block layout: query i attends key j when layout[i // block_size, j // block_size]")
def _bigbird_layout(student, case):
    block_size, blocks = case.randint(2, 5), case.randint(5, 9)
    layout = _random_layout(case, blocks, 0.3)
    layout[0, -1] = True  # a block far from the window and the global token
    _check_bigbird(student, case, 1, [case.randint(0, blocks * block_size - 1)], layout, block_size, False)


@check("causal=True: the causal mask applies to every part")
def _bigbird_causal(student, case):
    block_size, blocks = case.randint(2, 4), case.randint(5, 9)
    positions = sorted({case.randint(0, blocks * block_size - 1) for _ in range(2)})
    _check_bigbird(student, case, odd(case, 3, 7), positions, _random_layout(case, blocks, 0.3), block_size, True)


CHECKS = (
    _bigbird_seeded,
    _bigbird_layout,
    _bigbird_causal,
)
