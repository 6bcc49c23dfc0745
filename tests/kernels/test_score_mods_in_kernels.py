"""score_mod= in lcteach's kernels: ALiBi against SDPA with a dense additive bias, soft-capping against a
brute-force dense computation and a loop, forward and gradients, float64 and float32."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import (
    alibi_bias,
    causal_allowed,
    document_allowed,
    grid_mask,
    loop_modified_attention,
    modified_attention,
    output_gradients,
    prefix_lm_allowed,
    random_qkv,
    window_allowed,
)

from lcteach.kernels import (
    banded_attention,
    block_layout,
    block_sparse_attention,
    dense_attention,
    flex_fallback_reason,
    flex_sparse_attention,
    tiled_attention,
)
from lcteach.masks import (
    causal_mask,
    generate_document_mask,
    generate_prefix_lm,
    generate_sliding_window,
    random_document_lengths,
)
from lcteach.score_mods import generate_alibi, generate_softcap

FAST = settings(max_examples=30, deadline=None)
TIGHT = {"rtol": 1e-10, "atol": 1e-10}
FLOAT32 = {"rtol": 2e-5, "atol": 2e-5}
CAP = 1.5  # small against the scores of random_qkv, so that the cap changes the result
COMPILES = flex_fallback_reason(*random_qkv(1, 1, 4, 4, dtype=torch.float32)) is None
needs_compile = pytest.mark.skipif(not COMPILES, reason="torch cannot compile FlexAttention here (no C++ compiler?)")


def masks(n):
    """Each pattern as (mask_mod, allowed(i, j) for the loop), on n positions; every query has a key."""
    lengths = random_document_lengths(n, min(n, 3), seed=n)
    return {
        "causal": (causal_mask, causal_allowed),
        "sliding window 3": (generate_sliding_window(3), window_allowed(3)),
        "prefix-LM 4": (generate_prefix_lm(4), prefix_lm_allowed(4)),
        "packed documents": (generate_document_mask(lengths, causal_mask), document_allowed(lengths, causal_allowed)),
    }


def run(kernel, q, k, v, mask_mod, score_mod, mask):
    """One kernel's output with mask_mod (or its dense ``mask`` for dense_attention) and score_mod."""
    n_q, n_k = q.shape[-2], k.shape[-2]
    if kernel == "dense":
        return dense_attention(q, k, v, mask, score_mod=score_mod)[0]
    if kernel == "tiled":
        return tiled_attention(q, k, v, block_q=3, block_k=4, mask_mod=mask_mod, score_mod=score_mod)[0]
    if kernel == "block_sparse":
        layout = block_layout(mask_mod, n_q, n_k, block_size=4)
        return block_sparse_attention(q, k, v, layout, 4, mask_mod=mask_mod, score_mod=score_mod)
    return flex_sparse_attention(q, k, v, mask_mod, score_mod=score_mod, block_size=4)  # float64: the fallback


KERNELS = ("dense", "tiled", "block_sparse", "flex")


def sdpa_with_alibi(q, k, v, mask):
    """SDPA with a dense additive float mask: ALiBi's bias (the loop oracle) where mask, -inf elsewhere."""
    bias = alibi_bias(q.shape[1], q.shape[-2], k.shape[-2]).to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.masked_fill(~mask, -math.inf))


def softcapped(scores):
    return CAP * torch.tanh(scores / CAP)


@FAST
@given(
    kernel=st.sampled_from(KERNELS),
    pattern=st.sampled_from(["causal", "sliding window 3", "prefix-LM 4", "packed documents"]),
    n=st.integers(1, 20),
    batch=st.integers(1, 2),
    heads=st.integers(1, 4),
    dim_v=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_alibi_matches_sdpa_with_a_dense_bias(kernel, pattern, n, batch, heads, dim_v, seed):
    mask_mod, allowed = masks(n)[pattern]
    mask = grid_mask(allowed, n)
    q, k, v = random_qkv(batch, heads, n, 4, dim_v=dim_v, seed=seed)
    out = run(kernel, q, k, v, mask_mod, generate_alibi(heads), mask)
    torch.testing.assert_close(out, sdpa_with_alibi(q, k, v, mask), **TIGHT)


@FAST
@given(
    kernel=st.sampled_from(KERNELS),
    pattern=st.sampled_from(["causal", "sliding window 3", "prefix-LM 4", "packed documents"]),
    n=st.integers(1, 16),
    heads=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_softcap_matches_a_brute_force_dense_computation_and_a_loop(kernel, pattern, n, heads, seed):
    mask_mod, allowed = masks(n)[pattern]
    mask = grid_mask(allowed, n)
    q, k, v = random_qkv(2, heads, n, 4, seed=seed)
    q = q * 3  # large scores, so that the cap matters
    out = run(kernel, q, k, v, mask_mod, generate_softcap(CAP), mask)
    torch.testing.assert_close(out, modified_attention(q, k, v, mask, softcapped), **TIGHT)
    loop = loop_modified_attention(
        q, k, v, lambda b, h, i, j: allowed(i, j), lambda s, b, h, i, j: CAP * math.tanh(s / CAP)
    )
    torch.testing.assert_close(out, loop, **TIGHT)
    if mask.sum(-1).max() > 1:  # the cap changed the weights of some row
        assert not torch.allclose(out, modified_attention(q, k, v, mask, lambda s: s))


@FAST
@given(
    n=st.integers(1, 30),
    window=st.integers(1, 12),
    block_size=st.none() | st.integers(1, 10),
    heads=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_banded_attention_with_score_mods(n, window, block_size, heads, seed):
    """Gemma 2's sliding-window layers: a window with soft-capping; and a window with ALiBi."""
    q, k, v = random_qkv(2, heads, n, 4, seed=seed)
    q = q * 3
    mask = grid_mask(window_allowed(window), n)
    capped = banded_attention(q, k, v, window, block_size=block_size, score_mod=generate_softcap(CAP))
    torch.testing.assert_close(capped, modified_attention(q, k, v, mask, softcapped), **TIGHT)
    alibi = banded_attention(q, k, v, window, block_size=block_size, score_mod=generate_alibi(heads))
    torch.testing.assert_close(alibi, sdpa_with_alibi(q, k, v, mask), **TIGHT)


def test_rectangular_scores_see_their_own_positions():
    """Nq != Nk: ALiBi's bias uses the query's and the key's own positions in every kernel."""
    q, k, v = random_qkv(1, 2, 7, 4, n_k=11)
    mask = grid_mask(causal_allowed, 7, 11)
    expected = sdpa_with_alibi(q, k, v, mask)
    for kernel in KERNELS:
        torch.testing.assert_close(run(kernel, q, k, v, causal_mask, generate_alibi(2), mask), expected, **TIGHT)


def alibi_then_softcap(heads):
    alibi, softcap = generate_alibi(heads), generate_softcap(CAP)

    def both(score, b, h, q_idx, kv_idx):
        return softcap(alibi(score, b, h, q_idx, kv_idx), b, h, q_idx, kv_idx)

    return both


def both_oracle(q, k, v, mask):
    bias = alibi_bias(q.shape[1], q.shape[-2], k.shape[-2]).to(q.dtype)
    return modified_attention(q, k, v, mask, lambda s: softcapped(s + bias))


@pytest.mark.parametrize("kernel", (*KERNELS, "banded"))
@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, TIGHT), (torch.float32, FLOAT32)])
def test_gradients_match_the_oracles(kernel, dtype, tolerance):
    n, heads, seed = 13, 3, 5
    q, k, v = random_qkv(2, heads, n, 4, dtype=dtype, seed=seed, requires_grad=True)
    mask_mod = generate_sliding_window(4)
    mask = grid_mask(window_allowed(4), n)
    score_mod = alibi_then_softcap(heads)

    def ours(q, k, v):
        if kernel == "banded":
            return banded_attention(q, k, v, 4, block_size=3, score_mod=score_mod)
        return run(kernel, q, k, v, mask_mod, score_mod, mask)

    got = output_gradients(ours, q, k, v, seed)
    expected = output_gradients(lambda *a: both_oracle(*a, mask), q, k, v, seed)
    for a, b in zip(got, expected, strict=True):
        assert a.dtype == dtype
        torch.testing.assert_close(a, b, **tolerance)
    torch.testing.assert_close(ours(q, k, v), both_oracle(q, k, v, mask), **tolerance)


@pytest.mark.parametrize("score_mod", [generate_alibi(2), generate_softcap(CAP)], ids=lambda s: s.__name__)
def test_tiled_custom_backward_passes_gradcheck(score_mod):
    """tiled_attention's hand-written backward runs the score_mod's own backward on each tile."""
    q, k, v = random_qkv(1, 2, 7, 3, n_k=6, dim_v=2, requires_grad=True)
    q.data.mul_(3)

    def fn(q, k, v):
        return tiled_attention(q, k, v, block_q=3, block_k=2, causal=True, score_mod=score_mod)

    assert torch.autograd.gradcheck(fn, (q, k, v))
    assert torch.autograd.gradcheck(lambda *a: fn(*a)[1], (q, k, v))  # the log-sum-exp too


def test_a_learned_bias_captured_by_a_score_mod_gets_gradients_in_the_autograd_kernels():
    """A per-head bias on key 0 (an attention sink), learned through the score_mod's captured tensor."""
    bias = torch.zeros(3, dtype=torch.float64, requires_grad=True)

    def sink_bias(score, b, h, q_idx, kv_idx):
        return score + bias[h] * (kv_idx == 0)

    q, k, v = random_qkv(1, 3, 8, 4)
    mask = grid_mask(causal_allowed, 8)
    first_key = (torch.arange(8) == 0).double()
    reference = modified_attention(q, k, v, mask, lambda s: s + bias[None, :, None, None] * first_key)
    (expected,) = torch.autograd.grad(reference.sum(), bias)
    assert expected.abs().min() > 0
    for kernel in ("dense", "block_sparse", "flex"):  # autograd through the kernel (flex: its fallback)
        (grad,) = torch.autograd.grad(run(kernel, q, k, v, causal_mask, sink_bias, mask).sum(), bias)
        torch.testing.assert_close(grad, expected, **TIGHT)


@needs_compile
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("score_mod", [generate_alibi(2), generate_softcap(CAP)], ids=lambda s: s.__name__)
def test_compiled_flex_attention_takes_the_score_mod(score_mod):
    """float32 without grad: the compiled FlexAttention kernel (one shape family, as in test_flex.py)."""
    q, k, v = random_qkv(2, 2, 40, 16, dtype=torch.float32)
    q = q * 3
    assert flex_fallback_reason(q, k, v, causal_mask, score_mod) is None
    with torch.no_grad():
        out = flex_sparse_attention(q, k, v, causal_mask, score_mod=score_mod, block_size=16)
    mask = grid_mask(causal_allowed, 40)
    expected = dense_attention(q.double(), k.double(), v.double(), mask, score_mod=score_mod)[0]
    torch.testing.assert_close(out.double(), expected, **FLOAT32)


@pytest.mark.parametrize("kernel", (*KERNELS, "banded"))
def test_score_mod_outputs_stay_intact_for_their_backward(kernel):
    """A score_mod whose last op keeps its output for the backward (exp here) still differentiates:
    the kernels' in-place steps never write into a score_mod's output."""

    def exp_scores(score, b, h, q_idx, kv_idx):
        return torch.exp(score / 4)

    def ours(q, k, v):
        if kernel == "banded":
            return banded_attention(q, k, v, 9, score_mod=exp_scores)
        return run(kernel, q, k, v, causal_mask, exp_scores, mask)

    q, k, v = random_qkv(1, 2, 9, 4, requires_grad=True)
    mask = grid_mask(causal_allowed, 9)
    expected = output_gradients(lambda *a: modified_attention(*a, mask, lambda s: torch.exp(s / 4)), q, k, v, 0)
    for got, want in zip(output_gradients(ours, q, k, v, 0), expected, strict=True):
        torch.testing.assert_close(got, want, **TIGHT)


def wrong_on_grids(score, b, h, q_idx, kv_idx):
    """Right on scalars, wrong on grids: the bias is summed over the whole grid."""
    return score + (kv_idx - q_idx).sum()


def wrong_dtype(score, b, h, q_idx, kv_idx):
    return score.double() + 1


@pytest.mark.parametrize("kernel", (*KERNELS, "banded"))
def test_bad_score_mods_raise_a_clear_error(kernel):
    q, k, v = random_qkv(1, 2, 8, 4, dtype=torch.float32)
    mask = grid_mask(causal_allowed, 8)

    def call(score_mod):
        if kernel == "banded":
            return banded_attention(q, k, v, 3, score_mod=score_mod)
        return run(kernel, q, k, v, causal_mask, score_mod, mask)

    with pytest.raises(ValueError, match="score_mod wrong_on_grids must give on a broadcast index grid what it gives"):
        call(wrong_on_grids)
    with pytest.raises(ValueError, match="score_mod wrong_dtype must return scores in their own dtype torch.float32"):
        call(wrong_dtype)
    with pytest.raises(TypeError, match="score_mod must be callable, got str"):
        call("alibi")
    if kernel in ("dense", "tiled", "banded"):  # these take (..., N, D) inputs without a score_mod
        with pytest.raises(ValueError, match=r"score_mod needs \(B, H, N, D\) inputs"):
            (dense_attention if kernel == "dense" else tiled_attention)(q[0], k[0], v[0], score_mod=generate_alibi(2))
