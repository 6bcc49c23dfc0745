"""lcteach.kernels.block_selection: block means and the content-adaptive layout against Python loops in float64."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import random_qkv

from lcteach.kernels import block_means, block_scores, select_blocks

FAST = settings(max_examples=30, deadline=None)


def loop_select(q, k, block_size, keep, causal):
    """The layout written the slow way: means by Python slicing, a ranked list per query block."""
    batch, heads, n_q, _ = q.shape
    n_k = k.shape[-2]
    q_blocks, k_blocks = -(-n_q // block_size), -(-n_k // block_size)
    layout = torch.zeros(batch, heads, q_blocks, k_blocks, dtype=torch.bool)
    for b in range(batch):
        for h in range(heads):
            for i in range(q_blocks):
                q_mean = q[b, h, i * block_size : (i + 1) * block_size].mean(0)
                candidates = []
                for j in range(k_blocks):
                    if causal and j > i:
                        continue
                    k_mean = k[b, h, j * block_size : (j + 1) * block_size].mean(0)
                    rank = float("inf") if causal and j == i else float(q_mean @ k_mean)
                    candidates.append((-rank, j))  # sorted: highest score first, then the earlier block
                for _, j in sorted(candidates)[:keep]:
                    layout[b, h, i, j] = True
    return layout


@FAST
@given(
    n_q=st.integers(1, 20),
    n_k=st.integers(1, 20),
    block_size=st.integers(1, 6),
    keep=st.integers(1, 6),
    causal=st.booleans(),
    seed=st.integers(0, 99),
)
def test_select_blocks_matches_a_loop(n_q, n_k, block_size, keep, causal, seed):
    if causal:
        n_k = n_q
    q, k, _ = random_qkv(2, 2, n_q, 3, n_k=n_k, seed=seed)
    layout = select_blocks(q, k, block_size, keep, causal=causal)
    assert layout.dtype == torch.bool
    assert torch.equal(layout, loop_select(q, k, block_size, keep, causal))
    allowed = torch.ones_like(layout).tril() if causal else torch.ones_like(layout)
    assert torch.equal(layout.sum(-1), allowed.sum(-1).clamp(max=keep))


@FAST
@given(n=st.integers(1, 30), block_size=st.integers(1, 8), seed=st.integers(0, 99))
def test_block_means_are_means_of_the_real_rows(n, block_size, seed):
    x, _, _ = random_qkv(1, 2, n, 3, seed=seed)
    means = block_means(x, block_size)
    expected = torch.stack([x[..., i : i + block_size, :].mean(-2) for i in range(0, n, block_size)], dim=-2)
    torch.testing.assert_close(means, expected, rtol=1e-12, atol=1e-12)


def test_block_scores_are_dot_products_of_the_means():
    q, k, _ = random_qkv(1, 1, 10, 4, n_k=7, seed=3)
    scores = block_scores(q, k, 4)
    assert scores.shape == (1, 1, 3, 2)
    torch.testing.assert_close(scores[0, 0, 2, 1], q[0, 0, 8:].mean(0) @ k[0, 0, 4:].mean(0))


def test_ties_go_to_the_earlier_block():
    q = torch.ones(1, 1, 4, 2, dtype=torch.float64)
    k = torch.ones(1, 1, 8, 2, dtype=torch.float64)  # every block scores the same
    assert select_blocks(q, k, 2, 2)[0, 0].tolist() == [[True, True, False, False]] * 2


def test_a_query_block_with_a_strong_match_keeps_it():
    generator = torch.Generator().manual_seed(0)
    k = torch.randn(1, 1, 64, 8, generator=generator, dtype=torch.float64)
    q = k[..., 40:48, :].repeat(1, 1, 2, 1) * 4  # both query blocks look like key block 5
    assert select_blocks(q, k, 8, 1)[0, 0, :, 5].all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"block_size": 0, "keep": 1}, "block_size"),
        ({"block_size": 2, "keep": 0}, "keep"),
        ({"block_size": 2, "keep": 1, "causal": True}, "as many queries as keys"),
    ],
)
def test_bad_arguments_name_the_problem(kwargs, message):
    q, k, _ = random_qkv(1, 1, 6, 2, n_k=4)
    with pytest.raises(ValueError, match=message):
        select_blocks(q, k, **kwargs)


def test_mismatched_heads_are_refused():
    q, _, _ = random_qkv(1, 2, 6, 2)
    k, _, _ = random_qkv(1, 1, 6, 2)
    with pytest.raises(ValueError, match=r"\(B, H, N, D\)"):
        select_blocks(q, k, 2, 1)
