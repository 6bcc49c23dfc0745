"""lcteach.masks prefix-LM and packed documents: pair by pair against loops, in FlexAttention and the kernels."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import (
    causal_allowed,
    count_pairs,
    document_allowed,
    grid_mask,
    loop_attention,
    prefix_lm_allowed,
    random_qkv,
    window_allowed,
)
from torch.nn.attention.flex_attention import and_masks, create_block_mask, create_mask

from lcteach.kernels import block_layout, block_sparse_attention, flex_sparse_attention, tiled_attention
from lcteach.masks import (
    LookupTable,
    causal_mask,
    count_allowed_pairs,
    document_ids,
    document_offsets,
    generate_document_mask,
    generate_global,
    generate_prefix_lm,
    generate_sliding_window,
    materialize_mask,
    random_document_lengths,
)

FAST = settings(max_examples=30, deadline=None)
TIGHT = {"rtol": 1e-10, "atol": 1e-10}
lengths_lists = st.lists(st.integers(1, 9), min_size=1, max_size=6)


def as_matrix(mask_mod, n_q, n_k=None):
    return materialize_mask(mask_mod, n_q, n_k)[0, 0]


# ---------------------------------------------------------------- prefix-LM


@FAST
@given(n_q=st.integers(1, 24), n_k=st.integers(1, 24), prefix_length=st.integers(0, 30))
def test_prefix_lm_matches_a_loop(n_q, n_k, prefix_length):
    expected = grid_mask(prefix_lm_allowed(prefix_length), n_q, n_k)
    assert torch.equal(as_matrix(generate_prefix_lm(prefix_length), n_q, n_k), expected)


@FAST
@given(n=st.integers(1, 40), prefix_length=st.integers(0, 40))
def test_prefix_lm_is_bidirectional_inside_the_prefix_and_causal_after(n, prefix_length):
    matrix = as_matrix(generate_prefix_lm(prefix_length), n)
    inside = min(prefix_length, n)
    assert bool(matrix[:inside, :inside].all())  # the prefix reads itself both ways
    assert torch.equal(matrix[inside:], as_matrix(causal_mask, n)[inside:])  # causal after it
    extra = inside * (inside - 1) // 2  # keys after their query, inside the prefix
    assert count_allowed_pairs(generate_prefix_lm(prefix_length), n) == count_pairs(causal_allowed, n) + extra


def test_prefix_lm_off_by_ones():
    """prefix_length 0 and 1 are causal; the prefix is positions 0 .. prefix_length - 1; >= n is full."""
    causal = as_matrix(causal_mask, 8)
    assert torch.equal(as_matrix(generate_prefix_lm(0), 8), causal)
    assert torch.equal(as_matrix(generate_prefix_lm(1), 8), causal)
    matrix = as_matrix(generate_prefix_lm(3), 8)
    assert matrix[0].nonzero().flatten().tolist() == [0, 1, 2]  # query 0 sees the whole prefix
    assert matrix[3].nonzero().flatten().tolist() == [0, 1, 2, 3]  # position 3 is the first after it
    assert bool(as_matrix(generate_prefix_lm(8), 8).all())
    assert generate_prefix_lm(3).__name__ == "prefix_lm_3"


# ---------------------------------------------------------------- offsets and document ids


@FAST
@given(lengths=lengths_lists)
def test_offsets_and_ids_match_a_loop(lengths):
    offsets, ids = document_offsets(lengths), document_ids(lengths)
    expected_ids = [d for d, length in enumerate(lengths) for _ in range(length)]
    assert offsets.dtype == ids.dtype == torch.int64
    assert ids.tolist() == expected_ids
    assert offsets.tolist() == [sum(lengths[:d]) for d in range(len(lengths) + 1)]
    for d in range(len(lengths)):  # document d covers offsets[d] .. offsets[d + 1] - 1
        assert set(range(offsets[d], offsets[d + 1])) == {i for i, doc in enumerate(expected_ids) if doc == d}
    assert torch.equal(document_ids(torch.tensor(lengths)), ids)


def test_offsets_and_ids_examples():
    assert document_offsets([3, 2]).tolist() == [0, 3, 5]
    assert document_ids([3, 2]).tolist() == [0, 0, 0, 1, 1]


@FAST
@given(seq_len=st.integers(1, 60), data=st.data())
def test_random_document_lengths_pack_the_row_exactly(seq_len, data):
    documents, seed = data.draw(st.integers(1, seq_len)), data.draw(st.integers(0, 99))
    lengths = random_document_lengths(seq_len, documents, seed=seed)
    assert len(lengths) == documents and sum(lengths) == seq_len and min(lengths) >= 1
    assert random_document_lengths(seq_len, documents, seed=seed) == lengths  # same seed, same packing


def test_random_document_lengths_vary_with_the_seed():
    draws = {tuple(random_document_lengths(64, 4, seed=seed)) for seed in range(10)}
    assert len(draws) > 5 and all(len(set(lengths)) > 1 for lengths in draws)


# ---------------------------------------------------------------- the document mask


@FAST
@given(lengths=lengths_lists, extra=st.integers(0, 4))
def test_document_mask_matches_a_loop(lengths, extra):
    """Positions past the packing (extra) belong to no document."""
    n = sum(lengths) + extra
    assert torch.equal(as_matrix(generate_document_mask(lengths), n), grid_mask(document_allowed(lengths), n))


INNER = {
    "causal": (causal_mask, causal_allowed),
    "sliding window 3": (generate_sliding_window(3), window_allowed(3)),
    "prefix-LM 2": (generate_prefix_lm(2), prefix_lm_allowed(2)),
    "global first 1": (generate_global(1), lambda i, j: i == 0 or j == 0),
}


@FAST
@given(lengths=lengths_lists, inner=st.sampled_from(sorted(INNER)))
def test_document_mask_runs_mask_mod_in_document_coordinates(lengths, inner):
    mask_mod, allowed = INNER[inner]
    n = sum(lengths)
    expected = grid_mask(document_allowed(lengths, allowed), n)
    assert torch.equal(as_matrix(generate_document_mask(lengths, mask_mod), n), expected)


@FAST
@given(lengths=lengths_lists, window=st.integers(1, 6))
def test_causal_and_windows_compose_either_way(lengths, window):
    """Patterns that depend on i - j only give the same mask inside the documents or and_masks'ed after."""
    n = sum(lengths)
    for mask_mod in (causal_mask, generate_sliding_window(window)):
        inside = generate_document_mask(lengths, mask_mod)
        composed = and_masks(generate_document_mask(lengths), mask_mod)
        assert torch.equal(as_matrix(inside, n), as_matrix(composed, n))


def test_prefix_lm_restarts_in_every_document_only_with_mask_mod():
    lengths = [4, 3]
    inside = as_matrix(generate_document_mask(lengths, generate_prefix_lm(2)), 7)
    composed = as_matrix(and_masks(generate_document_mask(lengths), generate_prefix_lm(2)), 7)
    assert bool(inside[4, 5]) and not composed[4, 5]  # the second document's own prefix is 4, 5


def test_positions_outside_the_packing_belong_to_no_document():
    """Negative positions (shifted by offsets) and positions past the end: False, never an IndexError."""
    for mask_mod in (generate_document_mask([3, 2]), generate_document_mask([3, 2], causal_mask)):
        zero = torch.tensor(0)
        q_idx, kv_idx = torch.tensor([-100, -3, -1, 5, 100])[:, None], torch.tensor([-100, -3, -1, 0, 4, 5, 9])
        assert not mask_mod(zero, zero, q_idx, kv_idx[None, :]).any()
        assert not mask_mod(zero, zero, torch.tensor([[0], [4]]), torch.tensor([[-1, -5, 5, 7]])).any()
        assert bool(mask_mod(zero, zero, torch.tensor(4), torch.tensor(3)))


def test_int_lookup_tables_take_a_fill_value():
    table = LookupTable(torch.tensor([[1, 2], [3, 4]]), fill=-1)
    rows, cols = torch.tensor([-1, 0, 1, 2])[:, None], torch.tensor([-1, 0, 1, 2])[None, :]
    assert table(rows, cols).tolist() == [[-1, -1, -1, -1], [-1, 1, 2, -1], [-1, 3, 4, -1], [-1, -1, -1, -1]]


@pytest.mark.parametrize(
    "mask_mod",
    [generate_prefix_lm(5), generate_document_mask([5, 3, 8]), generate_document_mask([5, 3, 8], causal_mask)],
    ids=lambda m: m.__name__,
)
def test_work_in_create_mask_create_block_mask_on_grids_and_in_the_kernels(mask_mod):
    expected = create_mask(mask_mod, 2, 3, 16, 16, device="cpu")
    assert torch.equal(expected, expected[:1, :1].expand(2, 3, 16, 16))
    grid = mask_mod(torch.tensor(0), torch.tensor(0), torch.arange(16)[:, None], torch.arange(16)[None, :])
    assert torch.equal(grid, expected[0, 0])
    block_mask = create_block_mask(mask_mod, 1, 1, 16, 16, device="cpu", BLOCK_SIZE=4)
    assert torch.equal(block_mask.to_dense()[0, 0].bool(), expected[0, 0].reshape(4, 4, 4, 4).any(-1).any(1))
    q, k, v = random_qkv(2, 3, 16, 4)
    sdpa = F.scaled_dot_product_attention(q, k, v, attn_mask=expected)  # every row has a key here
    torch.testing.assert_close(tiled_attention(q, k, v, block_q=5, block_k=3, mask_mod=mask_mod)[0], sdpa, **TIGHT)
    layout = block_layout(mask_mod, 16, block_size=4)
    torch.testing.assert_close(block_sparse_attention(q, k, v, layout, 4, mask_mod=mask_mod), sdpa, **TIGHT)
    torch.testing.assert_close(flex_sparse_attention(q, k, v, mask_mod, block_size=4), sdpa, **TIGHT)  # float64


def test_a_row_longer_than_the_packing_attends_nothing_in_the_kernels():
    lengths = [3, 4]
    mask_mod = generate_document_mask(lengths, causal_mask)
    q, k, v = random_qkv(1, 2, 10, 4)
    expected, _ = loop_attention(q, k, v, grid_mask(document_allowed(lengths, causal_allowed), 10))
    out, lse = tiled_attention(q, k, v, block_q=4, block_k=4, mask_mod=mask_mod)
    torch.testing.assert_close(out, expected, **TIGHT)
    assert (out[..., 7:, :] == 0).all() and torch.isinf(lse[..., 7:]).all()


def test_documents_name_their_mask_mods():
    assert generate_document_mask([3, 5, 2]).__name__ == "documents_3_5_2"
    assert generate_document_mask([3, 5, 2], causal_mask).__name__ == "causal_mask_in_documents_3_5_2"
    assert generate_document_mask([1] * 9).__name__ == "documents_9_in_9"


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: generate_prefix_lm(-1), ValueError, "prefix_length must be an integer >= 0, got -1"),
        (lambda: generate_prefix_lm(2.5), ValueError, "prefix_length"),
        (lambda: generate_prefix_lm(True), ValueError, "prefix_length"),
        (lambda: document_offsets([]), ValueError, "lengths must be a non-empty list of document lengths"),
        (lambda: document_offsets("32"), ValueError, "lengths must be a non-empty list"),
        (lambda: document_ids([3, 0]), ValueError, "each document length must be an integer >= 1, got 0"),
        (lambda: generate_document_mask([2, -1]), ValueError, "each document length"),
        (lambda: generate_document_mask(torch.tensor([2.0])), ValueError, "lengths must be a 1-D integer tensor"),
        (lambda: generate_document_mask(torch.ones(2, 2, dtype=torch.long)), ValueError, "1-D integer tensor"),
        (lambda: generate_document_mask([2, 3], "causal"), TypeError, "mask_mod must be callable"),
        (lambda: random_document_lengths(4, 5, seed=0), ValueError, "documents must be at most seq_len = 4"),
        (lambda: random_document_lengths(4, 0, seed=0), ValueError, "documents must be an integer >= 1"),
        (lambda: random_document_lengths(4, 2, seed=-1), ValueError, "seed must be an integer >= 0"),
    ],
)
def test_bad_arguments_name_the_problem(make, error, message):
    with pytest.raises(error, match=message):
        make()
