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
# # Lecture 2 · Windows and chunks: attending to less
#
# Lecture 1 ended at the quadratic wall: dense attention compares all $n^2$ pairs of tokens.
# The oldest way around it is to **not compare them all**. Most of what a token needs is
# usually nearby: the previous words of the sentence, the surrounding lines of code. Two
# ideas exploit that:
#
# - a **sliding window**: every token attends only to the $w$ most recent tokens, itself
#   included;
# - **chunking**: cut the sequence into pieces, run the model on each piece on its own.
#
# In this lecture you will
#
# 1. write attention patterns as FlexAttention `mask_mod` functions and combine them;
# 2. get the sliding window's off-by-one right, and work out what a window can see in one
#    layer and in $L$ layers;
# 3. count the cost, $O(n \cdot w)$ instead of $O(n^2)$, and see what it takes to collect the
#    saving;
# 4. chunk a sequence with overlap, and measure what is lost at the chunk borders.

# %%
import lcteach  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads OpenMP, see Lecture 1)

# isort: split
import inspect

import torch
from IPython.display import display
from torch.nn.attention.flex_attention import and_masks, or_masks

from lcteach import (
    ChunkedProcessor,
    causal_mask,
    dense_attention,
    fit_exponent,
    generate_sliding_window,
    materialize_mask,
)
from lcteach.chunking import left_context
from lcteach.kernels import tile_status
from lcteach.viz import plot_chunks, plot_mask, plot_tiles
from lcteach.widgets import chunk_explorer, window_explorer

_ = torch.manual_seed(0)

# %% [markdown]
# ## 1. Attention patterns as functions
#
# A pattern says, for each query position $i$ and key position $j$, whether query $i$ may
# attend to key $j$. PyTorch's FlexAttention writes a pattern as a small function, a
# **`mask_mod`**:
#
# ```python
# mask_mod(b, h, q_idx, kv_idx) -> bool   # True = may attend
# ```
#
# It receives the batch index `b`, the head `h` and the two positions (counted from 0) and
# returns `True` where attention is allowed. This is the convention you will meet in real
# code, so the course uses it throughout. The causal pattern of a language model, where a
# token sees itself and the past but never the future, is one comparison:

# %%
print(inspect.getsource(causal_mask))

# %% [markdown]
# `materialize_mask` evaluates a `mask_mod` on every pair (with FlexAttention's `create_mask`)
# and returns a boolean tensor of shape `(batch, heads, n_q, n_k)`. Rows are queries, columns
# are keys.

# %%
print(materialize_mask(causal_mask, 6)[0, 0].int())

# %%
plot_mask(causal_mask, 16)

# %% [markdown]
# ## 2. The sliding window, and its off-by-one
#
# A sliding window of size $w$ lets query $i$ attend to key $j$ when
#
# $$i - w < j \le i .$$
#
# Write the off-by-one down once and for all: **a window of $w$ is the query itself plus the
# $w-1$ keys before it**. So $w = 1$ is a token attending only to itself, and each row has
# $\min(i+1, w)$ allowed keys: fewer at the start, where there is no past to see.
# `generate_sliding_window(w)` builds this `mask_mod`.

# %%
window = 3
sliding = generate_sliding_window(window)
mask = materialize_mask(sliding, 8)[0, 0]
print(mask.int())
print("keys per query:", mask.sum(-1).tolist(), "= min(i + 1, w):", [min(i + 1, window) for i in range(8)])

# %% [markdown]
# Patterns compose. FlexAttention's `and_masks` and `or_masks` combine `mask_mod`s
# pair by pair. The sliding window is "causal **and** near":


# %%
def near_3(b, h, q_idx, kv_idx):
    """Keys fewer than 3 positions before the query (and, on its own, every key after it)."""
    return q_idx - kv_idx < 3


composed = and_masks(causal_mask, near_3)
print(
    "and_masks(causal, near_3) == generate_sliding_window(3):",
    torch.equal(materialize_mask(composed, 64), materialize_mask(generate_sliding_window(3), 64)),
)

# %% [markdown]
# And `or_masks` adds exceptions. Models with a sliding window often let every token see the
# very first token as well: the "attention sink" of StreamingLLM, a place to put attention
# that has nowhere useful to go. That is "window **or** first key":


# %%
def first_token(b, h, q_idx, kv_idx):
    """The first key of the sequence, visible to every query."""
    return kv_idx == 0


plot_mask(
    or_masks(generate_sliding_window(4), first_token),
    24,
    title="Sliding window of 4, or the first token (attention sink)",
)

# %% [markdown]
# Try it yourself: the explorer draws a pattern and counts what it keeps. Move `window` and
# watch the density; switch the pattern to `causal` and `full` to compare.

# %%
window_explorer(n=32, window=4)

# %% [markdown]
# **Check your understanding.** With $w = 4$, which keys does query 10 see? Which keys does
# query 2 see? Write a `mask_mod` for a window that looks $w-1$ tokens back *and* $w-1$
# tokens ahead (a bidirectional encoder's local attention).
#
# <details>
# <summary>Answer</summary>
#
# Query 10 sees keys 7, 8, 9 and 10: itself and the $w - 1 = 3$ before it. Query 2 sees only
# keys 0, 1 and 2; there is no earlier key to fill its window. The bidirectional window drops
# the causal half of the condition and bounds the distance on both sides:
#
# ```python
# def local_window(b, h, q_idx, kv_idx):
#     return (q_idx - kv_idx).abs() < w  # |i - j| <= w - 1: 2w - 1 keys per row
# ```
#
# `lcteach.generate_symmetric_window(2 * w - 1)` builds the same pattern; its argument counts
# the keys of a full row, the query included.
#
# </details>

# %% [markdown]
# ## 3. What a window can and cannot see
#
# In one layer, token $i$ sees tokens $i-w+1 \dots i$, nothing further back. But a model
# stacks layers. In layer 2, token $i$ reads the layer-1 outputs of tokens $i-w+1 \dots i$,
# and each of *those* has already read $w-1$ tokens further back. Information hops $w-1$
# positions per layer, so after $L$ layers
#
# $$\text{reach} = L\,(w-1) \text{ positions back.}$$
#
# We can check this without any model. If $M$ is the window mask as a 0/1 matrix, then
# "token $i$ in layer 2 depends on token $j$ in the input" is the boolean matrix product
# $M \cdot M$: is there a middle token $m$ with $M_{im}$ and $M_{mj}$? $L$ layers give the
# boolean power $M^L$.

# %%
n, window = 40, 4
step = materialize_mask(generate_sliding_window(window), n)[0, 0].float()
reach = torch.eye(n)
print(f"{'layers L':>8} {'furthest key seen by the last query':>36} {'L (w - 1)':>10}")
for layers in range(1, 7):
    reach = ((reach @ step) > 0).float()  # boolean matrix product: one more layer
    first_seen = int(reach[-1].nonzero().min())
    print(f"{layers:>8} {n - 1 - first_seen:>30} back {layers * (window - 1):>10}")

# %%
fig = plot_mask(
    reach.bool(),
    title=f"Receptive field after 6 layers of window {window}:\nposition i depends on inputs i - {6 * (window - 1)} ... i",
)
image_axes = fig.axes[0]  # plot_mask labels a mask; this matrix is a dependence, so relabel it
image_axes.set_xlabel("input position j")
image_axes.set_ylabel("position i after 6 layers")
image_axes.images[0].colorbar.set_label("output i depends on input j?")
image_axes.images[0].colorbar.set_ticks([0.25, 0.75], labels=["no", "yes"])
display(fig)

# %% [markdown]
# **What to notice.** After 6 layers the band is 19 keys wide: the query plus
# $6 \times 3 = 18$ keys back. Mistral 7B uses $w = 4096$ in 32 layers: a theoretical reach of
# about 131K tokens, with each layer paying only for 4096.
#
# What a window **cannot** do is see far tokens *directly*. Information from 18 positions back
# reaches the query only after being passed from token to token through six layers, mixed
# with everything else each relay attends to. A model that must copy one exact fact from a far
# position (a name defined 50,000 tokens earlier, a needle in a haystack) usually loses it on
# the way. The reach is an upper bound, not a promise.
#
# **Check your understanding.** A model has 24 layers and a window of 512. What is the
# furthest token that can influence the last position? Why might a task that needs a token
# 5,000 positions back still fail?
#
# <details>
# <summary>Answer</summary>
#
# The reach is $L(w - 1) = 24 \times 511 = 12{,}264$ positions back. A token 5,000 positions
# back is within reach, but only through at least $\lceil 5000 / 511 \rceil = 10$ relays,
# one per layer: at each one its information is mixed into the output of an intermediate
# token together with everything else that token attends to. Nothing guarantees that the
# model learned to carry that one token through ten layers, and the weights that would do so
# compete with everything local. The reach says what is possible, not what the model does.
#
# </details>

# %% [markdown]
# ## 4. What a window costs, and how to collect the saving
#
# A window keeps $\min(i+1, w)$ keys for query $i$, so in total
#
# $$\sum_{i=0}^{n-1} \min(i+1, w) = n\,w - \frac{w(w-1)}{2} = O(n \cdot w)$$
#
# pairs, against $n(n+1)/2$ for causal attention. For fixed $w$ the cost grows linearly in $n$.

# %%
n, window = 1_000, 64
allowed = int(materialize_mask(generate_sliding_window(window), n).sum())
print(
    f"allowed pairs: {allowed:,}; formula n*w - w(w-1)/2 = {n * window - window * (window - 1) // 2:,}; "
    f"causal has {n * (n + 1) // 2:,}"
)

# %% [markdown]
# A mask alone saves nothing, though. `dense_attention(q, k, v, mask)` still computes all
# $n^2$ scores and then throws most of them away. To save work, a kernel must **skip** the
# masked pairs in bulk. Tiled attention (Lecture 3) cuts the score matrix into tiles and never
# computes a tile without an allowed pair. The picture shows which tiles are computed for a
# window of 128 with $64 \times 64$ tiles: only a band along the diagonal.

# %%
plot_tiles(1_024, 1_024, 64, 64, mask_mod=generate_sliding_window(128))

# %% [markdown]
# Count the computed tiles as $n$ grows, for causal attention and for the window (`tile_status`
# walks the tiles exactly as `tiled_attention` does). Causal work grows like $n^2$, window work
# like $n$. The last column counts something else: the (query, key) pairs on which the window's
# `mask_mod` was evaluated while the tiles were walked.

# %%
lens, block = [1_024, 2_048, 4_096, 8_192], 256
band = generate_sliding_window(512)
evaluated = {"pairs": 0}


def counted_band(b, h, q_idx, kv_idx):
    """The window of 512, counting the (query, key) pairs it is evaluated on."""
    allowed = band(b, h, q_idx, kv_idx)
    evaluated["pairs"] += allowed.numel()
    return allowed


tiles = {"causal": [], "window 512": []}
mask_evaluations = []
print(f"{'n':>6} {'causal tiles':>13} {'window tiles':>13} {'window mask evaluations':>24}")
for n in lens:
    evaluated["pairs"] = 0
    tiles["causal"].append(int((tile_status(n, n, block, block, causal=True) > 0).sum()))
    tiles["window 512"].append(int((tile_status(n, n, block, block, mask_mod=counted_band) > 0).sum()))
    mask_evaluations.append(evaluated["pairs"])
    print(f"{n:>6,} {tiles['causal'][-1]:>13,} {tiles['window 512'][-1]:>13,} {mask_evaluations[-1]:>24,}")
for name, counts in tiles.items():
    print(f"{name}: computed tiles ~ n^{fit_exponent(lens, counts):.2f}")
print(f"window 512: mask evaluations ~ n^{fit_exponent(lens, mask_evaluations):.2f}, about n^2 pairs")

# %% [markdown]
# **Skipping is not free.** To skip a tile, a kernel must first know that the tile is empty.
# A kernel that is given only a `mask_mod`, a function it cannot look inside, can learn that in
# one way only: by evaluating the function on every pair of the tile, $B_q B_k$ evaluations,
# whether the tile is then computed or skipped. Over all tiles that is $n^2$ evaluations,
# exactly the last column (plus a small probe that checks the `mask_mod` first). So the
# tile walk is $O(n^2)$ in mask evaluations, not $O(n^2 / (B_q B_k))$. What skipping saves is
# the expensive part of each masked pair: two dot products of length $d$ (the score and its
# share of the output) and an exponential, against a few integer operations for the mask.
#
# A tile can be skipped after a single check only when the mask is **known per block**:
#
# - by a rule for whole blocks. The causal mask is one: a tile is empty when its first key
#   comes after its last query, which is how `tiled_attention` skips causal tiles without
#   evaluating anything for them (only the diagonal tiles, which are computed anyway, get an
#   element-wise mask);
# - by a block map computed ahead of time. That is FlexAttention's `BlockMask`:
#   `create_block_mask` evaluates the `mask_mod` on all $n^2$ pairs once per pattern and
#   length, keeps one entry per block, and every head, layer and training step reuses it, so
#   the $O(n^2)$ evaluations are paid once instead of in every call.
#
# Play with block sizes and windows in the explorer of Lecture 3.

# %% [markdown]
# **Check your understanding.** With tiles of $64 \times 64$ and a window of 128, about how
# many tiles does each row of query blocks compute? Why is it not exactly 2?
#
# <details>
# <summary>Answer</summary>
#
# Three, once the window is full (the first two rows compute 1 and 2): 45 tiles for 16 rows in
# the picture, $1 + 2 + 14 \times 3$. The queries $i_0 \dots i_0 + 63$ of a block reach back to
# keys $i_0 - 127 \dots i_0 + 63$: the diagonal tile (partly masked), the full tile before it,
# and the tile two blocks back, of which only the oldest keys are in the window of the first
# queries (partly masked). The band is slanted across the grid of tiles, so it touches
# $w / B + 1$ block columns per row, not $w / B$.
#
# </details>

# %% [markdown]
# ## 5. Chunking: cut the sequence, process the pieces
#
# A window changes the pattern inside one model run. **Chunking** changes the input: cut a
# long sequence into chunks of $c$ positions, run the model (any model, with any attention)
# on each chunk separately, and glue the outputs together. It is how you apply a model
# trained on 4K tokens to a 100K document, or how you fit a long input into a memory budget.
# Attention then costs $O(n \cdot c)$.
#
# Consecutive chunks may **overlap**: a chunk starts every $c - \text{overlap}$ positions, so
# the overlap is computed twice. Each position keeps the output of one chunk, chosen by the
# `resolve` rule:
#
# - `"first"`: keep the earlier chunk's output; the later chunk's first `overlap` positions
#   serve only as warm-up context. Every kept position then has at least `overlap` positions
#   of left context: the right rule for causal models.
# - `"center"`: take each position from the chunk where it sits further from a border: the
#   right rule for bidirectional models, which also look right.
# - `"mean"`: average all the chunks that cover a position.
#
# `ChunkedProcessor.spans(n)` lists the chunks: positions `[start, end)` are processed and
# `[keep_start, keep_end)` are kept.

# %%
for resolve in ("first", "center"):
    print(f"resolve={resolve!r}")
    for span in ChunkedProcessor(16, overlap=6, resolve=resolve).spans(40):
        print(f"  process [{span.start:>2}, {span.end:>2})   keep [{span.keep_start:>2}, {span.keep_end:>2})")

# %% [markdown]
# The explorer draws the chunks (top) and, for every position, how many earlier positions its
# output has seen (bottom). Without chunking position $p$ sees $p$ earlier positions, the
# dashed diagonal. Each chunk border cuts the context back to the overlap.

# %%
chunk_explorer(n=64, chunk_size=16, overlap=4)

# %% [markdown]
# ## 6. What chunking loses at the borders
#
# Let us measure it. Take causal attention over $n = 256$ random tokens in 16 heads, once on
# the whole sequence and once in chunks of 64, and compare the outputs position by position
# (the error is $|\text{chunked} - \text{full}|$ averaged over heads and dimensions). Inside
# the first chunk nothing changes. After it, each position has lost every key before its
# chunk's start. Random queries and keys are a hard case: attention is spread over all keys,
# so every lost key carries weight.

# %%
n, chunk = 256, 64
generator = torch.Generator().manual_seed(0)
q, k, v = torch.randn(3, 1, 16, n, 32, generator=generator).unbind(0)  # 16 heads
full, _ = dense_attention(q, k, v, causal=True)


def causal_attention(q, k, v):
    """Causal attention inside one chunk: the function ChunkedProcessor runs on each piece."""
    return dense_attention(q, k, v, causal=True)[0]


settings = [(0, "first"), (16, "first"), (32, "first"), (32, "center"), (32, "mean")]
errors = {}
print(
    f"{'overlap':>7} {'resolve':>7} {'extra work':>10} {'least context':>13} "
    f"{'mean error':>10} {'worst error':>11}   (positions >= {chunk})"
)
for overlap, resolve in settings:
    processor = ChunkedProcessor(chunk, overlap, resolve)
    error = (processor.process(causal_attention, q, k, v) - full).abs().mean(dim=(0, 1, 3))
    errors[overlap, resolve] = error
    extra = sum(s.end - s.start for s in processor.spans(n)) / n - 1
    least = int(left_context(processor, n)[chunk:].min())
    print(
        f"{overlap:>7} {resolve:>7} {extra:>10.0%} {least:>13} "
        f"{error[chunk:].mean():>10.3f} {error[chunk:].max():>11.3f}"
    )

# %% [markdown]
# Now the picture behind the numbers. Each figure shows the chunks, the left context every
# position keeps (dark step line), and the error against full attention (red, right axis,
# the same scale in both figures).
# Error spikes exactly where the context is cut, right after each border, and decays as the
# position moves into its chunk and gathers context again.

# %%
for overlap in (0, 32):
    processor = ChunkedProcessor(chunk, overlap, "first")
    fig = plot_chunks(processor, n)
    error_axis = fig.axes[1].twinx()
    error_axis.plot(errors[overlap, "first"], color="#c53030", linewidth=1, label="error vs full attention")
    error_axis.set_ylabel("mean |chunked - full|", color="#c53030")
    error_axis.set_ylim(0, 1.05 * float(errors[0, "first"].max()))  # same scale in both figures
    error_axis.legend(loc="lower right", fontsize="small")
    display(fig)

# %% [markdown]
# **What the numbers mean.**
#
# - Overlap buys context: with overlap 32 no kept position has fewer than 32 earlier positions,
#   and the error right after each border drops. It costs compute: every overlapped position
#   is processed twice.
# - Overlap never buys *all* the context. A position at 200 still misses everything before its
#   chunk's start; on random data that shows as a small error everywhere after the first chunk.
#   With a trained model the damage depends on where its attention goes: little if it
#   attends locally, everything if the answer sits in an earlier chunk.
# - For causal attention `"first"` is the right rule: `"center"` and `"mean"` keep outputs
#   from the start of a later chunk, where the context was thinnest, and their error is
#   higher.
#
# **Check your understanding.** You must run causal attention over 100,000 tokens with chunks
# of 4,096 and can afford 10% extra compute. What overlap do you choose, and what is the least
# left context any position gets? What kind of question about the document can the chunked
# model never answer?
#
# <details>
# <summary>Answer</summary>
#
# A chunk starts every $c - o$ positions and processes $c$, so the extra work is
# $o / (c - o)$. At most 10% means $o \le c / 11$: an overlap of about 372 (9.7% extra on
# 100,000 tokens, by `ChunkedProcessor.spans`). With `resolve="first"` every position after
# the first chunk then keeps at least 372 positions of left context. The chunked model can
# never answer a question that needs two tokens more than one chunk apart: whether the
# conclusion contradicts the introduction, how often a name occurs in the whole document, what
# a term defined 50,000 tokens earlier means.
#
# </details>

# %% [markdown]
# ## Summary
#
# - A pattern is a `mask_mod(b, h, q_idx, kv_idx) -> bool`; build patterns from small
#   pieces with `and_masks` / `or_masks`.
# - A window of $w$ is the query plus $w-1$ keys back. $L$ layers reach $L(w-1)$ back, by
#   relaying, not by direct attention.
# - A window costs $O(n \cdot w)$ pairs, but only a kernel that skips masked tiles turns that
#   into saved time. Knowing which tiles to skip costs $n^2$ mask evaluations unless the mask
#   is known per block (a rule such as causal, or FlexAttention's precomputed `BlockMask`).
# - Chunking costs $O(n \cdot c)$ and works with any model, but nothing crosses a chunk
#   border; overlap softens the cut at the price of recomputation.

# %% [markdown]
# ## References
#
# - Iz Beltagy, Matthew E. Peters, Arman Cohan. *Longformer: The Long-Document Transformer.*
#   2020. [arXiv:2004.05150](https://arxiv.org/abs/2004.05150). Sliding-window attention and
#   its receptive field of $L \times w$ over stacked layers (section 3).
# - Albert Q. Jiang, Alexandre Sablayrolles, Arthur Mensch, et al. *Mistral 7B.* 2023.
#   [arXiv:2310.06825](https://arxiv.org/abs/2310.06825). A window of 4096 in 32 layers.
# - Guangxuan Xiao, Yuandong Tian, Beidi Chen, Song Han, Mike Lewis. *Efficient Streaming
#   Language Models with Attention Sinks.* ICLR 2024.
#   [arXiv:2309.17453](https://arxiv.org/abs/2309.17453). The attention sink of section 1.
# - Juechu Dong, Boyuan Feng, Driss Guessous, Yanbo Liang, Horace He. *Flex Attention: A
#   Programming Model for Generating Optimized Attention Kernels.* 2024.
#   [arXiv:2412.05496](https://arxiv.org/abs/2412.05496). `mask_mod`, `and_masks`/`or_masks`
#   and the `BlockMask` of section 4.
#
# **Further reading**
#
# - Rewon Child, Scott Gray, Alec Radford, Ilya Sutskever. *Generating Long Sequences with
#   Sparse Transformers.* 2019. [arXiv:1904.10509](https://arxiv.org/abs/1904.10509). Local
#   and strided patterns that reach further per layer (Week 2).
# - Nelson F. Liu, Kevin Lin, John Hewitt, Ashwin Paranjape, Michele Bevilacqua, Fabio Petroni,
#   Percy Liang. *Lost in the Middle: How Language Models Use Long Contexts.* TACL 2024.
#   [arXiv:2307.03172](https://arxiv.org/abs/2307.03172). Even with every token in reach, models
#   use distant context unevenly.
