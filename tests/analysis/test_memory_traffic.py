"""lcteach.analysis.memory_traffic: closed forms against the brute-force walk of the tiled loop and Dao et al.'s bounds."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lcteach.analysis import (
    MemoryTraffic,
    flash_attention_traffic,
    flash_block_sizes,
    simulate_flash_traffic,
    standard_attention_traffic,
)

FAST = settings(max_examples=200, deadline=None)
lengths, head_dims, blocks = st.integers(1, 300), st.integers(1, 128), st.integers(1, 400)
loop_orders = st.sampled_from(["kv_outer", "q_outer"])


def _same_traffic(a: MemoryTraffic, b: MemoryTraffic) -> None:
    assert dict(a.reads) == dict(b.reads) and dict(a.writes) == dict(b.writes)
    assert (a.n, a.head_dim, a.block_q, a.block_k, a.flops, a.method) == (
        b.n,
        b.head_dim,
        b.block_q,
        b.block_k,
        b.flops,
        b.method,
    )
    assert a.elements == b.elements


# ---------------------------------------------------------------- standard attention (Algorithm 0)


@FAST
@given(lengths, head_dims)
def test_standard_attention_moves_every_n_by_n_matrix_twice(n, d):
    traffic = standard_attention_traffic(n, d)
    assert dict(traffic.reads) == {"Q": n * d, "K": n * d, "S": n * n, "P": n * n, "V": n * d}
    assert dict(traffic.writes) == {"S": n * n, "P": n * n, "O": n * d}
    assert traffic.elements == 4 * n * n + 4 * n * d and traffic.block_q is traffic.block_k is None
    assert traffic.flops == 4 * n * n * d


def test_standard_attention_intensity_is_about_half_the_head_dim_in_float16():
    """4 n^2 d FLOPs over 2 bytes * (4 n^2 + 4 n d) elements = n d / (2 (n + d)) -> d / 2 for n >> d."""
    for n, d in ((1, 1), (4096, 64), (65_536, 128)):
        traffic = standard_attention_traffic(n, d)
        assert traffic.intensity() == pytest.approx(n * d / (2 * (n + d)), rel=1e-12)
        assert traffic.bytes(torch.float32) == 2 * traffic.bytes(torch.float16) == 4 * traffic.elements
    assert standard_attention_traffic(1 << 20, 64).intensity() == pytest.approx(32, rel=1e-3)


# ---------------------------------------------------------------- the tiled forward pass


@FAST
@given(lengths, head_dims, blocks, blocks, loop_orders)
def test_closed_form_equals_the_walk_over_every_tile(n, d, block_q, block_k, loop_order):
    closed = flash_attention_traffic(n, d, block_q=block_q, block_k=block_k, loop_order=loop_order)
    walked = simulate_flash_traffic(n, d, block_q=block_q, block_k=block_k, loop_order=loop_order)
    _same_traffic(closed, walked)


@FAST
@given(lengths, head_dims, st.integers(1, 1 << 20), loop_orders)
def test_blocks_from_the_on_chip_size_agree_with_the_walk(n, d, sram, loop_order):
    closed = flash_attention_traffic(n, d, sram_elements=sram, loop_order=loop_order)
    walked = simulate_flash_traffic(n, d, block_q=closed.block_q, block_k=closed.block_k, loop_order=loop_order)
    _same_traffic(closed, walked)
    small, large = flash_block_sizes(sram, d)
    assert (closed.block_q, closed.block_k) == ((small, large) if loop_order == "kv_outer" else (large, small))


@FAST
@given(st.integers(1, 1 << 22), head_dims)
def test_paper_block_sizes_and_what_they_hold_on_chip(sram, d):
    block_q, block_k = flash_block_sizes(sram, d)
    assert block_k == math.ceil(sram / (4 * d)) and block_q == min(block_k, d)
    # K_j, V_j fill about half of M and Q_i, O_i at most the other half (ceil adds at most one row each).
    assert 2 * block_k * d < sram / 2 + 2 * d and 2 * block_q * d <= 2 * block_k * d


@FAST
@given(lengths, head_dims, blocks)
def test_kv_outer_term_by_term(n, d, block_k):
    """Algorithm 1: K, V read once; Q, O, l, m read in every one of the T_c passes; O, l, m written once to
    initialise them and once per pass."""
    passes = math.ceil(n / block_k)
    traffic = flash_attention_traffic(n, d, block_q=7, block_k=block_k)
    assert dict(traffic.reads) == {"K": n * d, "V": n * d, "Q": passes * n * d, "O": passes * n * d} | {
        "l": passes * n,
        "m": passes * n,
    }
    assert dict(traffic.writes) == {"O": (1 + passes) * n * d, "l": (1 + passes) * n, "m": (1 + passes) * n}


@FAST
@given(lengths, head_dims, blocks)
def test_q_outer_reads_keys_and_values_once_per_query_block_and_writes_once(n, d, block_q):
    passes = math.ceil(n / block_q)
    traffic = flash_attention_traffic(n, d, block_q=block_q, block_k=5, loop_order="q_outer")
    assert dict(traffic.reads) == {"Q": n * d, "K": passes * n * d, "V": passes * n * d}
    assert dict(traffic.writes) == {"O": n * d, "lse": n}


@FAST
@given(st.integers(1, 8), st.sampled_from([16, 32, 64, 128]), st.integers(0, 4))
def test_doubling_on_chip_memory_halves_the_repeated_passes(blocks_per_seq, d, log_m):
    """Theta(n^2 d^2 / M): with M = 4 d B_c and n a multiple of B_c, the part beyond one pass halves with M."""
    block = 1 << log_m
    n = 2 * block * blocks_per_seq
    small = flash_attention_traffic(n, d, sram_elements=4 * d * block)
    large = flash_attention_traffic(n, d, sram_elements=8 * d * block)
    floor = 2 * n * d + n * (d + 2)  # K, V once and the initial O, l, m: no pass count in them
    assert small.elements - floor == 2 * (large.elements - floor)


@pytest.mark.parametrize("d", [16, 64, 128])
def test_traffic_is_theta_n2_d2_over_m_between_d_and_n_d(d):
    """Dao et al. 2022, Theorem 2: within constant factors of n^2 d^2 / M for d <= M <= n d."""
    n = 4096
    ratios = []
    for m in (d * 2**k for k in range(0, int(math.log2(n)) + 1)):
        traffic = flash_attention_traffic(n, d, sram_elements=m)
        ratios.append(traffic.elements / (n * n * d * d / m))
    assert 2 <= min(ratios) and max(ratios) <= 20, ratios


@FAST
@given(st.integers(64, 4096), st.sampled_from([32, 64, 128]), st.integers(1 << 10, 1 << 20))
def test_flash_2_order_moves_fewer_elements_than_algorithm_1(n, d, sram):
    kv_outer = flash_attention_traffic(n, d, sram_elements=sram)
    q_outer = flash_attention_traffic(n, d, sram_elements=sram, loop_order="q_outer")
    assert q_outer.elements < kv_outer.elements and q_outer.flops == kv_outer.flops


def test_flash_beats_standard_once_blocks_are_wider_than_the_head_dim():
    """At n = 4096, d = 64: standard attention moves ~4 n^2 elements; one flash pass moves ~3 n d, so flash wins
    once there are fewer than ~4n / 3d passes, a few hundred kilobytes of on-chip memory at most."""
    n, d = 4096, 64
    standard = standard_attention_traffic(n, d).elements
    h100 = 228 * 1024 // 2  # float16 elements in an H100 SM's shared memory
    assert flash_attention_traffic(n, d, sram_elements=h100).elements < standard / 8
    assert flash_attention_traffic(n, d, sram_elements=d).elements > standard  # blocks of one key: worse


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "either sram_elements, or both"),
        ({"block_q": 4}, "either sram_elements, or both"),
        ({"sram_elements": 1024, "block_q": 4, "block_k": 4}, "not both"),
        ({"sram_elements": 0}, "sram_elements must be an integer >= 1"),
        ({"block_q": 0, "block_k": 4}, "block_q must be an integer >= 1"),
        ({"block_q": 4, "block_k": 2.5}, "block_k must be an integer >= 1"),
        ({"sram_elements": 1024, "loop_order": "k_outer"}, "loop_order must be one of"),
    ],
)
def test_bad_arguments_raise_a_named_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        flash_attention_traffic(128, 64, **kwargs)


def test_bad_sizes_raise_a_named_value_error():
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        standard_attention_traffic(0, 64)
    with pytest.raises(ValueError, match="head_dim must be an integer >= 1"):
        simulate_flash_traffic(16, True, block_q=4, block_k=4)
    with pytest.raises(ValueError, match="loop_order must be one of"):
        simulate_flash_traffic(16, 4, block_q=4, block_k=4, loop_order="sideways")
    with pytest.raises(ValueError, match="head_dim must be an integer >= 1"):
        flash_block_sizes(1024, 0)
    with pytest.raises(TypeError, match="dtype must be a floating-point"):
        standard_attention_traffic(16, 4).bytes(torch.int32)
