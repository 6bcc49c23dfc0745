"""Out-of-memory diagnosis: predict the memory of dense attention at any n without running it.

``dense_attention_memory`` counts the buffers, and ``diagnose_oom`` explains in plain words
whether it fits and what to use instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lcteach.measure.units import format_bytes
from lcteach.validation import check_positive_int

# (n, kv_len) buffers of one head alive at the peak of lcteach.dense_attention.
FORWARD_MATRICES = 2
TRAINING_MATRICES = 7


def dense_attention_memory(
    n: int,
    kv_len: int | None = None,
    *,
    batch: int = 1,
    heads: int = 1,
    dim: int = 64,
    dtype: torch.dtype = torch.float32,
    training: bool = False,
    causal: bool = False,
) -> int:
    """Peak bytes that lcteach.dense_attention allocates for n queries and kv_len keys.

    Forward pass (``training=False``, under no_grad): two (n, kv_len) buffers per head (the
    exponentiated scores E and the normalised weights P), the (n, dim) output and two
    per-row vectors: 2*n*kv_len + n*dim + 2*n elements per head. The n^2 term dominates:
    at n = 65,536 one head needs 32 GiB in float32.

    Forward and backward (``training=True``; q, k and v require grad): the peak comes early in
    the backward pass, inside the gradient of P = E / rowsum(E). Seven (n, kv_len) buffers per
    head are alive there: E and P, which autograd kept from the forward pass; dP = dout @ v^T;
    and the four that PyTorch's formula for the denominator's gradient, -dP * (E / s) / s,
    builds in one expression (E / s, E / s^2, -dP and their product) before they are summed
    over the row. Besides them: the output and dv (n*dim and kv_len*dim elements), the
    clamped row sums s that the division kept (n elements), the bool condition of its
    torch.where (n bytes) and, with ``causal=True``, the (n, kv_len) bool mask that
    masked_fill_ kept for the backward pass (one for all heads and batches). The count is
    exact for q, k, v that are leaves created outside the measured code, measured with
    lcteach.measure.track_peak_memory. A fused softmax keeps fewer (torch.softmax: 3 at the
    peak), and tiled (flash) attention none.
    """
    check_positive_int("n", n)
    kv_len = n if kv_len is None else check_positive_int("kv_len", kv_len)
    itemsize = torch.finfo(dtype).bits // 8
    if not training:
        return batch * heads * (FORWARD_MATRICES * n * kv_len + n * dim + 2 * n) * itemsize
    per_head = (TRAINING_MATRICES * n * kv_len + n * dim + kv_len * dim + n) * itemsize + n
    return batch * heads * per_head + (n * kv_len if causal else 0)


@dataclass(frozen=True)
class Diagnosis:
    """Whether dense attention fits in memory, what it needs, and what to do about it."""

    fits: bool
    needed_bytes: int
    available_bytes: int
    message: str

    def __str__(self) -> str:
        return self.message


def diagnose_oom(
    n: int,
    available_bytes: int,
    *,
    batch: int = 1,
    heads: int = 1,
    dim: int = 64,
    dtype: torch.dtype = torch.float32,
    training: bool = False,
    causal: bool = False,
) -> Diagnosis:
    """Explain whether dense attention at length n fits in ``available_bytes``, and if not, why and what to use.

    ``training=True`` counts the peak of the forward and backward pass: seven n x n buffers per
    head instead of two (``dense_attention_memory`` says which).
    """
    check_positive_int("available_bytes", available_bytes)
    shape = dict(batch=batch, heads=heads, dim=dim, dtype=dtype)
    needed = dense_attention_memory(n, training=training, causal=causal, **shape)
    itemsize = torch.finfo(dtype).bits // 8
    matrix = batch * heads * n * n * itemsize
    matrices = TRAINING_MATRICES if training else FORWARD_MATRICES
    step = "A training step (forward and backward)" if training else "Dense attention"
    head = (
        f"{step} at n={n:,} (batch {batch}, {heads} heads, {dtype}) needs about {format_bytes(needed)}; "
        f"{format_bytes(available_bytes)} is available. One n x n matrix for all heads takes {format_bytes(matrix)}, "
        f"{matrices} of them are alive at the peak, and they grow 4x each time n doubles."
    )
    if needed <= available_bytes:
        return Diagnosis(True, needed, available_bytes, head + " It fits.")
    linear = 4 * batch * heads * n * dim * itemsize
    advice = [
        f"Switch to tiled (flash) attention: the same result, computed block by block, in about "
        f"{format_bytes(linear)} (O(n*d)), because no n x n matrix is ever stored.",
    ]
    if training:
        advice.append(
            "For training, tiled attention recomputes the tiles in the backward pass instead of storing the weights; "
            "gradient checkpointing of whole layers trades compute for the remaining activations."
        )
    if dtype == torch.float32:
        advice.append("bfloat16 halves every buffer, but does not change the n^2 growth.")
    advice.append(
        "If each token only needs nearby context, a sliding window of w keys costs O(n*w); "
        "chunking costs O(n*chunk) but loses context across chunk borders."
    )
    return Diagnosis(False, needed, available_bytes, head + " It does not fit.\n- " + "\n- ".join(advice))
