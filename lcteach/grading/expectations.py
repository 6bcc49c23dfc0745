"""Comparisons a check makes on what a student's function returned.

Each ``expect_*`` returns quietly or raises ``CheckFailed`` saying what was expected, what was
seen and, where the result matches a known mistake passed in ``mistakes``, which one.
Tolerances fit the dtype: a correct but differently ordered computation always meets them.

What a failure says is split as ``CheckFailed`` splits it: ``what`` names the compared value in
words that hold for any input ("out", "the merged output"), and ``inputs`` describes the inputs
it was computed on ("n=12, block_size=4"), which only the self-check shows. A caller that passes
no ``inputs`` is taken to have put them into ``what``: then ``what`` goes into the details and
the message speaks of "the result". Names of mistakes are shown on graded runs: write them
without any drawn value ("a window one key too long", never "a window of 5 keys").
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
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


def _split(what: str, inputs: str | None) -> tuple[str, str]:
    """(the public name of the compared value, the prefix of the details)."""
    if inputs is None:
        return "the result", f"{what}: "
    return what, f"{inputs}: " if inputs else ""


def _shape_problem(seen: tuple[int, ...], expected: tuple[int, ...], dims: str) -> str:
    """What is wrong with a shape, in words that name no size: the dimensions that differ."""
    names = [name.strip() for name in dims.strip("()").split(",")] if dims else []
    names = names if len(names) == len(expected) else [f"dimension {i}" for i in range(len(expected))]
    wanted = f" {dims}" if dims else ""
    if len(seen) != len(expected):
        return f"has {len(seen)} dimensions, expected {len(expected)}{wanted}"
    if len(seen) >= 2 and seen[:-2] == expected[:-2] and seen[-2:] == expected[-2:][::-1]:
        return f"has its last two dimensions swapped (expected{wanted or ' another order'})"
    wrong = [names[i] for i, (a, b) in enumerate(zip(seen, expected, strict=True)) if a != b]
    return f"should have shape{wanted or ' of the expected size'}, but {', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} off"


def expect_tensor(
    value,
    what: str,
    shape: Sequence[int] | None = None,
    dtype: torch.dtype | None = None,
    dims: str = "",
    inputs: str | None = None,
) -> torch.Tensor:
    """Check that ``value`` is a plain tensor of the given shape and dtype; return it detached.
    ``dims`` names the dimensions for the message, e.g. "(B, H, Nq, Dv)"."""
    name, prefix = _split(what, inputs)
    legacy = what if inputs is None else ""  # a type or dtype is wrong whatever the inputs
    if type(value) is not torch.Tensor and not isinstance(value, torch.nn.Parameter):
        raise CheckFailed(f"{name} should be a torch.Tensor, got {type(value).__name__}", details=legacy)
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise CheckFailed(
            f"{name} {_shape_problem(tuple(value.shape), tuple(shape), dims)}",
            "check which dimensions your matmuls and reductions keep",
            details=f"{prefix}expected shape {tuple(shape)}, got {tuple(value.shape)}",
        )
    if dtype is not None and value.dtype != dtype:
        raise CheckFailed(
            f"{name} should have dtype {dtype} (the inputs' dtype), got {value.dtype}",
            "create new tensors with dtype=q.dtype and device=q.device",
            details=legacy,
        )
    return value.detach()


def expect_close(
    seen: torch.Tensor,
    expected: torch.Tensor,
    what: str,
    hint: str = "",
    mistakes: dict[str, torch.Tensor] | None = None,
    inputs: str | None = None,
    tolerances: tuple[float, float] | None = None,
) -> None:
    """Compare with dtype-fitting tolerances (or ``tolerances``, (rtol, atol)); name a known mistake
    the result matches, if any. The error and the inputs go into the details."""
    name, prefix = _split(what, inputs)
    rtol, atol = tolerances or tolerance(expected.dtype)
    if torch.isnan(seen).any() and not torch.isnan(expected).any():
        raise CheckFailed(f"{name} contains NaN where finite values were expected", hint, details=prefix.rstrip(": "))
    if torch.allclose(seen, expected, rtol=rtol, atol=atol, equal_nan=True):
        return
    error = (seen.double() - expected.double()).abs().nan_to_num(nan=math.inf).max().item()
    for mistake, wrong in (mistakes or {}).items():
        if wrong.shape == seen.shape and torch.allclose(seen, wrong, rtol=rtol, atol=atol, equal_nan=True):
            hint = f"your result matches {mistake}"
            break
    raise CheckFailed(
        f"{name} differs from the expected values (tolerance {atol:g} + {rtol:g} x |expected|)",
        hint,
        details=f"{prefix}max abs error {error:.3g}",
    )


def expect_pair(result, function: str, names: str):
    """Check that a student's function returned two values, e.g. names = "(out, weights)"."""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise CheckFailed(
            f"{function} should return a pair {names}, got {type(result).__name__}",
            f"end your function with `return {names.strip('()')}`",
        )
    return result


def expect_value_error(
    case: Case, fn: Callable, *args, call: str, hint: str, inputs: str = "", kwargs: dict | None = None
) -> None:
    """Check that student code ``fn(*args, **kwargs)`` raises ValueError. ``call`` names the call in
    words that hold for any input ("a window below 1"), ``inputs`` the call itself, for the details."""
    try:
        case.call(fn, *args, **(kwargs or {}))
    except CheckFailed as failure:
        if failure.raised_a(ValueError):
            return
        details = "; ".join(text for text in (inputs, failure.details) if text)
        raise CheckFailed(f"{call} should raise ValueError, but {failure.message}", hint, details=details) from None
    raise CheckFailed(f"{call} returned instead of raising ValueError", hint, details=inputs)


@contextlib.contextmanager
def counted_if_right(holds: str = "") -> Iterator[None]:
    """Wrap the value comparison of a check whose point is a property (shapes, row sums, stability,
    memory, reproducible seeds, errors for bad arguments, an edge case): ``holds`` says what held,
    if the property was tested first. A property counts only when the values are right, so a
    failure inside fails the check as *not counted*, with the mistake in the values as its
    message and hint."""
    try:
        yield
    except CheckFailed as failure:
        raise failure.reworded(
            f"not counted: {holds + ', but ' if holds else ''}the values are wrong: {failure.message}"
        ) from None


def counted_only_if_right(holds: str, prop: Callable[[], object], values: Callable[[], object]) -> None:
    """A check whose point is a property or an edge case: ``prop()`` tests it (raising CheckFailed
    when it fails), ``values()`` compares the function's values with the reference on ordinary
    inputs (or on the result ``prop`` looked at). The check passes when both do. When the values
    are wrong the check fails as *not counted*, naming the mistake in the values, whether or not
    the property held: that mistake is what a failure here must point at, and the check that
    compares values finds it under its own name."""
    try:
        prop()
    except CheckFailed:
        with counted_if_right():
            values()
        raise
    with counted_if_right(holds):
        values()


def expect_rejects_non_positive(
    case: Case, fn: Callable, function: str, argument: str, values: Callable[[Case], Callable[[], object]]
) -> None:
    """The check that student code ``fn(0)`` and ``fn(-n)`` (n drawn from 1 to 5) raise ValueError,
    ``function`` being the name of the student's function and ``argument`` that of its one argument.
    It counts only when the values are right: ``values(fn, case)``, called after the draw, draws the
    ordinary inputs and returns their comparison with the reference (see counted_only_if_right)."""
    cases = ((0, f"{function}(0)"), (-case.randint(1, 5), f"a negative {argument}"))

    def raises():
        for bad, call in cases:
            expect_value_error(
                case,
                fn,
                bad,
                call=call,
                hint=f"check the argument first: `if {argument} < 1: raise ValueError(...)` with a message naming it",
                inputs=f"{function}({bad})" if bad else "",
            )

    counted_only_if_right("it raises ValueError", raises, values(fn, case))
