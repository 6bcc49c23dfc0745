"""Closed-form cost of attention methods: FLOPs and memory as functions of n, d and parameters.

Every ``*_cost`` function returns an :class:`AttentionCost` for ONE head of ONE sequence:

- ``pairs``: (query, key) scores the method computes; the patterns in lcteach.masks
  give the same count when counted with ``pattern_flops`` (tests check this).
- ``flops``: ``pair_flops(pairs, d) = 4 * d * pairs``: 2d for the q.k dot product
  (d multiplies, d adds) and 2d for adding the weighted value row into the output. The
  softmax (O(pairs)) and any pooling (O(n * d)) are left out.
- ``score_bytes``: one score per pair that is alive at once, as an implementation that
  stores the allowed scores (not a fused kernel) keeps them; ``kv_bytes``: the keys and
  values it keeps, 2 * tokens * d elements. Bytes are elements times ``dtype``'s size.
- ``causal``: whether a query sees only itself and earlier keys (a decoder) or keys on both
  sides (an encoder). Causal dense attention scores n(n + 1)/2 pairs, not n^2, so a causal
  method is compared with causal dense attention, a bidirectional one with full attention.

``complexity_table`` evaluates every method over a list of n; ``format_complexity_table``
turns the rows into a markdown table whose "of dense" column makes that comparison. Plain
numbers, no plotting.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from lcteach.masks.evaluation import pair_flops
from lcteach.measure.units import format_bytes
from lcteach.validation import check_float_dtype, check_nonnegative_int, check_positive_int, check_symmetric_window


@dataclass(frozen=True)
class AttentionCost:
    """Cost of one attention layer, one head, one sequence of n tokens. ``pairs`` is None
    for linear attention, which computes no (query, key) score. ``causal``: a decoder's
    pattern (keys j <= i only) rather than an encoder's."""

    method: str
    params: str
    n: int
    head_dim: int
    pairs: int | None
    flops: int
    score_bytes: int
    kv_bytes: int
    causal: bool

    @property
    def total_bytes(self) -> int:
        return self.score_bytes + self.kv_bytes

    @property
    def dense_flops(self) -> int:
        """FLOPs of dense attention of the same kind at this n: causal (n(n + 1)/2 pairs) for a
        causal method, full (n^2 pairs) for a bidirectional one."""
        return dense_cost(self.n, head_dim=self.head_dim, causal=self.causal).flops

    @property
    def of_dense(self) -> float:
        """FLOPs as a fraction of dense attention of the same kind (``dense_flops``)."""
        return self.flops / self.dense_flops


def _pair_cost(method, params, n, pairs, head_dim, dtype, *, causal, live_pairs=None, kv_tokens=None) -> AttentionCost:
    """An AttentionCost for a method that scores ``pairs`` pairs; by default all of them, and
    all n keys and values, are alive at once."""
    itemsize = check_float_dtype(dtype).itemsize
    live_pairs = pairs if live_pairs is None else live_pairs
    kv_tokens = n if kv_tokens is None else kv_tokens
    return AttentionCost(
        method,
        params,
        n,
        head_dim,
        pairs,
        pair_flops(pairs, head_dim),
        live_pairs * itemsize,
        2 * kv_tokens * head_dim * itemsize,
        causal,
    )


def _check_sizes(n, head_dim) -> None:
    check_positive_int("n", n)
    check_positive_int("head_dim", head_dim)


def _causal_window_pairs(n: int, window: int) -> int:
    """Pairs of lcteach.generate_sliding_window(window) on n tokens: sum over i of min(i + 1, window)."""
    full = min(n, window)
    return full * (full + 1) // 2 + (n - full) * window


def _pairs_outside_symmetric_window(n: int, window: int) -> int:
    """Pairs (i, j) of n tokens with |i - j| > r = window // 2: two corner triangles of
    m(m + 1)/2 pairs each, m = max(n - r - 1, 0)."""
    corner = max(n - window // 2 - 1, 0)
    return corner * (corner + 1)


def dense_cost(
    n: int, *, head_dim: int = 64, dtype: torch.dtype = torch.float32, causal: bool = False
) -> AttentionCost:
    """Dense attention. Full (bidirectional, ``causal=False``): n^2 pairs. Causal (lcteach.causal_mask,
    method "causal dense"): n(n + 1)/2 pairs, half the work and no better exponent. Both O(n^2 d)
    FLOPs and O(n^2) score memory."""
    _check_sizes(n, head_dim)
    if causal:
        return _pair_cost("causal dense", "", n, n * (n + 1) // 2, head_dim, dtype, causal=True)
    return _pair_cost("dense", "", n, n * n, head_dim, dtype, causal=False)


def sliding_window_cost(
    n: int, window: int, *, head_dim: int = 64, dtype: torch.dtype = torch.float32
) -> AttentionCost:
    """Causal sliding window (lcteach.generate_sliding_window): query i sees i-window+1..i.

    Pairs: min(n, w)(min(n, w) + 1)/2 + (n - min(n, w)) * w, about n*w: O(n w d) FLOPs.
    """
    _check_sizes(n, head_dim)
    check_positive_int("window", window)
    return _pair_cost("sliding window", f"w={window}", n, _causal_window_pairs(n, window), head_dim, dtype, causal=True)


def strided_cost(
    n: int, stride: int | None = None, *, head_dim: int = 64, dtype: torch.dtype = torch.float32
) -> AttentionCost:
    """Sparse Transformer strided attention, causal: the last ``stride`` keys plus every
    stride-th earlier key, i.e. and_masks(causal_mask, or_masks(generate_sliding_window(s),
    generate_strided(s))). ``stride`` defaults to floor(sqrt(n)), which makes it O(n sqrt(n)).

    Pairs: window(s) + sum over i of floor(i / s); the two parts share only the diagonal.
    With q, r = divmod(n, s) that sum is s * q(q - 1)/2 + r * q.
    """
    _check_sizes(n, head_dim)
    stride = math.isqrt(n) if stride is None else check_positive_int("stride", stride)
    whole, rest = divmod(n, stride)
    pairs = _causal_window_pairs(n, stride) + stride * whole * (whole - 1) // 2 + rest * whole
    return _pair_cost("strided", f"s={stride}", n, pairs, head_dim, dtype, causal=True)


def _global_window_pairs(n: int, window: int, num_global: int) -> int:
    """Pairs of or_masks(symmetric window, first g tokens global): n^2 minus the pairs outside
    both, which are those outside a symmetric window on the last n - g tokens."""
    return n * n - _pairs_outside_symmetric_window(max(n - num_global, 0), window)


def longformer_cost(
    n: int, window: int, num_global: int, *, head_dim: int = 64, dtype: torch.dtype = torch.float32
) -> AttentionCost:
    """Longformer: a symmetric window of ``window`` keys (odd; window // 2 on each side) plus
    the first ``num_global`` tokens global (they see all, all see them). Exact pairs of
    or_masks(generate_symmetric_window(window), generate_global(num_global)); O(n (w + g) d).
    """
    _check_sizes(n, head_dim)
    check_symmetric_window(window)
    check_nonnegative_int("num_global", num_global)
    pairs = _global_window_pairs(n, window, num_global)
    return _pair_cost("longformer", f"w={window}, g={num_global}", n, pairs, head_dim, dtype, causal=False)


def bigbird_cost(
    n: int,
    window: int,
    num_global: int,
    num_random_blocks: int,
    block_size: int,
    *,
    head_dim: int = 64,
    dtype: torch.dtype = torch.float32,
) -> AttentionCost:
    """BigBird (lcteach.generate_bigbird): Longformer's window and global tokens plus
    ``num_random_blocks`` random key blocks of ``block_size`` per query block.

    The random keys are counted as if they never fell inside the window or on a global
    token, so ``pairs`` is an UPPER bound: the Longformer count <= true pairs <= this,
    at most n * min(r * b, n) above the truth. O(n (w + g + r b) d).
    """
    _check_sizes(n, head_dim)
    check_symmetric_window(window)
    check_nonnegative_int("num_global", num_global)
    check_nonnegative_int("num_random_blocks", num_random_blocks)
    check_positive_int("block_size", block_size)
    random_keys = min(num_random_blocks * block_size, n)
    pairs = min(_global_window_pairs(n, window, num_global) + n * random_keys, n * n)
    params = f"w={window}, g={num_global}, r={num_random_blocks}x{block_size}"
    return _pair_cost("bigbird", params, n, pairs, head_dim, dtype, causal=False)


def linear_attention_cost(n: int, *, head_dim: int = 64, dtype: torch.dtype = torch.float32) -> AttentionCost:
    """Causal linear attention phi(Q) (phi(K)^T V), run as a recurrence: no scores, a (d, d)
    state S = sum_j phi(k_j) v_j^T and a d-vector normaliser z = sum_j phi(k_j), updated one
    token at a time.

    FLOPs 4 n d^2: 2 d^2 per token to add phi(k) v^T into the state, 2 d^2 to multiply
    phi(q) by it (feature map and normaliser, O(n d), left out). Memory: the state
    (``score_bytes``: d^2 + d elements) and the current token's key and value (``kv_bytes``:
    2d elements), both independent of n: O(n d^2) time, O(d^2) memory.
    """
    _check_sizes(n, head_dim)
    itemsize = check_float_dtype(dtype).itemsize
    return AttentionCost(
        "linear",
        "",
        n,
        head_dim,
        None,
        4 * n * head_dim * head_dim,
        (head_dim * head_dim + head_dim) * itemsize,
        2 * head_dim * itemsize,
        True,
    )


def _hierarchical_level_sizes(n: int, block_size: int) -> list[int]:
    """Tokens per level of the multi-scale hierarchy: n, ceil(n/2), ceil(n/4), ... until one
    level fits in a block (at most ``block_size`` summaries)."""
    sizes = [n]
    while sizes[-1] > block_size:
        sizes.append(math.ceil(sizes[-1] / 2))
    return sizes


def hierarchical_cost(
    n: int, block_size: int, *, head_dim: int = 64, dtype: torch.dtype = torch.float32
) -> AttentionCost:
    """Multi-scale (hierarchical) attention. Level 0 is the n tokens; level l holds
    size_l = ceil(n / 2^l) means of 2^l tokens, up to the first level with at most
    ``block_size`` of them. Each query attends ``block_size`` keys per level (its own block
    at level 0, the nearest block of summaries above), or the whole level if it is shorter:
    pairs = n * sum_l min(block_size, size_l), O(n b log(n / b) d) FLOPs.
    Keys and values of every level are kept: sum_l size_l < 2n + levels tokens.
    """
    _check_sizes(n, head_dim)
    check_positive_int("block_size", block_size)
    sizes = _hierarchical_level_sizes(n, block_size)
    pairs = n * sum(min(block_size, size) for size in sizes)
    params = f"b={block_size}, levels={len(sizes)}"
    return _pair_cost("hierarchical", params, n, pairs, head_dim, dtype, causal=False, kv_tokens=sum(sizes))


def memory_augmented_cost(
    n: int, segment: int, memory: int, *, head_dim: int = 64, dtype: torch.dtype = torch.float32
) -> AttentionCost:
    """Segment recurrence with a memory (Transformer-XL: ``memory`` cached states of the
    previous segment; or ``memory`` fixed memory slots).

    The sequence is processed one segment of ``segment`` tokens at a time (the last one may
    be shorter); a query attends causally inside its segment (itself included) and to all
    ``memory`` slots. Every segment is charged the full memory, so for Transformer-XL,
    whose first segment has no cache yet, ``pairs`` is an upper bound by segment * memory.
    Pairs: sum over segments of s(s + 1)/2 + s * m, O(n (s + m) d) FLOPs. Only one segment
    is alive at once: its scores and s + m keys and values, memory independent of n.
    """
    _check_sizes(n, head_dim)
    check_positive_int("segment", segment)
    check_nonnegative_int("memory", memory)
    whole, rest = divmod(n, segment)
    pairs = whole * _causal_window_pairs(segment, segment) + _causal_window_pairs(rest, rest) + n * memory
    live = min(segment, n)
    return _pair_cost(
        "memory-augmented",
        f"segment={segment}, m={memory}",
        n,
        pairs,
        head_dim,
        dtype,
        causal=True,
        live_pairs=_causal_window_pairs(live, live) + live * memory,
        kv_tokens=live + memory,
    )


def complexity_table(
    ns: Iterable[int],
    *,
    head_dim: int = 64,
    dtype: torch.dtype = torch.float32,
    window: int = 255,
    num_global: int = 2,
    num_random_blocks: int = 3,
    block_size: int = 64,
    segment: int = 512,
    memory: int = 512,
) -> list[AttentionCost]:
    """Every method's cost at every n in ``ns``: a list of rows, n-major, methods in a fixed order:
    dense, causal dense, then the causal methods (sliding window, strided, linear,
    memory-augmented) and the bidirectional ones (Longformer, BigBird, hierarchical).

    ``window`` counts the keys a query sees, itself included, for the causal sliding window
    and for Longformer / BigBird's symmetric window (so it must be odd); strided attention
    uses stride floor(sqrt(n)); ``block_size`` serves BigBird's random blocks and the
    hierarchical blocks.
    """
    ns = list(ns)
    if not ns:
        raise ValueError("ns must list at least one sequence length")
    sizes = {"head_dim": head_dim, "dtype": dtype}
    return [
        cost
        for n in ns
        for cost in (
            dense_cost(n, **sizes),
            dense_cost(n, causal=True, **sizes),
            sliding_window_cost(n, window, **sizes),
            strided_cost(n, **sizes),
            linear_attention_cost(n, **sizes),
            memory_augmented_cost(n, segment, memory, **sizes),
            longformer_cost(n, window, num_global, **sizes),
            bigbird_cost(n, window, num_global, num_random_blocks, block_size, **sizes),
            hierarchical_cost(n, block_size, **sizes),
        )
    ]


def format_complexity_table(rows: Iterable[AttentionCost]) -> str:
    """A markdown table of AttentionCost rows. "of dense" is the FLOPs relative to dense
    attention of the same kind at that n (``AttentionCost.of_dense``): causal dense for a
    causal method, full dense for a bidirectional one."""
    lines = [
        "| method | kind | params | n | pairs | FLOPs | of dense | scores | K+V | total |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        pairs = "-" if row.pairs is None else f"{row.pairs:.3g}"
        kind = "causal" if row.causal else "bidirectional"
        lines.append(
            f"| {row.method} | {kind} | {row.params} | {row.n} | {pairs} | {row.flops:.3g} | {row.of_dense:.2%} | "
            f"{format_bytes(row.score_bytes)} | {format_bytes(row.kv_bytes)} | {format_bytes(row.total_bytes)} |"
        )
    return "\n".join(lines)
