"""lcteach.analysis.complexity: closed forms checked against pair counting of the patterns and against loops."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import count_pairs, global_allowed, sparse_transformer_allowed, symmetric_window_allowed, window_allowed
from torch.nn.attention.flex_attention import and_masks, or_masks

from lcteach.analysis import (
    AttentionCost,
    bigbird_cost,
    complexity_table,
    dense_cost,
    format_complexity_table,
    hierarchical_cost,
    linear_attention_cost,
    longformer_cost,
    memory_augmented_cost,
    sliding_window_cost,
    strided_cost,
)
from lcteach.masks import (
    causal_mask,
    count_allowed_pairs,
    generate_bigbird,
    generate_global,
    generate_sliding_window,
    generate_strided,
    generate_symmetric_window,
    materialize_mask,
    pair_flops,
)
from lcteach.measure import fit_exponent

FAST = settings(max_examples=25, deadline=None)
odd_windows = st.integers(0, 10).map(lambda r: 2 * r + 1)
METHODS = [
    "dense",
    "causal dense",
    "sliding window",
    "strided",
    "linear",
    "memory-augmented",
    "longformer",
    "bigbird",
    "hierarchical",
]
CAUSAL = {"causal dense", "sliding window", "strided", "linear", "memory-augmented"}


def counted(mask_mod, n):
    return count_allowed_pairs(mask_mod, n, progress=False)


# ---------------------------------------------------------------- pair counts against the patterns


@FAST
@given(n=st.integers(1, 40))
def test_dense_is_all_pairs(n):
    assert dense_cost(n).pairs == counted(lambda b, h, q_idx, kv_idx: True, n) == n * n


@FAST
@given(n=st.integers(1, 40))
def test_causal_dense_is_the_causal_mask(n):
    cost = dense_cost(n, causal=True)
    assert cost.pairs == counted(causal_mask, n) == n * (n + 1) // 2
    assert cost.method == "causal dense" and cost.causal and not dense_cost(n).causal


@FAST
@given(n=st.integers(1, 40), window=st.integers(1, 50))
def test_sliding_window_pairs_are_exact(n, window):
    pairs = sliding_window_cost(n, window).pairs
    assert pairs == counted(generate_sliding_window(window), n) == count_pairs(window_allowed(window), n)


@FAST
@given(n=st.integers(1, 40), stride=st.integers(1, 12))
def test_strided_pairs_are_exactly_the_sparse_transformer_pattern(n, stride):
    pattern = and_masks(causal_mask, or_masks(generate_sliding_window(stride), generate_strided(stride)))
    pairs = strided_cost(n, stride).pairs
    assert pairs == counted(pattern, n) == count_pairs(sparse_transformer_allowed(stride), n)


@pytest.mark.parametrize("n", [1, 15, 16, 17, 100])
def test_strided_default_stride_is_floor_sqrt_n(n):
    assert strided_cost(n) == strided_cost(n, math.isqrt(n))
    assert strided_cost(n).params == f"s={math.isqrt(n)}"


@FAST
@given(n=st.integers(1, 40), window=odd_windows, num_global=st.integers(0, 45))
def test_longformer_pairs_are_exact(n, window, num_global):
    pattern = generate_symmetric_window(window)
    if num_global:
        pattern = or_masks(pattern, generate_global(num_global))
    expected = count_pairs(
        lambda i, j: symmetric_window_allowed(window)(i, j) or global_allowed(range(num_global))(i, j), n
    )
    assert longformer_cost(n, window, num_global).pairs == counted(pattern, n) == expected


@FAST
@given(
    num_blocks=st.integers(1, 6),
    block_size=st.integers(1, 6),
    window=odd_windows,
    num_global=st.integers(0, 4),
    seed=st.integers(0, 99),
    data=st.data(),
)
def test_bigbird_pairs_are_an_upper_bound_above_longformer(num_blocks, block_size, window, num_global, seed, data):
    n = num_blocks * block_size
    per_row = data.draw(st.integers(0, num_blocks))
    true_pairs = counted(generate_bigbird(window, num_global, per_row, block_size, n, seed=seed), n)
    bound = bigbird_cost(n, window, num_global, per_row, block_size).pairs
    assert longformer_cost(n, window, num_global).pairs <= true_pairs <= bound
    assert bound - true_pairs <= n * per_row * block_size


@FAST
@given(n=st.integers(1, 40), segment=st.integers(1, 12), memory=st.integers(0, 8))
def test_memory_augmented_pairs_are_causal_segments_plus_memory(n, segment, memory):
    same_segment = and_masks(causal_mask, lambda b, h, q_idx, kv_idx: q_idx // segment == kv_idx // segment)
    inside_segments = count_pairs(lambda i, j: j <= i and i // segment == j // segment, n)
    pairs = memory_augmented_cost(n, segment, memory).pairs
    assert pairs - n * memory == counted(same_segment, n) == inside_segments


def test_memory_augmented_with_one_segment_and_no_memory_is_causal():
    assert memory_augmented_cost(50, 64, 0).pairs == counted(causal_mask, 50)


def test_hierarchical_levels_halve_until_one_block():
    cost = hierarchical_cost(1024, 64)  # levels of 1024, 512, 256, 128, 64 tokens
    assert cost.params == "b=64, levels=5" and cost.pairs == 1024 * 64 * 5
    assert cost.kv_bytes == 2 * (1024 + 512 + 256 + 128 + 64) * 64 * 4
    odd = hierarchical_cost(100, 8)  # 100, 50, 25, 13, 7 tokens: the last level is shorter than a block
    assert odd.pairs == 100 * (8 + 8 + 8 + 8 + 7) and odd.params == "b=8, levels=5"
    assert hierarchical_cost(10, 64).pairs == 10 * 10


# ---------------------------------------------------------------- FLOPs and bytes


@pytest.mark.parametrize("n", [1, 7, 512])
def test_flops_are_four_d_per_pair_and_bytes_follow_the_dtype(n):
    rows = complexity_table([n], head_dim=32, dtype=torch.float32)
    halves = complexity_table([n], head_dim=32, dtype=torch.float16)
    for row, half in zip(rows, halves):
        if row.pairs is not None:
            assert row.flops == pair_flops(row.pairs, 32) == 4 * 32 * row.pairs
        assert (half.score_bytes, half.kv_bytes) == (row.score_bytes // 2, row.kv_bytes // 2)
        assert row.total_bytes == row.score_bytes + row.kv_bytes


def test_dense_memory_is_the_score_matrix_plus_keys_and_values():
    cost = dense_cost(1000, head_dim=16, dtype=torch.float32)
    assert cost == AttentionCost(
        "dense", "", 1000, 16, 1000 * 1000, 4 * 16 * 10**6, 4 * 10**6, 2 * 1000 * 16 * 4, False
    )


def test_linear_attention_has_no_scores_and_a_constant_d_by_d_state():
    """The recurrent form keeps the (d, d) state, the d-vector normaliser and one token's k, v:
    no n-sized buffer, as the lecture's table says (O(d^2) memory)."""
    cost = linear_attention_cost(4096, head_dim=64)
    assert cost.pairs is None and cost.flops == 4 * 4096 * 64 * 64 and cost.causal
    assert cost.score_bytes == (64 * 64 + 64) * 4 and cost.kv_bytes == 2 * 64 * 4
    for n in (1, 8, 1 << 20):
        assert linear_attention_cost(n, head_dim=64).total_bytes == cost.total_bytes


def test_memory_augmented_memory_does_not_grow_with_n():
    short, long = memory_augmented_cost(1024, 128, 64), memory_augmented_cost(1 << 20, 128, 64)
    assert short.total_bytes == long.total_bytes == (128 * 129 // 2 + 128 * 64) * 4 + 2 * (128 + 64) * 64 * 4


@pytest.mark.parametrize(
    ("method", "flops_exponent"),
    [
        ("dense", 2.0),
        ("sliding window", 1.0),
        ("strided", 1.5),
        ("longformer", 1.0),
        ("bigbird", 1.0),
        ("linear", 1.0),
        ("memory-augmented", 1.0),
    ],
)
def test_flops_grow_with_the_claimed_exponent(method, flops_exponent):
    ns = [2**p for p in range(12, 21)]
    rows = [row for row in complexity_table(ns) if row.method == method]
    assert fit_exponent(ns, [row.flops for row in rows]) == pytest.approx(flops_exponent, abs=0.03)


def test_hierarchical_flops_grow_as_n_log_n():
    ns = [2**p for p in range(12, 21)]
    flops = [hierarchical_cost(n, 64).flops for n in ns]
    assert [f / (n * math.log2(n / 64 * 2)) for f, n in zip(flops, ns)] == pytest.approx([4 * 64 * 64] * len(ns))


# ---------------------------------------------------------------- the table


def test_complexity_table_has_every_method_at_every_n():
    rows = complexity_table([256, 4096], head_dim=32)
    assert [row.method for row in rows] == METHODS * 2
    assert [row.n for row in rows] == [256] * len(METHODS) + [4096] * len(METHODS)
    assert all(row.head_dim == 32 for row in rows)


def test_format_complexity_table_is_markdown():
    rows = complexity_table([1024])
    lines = format_complexity_table(rows).splitlines()
    assert lines[0].startswith("| method | kind | params | n | pairs | FLOPs | of dense |")
    assert lines[1].startswith("| --- |") and len(lines) == 2 + len(METHODS)
    assert (
        lines[2]
        == "| dense | bidirectional |  | 1024 | 1.05e+06 | 2.68e+08 | 100.00% | 4.0 MiB | 512.0 KiB | 4.5 MiB |"
    )
    assert lines[3].startswith("| causal dense | causal |  | 1024 | 5.25e+05 | 1.34e+08 | 100.00% |")
    assert lines[2 + METHODS.index("linear")].startswith("| linear | causal |  | 1024 | - |")


def test_each_method_is_causal_or_bidirectional_as_its_pattern_is():
    rows = complexity_table([256])
    assert {row.method for row in rows if row.causal} == CAUSAL
    patterns = {  # the mask_mod of each pattern-based method
        "sliding window": generate_sliding_window(15),
        "strided": and_masks(causal_mask, or_masks(generate_sliding_window(4), generate_strided(4))),
        "longformer": or_masks(generate_symmetric_window(15), generate_global(2)),
        "bigbird": generate_bigbird(15, 2, 1, 8, 64, seed=0),
    }
    by_method = {row.method: row for row in rows}
    for method, pattern in patterns.items():
        looks_ahead = bool(materialize_mask(pattern, 64)[0, 0].triu(1).any())
        assert by_method[method].causal == (not looks_ahead), method


@pytest.mark.parametrize("n", [16, 1000])
def test_of_dense_compares_causal_with_causal_dense(n):
    """A window as long as the input is causal dense attention: 100% of causal dense, not 50% of full."""
    window = sliding_window_cost(n, n)
    assert window.pairs == dense_cost(n, causal=True).pairs
    assert window.dense_flops == dense_cost(n, causal=True).flops and window.of_dense == 1.0
    everything = longformer_cost(n, 2 * n + 1, 0)  # a symmetric window that covers every pair
    assert everything.pairs == n * n and everything.of_dense == 1.0
    assert dense_cost(n, causal=True).of_dense == dense_cost(n).of_dense == 1.0
    for row in complexity_table([n]):
        assert row.of_dense == row.flops / dense_cost(n, causal=row.causal).flops


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: dense_cost(0), ValueError, "n must be an integer >= 1, got 0"),
        (lambda: dense_cost(8, head_dim=0), ValueError, "head_dim"),
        (lambda: dense_cost(8, dtype=torch.int32), TypeError, "dtype must be a floating-point torch.dtype"),
        (lambda: sliding_window_cost(8, 0), ValueError, "window must be an integer >= 1, got 0"),
        (lambda: strided_cost(8, 0), ValueError, "stride must be an integer >= 1, got 0"),
        (lambda: longformer_cost(8, 4, 1), ValueError, "must be odd"),
        (lambda: longformer_cost(8, 3, -1), ValueError, "num_global"),
        (lambda: bigbird_cost(8, 3, 1, -1, 4), ValueError, "num_random_blocks"),
        (lambda: bigbird_cost(8, 3, 1, 1, 0), ValueError, "block_size"),
        (lambda: hierarchical_cost(8, 0), ValueError, "block_size"),
        (lambda: memory_augmented_cost(8, 0, 1), ValueError, "segment"),
        (lambda: memory_augmented_cost(8, 4, -1), ValueError, "memory"),
        (lambda: complexity_table([]), ValueError, "at least one sequence length"),
        (lambda: complexity_table([64], window=64), ValueError, "must be odd"),
    ],
)
def test_bad_arguments_name_the_problem(make, error, message):
    with pytest.raises(error, match=message):
        make()
