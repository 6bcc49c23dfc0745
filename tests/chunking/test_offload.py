"""lcteach.chunking.offload: streamed attention over host-resident keys and values, against SDPA with a dense mask."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import random_qkv

from lcteach.chunking import OffloadedAttention, offloaded_attention, pinned_host_copy
from lcteach.measure import track_peak_memory

FAST = settings(max_examples=40, deadline=None)
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def reference(q, k, v, causal, q_start):
    """SDPA with the dense (Nq, Nk) mask of the documented convention, and the log-sum-exp of the scores."""
    n_q, n_k = q.shape[-2], k.shape[-2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    mask = torch.ones(n_q, n_k, dtype=torch.bool)
    if causal:
        mask = torch.arange(n_k)[None, :] <= (q_start + torch.arange(n_q))[:, None]
    lse = torch.logsumexp(scores.masked_fill(~mask, float("-inf")), dim=-1)
    seen = mask.any(dim=-1)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask | ~seen[:, None])  # rows seeing nothing: any finite
    return out * seen[:, None], lse


def visible_chunks(n_q, n_k, chunk, causal, q_start):
    return sum(1 for j0 in range(0, n_k, chunk) if not causal or j0 <= q_start + n_q - 1)


@FAST
@given(
    batch=st.integers(1, 2),
    heads=st.integers(1, 3),
    n_q=st.integers(1, 40),
    n_k=st.integers(1, 70),
    dims=st.tuples(st.integers(1, 8), st.integers(1, 8)),
    chunk=st.integers(1, 80),
    block_q=st.none() | st.integers(1, 45),
    causal=st.booleans(),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_offloaded_attention_equals_dense_attention(batch, heads, n_q, n_k, dims, chunk, block_q, causal, seed, data):
    q_start = n_k - n_q if n_q <= n_k else 0
    if causal:
        q_start = data.draw(st.none() | st.integers(0, n_k + 5), label="q_start")
    effective_start = (n_k - n_q) if q_start is None else q_start
    if causal and effective_start < 0:
        with pytest.raises(ValueError, match="q_start"):
            offloaded_attention(*random_qkv(batch, heads, n_q, dims[0], n_k=n_k), chunk, causal=True)
        return
    q, k, v = random_qkv(batch, heads, n_q, dims[0], n_k=n_k, dim_v=dims[1], seed=seed)
    result = offloaded_attention(q, k, v, chunk, causal=causal, q_start=q_start, block_q=block_q)
    assert isinstance(result, OffloadedAttention)
    out, lse = reference(q, k, v, causal, effective_start)
    torch.testing.assert_close(result.out, out, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(result.lse, lse, rtol=1e-10, atol=1e-12)
    assert result.out.dtype == torch.float64 and result.out.device == q.device
    expected_bytes = 0
    for j0 in range(0, n_k, chunk):
        if not causal or j0 <= effective_start + n_q - 1:
            expected_bytes += batch * heads * min(chunk, n_k - j0) * sum(dims) * 8
    assert result.bytes_transferred == expected_bytes


def test_noncausal_traffic_is_the_whole_cache_and_causal_skips_unseen_chunks():
    q, k, v = random_qkv(1, 2, 16, 8, n_k=100, dim_v=4)
    full = offloaded_attention(q, k, v, 32)
    assert full.bytes_transferred == 2 * 100 * (8 + 4) * 8
    early = offloaded_attention(q, k, v, 32, causal=True, q_start=0)  # queries 0..15 see keys 0..15: one chunk
    assert early.bytes_transferred == 2 * 32 * (8 + 4) * 8
    assert visible_chunks(16, 100, 32, True, 0) == 1


def test_device_memory_holds_one_chunk_at_a_time():
    """The peak of the working set grows with the chunk, not with the length of the cache."""
    torch.manual_seed(0)
    n_q, dim, chunk = 64, 16, 128

    def peak(n_k, chunk_size):
        q, k, v = random_qkv(1, 1, n_q, dim, n_k=n_k, dtype=torch.float32)
        with torch.no_grad(), track_peak_memory() as memory:
            offloaded_attention(q, k, v, chunk_size)
        return memory.peak_bytes

    short, long = peak(4 * chunk, chunk), peak(64 * chunk, chunk)
    assert long == short  # 16x more cache, the same device memory
    one_chunk = 2 * chunk * dim * 4 + n_q * chunk * 4  # keys and values of a chunk, one score tile
    assert one_chunk < short < one_chunk + 8 * n_q * (dim + 2) * 4  # plus the output, lse and merge temporaries
    assert peak(64 * chunk, 2 * chunk) > short


def test_block_q_bounds_the_score_tile():
    q, k, v = random_qkv(1, 1, 256, 8, n_k=256, dtype=torch.float32)
    peaks = []
    for block_q in (None, 32):
        with torch.no_grad(), track_peak_memory() as memory:
            offloaded_attention(q, k, v, 128, block_q=block_q)
        peaks.append(memory.peak_bytes)
    assert peaks[0] - peaks[1] >= (256 - 32) * 128 * 4  # the (Nq, chunk) tile became (block_q, chunk)


def test_rows_that_see_no_key_give_zero_and_minus_infinity():
    q, k, v = random_qkv(1, 1, 4, 8, n_k=2)
    result = offloaded_attention(q, k, v, 1, causal=True, q_start=0)  # query 0 sees key 0 only, and so on
    assert torch.isfinite(result.lse).all()
    q, k, v = random_qkv(1, 1, 3, 4, n_k=5)
    out, lse, _ = offloaded_attention(q, k[..., :0, :], v[..., :0, :], 2)  # an empty cache
    assert (out == 0).all() and (lse == float("-inf")).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chunk_size": 0}, "chunk_size"),
        ({"chunk_size": 4, "block_q": 0}, "block_q"),
        ({"chunk_size": 4, "q_start": -1}, "q_start"),
        ({"chunk_size": 4, "causal": True, "n_k": 4}, "q_start"),  # 8 queries, 4 keys, no start given
        ({"chunk_size": 4, "dtype": torch.float16}, "dtype"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    n_k = kwargs.pop("n_k", 16)
    dtype = kwargs.pop("dtype", None)
    q, k, v = random_qkv(1, 1, 8, 4, n_k=n_k)
    if dtype is not None:
        q = q.to(dtype)
    with pytest.raises(ValueError, match=message):
        offloaded_attention(q, k, v, **kwargs)


def test_keys_on_a_non_host_device_are_refused():
    q, k, v = random_qkv(1, 1, 4, 4)
    with pytest.raises(ValueError, match="host"):
        offloaded_attention(q, k.to("meta"), v, 2)


def test_pinned_host_copy_is_a_cpu_tensor_with_the_same_values():
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(1))
    host = pinned_host_copy(x)
    assert host.device.type == "cpu" and torch.equal(host, x)
    assert host.is_pinned() == torch.cuda.is_available()


@CUDA
@pytest.mark.parametrize("causal", [False, True])
def test_cuda_streaming_from_pinned_memory_equals_the_cpu_result(causal):
    q, k, v = random_qkv(2, 2, 300, 16, n_k=1000, dim_v=8, seed=3)
    expected = offloaded_attention(q, k, v, 128, causal=causal)
    k_host, v_host = pinned_host_copy(k), pinned_host_copy(v)
    result = offloaded_attention(q, k_host, v_host, 128, device="cuda", causal=causal, block_q=64)
    assert result.out.device.type == "cuda" and result.lse.device.type == "cuda"
    torch.testing.assert_close(result.out.cpu(), expected.out, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(result.lse.cpu(), expected.lse, rtol=1e-10, atol=1e-12)
    assert result.bytes_transferred == expected.bytes_transferred + q.numel() * 8  # q moved to the device too
    out, lse = reference(q, k, v, causal, 1000 - 300)
    torch.testing.assert_close(result.out.cpu(), out, rtol=1e-10, atol=1e-12)


@CUDA
def test_cuda_working_set_stays_bounded():
    q = torch.randn(1, 1, 64, 64, device="cuda")
    k, v = (pinned_host_copy(torch.randn(1, 1, 1 << 16, 64)) for _ in range(2))
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    offloaded_attention(q, k, v, 4096)
    torch.cuda.synchronize()
    whole_cache = 2 * k.numel() * 4
    assert torch.cuda.max_memory_allocated() - base < whole_cache / 4  # two chunks in flight, never the cache
