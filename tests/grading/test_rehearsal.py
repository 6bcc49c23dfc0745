"""A measured check rehearses first: a function whose values are wrong on small inputs starts no
measuring process (its start costs some 4 s of CPU per part) and fails the check as not counted."""

from __future__ import annotations

import pytest
import torch
from grading_helpers import InProcessMeasurer, grade_remotely

from lcteach.grading import week1, week2


def _zeros_out_lse(q, k, v, block_size=64, window=None):
    return torch.zeros_like(q), torch.zeros(q.shape[:-1], dtype=q.dtype)


def _zero_gradients(q, k, v, out, lse, d_out, block_size=64):
    return torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)


def _zero_block_sparse(q, k, v, layout, block_size):
    return torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype)


MEASURED_PARTS = {
    "tiled_attention": (week1.tiled_attention, _zeros_out_lse),
    "causal_tiled_attention": (week1.causal_tiled_attention, _zeros_out_lse),
    "tiled_attention_backward": (week1.tiled_attention_backward, _zero_gradients),
    "block_sparse_attention": (week2.block_sparse_attention, _zero_block_sparse),
}


class CountingMeasurer(InProcessMeasurer):
    started: list = []

    def __init__(self, fn):
        CountingMeasurer.started.append(fn)
        super().__init__(fn)


@pytest.mark.parametrize("name", MEASURED_PARTS)
def test_wrong_values_start_no_measuring_process(name):
    part, wrong = MEASURED_PARTS[name]
    CountingMeasurer.started.clear()
    result = grade_remotely(part, wrong, seed=7, measurer=CountingMeasurer)
    assert result.points == 0
    assert CountingMeasurer.started == [], "a measuring process started for values that are wrong"
    measured = [o for o in result.outcomes if o.weight > 1]
    assert measured and all(o.message.startswith("not counted: the values are wrong") for o in measured), [
        o.message for o in measured
    ]
