"""Comparisons a check makes on what a student's function returned.

Each ``expect_*`` returns quietly or raises ``CheckFailed`` saying what was expected, what was
seen and, where the result matches a known mistake passed in ``mistakes``, which one.
Tolerances fit the dtype: a correct but differently ordered computation always meets them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from lcteach.grading.results import CheckFailed

if TYPE_CHECKING:
    from lcteach.grading.session import Case


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """(rtol, atol) that a correct but differently ordered computation meets in ``dtype``."""
    return {
        torch.float64: (1e-9, 1e-11),
        torch.float32: (1e-4, 1e-5),
        torch.bfloat16: (2e-2, 2e-2),
        torch.float16: (5e-3, 5e-3),
    }.get(dtype, (1e-4, 1e-5))


def expect_tensor(
    value, what: str, shape: Sequence[int] | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Check that ``value`` is a plain tensor of the given shape and dtype; return it detached."""
    if type(value) is not torch.Tensor and not isinstance(value, torch.nn.Parameter):
        raise CheckFailed(f"{what} should be a torch.Tensor, got {type(value).__name__}")
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise CheckFailed(
            f"{what} should have shape {tuple(shape)}, got {tuple(value.shape)}",
            "check which dimensions your matmuls and reductions keep",
        )
    if dtype is not None and value.dtype != dtype:
        raise CheckFailed(
            f"{what} should have dtype {dtype} (the inputs' dtype), got {value.dtype}",
            "create new tensors with dtype=q.dtype and device=q.device",
        )
    return value.detach()


def expect_close(
    seen: torch.Tensor,
    expected: torch.Tensor,
    what: str,
    hint: str = "",
    mistakes: dict[str, torch.Tensor] | None = None,
) -> None:
    """Compare with dtype-fitting tolerances; name a known mistake the result matches, if any."""
    rtol, atol = tolerance(expected.dtype)
    if torch.isnan(seen).any() and not torch.isnan(expected).any():
        raise CheckFailed(f"{what} contains NaN where finite values were expected", hint)
    if torch.allclose(seen, expected, rtol=rtol, atol=atol, equal_nan=True):
        return
    error = (seen.double() - expected.double()).abs().nan_to_num(nan=math.inf).max().item()
    for mistake, wrong in (mistakes or {}).items():
        if wrong.shape == seen.shape and torch.allclose(seen, wrong, rtol=rtol, atol=atol, equal_nan=True):
            hint = f"your result matches {mistake}"
            break
    raise CheckFailed(
        f"{what} differs from the expected values: max abs error {error:.3g} "
        f"(tolerance {atol:g} + {rtol:g} x |expected|)",
        hint,
    )


def expect_pair(result, function: str, names: str):
    """Check that a student's function returned two values, e.g. names = "(out, weights)"."""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise CheckFailed(
            f"{function} should return a pair {names}, got {type(result).__name__}",
            f"end your function with `return {names.strip('()')}`",
        )
    return result


def expect_value_error(case: Case, fn: Callable, *args, call: str, hint: str) -> None:
    """Check that student code ``fn(*args)`` raises ValueError; ``call`` names the call in messages."""
    try:
        case.call(fn, *args)
    except CheckFailed as failure:
        if failure.raised_a(ValueError):
            return
        raise CheckFailed(f"{call} should raise ValueError, but {failure.message}", hint) from None
    raise CheckFailed(f"{call} returned instead of raising ValueError", hint)
