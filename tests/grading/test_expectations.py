"""The comparisons checks make (lcteach.grading.expectations): tolerances fitted to the dtype,
named mistakes, and no lookalike passing for a tensor."""

from __future__ import annotations

import pytest
import torch

from lcteach.grading.expectations import expect_close, expect_tensor
from lcteach.grading.results import CheckFailed


def test_expect_close_names_a_matching_mistake():
    expected = torch.ones(3)
    with pytest.raises(CheckFailed) as failure:
        expect_close(torch.full((3,), 2.0), expected, "out", mistakes={"doubling": torch.full((3,), 2.0)}, inputs="n=3")
    assert failure.value.hint == "your result matches doubling"
    assert "out differs from the expected values" in failure.value.message
    assert "max abs error 1" in failure.value.details and "max abs error" not in failure.value.message


def test_inputs_go_into_the_details_only():
    """``what`` is public when ``inputs`` are given; without them it may name the inputs, so it is withheld."""
    with pytest.raises(CheckFailed) as failure:
        expect_close(torch.zeros(2), torch.ones(2), "out", inputs="n=17")
    assert failure.value.message.startswith("out differs") and "17" not in failure.value.message
    assert failure.value.details == "n=17: max abs error 1"
    with pytest.raises(CheckFailed) as failure:
        expect_close(torch.zeros(2), torch.ones(2), "out (n=17)")
    assert failure.value.message.startswith("the result differs") and "17" in failure.value.details
    with pytest.raises(CheckFailed) as failure:
        expect_tensor(torch.zeros(2, 5, 3), "out", (2, 3, 5), dims="(B, N, D)", inputs="N=3, D=5")
    assert "last two dimensions swapped" in failure.value.message and "5" not in failure.value.message
    with pytest.raises(CheckFailed) as failure:
        expect_tensor(torch.zeros(2, 4, 5), "out", (2, 3, 5), dims="(B, N, D)", inputs="N=3")
    assert failure.value.message == "out should have shape (B, N, D), but N is off"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_tolerances_accept_reordered_sums_and_reject_real_errors(dtype):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1000, generator=generator, dtype=torch.float64)
    exact = x.sum().to(dtype)
    reordered = x.to(dtype).flip(0).cumsum(0)[-1]
    expect_close(reordered.reshape(1), exact.reshape(1), "sum")
    with pytest.raises(CheckFailed):
        expect_close((exact * 1.1 + 1).reshape(1), exact.reshape(1), "sum")


def test_expect_tensor_rejects_lookalikes():
    class AlwaysEqual:
        def __eq__(self, other):
            return True

    with pytest.raises(CheckFailed, match="should be a torch.Tensor"):
        expect_tensor(AlwaysEqual(), "out")
    with pytest.raises(CheckFailed, match="dimensions swapped"):
        expect_tensor(torch.zeros(2, 3), "out", (3, 2))
    with pytest.raises(CheckFailed, match="should have shape"):
        expect_tensor(torch.zeros(2, 3), "out", (2, 2))
    with pytest.raises(CheckFailed, match="dtype"):
        expect_tensor(torch.zeros(2), "out", (2,), torch.float64)
