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
from torch.nn.attention.flex_attention import and_masks, create_mask, or_masks

import lcteach
import lcteach.masks.random
from lcteach.grading import week2 as grade
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
) = contract_tests(grade, EXERCISES, total_points=20)


def assert_fails(part, mutant, capsys, failing: str, hint: str):
    """The mutant loses points on the check whose name starts with ``failing``, with ``hint`` in its text."""
    result, report = run(part, mutant, capsys)
    failures = failed(result)
    assert result.points < part.points, report
    assert any(name.startswith(failing) and hint in text for name, text in failures.items()), report
    return result, report


# ---------------------------------------------------------------- 1. strided


def _strided_with(distance=lambda q, kv, s: (q - kv) % s == 0, honour_causal=True, check=True):
    def generate(stride, causal=False):
        if check and stride < 1:
            raise ValueError("stride must be >= 1")
        return lambda b, h, q, kv: distance(q, kv, stride) & ((kv <= q) if causal and honour_causal else (q >= 0))

    return generate


@pytest.mark.parametrize(
    ("mutant", "failing", "hint"),
    [
        (_strided_with(distance=lambda q, kv, s: (q - kv) % (s + 1) == 0), "matches (i - j)", "a stride of"),
        (_strided_with(distance=lambda q, kv, s: kv % s == 0), "matches (i - j)", "multiples of the stride"),
        (_strided_with(distance=lambda q, kv, s: ((q - kv) % s == 0) & (q != kv)), "stride=1", "query itself"),
        (_strided_with(honour_causal=False), "causal=True keeps", "also looks at later keys"),
        (_strided_with(distance=lambda q, kv, s: ((q - kv) % s == 0) & (kv <= q)), "matches (i - j)", "both ways"),
        (_strided_with(check=False), "stride < 1", "raise ValueError"),
    ],
    ids=["stride-plus-one", "fixed-columns", "no-diagonal", "ignores-causal", "always-causal", "no-validation"],
)
def test_strided_mutants(mutant, failing, hint, capsys):
    assert_fails(grade.strided, mutant, capsys, failing, hint)


# ---------------------------------------------------------------- 2. random block layout


def _layout_from(draw_row, check=True, generator=True):
    """A random_block_layout whose rows come from ``draw_row(kv_blocks, per_row, generator, row)``."""

    def random_block_layout(q_blocks, kv_blocks, blocks_per_row, seed):
        if check and not 1 <= blocks_per_row <= kv_blocks:
            raise ValueError("bad blocks_per_row")
        g = torch.Generator().manual_seed(seed) if generator else None
        if not generator:
            torch.manual_seed(seed)
        layout = torch.zeros(q_blocks, kv_blocks, dtype=torch.bool)
        for row in range(q_blocks):
            layout[row, draw_row(kv_blocks, blocks_per_row, g, row)] = True
        return layout

    return random_block_layout


def _randperm(kv, r, g, row):
    return torch.randperm(kv, generator=g)[:r]


def _with_replacement(kv, r, g, row):
    return torch.randint(0, kv, (r,), generator=g)


def _never_last(kv, r, g, row):
    return torch.randperm(kv - 1, generator=g)[:r]


def _own_block_forced(kv, r, g, row):
    others = [j for j in torch.randperm(kv, generator=g).tolist() if j != row % kv]
    return torch.tensor([row % kv] + others[: r - 1])


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
        (_layout_from(_randperm, generator=False), "uses its own generator", "global random state of torch"),
        (_global_draws, "the same seed gives the same layout", "generator=g"),
        (_layout_from(_with_replacement), "bool (q_blocks, kv_blocks)", "with replacement"),
        (_layout_from(_never_last), "roughly uniform", "never drawn"),
        (_layout_from(_own_block_forced), "roughly uniform", "no block forced in"),
        (_one_row_repeated, "bool (q_blocks, kv_blocks)", "draw every row anew"),
        (_layout_from(_randperm, check=False), "blocks_per_row above", "instead of raising ValueError"),
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


def _argsort_rows(q_blocks, kv_blocks, blocks_per_row, seed):
    if not 1 <= blocks_per_row <= kv_blocks:
        raise ValueError("bad blocks_per_row")
    ranks = torch.rand(q_blocks, kv_blocks, generator=torch.Generator().manual_seed(seed)).argsort(dim=-1)
    return torch.zeros(q_blocks, kv_blocks, dtype=torch.bool).scatter_(-1, ranks[:, :blocks_per_row], True)


def _multinomial(kv, r, g, row):
    return torch.multinomial(torch.ones(kv), r, replacement=False, generator=g)


@pytest.mark.parametrize("hidden", [None, 7331], ids=["public", "hidden"])
@pytest.mark.parametrize("layout", [_argsort_rows, _layout_from(_multinomial)], ids=["argsort", "multinomial"])
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


def _longformer_with(radius=lambda w: w // 2, rows=True, cols=True, causal=False, count_extra=0):
    def generate(window, global_tokens):
        if window < 1 or window % 2 == 0:
            raise ValueError("window must be odd and >= 1")
        positions = range(global_tokens + count_extra) if isinstance(global_tokens, int) else global_tokens

        def is_global(idx):
            flag = idx < 0
            for p in positions:
                flag = flag | (idx == p)
            return flag

        def longformer(b, h, q, kv):
            band = ((q - kv >= 0) & (q - kv < window)) if causal else (q - kv).abs() <= radius(window)
            return band | (is_global(q) if rows else q < 0) | (is_global(kv) if cols else q < 0)

        return longformer

    return generate


@pytest.mark.parametrize(
    ("mutant", "failing", "hint"),
    [
        (_longformer_with(radius=lambda w: w), "global tokens as a count", "a radius of"),
        (_longformer_with(causal=True), "global tokens as a count", "causal window"),
        (_longformer_with(cols=False), "global tokens as a list", "global rows only"),
        (_longformer_with(rows=False), "global tokens as a list", "global columns only"),
        (_longformer_with(count_extra=1), "global tokens as a count", "the first"),
    ],
    ids=["radius-is-window", "causal-window", "rows-only", "columns-only", "count-plus-one"],
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


# ---------------------------------------------------------------- 4. BigBird


def _bigbird_with(block_index=lambda layout, q, kv, s: layout[q // s, kv // s], combine=or_masks, causal_on="all"):
    def generate(window, global_tokens, layout, block_size, causal=False):
        def blocks(b, h, q, kv):
            return block_index(layout, q, kv, block_size)

        window_part = SOLUTION.generate_longformer(window, global_tokens)
        if causal and causal_on == "longformer":
            return or_masks(and_masks(SOLUTION.causal_mask, window_part), blocks)
        union = combine(window_part, blocks)
        return and_masks(SOLUTION.causal_mask, union) if causal and causal_on == "all" else union

    return generate


@pytest.mark.parametrize(
    ("mutant", "failing", "hint"),
    [
        (_bigbird_with(block_index=lambda layout, q, kv, s: layout[kv // s, q // s]), "any block layout", "transposed"),
        (
            _bigbird_with(block_index=lambda layout, q, kv, s: layout[q % s, kv % s]),
            "any block layout",
            "% instead of //",
        ),
        (_bigbird_with(combine=and_masks), "equals BigBird", "and_masks where"),
        (_bigbird_with(causal_on="nothing"), "causal=True", "no causal mask although causal=True"),
        (_bigbird_with(causal_on="longformer"), "causal=True", "must wrap the whole union"),
    ],
    ids=["transposed-layout", "modulo-blocks", "and-instead-of-or", "ignores-causal", "causal-longformer-only"],
)
def test_bigbird_mutants(mutant, failing, hint, capsys):
    assert_fails(grade.bigbird, mutant, capsys, failing, hint)


def test_bigbird_without_the_blocks_is_named(capsys):
    def longformer_only(window, global_tokens, layout, block_size, causal=False):
        union = SOLUTION.generate_longformer(window, global_tokens)
        return and_masks(SOLUTION.causal_mask, union) if causal else union

    result, report = run(grade.bigbird, longformer_only, capsys)
    assert result.points == 0 and "without the random blocks" in report, report


# ---------------------------------------------------------------- 5. block-sparse attention


def dense_then_mask(q, k, v, layout, block_size):
    """Right values through the full (Nq, Nk) scores and a token mask: dense work."""
    n_q, n_k = q.shape[-2], k.shape[-2]
    mask = layout.repeat_interleave(block_size, 0).repeat_interleave(block_size, 1)[:n_q, :n_k]
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1).nan_to_num(0.0) @ v


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
    assert result.points == 2 and "of masked dense attention" in report and "for all keys" in report, report


@pytest.mark.parametrize("dense_work", [every_block_then_skip, elementwise_rows], ids=["every-block", "elementwise"])
def test_dense_work_in_any_form_fails_the_work_check(dense_work, capsys):
    result, report = run(grade.block_sparse_attention, dense_work, capsys)
    assert WORK_CHECK in failed(result), report


def _sparse_with(scale=True, per_block=False, pad_keys=False, transpose=False, nan_rows=False):
    def attention(q, k, v, layout, block_size):
        if transpose:
            layout = layout.T
        n_k = k.shape[-2]
        if pad_keys:
            pad = -n_k % block_size
            k, v = (torch.nn.functional.pad(t, (0, 0, 0, pad)) for t in (k, v))
            n_k = k.shape[-2]
        factor = 1 / math.sqrt(q.shape[-1]) if scale else 1.0
        out = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype)
        for qi in range(layout.shape[0]):
            rows = slice(qi * block_size, (qi + 1) * block_size)
            blocks = [
                torch.arange(kj * block_size, min((kj + 1) * block_size, n_k))
                for kj in layout[qi].nonzero().flatten().tolist()
            ]
            if not blocks:
                if nan_rows:  # the softmax of an all-masked row
                    empty = torch.full((*q[..., rows, :].shape[:-1], 1), float("-inf"), dtype=q.dtype)
                    out[..., rows, :] = torch.softmax(empty, dim=-1) @ v[..., :1, :]
                continue
            if per_block:
                for keys in blocks:
                    s = q[..., rows, :] @ k[..., keys, :].transpose(-2, -1) * factor
                    out[..., rows, :] += torch.softmax(s, dim=-1) @ v[..., keys, :]
                continue
            keys = torch.cat(blocks)
            s = q[..., rows, :] @ k[..., keys, :].transpose(-2, -1) * factor
            out[..., rows, :] = torch.softmax(s, dim=-1) @ v[..., keys, :]
        return out

    return attention


@pytest.mark.parametrize(
    ("mutant", "failing", "hint"),
    [
        (_sparse_with(scale=False), "equals masked dense", "without the 1/sqrt(d) scaling"),
        (_sparse_with(per_block=True), "equals masked dense", "inside each block on its own"),
        (_sparse_with(pad_keys=True), "float64, ragged", "zero padding of the last key block"),
        (_sparse_with(transpose=True), "equals masked dense", "the layout transposed"),
        (_sparse_with(nan_rows=True), "a query block with no active key block", "zero output"),
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
    mask = part5._layout_mask(layout, part5.WORK_BLOCK, q.shape[-2], k.shape[-2])
    seconds = min(
        measure_here(part5.reference_block_sparse, q, k, v, layout, part5.WORK_BLOCK).cpu_seconds for _ in range(3)
    )
    assert seconds < part5.WORK_RATIO / 2 * part5.dense_seconds(q, k, v, mask)


# ---------------------------------------------------------------- 6. top-k attention


def _topk_with(
    keep=lambda k: k, descending=True, causal_first=True, renormalise=True, honour_causal=True, later_ties=False
):
    def topk_attention(q, k, v, top_k, causal=False, mask_mod=None):
        n_q, n_k = q.shape[-2], k.shape[-2]
        allowed = torch.ones(n_q, n_k, dtype=torch.bool)
        if causal and honour_causal:
            allowed = allowed.tril()
        if mask_mod is not None:
            allowed = allowed & create_mask(mask_mod, None, None, n_q, n_k, device="cpu")[0, 0]
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        ranked = scores.masked_fill(~allowed, float("-inf") if descending else float("inf")) if causal_first else scores
        if later_ties:
            order = n_k - 1 - torch.sort(ranked.flip(-1), dim=-1, descending=descending, stable=True).indices
        else:
            order = torch.sort(ranked, dim=-1, descending=descending, stable=True).indices
        kept = torch.zeros_like(scores, dtype=torch.bool).scatter(-1, order[..., : keep(top_k)], True) & allowed
        if renormalise:
            weights = torch.softmax(scores.masked_fill(~kept, float("-inf")), dim=-1).nan_to_num(0.0)
        else:
            weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1).nan_to_num(0.0) * kept
        return weights @ v, weights

    return topk_attention


@pytest.mark.parametrize(
    ("mutant", "failing", "hint"),
    [
        (_topk_with(keep=lambda k: k - 1), "keeps each query's top_k", "instead of top_k"),
        (_topk_with(descending=False), "keeps each query's top_k", "smallest scores"),
        (_topk_with(renormalise=False), "keeps each query's top_k", "without renormalising"),
        (_topk_with(causal_first=False), "causal=True", "before masking"),
        (_topk_with(honour_causal=False), "causal=True", "no causal mask although causal=True"),
        (_topk_with(later_ties=True), "ties at the k-th score", "later key"),
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


def _layers_with(residual=True, offset=0, causal_target=True):
    def minimal_layers(pattern, n=None, causal=None):
        if callable(pattern):
            pattern = create_mask(pattern, None, None, n, n, device="cpu")[0, 0]
        size = pattern.shape[0]
        step = (pattern | torch.eye(size, dtype=torch.bool)) if residual else pattern
        is_causal = (not pattern.triu(1).any() if causal is None else causal) and causal_target
        target = torch.ones(size, size, dtype=torch.bool)
        target = target.tril() if is_causal else target
        reach = torch.eye(size, dtype=torch.bool) if residual else pattern.clone()
        for layers in range(0 if residual else 1, size + 1):
            if (reach | ~target).all():
                return layers + offset
            reach = (step.float() @ reach.float()) > 0
        return None

    return minimal_layers


@pytest.mark.parametrize(
    ("mutant", "failing", "hint"),
    [
        (_layers_with(residual=False), "patterns without the diagonal", "residual"),
        (_layers_with(offset=1), "a causal sliding window", "off by one"),
        (_layers_with(offset=-1), "bidirectional patterns", "off by one"),
        (_layers_with(causal_target=False), "a causal sliding window", "for a causal pattern"),
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
            lambda w, g, layout, s, causal=False: or_masks(
                lcteach.generate_symmetric_window(w),
                lcteach.generate_global(g),
                lcteach.generate_block_sparse(layout, s),
            ),
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
