"""Online softmax: softmax(s) @ v computed one block of scores at a time.

The running state per query row is (m, l, acc): the largest score seen so far, the sum of
exp(score - m) and the sum of exp(score - m) * v. A new block rescales the old state by
exp(m_old - m_new), so the result equals the one-shot softmax exactly (in exact
arithmetic) while only one block of scores exists at a time.
"""

from __future__ import annotations

import torch


def init_softmax_state(
    rows: tuple[int, ...], value_dim: int, *, dtype: torch.dtype, device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Empty state for query rows of shape ``rows``: m = -inf, l = 0, acc = 0 (rows + (Dv,))."""
    m = torch.full(rows, float("-inf"), dtype=dtype, device=device)
    l = torch.zeros(rows, dtype=dtype, device=device)
    acc = torch.zeros((*rows, value_dim), dtype=dtype, device=device)
    return m, l, acc


def online_softmax_step(
    m: torch.Tensor,
    l: torch.Tensor,
    acc: torch.Tensor,
    scores: torch.Tensor,
    values: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fold one block into the running state.

    Shapes: m, l (..., Nq); acc (..., Nq, Dv); scores (..., Nq, Bk) with -inf for masked
    pairs; values (..., Bk, Dv). Returns the new (m, l, acc). A block whose scores are all
    -inf leaves the state unchanged, even when nothing has been seen yet (m = -inf).
    """
    m_new = torch.maximum(m, scores.amax(dim=-1))
    # Rows that have seen only -inf keep a finite reference point, so no inf - inf = NaN.
    safe_m = torch.where(torch.isfinite(m_new), m_new, torch.zeros_like(m_new))
    correction = torch.exp(m - safe_m)
    p = torch.exp(scores - safe_m.unsqueeze(-1))
    l_new = l * correction + p.sum(dim=-1)
    acc_new = acc * correction.unsqueeze(-1) + p @ values
    return m_new, l_new, acc_new


def finalize_softmax_state(m: torch.Tensor, l: torch.Tensor, acc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn a state into (out (..., Nq, Dv), lse (..., Nq)); rows that saw no key give 0 and -inf."""
    seen = l > 0
    out = acc / torch.where(seen, l, torch.ones_like(l)).unsqueeze(-1)
    return out, m + torch.log(l)  # log(0) = -inf marks rows that saw no key


def merge_attention(
    out_a: torch.Tensor, lse_a: torch.Tensor, out_b: torch.Tensor, lse_b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Combine attention over two disjoint key sets from their outputs and log-sum-exps.

    Shapes: out (..., Nq, Dv), lse (..., Nq). The result equals attention over the union of
    the keys: lse = logaddexp(lse_a, lse_b) and each output is weighted by exp(lse_x - lse).
    Rows with no key on either side stay 0 with lse -inf. This is how tiles, chunks and
    ring-attention shards are put back together.
    """
    lse = torch.logaddexp(lse_a, lse_b)
    safe = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
    w_a = torch.exp(lse_a - safe).unsqueeze(-1)
    w_b = torch.exp(lse_b - safe).unsqueeze(-1)
    return w_a * out_a + w_b * out_b, lse
