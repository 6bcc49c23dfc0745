"""Prefix-LM: bidirectional attention inside a prefix (a prompt, an image, a source text), causal after it."""

from __future__ import annotations

from lcteach.masks.evaluation import MaskMod
from lcteach.validation import check_nonnegative_int


def generate_prefix_lm(prefix_length: int) -> MaskMod:
    """Prefix-LM (UniLM, T5's prefix LM, PaliGemma): the prefix reads itself in both directions, the rest is causal.

    Query i attends key j when j < prefix_length (every query sees the whole prefix, so the
    prefix queries see each other both ways) or j <= i (causal). Off-by-one: the prefix is
    positions 0 .. prefix_length - 1, so ``prefix_length`` 0 and 1 are both plain causal
    attention (a one-token prefix sees only itself) and ``prefix_length`` >= n is full
    attention. For P = prefix_length <= n, the pattern has P (P - 1) / 2 pairs more than
    causal attention, all of them keys after their query inside the prefix. The same pattern
    as attention-gym's generate_prefix_lm_mask(prefix_length).
    """
    check_nonnegative_int("prefix_length", prefix_length)

    def prefix_lm(b, h, q_idx, kv_idx):
        return (kv_idx < prefix_length) | (q_idx >= kv_idx)

    prefix_lm.__name__ = f"prefix_lm_{prefix_length}"
    return prefix_lm
