"""The grading record: plain data out of the kernel, and the trusted replay of it (judge)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lcteach.grading import week1 as grade
from lcteach.grading.core import judge
from lcteach.grading.record import MAX_ITEMS, Opaque, OpaqueFunction, RecordError, decode, encode


def roundtrip(value):
    return decode(json.loads(json.dumps(encode(value), allow_nan=False)))


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(0, 4), max_size=4),
    dtype=st.sampled_from([torch.float64, torch.float32, torch.bfloat16, torch.int64, torch.bool]),
)
def test_tensors_come_back_equal_with_their_dtype_and_shape(shape, dtype):
    tensor = (torch.randn(shape) * 10).to(dtype)
    back = roundtrip(tensor)
    assert type(back) is torch.Tensor and back.dtype == dtype and back.shape == tensor.shape
    assert torch.equal(back, tensor)


def test_plain_values_come_back_as_themselves():
    values = [None, True, 3, "text", 1.5, (1, [2.0, "x"]), [], np.float64(0.25), np.int32(7)]
    assert [roundtrip(v) for v in values] == [None, True, 3, "text", 1.5, (1, [2.0, "x"]), [], 0.25, 7]
    assert str(roundtrip(float("nan"))) == "nan" and roundtrip(-float("inf")) == -float("inf")
    assert roundtrip(torch.ones(2, requires_grad=True)).requires_grad is False


class AlwaysEqual:
    def __eq__(self, other):
        return True


class Agreeable(torch.Tensor):
    pass


class Loud(type):
    @property
    def __name__(cls):
        raise AssertionError("encode ran code of the student's class")


class Sneaky(metaclass=Loud):
    def __float__(self):
        raise AssertionError("encode ran code of the student's object")


@pytest.mark.parametrize(
    "value, name",
    [
        (AlwaysEqual(), "AlwaysEqual"),
        (torch.ones(2).as_subclass(Agreeable), "Agreeable"),
        (Sneaky(), "Sneaky"),
        (torch.ones(3).to_sparse(), "Tensor_sparse_coo_float32"),
        (list(range(MAX_ITEMS + 1)), "list"),
    ],
)
def test_other_objects_are_recorded_by_their_type_name_only(value, name):
    back = roundtrip(value)
    assert isinstance(back, Opaque) and type(back).__name__ == name
    assert back != back.__class__() and not isinstance(back, torch.Tensor)


def test_a_returned_function_is_recorded_as_one_that_never_runs():
    back = roundtrip(lambda b, h, q, k: q >= k)
    assert isinstance(back, OpaqueFunction) and callable(back)
    with pytest.raises(RuntimeError, match="cannot run"):
        back(0, 0, 1, 1)


@pytest.mark.parametrize(
    "data",
    [
        {"tensor": {"dtype": "float32", "shape": [2], "data": "AAAA"}},  # 3 bytes for 8
        {"tensor": {"dtype": "object", "shape": [1], "data": ""}},
        {"tensor": {"dtype": "float32", "shape": [-1], "data": ""}},
        {"pickle": "gASV"},
        {"tuple": "not a list"},
        [1, 2],
    ],
)
def test_damaged_entries_raise_record_error(data):
    with pytest.raises(RecordError):
        decode(data)


def honest_dense(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores - scores.amax(-1, keepdim=True), dim=-1)
    return weights @ v, weights


def test_judge_replays_a_record_to_the_same_verdict(capsys):
    result = grade.dense_attention(honest_dense, seed=11)
    replayed = judge(json.loads(json.dumps(result.record)))
    assert replayed.outcomes == result.outcomes and replayed.points == 3 and replayed.graded


def test_judge_does_not_trust_what_the_kernel_concluded(capsys):
    """Wrong outputs in the record fail the replay, whatever the kernel printed or returned."""
    record = json.loads(json.dumps(grade.dense_attention(honest_dense, seed=11).record))
    for check in record["checks"]:
        for entry in check:
            tensor = entry["result"]["tuple"][0]["tensor"]
            zeros = torch.zeros(tensor["shape"], dtype=getattr(torch, tensor["dtype"]))
            tensor["data"] = encode(zeros)["tensor"]["data"]
    failed = {o.name for o in judge(record).outcomes if not o.passed}
    # zero outputs: only the checks of shapes and of the weights' row sums can pass
    assert failed == {c.check_name for c in grade.dense_attention.checks} - {
        "returns (out, weights) with shapes (B, H, Nq, Dv) and (B, H, Nq, Nk), finite",
        "each row of the weights sums to 1",
    }


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.update(part="lcteach.kernels.dense.dense_attention"), "no graded part"),
        (lambda r: r.update(part="lcteach.grading.week1.PARTS"), "unknown part"),
        (lambda r: r.update(part="lcteach.grading.nothing.dense_attention"), "unknown module"),
        (lambda r: r.update(version=0), "not a grading record"),
        (lambda r: r.update(seed="7331"), "damaged"),
        (lambda r: r["checks"].append([]) or r["checks"].extend([[]] * 9), "check list"),
    ],
)
def test_judge_rejects_a_record_it_did_not_write(change, message, capsys):
    record = json.loads(json.dumps(grade.causal_mask(lambda b, h, q, k: q >= k).record))
    change(record)
    with pytest.raises(RecordError, match=message):
        judge(record)


def test_a_truncated_or_padded_record_fails_its_checks(capsys):
    record = json.loads(json.dumps(grade.causal_mask(lambda b, h, q, k: q >= k).record))
    record["checks"][0] = []
    record["checks"][1].append(record["checks"][1][0])
    outcomes = judge(record).outcomes
    assert "ends before" in outcomes[0].message and "does not make" in outcomes[1].message
    assert outcomes[2].passed


def test_one_stuck_call_stops_the_part_and_replays_the_same(monkeypatch, capsys):
    """After a call runs out of time the part's other checks are not run, so a stuck function
    costs one call limit per grade and the cell stays within its own time limit."""
    import time

    from lcteach.grading import core

    monkeypatch.setattr(core, "CALL_TIME_LIMIT", 0.5)

    def stuck(q, k, v, block_size=128):
        while True:
            pass

    start = time.monotonic()
    result = grade.tiled_attention(stuck, seed=3)
    assert time.monotonic() - start < 5
    assert "ran out of time" in result.outcomes[-1].message and result.points == 0
    assert judge(json.loads(json.dumps(result.record))).outcomes == result.outcomes
