"""Week 1, part 7: ``fit_exponent(ns, values, breaks=0)``, the least-squares slope of measurements on
log-log axes: of one line through all the points, or (breaks=1) of the upper part of the best fit with
one break."""

from __future__ import annotations

import math

import numpy as np
import torch

from lcteach.grading.expectations import counted_only_if_right, expect_value_error
from lcteach.grading.results import CheckFailed
from lcteach.grading.session import check
from lcteach.measure import fit_exponent as reference_fit_exponent
from lcteach.measure.scaling import MIN_PART, split_fits

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


def _close(result: float, expected: float) -> bool:
    """Whether a finite slope matches ``expected`` to the stated tolerance."""
    return math.isfinite(result) and abs(result - expected) <= RTOL * max(1.0, abs(expected))


def _judge_fit(raw, ns, values, expected, what, public_expected=False):
    result = _number(raw)
    if _close(result, expected):
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


# ---------------------------------------------------------------- breaks=1: one break

DRAWS = 100  # draws of a two-regime law until the realistic mistakes give slopes apart from the right one


def _splits(ns, values, min_part: int) -> list[tuple[float, float, float]]:
    """lcteach's split_fits of the measurements on log-log axes."""
    return split_fits(np.log(np.asarray(ns, dtype=float)), np.log(np.asarray(values, dtype=float)), min_part)


def _mistakes(ns, values) -> dict[str, tuple[float, str]]:
    """The slope each realistic mistake returns with breaks=1, and the hint that names it."""
    splits = _splits(ns, values, MIN_PART)
    best = min(splits, key=lambda fit: fit[0])  # min keeps the earliest of equal totals
    return {
        "lower": (
            best[1],
            "your slope is the lower part's (small n): return the upper part's slope, the large-n regime "
            "that asymptotic cost is about",
        ),
        "two points": (
            min(_splits(ns, values, 2), key=lambda fit: fit[0])[2],
            "your splits let a part have 2 points, which a line always fits exactly (no residuals, so such "
            f"splits win unfairly): each part needs at least {MIN_PART} points",
        ),
        "one line": (
            reference_fit_exponent(ns, values),
            "your slope is that of one line through all the points: with breaks=1 fit two lines, one to each "
            "part of every split",
        ),
        "slope change": (
            max(splits, key=lambda fit: abs(fit[2] - fit[1]))[2],
            "you chose the split where the slope changes most: choose the one whose two lines leave the least "
            "total of squared residuals",
        ),
    }


def _two_regimes(case, noise: float) -> tuple[list[int], list[float]]:
    """A law c1 * n^a below a break and c2 * n^b above it, with a step up at the break (as when the data
    outgrow a cache), times exp(noise * N(0, 1)); ns on a geometric grid."""

    def uniform() -> float:
        return float(torch.rand(1, generator=case.generator))

    m = case.randint(2 * MIN_PART + 1, 11)
    start, factor = case.randint(64, 256), 2 ** (case.randint(2, 4) / 4)
    ns = [round(start * factor**i) for i in range(m)]
    split = case.randint(MIN_PART - 1, m - MIN_PART)  # a lower regime of 2 points too: parts of 2 would win it
    a, b = 0.5 + 2.0 * uniform(), 0.5 + 2.5 * uniform()
    c1 = case.randint(1, 50) * 1e-9
    c2 = c1 * ns[split] ** (a - b) * (1.5 + 2.0 * uniform())
    jitter = np.exp(noise * case.randn(m, dtype=torch.float64).numpy())
    values = [(c1 * n**a if i < split else c2 * n**b) * float(e) for i, (n, e) in enumerate(zip(ns, jitter))]
    return ns, values


def _clear(ns, values, names: tuple[str, ...]) -> bool:
    """Whether the best split beats the next one by a margin (every right function then agrees) and the
    mistakes ``names`` give slopes apart from the right one and from each other (each is then named)."""
    totals = sorted(fit[0] for fit in _splits(ns, values, MIN_PART))
    if len(totals) > 1 and totals[1] - totals[0] <= 1e-6 * max(1.0, totals[0]):
        return False
    mistakes = _mistakes(ns, values)
    slopes = [reference_fit_exponent(ns, values, 1)] + [mistakes[name][0] for name in names]
    return all(abs(p - q) > 1e-3 for i, p in enumerate(slopes) for q in slopes[i + 1 :])


def _draw_two_regimes(case, noise: float, names: tuple[str, ...]) -> tuple[list[int], list[float]]:
    """A two-regime law on which the mistakes ``names`` are told apart (the last draw if none is)."""
    for _ in range(DRAWS):
        ns, values = _two_regimes(case, noise)
        if _clear(ns, values, names):
            break
    return ns, values


def _call_one_break(student, case, ns, values):
    try:
        return case.call(student, list(ns), list(values), 1)
    except CheckFailed as failure:
        if not failure.raised_a(TypeError):
            raise
        raise failure.reworded(
            hint="called as fit_exponent(ns, values, 1): if your function takes only (ns, values), add the "
            "argument breaks=0; otherwise run it with breaks=1 on a small example and read the traceback"
        ) from None


def _judge_one_break(raw, ns, values, what: str, names: tuple[str, ...]) -> None:
    expected = reference_fit_exponent(ns, values, 1)
    result = _number(raw)
    if _close(result, expected):
        return
    hint = (
        f"try every split into the first k points and the rest (k = {MIN_PART} .. len(ns) - {MIN_PART}), fit a "
        "least-squares line on log-log axes to each part, keep the split with the least total of squared "
        "residuals (the earliest of equal ones) and return its upper part's slope"
    )
    for value, mistake in (_mistakes(ns, values)[name] for name in names):
        if _close(result, value):
            hint = mistake
            break
    raise CheckFailed(
        f"{what}: your slope is not finite"
        if not math.isfinite(result)
        else f"{what}: the slope is not the expected one",
        hint,
        details=f"ns={list(ns)}, breaks=1: expected {expected:.6g}, got {result:.6g}",
    )


_EXACT_MISTAKES = ("lower", "one line", "slope change")  # parts of 2 points fit an exact law as well
_NOISY_MISTAKES = ("lower", "two points", "one line", "slope change")


def _one_break(student, case, noise: float, names: tuple[str, ...], what: str) -> None:
    """Draw a two-regime law on which the mistakes ``names`` are told apart, call with breaks=1, judge."""
    ns, values = _draw_two_regimes(case, noise, names)
    _judge_one_break(_call_one_break(student, case, ns, values), ns, values, what, names)


def _exact_two_regimes(student, case) -> None:
    _one_break(student, case, 0.0, _EXACT_MISTAKES, "an exact law c1 * n^a below a break, c2 * n^b above it")


@check("breaks=1: an exact law with a step and a new exponent above a break gives the upper exponent")
def _one_break_exact(student, case):
    _exact_two_regimes(student, case)


@check("breaks=1: noisy timings with a cache step, the least-squares fit with one break")
def _one_break_noisy(student, case):
    _one_break(student, case, 0.05, _NOISY_MISTAKES, "noisy two-regime timings")


@check("breaks=1 with fewer than 6 points, and breaks=2, raise ValueError")
def _one_break_refuses(student, case):
    ns, values = _two_regimes(case, 0.0)
    few = 2 * MIN_PART - 1

    def raises():
        expect_value_error(
            case,
            student,
            ns[:few],
            values[:few],
            1,
            call=f"breaks=1 with {few} points",
            hint=f"with breaks=1 each part needs at least {MIN_PART} points: if len(ns) < {2 * MIN_PART}, raise "
            "ValueError saying so",
            inputs=f"ns={ns[:few]}, breaks=1",
        )
        expect_value_error(
            case,
            student,
            ns,
            values,
            2,
            call="breaks=2",
            hint="only breaks=0 and breaks=1 are defined: raise ValueError for any other value",
            inputs=f"ns={ns}, breaks=2",
        )

    counted_only_if_right("it raises ValueError", raises, lambda: _exact_two_regimes(student, case))


CHECKS = (
    _fit_square,
    _fit_other,
    _fit_noisy,
    _fit_float,
    _one_break_exact,
    _one_break_noisy,
    _one_break_refuses,
)
