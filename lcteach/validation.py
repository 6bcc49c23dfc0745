"""Input checks shared by lcteach functions: each failure names the problem."""

from __future__ import annotations

import warnings

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


def check_symmetric_window(window, name: str = "window") -> int:
    """Return ``window`` if it is an odd integer >= 1 (the query plus the same number on each side);
    the errors name the argument ``name``."""
    check_positive_int(name, window)
    if window % 2 == 0:
        raise ValueError(
            f"{name} must be odd for a symmetric window (the query plus the same number on each side), got {window}"
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


def check_positive_number(name: str, value) -> float:
    """Return ``value`` as a float, or raise ValueError if it is not a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_mask_mod_on_grids(mask_mod, batch: int, heads: int, q_len: int, kv_len: int, device="cpu") -> None:
    """Raise ValueError unless ``mask_mod`` gives on a broadcast index grid what it gives pair by pair.

    FlexAttention calls a mask_mod on scalar indices (under vmap); lcteach's kernels call it on
    broadcast grids (tiles, gathered blocks). A mask_mod that reduces, squeezes, flattens or
    transposes its index tensors can be right on scalars and wrong on a grid: some grid shapes
    then raise deep inside a kernel and others broadcast by chance and give a wrong result.
    Checked once per call on one probe grid (``_probe_indices``: at most 2 x 3 x 4 x 5 pairs),
    whatever the kernel's block sizes. The mask_mod must also return bool (True = attend).
    """
    check_mask_mod(mask_mod)
    on_grid = _check_grid_agrees("mask_mod", mask_mod, _probe_indices(batch, heads, q_len, kv_len, device))
    if on_grid.dtype != torch.bool:
        raise ValueError(f"mask_mod {_name(mask_mod)} must return a bool tensor (True = attend), got {on_grid.dtype}")


def check_score_mod(score_mod, q: torch.Tensor, k: torch.Tensor) -> None:
    """Check ``score_mod(score, b, h, q_idx, kv_idx) -> score`` for attention of q (B, H, Nq, D) over
    k (B, H, Nk, D): q must have batch and head dims, and ``check_score_mod_on_grids`` must pass."""
    if q.dim() != 4:
        raise ValueError(f"score_mod needs (B, H, N, D) inputs, got q of shape {tuple(q.shape)}")
    check_score_mod_on_grids(score_mod, *q.shape[:2], q.shape[-2], k.shape[-2], dtype=q.dtype, device=q.device)


def check_score_mod_on_grids(
    score_mod, batch: int, heads: int, q_len: int, kv_len: int, *, dtype: torch.dtype, device="cpu"
) -> None:
    """Raise unless ``score_mod`` is callable, gives on a broadcast grid what it gives pair by pair (as
    ``check_mask_mod_on_grids`` checks for masks, on the same probe grid with scores spread over
    [-4, 4]) and returns scores in their own ``dtype``."""
    if not callable(score_mod):
        raise TypeError(f"score_mod must be callable, got {type(score_mod).__name__}")
    indices = _probe_indices(batch, heads, q_len, kv_len, device)
    shape = torch.broadcast_shapes(*(index.shape for index in indices))
    score = torch.linspace(-4, 4, shape.numel(), dtype=dtype, device=device).reshape(shape)
    on_grid = _check_grid_agrees("score_mod", score_mod, (score, *indices))
    if on_grid.dtype != dtype:
        raise ValueError(
            f"score_mod {_name(score_mod)} must return scores in their own dtype {dtype}, got {on_grid.dtype}"
        )


def _probe_indices(batch: int, heads: int, q_len: int, kv_len: int, device) -> tuple[torch.Tensor, ...]:
    """b (B', 1, 1, 1), h (1, H', 1, 1), q_idx (1, 1, Q', 1), kv_idx (1, 1, 1, K'): B' = min(batch, 2) and
    H' = min(heads, 3) indices, Q' = min(q_len, 4) and K' = min(kv_len, 5) positions from the first to the
    last. The axes differ in size where the lengths allow, so that an index tensor that lost or swapped
    an axis cannot broadcast back by chance."""

    def spread(length: int, count: int) -> torch.Tensor:
        return torch.linspace(0, length - 1, min(length, count), device=device).round().long()

    b, h = torch.arange(min(batch, 2), device=device), torch.arange(min(heads, 3), device=device)
    return b[:, None, None, None], h[None, :, None, None], spread(q_len, 4)[:, None], spread(kv_len, 5)[None, :]


def _check_grid_agrees(what: str, fn, args: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """fn(*args) on the broadcast grid, after checking it against fn on each grid point under vmap."""
    shape = torch.broadcast_shapes(*(arg.shape for arg in args))
    rule = (
        f"{what} {_name(fn)} must give on a broadcast index grid what it gives pair by pair (FlexAttention "
        "calls it on scalar indices, lcteach's kernels on broadcast grids): build it from elementwise tensor "
        "ops only, with no reduction, squeeze, flatten or transpose of its arguments"
    )
    try:
        on_grid = torch.as_tensor(fn(*args), device=args[0].device).broadcast_to(shape)
    except (RuntimeError, IndexError) as error:
        raise ValueError(f"{rule}; on a grid of shape {tuple(shape)} it raised: {error}") from None
    points = [arg.broadcast_to(shape).reshape(-1) for arg in args]
    try:
        with warnings.catch_warnings():  # e.g. "no batching rule for aten::isin": slow under vmap, still right
            warnings.simplefilter("ignore")
            pairwise = torch.vmap(lambda *point: torch.as_tensor(fn(*point), device=args[0].device))(*points)
        pairwise = pairwise.reshape(shape)
    except (RuntimeError, IndexError, ValueError) as error:
        raise ValueError(f"{rule}; on scalar indices (under vmap) it raised: {error}") from None
    if on_grid.dtype.is_floating_point and pairwise.dtype == on_grid.dtype:
        tolerance = 64 * torch.finfo(on_grid.dtype).eps
        agrees = torch.isclose(on_grid, pairwise, rtol=tolerance, atol=tolerance, equal_nan=True)
    else:
        agrees = on_grid == pairwise
    if not bool(agrees.all()):
        where = tuple(agrees.logical_not().nonzero()[0].tolist())
        b, h, q_idx, kv_idx = (int(arg.broadcast_to(shape)[where]) for arg in args[-4:])
        raise ValueError(
            f"{rule}; at b={b}, h={h}, q_idx={q_idx}, kv_idx={kv_idx} the grid gives {on_grid[where].item()} "
            f"and the pair {pairwise[where].item()}"
        )
    return on_grid


def _name(fn) -> str:
    return getattr(fn, "__name__", type(fn).__name__)
