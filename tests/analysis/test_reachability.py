"""lcteach.analysis.reachability: hop counts against breadth-first search, full reach against the hop counts."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import bfs_hops

from lcteach.analysis import hop_counts, minimal_layers_for_full_reach
from lcteach.masks import (
    causal_mask,
    generate_sliding_window,
    generate_strided,
    generate_symmetric_window,
    materialize_mask,
)

FAST = settings(max_examples=30, deadline=None)


def random_pattern(n, density, seed, causal):
    matrix = torch.rand(n, n, generator=torch.Generator().manual_seed(seed)) < density
    return matrix.tril() if causal else matrix


def worst_hops(hops, causal):
    """The largest BFS hop count over the pairs full reach must cover; None if one is unreachable."""
    needed = [hops[i][j] for i in range(len(hops)) for j in range(len(hops)) if j <= i or not causal]
    return None if -1 in needed else max(needed)


@FAST
@given(n=st.integers(1, 12), density=st.floats(0.0, 0.5), seed=st.integers(0, 999), causal=st.booleans())
def test_hop_counts_match_breadth_first_search(n, density, seed, causal):
    matrix = random_pattern(n, density, seed, causal)
    assert hop_counts(matrix).tolist() == bfs_hops(matrix.tolist())


@FAST
@given(n=st.integers(1, 12), density=st.floats(0.0, 0.5), seed=st.integers(0, 999), max_layers=st.integers(1, 4))
def test_max_layers_cuts_the_search(n, density, seed, max_layers):
    matrix = random_pattern(n, density, seed, causal=False)
    expected = [[h if h <= max_layers else -1 for h in row] for row in bfs_hops(matrix.tolist())]
    assert hop_counts(matrix, max_layers=max_layers).tolist() == expected


@settings(max_examples=10, deadline=None)
@given(n=st.integers(1, 30), window=st.integers(2, 8))
def test_sliding_window_needs_ceil_distance_over_window_minus_one_layers(n, window):
    hops = hop_counts(generate_sliding_window(window), n)
    expected = [[math.ceil((i - j) / (window - 1)) if j <= i else -1 for j in range(n)] for i in range(n)]
    assert hops.tolist() == expected


def test_mask_mod_and_matrix_give_the_same_hops():
    strided = generate_strided(3)
    assert torch.equal(hop_counts(strided, 10), hop_counts(materialize_mask(strided, 10)[0, 0]))
    assert torch.equal(hop_counts(strided, 10), hop_counts(materialize_mask(strided, 10)[0, 0], 10))
    assert hop_counts(strided, 10).dtype == torch.int64


def test_residual_keeps_information_without_a_diagonal():
    strictly_earlier = torch.ones(4, 4, dtype=torch.bool).tril(-1)  # no query attends itself
    assert hop_counts(strictly_earlier).diagonal().tolist() == [0, 0, 0, 0]
    assert minimal_layers_for_full_reach(strictly_earlier) == 1


@FAST
@given(n=st.integers(1, 12), density=st.floats(0.0, 0.6), seed=st.integers(0, 999), causal=st.booleans())
def test_minimal_layers_is_the_worst_hop_count(n, density, seed, causal):
    matrix = random_pattern(n, density, seed, causal)
    assert minimal_layers_for_full_reach(matrix, causal=causal) == worst_hops(bfs_hops(matrix.tolist()), causal)


@FAST
@given(n=st.integers(2, 40), window=st.integers(2, 9))
def test_minimal_layers_of_windows(n, window):
    assert minimal_layers_for_full_reach(generate_sliding_window(window), n) == math.ceil((n - 1) / (window - 1))
    symmetric = 2 * window - 1  # window - 1 keys on each side
    assert minimal_layers_for_full_reach(generate_symmetric_window(symmetric), n) == math.ceil((n - 1) / (window - 1))


def test_causal_is_read_off_the_pattern_unless_given():
    assert minimal_layers_for_full_reach(causal_mask, 6) == 1  # detected causal: j <= i is all it must reach
    assert minimal_layers_for_full_reach(causal_mask, 6, causal=False) is None  # later keys never reach
    full = torch.ones(5, 5, dtype=torch.bool)
    assert minimal_layers_for_full_reach(full) == 1 and minimal_layers_for_full_reach(full, causal=True) == 1


def test_unreachable_patterns_give_none_and_one_position_needs_no_layer():
    two_documents = torch.block_diag(torch.ones(3, 3), torch.ones(3, 3)).bool()
    assert minimal_layers_for_full_reach(two_documents) is None
    assert minimal_layers_for_full_reach(torch.zeros(1, 1, dtype=torch.bool)) == 0
    assert minimal_layers_for_full_reach(torch.zeros(2, 2, dtype=torch.bool)) is None


def test_minimal_layers_at_a_thousand_tokens():
    assert minimal_layers_for_full_reach(generate_sliding_window(16), 1024) == math.ceil(1023 / 15)
    assert minimal_layers_for_full_reach(generate_symmetric_window(9), 1024, causal=False) == math.ceil(1023 / 4)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: hop_counts(causal_mask), ValueError, "n is needed"),
        (lambda: hop_counts(torch.ones(3, 3)), TypeError, "pattern must be a 2-D bool tensor"),
        (lambda: hop_counts(torch.ones(3, dtype=torch.bool)), ValueError, r"got shape \(3,\)"),
        (
            lambda: hop_counts(torch.ones(3, 4, dtype=torch.bool)),
            ValueError,
            r"square \(n, n\) matrix, got shape \(3, 4\)",
        ),
        (lambda: hop_counts(torch.ones(3, 3, dtype=torch.bool), 4), ValueError, "n = 4 does not match"),
        (lambda: hop_counts(causal_mask, 4, 0), ValueError, "max_layers must be an integer >= 1, got 0"),
        (lambda: hop_counts("causal", 4), TypeError, "mask_mod must be callable"),
        (lambda: minimal_layers_for_full_reach(causal_mask, 0), ValueError, "n must be an integer >= 1, got 0"),
    ],
)
def test_bad_arguments_name_the_problem(call, error, message):
    with pytest.raises(error, match=message):
        call()
