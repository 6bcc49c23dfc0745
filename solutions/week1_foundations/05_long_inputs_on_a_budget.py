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
# # Lecture 5 · Long inputs on a memory budget: chunk scheduling, CPU offload and throughput to 64K tokens
#
# Lectures 1 to 4 asked how much memory attention needs. A deployed system asks the opposite
# question: **here is the memory I have; how do I process an input that does not fit?** The
# answer is a schedule. We fix a memory budget and make every piece of work fit inside it:
#
# 1. **chunk scheduling**: price one chunk of $c$ tokens in bytes, pick the largest chunk that
#    fits the budget, and count what the overlap between chunks costs in recomputed positions;
#    then measure that the planned chunks really stay under the budget;
# 2. **CPU offload**: keep a long key/value cache in host memory, which is large, and stream
#    it through the compute device, which is small, one chunk at a time, merging the partial
#    attentions exactly by their log-sum-exps (Lecture 3); with a cost model of when the copies
#    are free and when they are the whole bill;
# 3. **throughput**: tokens per second of dense, tiled, sliding-window and offloaded attention
#    from 1K to 64K tokens, each as far as a stated budget allows.
#
# This machine has no GPU. Where the lecture says "device" it means the memory the attention
# computation works in; here that is the CPU's own memory, and the lecture says so wherever it
# matters. Peak memory and bytes moved are measured exactly anyway; only the speed of the
# copies is a property of the hardware.

# %%
import lcteach  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads OpenMP, see Lecture 1)

# isort: split
import functools
import math
import time

import torch
from tqdm.auto import tqdm

from lcteach.chunking import offloaded_attention, pinned_host_copy, plan_chunks, plan_summary
from lcteach.kernels import banded_attention, dense_attention, tiled_attention
from lcteach.measure import (
    best_seconds,
    dense_attention_memory,
    diagnose_oom,
    format_bytes,
    peak_memory,
    profile_scaling,
    track_peak_memory,
)
from lcteach.viz import plot_scaling

_ = torch.manual_seed(0)
torch.set_num_threads(1)  # one thread and its CPU time for every timing, as in Lectures 1, 3 and 4
MiB = 1024**2

# %% [markdown]
# ## 1. Scheduling chunks under a memory budget
#
# ### What one chunk costs
#
# Lecture 2 cut a long sequence into chunks of $c$ positions that overlap by $o$ and ran the
# model on each chunk alone. Only one chunk is processed at a time, so the **peak memory of
# the whole pass is the peak of one chunk** (plus the outputs collected so far, measured
# below), and a chunk's peak is dominated by its attention scores. `dense_attention_memory` counts them exactly (Lecture 1): per head, the forward pass
# holds two $c \times c$ buffers (the exponentiated scores and the weights), the $c \times d$
# output and two per-row vectors,
#
# $$\text{cost}(c) = (2c^2 + cd + 2c) \cdot \text{bytes per element} \cdot \text{batch} \cdot \text{heads}.$$
#
# The $c^2$ term wins quickly: with $d = 64$ the $c \cdot d$ term is below 4% from
# $c = 1024$ on.

# %%
print(f"{'chunk c':>8} {'attention scores':>17} {'output + rows':>14} {'total':>10}")
for c in (256, 1_024, 4_096, 16_384):
    total = dense_attention_memory(c)
    scores = 2 * c * c * 4
    print(f"{c:>8,} {format_bytes(scores):>17} {format_bytes(total - scores):>14} {format_bytes(total):>10}")

# %% [markdown]
# ### The largest chunk that fits
#
# Turn the question around: given a budget $B$, the largest chunk is the largest $c$ with
# $\text{cost}(c) \le B$. Dropping the small terms, $8c^2 \le B$ in float32 gives
# $c \approx \sqrt{B / 8}$: **a budget four times larger buys a chunk only twice as long.**
# `largest_chunk` finds the exact answer by doubling and bisection (the cost only has to grow
# with $c$), and `plan_chunks` wraps it into the `ChunkedProcessor` of Lecture 2. We plan for
# a 65,536-token input, one head, $d = 64$:

# %%
n = 65_536
print(f"{'budget':>8} {'largest chunk':>14} {'sqrt(B / 8)':>12} {'cost of the chunk':>18}")
for budget in (4 * MiB, 16 * MiB, 64 * MiB, 256 * MiB):
    processor = plan_chunks(n, budget)
    c = processor.chunk_size
    print(
        f"{format_bytes(budget):>8} {c:>14,} {math.sqrt(budget / 8):>12,.0f} {format_bytes(dense_attention_memory(c)):>18}"
    )

# %% [markdown]
# The cost is an argument, not a law of nature. A transformer block also keeps activations
# that grow linearly with the chunk, for instance the MLP's hidden layer of $4 \times$ the
# model width. Pass your own `cost` and the same search prices the whole block. Here a block
# of model width 256 with 4 heads of $d = 64$, whose MLP hidden activation (4 x 256 float32
# numbers per position) lives next to the scores:


# %%
def block_cost(c: int) -> int:
    """Peak bytes of one chunk through a block: 4 heads of dense attention plus the MLP's hidden activation."""
    return dense_attention_memory(c, heads=4, dim=64) + c * 4 * 256 * 4


for budget in (16 * MiB, 64 * MiB):
    c_attention = plan_chunks(n, budget, heads=4).chunk_size
    c_block = plan_chunks(n, budget, cost=block_cost).chunk_size
    print(
        f"budget {format_bytes(budget):>8}: attention alone allows c = {c_attention:,}, the whole block c = {c_block:,}"
    )

# %% [markdown]
# ### Overlap, budget and wasted work
#
# Chunks start every $s = c - o$ positions, so $n$ positions need about $n / s$ chunks, and
# each chunk after the first recomputes the $o$ positions it shares with its predecessor
# (they serve only as its left context). `plan_summary` counts both, and the predicted peak of
# the largest chunk:

# %%
print(f"{'budget':>8} {'overlap':>8} {'chunk':>7} {'chunks':>7} {'recomputed':>11} {'extra work':>11}")
for budget in (4 * MiB, 16 * MiB, 64 * MiB):
    for overlap in (0, 128, 512):
        plan = plan_summary(plan_chunks(n, budget, overlap=overlap), n, budget_bytes=budget)
        print(
            f"{format_bytes(budget):>8} {overlap:>8} {plan.chunk_size:>7,} {plan.chunks:>7} "
            f"{plan.recomputed:>11,} {plan.overhead:>10.1%}"
        )

# %% [markdown]
# **What to notice.** The overlap does not change the chunk size (the budget alone fixes it)
# but it shrinks the stride, so the extra work is about $o / (c - o)$: small when the chunk is
# long compared with the overlap, and growing fast as the budget shrinks. A small budget hurts
# twice: more chunks, and a larger share of each chunk spent on recomputing context. There is a
# third cost the table cannot show: the overlap is all the left context a chunk's first
# position gets (Lecture 2), so cutting it to save work costs quality.
#
# **Check your understanding.** A plan has chunks of $c = 1024$ and overlap $o = 256$. What
# fraction of extra work does it do, and what happens as $o \to c$?
#
# <details>
# <summary>Answer</summary>
#
# The stride is $s = c - o = 768$: every chunk adds 768 new positions and recomputes 256, so
# the extra work is $256 / 768 = 1/3$, about 33% (a little less in total, because the first
# chunk recomputes nothing). As $o \to c$ the stride goes to 1 and the work grows like
# $c / (c - o)$ without bound: at $o = c - 1$ every position is computed $c$ times. That is
# why `ChunkedProcessor` insists on $o < c$ and `largest_chunk` on a chunk longer than the
# overlap.
#
# </details>
#
# ### Prediction against measurement
#
# A plan is only as good as its cost model. So we run the plans on a 16,384-token input, one
# chunk at a time with causal dense attention, under `track_peak_memory`, and compare the
# largest measured peak of a chunk with the prediction and the budget. Then the whole pass
# through `ChunkedProcessor.process`: besides the one chunk it holds the outputs collected so
# far, the $n \times d$ result that every method must produce in the end.

# %%
n_measure, overlap = 16_384, 128
generator = torch.Generator().manual_seed(0)
q, k, v = (torch.randn(1, 1, n_measure, 64, generator=generator) for _ in range(3))


def causal_dense(q, k, v):
    """Causal dense attention within one chunk, output only."""
    return dense_attention(q, k, v, causal=True)[0]


print(f"{'budget':>8} {'chunk':>6} {'chunks':>6} {'predicted':>10} {'measured':>10} {'whole pass':>11} {'output':>9}")
for budget in tqdm((4 * MiB, 16 * MiB, 64 * MiB), desc="budgets", leave=False):
    processor = plan_chunks(n_measure, budget, overlap=overlap)
    plan = plan_summary(processor, n_measure, budget_bytes=budget)
    measured = 0
    with torch.no_grad():
        for span in processor.spans(n_measure):  # one chunk at a time, each measured on its own
            with track_peak_memory() as memory:
                causal_dense(*(t[..., span.start : span.end, :] for t in (q, k, v)))
            measured = max(measured, memory.peak_bytes)
        with track_peak_memory() as memory:  # the whole pass, as ChunkedProcessor runs it
            processor.process(causal_dense, q, k, v)
        whole = memory.peak_bytes
    assert measured == plan.peak_bytes <= budget
    print(
        f"{format_bytes(budget):>8} {plan.chunk_size:>6,} {plan.chunks:>6} {format_bytes(plan.peak_bytes):>10} "
        f"{format_bytes(measured):>10} {format_bytes(whole):>11} {format_bytes(q.nbytes):>9}"
    )

# %% [markdown]
# **What to notice.** Prediction and measurement agree to the byte (the cell asserts it), and
# every chunk stays under its budget: the search found the largest chunk that fits, so the
# prediction sits just below the budget. The whole pass needs more, by roughly the size of the
# output (3 to 5 MiB here, against a 4 MiB output): while a chunk runs, the outputs of the
# chunks before it stay alive (each chunk's whole output, since the part it keeps is a view
# of it). That part grows with $n$, not with $c$, and no chunking removes it. A real planner
# therefore gives the chunks "device memory minus the buffers that grow with $n$", which is
# what the `budget_bytes` you pass should be.

# %% [markdown]
# ## 2. CPU offload: the key/value cache in host memory
#
# Chunking changes what the model computes (no position sees beyond its chunk). Often that is
# not acceptable: a model generating token 70,000 of a long document must attend to all
# earlier tokens, through its **key/value cache**, and that cache is big. A model of the size
# of Llama 2 7B (32 layers, model width 4096, 16-bit numbers) stores
# $2 \cdot 32 \cdot 4096 \cdot 2$ bytes $= 512$ KiB of keys and values per token: 32 GiB at
# 65,536 tokens, more than many GPUs hold next to the weights. Host memory (CPU RAM) is
# several times larger and far cheaper.
#
# **Offloading** keeps the cache on the host and streams it through the device in chunks of
# $c$ keys. Chunk $i$ gives a partial attention over its keys, $(O_i, \mathrm{lse}_i)$, and
# Lecture 3's merge puts the partial results together exactly:
#
# $$\mathrm{lse} = \log\big(e^{\mathrm{lse}_A} + e^{\mathrm{lse}_B}\big), \qquad
# O = e^{\mathrm{lse}_A - \mathrm{lse}}\, O_A + e^{\mathrm{lse}_B - \mathrm{lse}}\, O_B .$$
#
# The device holds the queries, the running output, and one chunk of keys and values with its
# tile of scores, never the cache. `lcteach.chunking.offloaded_attention(q, k_host, v_host,
# chunk_size)` does this and also counts the bytes it copied. On CUDA it takes the cache in
# **pinned** (page-locked) host memory (`pinned_host_copy`): only from pinned memory can the
# GPU's copy engine read by DMA while the processor does something else, so the copies run
# asynchronously (`non_blocking=True`) on a side stream, and chunk $i + 1$ travels while
# chunk $i$ is computed. On this machine the device is the CPU: the function still copies
# every chunk into a fresh buffer, so the working set and the bytes moved are those a GPU
# would see, but the "transfer" is a copy within the same RAM.
#
# First, exactness. 256 new tokens attend causally to a cache of 16,384 tokens that ends with
# them (so query $i$ sits at position $16{,}128 + i$), in float64, against dense attention
# over the whole cache:

# %%
generator = torch.Generator().manual_seed(1)
n_cache, n_new = 16_384, 256
k_cache, v_cache = (pinned_host_copy(torch.randn(1, 1, n_cache, 64, generator=generator)) for _ in range(2))
q_new = torch.randn(1, 1, n_new, 64, generator=generator)
with torch.no_grad():
    result = offloaded_attention(q_new.double(), k_cache.double(), v_cache.double(), 2_048, causal=True)
    # The dense reference: query i (at position n_cache - n_new + i) sees keys j <= n_cache - n_new + i.
    visible = torch.arange(n_cache) <= torch.arange(n_cache - n_new, n_cache)[:, None]
    reference, _ = dense_attention(q_new.double(), k_cache.double(), v_cache.double(), mask=visible)
print(f"largest difference from dense attention (float64): {(result.out - reference).abs().max().item():.1e}")
print(f"bytes copied: {format_bytes(result.bytes_transferred)} = keys and values of all {n_cache:,} positions")

# %% [markdown]
# The difference is at the level of float64 rounding: the merge is exact algebra, not an
# approximation. Now the memory. For a cache of 65,536 tokens (32 MiB of float32 keys and
# values for one head) we measure the working set with `track_peak_memory` for several chunk
# sizes, against loading the whole cache onto the device and running tiled attention there:

# %%
generator = torch.Generator().manual_seed(2)
n_cache = 65_536
k_cache, v_cache = (pinned_host_copy(torch.randn(1, 1, n_cache, 64, generator=generator)) for _ in range(2))
q_new = torch.randn(1, 1, n_new, 64, generator=generator)


def resident(q, k_host, v_host):
    """The baseline: copy the whole cache to the device, then tiled attention (one tile row per query block)."""
    k_device, v_device = k_host.clone(), v_host.clone()  # stands in for .to("cuda"): a full copy
    return tiled_attention(q, k_device, v_device, block_q=256, block_k=4_096)


print(f"{'method':>22} {'device peak':>12} {'bytes moved':>12} {'CPU time':>9}")
with torch.no_grad():
    (_, _), peak = peak_memory(resident, q_new, k_cache, v_cache)
    seconds = best_seconds(resident, q_new, k_cache, v_cache, repeats=2, clock=time.thread_time)
    print(
        f"{'whole cache resident':>22} {format_bytes(peak):>12} {format_bytes(2 * k_cache.nbytes):>12} {seconds * 1e3:>6.1f} ms"
    )
    for chunk in (1_024, 4_096, 16_384):
        run = functools.partial(offloaded_attention, q_new, k_cache, v_cache, chunk)
        result, peak = peak_memory(run)
        seconds = best_seconds(run, repeats=2, clock=time.thread_time)
        name = f"offloaded, c = {chunk:,}"
        print(
            f"{name:>22} {format_bytes(peak):>12} {format_bytes(result.bytes_transferred):>12} {seconds * 1e3:>6.1f} ms"
        )

# %% [markdown]
# **What to notice.** The offloaded working set is set by the chunk, not by the cache: about
# $2 c d$ numbers of keys and values plus a $256 \times c$ tile of scores, in proportion to
# $c$ (under 2 MiB at $c = 1024$), where holding the cache costs 32 MiB and would cost 32 GiB for the 7B model above. Every variant
# moves the same bytes, the whole cache once: offloading does not move *more* data, it moves
# it *later*, one chunk at a time, and pays for that in the number of copies (and, on a GPU,
# in whether they can hide behind the compute). The times are within a small factor of each
# other, because here nothing crosses a bus.
#
# ### The cost model: bandwidth against compute
#
# On a GPU the copies are real. PCIe 4.0 x16 moves about 32 GB/s per direction in theory and
# about 25 GB/s in practice (PCIe 5.0 doubles it). One chunk of $c$ keys and values costs
# $2 c d s$ bytes ($s$ bytes per number) to move, and $4 N_q c d$ floating-point operations to
# use ($Q K^\top$ and $P V$, $2 N_q c d$ each, for $N_q$ queries). Their ratio, the arithmetic
# intensity of the streamed data, is
#
# $$I = \frac{4 N_q c d}{2 c d s} = \frac{2 N_q}{s} \ \text{flop per byte},$$
#
# independent of the chunk size and of $d$: **only the number of queries that share a chunk
# decides whether offloading is compute-bound or transfer-bound.** With double buffering the
# copy of chunk $i + 1$ overlaps the compute of chunk $i$, and the time per chunk is
# $\max(t_\text{copy}, t_\text{compute})$ instead of their sum; the copy is hidden when
# $I$ exceeds the device's ratio of compute to bandwidth. For a GPU doing, say, 400 TFLOP/s of
# 16-bit attention behind a 25 GB/s link that ratio is 16,000 flop per byte, so it needs
# $N_q \ge 16{,}000$ queries per pass. The model, for one head's 64K-token 16-bit cache
# ($d = 128$):

# %%
link, compute = 25e9, 400e12  # bytes/s over PCIe 4.0 x16, flop/s of the GPU: assumptions, not measurements
cache_tokens, d, s = 65_536, 128, 2
copy_seconds = 2 * cache_tokens * d * s / link
print(f"{'queries':>8} {'intensity':>10} {'copy':>9} {'compute':>9} {'serial':>9} {'overlapped':>11} {'bound by':>9}")
for n_q in (1, 64, 1_024, 16_384, 65_536):
    compute_seconds = 4 * n_q * cache_tokens * d / compute
    overlapped = max(copy_seconds, compute_seconds)
    bound = "transfer" if copy_seconds > compute_seconds else "compute"
    print(
        f"{n_q:>8,} {2 * n_q / s:>7,.0f} f/B {copy_seconds * 1e6:>6.0f} us {compute_seconds * 1e6:>6.0f} us "
        f"{(copy_seconds + compute_seconds) * 1e6:>6.0f} us {overlapped * 1e6:>8.0f} us {bound:>9}"
    )

# %% [markdown]
# **What to notice.** Generating one token ($N_q = 1$) is hopelessly transfer-bound: the GPU
# waits for the link more than 99.9% of the time, and overlapping cannot help, because there
# is nothing to overlap *with*. Prefilling tens of thousands of tokens at once is
# compute-bound, and the copies are free once they overlap. That is the idea of FlexGen:
# offloaded inference becomes efficient by making many queries share each streamed chunk
# (large batches, each layer's weights and cache fetched once per big block of work), trading
# latency for throughput. ZeRO-Offload applies the same accounting to training: it keeps
# optimizer states and their update on the CPU and moves only gradients and parameters, the
# traffic that the computation can hide.
#
# The same balance shows on this CPU, where the "link" is a copy within RAM. We time the copy
# of one 4,096-token chunk of keys and values and its compute for a growing number of queries:

# %%
chunk = 4_096
k_part, v_part = k_cache[..., :chunk, :], v_cache[..., :chunk, :]


def copy_chunk(k_host, v_host):
    """The transfer of one chunk: copies into fresh buffers, as offloaded_attention makes them."""
    return k_host.clone(), v_host.clone()


copy_time = best_seconds(copy_chunk, k_part, v_part, repeats=5, clock=time.thread_time)
print(f"copy of one chunk ({format_bytes(2 * k_part.nbytes)}): {copy_time * 1e6:.0f} us")
print(f"{'queries':>8} {'compute':>10} {'compute / copy':>15}")
with torch.no_grad():
    for n_q in (1, 16, 256, 1_024):
        q_part = torch.randn(1, 1, n_q, 64, generator=generator)
        run = functools.partial(offloaded_attention, q_part, k_part, v_part, chunk)
        compute_time = max(best_seconds(run, repeats=5, clock=time.thread_time) - copy_time, 1e-9)
        print(f"{n_q:>8,} {compute_time * 1e6:>7.0f} us {compute_time / copy_time:>14.1f}x")

# %% [markdown]
# From 16 queries on, the ratio grows about in proportion to $N_q$, as the intensity
# $2N_q/s$ says it must (with one query a fixed cost per call, Python and a dozen small
# operations, dominates the compute). On this machine the copy never is the bottleneck:
# a copy within RAM runs at tens of GB/s while one core computes at tens of GFLOP/s, a
# balance of the order of one flop per byte, where the GPU of the model above needs 16,000. The law is
# the same; the hardware moves the crossover.
#
# As a reference point, one H200 machine, measured once for this lecture with PyTorch, copied a
# pinned host tensor to the GPU at about 55 GB/s (PCIe 5.0) and the same tensor from ordinary
# pageable memory at about 7 GB/s: pageable memory must first be staged through a pinned
# buffer by the CPU, synchronously. Pin what you stream. On that machine `offloaded_attention`
# streamed an 8 GiB pinned cache (8 heads, $2^{20}$ tokens, $d = 128$, float32) at 53 GB/s for
# one query per head: transfer-bound, at the speed of the link, as the model predicts. With
# 4,096 queries the same call took about 0.7 s, compute-bound (its kernel is unfused float32):
# the 0.16 s that the copies need at link speed were a small part of it.
#
# **Check your understanding.** A decoding server offloads the KV cache of 64 requests of
# 64K tokens each and generates one token per request per step. Which is the better way to
# stream: each request's cache in turn, or each layer's caches for all requests at once? And
# why does the second help only if the requests share something?
#
# <details>
# <summary>Answer</summary>
#
# Each request's cache is different data, used by that request's single query: $N_q = 1$
# per byte streamed either way, so reordering alone does not raise the intensity. The decode
# step is transfer-bound at about $2 \cdot 64\text{K} \cdot d \cdot s$ bytes per request per
# head and layer, whatever the order. Batching raises intensity only for data that many
# queries *share*: the weights (every request uses the same layer weights, so streaming a
# layer's weights once per batch of 64 gives 64x the intensity, which is what FlexGen's block
# schedule exploits) or a shared prefix of the caches (a system prompt common to all 64
# requests, streamed once and attended by 64 queries). For private caches the remedies are
# different: keep the most recent or most attended keys on the device, compress or quantise
# the cache (fewer bytes $s$), or attend to fewer keys (a window, Lecture 2; sparsity,
# Week 2).
#
# </details>

# %% [markdown]
# ## 3. Throughput: tokens per second from 1K to 64K tokens
#
# The last measurement puts the methods of Week 1 side by side on the quantity a user
# feels: **tokens per second**, $n$ divided by the time of one attention call over $n$
# tokens (`ScalingReport.tokens_per_second`). A method whose time is linear in $n$ keeps a
# flat throughput as the input grows; a quadratic one loses half of it with every doubling.
#
# The rules of the race, so that it fits the time this notebook has (one thread, batch 1, one
# head, $d = 64$, float32, each length timed as the best of two runs after the memory-tracked
# warm-up, in CPU time):
#
# - **memory budget**: 256 MiB of device memory for the attention working set. Dense
#   attention runs only at lengths where `dense_attention_memory` says it fits;
# - **time budget**: the quadratic methods (causal tiled and offloaded attention) stop at
#   8,192 tokens, where one call already takes a few tenths of a second and each doubling
#   costs 4x;
# - the **sliding window** (`banded_attention`, $w = 512$) must reach 65,536 tokens, and its
#   cost is linear, so it does.

# %%
budget = 256 * MiB
lengths = [1_024 * 2**i for i in range(7)]  # 1K .. 64K
dense_lengths = [n for n in lengths if dense_attention_memory(n) <= budget]
stop = lengths[len(dense_lengths)]
print(f"dense attention runs up to n = {dense_lengths[-1]:,}; it stops before n = {stop:,} because:")
print(diagnose_oom(stop, budget))
quadratic_lengths = [n for n in lengths if n <= 8_192]

# %% [markdown]
# The four methods, each a function of $(q, k, v)$ as `profile_scaling` wants it. Offloaded
# attention treats $k$ and $v$ as the host cache and streams them in chunks of 2,048 keys,
# with query blocks of 512 rows, so its score tile stays at 4 MiB at any $n$.


# %%
def dense_causal(q, k, v):
    """Dense causal attention: two n x n buffers."""
    return dense_attention(q, k, v, causal=True)


def tiled_causal(q, k, v):
    """Tiled (flash-style) causal attention, 256 x 256 tiles."""
    return tiled_attention(q, k, v, block_q=256, block_k=256, causal=True)


def window_512(q, k, v):
    """Causal sliding window of 512 keys, banded."""
    return banded_attention(q, k, v, 512)


def offloaded_causal(q, k, v):
    """Causal attention with k and v streamed from host memory in chunks of 2,048 keys."""
    return offloaded_attention(q, k, v, 2_048, causal=True, block_q=512)


runs = [
    ("dense (causal)", dense_causal, dense_lengths),
    ("tiled (causal)", tiled_causal, quadratic_lengths),
    ("offloaded (causal)", offloaded_causal, quadratic_lengths),
    ("sliding window 512", window_512, lengths),
]
reports = [
    profile_scaling(fn, lens, repeats=2, label=label, clock=time.thread_time, fit_from=2_048)
    for label, fn, lens in tqdm(runs, desc="methods", leave=False)
]

# %%
print(f"{'tokens/s':>9}" + "".join(f"{report.label:>20}" for report in reports))
for n in lengths:
    cells = []
    for report in reports:
        rates = dict(zip(report.seq_lens, report.tokens_per_second))
        cells.append(f"{rates[n]:>20,.0f}" if n in rates else f"{'-':>20}")
    print(f"{n:>9,}" + "".join(cells))
print()
print(reports[-1].table(throughput=True))

# %%
plot_scaling(
    *reports,
    metric="tokens_per_second",
    title="Attention throughput vs n, one thread of a CPU\n(log-log; slopes fitted for n ≥ 2048)",
)

# %% [markdown]
# **What to notice.**
#
# - The sliding window's throughput is nearly flat, its slope a few tenths at most below 0: its
#   work is linear in $n$, and what remains of a slope is the memory hierarchy of Lecture 1
#   (its buffers, about 6 KiB per token, outgrow a cache level, most likely where the table
#   shows a step). It is the only method here that reaches 64K within the budgets, and it does so by
#   computing something different (each token sees 512 keys).
# - The three exact methods fall with slope close to $-1$: quadratic time means half the
#   throughput per doubling, whatever the memory layout. Tiling and offloading fix the
#   *memory* wall, not the *compute* wall (Lecture 3 said the same about time).
# - Dense attention stops first, at the memory budget, not the time budget. Causal tiled
#   attention skips the tiles above the diagonal and does about half the work of the dense
#   kernel, which computes all $n^2$ scores and masks half of them.
# - Offloaded attention is slower than tiled attention at small $n$, where its fixed costs per
#   chunk (a fresh buffer, a mask, a merge) weigh, and closes the gap as $n$ grows: on this
#   CPU the copies are cheap and the arithmetic is the same. On a GPU the table of section 2
#   decides: the copies of a long cache over PCIe hide behind the compute only when many
#   queries share each chunk, as in a long prefill.
# - One number breaks a rule: the window's working set grows linearly, about 6 KiB per token
#   here, so at 65,536 tokens it holds 384 MiB, over the 256 MiB budget. The next cell puts it
#   back under.
#
# **Check your understanding.** Extrapolate the table: how long would causal tiled attention
# take for one 65,536-token call on this thread, and how long the sliding window? What does
# that say about how long-context models are trained on real hardware?
#
# <details>
# <summary>Answer</summary>
#
# Tiled attention's time grows 4x per doubling, so 64K costs about $4^3 = 64$ times its
# 8K time: around ten seconds per head and layer on one CPU thread (64 times the 8K row's
# time), for the forward pass alone. The window's time only doubles per doubling: 64K costs 8x
# its 8K time, well under a second (the table measured it). Exact attention at long context is affordable
# only with the compute of GPUs (hundreds of TFLOP/s) and a fused kernel, and even there its
# quadratic cost is why long-context training is expensive and why so many models mix exact
# layers with windowed or sparse ones (Week 2).
#
# </details>

# %% [markdown]
# ### The window under the budget: chunking that is exact
#
# Section 1's planner fixes the window too. Its cost is linear: we take the measured bytes
# per token at $n = 4096$ from the profile (a little above the per-token cost at larger $n$,
# so a safe estimate) as the cost of a chunk. And for a sliding window, chunking with an
# overlap of $w - 1$ changes nothing: with `resolve="first"` every kept position has at least
# $w - 1$ earlier positions in its chunk, all that its window can see. The chunks get the budget
# minus twice the output (the outputs kept so far and their concatenation, which grow with
# $n$, as section 1 measured).

# %%
window_report = reports[-1]
per_token = window_report.peak_bytes[window_report.seq_lens.index(4_096)] / 4_096
generator = torch.Generator().manual_seed(3)
n_long = 65_536
q, k, v = (torch.randn(1, 1, n_long, 64, generator=generator) for _ in range(3))
chunk_budget = budget - 2 * q.nbytes
processor = plan_chunks(n_long, chunk_budget, overlap=511, cost=lambda c: math.ceil(per_token * c))
with torch.no_grad():
    with track_peak_memory() as memory:
        chunked = processor.process(window_512, q, k, v)
    whole = window_512(q, k, v)
print(f"{processor}: {len(processor.spans(n_long))} chunks")
print(f"peak of the chunked pass: {format_bytes(memory.peak_bytes)} (budget {format_bytes(budget)})")
print(f"unchunked peak (profile): {format_bytes(window_report.peak_bytes[-1])}")
print(f"largest difference from the unchunked window: {(chunked - whole).abs().max().item():.1e}")

# %% [markdown]
# The same result up to float32 rounding (the blocks inside `banded_attention` fall at other
# positions, so sums run in another order), inside the budget, for the price of recomputing
# 511 positions per chunk border. Exact models with a bounded receptive field can always be
# chunked this way; full attention cannot, which is why it needs tiling or offloading instead.

# %% [markdown]
# ## Summary
#
# - **Price the chunk, then fit it.** A chunk of $c$ tokens costs about $8c^2$ bytes of
#   attention scores per head in float32 (`dense_attention_memory`), so the largest chunk
#   under a budget $B$ is about $\sqrt{B/8}$; `largest_chunk` and `plan_chunks` find it
#   exactly for any cost that grows with $c$, including your own model's activations.
# - **Overlap costs work.** With stride $c - o$ a plan recomputes about $o/(c - o)$ of the
#   sequence (`plan_summary`); small budgets make chunks short and that share large.
# - **Measure the plan.** The measured peak of every chunk matched the prediction to the byte
#   and stayed under the budget; the whole pass also holds the $O(n d)$ outputs, which no
#   chunking removes.
# - **A bounded receptive field chunks exactly.** A sliding window of $w$ keys, chunked with
#   overlap $w - 1$, gives the unchunked result under any budget that fits one chunk.
# - **Offload streams, exactly.** Keys and values can live in host memory and pass through the
#   device one chunk at a time; partial attentions merge exactly by their log-sum-exps, and
#   device memory holds one chunk, not the cache. Pin the host memory and copy asynchronously.
# - **Intensity decides.** Streaming costs $2cds$ bytes per $4 N_q c d$ flops: intensity
#   $2N_q/s$ flop per byte. Long prefills hide the copies behind compute (with double
#   buffering); one-token decoding is bound by the link.
# - **Throughput tells the complexity.** Tokens per second is flat for linear-time methods and
#   falls like $1/n$ for quadratic ones; tiling and offloading remove the memory wall, not the
#   compute wall.

# %% [markdown]
# ## References
#
# - Markus N. Rabe, Charles Staats. *Self-attention Does Not Need $O(n^2)$ Memory.* 2021.
#   [arXiv:2112.05682](https://arxiv.org/abs/2112.05682). Chunked attention with
#   log-sum-exp merging in $O(\sqrt{n})$ or $O(\log n)$ memory: the principle behind sections
#   1 and 2.
# - Ying Sheng, Lianmin Zheng, Binhang Yuan, Zhuohan Li, Max Ryabinin, Daniel Y. Fu, Zhiqiang
#   Xie, Beidi Chen, Clark Barrett, Joseph E. Gonzalez, Percy Liang, Christopher Ré, Ion
#   Stoica, Ce Zhang. *FlexGen: High-Throughput Generative Inference of Large Language Models
#   with a Single GPU.* ICML 2023. [arXiv:2303.06865](https://arxiv.org/abs/2303.06865).
#   Offloading weights and KV cache to CPU and disk, with a block schedule that raises the
#   intensity of what is streamed.
# - Jie Ren, Samyam Rajbhandari, Reza Yazdani Aminabadi, Olatunji Ruwase, Shuangyan Yang,
#   Minjia Zhang, Dong Li, Yuxiong He. *ZeRO-Offload: Democratizing Billion-Scale Model
#   Training.* USENIX ATC 2021. [arXiv:2101.06840](https://arxiv.org/abs/2101.06840).
#   Offloading optimizer states and their update to the CPU in training.
# - Tri Dao, Daniel Y. Fu, Stefano Ermon, Atri Rudra, Christopher Ré. *FlashAttention: Fast and
#   Memory-Efficient Exact Attention with IO-Awareness.* NeurIPS 2022.
#   [arXiv:2205.14135](https://arxiv.org/abs/2205.14135). The tiled kernel of section 3.
# - Iz Beltagy, Matthew E. Peters, Arman Cohan. *Longformer: The Long-Document Transformer.*
#   2020. [arXiv:2004.05150](https://arxiv.org/abs/2004.05150). Sliding-window attention.
# - Samuel Williams, Andrew Waterman, David Patterson. *Roofline: An Insightful Visual
#   Performance Model for Multicore Architectures.* Communications of the ACM 52(4), 2009.
#   The bandwidth-against-compute reasoning of section 2.
#
# **Further reading**
#
# - Samyam Rajbhandari, Olatunji Ruwase, Jeff Rasley, Shaden Smith, Yuxiong He. *ZeRO-Infinity:
#   Breaking the GPU Memory Wall for Extreme Scale Deep Learning.* SC 2021.
#   [arXiv:2104.07857](https://arxiv.org/abs/2104.07857). Offloading to CPU and NVMe, with
#   prefetching that overlaps the transfers.
# - Woosuk Kwon, Zhuohan Li, Siyuan Zhuang, Ying Sheng, Lianmin Zheng, Cody Hao Yu, Joseph E.
#   Gonzalez, Hao Zhang, Ion Stoica. *Efficient Memory Management for Large Language Model
#   Serving with PagedAttention.* SOSP 2023. [arXiv:2309.06180](https://arxiv.org/abs/2309.06180).
#   The KV cache in fixed-size blocks, and swapping them to the CPU.
# - Amey Agrawal, Ashish Panwar, Jayashree Mohan, Nipun Kwatra, Bhargav S. Gulavani,
#   Ramachandran Ramjee. *SARATHI: Efficient LLM Inference by Piggybacking Decodes with
#   Chunked Prefills.* 2023. [arXiv:2308.16369](https://arxiv.org/abs/2308.16369). Chunked
#   prefill as a scheduling tool in serving.
