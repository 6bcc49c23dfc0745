"""Small independent oracles for the lcteach core tests.

Each one is written the slow, obvious way (Python loops, float64) and shares no code with
lcteach, so that a test comparing the two checks the library rather than itself.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math

import torch

F64 = torch.float64


@contextlib.contextmanager
def one_thread():
    """Run torch on one thread, then restore the setting.

    For timing and for long runs under lcteach.measure's tracker: on a shared 2-core machine
    an OpenMP barrier between two threads can stall each small op by a scheduler time slice.
    Peak memory does not depend on the number of threads.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def random_qkv(*shape_q, n_k=None, dim_v=None, dtype=F64, seed=0, requires_grad=False):
    """Seeded q (*shape_q), k and v sharing q's leading dims; k/v have n_k rows, v has dim_v columns."""
    *lead, n_q, dim = shape_q
    n_k = n_q if n_k is None else n_k
    dim_v = dim if dim_v is None else dim_v
    gen = torch.Generator().manual_seed(seed)
    shapes = ((*lead, n_q, dim), (*lead, n_k, dim), (*lead, n_k, dim_v))
    return tuple(torch.randn(s, generator=gen, dtype=dtype).requires_grad_(requires_grad) for s in shapes)


def grid_mask(allowed, n_q, n_k=None):
    """Bool (n_q, n_k) matrix of ``allowed(i, j)`` for plain Python ints i, j."""
    n_k = n_q if n_k is None else n_k
    return torch.tensor([[bool(allowed(i, j)) for j in range(n_k)] for i in range(n_q)], dtype=torch.bool)


def causal_allowed(i, j):
    return j <= i


def window_allowed(window):
    """The documented sliding window: the query itself and the ``window - 1`` keys before it."""
    return lambda i, j: i - window < j <= i


def loop_attention(q, k, v, mask=None, scale=None):
    """Attention one query at a time in float64: (out (..., Nq, Dv), lse (..., Nq)).

    ``mask`` is a bool tensor broadcastable to (..., Nq, Nk). A query with no allowed key
    gets a zero output and lse = -inf.
    """
    q, k, v = (t.detach().to(F64) for t in (q, k, v))
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    n_q, n_k = q.shape[-2], k.shape[-2]
    lead = q.shape[:-2]
    full_mask = torch.ones(n_q, n_k, dtype=torch.bool) if mask is None else mask
    allowed = full_mask.expand(*lead, n_q, n_k).tolist()
    out = torch.zeros(*lead, n_q, v.shape[-1], dtype=F64)
    lse = torch.full((*lead, n_q), -math.inf, dtype=F64)
    for idx in itertools.product(*(range(s) for s in lead)):
        q_, k_, v_ = q[idx], k[idx], v[idx]
        rows = functools.reduce(lambda nested, i: nested[i], idx, allowed)  # nested lists, (n_q, n_k)
        for i in range(n_q):
            keys = [j for j in range(n_k) if rows[i][j]]
            if not keys:
                continue
            scores = (k_[keys] @ q_[i]) * scale  # only the allowed keys: no -inf, no fill
            top = scores.max()
            weights = torch.exp(scores - top)
            lse[idx + (i,)] = top + torch.log(weights.sum())
            out[idx + (i,)] = (weights @ v_[keys]) / weights.sum()
    return out, lse


def output_gradients(fn, q, k, v, seed):
    """d/d(q, k, v) of a seeded random linear function of the tensor ``fn(q, k, v)``."""
    out = fn(q, k, v)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    return torch.autograd.grad((out * weights).sum(), (q, k, v))


def reference_attention(q, k, v, mask=None, scale=None):
    """Differentiable dense attention via torch.softmax / torch.logsumexp: (out, lse).

    Rows with no allowed key are not supported (softmax would give NaN); callers avoid them.
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf)
    return torch.softmax(scores, dim=-1) @ v, torch.logsumexp(scores, dim=-1)


# ---------------------------------------------------------------- week 2: sparse patterns


def strided_allowed(stride):
    """Dilated pattern, both directions: keys whose distance to the query is a multiple of stride."""
    return lambda i, j: (i - j) % stride == 0


def symmetric_window_allowed(window):
    """The documented symmetric window: the query and window // 2 keys on each side."""
    return lambda i, j: abs(i - j) <= window // 2


def global_allowed(positions):
    """Global tokens see every key and are seen by every query."""
    positions = set(positions)
    return lambda i, j: i in positions or j in positions


def block_allowed(layout, block_size):
    """Block-sparse lookup from a nested-list layout; False past the layout's end."""

    def allowed(i, j):
        bi, bj = i // block_size, j // block_size
        return bi < len(layout) and bj < len(layout[0]) and layout[bi][bj]

    return allowed


def sparse_transformer_allowed(stride):
    """Sparse Transformer strided attention: causal; the last ``stride`` keys or every stride-th key."""
    return lambda i, j: j <= i and (i - j < stride or (i - j) % stride == 0)


def count_pairs(allowed, n_q, n_k=None):
    """Number of (i, j) with ``allowed(i, j)``, one pair at a time."""
    n_k = n_q if n_k is None else n_k
    return sum(1 for i in range(n_q) for j in range(n_k) if allowed(i, j))


def bfs_hops(matrix):
    """Hop counts by breadth-first search from every key: (n, n) nested lists, -1 = unreachable.

    ``matrix[i][j]`` = query i attends key j; in one layer information moves from j to every
    i with matrix[i][j] and stays where it is (the residual connection).
    """
    n = len(matrix)
    hops = [[-1] * n for _ in range(n)]
    for key in range(n):
        hops[key][key] = 0
        frontier, layer = [key], 0
        while frontier:
            layer += 1
            reached = [i for i in range(n) if hops[i][key] == -1 and any(matrix[i][p] for p in frontier)]
            for i in reached:
                hops[i][key] = layer
            frontier = [i for i in range(n) if hops[i][key] != -1]
            if not reached:
                break
    return hops


def loop_topk_attention(q, k, v, top_k, allowed):
    """Top-k attention one query at a time in float64: the top_k best allowed keys, ties to the
    earlier key, softmax over those. ``allowed(b, h, i, j)`` for Python ints. Returns out (B, H, Nq, Dv)."""
    q, k, v = (t.detach().to(F64) for t in (q, k, v))
    batch, heads, n_q, dim = q.shape
    out = torch.zeros(batch, heads, n_q, v.shape[-1], dtype=F64)
    for b, h, i in itertools.product(range(batch), range(heads), range(n_q)):
        scored = [
            (float(q[b, h, i] @ k[b, h, j]) / math.sqrt(dim), j) for j in range(k.shape[-2]) if allowed(b, h, i, j)
        ]
        kept = sorted(scored, key=lambda pair: (-pair[0], pair[1]))[:top_k]
        if not kept:
            continue
        top = max(score for score, _ in kept)
        weights = {j: math.exp(score - top) for score, j in kept}
        total = sum(weights.values())
        out[b, h, i] = sum(w / total * v[b, h, j] for j, w in weights.items())
    return out


def prefix_lm_allowed(prefix_length):
    """Prefix-LM: every query sees the prefix 0 .. prefix_length - 1, and the keys up to itself."""
    return lambda i, j: j < prefix_length or j <= i


def document_allowed(lengths, inner=None):
    """Packed documents, one position at a time: i and j in the same document (both inside the
    packing) and, if given, ``inner(i', j')`` on positions counted from their document's start."""
    document, start = [], []
    for d, length in enumerate(lengths):
        document += [d] * length
        start += [sum(lengths[:d])] * length

    def allowed(i, j):
        if not (0 <= i < len(document) and 0 <= j < len(document)) or document[i] != document[j]:
            return False
        return inner is None or bool(inner(i - start[i], j - start[j]))

    return allowed


# ---------------------------------------------------------------- score_mods


def alibi_bias(heads, n_q, n_k=None):
    """ALiBi's additive bias, float64 (heads, n_q, n_k), one pair at a time: -2^(-8 (h + 1) / heads) * (i - j)."""
    n_k = n_q if n_k is None else n_k
    return torch.tensor(
        [
            [[-(2.0 ** (-8.0 * (h + 1) / heads)) * (i - j) for j in range(n_k)] for i in range(n_q)]
            for h in range(heads)
        ],
        dtype=F64,
    )


def modified_attention(q, k, v, mask, modify, scale=None):
    """Differentiable dense attention with ``modify(scores)`` (elementwise torch ops) before the bool
    ``mask``: softmax(modify(q k^T * scale)) v. Rows with no allowed key are not supported."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = modify((q @ k.transpose(-2, -1)) * scale).masked_fill(~mask, -math.inf)
    return torch.softmax(scores, dim=-1) @ v


def loop_modified_attention(q, k, v, allowed, modify, scale=None):
    """Attention one (query, key) pair at a time in float64 with a per-pair score function:
    ``modify(score, b, h, i, j)`` on Python floats and ints, ``allowed(b, h, i, j)``. out (B, H, Nq, Dv);
    a query with no allowed key gets zeros."""
    q, k, v = (t.detach().to(F64) for t in (q, k, v))
    batch, heads, n_q, dim = q.shape
    scale = 1.0 / math.sqrt(dim) if scale is None else scale
    out = torch.zeros(batch, heads, n_q, v.shape[-1], dtype=F64)
    for b, h, i in itertools.product(range(batch), range(heads), range(n_q)):
        keys = [j for j in range(k.shape[-2]) if allowed(b, h, i, j)]
        if not keys:
            continue
        scores = [modify(float(q[b, h, i] @ k[b, h, j]) * scale, b, h, i, j) for j in keys]
        top = max(scores)
        weights = [math.exp(s - top) for s in scores]
        out[b, h, i] = sum(w * v[b, h, j] for w, j in zip(weights, keys)) / sum(weights)
    return out
