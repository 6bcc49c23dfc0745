"""FlexAttention for inference: a mask_mod, its cached BlockMask and the compiled kernel.

``torch.nn.attention.flex_attention`` turns a mask_mod into a fused block-sparse kernel
when it runs under ``torch.compile``: ``create_block_mask`` records which (128 x 128 by
default) blocks hold an allowed pair, and the kernel skips the others. What torch 2.13
does on CPU (checked with torch 2.13.0):

- compiled ``flex_attention`` runs on CPU (inductor writes C++, so it needs a C++
  compiler such as g++) for float32, float16 and bfloat16; float64 is refused;
- it has no backward pass on CPU;
- the first call for a new mask_mod (its code, not its captured values: every
  generate_sliding_window(w) shares one kernel), head count, head dimension, block size
  or ``scale`` value compiles for several seconds; later calls take milliseconds. Other
  sequence lengths reuse the kernel (``dynamic=True``), except that Nq != Nk and very
  short sequences (one block, one position) compile once more each;
- the dynamic-shape C++ code inductor writes for some mask_mods does not compile (seen
  with torch 2.13.0: BigBird's lookup tables, after other mask_mods were compiled in the
  same process; g++ reports an undeclared ``cur_kvSplitSize5``); a static-shape compile of
  the same mask_mod works;
- plain ``create_block_mask`` builds the whole (Nq, Nk) bool mask first (2.5 GiB of
  temporaries measured at n = 16384, so about 40 GiB at 65536); compiled, it never does.

``flex_sparse_attention`` therefore uses the compiled kernel where it can (a mask_mod whose
dynamic-shape kernel fails to build is compiled again for static shapes) and otherwise
computes the same attention with ``lcteach.block_sparse_attention`` on the mask's block
layout (exact, differentiable, O(active blocks)), without a warning;
``flex_fallback_reason`` says which path a call takes and why.
"""

from __future__ import annotations

import functools
import weakref

import torch
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention

from lcteach.kernels.block_sparse import block_layout, block_sparse_attention
from lcteach.masks.evaluation import MaskMod
from lcteach.score_mods.evaluation import ScoreMod
from lcteach.validation import check_batch_heads, check_mask_mod, check_positive_int, check_qkv, check_score_mod

# Masks of up to this many (b, h, q, kv) pairs are built eagerly: materialising them is
# cheaper than compiling create_block_mask (about 40 MiB of temporaries at the limit).
_EAGER_MASK_PAIRS = 2**22


# Compiled variants of flex_attention (and of create_block_mask) kept per process. torch's
# default (8) is reached after a few mask_mods; past it torch logs a warning and runs the
# unfused kernel, which builds the whole (Nq, Nk) score matrix.
_RECOMPILE_LIMIT = 64


_CPU_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


# mask_mod -> {score_mod or None -> how far compiling flex_attention for the pair failed}: "dynamic"
# (its dynamic-shape kernel did not build, so it is compiled for static shapes) or the error that
# stopped both.
_COMPILE_FAILURES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _failure(mask_mod, score_mod) -> str | None:
    return _COMPILE_FAILURES.get(mask_mod, {}).get(score_mod)


def _record_failure(mask_mod, score_mod, failure: str) -> None:
    _COMPILE_FAILURES.setdefault(mask_mod, {})[score_mod] = failure


def flex_sparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask_mod: MaskMod,
    *,
    score_mod: ScoreMod | None = None,
    block_size: int = 128,
    scale: float | None = None,
) -> torch.Tensor:
    """Attention restricted by ``mask_mod``, through compiled FlexAttention where possible.

    Shapes: q (B, H, Nq, D), k (B, H, Nk, D), v (B, H, Nk, Dv). Query i may attend to key
    j when ``mask_mod(b, h, i, j)`` is True; a query with no allowed key gets a zero
    output. ``score_mod(score, b, h, i, j)`` changes each scaled score before the mask
    (FlexAttention's own argument; a new score_mod compiles a new kernel; the path is chosen
    from q, k and v, so on CPU a score_mod whose captured tensors need gradients takes inputs
    that require grad, or block_sparse_attention). The BlockMask (blocks of ``block_size``; any Nq, Nk) is built once per
    (mask_mod, B, H, Nq, Nk, block_size, device) and cached (``flex_block_mask``).
    ``scale`` defaults to 1/sqrt(D). Returns out (B, H, Nq, Dv).
    Path: compiled ``flex_attention`` when ``flex_fallback_reason(q, k, v, mask_mod, score_mod)``
    is None (for inference; on CUDA it also trains); otherwise lcteach.block_sparse_attention
    on the mask's cached block layout, which gives the same result and gradients.
    Cost: O(active blocks * block_size^2 * (D + Dv)) time on either path; memory
    O(Nq * Dv) for the fused kernel, O(active blocks * block_size * (block_size + D + Dv))
    for the fallback. Building the cached mask evaluates mask_mod on all Nq * Nk pairs once.
    """
    check_qkv(q, k, v)
    check_batch_heads(q, "flex_sparse_attention")
    check_mask_mod(mask_mod)
    if score_mod is not None:
        check_score_mod(score_mod, q, k)
    check_positive_int("block_size", block_size)
    batch, heads, n_q, _ = q.shape
    key = (mask_mod, batch, heads, n_q, k.shape[-2], block_size, q.device)
    if flex_fallback_reason(q, k, v, mask_mod, score_mod) is None:
        if not torch.is_grad_enabled():  # no_grad / inference_mode: no graph, so no backward is asked of the kernel
            q, k, v = q.detach(), k.detach(), v.detach()
        out = _run_compiled(mask_mod, score_mod, q, k, v, _block_mask(*key), scale)
        if out is not None:
            return out
    layout = _layout(*key)
    return block_sparse_attention(q, k, v, layout, block_size, mask_mod=mask_mod, score_mod=score_mod, scale=scale)


def flex_block_mask(
    mask_mod: MaskMod,
    batch: int,
    heads: int,
    q_len: int,
    kv_len: int,
    *,
    block_size: int = 128,
    device: torch.device | str = "cpu",
) -> BlockMask:
    """``create_block_mask(mask_mod, batch, heads, q_len, kv_len)``, cached per arguments.

    The same object comes back for the same arguments (mask_mod by identity), so repeated
    calls cost nothing. Large masks are built with torch.compile(create_block_mask) when
    torch can compile on ``device`` (O(blocks) memory, O(q_len * kv_len) time); small ones,
    or all where it cannot, eagerly (O(batch * heads * q_len * kv_len) memory).
    """
    check_mask_mod(mask_mod)
    for name, value in (("batch", batch), ("heads", heads), ("q_len", q_len), ("kv_len", kv_len)):
        check_positive_int(name, value)
    check_positive_int("block_size", block_size)
    return _block_mask(mask_mod, batch, heads, q_len, kv_len, block_size, torch.device(device))


def flex_fallback_reason(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask_mod: MaskMod | None = None,
    score_mod: ScoreMod | None = None,
) -> str | None:
    """Why flex_sparse_attention cannot use compiled FlexAttention on these inputs (and this
    mask_mod and score_mod, if given), or None if it can, as far as is known before compiling."""
    failure = _failure(mask_mod, score_mod) if mask_mod is not None else None
    if failure not in (None, "dynamic"):
        return failure
    device = q.device
    if device.type == "cpu" and q.dtype not in _CPU_DTYPES:
        return f"FlexAttention's CPU kernel takes float32, float16 or bfloat16, not {q.dtype}"
    if device.type == "cpu" and torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        return "FlexAttention has no backward pass on CPU"
    return _compiler_missing(device.type)


@functools.cache
def _compiler_missing(device_type: str) -> str | None:
    """Why torch.compile cannot build kernels for this device type, or None if it can."""
    if not torch._dynamo.is_dynamo_supported():
        return "torch.compile is not supported on this platform or Python version"
    if device_type == "cuda":
        from torch.utils._triton import has_triton

        return None if has_triton() else "torch.compile needs Triton for CUDA kernels"
    if device_type != "cpu":
        return f"lcteach uses compiled FlexAttention on CPU and CUDA only, not on {device_type}"
    from torch._inductor.cpp_builder import get_cpp_compiler
    from torch._inductor.exc import InvalidCxxCompiler

    try:
        get_cpp_compiler()
    except InvalidCxxCompiler:
        return "torch.compile found no C++ compiler for CPU kernels (install g++ or set CXX)"
    return None


@functools.cache
def _compiled(fn, dynamic: bool = True):
    """torch.compile(fn); with dynamic shapes one kernel serves every sequence length."""
    return torch.compile(fn, dynamic=dynamic)


def _run_compiled(mask_mod, score_mod, q, k, v, block_mask: BlockMask, scale) -> torch.Tensor | None:
    """Compiled flex_attention; None (and the reason in _COMPILE_FAILURES) when it cannot be built."""
    from torch._dynamo.exc import BackendCompilerFailed  # importing torch._dynamo takes 2.3 s: only when compiling

    dynamic = _failure(mask_mod, score_mod) != "dynamic"
    try:
        with torch._dynamo.config.patch(recompile_limit=_RECOMPILE_LIMIT):
            compiled = _compiled(flex_attention, dynamic)
            return compiled(q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale)
    except BackendCompilerFailed as error:
        if dynamic:
            _record_failure(mask_mod, score_mod, "dynamic")
            return _run_compiled(mask_mod, score_mod, q, k, v, block_mask, scale)
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        what = "mask_mod" if score_mod is None else "mask_mod and score_mod"
        _record_failure(mask_mod, score_mod, f"torch.compile could not build FlexAttention for this {what} ({reason})")
        return None


@functools.lru_cache(maxsize=32)
def _block_mask(mask_mod, batch, heads, q_len, kv_len, block_size, device) -> BlockMask:
    build = create_block_mask
    if batch * heads * q_len * kv_len > _EAGER_MASK_PAIRS and _compiler_missing(device.type) is None:
        build = _compiled(create_block_mask)
    with torch._dynamo.config.patch(recompile_limit=_RECOMPILE_LIMIT):
        return build(mask_mod, batch, heads, q_len, kv_len, device=device, BLOCK_SIZE=block_size)


@functools.lru_cache(maxsize=32)
def _layout(mask_mod, batch, heads, q_len, kv_len, block_size, device) -> torch.Tensor:
    return block_layout(mask_mod, q_len, kv_len, block_size=block_size, batch=batch, heads=heads, device=device)
