# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Week 1 exercises: foundations of long-context attention
#
# Ten graded parts and one written answer. In each part you write one function; the cell
# under it checks your work on the spot.
#
# **How grading works.** Each check cell runs your function on random inputs and compares the
# result with the course's reference implementation. It prints which checks passed, what was
# expected, what it saw, and a hint; the number at the bottom of the cell is your score for
# that part. When you submit, the grader runs your notebook in a sandbox and calls your
# functions from its own process, on inputs drawn for you alone that you have not seen: those
# calls decide the grade, so make your function correct rather than make the checks pass.
# The memory of Parts 5 and 9 and the CPU time of Part 8 are measured from outside: your
# notebook's code runs again in a fresh process, and all the memory that process allocates
# and all the CPU time it spends while your function runs count.
#
# Your graded feedback lists the same checks, and for each failed one the mistake it found and
# a hint; it leaves out the hidden inputs and the values expected on them (the self-check here
# shows them for the public inputs, under `details`).
#
# **Values first.** Most checks compare your results with the reference. The others test a
# property: shapes, rows that sum to 1, stability for large scores, arguments left unchanged,
# peak memory, an edge case, a `ValueError` for bad arguments, the type returned. A property
# check counts only when your function's values are right on the inputs it tries (an edge
# case or an error check also tries an ordinary input): a function that returns wrong numbers
# earns nothing for being small, stable or tidy, and such a check then says *not counted* and
# names the mistake in the values.
#
# **Rules.**
# - Write your functions with `torch` (and `numpy`, `math`) only. Graded runs do not have the
#   `lcteach` reference implementations, and `torch.nn.functional.scaled_dot_product_attention`
#   and `flex_attention` raise an error there: a graded function that calls them fails its
#   checks.
# - Do not edit or delete the check cells; they are restored from the original when grading.
# - Tensors are `(batch, heads, seq, dim)`, as everywhere in the course.

# %%
import math

import numpy as np
import torch

from lcteach.grading import week1 as grade

_ = torch.manual_seed(0)

# %% [markdown]
# ## Part 1: dense attention from scratch (3 points)
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d}}\right) V$$
#
# Write `dense_attention(q, k, v, mask=None)` returning `(out, weights)`:
# - `q` is `(B, H, Nq, D)`, `k` is `(B, H, Nk, D)`, `v` is `(B, H, Nk, Dv)`;
# - `weights` is `(B, H, Nq, Nk)` and each row sums to 1; `out` is `(B, H, Nq, Dv)`;
# - `mask`, when given, is a bool tensor broadcastable to `(B, H, Nq, Nk)`: `True` means
#   *may attend*. A masked pair must get exactly zero weight. You may assume that every query
#   may attend to at least one key.
# - It must stay finite and right when scores are in the thousands. `torch.softmax` is
#   allowed and does this for you; if you write the softmax yourself, subtract each row's
#   maximum before `exp` (the softmax does not change, the overflow goes away). Try both on
#   `q * 100` to see why it matters.
# - Results keep the inputs' dtype; float64 inputs are checked to about 1e-9.
# - Leave the arguments unchanged: compute new tensors (`q / math.sqrt(d)`), never scale `q`
#   in place (`q /= ...`, `q.div_(...)`). The caller still needs its tensors, and
#   self-attention, `dense_attention(x, x, x)`, passes one tensor as `q`, `k` and `v`.


# %% nbgrader={"grade": false, "grade_id": "dense_attention", "locked": false, "schema_version": 3, "solution": true}
def dense_attention(q, k, v, mask=None):
    """Return (out (B, H, Nq, Dv), weights (B, H, Nq, Nk))."""
    ### BEGIN SOLUTION
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    scores = scores - scores.amax(dim=-1, keepdim=True)
    exp_scores = torch.exp(scores)
    weights = exp_scores / exp_scores.sum(dim=-1, keepdim=True)
    return weights @ v, weights
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_dense_attention", "locked": true, "points": 3, "schema_version": 3, "solution": false}
grade.dense_attention(dense_attention)

# %% [markdown]
# ## Part 2: the causal mask as a `mask_mod` (1 point)
#
# Real code describes attention patterns the way PyTorch's FlexAttention does: a function
# `mask_mod(b, h, q_idx, kv_idx)` that returns `True` where query `q_idx` may attend to key
# `kv_idx`. FlexAttention calls it on tensors (under `torch.vmap`), so use tensor comparisons
# (`>=`, `&`, `|`) and no Python `if`.
#
# Write `causal_mask`: a query attends to itself and to every earlier position. It must work
# for any numbers of queries and keys (`Nq != Nk` too).


# %% nbgrader={"grade": false, "grade_id": "causal_mask", "locked": false, "schema_version": 3, "solution": true}
def causal_mask(b, h, q_idx, kv_idx):
    """True where key kv_idx is at or before query q_idx."""
    ### BEGIN SOLUTION
    return kv_idx <= q_idx
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_causal_mask", "locked": true, "points": 1, "schema_version": 3, "solution": false}
grade.causal_mask(causal_mask)

# %% [markdown]
# You can look at your mask with FlexAttention's own materialiser:

# %%
from torch.nn.attention.flex_attention import create_mask

print(create_mask(causal_mask, None, None, 6, 6, device="cpu")[0, 0].int())

# %% [markdown]
# ## Part 3: a sliding window (2 points)
#
# Write `generate_sliding_window(window)` that returns a `mask_mod`. The off-by-one, written
# down: **a window of `w` keys includes the query itself**, so query `i` attends to keys `j`
# with `i - w < j <= i`. `window=1` is the query alone; a window at least as long as the
# sequence is the causal mask. A `window` below 1 makes no sense: raise `ValueError` with a
# message that says so. It helps (it is not graded) to give the inner function a telling
# `__name__`, e.g. `sliding_window_4`: FlexAttention prints it.


# %% nbgrader={"grade": false, "grade_id": "sliding_window", "locked": false, "schema_version": 3, "solution": true}
def generate_sliding_window(window):
    """Return mask_mod(b, h, q_idx, kv_idx): causal, the last `window` keys up to the query."""
    ### BEGIN SOLUTION
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")

    def sliding_window(b, h, q_idx, kv_idx):
        return (kv_idx <= q_idx) & (q_idx - kv_idx < window)

    sliding_window.__name__ = f"sliding_window_{window}"
    return sliding_window
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_sliding_window", "locked": true, "points": 2, "schema_version": 3, "solution": false}
grade.sliding_window(generate_sliding_window)

# %% [markdown]
# ## Part 4: online softmax, one block at a time (3 points)
#
# Flash attention never holds a whole row of scores. It keeps, for each query row, a running
# state and folds in one block of scores (and the matching values) at a time:
#
# - `m`: the largest score seen so far, shape `(..., Nq)`;
# - `l`: the sum of $e^{s - m}$ over the scores seen so far, shape `(..., Nq)`;
# - `acc`: the sum of $e^{s - m}\, v$, shape `(..., Nq, Dv)`.
#
# When a block raises the maximum from $m$ to $m'$, everything accumulated so far was
# computed relative to the old maximum and must be rescaled by $e^{m - m'}$:
#
# $$m' = \max(m, \max_j s_j), \quad l' = l\,e^{m - m'} + \sum_j e^{s_j - m'}, \quad
#   \mathrm{acc}' = \mathrm{acc}\,e^{m - m'} + \sum_j e^{s_j - m'} v_j$$
#
# After the last block, `acc / l` is exactly `softmax(s) @ v`. The grader starts from
# `m = -inf`, `l = 0`, `acc = 0`, and checks the state `(m, l)` itself as well as `acc / l`,
# with blocks of random sizes, scores of size ±1000, and a fully masked block. That is the
# trap: a block that is fully masked (all scores `-inf`) arriving first leaves
# $m' = -\infty$, and $e^{-\infty - (-\infty)}$ is NaN. Use 0 as the reference point for such
# rows.


# %% nbgrader={"grade": false, "grade_id": "online_softmax_step", "locked": false, "schema_version": 3, "solution": true}
def online_softmax_step(m, l, acc, scores, values):
    """Fold scores (..., Nq, Bk) and values (..., Bk, Dv) into the state; return (m, l, acc)."""
    ### BEGIN SOLUTION
    m_new = torch.maximum(m, scores.amax(dim=-1))
    reference = torch.where(m_new == float("-inf"), torch.zeros_like(m_new), m_new)
    rescale = torch.exp(m - reference)
    p = torch.exp(scores - reference[..., None])
    l_new = l * rescale + p.sum(dim=-1)
    acc_new = acc * rescale[..., None] + p @ values
    return m_new, l_new, acc_new
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_online_softmax_step", "locked": true, "points": 3, "schema_version": 3, "solution": false}
grade.online_softmax_step(online_softmax_step)

# %% [markdown]
# ## Part 5: tiled attention in O(n) memory (4 points)
#
# Now put the online softmax to work. Write `tiled_attention(q, k, v, block_size=128)`
# returning `(out, lse)` for full (non-causal) attention:
#
# 1. cut the queries into blocks of `block_size` rows;
# 2. for each query block, start a fresh state and sweep over the key blocks: compute one
#    `(block_size, block_size)` tile of scaled scores, fold it in with your
#    `online_softmax_step`;
# 3. write `acc / l` into the block's rows of `out`, and `lse = m + log(l)` (the log-sum-exp
#    of each query's scores, which lets two partial results be merged later).
#
# The last block may be shorter than `block_size`, `Nq` and `Nk` may differ, and `block_size`
# may be larger than both. **Graded by measurement:** at n = 8192 (d = 64, block 256) the
# grader measures the peak memory your function allocates, and its result must be right for
# the memory to count. The budget is 32 MiB (16 float32 copies of one `(n, d)` input), and 4x
# the tokens may cost at most 5x the memory. One 8192 x 8192 float32 score matrix is
# 256 MiB, so anything that grows like n² fails. The budget is about O(n) memory, not about
# tiles: a `(block_size, n)` strip of scores per query block (8 MiB) also fits. Keeping one
# `(block_size, block_size)` tile alive at a time, as flash attention does, needs about 3 MiB
# here, and it is what lets a GPU keep the tile in its fast on-chip memory.


# %% nbgrader={"grade": false, "grade_id": "tiled_attention", "locked": false, "schema_version": 3, "solution": true}
def tiled_attention(q, k, v, block_size=128):
    """Return (out (B, H, Nq, Dv), lse (B, H, Nq)) without ever holding more than one score tile."""
    ### BEGIN SOLUTION
    n_q, n_k = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1])
    out = torch.empty(*q.shape[:-1], v.shape[-1], dtype=q.dtype)
    lse = torch.empty(q.shape[:-1], dtype=q.dtype)
    for i in range(0, n_q, block_size):
        q_block = q[..., i : i + block_size, :]
        rows = q_block.shape[:-1]
        m = torch.full(rows, float("-inf"), dtype=q.dtype)
        l = torch.zeros(rows, dtype=q.dtype)
        acc = torch.zeros(*rows, v.shape[-1], dtype=q.dtype)
        for j in range(0, n_k, block_size):
            scores = q_block @ k[..., j : j + block_size, :].transpose(-2, -1) * scale
            m, l, acc = online_softmax_step(m, l, acc, scores, v[..., j : j + block_size, :])
        out[..., i : i + block_size, :] = acc / l[..., None]
        lse[..., i : i + block_size] = m + torch.log(l)
    return out, lse
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_tiled_attention", "locked": true, "points": 4, "schema_version": 3, "solution": false}
grade.tiled_attention(tiled_attention)

# %% [markdown]
# ## Part 6: chunked processing with overlap (3 points)
#
# When a model can only take `chunk_size` tokens at once, we cut the sequence into chunks
# that start every `chunk_size - overlap` positions, so neighbours share `overlap` positions,
# and run the model on each chunk. A position held by two chunks is taken from the **earlier**
# one: the later chunk's first `overlap` positions only serve as left context (warm-up), so
# every position after the first chunk sees at least `overlap` earlier tokens.
#
# Write `process_in_chunks(fn, x, chunk_size, overlap)`: `x` is `(B, n, d)`; call
# `fn(chunk)` on each chunk `x[:, start:start + chunk_size]` (the last one may be shorter;
# stop after the chunk that reaches position n); `fn` returns `(B, length_of_chunk, d_out)`;
# return the merged `(B, n, d_out)`. Raise `ValueError` when `overlap >= chunk_size` (the
# chunks would never advance) or `overlap < 0`.


# %% nbgrader={"grade": false, "grade_id": "process_in_chunks", "locked": false, "schema_version": 3, "solution": true}
def process_in_chunks(fn, x, chunk_size, overlap):
    """Run fn on overlapping chunks of x (B, n, d) along dim 1; keep each position from its first chunk."""
    ### BEGIN SOLUTION
    if not 0 <= overlap < chunk_size:
        raise ValueError(f"need 0 <= overlap < chunk_size, got overlap={overlap}, chunk_size={chunk_size}")
    n = x.shape[1]
    pieces = []
    done = 0  # positions [0, done) are already in the output
    start = 0
    while True:
        end = min(start + chunk_size, n)
        result = fn(x[:, start:end])
        pieces.append(result[:, done - start :])
        done = end
        if end == n:
            return torch.cat(pieces, dim=1)
        start += chunk_size - overlap
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_process_in_chunks", "locked": true, "points": 3, "schema_version": 3, "solution": false}
grade.process_in_chunks(process_in_chunks)

# %% [markdown]
# ## Part 7: fitting the scaling exponent (2 points)
#
# If a cost grows like $c\,n^p$, then $\log(\text{cost}) = \log c + p \log n$: a straight line
# on log-log axes whose slope is the exponent. Write `fit_exponent(ns, values, breaks=0)`.
#
# **`breaks=0`:** return the least-squares slope of `log(values)` against `log(ns)`. Use all
# the points: real timings are noisy, and two points give a noisy slope.
#
# **`breaks=1`:** real timings often follow two laws, one below a size and one above it (the
# cache step of Lecture 1: small inputs fit in cache, large ones stream from memory). One line
# through both regimes gives an exponent that belongs to neither. Fit a *broken* line instead:
# for every split of the points into the first `k` and the rest, with at least **3** points in
# each part (`k = 3 .. len(ns) - 3`), fit a least-squares line to each part on log-log axes
# and add up the squared residuals of both. Keep the split with the smallest total (of equal
# totals, the earliest) and return the slope of its **upper** part: the large-n regime, which
# asymptotic cost is about. Why 3? A line through 2 points fits them exactly, so splits with a
# part of 2 points would win for no reason but their size.
#
# `ns` and `values` are lists of positive numbers, `ns` increasing. With `breaks=1` and fewer
# than 6 points, or any `breaks` other than 0 and 1, raise `ValueError`. Return a Python
# `float` (`float(slope)`; numpy's `float64` is one, a 0-d tensor is not): slopes are checked
# to a relative tolerance of 1e-6, and the type has a check of its own.


# %% nbgrader={"grade": false, "grade_id": "fit_exponent", "locked": false, "schema_version": 3, "solution": true}
def fit_exponent(ns, values, breaks=0):
    """Least-squares slope p of log(values) = log(c) + p log(ns); with breaks=1, the upper part's slope of
    the best fit with one break (at least 3 points a part)."""
    ### BEGIN SOLUTION
    if breaks not in (0, 1):
        raise ValueError(f"breaks must be 0 or 1, got {breaks}")
    x = np.log(np.asarray(ns, dtype=float))
    y = np.log(np.asarray(values, dtype=float))

    def line(x, y):
        x_centred, y_centred = x - x.mean(), y - y.mean()
        slope = (x_centred * y_centred).sum() / (x_centred**2).sum()
        return float(slope), float(((y_centred - slope * x_centred) ** 2).sum())

    if breaks == 0:
        return line(x, y)[0]
    if len(x) < 6:
        raise ValueError(f"breaks=1 needs at least 6 points (3 on each side of the break), got {len(x)}")
    best_total, best_slope = math.inf, math.nan
    for k in range(3, len(x) - 2):
        upper_slope, upper_residuals = line(x[k:], y[k:])
        total = line(x[:k], y[:k])[1] + upper_residuals
        if total < best_total * (1 - 1e-9):  # a later split must fit better, not just as well
            best_total, best_slope = total, upper_slope
    return best_slope
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_fit_exponent", "locked": true, "points": 2, "schema_version": 3, "solution": false}
grade.fit_exponent(fit_exponent)

# %% [markdown]
# Try it on your own machine: time your `dense_attention` and fit the exponent, both ways. As
# in Lecture 1, each length gets a warm-up run and the best of three timed runs counts. The
# lengths run from 256 to 2048 on a geometric grid, across the cache step between n = 512
# and 1024 (Lecture 1: there the score and weight buffers outgrow a core's L2 cache).
#
# What to expect: one line through all the points mixes the cache-resident regime with the
# others and gives an exponent that belongs to neither. The fit with one break reads the
# upper part alone, usually closer to 2. But a CPU's memory has more than one step: where the
# buffers outgrow the L3 cache too (somewhere in the thousands, Lecture 1), the last points
# also pay for main memory and the upper exponent can overshoot 2. Run the cell a few times:
# on a shared machine the small-n times move by a factor of 2 between runs, and so do the
# fits. One break is a model, and a model of a machine is only as good as its regimes.

# %%
import time

ns = [round(256 * 2 ** (i / 2)) for i in range(7)]  # 256, 362, 512, ..., 2048
seconds = []
for n in ns:
    x = torch.randn(1, 1, n, 64)
    dense_attention(x, x, x)  # warm-up: first-touch page faults, allocator growth
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        dense_attention(x, x, x)
        runs.append(time.perf_counter() - start)
    seconds.append(min(runs))
print(f"one line through n = {ns[0]} .. {ns[-1]}: time grows like n^{fit_exponent(ns, seconds):.2f}")
print(f"one break, the upper part:      time grows like n^{fit_exponent(ns, seconds, breaks=1):.2f}")

# %% [markdown]
# ## Going further: flash attention in full
#
# Parts 8 and 9 finish the flash-attention kernel: the causal version that real language
# models run, which skips the work its mask hides, and the backward pass that lets you train
# through it without ever storing the weights (Lecture 3, sections 6 and 7).
#
# ## Part 8: causal tiled attention that skips masked tiles (4 points)
#
# Write `causal_tiled_attention(q, k, v, block_size=64, window=None)` returning `(out, lse)`
# as in Part 5, for **causal** attention over one sequence (`q`, `k`, `v` all have `n` rows):
# query `i` attends to the keys `j <= i`, and with a `window` of `w` only to the last `w` of
# them, `i - w < j <= i`, the query included (Part 3's convention). Use blocks of `block_size`
# for the queries and for the keys.
#
# The mask decides three kinds of tiles. A tile whose every pair is masked (a key block after
# the query block, or entirely behind the window) must be **skipped**: never compute its
# scores. A tile that the mask cuts through (on the diagonal, at the window's far edge) needs
# the mask inside it: set its masked scores to `-inf` before your `online_softmax_step`. The
# others are full. The lse is over the allowed keys only.
#
# **Graded by measurement:** at n = 4096 (d = 32, block 64, window 128) each query block
# meets about 3 of the 64 key blocks, and the grader measures the CPU time of your function
# (in a fresh process, from outside) against lean masked dense attention at the same size:
# yours must take less CPU time than dense attention, with right values. A solution that skips
# all of them takes about a third of it; one that skips only the tiles above the diagonal still
# computes half of all tiles, one small product at a time, and takes about three times as long
# as dense attention.


# %% nbgrader={"grade": false, "grade_id": "causal_tiled_attention", "locked": false, "schema_version": 3, "solution": true}
def causal_tiled_attention(q, k, v, block_size=64, window=None):
    """Causal (optionally windowed) attention (out (B, H, n, Dv), lse (B, H, n)) that skips fully masked tiles."""
    ### BEGIN SOLUTION
    n = q.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1])
    out = torch.empty(*q.shape[:-1], v.shape[-1], dtype=q.dtype)
    lse = torch.empty(q.shape[:-1], dtype=q.dtype)
    for i0 in range(0, n, block_size):
        i1 = min(i0 + block_size, n)
        rows = torch.arange(i0, i1)[:, None]
        first_key = 0 if window is None else max(0, i0 - window + 1)
        m = torch.full(q.shape[:-2] + (i1 - i0,), float("-inf"), dtype=q.dtype)
        l = torch.zeros_like(m)
        acc = torch.zeros(*m.shape, v.shape[-1], dtype=q.dtype)
        for j0 in range(first_key // block_size * block_size, i1, block_size):
            j1 = min(j0 + block_size, n)
            scores = q[..., i0:i1, :] @ k[..., j0:j1, :].transpose(-2, -1) * scale
            columns = torch.arange(j0, j1)[None, :]
            allowed = columns <= rows
            if window is not None:
                allowed &= rows - columns < window
            if not bool(allowed.all()):
                scores = scores.masked_fill(~allowed, float("-inf"))
            m, l, acc = online_softmax_step(m, l, acc, scores, v[..., j0:j1, :])
        out[..., i0:i1, :] = acc / l[..., None]
        lse[..., i0:i1] = m + torch.log(l)
    return out, lse
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_causal_tiled_attention", "locked": true, "points": 4, "schema_version": 3, "solution": false}
grade.causal_tiled_attention(causal_tiled_attention)

# %% [markdown]
# ## Part 9: the backward pass, one tile at a time (4 points)
#
# Training needs $dQ$, $dK$, $dV$ from the gradient $dO$ of the output. With
# $S = QK^\top/\sqrt{d}$, $P = \mathrm{softmax}(S)$ and $O = PV$ (Lecture 3, section 7):
#
# $$dV = P^\top dO, \qquad dP = dO\,V^\top, \qquad dS = P \circ (dP - D), \qquad
#   dQ = \frac{dS\,K}{\sqrt{d}}, \qquad dK = \frac{dS^\top Q}{\sqrt{d}},$$
#
# where $D_i = \sum_j P_{ij}\, dP_{ij} = \sum_c dO_{ic}\, O_{ic}$: the second form needs only
# the output, so you can compute $D$ once, before any tile.
#
# Write `tiled_attention_backward(q, k, v, out, lse, d_out, block_size=64)` returning
# `(dq, dk, dv)` for full (non-causal) attention, where `out` and `lse` are what your Part 5
# forward returned (shapes `(B, H, Nq, Dv)` and `(B, H, Nq)`) and `d_out` is $dO$. Never store
# $P$: for each tile of a query block and a key block, **recompute** its
# $P_{ij} = e^{S_{ij} - \mathrm{lse}_i}$ from the scores and the lse, add its share to
# `dv[j]`, `dk[j]` and `dq[i]`, and drop it. Sizes as in Part 5 (ragged blocks, `Nq != Nk`,
# blocks longer than the sequence); results keep the inputs' dtype, float64 is checked to
# about 1e-9.
#
# **Graded by measurement:** at n = 8192 (d = 64, block 256) your function's peak memory must
# stay under 32 MiB (16 float32 copies of one `(n, d)` input; the three gradients take three),
# 4x the tokens may cost at most 5x the memory, and the gradients must be right. One
# 8192 x 8192 float32 matrix is 256 MiB.


# %% nbgrader={"grade": false, "grade_id": "tiled_attention_backward", "locked": false, "schema_version": 3, "solution": true}
def tiled_attention_backward(q, k, v, out, lse, d_out, block_size=64):
    """Gradients (dq, dk, dv) of full attention from the saved (out, lse), recomputing P tile by tile."""
    ### BEGIN SOLUTION
    scale = 1.0 / math.sqrt(q.shape[-1])
    dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    big_d = (d_out * out).sum(dim=-1)  # D_i = rowsum(dO o O), once for all tiles
    for j0 in range(0, k.shape[-2], block_size):
        k_block, v_block = k[..., j0 : j0 + block_size, :], v[..., j0 : j0 + block_size, :]
        for i0 in range(0, q.shape[-2], block_size):
            rows = slice(i0, i0 + block_size)
            scores = q[..., rows, :] @ k_block.transpose(-2, -1) * scale
            p = torch.exp(scores - lse[..., rows, None])
            dv[..., j0 : j0 + block_size, :] += p.transpose(-2, -1) @ d_out[..., rows, :]
            d_s = p * (d_out[..., rows, :] @ v_block.transpose(-2, -1) - big_d[..., rows, None])
            dq[..., rows, :] += d_s @ k_block * scale
            dk[..., j0 : j0 + block_size, :] += d_s.transpose(-2, -1) @ q[..., rows, :] * scale
    return dq, dk, dv
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_tiled_attention_backward", "locked": true, "points": 4, "schema_version": 3, "solution": false}
grade.tiled_attention_backward(tiled_attention_backward)

# %% [markdown]
# Your forward and backward passes together are a trainable attention layer: wrap them in a
# `torch.autograd.Function` and gradient checking agrees with autograd through dense
# attention (this cell is not graded).


# %%
class FlashAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        out, lse = tiled_attention(q, k, v, block_size=4)
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    def backward(ctx, d_out):
        return tiled_attention_backward(*ctx.saved_tensors, d_out, block_size=4)


inputs = [torch.randn(1, 1, 10, 3, dtype=torch.float64, requires_grad=True) for _ in range(3)]
print("gradcheck:", torch.autograd.gradcheck(FlashAttention.apply, inputs))

# %% [markdown]
# ## Part 10: chunks that fit a memory budget (2 points)
#
# Part 6 took `chunk_size` as given. In practice you pick it from the memory you have
# (Lecture 5): processing a chunk of $c$ tokens costs about
#
# $$\mathrm{cost}(c) = \texttt{bytes\_per\_token}\cdot c + \texttt{bytes\_per\_pair}\cdot c^2$$
#
# bytes, activations growing with $c$ and the attention scores with $c^2$. Write
# `schedule_chunks(n, budget_bytes, overlap, bytes_per_token, bytes_per_pair)` returning the
# chunks as a list of `(start, end)` tuples of Python ints:
#
# - the chunk size is the **largest** $c \le n$ with $\mathrm{cost}(c) \le$ `budget_bytes`
#   (exactly equal fits);
# - chunks start every $c -$ `overlap` positions, each `(start, min(start + c, n))`, and the
#   list stops after the chunk that reaches `n`, as in Part 6;
# - if not even $c =$ `overlap + 1` fits, raise `ValueError` saying the budget is too small.
#
# The arguments are positive ints (`overlap >= 0`). A search over $c$ works; the closed form
# of the quadratic works too, if you guard against rounding.


# %% nbgrader={"grade": false, "grade_id": "schedule_chunks", "locked": false, "schema_version": 3, "solution": true}
def schedule_chunks(n, budget_bytes, overlap, bytes_per_token, bytes_per_pair):
    """[(start, end), ...] of the largest chunk whose cost fits budget_bytes, cut with the given overlap."""

    ### BEGIN SOLUTION
    def cost(c):
        return bytes_per_token * c + bytes_per_pair * c * c

    if cost(overlap + 1) > budget_bytes:
        raise ValueError(f"a budget of {budget_bytes} bytes does not fit a chunk of overlap + 1 = {overlap + 1} tokens")
    low, high = overlap + 1, n + 1  # cost(low) fits; chunks longer than n are not needed
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if cost(middle) <= budget_bytes else (low, middle)
    spans, start = [], 0
    while True:
        spans.append((start, min(start + low, n)))
        if start + low >= n:
            return spans
        start += low - overlap
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_schedule_chunks", "locked": true, "points": 2, "schema_version": 3, "solution": false}
grade.schedule_chunks(schedule_chunks)

# %% [markdown]
# ## Part 11: written answer (2 points, graded by your instructor)
#
# In a few sentences: a causal model processes a long document in chunks of 512 tokens with
# an overlap of 64 (Part 6). (a) What can token 600 not see that full causal attention would
# let it see, and what does the overlap change for it? (b) What does the overlap cost, as a
# fraction of extra positions processed? (c) When would you choose a sliding window of 512
# over this chunking, and why?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_chunk_borders", "locked": false, "points": 2, "schema_version": 3, "solution": true}
# (a) Chunks start every 512 - 64 = 448 positions, so token 600 is kept from the chunk
# [448, 960): it sees tokens 448 to 600 (153 tokens) and nothing before position 448, while
# full causal attention would let it see all 601 tokens. Without overlap it would sit in the
# chunk [512, 1024) and see only 89 tokens; the overlap guarantees every kept token at least
# 64 tokens of left context, but nothing beyond its chunk's start.
# (b) Each chunk after the first recomputes 64 positions it discards: 64 / 448, about 14%
# more positions (and attention work grows with it).
# (c) A sliding window gives every token exactly the last 512 tokens, with no border where
# context suddenly drops, at a cost of O(n w) like chunking; choose it when the model can be
# run with a mask (one pass over the sequence, e.g. with FlexAttention or a banded kernel).
# Chunking is for models that can only take a fixed-length input at a time.
