"""Week 1, part 7: ``fit_exponent(ns, values)``, the least-squares slope of measurements on log-log axes."""

from __future__ import annotations

import math

import numpy as np
import torch

from lcteach.grading.expectations import counted_only_if_right
from lcteach.grading.results import CheckFailed
from lcteach.grading.session import check
from lcteach.measure import fit_exponent as reference_fit_exponent

RTOL = 1e-6  # the slope must match to this relative tolerance (the notebook states it)


def _number(result) -> float:
    """The student's result as a number (a 0-d tensor counts here; the type has its own check)."""
    try:
        return float(result)
    except (TypeError, ValueError, RuntimeError):
        raise CheckFailed(
            f"fit_exponent should return a float, got {type(result).__name__}",
            "return the slope as a Python float: float(slope)",
        ) from None


def _check_fit(student, case, ns, values, expected, what, public_expected=False):
    _judge_fit(case.call(student, list(ns), list(values)), ns, values, expected, what, public_expected)


def _judge_fit(raw, ns, values, expected, what, public_expected=False):
    result = _number(raw)
    if math.isfinite(result) and abs(result - expected) <= RTOL * max(1.0, abs(expected)):
        return
    hint = (
        "fit a straight line to (log n, log value) with least squares over all points, e.g. np.polyfit(x, y, 1)"
        if math.isfinite(result)
        else "the logarithm of every size and value must be finite"
    )
    endpoints = math.log(values[-1] / values[0]) / math.log(ns[-1] / ns[0])
    if math.isfinite(result) and abs(result - endpoints) < 1e-6:
        hint = "you used only the first and last points; a least-squares fit uses all of them, so noise averages out"
    if not math.isfinite(result):
        message = f"{what}: your slope is not finite"
    elif public_expected:  # the expected slope is the check's own (its name says it), whatever the inputs
        message = f"{what}: expected {expected:g}, yours is too {'large' if result > expected else 'small'}"
    else:
        message = f"{what}: the slope is not the expected one"
    raise CheckFailed(
        message,
        hint,
        details=f"ns={[round(n, 3) for n in ns]}: expected {expected:.6g}, got {result:.6g}",
    )


@check("an exact n^2 law gives 2")
def _fit_square(student, case):
    ns = [256 * 2**i for i in range(case.randint(3, 6))]
    _check_fit(student, case, ns, [3e-9 * n**2 for n in ns], 2.0, "values = c * n^2", public_expected=True)


def _other_law(case):
    """(ns, values, p): an exact law c * n^p with a random exponent and constant."""
    p = round(0.5 + 2.5 * float(torch.rand(1, generator=case.generator)), 3)
    ns = sorted({case.randint(10, 5000) for _ in range(6)})
    c = case.randint(1, 50) * 1e-3
    return ns, [c * n**p for n in ns], p


@check("exact laws with other exponents and constants")
def _fit_other(student, case):
    ns, values, p = _other_law(case)
    _check_fit(student, case, ns, values, p, "values = c * n^p")


@check("noisy measurements: the least-squares slope on log-log axes")
def _fit_noisy(student, case):
    ns = np.array([128 * 2**i for i in range(7)], dtype=float)
    values = 1e-8 * ns**1.9 * np.exp(0.3 * case.randn(len(ns), dtype=torch.float64).numpy())
    _check_fit(student, case, ns.tolist(), values.tolist(), reference_fit_exponent(ns, values), "noisy timings")


@check("returns a Python float, not a tensor or an array")
def _fit_float(student, case):
    ns, values, p = _other_law(case)
    raw = case.call(student, ns, values)

    def a_float():
        if not isinstance(raw, float):  # numpy's float64 is a float; a 0-d tensor or a numpy float32 is not
            raise CheckFailed(
                f"fit_exponent returned a {type(raw).__name__}, not a float",
                "return float(slope): a tensor or an array prints, compares and formats differently from a number",
            )

    counted_only_if_right("it returns a float", a_float, lambda: _judge_fit(raw, ns, values, p, "values = c * n^p"))


CHECKS = (
    _fit_square,
    _fit_other,
    _fit_noisy,
    _fit_float,
)
