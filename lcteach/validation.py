"""Input checks shared by lcteach functions: each failure names the problem."""

from __future__ import annotations

import torch


def check_positive_int(name: str, value) -> int:
    """Return ``value`` as an int, or raise ValueError if it is not an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def check_nonnegative_int(name: str, value) -> int:
    """Return ``value`` as an int, or raise ValueError if it is not an integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return value


def check_symmetric_window(window) -> int:
    """Return ``window`` if it is an odd integer >= 1 (the query plus the same number of keys on each side)."""
    check_positive_int("window", window)
    if window % 2 == 0:
        raise ValueError(
            f"a symmetric window must be odd (the query plus the same number of keys on each side), got {window}"
        )
    return window


def check_fraction(name: str, value) -> float:
    """Return ``value`` as a float, or raise ValueError if it is not a number in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")
    return float(value)


def check_blocks(seq_len: int, block_size: int) -> int:
    """Return how many blocks of ``block_size`` tile ``seq_len`` exactly, or raise ValueError."""
    check_positive_int("seq_len", seq_len)
    check_positive_int("block_size", block_size)
    if block_size > seq_len:
        raise ValueError(f"block_size must be at most seq_len, got block_size {block_size} > seq_len {seq_len}")
    if seq_len % block_size:
        raise ValueError(
            f"block_size must divide seq_len, got seq_len {seq_len} = {seq_len // block_size} * "
            f"{block_size} + {seq_len % block_size}"
        )
    return seq_len // block_size


def check_bool_matrix(name: str, value) -> torch.Tensor:
    """Return ``value`` if it is a non-empty 2-D bool tensor, or raise TypeError / ValueError."""
    if not isinstance(value, torch.Tensor) or value.dtype != torch.bool:
        kind = f"a {value.dtype} tensor" if isinstance(value, torch.Tensor) else type(value).__name__
        raise TypeError(f"{name} must be a 2-D bool tensor, got {kind}")
    if value.dim() != 2 or value.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 2-D bool tensor, got shape {tuple(value.shape)}")
    return value


def check_float_dtype(dtype) -> torch.dtype:
    """Return ``dtype`` if it is a floating-point torch.dtype, or raise TypeError."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    return dtype


def check_mask_mod(mask_mod, q: torch.Tensor | None = None) -> None:
    """Check that ``mask_mod`` is callable and, given q, that q is (B, H, N, D) so b and h exist."""
    if not callable(mask_mod):
        raise TypeError(f"mask_mod must be callable, got {type(mask_mod).__name__}")
    if q is not None and q.dim() != 4:
        raise ValueError(f"mask_mod needs (B, H, N, D) inputs, got q of shape {tuple(q.shape)}")


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
        raise ValueError(f"q and k must share the head dimension: q has {q.shape[-1]}, k has {k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same sequence length: k has {k.shape[-2]}, v has {v.shape[-2]}")
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
