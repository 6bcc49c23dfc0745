"""Week 1, part 8: ``causal_tiled_attention(q, k, v, block_size, window=None) -> (out, lse)``,
causal (optionally windowed) tiled attention that skips the tiles the mask hides."""

from __future__ import annotations

import math

import torch

from lcteach.grading.budgets import dense_seconds, expect_work_share, fastest_measured_call
from lcteach.grading.expectations import counted_if_right, expect_close, expect_pair, expect_tensor
from lcteach.grading.results import CheckFailed
from lcteach.grading.session import Case, check
from lcteach.kernels import dense_attention as reference_attention


def allowed_pairs(n: int, window: int | None, *, upper: int = 0, width: int = 0) -> torch.Tensor:
    """The (n, n) causal mask, keys i - window < j <= i (all j <= i without a window); ``upper``
    and ``width`` shift its edges, to write down the classic off-by-ones."""
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    allowed = j <= i + upper
    if window is not None:
        allowed &= i - j < window + width
    return allowed


def _mistakes(q, k, v, window: int | None) -> dict[str, torch.Tensor]:
    n = q.shape[-2]
    masked = {
        "a mask without the query itself: key j = i is allowed (j <= i)": allowed_pairs(n, window, upper=-1),
        "attention without the causal mask: queries see later keys": None,
    }
    if window is not None:
        masked["a window one key too long: window w means keys i - w < j <= i, the query included"] = allowed_pairs(
            n, window, width=1
        )
        masked["a window one key too short: window w means keys i - w < j <= i, the query included"] = allowed_pairs(
            n, window, width=-1
        )
        masked["the causal mask without the window"] = allowed_pairs(n, None)
    mistakes = {name: reference_attention(q, k, v, mask)[0] for name, mask in masked.items()}
    mistakes["attention without the 1/sqrt(d) scaling"] = reference_attention(
        q, k, v, allowed_pairs(n, window), scale=1.0
    )[0]
    return mistakes


def _judge(result, q, k, v, block: int, window: int | None, with_mistakes: bool = True):
    out, lse = expect_pair(result, "causal_tiled_attention", "(out, lse)")
    n, d = q.shape[-2], q.shape[-1]
    inputs = f"n={n}, D={d}, block_size={block}, window={window}, {str(q.dtype).removeprefix('torch.')}"
    mask = allowed_pairs(n, window)
    expected_out, _ = reference_attention(q, k, v, mask)
    out = expect_tensor(out, "out", expected_out.shape, q.dtype, "(B, H, n, Dv)", inputs)
    lse = expect_tensor(lse, "lse", expected_out.shape[:-1], q.dtype, "(B, H, n)", inputs)
    if torch.isnan(out).any():
        raise CheckFailed(
            "out contains NaN where finite values were expected",
            "a query left with no allowed key divides 0 by 0: query i attends keys j <= i, itself included",
            details=inputs,
        )
    expect_close(
        out,
        expected_out,
        "out",
        "a tile is skipped only when every pair in it is masked; the partial tiles on the diagonal "
        "(and at the window's far edge) still need the mask inside them",
        mistakes=_mistakes(q, k, v, window) if with_mistakes else None,
        inputs=inputs,
    )
    scores = (q @ k.transpose(-2, -1) / math.sqrt(d)).masked_fill(~mask, float("-inf"))
    expect_close(
        lse, torch.logsumexp(scores, dim=-1), "lse", "lse = m + log(l) over the allowed keys only", inputs=inputs
    )


def _check(student, case: Case, n: int, block: int, window: int | None, dtype=torch.float32):
    heads, d = case.randint(1, 2), case.randint(2, 16)
    q, k, v = (case.randn(1, heads, n, d, dtype=dtype) for _ in range(3))
    _judge(case.call(student, q, k, v, block_size=block, window=window), q, k, v, block, window)


@check("causal: matches masked dense attention, n a multiple of block_size")
def _causal_even(student, case):
    block = 2 ** case.randint(2, 4)
    _check(student, case, block * case.randint(3, 6), block, None)


@check("sliding window, float64: ragged n, windows shorter and longer than a block, block larger than n")
def _windowed(student, case):
    block = case.randint(4, 8)
    n = block * case.randint(3, 6) + case.randint(1, block - 1)
    _check(student, case, n, block, case.randint(1, block - 1), torch.float64)
    _check(student, case, n, block, case.randint(block + 1, 3 * block), torch.float64)
    _check(student, case, case.randint(3, 9), 16, case.randint(1, 4), torch.float64)


WORK_SHAPE = (1, 1, 4096, 32)  # (B, H, n, D = Dv) of the work measurement
WORK_BLOCK = 64
WORK_WINDOW = 128  # 2 key blocks: about 3 tiles per block row of 64, against 32.5 with causal skipping alone
# CPU time allowed, as a fraction of lean masked dense attention's at the same size. Measured here
# (one thread, best of 3): skipping every masked tile takes 0.30-0.48 of it, skipping only the
# future tiles 3.1; the budget sits between, about 3x from each.
WORK_RATIO = 1.0
WORK_REPEATS = 2  # measured calls, each on inputs of its own; the fastest counts


@check(
    f"skips the masked tiles: with a window of {WORK_WINDOW} at n={WORK_SHAPE[2]}, under {WORK_RATIO:.0%} "
    "of dense attention's CPU time",
    weight=2,
)
def _skips_tiles(student, case):
    batch, heads, n, d = WORK_SHAPE

    def judge_values(value, q, k, v):
        _judge(value, q, k, v, WORK_BLOCK, WORK_WINDOW, with_mistakes=False)

    def judge(value, q, k, v):
        with counted_if_right():
            judge_values(value, q, k, v)

    def call_and_judge():  # an unmeasured call like the measured ones, at four blocks
        q, k, v = (case.randn(batch, heads, 4 * WORK_BLOCK, d) for _ in range(3))
        judge_values(case.call(student, q, k, v, block_size=WORK_BLOCK, window=WORK_WINDOW), q, k, v)

    seconds, (q, k, v) = fastest_measured_call(
        case,
        WORK_REPEATS,
        lambda: tuple(case.randn(batch, heads, n, d) for _ in range(3)),
        judge,
        call_and_judge=call_and_judge,
        block_size=WORK_BLOCK,
        window=WORK_WINDOW,
    )
    dense = dense_seconds(q, k, v, allowed_pairs(n, WORK_WINDOW))
    expect_work_share(
        seconds,
        dense,
        WORK_RATIO,
        f"n={n}, block_size={WORK_BLOCK}, window={WORK_WINDOW}",
        "for each query block, loop only over the key blocks that hold an allowed pair: the first one "
        "is the block of key max(0, i0 - window + 1), the last the block of the query block's last row; "
        "skipping the future tiles alone still computes every tile behind the window",
    )


CHECKS = (
    _causal_even,
    _windowed,
    _skips_tiles,
)
