"""lcteach.kernels.online_softmax: folding blocks and merging partial results equals one-shot softmax."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lcteach.kernels import finalize_softmax_state, init_softmax_state, merge_attention, online_softmax_step

FAST = settings(max_examples=40, deadline=None)
F64 = torch.float64
TIGHT = {"rtol": 1e-10, "atol": 1e-10}


def scores_and_values(n_q, n_k, dim_v, seed, masked_fraction=0.0):
    gen = torch.Generator().manual_seed(seed)
    scores = 3 * torch.randn(2, n_q, n_k, generator=gen, dtype=F64)
    scores[torch.rand(2, n_q, n_k, generator=gen) < masked_fraction] = -math.inf
    return scores, torch.randn(2, n_k, dim_v, generator=gen, dtype=F64)


def fold(scores, values, cuts):
    """Fold the key columns between consecutive ``cuts`` one block at a time."""
    state = init_softmax_state(scores.shape[:-1], values.shape[-1], dtype=scores.dtype, device=scores.device)
    for j0, j1 in zip(cuts[:-1], cuts[1:]):
        state = online_softmax_step(*state, scores[..., j0:j1], values[..., j0:j1, :])
    return finalize_softmax_state(*state)


def one_shot(scores, values):
    return torch.softmax(scores, dim=-1) @ values, torch.logsumexp(scores, dim=-1)


@st.composite
def block_splits(draw):
    """(n_k, cuts) with cuts = 0 < ... < n_k: a random partition of the keys into blocks."""
    n_k = draw(st.integers(1, 30))
    inner = draw(st.sets(st.integers(1, n_k - 1), max_size=n_k - 1)) if n_k > 1 else set()
    return n_k, [0, *sorted(inner), n_k]


@FAST
@given(split=block_splits(), n_q=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_folding_blocks_equals_softmax(split, n_q, seed):
    n_k, cuts = split
    scores, values = scores_and_values(n_q, n_k, 3, seed)
    for got, expected in zip(fold(scores, values, cuts), one_shot(scores, values)):
        torch.testing.assert_close(got, expected, **TIGHT)


@FAST
@given(split=block_splits(), seed=st.integers(0, 2**16))
def test_folding_blocks_with_masked_scores(split, seed):
    n_k, cuts = split
    scores, values = scores_and_values(4, n_k, 2, seed, masked_fraction=0.5)
    scores[..., 0] = 0.0  # every row sees at least one key, so softmax is defined
    for got, expected in zip(fold(scores, values, cuts), one_shot(scores, values)):
        torch.testing.assert_close(got, expected, **TIGHT)


def test_init_state_is_empty():
    m, l, acc = init_softmax_state((2, 3), 4, dtype=F64, device="cpu")
    assert m.shape == l.shape == (2, 3) and acc.shape == (2, 3, 4)
    assert (m == -math.inf).all() and (l == 0).all() and (acc == 0).all() and acc.dtype == F64


def test_all_masked_block_first_leaves_state_empty():
    scores, values = scores_and_values(3, 5, 2, seed=0)
    empty = init_softmax_state((2, 3), 2, dtype=F64, device="cpu")
    state = online_softmax_step(*empty, torch.full((2, 3, 4), -math.inf, dtype=F64), values[:, :4])
    for got, expected in zip(state, empty):
        assert torch.equal(got, expected)


def test_all_masked_block_in_the_middle_changes_nothing():
    scores, values = scores_and_values(3, 8, 2, seed=1)
    scores[..., 3:6] = -math.inf
    for got, expected in zip(fold(scores, values, [0, 3, 6, 8]), one_shot(scores, values)):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, expected, **TIGHT)


def test_row_without_keys_finalizes_to_zero_and_minus_inf():
    scores, values = scores_and_values(3, 6, 2, seed=2)
    scores[:, 1] = -math.inf
    out, lse = fold(scores, values, [0, 2, 6])
    assert (out[:, 1] == 0).all() and (lse[:, 1] == -math.inf).all()
    assert torch.isfinite(out).all()


def test_huge_scores_do_not_overflow():
    scores, values = scores_and_values(3, 10, 2, seed=3)
    scores = scores * 1e4
    out, lse = fold(scores, values, [0, 4, 7, 10])
    assert torch.isfinite(out).all() and torch.isfinite(lse).all()
    torch.testing.assert_close(out, one_shot(scores, values)[0], **TIGHT)


@FAST
@given(n_k=st.integers(1, 20), cut=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_merging_two_disjoint_key_sets_equals_full_attention(n_k, cut, seed):
    scores, values = scores_and_values(5, n_k, 3, seed)
    half = round(cut * n_k)  # 0 or n_k leaves one side without keys
    left = one_shot(scores[..., :half], values[:, :half]) if half else _nothing(scores, values)
    right = one_shot(scores[..., half:], values[:, half:]) if half < n_k else _nothing(scores, values)
    for got, expected in zip(merge_attention(*left, *right), one_shot(scores, values)):
        torch.testing.assert_close(got, expected, **TIGHT)


def _nothing(scores, values):
    """The (out, lse) of attention over no keys at all."""
    rows = scores.shape[:-1]
    return torch.zeros(*rows, values.shape[-1], dtype=F64), torch.full(rows, -math.inf, dtype=F64)


def test_merge_with_an_empty_side_returns_the_other_side():
    scores, values = scores_and_values(4, 6, 3, seed=4)
    full = one_shot(scores, values)
    nothing = _nothing(scores, values)
    for merged in (merge_attention(*full, *nothing), merge_attention(*nothing, *full)):
        torch.testing.assert_close(merged[0], full[0], **TIGHT)
        torch.testing.assert_close(merged[1], full[1], **TIGHT)


def test_merge_of_two_empty_sides_stays_empty():
    scores, values = scores_and_values(4, 6, 3, seed=5)
    out, lse = merge_attention(*_nothing(scores, values), *_nothing(scores, values))
    assert (out == 0).all() and (lse == -math.inf).all()


def test_merge_is_commutative_and_associative():
    scores, values = scores_and_values(4, 9, 3, seed=6)
    a, b, c = (one_shot(scores[..., s], values[:, s]) for s in (slice(0, 2), slice(2, 5), slice(5, 9)))
    assert all(torch.equal(x, y) for x, y in zip(merge_attention(*a, *b), merge_attention(*b, *a)))
    left_first = merge_attention(*merge_attention(*a, *b), *c)
    right_first = merge_attention(*a, *merge_attention(*b, *c))
    for x, y in zip(left_first, right_first):
        torch.testing.assert_close(x, y, **TIGHT)
