"""Sliding windows: the causal window that ends at the query, and the window centred on it."""

from __future__ import annotations

from lcteach.masks.evaluation import MaskMod
from lcteach.validation import check_positive_int, check_symmetric_window


def generate_sliding_window(window: int) -> MaskMod:
    """Causal sliding window of ``window`` keys that ends at the query itself.

    Query i attends to keys j with i - window < j <= i: ``window=1`` is the query alone,
    ``window=3`` is the query and the two keys before it. Each row has min(i + 1, window)
    allowed keys, so the pattern costs O(n * window) instead of O(n^2).
    """
    check_positive_int("window", window)

    def sliding_window(b, h, q_idx, kv_idx):
        return (q_idx >= kv_idx) & (q_idx - kv_idx < window)

    sliding_window.__name__ = f"sliding_window_{window}"
    return sliding_window


def generate_symmetric_window(window: int, dilation: int = 1) -> MaskMod:
    """Bidirectional window of ``window`` keys centred on the query (BigBird, Longformer).

    Query i attends key j when |i - j| <= window // 2: the query itself and window // 2 keys
    on each side, so ``window`` must be odd; window=3 is i-1, i, i+1. As with the causal
    lcteach.generate_sliding_window, ``window`` counts the keys of a row, the query
    included; rows within window // 2 of an end have fewer. O(n * window) pairs.
    (The papers' w with w/2 keys per side is window = w + 1 here.)

    ``dilation`` d spreads the same keys d apart (Longformer's dilated window): query i attends
    key j when (i - j) % d == 0 and |i - j| <= (window // 2) * d, still ``window`` keys per row
    (i, i ± d, ..., i ± (window // 2) * d) but a reach of (window // 2) * d on each side.
    d=1 is the plain window.
    """
    radius = check_symmetric_window(window) // 2
    check_positive_int("dilation", dilation)
    reach = radius * dilation

    if dilation == 1:

        def symmetric_window(b, h, q_idx, kv_idx):
            return (q_idx - kv_idx).abs() <= radius

        symmetric_window.__name__ = f"symmetric_window_{window}"
        return symmetric_window

    def dilated_window(b, h, q_idx, kv_idx):
        distance = q_idx - kv_idx
        return (distance.abs() <= reach) & (distance % dilation == 0)

    dilated_window.__name__ = f"symmetric_window_{window}_dilated_{dilation}"
    return dilated_window
