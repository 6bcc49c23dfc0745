"""Out-of-memory diagnosis: predict the memory of dense attention at any n without running it.

``dense_attention_memory`` counts the buffers, and ``diagnose_oom`` explains in plain words
whether it fits and what to use instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lcteach.measure.units import format_bytes
from lcteach.validation import check_positive_int


def dense_attention_memory(
    n: int,
    kv_len: int | None = None,
    *,
    batch: int = 1,
    heads: int = 1,
    dim: int = 64,
    dtype: torch.dtype = torch.float32,
) -> int:
    """Peak bytes that lcteach.dense_attention allocates for n queries and kv_len keys.

    Two (n, kv_len) buffers per head (exponentiated scores and normalised weights), the
    (n, dim) output and two per-row vectors: 2*n*kv_len + n*dim + 2*n elements per head.
    The n^2 term dominates: at n = 65,536 one head needs 32 GiB in float32.
    """
    check_positive_int("n", n)
    kv_len = n if kv_len is None else check_positive_int("kv_len", kv_len)
    per_head = 2 * n * kv_len + n * dim + 2 * n
    return batch * heads * per_head * torch.finfo(dtype).bits // 8


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
) -> Diagnosis:
    """Explain whether dense attention at length n fits in ``available_bytes``, and if not, why and what to use.

    ``training=True`` counts the weights kept for the backward pass as well.
    """
    check_positive_int("available_bytes", available_bytes)
    needed = dense_attention_memory(n, batch=batch, heads=heads, dim=dim, dtype=dtype)
    itemsize = torch.finfo(dtype).bits // 8
    if training:
        needed += batch * heads * n * n * itemsize
    matrix = batch * heads * n * n * itemsize
    head = (
        f"Dense attention at n={n:,} (batch {batch}, {heads} heads, {dtype}) needs about {format_bytes(needed)}; "
        f"{format_bytes(available_bytes)} is available. The n x n score matrices alone (one per head) take {format_bytes(matrix)}, "
        f"and it grows 4x each time n doubles."
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
