"""CPU offload: attention over keys and values that live in host memory, streamed in chunks.

A long KV cache may not fit in the memory of the compute device (a GPU), while host memory
(CPU RAM) is many times larger. ``offloaded_attention`` keeps the keys and values on the
host and copies them to the device one chunk of ``chunk_size`` positions at a time. Each
chunk gives a partial attention over its keys, (out_c, lse_c), and the partial results are
merged by their log-sum-exps (lcteach.kernels.merge_attention), so the result is exact.
The device holds the queries, the output and one chunk (with one tile of scores) at a time.

On CUDA the host chunks should be in pinned (page-locked) memory (``pinned_host_copy``):
then the copies are asynchronous (``non_blocking=True``), issued on a side stream, and the
copy of chunk i + 1 runs while chunk i is computed. Where the device is the CPU itself the
chunk is still copied into a fresh buffer, so the working set and the bytes moved are those
a GPU would see, though nothing crosses a bus.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from lcteach.kernels.online_softmax import merge_attention
from lcteach.validation import check_nonnegative_int, check_positive_int, check_qkv


class OffloadedAttention(NamedTuple):
    """Result of ``offloaded_attention``: out (B, H, Nq, Dv) and lse (B, H, Nq) on the device, bytes copied."""

    out: torch.Tensor
    lse: torch.Tensor
    bytes_transferred: int


def pinned_host_copy(tensor: torch.Tensor) -> torch.Tensor:
    """A host (CPU) copy of ``tensor`` in pinned memory when CUDA is available, else a plain CPU tensor.

    Pinned (page-locked) memory is what lets a host-to-GPU copy run asynchronously, by DMA,
    at full bus speed; without CUDA there is nothing to pin for, and the CPU tensor is returned
    as it is (no copy if it is already on the CPU).
    """
    host = tensor.detach().to("cpu")
    return host.pin_memory() if torch.cuda.is_available() else host


def _rows(host: torch.Tensor, j0: int, j1: int) -> list[torch.Tensor]:
    """Positions j0 .. j1 - 1 of each (batch, head) row of a host tensor, each a contiguous block if host is."""
    return list(host.reshape(-1, *host.shape[-2:])[:, j0:j1])


def _partial_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, visible: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of q over one chunk of keys: (out (..., Nq, Dv), lse (..., Nq)); -inf / 0 for rows that see none."""
    scores = (q @ k.transpose(-2, -1)).mul_(scale)
    if visible is not None:
        scores.masked_fill_(~visible, float("-inf"))
    row_max = scores.amax(dim=-1)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))  # no inf - inf
    weights = scores.sub_(row_max.unsqueeze(-1)).exp_()  # in place: one (Nq, chunk) buffer
    total = weights.sum(dim=-1)
    out = (weights @ v).div_(torch.where(total > 0, total, torch.ones_like(total)).unsqueeze(-1))
    return out, row_max + torch.log(total)  # log(0) = -inf for rows that see no key


def offloaded_attention(
    q: torch.Tensor,
    k_host: torch.Tensor,
    v_host: torch.Tensor,
    chunk_size: int,
    *,
    device: torch.device | str | None = None,
    causal: bool = False,
    q_start: int | None = None,
    block_q: int | None = None,
    scale: float | None = None,
) -> OffloadedAttention:
    """Exact attention of q over keys and values kept in host memory, streamed to ``device`` in chunks.

    Shapes: q (B, H, Nq, D) on any device, k_host (B, H, Nk, D) and v_host (B, H, Nk, Dv) on
    the CPU (pinned for asynchronous copies to CUDA: ``pinned_host_copy``). ``device``
    defaults to q's device; q is moved there if it is elsewhere. ``causal=True`` lets the
    query at position p see keys j <= p, where the queries sit at positions q_start ..
    q_start + Nq - 1: ``q_start`` defaults to Nk - Nq, the end of the cache (new tokens
    attending to the cache and to themselves); with Nq = Nk that is ordinary causal attention.
    Key chunks that no query may see are never copied. ``block_q`` (default: all queries at
    once) bounds the score tile to (block_q, chunk_size). ``scale`` defaults to 1/sqrt(D).
    Returns OffloadedAttention(out, lse, bytes_transferred): out and lse on the device (lse
    -inf and out 0 for a query that sees no key) and the bytes copied from the host (the key
    and value chunks, plus q if it had to move). No autograd (use under no_grad).
    Cost: O(Nq * Nk * D) time; device memory O(Nq * (D + Dv) + chunk_size * (D + Dv) +
    block_q * chunk_size), two chunks of keys and values while the next one is prefetched on
    CUDA; host-to-device traffic (Nk * (D + Dv) + Nq * D) * itemsize per batch and head.
    """
    check_qkv(q, k_host, v_host)
    if k_host.device.type != "cpu" or v_host.device.type != "cpu":
        raise ValueError(
            f"k_host and v_host must live in host (CPU) memory, got {k_host.device} and {v_host.device}; "
            "for keys already on the device use lcteach.tiled_attention"
        )
    check_positive_int("chunk_size", chunk_size)
    n_q, n_k = q.shape[-2], k_host.shape[-2]
    block_q = n_q if block_q is None else check_positive_int("block_q", block_q)
    q_start = n_k - n_q if q_start is None else check_nonnegative_int("q_start", q_start)
    if causal and q_start < 0:
        raise ValueError(f"causal attention with more queries ({n_q}) than keys ({n_k}) needs q_start >= 0")
    device = q.device if device is None else torch.device(device)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    moved = 0
    if q.device != device:
        q, moved = q.to(device), q.numel() * q.element_size()
    cuda = device.type == "cuda"
    copy_stream = torch.cuda.Stream(device) if cuda else None
    out = q.new_zeros((*q.shape[:-1], v_host.shape[-1]))
    lse = q.new_full(q.shape[:-1], float("-inf"))
    last_query = q_start + n_q - 1
    starts = [j0 for j0 in range(0, n_k, chunk_size) if not causal or j0 <= last_query]  # the rest is unseen

    def fetch(j0: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Copy keys and values j0 .. j0 + chunk_size - 1 into fresh device buffers (on the copy stream on CUDA)."""
        j1 = min(j0 + chunk_size, n_k)
        chunks = []
        for host in (k_host, v_host):
            part = host[..., j0:j1, :]
            buffer = torch.empty(part.shape, dtype=part.dtype, device=device)
            if cuda:
                # One DMA copy per (batch, head) row: each is a contiguous block of pinned memory,
                # while the chunk as a whole is strided, which copy_ would first gather into
                # pageable memory on the CPU, synchronously and at a fraction of the bus speed.
                with torch.cuda.stream(copy_stream):
                    if part.is_contiguous():
                        buffer.copy_(part, non_blocking=True)
                    else:
                        for target, source in zip(buffer.view(-1, *part.shape[-2:]), _rows(host, j0, j1)):
                            target.copy_(source, non_blocking=True)
            else:
                buffer.copy_(part)
            chunks.append(buffer)
        return chunks[0], chunks[1]

    pending = fetch(starts[0]) if cuda and starts else None
    for index, j0 in enumerate(starts):
        if cuda:  # wait for this chunk's copy, then start the next one so that it overlaps this compute
            k_chunk, v_chunk = pending
            torch.cuda.current_stream(device).wait_stream(copy_stream)
            for buffer in (k_chunk, v_chunk):
                buffer.record_stream(torch.cuda.current_stream(device))
            pending = fetch(starts[index + 1]) if index + 1 < len(starts) else None
        else:  # nothing to overlap with: one chunk at a time
            k_chunk, v_chunk = fetch(j0)
        moved += k_chunk.numel() * k_chunk.element_size() + v_chunk.numel() * v_chunk.element_size()
        j1 = j0 + k_chunk.shape[-2]
        for i0 in range(0, n_q, block_q):
            i1 = min(i0 + block_q, n_q)
            visible = None
            if causal:
                if j0 > q_start + i1 - 1:
                    continue  # no query of this block sees this chunk
                if j1 - 1 > q_start + i0:  # some pairs lie above the diagonal
                    rows = torch.arange(q_start + i0, q_start + i1, device=device)[:, None]
                    visible = torch.arange(j0, j1, device=device) <= rows
            part = _partial_attention(q[..., i0:i1, :], k_chunk, v_chunk, scale, visible)
            out[..., i0:i1, :], lse[..., i0:i1] = merge_attention(out[..., i0:i1, :], lse[..., i0:i1], *part)
        del k_chunk, v_chunk
    return OffloadedAttention(out, lse, moved)
