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
# # Lecture 4 · Memory tricks for training: checkpointing and mixed precision
#
# Lectures 1 to 3 were about one attention call. Training a model runs many layers, and the
# backward pass needs what the forward pass computed. Those stored **activations**, not the
# weights, are what fills memory at long context. Two general-purpose tricks attack them, and
# they combine with everything you have seen so far:
#
# - **gradient checkpointing**: store less in the forward pass, recompute it in the backward
#   pass;
# - **mixed precision**: store and compute in 16-bit floats instead of 32-bit.
#
# In this lecture you will build a small transformer, measure the peak memory of one training
# step with and without each trick, measure what each costs (time for checkpointing, accuracy
# for mixed precision), and end with a table of which trick to use when.

# %%
import lcteach  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads OpenMP, see Lecture 1)

# isort: split
import math
import time

import torch
from torch.utils.checkpoint import checkpoint
from tqdm.auto import tqdm

from lcteach import ScalingReport, dense_attention, format_bytes, peak_memory, plot_scaling, track_peak_memory
from lcteach.measure import best_seconds

_ = torch.manual_seed(0)

# %% [markdown]
# ## 1. A small transformer
#
# A transformer block is attention followed by an MLP, each with a residual connection and a
# LayerNorm in front (the "pre-norm" layout of GPT-style models). Attention is
# `lcteach.dense_attention` with a causal mask, so every block holds $n \times n$ weights per
# head. The stack can run each block under `torch.utils.checkpoint` (section 2).


# %%
class Block(torch.nn.Module):
    """Pre-norm transformer block: causal multi-head self-attention (dense) and an MLP."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = torch.nn.LayerNorm(dim), torch.nn.LayerNorm(dim)
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.proj = torch.nn.Linear(dim, dim)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(dim, 4 * dim), torch.nn.GELU(), torch.nn.Linear(4 * dim, dim))

    def forward(self, x):  # x: (batch, n, dim)
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out, _ = dense_attention(q, k, v, causal=True)  # (batch, heads, n, dim / heads)
        x = x + self.proj(out.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x))


class Stack(torch.nn.Module):
    """``layers`` blocks in a row; with ``checkpointing`` each block's activations are recomputed in backward."""

    def __init__(self, layers: int, dim: int = 128, heads: int = 4, checkpointing: bool = False):
        super().__init__()
        self.blocks = torch.nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.checkpointing = checkpointing

    def forward(self, x):
        for block in self.blocks:
            x = checkpoint(block, x, use_reentrant=False) if self.checkpointing else block(x)
        return x


# %% [markdown]
# One training step is a forward pass, a loss and a backward pass. We measure its peak memory
# with `track_peak_memory` (every tensor allocated inside the block counts: activations,
# gradients, temporaries) and its time separately, without the tracker, with
# `lcteach.measure.best_seconds`: a warm-up run, then the best of three. As in Lecture 1, torch
# runs on one thread and a time is that thread's CPU time, which other programs on a shared
# machine cannot inflate by taking the core away. The loss is a stand-in (the mean square of
# the output); any scalar would do.


# %%
torch.set_num_threads(1)


def training_step(model, x):
    """One forward + backward pass of ``model`` on ``x``."""
    model.zero_grad(set_to_none=True)
    model(x).square().mean().backward()


def step_peak_memory(model, x):
    """Peak bytes of tensors allocated during one training step."""
    with track_peak_memory() as memory:
        training_step(model, x)
    return memory.peak_bytes


def step_seconds(step, model, x, warmup=1, repeats=3):
    """CPU seconds of one training step ``step(model, x)``: the best of ``repeats`` after ``warmup`` runs."""
    return best_seconds(step, model, x, warmup=warmup, repeats=repeats, clock=time.thread_time)


# %% [markdown]
# Where does the memory go? For backward, autograd keeps every intermediate that a gradient
# formula needs. Per block and per head, dense attention keeps two $n \times n$ buffers (the
# exponentiated scores and the weights), and while the backward pass runs through a block it
# briefly builds five more (Lecture 3); the MLP keeps a few $n \times 4d$ buffers. At
# $n = 512$ with 4 heads and $d = 128$, one $n \times n$ buffer for all heads is
# $4 \cdot 512^2 \cdot 4$ bytes $= 4$ MiB, against $512 \cdot 512 \cdot 4$ bytes $= 1$ MiB for
# one MLP activation. Attention dominates, increasingly so as $n$ grows, and all $L$ blocks
# keep theirs until the backward pass reaches them.

# %%
n, dim, heads, layers = 512, 128, 4, 4
x = torch.randn(1, n, dim)
model = Stack(layers, dim, heads)
params = sum(p.numel() for p in model.parameters())
print(f"{layers} blocks, {params:,} parameters = {format_bytes(4 * params)} in float32")
print(f"peak memory of one training step at n = {n:,}: {format_bytes(step_peak_memory(model, x))}")

# %% [markdown]
# The weights take 3 MiB; the training step needs many times more. That is the activations.
#
# **Check your understanding.** Which term of this peak grows with $n^2$, which with $n$, and
# which not at all? What happens to the peak if you double the number of heads?
#
# <details>
# <summary>Answer</summary>
#
# The attention buffers grow with $n^2$: two per head and block kept for the backward pass, and
# the backward pass's own temporaries. The other activations and their gradients grow with $n$:
# the inputs of each LayerNorm and linear layer ($n \times d$) and the MLP's hidden layer
# ($n \times 4d$). The parameters and their gradients (3 MiB each) do not depend on $n$.
# Doubling the heads (with $d$ fixed, so each head gets half the dimension) doubles the number
# of $n \times n$ buffers and leaves the rest alone. Try it with `Stack(layers, dim, 8)`: the
# peak at $n = 512$ grows from 63 MiB to 111 MiB.
#
# </details>

# %% [markdown]
# ## 2. Gradient checkpointing
#
# Checkpointing a block means: in the forward pass, keep only the block's **input** and throw
# away everything inside it. In the backward pass, when the gradient reaches the block, run the
# block's forward again from the saved input to rebuild its activations, then backpropagate
# through them. At any moment only one block's activations exist.
#
# $$\text{peak} \approx \underbrace{L \cdot \text{activations per block}}_{\text{without}}
# \quad\longrightarrow\quad \underbrace{L \cdot \text{block input} + 1 \cdot \text{activations per block}}_{\text{with checkpointing}}$$
#
# The price is one extra forward pass per block. `torch.utils.checkpoint.checkpoint(block, x,
# use_reentrant=False)` does all of it; our `Stack` wraps each block when `checkpointing=True`.
# First, the result must not change:

# %%
plain, checkpointed = Stack(layers, dim, heads), Stack(layers, dim, heads, checkpointing=True)
checkpointed.load_state_dict(plain.state_dict())
grads = []
for net in (plain, checkpointed):
    training_step(net, x)
    grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
print(f"max |gradient difference| with and without checkpointing: {(grads[0] - grads[1]).abs().max().item():.1e}")

# %% [markdown]
# Now the memory, for stacks of 1 to 8 blocks:

# %%
depths = [1, 2, 4, 8]
peaks = {False: [], True: []}
for depth in tqdm(depths, desc="stack depth", leave=False):
    for checkpointing in (False, True):
        peaks[checkpointing].append(step_peak_memory(Stack(depth, dim, heads, checkpointing), x))
print(f"{'blocks':>6} {'without':>11} {'with checkpointing':>19} {'saved':>7}")
for depth, without, with_ in zip(depths, peaks[False], peaks[True]):
    print(f"{depth:>6} {format_bytes(without):>11} {format_bytes(with_):>19} {without / with_:>6.1f}x")

# %% [markdown]
# **What to notice.** Without checkpointing the peak grows linearly with depth: every block's
# attention weights wait for the backward pass. With checkpointing it barely moves: one block
# at a time is rebuilt, and the saved inputs ($n \times d$ each, 256 KiB here) are small. The
# deeper the model, the bigger the saving: a 32-layer model saves close to 32 times the
# attention activations.
#
# And the cost in time? The backward pass now includes a second forward pass of every block.
# Forward is roughly a third of a training step, so expect about a third more time:

# %%
timings = {}
for checkpointing in (False, True):
    timings[checkpointing] = step_seconds(training_step, Stack(layers, dim, heads, checkpointing), x)
print(
    f"training step, {layers} blocks: {timings[False] * 1e3:.0f} ms without, {timings[True] * 1e3:.0f} ms with "
    f"checkpointing ({timings[True] / timings[False] - 1:+.0%})"
)

# %% [markdown]
# (Even the best of three runs in CPU time is noisy on a busy machine, whose other programs
# share the caches; run the cell again to see how much.)
#
# Checkpointing divides the memory by the number of layers, but it does not change how one
# layer scales. Measure a training step of the 4-block stack at growing $n$, with and without
# checkpointing:

# %%
lengths = [256, 512, 1_024]
length_reports = []
for checkpointing in (False, True):
    label = "with checkpointing" if checkpointing else "without checkpointing"
    seconds, peaks_n = [], []
    for length in tqdm(lengths, desc=label, leave=False):
        stack, tokens = Stack(layers, dim, heads, checkpointing), torch.randn(1, length, dim)
        peaks_n.append(step_peak_memory(stack, tokens))  # also the warm-up of the timed runs
        seconds.append(step_seconds(training_step, stack, tokens, warmup=0, repeats=2))
    length_reports.append(ScalingReport(f"{layers} blocks, {label}", tuple(lengths), tuple(seconds), tuple(peaks_n)))
without, with_ = length_reports
print(f"{'n':>6} {'peak without':>13} {'peak with':>10} {'time without':>13} {'time with':>10}")
for i, length in enumerate(lengths):
    print(
        f"{length:>6,} {format_bytes(without.peak_bytes[i]):>13} {format_bytes(with_.peak_bytes[i]):>10} "
        f"{without.seconds[i] * 1e3:>10.0f} ms {with_.seconds[i] * 1e3:>7.0f} ms"
    )

# %%
plot_scaling(*length_reports, metric="peak_bytes", title="Peak memory of a training step vs n (log-log)")

# %% [markdown]
# Two nearly parallel lines: checkpointing moves the curve down by a roughly constant factor
# (about 2 for these 4 blocks, more for deeper stacks, as the depth table showed) but leaves its
# slope alone, and the slope tends to 2 as the $n^2$ terms take over. The one block that is
# rebuilt still holds its $n \times n$ weights. Checkpointing and tiled attention
# (Lecture 3) solve different problems, and long-context training uses both.
#
# **Check your understanding.** A 48-layer model trains at $n = 8192$. Without checkpointing
# it needs 200 GiB of activations. Roughly what does it need with checkpointing of every
# block? And with checkpointing of every second block?
#
# <details>
# <summary>Answer</summary>
#
# One block's activations are about $200 / 48 \approx 4.2$ GiB. Checkpointing every block
# keeps 48 block inputs, each only $n \times d$ numbers, and rebuilds one block at a time:
# about 4 GiB plus the inputs, close to 48 times less. With segments of two blocks (one
# checkpoint every second block), 24 inputs are kept and two blocks are rebuilt at a time:
# about 8.3 GiB plus the inputs. If instead only every other block is checkpointed and the
# others store everything, the 24 storing blocks alone need 100 GiB: half the saving, for
# half the recomputation.
#
# </details>

# %% [markdown]
# ## 3. Mixed precision
#
# A float32 number takes 4 bytes; 16-bit formats take 2, halving every activation and making
# the arithmetic up to several times faster on hardware built for them. Two 16-bit formats
# compete, and they spend their 16 bits differently:

# %%
print(
    f"{'dtype':>15} {'bytes':>5} {'significand bits':>16} {'decimal digits':>14} {'eps':>8} "
    f"{'largest':>9} {'smallest normal':>15}"
)
for dtype in (torch.float32, torch.float16, torch.bfloat16):
    info = torch.finfo(dtype)
    bits = 1 - round(math.log2(info.eps))  # the stored fraction bits and the implicit leading 1
    print(
        f"{str(dtype):>15} {info.bits // 8:>5} {bits:>16} {bits * math.log10(2):>14.1f} {info.eps:>8.1e} "
        f"{info.max:>9.1e} {info.tiny:>15.1e}"
    )
print(
    "\n70,000 as float16:",
    torch.tensor(70_000.0).half().item(),
    "   as bfloat16:",
    torch.tensor(70_000.0).bfloat16().item(),
)

# %% [markdown]
# The precision of a format is its number of significand bits $p$ (the stored fraction bits
# plus an implicit leading 1), worth $p \log_{10} 2$ decimal digits. `eps` $= 2^{1-p}$ is the
# gap between 1 and the next larger number, so rounding moves a number by at most half of it,
# relatively. **float16** keeps more digits (11 bits, about 3.3 decimal digits) but overflows
# at 65,504: a large attention score or activation becomes `inf`, which is why float16
# training needs loss scaling. **bfloat16** ("brain float") keeps float32's 8 exponent bits,
# so its range is the same as float32's, and pays with precision: 8 bits, about 2.4 decimal
# digits, a rounding error of up to $2^{-8} \approx 0.4\%$. For training large models
# bfloat16 has become the default, because overflow is fatal and small rounding noise is not.
#
# ### Memory: half, as promised
#
# The same dense attention call, in float32 and in bfloat16:

# %%
q, k, v = torch.randn(3, 1, 4, 1_024, 64, dtype=torch.float64).unbind(0)
reference, _ = dense_attention(q, k, v, causal=True)  # float64: the "exact" answer
print(f"{'dtype':>15} {'peak memory':>12} {'max abs error vs float64':>25}")
for dtype in (torch.float32, torch.bfloat16):
    (out, _), peak = peak_memory(dense_attention, q.to(dtype), k.to(dtype), v.to(dtype), causal=True)
    print(f"{str(dtype):>15} {format_bytes(peak):>12} {(out.double() - reference).abs().max().item():>25.1e}")

# %% [markdown]
# **What to notice.** Memory halves exactly: the $n \times n$ buffers are half the size. The
# error grows from about $10^{-7}$ to about $10^{-2}$: bfloat16 keeps each number to within
# about 0.4%. The $n^2$ growth is untouched; bfloat16 buys a constant factor of 2, once.
#
# ### Autocast: 16 bits where it is safe
#
# Running everything in bfloat16 is risky: sums over many terms (a LayerNorm's variance, a
# softmax's normaliser, the loss) lose accuracy quickly. `torch.autocast` picks per operation:
# matrix multiplications and linear layers run in bfloat16, precision-sensitive operations
# stay in float32, and the **weights stay float32** (autocast casts a bfloat16 copy for each
# use). On CPU it works the same as on GPU:

# %%
with torch.autocast("cpu", dtype=torch.bfloat16):
    block = model.blocks[0]
    hidden = block.qkv(block.norm1(x))
    print(
        "LayerNorm output:",
        block.norm1(x).dtype,
        "  Linear output:",
        hidden.dtype,
        "  weights:",
        block.qkv.weight.dtype,
    )

# %% [markdown]
# Now a whole training step under autocast, against the float32 step: peak memory, and how
# far the gradients move.


# %%
def autocast_step(model, x):
    """One training step with the forward pass under bfloat16 autocast (backward follows its dtypes)."""
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(x).square().mean()
    loss.backward()


results = {}
for name, step in (("float32", training_step), ("bfloat16 autocast", autocast_step)):
    _, peak = peak_memory(step, model, x)  # also the warm-up of the timed runs
    seconds = step_seconds(step, model, x, warmup=0)
    results[name] = (peak, seconds, torch.cat([p.grad.flatten() for p in model.parameters()]))
reference_grad = results["float32"][2]
print(f"{'':>18} {'peak memory':>12} {'time':>8} {'relative gradient error':>24}")
for name, (peak, seconds, grad) in results.items():
    error = ((grad - reference_grad).norm() / reference_grad.norm()).item()
    print(f"{name:>18} {format_bytes(peak):>12} {seconds * 1e3:>6.0f} ms {error:>24.1e}")

# %% [markdown]
# **What to notice.** The peak falls by about half: the saved activations are bfloat16. The
# gradients differ from float32 by a fraction of a percent, the rounding noise of bfloat16; training
# tolerates that (SGD noise is far larger), and the float32 weights accumulate updates
# without losing small steps. The time depends on your hardware: a CPU without native
# bfloat16 units (most laptops) emulates bfloat16 arithmetic and is *slower* than in float32;
# on GPUs and recent server CPUs with bfloat16 matrix units, mixed precision is also faster.
#
# **Check your understanding.** Why are the weights kept in float32 even though every matrix
# multiplication runs in bfloat16? (Hint: add $10^{-4}$ to 1 in bfloat16.)
#
# <details>
# <summary>Answer</summary>
#
# Next to 1, bfloat16 numbers are $2^{-7} \approx 0.0078$ apart, so `1 + 1e-4` rounds back to
# exactly 1: the update is lost. A training step changes each weight by the learning rate
# times its gradient, typically $10^{-3}$ to $10^{-6}$ of the weight, so weights stored in
# bfloat16 would mostly stop moving. float32 weights (spacing $2^{-23} \approx 1.2 \times
# 10^{-7}$ next to 1) keep every small update; each step casts a bfloat16 copy for the
# arithmetic.
#
# </details>

# %% [markdown]
# ## 4. Which trick when
#
# | trick | what it saves | what it costs | result changes? | use it when |
# | --- | --- | --- | --- | --- |
# | tiled (flash) attention, Lecture 3 | attention memory $O(n^2) \to O(n)$, forward and backward | nothing on a GPU (it is faster); needs a fused kernel | no, exact | always, at any length where $n^2$ hurts |
# | gradient checkpointing | stored activations of $L$ layers $\to$ layer inputs + 1 layer | one extra forward pass, about +30% time | no | training is out of memory because of depth or batch |
# | bfloat16 mixed precision | half of every activation; faster matmuls on modern hardware | precision: 2 to 3 significant digits instead of 7 | slightly, within training noise | training or inference on hardware with bfloat16 units |
# | sliding window, Lecture 2 | compute and memory $O(n^2) \to O(n \cdot w)$ | no direct view beyond $w$ tokens | yes: a different model | the model was trained with it, or context is mostly local |
# | chunking, Lecture 2 | $O(n^2) \to O(n \cdot c)$, works with any model | all context across chunk borders | yes | inference with a fixed-context model; tasks that are local |
#
# They stack. A typical long-context training run uses flash attention, bfloat16 and
# checkpointing at once: flash attention removes the $n^2$, checkpointing removes the factor
# $L$, bfloat16 removes a factor 2. Windows and chunks are different: they change what the
# model computes, so they are a modelling decision, not an implementation detail.
#
# **Check your understanding.** You fine-tune a 32-layer model at $n = 32{,}768$ and run out of
# memory. In which order do you try the tricks, and why?
#
# <details>
# <summary>Answer</summary>
#
# First flash attention: at $n = 32{,}768$ the $n \times n$ buffers dominate (one float32 buffer
# is 4 GiB per head), it removes them without changing the result, and on a GPU it is faster.
# Then bfloat16 mixed precision: half of what remains, faster matrix products, rounding noise
# that training tolerates. Then gradient checkpointing: it divides the remaining activations
# by about the number of layers but costs about a third more time, so it comes last among the
# exact tricks. A window or chunking only if the model was trained with it or the task is
# local: they change what the model computes.
#
# </details>

# %% [markdown]
# ## References
#
# - Ruibin Xiong, Yunchang Yang, Di He, Kai Zheng, Shuxin Zheng, Chen Xing, Huishuai Zhang,
#   Yanyan Lan, Liwei Wang, Tie-Yan Liu. *On Layer Normalization in the Transformer
#   Architecture.* ICML 2020. [arXiv:2002.04745](https://arxiv.org/abs/2002.04745). The
#   pre-norm block of section 1.
# - Tianqi Chen, Bing Xu, Chiyuan Zhang, Carlos Guestrin. *Training Deep Nets with Sublinear
#   Memory Cost.* 2016. [arXiv:1604.06174](https://arxiv.org/abs/1604.06174). Gradient
#   checkpointing (section 2).
# - Paulius Micikevicius, Sharan Narang, Jonah Alben, et al. *Mixed Precision Training.*
#   ICLR 2018. [arXiv:1710.03740](https://arxiv.org/abs/1710.03740). float32 master weights and
#   loss scaling for float16 (section 3).
# - Dhiraj Kalamkar, Dheevatsa Mudigere, Naveen Mellempudi, et al. *A Study of BFLOAT16 for
#   Deep Learning Training.* 2019. [arXiv:1905.12322](https://arxiv.org/abs/1905.12322).
# - Tri Dao, Daniel Y. Fu, Stefano Ermon, Atri Rudra, Christopher Ré. *FlashAttention: Fast and
#   Memory-Efficient Exact Attention with IO-Awareness.* NeurIPS 2022.
#   [arXiv:2205.14135](https://arxiv.org/abs/2205.14135). The first row of the table.
#
# **Further reading**
#
# - Vijay Korthikanti, Jared Casper, Sangkug Lym, Lawrence McAfee, Michael Andersch, Mohammad
#   Shoeybi, Bryan Catanzaro. *Reducing Activation Recomputation in Large Transformer Models.*
#   2022. [arXiv:2205.05198](https://arxiv.org/abs/2205.05198). Recomputing only the cheap,
#   memory-hungry parts of a block.
# - David Goldberg. *What Every Computer Scientist Should Know About Floating-Point
#   Arithmetic.* ACM Computing Surveys 23(1), 1991.
