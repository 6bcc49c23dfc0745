"""What several Week 2 parts share: odd window sizes, Longformer's global tokens and its reference,
and the checks of a seeded block layout (part 2's random layout, part 4's BigBird layout): its type,
its seeds, the global RNGs, the binomial band of a uniform draw."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn.attention.flex_attention import or_masks

from lcteach.grading.probes import call_with_global_seed
from lcteach.grading.results import CheckFailed
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


def binomial_band(trials: int, p):
    """The count a uniform draw gives something it picks with chance ``p`` (a float, or a tensor of
    chances) in each of ``trials`` draws, and the distance from it allowed: 5 standard deviations
    of the binomial."""
    return trials * p, 5 * (trials * p * (1 - p)) ** 0.5


def expect_layout_tensor(layout, q_blocks: int, kv_blocks: int, inputs: str) -> torch.Tensor:
    """Check that a block layout is a bool torch.Tensor of shape (q_blocks, kv_blocks); return it."""
    if type(layout) is not torch.Tensor:
        raise CheckFailed(f"the layout should be a torch.Tensor, got {type(layout).__name__}")
    if tuple(layout.shape) != (q_blocks, kv_blocks):
        transposed = tuple(layout.shape) == (kv_blocks, q_blocks)
        raise CheckFailed(
            "the layout has shape (kv_blocks, q_blocks): it should be (q_blocks, kv_blocks)"
            if transposed
            else "the layout should have shape (q_blocks, kv_blocks)",
            "one row per query block: shape (q_blocks, kv_blocks)"
            if transposed
            else "build it with torch.zeros(q_blocks, kv_blocks, dtype=torch.bool)",
            details=f"{inputs}: got shape {tuple(layout.shape)}",
        )
    if layout.dtype != torch.bool:
        raise CheckFailed(
            f"the layout should be a bool tensor (True = the block is computed), got {layout.dtype}",
            "create it with dtype=torch.bool, or compare: layout = counts > 0",
        )
    return layout


def _comparable(a, b) -> bool:
    """Whether two results can be compared entry by entry (tensors of one shape)."""
    return type(a) is torch.Tensor and type(b) is torch.Tensor and a.shape == b.shape


def _failing(failure: CheckFailed) -> Callable[[], None]:
    """A property or value check that fails as a call it needed did: the check counts the failure
    as a mistake in the values (counted_only_if_right), never as the property's."""

    def fail():
        raise failure

    return fail


SeededArgs = Callable[[int], tuple]  # a seed -> the arguments of a call with it
ExpectSeeded = Callable[[object, int], None]  # (the result of a call, its seed) -> CheckFailed if it is wrong


def seeds_reproduce(case: Case, student, args: SeededArgs, expect: ExpectSeeded) -> tuple[Callable, Callable]:
    """For counted_only_if_right: (the property that one seed gives one layout and two other seeds
    give others, the check of those layouts' values), on calls made now; a call that fails fails both."""
    seed = case.randint(0, 10**6)
    others = (seed + 1, seed + case.randint(2, 1000))
    try:
        first, again = (case.call(student, *args(seed)) for _ in range(2))
        layouts = {other_seed: case.call(student, *args(other_seed)) for other_seed in others}
    except CheckFailed as failure:
        return _failing(failure), _failing(failure)

    def reproduced():
        if _comparable(first, again) and not torch.equal(first, again):
            raise CheckFailed(
                "two calls with the same seed returned different layouts",
                "make a generator from the seed, g = torch.Generator().manual_seed(seed), and pass "
                "generator=g to every random call",
                details=f"seed={seed}",
            )
        for other_seed, other in layouts.items():
            if _comparable(first, other) and torch.equal(first, other):
                raise CheckFailed(
                    "two different seeds gave the same layout",
                    "the draws must come from a generator seeded with `seed`",
                    details=f"seeds {seed} and {other_seed}",
                )

    def values():
        for layout_seed, layout in ((seed, first), *layouts.items()):
            expect(layout, layout_seed)

    return reproduced, values


def global_rngs_untouched(
    case: Case, student, function: str, args: SeededArgs, expect: ExpectSeeded
) -> tuple[Callable, Callable]:
    """For counted_only_if_right: (the property that ``function`` leaves the global RNGs alone and
    gives the same layout whatever their state, the check of those layouts' values), on calls made
    now; a call that fails fails both."""
    seed = case.randint(0, 10**6)
    global_seeds = (case.randint(0, 1000), case.randint(1001, 2000))
    try:
        results = [case.call(call_with_global_seed, student, global_seed, *args(seed)) for global_seed in global_seeds]
    except CheckFailed as failure:
        return _failing(failure), _failing(failure)
    if not all(isinstance(result, tuple) and len(result) == 2 for result in results):
        raise CheckFailed("the grader's measurement returned no result")
    layouts = [layout for layout, _ in results]

    def private():
        for _, moved in results:
            if moved:
                raise CheckFailed(
                    f"{function} changed the global random state of {', '.join(moved)}",
                    "torch.manual_seed(seed) and random calls without generator= use the global RNG, which "
                    "the rest of the notebook shares: make g = torch.Generator().manual_seed(seed) and pass "
                    "generator=g",
                )
        if _comparable(*layouts) and not torch.equal(*layouts):
            raise CheckFailed(
                "with the same seed, the layout changed when the global RNG was seeded differently",
                "your draws come from the global RNG: pass generator=g to every random call",
                details=f"seed={seed}",
            )

    def values():
        for layout in layouts:
            expect(layout, seed)

    return private, values
