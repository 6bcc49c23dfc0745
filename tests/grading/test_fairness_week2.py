"""Week 2's fairness corpus (harness: tests/fairness.py): right functions written unlike the
solution earn full marks; classic mistakes earn what they deserve, fail the check that finds
them, and graded feedback names them without the hidden inputs."""

from __future__ import annotations

import math
import random

import torch
import variants_week2 as variants
from fairness import Right, Wrong, fairness_tests
from torch.nn.attention.flex_attention import and_masks, create_mask, or_masks

from lcteach.grading import week2 as grade
from lcteach.grading.week2 import part5_block_sparse_attention as part5

# ---------------------------------------------------------------- 1. strided


def strided_remainder(stride, causal=False):
    """An int is a table of one stride; head h reads entry h % len(table), the same for an int on any head."""
    table = torch.as_tensor(stride).reshape(-1)
    if table.numel() == 0 or bool((table < 1).any()):
        raise ValueError(f"stride must be a positive integer or a non-empty sequence of them, got {stride}")

    def strided(b, h, q_idx, kv_idx):
        return ((q_idx - kv_idx).remainder(table[h % len(table)]) == 0) & ((kv_idx <= q_idx) | (not causal))

    return strided


def strided_composed(stride, causal=False):
    """The pattern and the causal mask composed with and_masks; per head, or_masks of one term per head."""
    strides = [stride] if isinstance(stride, int) else list(stride)
    if not strides or not min(strides) >= 1:
        raise ValueError("stride < 1")

    def term(head, s):
        def on_stride(b, h, q_idx, kv_idx):
            return ((q_idx - kv_idx) % s == 0) & ((h == head) | isinstance(stride, int))

        return on_stride

    pattern = or_masks(*(term(head, s) for head, s in enumerate(strides)))
    return and_masks(variants.SOLUTION.causal_mask, pattern) if causal else pattern


def strided_int_only(stride, causal=False):
    """Today's lecture solution: right for an int stride, with no idea of one stride per head."""
    if stride < 1:
        raise ValueError(f"stride must be at least 1, got {stride}")

    def strided(b, h, q_idx, kv_idx):
        allowed = (q_idx - kv_idx) % stride == 0
        return allowed & (kv_idx <= q_idx) if causal else allowed

    return strided


STRIDED_PER_HEAD = "a sequence of strides"
STRIDED = (
    Right("remainder", strided_remainder),
    Right("and-masks", strided_composed),
    Wrong(
        "stride-plus-one",
        variants.strided_with(distance=lambda q, kv, s: (q - kv) % (s + 1) == 0),
        0,
        "matches (i - j)",
        "a stride one too large",
        not_counted=("stride < 1", "a sequence with a stride"),
    ),
    Wrong(
        "fixed-columns",
        variants.strided_with(distance=lambda q, kv, s: kv % s == 0),
        0,
        "matches (i - j)",
        "multiples of the stride",
        not_counted=("stride=1", "stride < 1", "a sequence with a stride"),
    ),
    # causal=True is ignored for one stride and for one per head alike: the three checks that try it fail
    Wrong(
        "ignores-causal",
        variants.strided_with(honour_causal=False),
        2 * 3 / 6,
        "causal=True keeps",
        "also looks at later keys",
    ),
    Wrong(
        "no-validation",
        variants.strided_with(check=False),
        2 * 4 / 6,
        "stride < 1",
        "raise ValueError",
        not_counted=(),
    ),
    Wrong(
        "no-sequence-validation",
        variants.strided_with(check_sequence=False),
        2 * 5 / 6,
        "a sequence with a stride",
        "instead of raising ValueError",
    ),
    Wrong(
        "first-stride-everywhere",
        variants.strided_with(head=lambda strides, h: strides[0]),
        2 * 4 / 6,
        STRIDED_PER_HEAD,
        "every head using stride[0]",
        not_counted=("a sequence with a stride",),
    ),
    Wrong(
        "reversed-heads",
        variants.strided_with(head=lambda strides, h: strides.flip(0)[h]),
        2 * 4 / 6,
        STRIDED_PER_HEAD,
        "reverse order",
        not_counted=("a sequence with a stride",),
    ),
    Wrong(
        "head-off-by-one",
        variants.strided_with(head=lambda strides, h: strides[(h - 1) % len(strides)]),
        2 * 4 / 6,
        STRIDED_PER_HEAD,
        "stride[h - 1]",
        not_counted=("a sequence with a stride",),
    ),
    Wrong(
        "int-only",
        strided_int_only,
        2 * 4 / 6,
        STRIDED_PER_HEAD,
        "TypeError",
        not_counted=("a sequence with a stride",),
    ),
)

# ---------------------------------------------------------------- 2. random block layout


def layout_multinomial(q_blocks, kv_blocks, blocks_per_row, seed, exclude=None):
    if blocks_per_row < 1 or blocks_per_row > kv_blocks:
        raise ValueError(f"blocks_per_row={blocks_per_row} with kv_blocks={kv_blocks}")
    weights = torch.ones(q_blocks, kv_blocks)
    if exclude is not None:
        if not isinstance(exclude, torch.Tensor) or exclude.dtype != torch.bool or exclude.shape != weights.shape:
            raise ValueError("exclude: a bool tensor like the layout")
        weights[exclude] = 0.0
        if (weights.sum(dim=-1) < blocks_per_row).any():
            raise ValueError("too few free blocks in a row")
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.multinomial(weights, blocks_per_row, generator=generator)
    return torch.zeros(q_blocks, kv_blocks, dtype=torch.bool).scatter_(-1, chosen, True)


LAYOUT = (
    Right("argsort", variants.layout_argsort),
    Right("multinomial", layout_multinomial),
    Wrong(
        "with-replacement",
        variants.layout_from(variants.with_replacement),
        0,
        "bool (q_blocks, kv_blocks)",
        "with replacement",
        not_counted=("the same seed", "uses its own generator", "roughly uniform", "blocks_per_row above"),
    ),
    Wrong(
        "seeds-global-rng",
        variants.layout_from(variants.randperm, generator=False),
        1.75,
        "uses its own generator",
        "global random",
    ),
    Wrong(
        "own-block-forced",
        variants.layout_from(variants.own_block_forced),
        1.5,
        "roughly uniform",
        "no block forced in",
    ),
    Wrong(
        "no-validation",
        variants.layout_from(variants.randperm, check=False),
        1.75,
        "blocks_per_row above",
        "instead of raising",
    ),
    Wrong(
        "exclude-ignored",
        variants.layout_from(variants.randperm, exclude_after=variants.ignore_exclude),
        1.25,
        "with exclude: exactly",
        "among its free blocks only",
        not_counted=("with exclude: over many seeds", "exclude of the wrong shape"),
    ),
    Wrong(
        "exclude-dropped-after-drawing",
        variants.layout_from(variants.randperm, exclude_after=variants.drop_excluded),
        1.25,
        "with exclude: exactly",
        "leaves rows short",
        not_counted=("with exclude: over many seeds", "exclude of the wrong shape"),
    ),
    Wrong(
        "excluded-draw-moved-to-next-free",
        variants.layout_from(variants.randperm, exclude_after=variants.next_free),
        1.75,
        "with exclude: over many seeds",
        "next free block",
    ),
    Wrong(
        "exclude-unchecked",
        variants.layout_from(variants.randperm, check_exclude=False),
        1.75,
        "exclude of the wrong shape",
        "at least blocks_per_row free blocks",
    ),
)

# ---------------------------------------------------------------- 3. Longformer


def longformer_composed(window, global_tokens, dilation=1):
    """or_masks of a window and a global-token mask_mod; the dilation as a second and_masks term."""
    if window < 1 or window % 2 != 1:
        raise ValueError("the window must be odd and at least 1")
    if not dilation >= 1:
        raise ValueError(f"dilation {dilation} < 1")
    positions = range(global_tokens) if isinstance(global_tokens, int) else global_tokens

    def band(b, h, q_idx, kv_idx):
        return (q_idx - kv_idx).abs() * 2 < (window - 1) * dilation + 1

    def on_step(b, h, q_idx, kv_idx):
        return (q_idx - kv_idx).remainder(dilation) == 0

    def global_pair(b, h, q_idx, kv_idx):
        flag = q_idx != q_idx
        for p in positions:
            flag = flag | (q_idx == p) | (kv_idx == p)
        return flag

    return or_masks(and_masks(band, on_step), global_pair)


def longformer_min_distance(window, global_tokens, dilation=1):
    """Positions as a tensor: an index is global when its distance to the nearest global position is 0;
    the window is the offsets it allows, d apart."""
    if not (window >= 1 and window % 2) or dilation < 1:
        raise ValueError(f"bad window {window} or dilation {dilation}")
    positions = torch.arange(global_tokens) if isinstance(global_tokens, int) else torch.tensor(global_tokens)
    offsets = torch.arange(-(window // 2), window // 2 + 1) * dilation

    def is_global(idx):
        return (positions - idx).abs().min() == 0 if len(positions) else idx < 0

    def longformer(b, h, q_idx, kv_idx):
        in_window = ((offsets - (q_idx - kv_idx)) == 0).any()
        return in_window | is_global(q_idx) | is_global(kv_idx)

    return longformer


LONGFORMER = (
    Right("or-masks", longformer_composed),
    Right("min-distance", longformer_min_distance),
    Wrong(
        "radius-is-window",
        variants.longformer_with(radius=lambda w: w),
        0,
        "global tokens as a count",
        "a radius of window",
        not_counted=("an even window",),
    ),
    Wrong("rows-only", variants.longformer_with(cols=False), 0, "global tokens as a count", "global rows only"),
    Wrong(
        "count-plus-one",
        variants.longformer_with(count_extra=1),
        1 / 3,  # the global tokens as positions only: the dilation check counts them too
        "global tokens as a count",
        "one global token too many",
        not_counted=("window=1", "an even window", "dilation < 1"),
    ),
    Wrong(
        "dilation-ignored",
        variants.longformer_with(dilated="ignored"),
        4 / 3,
        "dilation d",
        "a window without the dilation",
        not_counted=("dilation < 1",),
    ),
    Wrong(
        "dilated-reach-too-short",
        variants.longformer_with(dilated="undilated-reach"),
        4 / 3,
        "dilation d",
        "a dilated window cut at window // 2",
        not_counted=("dilation < 1",),
    ),
    Wrong(
        "dilated-reach-window-d",
        variants.longformer_with(dilated="reach-window"),
        0,  # window * d is a radius of window at d=1 too: the undilated checks find that mistake
        "dilation d",
        "a dilated window reaching window * d",
        not_counted=("dilation < 1",),
    ),
    Wrong(
        "global-tokens-dilated",
        variants.longformer_with(dilated="global-too"),
        4 / 3,
        "dilation d",
        "the dilation applied to the global tokens too",
        not_counted=("dilation < 1",),
    ),
    Wrong(
        "dilation-unchecked",
        variants.longformer_with(check_dilation=False),
        5 / 3,
        "dilation < 1",
        "raise ValueError",
    ),
)

# ---------------------------------------------------------------- 4. BigBird's block layout


def _check_bigbird_arguments(n_blocks, window_blocks, global_blocks, random_blocks):
    if window_blocks < 1 or window_blocks % 2 == 0 or not 0 <= global_blocks <= n_blocks or random_blocks < 0:
        raise ValueError(f"bad BigBird arguments {window_blocks}, {global_blocks}, {random_blocks}")


def bigbird_python_loops(n_blocks, window_blocks, global_blocks, random_blocks, seed):
    """Every entry decided in a double loop; each row's random blocks sampled from a list of its free
    blocks with a private random.Random(seed)."""
    _check_bigbird_arguments(n_blocks, window_blocks, global_blocks, random_blocks)
    rng = random.Random(seed)
    layout = torch.zeros(n_blocks, n_blocks, dtype=torch.bool)
    for qi in range(n_blocks):
        for kj in range(n_blocks):
            layout[qi, kj] = abs(qi - kj) <= window_blocks // 2 or qi < global_blocks or kj < global_blocks
        if qi >= global_blocks and random_blocks:
            free = [kj for kj in range(n_blocks) if not layout[qi, kj]]
            if len(free) < random_blocks:
                raise ValueError(f"query block {qi} has only {len(free)} free blocks")
            for kj in rng.sample(free, random_blocks):
                layout[qi, kj] = True
    return layout


def bigbird_multinomial(n_blocks, window_blocks, global_blocks, random_blocks, seed):
    """One torch.multinomial over all rows, weighted 1 on the free blocks and 0 on the taken ones."""
    _check_bigbird_arguments(n_blocks, window_blocks, global_blocks, random_blocks)
    blocks = torch.arange(n_blocks)
    layout = ((blocks[:, None] - blocks[None, :]).abs() <= window_blocks // 2) | (blocks[:, None] < global_blocks)
    layout |= blocks[None, :] < global_blocks
    weights = (~layout[global_blocks:]).double()
    if random_blocks and len(weights):
        if (weights.sum(dim=-1) < random_blocks).any():
            raise ValueError("some row has too few free blocks")
        generator = torch.Generator().manual_seed(seed)
        picks = torch.multinomial(weights, random_blocks, replacement=False, generator=generator)
        layout[global_blocks:] |= torch.zeros(weights.shape, dtype=torch.bool).scatter_(-1, picks, True)
    return layout


BIGBIRD_VALUES_BLOCKED = ("seeded", "uniform", "an even window_blocks", "edge cases")
BIGBIRD = (
    Right("python-loops", bigbird_python_loops),
    Right("multinomial", bigbird_multinomial),
    Wrong(
        "radius-is-window",
        variants.bigbird_layout_with(radius=lambda w: w),
        0,
        "with random_blocks = 0",
        "a window of window_blocks blocks on each side",
        not_counted=BIGBIRD_VALUES_BLOCKED,
    ),
    Wrong(
        "global-rows-only",
        variants.bigbird_layout_with(global_cols=False),
        0,
        "with random_blocks = 0",
        "the global blocks' rows only",
        not_counted=BIGBIRD_VALUES_BLOCKED,
    ),
    Wrong(
        "drawn-among-all-blocks",
        variants.bigbird_layout_with(draw="all"),
        0.5,
        "every row that is not global",
        "fewer than random_blocks random blocks",
        not_counted=BIGBIRD_VALUES_BLOCKED,
    ),
    Wrong(
        "exclude-misaligned",
        variants.bigbird_layout_with(draw="misaligned"),
        0.5,
        "every row that is not global",
        "exclude row i must be the taken blocks of query block global_blocks + i",
        not_counted=BIGBIRD_VALUES_BLOCKED,
    ),
    Wrong("next-free-block", variants.bigbird_layout_with(draw="next-free"), 2.5, "uniform", "next free block"),
    Wrong(
        "global-rng",
        variants.bigbird_layout_with(draw="global-rng"),
        2.5,
        "seeded",
        "changed the global random state",
    ),
    Wrong(
        "draws-for-zero-random-blocks",
        variants.bigbird_layout_with(skip_zero=False),
        2,
        "with random_blocks = 0",
        "random_blocks = 0 raised ValueError",
    ),
    Wrong(
        "arguments-unchecked",
        variants.bigbird_layout_with(check=False),
        2.5,
        "an even window_blocks",
        "returned instead of raising ValueError",
    ),
)

# ---------------------------------------------------------------- 5. block-sparse attention


def block_sparse_gathered(q, k, v, layout, block_size):
    """Per query block, the active key blocks gathered by index_select, masked-softmax free."""
    n_k = k.shape[-2]
    out = q.new_zeros(*q.shape[:-1], v.shape[-1])
    positions = torch.arange(n_k)
    for qi, row in enumerate(layout.tolist()):
        keys = positions[torch.tensor(row).repeat_interleave(block_size)[:n_k]]
        if len(keys) == 0:
            continue
        q_block = q[..., qi * block_size : (qi + 1) * block_size, :]
        scores = q_block @ k.index_select(-2, keys).transpose(-2, -1) / math.sqrt(q.shape[-1])
        weights = torch.exp(scores - scores.amax(-1, keepdim=True))
        out[..., qi * block_size : (qi + 1) * block_size, :] = (
            weights / weights.sum(-1, keepdim=True)
        ) @ v.index_select(-2, keys)
    return out


def block_sparse_float64_inside(q, k, v, layout, block_size):
    """Scores and softmax in float64, the output cast back to the inputs' dtype."""
    out = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=torch.float64)
    for qi, kjs in enumerate(layout):
        key_blocks = kjs.nonzero().flatten().tolist()
        if not key_blocks:
            continue
        keys = torch.cat([torch.arange(kj * block_size, (kj + 1) * block_size) for kj in key_blocks])
        keys = keys[keys < k.shape[-2]]
        rows = slice(qi * block_size, (qi + 1) * block_size)
        scores = q[..., rows, :].double() @ k[..., keys, :].double().transpose(-2, -1) / math.sqrt(q.shape[-1])
        out[..., rows, :] = torch.softmax(scores, dim=-1) @ v[..., keys, :].double()
    return out.to(q.dtype)


WORK = part5._block_sparse_work.check_name
BLOCK_SPARSE = (
    Right("gathered", block_sparse_gathered, public=False),
    Right("float64-inside", block_sparse_float64_inside, public=False),
    Wrong("no-scale", variants.sparse_with(scale=False), 0, "equals masked dense", "without the 1/sqrt(d) scaling"),
    Wrong(
        "nan-empty-rows",
        variants.sparse_with(nan_rows=True),
        4 * 5 / 6,
        "a query block with no active",
        "zero output",
    ),
    # The work check's message shows measured times, which vary from run to run.
    Wrong("dense-then-mask", variants.dense_then_mask, 2, WORK, "dense work", seed_invariant=False),
)

# ---------------------------------------------------------------- 6. top-k attention


def topk_argsort(q, k, v, top_k, causal=False, mask_mod=None):
    """Ranks from a stable ascending argsort of the negated scores (-(-inf) sorts last)."""
    n_k = k.shape[-2]
    allowed = variants.allowed_pairs(q, k, causal, mask_mod)
    scores = torch.where(allowed, q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), float("-inf"))
    order = torch.argsort(-scores, dim=-1, stable=True)
    ranks = torch.empty_like(order).scatter_(-1, order, torch.arange(n_k).expand_as(order))
    kept = (ranks < top_k) & allowed
    weights = torch.softmax(scores.masked_fill(~kept, float("-inf")), dim=-1)
    weights = torch.where(kept.any(-1, keepdim=True), weights, torch.zeros_like(weights))
    return weights @ v, weights


def topk_by_counting(q, k, v, top_k, causal=False, mask_mod=None):
    """Keep a key when fewer than top_k allowed keys beat it (higher, or equal and earlier)."""
    n_k = k.shape[-2]
    allowed = variants.allowed_pairs(q, k, causal, mask_mod)
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~allowed, float("-inf"))
    s_j, s_i = scores[..., :, None, :], scores[..., :, :, None]  # (..., Nq, key i, other key j)
    earlier = torch.arange(n_k)[None, :] < torch.arange(n_k)[:, None]
    beaten_by = ((s_j > s_i) | ((s_j == s_i) & earlier)) & allowed[..., :, None, :]
    kept = (beaten_by.sum(-1) < top_k) & allowed
    weights = torch.softmax(scores.masked_fill(~kept, float("-inf")), dim=-1).nan_to_num(0.0)
    return weights @ v, weights


TOPK = (
    Right("argsort-ranks", topk_argsort),
    Right("counting", topk_by_counting),
    Wrong(
        "keeps-k-minus-1",
        variants.topk_with(keep=lambda k: k - 1),
        0,
        "keeps each query's top_k",
        "top_k - 1 keys",
        not_counted=("top_k >= the number of keys",),
    ),
    Wrong("not-renormalised", variants.topk_with(renormalise=False), 0, "keeps each query's top_k", "renormalising"),
    Wrong("topk-before-causal", variants.topk_with(causal_first=False), 3 * 3 / 5, "causal=True", "before masking"),
    Wrong("later-ties", variants.topk_with(later_ties=True), 3 * 4 / 5, "ties at the k-th score", "later key"),
)

# ---------------------------------------------------------------- 7. layers for full reach


def layers_without_early_stop(pattern, n=None, causal=None):
    """Every power up to n - 1, no shortcut; numpy's integers are accepted as ints."""
    if callable(pattern):
        pattern = create_mask(pattern, None, None, n, n, device="cpu")[0, 0]
    size = pattern.shape[0]
    causal = bool(not pattern.triu(1).any()) if causal is None else causal
    target = torch.ones(size, size, dtype=torch.bool).tril() if causal else torch.ones(size, size, dtype=torch.bool)
    step = (pattern | torch.eye(size, dtype=torch.bool)).double()
    reach = torch.eye(size, dtype=torch.double)
    for layers in range(size):
        if ((reach > 0) | ~target).all():
            return layers
        reach = step @ reach
        reach = (reach > 0).double()
    return None


def layers_by_hops(pattern, n=None, causal=None):
    """Breadth-first hop counts: the answer is the longest shortest path over the target pairs."""
    if callable(pattern):
        pattern = create_mask(pattern, None, None, n, n, device="cpu")[0, 0]
    size = pattern.shape[0]
    causal = bool(not pattern.triu(1).any()) if causal is None else causal
    attends = [set(row.nonzero().flatten().tolist()) for row in pattern]  # i hears j after one layer
    worst = 0
    for i in range(size):
        hops, frontier, seen = 0, {i}, {i}
        while frontier:  # keys whose information reaches i within `hops` layers
            new = {j for f in frontier for j in attends[f]} - seen
            if not new:
                break
            hops += 1
            for j in new:
                if not causal or j <= i:
                    worst = max(worst, hops)
            seen |= new
            frontier = new
        needed = set(range(i + 1)) if causal else set(range(size))
        if not needed <= seen:
            return None
    return worst


LAYERS = (
    Right("no-early-stop", layers_without_early_stop),
    Right("hop-counts", layers_by_hops),
    Wrong("no-residual", variants.layers_with(residual=False), 1, "patterns without the diagonal", "residual"),
    Wrong(
        "plus-one",
        variants.layers_with(offset=1),
        0,
        "a causal sliding window",
        "off by one",
        not_counted=("n = 1 needs 0 layers",),
    ),
    Wrong(
        "all-pairs-target",
        variants.layers_with(causal_target=False),
        0.5,
        "a causal sliding window",
        "for a causal pattern",
    ),
)

# ---------------------------------------------------------------- 8. content-adaptive blocks


def select_by_loops(q, k, block_size, keep, causal=False):
    """Python loops over batches, heads and block pairs; a ranked list per query block."""
    batch, heads, n_q, _ = q.shape
    q_blocks, k_blocks = -(-n_q // block_size), -(-k.shape[-2] // block_size)
    layout = torch.zeros(batch, heads, q_blocks, k_blocks, dtype=torch.bool)
    for b in range(batch):
        for h in range(heads):
            k_means = [k[b, h, j * block_size : (j + 1) * block_size].mean(0) for j in range(k_blocks)]
            for i in range(q_blocks):
                q_mean = q[b, h, i * block_size : (i + 1) * block_size].mean(0)
                allowed = range(i + 1) if causal else range(k_blocks)
                ranked = sorted(allowed, key=lambda j: -math.inf if causal and j == i else -float(q_mean @ k_means[j]))
                layout[b, h, i, ranked[:keep]] = True
    return layout


def select_by_argsort(q, k, block_size, keep, causal=False):
    """Means by index_add over block ids, ranks by argsort, the causal rule as a bonus on the diagonal."""

    def means(x):
        ids = torch.arange(x.shape[-2]) // block_size
        sums = torch.zeros(*x.shape[:-2], int(ids[-1]) + 1, x.shape[-1], dtype=x.dtype).index_add_(-2, ids, x)
        return sums / torch.bincount(ids).to(x.dtype)[:, None]

    scores = means(q) @ means(k).transpose(-2, -1)
    if causal:
        later = torch.ones(scores.shape[-2:], dtype=torch.bool).triu(1)
        scores = scores.masked_fill(later, -math.inf) + torch.eye(scores.shape[-1]) * 1e30
    ranks = scores.argsort(dim=-1, descending=True).argsort(dim=-1)
    return (ranks < keep) & (scores > -math.inf)


SELECT = (
    Right("python-loops", select_by_loops),
    Right("index-add-argsort", select_by_argsort),
    Wrong("lowest-scores", variants.select_with(largest=False), 0, "keeps each", "the LOWEST-scoring"),
    Wrong("keep-plus-one", variants.select_with(extra=1), 0, "keeps each", "one key block too many"),
    Wrong(
        "zero-padded-means",
        variants.select_with(means="padded"),
        (1.5, 2.25),
        "ragged sizes",
        "count the zero padding",
        seed_invariant=False,
    ),
    Wrong("own-block-not-forced", variants.select_with(causal_rule="free"), 2.25, "causal", "own block forced in"),
    Wrong("own-block-added", variants.select_with(causal_rule="added"), 2.25, "causal", "on top of keep"),
    Wrong("causal-ignored", variants.select_with(causal_rule="ignored"), 2.25, "causal", "no causal restriction"),
)

CORPUS = {
    grade.strided: STRIDED,
    grade.random_block_layout: LAYOUT,
    grade.longformer: LONGFORMER,
    grade.bigbird: BIGBIRD,
    grade.block_sparse_attention: BLOCK_SPARSE,
    grade.topk_attention: TOPK,
    grade.minimal_layers: LAYERS,
    grade.select_blocks: SELECT,
}

(
    test_every_part_has_a_corpus,
    test_right_variants_earn_full_marks,
    test_wrong_variants_earn_what_they_deserve,
    test_graded_feedback_hides_the_students_inputs,
) = fairness_tests(grade, CORPUS)
