"""Reachability through stacked attention layers: which keys can reach which queries, in how many layers.

A pattern is a mask_mod or a bool (n, n) matrix A with A[i, j] = query i attends key j.
One layer moves information from key j to query i when A[i, j]. Between layers the
residual connection keeps each position's own information, so L layers connect i and j
when (A or I)^L [i, j] (boolean matrix power, I the identity): paths may wait in place.
A position has its own information after 0 layers.

Boolean products are float32 matmuls of 0/1 matrices followed by ``> 0``: O(n^3) per
product, O(n^2) memory; fine up to n of a few thousand.
"""

from __future__ import annotations

import torch

from lcteach.masks.evaluation import MaskMod, materialize_mask
from lcteach.validation import check_bool_matrix, check_positive_int

Pattern = MaskMod | torch.Tensor


def _layer_matrix(pattern: Pattern, n: int | None) -> torch.Tensor:
    """(A or I) as a bool (n, n) matrix, from a mask_mod (at length n) or a square bool matrix."""
    if isinstance(pattern, torch.Tensor):
        matrix = check_bool_matrix("pattern", pattern)
        if matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"pattern must be a square (n, n) matrix, got shape {tuple(matrix.shape)}")
        if n is not None and n != matrix.shape[0]:
            raise ValueError(f"n = {n} does not match the pattern's {matrix.shape[0]} x {matrix.shape[0]} matrix")
    elif n is None:
        raise ValueError("n is needed to evaluate a mask_mod pattern")
    else:
        matrix = materialize_mask(pattern, check_positive_int("n", n))[0, 0]
    return matrix | torch.eye(matrix.shape[0], dtype=torch.bool, device=matrix.device)


def _then(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Reachability of ``first``'s layers followed by ``second``'s: second @ first as booleans."""
    return (second.float() @ first.float()) > 0


def hop_counts(pattern: Pattern, n: int | None = None, max_layers: int | None = None) -> torch.Tensor:
    """Fewest layers for key j's information to reach query i: int64 (n, n), -1 if not within ``max_layers``.

    hops[i, i] = 0; hops[i, j] = L >= 1 for the smallest L with (A or I)^L [i, j].
    ``n`` is needed for a mask_mod and optional for a matrix; ``max_layers`` defaults to
    n - 1, after which nothing new can be reached. Stops early once a layer reaches no new pair.
    Cost: one (n, n) matmul per layer, O(layers * n^3).
    """
    step = _layer_matrix(pattern, n)
    size = step.shape[0]
    limit = size - 1 if max_layers is None else check_positive_int("max_layers", max_layers)
    reached = torch.eye(size, dtype=torch.bool, device=step.device)
    hops = torch.where(reached, 0, -1)
    for layer in range(1, limit + 1):
        grown = _then(reached, step)
        new = grown & ~reached
        if not new.any():
            break
        hops[new] = layer
        reached = grown
    return hops


def _full_reach_target(step: torch.Tensor, causal: bool | None) -> torch.Tensor:
    """Pairs that full reach must cover: j <= i for a causal pattern, all pairs otherwise.

    ``causal=None`` reads it off the pattern: causal when no query attends a later key.
    """
    if causal is None:
        causal = not step.triu(1).any()
    target = torch.ones_like(step)
    return target.tril() if causal else target


def minimal_layers_for_full_reach(pattern: Pattern, n: int | None = None, *, causal: bool | None = None) -> int | None:
    """Fewest stacked layers after which every query has information from every key it could
    have: every j <= i for a causal pattern, every j for a bidirectional one (``causal``
    forces the choice). None if no depth gets there; 0 for n = 1.

    Equals hop_counts(pattern, n)[target].max(), found with about 2 log2(answer) products instead
    of one per layer: square (A or I) until a power 2^K covers the target, then binary lifting
    below it. O(n^3 log n) time, O(n^2 log n) memory.
    """
    step = _layer_matrix(pattern, n)
    target = _full_reach_target(step, causal)

    def covers(reach: torch.Tensor) -> bool:
        return bool((reach | ~target).all())

    reached = torch.eye(step.shape[0], dtype=torch.bool, device=step.device)
    if covers(reached):
        return 0
    powers = [step]  # powers[k] = (A or I)^(2^k), squared until one covers the target
    while not covers(powers[-1]):
        if 2 ** (len(powers) - 1) >= step.shape[0] - 1:
            return None  # a path never needs more than n - 1 layers
        powers.append(_then(powers[-1], powers[-1]))
    layers = 0  # the most layers known NOT to cover the target; ``reached`` is their reach
    for k in reversed(range(len(powers) - 1)):
        candidate = _then(reached, powers[k])
        if not covers(candidate):
            reached, layers = candidate, layers + 2**k
    return layers + 1
