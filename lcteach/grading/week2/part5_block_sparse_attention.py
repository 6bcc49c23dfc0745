"""Week 2, part 5: ``block_sparse_attention(q, k, v, layout, block_size)``, attention over the active blocks only."""

from __future__ import annotations

import math

import torch

from lcteach.grading.budgets import dense_seconds, expect_work_share, fastest_measured_call, layout_mask
from lcteach.grading.expectations import expect_close, expect_tensor
from lcteach.grading.results import CheckFailed
from lcteach.grading.session import Case, check
from lcteach.kernels import block_sparse_attention as reference_block_sparse
from lcteach.kernels import dense_attention as reference_attention


def _per_block_softmax(q, k, v, layout, block_size) -> torch.Tensor:
    """The output when each block's scores are normalised on their own instead of across the row."""
    n_q, n_k = q.shape[-2], k.shape[-2]
    pad = -n_k % block_size
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~layout_mask(layout, block_size, n_q, n_k), float("-inf"))
    scores = torch.nn.functional.pad(scores, (0, pad), value=float("-inf")).unflatten(-1, (-1, block_size))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0).flatten(-2)[..., :n_k]
    return weights @ v


def _block_sparse_mistakes(q, k, v, layout, block_size) -> dict[str, torch.Tensor]:
    n_q, n_k = q.shape[-2], k.shape[-2]
    mask = layout_mask(layout, block_size, n_q, n_k)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    over_queries = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-2).nan_to_num(0.0) @ v
    pad = -n_k % block_size
    padded_k, padded_v = (torch.nn.functional.pad(t, (0, 0, 0, pad)) for t in (k, v))
    padded_mask = layout_mask(layout, block_size, n_q, n_k + pad)
    mistakes = {
        "attention without the 1/sqrt(d) scaling": reference_block_sparse(q, k, v, layout, block_size, scale=1.0),
        "a softmax inside each block on its own: normalise over all active blocks of the query's row together": _per_block_softmax(
            q, k, v, layout, block_size
        ),
        "a softmax over the query axis (dim=-2) instead of the key axis": over_queries,
    }
    if pad:
        mistakes["attending the zero padding of the last key block: keys past Nk do not exist"] = reference_attention(
            q, padded_k, padded_v, padded_mask
        )[0]
    if layout.shape[0] == layout.shape[1]:
        mistakes["the layout transposed: layout[qi, kj] says whether query block qi attends key block kj"] = (
            reference_block_sparse(q, k, v, layout.T.contiguous(), block_size)
        )
    return mistakes


def _check_block_sparse(
    student,
    case: Case,
    shape: tuple[int, ...],
    n_k: int,
    block_size: int,
    density: float,
    dtype=torch.float32,
    empty_rows: int = 0,
):
    batch, heads, n_q, d = shape
    q, k, v = (
        case.randn(*shape, dtype=dtype),
        case.randn(batch, heads, n_k, d, dtype=dtype),
        case.randn(batch, heads, n_k, case.randint(2, 8), dtype=dtype),
    )
    q_blocks, kv_blocks = -(-n_q // block_size), -(-n_k // block_size)
    layout = torch.rand(q_blocks, kv_blocks, generator=case.generator) < density
    layout[torch.arange(q_blocks), torch.randint(0, kv_blocks, (q_blocks,), generator=case.generator)] = True
    if empty_rows:
        layout[torch.randperm(layout.shape[0], generator=case.generator)[:empty_rows]] = False
    out = case.call(student, q, k, v, layout, block_size)
    expected = reference_block_sparse(q, k, v, layout, block_size)
    inputs = f"Nq={n_q}, Nk={n_k}, block_size={block_size}, {str(dtype).removeprefix('torch.')}"
    out = expect_tensor(out, "out", expected.shape, dtype, dims="(B, H, Nq, Dv)", inputs=inputs)
    if empty_rows and not torch.isfinite(out).all():
        raise CheckFailed(
            "out: a query block with no active key block gives inf or NaN",
            "a row with no allowed key has nothing to average: give its queries a zero output",
            details=inputs,
        )
    expect_close(
        out,
        expected,
        "out",
        "compare with masked dense attention on a small example, block by block",
        mistakes=_block_sparse_mistakes(q, k, v, layout, block_size),
        inputs=inputs,
    )


@check("equals masked dense attention when n is a multiple of block_size")
def _block_sparse_even(student, case):
    block_size = case.randint(3, 8)
    n = block_size * case.randint(3, 8)
    _check_block_sparse(
        student, case, (case.randint(1, 2), case.randint(1, 3), n, case.randint(2, 8)), n, block_size, 0.3
    )


@check("float64, ragged last blocks and Nq != Nk")
def _block_sparse_ragged(student, case):
    block_size = case.randint(4, 8)
    n_q = block_size * case.randint(2, 6) + case.randint(1, block_size - 1)
    n_k = block_size * case.randint(2, 6) + case.randint(1, block_size - 1)
    _check_block_sparse(
        student, case, (1, case.randint(1, 3), n_q, case.randint(2, 8)), n_k, block_size, 0.4, dtype=torch.float64
    )


@check("a query block with no active key block gets a zero output")
def _block_sparse_empty(student, case):
    block_size = case.randint(3, 6)
    n = block_size * case.randint(4, 8)
    _check_block_sparse(student, case, (1, 2, n, 4), n, block_size, 0.3, empty_rows=2)


WORK_SHAPE = (1, 1, 4096, 32)  # (B, H, n, D = Dv) of the work measurement
WORK_BLOCK = 64
WORK_PER_ROW = 2  # active key blocks per query block row: 2 of 64, 1/32 of dense attention's pairs
WORK_RATIO = 0.25  # CPU time allowed, as a fraction of lean masked dense attention's at the same size
WORK_REPEATS = 2  # measured calls, each on inputs of its own; the fastest counts


def _work_layout(case: Case) -> torch.Tensor:
    blocks = WORK_SHAPE[2] // WORK_BLOCK
    ranks = torch.rand(blocks, blocks, generator=case.generator).argsort(dim=-1)
    return torch.zeros(blocks, blocks, dtype=torch.bool).scatter_(-1, ranks[:, :WORK_PER_ROW], True)


def _describe(layout: torch.Tensor) -> str:
    return f"{int(layout.sum())} of {layout.numel()} blocks active"


@check(
    f"the work follows the layout: with 1/{WORK_SHAPE[2] // WORK_BLOCK // WORK_PER_ROW} of the blocks active, "
    f"under {WORK_RATIO:.0%} of dense attention's CPU time",
    weight=3,
)
def _block_sparse_work(student, case):
    batch, heads, n, d = WORK_SHAPE

    def draw():
        q, k, v = (case.randn(batch, heads, n, d) for _ in range(3))
        return q, k, v, _work_layout(case), WORK_BLOCK

    def judge(value, q, k, v, layout, block_size):
        expected = reference_block_sparse(q, k, v, layout, block_size)
        what, inputs = "out of the measured call", f"n={n}, block_size={block_size}, {_describe(layout)}"
        expect_close(
            expect_tensor(value, what, expected.shape, q.dtype, inputs=inputs),
            expected,
            what,
            "work is only measured for a right result: pass the checks above first",
            inputs=inputs,
        )

    def call_and_judge():  # an unmeasured call like the measured ones, at four blocks
        _check_block_sparse(student, case, (batch, heads, 4 * WORK_BLOCK, d), 4 * WORK_BLOCK, WORK_BLOCK, 0.5)

    seconds, (q, k, v, layout, _) = fastest_measured_call(
        case, WORK_REPEATS, draw, judge, call_and_judge=call_and_judge
    )
    dense = dense_seconds(q, k, v, layout_mask(layout, WORK_BLOCK, n, n))  # inputs of the same size
    expect_work_share(
        seconds,
        dense,
        WORK_RATIO,
        f"n={n}, block_size={WORK_BLOCK}, {_describe(layout)}",
        "multiply only the active blocks: for each query block, take the key and value blocks its "
        "layout row marks; computing q @ k^T for all keys and masking afterwards is dense work",
    )


CHECKS = (
    _block_sparse_even,
    _block_sparse_ragged,
    _block_sparse_empty,
    _block_sparse_work,
)
