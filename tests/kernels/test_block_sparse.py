"""lcteach.kernels.block_sparse: exact on random layouts, work proportional to the active blocks."""

import pytest
import torch
import torch.nn.functional as F
from conftest import needs_cuda
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import grid_mask, loop_attention, one_thread, output_gradients, random_qkv
from torch.utils.flop_counter import FlopCounterMode

from lcteach.kernels import block_layout, block_sparse_attention, block_sparse_work
from lcteach.masks import causal_mask, generate_sliding_window, materialize_mask
from lcteach.measure import peak_memory

FAST = settings(max_examples=40, deadline=None)
TIGHT = {"rtol": 1e-10, "atol": 1e-10}
MASK_MODS = {"none": None, "causal": causal_mask, "window 3": generate_sliding_window(3)}


def random_layout(shape, density, seed):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < density


def dense_mask(layout, block_size, n_q, n_k, mask_mod=None, batch=None, heads=None):
    """The (.., n_q, n_k) bool mask a layout (and mask_mod) stands for, built the obvious way."""
    mask = layout.repeat_interleave(block_size, -2).repeat_interleave(block_size, -1)[..., :n_q, :n_k]
    if mask_mod is not None:
        mask = mask & materialize_mask(mask_mod, n_q, n_k, batch=batch, heads=heads)
    return mask


def assert_matches_sdpa(out, q, k, v, mask, scale=None):
    """Equal to SDPA on rows with an allowed key; zero on rows without (where SDPA gives NaN)."""
    mask = mask.expand(*q.shape[:-1], k.shape[-2])
    rows = mask.any(-1)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    torch.testing.assert_close(out[rows], expected[rows], **TIGHT)
    assert (out[~rows] == 0).all()


@FAST
@given(
    n_q=st.integers(1, 30),
    n_k=st.integers(1, 30),
    block_size=st.integers(1, 8),
    layout_dims=st.sampled_from([(), (3,), (2, 3), (1, 3), (2, 1)]),
    density=st.sampled_from([0.0, 0.3, 0.7, 1.0]),
    mask_mod=st.sampled_from(sorted(MASK_MODS)),
    dim_v=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_matches_masked_sdpa(n_q, n_k, block_size, layout_dims, density, mask_mod, dim_v, seed):
    q, k, v = random_qkv(2, 3, n_q, 4, n_k=n_k, dim_v=dim_v, seed=seed)
    blocks = (-(-n_q // block_size), -(-n_k // block_size))
    layout = random_layout((*layout_dims, *blocks), density, seed)
    mask_mod = MASK_MODS[mask_mod]
    out = block_sparse_attention(q, k, v, layout, block_size, mask_mod=mask_mod)
    assert out.shape == (2, 3, n_q, dim_v)
    assert_matches_sdpa(out, q, k, v, dense_mask(layout, block_size, n_q, n_k, mask_mod))


def test_matches_loop_oracle_with_scale_and_empty_rows():
    layout = torch.tensor([[True, False, False], [False, False, False], [True, True, True]])
    q, k, v = random_qkv(1, 2, 9, 3, n_k=8, dim_v=2)
    out = block_sparse_attention(q, k, v, layout, 3, scale=0.4)
    expected, _ = loop_attention(q, k, v, dense_mask(layout, 3, 9, 8), scale=0.4)
    torch.testing.assert_close(out, expected, **TIGHT)
    assert (out[..., 3:6, :] == 0).all()


def test_mask_mod_sees_batch_and_head_indices():
    def per_head_window(b, h, q_idx, kv_idx):
        return (q_idx >= kv_idx) & (q_idx - kv_idx <= h + b)

    q, k, v = random_qkv(2, 3, 10, 4)
    layout = random_layout((3, 4, 4), 0.8, seed=1)
    out = block_sparse_attention(q, k, v, layout, 3, mask_mod=per_head_window)
    assert_matches_sdpa(out, q, k, v, dense_mask(layout, 3, 10, 10, per_head_window, batch=2, heads=3))


def test_mask_mod_only_sees_positions_in_range():
    """A mask_mod that indexes a table of length n works although the last block is padded."""
    document = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3])

    def same_document(b, h, q_idx, kv_idx):
        return document[q_idx] == document[kv_idx]

    q, k, v = random_qkv(1, 1, 11, 4)
    out = block_sparse_attention(q, k, v, torch.ones(3, 3, dtype=torch.bool), 4, mask_mod=same_document)
    expected, _ = loop_attention(q, k, v, grid_mask(lambda i, j: document[i] == document[j], 11))
    torch.testing.assert_close(out, expected, **TIGHT)


def test_float32_keeps_dtype_and_matches_sdpa():
    q, k, v = random_qkv(1, 2, 100, 16, dtype=torch.float32)
    layout = block_layout(causal_mask, 100, block_size=32)
    out = block_sparse_attention(q, k, v, layout, 32, mask_mod=causal_mask)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), rtol=1e-5, atol=1e-5)


@needs_cuda
def test_cuda_matches_cpu_with_a_cpu_layout():
    q, k, v = random_qkv(1, 2, 200, 16, dtype=torch.float32)
    layout = random_layout((4, 4), 0.6, seed=2)
    expected = block_sparse_attention(q, k, v, layout, 64, mask_mod=causal_mask)
    got = block_sparse_attention(q.cuda(), k.cuda(), v.cuda(), layout, 64, mask_mod=causal_mask)
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-4, atol=1e-4)


@FAST
@given(n=st.integers(1, 16), block_size=st.integers(1, 6), density=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_gradients_match_sdpa(n, block_size, density, seed):
    """Diagonal blocks and the causal mask_mod give every query a key, so SDPA has no NaN row."""
    q, k, v = random_qkv(2, 2, n, 3, dim_v=4, seed=seed, requires_grad=True)
    blocks = -(-n // block_size)
    layout = random_layout((2, blocks, blocks), density, seed) | torch.eye(blocks, dtype=torch.bool)
    mask = dense_mask(layout, block_size, n, n, causal_mask)
    ours = output_gradients(
        lambda *a: block_sparse_attention(*a, layout, block_size, mask_mod=causal_mask), q, k, v, seed
    )
    expected = output_gradients(lambda *a: F.scaled_dot_product_attention(*a, attn_mask=mask), q, k, v, seed)
    for got, want in zip(ours, expected):
        torch.testing.assert_close(got, want, **TIGHT)


def test_gradcheck_with_an_empty_row():
    q, k, v = random_qkv(1, 2, 7, 3, n_k=6, dim_v=2, requires_grad=True)
    layout = torch.tensor([[True, False], [False, False], [True, True]])
    assert torch.autograd.gradcheck(lambda *a: block_sparse_attention(*a, layout, 3, mask_mod=causal_mask), (q, k, v))


def counted_flops(layout, block_size, n, dim=8, mask_mod=None):
    q, k, v = random_qkv(1, 1, n, dim, dtype=torch.float32)
    with FlopCounterMode(display=False) as counter:
        block_sparse_attention(q, k, v, layout, block_size, mask_mod=mask_mod)
    return counter.get_total_flops()


def band(blocks, width=2):
    ones = torch.ones(blocks, blocks, dtype=torch.bool)
    return ones.tril() & ones.triu(1 - width)


@pytest.mark.parametrize(
    "layout",
    [band(8), torch.ones(8, 8, dtype=torch.bool), torch.zeros(8, 8, dtype=torch.bool), random_layout((8, 8), 0.3, 5)],
)
def test_block_sparse_work_is_the_flops_the_kernel_runs(layout):
    assert counted_flops(layout, 16, 128) == block_sparse_work(layout, 16, 8)


def test_work_scales_with_active_blocks_not_n_squared():
    per_block = 2 * 16**2 * (8 + 8)  # scores and values of one 16 x 16 block, head dim 8
    for n in (256, 512, 1024):
        blocks = n // 16
        assert counted_flops(band(blocks), 16, n) == (2 * blocks - 1) * per_block  # a band: O(n)
        assert counted_flops(torch.ones(blocks, blocks, dtype=torch.bool), 16, n) == blocks**2 * per_block  # O(n^2)
    for density in (0.05, 0.2, 0.6):  # at a fixed n, whatever the places of the active blocks
        layout = random_layout((32, 32), density, seed=3)
        assert counted_flops(layout, 16, 512) == int(layout.sum()) * per_block


def test_work_counts_heads_batch_and_value_dim():
    layout = torch.tensor([[[True, False], [True, True]], [[False, False], [True, False]]])  # (heads=2, 2, 2)
    assert block_sparse_work(layout, 4, 8, value_dim=2, batch=3, heads=2) == 3 * 4 * 2 * 16 * (8 + 2)


def forward_peak(n, block_size=64):
    q, k, v = random_qkv(1, 1, n, 32, dtype=torch.float32)
    with one_thread():
        return peak_memory(block_sparse_attention, q, k, v, band(n // block_size), block_size, mask_mod=causal_mask)[1]


def test_memory_grows_linearly_for_a_band():
    small, large = forward_peak(1024), forward_peak(4096)
    assert large <= 4.5 * small
    assert large < 4096 * 4096 * 4 / 4


@pytest.mark.parametrize(
    ("mask_mod", "batch", "heads"),
    [
        (causal_mask, None, None),
        (generate_sliding_window(5), None, None),
        (lambda b, h, q, kv: (q - kv).abs() <= 2 * h + b, 2, 3),
    ],
)
@pytest.mark.parametrize(("n_q", "n_k", "block_size"), [(16, 16, 4), (17, 11, 4), (10, 23, 3), (5, 5, 8)])
def test_block_layout_is_the_block_max_of_the_mask(mask_mod, batch, heads, n_q, n_k, block_size):
    mask = materialize_mask(mask_mod, n_q, n_k, batch=batch, heads=heads)
    padded = F.pad(mask, (0, -n_k % block_size, 0, -n_q % block_size))
    expected = padded.unflatten(-1, (-1, block_size)).unflatten(-3, (-1, block_size)).any(-1).any(-2)
    layout = block_layout(mask_mod, n_q, n_k, block_size=block_size, batch=batch, heads=heads)
    assert layout.dtype == torch.bool and torch.equal(layout, expected)


def test_bad_layouts_raise():
    q, k, v = random_qkv(2, 3, 10, 4)
    with pytest.raises(TypeError, match="layout must be a bool tensor"):
        block_sparse_attention(q, k, v, torch.ones(4, 4), 3)
    with pytest.raises(TypeError, match="layout must be a bool tensor"):
        block_sparse_attention(q, k, v, [[True]], 10)
    with pytest.raises(ValueError, match=r"layout must have shape \(\[B, \[H,\]\] 4, 4\).*got \(3, 4\)"):
        block_sparse_attention(q, k, v, torch.ones(3, 4, dtype=torch.bool), 3)
    with pytest.raises(ValueError, match="layout must have shape"):
        block_sparse_attention(q, k, v, torch.ones(1, 2, 3, 4, 4, dtype=torch.bool), 3)
    with pytest.raises(ValueError, match=r"do not broadcast to \(batch, heads\) = \(2, 3\)"):
        block_sparse_attention(q, k, v, torch.ones(2, 4, 4, dtype=torch.bool), 3)
    with pytest.raises(ValueError, match="layout must have shape"):
        block_sparse_work(torch.ones(4, dtype=torch.bool), 3, 4)


def test_bad_arguments_raise():
    q, k, v = random_qkv(1, 1, 8, 4)
    layout = torch.ones(2, 2, dtype=torch.bool)
    for block_size in (0, -4, 2.0, True):
        with pytest.raises(ValueError, match="block_size"):
            block_sparse_attention(q, k, v, layout, block_size)
    with pytest.raises(ValueError, match=r"needs \(B, H, N, D\) inputs"):
        block_sparse_attention(q[0], k[0], v[0], layout, 4)
    with pytest.raises(TypeError, match="mask_mod must be callable"):
        block_sparse_attention(q, k, v, layout, 4, mask_mod="causal")
    with pytest.raises(ValueError, match="head_dim"):
        block_sparse_work(layout, 4, 0)
    with pytest.raises(ValueError, match="block_size"):
        block_layout(causal_mask, 8, block_size=0)


GLOBAL_POSITIONS = torch.tensor([0, 5])


def scalar_only_global(b, h, q_idx, kv_idx):
    """Right on scalar indices (FlexAttention's vmap), wrong on a broadcast grid: ``kv_idx == GLOBAL_POSITIONS``
    broadcasts against the grid's last axis, and ``.any()`` then reduces the whole grid to one bool. On a
    grid whose last axis has 2 keys (block_size=2) it broadcasts without an error."""
    return (q_idx == GLOBAL_POSITIONS).any() | (kv_idx == GLOBAL_POSITIONS).any()


@pytest.mark.parametrize("block_size", [1, 2, 3, 4, 8])
def test_a_mask_mod_wrong_on_index_grids_raises_whatever_the_block_size(block_size):
    """Before the fix: block_size=1 and 2 silently computed full attention, 3, 4 and 8 raised torch's own
    RuntimeError from deep inside the kernel. Now one check, independent of the block size, says what is wrong."""
    q, k, v = random_qkv(1, 2, 8, 4)
    layout = torch.ones(-(-8 // block_size), -(-8 // block_size), dtype=torch.bool)
    with pytest.raises(ValueError, match=r"mask_mod scalar_only_global .*broadcast index grid.* pair by pair"):
        block_sparse_attention(q, k, v, layout, block_size, mask_mod=scalar_only_global)


def test_a_mask_mod_right_on_index_grids_passes_the_check():
    """The same pattern written elementwise (no reduction over the index tensors) is accepted and exact."""

    def global_tokens(b, h, q_idx, kv_idx):
        return torch.isin(q_idx, GLOBAL_POSITIONS) | torch.isin(kv_idx, GLOBAL_POSITIONS)

    q, k, v = random_qkv(1, 2, 8, 4)
    out = block_sparse_attention(q, k, v, torch.ones(4, 4, dtype=torch.bool), 2, mask_mod=global_tokens)
    expected, _ = loop_attention(q, k, v, grid_mask(lambda i, j: i in (0, 5) or j in (0, 5), 8))
    torch.testing.assert_close(out, expected, **TIGHT)
