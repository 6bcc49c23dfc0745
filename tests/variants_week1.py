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


def fit_endpoints(ns, values, breaks=0):
    return math.log(values[-1] / values[0]) / math.log(ns[-1] / ns[0])


def fit_without_logs(ns, values, breaks=0):
    return float(np.polyfit(ns, values, 1)[0])


def _line(x, y):
    """(slope, squared residuals) of the least-squares line through (x, y)."""
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(((y - slope * x - intercept) ** 2).sum())


def fit_with(min_part=3, slope_of="upper", choose="residuals", one_line=False, check_breaks=True):
    """``slope_of``: "upper" (right) or "lower"; ``choose``: "residuals" (right) or "slope-change" (the
    split where the two slopes differ most); ``min_part=2`` lets a part have 2 points; ``one_line``
    ignores breaks; ``check_breaks=False`` takes any breaks other than 0 for 1."""

    def fit_exponent(ns, values, breaks=0):
        x, y = np.log(np.asarray(ns, dtype=float)), np.log(np.asarray(values, dtype=float))
        if check_breaks and breaks not in (0, 1):
            raise ValueError(f"breaks must be 0 or 1, got {breaks}")
        if breaks == 0 or one_line:
            return _line(x, y)[0]
        if len(x) < 2 * min_part:
            raise ValueError(f"need {2 * min_part} points")
        fits = []
        for k in range(min_part, len(x) - min_part + 1):
            (lower, lower_residuals), (upper, upper_residuals) = _line(x[:k], y[:k]), _line(x[k:], y[k:])
            fits.append((lower_residuals + upper_residuals, lower, upper))
        best = min(fits, key=(lambda f: f[0]) if choose == "residuals" else (lambda f: -abs(f[2] - f[1])))
        return best[2] if slope_of == "upper" else best[1]

    return fit_exponent


# ---------------------------------------------------------------- 8. causal tiled attention


def causal_tiled_with(skip="masked", upper=0, width=0, scale=True):
    """``skip``: "masked" (right: every fully masked tile), "future" (only the tiles above the
    diagonal) or "none" (every tile computed and masked); ``upper``/``width`` shift the mask's
    diagonal and the window's far edge; ``scale=False`` drops 1/sqrt(d)."""

    def causal_tiled_attention(q, k, v, block_size=64, window=None):
        n, d = q.shape[-2], q.shape[-1]
        factor = 1 / math.sqrt(d) if scale else 1.0
        out = torch.empty(*q.shape[:-1], v.shape[-1], dtype=q.dtype)
        lse = torch.empty(q.shape[:-1], dtype=q.dtype)
        for i0 in range(0, n, block_size):
            i1 = min(i0 + block_size, n)
            rows = torch.arange(i0, i1)[:, None]
            first = 0 if window is None or skip != "masked" else max(0, i0 - window + 1) // block_size * block_size
            last = n if skip == "none" else i1
            m = torch.full((*q.shape[:-2], i1 - i0), float("-inf"), dtype=q.dtype)
            l, acc = torch.zeros_like(m), torch.zeros(*q.shape[:-2], i1 - i0, v.shape[-1], dtype=q.dtype)
            for j0 in range(first, last, block_size):
                j1 = min(j0 + block_size, n)
                columns = torch.arange(j0, j1)[None, :]
                allowed = columns <= rows + upper
                if window is not None:
                    allowed &= rows - columns < window + width
                scores = (q[..., i0:i1, :] @ k[..., j0:j1, :].transpose(-2, -1) * factor).masked_fill(
                    ~allowed, float("-inf")
                )
                m_new = torch.maximum(m, scores.amax(-1))
                ref = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
                p = torch.exp(scores - ref[..., None])
                rescale = torch.exp(m - ref)
                m, l, acc = m_new, l * rescale + p.sum(-1), acc * rescale[..., None] + p @ v[..., j0:j1, :]
            out[..., i0:i1, :] = acc / l[..., None]
            lse[..., i0:i1] = m + torch.log(l)
        return out, lse

    return causal_tiled_attention


# ---------------------------------------------------------------- 9. tiled backward


def backward_with(centre="D", scale_power=1, transpose_p=True, store_p=False):
    """The tiled backward with one classic mistake: ``centre`` "none" or "rowsum dP" instead of
    D = rowsum(dO o O); ``scale_power`` the times 1/sqrt(d) multiplies dq and dk;
    ``transpose_p=False`` gives dV = P dO; ``store_p`` builds the whole (Nq, Nk) P at once."""

    def tiled_attention_backward(q, k, v, out, lse, d_out, block_size=64):
        scale = 1 / math.sqrt(q.shape[-1])
        if store_p:
            p = torch.exp(q @ k.transpose(-2, -1) * scale - lse[..., None])
            d_s = p * (d_out @ v.transpose(-2, -1) - (d_out * out).sum(-1, keepdim=True))
            return d_s @ k * scale, d_s.transpose(-2, -1) @ q * scale, p.transpose(-2, -1) @ d_out
        dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
        big_d = (d_out * out).sum(-1)
        for i0 in range(0, q.shape[-2], block_size):
            rows = slice(i0, i0 + block_size)
            for j0 in range(0, k.shape[-2], block_size):
                keys = slice(j0, j0 + block_size)
                p = torch.exp(q[..., rows, :] @ k[..., keys, :].transpose(-2, -1) * scale - lse[..., rows, None])
                d_p = d_out[..., rows, :] @ v[..., keys, :].transpose(-2, -1)
                if centre == "D":
                    d_s = p * (d_p - big_d[..., rows, None])
                elif centre == "rowsum dP":
                    d_s = p * (d_p - (d_out[..., rows, :] @ v.transpose(-2, -1)).sum(-1, keepdim=True))
                else:
                    d_s = p * d_p
                factor = scale**scale_power
                dq[..., rows, :] += d_s @ k[..., keys, :] * factor
                dk[..., keys, :] += d_s.transpose(-2, -1) @ q[..., rows, :] * factor
                if transpose_p:
                    dv[..., keys, :] += p.transpose(-2, -1) @ d_out[..., rows, :]
                else:  # (P dO)[i] = sum_j P[i, j] dO[j]: only defined when Nq == Nk
                    dv[..., rows, :] += p @ d_out[..., keys, :]
        return dq, dk, dv

    return tiled_attention_backward


# ---------------------------------------------------------------- 10. chunk schedule


def schedule_with(fits=lambda cost, budget: cost <= budget, step_extra=0, check=True, ints=True):
    """``fits`` decides whether a cost fits the budget (right: <=); ``step_extra`` moves the chunk
    starts; ``check=False`` never raises; ``ints=False`` returns float spans."""

    def schedule_chunks(n, budget_bytes, overlap, bytes_per_token, bytes_per_pair):
        size = overlap + 1
        if check and not fits(bytes_per_token * size + bytes_per_pair * size**2, budget_bytes):
            raise ValueError("the budget is too small")
        while size < n and fits(bytes_per_token * (size + 1) + bytes_per_pair * (size + 1) ** 2, budget_bytes):
            size += 1
        spans, start = [], 0
        while True:
            end = min(start + size, n)
            spans.append((start, end) if ints else (float(start), float(end)))
            if end == n:
                return spans
            start += size - overlap + step_extra

    return schedule_chunks
