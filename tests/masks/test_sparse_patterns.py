"""lcteach.masks: sparse mask_mods checked pair by pair against Python loops, and pair counting."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import (
    block_allowed,
    count_pairs,
    global_allowed,
    grid_mask,
    loop_attention,
    random_qkv,
    strided_allowed,
    symmetric_window_allowed,
)
from torch.nn.attention.flex_attention import and_masks, create_block_mask, create_mask, flex_attention, or_masks

from lcteach.kernels import dense_attention, tiled_attention
from lcteach.masks import (
    PatternCost,
    bigbird_layout,
    causal_mask,
    count_allowed_pairs,
    evaluate_grid,
    evaluate_rows,
    generate_bigbird,
    generate_block_sparse,
    generate_document_mask,
    generate_global,
    generate_prefix_lm,
    generate_random_blocks,
    generate_random_tokens,
    generate_sliding_window,
    generate_sparse_transformer,
    generate_strided,
    generate_symmetric_window,
    index_grid,
    materialize_mask,
    pattern_density,
    pattern_flops,
)
from lcteach.measure import peak_memory

FAST = settings(max_examples=25, deadline=None)
odd_windows = st.integers(0, 12).map(lambda r: 2 * r + 1)


def as_matrix(mask_mod, n_q, n_k=None):
    return materialize_mask(mask_mod, n_q, n_k)[0, 0]


def one_of_each():
    """One mask_mod from every generator, all defined on 16 positions."""
    return [
        generate_strided(3),
        generate_symmetric_window(5),
        generate_global([0, 7]),
        generate_block_sparse(torch.eye(4, dtype=torch.bool), 4),
        generate_random_blocks(16, 4, 2, seed=1),
        generate_random_tokens(16, seed=2, count=3),
        generate_bigbird(3, 1, 1, 4, 16, seed=3),
    ]


# ---------------------------------------------------------------- strided, symmetric window, global


# generator, its loop oracle, and the values its argument takes
ORACLES = {
    "strided": (generate_strided, strided_allowed, st.integers(1, 30)),
    "symmetric_window": (generate_symmetric_window, symmetric_window_allowed, odd_windows),
    "global_positions": (generate_global, global_allowed, st.lists(st.integers(0, 25), min_size=1, max_size=5)),
    "global_count": (generate_global, lambda count: global_allowed(range(count)), st.integers(1, 25)),
}


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(ORACLES)), n_q=st.integers(1, 24), n_k=st.integers(1, 24), data=st.data())
def test_generators_match_loops(name, n_q, n_k, data):
    generate, allowed, values = ORACLES[name]
    argument = data.draw(values)
    assert torch.equal(as_matrix(generate(argument), n_q, n_k), grid_mask(allowed(argument), n_q, n_k))


@FAST
@given(n=st.integers(1, 24), stride=st.integers(1, 10))
def test_strided_is_bidirectional_and_composes_with_causal(n, stride):
    causal_strided = as_matrix(and_masks(causal_mask, generate_strided(stride)), n)
    assert torch.equal(causal_strided, grid_mask(lambda i, j: j <= i and (i - j) % stride == 0, n))
    assert torch.equal(as_matrix(generate_strided(stride), n), as_matrix(generate_strided(stride), n).T)


def test_stride_one_is_full_attention():
    assert bool(as_matrix(generate_strided(1), 7).all())


@FAST
@given(
    batch=st.integers(1, 2),
    strides=st.lists(st.integers(1, 9), min_size=1, max_size=5),
    n_q=st.integers(1, 20),
    n_k=st.integers(1, 20),
)
def test_strided_per_head_matches_a_loop_over_b_h_i_j(batch, strides, n_q, n_k):
    """One stride per head: head h of every batch entry uses strides[h], under vmap (create_mask)
    and on lcteach's broadcast index grids alike."""
    heads = len(strides)
    mask_mod = generate_strided(strides)
    expected = torch.tensor(
        [
            [[[(i - j) % strides[h] == 0 for j in range(n_k)] for i in range(n_q)] for h in range(heads)]
            for _ in range(batch)
        ]
    )
    assert torch.equal(materialize_mask(mask_mod, n_q, n_k, batch=batch, heads=heads), expected)
    assert torch.equal(create_mask(mask_mod, batch, heads, n_q, n_k, device="cpu"), expected)
    b, h, q, kv = index_grid(batch, heads, torch.arange(n_q), torch.arange(n_k))
    assert torch.equal(mask_mod(b, h, q, kv).expand(batch, heads, n_q, n_k), expected)


def test_strided_per_head_equals_the_int_stride_on_each_head():
    per_head = materialize_mask(generate_strided((3, 1, 5)), 12, heads=3)[0]
    for head, stride in enumerate((3, 1, 5)):
        assert torch.equal(per_head[head], as_matrix(generate_strided(stride), 12))
    assert torch.equal(materialize_mask(generate_strided([4]), 9)[0, 0], as_matrix(generate_strided(4), 9))
    assert generate_strided([2, 3]).__name__ == "strided_2_3"


def test_strided_per_head_composes_with_causal_and_builds_block_masks():
    mask_mod = and_masks(causal_mask, generate_strided([2, 3]))
    dense = create_mask(mask_mod, 1, 2, 32, 32, device="cpu")
    assert torch.equal(dense[0, 1], as_matrix(and_masks(causal_mask, generate_strided(3)), 32))
    block_mask = create_block_mask(mask_mod, 1, 2, 256, 256, device="cpu", BLOCK_SIZE=8)
    assert block_mask.to_dense().shape[:2] == (1, 2)


@FAST
@given(window=odd_windows, dilation=st.integers(1, 5), n_q=st.integers(1, 30), n_k=st.integers(1, 30))
def test_dilated_symmetric_window_matches_a_loop(window, dilation, n_q, n_k):
    """Keys a multiple of dilation apart, at most (window // 2) * dilation away; dilation 1 is the plain window."""
    radius = window // 2
    expected = grid_mask(lambda i, j: (i - j) % dilation == 0 and abs(i - j) <= radius * dilation, n_q, n_k)
    assert torch.equal(as_matrix(generate_symmetric_window(window, dilation), n_q, n_k), expected)
    assert torch.equal(materialize_mask(generate_symmetric_window(window, dilation), n_q, n_k, heads=2)[0, 1], expected)


def test_dilated_window_keeps_window_keys_per_row_and_dilation_one_is_todays_window():
    matrix = as_matrix(generate_symmetric_window(5, 3), 40)
    assert matrix[20].nonzero().flatten().tolist() == [14, 17, 20, 23, 26]
    assert int(matrix.sum(-1).max()) == 5
    assert torch.equal(as_matrix(generate_symmetric_window(7, 1), 20), as_matrix(generate_symmetric_window(7), 20))
    assert generate_symmetric_window(7, 1).__name__ == "symmetric_window_7"
    assert generate_symmetric_window(7, 2).__name__ == "symmetric_window_7_dilated_2"


def test_symmetric_window_counts_the_query_and_half_on_each_side():
    matrix = as_matrix(generate_symmetric_window(5), 12)
    assert matrix[6].nonzero().flatten().tolist() == [4, 5, 6, 7, 8]
    assert matrix.sum(-1).tolist() == [3, 4] + [5] * 8 + [4, 3]
    assert torch.equal(as_matrix(generate_symmetric_window(1), 5), torch.eye(5, dtype=torch.bool))


# ---------------------------------------------------------------- block-sparse and random


@FAST
@given(
    q_blocks=st.integers(1, 5),
    kv_blocks=st.integers(1, 5),
    block_size=st.integers(1, 4),
    seed=st.integers(0, 99),
    extra=st.integers(0, 3),
)
def test_block_sparse_matches_loop(q_blocks, kv_blocks, block_size, seed, extra):
    layout = torch.rand(q_blocks, kv_blocks, generator=torch.Generator().manual_seed(seed)) < 0.5
    n_q, n_k = q_blocks * block_size + extra, kv_blocks * block_size + extra  # extra positions: past the layout
    expected = grid_mask(block_allowed(layout.tolist(), block_size), n_q, n_k)
    assert torch.equal(as_matrix(generate_block_sparse(layout, block_size), n_q, n_k), expected)


def test_block_sparse_copies_its_layout():
    layout = torch.eye(2, dtype=torch.bool)
    mask_mod = generate_block_sparse(layout, 2)
    layout.fill_(False)
    assert torch.equal(as_matrix(mask_mod, 4), grid_mask(lambda i, j: i // 2 == j // 2, 4))


@FAST
@given(num_blocks=st.integers(1, 6), block_size=st.integers(1, 4), data=st.data())
def test_random_blocks_pick_distinct_whole_blocks(num_blocks, block_size, data):
    per_row = data.draw(st.integers(1, num_blocks))
    seq_len = num_blocks * block_size
    matrix = as_matrix(
        generate_random_blocks(seq_len, block_size, per_row, seed=data.draw(st.integers(0, 99))), seq_len
    )
    blocks = matrix[::block_size, ::block_size]
    assert torch.equal(matrix, grid_mask(block_allowed(blocks.tolist(), block_size), seq_len))
    assert blocks.sum(-1).tolist() == [per_row] * num_blocks


def test_random_patterns_are_deterministic_per_seed():
    for make in (
        lambda seed: generate_random_blocks(64, 4, 3, seed=seed),
        lambda seed: generate_random_tokens(64, seed=seed, count=5),
        lambda seed: generate_random_tokens(64, seed=seed, density=0.2),
        lambda seed: generate_bigbird(3, 1, 2, 4, 64, seed=seed),
    ):
        assert torch.equal(as_matrix(make(7), 64), as_matrix(make(7), 64))
        assert not torch.equal(as_matrix(make(7), 64), as_matrix(make(8), 64))


@FAST
@given(seq_len=st.integers(1, 30), data=st.data())
def test_random_tokens_count_gives_exactly_count_keys_per_row(seq_len, data):
    count = data.draw(st.integers(1, seq_len))
    matrix = as_matrix(generate_random_tokens(seq_len, seed=data.draw(st.integers(0, 99)), count=count), seq_len)
    assert matrix.sum(-1).tolist() == [count] * seq_len


def test_random_tokens_density_is_the_fraction_of_pairs():
    matrix = as_matrix(generate_random_tokens(200, seed=0, density=0.25), 200)
    assert abs(matrix.float().mean().item() - 0.25) < 0.01  # 40,000 Bernoulli(0.25) draws: std 0.002
    assert bool(as_matrix(generate_random_tokens(9, seed=0, density=1.0), 9).all())


def test_positions_past_a_table_are_never_allowed():
    for mask_mod in (
        generate_random_tokens(8, seed=0, density=1.0),
        generate_random_blocks(8, 4, 2, seed=0),
        generate_block_sparse(torch.ones(2, 2, dtype=torch.bool), 4),
    ):
        matrix = as_matrix(mask_mod, 12)
        assert bool(matrix[:8, :8].all()) and not matrix[8:].any() and not matrix[:, 8:].any()


# ---------------------------------------------------------------- BigBird


@FAST
@given(
    num_blocks=st.integers(1, 5),
    block_size=st.integers(1, 4),
    window=odd_windows,
    num_global=st.integers(0, 4),
    data=st.data(),
)
def test_bigbird_is_window_or_global_or_random_blocks(num_blocks, block_size, window, num_global, data):
    seq_len = num_blocks * block_size
    per_row, seed = data.draw(st.integers(0, num_blocks)), data.draw(st.integers(0, 99))
    random_part = (
        as_matrix(generate_random_blocks(seq_len, block_size, per_row, seed=seed), seq_len).tolist()
        if per_row
        else None
    )
    expected = grid_mask(
        lambda i, j: (
            symmetric_window_allowed(window)(i, j)
            or i < num_global
            or j < num_global
            or (per_row > 0 and random_part[i][j])
        ),
        seq_len,
    )
    bigbird = generate_bigbird(window, num_global, per_row, block_size, seq_len, seed=seed)
    assert torch.equal(as_matrix(bigbird, seq_len), expected)


def test_bigbird_window_is_bidirectional():
    matrix = as_matrix(generate_bigbird(5, 0, 0, 4, 16, seed=0), 16)
    assert torch.equal(matrix, matrix.T)
    assert matrix[8].nonzero().flatten().tolist() == [6, 7, 8, 9, 10]


def bigbird_fixed_blocks(num_blocks, window_blocks, global_blocks):
    """BigBird's window and global blocks, block by block: the loop oracle of the layout without random blocks."""
    return grid_mask(
        lambda qi, kj: symmetric_window_allowed(window_blocks)(qi, kj) or qi < global_blocks or kj < global_blocks,
        num_blocks,
    )


@pytest.mark.parametrize(
    ("num_blocks", "window_blocks", "global_blocks"),
    [(1, 1, 0), (1, 1, 1), (6, 1, 0), (8, 3, 1), (8, 5, 2), (6, 3, 6), (7, 15, 0), (10, 3, 3)],
)
def test_bigbird_layout_without_random_blocks_matches_a_loop(num_blocks, window_blocks, global_blocks):
    layout = bigbird_layout(num_blocks, window_blocks, global_blocks, 0, seed=0)
    assert torch.equal(layout, bigbird_fixed_blocks(num_blocks, window_blocks, global_blocks))


@FAST
@given(num_blocks=st.integers(1, 16), window_blocks=odd_windows, data=st.data())
def test_bigbird_layout_window_and_global_blocks_match_a_loop(num_blocks, window_blocks, data):
    global_blocks = data.draw(st.integers(0, num_blocks))
    layout = bigbird_layout(num_blocks, window_blocks, global_blocks, 0, seed=data.draw(st.integers(0, 99)))
    assert torch.equal(layout, bigbird_fixed_blocks(num_blocks, window_blocks, global_blocks))


@FAST
@given(num_blocks=st.integers(1, 14), window_blocks=st.sampled_from([1, 3, 5]), data=st.data())
def test_bigbird_layout_adds_exactly_random_blocks_outside_window_and_global(num_blocks, window_blocks, data):
    global_blocks = data.draw(st.integers(0, num_blocks))
    fixed = bigbird_fixed_blocks(num_blocks, window_blocks, global_blocks)
    fewest_free = min((num_blocks - int(row.sum()) for row in fixed[global_blocks:]), default=0)
    random_blocks, seed = data.draw(st.integers(0, fewest_free)), data.draw(st.integers(0, 10**6))
    rng_state = torch.get_rng_state()
    layout = bigbird_layout(num_blocks, window_blocks, global_blocks, random_blocks, seed=seed)
    assert torch.equal(torch.get_rng_state(), rng_state)  # a generator of its own, never the global RNG
    assert layout.dtype == torch.bool and layout.shape == (num_blocks, num_blocks)
    assert bool(layout[fixed].all()) and bool(layout[:global_blocks].all()) and bool(layout[:, :global_blocks].all())
    drawn = layout & ~fixed
    assert drawn[global_blocks:].sum(-1).tolist() == [random_blocks] * (num_blocks - global_blocks)
    assert torch.equal(bigbird_layout(num_blocks, window_blocks, global_blocks, random_blocks, seed=seed), layout)


def test_bigbird_layout_depends_on_the_seed():
    assert not torch.equal(bigbird_layout(32, 3, 1, 3, seed=0), bigbird_layout(32, 3, 1, 3, seed=1))


def test_bigbird_layout_draws_each_free_block_uniformly():
    """Over 200 seeds each free block of a row is drawn random_blocks / free times on average (rows here
    have 3, 4 or 5 free blocks), within 5 binomial standard deviations."""
    num_blocks, window_blocks, global_blocks, random_blocks, seeds = 10, 5, 2, 2, 200
    fixed = bigbird_fixed_blocks(num_blocks, window_blocks, global_blocks)
    counts = sum(
        bigbird_layout(num_blocks, window_blocks, global_blocks, random_blocks, seed=seed).long()
        for seed in range(seeds)
    )
    free_counts = set()
    for row in range(global_blocks, num_blocks):
        free = (~fixed[row]).nonzero().flatten()
        p = random_blocks / len(free)
        band = 5 * (seeds * p * (1 - p)) ** 0.5
        assert all(abs(int(counts[row, block]) - seeds * p) <= band for block in free), (row, counts[row])
        free_counts.add(len(free))
    assert free_counts == {3, 4, 5}


def test_bigbird_layout_through_generate_block_sparse_attends_whole_blocks():
    layout, block_size = bigbird_layout(6, 3, 1, 2, seed=5), 4
    expected = layout.repeat_interleave(block_size, 0).repeat_interleave(block_size, 1)
    block_sparse = generate_block_sparse(layout, block_size)
    assert torch.equal(as_matrix(block_sparse, 24), expected)
    assert torch.equal(evaluate_grid(block_sparse, 24)[0, 0], expected)


# ---------------------------------------------------------------- FlexAttention and lcteach kernels


@pytest.mark.parametrize("mask_mod", one_of_each(), ids=lambda m: m.__name__)
def test_generators_work_in_create_mask_create_block_mask_and_on_index_grids(mask_mod):
    expected = create_mask(mask_mod, 2, 3, 16, 16, device="cpu")
    assert expected.shape == (2, 3, 16, 16) and torch.equal(expected, expected[:1, :1].expand(2, 3, 16, 16))
    grid = mask_mod(torch.tensor(0), torch.tensor(0), torch.arange(16)[:, None], torch.arange(16)[None, :])
    assert torch.equal(grid, expected[0, 0])
    block_mask = create_block_mask(mask_mod, 1, 1, 256, 256, device="cpu", BLOCK_SIZE=8)
    assert torch.equal(block_mask.to_dense()[0, 0, :2, :2].bool(), expected[0, 0].reshape(2, 8, 2, 8).any(-1).any(1))


@pytest.mark.parametrize("mask_mod", one_of_each(), ids=lambda m: m.__name__)
def test_generators_compose_with_and_masks_and_or_masks(mask_mod):
    matrix = as_matrix(mask_mod, 16)
    window = as_matrix(generate_sliding_window(4), 16)
    assert torch.equal(as_matrix(and_masks(causal_mask, mask_mod), 16), matrix.tril())
    assert torch.equal(as_matrix(or_masks(mask_mod, generate_sliding_window(4)), 16), matrix | window)


def test_generators_name_their_mask_mods():
    names = [mask_mod.__name__ for mask_mod in one_of_each()]
    assert names == [
        "strided_3",
        "symmetric_window_5",
        "global_at_0_7",
        "block_sparse_4x4_b4",
        "random_blocks_2x4_seed1",
        "random_tokens_3_seed2",
        "bigbird_w3_g1_r1x4_seed3",
    ]
    assert generate_global(4).__name__ == "global_first_4"
    assert generate_random_tokens(8, seed=5, density=0.5).__name__ == "random_tokens_density0.5_seed5"


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
def test_flex_and_tiled_attention_with_bigbird_match_a_loop():
    bigbird = generate_bigbird(5, 2, 1, 8, 32, seed=4)
    q, k, v = random_qkv(1, 2, 32, 8, dtype=torch.float32)
    expected, _ = loop_attention(q, k, v, as_matrix(bigbird, 32))
    block_mask = create_block_mask(bigbird, 1, 2, 32, 32, device="cpu")
    torch.testing.assert_close(flex_attention(q, k, v, block_mask=block_mask).double(), expected, rtol=1e-5, atol=1e-5)
    out, _ = tiled_attention(q, k, v, mask_mod=bigbird, block_q=8, block_k=8)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        dense_attention(q, k, v, as_matrix(bigbird, 32))[0].double(), expected, rtol=1e-5, atol=1e-5
    )


# ---------------------------------------------------------------- counting pairs


PATTERNS = {
    "causal": (lambda: causal_mask, lambda i, j: j <= i),
    "strided_3": (lambda: generate_strided(3), strided_allowed(3)),
    "symmetric_window_5": (lambda: generate_symmetric_window(5), symmetric_window_allowed(5)),
    "global_2": (lambda: generate_global(2), global_allowed(range(2))),
    "last_key": (lambda: lambda b, h, q_idx, kv_idx: kv_idx == 20, lambda i, j: j == 20),
}


@FAST
@given(
    name=st.sampled_from(sorted(PATTERNS)), n_q=st.integers(1, 30), n_k=st.integers(1, 30), head_dim=st.integers(1, 128)
)
def test_counting_matches_a_loop(name, n_q, n_k, head_dim):
    make, allowed = PATTERNS[name]
    expected = count_pairs(allowed, n_q, n_k)
    assert count_allowed_pairs(make(), n_q, n_k) == expected
    assert pattern_density(make(), n_q, n_k) == pytest.approx(expected / (n_q * n_k))
    cost = pattern_flops(make(), n_q, n_k, head_dim=head_dim)
    assert cost == PatternCost(expected, n_q * n_k, head_dim)
    assert cost.flops == 4 * head_dim * expected and cost.dense_flops == 4 * head_dim * n_q * n_k
    assert cost.savings == pytest.approx(1 - expected / (n_q * n_k))


def test_pattern_cost_speedup():
    assert PatternCost(25, 100, 64).speedup == 4.0
    assert PatternCost(0, 100, 64).speedup == float("inf")


def test_counting_a_mask_mod_that_returns_a_broadcast_row():
    def first_keys(b, h, q_idx, kv_idx):
        return kv_idx < 3  # shape (1, kv_len) on a grid: one row for every query

    assert count_allowed_pairs(first_keys, 10, 8) == 30
    assert count_allowed_pairs(lambda b, h, q_idx, kv_idx: True, 4, 5) == 20


def test_counting_evaluates_blocks_of_rows_never_the_whole_matrix():
    shapes = []

    def recording_causal(b, h, q_idx, kv_idx):
        shapes.append((q_idx.shape[0], kv_idx.shape[1]))
        return q_idx >= kv_idx

    assert count_allowed_pairs(recording_causal, 65536, 64) == 64 * 65 // 2 + (65536 - 64) * 64
    assert count_allowed_pairs(recording_causal, 3, 300_000) == 6  # a row longer than a block: one row at a time
    assert (
        max(rows * cols for rows, cols in shapes) <= 300_000
        and max(rows * cols for rows, cols in shapes[:-3]) <= 1 << 18
    )


def test_counting_memory_does_not_grow_with_n_squared():
    peaks = [peak_memory(count_allowed_pairs, generate_bigbird(63, 2, 2, 64, n, seed=0), n)[1] for n in (1024, 4096)]
    assert peaks[1] < 1.1 * peaks[0]  # n^2 grew 16x; the blocks of 2^18 pairs did not
    assert peaks[1] < 4096 * 4096 // 4  # a bool 4096 x 4096 matrix alone takes 16 MiB


def every_pattern():
    """One mask_mod of every kind lcteach makes (per-head strides and a dilated window too), on 16 positions."""
    return [
        *one_of_each(),
        causal_mask,
        generate_sliding_window(4),
        generate_symmetric_window(3, dilation=2),
        generate_strided([1, 2, 5]),
        generate_prefix_lm(5),
        generate_document_mask([5, 3, 8], causal_mask),
        generate_sparse_transformer(4),
        or_masks(generate_global(2), generate_sliding_window(3)),
    ]


@FAST
@given(
    index=st.integers(0, len(every_pattern()) - 1),
    n_q=st.integers(1, 16),
    n_k=st.integers(1, 16),
    heads=st.integers(1, 3),
    batch=st.integers(1, 2),
)
def test_evaluate_grid_equals_create_mask(index, n_q, n_k, heads, batch):
    """One broadcast call gives what FlexAttention's vmap gives, for every kind of lcteach mask_mod."""
    mask_mod = every_pattern()[index]
    assert torch.equal(
        evaluate_grid(mask_mod, n_q, n_k, batch=batch, heads=heads),
        materialize_mask(mask_mod, n_q, n_k, batch=batch, heads=heads),
    )


def test_evaluate_grid_names_a_bad_length():
    with pytest.raises(ValueError, match="q_len"):
        evaluate_grid(causal_mask, 0)


def test_evaluate_rows_gives_the_requested_rows():
    rows = torch.tensor([0, 5, 9])
    assert torch.equal(
        evaluate_rows(generate_symmetric_window(3), rows, 12), as_matrix(generate_symmetric_window(3), 12)[rows]
    )


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: generate_strided(0), ValueError, "stride must be an integer >= 1, got 0"),
        (lambda: generate_strided(2.0), ValueError, "stride"),
        (lambda: generate_strided([]), ValueError, "non-empty sequence"),
        (lambda: generate_strided([2, 0, 3]), ValueError, r"stride\[1\] must be an integer >= 1, got 0"),
        (lambda: generate_strided((1, -2)), ValueError, r"stride\[1\]"),
        (lambda: generate_strided("12"), ValueError, "non-empty sequence"),
        (lambda: generate_symmetric_window(0), ValueError, "window must be an integer >= 1, got 0"),
        (lambda: generate_symmetric_window(4), ValueError, "must be odd"),
        (lambda: generate_symmetric_window(5, 0), ValueError, "dilation must be an integer >= 1, got 0"),
        (lambda: generate_symmetric_window(5, -2), ValueError, "dilation"),
        (lambda: generate_global(0), ValueError, "global_tokens must be an integer >= 1, got 0"),
        (lambda: generate_global([]), ValueError, "non-empty list"),
        (lambda: generate_global([1, -2]), ValueError, "position must be an integer >= 0, got -2"),
        (lambda: generate_global(True), ValueError, "global_tokens"),
        (
            lambda: generate_block_sparse(torch.ones(2, 2), 2),
            TypeError,
            "layout must be a 2-D bool tensor, got a torch.float32",
        ),
        (
            lambda: generate_block_sparse(torch.ones(2, dtype=torch.bool), 2),
            ValueError,
            r"2-D bool tensor, got shape \(2,\)",
        ),
        (lambda: generate_block_sparse([[True]], 2), TypeError, "got list"),
        (lambda: generate_block_sparse(torch.ones(2, 2, dtype=torch.bool), 0), ValueError, "block_size"),
        (lambda: generate_random_blocks(10, 4, 1, seed=0), ValueError, "block_size must divide seq_len"),
        (lambda: generate_random_blocks(4, 8, 1, seed=0), ValueError, "block_size must be at most seq_len"),
        (lambda: generate_random_blocks(8, 4, 3, seed=0), ValueError, "at most the 2 key blocks"),
        (lambda: generate_random_blocks(8, 4, 0, seed=0), ValueError, "blocks_per_row"),
        (lambda: generate_random_blocks(8, 4, 1, seed=-1), ValueError, "seed must be an integer >= 0"),
        (lambda: generate_random_tokens(8, seed=0), ValueError, "exactly one of density or count"),
        (lambda: generate_random_tokens(8, seed=0, density=0.5, count=2), ValueError, "exactly one"),
        (lambda: generate_random_tokens(8, seed=0, density=0.0), ValueError, r"density must be a number in \(0, 1\]"),
        (lambda: generate_random_tokens(8, seed=0, density=1.5), ValueError, "density"),
        (lambda: generate_random_tokens(8, seed=0, count=9), ValueError, "count must be at most seq_len = 8"),
        (lambda: generate_bigbird(3, 1, 1, 5, 16, seed=0), ValueError, "block_size must divide seq_len"),
        (lambda: generate_bigbird(3, -1, 1, 4, 16, seed=0), ValueError, "num_global"),
        (lambda: generate_bigbird(2, 1, 1, 4, 16, seed=0), ValueError, "must be odd"),
        (lambda: bigbird_layout(0, 1, 0, 0, seed=0), ValueError, "num_blocks must be an integer >= 1, got 0"),
        (lambda: bigbird_layout(8, 2, 1, 1, seed=0), ValueError, "window_blocks must be odd for a symmetric window"),
        (lambda: bigbird_layout(8, 0, 1, 1, seed=0), ValueError, "window_blocks must be an integer >= 1, got 0"),
        (lambda: bigbird_layout(8, 3, -1, 1, seed=0), ValueError, "global_blocks must be an integer >= 0, got -1"),
        (lambda: bigbird_layout(8, 3, 9, 0, seed=0), ValueError, "global_blocks must be at most num_blocks = 8, got 9"),
        (lambda: bigbird_layout(8, 3, 1, -1, seed=0), ValueError, "random_blocks must be an integer >= 0, got -1"),
        (
            lambda: bigbird_layout(5, 3, 1, 3, seed=0),
            ValueError,
            "row 1 has 2 free blocks, fewer than random_blocks = 3",
        ),
        (
            lambda: bigbird_layout(7, 5, 0, 3, seed=0),
            ValueError,
            "row 2 has 2 free blocks, fewer than random_blocks = 3",
        ),
        (lambda: bigbird_layout(8, 3, 1, 1, seed=-1), ValueError, "seed must be an integer >= 0, got -1"),
        (lambda: count_allowed_pairs("causal", 4), TypeError, "mask_mod must be callable"),
        (lambda: count_allowed_pairs(causal_mask, 0), ValueError, "q_len"),
        (lambda: pattern_density(causal_mask, 4, -1), ValueError, "kv_len"),
        (lambda: pattern_flops(causal_mask, 4, head_dim=0), ValueError, "head_dim"),
    ],
)
def test_bad_arguments_name_the_problem(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize(
    "mask_mod",
    [
        generate_global([0, 3]),
        generate_block_sparse(torch.ones(2, 2, dtype=torch.bool), 2),
        generate_random_tokens(4, seed=0, density=1.0),
        generate_random_blocks(4, 2, 2, seed=0),
    ],
    ids=lambda m: m.__name__,
)
def test_lookup_masks_are_false_before_position_zero(mask_mod):
    """A negative position (from shifting positions, as document and prefix masks do) is outside
    the table: False, never a position read from the table's other end, never an IndexError."""
    q_idx = torch.tensor([-100, -2, -1, 1])[:, None]
    kv_idx = torch.tensor([-100, -2, -1])[None, :]
    zero = torch.tensor(0)
    assert not mask_mod(zero, zero, q_idx[:3], kv_idx).any()
    inside = mask_mod(zero, zero, torch.tensor([[1]]), torch.tensor([[0, 1, 3]]))
    assert torch.equal(inside[0], materialize_mask(mask_mod, 4)[0, 0, 1, [0, 1, 3]])
