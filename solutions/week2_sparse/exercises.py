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
# # Week 2 exercises: sparse attention
#
# Eight graded parts and one written answer. You build the sparse patterns of the lectures as
# FlexAttention `mask_mod`s (strided, Longformer), draw a random block layout you can reproduce,
# build BigBird's block layout from it, write a block-sparse kernel whose work follows the
# layout, keep only the top-k
# scores of each query, count how many stacked layers a pattern needs before every token can
# hear from every other, and let the input choose its own blocks.
#
# **How grading works.** Each check cell runs your function on random inputs and compares the
# result with the course's reference implementation. It prints which checks passed, what was
# expected, what it saw, and a hint; the number at the bottom of the cell is your score for
# that part. When you submit, the grader runs your notebook in a sandbox and calls your
# functions from its own process, on inputs drawn for you alone that you have not seen: those
# calls decide the grade, so make your function correct rather than make the checks pass.
# Part 5 is also graded by measurement: your notebook's code runs again in a fresh process,
# and the grader times from outside the work your kernel does.
#
# Your graded feedback lists the same checks, and for each failed one the mistake it found and
# a hint; it leaves out the hidden inputs and the values expected on them (the self-check here
# shows them for the public inputs, under `details`).
#
# **Values first.** Most checks compare your results with the reference. The others test a
# property: reproducible seeds, a private generator, a uniform draw, the work done, an edge
# case, a `ValueError` for bad arguments. A property check counts only when your function's
# results are right on the inputs it tries (an edge case or an error check also tries an
# ordinary input): a function that returns wrong masks or numbers earns nothing for being
# fast or tidy, and such a check then says *not counted* and names the mistake in the values.
#
# **Rules.**
# - Write your functions with `torch` (and `numpy`, `math`) only. FlexAttention's pattern tools
#   `create_mask`, `or_masks` and `and_masks` are allowed: they are how real code builds
#   patterns. Graded runs do not have the `lcteach` reference implementations, and
#   `torch.nn.functional.scaled_dot_product_attention` and `flex_attention` raise an error
#   there: a graded function that calls them fails its checks.
# - Do not edit or delete the check cells; they are restored from the original when grading.
# - Tensors are `(batch, heads, seq, dim)`; positions start at 0; a mask is `True` where the
#   query *may attend* to the key.

# %%
import math
import time

import torch
from torch.nn.attention.flex_attention import create_mask, or_masks

from lcteach.grading import week2 as grade

_ = torch.manual_seed(0)


def causal_mask(b, h, q_idx, kv_idx):
    """Week 1's causal mask: the key is at or before the query."""
    return kv_idx <= q_idx


def show(mask_mod, n, n_k=None):
    """Print a mask_mod as a grid of 1 (attend) and . (blocked), one row per query."""
    mask = create_mask(mask_mod, None, None, n, n_k or n, device="cpu")[0, 0]
    for row in mask:
        print(" ".join("1" if allowed else "." for allowed in row.tolist()))


# %% [markdown]
# ## Part 1: strided (dilated) attention (2 points)
#
# A dilated pattern lets query `i` attend the keys a whole number of strides away:
# `j = i, i ± stride, i ± 2·stride, ...`, that is, `(i - j) % stride == 0`. With a stride of
# $\sqrt{n}$ each query sees about $\sqrt{n}$ keys, and two layers of it (with a local window)
# connect any two positions: that is the Sparse Transformer.
#
# Write `generate_strided(stride, causal=False)` returning a `mask_mod`. The off-by-ones,
# written down:
# - the query itself is in the pattern (distance 0 is a multiple of every stride);
# - without `causal`, the pattern looks **both ways** (earlier and later keys);
#   `causal=True` keeps only keys `j <= i`, the query included;
# - `stride=1` is full attention (with `causal=True`: the causal mask);
# - a `stride` below 1 makes no sense: raise `ValueError` with a message that says so.
#
# **One stride per head.** Longformer dilates its heads differently, so that some heads see
# far and others near. `stride` may also be a sequence of ints (a list or a tuple), one per
# head: head `h` uses `stride[h]`, that is, query `i` of head `h` attends key `j` when
# `(i - j) % stride[h] == 0` (and `j <= i` if `causal`). The mask_mod is then used with exactly
# `len(stride)` heads, `create_mask(mask_mod, None, len(stride), n, n)`, which calls it with `h`
# running over `0 .. len(stride) - 1`. An int still means the same stride on every head.
# Raise `ValueError` for an empty sequence and for a sequence holding any stride below 1.
# For example, `generate_strided([1, 3])` gives head 0 full attention and head 1 the keys
# `i, i ± 3, ...`; `generate_strided([2, 0])` raises `ValueError`.
#
# As in Week 1, a `mask_mod` is called on tensors under `torch.vmap`: use tensor operations
# (`%`, `==`, `<=`, `&`) on the indices. `causal` is a plain Python bool that you know when
# the mask_mod is made, so an `if causal:` around tensor code is fine. Under vmap `h` is a
# tensor too: `stride[h]` on a Python list fails, but a tensor indexed by it works
# (`strides = torch.tensor(stride)` when the mask_mod is made, then `strides[h]` inside it).


# %% nbgrader={"grade": false, "grade_id": "strided", "locked": false, "schema_version": 3, "solution": true}
def generate_strided(stride, causal=False):
    """Return mask_mod(b, h, q_idx, kv_idx): (q_idx - kv_idx) % stride == 0, and kv_idx <= q_idx if causal.
    A sequence of strides gives head h the stride stride[h]."""
    ### BEGIN SOLUTION
    per_head = not isinstance(stride, int)
    strides = list(stride) if per_head else [stride]
    if not strides:
        raise ValueError("stride must be an int >= 1 or a non-empty sequence of them, got an empty sequence")
    for head, value in enumerate(strides):
        if value < 1:
            raise ValueError(
                f"every stride must be at least 1, got {value}" + (f" for head {head}" if per_head else "")
            )
    table = torch.tensor(strides)

    def strided(b, h, q_idx, kv_idx):
        head_stride = table[h] if per_head else stride
        allowed = (q_idx - kv_idx) % head_stride == 0
        if causal:
            allowed = allowed & (kv_idx <= q_idx)
        return allowed

    strided.__name__ = "strided_" + "_".join(map(str, strides)) + ("_causal" if causal else "")
    return strided
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_strided", "locked": true, "points": 2, "schema_version": 3, "solution": false}
grade.strided(generate_strided)

# %% [markdown]
# Look at it: stride 3 over 9 tokens, both ways and causal; then one stride per head, here
# strides 1 and 3 on two heads (head 1 of the mask).

# %%
show(generate_strided(3), 9)
print()
show(generate_strided(3, causal=True), 9)
print()
two_heads = create_mask(generate_strided([1, 3], causal=True), None, 2, 9, 9, device="cpu")[0]
one_head = create_mask(generate_strided(3, causal=True), None, None, 9, 9, device="cpu")[0, 0]
print(f"per-head mask {tuple(two_heads.shape)}; head 1 is stride 3: {torch.equal(two_heads[1], one_head)}")

# %% [markdown]
# ## Part 2: a random block layout you can reproduce (2 points)
#
# BigBird's third ingredient is random attention, drawn per **block** rather than per token:
# cut the queries and keys into blocks, and let each query block attend a few key blocks
# drawn at random. The draw is stored as a bool *layout*: `layout[qi, kj]` is `True` when
# query block `qi` attends key block `kj`.
#
# Write `random_block_layout(q_blocks, kv_blocks, blocks_per_row, seed, exclude=None)`
# returning a bool tensor `(q_blocks, kv_blocks)` in which every row has exactly
# `blocks_per_row` **distinct** `True` entries, drawn uniformly at random. Each row is a draw of
# its own (rows are independent, so they are not all the same), and the query's own block is
# not guaranteed.
#
# Randomness in a model must be reproducible and private:
# - make a generator from the seed, `g = torch.Generator().manual_seed(seed)`, and pass
#   `generator=g` to every random call: the same seed gives the same layout, and the global
#   random state (`torch.manual_seed`, which the rest of the notebook shares) is neither used
#   nor changed;
# - draw without replacement: `torch.randint` can pick a block twice, `torch.randperm` cannot;
# - raise `ValueError` unless `1 <= blocks_per_row <= kv_blocks`.
#
# **Random blocks that add something.** In BigBird the window and the global tokens already
# cover some blocks of every row; a random block drawn on top of them is wasted. `exclude` is
# an optional bool tensor of the layout's shape, `True` for the blocks a row already has. With
# it, draw each row's `blocks_per_row` blocks uniformly among that row's blocks that are
# **not** excluded (an excluded block is never `True` in the result, and every free block of a
# row is equally likely). Rows differ in how many free blocks they have. Raise `ValueError`
# when `exclude` is not a bool tensor of shape `(q_blocks, kv_blocks)`, or when some row has
# fewer than `blocks_per_row` free blocks (say which row). `exclude=None` excludes nothing.
#
# Two ways that look right and are not: drawing among all blocks and then dropping the excluded
# ones leaves rows short; moving an excluded draw to the next free block makes the blocks just
# after an excluded run twice as likely.
#
# The grader checks properties, not the exact draws: the shape, dtype and counts, that the
# rows are not all alike, that seeds reproduce (and different seeds differ), that the global
# RNG is left alone, that over many seeds every block is drawn about equally often in every
# row, and the same for the free blocks of rows with an `exclude`.


# %% nbgrader={"grade": false, "grade_id": "random_block_layout", "locked": false, "schema_version": 3, "solution": true}
def random_block_layout(q_blocks, kv_blocks, blocks_per_row, seed, exclude=None):
    """Bool (q_blocks, kv_blocks) with exactly blocks_per_row distinct random True per row, drawn from
    seed among the blocks that exclude (bool (q_blocks, kv_blocks), optional) leaves free."""
    ### BEGIN SOLUTION
    if not 1 <= blocks_per_row <= kv_blocks:
        raise ValueError(f"blocks_per_row must be between 1 and kv_blocks = {kv_blocks}, got {blocks_per_row}")
    if exclude is None:
        exclude = torch.zeros(q_blocks, kv_blocks, dtype=torch.bool)
    if not isinstance(exclude, torch.Tensor) or exclude.dtype != torch.bool or exclude.shape != (q_blocks, kv_blocks):
        raise ValueError(f"exclude must be a bool tensor of shape ({q_blocks}, {kv_blocks})")
    generator = torch.Generator().manual_seed(seed)
    layout = torch.zeros(q_blocks, kv_blocks, dtype=torch.bool)
    for row in range(q_blocks):
        free = (~exclude[row]).nonzero().flatten()
        if len(free) < blocks_per_row:
            raise ValueError(f"row {row} has {len(free)} free blocks, fewer than blocks_per_row = {blocks_per_row}")
        chosen = free[torch.randperm(len(free), generator=generator)[:blocks_per_row]]
        layout[row, chosen] = True
    return layout
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_random_block_layout", "locked": true, "points": 2, "schema_version": 3, "solution": false}
grade.random_block_layout(random_block_layout)

# %%
print(random_block_layout(6, 6, 2, seed=1).int())

# %% [markdown]
# The same call with each row's own block and its two neighbours taken (a window of a block
# each side), and block 0 taken in every row (a global token): the random blocks land only on
# what is left.

# %%
blocks = torch.arange(6)
taken = (blocks[:, None] - blocks[None, :]).abs() <= 1
taken[:, 0] = True
print(random_block_layout(6, 6, 2, seed=1, exclude=taken).int())

# %% [markdown]
# ## Part 3: Longformer, a window plus global tokens (2 points)
#
# Longformer gives every token a **symmetric** window, and a few **global** tokens (a `[CLS]`
# token, the question in question answering) full attention in both directions:
#
# - window: query `i` attends key `j` when `|i - j| <= window // 2`. `window` counts the keys
#   of a row, the query included, so it is odd: `window=3` is `i-1, i, i+1`; `window=1` is the
#   query alone. Rows near the ends have fewer keys. An even window or one below 1: raise
#   `ValueError`.
# - global tokens: a global token attends **every** key (its row is all `True`) and **every**
#   query attends it (its column is all `True`). `global_tokens` is either a count `g` (the
#   first `g` tokens, positions `0 .. g-1`) or a list of positions, e.g. `[0, 17]`.
#
# Write `generate_longformer(window, global_tokens, dilation=1)` returning the `mask_mod` of the
# union: allowed when the pair is in the window **or** the query is global **or** the key is
# global. To test "is this index global?" under vmap, compare it with each position
# (`idx == p`) and combine with `|`; a lookup table indexed past its end would fail.
#
# **A dilated window.** Longformer widens the reach of a window without adding keys by
# spacing them out: with `dilation = d`, query `i` attends key `j` through the window when
# `(i - j) % d == 0` **and** `|i - j| <= (window // 2) * d`. A row still holds `window` keys,
# `i, i ± d, i ± 2d, ..., i ± (window // 2)·d`, but reaches `(window // 2)·d` on each side.
# `dilation=1` is exactly the window above. The global tokens are not dilated: a global token
# still attends every key and is attended by every query, at any distance. A `dilation` below 1:
# raise `ValueError`. For example, `generate_longformer(5, [0], dilation=3)` lets query 20 of a
# long sequence attend keys 14, 17, 20, 23, 26 and 0 (and token 0 attend every key).


# %% nbgrader={"grade": false, "grade_id": "longformer", "locked": false, "schema_version": 3, "solution": true}
def generate_longformer(window, global_tokens, dilation=1):
    """Return mask_mod: the window ((q_idx - kv_idx) % dilation == 0 and |q_idx - kv_idx| <= (window // 2) *
    dilation), or q_idx global, or kv_idx global."""
    ### BEGIN SOLUTION
    if window < 1 or window % 2 == 0:
        raise ValueError(
            f"window must be odd and at least 1 (the query plus the same number of keys on each side), got {window}"
        )
    if dilation < 1:
        raise ValueError(f"dilation must be at least 1 (keys dilation apart), got {dilation}")
    reach = (window // 2) * dilation
    positions = list(range(global_tokens)) if isinstance(global_tokens, int) else list(global_tokens)

    def is_global(idx):
        flag = idx < 0  # all False, with idx's shape
        for position in positions:
            flag = flag | (idx == position)
        return flag

    def longformer(b, h, q_idx, kv_idx):
        distance = q_idx - kv_idx
        in_window = (distance.abs() <= reach) & (distance % dilation == 0)
        return in_window | is_global(q_idx) | is_global(kv_idx)

    longformer.__name__ = f"longformer_w{window}_g{len(positions)}" + (f"_d{dilation}" if dilation > 1 else "")
    return longformer
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_longformer", "locked": true, "points": 2, "schema_version": 3, "solution": false}
grade.longformer(generate_longformer)

# %%
show(generate_longformer(3, [0, 6]), 10)
print()
show(generate_longformer(3, [0], dilation=2), 10)

# %% [markdown]
# ## Part 4: BigBird, block by block (3 points)
#
# The lecture built BigBird token by token, as `or_masks` of a window, global tokens and random
# blocks. The paper's implementation works on **blocks** throughout: it cuts the sequence into
# `n_blocks` blocks and decides per (query block, key block) pair, so that a block-sparse kernel
# (Part 5) computes exactly the blocks the layout marks and nothing else. Its layout (the
# "ITC" construction) has three parts:
#
# - **window**: query block `qi` attends key block `kj` when `|qi - kj| <= window_blocks // 2`.
#   `window_blocks` counts the blocks of a row, its own included, so it is odd: `window_blocks=3`
#   is blocks `qi-1, qi, qi+1`. Rows at the ends have fewer.
# - **global**: the first `global_blocks` blocks are global: a global block attends every block
#   (its row is all `True`) and every block attends it (its column is all `True`).
# - **random**: every row that is **not** global gets `random_blocks` more key blocks, drawn
#   uniformly among the blocks that its window and the global blocks leave free, so none is
#   wasted on a block the row already has: such a row holds its window and global blocks plus
#   exactly `random_blocks` more. A global row is full already and draws nothing.
#
# Write `bigbird_layout(n_blocks, window_blocks, global_blocks, random_blocks, seed)` returning
# that bool `(n_blocks, n_blocks)` layout. The random blocks are what your `random_block_layout`
# (Part 2) draws with `exclude`: one call for the rows `global_blocks .. n_blocks - 1`, with the
# window and global blocks of those rows as `exclude` (row `i` of that call belongs to query
# block `global_blocks + i`). As in Part 2, the draws come from a generator made from `seed`:
# the same seed gives the same layout, and the global random state is neither used nor changed.
# `random_blocks = 0` is BigBird without random blocks (Part 2 wants at least one block per
# row, so do not call it then).
#
# Raise `ValueError` when `window_blocks` is even or below 1, when `global_blocks` is not
# between 0 and `n_blocks`, when `random_blocks` is below 0, and when some row that is not
# global has fewer free blocks than `random_blocks` (Part 2 raises that one for you if you pass
# its error on).
#
# The grader compares the window and global blocks with the reference entry by entry, and the
# random blocks by their properties, as in Part 2: the count in every row, none on a taken
# block, reproducible seeds, the global RNGs left alone, a uniform draw over many seeds among a
# row's free blocks, the errors, and the edge cases (every block global, a window wider than the
# sequence, rows left with exactly `random_blocks` free blocks).


# %% nbgrader={"grade": false, "grade_id": "bigbird", "locked": false, "schema_version": 3, "solution": true}
def bigbird_layout(n_blocks, window_blocks, global_blocks, random_blocks, seed):
    """Bool (n_blocks, n_blocks): window blocks (|qi - kj| <= window_blocks // 2), the first global_blocks
    rows and columns, and random_blocks more per other row, drawn from seed among the blocks left free."""
    ### BEGIN SOLUTION
    if window_blocks < 1 or window_blocks % 2 == 0:
        raise ValueError(f"window_blocks must be odd and at least 1, got {window_blocks}")
    if not 0 <= global_blocks <= n_blocks:
        raise ValueError(f"global_blocks must be between 0 and n_blocks = {n_blocks}, got {global_blocks}")
    if random_blocks < 0:
        raise ValueError(f"random_blocks must be at least 0, got {random_blocks}")
    blocks = torch.arange(n_blocks)
    layout = (blocks[:, None] - blocks[None, :]).abs() <= window_blocks // 2
    layout[:global_blocks] = True
    layout[:, :global_blocks] = True
    if random_blocks and global_blocks < n_blocks:
        taken = layout[global_blocks:]  # row i: query block global_blocks + i
        layout[global_blocks:] |= random_block_layout(
            n_blocks - global_blocks, n_blocks, random_blocks, seed, exclude=taken
        )
    return layout
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_bigbird", "locked": true, "points": 3, "schema_version": 3, "solution": false}
grade.bigbird(bigbird_layout)

# %% [markdown]
# Eight blocks, a window of 3 blocks, one global block and one random block per row: block 0's
# row and column are full, and every other row holds its window, block 0 and one block more.

# %%
print(bigbird_layout(8, 3, 1, 1, seed=0).int())

# %% [markdown]
# How sparse is it? At n = 4096 with blocks of 64 (64 blocks), a window of 3 blocks, 2 global
# blocks and 3 random blocks, a row that is not global computes 8 of its 64 blocks. The count
# per row stays the same as n grows, so the total is O(n), not O(n^2): the global rows are the
# only ones that grow with n, and there are only 2 of them.

# %%
for n in (1024, 4096, 16384):
    layout = bigbird_layout(n // 64, 3, 2, 3, seed=0)
    print(f"BigBird at n = {n:5d}: {layout.float().mean().item():6.1%} of the blocks")

# %% [markdown]
# ## Part 5: block-sparse attention that skips empty blocks (4 points)
#
# A mask alone saves nothing: masked dense attention still computes every score and throws
# most away. A block-sparse kernel computes **only** the blocks its layout marks.
#
# Write `block_sparse_attention(q, k, v, layout, block_size)` returning `out (B, H, Nq, Dv)`:
# - `q (B, H, Nq, D)`, `k (B, H, Nk, D)`, `v (B, H, Nk, Dv)`; `layout` is a bool
#   `(ceil(Nq / block_size), ceil(Nk / block_size))`, the same for every batch entry and head.
# - Query `i` attends key `j` exactly when `layout[i // block_size, j // block_size]`: the
#   result must equal masked dense attention, $\mathrm{softmax}(QK^\top/\sqrt{d})V$ with that
#   mask. The softmax of a query runs over **all** active blocks of its row together.
# - The last blocks may be shorter (`Nq`, `Nk` need not be multiples of `block_size`): keys
#   past `Nk` do not exist and are never attended.
# - A query block whose layout row is all `False` has no key to attend: its queries get a
#   **zero** output (the softmax of nothing is undefined; zero is the convention of
#   `lcteach.block_sparse_attention`).
# - The output keeps the inputs' dtype (the checks try float32 and float64).
#
# One way: for each query block, gather the key (and value) positions of the active blocks in
# its row, compute that `(block, active keys)` strip of scores, softmax it, multiply by the
# gathered values.
#
# **Graded by measurement.** At n = 4096, block size 64, D = Dv = 32, with 2 active key blocks
# in each row of 64 (1/32 of the pairs), the grader calls your function twice, on new inputs
# each time, in a fresh process of its own that runs your notebook's cells first, and reads the
# CPU time of the call from outside that process (all its threads count). The output must be
# right; the faster call must take under **25%** of the CPU time of lean masked dense
# attention on inputs of the same size (one product for all n x n scores, masked and
# normalised in place, one product with the values), timed in the grader's process.
#
# Computing the n x n scores and masking them afterwards is dense work whatever library does
# it, so it fails; so does computing every block's scores and keeping the active ones (about
# 60%). A kernel that multiplies only the active blocks takes a few percent.


# %% nbgrader={"grade": false, "grade_id": "block_sparse_attention", "locked": false, "schema_version": 3, "solution": true}
def block_sparse_attention(q, k, v, layout, block_size):
    """Attention over the (query block, key block) pairs that layout marks: out (B, H, Nq, Dv)."""
    ### BEGIN SOLUTION
    n_k = k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1])
    out = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
    for qi in range(layout.shape[0]):
        key_blocks = layout[qi].nonzero().flatten().tolist()
        if not key_blocks:
            continue  # no key to attend: these queries keep a zero output
        keys = torch.cat(
            [torch.arange(kj * block_size, min((kj + 1) * block_size, n_k), device=q.device) for kj in key_blocks]
        )
        rows = slice(qi * block_size, (qi + 1) * block_size)
        scores = q[..., rows, :] @ k[..., keys, :].transpose(-2, -1) * scale
        out[..., rows, :] = torch.softmax(scores, dim=-1) @ v[..., keys, :]
    return out
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_block_sparse_attention", "locked": true, "points": 4, "schema_version": 3, "solution": false}
grade.block_sparse_attention(block_sparse_attention)

# %% [markdown]
# Time follows the work. Below, your kernel at n = 4096 with 1, 4 and 16 active key blocks per
# row of 64; masked dense attention computes all 64 every time.

# %%
q, k, v = (torch.randn(1, 4, 4096, 64) for _ in range(3))
for per_row in (1, 4, 16):
    layout = random_block_layout(64, 64, per_row, seed=per_row)
    start = time.perf_counter()
    block_sparse_attention(q, k, v, layout, 64)
    print(f"{per_row:2d} of 64 blocks per row: {time.perf_counter() - start:.3f} s")

# %% [markdown]
# ## Part 6: top-k attention (3 points)
#
# Fixed patterns decide in advance who may attend whom. Top-k attention decides from the
# content: each query keeps only its `top_k` highest scores and takes the softmax over those.
#
# Write `topk_attention(q, k, v, top_k, causal=False, mask_mod=None)` returning
# `(out (B, H, Nq, Dv), weights (B, H, Nq, Nk))`, with the scores scaled by $1/\sqrt{d}$:
# - the allowed keys of query `i` are `j <= i` when `causal`, and only where `mask_mod` is
#   `True` when it is given (materialise it on the inputs' device with
#   `create_mask(mask_mod, None, None, Nq, Nk, device=q.device)`: without `device=`,
#   `create_mask` makes a CUDA mask on a machine that has a GPU); choose the top `top_k`
#   **among the allowed keys**, not among all keys;
# - ties at the k-th score go to the **earlier** key, so a row keeps exactly
#   `min(top_k, allowed keys)` keys: `torch.sort(scores, dim=-1, descending=True, stable=True)`
#   puts the earlier of equal scores first (`torch.topk` promises no order for ties);
# - the softmax runs over the kept keys only; weights are exactly 0 elsewhere;
# - `top_k >= Nk` is ordinary (masked) attention; a query with no allowed key gets zero
#   weights and a zero output;
# - results keep the inputs' dtype (the checks try float32 and float64).


# %% nbgrader={"grade": false, "grade_id": "topk_attention", "locked": false, "schema_version": 3, "solution": true}
def topk_attention(q, k, v, top_k, causal=False, mask_mod=None):
    """Each query attends its top_k highest-scoring allowed keys: (out (B, H, Nq, Dv), weights (B, H, Nq, Nk))."""
    ### BEGIN SOLUTION
    n_q, n_k = q.shape[-2], k.shape[-2]
    allowed = torch.ones(n_q, n_k, dtype=torch.bool, device=q.device)
    if causal:
        allowed = allowed.tril()
    if mask_mod is not None:
        allowed = allowed & create_mask(mask_mod, None, None, n_q, n_k, device=q.device)[0, 0]
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~allowed, float("-inf"))
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices
    kept = torch.zeros_like(scores, dtype=torch.bool).scatter(-1, order[..., :top_k], True) & allowed
    weights = torch.softmax(scores.masked_fill(~kept, float("-inf")), dim=-1)
    weights = weights.nan_to_num(0.0)  # a row with no kept key: softmax of all -inf is NaN, we want 0
    return weights @ v, weights
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_topk_attention", "locked": true, "points": 3, "schema_version": 3, "solution": false}
grade.topk_attention(topk_attention)

# %% [markdown]
# How much of the attention does top-k keep? Below, the share of ordinary attention's weight
# that falls on the kept keys, for random queries and keys. Random scores are fairly flat;
# trained models concentrate their attention on few keys, which is what makes top-k work there.

# %%
q, k, v = (torch.randn(1, 1, 512, 64) for _ in range(3))
_, dense_weights = topk_attention(q * 3, k, v, 512)  # top_k >= n: ordinary attention
for top_k in (8, 64, 256):
    _, weights = topk_attention(q * 3, k, v, top_k)
    kept = (dense_weights * (weights > 0)).sum(-1).mean().item()
    print(f"top_k={top_k:3d}: the kept keys carry {kept:.0%} of the dense attention weight")

# %% [markdown]
# ## Part 7: how many layers until every token hears every other? (2 points)
#
# A sparse layer moves information only along its pattern. With the pattern as a bool matrix
# `A` (`A[i, j]`: query `i` attends key `j`), one layer moves key `j`'s information to query
# `i` when `A[i, j]`. Between layers the **residual** connection keeps each position's own
# information, so after `L` layers `j` has reached `i` when `(A or I)^L [i, j]` is true
# (boolean matrix power, `I` the identity): a path may wait in place.
#
# Write `minimal_layers(pattern, n=None, causal=None)` returning the fewest layers `L` after
# which every query has information from every key it *could* have, as a Python `int`
# (`int(...)`; a numpy integer is accepted, a float or a tensor is not), or `None` if no
# depth gets there:
# - `pattern` is a bool `(n, n)` matrix, or a `mask_mod` together with `n`;
# - "every key it could have": every `j <= i` for a **causal** pattern (no query attends a
#   later key), every `j` otherwise; `causal=True/False` forces the choice;
# - after 0 layers each position has only itself: `n = 1` needs 0 layers;
# - a path never needs more than `n - 1` hops, so if `(A or I)^(n-1)` does not cover the
#   target, nothing will: return `None`. (You may stop sooner: once a layer reaches nothing
#   new, no later layer will.)
#
# A boolean product is a float matrix product of 0/1 matrices followed by `> 0`.


# %% nbgrader={"grade": false, "grade_id": "minimal_layers", "locked": false, "schema_version": 3, "solution": true}
def minimal_layers(pattern, n=None, causal=None):
    """Fewest stacked layers for full reach of a bool (n, n) pattern or a mask_mod at length n; None if never."""
    ### BEGIN SOLUTION
    if callable(pattern):
        pattern = create_mask(pattern, None, None, n, n, device="cpu")[0, 0]
    size = pattern.shape[0]
    step = (pattern | torch.eye(size, dtype=torch.bool)).float()  # the residual keeps what a position had
    if causal is None:
        causal = not pattern.triu(1).any()
    target = torch.ones(size, size, dtype=torch.bool)
    if causal:
        target = target.tril()
    reach = torch.eye(size, dtype=torch.bool)  # after 0 layers, each position has only itself
    for layers in range(size):
        if (reach | ~target).all():
            return layers
        grown = (step @ reach.float()) > 0
        if torch.equal(grown, reach):
            return None  # this layer reached nothing new, so no later one will
        reach = grown
    return None
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_minimal_layers", "locked": true, "points": 2, "schema_version": 3, "solution": false}
grade.minimal_layers(minimal_layers)

# %% [markdown]
# The patterns of this week at n = 256, with windows of 17 keys. Strided attention alone never
# connects positions that are not a multiple of the stride apart; with a window it needs two
# layers.


# %%
def causal_window_17(b, h, q_idx, kv_idx):
    return (kv_idx <= q_idx) & (q_idx - kv_idx < 17)


def symmetric_window_17(b, h, q_idx, kv_idx):
    return (q_idx - kv_idx).abs() <= 8


patterns = {
    "causal sliding window of 17": causal_window_17,
    "symmetric window of 17": symmetric_window_17,
    "Longformer: window 17, 1 global token": generate_longformer(17, 1),
    "strided 16, causal": generate_strided(16, causal=True),
    "strided 16 or window 17, causal": or_masks(generate_strided(16, causal=True), causal_window_17),
}
for name, mask_mod in patterns.items():
    layers = minimal_layers(mask_mod, 256)
    print(f"{name:40s} {'never' if layers is None else f'{layers} layers'}")

# %% [markdown]
# ## Part 8: blocks chosen by the content (3 points)
#
# Every layout so far was fixed before the input arrived. A **content-adaptive** layout lets
# the input choose: summarise each block of queries and each block of keys by its mean
# vector, score each pair of blocks by the dot product of their means, and let every query
# block keep the key blocks that score highest. This is how MoBA and Quest find the few
# blocks a query needs at a cost of $T_q T_k$ block scores instead of $N_q N_k$ token scores
# (Lecture 4).
#
# Write `select_blocks(q, k, block_size, keep, causal=False)` returning a bool layout
# `(B, H, Tq, Tk)` for Part 5's `block_sparse_attention`, with `Tq = ceil(Nq / block_size)`
# and `Tk = ceil(Nk / block_size)`:
# - a block's mean is over its rows; the last block may be shorter, and its mean is over its
#   **real** rows only (no zero padding counted);
# - the score of query block `i` and key block `j` is `mean_q[i] · mean_k[j]`; each query
#   block keeps its `keep` highest-scoring key blocks (all of them if there are fewer);
# - with `causal=True` (then `Nq == Nk`), query block `i` may keep only key blocks `j <= i`,
#   and it always keeps its own block `i`, which counts as one of the `keep`: a query block
#   needs its own keys, since they hold the query itself and its nearest neighbours;
# - `q` and `k` are `(B, H, N, D)`; select for every batch and head on its own.
#
# The grader compares your layout with the reference entry by entry on random inputs, where
# no two scores tie (break ties as you like).


# %% nbgrader={"grade": false, "grade_id": "select_blocks", "locked": false, "schema_version": 3, "solution": true}
def select_blocks(q, k, block_size, keep, causal=False):
    """Bool layout (B, H, Tq, Tk): each query block's `keep` best key blocks by the dot product of block means."""

    ### BEGIN SOLUTION
    def means(x):
        blocks = x.split(block_size, dim=-2)
        return torch.stack([block.mean(dim=-2) for block in blocks], dim=-2)

    scores = means(q) @ means(k).transpose(-2, -1)
    q_blocks, k_blocks = scores.shape[-2:]
    if causal:
        i, j = torch.arange(q_blocks)[:, None], torch.arange(k_blocks)[None, :]
        scores = scores.masked_fill(j > i, float("-inf")).masked_fill(j == i, float("inf"))
    kept = scores.topk(min(keep, k_blocks), dim=-1).indices
    layout = torch.zeros(scores.shape, dtype=torch.bool).scatter(-1, kept, True)
    return layout & (scores > float("-inf"))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_select_blocks", "locked": true, "points": 3, "schema_version": 3, "solution": false}
grade.select_blocks(select_blocks)

# %% [markdown]
# Where it pays: below, 64 query blocks each need one far-away key block that holds a copy of
# their content (plus noise), as in retrieval. A local layout of the same size (the block and
# its neighbour) misses it; two blocks chosen by the content find it. The error is against
# dense attention; your Part 5 kernel does the work.

# %%
generator = torch.Generator().manual_seed(0)
block, blocks, dim = 16, 64, 32
k = torch.randn(1, 1, block * blocks, dim, generator=generator)
v = torch.randn(1, 1, block * blocks, dim, generator=generator)
source = torch.randperm(blocks, generator=generator)  # query block i needs key block source[i]
q = 2 * k.unflatten(-2, (blocks, block))[:, :, source].flatten(2, 3)
q = q + torch.randn(q.shape, generator=generator)
exact = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(dim), dim=-1) @ v
local = torch.eye(blocks, dtype=torch.bool) | torch.eye(blocks, dtype=torch.bool).roll(1, dims=0)
for name, layout in {
    "local (own block + previous)": local,
    "select_blocks, keep=2": select_blocks(q, k, block, 2),
}.items():
    layout = layout.expand(1, 1, blocks, blocks)
    error = (block_sparse_attention(q, k, v, layout, block) - exact).abs().mean().item()
    found = layout[0, 0, torch.arange(blocks), source].float().mean().item()
    print(f"{name:30s} finds the needed block for {found:4.0%} of the query blocks, mean error {error:.3f}")

# %% [markdown]
# ## Part 9: written answer (2 points, graded by your instructor)
#
# In a few sentences: a decoder runs 12 layers of causal sliding-window attention with a window
# of 512 tokens over 8192-token documents. (a) After the 12 layers, how far back can
# information reach the last token, and how many layers would it need to hear the first token?
# (b) Adding 2 global tokens at positions 0 and 1 (causal: they see only the past, everyone
# sees them) does not fix this for the last token: why, and what would? (c) For a bidirectional
# encoder, how many layers does BigBird (window + global tokens + random blocks) need for full
# reach, and what does each global token cost per layer in pairs?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_reach", "locked": false, "points": 2, "schema_version": 3, "solution": true}
# (a) Each layer moves information back at most 511 positions (the window holds the query and
# the 511 keys before it), so after 12 layers the last token (8191) has information from
# positions 8191 - 12·511 = 2059 onwards, about a quarter of the document is out of reach. To
# hear token 0 it needs ceil(8191 / 511) = 17 layers.
# (b) In a causal model the global tokens at positions 0 and 1 can attend only positions 0 and 1:
# everyone can read them, but they never collect anything from the rest of the document, so
# they cannot relay token 5000 to token 8191. What helps: global (or "summary") tokens placed
# later that gather earlier context, strided/dilated layers (jumps of a whole window), or more
# layers.
# (c) Two layers: key j reaches a global token in layer 1 (global tokens attend everyone), and
# the global token reaches every query in layer 2 (everyone attends it); the window and random
# blocks only add paths. A global token adds its row and its column, 2n - 1 pairs per layer,
# O(n) rather than O(n^2), and every long-range message squeezes through those few vectors.
