"""lcteach.kernels.flex: compiled FlexAttention where torch can run it, the block-sparse fallback elsewhere.

Compiling costs seconds per mask_mod code, head count, head dimension and block size, so
the compiled tests share one mask_mod code (its captured values may change freely) and
one shape family: B = 2, H = 2, D = 16, blocks of 16.
"""

import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import random_qkv
from torch._dynamo.exc import BackendCompilerFailed
from torch.nn.attention.flex_attention import create_block_mask

import lcteach.kernels.flex
from lcteach.kernels import block_layout, flex_block_mask, flex_fallback_reason, flex_sparse_attention
from lcteach.masks import generate_sliding_window, materialize_mask

TIGHT = {"rtol": 1e-10, "atol": 1e-10}
FLOAT32 = {"rtol": 1e-5, "atol": 1e-5}
COMPILES = flex_fallback_reason(*random_qkv(1, 1, 4, 4, dtype=torch.float32)) is None
needs_compile = pytest.mark.skipif(not COMPILES, reason="torch cannot compile FlexAttention here (no C++ compiler?)")


def make_pattern(window, blind):
    """Head- and batch-dependent causal window; query ``blind`` may attend to no key."""

    def pattern(b, h, q_idx, kv_idx):
        return (q_idx >= kv_idx) & (q_idx - kv_idx < window + h + b) & (q_idx != blind)

    return pattern


def assert_matches_sdpa(out, q, k, v, mask_mod, tolerance, scale=None):
    """Equal to SDPA with create_mask's dense mask on rows with a key; zero on rows without."""
    batch, heads, n_q, _ = q.shape
    mask = materialize_mask(mask_mod, n_q, k.shape[-2], batch=batch, heads=heads)
    rows = mask.any(-1)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    torch.testing.assert_close(out[rows], expected[rows], **tolerance)
    assert (out[~rows] == 0).all()


@needs_compile
@settings(max_examples=12, deadline=None)
@given(n=st.integers(1, 70), window=st.integers(1, 40), blind=st.integers(-1, 69), seed=st.integers(0, 2**16))
def test_compiled_path_matches_masked_sdpa(n, window, blind, seed):
    q, k, v = random_qkv(2, 2, n, 16, dtype=torch.float32, seed=seed)
    assert flex_fallback_reason(q, k, v) is None
    pattern = make_pattern(window, blind)
    assert_matches_sdpa(flex_sparse_attention(q, k, v, pattern, block_size=16), q, k, v, pattern, FLOAT32)


@settings(max_examples=40, deadline=None)
@given(
    n_q=st.integers(1, 30),
    n_k=st.integers(1, 30),
    block_size=st.integers(1, 8),
    window=st.integers(1, 12),
    blind=st.integers(-1, 29),
    scale=st.none() | st.floats(0.1, 2.0),
    seed=st.integers(0, 2**16),
)
def test_float64_falls_back_and_matches_masked_sdpa(n_q, n_k, block_size, window, blind, scale, seed):
    q, k, v = random_qkv(2, 2, n_q, 4, n_k=n_k, dim_v=3, seed=seed)
    assert "float64" in flex_fallback_reason(q, k, v)
    pattern = make_pattern(window, blind)
    out = flex_sparse_attention(q, k, v, pattern, block_size=block_size, scale=scale)
    assert_matches_sdpa(out, q, k, v, pattern, TIGHT, scale=scale)


def test_training_on_cpu_falls_back_with_sdpa_gradients():
    q, k, v = random_qkv(1, 2, 40, 8, dtype=torch.float32, requires_grad=True)
    assert flex_fallback_reason(q, k, v) == "FlexAttention has no backward pass on CPU"
    window = generate_sliding_window(6)
    ours = torch.autograd.grad(flex_sparse_attention(q, k, v, window, block_size=16).square().sum(), (q, k, v))
    mask = materialize_mask(window, 40)
    expected = torch.autograd.grad(F.scaled_dot_product_attention(q, k, v, attn_mask=mask).square().sum(), (q, k, v))
    for got, want in zip(ours, expected):
        torch.testing.assert_close(got, want, **FLOAT32)
    with torch.no_grad():
        assert flex_fallback_reason(q, k, v) == (None if COMPILES else flex_fallback_reason(q.detach(), k, v))


@needs_compile
@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_inputs_that_require_grad_run_compiled_when_grad_is_off(mode):
    """No backward can be asked under no_grad / inference_mode, so the compiled path that
    flex_fallback_reason promises is the path taken (it raised NotImplementedError before)."""
    q, k, v = random_qkv(1, 1, 128, 16, dtype=torch.float32, requires_grad=True)
    window = generate_sliding_window(9)
    with mode():
        assert flex_fallback_reason(q, k, v, window) is None
        out = flex_sparse_attention(q, k, v, window)
    assert not out.requires_grad
    assert_matches_sdpa(out, q.detach(), k.detach(), v.detach(), window, FLOAT32)


@pytest.fixture
def no_compiler():
    """torch's C++ compiler search finds nothing while the test runs."""
    import torch._inductor.config

    lcteach.kernels.flex._compiler_missing.cache_clear()
    with torch._inductor.config.patch({"cpp.cxx": ("lcteach-test-no-such-compiler",)}):
        yield
    lcteach.kernels.flex._compiler_missing.cache_clear()


def test_without_a_compiler_falls_back_silently(no_compiler, capfd):
    q, k, v = random_qkv(1, 2, 50, 16, dtype=torch.float32)
    assert "no C++ compiler" in flex_fallback_reason(q, k, v)
    pattern = make_pattern(7, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = flex_sparse_attention(q, k, v, pattern, block_size=16)
    assert_matches_sdpa(out, q, k, v, pattern, FLOAT32)
    assert not [w for w in caught if issubclass(w.category, UserWarning)]
    assert capfd.readouterr().err == ""


@needs_compile
def test_compiled_path_is_silent(capfd):
    q, k, v = random_qkv(2, 2, 33, 16, dtype=torch.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        flex_sparse_attention(q, k, v, make_pattern(5, -1), block_size=16)
    assert not [w for w in caught if issubclass(w.category, UserWarning)]
    assert capfd.readouterr().err == ""


def test_block_mask_is_cached_per_arguments():
    window = generate_sliding_window(4)
    mask = flex_block_mask(window, 1, 2, 50, 60, block_size=16)
    assert flex_block_mask(window, 1, 2, 50, 60, block_size=16, device=torch.device("cpu")) is mask
    assert flex_block_mask(window, 1, 2, 50, 60, block_size=8) is not mask
    assert flex_block_mask(generate_sliding_window(4), 1, 2, 50, 60, block_size=16) is not mask  # a new mask_mod
    assert mask.shape == (1, 2, 50, 60) and mask.BLOCK_SIZE == (16, 16)


def test_block_mask_blocks_are_block_layouts_blocks():
    pattern = make_pattern(5, 20)
    mask = flex_block_mask(pattern, 2, 3, 45, 37, block_size=8)
    expected = block_layout(pattern, 45, 37, block_size=8, batch=2, heads=3)
    assert torch.equal(mask.to_dense().bool(), expected)


@needs_compile
def test_large_masks_are_built_compiled_without_changing_them(monkeypatch):
    monkeypatch.setattr(lcteach.kernels.flex, "_EAGER_MASK_PAIRS", 0)  # compile even this small mask
    lcteach.kernels.flex._block_mask.cache_clear()
    pattern = make_pattern(9, 30)
    compiled = flex_block_mask(pattern, 2, 2, 100, 100, block_size=16)
    eager = create_block_mask(pattern, 2, 2, 100, 100, device="cpu", BLOCK_SIZE=16)
    lcteach.kernels.flex._block_mask.cache_clear()
    assert torch.equal(compiled.to_dense(), eager.to_dense())
    assert torch.equal(compiled.full_kv_num_blocks, eager.full_kv_num_blocks)


def test_bad_inputs_raise():
    q, k, v = random_qkv(1, 1, 8, 4, dtype=torch.float32)
    window = generate_sliding_window(2)
    with pytest.raises(ValueError, match=r"flex_sparse_attention needs \(B, H, N, D\) inputs"):
        flex_sparse_attention(q[0], k[0], v[0], window)
    with pytest.raises(TypeError, match="mask_mod must be callable"):
        flex_sparse_attention(q, k, v, None)
    with pytest.raises(ValueError, match="block_size"):
        flex_sparse_attention(q, k, v, window, block_size=0)
    with pytest.raises(ValueError, match="heads"):
        flex_block_mask(window, 1, 0, 8, 8)


def failing_compiler(monkeypatch, *, static_builds: bool) -> list[bool]:
    """Make torch.compile's kernels fail to build for dynamic shapes (and for static shapes
    unless ``static_builds``), as inductor's C++ did for BigBird with torch 2.13; static
    builds run the uncompiled flex_attention. Returns the ``dynamic`` flag of each call."""
    calls = []

    def compiled(fn, dynamic=True):
        def run(*args, **kwargs):
            calls.append(dynamic)
            if dynamic or not static_builds:
                raise BackendCompilerFailed(fn, RuntimeError("C++ compile error"), None)
            return fn(*args, **kwargs)

        return run

    monkeypatch.setattr(lcteach.kernels.flex, "_compiled", compiled)
    monkeypatch.setattr(lcteach.kernels.flex, "_compiler_missing", lambda device_type: None)
    return calls


# the fake static build runs flex_attention uncompiled, and torch warns about that
@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile:UserWarning")
def test_a_kernel_that_fails_to_build_for_dynamic_shapes_is_built_for_static_shapes(monkeypatch):
    calls = failing_compiler(monkeypatch, static_builds=True)
    q, k, v = random_qkv(2, 2, 40, 16, dtype=torch.float32)
    pattern = make_pattern(6, 3)
    with torch.no_grad():
        assert_matches_sdpa(flex_sparse_attention(q, k, v, pattern, block_size=16), q, k, v, pattern, FLOAT32)
        flex_sparse_attention(q, k, v, pattern, block_size=16)
    assert calls == [True, False, False]  # the dynamic build is not tried again for this mask_mod
    assert flex_fallback_reason(q, k, v, pattern) is None


def test_a_kernel_that_fails_to_build_falls_back_silently_and_says_why(monkeypatch, capfd):
    calls = failing_compiler(monkeypatch, static_builds=False)
    q, k, v = random_qkv(2, 2, 40, 16, dtype=torch.float32)
    pattern = make_pattern(6, 3)
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        assert_matches_sdpa(flex_sparse_attention(q, k, v, pattern, block_size=16), q, k, v, pattern, FLOAT32)
        assert_matches_sdpa(flex_sparse_attention(q, k, v, pattern, block_size=16), q, k, v, pattern, FLOAT32)
    assert calls == [True, False]  # no second attempt at a mask_mod that cannot be built
    assert "could not build FlexAttention for this mask_mod" in flex_fallback_reason(q, k, v, pattern)
    assert flex_fallback_reason(q, k, v, make_pattern(6, 3)) is None  # another mask_mod is tried afresh
    assert not caught and capfd.readouterr().err == ""
