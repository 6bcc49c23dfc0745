"""Week 1, part 5: ``tiled_attention(q, k, v, block_size) -> (out, lse)``, exact attention in O(n) memory."""

from __future__ import annotations

import math

import torch

from lcteach.grading.budgets import check_linear_memory
from lcteach.grading.expectations import expect_close, expect_pair, expect_tensor
from lcteach.grading.session import Case, check
from lcteach.kernels import dense_attention as reference_attention


def _judge_tiled(result, q, k, v, block, with_lse=True):
    out, lse = expect_pair(result, "tiled_attention", "(out, lse)")
    inputs = f"Nq={q.shape[-2]}, Nk={k.shape[-2]}, D={q.shape[-1]}, block_size={block}"
    expected_out, _ = reference_attention(q, k, v)
    out = expect_tensor(out, "out", expected_out.shape, q.dtype, "(B, H, Nq, Dv)", inputs)
    lse = expect_tensor(lse, "lse", expected_out.shape[:-1], q.dtype, "(B, H, Nq)", inputs)
    expect_close(
        out,
        expected_out,
        "out",
        "fold every key block into the running (m, l, acc) of the query block, then divide acc by l",
        inputs=inputs,
    )
    if not with_lse:  # the measured calls: at their length the reference's lse is another (n, n) matrix
        return
    expected_lse = torch.logsumexp(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    expect_close(lse, expected_lse, "lse", "lse = m + log(l) for each query, with the scaled scores", inputs=inputs)


def _check_tiled(student, case, n_q, n_k, block):
    d = case.randint(2, 16)
    q, k, v = case.randn(1, 2, n_q, d), case.randn(1, 2, n_k, d), case.randn(1, 2, n_k, d)
    _judge_tiled(case.call(student, q, k, v, block_size=block), q, k, v, block)


@check("matches dense attention when n is a multiple of block_size")
def _tiled_even(student, case):
    block = 2 ** case.randint(2, 4)
    n = block * case.randint(2, 5)
    _check_tiled(student, case, n, n, block)


@check("ragged sizes: n not a multiple of block_size, Nq != Nk, block larger than n")
def _tiled_ragged(student, case):
    block = case.randint(5, 9)
    _check_tiled(student, case, block * 3 + case.randint(1, block - 1), block * 2 + case.randint(1, block - 1), block)
    _check_tiled(student, case, case.randint(2, 6), case.randint(2, 6), 16)


MEMORY_N = 8192  # the exercise promises O(n) memory at this length
MEMORY_DIM = 64
MEMORY_BLOCK = 256


def _tiled_peak(case: Case, n: int):
    """One measured call at length n: (its peak memory, its result, the inputs)."""
    q, k, v = (case.randn(1, 1, n, MEMORY_DIM) for _ in range(3))
    measured = case.measure(q, k, v, block_size=MEMORY_BLOCK)
    return measured.peak_bytes, measured.value, (q, k, v)


def _judge_measured(result, inputs):
    _judge_tiled(result, *inputs, MEMORY_BLOCK, with_lse=False)


def _rehearsal(student, case: Case):
    """An unmeasured call like the measured ones, at two blocks."""
    q, k, v = (case.randn(1, 1, 2 * MEMORY_BLOCK, MEMORY_DIM) for _ in range(3))
    _judge_measured(case.call(student, q, k, v, block_size=MEMORY_BLOCK), (q, k, v))


@check(f"peak memory is O(n): under budget at n={MEMORY_N}, about 4x when n grows 4x", weight=2)
def _tiled_memory(student, case):
    check_linear_memory(
        lambda n: _tiled_peak(case, n),
        _judge_measured,
        MEMORY_N,
        MEMORY_DIM,
        what="your function",
        matrix="float32 score matrix",
        hint="never build an (n, n) tensor: keep one (block, block) tile of scores at a time and "
        "write each query block's result into out as soon as it is done",
        call_and_judge=lambda: _rehearsal(student, case),
    )


CHECKS = (
    _tiled_even,
    _tiled_ragged,
    _tiled_memory,
)
