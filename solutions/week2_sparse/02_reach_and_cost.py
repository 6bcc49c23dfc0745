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
# # Week 2 · Lecture 2 · Reach and cost
#
# Lecture 1 built the sparse patterns and found every one of them blind to most keys in a
# single layer. Two questions decide whether a pattern is worth using:
#
# - **Reach.** A model stacks layers. After $L$ layers, which tokens can influence which?
#   How deep must a model be before every token can hear from every other?
# - **Cost.** A mask on its own saves nothing: dense attention with a mask computes all $n^2$
#   scores and throws most away. What do the methods cost as $n$ grows, and which kernels
#   actually do only the work the pattern promises?
#
# In this lecture you will
#
# 1. count, for every pair of tokens, the fewest layers that connect them, and find the depth
#    at which a pattern reaches everything;
# 2. compare the cost of eight attention methods over $n$ with the complexity analyser;
# 3. run three kernels that skip the masked work (banded, block-sparse, FlexAttention) and time
#    them against masked `scaled_dot_product_attention`;
# 4. meet sparsity that depends on the content: top-k attention and a module that picks its
#    pattern from the input.

# %%
import lcteach  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads OpenMP, see Week 1)

# isort: split
import math
import time
from functools import partial

import torch
import torch.nn.functional as F
from IPython.display import Markdown, display
from torch.nn.attention.flex_attention import and_masks, or_masks

from lcteach import (
    ContentAdaptiveAttention,
    banded_attention,
    bigbird_cost,
    block_layout,
    block_sparse_attention,
    block_sparse_work,
    causal_mask,
    complexity_table,
    dense_attention,
    evaluate_rows,
    flex_block_mask,
    flex_fallback_reason,
    flex_sparse_attention,
    format_complexity_table,
    generate_bigbird,
    generate_global,
    generate_random_blocks,
    generate_sliding_window,
    generate_strided,
    generate_symmetric_window,
    hop_counts,
    longformer_cost,
    minimal_layers_for_full_reach,
    pattern_flops,
    plot_complexity,
    plot_hop_counts,
    plot_scaling,
    profile_scaling,
    strided_cost,
    topk_attention,
)
from lcteach.masks import generate_sparse_transformer
from lcteach.widgets import reachability_explorer

_ = torch.manual_seed(0)

# %% [markdown]
# The Sparse Transformer pattern of Lecture 1 appears often below. `generate_sparse_transformer(s)`
# builds it, exactly as Lecture 1 did: `and_masks(causal_mask, or_masks(generate_sliding_window(s),
# generate_strided(s)))`.

# %% [markdown]
# ## 1. Reach: what $L$ layers connect
#
# One attention layer moves information from key $j$ to query $i$ when the pattern allows the
# pair. Between layers the residual connection keeps each position's own information, so a
# path may also wait in place for a layer. Write $A$ for the pattern as a 0/1 matrix and $I$
# for the identity; then $L$ layers connect $i$ and $j$ exactly when
#
# $$\big((A \lor I)^L\big)_{ij} = 1 \qquad\text{(a boolean matrix power).}$$
#
# `hop_counts(pattern, n)` returns, for every pair, the fewest layers that connect them
# ($-1$: never). For a causal window of 4 on 16 tokens, here is what reaches the last query:

# %%
hops = hop_counts(generate_sliding_window(4), 16)
print("key position j:        ", list(range(16)))
print("layers to reach query 15:", hops[15].tolist())

# %% [markdown]
# Each layer carries information $w - 1 = 3$ positions further, so key $j$ needs
# $\lceil (15 - j) / 3 \rceil$ layers, as in Week 1. The picture shows all pairs at once:
# colour is the number of layers, grey a pair that no number of layers reaches. A causal
# pattern never sends the future back, so its upper triangle is drawn white and left out of
# the count: "not reached" counts only the pairs $j \le i$ that depth could reach.

# %%
plot_hop_counts(generate_sliding_window(5), 64)

# %% [markdown]
# Now the Sparse Transformer. Its window reaches the near past in one layer; everything else
# takes **two**: first along the window to a position on the right grid, then along the stride.

# %%
plot_hop_counts(generate_sparse_transformer(8), 64)

# %% [markdown]
# And BigBird (bidirectional). Global token 0 hears every token in layer 1 and every token
# hears it in layer 2, so two layers connect every pair, whatever the length.

# %%
plot_hop_counts(generate_bigbird(7, 1, 1, 8, 64, seed=0), 64)

# %% [markdown]
# `minimal_layers_for_full_reach` answers the depth question directly: the fewest layers after
# which every query has information from every key it could have (every $j \le i$ for a
# causal pattern, every $j$ for a bidirectional one), or `None` if no depth gets there. Here
# it is for the patterns of Lecture 1 at growing $n$:

# %%
candidates = {
    "sliding window 8": lambda n: generate_sliding_window(8),
    "causal strided 8 alone": lambda n: and_masks(causal_mask, generate_strided(8)),
    "Sparse Transformer, s = sqrt n": lambda n: generate_sparse_transformer(math.isqrt(n)),
    "random blocks 2 x 8 alone": lambda n: generate_random_blocks(n, 8, 2, seed=0),
    "window 7 + random blocks 2 x 8": lambda n: or_masks(
        generate_symmetric_window(7), generate_random_blocks(n, 8, 2, seed=0)
    ),
    "Longformer w 7, g 1": lambda n: or_masks(generate_symmetric_window(7), generate_global(1)),
    "BigBird w 7, g 1, r 1 x 8": lambda n: generate_bigbird(7, 1, 1, 8, n, seed=0),
}
lengths = (64, 128, 256, 512)
print(f"{'pattern':<32}" + "".join(f"{f'n = {n}':>9}" for n in lengths))
for name, make in candidates.items():
    depths = [minimal_layers_for_full_reach(make(n), n) for n in lengths]
    print(f"{name:<32}" + "".join(f"{'never' if d is None else d:>9}" for d in depths))

# %% [markdown]
# **What to notice.**
#
# - A window needs $\lceil (n-1)/(w-1) \rceil$ layers: depth grows **linearly** with $n$.
# - A stride on its own never gets there: positions on different grids never meet.
# - Random blocks on their own never get there either: a key block that no query block happened
#   to draw is never read by anyone.
# - A window plus random blocks needs only a few layers, growing slowly with $n$ (6 at 64
#   tokens, 8 at 512, where a symmetric window of 7 alone needs $\lceil 511/3 \rceil = 171$): the window makes sure every position
#   is read, the random links make a "small world" in which every pair is a few hops apart.
# - The Sparse Transformer and anything with a global token need **2** layers at every length.
#
# A path is only a possibility, though. Through a global token, the whole sequence must pass
# through one vector per layer; through a window, a fact is handed from token to token and
# mixed with everything else on the way. Reach is an upper bound on what a model can use,
# not a promise that it will: Lecture 3 puts that to the test.
#
# Explore other patterns, lengths and depths below, the Sparse Transformer among them (it
# reads the `stride` slider); the info line gives the minimal depth.

# %%
reachability_explorer()

# %% [markdown]
# **Check your understanding.** A decoder uses a sliding window of 4,096 in every layer. How
# many layers does the last token of a 128K-token input need to hear from the first? What if
# one layer in four is replaced by the Sparse Transformer pattern?
#
# <details><summary>Answer</summary>
#
# Each layer carries information $w - 1 = 4{,}095$ positions back, and the first token is
# $131{,}071$ positions before the last: $\lceil 131{,}071 / 4{,}095 \rceil = 33$ layers.
# With the Sparse Transformer (stride $s = \lfloor\sqrt{131{,}072}\rfloor = 362$) as layer 4,
# the fact needs only **4**: in the first window layer it moves at most $s - 1 = 361$ positions
# (a window of 4,096 covers that) onto the last token's grid, here to position 27, since
# $131{,}071 - 27 = 362^2$; the strided keys of layer 4 then carry it the whole way in one hop.
# That is reach, a possibility: Lecture 3 asks whether training uses such a path.
#
# </details>

# %% [markdown]
# ## 2. Cost: the complexity analyser
#
# Sparse patterns are one family of ways past the quadratic wall. Weeks 3 and 4 add more:
# linear attention (no score matrix at all), hierarchical attention (attend to summaries of
# blocks at several scales) and memory-augmented models (process the text in segments, carry
# a fixed memory across). `complexity_table` prices all of them for one head and one
# sequence in closed form: pairs of (query, key) scores, FLOPs, and the memory for the scores
# and the keys and values they need. Defaults: head dimension 64, windows of 255 keys, 2
# global tokens, 3 random blocks of 64, segments and memories of 512.

# %%
display(Markdown(format_complexity_table(complexity_table([4_096, 131_072]))))

# %% [markdown]
# The `kind` column matters for the `of dense` column. A decoder's query sees only itself and
# the keys before it, so causal dense attention scores $n(n+1)/2$ pairs, half of full
# attention's $n^2$. Each method is therefore compared with dense attention *of its kind*:
# the causal ones (sliding window, strided, linear, memory-augmented) with causal dense, the
# bidirectional ones (Longformer, BigBird, hierarchical) with full dense. Compared with full
# attention, every causal method would look twice as good as it is.

# %% [markdown]
# The same over $n$ from 1K to 512K, on log-log axes, where a power law is a straight line
# whose slope is the exponent (Week 1):

# %%
rows = complexity_table([2**k for k in range(10, 20)])
plot_complexity(rows, title="Cost of one attention head over n, from the closed forms (log-log)")

# %% [markdown]
# **Reading the plot.**
#
# | method | FLOPs | memory | why |
# | --- | --- | --- | --- |
# | dense, causal dense | $O(n^2 d)$ | $O(n^2)$ | every pair ($n^2$), or every pair with $j \le i$ (half as many, same slope) |
# | sliding window | $O(n w d)$ | $O(n w)$ | $w$ keys per query |
# | strided ($s = \sqrt n$) | $O(n \sqrt n\, d)$ | $O(n \sqrt n)$ | slope 1.5: between the two |
# | Longformer, BigBird | $O(n (w + g + r b) d)$ | $O(n (w + g + rb))$ | a fixed number of keys per query |
# | linear (causal) | $O(n d^2)$ | $O(d^2)$ state | no scores: cheaper than causal dense once $n > 2d$ |
# | hierarchical | $O(n b \log(n/b)\, d)$ | $O(n b \log n)$ | $b$ keys at each of $\log(n/b)$ levels |
# | memory-augmented | $O(n (s + m) d)$ | constant | one segment of $s$ and a memory of $m$ at a time |
#
# Dashed lines are causal methods, solid lines bidirectional ones. Every line but the two
# dense ones has slope 1 or 1.5 for FLOPs; they differ in the constant, and the constant is
# the window, the blocks and the memory. The sliding window (dashed, triangles) and Longformer
# (solid, crosses) lie almost on top of each other: with the same window their costs differ
# by two global tokens. Strided attention starts cheapest and ends among the most expensive:
# slope 1.5 overtakes every slope-1 line eventually. Memory tells them apart: the segment
# recurrence and linear attention (the flat lines) keep a state whose size does not depend on
# $n$ at all; linear attention's is one $d \times d$ matrix and a $d$-vector, about 17 KiB here.
#
# The closed forms are not a separate theory. They count exactly the pairs that the
# `mask_mod`s of Lecture 1 allow (BigBird's is an upper bound: a random block that falls on
# the window is counted twice). At a length that is not a perfect square:

# %%
n = 1_000
checks = [
    ("strided", strided_cost(n), generate_sparse_transformer(math.isqrt(n))),
    ("longformer", longformer_cost(n, 63, 2), or_masks(generate_symmetric_window(63), generate_global(2))),
    ("bigbird", bigbird_cost(n, 63, 2, 3, 40), generate_bigbird(63, 2, 3, 40, n, seed=0)),
]
print(f"{'method':<11} {'closed form':>12} {'counted from the mask_mod':>26}")
for name, closed, pattern in checks:
    print(f"{name:<11} {closed.pairs:>12,} {pattern_flops(pattern, n, progress=False).allowed_pairs:>26,}")

# %% [markdown]
# **Check your understanding.** At which $n$ does linear attention ($4nd^2$ FLOPs) become
# cheaper than a sliding window of 255 ($\approx 4nwd$)? Does the answer depend on $n$?
#
# <details><summary>Answer</summary>
#
# $4nd^2 < 4nwd$ exactly when $d < w$: with $d = 64$ and $w = 255$, linear attention is about
# $w/d \approx 4$ times cheaper at every length, so the answer does not depend on $n$ (both
# grow linearly). The only exception is a short input, $n < w$, where a window row holds fewer
# than $w$ keys: the window's $4d \cdot n(n+1)/2$ FLOPs beat $4nd^2$ while $n < 2d - 1 = 127$.
# Cheaper is not better, though: linear attention replaces exact scores with a feature map,
# and the window computes exact attention over the keys it keeps.
#
# </details>

# %% [markdown]
# ## 3. Kernels that do only the promised work
#
# A pattern's FLOPs are a promise; a kernel must keep it. The baseline, and the trap, is dense
# attention with a boolean mask: `F.scaled_dot_product_attention(q, k, v, attn_mask=mask)`
# builds all $n^2$ scores, sets the masked ones to $-\infty$ and runs the softmax over the
# whole row. It is correct, and it is quadratic in time and memory whatever the mask. We
# build each mask once (one broadcast call of the `mask_mod`, `evaluate_rows`) and do not
# count that in the time; a model reuses it in every layer.

# %%
window = 128
sliding = generate_sliding_window(window)
lengths = [1_024, 2_048, 4_096]
masks = {n: evaluate_rows(sliding, torch.arange(n), n) for n in lengths}


def masked_sdpa(q, k, v):
    """Dense SDPA with the sliding window's (n, n) bool mask: the quadratic baseline."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=masks[q.shape[-2]])


# %% [markdown]
# ### Banded attention: $O(n \cdot w)$
#
# `banded_attention` cuts the queries into blocks of $b$; a block needs only the $w + b - 1$
# keys that end at its last query, so it computes one $b \times (w + b - 1)$ tile per block,
# all tiles in one batched matrix product. First, it is the same attention:

# %%
generator = torch.Generator().manual_seed(0)
q, k, v = torch.randn(3, 1, 2, 1_024, 64, generator=generator).unbind(0)
error = (banded_attention(q, k, v, window) - masked_sdpa(q, k, v)).abs().max().item()
print(f"max |banded - masked SDPA| = {error:.1e}")

# %% [markdown]
# Now time and peak memory at growing $n$, one head of dimension 64 (`profile_scaling` from
# Week 1: best of 3 runs, memory from the tracker). These are small, quick measurements to
# show the trend on your machine; `make bench` runs the full benchmark of every kernel up to
# $n = 65{,}536$ and writes a table and plots to `build/bench/`.

# %%
sdpa_report = profile_scaling(masked_sdpa, lengths, label="SDPA, dense bool mask")
banded_report = profile_scaling(
    lambda q, k, v: banded_attention(q, k, v, window), lengths, label=f"banded_attention, w = {window}"
)
for report in (sdpa_report, banded_report):
    print(report.table(), end="\n\n")

# %%
plot_scaling(
    sdpa_report,
    banded_report,
    metric="peak_bytes",
    title=f"Sliding window {window}: peak memory, masked SDPA vs banded (log-log)",
)

# %%
plot_scaling(
    sdpa_report,
    banded_report,
    metric="seconds",
    title=f"Sliding window {window}: time, masked SDPA vs banded (log-log)",
)

# %% [markdown]
# **What to notice.** The masked SDPA's memory grows with slope 2 (the mask and the score
# matrix), banded attention's with slope 1. Time follows the same slopes (at small $n$ fixed
# costs blur them, and a busy machine adds noise): the gap is already more than 10x at
# $n = 4096$ and widens with every doubling of $n$.
#
# ### Block-sparse attention: only the non-empty blocks
#
# A window is one shape. Any pattern can be run by a kernel that computes only the blocks
# holding at least one allowed pair: `block_layout` finds them, `block_sparse_attention`
# gathers the active (query block, key block) pairs and computes them all in one batched
# product, with the `mask_mod` applied inside each block. Here is BigBird in blocks of 64: a
# window of 127 keys, the first 64 tokens global and 3 random blocks per row, all
# block-aligned. `best_seconds` times a call the simple way: a warm-up, then the best of three.


# %%
def best_seconds(run, repeats=3):
    """Best wall-clock seconds of `run()` over `repeats` calls, after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


# %%
block = 64
print(
    f"{'n':>6} {'active blocks':>14} {'FLOPs vs dense':>15} {'max error':>10} {'masked SDPA':>12} {'block-sparse':>13}"
)
for n in (2_048, 4_096):
    bigbird = generate_bigbird(127, 64, 3, block, n, seed=0)
    layout = block_layout(bigbird, n, block_size=block)[0, 0]
    bigbird_mask = evaluate_rows(bigbird, torch.arange(n), n)
    q, k, v = torch.randn(3, 1, 1, n, 64, generator=generator).unbind(0)
    sdpa = partial(F.scaled_dot_product_attention, q, k, v, attn_mask=bigbird_mask)
    sparse = partial(block_sparse_attention, q, k, v, layout, block, mask_mod=bigbird)
    fewer = 2 * n * n * (64 + 64) / block_sparse_work(layout, block, 64)
    error = (sparse() - sdpa()).abs().max().item()
    print(
        f"{n:>6,} {int(layout.sum()):>6} of {layout.numel():>5} {fewer:>14.1f}x {error:>10.1e} "
        f"{best_seconds(sdpa) * 1e3:>9.1f} ms {best_seconds(sparse) * 1e3:>10.1f} ms"
    )

# %% [markdown]
# Same result, and the work of a block-sparse kernel is the number of active blocks times
# $b^2$, never $n^2$: with a fixed number of blocks per row (window, random, plus the global
# block's row and column) it grows linearly in $n$, so the FLOPs saved double with each
# doubling of $n$, and the time saved follows. At short lengths the gathering and scattering
# of blocks eats much of the gain; on a GPU, where FLOPs are cheap and memory traffic is not,
# it is the $n \times n$ mask and scores of the baseline that hurt. The other catch is the
# layout itself: `block_layout` evaluates the `mask_mod` on all $n^2$ pairs once,
# a cheap elementwise pass that a model does once per pattern, not per layer or per step.
#
# ### FlexAttention: the same idea, compiled
#
# PyTorch's FlexAttention is the production version of this kernel. `create_block_mask`
# records which blocks (128 x 128 by default) hold an allowed pair, in a `BlockMask`;
# `torch.compile` turns `flex_attention` and the `mask_mod` into one fused kernel that skips
# the empty blocks and evaluates the `mask_mod` inside the partial ones. `lcteach.flex_block_mask`
# caches the `BlockMask` per pattern and shape:

# %%
n = 2_048
bigbird = generate_bigbird(127, 64, 3, block, n, seed=0)
q, k, v = torch.randn(3, 1, 1, n, 64, generator=generator).unbind(0)
block_mask = flex_block_mask(bigbird, 1, 1, n, n)
print(f"BlockMask of {bigbird.__name__} at n = {n}: {block_mask.sparsity():.1f}% of the blocks skipped")

# %% [markdown]
# FlexAttention's blocks of 128 are coarser than our 64, so fewer of them are empty: about
# half, against three quarters with blocks of 64 at the same length. Block size is a
# trade-off between skipping more and running bigger, more efficient tiles.

# %% [markdown]
# `flex_sparse_attention` runs the compiled kernel where it can. On a CPU, compiled
# FlexAttention has no backward pass and takes float32, float16 or bfloat16 only, and
# compiling needs a C++ compiler; elsewhere the function computes the same attention with
# `block_sparse_attention` on the mask's block layout. `flex_fallback_reason` says which path
# a call takes. The first compiled call for a new pattern compiles for a while; later calls,
# at any length, reuse the kernel and take milliseconds.

# %%
q_train = q.clone().requires_grad_()
print("inference, float32:", flex_fallback_reason(q, k, v) or "compiled FlexAttention")
print("inference, float64:", flex_fallback_reason(q.double(), k.double(), v.double()))
print("training on CPU:   ", flex_fallback_reason(q_train, k, v))

# %% [markdown]
# Compiling takes 10 to 20 seconds per pattern on a laptop CPU, too long for this notebook, so
# here we take the training path, which runs at once: `flex_sparse_attention` computes the
# same attention with `block_sparse_attention` on the `BlockMask`'s layout, and gradients flow
# as through any PyTorch code.

# %%
start = time.perf_counter()
out = flex_sparse_attention(q_train, k, v, bigbird)
out.sum().backward()
print(f"forward + backward: {time.perf_counter() - start:.2f} s; gradient of q: {tuple(q_train.grad.shape)}")
expected = F.scaled_dot_product_attention(q, k, v, attn_mask=evaluate_rows(bigbird, torch.arange(n), n))
print(f"max |flex_sparse_attention - masked SDPA| = {(out - expected).abs().max().item():.1e}")

# %% [markdown]
# On a GPU the compiled kernel is what you would use: it never builds the $n \times n$ matrix,
# trains, and runs as fast as FlashAttention on the blocks it computes. `make bench` (with
# `BENCH_ARGS="--device cuda"` on a GPU) times every kernel of this section, the compiled
# FlexAttention kernel included, and tiled attention from Week 1, against masked SDPA up to
# $n = 65{,}536$.
#
# **Check your understanding.** The block-sparse table above shows BigBird's active blocks at
# $n = 2048$ and $4096$. Estimate them at $n = 65{,}536$ with the same window, global block and
# random blocks per row, and compare with the blocks of dense attention.
#
# <details><summary>Answer</summary>
#
# With blocks of 64 there are $65{,}536 / 64 = 1{,}024$ block rows. Each holds about 7 active
# blocks: its own block and its two neighbours (the window of 127 keys reaches 63 on each
# side), the global block 0, and 3 random blocks; block row 0, the global tokens, holds all
# 1,024. That is about $1{,}023 \cdot 7 + 1{,}024 \approx 8{,}200$ blocks, a little fewer where
# random blocks land on the window or the global block (the table's 236 and 495 follow the
# same count: about 7.4 and 7.7 per row). Dense attention computes all
# $1{,}024^2 \approx 1.05$ million blocks, about 128 times more, and the gap doubles with every
# doubling of $n$.
#
# </details>

# %% [markdown]
# ## 4. Sparsity chosen by the content
#
# Every pattern so far is fixed before the model sees its input. Language does not cooperate:
# the key a query needs may sit anywhere. **Top-k attention** lets the scores decide: each
# query keeps only its $k$ highest-scoring keys and renormalises over them.
#
# How much is lost depends on how peaked the attention is. On random inputs attention is
# spread thin and top-k discards real weight; when each query has a few strong matches (here:
# the same random inputs with scores 4 times sharper), a small $k$ is nearly exact.

# %%
generator = torch.Generator().manual_seed(0)
q, k, v = torch.randn(3, 1, 4, 512, 64, generator=generator).unbind(0)
print(f"{'top_k':>6} {'error, flat scores':>19} {'error, peaked scores':>21}")
for top_k in (4, 16, 64, 256, 512):
    errors = []
    for sharpness in (1.0, 4.0):
        exact, _ = dense_attention(sharpness * q, k, v, causal=True)
        approx, _ = topk_attention(sharpness * q, k, v, top_k, causal=True)
        errors.append((approx - exact).abs().mean().item())
    print(f"{top_k:>6} {errors[0]:>19.4f} {errors[1]:>21.4f}")

# %% [markdown]
# Note what `topk_attention` does **not** save: to find a query's best keys it computes all of
# its scores, $O(n^2)$, like dense attention. Top-k pays off only when the best keys can be
# found without scoring them all: by hashing similar vectors into buckets (Reformer), by
# clustering (Routing Transformer), or by a search index over a memory (Weeks 3 and 4).
#
# `ContentAdaptiveAttention` takes a cheaper middle road. It measures, for a few query
# positions, how much of their attention falls inside a sliding window and inside the Sparse
# Transformer pattern, and then runs the cheapest fixed pattern that keeps at least 90% of
# the mass (dense for short inputs, where dense is cheap anyway). Three inputs with different
# structure, at $n = 1024$:
#
# - **local**: each token's vector changes slowly along the sequence, so neighbours match;
# - **periodic**: the vector repeats every 32 positions, so a query matches its grid;
# - **random**: no structure at all.

# %%
n, dim = 1_024, 64
generator = torch.Generator().manual_seed(0)
positions = torch.arange(n, dtype=torch.float32)[:, None]
frequencies = torch.linspace(0.002, 0.2, dim // 2)[None, :]  # slow rotations: nearby positions match
local = 3 * torch.cat([torch.cos(positions * frequencies), torch.sin(positions * frequencies)], dim=-1)
periodic = 4 * torch.randn(32, dim, generator=generator).repeat(n // 32, 1)
inputs = {  # (queries, keys), each (n, dim); the keys serve as values too
    "local": (local, local),
    "periodic": (periodic, periodic),
    "random": (torch.randn(n, dim, generator=generator), torch.randn(n, dim, generator=generator)),
}
adaptive = ContentAdaptiveAttention()
print(f"{'input':<9} {'mass in window 64':>18} {'mass in strided 32':>19} {'chosen':>15}")
for name, (queries, keys) in inputs.items():
    q, k = queries[None, None], keys[None, None]  # batch 1, 1 head
    adaptive(q, k, k)
    choice = adaptive.last_choice
    print(f"{name:<9} {choice.local_mass:>18.1%} {choice.strided_mass:>19.1%} {choice.name:>15}")

# %% [markdown]
# The module is deterministic (evenly spaced sample queries, no randomness) and cheap to decide:
# scoring a few queries costs $O(\text{samples} \cdot n \cdot d)$. Its weakness is the same as
# every fixed pattern's: it decides once per input, for all queries and heads together, from a
# sample. One query that needs a far key it did not sample loses it.
#
# ## Summary
#
# - $L$ layers connect what the boolean power $(A \lor I)^L$ connects. Windows need depth
#   linear in $n$; a global token or the Sparse Transformer's window plus stride connect every
#   pair in 2 layers; random links in a few. A path is a possibility, not a guarantee.
# - The complexity analyser prices dense, windowed, strided, Longformer, BigBird, linear,
#   hierarchical and memory-augmented attention in closed form; the counts agree with the
#   `mask_mod`s.
# - A mask saves nothing by itself. Banded ($O(n w)$), block-sparse ($O(\text{active blocks})$)
#   and compiled FlexAttention kernels skip the masked work; masked SDPA does not.
# - Top-k attention chooses keys by content but, done naively, scores them all; adaptive
#   selection chooses among fixed patterns from a sample of the attention.
#
# ## References
#
# - Rewon Child, Scott Gray, Alec Radford, Ilya Sutskever. *Generating Long Sequences with
#   Sparse Transformers.* 2019. arXiv:1904.10509.
# - Iz Beltagy, Matthew E. Peters, Arman Cohan. *Longformer: The Long-Document Transformer.*
#   2020. arXiv:2004.05150.
# - Manzil Zaheer, Guru Guruganesh, Avinava Dubey, Joshua Ainslie, Chris Alberti, Santiago
#   Ontañón, Philip Pham, Anirudh Ravula, Qifan Wang, Li Yang, Amr Ahmed. *Big Bird:
#   Transformers for Longer Sequences.* NeurIPS 2020. arXiv:2007.14062.
# - Angelos Katharopoulos, Apoorv Vyas, Nikolaos Pappas, François Fleuret. *Transformers are
#   RNNs: Fast Autoregressive Transformers with Linear Attention.* ICML 2020. arXiv:2006.16236.
# - Zihang Dai, Zhilin Yang, Yiming Yang, Jaime Carbonell, Quoc V. Le, Ruslan Salakhutdinov.
#   *Transformer-XL: Attentive Language Models Beyond a Fixed-Length Context.* ACL 2019.
#   arXiv:1901.02860.
# - Zhenhai Zhu, Radu Soricut. *H-Transformer-1D: Fast One-Dimensional Hierarchical Attention
#   for Sequences.* ACL 2021. arXiv:2107.11906.
# - Juechu Dong, Boyuan Feng, Driss Guessous, Yanbo Liang, Horace He. *Flex Attention: A
#   Programming Model for Generating Optimized Attention Kernels.* 2024. arXiv:2412.05496.
# - Tri Dao, Daniel Y. Fu, Stefano Ermon, Atri Rudra, Christopher Ré. *FlashAttention: Fast and
#   Memory-Efficient Exact Attention with IO-Awareness.* NeurIPS 2022. arXiv:2205.14135.
# - Nikita Kitaev, Łukasz Kaiser, Anselm Levskaya. *Reformer: The Efficient Transformer.*
#   ICLR 2020. arXiv:2001.04451.
# - Aurko Roy, Mohammad Saffar, Ashish Vaswani, David Grangier. *Efficient Content-Based
#   Sparse Attention with Routing Transformers.* TACL 2021. arXiv:2003.05997.
# - Ankit Gupta, Guy Dar, Shaya Goodman, David Ciprut, Jonathan Berant. *Memory-efficient
#   Transformers via Top-k Attention.* SustaiNLP 2021. arXiv:2106.06899.
#
# **Further reading.** Yi Tay, Mostafa Dehghani, Dara Bahri, Donald Metzler, *Efficient
# Transformers: A Survey* (ACM Computing Surveys 2022, arXiv:2009.06732), maps the whole family
# this lecture prices. Albert Q. Jiang et al., *Mistral 7B* (2023, arXiv:2310.06825), is a
# decoder with a sliding window of 4,096 in every layer, the setting of the first question
# above.
