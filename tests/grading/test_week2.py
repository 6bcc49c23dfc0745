"""Week 2 graders: the solutions earn full marks, the release earns 0, realistic mistakes fail the
check that names them, broken submissions cost only their part, and delegating earns nothing.
Every grading here also runs through the channel, as the trusted grader runs it (grading_helpers.run)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from grading_helpers import contract_tests, failed, run
from notebook_source import SOLUTIONS
from torch.nn.attention.flex_attention import or_masks
from variants_week2 import (
    bigbird_layout_with,
    dense_then_mask,
    layers_with,
    layout_argsort,
    layout_from,
    longformer_with,
    never_last,
    own_block_forced,
    randperm,
    sparse_with,
    strided_with,
    topk_with,
    with_replacement,
)

import lcteach
import lcteach.masks.random
from lcteach.grading import week2 as grade
from lcteach.grading.budgets import dense_seconds, layout_mask
from lcteach.grading.local import measure_here
from lcteach.grading.week2 import part5_block_sparse_attention as part5

EXERCISES = SOLUTIONS / "week2_sparse" / "exercises.py"
(
    SOLUTION,
    (
        test_solution_earns_full_marks,
        test_release_stub_earns_nothing,
        test_graded_cells_match_the_graders,
        test_total_points_and_written_answer,
    ),
) = contract_tests(grade, EXERCISES, total_points=23)


def assert_fails(part, mutant, capsys, failing: str, hint: str):
    """The mutant loses points on the check whose name starts with ``failing``, with ``hint`` in its text."""
    result, report = run(part, mutant, capsys)
    failures = failed(result)
    assert result.points < part.points, report
    assert any(name.startswith(failing) and hint in text for name, text in failures.items()), report
    return result, report


# ---------------------------------------------------------------- 1. strided


@pytest.mark.parametrize(
    ("mutant", "failing", "hint"),
    [
        (strided_with(distance=lambda q, kv, s: (q - kv) % (s + 1) == 0), "matches (i - j)", "a stride one too large"),
        (strided_with(distance=lambda q, kv, s: kv % s == 0), "matches (i - j)", "multiples of the stride"),
        (strided_with(distance=lambda q, kv, s: ((q - kv) % s == 0) & (q != kv)), "stride=1", "query itself"),
        (strided_with(honour_causal=False), "causal=True keeps", "also looks at later keys"),
        (strided_with(distance=lambda q, kv, s: ((q - kv) % s == 0) & (kv <= q)), "matches (i - j)", "both ways"),
        (strided_with(check=False), "stride < 1", "raise ValueError"),
        (strided_with(head=lambda t, h: t[0]), "a sequence of strides", "every head using stride[0]"),
        (strided_with(head=lambda t, h: t.flip(0)[h]), "a sequence of strides", "reverse order"),
        (strided_with(head=lambda t, h: t[(h + 1) % len(t)]), "a sequence of strides", "stride[h + 1]"),
        (strided_with(head=lambda t, h: t[(h - 1) % len(t)]), "a sequence of strides", "stride[h - 1]"),
        (strided_with(per_head=False), "a sequence of strides", "TypeError"),
        (strided_with(check_sequence=False), "a sequence with a stride < 1", "instead of raising ValueError"),
    ],
    ids=[
        "stride-plus-one",
        "fixed-columns",
        "no-diagonal",
        "ignores-causal",
        "always-causal",
        "no-validation",
        "first-stride-everywhere",
        "reversed-heads",
        "head-plus-one",
        "head-minus-one",
        "int-only",
        "no-sequence-validation",
    ],
)
def test_strided_mutants(mutant, failing, hint, capsys):
    assert_fails(grade.strided, mutant, capsys, failing, hint)


def test_strided_per_head_list_indexing_gets_a_tensor_hint(capsys):
    def list_indexed(stride, causal=False):
        def strided(b, h, q, kv):
            return (q - kv) % (stride if isinstance(stride, int) else stride[h]) == 0

        return strided

    assert_fails(grade.strided, list_indexed, capsys, "a sequence of strides", "strides = torch.tensor(stride)")


# ---------------------------------------------------------------- 2. random block layout


def _global_draws(q_blocks, kv_blocks, blocks_per_row, seed):
    """Unseeded: draws from the global RNG, so the seed changes nothing."""
    layout = torch.zeros(q_blocks, kv_blocks, dtype=torch.bool)
    for row in range(q_blocks):
        layout[row, torch.randperm(kv_blocks)[:blocks_per_row]] = True
    return layout


def _one_row_repeated(q_blocks, kv_blocks, blocks_per_row, seed):
    row = torch.zeros(kv_blocks, dtype=torch.bool)
    row[torch.randperm(kv_blocks, generator=torch.Generator().manual_seed(seed))[:blocks_per_row]] = True
    return row.expand(q_blocks, kv_blocks).clone()


@pytest.mark.parametrize(
    ("mutant", "failing", "hint"),
    [
        (layout_from(randperm, generator=False), "uses its own generator", "global random state of torch"),
        (_global_draws, "the same seed gives the same layout", "generator=g"),
        (layout_from(with_replacement), "bool (q_blocks, kv_blocks)", "with replacement"),
        (layout_from(never_last), "roughly uniform", "never drawn"),
        (layout_from(own_block_forced), "roughly uniform", "no block forced in"),
        (_one_row_repeated, "bool (q_blocks, kv_blocks)", "draw every row anew"),
        (layout_from(randperm, check=False), "blocks_per_row above", "instead of raising ValueError"),
    ],
    ids=[
        "seeds-global-rng",
        "unseeded",
        "with-replacement",
        "never-last-block",
        "own-block-forced",
        "same-rows",
        "no-validation",
    ],
)
def test_random_layout_mutants(mutant, failing, hint, capsys):
    assert_fails(grade.random_block_layout, mutant, capsys, failing, hint)


def _multinomial(kv, r, g, row):
    return torch.multinomial(torch.ones(kv), r, replacement=False, generator=g)


@pytest.mark.parametrize("hidden", [None, 7331], ids=["public", "hidden"])
@pytest.mark.parametrize("layout", [layout_argsort, layout_from(_multinomial)], ids=["argsort", "multinomial"])
def test_other_correct_layouts_earn_full_marks(layout, hidden, capsys):
    """The grader checks properties, not the solution's draws: other correct ways to draw pass too."""
    result, report = run(grade.random_block_layout, layout, capsys, hidden)
    assert result.points == grade.POINTS["random_block_layout"], report


def test_random_layout_grading_leaves_the_global_rngs_as_they_were(capsys):
    """The check that seeds the global RNGs puts them back: grading moves no student's random state."""
    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    expected = torch.rand(3), random.random(), np.random.rand()
    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    run(grade.random_block_layout, SOLUTION.random_block_layout, capsys)
    assert torch.equal(torch.rand(3), expected[0])
    assert (random.random(), np.random.rand()) == expected[1:]


def test_layout_numpy_rng_is_noticed(capsys):
    def numpy_layout(q_blocks, kv_blocks, blocks_per_row, seed):
        np.random.seed(seed)
        layout = torch.zeros(q_blocks, kv_blocks, dtype=torch.bool)
        for row in range(q_blocks):
            layout[row, torch.from_numpy(np.random.permutation(kv_blocks)[:blocks_per_row])] = True
        return layout

    assert_fails(grade.random_block_layout, numpy_layout, capsys, "uses its own generator", "numpy.random")


# ---------------------------------------------------------------- 3. Longformer


@pytest.mark.parametrize(
    ("mutant", "failing", "hint"),
    [
        (longformer_with(radius=lambda w: w), "global tokens as a count", "a radius of window"),
        (longformer_with(causal=True), "global tokens as a count", "causal window"),
        (longformer_with(cols=False), "global tokens as a list", "global rows only"),
        (longformer_with(rows=False), "global tokens as a list", "global columns only"),
        (longformer_with(count_extra=1), "global tokens as a count", "one global token too many"),
        (longformer_with(dilated="ignored"), "dilation d", "a window without the dilation"),
        (longformer_with(dilated="undilated-reach"), "dilation d", "cut at window // 2"),
        (longformer_with(dilated="reach-window"), "dilation d", "reaching window * d"),
        (longformer_with(dilated="global-too"), "dilation d", "applied to the global tokens too"),
        (longformer_with(dilated="every-key"), "dilation d", "keeps only the keys a multiple of d away"),
        (longformer_with(check_dilation=False), "dilation < 1", "raise ValueError"),
    ],
    ids=[
        "radius-is-window",
        "causal-window",
        "rows-only",
        "columns-only",
        "count-plus-one",
        "dilation-ignored",
        "dilated-reach-short",
        "dilated-reach-window-d",
        "global-dilated",
        "dilated-every-key",
        "dilation-unchecked",
    ],
)
def test_longformer_mutants(mutant, failing, hint, capsys):
    assert_fails(grade.longformer, mutant, capsys, failing, hint)


def test_longformer_with_python_if_gets_the_vmap_hint(capsys):
    def generate(window, global_tokens):
        if window % 2 == 0 or window < 1:
            raise ValueError("odd window")

        def longformer(b, h, q, kv):
            if abs(q - kv) <= window // 2 or q < global_tokens or kv < global_tokens:
                return torch.tensor(True)
            return torch.tensor(False)

        return longformer

    result, report = run(grade.longformer, generate, capsys)
    assert result.points < grade.POINTS["longformer"] and "vmap" in report, report


# ---------------------------------------------------------------- 4. BigBird's block layout
# (the fairness corpus, tests/grading/test_fairness_week2.py, grades the other classic mistakes)


@pytest.mark.parametrize(
    ("mutant", "hint"),
    [
        (bigbird_layout_with(global_rows=False), "the global blocks' columns only"),
        (bigbird_layout_with(last_global=True), "the last global_blocks blocks"),
    ],
    ids=["columns-only", "last-blocks-global"],
)
def test_bigbird_layout_mutants(mutant, hint, capsys):
    assert_fails(grade.bigbird, mutant, capsys, "with random_blocks = 0", hint)


# ---------------------------------------------------------------- 5. block-sparse attention


def every_block_then_skip(q, k, v, layout, block_size):
    """Loops over blocks but computes every block's scores before looking at the layout."""
    n_k = k.shape[-2]
    out = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype)
    for qi in range(layout.shape[0]):
        rows = slice(qi * block_size, (qi + 1) * block_size)
        strips = [
            q[..., rows, :] @ k[..., kj * block_size : (kj + 1) * block_size, :].transpose(-2, -1)
            for kj in range(layout.shape[1])
        ]
        keys = [
            torch.arange(kj * block_size, min((kj + 1) * block_size, n_k))
            for kj in range(layout.shape[1])
            if layout[qi, kj]
        ]
        if not keys:
            continue
        scores = torch.cat([s for s, active in zip(strips, layout[qi].tolist()) if active], dim=-1)
        out[..., rows, :] = torch.softmax(scores / math.sqrt(q.shape[-1]), dim=-1) @ v[..., torch.cat(keys), :]
    return out


def elementwise_rows(q, k, v, layout, block_size):
    """Dense scores without a matmul: one row at a time as elementwise products (invisible to FLOP counting)."""
    n_q, n_k = q.shape[-2], k.shape[-2]
    mask = layout.repeat_interleave(block_size, 0).repeat_interleave(block_size, 1)[:n_q, :n_k]
    out = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype)
    for i in range(n_q):
        if not mask[i].any():
            continue
        scores = (q[..., i : i + 1, :] * k).sum(-1) / math.sqrt(q.shape[-1])
        weights = torch.softmax(scores.masked_fill(~mask[i], float("-inf")), dim=-1)
        out[..., i, :] = (weights[..., None] * v).sum(-2)
    return out


WORK_CHECK = part5._block_sparse_work.check_name


def test_dense_then_mask_fails_the_work_check_only(capsys):
    result, report = run(grade.block_sparse_attention, dense_then_mask, capsys)
    assert set(failed(result)) == {WORK_CHECK}, report
    assert result.points == 2 and "masked dense attention" in report and "for all keys" in report, report


@pytest.mark.parametrize("dense_work", [every_block_then_skip, elementwise_rows], ids=["every-block", "elementwise"])
def test_dense_work_in_any_form_fails_the_work_check(dense_work, capsys):
    result, report = run(grade.block_sparse_attention, dense_work, capsys)
    assert WORK_CHECK in failed(result), report


@pytest.mark.parametrize(
    ("mutant", "failing", "hint"),
    [
        (sparse_with(scale=False), "equals masked dense", "without the 1/sqrt(d) scaling"),
        (sparse_with(per_block=True), "equals masked dense", "inside each block on its own"),
        (sparse_with(pad_keys=True), "float64, ragged", "zero padding of the last key block"),
        (sparse_with(transpose=True), "equals masked dense", "the layout transposed"),
        (sparse_with(nan_rows=True), "a query block with no active key block", "zero output"),
    ],
    ids=["no-scale", "per-block-softmax", "attends-padding", "transposed-layout", "nan-empty-rows"],
)
def test_block_sparse_mutants(mutant, failing, hint, capsys):
    assert_fails(grade.block_sparse_attention, mutant, capsys, failing, hint)


def test_writing_into_the_inputs_changes_no_verdict(capsys):
    """The student gets copies: scaling q in place is right, locally and through the channel."""

    def scales_q_in_place(q, k, v, layout, block_size):
        q.mul_(1.0 / math.sqrt(q.shape[-1]))
        return SOLUTION.block_sparse_attention(q * math.sqrt(q.shape[-1]), k, v, layout, block_size)

    result, report = run(grade.block_sparse_attention, scales_q_in_place, capsys)
    assert result.points == grade.POINTS["block_sparse_attention"], report


def test_the_reference_work_meets_its_own_budget():
    """lcteach's vectorised kernel takes well under the CPU time the check allows, measured as the check does."""
    q, k, v = (torch.randn(part5.WORK_SHAPE) for _ in range(3))
    case = type("Case", (), {"generator": torch.Generator().manual_seed(0)})()
    layout = part5._work_layout(case)
    mask = layout_mask(layout, part5.WORK_BLOCK, q.shape[-2], k.shape[-2])
    seconds = min(
        measure_here(part5.reference_block_sparse, q, k, v, layout, part5.WORK_BLOCK).cpu_seconds for _ in range(3)
    )
    assert seconds < part5.WORK_RATIO / 2 * dense_seconds(q, k, v, mask)


# ---------------------------------------------------------------- 6. top-k attention


@pytest.mark.parametrize(
    ("mutant", "failing", "hint"),
    [
        (topk_with(keep=lambda k: k - 1), "keeps each query's top_k", "instead of top_k"),
        (topk_with(descending=False), "keeps each query's top_k", "smallest scores"),
        (topk_with(renormalise=False), "keeps each query's top_k", "without renormalising"),
        (topk_with(causal_first=False), "causal=True", "before masking"),
        (topk_with(honour_causal=False), "causal=True", "no causal mask although causal=True"),
        (topk_with(later_ties=True), "ties at the k-th score", "later key"),
    ],
    ids=["keeps-k-minus-1", "smallest", "not-renormalised", "topk-before-causal", "ignores-causal", "later-ties"],
)
def test_topk_mutants(mutant, failing, hint, capsys):
    assert_fails(grade.topk_attention, mutant, capsys, failing, hint)


def test_topk_nan_rows_fail_the_mask_mod_check(capsys):
    def no_nan_guard(q, k, v, top_k, causal=False, mask_mod=None):
        out, weights = SOLUTION.topk_attention(q, k, v, top_k, causal, mask_mod)
        empty = weights.sum(-1, keepdim=True) == 0
        return out.masked_fill(empty, float("nan")), weights.masked_fill(empty, float("nan"))

    assert_fails(grade.topk_attention, no_nan_guard, capsys, "mask_mod restricts", "NaN")


# ---------------------------------------------------------------- 7. layers for full reach


@pytest.mark.parametrize(
    ("mutant", "failing", "hint"),
    [
        (layers_with(residual=False), "patterns without the diagonal", "residual"),
        (layers_with(offset=1), "a causal sliding window", "off by one"),
        (layers_with(offset=-1), "bidirectional patterns", "off by one"),
        (layers_with(causal_target=False), "a causal sliding window", "for a causal pattern"),
    ],
    ids=["no-residual", "plus-one", "minus-one", "all-pairs-target"],
)
def test_layers_mutants(mutant, failing, hint, capsys):
    assert_fails(grade.minimal_layers, mutant, capsys, failing, hint)


def test_layers_returning_a_float_is_named(capsys):
    def as_float(pattern, n=None, causal=None):
        result = SOLUTION.minimal_layers(pattern, n, causal)
        return None if result is None else float(result)

    assert_fails(grade.minimal_layers, as_float, capsys, "a causal sliding window", "Python int")


# ---------------------------------------------------------------- delegation and broken submissions


def _delegating_layout(q_blocks, kv_blocks, blocks_per_row, seed):
    return lcteach.masks.random._random_rows(q_blocks, kv_blocks, blocks_per_row, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    ("part", "cheat", "named"),
    [
        (grade.strided, lambda stride, causal=False: lcteach.generate_strided(stride), "lcteach.masks"),
        (grade.random_block_layout, _delegating_layout, "lcteach.masks"),
        (
            grade.longformer,
            lambda w, g: or_masks(lcteach.generate_symmetric_window(w), lcteach.generate_global(g)),
            "lcteach.masks",
        ),
        (
            grade.bigbird,
            lambda n, w, g, r, seed: lcteach.bigbird_layout(n, w, g, r, seed=seed),
            "lcteach.masks",
        ),
        (grade.block_sparse_attention, lcteach.block_sparse_attention, "lcteach.kernels.block_sparse"),
        (
            grade.topk_attention,
            lambda q, k, v, top_k, causal=False, mask_mod=None: lcteach.topk_attention(
                q, k, v, top_k, causal=causal, mask_mod=mask_mod
            ),
            "lcteach.kernels.topk",
        ),
        (
            grade.minimal_layers,
            lambda p, n=None, causal=None: lcteach.minimal_layers_for_full_reach(p, n, causal=causal),
            "lcteach.analysis.reachability",
        ),
    ],
    ids=lambda value: value.__name__ if hasattr(value, "points") else None,
)
def test_delegating_to_lcteach_earns_nothing(part, cheat, named, capsys):
    result, report = run(part, cheat, capsys)
    assert result.points == 0 and named in report, report


def _raises(*args, **kwargs):
    raise RuntimeError("half-written")


BROKEN = {
    "not a function": 42,
    "returns None": lambda *args, **kwargs: None,
    "returns a string": lambda *args, **kwargs: "done",
    "returns the wrong tensor": lambda *args, **kwargs: torch.zeros(3),
    "raises": _raises,
    "returns a mask_mod that raises": lambda *args, **kwargs: _raises,
}


@pytest.mark.parametrize("part", grade.PARTS, ids=lambda p: p.__name__)
@pytest.mark.parametrize("broken", BROKEN, ids=str)
def test_broken_submissions_cost_only_their_part(part, broken, capsys):
    """Whatever a submission returns or raises, its part is graded (no exception escapes) and earns nothing."""
    result, report = run(part, BROKEN[broken], capsys)
    assert len(result.outcomes) == len(part.checks)
    assert result.points == 0, report
