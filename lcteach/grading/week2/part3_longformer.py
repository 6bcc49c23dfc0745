"""Week 2, part 3: ``generate_longformer(window, global_tokens, dilation=1)``, a symmetric (optionally
dilated) window with global tokens."""

from __future__ import annotations

import torch

from lcteach.grading.expectations import counted_only_if_right, expect_value_error
from lcteach.grading.mask_expectations import expect_mask, grid, materialised, student_mask
from lcteach.grading.session import Case, check
from lcteach.grading.week2.common import global_flags, longformer_reference, odd


def _longformer_mistakes(n: int, window: int, global_tokens) -> dict[str, torch.Tensor]:
    i, j = grid(n, n)
    radius = window // 2
    g = global_flags(global_tokens, n)
    rows, cols = g[:, None], g[None, :]
    band = (i - j).abs() <= radius
    mistakes = {
        "a radius of window: `window` counts every key of a row, so the radius is window // 2": (
            (i - j).abs() <= window
        )
        | rows
        | cols,
        "a causal window: Longformer's window looks both ways": ((i - j >= 0) & (i - j < window)) | rows | cols,
        "global rows only: every query must also attend the global tokens (their columns)": band | rows,
        "global columns only: the global tokens must also attend every key (their rows)": band | cols,
        "global tokens that attend only each other (& instead of |)": band | (rows & cols),
    }
    if radius:
        mistakes["a radius one too small: |i - j| <= window // 2 includes the ends"] = (
            ((i - j).abs() < radius) | rows | cols
        )
    if isinstance(global_tokens, int):
        more = torch.arange(n) <= global_tokens
        mistakes["one global token too many: a count g means positions 0 .. g-1"] = band | more[:, None] | more[None, :]
    return mistakes


def _dilated_mistakes(n: int, window: int, global_tokens, dilation: int) -> dict[str, torch.Tensor]:
    i, j = grid(n, n)
    radius = window // 2
    g = global_flags(global_tokens, n)
    rows, cols = g[:, None], g[None, :]
    distance = (i - j).abs()
    on_step = (i - j) % dilation == 0
    dilated = on_step & (distance <= radius * dilation)
    return {
        "a window without the dilation: dilation=d keeps the keys d apart, out to (window // 2) * d": (
            distance <= radius
        )
        | rows
        | cols,
        "a dilated window cut at window // 2: with dilation d the window reaches (window // 2) * d on each side, "
        "still window keys per row": (on_step & (distance <= radius)) | rows | cols,
        "a dilated window reaching window * d: `window` counts the keys of a row, so the reach is (window // 2) * d": (
            on_step & (distance <= window * dilation)
        )
        | rows
        | cols,
        "the dilation applied to the global tokens too: a global token attends (and is attended by) every key, "
        "whatever the distance": dilated | ((rows | cols) & on_step),
        "every key up to (window // 2) * d away: the dilated window keeps only the keys a multiple of d away": (
            distance <= radius * dilation
        )
        | rows
        | cols,
    }


def _check_longformer(student, case: Case, n: int, window: int, global_tokens, dilation: int | None = None):
    """Compare the student's mask with the reference's; ``dilation`` None: called without the argument."""
    if dilation is None:
        mask_mod, what = case.call(student, window, global_tokens), "your Longformer mask"
    else:
        mask_mod = case.call(student, window, global_tokens, dilation=dilation)
        what = "your dilated Longformer mask" if dilation != 1 else "your Longformer mask with dilation=1"
    dilated = dilation not in (None, 1)
    expect_mask(
        student_mask(case, mask_mod, n, n),
        materialised(longformer_reference(window, global_tokens, dilation or 1), n),
        what,
        _dilated_mistakes(n, window, global_tokens, dilation)
        if dilated
        else _longformer_mistakes(n, window, global_tokens),
        f"generate_longformer({window}, {global_tokens!r}{'' if dilation is None else f', dilation={dilation}'}) "
        f"over {n} tokens",
    )


def _count(student, case):
    """The comparison with global tokens as a count, drawn now, run when called."""
    n = case.randint(16, 48)
    window, count = odd(case, 3, 9), case.randint(1, 3)
    return lambda: _check_longformer(student, case, n, window, count)


@check("global tokens as a count g: the first g tokens attend everywhere and are attended by all")
def _longformer_count(student, case):
    _count(student, case)()


@check("global tokens as a list of positions, anywhere in the sequence")
def _longformer_positions(student, case):
    n = case.randint(16, 48)
    positions = sorted({case.randint(1, n - 2) for _ in range(3)} | {n - 1})
    _check_longformer(student, case, n, odd(case, 3, 9), positions)


@check("window=1 is the query alone; a window covering the sequence is full attention")
def _longformer_edges(student, case):
    n = case.randint(8, 30)
    position, wide = case.randint(0, n - 1), odd(case, 2 * n - 1, 2 * n + 6)

    def edges():
        _check_longformer(student, case, n, 1, [position])
        _check_longformer(student, case, n, wide, 1)

    counted_only_if_right("the two edge cases are right", edges, _count(student, case))


@check("an even window or a window < 1 raises ValueError")
def _longformer_invalid(student, case):
    even = 2 * case.randint(1, 4)
    cases = (
        (even, "an even window", f"generate_longformer({even}, 1)"),
        (0, "generate_longformer(0, 1)", ""),
        (-1, "generate_longformer(-1, 1)", ""),
    )

    def raises():
        for bad, call, inputs in cases:
            expect_value_error(
                case,
                student,
                bad,
                1,
                call=call,
                hint="a symmetric window holds the query and the same number of keys on each side, so it is "
                "odd and at least 1: check it and raise ValueError",
                inputs=inputs,
            )

    counted_only_if_right("it raises ValueError", raises, _count(student, case))


def _dilated(student, case):
    """The comparisons of dilated windows (global tokens as positions, then dilation=1 given explicitly),
    drawn now, run when called."""
    dilation, window = case.randint(2, 4), odd(case, 3, 7)
    n = case.randint((window + 1) * dilation + 4, 56)
    positions = sorted({case.randint(0, n - 1) for _ in range(2)})
    plain_n, plain_window, count = case.randint(12, 30), odd(case, 3, 7), case.randint(1, 2)

    def compare():
        _check_longformer(student, case, n, window, positions, dilation)
        _check_longformer(student, case, plain_n, plain_window, count, dilation=1)

    return compare


@check("dilation d: the keys d apart, out to (window // 2) * d; global tokens as without it; d=1 as without it")
def _longformer_dilation(student, case):
    _dilated(student, case)()


@check("dilation < 1 raises ValueError")
def _longformer_invalid_dilation(student, case):
    window, negative = odd(case, 1, 7), -case.randint(1, 3)
    dilated = _dilated(student, case)

    def raises():
        for bad, call in ((0, "dilation=0"), (negative, "a negative dilation")):
            expect_value_error(
                case,
                student,
                window,
                1,
                bad,
                call=call,
                hint="a dilation d keeps keys d apart, so d is at least 1: check it and raise ValueError",
                inputs=f"generate_longformer({window}, 1, dilation={bad})",
            )

    counted_only_if_right("it raises ValueError", raises, dilated)


CHECKS = (
    _longformer_count,
    _longformer_positions,
    _longformer_edges,
    _longformer_invalid,
    _longformer_dilation,
    _longformer_invalid_dilation,
)
