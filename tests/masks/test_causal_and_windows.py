"""lcteach.masks: FlexAttention mask_mods checked pair by pair against Python loops."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import causal_allowed, grid_mask, random_qkv, window_allowed
from torch.nn.attention.flex_attention import and_masks, create_block_mask, flex_attention, or_masks

from lcteach.kernels import dense_attention
from lcteach.masks import causal_mask, generate_sliding_window, materialize_mask

FAST = settings(max_examples=30, deadline=None)


def as_matrix(mask_mod, n_q, n_k=None):
    return materialize_mask(mask_mod, n_q, n_k)[0, 0]


@FAST
@given(n_q=st.integers(1, 20), n_k=st.integers(1, 20))
def test_causal_mask_matches_loop(n_q, n_k):
    assert torch.equal(as_matrix(causal_mask, n_q, n_k), grid_mask(causal_allowed, n_q, n_k))


@FAST
@given(n=st.integers(1, 24), window=st.integers(1, 30))
def test_sliding_window_matches_loop(n, window):
    assert torch.equal(as_matrix(generate_sliding_window(window), n), grid_mask(window_allowed(window), n))


@FAST
@given(n=st.integers(1, 24), window=st.integers(1, 30))
def test_sliding_window_row_counts(n, window):
    counts = as_matrix(generate_sliding_window(window), n).sum(-1)
    assert counts.tolist() == [min(i + 1, window) for i in range(n)]


def test_window_of_one_is_the_diagonal():
    assert torch.equal(as_matrix(generate_sliding_window(1), 9), torch.eye(9, dtype=torch.bool))


def test_window_includes_the_query_and_the_previous_keys():
    row = as_matrix(generate_sliding_window(3), 8)[5]
    assert row.nonzero().flatten().tolist() == [3, 4, 5]


def test_window_as_long_as_the_sequence_is_causal():
    assert torch.equal(as_matrix(generate_sliding_window(10), 10), as_matrix(causal_mask, 10))


def test_sliding_window_name():
    assert generate_sliding_window(7).__name__ == "sliding_window_7"


@pytest.mark.parametrize("window", [0, -3, 2.0, True, "4", None])
def test_bad_window_raises(window):
    with pytest.raises(ValueError, match="window"):
        generate_sliding_window(window)


def test_materialize_mask_shape_and_dtype():
    mask = materialize_mask(generate_sliding_window(2), 5, 7, batch=2, heads=3)
    assert mask.shape == (2, 3, 5, 7) and mask.dtype == torch.bool
    assert torch.equal(mask, grid_mask(window_allowed(2), 5, 7).expand(2, 3, 5, 7))
    assert materialize_mask(causal_mask, 4).shape == (1, 1, 4, 4)


def test_materialize_mask_passes_batch_and_head_indices():
    def head_window(b, h, q_idx, kv_idx):  # head h sees h + 1 keys, batch b adds b more
        return (q_idx >= kv_idx) & (q_idx - kv_idx <= h + b)

    mask = materialize_mask(head_window, 6, batch=2, heads=3)
    for b in range(2):
        for h in range(3):
            assert torch.equal(mask[b, h], grid_mask(window_allowed(h + b + 1), 6))


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (("not callable", 4), TypeError, "callable"),
        ((causal_mask, 0), ValueError, "q_len"),
        ((causal_mask, 4, -1), ValueError, "kv_len"),
    ],
)
def test_materialize_mask_bad_arguments(args, error, message):
    with pytest.raises(error, match=message):
        materialize_mask(*args)


def test_mask_mods_work_on_broadcast_index_grids():
    q_idx, kv_idx = torch.arange(6)[:, None], torch.arange(6)[None, :]
    zero = torch.tensor(0)
    for mask_mod in (causal_mask, generate_sliding_window(3)):
        assert torch.equal(mask_mod(zero, zero, q_idx, kv_idx), as_matrix(mask_mod, 6))


def test_and_masks_composes_with_brute_force():
    def same_document(b, h, q_idx, kv_idx):  # documents of 4 tokens packed together
        return q_idx // 4 == kv_idx // 4

    combined = and_masks(generate_sliding_window(3), same_document)
    expected = grid_mask(lambda i, j: i - 3 < j <= i and i // 4 == j // 4, 10)
    assert torch.equal(as_matrix(combined, 10), expected)
    window = generate_sliding_window(4)
    assert torch.equal(as_matrix(and_masks(causal_mask, window), 10), as_matrix(window, 10))


def test_or_masks_adds_global_tokens():
    def first_two_tokens(b, h, q_idx, kv_idx):
        return kv_idx < 2

    combined = or_masks(generate_sliding_window(2), first_two_tokens)
    assert torch.equal(as_matrix(combined, 9), grid_mask(lambda i, j: i - 2 < j <= i or j < 2, 9))


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
def test_flex_attention_with_window_matches_dense_with_materialized_mask():
    window = generate_sliding_window(3)
    q, k, v = random_qkv(1, 2, 16, 8, dtype=torch.float32)
    block_mask = create_block_mask(window, 1, 2, 16, 16, device="cpu")
    expected, _ = dense_attention(q, k, v, materialize_mask(window, 16))
    torch.testing.assert_close(flex_attention(q, k, v, block_mask=block_mask), expected, rtol=1e-5, atol=1e-5)
