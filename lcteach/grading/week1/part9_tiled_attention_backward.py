"""Week 1, part 9: ``tiled_attention_backward(q, k, v, out, lse, d_out, block_size) -> (dq, dk, dv)``,
the flash backward pass: gradients from recomputed score tiles, in O(n) memory."""

from __future__ import annotations

import math

import torch

from lcteach.grading.budgets import check_linear_memory
from lcteach.grading.expectations import expect_close, expect_tensor
from lcteach.grading.results import CheckFailed
from lcteach.grading.session import Case, check
from lcteach.kernels import dense_attention as reference_attention
from lcteach.kernels import tiled_attention as reference_tiled

NAMES = ("dq", "dk", "dv")


def _gradients(q, k, v, d_out, attention=reference_attention):
    """The gradients (dq, dk, dv) of <attention(q, k, v), d_out>, by autograd."""
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    out, _ = attention(*leaves)
    out.backward(d_out)
    return tuple(t.grad for t in leaves)


def _gradients_with(q, k, v, d_out, *, centre="D", scale_power=1, transpose_p=True):
    """The gradients written out by hand with one classic mistake switched on (the defaults: none).
    ``centre`` is what dP is centred by ("D" = rowsum(dO o O), "none", "rowsum dP"); ``scale_power``
    how many times dq and dk carry the 1/sqrt(d) of the scores."""
    scale = 1 / math.sqrt(q.shape[-1])
    p = torch.softmax(q @ k.transpose(-2, -1) * scale, dim=-1)
    d_p = d_out @ v.transpose(-2, -1)
    out = p @ v
    centres = {
        "D": (d_out * out).sum(-1, keepdim=True),
        "none": torch.zeros_like(d_p[..., :1]),
        "rowsum dP": d_p.sum(-1, keepdim=True),
    }
    d_s = p * (d_p - centres[centre])
    factor = scale**scale_power
    d_v = p.transpose(-2, -1) @ d_out if transpose_p else p @ d_out
    return d_s @ k * factor, d_s.transpose(-2, -1) @ q * factor, d_v


def _mistakes(q, k, v, d_out) -> dict[str, dict[str, torch.Tensor]]:
    """For each gradient, the values of the classic mistakes that change it."""
    variants = {
        "dS = P o dP: the softmax's gradient subtracts D = rowsum(dO o O) from dP first": {"centre": "none"},
        "D = rowsum(dP): D is the rowsum of P o dP, which equals rowsum(dO o O)": {"centre": "rowsum dP"},
        "gradients without the 1/sqrt(d) of the scores: dQ = dS K / sqrt(d)": {"scale_power": 0},
        "the 1/sqrt(d) applied twice to dq and dk": {"scale_power": 2},
    }
    if q.shape[-2] == k.shape[-2] and v.shape[-1] == d_out.shape[-1]:
        variants["dV = P dO: the gradient of O = P V with respect to V is P^T dO"] = {"transpose_p": False}
    mistakes: dict[str, dict[str, torch.Tensor]] = {name: {} for name in NAMES}
    for mistake, switches in variants.items():
        for name, value in zip(NAMES, _gradients_with(q, k, v, d_out, **switches), strict=True):
            mistakes[name][mistake] = value
    return mistakes


def _judge(result, q, k, v, d_out, block: int, expected, mistakes=None):
    inputs = (
        f"Nq={q.shape[-2]}, Nk={k.shape[-2]}, D={q.shape[-1]}, Dv={v.shape[-1]}, block_size={block}, "
        f"{str(q.dtype).removeprefix('torch.')}"
    )
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        raise CheckFailed(
            f"tiled_attention_backward should return (dq, dk, dv), got {type(result).__name__}",
            "end your function with `return dq, dk, dv`",
        )
    dims = {"dq": "(B, H, Nq, D)", "dk": "(B, H, Nk, D)", "dv": "(B, H, Nk, Dv)"}
    hints = {
        "dq": "dq accumulates dS_ij K_j / sqrt(d) over the key blocks j of each query block",
        "dk": "dk accumulates dS_ij^T Q_i / sqrt(d) over the query blocks i",
        "dv": "dv accumulates P_ij^T dO_i over the query blocks i, with P_ij = exp(S_ij - lse_i)",
    }
    for name, seen, wanted in zip(NAMES, result, expected, strict=True):
        seen = expect_tensor(seen, name, wanted.shape, q.dtype, dims[name], inputs)
        expect_close(seen, wanted, name, hints[name], mistakes=(mistakes or {}).get(name), inputs=inputs)


def _check(student, case: Case, n_q: int, n_k: int, block: int):
    d, d_v = case.randint(2, 12), case.randint(2, 12)
    heads = case.randint(1, 2)
    q, k = case.randn(1, heads, n_q, d, dtype=torch.float64), case.randn(1, heads, n_k, d, dtype=torch.float64)
    v, d_out = case.randn(1, heads, n_k, d_v, dtype=torch.float64), case.randn(1, heads, n_q, d_v, dtype=torch.float64)
    with torch.no_grad():
        out, lse = reference_tiled(q, k, v)
    result = case.call(student, q, k, v, out, lse, d_out, block_size=block)
    _judge(result, q, k, v, d_out, block, _gradients(q, k, v, d_out), _mistakes(q, k, v, d_out))


@check("float64: dq, dk, dv match autograd, n a multiple of block_size")
def _backward_even(student, case):
    block = 2 ** case.randint(2, 3)
    n = block * case.randint(2, 5)
    _check(student, case, n, n, block)


@check("ragged sizes: n not a multiple of block_size, Nq != Nk, block larger than n")
def _backward_ragged(student, case):
    block = case.randint(5, 8)
    _check(student, case, block * 2 + case.randint(1, block - 1), block * 3 + case.randint(1, block - 1), block)
    _check(student, case, case.randint(2, 6), case.randint(2, 6), 16)


MEMORY_N = 8192  # the exercise promises O(n) memory at this length
MEMORY_DIM = 64
MEMORY_BLOCK = 256
REFERENCE_BLOCK = 2048  # the trusted side's tiles at the measured lengths: 16 times fewer Python steps than 256


def _reference_tiled(q, k, v):
    """The tiled reference in tiles of REFERENCE_BLOCK: at n = 8192 dense attention's autograd would
    hold seven (n, n) buffers, tiles of MEMORY_BLOCK cost seconds of Python per pass."""
    return reference_tiled(q, k, v, block_q=REFERENCE_BLOCK, block_k=REFERENCE_BLOCK)


def _backward_inputs(case: Case, n: int):
    """(q, k, v, out, lse, d_out) of length n, out and lse from the tiled reference."""
    q, k, v, d_out = (case.randn(1, 1, n, MEMORY_DIM) for _ in range(4))
    with torch.no_grad():
        out, lse = _reference_tiled(q, k, v)
    return q, k, v, out, lse, d_out


def _backward_peak(case: Case, n: int):
    """One measured call at length n: (its peak memory, its result, the inputs)."""
    q, k, v, out, lse, d_out = _backward_inputs(case, n)
    measured = case.measure(q, k, v, out, lse, d_out, block_size=MEMORY_BLOCK)
    return measured.peak_bytes, measured.value, (q, k, v, d_out)


def _rehearsal(student, case: Case):
    """An unmeasured call like the measured ones, at two blocks."""
    q, k, v, out, lse, d_out = _backward_inputs(case, 2 * MEMORY_BLOCK)
    _judge_measured(case.call(student, q, k, v, out, lse, d_out, block_size=MEMORY_BLOCK), (q, k, v, d_out))


def _judge_measured(result, inputs):
    """The measured call's gradients against the reference's, by autograd through tiled attention."""
    _judge(result, *inputs, MEMORY_BLOCK, _gradients(*inputs, _reference_tiled))


@check(f"peak memory is O(n): under budget at n={MEMORY_N}, about 4x when n grows 4x", weight=2)
def _backward_memory(student, case):
    check_linear_memory(
        lambda n: _backward_peak(case, n),
        _judge_measured,
        MEMORY_N,
        MEMORY_DIM,
        what="your backward pass",
        matrix="float32 matrix",
        hint="never build P or dS for all pairs: recompute one (block, block) tile of P from the lse, use it "
        "for its share of dq, dk and dv, and drop it",
        call_and_judge=lambda: _rehearsal(student, case),
    )


CHECKS = (
    _backward_even,
    _backward_ragged,
    _backward_memory,
)
