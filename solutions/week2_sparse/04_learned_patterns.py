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
# # Week 2 · Lecture 4 · Learned and content-adaptive sparse patterns
#
# Every pattern of Lectures 1 to 3 was drawn before the model saw its input: a window, a
# stride, global tokens, random blocks. Lecture 2 ended with the alternative, sparsity chosen
# by the content, and with its catch: top-k attention finds each query's best keys by scoring
# them all. This lecture makes content-adaptive sparsity cheap, by deciding per **block**, and
# then makes the decision better by **learning** it.
#
# In this lecture you will
#
# 1. meet a retrieval task in which the keys a query needs sit in one far-away block that only
#    the content reveals;
# 2. select blocks by their pooled scores (`select_blocks`, as in MoBA and Quest), count what
#    deciding costs, and see how a misleading direction in the content fools it;
# 3. train a small **block pattern predictor** live, by distilling the true attention mass;
# 4. compare the attention mass kept by a fixed window, by pooled scores, by the learned
#    predictor and by the oracle, across sparsity ratios, and the error each layout causes;
# 5. weigh the cost of deciding against the work it saves;
# 6. run the chosen layout through **compiled FlexAttention** on the CPU, check it against
#    masked SDPA and time it against dense attention.

# %%
import lcteach  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads OpenMP, see Week 1)

# isort: split
import time

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import flex_attention

from lcteach.experiments import BlockRetrievalTask, make_block_retrieval_batch
from lcteach.kernels import (
    BlockPatternPredictor,
    attention_recall,
    block_attention_mass,
    block_scores,
    block_sparse_attention,
    block_sparse_work,
    flex_fallback_reason,
    keep_counts,
    keep_top_blocks,
    layout_block_mask,
    select_blocks,
    selection_flops,
    train_block_predictor,
    window_layout,
)
from lcteach.measure import best_seconds
from lcteach.viz import plot_layouts, plot_recall_vs_sparsity, plot_training_loss

_ = torch.manual_seed(0)

# %% [markdown]
# ## 1. Links that no fixed pattern can know
#
# A fixed pattern is a bet on *where* the important keys are: near the query (a window), on a
# grid (a stride), at the start (global tokens). Language breaks the bet all the time: the
# antecedent of a pronoun, the definition of a variable, the answer to a question sits
# wherever the text put it. Only the content says where.
#
# Top-k attention follows the content exactly, but it finds a query's best keys by computing
# all $n$ of its scores: $O(n^2 d)$ work for $n$ queries, the cost we wanted to avoid. The way
# out is to decide coarsely. Cut the sequence into blocks of $s$ positions, decide which
# **blocks** each query block needs, then run exact attention on those blocks only
# (`block_sparse_attention`, Lecture 2).
#
# ### A task where the content decides
#
# `BlockRetrievalTask` builds queries and keys for that situation (512 positions, blocks of
# 32, head dimension 32):
#
# - every key block holds a hidden **code** vector on two **needle** keys;
# - every query block needs one key block, at least two blocks away and otherwise random, and
#   all its queries carry that block's code;
# - a **distractor** direction $u$ sits on every query and, more weakly, on every key of a
#   quarter of the key blocks. We will see shortly why it is there.
#
# A batch holds independent sequences; `targets` says which key block each query block needs.

# %%
task = BlockRetrievalTask()
train = make_block_retrieval_batch(task, 64, generator=torch.Generator().manual_seed(1))
test = make_block_retrieval_batch(task, 8, generator=torch.Generator().manual_seed(2))  # held out
block, blocks = task.block_size, task.blocks
print(f"q, k, v: {tuple(test.q.shape)}; {blocks} blocks of {block}")
print("key block each query block needs (test sequence 0):", test.targets[0, 0].tolist())
print("distractor key blocks:", test.distractors[0, 0].nonzero().flatten().tolist())

# %% [markdown]
# `block_attention_mass` computes the truth: for every query block, the share of its exact
# attention (averaged over its 32 queries) that falls in each key block. Here is the row of
# query block 0, and how much its needed block gets on average over all query blocks:

# %%
mass = block_attention_mass(test.q, test.k, block)  # (B, H, 16, 16), rows sum to 1
wanted = test.targets[0, 0, 0].item()
print(f"query block 0 needs key block {wanted}; its attention mass per key block:")
print("  ", [round(m, 2) for m in mass[0, 0, 0].tolist()])
in_target = torch.gather(mass, -1, test.targets[..., None]).mean().item()
print(f"mass in the needed block, averaged over all query blocks: {in_target:.0%}")

# %% [markdown]
# Most of each query block's attention goes to one far block, and a different one for every
# query block. A window of 3 blocks around the diagonal never holds it, by construction.

# %% [markdown]
# ## 2. Choosing blocks by pooled scores
#
# MoBA (Lu et al. 2025) and Quest (Tang et al. 2024) score a (query block, key block) pair
# cheaply: summarise each block by its mean vector and take the dot product of the two means.
# `select_blocks(q, k, block_size, keep)` keeps, for every query block, the `keep` key blocks
# with the highest such score.
#
# The cost is what makes it attractive. With $T = n/s$ blocks, pooling costs $O(nd)$ and the
# scores $O(T^2 d)$, against $O(n^2 d)$ for attention itself. In FLOPs: $2T^2 d$ for the
# scores against $4n^2 d$ for attention, a ratio that approaches $2s^2 = 2048$ as $n$ grows
# (at short lengths the pooling still counts). `selection_flops` counts it:

# %%
print(f"{'n':>8} {'attention 4 n^2 d':>18} {'select_blocks':>14} {'ratio':>8}")
for n in (512, 4_096, 32_768, 131_072):
    dense_flops = 4 * n * n * task.dim  # QK^T and PV, 2 n^2 d flops each
    decide = selection_flops(n, n, task.dim, block)
    print(f"{n:>8,} {dense_flops:>18.2e} {decide:>14.2e} {dense_flops / decide:>7.0f}x")

# %% [markdown]
# Now the quality. We keep 2 of the 16 key blocks per query block (sparsity 87.5%) and draw
# the layouts of test sequence 0. Each ring marks the block a query block needs: filled when
# the layout keeps it, red when it misses it.

# %%
window = window_layout(blocks, blocks, 0.875)
pooled = select_blocks(test.q, test.k, block, 2)
plot_layouts(
    {"window (2 nearest blocks)": window, "select_blocks (pooled scores)": pooled},
    targets=test.targets[0, 0],
    title="Which key blocks each query block computes, at sparsity 87.5%",
)

# %% [markdown]
# The window misses every needed block, as promised. Pooled scores miss most of them too, and
# they pick the same few columns in every row: the distractor blocks.
#
# Why? The mean of the scores *is* the score of the means,
# $\bar q \cdot \bar k = \frac{1}{s^2}\sum_{a, b} q_a \cdot k_b$, the **average** score of the
# block pair. Attention, though, is a softmax: a block's mass is dominated by its *largest*
# scores. A needed block has two needle keys with a very high score and thirty ordinary ones;
# a distractor block has a moderately raised score on all thirty-two keys. The average favours
# the distractor, the softmax the needles. The numbers, for query block 0:

# %%
scores = block_scores(test.q, test.k, block)[0, 0, 0]
distractor = test.distractors[0, 0].nonzero().flatten()
strongest = distractor[mass[0, 0, 0, distractor].argmax()].item()
print(f"{'key block':<24} {'pooled score':>13} {'attention mass':>15}")
for name, j in ((f"needed block {wanted}", wanted), (f"distractor block {strongest}", strongest)):
    print(f"{name:<24} {scores[j].item():>13.2f} {mass[0, 0, 0, j].item():>15.1%}")

# %% [markdown]
# Real models have such directions too: attention sinks and other components that shift every
# score of a block without making any key of it important. A fixed rule (take the means, take
# their dot product) cannot learn to ignore them. A learned one can.

# %% [markdown]
# **Check your understanding.** A key block holds one needle whose score with the query is
# $10$ and 31 keys scoring $0$; another holds 32 keys scoring $2$. Which has the higher pooled
# score, and which gets more attention (unscaled softmax over these two blocks)?
#
# <details><summary>Answer</summary>
#
# Pooled scores are average scores: $10/32 \approx 0.31$ for the needle block, $2$ for the
# other, so pooling prefers the second. The softmax mass is proportional to the sum of
# exponentials: $e^{10} + 31 \approx 22{,}057$ against $32 e^2 \approx 236$, so the needle block
# gets about 99% of the attention. Averaging is linear; the softmax is dominated by the maximum.
# Quest scores a block by an upper bound of its largest score, computed from per-channel minima
# and maxima of its keys, for exactly this reason.
#
# </details>

# %% [markdown]
# ## 3. A learned block pattern predictor
#
# `BlockPatternPredictor(dim, rank)` keeps the cheap shape of pooled scores but learns what to
# compare. Two small matrices $W_q, W_k$ of shape $(d, r)$ project the block means, and the
# score of a block pair is the dot product in those $r$ dimensions:
#
# $$\text{score}(i, j) = (\bar q_i W_q) \cdot (\bar k_j W_k).$$
#
# With $r = d$ and $W_q = W_k = I$ it is exactly `select_blocks`' score. Deciding costs
# $O((T_q + T_k)\, d\, r + T_q T_k\, r)$ after pooling: with $r < d$ and many blocks, less than
# the $O(T_q T_k\, d)$ of `select_blocks`. This is the idea of SeerAttention (Gao et al. 2024), which learns such a
# gate on top of a frozen language model.
#
# **Training by distillation.** We do not need labels: the exact attention on training inputs
# says how much mass each key block gets from each query block (`block_attention_mass`, rows
# summing to 1). The predictor turns its scores of a row into a distribution with a softmax
# and is trained to match the target, with the KL divergence
# $\sum_j m_{ij} \log\big(m_{ij} / \operatorname{softmax}_j(\text{score}_{ij})\big)$ as the loss.
# The target and the block means are computed once; each Adam step then costs a few tiny matrix
# products. We use $r = 8$ and the 64 training sequences, 300 steps:

# %%
predictor = BlockPatternPredictor(task.dim, rank=8, seed=0)
untrained = BlockPatternPredictor(task.dim, rank=8, seed=0)  # the same start, kept for comparison
start = time.perf_counter()
losses = train_block_predictor(predictor, train.q, train.k, block, steps=300, lr=0.05, progress=True)
print(f"{sum(p.numel() for p in predictor.parameters())} parameters, trained in {time.perf_counter() - start:.1f} s")

# %%
plot_training_loss(losses, ylabel="KL(true block mass || predicted)", title="Distilling the block attention mass")

# %% [markdown]
# The loss falls from about 2 (the untrained prediction is nearly uniform over the 16 blocks)
# to about 0.25 within 50 steps, then flattens: what remains is detail that block means cannot
# express, such as how the leftover mass of a row spreads over the blocks it does not need,
# which depends on the noise of individual keys.
#
# The same layouts as before, now with the learned predictor and the oracle, which keeps the
# blocks with the most true mass: the best any layout of this size can do.

# %%
plot_layouts(
    {
        "select_blocks": pooled,
        "learned predictor": predictor.layout(test.q, test.k, block, 0.875),
        "oracle (true mass)": keep_top_blocks(mass, 0.875),
    },
    targets=test.targets[0, 0],
    title="Layouts at sparsity 87.5% on a held-out sequence",
)

# %% [markdown]
# ## 4. Attention mass kept, across sparsity ratios
#
# The **sparsity ratio** is the knob: a layout at sparsity $\rho$ keeps, per query block, the
# best $\lceil (1 - \rho)\, T_k \rceil$ key blocks (at least one). `attention_recall(q, k, layout,
# block_size)` measures its quality: the fraction of the exact attention mass inside the kept
# blocks, averaged over all queries. Block-sparse attention renormalises over what it keeps, so
# $1 - \text{recall}$ is the mass it throws away. All numbers are on the 8 held-out sequences.

# %%
sparsities = (0.5, 0.75, 0.875, 0.9375)
methods = {
    "window": lambda s: window_layout(blocks, blocks, s),
    "select_blocks": lambda s: select_blocks(test.q, test.k, block, int(keep_counts(blocks, s))),
    "untrained predictor": lambda s: untrained.layout(test.q, test.k, block, s),
    "learned predictor": lambda s: predictor.layout(test.q, test.k, block, s),
    "oracle": lambda s: keep_top_blocks(mass, s),
}
recall = {
    name: [attention_recall(test.q, test.k, make(s), block) for s in sparsities] for name, make in methods.items()
}
print(f"{'sparsity':<20}" + "".join(f"{s:>9.1%}" for s in sparsities))
print(f"{'blocks kept of 16':<20}" + "".join(f"{int(keep_counts(blocks, s)):>9}" for s in sparsities))
for name, values in recall.items():
    print(f"{name:<20}" + "".join(f"{r:>9.1%}" for r in values))

# %%
plot_recall_vs_sparsity(sparsities, recall, title="Attention mass kept on held-out sequences")

# %% [markdown]
# **What to notice.**
#
# - The **window** keeps roughly its share of the blocks and no more: the needed block is never
#   near, so what it keeps is background.
# - **Pooled scores** do better than a window, since they follow the content, but the
#   distractor costs them most of the needed blocks once few blocks are kept.
# - The **untrained predictor** (random projections) is about as blind as the window: the
#   learning, not the shape of the model, does the work.
# - The **learned predictor** comes close to the **oracle** at moderate sparsity and trails it
#   at the highest. The gap is what block means cannot tell apart: a needle's code, averaged
#   with 31 noisy keys, is a faint signal.
#
# The oracle is a true upper bound: at a given number of blocks per row, the layout with the
# most mass takes the blocks with the most mass.

# %% [markdown]
# ### The error of block-sparse attention on each layout
#
# Recall is a proxy. What a model sees is the output: `block_sparse_attention` on each layout,
# against exact dense attention (SDPA without a mask), at sparsity 87.5% (2 of 16 blocks):

# %%
exact = F.scaled_dot_product_attention(test.q, test.k, test.v)
print(f"{'layout':<20} {'recall':>7} {'relative error of the output':>29}")
for name, make in methods.items():
    out = block_sparse_attention(test.q, test.k, test.v, make(0.875), block)
    error = ((out - exact).norm(dim=-1) / exact.norm(dim=-1)).mean().item()
    print(f"{name:<20} {recall[name][2]:>7.1%} {error:>29.1%}")

# %% [markdown]
# The error follows the recall: the output is a weighted average of values, and a layout that
# drops the block with most of the weight replaces the answer with an average of the rest.

# %% [markdown]
# **Check your understanding.** The learned predictor was trained on sequences of 512
# positions. Can it choose blocks for a sequence of 4,096, or for a new batch of the same task
# drawn from another seed? What would break it?
#
# <details><summary>Answer</summary>
#
# Yes to both: it only sees block means and compares them pair by pair, so it has no notion
# of the sequence length, and a new draw of the task shares the content subspace and the
# distractor direction it learned (Section 6 uses it at 4,096). What breaks it is a change of
# *distribution*: a different distractor direction, codes in another subspace, a different
# block size that dilutes the needles further. Distilled predictors are tied to the model and
# the data they were distilled from; SeerAttention trains its gates for each model, and
# re-trains them when the model changes.
#
# </details>

# %% [markdown]
# ## 5. The cost of deciding against the work saved
#
# Deciding is not free: pooling, projecting and scoring all block pairs, then sorting each row.
# `selection_flops` counts the matrix work of deciding, `block_sparse_work` the attention work
# on the layout it chose (both in FLOPs), here at sparsity 87.5% for one head of dimension 32:

# %%
print(f"{'n':>7} {'dense attention':>16} {'block-sparse':>13} {'decide (learned)':>17} {'decide / saved':>15}")
for n in (512, 4_096, 16_384):
    t = n // block
    work = block_sparse_work(window_layout(t, t, 0.875), block, task.dim)  # 2 of 16 blocks per row
    dense_flops = 4 * n * n * task.dim
    decide = selection_flops(n, n, task.dim, block, rank=8)
    print(f"{n:>7,} {dense_flops:>16.2e} {work:>13.2e} {decide:>17.2e} {decide / (dense_flops - work):>15.2%}")

# %% [markdown]
# Deciding costs well under one percent of the work it saves here. Note its shape, though: the
# scores are $O(T^2 r)$, still **quadratic in $n$**, only with a constant $s^2$ times smaller.
# At a million tokens with blocks of 32 there are $31{,}250^2 \approx 10^9$ block pairs to score
# for every head of every layer, which is why block selection on long inputs uses blocks of
# hundreds of tokens; decoding (one new query against all key blocks) needs only one row.

# %% [markdown]
# **Check your understanding.** Doubling the block size $s$ changes three things: the cost of
# deciding, the granularity of the layout, and the cost of each kept block. Which way does each
# one go?
#
# <details><summary>Answer</summary>
#
# Deciding gets about 4 times cheaper ($T^2$ block pairs with $T = n/s$). Each kept block costs
# 4 times as much ($s^2$ pairs), so at the same number of kept blocks per row the attention
# work doubles; at the same *sparsity* it is unchanged. The layout gets coarser: a block that
# holds one needed key must now be computed with $2s - 1$ others, and a needle's signal in the
# block mean is diluted twice as much, so selection gets harder. Large blocks suit hardware
# (bigger, efficient tiles) and long contexts; small blocks suit precise, sparse dependencies.
#
# </details>

# %% [markdown]
# ## 6. FlexAttention, compiled for real
#
# A layout chosen at run time is exactly what FlexAttention's `BlockMask` describes: for every
# query block, the list of key blocks to compute. `layout_block_mask(layout, block_size)` builds
# one directly from a bool layout (`BlockMask.from_kv_blocks`, every kept block a full block),
# without evaluating a `mask_mod` on all $n^2$ pairs. We use the predictor trained at 512 on a
# longer input of the same task: 4 heads of 4,096 positions, 128 blocks of 32, of which each
# query block keeps 16 (sparsity 87.5%).

# %%
long_task = BlockRetrievalTask(seq_len=4_096)
long = make_block_retrieval_batch(long_task, 1, heads=4, generator=torch.Generator().manual_seed(3))
long_layout = predictor.layout(long.q, long.k, block, 0.875)  # (1, 4, 128, 128)
block_mask = layout_block_mask(long_layout, block)
print(f"{int(long_layout[0, 0].sum(-1)[0])} of {long_layout.shape[-1]} key blocks per query block")
print(f"BlockMask {tuple(block_mask.shape)}: {block_mask.sparsity():.1f}% of the blocks skipped")
heads_recall = attention_recall(long.q[:, :2], long.k[:, :2], long_layout[:, :2], block)
print(f"attention mass kept (first 2 heads, exact attention at n = 4,096): {heads_recall:.0%}")

# %% [markdown]
# Less mass is kept than at 512 positions, mostly not because the predictor got worse: every
# query now spreads its background attention over 8 times as many keys, so the needed block
# holds less of the total, and even the oracle's 16 blocks keep only about 80% of it. The
# needed block itself is among the predictor's kept ones for nearly every query block.
#
# `torch.compile(flex_attention)` turns the BlockMask into a fused kernel that loops over the
# kept blocks only. On a CPU, inductor writes C++ and compiles it, which needs a C++ compiler;
# the CPU kernel takes float32, float16 or bfloat16 (not float64) and has no backward pass.
# `flex_fallback_reason` says, before compiling, whether these inputs can take that path:

# %%
print("inference, float32:", flex_fallback_reason(long.q, long.k, long.v) or "compiled FlexAttention")
print("inference, float64:", flex_fallback_reason(long.q.double(), long.k.double(), long.v.double()))
print("training on CPU:   ", flex_fallback_reason(long.q.clone().requires_grad_(), long.k, long.v))

# %% [markdown]
# The first call compiles the kernel: **about 20 seconds** on a laptop CPU (less when torch
# finds the kernel in its on-disk cache from an earlier run). Later calls with the same shapes
# take milliseconds. Where no compiler exists, the cell says why and takes the fallback, the
# same attention computed by `block_sparse_attention` on the layout.

# %%
reason = flex_fallback_reason(long.q, long.k, long.v)
if reason is None:
    print("compiling flex_attention for this BlockMask (about 20 s on a laptop CPU) ...", flush=True)
    compiled = torch.compile(flex_attention, dynamic=False)
    start = time.perf_counter()
    flex_out = compiled(long.q, long.k, long.v, block_mask=block_mask)
    print(f"compiled and ran in {time.perf_counter() - start:.1f} s")

    def sparse_attention():
        return compiled(long.q, long.k, long.v, block_mask=block_mask)

    path = "compiled FlexAttention"
else:
    print(f"fallback: {reason}; using block_sparse_attention on the same layout")

    def sparse_attention():
        return block_sparse_attention(long.q, long.k, long.v, long_layout, block)

    flex_out = sparse_attention()
    path = "block_sparse_attention (fallback)"

# %% [markdown]
# Is it the same attention? The reference is SDPA with the layout spread to a dense
# $(4096 \times 4096)$ bool mask per head, which computes every score and masks most of them:

# %%
dense_mask = long_layout.repeat_interleave(block, dim=-2).repeat_interleave(block, dim=-1)  # (1, 4, n, n)
masked = F.scaled_dot_product_attention(long.q, long.k, long.v, attn_mask=dense_mask)
print(f"max |{path} - masked SDPA| = {(flex_out - masked).abs().max().item():.1e}")

# %% [markdown]
# And the time, against dense SDPA without any mask (PyTorch's fused CPU kernel, all $n^2$
# pairs), each the best of 3 calls after a warm-up:

# %%
sparse_seconds = best_seconds(sparse_attention)
dense_seconds = best_seconds(F.scaled_dot_product_attention, long.q, long.k, long.v)
print(f"{'dense SDPA, all pairs':<42} {dense_seconds * 1e3:7.1f} ms")
print(
    f"{path + ', 12.5% of the pairs':<42} {sparse_seconds * 1e3:7.1f} ms ({dense_seconds / sparse_seconds:.1f}x faster)"
)

# %% [markdown]
# The compiled kernel does an eighth of the work and is several times faster than dense SDPA,
# though not the full 8 times: each kept block is a small $32 \times 32$ tile, and the kernel
# pays for loading it and for the online softmax around it. The fallback is correct everywhere
# but slower: gathering and scattering blocks in Python-level tensor code cannot compete with a
# fused kernel. On a GPU, the same code (`torch.compile(flex_attention)`) generates a Triton
# kernel that also trains.

# %% [markdown]
# **Check your understanding.** Why can this cell not train the predictor *through* the
# compiled FlexAttention kernel, even on a GPU where the kernel has a backward pass?
#
# <details><summary>Answer</summary>
#
# The layout is discrete: keeping the top blocks is a sort and a threshold, with zero gradient
# almost everywhere, and the kernel takes the BlockMask as fixed structure, not as a
# differentiable input. That is why the predictor is trained by distillation, on a continuous
# target (the true block mass) through a softmax of its scores, separately from the attention
# it will prune. Methods that learn patterns end to end use a relaxation instead: soft gates,
# straight-through estimators, or clustering (Routing Transformer) and hashing (Reformer),
# which choose by similarity without a gradient through the choice.
#
# </details>

# %% [markdown]
# ## Summary
#
# - Content-dependent links sit where the input puts them: no fixed pattern holds them, and
#   top-k finds them only by scoring all $n^2$ pairs.
# - Deciding per block is cheap: pooled scores (`select_blocks`, MoBA / Quest) cost
#   $O(nd + T^2 d)$ for $T = n/s$ blocks, $s^2$ times less than attention, but averages can be
#   misled by directions that shift a whole block's scores.
# - A **learned block predictor**, low-rank projections of the block means, distilled from the
#   exact block attention mass with a KL loss in a second, recovers most of the oracle's
#   recall; the **sparsity ratio** sets how many blocks each query block keeps.
# - Recall of the attention mass predicts the output error of `block_sparse_attention`, and the
#   oracle (top blocks by true mass) bounds every layout of the same size.
# - A chosen layout is a FlexAttention `BlockMask`; compiled on a CPU (C++ compiler, float32,
#   inference) it runs the kept blocks only, several times faster than dense SDPA here;
#   `flex_fallback_reason` says when the exact, slower `block_sparse_attention` path is taken.
#
# ## References
#
# - Enzhe Lu, Zhejun Jiang, Jingyuan Liu, et al. *MoBA: Mixture of Block Attention for
#   Long-Context LLMs.* 2025. arXiv:2502.13189.
# - Jiaming Tang, Yilong Zhao, Kan Zhu, Guangxuan Xiao, Baris Kasikci, Song Han. *Quest:
#   Query-Aware Sparsity for Efficient Long-Context LLM Inference.* ICML 2024. arXiv:2406.10774.
# - Yizhao Gao, Zhichen Zeng, Dayou Du, Shijie Cao, et al. *SeerAttention: Learning
#   Intrinsic Sparse Attention in Your LLMs.* 2024. arXiv:2410.13276.
# - Aurko Roy, Mohammad Saffar, Ashish Vaswani, David Grangier. *Efficient Content-Based
#   Sparse Attention with Routing Transformers.* TACL 2021. arXiv:2003.05997.
# - Nikita Kitaev, Łukasz Kaiser, Anselm Levskaya. *Reformer: The Efficient Transformer.*
#   ICLR 2020. arXiv:2001.04451.
# - Juechu Dong, Boyuan Feng, Driss Guessous, Yanbo Liang, Horace He. *Flex Attention: A
#   Programming Model for Generating Optimized Attention Kernels.* 2024. arXiv:2412.05496.
#
# **Further reading.** Geoffrey Hinton, Oriol Vinyals, Jeff Dean, *Distilling the Knowledge in
# a Neural Network* (2015, arXiv:1503.02531), is the origin of training a small model on a
# larger one's soft outputs, the recipe of Section 3. PyTorch's FlexAttention documentation
# (`torch.nn.attention.flex_attention`) describes `BlockMask` and `create_block_mask`.
