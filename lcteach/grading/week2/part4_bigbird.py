"""Week 2, part 4: ``bigbird_layout(n_blocks, window_blocks, global_blocks, random_blocks, seed)``,
BigBird's block layout: window and global blocks, and random blocks drawn among the blocks they leave free."""

from __future__ import annotations

import torch

from lcteach.grading.expectations import counted_if_right, counted_only_if_right, expect_value_error
from lcteach.grading.mask_expectations import expect_mask, grid
from lcteach.grading.results import CheckFailed
from lcteach.grading.session import Case, check
from lcteach.grading.week2.common import (
    binomial_band,
    expect_layout_tensor,
    global_rngs_untouched,
    odd,
    seeds_reproduce,
)
from lcteach.masks import bigbird_layout as reference_layout

FREE_HINT = (
    "draw each row's random blocks among the blocks its window and the global blocks leave free: "
    "random_block_layout(n_blocks - global_blocks, n_blocks, random_blocks, seed, exclude=taken[global_blocks:]), "
    "where taken is the window-and-global layout (row i of exclude belongs to query block global_blocks + i)"
)


def _call(n: int, window: int, num_global: int, per_row: int, seed: int | None = None) -> str:
    return f"bigbird_layout({n}, {window}, {num_global}, {per_row}{'' if seed is None else f', seed={seed}'})"


def _fixed(n: int, window: int, num_global: int) -> torch.Tensor:
    """The layout's window and global blocks: bool (n, n), the reference with no random block."""
    return reference_layout(n, window, num_global, 0, seed=0)


def _fixed_mistakes(n: int, window: int, num_global: int) -> dict[str, torch.Tensor]:
    i, j = grid(n, n)
    distance, radius = i - j, window // 2
    in_window = distance.abs() <= radius

    def first(count: int) -> torch.Tensor:
        return (i < count) | (j < count)

    mistakes = {
        "a window of window_blocks blocks on each side: block qi attends kj when |qi - kj| <= window_blocks // 2": (
            distance.abs() <= window
        )
        | first(num_global),
        "a causal window: BigBird's window is symmetric, |qi - kj| <= window_blocks // 2 on both sides": (
            (distance >= 0) & (distance <= radius)
        )
        | first(num_global),
        "one global block too many: the global blocks are blocks 0 .. global_blocks - 1": in_window
        | first(num_global + 1),
    }
    if num_global:
        mistakes |= {
            "the global blocks' rows only: every block also attends the global blocks (their columns are all True)": (
                in_window | (i < num_global)
            ),
            "the global blocks' columns only: a global block also attends every block (its row is all True)": (
                in_window | (j < num_global)
            ),
            "the last global_blocks blocks as global: the global blocks are the first ones": in_window
            | (i >= n - num_global)
            | (j >= n - num_global),
        }
    return mistakes


def _expect_layout(layout, n: int, window: int, num_global: int, per_row: int, inputs: str) -> torch.Tensor:
    """Check a layout: its type and shape, its window and global blocks, and exactly ``per_row``
    random blocks outside them in every row that is not global; return it."""
    expect_layout_tensor(layout, n, n, inputs)
    fixed = _fixed(n, window, num_global)
    if per_row == 0:
        expect_mask(layout, fixed, "your layout", _fixed_mistakes(n, window, num_global), inputs)
        return layout
    missing = (fixed & ~layout).nonzero()
    if len(missing):
        row, col = missing[0].tolist()
        raise CheckFailed(
            "the layout leaves out window or global blocks",
            "every row holds the blocks within window_blocks // 2 of its own and the global blocks, and a global "
            "block's row is all True; the check with random_blocks = 0 names the mistake",
            details=f"{inputs}: query block {row} should attend key block {col}",
        )
    extra = (layout & ~fixed)[num_global:].sum(dim=-1)
    wrong = (extra != per_row).nonzero().flatten()
    if len(wrong):
        row = int(wrong[0])
        fewer = extra[row] < per_row
        raise CheckFailed(
            f"some rows hold {'fewer' if fewer else 'more'} than random_blocks random blocks outside their window "
            "and global blocks",
            FREE_HINT
            if fewer
            else "add exactly random_blocks blocks to each row that is not global (a window wider than "
            "window_blocks // 2 on each side adds blocks too)",
            details=f"{inputs}: query block {num_global + row} has {int(extra[row])} random blocks, expected "
            f"{per_row} ({len(wrong)} of {n - num_global} rows are off)",
        )
    return layout


def _layout(student, case: Case, n: int, window: int, num_global: int, per_row: int, seed: int) -> torch.Tensor:
    """The student's layout for these arguments, checked."""
    inputs = _call(n, window, num_global, per_row, seed)
    try:
        layout = case.call(student, n, window, num_global, per_row, seed)
    except CheckFailed as failure:
        if not failure.raised_a(ValueError):
            raise
        if per_row == 0:
            raise failure.reworded(
                "random_blocks = 0 raised ValueError: it asks for BigBird without random blocks",
                "random_block_layout wants at least one block per row: with random_blocks = 0, skip the draw",
            ) from None
        raise failure.reworded(
            "raised ValueError although every row that is not global has random_blocks free blocks",
            "the free blocks are those the row's window (|qi - kj| <= window_blocks // 2) and the first "
            "global_blocks blocks leave; exclude row i must be the taken blocks of query block global_blocks + i",
        ) from None
    return _expect_layout(layout, n, window, num_global, per_row, inputs)


def _tightest(n: int, window: int, num_global: int) -> int:
    """The fewest free blocks a row that is not global has: the most random blocks the layout admits."""
    return int((~_fixed(n, window, num_global))[num_global:].sum(dim=-1).min())


@check("with random_blocks = 0: exactly the window and the global blocks")
def _window_and_global(student, case):
    for window, num_global in ((1, case.randint(1, 2)), (odd(case, 3, 7), 0), (odd(case, 3, 5), case.randint(1, 2))):
        _layout(student, case, case.randint(6, 10), window, num_global, 0, case.randint(0, 10**6))


@check("every row that is not global gets exactly random_blocks more, none on a window or global block")
def _random_blocks(student, case):
    for n, window, num_global, per_row in (
        (case.randint(14, 18), 3, 1, case.randint(1, 2)),
        (case.randint(10, 14), odd(case, 1, 3), 0, case.randint(2, 3)),
        (case.randint(16, 20), odd(case, 3, 5), 2, 1),
    ):
        _layout(student, case, n, window, num_global, per_row, case.randint(0, 10**6))


SEEDED = (12, 3, 1, 2)  # n_blocks, window_blocks, global_blocks, random_blocks of the seed checks


def _seeded_args(seed: int) -> tuple:
    return (*SEEDED, seed)


def _expect_seeded(layout, seed: int) -> None:
    _expect_layout(layout, *SEEDED, _call(*SEEDED, seed))


@check("seeded: the same seed gives the same layout, other seeds others; the global RNGs are left alone")
def _seeded(student, case):
    reproduced, reproduced_values = seeds_reproduce(case, student, _seeded_args, _expect_seeded)
    private, private_values = global_rngs_untouched(case, student, "bigbird_layout", _seeded_args, _expect_seeded)
    counted_only_if_right(
        "the seeds reproduce and the global RNGs are left alone",
        lambda: (reproduced(), private()),
        lambda: (reproduced_values(), private_values()),
    )


UNIFORM_SEEDS = 100  # layouts drawn for the uniformity check


@check("uniform: over many seeds every free block of a row is drawn about equally often")
def _uniform(student, case):
    n, window, num_global, per_row = 9, 3, 1, 2
    start = case.randint(0, 10**6)
    counts = torch.zeros(n, n)
    with counted_if_right():
        for seed in range(start, start + UNIFORM_SEEDS):
            counts += _layout(student, case, n, window, num_global, per_row, seed)
    free = ~_fixed(n, window, num_global)
    free[:num_global] = False
    free_per_row = free.sum(dim=-1, keepdim=True)
    p = per_row / free_per_row.clamp(min=1) * (free_per_row > 0)  # the chance that a row holds a given free block
    expected, allowed = binomial_band(UNIFORM_SEEDS, p)
    off = ((counts - expected).abs() / allowed).masked_fill(~free, 0)
    row, col = divmod(int(off.argmax()), n)
    if off[row, col] > 1:
        more = bool(counts[row, col] > expected[row, 0])
        after_taken = col > 0 and not free[row, col - 1]
        raise CheckFailed(
            f"over {UNIFORM_SEEDS} seeds, some free block of a row is drawn far {'more' if more else 'less'} often "
            "than a uniform draw among the row's free blocks gives",
            "moving a draw that hits a taken block to the next free block favours the blocks just after the window; "
            + FREE_HINT
            if more and after_taken
            else "every free block of a row must be equally likely: " + FREE_HINT,
            details=f"seeds {start} .. {start + UNIFORM_SEEDS - 1} of {_call(n, window, num_global, per_row)}: query "
            f"block {row} drew key block {col} {int(counts[row, col])} times; a uniform draw gives about "
            f"{float(expected[row, 0]):.0f} +- {float(allowed[row, 0]):.0f}",
        )


@check(
    "an even window_blocks or one below 1, global_blocks outside 0 .. n_blocks, random_blocks below 0, or a row "
    "with fewer free blocks than random_blocks raises ValueError"
)
def _invalid(student, case):
    n = case.randint(6, 9)
    bad = (
        ((n, 2 * case.randint(1, 2), 1, 1), "an even window_blocks"),
        ((n, -1, 1, 1), "window_blocks below 1"),
        ((n, 3, n + 1, 1), "global_blocks above n_blocks"),
        ((n, 3, -1, 1), "global_blocks below 0"),
        ((n, 3, 1, -1), "random_blocks below 0"),
        ((n, 3, 1, _tightest(n, 3, 1) + 1), "random_blocks above the free blocks of some row"),
    )
    ordinary = (case.randint(10, 14), 3, 1, 2, case.randint(0, 10**6))

    def raises():
        for args, call in bad:
            expect_value_error(
                case,
                student,
                *args,
                0,
                call=call,
                hint="check the arguments first: window_blocks odd and at least 1, 0 <= global_blocks <= n_blocks, "
                "random_blocks >= 0, and every row that is not global keeps at least random_blocks free blocks",
                inputs=_call(*args, 0),
            )

    counted_only_if_right("it raises ValueError", raises, lambda: _layout(student, case, *ordinary))


@check("edge cases: every block global, a window wider than the sequence, rows with exactly random_blocks free blocks")
def _edges(student, case):
    n = case.randint(5, 8)
    tight = (case.randint(7, 9), 3, 1)
    edges = [(n, 3, n, case.randint(1, 3)), (n, 2 * n + 1, 0, 0), (*tight, _tightest(*tight))]
    seeds = [case.randint(0, 10**6) for _ in edges]
    ordinary = (case.randint(10, 14), 3, 1, 2, case.randint(0, 10**6))

    def hold():
        for args, seed in zip(edges, seeds, strict=True):
            _layout(student, case, *args, seed)

    counted_only_if_right("the edge cases hold", hold, lambda: _layout(student, case, *ordinary))


CHECKS = (
    _window_and_global,
    _random_blocks,
    _seeded,
    _uniform,
    _invalid,
    _edges,
)
