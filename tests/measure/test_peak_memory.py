"""lcteach.measure: the tracker's counts against closed forms."""

import pytest
import torch
from oracles import random_qkv

from lcteach.kernels import dense_attention
from lcteach.measure import dense_attention_memory, peak_memory, track_peak_memory

N = 1000


@pytest.mark.parametrize(
    ("make", "nbytes"),
    [
        (lambda: torch.empty(N), 4 * N),
        (lambda: torch.ones(N, dtype=torch.float64), 8 * N),
        (lambda: torch.zeros(N, 3, dtype=torch.bfloat16), 2 * 3 * N),
        (lambda: torch.arange(N), 8 * N),
    ],
)
def test_new_tensor_counts_its_bytes(make, nbytes):
    with track_peak_memory() as mem:
        kept = make()
    assert mem.peak_bytes == mem.live_bytes == nbytes
    del kept


def test_matmul_counts_the_result_only():
    x = torch.randn(300, 64)
    result, peak = peak_memory(lambda: x @ x.T)
    assert peak == 300 * 300 * 4 and result.shape == (300, 300)


def test_freeing_lowers_live_but_not_peak():
    with track_peak_memory() as mem:
        a = torch.ones(N)
        b = torch.ones(N)
        del a
        assert mem.live_bytes == 4 * N
    assert mem.peak_bytes == 8 * N
    del b


def test_views_and_in_place_ops_on_inputs_allocate_nothing():
    x = torch.randn(20, 50)
    with track_peak_memory() as mem:
        views = [x.view(50, 20), x.T, x[::2], x.transpose(0, 1), x.unsqueeze(0)]
        x.add_(1).mul_(2).clamp_(max=3)
    assert mem.peak_bytes == 0
    del views


def test_views_of_new_tensors_are_counted_once():
    with track_peak_memory() as mem:
        a = torch.ones(N)
        views = [a.view(10, 100), a[1:], a.unsqueeze(1)]
        a.add_(1)
    assert mem.peak_bytes == 4 * N
    del views


def test_loop_that_allocates_and_frees_peaks_at_one_buffer():
    with track_peak_memory() as mem:
        for _ in range(20):
            buffer = torch.ones(N)
            del buffer
    assert mem.peak_bytes == 4 * N and mem.live_bytes == 0


def test_peak_memory_returns_the_result_and_passes_arguments():
    result, peak = peak_memory(torch.full, (N,), 2.0, dtype=torch.float64)
    assert torch.equal(result, torch.full((N,), 2.0, dtype=torch.float64)) and peak == 8 * N


@pytest.mark.parametrize(
    ("shape", "n_k", "causal", "dtype"),
    [
        ((1, 1, 256, 64), None, False, torch.float32),
        ((2, 3, 100, 16), 150, False, torch.float32),
        ((1, 2, 128, 32), None, True, torch.float32),
        ((1, 1, 64, 8), 96, False, torch.float64),
    ],
)
def test_dense_attention_peak_matches_the_estimate(shape, n_k, causal, dtype):
    batch, heads, n, dim = shape
    q, k, v = random_qkv(*shape, n_k=n_k, dtype=dtype)
    with torch.no_grad():
        _, peak = peak_memory(dense_attention, q, k, v, causal=causal)
    expected = dense_attention_memory(n, n_k, batch=batch, heads=heads, dim=dim, dtype=dtype)
    assert abs(peak - expected) <= 0.01 * expected


@pytest.mark.parametrize(
    ("shape", "n_k", "causal", "dtype"),
    [
        ((1, 1, 256, 64), None, False, torch.float32),
        ((1, 1, 512, 64), None, False, torch.float32),
        ((1, 1, 1024, 64), None, True, torch.float32),
        ((2, 3, 100, 16), 150, False, torch.float32),
        ((1, 4, 256, 32), None, True, torch.float32),
        ((1, 2, 128, 32), None, True, torch.float64),
        ((1, 1, 512, 64), None, False, torch.bfloat16),
    ],
)
def test_dense_attention_forward_backward_peak_matches_the_estimate(shape, n_k, causal, dtype):
    """The measured peak of a training step (forward, then backward) is the predicted seven
    n x n buffers per head plus the small terms, to within 1% (it is exact on torch 2.13)."""
    batch, heads, n, dim = shape
    q, k, v = random_qkv(*shape, n_k=n_k, dtype=dtype, requires_grad=True)
    grad_out = torch.randn(batch, heads, n, dim, generator=torch.Generator().manual_seed(1)).to(dtype)
    with track_peak_memory() as mem:
        out, _ = dense_attention(q, k, v, causal=causal)
        out.backward(grad_out)
    expected = dense_attention_memory(
        n, n_k, batch=batch, heads=heads, dim=dim, dtype=dtype, training=True, causal=causal
    )
    assert abs(mem.peak_bytes - expected) <= 0.01 * expected
    matrix = batch * heads * n * (n_k or n) * (torch.finfo(dtype).bits // 8)
    assert 7 * matrix < mem.peak_bytes < 8 * matrix  # seven n x n buffers dominate: 3.5 times the forward's two
