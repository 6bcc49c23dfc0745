"""Grader tools that run in the student's process, next to the student's code.

The trusted grader names them through the channel (``channel.TOOLS``); they hold no
reference answer and decide nothing: what they report is checked like any return value.
"""

from __future__ import annotations

import random

import numpy as np
import torch

GLOBAL_RNGS = ("torch", "random", "numpy.random")


def _global_states() -> tuple:
    return torch.get_rng_state(), random.getstate(), np.random.get_state()


def _same_state(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, tuple) and a and a[0] == "MT19937":  # numpy: (name, keys, pos, has_gauss, cached)
        return np.array_equal(a[1], b[1]) and a[2:] == b[2:]
    return a == b


def call_with_global_seed(fn, global_seed: int, *args) -> tuple:
    """Call ``fn(*args)`` with torch's, Python's and numpy's global RNGs seeded to ``global_seed``;
    return (its result, the names of the global RNGs it moved). The RNGs are restored afterwards."""
    saved = _global_states()
    try:
        torch.manual_seed(global_seed)
        random.seed(global_seed)
        np.random.seed(global_seed)
        before = _global_states()
        result = fn(*args)
        moved = [
            name
            for name, was, now in zip(GLOBAL_RNGS, before, _global_states(), strict=True)
            if not _same_state(was, now)
        ]
        return result, moved
    finally:
        torch.set_rng_state(saved[0])
        random.setstate(saved[1])
        np.random.set_state(saved[2])


def call_and_inputs(fn, *args):
    """Call ``fn(*args)``; return (its result, the arguments as they are after the call): how
    the grader sees a function that changes its inputs in place."""
    return fn(*args), list(args)


def table_mask_mod(table: torch.Tensor):
    """A mask_mod that looks (query, key) pairs up in a bool table: how the grader hands a pattern
    to student code as a function (it runs next to that code, under FlexAttention's vmap)."""

    def table_mask(b, h, q_idx, kv_idx):
        return table[q_idx, kv_idx]

    return table_mask
