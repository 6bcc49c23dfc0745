"""Week 2 graders: sparse patterns as mask_mods, a seeded random layout, block-sparse and top-k
attention, and reachability through stacked layers. Called from the Week 2 exercises notebook.

Usage in a graded cell: ``grade.strided(generate_strided)`` runs the self-check on public
inputs; the hidden test code calls it again with a secret ``seed`` for the grade.
"""

from __future__ import annotations

import functools
import math
import random

import numpy as np
import torch
from torch.nn.attention.flex_attention import and_masks, or_masks
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from lcteach.analysis import minimal_layers_for_full_reach as reference_minimal_layers
from lcteach.kernels import block_layout as reference_block_layout
from lcteach.kernels import block_sparse_attention as reference_block_sparse
from lcteach.kernels import block_sparse_work
from lcteach.kernels import dense_attention as reference_attention
from lcteach.kernels import topk_attention as reference_topk
from lcteach.masks import causal_mask as reference_causal_mask
from lcteach.masks import generate_bigbird as reference_bigbird
from lcteach.masks import generate_block_sparse as reference_block_sparse_mask
from lcteach.masks import generate_global as reference_global
from lcteach.masks import generate_random_blocks as reference_random_blocks
from lcteach.masks import generate_sliding_window as reference_sliding_window
from lcteach.masks import generate_strided as reference_strided
from lcteach.masks import generate_symmetric_window as reference_symmetric_window
from lcteach.masks import materialize_mask

from .core import (
    Case,
    CheckFailed,
    check,
    expect_close,
    expect_mask,
    expect_pair,
    expect_tensor,
    expect_value_error,
    make_part,
    student_mask,
)

_part = functools.partial(make_part, __name__)


def _grid(n_q: int, n_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Query indices (n_q, 1) and key indices (1, n_k), for writing down masks of mistakes."""
    return torch.arange(n_q)[:, None], torch.arange(n_k)[None, :]


def _materialised(mask_mod, n_q: int, n_k: int | None = None) -> torch.Tensor:
    """A reference mask_mod as a bool (n_q, n_k) matrix."""
    return materialize_mask(mask_mod, n_q, n_k)[0, 0]


# ---------------------------------------------------------------- 1. strided (dilated) pattern


def _strided_mistakes(n_q: int, n_k: int, stride: int, causal: bool) -> dict[str, torch.Tensor]:
    i, j = _grid(n_q, n_k)
    earlier = j <= i if causal else torch.ones(n_q, n_k, dtype=torch.bool)
    on_stride = (i - j) % stride == 0
    mistakes = {
        f"a stride of {stride + 1}: keys i, i - stride, i + stride, ... are exactly `stride` apart": earlier
        & ((i - j) % (stride + 1) == 0),
        "keys at multiples of the stride (kv_idx % stride == 0) instead of multiples of the stride away from the "
        "query ((q_idx - kv_idx) % stride == 0)": earlier & (j % stride == 0),
        "the pattern without the query itself: a distance of 0 is a multiple of the stride": earlier
        & on_stride
        & (i != j),
    }
    if stride > 1:
        mistakes[f"a stride of {stride - 1}: keys are exactly `stride` apart"] = earlier & ((i - j) % (stride - 1) == 0)
    if causal:
        mistakes["a pattern that also looks at later keys: causal=True keeps only keys j <= i"] = on_stride
        mistakes["later keys instead of earlier ones (q_idx and kv_idx swapped)"] = on_stride & (j >= i)
    else:
        mistakes["only earlier keys: without causal=True the pattern looks both ways"] = on_stride & (j <= i)
    return mistakes


def _check_strided(student, case: Case, n_q: int, n_k: int, stride: int, causal: bool):
    mask_mod = case.call(student, stride, causal=True) if causal else case.call(student, stride)
    reference = reference_strided(stride)
    expected = _materialised(and_masks(reference_causal_mask, reference) if causal else reference, n_q, n_k)
    what = f"generate_strided({stride}{', causal=True' if causal else ''}) with {n_q} queries and {n_k} keys"
    expect_mask(student_mask(case, mask_mod, n_q, n_k), expected, what, _strided_mistakes(n_q, n_k, stride, causal))


@check("stride=1 is full attention (with causal=True: the causal mask)")
def _strided_one(student, case):
    n = case.randint(4, 24)
    _check_strided(student, case, n, n, 1, causal=False)
    _check_strided(student, case, n, n, 1, causal=True)


@check("matches (i - j) % stride == 0 in both directions, for random n and stride")
def _strided_random(student, case):
    stride = case.randint(2, 7)
    _check_strided(student, case, case.randint(3 * stride, 60), case.randint(3 * stride, 60), stride, causal=False)


@check("causal=True keeps only the earlier keys, the query included")
def _strided_causal(student, case):
    stride = case.randint(2, 7)
    n = case.randint(3 * stride, 60)
    _check_strided(student, case, n, n, stride, causal=True)


@check("stride < 1 raises ValueError")
def _strided_invalid(student, case):
    for bad in (0, -case.randint(1, 5)):
        expect_value_error(
            case,
            student,
            bad,
            call=f"generate_strided({bad})",
            hint="check the argument first: `if stride < 1: raise ValueError(...)` with a message naming it",
        )


strided = _part("strided", 2, _strided_one, _strided_random, _strided_causal, _strided_invalid)


# ---------------------------------------------------------------- 2. seeded random block layout


def _expect_layout(layout, q_blocks: int, kv_blocks: int, per_row: int, what: str) -> torch.Tensor:
    """Check one layout's type, shape and per-row count; return it."""
    if type(layout) is not torch.Tensor:
        raise CheckFailed(f"{what} should be a torch.Tensor, got {type(layout).__name__}")
    if tuple(layout.shape) != (q_blocks, kv_blocks):
        hint = (
            "one row per query block: shape (q_blocks, kv_blocks)"
            if tuple(layout.shape) == (kv_blocks, q_blocks)
            else "build it with torch.zeros(q_blocks, kv_blocks, dtype=torch.bool)"
        )
        raise CheckFailed(f"{what} should have shape {(q_blocks, kv_blocks)}, got {tuple(layout.shape)}", hint)
    if layout.dtype != torch.bool:
        raise CheckFailed(
            f"{what} should be a bool tensor (True = the block is computed), got {layout.dtype}",
            "create it with dtype=torch.bool, or compare: layout = counts > 0",
        )
    counts = layout.sum(dim=-1)
    wrong = (counts != per_row).nonzero().flatten()
    if len(wrong):
        row = int(wrong[0])
        hint = (
            "drawing with replacement (torch.randint) can pick the same block twice; draw distinct blocks, e.g. "
            "torch.randperm(kv_blocks, generator=g)[:blocks_per_row]"
            if counts[row] < per_row
            else "mark exactly blocks_per_row blocks in each row"
        )
        raise CheckFailed(
            f"{what}: row {row} has {int(counts[row])} blocks, expected exactly {per_row} "
            f"({len(wrong)} of {q_blocks} rows are off)",
            hint,
        )
    return layout


def _layout(student, case: Case, q_blocks: int, kv_blocks: int, per_row: int, seed: int) -> torch.Tensor:
    return _expect_layout(
        case.call(student, q_blocks, kv_blocks, per_row, seed),
        q_blocks,
        kv_blocks,
        per_row,
        f"random_block_layout({q_blocks}, {kv_blocks}, {per_row}, seed={seed})",
    )


@check("bool (q_blocks, kv_blocks) with exactly blocks_per_row distinct blocks in every row")
def _layout_shape(student, case):
    kv_blocks = case.randint(5, 9)
    for q_blocks, per_row in (
        (case.randint(12, 20), kv_blocks - 1),
        (case.randint(3, 8), case.randint(1, 3)),
        (case.randint(2, 5), kv_blocks),
    ):
        _layout(student, case, q_blocks, kv_blocks, per_row, case.randint(0, 10**6))
    many = _layout(student, case, 16, kv_blocks, 2, case.randint(0, 10**6))
    if (many == many[0]).all():
        raise CheckFailed(
            "all 16 rows of a layout hold the same key blocks",
            "draw every row anew: one draw per query block, all from the same generator",
        )


@check("the same seed gives the same layout; different seeds give different layouts")
def _layout_seeded(student, case):
    seed = case.randint(0, 10**6)
    first, again = (_layout(student, case, 12, 10, 3, seed) for _ in range(2))
    if not torch.equal(first, again):
        raise CheckFailed(
            f"two calls with seed={seed} returned different layouts",
            "make a generator from the seed, g = torch.Generator().manual_seed(seed), and pass "
            "generator=g to every random call",
        )
    for other_seed in (seed + 1, seed + case.randint(2, 1000)):
        if torch.equal(first, _layout(student, case, 12, 10, 3, other_seed)):
            raise CheckFailed(
                f"seeds {seed} and {other_seed} gave the same layout",
                "the draws must come from a generator seeded with `seed`",
            )


_GLOBAL_RNGS = ("torch", "random", "numpy.random")


def _global_states() -> tuple:
    return torch.get_rng_state(), random.getstate(), np.random.get_state()


def _same_state(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, tuple) and a and a[0] == "MT19937":  # numpy: (name, keys, pos, has_gauss, cached)
        return np.array_equal(a[1], b[1]) and a[2:] == b[2:]
    return a == b


def _call_with_global_seed(fn, global_seed: int, *args) -> tuple:
    """Call ``fn(*args)`` with torch's, Python's and numpy's global RNGs seeded to ``global_seed``;
    return (its result, the names of the global RNGs it moved). The RNGs are restored afterwards."""
    saved = _global_states()
    try:
        torch.manual_seed(global_seed)
        random.seed(global_seed)
        np.random.seed(global_seed)
        before = _global_states()
        result = fn(*args)
        moved = [
            name
            for name, was, now in zip(_GLOBAL_RNGS, before, _global_states(), strict=True)
            if not _same_state(was, now)
        ]
        return result, moved
    finally:
        torch.set_rng_state(saved[0])
        random.setstate(saved[1])
        np.random.set_state(saved[2])


@check("uses its own generator: leaves the global RNGs alone and does not depend on them")
def _layout_private_rng(student, case):
    seed, layouts = case.randint(0, 10**6), []
    for global_seed in (case.randint(0, 1000), case.randint(1001, 2000)):
        result = case.call(_call_with_global_seed, student, global_seed, 10, 8, 3, seed)
        if not isinstance(result, tuple) or len(result) != 2:
            raise CheckFailed("the grader's measurement returned no result")
        layout, moved = result
        if moved:
            raise CheckFailed(
                f"random_block_layout changed the global random state of {', '.join(moved)}",
                "torch.manual_seed(seed) and random calls without generator= use the global RNG, which "
                "the rest of the notebook shares: make g = torch.Generator().manual_seed(seed) and pass "
                "generator=g",
            )
        layouts.append(_expect_layout(layout, 10, 8, 3, f"random_block_layout(10, 8, 3, seed={seed})"))
    if not torch.equal(*layouts):
        raise CheckFailed(
            f"with seed={seed} the layout changed when the global RNG was seeded differently",
            "your draws come from the global RNG: pass generator=g to every random call",
        )


UNIFORM_SEEDS = 100  # layouts drawn for the uniformity check


@check("roughly uniform: over many seeds every (row, key block) cell is drawn about equally often")
def _layout_uniform(student, case):
    q_blocks, kv_blocks, per_row = 6, case.randint(6, 8), 2
    start = case.randint(0, 10**6)
    counts = torch.zeros(q_blocks, kv_blocks)
    for seed in range(start, start + UNIFORM_SEEDS):
        counts += _layout(student, case, q_blocks, kv_blocks, per_row, seed)
    p = per_row / kv_blocks  # the chance that a row holds a given key block
    column = counts.sum(dim=0)
    if column[-1] == 0:
        raise CheckFailed(
            f"over {UNIFORM_SEEDS} seeds the last key block was never drawn",
            "the upper bound of torch.randint and the size of torch.randperm are exclusive: "
            "draw from all kv_blocks blocks",
        )
    hint = "every key block must be equally likely in every row: no block forced in, none left out"
    # Counts are binomial; allow 5 standard deviations, per key block and per (row, key block) cell.
    expected, allowed = UNIFORM_SEEDS * q_blocks * p, 5 * math.sqrt(UNIFORM_SEEDS * q_blocks * p * (1 - p))
    col = int((column - expected).abs().argmax())
    if abs(column[col] - expected) > allowed:
        raise CheckFailed(
            f"over {UNIFORM_SEEDS} seeds of {q_blocks} rows, key block {col} was drawn "
            f"{int(column[col])} times; a uniform draw gives about {expected:.0f} +- {allowed:.0f}",
            hint,
        )
    expected, allowed = UNIFORM_SEEDS * p, 5 * math.sqrt(UNIFORM_SEEDS * p * (1 - p))
    row, col = divmod(int((counts - expected).abs().argmax()), kv_blocks)
    if abs(counts[row, col] - expected) > allowed:
        raise CheckFailed(
            f"over {UNIFORM_SEEDS} seeds, row {row} drew key block {col} {int(counts[row, col])} times; "
            f"a uniform draw gives about {expected:.0f} +- {allowed:.0f}",
            hint,
        )


@check("blocks_per_row above kv_blocks or below 1 raises ValueError")
def _layout_invalid(student, case):
    kv_blocks = case.randint(2, 8)
    for bad in (kv_blocks + 1, 0):
        expect_value_error(
            case,
            student,
            4,
            kv_blocks,
            bad,
            0,
            call=f"random_block_layout(4, {kv_blocks}, {bad}, 0)",
            hint="a row has kv_blocks distinct blocks to choose from: check 1 <= blocks_per_row <= kv_blocks",
        )


random_block_layout = _part(
    "random_block_layout", 2, _layout_shape, _layout_seeded, _layout_private_rng, _layout_uniform, _layout_invalid
)


# ---------------------------------------------------------------- 3. Longformer: window + global tokens


def _global_flags(global_tokens, n: int) -> torch.Tensor:
    positions = range(global_tokens) if isinstance(global_tokens, int) else global_tokens
    flags = torch.zeros(n, dtype=torch.bool)
    flags[[p for p in positions if p < n]] = True
    return flags


def _longformer_reference(window: int, global_tokens):
    return or_masks(reference_symmetric_window(window), reference_global(global_tokens))


def _longformer_mistakes(n: int, window: int, global_tokens) -> dict[str, torch.Tensor]:
    i, j = _grid(n, n)
    radius = window // 2
    g = _global_flags(global_tokens, n)
    rows, cols = g[:, None], g[None, :]
    band = (i - j).abs() <= radius
    mistakes = {
        f"a radius of {window}: `window` counts every key of a row, so the radius is window // 2 = {radius}": (
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
        mistakes[f"a radius of {radius - 1}: |i - j| <= window // 2 includes the ends"] = (
            ((i - j).abs() < radius) | rows | cols
        )
    if isinstance(global_tokens, int):
        more = torch.arange(n) <= global_tokens
        mistakes[f"the first {global_tokens + 1} tokens global: a count g means positions 0 .. g-1"] = (
            band | more[:, None] | more[None, :]
        )
    return mistakes


def _check_longformer(student, case: Case, n: int, window: int, global_tokens):
    mask_mod = case.call(student, window, global_tokens)
    expected = _materialised(_longformer_reference(window, global_tokens), n)
    expect_mask(
        student_mask(case, mask_mod, n, n),
        expected,
        f"generate_longformer({window}, {global_tokens!r}) over {n} tokens",
        _longformer_mistakes(n, window, global_tokens),
    )


def _odd(case: Case, low: int, high: int) -> int:
    return 2 * case.randint(low // 2, (high - 1) // 2) + 1


@check("global tokens as a count g: the first g tokens attend everywhere and are attended by all")
def _longformer_count(student, case):
    n = case.randint(16, 48)
    _check_longformer(student, case, n, _odd(case, 3, 9), case.randint(1, 3))


@check("global tokens as a list of positions, anywhere in the sequence")
def _longformer_positions(student, case):
    n = case.randint(16, 48)
    positions = sorted({case.randint(1, n - 2) for _ in range(3)} | {n - 1})
    _check_longformer(student, case, n, _odd(case, 3, 9), positions)


@check("window=1 is the query alone; a window covering the sequence is full attention")
def _longformer_edges(student, case):
    n = case.randint(8, 30)
    _check_longformer(student, case, n, 1, [case.randint(0, n - 1)])
    _check_longformer(student, case, n, _odd(case, 2 * n - 1, 2 * n + 6), 1)


@check("an even window or a window < 1 raises ValueError")
def _longformer_invalid(student, case):
    for bad in (2 * case.randint(1, 4), 0, -1):
        expect_value_error(
            case,
            student,
            bad,
            1,
            call=f"generate_longformer({bad}, 1)",
            hint="a symmetric window holds the query and the same number of keys on each side, so it is "
            "odd and at least 1: check it and raise ValueError",
        )


longformer = _part("longformer", 2, _longformer_count, _longformer_positions, _longformer_edges, _longformer_invalid)


# ---------------------------------------------------------------- 4. BigBird by composition


def _bigbird_reference(window: int, global_tokens, layout: torch.Tensor, block_size: int, causal: bool):
    parts = or_masks(_longformer_reference(window, global_tokens), reference_block_sparse_mask(layout, block_size))
    return and_masks(reference_causal_mask, parts) if causal else parts


def _bigbird_mistakes(n, window, global_tokens, layout, block_size, causal) -> dict[str, torch.Tensor]:
    i, j = _grid(n, n)
    window_mask = _materialised(reference_symmetric_window(window), n)
    g = _global_flags(global_tokens, n)
    global_mask = g[:, None] | g[None, :]
    blocks = layout[i // block_size, j // block_size]
    earlier = j <= i if causal else torch.ones(n, n, dtype=torch.bool)
    mistakes = {
        "the layout transposed: query i attends key j when layout[i // block_size, j // block_size]": earlier
        & (window_mask | global_mask | layout.T[i // block_size, j // block_size]),
        "and_masks where BigBird takes the union (or_masks) of its parts": earlier
        & (window_mask | global_mask)
        & blocks,
        "the window and global tokens without the random blocks": earlier & (window_mask | global_mask),
        "the random blocks alone": earlier & blocks,
    }
    if block_size <= min(layout.shape):
        mistakes["block indices from % instead of //: position i lies in block i // block_size"] = earlier & (
            window_mask | global_mask | layout[i % block_size, j % block_size]
        )
    if causal:
        mistakes["no causal mask although causal=True: and_masks(causal, bigbird)"] = window_mask | global_mask | blocks
        whole = "and_masks(causal, ...) must wrap the whole union"
        mistakes[f"the causal mask on the Longformer part only: {whole}, random blocks included"] = (
            (j <= i) & (window_mask | global_mask)
        ) | blocks
        mistakes[f"the causal mask on the window only: {whole}"] = ((j <= i) & window_mask) | global_mask | blocks
    else:
        mistakes["a causal mask although causal=False"] = (j <= i) & (window_mask | global_mask | blocks)
    return mistakes


def _check_bigbird(
    student,
    case: Case,
    window: int,
    global_tokens,
    layout: torch.Tensor,
    block_size: int,
    causal: bool,
    expected: torch.Tensor | None = None,
):
    n = layout.shape[0] * block_size
    args = (window, global_tokens, layout, block_size)
    mask_mod = case.call(student, *args, causal=True) if causal else case.call(student, *args)
    if expected is None:
        expected = _materialised(_bigbird_reference(window, global_tokens, layout, block_size, causal), n)
    what = f"generate_bigbird({window}, {global_tokens!r}, layout, {block_size}{', causal=True' if causal else ''})"
    expect_mask(
        student_mask(case, mask_mod, n, n),
        expected,
        f"{what} over {n} tokens",
        _bigbird_mistakes(n, window, global_tokens, layout, block_size, causal),
    )


@check("equals BigBird (lcteach.generate_bigbird) with the random layout of the same seed")
def _bigbird_seeded(student, case):
    block_size, blocks = case.randint(2, 4), case.randint(6, 10)
    n, per_row, seed = block_size * blocks, case.randint(1, 2), case.randint(0, 10**6)
    window, num_global = _odd(case, 3, 7), case.randint(1, 2)
    # The layout generate_random_blocks draws from this seed: a block is active when it allows any pair.
    layout = reference_block_layout(
        reference_random_blocks(n, block_size, per_row, seed=seed), n, block_size=block_size
    )[0, 0]
    expected = _materialised(reference_bigbird(window, num_global, per_row, block_size, n, seed=seed), n)
    _check_bigbird(student, case, window, num_global, layout, block_size, False, expected)


def _random_layout(case: Case, blocks: int, density: float) -> torch.Tensor:
    return torch.rand(blocks, blocks, generator=case.generator) < density


@check("any block layout: query i attends key j when layout[i // block_size, j // block_size]")
def _bigbird_layout(student, case):
    block_size, blocks = case.randint(2, 5), case.randint(5, 9)
    layout = _random_layout(case, blocks, 0.3)
    layout[0, -1] = True  # a block far from the window and the global token
    _check_bigbird(student, case, 1, [case.randint(0, blocks * block_size - 1)], layout, block_size, False)


@check("causal=True: the causal mask applies to every part")
def _bigbird_causal(student, case):
    block_size, blocks = case.randint(2, 4), case.randint(5, 9)
    positions = sorted({case.randint(0, blocks * block_size - 1) for _ in range(2)})
    _check_bigbird(student, case, _odd(case, 3, 7), positions, _random_layout(case, blocks, 0.3), block_size, True)


bigbird = _part("bigbird", 3, _bigbird_seeded, _bigbird_layout, _bigbird_causal)


# ---------------------------------------------------------------- 5. block-sparse attention


def _layout_mask(layout: torch.Tensor, block_size: int, n_q: int, n_k: int) -> torch.Tensor:
    """The (n_q, n_k) token mask of a block layout."""
    return layout.repeat_interleave(block_size, 0).repeat_interleave(block_size, 1)[:n_q, :n_k]


def _per_block_softmax(q, k, v, layout, block_size) -> torch.Tensor:
    """The output when each block's scores are normalised on their own instead of across the row."""
    n_q, n_k = q.shape[-2], k.shape[-2]
    pad = -n_k % block_size
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~_layout_mask(layout, block_size, n_q, n_k), float("-inf"))
    scores = torch.nn.functional.pad(scores, (0, pad), value=float("-inf")).unflatten(-1, (-1, block_size))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0).flatten(-2)[..., :n_k]
    return weights @ v


def _block_sparse_mistakes(q, k, v, layout, block_size) -> dict[str, torch.Tensor]:
    n_q, n_k = q.shape[-2], k.shape[-2]
    mask = _layout_mask(layout, block_size, n_q, n_k)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    over_queries = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-2).nan_to_num(0.0) @ v
    pad = -n_k % block_size
    padded_k, padded_v = (torch.nn.functional.pad(t, (0, 0, 0, pad)) for t in (k, v))
    padded_mask = _layout_mask(layout, block_size, n_q, n_k + pad)
    mistakes = {
        "attention without the 1/sqrt(d) scaling": reference_block_sparse(q, k, v, layout, block_size, scale=1.0),
        "a softmax inside each block on its own: normalise over all active blocks of the query's row together": _per_block_softmax(
            q, k, v, layout, block_size
        ),
        "a softmax over the query axis (dim=-2) instead of the key axis": over_queries,
    }
    if pad:
        mistakes["attending the zero padding of the last key block: keys past Nk do not exist"] = reference_attention(
            q, padded_k, padded_v, padded_mask
        )[0]
    if layout.shape[0] == layout.shape[1]:
        mistakes["the layout transposed: layout[qi, kj] says whether query block qi attends key block kj"] = (
            reference_block_sparse(q, k, v, layout.T.contiguous(), block_size)
        )
    return mistakes


def _check_block_sparse(
    student,
    case: Case,
    shape: tuple[int, ...],
    n_k: int,
    block_size: int,
    density: float,
    dtype=torch.float32,
    empty_rows: int = 0,
):
    batch, heads, n_q, d = shape
    q, k, v = (
        case.randn(*shape, dtype=dtype),
        case.randn(batch, heads, n_k, d, dtype=dtype),
        case.randn(batch, heads, n_k, case.randint(2, 8), dtype=dtype),
    )
    q_blocks, kv_blocks = -(-n_q // block_size), -(-n_k // block_size)
    layout = torch.rand(q_blocks, kv_blocks, generator=case.generator) < density
    layout[torch.arange(q_blocks), torch.randint(0, kv_blocks, (q_blocks,), generator=case.generator)] = True
    if empty_rows:
        layout[torch.randperm(layout.shape[0], generator=case.generator)[:empty_rows]] = False
    out = case.call(student, q, k, v, layout, block_size)
    expected = reference_block_sparse(q, k, v, layout, block_size)
    what = f"out (Nq={n_q}, Nk={n_k}, block_size={block_size}, {str(dtype).removeprefix('torch.')})"
    out = expect_tensor(out, what, expected.shape, dtype)
    if empty_rows and not torch.isfinite(out).all():
        raise CheckFailed(
            f"{what}: a query block with no active key block gives inf or NaN",
            "a row with no allowed key has nothing to average: give its queries a zero output",
        )
    expect_close(
        out,
        expected,
        what,
        "compare with masked dense attention on a small example, block by block",
        mistakes=_block_sparse_mistakes(q, k, v, layout, block_size),
    )


@check("equals masked dense attention when n is a multiple of block_size")
def _block_sparse_even(student, case):
    block_size = case.randint(3, 8)
    n = block_size * case.randint(3, 8)
    _check_block_sparse(
        student, case, (case.randint(1, 2), case.randint(1, 3), n, case.randint(2, 8)), n, block_size, 0.3
    )


@check("float64, ragged last blocks and Nq != Nk")
def _block_sparse_ragged(student, case):
    block_size = case.randint(4, 8)
    n_q = block_size * case.randint(2, 6) + case.randint(1, block_size - 1)
    n_k = block_size * case.randint(2, 6) + case.randint(1, block_size - 1)
    _check_block_sparse(
        student, case, (1, case.randint(1, 3), n_q, case.randint(2, 8)), n_k, block_size, 0.4, dtype=torch.float64
    )


@check("a query block with no active key block gets a zero output")
def _block_sparse_empty(student, case):
    block_size = case.randint(3, 6)
    n = block_size * case.randint(4, 8)
    _check_block_sparse(student, case, (1, 2, n, 4), n, block_size, 0.3, empty_rows=2)


class _ElementCounter(TorchDispatchMode):
    """Counts the elements of every tensor an operator produces; views and in-place writes produce none."""

    def __init__(self):
        super().__init__()
        self.elements = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        self.elements += sum(
            t.numel()
            for t in tree_leaves(out)
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs
        )
        return out


def _measure_work(fn, *args) -> tuple[object, int, int]:
    """(the call's result, matmul FLOPs, elements produced) of one call."""
    elements = _ElementCounter()
    with FlopCounterMode(display=False) as flops, elements:
        result = fn(*args)
    return result, flops.get_total_flops(), elements.elements


WORK_SHAPE = (1, 1, 1024, 16)  # (B, H, n, D = Dv) of the work measurement; its outputs go into the record
WORK_BLOCK = 32
FLOP_ALLOWANCE = 2  # matmul FLOPs may be this multiple of the active blocks' 2 s^2 (D + Dv) each
ELEMENT_ALLOWANCE = 8  # numbers produced per active score, plus per (query or key) x (D + Dv)


def _work_layouts(case: Case) -> list[torch.Tensor]:
    """Two layouts over the same blocks: 3 key blocks per query block row, then 1 of them."""
    blocks = WORK_SHAPE[2] // WORK_BLOCK
    ranks = torch.rand(blocks, blocks, generator=case.generator).argsort(dim=-1)
    layouts = []
    for per_row in (3, 1):
        layouts.append(torch.zeros(blocks, blocks, dtype=torch.bool).scatter_(-1, ranks[:, :per_row], True))
    return layouts


def _work(student, case: Case, layout: torch.Tensor) -> tuple[int, int]:
    """(matmul FLOPs, elements produced) of one call at WORK_SHAPE, whose output must be right too."""
    batch, heads, n, d = WORK_SHAPE
    q, k, v = (case.randn(batch, heads, n, d) for _ in range(3))
    measured = case.call(_measure_work, student, q, k, v, layout, WORK_BLOCK)
    if not (isinstance(measured, tuple) and len(measured) == 3 and all(type(x) is int for x in measured[1:])):
        raise CheckFailed("the grader's work measurement returned no result")
    out, flops, elements = measured
    expected = reference_block_sparse(q, k, v, layout, WORK_BLOCK)
    what = f"out of the measured call (n={n}, block_size={WORK_BLOCK}, {_describe(layout)})"
    expect_close(
        expect_tensor(out, what, expected.shape, q.dtype),
        expected,
        what,
        "work is only measured for a right result: pass the checks above first",
    )
    return flops, elements


def _describe(layout: torch.Tensor) -> str:
    return f"{int(layout.sum())} of {layout.numel()} blocks active"


@check(
    f"matmul FLOPs grow with the active blocks (within {FLOP_ALLOWANCE}x of 2 s^2 (D + Dv) per block), not with n^2",
    weight=2,
)
def _block_sparse_flops(student, case):
    batch, heads, n, d = WORK_SHAPE
    dense = 2 * batch * heads * n * n * 2 * d
    seen = []
    for layout in _work_layouts(case):
        flops, _ = _work(student, case, layout)
        needed = block_sparse_work(layout, WORK_BLOCK, d, batch=batch, heads=heads)
        seen.append((layout, flops))
        if flops <= FLOP_ALLOWANCE * needed:
            continue
        history = (
            ""
            if len(seen) == 1
            else (
                f" (with {_describe(seen[0][0])} it did {seen[0][1]:,}: the work did not drop with the active blocks)"
            )
        )
        raise CheckFailed(
            f"n={n}, block_size={WORK_BLOCK}, {_describe(layout)}: your function did {flops:,} matmul "
            f"FLOPs{history}; the active blocks need {needed:,}, the budget is "
            f"{FLOP_ALLOWANCE * needed:,}, dense attention does {dense:,} ({flops / dense:.0%} of dense)",
            "multiply only the active blocks: for each query block, take the key and value blocks its "
            "layout row marks; computing q @ k^T for all keys and masking afterwards is dense work",
        )


@check("no dense step elsewhere: the numbers your operations produce grow with the active blocks", weight=1)
def _block_sparse_elements(student, case):
    batch, heads, n, d = WORK_SHAPE
    layout = _work_layouts(case)[1]  # the sparser layout: the tighter budget
    _, elements = _work(student, case, layout)
    active_scores = batch * heads * int(layout.sum()) * WORK_BLOCK**2
    budget = ELEMENT_ALLOWANCE * (active_scores + batch * heads * 2 * n * 2 * d)
    if elements > budget:
        raise CheckFailed(
            f"n={n}, block_size={WORK_BLOCK}, {_describe(layout)}: your operations produced "
            f"{elements:,} numbers; the budget is {budget:,} ({ELEMENT_ALLOWANCE} per active score "
            f"and per input position x (D + Dv)); one n x n score matrix alone is "
            f"{batch * heads * n * n:,}",
            "an (n, n) tensor (a full mask, all scores, or elementwise q * k products) is being built; "
            "build only the active blocks' scores",
        )


block_sparse_attention = _part(
    "block_sparse_attention",
    4,
    _block_sparse_even,
    _block_sparse_ragged,
    _block_sparse_empty,
    _block_sparse_flops,
    _block_sparse_elements,
)


# ---------------------------------------------------------------- 6. top-k attention


def _table_mask_mod(table: torch.Tensor):
    """A mask_mod that looks (query, key) pairs up in a bool table (grader code: calling it is no delegation)."""

    def table_mask(b, h, q_idx, kv_idx):
        return table[q_idx, kv_idx]

    return table_mask


def _topk_mistakes(q, k, v, top_k: int, causal: bool, mask: torch.Tensor | None) -> dict[str, tuple]:
    n_q, n_k = q.shape[-2], k.shape[-2]
    allowed = torch.ones(n_q, n_k, dtype=torch.bool)
    allowed = allowed.tril() if causal else allowed
    allowed = allowed if mask is None else allowed & mask
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])

    def keep(order: torch.Tensor, count: int, among: torch.Tensor) -> tuple:
        kept = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, order[..., :count], True) & among
        return reference_attention(q, k, v, kept)

    descending = scores.masked_fill(~allowed, float("-inf")).sort(dim=-1, descending=True, stable=True).indices
    ascending = scores.masked_fill(~allowed, float("inf")).sort(dim=-1, stable=True).indices
    top_all = scores.sort(dim=-1, descending=True, stable=True).indices
    kept = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, descending[..., :top_k], True) & allowed
    full = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1).nan_to_num(0.0) * kept
    mistakes = {
        f"keeping {top_k + 1} keys per query instead of top_k = {top_k}": keep(descending, top_k + 1, allowed),
        "keeping the smallest scores instead of the largest": keep(ascending, top_k, allowed),
        "a softmax over all keys, zeroed outside the top k without renormalising": (full @ v, full),
        "attention without the 1/sqrt(d) scaling": reference_topk(
            q, k, v, top_k, causal=causal, scale=1.0, mask_mod=None if mask is None else _table_mask_mod(mask)
        ),
    }
    if top_k > 1:
        mistakes[f"keeping {top_k - 1} keys per query instead of top_k = {top_k}"] = keep(
            descending, top_k - 1, allowed
        )
    if causal or mask is not None:
        mistakes["the top k chosen among all keys before masking: choose among the allowed keys only"] = keep(
            top_all, top_k, allowed
        )
    if causal:
        mistakes["no causal mask although causal=True: keys j > i are not allowed"] = reference_topk(q, k, v, top_k)
    else:
        later = reference_topk(
            q, k.flip(-2), v.flip(-2), top_k, mask_mod=None if mask is None else _table_mask_mod(mask.flip(-1))
        )
        mistakes[
            "ties at the k-th score going to the later key: sort with torch.sort(scores, dim=-1, "
            "descending=True, stable=True), which puts the earlier of equal scores first (torch.topk promises "
            "no order for ties)"
        ] = (later[0], later[1].flip(-1))
    return mistakes


def _check_topk(
    student, case: Case, q, k, v, top_k: int, causal: bool = False, table: torch.Tensor | None = None, note: str = ""
):
    kwargs = {"causal": True} if causal else {}
    if table is not None:
        kwargs["mask_mod"] = _table_mask_mod(table.clone())
    result = case.call(student, q, k, v, top_k, **kwargs)
    out, weights = expect_pair(result, "topk_attention", "(out, weights)")
    expected_out, expected_weights = reference_topk(
        q, k, v, top_k, causal=causal, mask_mod=None if table is None else _table_mask_mod(table)
    )
    out = expect_tensor(out, "out", expected_out.shape, q.dtype)
    weights = expect_tensor(weights, "weights", expected_weights.shape, q.dtype)
    mistakes = _topk_mistakes(q, k, v, top_k, causal, table)
    what = f"top_k={top_k}{', causal=True' if causal else ''}{note}"
    expect_close(weights, expected_weights, f"weights ({what})", mistakes={n: w for n, (_, w) in mistakes.items()})
    expect_close(
        out,
        expected_out,
        f"out ({what})",
        "the weights are right, so check the product with v",
        mistakes={n: o for n, (o, _) in mistakes.items()},
    )


def _topk_inputs(case: Case, dtype=torch.float32, n_q: int | None = None, n_k: int | None = None):
    n_q = case.randint(4, 12) if n_q is None else n_q
    n_k = case.randint(6, 16) if n_k is None else n_k
    d, d_v, heads = case.randint(2, 8), case.randint(2, 6), case.randint(1, 3)
    return (
        case.randn(1, heads, n_q, d, dtype=dtype),
        case.randn(1, heads, n_k, d, dtype=dtype),
        case.randn(1, heads, n_k, d_v, dtype=dtype),
    )


@check("keeps each query's top_k highest scores, softmax over those only")
def _topk_random(student, case):
    q, k, v = _topk_inputs(case)
    _check_topk(student, case, q, k, v, case.randint(2, k.shape[-2] - 2))
    _check_topk(student, case, *_topk_inputs(case, torch.float64), 1)


@check("top_k >= the number of keys is dense attention")
def _topk_dense(student, case):
    q, k, v = _topk_inputs(case)
    _check_topk(student, case, q, k, v, k.shape[-2] + case.randint(0, 3))


@check("causal=True: the top_k among keys j <= i; a row with fewer allowed keys keeps them all")
def _topk_causal(student, case):
    n = case.randint(8, 14)
    q, k, v = _topk_inputs(case, n_q=n, n_k=n)
    _check_topk(student, case, q, k, v, case.randint(3, 5), causal=True)


@check("ties at the k-th score go to the earlier key")
def _topk_ties(student, case):
    n_q, n_k, d = case.randint(4, 8), case.randint(8, 12), 2
    # Small integers: many exactly equal scores, the same in every summation order.
    q = torch.randint(-2, 3, (1, 1, n_q, d), generator=case.generator).double()
    k = torch.randint(-1, 2, (1, 1, n_k, d), generator=case.generator).double()
    v = case.randn(1, 1, n_k, 3, dtype=torch.float64)
    _check_topk(student, case, q, k, v, case.randint(2, 4), note=", tied scores")


@check("mask_mod restricts the keys; a query with no allowed key gets zero weights and output")
def _topk_mask_mod(student, case):
    q, k, v = _topk_inputs(case)
    table = torch.rand(q.shape[-2], k.shape[-2], generator=case.generator) < 0.5
    table[0] = False  # a query that may attend no key
    _check_topk(student, case, q, k, v, case.randint(2, 4), table=table, note=", mask_mod")


topk_attention = _part("topk_attention", 3, _topk_random, _topk_dense, _topk_causal, _topk_ties, _topk_mask_mod)


# ---------------------------------------------------------------- 7. layers for full reach


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


def _check_layers(student, case: Case, pattern, n: int | None, what: str, causal: bool | None = None):
    matrix = pattern if isinstance(pattern, torch.Tensor) else _materialised(pattern, n)
    expected = reference_minimal_layers(matrix, causal=causal)
    # A mask_mod goes to the student as a lookup in its materialised table: grader code, and a plain 4-argument
    # function as create_mask wants (a wrapped reference mask_mod would count as the student's delegation).
    args = (matrix,) if n is None else (_table_mask_mod(matrix.clone()), n)
    result = case.call(student, *args, **({} if causal is None else {"causal": causal}))
    if result is not None and type(result) is not int:  # the record turns numpy integers into int
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
    raise CheckFailed(f"{what}: expected {expected}, got {result}", hint)


@check("a causal sliding window, given as a bool matrix")
def _layers_window(student, case):
    n, window = case.randint(12, 40), case.randint(2, 6)
    pattern = _materialised(reference_sliding_window(window), n)
    _check_layers(student, case, pattern, None, f"a causal sliding window of {window} over {n} tokens")


@check("bidirectional patterns given as mask_mods: window, strided with window, global tokens")
def _layers_mask_mods(student, case):
    n = case.randint(16, 40)
    window, stride = _odd(case, 3, 5), case.randint(3, 6)
    _check_layers(student, case, reference_symmetric_window(window), n, f"a symmetric window of {window}, n={n}")
    _check_layers(
        student,
        case,
        or_masks(reference_symmetric_window(3), reference_strided(stride)),
        n,
        f"a window of 3 with stride {stride}, n={n}",
    )
    with_global = or_masks(reference_symmetric_window(window), reference_global([case.randint(0, n - 1)]))
    _check_layers(student, case, with_global, n, f"a symmetric window of {window} with one global token, n={n}")


@check("patterns without the diagonal still reach through the residual")
def _layers_residual(student, case):
    n = case.randint(6, 20)
    i, j = _grid(n, n)
    _check_layers(student, case, j == i - 1, None, f"each token attends only the previous one, n={n}")
    stride = case.randint(2, 4)
    _check_layers(
        student,
        case,
        ((i - j) % stride == 0) & (i != j) | (j == i - 1),
        None,
        f"previous token and strided keys {stride} apart, without the diagonal, n={n}",
    )


@check("n = 1 needs 0 layers; never reaching gives None; causal= overrides the target")
def _layers_edges(student, case):
    _check_layers(student, case, torch.ones(1, 1, dtype=torch.bool), None, "a single token")
    n = 2 * case.randint(4, 10)
    i, j = _grid(n, n)
    halves = (i < n // 2) == (j < n // 2)
    _check_layers(student, case, halves, None, f"two halves that never attend each other, n={n}")
    window = _materialised(reference_sliding_window(case.randint(2, 4)), n)
    _check_layers(student, case, window, None, f"a causal window with causal=False, n={n}", causal=False)
    _check_layers(student, case, (i - j).abs() <= 1, None, f"a window of 3 with causal=True, n={n}", causal=True)


minimal_layers = _part("minimal_layers", 2, _layers_window, _layers_mask_mods, _layers_residual, _layers_edges)


PARTS = (strided, random_block_layout, longformer, bigbird, block_sparse_attention, topk_attention, minimal_layers)
POINTS = {part.__name__: part.points for part in PARTS}
