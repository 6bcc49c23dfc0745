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
# # Week 2 · Lecture 3 · Can a sparse pattern fetch a fact from far back?
#
# Lectures 1 and 2 counted what a pattern can see, in one layer and through stacked layers,
# and what it costs. Counting is not learning. This lecture trains small models with four
# patterns, one, two and three layers deep, on a task that needs one exact fact from a chosen
# distance back, and measures where each succeeds and where it fails.
#
# In this lecture you will
#
# 1. meet the **associative-recall** task, the simplest test of long-range retrieval;
# 2. predict, from the masks and their hop counts (Lecture 2), which distances each pattern
#    can answer at each depth;
# 3. train one model live and read its accuracy by distance;
# 4. compare full attention, a window, a strided pattern and BigBird at depths 1, 2 and 3 on
#    the full experiment, trained with the course's script and shipped with `lcteach`;
# 5. see the difference between a path that exists and a path that a model learns to use.

# %%
import lcteach  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads OpenMP, see Week 1)

# isort: split
import torch

from lcteach.experiments import (
    REACH_CLASSES,
    RecallTask,
    accuracy_by_distance,
    accuracy_by_reach,
    distance_bins,
    load_recall_results,
    make_recall_batch,
    train_recall,
)
from lcteach.masks import recall_patterns
from lcteach.viz import plot_reach_by_distance, plot_recall_accuracy

_ = torch.manual_seed(0)

# %% [markdown]
# ## 1. The task: associative recall
#
# A sequence of $n$ positions holds $n - 1$ **key-value pairs**, one pair per position, and
# ends with a **query**: a key seen earlier, with a blank where its value should be. The model
# must output the value that was paired with that key. It is a dictionary lookup, and the
# skill behind copying a name defined pages earlier, answering a question about a document,
# or finding the needle in a haystack.
#
# The **distance** $d$ is the query position minus the position of the queried pair: $d = 1$
# is the pair just before the query, $d = n - 1$ the first pair. It is drawn uniformly, so
# every distance is tested equally often. A small example with 8 positions and 4 possible
# values:

# %%
tiny = RecallTask(seq_len=8, num_keys=8, num_values=4)
example = make_recall_batch(tiny, 1, generator=torch.Generator().manual_seed(3))
print("position:", list(range(8)))
print("key:     ", example.keys[0].tolist())
print("value:   ", example.values[0].tolist()[:-1], "+ blank")
print(f"query key {example.keys[0, -1].item()} -> answer {example.answers.item()}, distance {example.distances.item()}")

# %% [markdown]
# The experiment uses $n = 64$ positions, 64 key tokens and 16 values, so guessing is right
# $1/16 \approx 6\%$ of the time: that is the **chance level**.
#
# ## 2. The model, the masks, and what depth adds
#
# The model (`lcteach.experiments.recall.RecallModel`) is as small as it can be: each
# position is the sum of a key embedding and a value embedding; then $L$ attention layers
# (two heads, pre-norm, with a residual connection); then a linear readout at the query
# position. It has no position embeddings, so the mask is all it knows about where a token is.
#
# BigBird and Longformer are encoders: a token reads keys on both sides. The experiment runs
# every pattern that way. For the query, the last position, that changes nothing, since no
# key lies after it. It matters for the positions in between, which may now read the query,
# and a position can relay the right fact only if it knows which fact is asked for.
#
# - **full** attention sees every distance;
# - **window_31**, a symmetric window of 15 keys on each side, sees distances 1 to 15;
# - **strided_4** (`generate_strided(4)`, both ways) sees the multiples of 4;
# - **bigbird** has a symmetric window of 7, one global token (position 0) and one random block
#   of 8 keys per query block. The query is an ordinary token, **not** global, so its row holds
#   distances 1 to 3 (the window), the 8 distances of its random block and $d = 63$ (the
#   global token).
#
# `plot_reach_by_distance` asks Lecture 2's question of the query's row: how many layers does
# a pair at distance $d$ need to reach the query?

# %%
task = RecallTask()  # 64 positions, 64 keys, 16 values
patterns = recall_patterns(task.seq_len)
plot_reach_by_distance(patterns, task.seq_len, layers=3)

# %% [markdown]
# The yellow cells are the query's own row of the mask: one layer, no relay. With more
# layers the window reaches 15 positions further per layer, and BigBird reaches *everything*
# in two: a pair is read by the global token in layer 1, and the global token is read by the
# query in layer 2. The strided pattern never leaves its grid, however deep.
#
# A hop count says that a path exists. It does not say that a model can send the right fact
# along it, because it ignores what each position knows, and when:
#
# - **Two layers of BigBird.** In layer 1 the global token reads all 63 pairs at once; it
#   reads the query in the same layer, so it cannot yet know which pair is wanted. To relay in
#   two layers it must squeeze 63 key-value pairs into one 64-dimensional vector: the
#   bottleneck of Lecture 1.
# - **Three layers of BigBird.** Now there is a clean plan, one lookup per layer. Layer 1: the
#   global token reads the query and copies its key. Layer 2: it uses that key to find the
#   pair and reads its value. Layer 3: the query reads the global token. The window has the
#   same kind of plan: with three layers, the positions near the query can answer distances
#   up to 30.
#
# **Predict before you look.** For each pattern and depth, sketch the accuracy against
# distance: where should it be near 100%, and where at chance?

# %% [markdown]
# ## 3. Train one model live
#
# Training all twelve models (four patterns, three depths) takes several minutes, longer than
# a lecture cell should, so we train one here, the one-layer window, with exactly the settings
# of the full experiment, and load the other results afterwards. `train_recall` trains for
# 1000 Adam steps (learning rate $2 \cdot 10^{-3}$) on fresh batches of 64 sequences drawn
# from a seeded generator, and shows a progress bar. Training is dense: the mask is a boolean
# matrix passed to `scaled_dot_product_attention`, because FlexAttention has no backward pass
# on CPU (Lecture 2).

# %%
window_name = "window_31"
model, final_loss = train_recall(task, patterns[window_name], layers=1, seed=0)
print(
    f"{window_name}, 1 layer: mean loss over the last 100 steps {final_loss:.2f} "
    f"(a model that guesses: ln 16 = {torch.log(torch.tensor(16.0)).item():.2f})"
)

# %% [markdown]
# A loss well below that of guessing, but far from 0: the model has learned something, not
# everything. Where does it fail? Measure the accuracy on 4,000 held-out sequences (a
# generator of their own, seed 1), in four bins of 16 distances:

# %%
held_out = make_recall_batch(task, 4_000, generator=torch.Generator().manual_seed(1))
quarters = distance_bins(task.seq_len, (1, 16, 32, 48, 64))
for (low, high), accuracy in zip(quarters, accuracy_by_distance(model, held_out, quarters)):
    print(f"distance {low:>2} to {high - 1:<2}  accuracy {accuracy:6.1%}")
print(f"guessing (chance)      {1 / task.num_values:6.1%}")

# %% [markdown]
# Within its window the model is essentially perfect; beyond it, it guesses. No amount of
# training moves that line: the query cannot attend to a pair 16 or more positions back, so
# with one layer the output does not depend on that pair at all
# (`tests/experiments/test_recall.py` checks exactly that, for one layer and for two).

# %% [markdown]
# ## 4. The full experiment
#
# The course ships the results of the full run, made with the course's script
#
# ```bash
# python -m lcteach.experiments.recall --out lcteach/experiments/data/recall_results.json
# ```
#
# which trains one model per pattern and depth exactly as above (1000 steps, seed 0) and
# measures its accuracy at every distance on the same 4,000 held-out sequences, about 63 per
# distance. `load_recall_results()` reads the file from inside the `lcteach` package, so it
# works wherever `lcteach` is installed. Run the command yourself to reproduce it (about
# seven minutes on two CPU cores).

# %%
shipped = load_recall_results()
print("settings:", shipped.settings)
print(f"chance level: 1/{shipped.task.num_values} = {shipped.chance:.1%}")

# %% [markdown]
# Your live model was trained with the same seed and settings as the shipped one-layer
# window, so it should give the same accuracies, distance by distance. (On another machine,
# floating point may round differently and a few answers may change.)

# %%
saved = shipped.result(window_name, 1)
live = accuracy_by_distance(model, held_out, saved.bins)  # one bin per distance, 1 to 63
print(
    f"largest difference, live vs shipped, over {len(saved.bins)} distances: "
    f"{max(abs(a - b) for a, b in zip(live, saved.accuracy)):.3f}"
)

# %% [markdown]
# Now every model, with its distances sorted by how the query can reach them at that depth:
# in **one hop** (its own row of the mask), only **relayed** through other positions, or by
# **no path** at all. Each cell gives how many of the 63 distances fall in the class and the
# mean accuracy over them.

# %%
print(f"{'pattern':<10} {'layers':>6}" + "".join(f" | {name:>13}" for name in REACH_CLASSES))
for result in shipped.results:
    split = accuracy_by_reach(result, patterns[result.pattern], task.seq_len)
    cells = [f"{count:>2} d {accuracy:>6.1%}" if count else "-" for count, accuracy in split.values()]
    print(f"{result.pattern:<10} {result.layers:>6}" + "".join(f" | {cell:>13}" for cell in cells))

# %% [markdown]
# And every distance on its own: one panel per pattern, one row per depth. A grey cross marks
# a distance with no path to the query at that depth, where nothing can beat chance. A pale
# cell *without* a cross is a path the model did not learn to use.

# %%
plot_recall_accuracy(shipped, patterns)

# %% [markdown]
# **What the experiment shows.**
#
# - **Full attention** answers every distance at every depth: far is no harder than near
#   when every key is one hop away.
# - **One hop is always learned.** Every pattern, at every depth, answers the distances in
#   its query's own row of the mask (98 to 100%), and the strided pattern's comb of multiples of
#   4 is as sharp at three layers as at one.
# - **No path means chance**, as it must.
# - **Relayed distances stay at chance.** With three layers the window has paths to 30 more
#   distances, and BigBird with two or three layers has a path from *every* distance to the
#   query. The four models that have such paths guess there (5 to 6%; chance is 6.25%):
#   BigBird with three layers answers exactly the distances it answers with one. Depth gave
#   these models the paths; training did not teach them to use them.
#
# **Why the relays are not learned.** Relaying through the global token takes three lookups
# (copy the query's key, find the pair, read the global token), and none of them lowers the
# loss until the other two exist: gradient descent gets no signal to start any of them, while
# the one-hop lookups pay off at once. The models learn the one-hop solution in a few hundred
# steps and stay there. In the course authors' runs, training twenty times longer (20,000
# steps), models twice as wide with four heads, and other learning rates left the relayed
# distances at chance too. This is a finding about small models and short training, not a
# law: larger models trained on far more data do learn circuits that chain attention layers
# (the two-layer *induction heads* of Olsson et al., 2022), often abruptly after a long
# plateau. But it is the right caution for reading Lecture 2: the depth at which a pattern
# reaches everything is what a model *could* use, and BigBird's universality theorem
# (Lecture 1) says which functions some weights compute, not which ones training finds.
#
# The lesson generalises: a fixed sparse pattern is a bet about where the useful keys are. A
# window bets on locality, a stride on a grid, BigBird on relaying through its global and
# random links, and that last bet pays only if the model learns to relay. Long-context
# benchmarks (needle in a haystack, Week 4) test exactly these bets at 100K tokens.

# %% [markdown]
# **Check your understanding.**
#
# 1. Three layers of `window_31` reach 45 distances (Section 2). Up to which distance could a
#    perfect three-layer model answer *without* squeezing many pairs into one vector, and why?
#
# <details><summary>Answer</summary>
#
# Up to 30. A position can fetch the right pair only after it has read the query's key. In
# layer 1 the positions within 15 of the query read it; in layer 2 each of them looks up the
# key in its own window, 15 further back, so distances up to 30 are found; in layer 3 the
# query reads the position that found it. Distances 31 to 45 have a three-hop path, but on it
# the question would have to travel out and the answer back: five layers. With three, a
# position 16 or more back must forward its pairs before it knows which one is asked for.
#
# </details>
#
# 2. Two layers of BigBird connect every pair. Why can even a perfect two-layer model not be
#    expected to answer every distance?
#
# <details><summary>Answer</summary>
#
# Because in layer 1 no position that reads the far pairs knows the question. The global token
# reads all 63 pairs and the query in the same layer, so its output is one 64-dimensional mix
# of everything it read; the query, in layer 2, can only read that mix. One vector cannot hold
# 63 key-to-value bindings exactly, so a two-layer model can at best recover some of them
# approximately. The distances in the query's own row (window, random block, global token)
# need no relay, and those it does answer.
#
# </details>
#
# 3. The strided pattern never relays, at any depth. Which pattern of Lecture 1 fixes that,
#    and how many layers would then connect every pair? Would you expect this experiment to
#    show the relayed distances answered?
#
# <details><summary>Answer</summary>
#
# Add a window at least as wide as the stride, as the Sparse Transformer does (here both ways:
# `or_masks(generate_symmetric_window(7), generate_strided(4))`). The window moves a fact by up
# to 3 positions onto the query's grid, the stride carries it the rest of the way: two layers
# connect every pair. But it is a relay again: in layer 1 the positions on the query's grid do
# not know the query's key yet, so the same argument as in question 2 applies, and by this
# experiment a small model would answer only the one-hop distances, 1 to 3 and the multiples
# of 4.
#
# </details>
#
# ## Summary
#
# - Associative recall asks for one exact fact from $d$ positions back. With one layer, the
#   query's row of the mask decides which $d$ are possible; with more, relays through other
#   positions add paths (Lecture 2's hop counts).
# - The small models here learn every one-hop lookup and no relay: at two and three layers,
#   the window and BigBird answer exactly the distances they answer with one, although
#   BigBird has a path from every distance.
# - A relay needs positions that know the question before they fetch: three layers for one
#   round trip through a global token. A path is a possibility; whether training finds it is
#   an experiment.
# - Measure by distance, not on average: a pattern can be perfect at some distances and blind
#   at others, and the average hides it.
#
# ## References
#
# - Manzil Zaheer, Guru Guruganesh, Avinava Dubey, Joshua Ainslie, Chris Alberti, Santiago
#   Ontañón, Philip Pham, Anirudh Ravula, Qifan Wang, Li Yang, Amr Ahmed. *Big Bird:
#   Transformers for Longer Sequences.* NeurIPS 2020. arXiv:2007.14062.
# - Iz Beltagy, Matthew E. Peters, Arman Cohan. *Longformer: The Long-Document Transformer.*
#   2020. arXiv:2004.05150.
# - Jimmy Ba, Geoffrey Hinton, Volodymyr Mnih, Joel Z. Leibo, Catalin Ionescu. *Using Fast
#   Weights to Attend to the Recent Past.* NeurIPS 2016. arXiv:1610.06258. (The associative
#   retrieval task.)
# - Catherine Olsson, Nelson Elhage, Neel Nanda, et al. *In-context Learning and Induction
#   Heads.* 2022. arXiv:2209.11895.
#
# **Further reading.** Simran Arora, Sabri Eyuboglu, Aman Timalsina, et al., *Zoology:
# Measuring and Improving Recall in Efficient Language Models* (2023, arXiv:2312.04927), uses
# multi-query associative recall to compare attention with its efficient replacements. Nelson
# F. Liu, Kevin Lin, John Hewitt, et al., *Lost in the Middle: How Language Models Use Long
# Contexts* (2023, arXiv:2307.03172), measures retrieval by position in real long-context models.
