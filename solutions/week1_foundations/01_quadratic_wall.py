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
# # Lecture 1 · The quadratic wall
#
# A language model that reads a whole book, a code base or an hour of meeting notes must run
# attention over hundreds of thousands of tokens. Attention compares every token with every
# other token, and that is where long context hits a wall: double the length and the work
# and the memory go up four times.
#
# In this lecture you will
#
# 1. see where the $n^2$ comes from, in time and in memory;
# 2. measure it on your own machine and read the exponent off a log-log plot;
# 3. predict the memory at lengths you cannot run, and explain an out-of-memory error in plain
#    words;
# 4. see that the $n^2$ memory is not a law of nature: tiled attention computes the same output
#    in $O(n)$ memory (Lecture 3 shows how).
#
# The notebook runs in under a minute on a laptop CPU; the largest measurement takes a few
# seconds and shows a progress bar.

# %%
import time

import torch
from tqdm.auto import tqdm

from lcteach import (
    ScalingReport,
    dense_attention,
    dense_attention_memory,
    diagnose_oom,
    fit_exponent,
    format_bytes,
    peak_memory,
    plot_scaling,
    profile_scaling,
    tiled_attention,
)
from lcteach.viz import plot_attention

torch.manual_seed(0)
print(f"torch {torch.__version__} on CPU with {torch.get_num_threads()} threads")

# %% [markdown]
# ## 1. Attention in one equation
#
# Each of the $n$ tokens brings a query $q_i$, a key $k_j$ and a value $v_j$, vectors of
# dimension $d$. Stacked as rows they form $Q, K \in \mathbb{R}^{n \times d}$ and
# $V \in \mathbb{R}^{n \times d_v}$, and
#
# $$\mathrm{Attention}(Q, K, V) = \underbrace{\mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d}}\right)}_{P \,\in\, \mathbb{R}^{n \times n}} V .$$
#
# The score $s_{ij} = q_i \cdot k_j / \sqrt{d}$ says how much query $i$ cares about key $j$;
# the softmax turns each row of scores into weights that sum to 1; the output of token $i$ is
# the weighted average of the values. Let us look at the matrix $P$ for eight tokens.
# Tensors in this course have the shape `(batch, heads, seq, dim)`.

# %%
q, k, v = torch.randn(3, 1, 1, 8, 16).unbind(0)  # batch 1, 1 head, n = 8 tokens, d = 16
out, weights = dense_attention(q, k, v)
print("q, k, v:", tuple(q.shape), "  output:", tuple(out.shape), "  weights P:", tuple(weights.shape))
print("each row of P sums to 1:", torch.allclose(weights.sum(-1), torch.ones(8)))
plot_attention(weights, title="Attention weights P for n = 8 random tokens")

# %% [markdown]
# **What to notice.** The output has one row per token, like the input: $n \times d$. The
# weights are $n \times n$: every query has a weight for every key. Computing them costs one
# dot product of length $d$ per pair,
#
# $$\text{FLOPs} \approx \underbrace{2n^2d}_{QK^\top} + \underbrace{2n^2d_v}_{PV} \qquad\text{memory} \approx n^2 \text{ numbers per head},$$
#
# so time **and** memory grow like $n^2$. The input and the output only grow like $n$: the
# $n \times n$ matrix in the middle is the problem.
#
# How big is it? One float32 number is 4 bytes, and `lcteach.dense_attention_memory` counts the
# buffers that `dense_attention` really allocates (two $n \times n$ buffers at the peak: the
# exponentiated scores and the normalised weights, plus the output).

# %%
print(f"{'n':>9} {'pairs n^2':>15} {'dense attention, 1 head, float32':>34}")
for n in (1_024, 4_096, 16_384, 65_536, 131_072):
    print(f"{n:>9,} {n * n:>15,} {format_bytes(dense_attention_memory(n)):>34}")

# %% [markdown]
# **Check your understanding.** A model with 32 heads runs one layer of dense attention at
# $n = 16{,}384$ in float32. How much memory do the weights take, roughly? What if $n$ doubles?

# %% [markdown]
# ## 2. Measure it on your machine
#
# Predictions are cheap; let us measure. `lcteach.profile_scaling` runs an attention function
# on random inputs of growing length: for each $n$ it does one warm-up run, times the next runs
# and records the **peak memory**: the largest number of bytes that tensors created inside the
# function occupy at one time (measured exactly by watching every allocation, see
# `lcteach.track_peak_memory`).
#
# We go from 256 to 16,384 tokens, doubling each time. The last step needs about 2 GiB and a
# few seconds; the progress bar shows where it is.

# %%
seq_lens = [256, 512, 1_024, 2_048, 4_096, 8_192, 16_384]
dense_report = profile_scaling(dense_attention, seq_lens, repeats=1, label="dense attention")
print(dense_report.table())

# %% [markdown]
# Each time $n$ doubles, look at the ratio of consecutive rows. Memory goes up by almost exactly 4;
# time by about 4 once $n$ is in the thousands. The plot below makes this visible at a glance:
# on log-log axes a power law $c \cdot n^p$ is a straight line of **slope $p$**. The dashed
# and dotted guides have slopes 1 and 2.

# %%
plot_scaling(dense_report, metric="seconds", title="Dense attention: time vs n (log-log)")

# %%
plot_scaling(dense_report, metric="peak_bytes", title="Dense attention: peak memory vs n (log-log)")

# %% [markdown]
# ### Reading the exponents
#
# `fit_exponent` fits a straight line to $\log(\text{cost})$ against $\log n$; its slope is the
# exponent $p$ in $\text{cost} \approx c \cdot n^p$. Memory is deterministic, so its slope is
# just under 2 (the small $O(n)$ terms pull it down a little at small $n$). Time is noisier: at
# small $n$ a run takes a millisecond or less, so fixed costs (launching operations, caches,
# other programs on your machine) weigh as much as the $n^2$ work, and the slope fitted over
# all sizes can land anywhere near 2. Fitting only the large sizes, where the $n^2$ work
# dominates, gives the exponent that predicts the future.

# %%
large = slice(-4, None)  # n >= 2,048
print(f"memory exponent, all sizes:        {dense_report.memory_exponent:.2f}")
print(f"time exponent, all sizes:          {dense_report.time_exponent:.2f}")
print(
    f"time exponent, n >= {seq_lens[large][0]:,}:        "
    f"{fit_exponent(seq_lens[large], dense_report.seconds[large]):.2f}"
)

# %% [markdown]
# The measured peak memory is not just "of order $n^2$": it matches the byte count predicted by
# `dense_attention_memory` to the byte, because we know exactly which buffers exist at the peak.

# %%
print(f"{'n':>7} {'measured':>11} {'predicted':>11}")
for n, measured in zip(dense_report.seq_lens, dense_report.peak_bytes):
    print(f"{n:>7,} {format_bytes(measured):>11} {format_bytes(dense_attention_memory(n)):>11}")

# %% [markdown]
# **Check your understanding.** Suppose a classmate's time exponent over all sizes is 1.6.
# Does their machine run dense attention in better than quadratic time? What would they see
# if they added $n = 32{,}768$?

# %% [markdown]
# ## 3. Beyond your machine: predicting the wall
#
# A real model does not run one head. Take a mid-sized model: 32 heads of dimension 128, in
# bfloat16 (2 bytes a number). The memory formula takes us where we cannot run, and the fitted
# time exponent lets us extrapolate this machine's time the same way (32 heads do 32 times the
# work of the one head we measured).

# %%
model = dict(batch=1, heads=32, dim=128, dtype=torch.bfloat16)
p_time = fit_exponent(seq_lens[large], dense_report.seconds[large])
n_max, t_max = dense_report.seq_lens[-1], dense_report.seconds[-1]
print(f"{'n':>9} {'memory: 1 layer, 32 heads':>27} {'time here: 1 layer, 32 heads':>30}")
for n in (8_192, 32_768, 131_072, 1_048_576):
    hours = 32 * t_max * (n / n_max) ** p_time / 3600
    print(f"{n:>9,} {format_bytes(dense_attention_memory(n, **model)):>27} {hours:>28.2f} h")

# %% [markdown]
# At 128K tokens, one layer needs about 2 TiB for its attention weights. No GPU has that.
# This is the **quadratic wall**: it is not that the machine is slow, it is that the
# intermediate result does not fit. `diagnose_oom` explains such a failure in plain words,
# here for a 24 GiB GPU.

# %%
gpu = 24 * 2**30
print(diagnose_oom(8_192, gpu, **model))
print()
print(diagnose_oom(131_072, gpu, **model))

# %% [markdown]
# Training is worse: the weights $P$ must be kept for the backward pass, so one more
# $n \times n$ buffer per head stays alive.

# %%
print(diagnose_oom(16_384, gpu, training=True, **model))

# %% [markdown]
# **Check your understanding.** Which of these helps with the wall at 128K tokens, and by how
# much: (a) bfloat16 instead of float32, (b) a GPU with twice the memory, (c) never storing the
# $n \times n$ matrix?

# %% [markdown]
# ## 4. The way out: never store the matrix
#
# Nothing forces us to hold all $n^2$ weights at once. Each output row needs only its own row of
# weights, and (Lecture 3) even that row can be processed in blocks with a running softmax.
# `tiled_attention` does exactly this: it cuts $Q$ and $K$ into blocks and keeps one
# $B_q \times B_k$ tile of scores alive at a time. First, it computes the same thing:

# %%
q, k, v = torch.randn(3, 1, 1, 1_024, 64).unbind(0)
out_dense, _ = dense_attention(q, k, v)
out_tiled, _ = tiled_attention(q, k, v, block_q=256, block_k=256)
print(f"max |dense - tiled| = {(out_dense - out_tiled).abs().max().item():.1e}  (float32 round-off)")

# %% [markdown]
# Now its peak memory at the same lengths as before, with tiles of $1024 \times 1024$ scores
# (4 MiB each in float32):

# %%
tiled_lens = [256, 1_024, 4_096, 16_384]
tiled_seconds, tiled_peaks = [], []
generator = torch.Generator().manual_seed(0)
for n in tqdm(tiled_lens, desc="tiled attention", leave=False):
    q, k, v = torch.randn(3, 1, 1, n, 64, generator=generator).unbind(0)
    start = time.perf_counter()
    _, peak = peak_memory(tiled_attention, q, k, v, block_q=1_024, block_k=1_024)
    tiled_seconds.append(time.perf_counter() - start)
    tiled_peaks.append(peak)
tiled_report = ScalingReport(
    "tiled attention, 1024 x 1024 tiles", tuple(tiled_lens), tuple(tiled_seconds), tuple(tiled_peaks)
)
print(f"{'n':>7} {'dense':>11} {'tiled':>11} {'dense / tiled':>14}")
for n, peak in zip(tiled_lens, tiled_peaks):
    dense_peak = dense_report.peak_bytes[seq_lens.index(n)]
    print(f"{n:>7,} {format_bytes(dense_peak):>11} {format_bytes(peak):>11} {dense_peak / peak:>13.1f}x")

# %%
plot_scaling(dense_report, tiled_report, metric="peak_bytes", title="Peak memory: dense vs tiled attention (log-log)")

# %% [markdown]
# **What to notice.** While $n$ is no longer than a tile, tiling has nothing to save: the one
# tile *is* the whole matrix, plus the bookkeeping of the running softmax, so tiled uses a
# little more memory than dense. Beyond that the tiled line is almost flat: the biggest buffer
# is one tile, whose size does not depend on $n$, and only the $n \times d$ output grows
# (linearly). Dense keeps growing like $n^2$. At 16K tokens the gap is two orders of magnitude,
# and it widens with every doubling of $n$.
#
# Tiling removes the memory wall, not the time wall: it still computes all $n^2$ scores, so time
# stays $O(n^2)$. Cutting the work itself needs attending to fewer keys: windows and chunks
# (Lecture 2).
#
# **Check your understanding.** Tiled attention at $n = 131{,}072$ with the model above
# (32 heads, $d = 128$, bfloat16): estimate its memory from the output size alone. Does it fit
# the 24 GiB GPU?
#
# ## Summary
#
# - Dense attention builds an $n \times n$ matrix per head: $O(n^2 d)$ time, $O(n^2)$ memory.
# - On a log-log plot a power law is a straight line; its slope is the exponent. Fit it on the
#   sizes where the big term dominates.
# - The memory of dense attention is predictable to the byte, which is how we knew 128K tokens
#   would need about a terabyte per layer before trying.
# - The $n^2$ memory is avoidable (tiling, Lecture 3); the $n^2$ time needs sparser patterns
#   (windows and chunks, Lecture 2).
