"""Input checks shared by lcteach functions: each failure names the problem."""

from __future__ import annotations

import torch


def check_positive_int(name: str, value) -> int:
    """Return ``value`` as an int, or raise ValueError if it is not an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def check_mask_mod(mask_mod) -> None:
    """Raise TypeError unless ``mask_mod`` is callable (a FlexAttention mask_mod)."""
    if not callable(mask_mod):
        raise TypeError(f"mask_mod must be callable, got {type(mask_mod).__name__}")


def check_batch_heads(q: torch.Tensor, what: str) -> None:
    """Raise ValueError unless q has the (B, H, N, D) layout that ``what`` needs."""
    if q.dim() != 4:
        raise ValueError(f"{what} needs (B, H, N, D) inputs, got q of shape {tuple(q.shape)}")


def check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    """Check that q (..., Nq, D), k (..., Nk, D), v (..., Nk, Dv) fit together."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() < 2:
            raise ValueError(f"{name} must have shape (..., seq, dim), got {tuple(t.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must share the head dimension: q has {q.shape[-1]}, k has {k.shape[-1]}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same sequence length: k has {k.shape[-2]}, v has {v.shape[-2]}"
        )
    if k.shape[:-2] != v.shape[:-2] or q.shape[:-2] != k.shape[:-2]:
        raise ValueError(
            "q, k and v must share their leading (batch, heads) dimensions: got "
            f"{tuple(q.shape[:-2])}, {tuple(k.shape[:-2])}, {tuple(v.shape[:-2])}"
        )
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k and v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not q.is_floating_point():
        raise ValueError(f"attention needs floating-point inputs, got {q.dtype}")


def check_mask(mask: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> None:
    """Check that a boolean mask broadcasts to (..., Nq, Nk)."""
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        kind = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise TypeError(f"mask must be a bool tensor (True = attend), got {kind}")
    target = (*q.shape[:-1], k.shape[-2])
    try:
        torch.broadcast_shapes(mask.shape, target)
    except RuntimeError:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to the scores' shape {target}"
        ) from None
