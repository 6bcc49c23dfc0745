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
# # Week 2 · Lecture 1 · Sparse attention patterns
#
# Week 1 left us with two ways past the quadratic wall, and neither is enough. Tiling keeps
# every pair of tokens but still does all $n^2$ of the work. A sliding window does $O(n \cdot w)$
# work but is blind to everything more than $w$ positions back. This week is about the ground
# in between: attend to $O(n)$ or $O(n \sqrt n)$ pairs, and choose *which* pairs so that far
# tokens are not lost.
#
# Three papers shaped that ground, and their patterns are the ones in this lecture:
#
# | model | pattern | pairs |
# | --- | --- | --- |
# | Sparse Transformer (Child et al., 2019) | a local window and every $s$-th key further back | $O(n\sqrt n)$ with $s = \sqrt n$ |
# | Longformer (Beltagy et al., 2020) | a local window and a few *global* tokens | $O(n (w + g))$ |
# | BigBird (Zaheer et al., 2020) | Longformer's window and global tokens and a few *random* blocks | $O(n (w + g + r b))$ |
#
# In this lecture you will
#
# 1. write each pattern as a FlexAttention `mask_mod` and say exactly which keys it includes,
#    off-by-ones and all;
# 2. count its pairs: its density and its FLOPs against dense attention;
# 3. build the big patterns out of small ones with `and_masks` and `or_masks`;
# 4. say what each pattern cannot see in one layer (Lecture 2 stacks layers and counts the
#    cost of every method; Lecture 3 trains models with these patterns);
# 5. meet the masks practitioners reach for first, prefix-LM and packed documents, and the
#    other half of FlexAttention's API: `score_mod`s that change scores instead of removing
#    them (ALiBi and soft-capping).

# %%
import lcteach  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads OpenMP, see Week 1)

# isort: split
import torch
from torch.nn.attention.flex_attention import and_masks, or_masks

from lcteach import (
    alibi_slopes,
    banded_attention,
    causal_mask,
    dense_attention,
    document_ids,
    document_offsets,
    evaluate_rows,
    generate_alibi,
    generate_bigbird,
    generate_block_sparse,
    generate_document_mask,
    generate_global,
    generate_prefix_lm,
    generate_random_blocks,
    generate_random_tokens,
    generate_sliding_window,
    generate_softcap,
    generate_strided,
    generate_symmetric_window,
    materialize_mask,
    materialize_scores,
    pattern_flops,
    plot_composition,
    plot_pattern,
    tiled_attention,
)
from lcteach.masks import local_block_layout, random_document_lengths
from lcteach.viz import plot_score_bias, plot_score_curve
from lcteach.widgets import composition_explorer, mask_explorer

_ = torch.manual_seed(0)

# %% [markdown]
# ## 1. Recap: the two windows
#
# Every pattern in this lecture is a `mask_mod(b, h, q_idx, kv_idx) -> bool`, True where
# query `q_idx` may attend to key `kv_idx`, positions counted from 0 (Week 1, Lecture 2).
# The causal **sliding window** of a decoder keeps the query and the $w - 1$ keys before it:
# $i - w < j \le i$. Encoders such as Longformer and BigBird read in both directions and use a
# **symmetric window** instead: $|i - j| \le \lfloor w/2 \rfloor$.
#
# The off-by-one, written down once: in `lcteach` **a window counts the keys of a row, the
# query included**, for both kinds. So `generate_symmetric_window(3)` is $i-1, i, i+1$, and a
# symmetric window must be odd (the query plus the same number of keys on each side). The
# papers count differently: Longformer's "window $w$" has $w/2$ keys on each side *besides*
# the query, which is `generate_symmetric_window(w + 1)` here.

# %%
n = 10
print("causal sliding window, window=3: the query and the 2 keys before it")
print(materialize_mask(generate_sliding_window(3), n)[0, 0].int())
print("symmetric window, window=3: the query and 1 key on each side")
print(materialize_mask(generate_symmetric_window(3), n)[0, 0].int())

# %% [markdown]
# An even symmetric window has no centre, so the library refuses it and says why:

# %%
try:
    generate_symmetric_window(4)
except ValueError as error:
    print("ValueError:", error)

# %% [markdown]
# Rows near the ends have fewer keys: query 0 has no left neighbour. What a window saves grows
# with $n$, because each row keeps at most $w$ keys however long the sequence is.
# `pattern_flops` counts the allowed pairs of any `mask_mod` (a block of rows at a time, never
# an $n \times n$ buffer) and prices them as Week 1 did: $4d$ FLOPs per pair, $2d$ for
# $q \cdot k$ and $2d$ for adding the weighted value, here with head dimension $d = 64$.

# %%
window = generate_symmetric_window(255)
print(f"{'n':>6} {'pairs':>11} {'density':>8} {'FLOPs':>9} {'dense FLOPs':>12} {'fewer':>7}")
for n in (512, 1_024, 2_048, 4_096):
    cost = pattern_flops(window, n, progress=False)
    print(
        f"{n:>6,} {cost.allowed_pairs:>11,} {cost.density:>8.1%} {cost.flops:>9.3g} "
        f"{cost.dense_flops:>12.3g} {cost.speedup:>6.1f}x"
    )

# %% [markdown]
# Density halves each time $n$ doubles: the pairs grow like $n \cdot w$, the dense matrix
# like $n^2$. The price is the same as in Week 1: in one layer, a token 200 positions away
# is invisible. Every other pattern in this lecture is a different answer to "which few far
# keys should a query see?"

# %% [markdown]
# ## 2. Strided (dilated) attention
#
# A **strided** pattern keeps every $s$-th key: query $i$ attends key $j$ when
# $(i - j) \bmod s = 0$. It looks far with few keys: about $n / s$ per row, spread over the
# whole sequence.
#
# Off-by-ones: the query itself is included ($i - i = 0$), `stride=1` is full attention, and
# `generate_strided` is **not causal**: it reaches $i - s$ and $i + s$ alike. Intersect it with
# the causal mask for a decoder.

# %%
n = 12
print("generate_strided(4): keys i - 8, i - 4, i, i + 4, i + 8, ...")
print(materialize_mask(generate_strided(4), n)[0, 0].int())

# %% [markdown]
# On its own, a strided pattern is odd: position 5 can never see position 6, in any number of
# layers, because $5 - 6$ is not a multiple of 4. The Sparse Transformer therefore gives each
# query **both** a window of the last $s$ keys and every $s$-th key before it:
#
# $$\texttt{and\_masks}\big(\text{causal},\ \texttt{or\_masks}(\text{window}(s),\ \text{strided}(s))\big).$$
#
# The window covers the near past exactly; the strided keys are "summary" positions that the
# near keys of *earlier* queries have already read. Lecture 2 shows that two layers of this
# connect every pair. `lcteach.masks.generate_sparse_transformer(s)` builds this same pattern,
# and Lecture 2 uses it.

# %%
stride = 8
sparse_transformer = and_masks(causal_mask, or_masks(generate_sliding_window(stride), generate_strided(stride)))
sparse_transformer.__name__ = f"sparse_transformer_{stride}"
plot_pattern(sparse_transformer, 64)

# %% [markdown]
# With $s = \sqrt n$ each row keeps about $s + i/s \le 2\sqrt n$ keys, so the whole pattern has
# $O(n \sqrt n)$ pairs. Divide the counted pairs by $n\sqrt n$: the ratio stays put while the
# density keeps falling.

# %%
print(f"{'n':>6} {'stride':>6} {'pairs':>11} {'pairs / (n sqrt n)':>19} {'density':>8}")
for n in (256, 1_024, 4_096):
    s = int(n**0.5)
    pattern = and_masks(causal_mask, or_masks(generate_sliding_window(s), generate_strided(s)))
    cost = pattern_flops(pattern, n, progress=False)
    print(f"{n:>6,} {s:>6} {cost.allowed_pairs:>11,} {cost.allowed_pairs / n**1.5:>19.3f} {cost.density:>8.1%}")

# %% [markdown]
# **Check your understanding.** With stride 8, which keys does query 20 of the Sparse
# Transformer pattern see? Which is the nearest key it does *not* see?
#
# <details><summary>Answer</summary>
#
# The window of 8 gives keys 13 to 20 (the query and the 7 before it); the stride gives the
# earlier keys with $20 - j$ a multiple of 8, that is 12 and 4. So query 20 sees
# $\{4, 12, 13, \dots, 20\}$, 10 keys. The nearest key it does not see is 11, nine positions
# back: just outside the window and one off the grid.
#
# </details>

# %% [markdown]
# ## 3. Random attention
#
# Random keys are the cheapest way to make far tokens reachable: add a few random keys per
# query to a window, and information crosses the whole sequence in a handful of layers
# (Lecture 2), the way a few random acquaintances make a "small world".
#
# A random pattern must still be a pure function: the same `(q_idx, kv_idx)` must always give
# the same answer, and two runs must agree. So `lcteach` draws the pattern **once**, when the
# `mask_mod` is made, from an explicit `seed`, into a lookup table the `mask_mod` indexes.
# `generate_random_tokens(n, count=c, seed=...)` gives every query exactly $c$ random keys:

# %%
random_tokens = generate_random_tokens(64, count=4, seed=0)
plot_pattern(random_tokens, 64)

# %% [markdown]
# Same seed, same mask; another seed, another mask. And the off-by-one of randomness: nothing
# guarantees that a query sees **itself**.

# %%
mask = materialize_mask(random_tokens, 64)[0, 0]
print(
    "same seed, same mask:     ",
    torch.equal(mask, materialize_mask(generate_random_tokens(64, count=4, seed=0), 64)[0, 0]),
)
print(
    "seed 1, same mask:        ",
    torch.equal(mask, materialize_mask(generate_random_tokens(64, count=4, seed=1), 64)[0, 0]),
)
print("queries that see themselves:", int(mask.diagonal().sum()), "of 64")

# %% [markdown]
# Token-level randomness has two costs in practice. Its table is an $n \times n$ matrix, the
# very thing we set out to avoid. And a GPU computes attention in tiles (Week 1, Lecture 3): a
# tile with one random pair in it costs as much as a full one. BigBird therefore draws random
# **blocks**: each block of $b$ queries attends $r$ random blocks of $b$ keys. The table
# shrinks to $(n/b)^2$ entries and every computed tile is full.
# `generate_random_blocks(n, b, r, seed=...)` needs $b$ to divide $n$; again the query's own
# block is not guaranteed.

# %%
random_blocks = generate_random_blocks(64, 8, 2, seed=0)
plot_pattern(random_blocks, 64)

# %% [markdown]
# ## 4. Global tokens (Longformer)
#
# A **global** token attends to every key, and every query attends to it. With $g$ global
# tokens out of $n$ that is $2gn - g^2$ pairs: two full stripes, a row and a column per
# global token. Longformer makes the task's special tokens global (the `[CLS]` token of a
# classifier, the question of a question-answering model), so every position can read them
# and they can read everything.
#
# `generate_global(g)` makes the first $g$ positions, $0 \dots g-1$, global;
# `generate_global([5, 40])` picks positions. Longformer's pattern is a symmetric window
# **or** the global tokens:

# %%
longformer = or_masks(generate_symmetric_window(7), generate_global(2))
longformer.__name__ = "longformer_w7_g2"
n = 64
counted = pattern_flops(generate_global(2), n, progress=False).allowed_pairs
print(f"global tokens alone at n = {n}: {counted} pairs; 2gn - g^2 = {2 * 2 * n - 2**2}")
plot_pattern(longformer, n)

# %% [markdown]
# ## 5. Block-sparse patterns
#
# The most general pattern a tiled kernel can run at full speed is a **block layout**: a small
# bool matrix that says which (query block, key block) tiles are computed. Query $i$ attends
# key $j$ when `layout[i // b, j // b]` is True. Here is the layout that the explorer below
# uses: each block sees itself, its two neighbour blocks and block 0.

# %%
layout = local_block_layout(8)
print(layout.int())

# %%
block_sparse = generate_block_sparse(layout, 8)
counted = pattern_flops(block_sparse, 64, progress=False).allowed_pairs
print(f"pairs: {counted} = block_size^2 x active blocks = 8^2 x {int(layout.sum())} = {64 * int(layout.sum())}")
plot_pattern(block_sparse, 64)

# %% [markdown]
# The layout covers `layout.shape[0] * b` queries and `layout.shape[1] * b` keys; a position past
# its end attends nothing and is attended by nothing (False, never an index error). Windows,
# global tokens and random blocks can all be rounded *up* to whole blocks; that is how
# BigBird and FlexAttention run them (Lecture 2).

# %% [markdown]
# ## 6. BigBird: window, global and random together
#
# BigBird takes the union of three patterns:
#
# - a **symmetric window** for the local context;
# - $g$ **global** tokens (the first $g$ positions) that gather and spread information;
# - $r$ **random blocks** of $b$ keys per query block, for short paths across the sequence.
#
# Each row keeps about $w + g + r\,b$ keys, so the pattern has $O(n)$ pairs.
#
# The BigBird paper also proves that sparse attention can keep the expressive power of full
# attention, and the proofs rest on the **global tokens**. A global token is attended by every
# token and attends to every token: in graph terms the pattern contains a *star*, so any two
# tokens are two hops apart, through the global token. Zaheer et al. show that any pattern
# containing such a star is, with enough stacked layers, a universal approximator of
# sequence-to-sequence functions, and that with global tokens it is Turing complete. The
# window and the random blocks are not what the theorems need; they supply the local context
# and the short paths that make the model work well in practice. Note what the theorems
# promise: that *some* weights compute a function, given enough layers, not that training
# finds them (Lecture 3 puts that to the test).

# %%
bigbird = generate_bigbird(7, 2, 2, 8, 64, seed=0)
plot_pattern(bigbird, 64)

# %% [markdown]
# `generate_bigbird` is literally an `or_masks` of the three generators, with the random
# blocks drawn from the same seed:

# %%
parts = or_masks(generate_symmetric_window(7), generate_global(2), generate_random_blocks(64, 8, 2, seed=0))
print(
    "generate_bigbird == or_masks(window, global, random blocks):",
    torch.equal(materialize_mask(bigbird, 64), materialize_mask(parts, 64)),
)

# %% [markdown]
# ## 7. Every pattern, priced
#
# Now all the patterns at a realistic length, $n = 4096$, with the parameters a model would
# use: windows of 255 keys, strides of $\sqrt n = 64$, blocks of 64. The last column is the
# factor of FLOPs saved against dense attention ($n^2$ pairs); a kernel that skips the masked
# pairs collects it (Lecture 2).

# %%
n = 4_096
patterns = {
    "causal (decoder, for scale)": causal_mask,
    "sliding window 255": generate_sliding_window(255),
    "symmetric window 255": generate_symmetric_window(255),
    "Sparse Transformer, s = 64": and_masks(causal_mask, or_masks(generate_sliding_window(64), generate_strided(64))),
    "random blocks 3 x 64": generate_random_blocks(n, 64, 3, seed=0),
    "Longformer w 255, g 2": or_masks(generate_symmetric_window(255), generate_global(2)),
    "BigBird w 255, g 2, r 3 x 64": generate_bigbird(255, 2, 3, 64, n, seed=0),
}
print(f"{'pattern':<30} {'keys per query':>14} {'density':>8} {'FLOPs':>9} {'vs dense':>9}")
for name, pattern in patterns.items():
    cost = pattern_flops(pattern, n, progress=False)
    print(f"{name:<30} {cost.allowed_pairs / n:>14.0f} {cost.density:>8.2%} {cost.flops:>9.3g} {cost.speedup:>8.1f}x")

# %% [markdown]
# **What to notice.** Causal attention saves only a factor of 2: it is still quadratic. The
# sparse patterns keep between 95 and 440 keys per query, 2 to 11% of the pairs at this
# length, and the saving grows with $n$: at $n = 32{,}768$ the same BigBird keeps 1.4% of the
# pairs. BigBird's random blocks add $r\,b = 192$ keys per query to Longformer's 255 (a few
# fall inside the window), so it costs under twice as much as Longformer.
#
# **Check your understanding.** Here the Sparse Transformer ($s = \sqrt n$) keeps fewer pairs
# than a sliding window of 255. Beyond which $n$ does it keep more? Estimate with the ratio
# $\text{pairs} / (n \sqrt n) \approx 1.5$ measured in Section 2, against $255\,n$.
#
# <details><summary>Answer</summary>
#
# It keeps more once $1.5\, n \sqrt n > 255\, n$, that is $\sqrt n > 170$, or
# $n > 170^2 = 28{,}900$. The exact counts (`lcteach.strided_cost` and
# `lcteach.sliding_window_cost`) cross at the same place: from $n = 28{,}900$ on, the Sparse
# Transformer keeps more pairs. One pattern grows like $n^{1.5}$, the other like $n$, so the
# fixed window always wins eventually; the Sparse Transformer pays that price for reaching
# every key in two layers.
#
# </details>

# %% [markdown]
# ## 8. Composing patterns
#
# Every pattern above was built from smaller ones. `or_masks(a, b)` allows a pair when **either**
# pattern does: a union, which adds keys. `and_masks(a, b)` allows a pair only when **both**
# do: an intersection, which removes keys. A decoder version of any encoder pattern is
# `and_masks(causal_mask, pattern)`. `plot_composition` draws A, B and the result side by side:

# %%
plot_composition(generate_symmetric_window(7), generate_global(2), 48, "or")

# %%
plot_composition(causal_mask, generate_bigbird(7, 2, 2, 8, 48, seed=0), 48, "and")

# %% [markdown]
# The causal BigBird keeps just over half of the encoder's pairs: the global *rows* lose
# everything after the diagonal (a global token cannot look at the future either), and so do
# the random blocks above the diagonal. Try other combinations in the composition explorer.
#
# **Check your understanding.** When is `or_masks(a, b)` exactly as dense as the denser of the
# two? And which `and` of two explorer patterns keeps only the diagonal, each query attending
# itself alone?
#
# <details><summary>Answer</summary>
#
# An `or` adds nothing when every pair of the sparser pattern is already in the denser one:
# a causal sliding window `or` prefix-LM is the prefix-LM (every window pair has $j \le i$),
# and, since both read the same `window` slider, the symmetric window `or` BigBird is
# BigBird. An `and` keeps the diagonal alone when one pattern is the sliding window with
# `window` 1 (the query only) and the other contains every query itself, as every explorer
# pattern does except two: global tokens and random blocks. With those the `and` keeps only
# the diagonal entries they happen to hold (the $g$ global positions, the queries whose own
# block was drawn).
#
# </details>

# %%
composition_explorer()

# %% [markdown]
# ## 9. Structure, not sparsity: prefix-LM and packed documents
#
# Two masks that practitioners reach for before any sparse pattern do not save much compute
# at all. They encode the *structure* of the input: which tokens belong together, and which may
# be read in both directions.
#
# A **prefix-LM** (UniLM, T5's prefix LM, PaliGemma) reads a prefix, such as a prompt, a source
# sentence or an image, bidirectionally, and generates the rest causally. Query $i$ attends key
# $j$ when $j < P$ or $j \le i$, with $P$ the prefix length:

# %%
print("generate_prefix_lm(3) on 8 positions: the prefix is positions 0, 1, 2")
print(materialize_mask(generate_prefix_lm(3), 8)[0, 0].int())

# %% [markdown]
# The off-by-one: the prefix is positions $0 \dots P-1$. So `generate_prefix_lm(0)` and
# `generate_prefix_lm(1)` are both plain causal attention (a one-token prefix sees only itself),
# and $P \ge n$ is full attention. The prefix adds $P(P-1)/2$ pairs to causal attention: the
# keys *after* their query inside the prefix, the upper triangle of the top-left square.

# %%
n, prefix = 64, 16
extra = pattern_flops(generate_prefix_lm(prefix), n, progress=False).allowed_pairs
extra -= pattern_flops(causal_mask, n, progress=False).allowed_pairs
print(f"pairs beyond causal at n = {n}, P = {prefix}: {extra} = P(P-1)/2 = {prefix * (prefix - 1) // 2}")
plot_pattern(generate_prefix_lm(prefix), n)

# %% [markdown]
# **Packed documents.** Pretraining rarely pads. It packs documents of different lengths back
# to back into rows of fixed length, so that every position is a real token. Attention must then
# stay inside each document: the first token of an article must not read the end of an
# unrelated one. A packing is given by its document lengths, or equivalently by the **offsets**
# where the documents start, or by a **document id** per position:

# %%
lengths = [5, 3, 8]
print("lengths:     ", lengths)
print("offsets:     ", document_offsets(lengths).tolist(), " (document d covers offsets[d] .. offsets[d+1] - 1)")
print("document ids:", document_ids(lengths).tolist())

# %% [markdown]
# `generate_document_mask(lengths, causal_mask)` allows a pair when both positions lie in the
# same document and the causal mask allows them there: a staircase of causal triangles.

# %%
plot_pattern(generate_document_mask(lengths, causal_mask), sum(lengths))

# %% [markdown]
# The second argument runs *inside* each document, on positions counted from the document's
# start ($i - \text{offsets}[d]$). For a causal mask or a window that changes nothing, since they
# depend on $i - j$ only, so `and_masks(generate_document_mask(lengths), causal_mask)` is the same
# staircase. A pattern anchored at position 0 is different: a prefix-LM *per document* gives
# every document its own prefix, which `and_masks` with one global prefix does not.

# %%
per_document = materialize_mask(generate_document_mask(lengths, generate_prefix_lm(2)), 16)[0, 0]
one_prefix = materialize_mask(and_masks(generate_document_mask(lengths), generate_prefix_lm(2)), 16)[0, 0]
print("each document starts with a 2-token prefix:")
print(per_document.int())
print("pairs that the per-document version adds:", int((per_document & ~one_prefix).sum()))

# %% [markdown]
# Two properties keep the mask safe inside kernels. A position outside the packing (past its
# end, or negative after shifting positions by an offset) belongs to no document, so it is
# never attended: False, never an index error. And the cost falls with the documents: $\sum_d
# l_d(l_d + 1)/2$ pairs instead of $n(n+1)/2$, so a row is as expensive as its longest
# document, not as its length. Eight documents of random lengths in a row of 4096:

# %%
n = 4_096
packed = random_document_lengths(n, 8, seed=0)
cost = pattern_flops(generate_document_mask(packed, causal_mask), n, progress=False)
causal_cost = pattern_flops(causal_mask, n, progress=False)
print("document lengths:", packed)
print(f"causal attention keeps {causal_cost.density:.1%} of the pairs, the packed causal documents {cost.density:.1%}")
print(f"that is {cost.speedup:.1f}x fewer FLOPs than dense attention")

# %% [markdown]
# ## 10. The mask explorer
#
# All the patterns of this lecture in one place. Pick a pattern, move its sliders, and watch
# the density and the FLOPs saved against dense attention; sliders a pattern does not use
# are greyed out. Things to try:
#
# - BigBird at `n` = 256, then 1024: the density falls, the picture keeps its shape;
# - the symmetric window with an even `window`: the explorer says why it cannot draw it;
# - random blocks: the `block size` slider offers only the divisors of `n` (blocks must tile
#   the sequence), and `random blocks` only up to the blocks a row has; move `n` to 48 and see
#   what changes, and the note that says so;
# - strided with `stride` 1 (full attention) and with `stride` equal to `n`;
# - prefix-LM with `prefix` 0, 1 and `n` (two of them are the same pattern);
# - packed documents with 1 document (causal attention) and with 16.

# %%
mask_explorer()

# %% [markdown]
# ## 11. What each pattern cannot see
#
# Sparsity is a bet on where the useful keys are. In **one** layer a query sees only its
# allowed keys; everything else reaches it, if at all, through other tokens in earlier layers
# (Lecture 2). Let us ask the same question of every pattern: at $n = 256$, which keys are
# invisible to query 200? `evaluate_rows` evaluates a `mask_mod` for a few query rows only.

# %%
n, query = 256, 200
patterns = {
    "sliding window 16": generate_sliding_window(16),
    "symmetric window 15": generate_symmetric_window(15),
    "Sparse Transformer, s = 16": and_masks(causal_mask, or_masks(generate_sliding_window(16), generate_strided(16))),
    "random blocks 2 x 16": generate_random_blocks(n, 16, 2, seed=0),
    "Longformer w 15, g 2": or_masks(generate_symmetric_window(15), generate_global(2)),
    "BigBird w 15, g 2, r 2 x 16": generate_bigbird(15, 2, 2, 16, n, seed=0),
}
print(f"query {query} of n = {n}, one layer")
print(f"{'pattern':<28} {'sees':>5} {'blind to':>9}   {'nearest unseen key back':>24}")
for name, pattern in patterns.items():
    row = evaluate_rows(pattern, torch.tensor([query]), n)[0]
    unseen_back = [query - j for j in range(query - 1, -1, -1) if not row[j]]
    print(f"{name:<28} {int(row.sum()):>5} {int((~row).sum()):>9}   {unseen_back[0]:>20} back")

# %% [markdown]
# **What each one misses.**
#
# - **Windows** see a contiguous band and nothing else: everything further than $w-1$ (causal)
#   or $\lfloor w/2 \rfloor$ (symmetric) positions away is invisible.
# - **Strided** patterns see far, but only on a grid: query 200 sees positions $200 - 16k$, so
#   key 183 (17 back) is invisible while key 8 (192 back) is visible. A fact that sits one
#   position off the grid must be relayed by a window in an earlier layer.
# - **Random blocks** see a few blocks, *which* ones is luck, and it is the same luck for
#   every input: the pattern is fixed when the model is built, not chosen by content. Here
#   query 200 does not even see its neighbour 199: its own block was not drawn.
# - **Global tokens** see everything, but a normal token sees only the $g$ global tokens and
#   its window. Everything it learns from afar must squeeze through $g$ vectors: a
#   bottleneck.
# - **BigBird** sees the union: window, global tokens and its random blocks, 47 of 256 keys
#   here, and a far smaller share at realistic lengths. Even so, the key 8 positions back is
#   invisible to query 200: BigBird's reach is wide but full of holes.
#
# A fixed pattern cannot know where the answer is. That is the topic of the last part of
# Lecture 2 (top-k and content-adaptive attention) and the test of Lecture 3: a model must
# fetch one fact from $d$ positions back, and we watch which patterns manage it at which
# distances.
#
# **Check your understanding.** Query 200 of the Sparse Transformer pattern ($s = 16$) cannot
# see key 183. Name a key that query 200 *can* see and that can itself see key 183. How many
# layers does the fact at 183 need to reach query 200?
#
# <details><summary>Answer</summary>
#
# Key 184, on query 200's grid ($200 - 184 = 16$): its own window of 16 is $169 \dots 184$,
# which holds 183. Any of 185 to 198, in query 200's window, works too, since each one's window
# reaches back to 183. So the fact needs **two** layers: in layer 1 it moves from 183 to 184
# (or to 185 to 198), in layer 2 on to 200.
#
# </details>

# %% [markdown]
# ## 12. Changing scores instead of removing them: `score_mod`
#
# A mask answers yes or no. Some of the most used attention variants instead *change* the score
# of a pair. FlexAttention's second hook is the `score_mod`:
#
# $$\texttt{score\_mod}(s, b, h, i, j) \to s', \qquad s = q_i \cdot k_j / \sqrt d,$$
#
# applied to the scaled score of every pair **before** the mask, so a masked pair stays masked
# whatever the score_mod returns. Like a `mask_mod` it is built from elementwise tensor ops,
# and every `lcteach` kernel (`dense_attention`, `tiled_attention`, `banded_attention`,
# `block_sparse_attention`, `flex_sparse_attention`) takes one as `score_mod=`.
#
# **ALiBi** (Press et al., 2021) replaces position embeddings with a penalty that grows linearly
# with distance: head $h$ adds $-m_h (i - j)$, with slopes $m_h = 2^{-8(h+1)/H}$ for heads
# $h = 0 \dots H-1$ (counted from 0, as FlexAttention's `h`). With 8 heads:

# %%
print("ALiBi slopes, 8 heads:", alibi_slopes(8).tolist())

# %% [markdown]
# What ALiBi adds to each score, for the steepest head and the flattest one; the future is
# masked (grey), because ALiBi is meant for causal attention (for $j > i$ the bias would be a
# *bonus*):

# %%
plot_score_bias(generate_alibi(8), 16, heads=(0, 7), mask_mod=causal_mask)

# %% [markdown]
# A score_mod that only adds a bias is an additive mask. So ALiBi through `dense_attention`
# must equal PyTorch's `scaled_dot_product_attention` with a float `attn_mask`: the bias where
# the mask allows, $-\infty$ where it does not.

# %%
generator = torch.Generator().manual_seed(0)
q, k, v = (torch.randn(1, 8, 32, 16, generator=generator, dtype=torch.float64) for _ in range(3))
alibi = generate_alibi(8)
bias = materialize_scores(alibi, 32, heads=8).masked_fill(~materialize_mask(causal_mask, 32), float("-inf"))
ours, _ = dense_attention(q, k, v, causal=True, score_mod=alibi)
sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
print(f"dense_attention with ALiBi vs SDPA with its bias: max difference {(ours - sdpa).abs().max():.1e}")

# %% [markdown]
# What does the bias do on its own? Give every pair the same raw score (zero queries): the
# weights are then ALiBi's prior alone, $\propto e^{-m_h d}$ for a key $d$ positions back. How
# far back query 31 looks on average shows eight heads with eight horizons: from a neighbour or
# two (head 0, whose weights halve every $\ln 2 / m_0 \approx 1.4$ positions) to almost uniform
# over the 32 keys (head 7, half-life 177 positions; uniform weights would give 15.5):

# %%
_, weights = dense_attention(torch.zeros_like(q), k, v, causal=True, score_mod=alibi)
distance = torch.arange(31, -1, -1, dtype=torch.float64)  # how far back each key is from query 31
print("mean distance looked back by query 31, per head:", [round(float(d), 1) for d in weights[0, :, 31] @ distance])

# %% [markdown]
# **Soft-capping** (Gemma 2, Grok-1) squashes every score into $(-c, c)$ with
# $s \mapsto c \tanh(s / c)$. Nearly the identity for $|s| \ll c$ (slope 1 at 0), it bends
# only the outliers, so one key can beat another by at most $2c$ in the softmax. Gemma 2 caps its
# attention logits at $c = 50$:

# %%
plot_score_curve(generate_softcap(50.0), title="generate_softcap(50): scores bounded to (-50, 50)")

# %% [markdown]
# The effect on one query that finds one key with an outsized score: without the cap it puts
# all its weight there; with a cap (here a small one, $c = 3$, to make it visible) the other keys
# keep a share.

# %%
q1 = torch.zeros(1, 1, 1, 16, dtype=torch.float64)
q1[..., 0] = 4.0
keys = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
keys[..., 0, 0] = 20.0  # key 0 scores 4 * 20 / sqrt(16) = 20, every other key 0
for label, score_mod in (("no score_mod", None), ("softcap 3", generate_softcap(3.0))):
    _, w = dense_attention(q1, keys, keys, score_mod=score_mod)
    print(f"{label:>12}: weight on key 0 = {float(w[0, 0, 0, 0]):.3f}, on each other key = {float(w[0, 0, 0, 1]):.3f}")

# %% [markdown]
# Masks and score_mods combine freely. Gemma 2's local layers are a sliding window **with**
# soft-capping; `banded_attention` computes the window without an $n \times n$ buffer, and
# `tiled_attention` the same from the `mask_mod`, with the score_mod applied tile by tile:

# %%
q, k, v = (torch.randn(1, 2, 256, 16, generator=generator, dtype=torch.float64) for _ in range(3))
softcap = generate_softcap(5.0)
banded = banded_attention(q * 4, k, v, 32, score_mod=softcap)
tiled, _ = tiled_attention(q * 4, k, v, mask_mod=generate_sliding_window(32), score_mod=softcap)
dense, _ = dense_attention(q * 4, k, v, materialize_mask(generate_sliding_window(32), 256), score_mod=softcap)
print(f"banded vs dense: {(banded - dense).abs().max():.1e};  tiled vs dense: {(tiled - dense).abs().max():.1e}")

# %% [markdown]
# **Check your understanding.** ALiBi needs no position embeddings, yet it knows which key is
# nearer. Why can an ALiBi model read sequences longer than it was trained on, when learned
# absolute position embeddings cannot? And why does soft-capping at $c = 50$ change almost
# nothing for scores of ordinary size?
#
# <details><summary>Answer</summary>
#
# ALiBi's bias $-m_h (i - j)$ depends only on the distance and is given by a formula, not
# learned per position: at a distance never seen in training it is the same straight line,
# just further down, so nothing in the model is undefined. Learned absolute embeddings have
# one trained vector per position up to the training length and none beyond it. (Reading a
# longer input is not the same as using all of it: the penalty makes far keys weigh little,
# so an ALiBi model reads most of its context from the distances it was trained on.)
#
# For soft-capping, $c \tanh(s/c) = s - s^3/(3c^2) + \dots$, so the relative change is about
# $s^2 / (3c^2)$: for a score of 5 and $c = 50$ that is $25 / 7500 \approx 0.3\%$. Only
# scores comparable to $c$ are bent.
#
# </details>
#
# ## Summary
#
# - A sparse pattern is a `mask_mod`; big patterns are `or_masks` (union) and `and_masks`
#   (intersection) of small ones, and a decoder version is `and_masks(causal_mask, ...)`.
# - Off-by-ones: windows count the query; a symmetric window is odd, with $\lfloor w/2 \rfloor$
#   keys per side (the papers' $w$ is `window - 1`); strided includes the query and is not
#   causal; random patterns are drawn once from a seed and need not include the query; global
#   counts are the first $g$ positions.
# - Windows, global tokens, random blocks and BigBird keep $O(n)$ pairs, the Sparse Transformer
#   $O(n\sqrt n)$: the density falls as $n$ grows, and so the saving against dense attention
#   rises.
# - BigBird's universality comes from its global tokens: a star in the pattern puts every pair
#   two hops apart.
# - In one layer every sparse pattern is blind to most keys; what it can reach over several
#   layers is the subject of Lecture 2.
# - Prefix-LM reads positions $0 \dots P-1$ both ways and the rest causally ($P \le 1$ is
#   causal). Packed documents attend only inside their document; a `mask_mod` given to
#   `generate_document_mask` runs in document coordinates, and positions outside the packing
#   attend nothing.
# - A `score_mod(score, b, h, q_idx, kv_idx)` changes scores before the mask: ALiBi adds
#   $-m_h (i - j)$ with $m_h = 2^{-8(h+1)/H}$, an additive bias; soft-capping maps $s$ to
#   $c \tanh(s/c)$. Every `lcteach` kernel takes `score_mod=`.
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
# - Ofir Press, Noah A. Smith, Mike Lewis. *Train Short, Test Long: Attention with Linear
#   Biases Enables Input Length Extrapolation.* ICLR 2022. arXiv:2108.12409.
# - Gemma Team. *Gemma 2: Improving Open Language Models at a Practical Size.* 2024.
#   arXiv:2408.00118. (Soft-capping of attention logits at 50; sliding-window layers.)
# - Li Dong, Nan Yang, Wenhui Wang, Furu Wei, Xiaodong Liu, Yu Wang, Jianfeng Gao, Ming Zhou,
#   Hsiao-Wuen Hon. *Unified Language Model Pre-training for Natural Language Understanding and
#   Generation* (UniLM). NeurIPS 2019. arXiv:1905.03197.
# - Colin Raffel, Noam Shazeer, Adam Roberts, Katherine Lee, Sharan Narang, Michael Matena,
#   Yanqi Zhou, Wei Li, Peter J. Liu. *Exploring the Limits of Transfer Learning with a Unified
#   Text-to-Text Transformer* (T5). JMLR 2020. arXiv:1910.10683.
# - Juechu Dong, Boyuan Feng, Driss Guessous, Yanbo Liang, Horace He. *Flex Attention: A
#   Programming Model for Generating Optimized Attention Kernels.* 2024. arXiv:2412.05496.
#
# **Further reading.** Duncan J. Watts, Steven H. Strogatz, *Collective dynamics of
# 'small-world' networks* (Nature 393, 1998), is the "small world" behind random attention.
# Lucas Beyer, Andreas Steiner, André Susano Pinto, et al., *PaliGemma: A versatile 3B VLM for
# transfer* (2024, arXiv:2407.07726), uses a prefix-LM mask over image and prompt. Mario
# Michael Krell, Matej Kosec, Sergio P. Perez, Andrew Fitzgibbon, *Efficient Sequence Packing
# without Cross-contamination: Accelerating Large Language Models without Impacting
# Performance* (2021, arXiv:2107.02027), measures how much padding packing saves and keeps
# attention inside each document. The attention-gym repository
# (github.com/pytorch-labs/attention-gym) collects FlexAttention `mask_mod`s and `score_mod`s.
