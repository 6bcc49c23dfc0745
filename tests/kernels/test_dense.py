"""lcteach.kernels.dense.dense_attention against SDPA, a per-query loop and its own promises."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import loop_attention, random_qkv

from lcteach.kernels import dense_attention

FAST = settings(max_examples=25, deadline=None)


def sdpa(q, k, v, mask=None, **kwargs):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **kwargs)


@FAST
@given(
    lead=st.sampled_from([(), (3,), (2, 3)]),
    n_q=st.integers(1, 12),
    n_k=st.integers(1, 12),
    dim=st.integers(1, 8),
    dim_v=st.integers(1, 8),
    causal=st.booleans(),
)
def test_matches_sdpa_for_any_shape(lead, n_q, n_k, dim, dim_v, causal):
    q, k, v = random_qkv(*lead, n_q, dim, n_k=n_k, dim_v=dim_v)
    out, weights = dense_attention(q, k, v, causal=causal)
    assert out.shape == (*lead, n_q, dim_v) and weights.shape == (*lead, n_q, n_k)
    torch.testing.assert_close(out, sdpa(q, k, v, is_causal=causal), rtol=1e-10, atol=1e-10)


@FAST
@given(n_q=st.integers(1, 10), n_k=st.integers(1, 10), seed=st.integers(0, 2**16))
def test_bool_mask_matches_sdpa_and_loop(n_q, n_k, seed):
    q, k, v = random_qkv(2, 2, n_q, 4, n_k=n_k, dim_v=3, seed=seed)
    mask = torch.rand(2, 1, n_q, n_k, generator=torch.Generator().manual_seed(seed)) < 0.6
    mask[..., 0] = True  # SDPA has no convention for rows without keys; tested separately
    out, weights = dense_attention(q, k, v, mask)
    torch.testing.assert_close(out, sdpa(q, k, v, mask), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out, loop_attention(q, k, v, mask)[0], rtol=1e-10, atol=1e-10)
    assert not weights.masked_select(~mask.expand_as(weights)).any()


def test_custom_scale_matches_sdpa():
    q, k, v = random_qkv(1, 2, 7, 5, n_k=9)
    out, _ = dense_attention(q, k, v, scale=0.3)
    torch.testing.assert_close(out, sdpa(q, k, v, scale=0.3), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out, loop_attention(q, k, v, scale=0.3)[0], rtol=1e-10, atol=1e-10)


def test_float32_matches_sdpa_and_keeps_dtype():
    q, k, v = random_qkv(2, 4, 33, 16, dtype=torch.float32)
    out, weights = dense_attention(q, k, v, causal=True)
    assert out.dtype == weights.dtype == torch.float32
    torch.testing.assert_close(out, sdpa(q, k, v, is_causal=True), rtol=1e-5, atol=1e-5)


def test_weights_are_a_distribution_and_give_the_output():
    q, k, v = random_qkv(2, 3, 11, 4, n_k=6)
    out, weights = dense_attention(q, k, v, causal=True)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 11, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(weights @ v, out, rtol=0, atol=0)
    assert not weights.triu(1).any()  # causal: nothing above the diagonal


def test_causal_aligns_query_and_key_positions_at_zero():
    q, k, v = random_qkv(1, 1, 3, 2, n_k=5)
    _, weights = dense_attention(q, k, v, causal=True)
    assert (weights[0, 0] > 0).tolist() == [[j <= i for j in range(5)] for i in range(3)]


def test_fully_masked_row_gives_zeros_not_nan():
    q, k, v = random_qkv(1, 1, 4, 3)
    mask = torch.ones(4, 4, dtype=torch.bool)
    mask[2] = False
    out, weights = dense_attention(q, k, v, mask)
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()
    assert (out[..., 2, :] == 0).all() and (weights[..., 2, :] == 0).all()
    keep = [0, 1, 3]
    torch.testing.assert_close(out[..., keep, :], sdpa(q, k, v)[..., keep, :], rtol=1e-12, atol=1e-12)


def test_huge_logits_stay_finite():
    q, k, v = random_qkv(1, 2, 8, 4, dtype=torch.float32)
    q = q * 2e3  # scores around 1e4: exp overflows without subtracting the row max
    out, weights = dense_attention(q, k, v)
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()
    expected, _ = loop_attention(q, k, v)
    torch.testing.assert_close(out, expected.float(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["plain", "causal", "mask"])
def test_gradients_match_sdpa(kind):
    q, k, v = random_qkv(2, 2, 6, 3, n_k=7, dim_v=5, requires_grad=True)
    mask = torch.rand(6, 7, generator=torch.Generator().manual_seed(1)) < 0.5
    mask[:, 0] = True
    kwargs = {"causal": {"causal": True}, "mask": {"mask": mask}}.get(kind, {})
    sdpa_kwargs = {"causal": {"is_causal": True}, "mask": {"mask": mask}}.get(kind, {})
    grad_out = torch.randn(2, 2, 6, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ours = torch.autograd.grad(dense_attention(q, k, v, **kwargs)[0], (q, k, v), grad_out)
    theirs = torch.autograd.grad(sdpa(q, k, v, **sdpa_kwargs), (q, k, v), grad_out)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def _bad_inputs():
    q, k, v = random_qkv(1, 2, 4, 3, n_k=5)
    return {
        "head dim": ((q, k[..., :2], v), {}, ValueError, "head dimension"),
        "kv length": ((q, k, v[..., :4, :]), {}, ValueError, "same sequence length"),
        "batch": ((q, k[:, :1], v[:, :1]), {}, ValueError, "leading"),
        "dtype": ((q, k.float(), v), {}, ValueError, "dtype"),
        "int inputs": ((q.long(), k.long(), v.long()), {}, ValueError, "floating-point"),
        "not a tensor": ((q.tolist(), k, v), {}, TypeError, "q must be a torch.Tensor"),
        "no seq dim": ((q[0, 0, 0], k, v), {}, ValueError, "q must have shape"),
        "float mask": ((q, k, v), {"mask": torch.ones(4, 5)}, TypeError, "bool"),
        "mask size": ((q, k, v), {"mask": torch.ones(4, 4, dtype=torch.bool)}, ValueError, "broadcast"),
    }


@pytest.mark.parametrize("case", list(_bad_inputs()))
def test_bad_inputs_raise_a_clear_error(case):
    args, kwargs, error, message = _bad_inputs()[case]
    with pytest.raises(error, match=message):
        dense_attention(*args, **kwargs)
