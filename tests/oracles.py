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

    For timing and for long runs under lcteach.memory's tracker: on a shared 2-core machine
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
    return tuple(
        torch.randn(s, generator=gen, dtype=dtype).requires_grad_(requires_grad) for s in shapes
    )


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
