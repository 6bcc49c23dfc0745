"""lcteach.score_mods: ALiBi and soft-capping pair by pair against loops, on grids and under vmap."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import alibi_bias

from lcteach.score_mods import alibi_slopes, apply_score_mod, generate_alibi, generate_softcap, materialize_scores
from lcteach.validation import check_score_mod_on_grids

FAST = settings(max_examples=30, deadline=None)


@pytest.mark.parametrize("heads", [1, 2, 3, 8, 12, 16])
def test_alibi_slopes_are_the_standard_geometric_sequence(heads):
    expected = [2.0 ** (-8.0 * h / heads) for h in range(1, heads + 1)]
    assert alibi_slopes(heads).tolist() == pytest.approx(expected, rel=1e-15)
    assert alibi_slopes(heads).dtype == torch.float64


def test_alibi_slopes_of_eight_heads():
    assert alibi_slopes(8).tolist() == [1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64, 1 / 128, 1 / 256]


@FAST
@given(heads=st.integers(1, 12), n_q=st.integers(1, 20), n_k=st.integers(1, 20))
def test_alibi_bias_matches_a_loop(heads, n_q, n_k):
    bias = materialize_scores(generate_alibi(heads), n_q, n_k, heads=heads)
    assert bias.shape == (1, heads, n_q, n_k)
    torch.testing.assert_close(bias[0], alibi_bias(heads, n_q, n_k), rtol=1e-14, atol=1e-14)


def test_alibi_off_by_ones():
    """Zero for the query itself, -slope per position back, +slope per position ahead (meant for causal)."""
    bias = materialize_scores(generate_alibi(4), 6, heads=4)[0]
    assert bias.diagonal(dim1=-2, dim2=-1).abs().max() == 0
    assert bias[0, 5, 4] == -(2.0**-2) and bias[0, 4, 5] == 2.0**-2  # head 0: slope 2^(-8/4)
    assert bias[3, 5, 0] == -5 * 2.0**-8  # the last head: slope 2^-8


@FAST
@given(cap=st.floats(0.5, 100), data=st.data())
def test_softcap_matches_a_loop_and_stays_within_the_cap(cap, data):
    raw = torch.tensor(data.draw(st.lists(st.floats(-1e4, 1e4), min_size=1, max_size=20)), dtype=torch.float64)
    capped = materialize_scores(generate_softcap(cap), 1, len(raw), scores=raw)[0, 0, 0]
    expected = torch.tensor([cap * math.tanh(x / cap) for x in raw.tolist()], dtype=torch.float64)
    torch.testing.assert_close(capped, expected, rtol=1e-14, atol=1e-14)
    assert bool((capped.abs() <= cap).all())


def test_softcap_is_nearly_the_identity_far_below_the_cap():
    softcap = generate_softcap(50.0)
    raw = torch.linspace(-5, 5, 11, dtype=torch.float64)
    capped = materialize_scores(softcap, 1, 11, scores=raw)[0, 0, 0]
    assert (capped - raw).abs().max() < 5**3 / (3 * 50**2)  # tanh(x) = x - x^3 / 3 + ...
    grad = torch.func.vmap(torch.func.grad(lambda s: softcap(s, 0, 0, 0, 0)))(raw)
    torch.testing.assert_close(grad, 1 - torch.tanh(raw / 50) ** 2, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("score_mod", [generate_alibi(3), generate_softcap(2.0)], ids=lambda s: s.__name__)
def test_score_mods_keep_the_dtype_and_agree_on_grids_and_under_vmap(score_mod, dtype):
    check_score_mod_on_grids(score_mod, 2, 3, 9, 11, dtype=dtype)  # raises if the grid disagrees with vmap
    scores = torch.randn(2, 3, 9, 11, generator=torch.Generator().manual_seed(0)).to(dtype)
    on_grid = apply_score_mod(score_mod, scores)
    b, h, i, j = torch.meshgrid(*(torch.arange(s) for s in scores.shape), indexing="ij")
    points = torch.vmap(score_mod)(*(t.flatten() for t in (scores, b, h, i, j))).reshape(scores.shape)
    assert on_grid.dtype == points.dtype == dtype
    torch.testing.assert_close(on_grid, points, rtol=0, atol=0)


def test_score_mods_name_themselves():
    assert generate_alibi(8).__name__ == "alibi_8_heads"
    assert generate_softcap(50.0).__name__ == "softcap_50"
    assert generate_softcap(2.5).__name__ == "softcap_2.5"


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: generate_alibi(0), ValueError, "heads must be an integer >= 1, got 0"),
        (lambda: generate_alibi(2.0), ValueError, "heads"),
        (lambda: alibi_slopes(-1), ValueError, "heads"),
        (lambda: generate_softcap(0), ValueError, "cap must be a finite number > 0, got 0"),
        (lambda: generate_softcap(-3.0), ValueError, "cap must be a finite number > 0"),
        (lambda: generate_softcap(float("inf")), ValueError, "cap"),
        (lambda: generate_softcap("50"), ValueError, "cap"),
        (lambda: materialize_scores(generate_alibi(2), 0), ValueError, "q_len"),
        (lambda: materialize_scores("alibi", 4), TypeError, "score_mod must be callable"),
    ],
)
def test_bad_arguments_name_the_problem(make, error, message):
    with pytest.raises(error, match=message):
        make()
