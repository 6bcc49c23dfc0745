"""lcteach.kernels.topk: top-k attention against a float64 loop, and the content-adaptive module's choices."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import (
    grid_mask,
    loop_attention,
    loop_topk_attention,
    random_qkv,
    sparse_transformer_allowed,
    window_allowed,
)

from lcteach.kernels import ContentAdaptiveAttention, dense_attention, topk_attention
from lcteach.masks import generate_sliding_window

FAST = settings(max_examples=25, deadline=None)


# ---------------------------------------------------------------- topk_attention


@FAST
@given(
    n_q=st.integers(1, 9),
    n_k=st.integers(1, 9),
    top_k=st.integers(1, 10),
    causal=st.booleans(),
    seed=st.integers(0, 99),
)
def test_topk_matches_a_loop(n_q, n_k, top_k, causal, seed):
    q, k, v = random_qkv(2, 2, n_q, 4, n_k=n_k, dim_v=3, seed=seed)
    out, weights = topk_attention(q, k, v, top_k, causal=causal)
    expected = loop_topk_attention(q, k, v, top_k, lambda b, h, i, j: j <= i or not causal)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)
    kept = (weights > 0).sum(-1)
    allowed = torch.tensor([min(i + 1, n_k) if causal else n_k for i in range(n_q)])
    assert torch.equal(kept, torch.minimum(allowed, torch.tensor(top_k)).expand_as(kept))


@settings(max_examples=12, deadline=None)
@given(n=st.integers(1, 8), top_k=st.integers(1, 8), seed=st.integers(0, 99))
def test_topk_with_a_mask_mod_that_depends_on_batch_and_head(n, top_k, seed):
    def head_window(b, h, q_idx, kv_idx):  # head h sees h + 1 keys, batch b adds b more
        return (q_idx >= kv_idx) & (q_idx - kv_idx <= h + b)

    q, k, v = random_qkv(2, 3, n, 4, seed=seed)
    expected = loop_topk_attention(q, k, v, top_k, lambda b, h, i, j: 0 <= i - j <= h + b)
    torch.testing.assert_close(
        topk_attention(q, k, v, top_k, mask_mod=head_window)[0], expected, rtol=1e-10, atol=1e-12
    )


def test_ties_go_to_the_earlier_key():
    q, k, v = random_qkv(1, 1, 5, 4, seed=0)
    _, weights = topk_attention(q, torch.zeros_like(k), v, 2)  # every score is 0
    assert weights[0, 0].tolist() == [[0.5, 0.5, 0.0, 0.0, 0.0]] * 5
    _, causal_weights = topk_attention(q, torch.zeros_like(k), v, 2, causal=True)
    assert causal_weights[0, 0, 3].tolist() == [0.5, 0.5, 0.0, 0.0, 0.0]


def test_top_k_of_all_keys_is_dense_attention():
    q, k, v = random_qkv(2, 3, 7, 5, seed=1)
    for causal in (False, True):
        torch.testing.assert_close(topk_attention(q, k, v, 7, causal=causal), dense_attention(q, k, v, causal=causal))
        torch.testing.assert_close(topk_attention(q, k, v, 100, causal=causal), dense_attention(q, k, v, causal=causal))


def test_a_row_with_no_allowed_key_gives_zeros():
    q, k, v = random_qkv(1, 1, 4, 3, seed=2)
    out, weights = topk_attention(q, k, v, 2, mask_mod=lambda b, h, q_idx, kv_idx: q_idx != 1)
    assert not out[0, 0, 1].any() and not weights[0, 0, 1].any()
    assert torch.isfinite(out).all()


def test_topk_runs_on_float32_and_is_differentiable():
    q, k, v = random_qkv(1, 2, 6, 4, dtype=torch.float32, requires_grad=True, seed=3)
    out, _ = topk_attention(q, k, v, 3, causal=True)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda q: topk_attention(q, q, q, 0), ValueError, "top_k must be an integer >= 1, got 0"),
        (lambda q: topk_attention(q, q, q, 1.5), ValueError, "top_k"),
        (
            lambda q: topk_attention(q[0], q[0], q[0], 1, mask_mod=lambda b, h, i, j: i >= j),
            ValueError,
            r"mask_mod needs \(B, H, N, D\)",
        ),
        (lambda q: topk_attention(q, q, q, 1, mask_mod="causal"), TypeError, "mask_mod must be callable"),
        (lambda q: topk_attention(q, q[..., :2], q, 1), ValueError, "head dimension"),
    ],
)
def test_topk_bad_arguments_name_the_problem(call, error, message):
    with pytest.raises(error, match=message):
        call(random_qkv(1, 1, 4, 3)[0])


# ---------------------------------------------------------------- ContentAdaptiveAttention


def circle(n, period, sharpness, batch=1, heads=2):
    """q = k = points on a circle that turns once every ``period`` positions, (batch, heads, n, 2) in float64.

    Scores cos(2 pi (i - j) / period) * sharpness^2 / sqrt(2): a long period makes nearby keys
    win (local attention); a short one makes every key at a multiple of the period win.
    """
    angle = 2 * math.pi * torch.arange(n, dtype=torch.float64) / period
    points = sharpness * torch.stack([angle.cos(), angle.sin()], dim=-1)
    q = points.expand(batch, heads, n, 2).contiguous()
    v = torch.randn(batch, heads, n, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return q, q.clone(), v


def check_output(module, q, k, v, allowed):
    out = module(q, k, v)
    expected, _ = loop_attention(q, k, v, grid_mask(allowed, q.shape[-2]))
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)


def test_local_attention_chooses_the_sliding_window():
    module = ContentAdaptiveAttention(window=16, dense_max_len=64)
    q, k, v = circle(400, period=1000, sharpness=50.0)
    check_output(module, q, k, v, window_allowed(16))
    choice = module.last_choice
    assert choice.name == "sliding_window" and choice.seq_len == 400 and choice.local_mass >= 0.9
    assert choice.mask_mod.__name__ == generate_sliding_window(16).__name__


def test_periodic_attention_chooses_strided():
    module = ContentAdaptiveAttention(window=4, dense_max_len=64)
    q, k, v = circle(400, period=20, sharpness=10.0)  # floor(sqrt(400)) = 20: the period is the stride
    check_output(module, q, k, v, sparse_transformer_allowed(20))
    choice = module.last_choice
    assert choice.name == "strided" and choice.local_mass < 0.9 <= choice.strided_mass


def test_diffuse_attention_and_short_inputs_stay_dense():
    module = ContentAdaptiveAttention(window=8, dense_max_len=64)
    q, k, v = random_qkv(1, 2, 300, 4, seed=4)  # random scores: mass everywhere
    check_output(module, q, k, v, lambda i, j: j <= i)
    assert module.last_choice.name == "dense" and module.last_choice.local_mass < 0.9
    short = circle(64, period=1000, sharpness=50.0)  # local, but n <= dense_max_len
    assert ContentAdaptiveAttention(window=8, dense_max_len=64).choose(*short[:2]).name == "dense"


def test_the_choice_is_deterministic():
    q, k, _ = circle(300, period=1000, sharpness=50.0)
    module = ContentAdaptiveAttention(window=16, dense_max_len=64)
    first, second = module.choose(q, k), module.choose(q.clone(), k.clone())
    assert (first.name, first.local_mass, first.strided_mass) == (second.name, second.local_mass, second.strided_mass)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 0}, "window"),
        ({"stride": 0}, "stride"),
        ({"dense_max_len": -1}, "dense_max_len"),
        ({"coverage": 0.0}, "coverage"),
        ({"coverage": 1.5}, "coverage"),
        ({"num_samples": 0}, "num_samples"),
    ],
)
def test_module_bad_settings_name_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ContentAdaptiveAttention(**kwargs)


def test_module_needs_self_attention_inputs():
    q, k, v = random_qkv(1, 1, 8, 4, n_k=6)
    with pytest.raises(ValueError, match=r"self-attention on \(B, H, n, D\)"):
        ContentAdaptiveAttention()(q, k, v)
