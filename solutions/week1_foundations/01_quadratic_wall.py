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
# The notebook runs in under a minute on a laptop CPU; the longest measurements take a few
# seconds and show a progress bar.
#
# The first import is `lcteach`, before torch: it tells torch's worker threads to sleep rather
# than spin while they wait (`OMP_WAIT_POLICY=PASSIVE`), which keeps the many small operations
# of this course fast on a machine shared with other programs. The setting is read once, when
# torch loads, so the order matters.

# %%
import lcteach  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads OpenMP)

# isort: split
import time

import torch

from lcteach import (
    dense_attention,
    dense_attention_memory,
    diagnose_oom,
    fit_exponent,
    format_bytes,
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
#
# <details>
# <summary>Answer</summary>
#
# One head's weights are $16{,}384^2 \times 4$ bytes $= 1$ GiB, so 32 heads take 32 GiB, and
# `dense_attention` holds two such buffers at its peak: about 64 GiB (the table's 2.0 GiB
# times 32). Doubling $n$ multiplies both by 4: 128 GiB of weights, 256 GiB at the peak.
#
# </details>

# %% [markdown]
# ## 2. Measure it on your machine
#
# Predictions are cheap; let us measure. `lcteach.profile_scaling` runs an attention function
# on random inputs of growing length. For each $n$ it first runs the function once under the
# memory tracker: that run records the **peak memory**, the largest number of bytes that
# tensors created inside the function occupy at one time (measured exactly by watching every
# allocation, see `lcteach.track_peak_memory`), and it doubles as a **warm-up** that pays the
# one-off costs (fresh memory from the operating system, first use of each operation). Then it
# times five more runs and keeps the **fastest**: other programs on the machine can only ever
# add time, so the minimum is the run they disturbed least.
#
# We go from 256 to 8,192 tokens, doubling each time, on one thread: the exponent is a property
# of the algorithm, and one thread keeps the start-up of parallel work and the competition of
# threads for the cores out of it. And we count that thread's **CPU time**
# (`time.thread_time`), the time a core actually spent on our work, rather than the wall-clock
# time. On a machine shared with other programs the wall clock also counts the time our
# thread waits for a core; a run longer than the scheduler's time slice cannot escape that
# wait, however often it is repeated. The last step needs about 0.5 GiB; the progress bar
# shows where it is.

# %%
seq_lens = [256, 512, 1_024, 2_048, 4_096, 8_192]
threads = torch.get_num_threads()
torch.set_num_threads(1)
dense_report = profile_scaling(
    dense_attention, seq_lens, repeats=5, label="dense attention", fit_from=2_048, clock=time.thread_time
)
torch.set_num_threads(threads)
print(dense_report.table())

# %% [markdown]
# Each time $n$ doubles, look at the ratio of consecutive rows. Memory goes up by almost exactly
# 4. Time goes up by roughly 4, but not evenly. Dividing the time by the number of pairs $n^2$
# shows why: if the time were exactly $c \cdot n^2$, this column would be the constant $c$.

# %%
print(f"{'n':>7} {'two n x n buffers':>18} {'time per pair':>14}")
for n, seconds in zip(seq_lens, dense_report.seconds):
    print(f"{n:>7,} {format_bytes(2 * 4 * n * n):>18} {seconds / n**2 * 1e9:>11.2f} ns")

# %% [markdown]
# **Two regimes and a cache step.** The time per pair is not one constant but (up to noise) a
# staircase, and each step is a level of the memory hierarchy. After the product $QK^\top$,
# dense attention makes half a dozen passes over its $n \times n$ buffers (scale, row max,
# subtract, exponentiate, row sum, divide) before the product with $V$, and each of these
# passes is limited by how fast the buffers can be read and written, not by the arithmetic.
# At $n = 512$ the two float32 buffers take 2 MiB, the size of a core's L2 cache on current
# CPUs (1 to 2 MiB); at $n = 1024$ they take 8 MiB, four times more, so from there on every
# pass streams from the larger, slower L3 cache or from main memory, and the time per pair
# steps up. A second step follows where they outgrow the L3 cache too (from a few MiB to a few
# hundred MiB, depending on the machine). At the smallest sizes the fixed cost of a call
# (Python, starting a dozen operations) adds to the first rows. Within one regime the time per
# pair is flat, that is, the time is quadratic; a line fitted through two regimes mixes two
# constants and has a slope that belongs to neither.
#
# The plots make this visible at a glance: on log-log axes a power law $c \cdot n^p$ is a
# straight line of **slope $p$**. The dashed and dotted guides through the first point have
# slopes 1 and 2. The slopes in the legends are fitted in the large-$n$ regime, $n \ge 2048$,
# where the two buffers (32 MiB and more) have outgrown the L2 cache of any CPU and the L3
# cache of most laptops.

# %%
plot_scaling(
    dense_report,
    metric="seconds",
    title="Dense attention: CPU time of one thread vs n\n(log-log; slope fitted for n ≥ 2048)",
)

# %%
plot_scaling(
    dense_report, metric="peak_bytes", title="Dense attention: peak memory vs n\n(log-log; slope fitted for n ≥ 2048)"
)

# %% [markdown]
# ### Reading the exponents
#
# `fit_exponent` fits a straight line to $\log(\text{cost})$ against $\log n$; its slope is the
# exponent $p$ in $\text{cost} \approx c \cdot n^p$. Memory is deterministic, so its slope is
# 2 up to the small $O(n)$ terms, which pull it a little below 2 at small $n$. For time, the
# regime matters: the fit over all sizes runs across the cache step, while the fit over
# $n \ge 2048$ stays in one regime and is close to 2. On a busy machine other programs can
# still move it by a few tenths, even in CPU time and with the best of five runs, because they
# share the caches: run the measurement again to see the spread. The large-$n$ regime is the one every longer sequence
# belongs to, so its exponent is the one that predicts the future.

# %%
print(f"memory exponent, n >= 2,048: {dense_report.memory_exponent:.2f}")
print(f"time exponent, all sizes:    {fit_exponent(seq_lens, dense_report.seconds):.2f}  (across the cache step)")
print(f"time exponent, n >= 2,048:   {dense_report.time_exponent:.2f}  (one regime)")

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
# if they added $n = 16{,}384$ and $32{,}768$?
#
# <details>
# <summary>Answer</summary>
#
# No. The work is $n^2$ pairs on every machine. A slope below 2 over all sizes means the small
# sizes took relatively long: fixed costs per call, which do not grow with $n$, or a busy
# machine during the first runs. Those points sit above the $n^2$ line through the large ones
# and flatten the fit. At $n = 16{,}384$ and $32{,}768$ each doubling would cost about 4 times
# the time (and 2 GiB, then 8 GiB of memory), and the slope fitted over the large sizes would
# come out close to 2.
#
# </details>

# %% [markdown]
# ## 3. Beyond your machine: predicting the wall
#
# A real model does not run one head. Take a mid-sized model: 32 heads of dimension 128, in
# bfloat16 (2 bytes a number). The memory formula takes us where we cannot run, and the time
# exponent fitted in the large-$n$ regime lets us extrapolate this machine's time the same way
# (32 heads do 32 times the work of the one head we measured on one core).

# %%
model = dict(batch=1, heads=32, dim=128, dtype=torch.bfloat16)
p_time = dense_report.time_exponent  # fitted for n >= 2,048
n_max, t_max = dense_report.seq_lens[-1], dense_report.seconds[-1]
print(f"{'n':>9} {'memory: 1 layer, 32 heads':>27} {'time on one core: 1 layer, 32 heads':>37}")
for n in (8_192, 32_768, 131_072, 1_048_576):
    hours = 32 * t_max * (n / n_max) ** p_time / 3600
    print(f"{n:>9,} {format_bytes(dense_attention_memory(n, **model)):>27} {hours:>35.2f} h")

# %% [markdown]
# At 128K tokens one layer needs about 2 TiB: two $n \times n$ buffers of 1 TiB each for the
# 32 heads. No GPU has that.
# This is the **quadratic wall**: it is not that the machine is slow, it is that the
# intermediate result does not fit. `diagnose_oom` explains such a failure in plain words,
# here for a 24 GiB GPU.

# %%
gpu = 24 * 2**30
print(diagnose_oom(8_192, gpu, **model))
print()
print(diagnose_oom(131_072, gpu, **model))

# %% [markdown]
# Training is worse. Autograd keeps the exponentiated scores and the weights $P$ for the
# backward pass, and the backward pass of the softmax builds $n \times n$ buffers of its own:
# the gradient of $P$ and the terms of the gradient of the normalisation. At its peak seven
# $n \times n$ buffers per head are alive, 3.5 times the forward pass (Lecture 3 measures it,
# and `dense_attention_memory(..., training=True)` lists them).

# %%
print(diagnose_oom(16_384, gpu, training=True, **model))

# %% [markdown]
# **Check your understanding.** Which of these helps with the wall at 128K tokens, and by how
# much: (a) bfloat16 instead of float32, (b) a GPU with twice the memory, (c) never storing the
# $n \times n$ matrix?
#
# <details>
# <summary>Answer</summary>
#
# (a) bfloat16 halves every buffer, once: in float32 the layer would need 4 TiB, in bfloat16
# it needs 2 TiB. Since memory grows like $n^2$, a factor 2 buys only a factor $\sqrt 2$ in
# length. (b) Twice the memory buys the same $\sqrt 2$: on 24 GiB the longest sequence that fits
# is about 14K tokens, on 48 GiB about 20K. Neither comes near 128K. (c) Removes the wall:
# without the $n \times n$ buffers what remains is $O(n d)$, about 4 GiB for $q, k, v$ and the
# output (the advice printed above). Only (c) changes the growth itself.
#
# </details>

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
# Now its peak memory with tiles of $1024 \times 1024$ scores (4 MiB each in float32), up to
# $n = 16{,}384$. Dense attention would need 2 GiB there; we take its memory from
# `dense_attention_memory`, which section 2 showed to be exact.


# %%
def tiled_1024(q, k, v):
    """Tiled attention with 1024 x 1024 tiles."""
    return tiled_attention(q, k, v, block_q=1_024, block_k=1_024)


tiled_lens = [256, 1_024, 4_096, 16_384]
tiled_report = profile_scaling(
    tiled_1024, tiled_lens, repeats=1, label="tiled attention, 1024 x 1024 tiles", fit_from=1_024
)
print(f"{'n':>7} {'dense':>11} {'tiled':>11} {'dense / tiled':>14}")
for n, peak in zip(tiled_lens, tiled_report.peak_bytes):
    dense_peak = dense_attention_memory(n)
    print(f"{n:>7,} {format_bytes(dense_peak):>11} {format_bytes(peak):>11} {dense_peak / peak:>13.1f}x")

# %%
plot_scaling(
    dense_report,
    tiled_report,
    metric="peak_bytes",
    title="Peak memory: dense vs tiled attention (log-log)\nslopes fitted for n ≥ 2048 (dense) and n ≥ 1024 (tiled)",
)

# %% [markdown]
# **What to notice.** While $n$ is no longer than a tile, tiling has nothing to save: the one
# tile *is* the whole matrix, plus the bookkeeping of the running softmax, so tiled uses a
# little more memory than dense. That is a regime of its own, and the tiled slope in the
# legend is fitted only from $n = 1024$, one full tile, on. Beyond it the tiled line is almost
# flat: the biggest buffer is one tile, whose size does not depend on $n$, and only the
# $n \times d$ output grows (linearly). Dense keeps growing like $n^2$. At 16K tokens the gap
# is two orders of magnitude, and it widens with every doubling of $n$.
#
# Tiling removes the memory wall, not the time wall: it still computes all $n^2$ scores, so time
# stays $O(n^2)$. Cutting the work itself needs attending to fewer keys: windows and chunks
# (Lecture 2).

# %% [markdown]
# **Check your understanding.** Tiled attention at $n = 131{,}072$ with the model above
# (32 heads, $d = 128$, bfloat16): estimate its memory from the output size alone. Does it fit
# the 24 GiB GPU?
#
# <details>
# <summary>Answer</summary>
#
# The output has $n \cdot \text{heads} \cdot d = 131{,}072 \times 32 \times 128$ numbers of
# 2 bytes: 1 GiB. The inputs $q, k, v$ are the same size, 3 GiB together, and one
# $1024 \times 1024$ tile per head adds $32 \times 2$ MiB $= 64$ MiB. About 4 GiB in all, the
# figure `diagnose_oom` gave: it fits, with room to spare, where dense attention needed 2 TiB.
#
# </details>

# %% [markdown]
# ## Summary
#
# - Dense attention builds an $n \times n$ matrix per head: $O(n^2 d)$ time, $O(n^2)$ memory.
#   A training step holds seven such buffers per head at its peak, the forward pass two.
# - On a log-log plot a power law is a straight line; its slope is the exponent. Time it
#   honestly (warm up, keep the best of several runs, count CPU time on a shared machine) and
#   fit it within one regime, on the sizes where the big term dominates: caches make the time
#   per pair step up as the buffers outgrow them.
# - The memory of dense attention is predictable to the byte, which is how we knew that 128K
#   tokens would need about 2 TiB per layer (32 heads, bfloat16) before trying.
# - The $n^2$ memory is avoidable (tiling, Lecture 3); the $n^2$ time needs sparser patterns
#   (windows and chunks, Lecture 2).

# %% [markdown]
# ## References
#
# - Ashish Vaswani, Noam Shazeer, Niki Parmar, Jakob Uszkoreit, Llion Jones, Aidan N. Gomez,
#   Łukasz Kaiser, Illia Polosukhin. *Attention Is All You Need.* NeurIPS 2017.
#   [arXiv:1706.03762](https://arxiv.org/abs/1706.03762). The attention equation of section 1.
# - Markus N. Rabe, Charles Staats. *Self-attention Does Not Need $O(n^2)$ Memory.* 2021.
#   [arXiv:2112.05682](https://arxiv.org/abs/2112.05682). The way out of section 4.
# - Tri Dao, Daniel Y. Fu, Stefano Ermon, Atri Rudra, Christopher Ré. *FlashAttention: Fast and
#   Memory-Efficient Exact Attention with IO-Awareness.* NeurIPS 2022.
#   [arXiv:2205.14135](https://arxiv.org/abs/2205.14135). Tiled attention as a GPU kernel
#   (Lecture 3).
#
# **Further reading**
#
# - Yi Tay, Mostafa Dehghani, Dara Bahri, Donald Metzler. *Efficient Transformers: A Survey.*
#   2020. [arXiv:2009.06732](https://arxiv.org/abs/2009.06732). The landscape of ways around
#   the quadratic wall.
# - Ulrich Drepper. *What Every Programmer Should Know About Memory.* 2007. Caches, and why
#   the time per pair steps up as a buffer outgrows one.
# - Samuel Williams, Andrew Waterman, David Patterson. *Roofline: An Insightful Visual
#   Performance Model for Multicore Architectures.* Communications of the ACM 52(4), 2009.
#   When a computation is limited by memory traffic rather than arithmetic.
