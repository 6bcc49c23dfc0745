"""lcteach.kernels.tiled.tiled_attention: exact results, exact gradients and O(n) memory."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import (
    causal_allowed,
    grid_mask,
    loop_attention,
    one_thread,
    random_qkv,
    reference_attention,
    window_allowed,
)
from torch.utils._python_dispatch import TorchDispatchMode

from lcteach.kernels import block_layout, tile_status, tiled_attention
from lcteach.masks import generate_sliding_window
from lcteach.measure import peak_memory

FAST = settings(max_examples=25, deadline=None)
TIGHT = {"rtol": 1e-10, "atol": 1e-10}


def pattern(n_q, n_k, causal, window):
    """tiled_attention's keyword arguments and the brute-force bool matrix they stand for."""
    kwargs, allowed = {"causal": causal}, []
    if causal:
        allowed.append(causal_allowed)
    if window is not None:
        kwargs["mask_mod"] = generate_sliding_window(window)
        allowed.append(window_allowed(window))
    return kwargs, grid_mask(lambda i, j: all(a(i, j) for a in allowed), n_q, n_k)


def assert_matches_loop(result, q, k, v, mask=None):
    expected_out, expected_lse = loop_attention(q, k, v, mask)
    torch.testing.assert_close(result[0], expected_out, **TIGHT)
    torch.testing.assert_close(result[1], expected_lse, **TIGHT)


@FAST
@given(
    n_q=st.integers(1, 20),
    n_k=st.integers(1, 20),
    block_q=st.integers(1, 9),
    block_k=st.integers(1, 9),
    causal=st.booleans(),
    window=st.none() | st.integers(1, 8),
    dim_v=st.integers(1, 5),
)
def test_matches_loop_and_sdpa(n_q, n_k, block_q, block_k, causal, window, dim_v):
    q, k, v = random_qkv(1, 2, n_q, 4, n_k=n_k, dim_v=dim_v)
    kwargs, mask = pattern(n_q, n_k, causal, window)
    out, lse = tiled_attention(q, k, v, block_q=block_q, block_k=block_k, **kwargs)
    assert_matches_loop((out, lse), q, k, v, mask)
    rows = mask.any(-1)  # SDPA has no convention for queries without keys
    sdpa = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out[..., rows, :], sdpa[..., rows, :], **TIGHT)


def test_lse_is_logsumexp_of_scaled_masked_scores():
    q, k, v = random_qkv(2, 3, 13, 6, n_k=17)
    kwargs, mask = pattern(13, 17, causal=True, window=5)
    _, lse = tiled_attention(q, k, v, block_q=4, block_k=3, scale=0.7, **kwargs)
    scores = (q @ k.transpose(-2, -1) * 0.7).masked_fill(~mask, -math.inf)
    torch.testing.assert_close(lse, torch.logsumexp(scores, dim=-1), **TIGHT)


def test_mask_mod_sees_batch_and_head_indices():
    def per_head_window(b, h, q_idx, kv_idx):  # head h of batch b sees the last h + b + 1 keys
        return (q_idx >= kv_idx) & (q_idx - kv_idx <= h + b)

    q, k, v = random_qkv(2, 3, 10, 4)
    mask = torch.stack([torch.stack([grid_mask(window_allowed(h + b + 1), 10) for h in range(3)]) for b in range(2)])
    assert_matches_loop(tiled_attention(q, k, v, block_q=3, block_k=4, mask_mod=per_head_window), q, k, v, mask)


def test_query_without_keys_gives_zero_output_and_gradient():
    def blind_query_2(b, h, q_idx, kv_idx):
        return q_idx != 2

    q, k, v = random_qkv(1, 1, 6, 3, requires_grad=True)
    out, lse = tiled_attention(q, k, v, block_q=2, block_k=4, mask_mod=blind_query_2)
    assert (out[..., 2, :] == 0).all() and lse[..., 2].item() == -math.inf
    (out.sum() + lse[..., [0, 1, 3, 4, 5]].sum()).backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))
    assert (q.grad[..., 2, :] == 0).all()


def test_float32_matches_sdpa_and_keeps_dtype():
    q, k, v = random_qkv(2, 2, 200, 16, dtype=torch.float32)
    out, lse = tiled_attention(q, k, v, causal=True)
    assert out.dtype == lse.dtype == torch.float32
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_inputs_without_batch_dims():
    q, k, v = random_qkv(9, 4, n_k=11)
    result = tiled_attention(q, k, v, block_q=4, block_k=4, causal=True)
    assert_matches_loop(result, q, k, v, grid_mask(causal_allowed, 9, 11))
    with pytest.raises(ValueError, match="mask_mod needs"):
        tiled_attention(q, k, v, mask_mod=generate_sliding_window(2))


def gradients(fn, q, k, v, seed):
    """d/d(q, k, v) of a random linear function of both outputs: checks the out and lse paths."""
    out, lse = fn(q, k, v)
    gen = torch.Generator().manual_seed(seed)
    loss = (out * torch.randn(out.shape, generator=gen, dtype=out.dtype)).sum()
    loss = loss + (lse * torch.randn(lse.shape, generator=gen, dtype=lse.dtype)).sum()
    return torch.autograd.grad(loss, (q, k, v))


@FAST
@given(
    n=st.integers(1, 12),
    block_q=st.integers(1, 5),
    block_k=st.integers(1, 5),
    causal=st.booleans(),
    window=st.none() | st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_gradients_match_dense_autograd(n, block_q, block_k, causal, window, seed):
    q, k, v = random_qkv(2, 2, n, 3, dim_v=4, seed=seed, requires_grad=True)
    kwargs, mask = pattern(n, n, causal, window)  # square: every query sees itself
    ours = gradients(lambda *a: tiled_attention(*a, block_q=block_q, block_k=block_k, **kwargs), q, k, v, seed)
    expected = gradients(lambda *a: reference_attention(*a, mask), q, k, v, seed)
    for got, want in zip(ours, expected):
        torch.testing.assert_close(got, want, **TIGHT)


@pytest.mark.parametrize("kwargs", [{}, {"causal": True, "mask_mod": generate_sliding_window(2)}])
def test_gradcheck(kwargs):
    q, k, v = random_qkv(1, 2, 5, 3, n_k=5, dim_v=2, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: tiled_attention(*a, block_q=2, block_k=3, **kwargs), (q, k, v))


class MatmulCounter(TorchDispatchMode):
    """Counts the matrix products torch runs while active."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func in (torch.ops.aten.mm.default, torch.ops.aten.bmm.default)
        return func(*args, **(kwargs or {}))


def matmuls(**kwargs):
    q, k, v = random_qkv(1, 1, 16, 4)
    with MatmulCounter() as counter:
        tiled_attention(q, k, v, block_q=4, block_k=4, **kwargs)
    return counter.count


def test_skips_tiles_above_the_diagonal_and_outside_the_window():
    per_tile = matmuls() / 16  # 4 x 4 tiles
    assert per_tile >= 1
    assert matmuls(causal=True) == 10 * per_tile  # 4 + 3 + 2 + 1 tiles on or below the diagonal
    assert matmuls(mask_mod=generate_sliding_window(2)) == 7 * per_tile  # diagonal tiles + 3 spill-overs


def forward_peak(n, block=128):
    q, k, v = random_qkv(1, 1, n, 64, dtype=torch.float32)
    with one_thread():
        return peak_memory(tiled_attention, q, k, v, block_q=block, block_k=block)[1]


def training_peak(n, block=128):
    q, k, v = random_qkv(1, 1, n, 64, dtype=torch.float32, requires_grad=True)

    def step():
        out, lse = tiled_attention(q, k, v, block_q=block, block_k=block, causal=True)
        (out.sum() + lse.sum()).backward()

    with one_thread():
        return peak_memory(step)[1]


def test_forward_never_holds_an_n_by_n_matrix():
    n = 4096
    assert forward_peak(n, block=256) < n * n * 4 / 16


@pytest.mark.parametrize("measure", [forward_peak, training_peak])
def test_memory_grows_linearly(measure):
    small, large = measure(1024), measure(2048)
    assert large <= 2.5 * small
    assert large < 2048 * 2048 * 4 / 4  # a quarter of one dense score matrix, forward or backward


@pytest.mark.parametrize(
    ("blocks", "name"), [((0, 8), "block_q"), ((8, -1), "block_k"), ((2.5, 8), "block_q"), ((8, True), "block_k")]
)
def test_bad_block_sizes_raise(blocks, name):
    q, k, v = random_qkv(1, 1, 8, 4)
    with pytest.raises(ValueError, match=name):
        tiled_attention(q, k, v, block_q=blocks[0], block_k=blocks[1])


def transposed_causal(b, h, q_idx, kv_idx):
    """Right on scalars, wrong on grids: .mT swaps the grid's query and key axes, so on square tiles
    (block_q == block_k) it broadcasts without an error and attends to the future."""
    return q_idx.mT >= kv_idx.mT


@pytest.mark.parametrize("blocks", [(4, 4), (3, 5), (1, 1)])
def test_a_mask_mod_wrong_on_index_grids_raises_whatever_the_tile_shape(blocks):
    q, k, v = random_qkv(1, 2, 8, 4)
    with pytest.raises(ValueError, match=r"mask_mod transposed_causal must give on a broadcast index grid"):
        tiled_attention(q, k, v, block_q=blocks[0], block_k=blocks[1], mask_mod=transposed_causal)
    with pytest.raises(ValueError, match="mask_mod transposed_causal"):
        tile_status(8, 8, *blocks, mask_mod=transposed_causal)
    with pytest.raises(ValueError, match="mask_mod transposed_causal"):
        block_layout(transposed_causal, 8, block_size=blocks[0])


def test_a_mask_mod_must_return_bool():
    q, k, v = random_qkv(1, 1, 6, 4)
    with pytest.raises(
        ValueError, match=r"mask_mod <lambda> must return a bool tensor \(True = attend\), got torch.int64"
    ):
        tiled_attention(q, k, v, mask_mod=lambda b, h, q_idx, kv_idx: (q_idx >= kv_idx).long())
