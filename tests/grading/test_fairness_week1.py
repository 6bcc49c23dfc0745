"""Week 1's fairness corpus (harness: tests/fairness.py): right functions written unlike the
solution earn full marks; classic mistakes earn what they deserve, fail the check that finds
them, and graded feedback names them without the hidden inputs."""

from __future__ import annotations

import math
import statistics

import numpy as np
import torch
import variants_week1 as variants
from fairness import Right, Wrong, fairness_tests, mask_mod_raising_with_inputs
from notebook_source import SOLUTIONS, solution_namespace

from lcteach.grading import week1 as grade

SOLUTION = solution_namespace(SOLUTIONS / "week1_foundations" / "exercises.py")

# ---------------------------------------------------------------- 1. dense attention


def dense_softmax_where(q, k, v, mask=None):
    """torch.softmax, the scale applied to q first (a new tensor), the mask through torch.where."""
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    if mask is not None:
        scores = torch.where(mask, scores, torch.tensor(float("-inf"), dtype=q.dtype))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def dense_logsumexp(q, k, v, mask=None):
    """Weights as exp(s - logsumexp(s)), with einsum."""
    scores = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.exp(scores - torch.logsumexp(scores, dim=-1, keepdim=True))
    return torch.einsum("bhqk,bhkd->bhqd", weights, v), weights


DENSE = (
    Right("softmax-and-where", dense_softmax_where),
    Right("logsumexp-einsum", dense_logsumexp),
    Wrong(
        "no-scale",
        variants.attention_with(scale=lambda d: 1.0),
        0,
        "matches softmax",
        "without the 1/sqrt(d) scaling",
        not_counted=("returns (out, weights)", "each row", "stable", "leaves q"),
    ),
    Wrong(
        "scale-1/d", variants.attention_with(scale=lambda d: 1 / d), 0, "matches softmax", "1/d instead of 1/sqrt(d)"
    ),
    # A key column that the mask blocks entirely gives NaN weights on some inputs, not on others:
    # the feedback then reads "contains NaN" instead of naming the mistake, so it varies with the seed.
    Wrong(
        "softmax-over-queries",
        variants.attention_with(axis=-2),
        0,
        "matches softmax",
        "query axis",
        seed_invariant=False,
    ),
    Wrong(
        "no-max-subtraction",
        variants.attention_with(subtract_max=False),
        3 * 6 / 7,
        "stable",
        "subtract each row's maximum",
    ),
    Wrong(
        "mask-after-softmax",
        variants.attention_with(mask_mode="after"),
        3 * 5 / 7,
        "a boolean mask",
        "without renormalising",
    ),
    Wrong(
        "scales-q-in-place",
        variants.attention_with(in_place=True),
        3 * 6 / 7,
        "leaves q, k, v",
        "changed its argument q in place",
    ),
)

# ---------------------------------------------------------------- 2. causal mask


def causal_difference(b, h, q_idx, kv_idx):
    return q_idx - kv_idx >= 0


def causal_not_later(b, h, q_idx, kv_idx):
    return ~(kv_idx > q_idx)


CAUSAL = (
    Right("difference", causal_difference),
    Right("not-later", causal_not_later),
    Wrong("strict", lambda b, h, q, kv: q > kv, 0, "matches the causal mask", "attend to itself"),
    Wrong("transposed", lambda b, h, q, kv: q <= kv, 0, "matches the causal mask", "transposed"),
    Wrong("python-if", variants.causal_python_if, 0, "matches the causal mask", "vmap"),
)

# ---------------------------------------------------------------- 3. sliding window


def window_by_distance(window):
    if window < 1:
        raise ValueError(f"the window must hold at least the query, got {window}")

    def sliding(b, h, q_idx, kv_idx):
        distance = q_idx - kv_idx
        return (distance >= 0) & (distance <= window - 1)

    return sliding


def window_by_closure(window):
    if not window >= 1:
        raise ValueError("window < 1")
    return lambda b, h, q_idx, kv_idx: (kv_idx <= q_idx) & (kv_idx > q_idx - window)


WINDOW = (
    Right("distance", window_by_distance),
    Right("closure", window_by_closure),
    Wrong(
        "window-plus-one",
        variants.window_with(upper=lambda q, kv, w: q - kv <= w),
        0,
        "matches the reference",
        "one key too long",
        not_counted=("a window as long", "window < 1"),
    ),
    Wrong(
        "non-causal",
        variants.window_with(upper=lambda q, kv, w: (q - kv).abs() < w, causal=False),
        0,
        "matches the reference",
        "future keys",
        not_counted=("window=1",),
    ),
    Wrong("no-validation", variants.window_with(check=False), 1.5, "window < 1", "raise ValueError"),
)

# ---------------------------------------------------------------- 4. online softmax step


def online_nan_to_num(m, l, acc, scores, values):
    """exp(-inf - -inf) is NaN: replaced by 0 afterwards instead of choosing a reference point."""
    m_new = torch.maximum(m, scores.amax(dim=-1))
    rescale = torch.exp(m - m_new).nan_to_num(0.0)
    p = torch.exp(scores - m_new[..., None]).nan_to_num(0.0)
    return m_new, l * rescale + p.sum(-1), acc * rescale[..., None] + p @ values


def online_in_place(m, l, acc, scores, values):
    """The state updated in place, as real kernels do (the state is the step's to update)."""
    m_new = torch.maximum(m, scores.amax(dim=-1))
    safe = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
    rescale = torch.exp(m - safe)
    p = torch.exp(scores - safe[..., None])
    l.mul_(rescale).add_(p.sum(-1))
    acc.mul_(rescale[..., None]).add_(p @ values)
    return m_new, l, acc


ONLINE = (
    Right("nan-to-num", online_nan_to_num),
    Right("state-in-place", online_in_place),
    Wrong(
        "no-rescale",
        variants.online_with(rescale=False),
        3 * 1 / 5,
        "blocks of random sizes",
        "exp(m_old - m_new)",
        not_counted=("scores of size", "a fully masked block"),
    ),
    Wrong("no-max", variants.online_with(subtract_max=False), 3 * 3 / 5, "scores of size", "running maximum"),
    Wrong("nan-on-masked-block", variants.online_with(guard_inf=False), 3 * 4 / 5, "a fully masked block", "is NaN"),
)

# ---------------------------------------------------------------- 5. tiled attention


def tiled_merging_lse(q, k, v, block_size=128):
    """Each tile's softmax on its own, merged through log-sum-exp (no online_softmax_step)."""
    scale = 1 / math.sqrt(q.shape[-1])
    outs, lses = [], []
    for i in range(0, q.shape[-2], block_size):
        q_block = q[..., i : i + block_size, :]
        lse = torch.full(q_block.shape[:-1], float("-inf"), dtype=q.dtype)
        out = torch.zeros(*q_block.shape[:-1], v.shape[-1], dtype=q.dtype)
        for j in range(0, k.shape[-2], block_size):
            scores = q_block @ k[..., j : j + block_size, :].transpose(-2, -1) * scale
            tile_lse = torch.logsumexp(scores, dim=-1)
            tile_out = torch.softmax(scores, dim=-1) @ v[..., j : j + block_size, :]
            new_lse = torch.logaddexp(lse, tile_lse)
            out = out * torch.exp(lse - new_lse)[..., None] + tile_out * torch.exp(tile_lse - new_lse)[..., None]
            lse = new_lse
        outs.append(out)
        lses.append(lse)
    return torch.cat(outs, dim=-2), torch.cat(lses, dim=-1)


def tiled_zeros(q, k, v, block_size=128):
    """A stub of the right shapes: tiny memory, wrong everywhere."""
    return torch.zeros(*q.shape[:-1], v.shape[-1]), torch.zeros(q.shape[:-1])


def tiled_no_scale(q, k, v, block_size=128):
    return SOLUTION.tiled_attention(q * math.sqrt(q.shape[-1]), k, v, block_size)


TILED = (
    Right("merging-lse", tiled_merging_lse, public=False),
    Right("strips", variants.tiled_strips, public=False),
    Wrong("quadratic-buffer", variants.tiled_quadratic, 2, "peak memory", "256.0 MiB"),
    Wrong("zeros-stub", tiled_zeros, 0, "matches dense attention", "fold every key block", not_counted=("peak",)),
    Wrong("no-scale", tiled_no_scale, 0, "matches dense attention", "differs from the expected values"),
)

# ---------------------------------------------------------------- 6. chunked processing


def chunks_by_starts(fn, x, chunk_size, overlap):
    """The starts computed first; each chunk contributes the positions after its predecessor's end."""
    if overlap < 0 or overlap >= chunk_size:
        raise ValueError("need 0 <= overlap < chunk_size")
    n, step = x.shape[1], chunk_size - overlap
    starts = [0]
    while starts[-1] + chunk_size < n:
        starts.append(starts[-1] + step)
    pieces = []
    for index, start in enumerate(starts):
        result = fn(x[:, start : start + chunk_size])
        pieces.append(result if index == 0 else result[:, overlap:])
    return torch.cat(pieces, dim=1)


def chunks_into_buffer(fn, x, chunk_size, overlap):
    """Writes each chunk's new positions into an output allocated from the first result."""
    if not 0 <= overlap < chunk_size:
        raise ValueError(f"overlap={overlap} with chunk_size={chunk_size}")
    n, out, done, start = x.shape[1], None, 0, 0
    while done < n:
        end = min(start + chunk_size, n)
        result = fn(x[:, start:end])
        if out is None:
            out = result.new_empty(result.shape[0], n, result.shape[-1])
        out[:, done:end] = result[:, done - start :]
        done, start = end, start + chunk_size - overlap
    return out


CHUNKS = (
    Right("starts-first", chunks_by_starts),
    Right("into-a-buffer", chunks_into_buffer),
    Wrong(
        "later-chunk-wins",
        variants.chunks_with(keep="last"),
        0,
        "every position once",
        "later chunk",
        not_counted=("overlap 0", "overlap >= chunk_size"),
    ),
    Wrong(
        "ignores-overlap",
        variants.chunks_with(ignore_overlap=True),
        0,
        "every position once",
        "too far apart",
        not_counted=("overlap 0", "overlap >= chunk_size"),
    ),
    Wrong("stride-off-by-one", variants.chunks_with(step_extra=1), 0, "every position once", "too far apart"),
    Wrong(
        "accepts-negative-overlap",
        variants.chunks_with(check=lambda c, o: o < c),
        3 * 3 / 4,
        "overlap >= chunk_size or overlap < 0",
        "a negative overlap returned",
    ),
)

# ---------------------------------------------------------------- 7. fitting the exponent


def fit_polyfit_log10(ns, values, breaks=0):
    """Base-10 logarithms give the same slopes (and residuals in proportion); numpy's float64 is a
    float. The break: polyfit's own residuals, the first of the least totals through argmin."""
    x, y = np.log10(ns), np.log10(values)
    if breaks == 0:
        return np.polyfit(x, y, 1)[0]
    if breaks != 1 or len(x) < 6:
        raise ValueError("breaks=1 needs 6 points; only breaks 0 and 1 exist")

    def residuals(part):
        return np.polyfit(x[part], y[part], 1, full=True)[1].sum()

    splits = range(3, len(x) - 2)
    k = splits[int(np.argmin([residuals(slice(None, k)) + residuals(slice(k, None)) for k in splits]))]
    return np.polyfit(x[k:], y[k:], 1)[0]


def fit_statistics(ns, values, breaks=0):
    """statistics.linear_regression on each part; the split walked from the top, ties going down."""
    if breaks not in (0, 1):
        raise ValueError(f"breaks={breaks}")
    x, y = [math.log(n) for n in ns], [math.log(v) for v in values]
    if breaks == 0:
        return statistics.linear_regression(x, y).slope

    def fit(xs, ys):
        line = statistics.linear_regression(xs, ys)
        return line.slope, math.fsum((b - line.intercept - line.slope * a) ** 2 for a, b in zip(xs, ys))

    if len(x) < 6:
        raise ValueError(f"{len(x)} points cannot make two parts of 3")
    best = None
    for k in reversed(range(3, len(x) - 2)):
        (_, lower), (slope, upper) = fit(x[:k], y[:k]), fit(x[k:], y[k:])
        if best is None or lower + upper <= best[0]:
            best = (lower + upper, slope)
    return best[1]


def fit_tensor(ns, values, breaks=0):
    """Right slope, returned as a 0-d tensor."""
    x, y = torch.tensor(ns, dtype=torch.float64).log(), torch.tensor(values, dtype=torch.float64).log()
    x = x - x.mean()
    return (x * (y - y.mean())).sum() / (x**2).sum()


FIT = (
    Right("polyfit-log10", fit_polyfit_log10),
    Right("statistics", fit_statistics),
    Wrong(
        "0-d-tensor-no-breaks",
        fit_tensor,
        6 / 7,
        "returns a Python float",
        "not a float",
        not_counted=("breaks=1 with fewer",),
    ),
    Wrong(
        "endpoints-no-breaks",
        variants.fit_endpoints,
        6 / 7,
        "noisy measurements",
        "first and last points",
        not_counted=("breaks=1 with fewer",),
    ),
    Wrong(
        "no-logs",
        variants.fit_without_logs,
        0,
        "an exact n^2 law",
        "expected 2",
        not_counted=("returns a Python float", "breaks=1 with fewer"),
    ),
    Wrong(
        "lower-slope",
        variants.fit_with(slope_of="lower"),
        8 / 7,
        "breaks=1: an exact law",
        "the lower part's",
        not_counted=("breaks=1 with fewer",),
    ),
    Wrong(
        "largest-slope-change",
        variants.fit_with(choose="slope-change"),
        8 / 7,
        "breaks=1: an exact law",
        "where the slope changes most",
        not_counted=("breaks=1 with fewer",),
    ),
    Wrong("parts-of-two", variants.fit_with(min_part=2), 10 / 7, "breaks=1: noisy", "a part have 2 points"),
    Wrong("any-breaks", variants.fit_with(check_breaks=False), 12 / 7, "breaks=1 with fewer", "only breaks=0"),
)

# ---------------------------------------------------------------- 8. causal tiled attention


def causal_strips(q, k, v, block_size=64, window=None):
    """One strip of keys per query block, from the window's first key to the block's last row, in one
    softmax: no online state, but the work still follows the window."""
    n = q.shape[-2]
    outs, lses = [], []
    for i0 in range(0, n, block_size):
        i1 = min(i0 + block_size, n)
        first = 0 if window is None else max(0, i0 - window + 1)
        scores = q[..., i0:i1, :] @ k[..., first:i1, :].transpose(-2, -1) / math.sqrt(q.shape[-1])
        rows, columns = torch.arange(i0, i1)[:, None], torch.arange(first, i1)[None, :]
        allowed = (columns <= rows) & ((rows - columns < window) if window is not None else True)
        scores = torch.where(allowed, scores, torch.tensor(float("-inf"), dtype=q.dtype))
        outs.append(torch.softmax(scores, dim=-1) @ v[..., first:i1, :])
        lses.append(torch.logsumexp(scores, dim=-1))
    return torch.cat(outs, dim=-2), torch.cat(lses, dim=-1)


CAUSAL_TILED = (
    Right("mask-every-visited-tile", variants.causal_tiled_with(), public=False),
    Right("one-strip-per-query-block", causal_strips, public=False),
    Wrong(
        "skips-only-future-tiles",
        variants.causal_tiled_with(skip="future"),
        2,
        "skips the masked tiles",
        "skipping the future tiles alone",
        seed_invariant=False,
    ),
    Wrong(
        "no-skipping",
        variants.causal_tiled_with(skip="none"),
        2,
        "skips the masked tiles",
        "loop only over the key blocks",
        seed_invariant=False,
    ),
    Wrong(
        "strict-diagonal",
        variants.causal_tiled_with(upper=-1),
        0,
        "causal: matches",
        "itself included",
        not_counted=("skips the masked tiles",),
    ),
    Wrong(
        "window-one-too-long",
        variants.causal_tiled_with(width=1),
        1,
        "sliding window",
        "a window one key too long",
        not_counted=("skips the masked tiles",),
    ),
    Wrong("no-scale", variants.causal_tiled_with(scale=False), 0, "causal: matches", "without the 1/sqrt(d) scaling"),
)

# ---------------------------------------------------------------- 9. tiled backward


def backward_two_pass(q, k, v, out, lse, d_out, block_size=64):
    """D from a first pass over the tiles (D = rowsum(P o dP)), the gradients in a second one."""
    scale = 1 / math.sqrt(q.shape[-1])
    tiles = [
        (slice(i, i + block_size), slice(j, j + block_size))
        for i in range(0, q.shape[-2], block_size)
        for j in range(0, k.shape[-2], block_size)
    ]

    def p_and_dp(rows, keys):
        p = torch.exp(q[..., rows, :] @ k[..., keys, :].transpose(-2, -1) * scale - lse[..., rows, None])
        return p, d_out[..., rows, :] @ v[..., keys, :].transpose(-2, -1)

    big_d = torch.zeros(q.shape[:-1], dtype=q.dtype)
    for rows, keys in tiles:
        p, d_p = p_and_dp(rows, keys)
        big_d[..., rows] += (p * d_p).sum(-1)
    dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    for rows, keys in tiles:
        p, d_p = p_and_dp(rows, keys)
        d_s = p * (d_p - big_d[..., rows, None]) * scale
        dq[..., rows, :] += torch.einsum("...ij,...jd->...id", d_s, k[..., keys, :])
        dk[..., keys, :] += torch.einsum("...ij,...id->...jd", d_s, q[..., rows, :])
        dv[..., keys, :] += torch.einsum("...ij,...ie->...je", p, d_out[..., rows, :])
    return dq, dk, dv


BACKWARD = (
    Right("query-blocks-outside", variants.backward_with(), public=False),
    Right("two-passes-d-from-tiles", backward_two_pass, public=False),
    Wrong("no-d", variants.backward_with(centre="none"), 0, "float64", "subtracts D", not_counted=("peak memory",)),
    Wrong("d-rowsum-dp", variants.backward_with(centre="rowsum dP"), 0, "float64", "D = rowsum(dP)"),
    Wrong("no-scale", variants.backward_with(scale_power=0), 0, "float64", "without the 1/sqrt(d)"),
    Wrong("scale-twice", variants.backward_with(scale_power=2), 0, "float64", "applied twice"),
    Wrong("dv-untransposed", variants.backward_with(transpose_p=False), 0, "float64", "dV = P dO"),
    Wrong(
        "stores-p",
        variants.backward_with(store_p=True),
        2,
        "peak memory",
        "never build P or dS for all pairs",
        seed_invariant=False,
    ),
)

# ---------------------------------------------------------------- 10. chunk schedule


def schedule_closed_form(n, budget_bytes, overlap, bytes_per_token, bytes_per_pair):
    """The root of the quadratic, corrected by a step either way for rounding; spans by range()."""

    def cost(c):
        return bytes_per_token * c + bytes_per_pair * c * c

    size = int(
        (-bytes_per_token + math.sqrt(bytes_per_token**2 + 4 * bytes_per_pair * budget_bytes)) / (2 * bytes_per_pair)
    )
    while cost(size + 1) <= budget_bytes:
        size += 1
    while size > 0 and cost(size) > budget_bytes:
        size -= 1
    size = min(size, n)
    if size <= overlap:
        raise ValueError("budget too small for a chunk longer than the overlap")
    starts = range(0, max(n - overlap, 1), size - overlap)
    return [(start, min(start + size, n)) for start in starts]


SCHEDULE = (
    Right("linear-scan", variants.schedule_with()),
    Right("closed-form", schedule_closed_form),
    Wrong(
        "strictly-below-budget",
        variants.schedule_with(fits=lambda cost, budget: cost < budget),
        2 * 2 / 3,
        "a budget of exactly",
        "shorter than the budget allows",
    ),
    Wrong(
        "never-raises",
        variants.schedule_with(check=False),
        2 * 2 / 3,
        "raises ValueError",
        "returned instead of raising",
    ),
    Wrong("starts-too-far-apart", variants.schedule_with(step_extra=1), 0, "the spans", "the chunks must start"),
    Wrong(
        "float-spans",
        variants.schedule_with(ints=False),
        0,
        "the spans",
        "a list of (start, end) tuples of ints",
        not_counted=("raises ValueError",),
    ),
)

CORPUS = {
    grade.dense_attention: DENSE,
    grade.causal_mask: CAUSAL,
    grade.sliding_window: WINDOW,
    grade.online_softmax_step: ONLINE,
    grade.tiled_attention: TILED,
    grade.process_in_chunks: CHUNKS,
    grade.fit_exponent: FIT,
    grade.causal_tiled_attention: CAUSAL_TILED,
    grade.tiled_attention_backward: BACKWARD,
    grade.schedule_chunks: SCHEDULE,
}

(
    test_every_part_has_a_corpus,
    test_right_variants_earn_full_marks,
    test_wrong_variants_earn_what_they_deserve,
    test_graded_feedback_hides_the_students_inputs,
) = fairness_tests(grade, CORPUS, raisers={grade.causal_mask: mask_mod_raising_with_inputs})


def test_graded_feedback_names_the_mistake_not_the_inputs(capsys):
    """The issue's examples: the diagnosis ("fn was called on chunks ...", "without the 1/sqrt(d) scaling")
    reaches graded feedback; the sizes, chunk spans and values the grader drew do not."""
    from grading_helpers import run

    seen = []

    def recording_chunker(fn, x, chunk_size, overlap):
        seen.append((x.shape[1], chunk_size, overlap))
        return variants.chunks_with(step_extra=1)(fn, x, chunk_size, overlap)

    result, _ = run(grade.process_in_chunks, recording_chunker, capsys, 4242)
    report = result.report()
    assert "your chunks start too far apart" in report and "chunk_size - overlap" in report
    assert "[(" not in report and "chunks [" not in report
    for n, chunk_size, overlap in seen:
        assert (
            f"n={n}," not in report and f"chunk_size={chunk_size}" not in report and f"overlap={overlap}" not in report
        )
    public = grade.process_in_chunks(recording_chunker)
    assert "chunk_size=" in public.report() and "[0, " in public.report()  # the self-check shows them

    sizes = []

    def recording_attention(q, k, v, mask=None):
        sizes.append((q.shape[-2], k.shape[-2], round(float(q.flatten()[0]), 4)))
        return variants.attention_with(scale=lambda d: 1.0)(q, k, v, mask)

    result, _ = run(grade.dense_attention, recording_attention, capsys, 4242)
    report = result.report()
    assert "without the 1/sqrt(d) scaling" in report and "max abs error" not in report
    for n_q, n_k, first in sizes:
        assert f"Nq={n_q}" not in report and f"Nk={n_k}" not in report and f"{first}" not in report
