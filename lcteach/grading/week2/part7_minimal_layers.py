"""Week 2, part 7: ``minimal_layers(pattern, ...)``, the number of stacked layers for full reach."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn.attention.flex_attention import or_masks

from lcteach.analysis import minimal_layers_for_full_reach as reference_minimal_layers
from lcteach.grading.expectations import counted_only_if_right
from lcteach.grading.mask_expectations import grid, materialised
from lcteach.grading.probes import table_mask_mod
from lcteach.grading.results import CheckFailed
from lcteach.grading.session import Case, check
from lcteach.grading.week2.common import odd
from lcteach.masks import generate_global as reference_global
from lcteach.masks import generate_sliding_window as reference_sliding_window
from lcteach.masks import generate_strided as reference_strided
from lcteach.masks import generate_symmetric_window as reference_symmetric_window


def _no_residual_layers(pattern: torch.Tensor, causal: bool) -> int | None:
    """The answer of a count that forgets the residual: exact powers A^L instead of (A or I)^L."""
    n = pattern.shape[0]
    target = torch.ones(n, n, dtype=torch.bool).tril() if causal else torch.ones(n, n, dtype=torch.bool)
    reach, step = pattern.clone(), pattern.float()
    for layers in range(1, n + 1):
        if (reach | ~target).all():
            return layers
        reach = (step @ reach.float()) > 0
    return None


def _describe(result) -> str:
    return "None" if result is None else str(result)


def _check_layers(student, case: Case, pattern, n: int | None, what: str, causal: bool | None = None, inputs: str = ""):
    """``what`` names the pattern in words that hold for any input, ``inputs`` its sizes (the details)."""
    matrix = pattern if isinstance(pattern, torch.Tensor) else materialised(pattern, n)
    expected = reference_minimal_layers(matrix, causal=causal)
    # A mask_mod goes to the student as a lookup in its materialised table, made on the student's side
    # (a plain 4-argument function, as create_mask wants).
    args = (matrix,) if n is None else (case.call(table_mask_mod, matrix.clone()), n)
    result = case.call(student, *args, **({} if causal is None else {"causal": causal}))
    if isinstance(result, np.integer):
        result = int(result)
    if result is not None and type(result) is not int:
        raise CheckFailed(
            f"{what}: expected an int or None, got {type(result).__name__}",
            "return the number of layers as a Python int (int(...)), or None",
        )
    if result == expected:
        return
    is_causal = not matrix.triu(1).any() if causal is None else causal
    hint = ""
    if expected is not None and result is not None and abs(result - expected) == 1:
        hint = (
            "off by one: after L layers, information has moved along paths of at most L hops, (A or I)^L; "
            "count one layer per product and stop at the first L that reaches every target pair"
        )
    elif result == _no_residual_layers(matrix, is_causal) and not matrix.diagonal().all():
        hint = (
            "the residual connection keeps each position's own information between layers: "
            "use (A or I), so that a path may wait in place"
        )
    elif result is None and is_causal:
        hint = "for a causal pattern full reach means every key j <= i, not every key"
    elif expected is None:
        hint = "some pair is never reached however many layers: after n - 1 layers nothing new appears, return None"
    if result is None:
        problem = "you returned None, but some number of layers reaches every target pair"
    elif expected is None:
        problem = "you returned a number of layers, but no depth reaches every target pair"
    else:
        problem = f"your count is too {'high' if result > expected else 'low'}"
    details = f"{inputs + ': ' if inputs else ''}expected {_describe(expected)}, got {_describe(result)}"
    if inputs:
        raise CheckFailed(f"{what}: {problem}", hint, details=details)
    raise CheckFailed(f"{what}: {problem} ({details})", hint)  # fixed inputs: nothing hidden to withhold


def _ordinary_window(student, case):
    """The count for a causal sliding window, drawn now, run when called."""
    n, window = case.randint(12, 40), case.randint(2, 6)
    pattern = materialised(reference_sliding_window(window), n)
    return lambda: _check_layers(
        student, case, pattern, None, "a causal sliding window", inputs=f"window {window}, n={n}"
    )


@check("a causal sliding window, given as a bool matrix")
def _layers_window(student, case):
    _ordinary_window(student, case)()


@check("bidirectional patterns given as mask_mods: window, strided with window, global tokens")
def _layers_mask_mods(student, case):
    n = case.randint(16, 40)
    window, stride = odd(case, 3, 5), case.randint(3, 6)
    _check_layers(
        student, case, reference_symmetric_window(window), n, "a symmetric window", inputs=f"window {window}, n={n}"
    )
    _check_layers(
        student,
        case,
        or_masks(reference_symmetric_window(3), reference_strided(stride)),
        n,
        "a window of 3 with a stride",
        inputs=f"stride {stride}, n={n}",
    )
    position = case.randint(0, n - 1)
    with_global = or_masks(reference_symmetric_window(window), reference_global([position]))
    _check_layers(
        student,
        case,
        with_global,
        n,
        "a symmetric window with one global token",
        inputs=f"window {window}, global token {position}, n={n}",
    )


@check("patterns without the diagonal still reach through the residual")
def _layers_residual(student, case):
    n = case.randint(6, 20)
    i, j = grid(n, n)
    _check_layers(student, case, j == i - 1, None, "each token attends only the previous one", inputs=f"n={n}")
    stride = case.randint(2, 4)
    _check_layers(
        student,
        case,
        ((i - j) % stride == 0) & (i != j) | (j == i - 1),
        None,
        "the previous token and strided keys, without the diagonal",
        inputs=f"stride {stride}, n={n}",
    )


@check("n = 1 needs 0 layers; never reaching gives None; causal= overrides the target")
def _layers_edges(student, case):
    n = 2 * case.randint(4, 10)
    i, j = grid(n, n)
    halves = (i < n // 2) == (j < n // 2)
    size = case.randint(2, 4)
    window = materialised(reference_sliding_window(size), n)

    def edges():
        _check_layers(student, case, torch.ones(1, 1, dtype=torch.bool), None, "a single token")
        _check_layers(student, case, halves, None, "two halves that never attend each other", inputs=f"n={n}")
        _check_layers(
            student, case, window, None, "a causal window with causal=False", False, inputs=f"window {size}, n={n}"
        )
        _check_layers(student, case, (i - j).abs() <= 1, None, "a window of 3 with causal=True", True, inputs=f"n={n}")

    counted_only_if_right("the edge cases are right", edges, _ordinary_window(student, case))


CHECKS = (
    _layers_window,
    _layers_mask_mods,
    _layers_residual,
    _layers_edges,
)
