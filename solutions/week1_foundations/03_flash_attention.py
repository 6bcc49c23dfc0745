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
# # Lecture 3 · Flash attention: exact attention in $O(n)$ memory
#
# Lecture 1 showed that dense attention stores an $n \times n$ matrix of weights, and that this
# matrix, not the arithmetic, is what stops us at long context. Lecture 2 saved memory by
# attending to fewer keys, at the price of not seeing them. This lecture keeps **every** key
# and still never stores the matrix. The result is exact, not an approximation: the trick
# behind FlashAttention, which runs in essentially every modern large language model.
#
# The whole idea fits in one sentence: *the softmax can be computed one block of keys at a
# time, if you keep three running numbers per query and rescale them when the maximum
# changes.* In this lecture you will
#
# 1. see why every softmax subtracts the maximum, and watch float32 overflow without it;
# 2. derive the **online softmax** step by step and check it block by block;
# 3. cut attention into tiles, skip the ones a causal mask hides, and check the result against
#    dense attention to the last digit;
# 4. merge two partial attentions through their log-sum-exps;
# 5. measure peak memory, forward and backward: $O(n^2)$ for dense, $O(n)$ for tiled;
# 6. derive the backward pass, $dS = P \circ (dP - D)$ with $D = \mathrm{rowsum}(dO \circ O)$,
#    check every gradient against autograd, and see how FlashAttention-2 tiles it;
# 7. count the memory traffic between main memory and on-chip memory, $\Theta(nd + n^2)$ for
#    standard attention against $\Theta(n^2 d^2 / M)$ for tiled, and see from the arithmetic
#    intensity why the tiled kernel is the fast one on a GPU.

# %%
import lcteach  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads OpenMP, see Lecture 1)

# isort: split
import inspect
import time

import torch
from tqdm.auto import tqdm

from lcteach import (
    ScalingReport,
    dense_attention,
    dense_attention_memory,
    finalize_softmax_state,
    format_bytes,
    init_softmax_state,
    merge_attention,
    online_softmax_step,
    plot_scaling,
    profile_scaling,
    tiled_attention,
    track_peak_memory,
)
from lcteach.analysis import flash_attention_traffic, simulate_flash_traffic, standard_attention_traffic
from lcteach.kernels import tiled as tiled_kernel
from lcteach.measure import best_seconds
from lcteach.viz import plot_memory_traffic, plot_online_softmax, plot_tiles
from lcteach.widgets import tiling_explorer

_ = torch.manual_seed(0)

# %% [markdown]
# ## 1. Why every softmax subtracts the maximum
#
# For a row of scores $s_1, \dots, s_n$,
#
# $$\mathrm{softmax}(s)_j = \frac{e^{s_j}}{\sum_k e^{s_k}} .$$
#
# Written exactly like that, it breaks. The largest float32 number is about $3.4 \times
# 10^{38} = e^{88.7}$, so $e^{s}$ overflows to `inf` as soon as a score passes 88.7, and
# `inf / inf` is `nan`. Attention scores of 100 are not exotic in a large model. Here is the
# formula as written, **a naive version for illustration only**:


# %%
def naive_softmax(s):
    """softmax exactly as the formula is written: overflows for scores above ~88 in float32."""
    e = torch.exp(s)
    return e / e.sum(-1, keepdim=True)


scores = torch.tensor([100.0, 98.0, 95.0])
print(
    "float32 can hold e^88:",
    torch.exp(torch.tensor(88.0)).item(),
    "  but not e^89:",
    torch.exp(torch.tensor(89.0)).item(),
)
print("naive softmax of", scores.tolist(), "->", naive_softmax(scores).tolist())
print("torch.softmax of the same      ->", torch.softmax(scores, -1).tolist())

# %% [markdown]
# The cure: softmax does not change if we subtract the same number $m$ from every score,
# because $e^{-m}$ cancels between numerator and denominator,
#
# $$\frac{e^{s_j}}{\sum_k e^{s_k}} = \frac{e^{s_j - m}}{\sum_k e^{s_k - m}}, \qquad m = \max_k s_k .$$
#
# With $m$ the row maximum every exponent is $\le 0$, so nothing overflows, and the largest
# term is exactly $e^0 = 1$, so the denominator is at least 1 and never underflows to 0.
# Every softmax in practice does this, `torch.softmax` and `lcteach.dense_attention` included.

# %%
print("naive softmax of scores - max  ->", naive_softmax(scores - scores.max()).tolist())

# %% [markdown]
# The catch: to subtract the maximum we must know the maximum, which seems to require the
# whole row of scores before we can start. For attention, "the whole row" for all queries is
# the $n \times n$ matrix we want to avoid.
#
# **Check your understanding.** In float16 the largest number is 65,504. Above which score
# does the naive softmax overflow? Why does subtracting the maximum also protect against
# every weight underflowing to 0?
#
# <details>
# <summary>Answer</summary>
#
# Above $\ln 65{,}504 \approx 11.09$: $e^{11.1}$ is already `inf` in float16. The opposite
# failure hits rows whose scores are all very negative: at $s = -120$ every $e^{s}$ is 0 even in
# float32, and the softmax is $0/0 =$ `nan`. After subtracting the maximum the largest term is
# exactly $e^0 = 1$, so the denominator is at least 1 and the largest weight at least $1/n$:
# some weight always survives.
#
# </details>

# %% [markdown]
# ## 2. The online softmax
#
# Process the keys in blocks $B_1, B_2, \dots$ and keep, for each query, three running
# quantities after block $t$:
#
# - $m_t$: the largest score seen so far;
# - $\ell_t = \sum_{j \text{ seen}} e^{s_j - m_t}$: the normaliser, relative to the current max;
# - $a_t = \sum_{j \text{ seen}} e^{s_j - m_t}\, v_j$: the accumulator of weighted values.
#
# When block $B_t$ arrives, the max may grow. Everything accumulated so far was measured
# against the old max $m_{t-1}$; multiplying by $e^{m_{t-1} - m_t}$ moves it onto the new
# one, because $e^{s_j - m_{t-1}} \cdot e^{m_{t-1} - m_t} = e^{s_j - m_t}$:
#
# $$
# \begin{aligned}
# m_t &= \max\big(m_{t-1},\ \max_{j \in B_t} s_j\big) \\
# \ell_t &= \ell_{t-1}\, e^{m_{t-1} - m_t} + \sum_{j \in B_t} e^{s_j - m_t} \\
# a_t &= a_{t-1}\, e^{m_{t-1} - m_t} + \sum_{j \in B_t} e^{s_j - m_t}\, v_j
# \end{aligned}
# $$
#
# starting from $m_0 = -\infty$, $\ell_0 = 0$, $a_0 = 0$. After the last block,
#
# $$\text{out} = \frac{a_T}{\ell_T}, \qquad \log \sum_j e^{s_j} = m_T + \log \ell_T \ \ (\text{the log-sum-exp, "lse"}).$$
#
# The rescaling factor $e^{m_{t-1} - m_t}$ is at most 1 (the max only grows), so it never
# overflows, and it is exactly 1 whenever the max did not change. Here is the library's step:
# the three formulas, plus care for rows that have seen only masked ($-\infty$) scores
# (`p` holds the block's $e^{s_j - m_t}$, `correction` is $e^{m_{t-1} - m_t}$).

# %%
print(inspect.getsource(online_softmax_step))

# %% [markdown]
# Let us run it by hand on one query with 32 keys in blocks of 8, and check after every block
# that $\ell_t$ equals the sum it is supposed to hold.

# %%
generator = torch.Generator().manual_seed(1)
s = 3 * torch.randn(32, generator=generator, dtype=torch.float64)  # one query's scores
values = torch.randn(32, 4, generator=generator, dtype=torch.float64)  # 32 keys, value dim 4
block = 8

m, l, acc = init_softmax_state((1,), 4, dtype=s.dtype, device=s.device)
print(f"{'block':>5} {'running max m':>14} {'running l':>10} {'sum of exp(s_j - m) over seen keys':>36}")
for t, j0 in enumerate(range(0, 32, block), start=1):
    m, l, acc = online_softmax_step(m, l, acc, s[None, j0 : j0 + block], values[j0 : j0 + block])
    seen = s[: j0 + block]
    print(f"{t:>5} {m.item():>14.4f} {l.item():>10.4f} {torch.exp(seen - m).sum().item():>36.4f}")

out, lse = finalize_softmax_state(m, l, acc)
print(f"\nmax |online - softmax(s) @ V| = {(out - torch.softmax(s, -1) @ values).abs().max().item():.1e}")
print(f"lse = {lse.item():.6f}, torch.logsumexp(s) = {torch.logsumexp(s, -1).item():.6f}")

# %% [markdown]
# The plot follows the same computation. Top: the scores and the running max, a staircase that
# steps up whenever a block holds a new maximum. Bottom: the running normaliser $\ell$. Notice
# that $\ell$ **drops** at a block where the max jumps: the old sum is rescaled by
# $e^{m_{t-1} - m_t} < 1$. Measured on the final scale (dotted) the partial sums only grow,
# and they end exactly at the true value.

# %%
plot_online_softmax(s, block)

# %% [markdown]
# **Check your understanding.** A block arrives whose scores are all below the current max.
# What are the rescaling factor and the new $m$? What would go wrong if you forgot to rescale
# $a$ but did rescale $\ell$?
#
# <details>
# <summary>Answer</summary>
#
# The max does not change, $m_t = m_{t-1}$, so the factor is $e^0 = 1$ and the block's terms
# are simply added. Without rescaling $a$, every time the max grows the values accumulated so
# far stay measured against the old, smaller max: they are too large by $e^{m_t - m_{t-1}}$
# while $\ell$ is right. The output $a / \ell$ then overweights the keys seen before each jump,
# and its weights no longer sum to 1. The result is right only if the max never grows after
# the first block, which is why the error can hide on friendly test data.
#
# </details>

# %% [markdown]
# ## 3. Tiled attention
#
# Now apply the online softmax to all queries at once. Cut the queries into blocks of $B_q$
# rows and the keys into blocks of $B_k$. For each query block, sweep over the key blocks:
#
# 1. compute one **tile** of scores $S = Q_i K_j^\top / \sqrt{d}$, of size $B_q \times B_k$;
# 2. fold it into that query block's running $(m, \ell, a)$ with `online_softmax_step`;
# 3. throw the tile away.
#
# After the sweep, $\text{out}_i = a / \ell$. Only one tile of scores exists at a time, so the
# memory is $O(B_q B_k)$ for the tile plus $O(n d)$ for inputs, outputs and the running
# state: **linear in $n$**. The arithmetic is the same as dense attention.
#
# A mask makes some tiles entirely empty, and a tile without an allowed pair need not be
# computed at all. With a causal mask, about half of the tiles lie above the diagonal:

# %%
plot_tiles(512, 512, 64, 64, causal=True)

# %% [markdown]
# The blue tiles lie wholly below the diagonal: every pair is allowed. The orange ones are on
# the diagonal: computed, then partly masked. Grey tiles are never computed, so causal
# attention does about half the work of full attention. Explore how the block sizes change
# the picture; the info line compares the memory of one tile with the full matrix.

# %%
tiling_explorer(n=256, block=32)

# %% [markdown]
# Tiled attention is not an approximation. Compare it with dense attention on a length that
# is not a multiple of the block size, with and without the causal mask:

# %%
q, k, v = torch.randn(3, 2, 4, 1_000, 64).unbind(0)  # batch 2, 4 heads, n = 1000, d = 64
for causal in (False, True):
    out_dense, _ = dense_attention(q, k, v, causal=causal)
    out_tiled, lse = tiled_attention(q, k, v, block_q=128, block_k=128, causal=causal)
    print(f"causal={causal!s:>5}: max |tiled - dense| = {(out_tiled - out_dense).abs().max().item():.1e}")

# %% [markdown]
# Besides the output, `tiled_attention` returns the log-sum-exp of every query's scores,
# $\mathrm{lse}_i = \log \sum_j e^{s_{ij}}$: the $m + \log \ell$ of its online softmax. It is
# one number per query, $O(n)$, and it summarises everything the softmax needs to know about
# the keys: the output is $\sum_j e^{s_{ij} - \mathrm{lse}_i} v_j$.

# %%
scores = (q @ k.transpose(-2, -1)) / 64**0.5
scores = scores.masked_fill(torch.ones(1_000, 1_000, dtype=torch.bool).triu(1), float("-inf"))
print(f"max |lse - torch.logsumexp(scores)| = {(lse - torch.logsumexp(scores, -1)).abs().max().item():.1e}")

# %% [markdown]
# ## 4. Merging partial attentions
#
# The lse is what makes attention *composable*. Split the keys into two halves $A$ and $B$ and
# run attention over each half separately. Each half gives an output normalised by its own
# sum, $e^{\mathrm{lse}_A}$ or $e^{\mathrm{lse}_B}$. The full softmax normalises by the total,
# $e^{\mathrm{lse}_A} + e^{\mathrm{lse}_B}$, so
#
# $$\text{out} = \frac{e^{\mathrm{lse}_A}\,\text{out}_A + e^{\mathrm{lse}_B}\,\text{out}_B}{e^{\mathrm{lse}_A} + e^{\mathrm{lse}_B}},
# \qquad \mathrm{lse} = \log\!\left(e^{\mathrm{lse}_A} + e^{\mathrm{lse}_B}\right).$$
#
# `merge_attention` computes this stably (again by subtracting a max). This is how
# Flash-Decoding splits a long cache across GPU cores, and how ring attention (Week 4)
# combines the pieces of a sequence spread over many GPUs.

# %%
half = 500
out_a, lse_a = tiled_attention(q, k[..., :half, :], v[..., :half, :])
out_b, lse_b = tiled_attention(q, k[..., half:, :], v[..., half:, :])
merged, merged_lse = merge_attention(out_a, lse_a, out_b, lse_b)
full, full_lse = tiled_attention(q, k, v)
print(f"max |merge(first half, second half) - full| = {(merged - full).abs().max().item():.1e}")
print(f"max |merged lse - full lse|                 = {(merged_lse - full_lse).abs().max().item():.1e}")

# %% [markdown]
# **Check your understanding.** The keys are split into $A$ and $B$ and the first query happens
# to be masked from every key in $B$. What are $\mathrm{lse}_B$ and the merged output for that
# query?
#
# <details>
# <summary>Answer</summary>
#
# Its sum over $B$ is empty, so $\mathrm{lse}_B = \log 0 = -\infty$ (and, by lcteach's
# convention, $\text{out}_B = 0$). Then $e^{\mathrm{lse}_B} = 0$: the merge gives
# $\text{out} = \text{out}_A$ and $\mathrm{lse} = \mathrm{lse}_A$, as if $B$ had never been
# seen. A stable merge must produce exactly this without computing $-\infty - (-\infty)$.
#
# </details>

# %% [markdown]
# ## 5. Measured: memory of dense vs tiled attention
#
# The claim is $O(n^2)$ memory for dense attention and $O(n)$ for tiled. We measure both at
# the same lengths, with $256 \times 256$ tiles: one warm-up run under the memory tracker, then
# the best of three timed runs, for each $n$. As in Lecture 1, torch runs on one thread from
# here on, and a time is that thread's CPU time, which other programs on the machine cannot
# inflate by taking the core away. The slopes are fitted for $n \ge 1024$, past the step where
# dense attention's buffers outgrow the L2 cache.


# %%
def tiled_256(q, k, v):
    """Tiled attention with 256 x 256 tiles."""
    return tiled_attention(q, k, v, block_q=256, block_k=256)


torch.set_num_threads(1)
lens = [512, 1_024, 2_048, 4_096]
measure = dict(repeats=3, fit_from=1_024, clock=time.thread_time)
dense_report = profile_scaling(dense_attention, lens, label="dense", **measure)
tiled_report = profile_scaling(tiled_256, lens, label="tiled 256 x 256", **measure)
print(f"{'n':>6} {'dense':>11} {'tiled':>11} {'dense / tiled':>14}")
for n, dense_peak, tiled_peak in zip(lens, dense_report.peak_bytes, tiled_report.peak_bytes):
    print(f"{n:>6,} {format_bytes(dense_peak):>11} {format_bytes(tiled_peak):>11} {dense_peak / tiled_peak:>13.1f}x")

# %%
plot_scaling(
    dense_report,
    tiled_report,
    metric="peak_bytes",
    title="Forward pass: peak memory\n(log-log; slopes fitted for n ≥ 1024)",
)

# %% [markdown]
# **What to notice.** Dense memory grows with slope 2. Tiled memory grows with slope well
# below 1 here: its largest buffers are the fixed-size tiles, and only the $n \times d$ output
# and state grow with $n$. At large $n$ the slope tends to 1.
#
# What about time? Here is the honest picture:

# %%
plot_scaling(
    dense_report,
    tiled_report,
    metric="seconds",
    title="Forward pass: CPU time of one thread\n(log-log; slopes fitted for n ≥ 1024)",
)

# %% [markdown]
# Tiling saves memory, not arithmetic: both versions compute all $n^2$ scores, so both lines
# rise with slope close to 2. Dense attention's slope often comes out above 2, and that is the
# memory hierarchy of Lecture 1 again: its buffers grow like $n^2$ and leave one cache level
# after another (the L2 cache past $n \approx 512$, the L3 cache somewhere in the thousands),
# so its time per pair creeps up within this range. Tiled attention's working set is one tile
# and one block of rows, whatever $n$ is; it stays in the cache and its time per pair stays
# flat. (On a busy machine, which shares the caches, the slopes can also move by a few
# tenths.) Which one is faster on a CPU depends on two overheads
# that pull in opposite directions: our tiled version runs a Python loop with a dozen small
# operations per tile, while dense attention writes and re-reads two $n \times n$ buffers in
# main memory. On a GPU the second overhead dominates by far: moving the $n \times n$ matrix
# through the GPU's main memory is much slower than the arithmetic, and FlashAttention, one
# fused kernel that keeps each tile in fast on-chip memory, runs several times faster than
# dense attention. Same algorithm; the hardware decides the speed.

# %% [markdown]
# ## 6. The backward pass recomputes
#
# Training needs gradients. Autograd through dense attention stores $n \times n$ buffers for
# the backward pass, and the backward pass builds more of its own, so training is $O(n^2)$
# even if the forward pass were not. Tiled
# attention stores only $q, k, v$, the output and the lse, all $O(n)$. In the backward pass it
# **recomputes** each tile of weights from them, $P_{ij} = e^{s_{ij} - \mathrm{lse}_i}$, uses
# it for the gradients and throws it away. Recomputing costs one more pass of arithmetic;
# storing would cost $n^2$ memory.
#
# First, the gradients are the same:

# %%
q, k, v = torch.randn(3, 1, 2, 300, 32).unbind(0)
grad_out = torch.randn(1, 2, 300, 32)
grads = {}
for name in ("dense", "tiled"):
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    if name == "dense":
        out, _ = dense_attention(*leaves, causal=True)
    else:
        out, _ = tiled_attention(*leaves, block_q=64, block_k=64, causal=True)
    out.backward(grad_out)
    grads[name] = [t.grad for t in leaves]
for label, g_dense, g_tiled in zip(("dq", "dk", "dv"), grads["dense"], grads["tiled"]):
    print(f"max |{label} tiled - {label} dense| = {(g_tiled - g_dense).abs().max().item():.1e}")

# %% [markdown]
# Now the peak memory of a full training step, forward and backward, measured with
# `track_peak_memory` around both passes. That first run is also the warm-up; the time is the
# CPU time of the best of three more runs without the tracker (the backward pass runs on the
# calling thread too).


# %%
def forward_backward(attention, n, generator):
    """Peak bytes and best-of-3 CPU seconds of one causal forward + backward pass at length n (batch 1, 1 head, d = 64)."""
    q, k, v = (torch.randn(1, 1, n, 64, generator=generator).requires_grad_() for _ in range(3))
    grad_out = torch.randn(1, 1, n, 64, generator=generator)

    def step():
        out, _ = attention(q, k, v)
        out.backward(grad_out)

    with track_peak_memory() as memory:
        step()
    return memory.peak_bytes, best_seconds(step, repeats=3, warmup=0, clock=time.thread_time)


methods = {
    "dense, forward + backward": lambda q, k, v: dense_attention(q, k, v, causal=True),
    "tiled 256 x 256, forward + backward": lambda q, k, v: tiled_attention(
        q, k, v, block_q=256, block_k=256, causal=True
    ),
}
generator = torch.Generator().manual_seed(0)
training_reports = []
for label, attention in methods.items():
    runs = [forward_backward(attention, n, generator) for n in tqdm(lens, desc=label, leave=False)]
    peaks, seconds = (tuple(column) for column in zip(*runs))
    training_reports.append(ScalingReport(label, tuple(lens), seconds, peaks, fit_from=1_024))

# %% [markdown]
# The peaks side by side, with dense attention's peak counted in $n \times n$ float32 buffers
# ($4n^2$ bytes each) and its prediction by `dense_attention_memory(n, training=True, causal=True)`,
# and the time of each training step:

# %%
dense_training, tiled_training = training_reports
print(f"{'':>6} {'peak memory':^47}  {'time':^19}")
print(f"{'n':>6} {'dense':>11} {'n x n buffers':>14} {'predicted':>10} {'tiled':>9}  {'dense':>9} {'tiled':>9}")
for i, n in enumerate(lens):
    dense_peak, tiled_peak = dense_training.peak_bytes[i], tiled_training.peak_bytes[i]
    predicted = dense_attention_memory(n, training=True, causal=True)
    print(
        f"{n:>6,} {format_bytes(dense_peak):>11} {dense_peak / (4 * n * n):>14.2f} {format_bytes(predicted):>10} "
        f"{format_bytes(tiled_peak):>9}  {dense_training.seconds[i] * 1e3:>6.0f} ms {tiled_training.seconds[i] * 1e3:>6.0f} ms"
    )

# %%
plot_scaling(
    *training_reports,
    metric="peak_bytes",
    title="Training step (forward + backward): peak memory\n(log-log; slopes fitted for n ≥ 1024)",
)

# %% [markdown]
# **What to notice.** With the backward pass, dense attention's peak holds about **seven**
# $n \times n$ float32 buffers (the column "n x n buffers" divides the peak by $4n^2$ bytes),
# against two in the forward pass, and its slope stays 2. The count is exact, which is why the
# prediction of `dense_attention_memory(n, training=True, causal=True)` matches to the byte.
# Writing $E$ for the exponentiated scores, $s$ for their row sums and $P = E / s$, the peak
# comes early in the backward pass, in the gradient of the division, and holds:
#
# - $E$ and $P$, kept by autograd from the forward pass;
# - $dP = d\text{out} \cdot V^\top$, the incoming gradient;
# - four temporaries of PyTorch's formula for the gradient of the denominator,
#   $-dP \cdot (E / s) / s$, all alive until it is summed over each row: $E / s$, $E / s^2$,
#   $-dP$ and their product.
#
# The fraction above 7 is the $O(n)$ terms and, with the causal mask, the boolean
# $n \times n$ mask that the backward pass keeps (1 byte per pair, a quarter of a float32
# buffer). A fused softmax such as `torch.softmax` keeps fewer (three at the peak), but any
# version that stores $P$ stays $O(n^2)$. Tiled attention's peak grows at most linearly (slope
# below 1 here, since fixed-size tiles are still a good part of it): its biggest growing
# buffers are the gradients $dq, dk, dv$, each the size of the input. At the larger lengths it
# is faster too, even on a CPU: it skips the masked half of the tiles in both passes, while
# dense attention computes all $n^2$ scores, masks them afterwards and streams seven
# $n \times n$ buffers through memory.

# %% [markdown]
# **Check your understanding.** Tiled attention's backward pass recomputes every score tile.
# Roughly how much more arithmetic is a training step than with dense attention, which
# stores them? Why is that a good trade on a GPU?
#
# <details>
# <summary>Answer</summary>
#
# Count the $n \times n \times d$ matrix products. Dense attention does two in the forward
# pass ($QK^\top$, $PV$) and four in the backward pass ($dV = P^\top d\text{out}$,
# $dP = d\text{out}\, V^\top$, $dQ = dS\, K$, $dK = dS^\top Q$). Tiled attention adds one,
# the recomputed $QK^\top$, plus the exponentials again: 7 products instead of 6, about 17%
# more arithmetic. On a GPU attention is limited by memory traffic, not arithmetic: writing
# and re-reading several $n \times n$ matrices in the GPU's main memory takes longer than the
# extra products, which run on data already in fast on-chip memory. That is why
# FlashAttention's backward pass is faster than the standard one despite the extra work.
#
# </details>

# %% [markdown]
# ## 7. The backward pass, derived
#
# Section 6 took the tiled backward pass on trust and checked it against autograd. Here we
# derive it. Take one head with $n$ queries and keys, head dim $d$ and $c = 1/\sqrt{d}$, and
# write the forward pass as three steps:
#
# $$S = c\, Q K^\top, \qquad P_{ij} = \frac{e^{S_{ij}}}{\sum_k e^{S_{ik}}}, \qquad O = P V .$$
#
# $O$ is the output ("out" so far). For any matrix $X$, $dX$ is the gradient of the loss $L$
# with respect to it, a matrix of the same shape; the backward pass receives $dO$ and must
# return $dQ$, $dK$ and $dV$. We go through the three steps backwards.
#
# **Through $O = PV$.** Row $i$ of the output is $O_i = \sum_j P_{ij} V_j$. The value row
# $V_j$ enters every output row $i$ with weight $P_{ij}$, and $P_{ij}$ enters only $O_i$, as
# the coefficient of $V_j$:
#
# $$dV_j = \sum_i P_{ij}\, dO_i \;\Rightarrow\; dV = P^\top dO,
# \qquad dP_{ij} = dO_i \cdot V_j \;\Rightarrow\; dP = dO\, V^\top .$$
#
# **Through the softmax.** Row $i$ of $P$ depends only on row $i$ of $S$, and the derivative
# of a softmax is $\partial P_{ij} / \partial S_{ik} = P_{ij}(\delta_{jk} - P_{ik})$ (with
# $\delta_{jk} = 1$ if $j = k$, else 0). By the chain rule,
#
# $$dS_{ik} = \sum_j dP_{ij}\, P_{ij} (\delta_{jk} - P_{ik})
# = P_{ik}\, dP_{ik} - P_{ik} \sum_j P_{ij}\, dP_{ij}
# = P_{ik} \big(dP_{ik} - D_i\big), \qquad D_i = \sum_j P_{ij}\, dP_{ij} .$$
#
# In matrix form, $dS = P \circ (dP - D)$, where $\circ$ multiplies element by element and
# $D$, one number per query, is subtracted from every entry of its row.
#
# **$D$ without $P$.** Written as above, $D_i$ sums over a whole row of $P$ and $dP$: $n$
# entries, which a tiled kernel never has at once. Substitute $dP_{ij} = dO_i \cdot V_j$ and
# the sum collapses into the output row:
#
# $$D_i = \sum_j P_{ij}\, (dO_i \cdot V_j) = dO_i \cdot \Big(\sum_j P_{ij} V_j\Big) = dO_i \cdot O_i,
# \qquad D = \mathrm{rowsum}(dO \circ O).$$
#
# That is why FlashAttention needs only $O$ (saved by the forward pass) and $dO$ (given) to
# get $D$: $n$ dot products of length $d$, with no $n \times n$ matrix in sight.
#
# **Through $S = c\,QK^\top$.** $S_{ij} = c\, Q_i \cdot K_j$, so $Q_i$ collects the keys it was
# scored against, and $K_j$ the queries:
#
# $$dQ = c\; dS\, K, \qquad dK = c\; dS^\top Q .$$
#
# Now check every formula against autograd, on a small float64 example where agreement must
# be to rounding error (about $10^{-16}$). `retain_grad` asks autograd to keep the gradients of
# the intermediate $S$ and $P$ too.

# %%
generator = torch.Generator().manual_seed(3)
n_small, d_small = 6, 4
c = d_small**-0.5
Q, K, V = (torch.randn(n_small, d_small, generator=generator, dtype=torch.float64).requires_grad_() for _ in range(3))
dO = torch.randn(n_small, d_small, generator=generator, dtype=torch.float64)
S = c * Q @ K.T
P = torch.softmax(S, dim=-1)
O = P @ V
S.retain_grad()
P.retain_grad()
O.backward(dO)  # autograd fills Q.grad, K.grad, V.grad, S.grad, P.grad

# %% [markdown]
# The formulas, one line each, against what autograd found; the last line compares the two
# ways of computing $D$ with each other (autograd never forms $D$):

# %%
with torch.no_grad():
    dV = P.T @ dO
    dP = dO @ V.T
    D = (P * dP).sum(-1, keepdim=True)  # the definition: a sum over a whole row of P
    dS = P * (dP - D)
    dQ = c * dS @ K
    dK = c * dS.T @ Q
    checks = {
        "dV = P^T dO": (dV, V.grad),
        "dP = dO V^T": (dP, P.grad),
        "dS = P o (dP - D)": (dS, S.grad),
        "dQ = c dS K": (dQ, Q.grad),
        "dK = c dS^T Q": (dK, K.grad),
        "D = rowsum(dO o O)": (D, (dO * O).sum(-1, keepdim=True)),
    }
for formula, (ours, reference) in checks.items():
    print(f"{formula:<20} max |difference| = {(ours - reference).abs().max().item():.1e}")

# %% [markdown]
# ### The tiled backward pass
#
# Cut $Q$ (and with it $O$, $dO$, $dQ$, lse and $D$) into query blocks $i$ and $K$, $V$ (and
# $dK$, $dV$) into key blocks $j$. Every formula above then works tile by tile, and only three
# sums cross tiles: $dV_j$ and $dK_j$ add up contributions from every query block, $dQ_i$ from
# every key block. The weights need not be stored: the forward pass saved the final
# $\mathrm{lse}_i$, so $P_{ij} = e^{S_{ij} - \mathrm{lse}_i}$ is recomputed exactly, already
# normalised, with no running max and no rescaling. FlashAttention-2 (Dao, 2023) organises the
# loops like this:
#
# ```text
# D = rowsum(dO o O)                         # n numbers, once, before the loop
# dQ = 0                                     # in main memory
# for each key block j:                      # outer loop: on a GPU, one thread block per j
#     load K_j, V_j;  dK_j = 0;  dV_j = 0    # stay on chip for the whole inner loop
#     for each query block i:
#         load Q_i, dO_i, lse_i, D_i
#         S_ij  = c * Q_i K_j^T
#         P_ij  = exp(S_ij - lse_i)          # recomputed, exact: lse_i is final
#         dV_j += P_ij^T dO_i
#         dP_ij = dO_i V_j^T
#         dS_ij = P_ij o (dP_ij - D_i)
#         dK_j += c * dS_ij^T Q_i
#         dQ_i += c * dS_ij K_j              # add into main memory (atomic on a GPU)
#     write dK_j, dV_j                       # once each
# ```
#
# With key blocks outside, $dK_j$ and $dV_j$ are finished on chip and written once; only
# $dQ$ is accumulated across the outer loop, in main memory. Key blocks are independent of
# each other, so a GPU gives each to its own thread block and runs them in parallel.
#
# lcteach's implementation is `_TiledAttention.backward` in `lcteach/kernels/tiled.py`, the
# backward pass of `tiled_attention`. Each tile does exactly the lines of the inner loop:
# `p` is $P_{ij}$ recomputed from the saved lse, `row_term` is $-D$ (plus the gradient of the
# lse, which `tiled_attention` also returns; it is 0 when only the output is used), and
# `dq`, `dk`, `dv` accumulate with `+=`. It walks the tiles in the forward pass's order, query
# blocks outside, and through the same `key_tiles`, so the tiles a mask hides are skipped in
# both passes. On a CPU all three gradients live in the same memory, so the order changes no
# result; on a GPU it decides which accumulators can stay on chip.

# %%
print(inspect.getsource(tiled_kernel._TiledAttention.backward))

# %% [markdown]
# **Check your understanding.** FlashAttention computes $D = \mathrm{rowsum}(dO \circ O)$
# before its loop over tiles. What would the tiled backward pass have to do without the
# identity $D_i = dO_i \cdot O_i$? And what exactly must the forward pass leave behind for
# the backward pass?
#
# <details>
# <summary>Answer</summary>
#
# Every tile $dS_{ij} = P_{ij} \circ (dP_{ij} - D_i)$ of query block $i$ needs $D_i$, and the
# definition $D_i = \sum_j P_{ij}\, dP_{ij}$ sums over **all** keys. Without the identity, each
# query block would first need a full sweep over every key block, recomputing $P_{ij}$ and
# $dP_{ij}$ (two more $n \times n \times d$ products over the whole matrix) only to add up
# $D$, and then a second sweep for the gradients; or the weights would have to be stored,
# $O(n^2)$ memory. With the identity, $D$ costs $n$ dot products of length $d$ and every tile
# is self-contained.
#
# The forward pass must leave $Q$, $K$, $V$ (the inputs), the output $O$ (for $D$) and one
# number per query, $\mathrm{lse}_i$: all $O(nd)$. Neither $S$ nor $P$ is kept, and neither
# are $m$ and $\ell$ separately: $\mathrm{lse} = m + \log \ell$ holds all the backward pass
# needs of them. $dO$ comes from the layer above.
#
# </details>

# %% [markdown]
# ## 8. Memory traffic: why the tiled kernel is fast
#
# Sections 5 and 6 measured the memory attention **holds**. On a GPU the cost that decides
# its speed is the memory it **moves**. A GPU has two memories: its large main memory (HBM:
# 80 GB on an H100, read at about 3.35 TB/s) and, inside each of its streaming multiprocessors
# (SMs), a small on-chip memory (SRAM, the SM's shared memory: a couple of hundred KiB, an
# order of magnitude faster). Arithmetic happens only on data that is on chip; everything
# else is loaded from main memory, and every result is stored back. Dao et al. (2022) count the
# **elements moved between the two** for $n$ tokens, head dim $d$ and an on-chip memory of
# $M$ elements (one head, forward pass).
#
# **Standard attention** (their Algorithm 0) runs three separate steps, each a kernel that
# reads its inputs from main memory and writes its result back:
#
# 1. load $Q$, $K$ ($nd$ each), compute $S = QK^\top$, write $S$ ($n^2$);
# 2. read $S$ ($n^2$), compute $P = \mathrm{softmax}(S)$, write $P$ ($n^2$);
# 3. read $P$ ($n^2$) and $V$ ($nd$), compute $O = PV$, write $O$ ($nd$).
#
# In all $4n^2 + 4nd$ elements, $\Theta(nd + n^2)$, and $M$ does not appear: the $n \times n$
# matrices cross the bus twice each, whatever the on-chip memory. `standard_attention_traffic`
# lists the terms:

# %%
n_io, d_io = 4_096, 64
standard = standard_attention_traffic(n_io, d_io)
print("reads: ", ", ".join(f"{tensor} {count:,}" for tensor, count in standard.reads))
print("writes:", ", ".join(f"{tensor} {count:,}" for tensor, count in standard.writes))
print(f"total:  {standard.elements:,} elements = 4n^2 + 4nd = {4 * n_io**2 + 4 * n_io * d_io:,}")

# %% [markdown]
# **Tiled attention** (their Algorithm 1) sizes its blocks from $M$: key blocks of
# $B_c = \lceil M / 4d \rceil$ rows and query blocks of $B_r = \min(B_c, d)$ rows, so that
# $K_j$ and $V_j$ take about half of the on-chip memory and $Q_i$, $O_i$ at most the other
# half. Its outer loop runs over the $T_c = \lceil n / B_c \rceil$ key blocks, the inner one
# over the query blocks:
#
# - initialise $O = 0$, $\ell = 0$, $m = -\infty$ in main memory: $n(d + 2)$ written;
# - load each $K_j$, $V_j$ once: $2nd$ read;
# - in each of the $T_c$ passes of the inner loop, load all of $Q$, $O$, $\ell$, $m$ and write
#   $O$, $\ell$, $m$ back: $n(2d + 2)$ read and $n(d + 2)$ written per pass.
#
# In all $2nd + n(d + 2) + T_c\, n(3d + 4) = \Theta(T_c\, n d)$, and since
# $T_c \approx n / B_c \approx 4nd / M$,
#
# $$\text{elements moved} = \Theta\!\left(\frac{n^2 d^2}{M}\right) \quad \text{(Theorem 2 of the paper).}$$
#
# The paper also proves (Proposition 3) that no exact attention algorithm can do
# asymptotically better for every $M$ between $d$ and $nd$. `flash_attention_traffic` gives the
# closed form term by term, and `simulate_flash_traffic` walks the loops and adds up every
# tile it loads and stores, a brute-force count that the tests check against the closed form.
# Here with the 228 KiB of an H100 SM's shared memory, holding 116,736 float16 elements:

# %%
h100_sram = 228 * 1024 // 2  # float16 elements in 228 KiB
flash = flash_attention_traffic(n_io, d_io, sram_elements=h100_sram)
walked = simulate_flash_traffic(n_io, d_io, block_q=flash.block_q, block_k=flash.block_k)
print(f"blocks: B_r = {flash.block_q} queries, B_c = {flash.block_k} keys -> T_c = {-(-n_io // flash.block_k)} passes")
print("reads: ", ", ".join(f"{tensor} {count:,}" for tensor, count in flash.reads))
print("writes:", ", ".join(f"{tensor} {count:,}" for tensor, count in flash.writes))
print(f"total:  {flash.elements:,} elements (walking the loop: {walked.elements:,})")
print(f"standard attention moves {standard.elements / flash.elements:.1f}x as many")

# %% [markdown]
# FlashAttention-2 swaps the loops in the forward pass, as `lcteach.tiled_attention` does:
# each query block stays on chip with its running $(m, \ell, a)$ while every key and value
# block streams past it, and $O$ and the lse are written once. Each pass then moves $2nd$
# elements instead of $n(3d + 4)$:

# %%
flash_2 = flash_attention_traffic(n_io, d_io, sram_elements=h100_sram, loop_order="q_outer")
print("reads: ", ", ".join(f"{tensor} {count:,}" for tensor, count in flash_2.reads))
print("writes:", ", ".join(f"{tensor} {count:,}" for tensor, count in flash_2.writes))
print(f"total:  {flash_2.elements:,} elements, {flash_2.elements / flash.elements:.0%} of Algorithm 1's")

# %% [markdown]
# How the traffic depends on the on-chip memory, at two lengths, with the on-chip memories of
# real processors marked: an A100 SM has 192 KiB of L1 cache and shared memory together, of
# which up to 164 KiB can be shared memory; an H100 SM has 256 KiB, up to 228 KiB shared
# (both in float16 elements); a CPU core's L2 cache holds 1 to 2 MiB (here 2 MiB of float32).

# %%
on_chip_sizes = [round(2 ** (k / 4)) for k in range(4 * 6, 4 * 21 + 1)]  # 64 to 2^21 elements
plot_memory_traffic(
    [4_096, 65_536],
    64,
    on_chip_sizes,
    marks={
        "A100 SM: 164 KiB (fp16)": 164 * 1024 // 2,
        "H100 SM: 228 KiB (fp16)": h100_sram,
        "CPU core L2: 2 MiB (fp32)": 2 * 1024**2 // 4,
    },
)

# %% [markdown]
# **What to notice.** Standard attention's lines are flat: more on-chip memory does not help
# it, because its steps meet only in main memory. The tiled lines fall with slope $-1$:
# doubling $M$ halves the number of passes and so the traffic. At the left, blocks of one key
# ($M \le 4d$) make every pass reload everything and the tiled kernel moves far more than
# the standard one; the lines cross near $M \approx 3d^2$ (about 12,000 elements, 24 KiB of
# float16 at $d = 64$), where the key blocks are about $3d/4 = 48$ keys wide. At the right, one block holds
# every key and the traffic bottoms out at a few $nd$: each input read once, each output
# written once. At a real SM, tiled attention moves about $M / 3d^2$ times fewer elements
# (about 7 at an A100 SM, 9 at an H100 SM), at both lengths: the ratio is set by the on-chip
# memory, not by $n$.
#
# **Arithmetic intensity** is FLOPs per byte moved. Both methods do the same $4n^2 d$ FLOPs
# of the two matrix products. Standard attention moves about $4n^2$ float16 elements ($8n^2$
# bytes): $d/2 = 32$ FLOPs per byte at $d = 64$. The tiled kernel moves about $3\,T_c\, nd$
# elements: about $M / 6d \approx 300$ FLOPs per byte at an H100 SM. A GPU's own ratio is its
# peak arithmetic over its memory bandwidth: an H100 SXM does about 989 TFLOP/s of dense
# float16 on 3.35 TB/s, about 295 FLOPs per byte; an A100 SXM (80 GB) 312 TFLOP/s on about
# 2.0 TB/s, about 153. A kernel below that ratio waits for memory and runs at (intensity x
# bandwidth): standard attention at about a tenth of the H100's peak. A kernel above it waits
# for arithmetic. That is why the tiled kernel is faster even though it does *more* FLOPs in
# training (the recomputed $QK^\top$ of section 6): the extra products run on data already on
# chip, and the bus was the bottleneck.

# %%
gpus = {"A100 SXM 80 GB": (312e12, 2.039e12), "H100 SXM": (989e12, 3.35e12)}  # dense fp16 FLOP/s, bytes/s
for name, (flop_rate, bandwidth) in gpus.items():
    print(f"{name}: {flop_rate / bandwidth:.0f} FLOPs per byte (peak arithmetic / memory bandwidth)")
print(f"\nFLOPs per byte moved (float16), n = {n_io:,}, d = {d_io}:")
for label, sram in (("A100 SM", 164 * 1024 // 2), ("H100 SM", h100_sram)):
    kv_outer = flash_attention_traffic(n_io, d_io, sram_elements=sram)
    q_outer = flash_attention_traffic(n_io, d_io, sram_elements=sram, loop_order="q_outer")
    print(
        f"  {label}: standard {standard.intensity():.0f}, tiled (Algorithm 1) {kv_outer.intensity():.0f}, "
        f"tiled (FlashAttention-2 order) {q_outer.intensity():.0f}"
    )

# %% [markdown]
# (Real kernels choose smaller blocks than the analysis, 64 or 128 rows, tuned so that several
# thread blocks share an SM and its registers; the analysis gives the shape of the curve, not
# a kernel's exact traffic.)
#
# **Check your understanding.** A new GPU doubles every SM's shared memory and keeps the same
# memory bandwidth. What happens to the elements moved by standard and by tiled attention at
# $n = 65{,}536$, $d = 64$? And what does a head dim of 128, on today's H100, do to tiled
# attention's advantage?
#
# <details>
# <summary>Answer</summary>
#
# Standard attention moves $4n^2 + 4nd$ elements either way: $M$ is not in its count. Tiled
# attention's key blocks double, so the number of passes $T_c$ halves and its traffic nearly
# halves (`flash_attention_traffic` gives a factor of 1.99 at $n = 65{,}536$): its intensity
# doubles too, although once a kernel is above the GPU's FLOPs-per-byte ratio it is limited
# by arithmetic and gets no faster. With $d = 128$ the key blocks $\lceil M / 4d \rceil$ are
# half as wide and every pass moves twice as much per row, so tiled attention's traffic grows
# by about 4 ($\propto d^2 / M$), while standard attention's $4n^2$ does not change. The
# advantage $M / 3d^2$ drops from about 9.5 to about 2.4, and the intensity to about 150
# FLOPs per byte, half the H100's ratio: a larger head dim needs a larger on-chip memory to
# keep the same advantage.
#
# </details>

# %% [markdown]
# ## Summary
#
# - Every softmax subtracts the max: same result, no overflow.
# - The online softmax keeps $(m, \ell, a)$ per query and rescales by $e^{m_{\text{old}} -
#   m_{\text{new}}}$ when the max grows; the result is exact.
# - Tiled (flash) attention applies it to $B_q \times B_k$ tiles: exact output, $O(n)$ memory,
#   masked tiles skipped, same $O(n^2 d)$ arithmetic.
# - The lse, $m + \log \ell$, lets partial attentions over disjoint keys be merged exactly.
# - The backward pass recomputes tiles from the lse instead of storing the weights, so training
#   is $O(n)$ in memory too.
# - Backward: $dV = P^\top dO$, $dP = dO\, V^\top$, $dS = P \circ (dP - D)$,
#   $dQ = c\, dS\, K$, $dK = c\, dS^\top Q$, and $D = \mathrm{rowsum}(dO \circ O)$ needs only
#   the output, not $P$. FlashAttention-2 loops over key blocks outside, finishing $dK_j$,
#   $dV_j$ on chip and accumulating $dQ$ across key blocks.
# - Standard attention moves $\Theta(nd + n^2)$ elements between main and on-chip memory,
#   tiled attention $\Theta(n^2 d^2 / M)$: about $M / 3d^2$ times fewer at a real SM. That
#   raises the FLOPs per byte from about $d / 2$ to about a GPU's compute-to-bandwidth ratio,
#   which is why the tiled kernel is faster though it does more arithmetic in training.

# %% [markdown]
# ## References
#
# - Maxim Milakov, Natalia Gimelshein. *Online normalizer calculation for softmax.* 2018.
#   [arXiv:1805.02867](https://arxiv.org/abs/1805.02867). The online softmax of section 2.
# - Markus N. Rabe, Charles Staats. *Self-attention Does Not Need $O(n^2)$ Memory.* 2021.
#   [arXiv:2112.05682](https://arxiv.org/abs/2112.05682). Attention over chunks of keys with
#   a running softmax, and how to differentiate it without storing the weights.
# - Tri Dao, Daniel Y. Fu, Stefano Ermon, Atri Rudra, Christopher Ré. *FlashAttention: Fast and
#   Memory-Efficient Exact Attention with IO-Awareness.* NeurIPS 2022.
#   [arXiv:2205.14135](https://arxiv.org/abs/2205.14135). Tiles kept in on-chip memory, the
#   recomputing backward pass of sections 6 and 7, and the analysis of memory traffic on GPUs
#   of section 8 (Algorithms 0 and 1, Theorem 2, Proposition 3).
# - Tri Dao. *FlashAttention-2: Faster Attention with Better Parallelism and Work
#   Partitioning.* 2023. [arXiv:2307.08691](https://arxiv.org/abs/2307.08691). The loop order
#   of the tiled backward pass of section 7 (key blocks outside) and of the forward pass
#   (query blocks outside) of section 8.
# - Tri Dao, Daniel Haziza, Francisco Massa, Grigory Sizov. *Flash-Decoding for long-context
#   inference.* Blog post, October 2023. Splitting the keys and merging through the lse
#   (section 4).
# - Hao Liu, Matei Zaharia, Pieter Abbeel. *Ring Attention with Blockwise Transformers for
#   Near-Infinite Context.* 2023. [arXiv:2310.01889](https://arxiv.org/abs/2310.01889). The
#   same merge across devices (Week 4).
#
# **Further reading**
#
# - Jay Shah, Ganesh Bikshandi, Ying Zhang, Vijay Thakkar, Pradeep Ramani, Tri Dao.
#   *FlashAttention-3: Fast and Accurate Attention with Asynchrony and Low-precision.* 2024.
#   [arXiv:2407.08608](https://arxiv.org/abs/2407.08608).
