"""Week 2's variant builders, shared by its mutant tests (tests/grading/test_week2.py) and its
fairness corpus (tests/grading/test_fairness_week2.py): each returns a student function that is
the solution's logic but for the mistakes its arguments switch on (the defaults switch on none)."""

from __future__ import annotations

import math

import torch
from notebook_source import SOLUTIONS, solution_namespace
from torch.nn.attention.flex_attention import create_mask

SOLUTION = solution_namespace(SOLUTIONS / "week2_sparse" / "exercises.py")

# ---------------------------------------------------------------- 1. strided


def strided_with(
    distance=lambda q, kv, s: (q - kv) % s == 0,
    honour_causal=True,
    check=True,
    check_sequence=True,
    head=lambda strides, h: strides[h],
    per_head=True,
):
    """``head(strides, h)`` picks head h's stride from the tensor of a sequence's strides;
    ``check_sequence=False`` validates an int only; ``per_head=False`` is the int-only solution."""

    def generate_strided(stride, causal=False):
        sequence = per_head and not isinstance(stride, int)
        strides = list(stride) if sequence else [stride]
        if check and (check_sequence or not sequence) and (not strides or min(strides) < 1):
            raise ValueError("stride must be >= 1")
        table = torch.tensor(strides)

        def strided(b, h, q, kv):
            s = head(table, h) if sequence else stride
            return distance(q, kv, s) & ((kv <= q) if causal and honour_causal else (q >= 0))

        return strided

    return generate_strided


# ---------------------------------------------------------------- 2. random block layout


def layout_from(draw_row, check=True, generator=True, check_exclude=True, exclude_after=None):
    """A random_block_layout whose rows come from ``draw_row(free, per_row, generator, row)``, ``free``
    the row's blocks that ``exclude`` leaves (or, with ``exclude_after``, all blocks, then
    ``exclude_after(chosen, taken, per_row)`` makes the row's blocks from the draw and the row's
    excluded ones)."""

    def random_block_layout(q_blocks, kv_blocks, blocks_per_row, seed, exclude=None):
        if check and not 1 <= blocks_per_row <= kv_blocks:
            raise ValueError("bad blocks_per_row")
        if exclude is None:
            exclude = torch.zeros(q_blocks, kv_blocks, dtype=torch.bool)
        if check_exclude and (exclude.dtype != torch.bool or exclude.shape != (q_blocks, kv_blocks)):
            raise ValueError("bad exclude")
        if check_exclude and ((~exclude).sum(dim=-1) < blocks_per_row).any():
            raise ValueError("a row has too few free blocks")
        g = torch.Generator().manual_seed(seed) if generator else None
        if not generator:
            torch.manual_seed(seed)
        layout = torch.zeros(q_blocks, kv_blocks, dtype=torch.bool)
        for row in range(q_blocks):
            if exclude_after is None:
                free = (~exclude[row].bool()).nonzero().flatten()
                layout[row, free[draw_row(len(free), blocks_per_row, g, row)]] = True
            else:
                chosen = draw_row(kv_blocks, blocks_per_row, g, row)
                layout[row, exclude_after(chosen, exclude[row].bool(), blocks_per_row)] = True
        return layout

    return random_block_layout


def layout_argsort(q_blocks, kv_blocks, blocks_per_row, seed, exclude=None):
    """All rows at once: the blocks_per_row smallest of uniform draws, excluded blocks ranked last."""
    if not 1 <= blocks_per_row <= kv_blocks:
        raise ValueError("need 1 <= blocks_per_row <= kv_blocks")
    if exclude is None:
        exclude = torch.zeros(q_blocks, kv_blocks, dtype=torch.bool)
    if exclude.dtype != torch.bool or exclude.shape != (q_blocks, kv_blocks):
        raise ValueError(f"exclude must be bool ({q_blocks}, {kv_blocks})")
    if ((~exclude).sum(dim=-1) < blocks_per_row).any():
        raise ValueError("some row has fewer free blocks than blocks_per_row")
    draws = torch.rand(q_blocks, kv_blocks, generator=torch.Generator().manual_seed(seed)).masked_fill(exclude, 2.0)
    return torch.zeros(q_blocks, kv_blocks, dtype=torch.bool).scatter_(
        -1, draws.argsort(dim=-1)[:, :blocks_per_row], True
    )


def randperm(kv, r, g, row):
    return torch.randperm(kv, generator=g)[:r]


def with_replacement(kv, r, g, row):
    return torch.randint(0, kv, (r,), generator=g)


def never_last(kv, r, g, row):
    return torch.randperm(kv - 1, generator=g)[:r]


def own_block_forced(kv, r, g, row):
    others = [j for j in torch.randperm(kv, generator=g).tolist() if j != row % kv]
    return torch.tensor([row % kv] + others[: r - 1])


def first_free(kv, r, g, row):
    return torch.arange(r)


def ignore_exclude(chosen, taken, r):
    """The draw among all blocks kept as it is: excluded blocks and all."""
    return chosen


def drop_excluded(chosen, taken, r):
    """The draw among all blocks, less its excluded blocks: rows come out short."""
    return chosen[~taken[chosen]]


def next_free(chosen, taken, r):
    """Each excluded draw moved to the next free block not yet chosen (cyclically)."""
    kv, picked = len(taken), []
    for j in chosen.tolist():
        while taken[j] or j in picked:
            j = (j + 1) % kv
        picked.append(j)
    return torch.tensor(picked, dtype=torch.long)


# ---------------------------------------------------------------- 3. Longformer


def longformer_with(
    radius=lambda w: w // 2, rows=True, cols=True, causal=False, count_extra=0, dilated="right", check_dilation=True
):
    """``dilated``: "right", "ignored" (the plain window), "undilated-reach" (keys d apart out to
    window // 2 only), "reach-window" (out to window * d), "global-too" (the global tokens dilated
    as well) or "every-key" (every key out to (window // 2) * d)."""

    def generate_longformer(window, global_tokens, dilation=1):
        if window < 1 or window % 2 == 0:
            raise ValueError("window must be odd and >= 1")
        if check_dilation and dilation < 1:
            raise ValueError("dilation must be >= 1")
        positions = range(global_tokens + count_extra) if isinstance(global_tokens, int) else global_tokens
        d = 1 if dilated == "ignored" else max(dilation, 1)
        reach = {"undilated-reach": radius(window), "reach-window": window * d}.get(dilated, radius(window) * d)

        def is_global(idx):
            flag = idx < 0
            for p in positions:
                flag = flag | (idx == p)
            return flag

        def longformer(b, h, q, kv):
            on_step = (q - kv) % d == 0 if dilated != "every-key" else q >= 0
            band = ((q - kv >= 0) & (q - kv < window)) if causal else ((q - kv).abs() <= reach) & on_step
            union = band | (is_global(q) if rows else q < 0) | (is_global(kv) if cols else q < 0)
            return union & on_step if dilated == "global-too" else union

        return longformer

    return generate_longformer


# ---------------------------------------------------------------- 4. BigBird's block layout


def _next_free_draw(rows: int, cols: int, per_row: int, seed: int, exclude: torch.Tensor) -> torch.Tensor:
    """Draws among all blocks; a draw on an excluded (or already drawn) block moves on to the next free one."""
    generator = torch.Generator().manual_seed(seed)
    drawn = torch.zeros(rows, cols, dtype=torch.bool)
    for row in range(rows):
        taken = exclude[row].clone()
        for col in torch.randperm(cols, generator=generator)[:per_row].tolist():
            while taken[col]:
                col = (col + 1) % cols
            taken[col] = drawn[row, col] = True
    return drawn


def bigbird_layout_with(
    radius=lambda w: w // 2,
    global_rows=True,
    global_cols=True,
    last_global=False,
    draw="free",
    skip_zero=True,
    check=True,
):
    """``draw``: "free" (Part 2 with exclude), "all" (Part 2 without exclude, OR-ed in), "next-free"
    (taken draws moved on), "misaligned" (exclude = the first rows, not the rows drawn for),
    "global-rng" (torch.manual_seed and randperm); ``skip_zero=False`` draws even for random_blocks=0."""

    def bigbird_layout(n_blocks, window_blocks, global_blocks, random_blocks, seed):
        if check and (
            window_blocks < 1 or window_blocks % 2 == 0 or not 0 <= global_blocks <= n_blocks or random_blocks < 0
        ):
            raise ValueError("bad arguments")
        blocks = torch.arange(n_blocks)
        layout = (blocks[:, None] - blocks[None, :]).abs() <= radius(window_blocks)
        chosen = slice(n_blocks - global_blocks, None) if last_global else slice(0, global_blocks)
        if global_rows:
            layout[chosen] = True
        if global_cols:
            layout[:, chosen] = True
        rows = n_blocks - global_blocks
        if (random_blocks or not skip_zero) and rows:
            taken = layout[global_blocks:]
            if draw == "free":
                extra = SOLUTION.random_block_layout(rows, n_blocks, random_blocks, seed, exclude=taken)
            elif draw == "all":
                extra = SOLUTION.random_block_layout(rows, n_blocks, random_blocks, seed)
            elif draw == "misaligned":
                extra = SOLUTION.random_block_layout(rows, n_blocks, random_blocks, seed, exclude=layout[:rows])
            elif draw == "next-free":
                if ((~taken).sum(-1) < random_blocks).any():
                    raise ValueError("too few free blocks")
                extra = _next_free_draw(rows, n_blocks, random_blocks, seed, taken)
            else:  # "global-rng"
                torch.manual_seed(seed)
                extra = torch.zeros(rows, n_blocks, dtype=torch.bool)
                for row in range(rows):
                    free = (~taken[row]).nonzero().flatten()
                    if len(free) < random_blocks:
                        raise ValueError("too few free blocks")
                    extra[row, free[torch.randperm(len(free))[:random_blocks]]] = True
            layout[global_blocks:] |= extra
        return layout

    return bigbird_layout


# ---------------------------------------------------------------- 5. block-sparse attention


def dense_then_mask(q, k, v, layout, block_size):
    """Right values through the full (Nq, Nk) scores and a token mask: dense work."""
    n_q, n_k = q.shape[-2], k.shape[-2]
    mask = layout.repeat_interleave(block_size, 0).repeat_interleave(block_size, 1)[:n_q, :n_k]
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1).nan_to_num(0.0) @ v


def sparse_with(scale=True, per_block=False, pad_keys=False, transpose=False, nan_rows=False):
    def block_sparse_attention(q, k, v, layout, block_size):
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

    return block_sparse_attention


# ---------------------------------------------------------------- 6. top-k attention


def allowed_pairs(q, k, causal=False, mask_mod=None):
    """The (Nq, Nk) pairs top-k attention may keep: all, the causal ones, and those ``mask_mod`` allows."""
    n_q, n_k = q.shape[-2], k.shape[-2]
    allowed = torch.ones(n_q, n_k, dtype=torch.bool)
    if causal:
        allowed = allowed.tril()
    if mask_mod is not None:
        allowed = allowed & create_mask(mask_mod, None, None, n_q, n_k, device=q.device)[0, 0]
    return allowed


def topk_with(
    keep=lambda k: k, descending=True, causal_first=True, renormalise=True, honour_causal=True, later_ties=False
):
    def topk_attention(q, k, v, top_k, causal=False, mask_mod=None):
        n_k = k.shape[-2]
        allowed = allowed_pairs(q, k, causal and honour_causal, mask_mod)
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


# ---------------------------------------------------------------- 7. layers for full reach


def layers_with(residual=True, offset=0, causal_target=True):
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


# ---------------------------------------------------------------- 8. content-adaptive blocks


def select_with(means="real", largest=True, extra=0, causal_rule="forced"):
    """``means``: "real" (right), "padded" (zero padding counted) or "sums"; ``largest=False`` keeps
    the lowest scores; ``extra`` adds to keep; ``causal_rule``: "forced" (right: own block kept and
    counted), "free" (own block not forced), "ignored" (later blocks allowed), "added" (own block on top)."""

    def select_blocks(q, k, block_size, keep, causal=False):
        def summary(x):
            pad = -x.shape[-2] % block_size
            blocks = torch.nn.functional.pad(x, (0, 0, 0, pad)).unflatten(-2, (-1, block_size))
            if means == "sums":
                return blocks.sum(-2)
            if means == "padded":
                return blocks.mean(-2)
            counts = torch.full((blocks.shape[-3],), float(block_size))
            counts[-1] = block_size - pad
            return blocks.sum(-2) / counts[:, None]

        scores = summary(q) @ summary(k).transpose(-2, -1)
        scores = scores if largest else -scores
        rows, columns = torch.arange(scores.shape[-2])[:, None], torch.arange(scores.shape[-1])[None, :]
        count = keep + extra
        if causal and causal_rule != "ignored":
            scores = scores.masked_fill(columns > rows, float("-inf"))
            if causal_rule == "forced":
                scores = scores.masked_fill(columns == rows, float("inf"))
            if causal_rule == "added":
                scores = scores.masked_fill(columns == rows, float("-inf"))
        kept = scores.topk(min(count, scores.shape[-1]), dim=-1).indices
        layout = torch.zeros(scores.shape, dtype=torch.bool).scatter(-1, kept, True) & (scores > float("-inf"))
        if causal and causal_rule == "added":
            layout |= columns == rows
        return layout

    return select_blocks
