"""lcteach.kernels.banded.banded_attention: the sliding window exactly, in O(n * window) memory."""

import pytest
import torch
import torch.nn.functional as F
from conftest import needs_cuda
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import grid_mask, loop_attention, one_thread, output_gradients, random_qkv, window_allowed

from lcteach.kernels import banded_attention
from lcteach.masks import generate_sliding_window, materialize_mask
from lcteach.measure import peak_memory

FAST = settings(max_examples=30, deadline=None)
TIGHT = {"rtol": 1e-10, "atol": 1e-10}


def sdpa_window(q, k, v, window, scale=None):
    """SDPA with the dense bool mask of generate_sliding_window(window), built by create_mask."""
    mask = materialize_mask(generate_sliding_window(window), q.shape[-2], device=q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


@FAST
@given(
    n=st.integers(1, 40),
    window=st.integers(1, 50),
    block_size=st.none() | st.integers(1, 60),
    batch=st.integers(1, 2),
    heads=st.integers(1, 3),
    dim_v=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_matches_masked_sdpa(n, window, block_size, batch, heads, dim_v, seed):
    q, k, v = random_qkv(batch, heads, n, 4, dim_v=dim_v, seed=seed)
    out = banded_attention(q, k, v, window, block_size=block_size)
    torch.testing.assert_close(out, sdpa_window(q, k, v, window), **TIGHT)


@pytest.mark.parametrize(
    ("n", "window", "block_size"), [(12, 1, None), (12, 4, None), (13, 4, 3), (12, 5, 1), (12, 12, 5), (12, 100, 7)]
)
def test_matches_loop_oracle(n, window, block_size):
    """Independent of create_mask: query i sees keys i - window < j <= i, itself included."""
    q, k, v = random_qkv(2, 1, n, 3, dim_v=2)
    expected, _ = loop_attention(q, k, v, grid_mask(window_allowed(window), n))
    torch.testing.assert_close(banded_attention(q, k, v, window, block_size=block_size), expected, **TIGHT)


def test_window_one_returns_the_values():
    q, k, v = random_qkv(1, 2, 9, 4)
    torch.testing.assert_close(banded_attention(q, k, v, 1), v, **TIGHT)


def test_scale_float32_and_inputs_without_batch_dims():
    q, k, v = random_qkv(2, 2, 70, 8, dtype=torch.float32)
    out = banded_attention(q, k, v, 16, scale=0.3)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, sdpa_window(q, k, v, 16, scale=0.3), rtol=1e-5, atol=1e-5)
    q, k, v = random_qkv(11, 4)
    expected, _ = loop_attention(q, k, v, grid_mask(window_allowed(3), 11))
    torch.testing.assert_close(banded_attention(q, k, v, 3), expected, **TIGHT)


def test_follows_the_input_device():
    q, k, v = (torch.empty(2, 3, 50, 8, device="meta") for _ in range(3))
    out = banded_attention(q, k, v, 16)
    assert out.device.type == "meta" and out.shape == (2, 3, 50, 8)


@needs_cuda
def test_cuda_matches_cpu():
    q, k, v = random_qkv(1, 2, 300, 16, dtype=torch.float32)
    expected = banded_attention(q, k, v, 64)
    got = banded_attention(q.cuda(), k.cuda(), v.cuda(), 64)
    assert got.device.type == "cuda"
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-4, atol=1e-4)


@FAST
@given(
    n=st.integers(1, 20),
    window=st.integers(1, 25),
    block_size=st.none() | st.integers(1, 8),
    seed=st.integers(0, 2**16),
)
def test_gradients_match_sdpa(n, window, block_size, seed):
    q, k, v = random_qkv(2, 2, n, 3, dim_v=4, seed=seed, requires_grad=True)
    ours = output_gradients(lambda *a: banded_attention(*a, window, block_size=block_size), q, k, v, seed)
    expected = output_gradients(lambda *a: sdpa_window(*a, window), q, k, v, seed)
    for got, want in zip(ours, expected):
        torch.testing.assert_close(got, want, **TIGHT)


@pytest.mark.parametrize(("n", "window", "block_size"), [(7, 3, None), (6, 2, 1), (4, 9, None), (9, 4, 3)])
def test_gradcheck(n, window, block_size):
    q, k, v = random_qkv(1, 2, n, 3, dim_v=2, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: banded_attention(*a, window, block_size=block_size), (q, k, v))


def forward_peak(n, window=64):
    q, k, v = random_qkv(1, 1, n, 32, dtype=torch.float32)
    with one_thread():
        return peak_memory(banded_attention, q, k, v, window)[1]


def training_peak(n, window=64):
    q, k, v = random_qkv(1, 1, n, 32, dtype=torch.float32, requires_grad=True)
    with one_thread():
        return peak_memory(lambda: banded_attention(q, k, v, window).sum().backward())[1]


@pytest.mark.parametrize("measure", [forward_peak, training_peak])
def test_memory_grows_linearly(measure):
    small, large = measure(1024), measure(4096)
    assert large <= 4.5 * small
    assert large < 4096 * 4096 * 4 / 4  # a quarter of the dense score matrix


def test_memory_grows_with_the_window_not_n():
    assert forward_peak(2048, window=256) > 3 * forward_peak(2048, window=32)


@pytest.mark.parametrize("window", [0, -3, 2.5, True, "4"])
def test_bad_window_or_block_size_raises(window):
    q, k, v = random_qkv(1, 1, 8, 4)
    with pytest.raises(ValueError, match="window"):
        banded_attention(q, k, v, window)
    with pytest.raises(ValueError, match="block_size"):
        banded_attention(q, k, v, 3, block_size=window)


def test_bad_inputs_raise():
    q, k, v = random_qkv(1, 1, 8, 4, n_k=10)
    with pytest.raises(ValueError, match="as many queries as keys"):
        banded_attention(q, k, v, 3)
    q, k, v = random_qkv(1, 1, 8, 4)
    with pytest.raises(ValueError, match="head dimension"):
        banded_attention(q, k[..., :3], v, 3)
    with pytest.raises(ValueError, match="floating-point"):
        banded_attention(q.long(), k.long(), v.long(), 3)
