"""Week 1, part 7: ``fit_exponent(ns, values)``, the least-squares slope of measurements on log-log axes."""

from __future__ import annotations

import math

import numpy as np
import torch

from lcteach.grading.results import CheckFailed
from lcteach.grading.session import check
from lcteach.measure import fit_exponent as reference_fit_exponent


def _check_fit(student, case, ns, values, expected, what):
    result = case.call(student, list(ns), list(values))
    try:
        result = float(result)
    except (TypeError, ValueError):
        raise CheckFailed(f"fit_exponent should return a number, got {type(result).__name__}") from None
    if not math.isfinite(result) or abs(result - expected) > 1e-6 * max(1.0, abs(expected)):
        hint = (
            "fit a straight line to (log n, log value) with least squares over all points, e.g. np.polyfit(x, y, 1)"
            if math.isfinite(result)
            else "the logarithm of every size and value must be finite"
        )
        endpoints = math.log(values[-1] / values[0]) / math.log(ns[-1] / ns[0])
        if math.isfinite(result) and abs(result - endpoints) < 1e-6:
            hint = (
                "you used only the first and last points; a least-squares fit uses all of them, so noise averages out"
            )
        raise CheckFailed(f"{what}: expected {expected:.4f}, got {result:.4f}", hint)


@check("an exact n^2 law gives 2")
def _fit_square(student, case):
    ns = [256 * 2**i for i in range(case.randint(3, 6))]
    _check_fit(student, case, ns, [3e-9 * n**2 for n in ns], 2.0, "values = c * n^2")


@check("exact laws with other exponents and constants")
def _fit_other(student, case):
    p = round(0.5 + 2.5 * float(torch.rand(1, generator=case.generator)), 3)
    ns = sorted({case.randint(10, 5000) for _ in range(6)})
    c = case.randint(1, 50) * 1e-3
    _check_fit(student, case, ns, [c * n**p for n in ns], p, f"values = c * n^{p}")


@check("noisy measurements: the least-squares slope on log-log axes")
def _fit_noisy(student, case):
    ns = np.array([128 * 2**i for i in range(7)], dtype=float)
    values = 1e-8 * ns**1.9 * np.exp(0.3 * case.randn(len(ns), dtype=torch.float64).numpy())
    _check_fit(student, case, ns.tolist(), values.tolist(), reference_fit_exponent(ns, values), "noisy timings")


CHECKS = (
    _fit_square,
    _fit_other,
    _fit_noisy,
)
