"""Week 1's variant builders and mistakes, shared by its mutant tests (tests/grading/test_week1.py)
and its fairness corpus (tests/grading/test_fairness_week1.py): a builder returns a student
function that is the solution's logic but for the mistakes its arguments switch on (the defaults
switch on none)."""

from __future__ import annotations

import math

import numpy as np
import torch

# ---------------------------------------------------------------- 1. dense attention


def attention_with(scale=None, axis=-1, subtract_max=True, mask_mode="fill", dtype=None, in_place=False):
    """``scale(d)`` replaces 1/sqrt(d); ``mask_mode`` is "fill" (right), "inverted" or "after" the softmax;
    ``dtype`` casts the weights; ``in_place`` scales q in place."""

    def dense_attention(q, k, v, mask=None):
        d = q.shape[-1]
        if in_place:
            q.div_(math.sqrt(d))
            scores = q @ k.transpose(-2, -1)
        else:
            scores = q @ k.transpose(-2, -1) * (1 / math.sqrt(d) if scale is None else scale(d))
        if mask is not None and mask_mode == "fill":
            scores = scores.masked_fill(~mask, float("-inf"))
        if mask is not None and mask_mode == "inverted":
            scores = scores.masked_fill(mask, float("-inf"))
        if subtract_max:
            scores = scores - scores.amax(dim=axis, keepdim=True)
        weights = torch.exp(scores)
        weights = weights / weights.sum(dim=axis, keepdim=True)
        if mask is not None and mask_mode == "after":
            weights = weights * mask
        weights = weights if dtype is None else weights.to(dtype)
        return weights @ v.to(weights.dtype), weights

    return dense_attention


# ---------------------------------------------------------------- 2. causal mask


def causal_python_if(b, h, q_idx, kv_idx):
    if q_idx >= kv_idx:
        return True
    return False


# ---------------------------------------------------------------- 3. sliding window


def window_with(upper=lambda q, kv, w: q - kv < w, causal=True, check=True):
    def generate_sliding_window(window):
        if check and window < 1:
            raise ValueError("window must be >= 1")
        return lambda b, h, q, kv: ((q >= kv) if causal else (q == q)) & upper(q, kv, window)

    return generate_sliding_window


# ---------------------------------------------------------------- 4. online softmax step


def online_with(rescale=True, subtract_max=True, guard_inf=True):
    def step(m, l, acc, scores, values):
        m_new = torch.maximum(m, scores.amax(-1))
        ref = m_new if not guard_inf else torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
        if not subtract_max:
            ref = torch.zeros_like(m_new)
        factor = torch.exp(m - ref) if rescale and subtract_max else torch.ones_like(m)
        p = torch.exp(scores - ref[..., None])
        return m_new, l * factor + p.sum(-1), acc * factor[..., None] + p @ values

    return step


# ---------------------------------------------------------------- 5. tiled attention


def tiled_quadratic(q, k, v, block_size=128):
    """Right values, but through the full (n, n) score matrix."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return torch.softmax(scores, dim=-1) @ v, torch.logsumexp(scores, dim=-1)


def tiled_strips(q, k, v, block_size=128):
    """One (block, n) strip of scores per query block: O(n) memory, which is what is graded."""
    outs, lses = [], []
    for i in range(0, q.shape[-2], block_size):
        scores = q[..., i : i + block_size, :] @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        outs.append(torch.softmax(scores, dim=-1) @ v)
        lses.append(torch.logsumexp(scores, dim=-1))
    return torch.cat(outs, dim=-2), torch.cat(lses, dim=-1)


# ---------------------------------------------------------------- 6. chunked processing


def chunks_with(step_extra=0, keep="first", ignore_overlap=False, check=lambda c, o: 0 <= o < c):
    """``check(chunk_size, overlap)`` says which arguments are accepted (the rest raise ValueError);
    ``keep="last"`` lets the later chunk win the overlap."""

    def process_in_chunks(fn, x, chunk_size, overlap):
        if not check(chunk_size, overlap):
            raise ValueError("bad overlap")
        n, pieces, done, start = x.shape[1], [], 0, 0
        while True:
            end = min(start + chunk_size, n)
            result = fn(x[:, start:end])
            if keep == "first":
                pieces.append(result[:, done - start :])
            else:  # the later chunk wins the overlap
                if pieces:
                    pieces[-1] = pieces[-1][:, : pieces[-1].shape[1] - (done - start)]
                pieces.append(result)
            done = end
            if end == n:
                return torch.cat(pieces, dim=1)
            start += chunk_size if ignore_overlap else chunk_size - overlap + step_extra

    return process_in_chunks


# ---------------------------------------------------------------- 7. fitting the exponent


def fit_endpoints(ns, values):
    return math.log(values[-1] / values[0]) / math.log(ns[-1] / ns[0])


def fit_without_logs(ns, values):
    return float(np.polyfit(ns, values, 1)[0])
