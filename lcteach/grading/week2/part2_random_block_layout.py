"""Week 2, part 2: ``random_block_layout(q_blocks, kv_blocks, blocks_per_row, seed, exclude=None)``, a
seeded random block layout, drawn among the blocks that ``exclude`` leaves free."""

from __future__ import annotations

import torch

from lcteach.grading.expectations import counted_if_right, counted_only_if_right, expect_value_error
from lcteach.grading.results import CheckFailed
from lcteach.grading.session import Case, check
from lcteach.grading.week2.common import (
    binomial_band,
    expect_layout_tensor,
    global_rngs_untouched,
    seeds_reproduce,
)


def _call(q_blocks: int, kv_blocks: int, per_row: int, seed: int, exclude: bool = False) -> str:
    return f"random_block_layout({q_blocks}, {kv_blocks}, {per_row}, seed={seed}{', exclude=...' if exclude else ''})"


def _expect_layout(
    layout, q_blocks: int, kv_blocks: int, per_row: int, inputs: str, exclude: torch.Tensor | None = None
) -> torch.Tensor:
    """Check one layout's type, shape, per-row count and (given ``exclude``) that it holds no excluded
    block; return it."""
    expect_layout_tensor(layout, q_blocks, kv_blocks, inputs)
    if exclude is not None and (layout & exclude).any():
        row = int((layout & exclude).any(dim=-1).nonzero()[0])
        raise CheckFailed(
            "some rows hold blocks that exclude marks as taken",
            "draw each row's blocks among its free blocks only: free = (~exclude[row]).nonzero().flatten(), "
            "then free[torch.randperm(len(free), generator=g)[:blocks_per_row]]",
            details=f"{inputs}: row {row} holds an excluded block",
        )
    counts = layout.sum(dim=-1)
    wrong = (counts != per_row).nonzero().flatten()
    if len(wrong):
        row = int(wrong[0])
        fewer = counts[row] < per_row
        hint = (
            "mark exactly blocks_per_row blocks in each row"
            if not fewer
            else "draw blocks_per_row blocks among the row's free blocks: drawing among all blocks and then "
            "dropping the excluded ones leaves rows short"
            if exclude is not None
            else "drawing with replacement (torch.randint) can pick the same block twice; draw distinct blocks, e.g. "
            "torch.randperm(kv_blocks, generator=g)[:blocks_per_row]"
        )
        raise CheckFailed(
            f"some rows have {'fewer' if fewer else 'more'} than blocks_per_row blocks",
            hint,
            details=f"{inputs}: row {row} has {int(counts[row])} blocks, expected exactly {per_row} "
            f"({len(wrong)} of {q_blocks} rows are off)",
        )
    return layout


def _layout(student, case: Case, q_blocks: int, kv_blocks: int, per_row: int, seed: int, exclude=None):
    """The student's layout for these arguments (``exclude`` passed only when given), checked."""
    extra = {} if exclude is None else {"exclude": exclude}
    return _expect_layout(
        case.call(student, q_blocks, kv_blocks, per_row, seed, **extra),
        q_blocks,
        kv_blocks,
        per_row,
        _call(q_blocks, kv_blocks, per_row, seed, exclude=exclude is not None),
        exclude,
    )


SEEDED = (12, 10, 3)  # q_blocks, kv_blocks, blocks_per_row of the seed checks


def _seeded_args(seed: int) -> tuple:
    return (*SEEDED, seed)


def _expect_seeded(layout, seed: int) -> None:
    _expect_layout(layout, *SEEDED, _call(*SEEDED, seed))


def _ordinary_layout(student, case):
    """A layout with many rows of many blocks (a draw with replacement repeats a block in some row),
    drawn now, checked when called."""
    q_blocks, kv_blocks, seed = case.randint(12, 20), case.randint(5, 9), case.randint(0, 10**6)
    return lambda: _layout(student, case, q_blocks, kv_blocks, kv_blocks - 1, seed)


@check("bool (q_blocks, kv_blocks) with exactly blocks_per_row distinct blocks in every row")
def _layout_shape(student, case):
    kv_blocks = case.randint(5, 9)
    for q_blocks, per_row in (
        (case.randint(12, 20), kv_blocks - 1),
        (case.randint(3, 8), case.randint(1, 3)),
        (case.randint(2, 5), kv_blocks),
    ):
        _layout(student, case, q_blocks, kv_blocks, per_row, case.randint(0, 10**6))
    many = _layout(student, case, 16, kv_blocks, 2, case.randint(0, 10**6))
    if (many == many[0]).all():
        raise CheckFailed(
            "all 16 rows of a layout hold the same key blocks",
            "draw every row anew: one draw per query block, all from the same generator",
        )


@check("the same seed gives the same layout; different seeds give different layouts")
def _layout_seeded(student, case):
    counted_only_if_right("the seeds reproduce", *seeds_reproduce(case, student, _seeded_args, _expect_seeded))


@check("uses its own generator: leaves the global RNGs alone and does not depend on them")
def _layout_private_rng(student, case):
    counted_only_if_right(
        "the global RNGs are left alone",
        *global_rngs_untouched(case, student, "random_block_layout", _seeded_args, _expect_seeded),
    )


UNIFORM_SEEDS = 100  # layouts drawn for the uniformity check


@check("roughly uniform: over many seeds every (row, key block) cell is drawn about equally often")
def _layout_uniform(student, case):
    q_blocks, kv_blocks, per_row = 6, case.randint(6, 8), 2
    start = case.randint(0, 10**6)
    counts = torch.zeros(q_blocks, kv_blocks)
    with counted_if_right():
        for seed in range(start, start + UNIFORM_SEEDS):
            counts += _layout(student, case, q_blocks, kv_blocks, per_row, seed)
    inputs = f"seeds {start} .. {start + UNIFORM_SEEDS - 1} of random_block_layout({q_blocks}, {kv_blocks}, {per_row})"
    p = per_row / kv_blocks  # the chance that a row holds a given key block
    column = counts.sum(dim=0)
    if column[-1] == 0:
        raise CheckFailed(
            f"over {UNIFORM_SEEDS} seeds the last key block was never drawn",
            "the upper bound of torch.randint and the size of torch.randperm are exclusive: "
            "draw from all kv_blocks blocks",
            details=inputs,
        )
    hint = "every key block must be equally likely in every row: no block forced in, none left out"
    # Counts are binomial; allow 5 standard deviations, per key block and per (row, key block) cell.
    expected, allowed = binomial_band(UNIFORM_SEEDS * q_blocks, p)  # per key block, over all rows
    col = int((column - expected).abs().argmax())
    if abs(column[col] - expected) > allowed:
        raise CheckFailed(
            f"over {UNIFORM_SEEDS} seeds, some key block is drawn far {'more' if column[col] > expected else 'less'} "
            "often than a uniform draw gives",
            hint,
            details=f"{inputs}: key block {col} was drawn {int(column[col])} times; a uniform draw gives "
            f"about {expected:.0f} +- {allowed:.0f}",
        )
    expected, allowed = binomial_band(UNIFORM_SEEDS, p)
    row, col = divmod(int((counts - expected).abs().argmax()), kv_blocks)
    if abs(counts[row, col] - expected) > allowed:
        raise CheckFailed(
            f"over {UNIFORM_SEEDS} seeds, some row draws some key block far "
            f"{'more' if counts[row, col] > expected else 'less'} often than a uniform draw gives",
            hint,
            details=f"{inputs}: row {row} drew key block {col} {int(counts[row, col])} times; a uniform draw "
            f"gives about {expected:.0f} +- {allowed:.0f}",
        )


@check("blocks_per_row above kv_blocks or below 1 raises ValueError")
def _layout_invalid(student, case):
    kv_blocks = case.randint(2, 8)
    ordinary = _ordinary_layout(student, case)

    def raises():
        for bad, call in ((kv_blocks + 1, "blocks_per_row = kv_blocks + 1"), (0, "blocks_per_row = 0")):
            expect_value_error(
                case,
                student,
                4,
                kv_blocks,
                bad,
                0,
                call=call,
                hint="a row has kv_blocks distinct blocks to choose from: check 1 <= blocks_per_row <= kv_blocks",
                inputs=f"random_block_layout(4, {kv_blocks}, {bad}, 0)",
            )

    counted_only_if_right("it raises ValueError", raises, ordinary)


def _exclude(case: Case, q_blocks: int, kv_blocks: int, per_row: int) -> torch.Tensor:
    """A bool (q_blocks, kv_blocks) of taken blocks: in each row a run of taken blocks (a window)
    at a drawn place and, in some rows, block 0 (a global token); every row keeps at least
    ``per_row`` free blocks, row 0 exactly ``per_row``, the last row none taken."""
    exclude = torch.zeros(q_blocks, kv_blocks, dtype=torch.bool)
    for row in range(q_blocks - 1):
        run = kv_blocks - per_row if row == 0 else case.randint(1, kv_blocks - per_row - 1)
        start = case.randint(0, kv_blocks - run)
        exclude[row, start : start + run] = True
        if row % 2 and exclude[row].sum() < kv_blocks - per_row:
            exclude[row, 0] = True
    return exclude


def _ordinary_excluding_layout(student, case):
    """An ordinary call with ``exclude`` (many rows of 3 blocks: a draw with replacement repeats a
    block in some row), drawn now, checked when called."""
    q_blocks, kv_blocks, per_row = case.randint(12, 16), case.randint(6, 9), 3
    exclude, seed = _exclude(case, q_blocks, kv_blocks, per_row), case.randint(0, 10**6)
    return lambda: _layout(student, case, q_blocks, kv_blocks, per_row, seed, exclude)


@check("with exclude: exactly blocks_per_row blocks in every row, none of them excluded")
def _layout_excludes(student, case):
    q_blocks, kv_blocks = case.randint(8, 14), case.randint(6, 10)
    for per_row in (1, case.randint(2, 3)):
        exclude = _exclude(case, q_blocks, kv_blocks, per_row)
        _layout(student, case, q_blocks, kv_blocks, per_row, case.randint(0, 10**6), exclude)


@check("with exclude: over many seeds every free block of a row is drawn about equally often")
def _layout_exclude_uniform(student, case):
    q_blocks, kv_blocks, per_row = 6, 9, 2
    exclude = torch.zeros(q_blocks, kv_blocks, dtype=torch.bool)
    for row in range(q_blocks):  # a run of 3 taken blocks, at a place of its own in each row
        exclude[row, row : row + 3] = True
    start = case.randint(0, 10**6)
    counts = torch.zeros(q_blocks, kv_blocks)
    with counted_if_right():
        for seed in range(start, start + UNIFORM_SEEDS):
            counts += _layout(student, case, q_blocks, kv_blocks, per_row, seed, exclude)
    p = per_row / (kv_blocks - 3)  # the chance that a row holds a given free block
    expected, allowed = binomial_band(UNIFORM_SEEDS, p)
    off = (counts - expected).abs().masked_fill(exclude, 0)
    row, col = divmod(int(off.argmax()), kv_blocks)
    if off[row, col] > allowed:
        after_run = exclude[row, col - 1] if col else False
        raise CheckFailed(
            f"over {UNIFORM_SEEDS} seeds, some free block of a row is drawn far "
            f"{'more' if counts[row, col] > expected else 'less'} often than a uniform draw among the free blocks gives",
            "moving an excluded draw to the next free block favours the blocks just after an excluded run; "
            "draw among the free blocks themselves: free[torch.randperm(len(free), generator=g)[:blocks_per_row]]"
            if after_run and counts[row, col] > expected
            else "every free block of a row must be equally likely: draw among the free blocks themselves",
            details=f"seeds {start} .. {start + UNIFORM_SEEDS - 1} of random_block_layout({q_blocks}, {kv_blocks}, "
            f"{per_row}, exclude=...): row {row} drew key block {col} {int(counts[row, col])} times; a uniform draw "
            f"gives about {expected:.0f} +- {allowed:.0f}",
        )


@check("exclude of the wrong shape or dtype, or leaving a row fewer than blocks_per_row free blocks, raises ValueError")
def _layout_exclude_invalid(student, case):
    q_blocks, kv_blocks, per_row = case.randint(4, 8), case.randint(5, 8), 2
    crowded = _exclude(case, q_blocks, kv_blocks, per_row)
    row = case.randint(0, q_blocks - 1)
    crowded[row] = True
    crowded[row, case.randint(0, kv_blocks - 1)] = False  # one free block in that row, blocks_per_row is 2
    bad = (
        (crowded, "an exclude that leaves a row one free block, with blocks_per_row = 2"),
        (torch.zeros(kv_blocks, q_blocks + 1, dtype=torch.bool), "an exclude of the wrong shape"),
        (torch.zeros(q_blocks, kv_blocks, dtype=torch.int64), "an exclude that is not bool"),
    )

    def raises():
        for exclude, call in bad:
            expect_value_error(
                case,
                student,
                q_blocks,
                kv_blocks,
                per_row,
                0,
                kwargs={"exclude": exclude},
                call=call,
                hint="check that exclude is a bool tensor of shape (q_blocks, kv_blocks) and that every row has at "
                "least blocks_per_row free blocks: (~exclude).sum(dim=-1) >= blocks_per_row",
                inputs=_call(q_blocks, kv_blocks, per_row, 0, exclude=True),
            )

    counted_only_if_right("it raises ValueError", raises, _ordinary_excluding_layout(student, case))


CHECKS = (
    _layout_shape,
    _layout_seeded,
    _layout_private_rng,
    _layout_uniform,
    _layout_invalid,
    _layout_excludes,
    _layout_exclude_uniform,
    _layout_exclude_invalid,
)
