"""Memory traffic of attention: elements moved between main memory and on-chip memory (IO analysis).

A GPU computes on data in a small, fast on-chip memory (SRAM: an SM's shared memory, M
elements) and keeps everything else in its large, slow main memory (HBM). This module counts
the elements that one forward pass of one head of attention over n tokens, head dim d
(keys and values alike), moves between the two, following Dao et al. 2022 (FlashAttention,
Algorithms 0 and 1, Theorem 2):

- ``standard_attention_traffic``: Algorithm 0. S = QK^T is written to main memory, read
  back for the softmax, P written, read back for PV: 4n^2 + 4nd elements, Theta(nd + n^2),
  whatever M is (the paper counts each input of a product loaded once).
- ``flash_attention_traffic``: the tiled forward pass, in closed form. With the paper's
  loop order (``loop_order="kv_outer"``, Algorithm 1) each key/value block is loaded once
  and every pass over them reloads all of Q, O, l and m and writes O, l and m back:
  Theta(T_c * n * d) with T_c = ceil(n / B_c) passes, and with B_c = ceil(M / (4d)) that
  is Theta(n^2 d^2 / M). ``loop_order="q_outer"`` is FlashAttention-2's forward pass (and
  lcteach.tiled_attention's): each query block stays on chip while all the key/value
  blocks stream past it, and O and the log-sum-exp are written once.
- ``simulate_flash_traffic``: the same count by brute force, walking the tiled loop and
  adding up every tile it loads and stores (the tests check it against the closed form).

Counts are elements; ``MemoryTraffic.bytes(dtype)`` converts. ``flops`` is the 4 n^2 d of
the two matrix products (QK^T and PV), the same for every method; the softmax and the
rescaling (O(n^2)) are left out. Plain numbers, no torch tensors and no plotting.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import torch

from lcteach.validation import check_float_dtype, check_positive_int

LOOP_ORDERS = ("kv_outer", "q_outer")  # FlashAttention (Algorithm 1), FlashAttention-2

Terms = tuple[tuple[str, int], ...]  # (tensor, elements moved), in the order the algorithm moves them


@dataclass(frozen=True)
class MemoryTraffic:
    """Elements one attention forward pass (one head, n tokens, head dim d) moves between
    main memory and on-chip memory. ``reads``: (tensor, elements) loaded from main memory;
    ``writes``: (tensor, elements) stored to it. ``block_q``, ``block_k`` are the tile sizes
    (None for standard attention). ``flops``: the 4 n^2 d of QK^T and PV."""

    method: str
    n: int
    head_dim: int
    block_q: int | None
    block_k: int | None
    reads: Terms
    writes: Terms
    flops: int

    @property
    def elements_read(self) -> int:
        return sum(count for _, count in self.reads)

    @property
    def elements_written(self) -> int:
        return sum(count for _, count in self.writes)

    @property
    def elements(self) -> int:
        """All elements moved, reads plus writes."""
        return self.elements_read + self.elements_written

    def bytes(self, dtype: torch.dtype = torch.float16) -> int:
        """Bytes moved with elements of ``dtype`` (default float16, as GPU kernels run attention)."""
        return self.elements * check_float_dtype(dtype).itemsize

    def intensity(self, dtype: torch.dtype = torch.float16) -> float:
        """Arithmetic intensity: FLOPs per byte of main-memory traffic."""
        return self.flops / self.bytes(dtype)


def _check_sizes(n, head_dim) -> None:
    check_positive_int("n", n)
    check_positive_int("head_dim", head_dim)


def _flops(n: int, head_dim: int) -> int:
    return 4 * n * n * head_dim  # 2 n^2 d for QK^T, 2 n^2 d for PV


def standard_attention_traffic(n: int, head_dim: int = 64) -> MemoryTraffic:
    """Algorithm 0 of Dao et al. 2022, term by term: read Q, K (nd each), write S (n^2);
    read S, write P (n^2 each); read P (n^2), V (nd), write O (nd). Total 4n^2 + 4nd, the
    same for every on-chip size M (each input of a product is counted as loaded once)."""
    _check_sizes(n, head_dim)
    nd, nn = n * head_dim, n * n
    reads = (("Q", nd), ("K", nd), ("S", nn), ("P", nn), ("V", nd))
    writes = (("S", nn), ("P", nn), ("O", nd))
    return MemoryTraffic("standard", n, head_dim, None, None, reads, writes, _flops(n, head_dim))


def flash_block_sizes(sram_elements: int, head_dim: int = 64) -> tuple[int, int]:
    """The block sizes of Algorithm 1 of Dao et al. 2022 for an on-chip memory of M =
    ``sram_elements`` elements: returns (block_q, block_k) = (B_r, B_c) with
    B_c = ceil(M / (4d)) and B_r = min(B_c, d). Then the blocks K_j, V_j (B_c x d each) fill
    about half of M and Q_i, O_i (B_r x d each) at most the other half."""
    check_positive_int("sram_elements", sram_elements)
    check_positive_int("head_dim", head_dim)
    block_k = math.ceil(sram_elements / (4 * head_dim))
    return min(block_k, head_dim), block_k


def _blocks(head_dim, sram_elements, block_q, block_k, loop_order) -> tuple[int, int]:
    if loop_order not in LOOP_ORDERS:
        raise ValueError(f"loop_order must be one of {LOOP_ORDERS}, got {loop_order!r}")
    if sram_elements is None:
        if block_q is None or block_k is None:
            raise ValueError("give either sram_elements, or both block_q and block_k")
        return check_positive_int("block_q", block_q), check_positive_int("block_k", block_k)
    if block_q is not None or block_k is not None:
        raise ValueError("give either sram_elements or block_q and block_k, not both")
    small, large = flash_block_sizes(sram_elements, head_dim)
    # The outer loop's block stays on chip through the inner loop: it gets the large size.
    return (small, large) if loop_order == "kv_outer" else (large, small)


def _method(loop_order: str) -> str:
    return "flash (K, V outer)" if loop_order == "kv_outer" else "flash (Q outer)"


def flash_attention_traffic(
    n: int,
    head_dim: int = 64,
    *,
    sram_elements: int | None = None,
    block_q: int | None = None,
    block_k: int | None = None,
    loop_order: str = "kv_outer",
) -> MemoryTraffic:
    """Closed-form traffic of the tiled (flash) forward pass, term by term.

    Give either ``sram_elements`` (M; the blocks come from ``flash_block_sizes``, the outer
    loop's block taking the large size B_c) or both ``block_q`` and ``block_k``.
    ``loop_order="kv_outer"`` (Algorithm 1 of Dao et al. 2022), T_c = ceil(n / block_k):
    write O, l, m once to initialise them (nd + 2n); read K, V once (nd each); then each of
    the T_c passes reads Q, O (nd each), l, m (n each) and writes O, l, m back:
    2nd + n(d + 2) + T_c n (3d + 4) elements, Theta(n^2 d^2 / M) for the paper's blocks.
    ``loop_order="q_outer"`` (FlashAttention-2), T_r = ceil(n / block_q): read Q once, K and
    V once per query block, write O and the log-sum-exp once: 2nd + 2 T_r n d + n.
    O(1) time.
    """
    _check_sizes(n, head_dim)
    block_q, block_k = _blocks(head_dim, sram_elements, block_q, block_k, loop_order)
    nd = n * head_dim
    if loop_order == "kv_outer":
        passes = -(-n // block_k)
        reads = (("K", nd), ("V", nd), ("Q", passes * nd), ("O", passes * nd), ("l", passes * n), ("m", passes * n))
        writes = (("O", nd + passes * nd), ("l", n + passes * n), ("m", n + passes * n))
    else:
        passes = -(-n // block_q)
        reads = (("Q", nd), ("K", passes * nd), ("V", passes * nd))
        writes = (("O", nd), ("lse", n))
    return MemoryTraffic(_method(loop_order), n, head_dim, block_q, block_k, reads, writes, _flops(n, head_dim))


def simulate_flash_traffic(
    n: int, head_dim: int = 64, *, block_q: int, block_k: int, loop_order: str = "kv_outer"
) -> MemoryTraffic:
    """Brute force: walk the tiled loop of ``flash_attention_traffic`` block by block and add
    up the elements of every tile loaded from and stored to main memory (the last block of a
    length that is not a multiple of the block size is shorter). An independent count of the
    same traffic; O((n / block_q) * (n / block_k)) time."""
    _check_sizes(n, head_dim)
    block_q, block_k = _blocks(head_dim, None, block_q, block_k, loop_order)
    read, written = Counter(), Counter()
    width = {"Q": head_dim, "K": head_dim, "V": head_dim, "O": head_dim, "l": 1, "m": 1, "lse": 1}

    def load(tensor, i0, i1):
        read[tensor] += (i1 - i0) * width[tensor]

    def store(tensor, i0, i1):
        written[tensor] += (i1 - i0) * width[tensor]

    query_blocks = [(i0, min(i0 + block_q, n)) for i0 in range(0, n, block_q)]
    key_blocks = [(j0, min(j0 + block_k, n)) for j0 in range(0, n, block_k)]
    if loop_order == "kv_outer":
        for tensor in ("O", "l", "m"):  # O = 0, l = 0, m = -inf, initialised in main memory
            store(tensor, 0, n)
        for j0, j1 in key_blocks:
            load("K", j0, j1)
            load("V", j0, j1)
            for i0, i1 in query_blocks:
                for tensor in ("Q", "O", "l", "m"):
                    load(tensor, i0, i1)
                # on chip: S_ij = Q_i K_j^T, the online-softmax update of O_i, l_i, m_i
                for tensor in ("O", "l", "m"):
                    store(tensor, i0, i1)
    else:
        for i0, i1 in query_blocks:
            load("Q", i0, i1)  # O_i, l_i, m_i start on chip
            for j0, j1 in key_blocks:
                load("K", j0, j1)
                load("V", j0, j1)
                # on chip: S_ij = Q_i K_j^T, the online-softmax update of O_i, l_i, m_i
            store("O", i0, i1)
            store("lse", i0, i1)
    order = ("Q", "K", "V", "O", "l", "m", "lse")
    reads = tuple((tensor, read[tensor]) for tensor in order if tensor in read)
    writes = tuple((tensor, written[tensor]) for tensor in order if tensor in written)
    return MemoryTraffic(_method(loop_order), n, head_dim, block_q, block_k, reads, writes, _flops(n, head_dim))
