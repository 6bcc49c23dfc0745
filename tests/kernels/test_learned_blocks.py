"""lcteach.kernels.learned_blocks: the recall metric against loops in float64, layouts that keep the
promised share, causal layouts, distillation that learns, identity projections = select_blocks,
the BlockMask of a layout against masked SDPA."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import random_qkv
from torch.nn.attention.flex_attention import flex_attention
from torch.utils.flop_counter import FlopCounterMode

from lcteach.experiments import BlockRetrievalTask, make_block_retrieval_batch
from lcteach.kernels import (
    BlockPatternPredictor,
    attention_recall,
    block_attention_mass,
    distillation_loss,
    flex_fallback_reason,
    keep_counts,
    keep_top_blocks,
    layout_block_mask,
    select_blocks,
    selection_flops,
    train_block_predictor,
    window_layout,
)

FAST = settings(max_examples=30, deadline=None)
F64 = torch.float64


def loop_weights(q, k, b, h, i, causal):
    """Softmax weights of query i over its keys, one exp at a time."""
    scale = 1 / math.sqrt(q.shape[-1])
    keys = range(i + 1) if causal else range(k.shape[-2])
    scores = {j: float(q[b, h, i] @ k[b, h, j]) * scale for j in keys}
    top = max(scores.values())
    exps = {j: math.exp(s - top) for j, s in scores.items()}
    total = sum(exps.values())
    return {j: e / total for j, e in exps.items()}


def loop_recall(q, k, layout, block_size, causal):
    """Mass inside the kept blocks, query by query, averaged over every (b, h, i)."""
    batch, heads, n_q, _ = q.shape
    layout = layout.expand(batch, heads, *layout.shape[-2:])
    total = 0.0
    for b in range(batch):
        for h in range(heads):
            for i in range(n_q):
                weights = loop_weights(q, k, b, h, i, causal)
                total += sum(w for j, w in weights.items() if layout[b, h, i // block_size, j // block_size])
    return total / (batch * heads * n_q)


@FAST
@given(
    n_q=st.integers(1, 14),
    n_k=st.integers(1, 14),
    block_size=st.integers(1, 5),
    causal=st.booleans(),
    heads=st.integers(1, 2),
    seed=st.integers(0, 99),
)
def test_recall_matches_a_loop(n_q, n_k, block_size, causal, heads, seed):
    if causal:
        n_k = n_q
    q, k, _ = random_qkv(2, heads, n_q, 3, n_k=n_k, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    shape = (2, heads, -(-n_q // block_size), -(-n_k // block_size))
    layout = torch.rand(shape, generator=generator) < 0.5
    expected = loop_recall(q, k, layout, block_size, causal)
    assert attention_recall(q, k, layout, block_size, causal=causal) == pytest.approx(expected, abs=1e-12)
    broadcast = layout[:1, :1]  # a (1, 1, Tq, Tk) layout serves every batch and head
    assert attention_recall(q, k, broadcast[0, 0], block_size, causal=causal) == pytest.approx(
        loop_recall(q, k, broadcast, block_size, causal), abs=1e-12
    )


@FAST
@given(n=st.integers(1, 12), block_size=st.integers(1, 5), causal=st.booleans(), seed=st.integers(0, 99))
def test_block_mass_is_the_loop_average_and_sums_to_one(n, block_size, causal, seed):
    q, k, _ = random_qkv(1, 2, n, 3, seed=seed)
    mass = block_attention_mass(q, k, block_size, causal=causal)
    blocks = -(-n // block_size)
    assert mass.shape == (1, 2, blocks, blocks)
    torch.testing.assert_close(mass.sum(-1), torch.ones(1, 2, blocks, dtype=F64))
    for h in range(2):
        for i_block in range(blocks):
            rows = range(i_block * block_size, min(n, (i_block + 1) * block_size))
            for j_block in range(blocks):
                per_query = [
                    sum(w for j, w in loop_weights(q, k, 0, h, i, causal).items() if j // block_size == j_block)
                    for i in rows
                ]
                assert float(mass[0, h, i_block, j_block]) == pytest.approx(sum(per_query) / len(per_query), abs=1e-12)


def test_full_layout_recalls_everything_and_an_empty_one_nothing():
    q, k, _ = random_qkv(1, 1, 10, 4, n_k=7)
    assert attention_recall(q, k, torch.ones(3, 2, dtype=torch.bool), 4) == pytest.approx(1.0)
    assert attention_recall(q, k, torch.zeros(3, 2, dtype=torch.bool), 4) == 0.0


@FAST
@given(
    q_blocks=st.integers(1, 12),
    k_blocks=st.integers(1, 12),
    sparsity=st.floats(0, 0.999),
    causal=st.booleans(),
    seed=st.integers(0, 99),
)
def test_top_blocks_keep_the_promised_share_of_the_best_scores(q_blocks, k_blocks, sparsity, causal, seed):
    if causal:
        k_blocks = q_blocks
    scores = torch.randn(2, q_blocks, k_blocks, generator=torch.Generator().manual_seed(seed), dtype=F64)
    layout = keep_top_blocks(scores, sparsity, causal=causal)
    assert layout.dtype == torch.bool and layout.shape == scores.shape
    for row in range(q_blocks):
        allowed = list(range(row + 1)) if causal else list(range(k_blocks))
        kept = layout[:, row].sum(-1)
        assert (kept >= 1).all()
        # the fewest blocks that hold at least the share 1 - sparsity of the allowed ones
        assert (kept >= (1 - sparsity) * len(allowed) - 1e-9).all()
        assert ((kept == 1) | (kept - 1 < (1 - sparsity) * len(allowed) - 1e-9)).all()
        for b in range(2):
            chosen = [j for j in allowed if layout[b, row, j]]
            assert all(j in allowed for j in layout[b, row].nonzero().flatten().tolist())
            if causal:
                assert layout[b, row, row]  # its own block, always
                chosen.remove(row)
            rest = [j for j in allowed if not layout[b, row, j]]
            if chosen and rest:
                assert min(scores[b, row, j] for j in chosen) >= max(scores[b, row, j] for j in rest)


@pytest.mark.parametrize(("allowed", "sparsity", "kept"), [(16, 0.75, 4), (16, 0.9, 2), (10, 0.7, 3), (3, 0.99, 1)])
def test_keep_counts_examples(allowed, sparsity, kept):
    assert int(keep_counts(torch.tensor([allowed]), sparsity)) == kept


@FAST
@given(n=st.integers(2, 40), block_size=st.integers(1, 6), sparsity=st.floats(0, 0.95), seed=st.integers(0, 99))
def test_causal_layouts_never_keep_future_blocks(n, block_size, sparsity, seed):
    q, k, _ = random_qkv(1, 2, n, 4, seed=seed)
    predictor = BlockPatternPredictor(4, 2, seed=seed, dtype=F64)
    for layout in (
        predictor.layout(q, k, block_size, sparsity, causal=True),
        keep_top_blocks(block_attention_mass(q, k, block_size, causal=True), sparsity, causal=True),
        window_layout(-(-n // block_size), -(-n // block_size), sparsity, causal=True),
    ):
        assert not (layout & torch.ones_like(layout).triu(1)).any()
        assert torch.diagonal(layout, dim1=-2, dim2=-1).all()


@FAST
@given(
    n_q=st.integers(1, 24),
    n_k=st.integers(1, 24),
    block_size=st.integers(1, 6),
    sparsity=st.sampled_from([0.0, 0.3, 0.5, 0.75, 0.9]),
    causal=st.booleans(),
    seed=st.integers(0, 99),
)
def test_identity_projections_choose_what_select_blocks_chooses(n_q, n_k, block_size, sparsity, causal, seed):
    if causal:
        n_k = n_q
    q, k, _ = random_qkv(2, 2, n_q, 5, n_k=n_k, seed=seed)
    predictor = BlockPatternPredictor(5, 5, identity=True, dtype=F64)
    layout = predictor.layout(q, k, block_size, sparsity, causal=causal)
    q_blocks, k_blocks = layout.shape[-2:]
    for row in range(q_blocks):
        allowed = row + 1 if causal else k_blocks
        keep = max(1, math.ceil(round((1 - sparsity) * allowed, 9)))
        expected = select_blocks(q, k, block_size, keep, causal=causal)
        assert torch.equal(layout[..., row, :], expected[..., row, :])


def test_window_layout_is_a_band_around_the_diagonal():
    layout = window_layout(8, 8, 0.625)  # 3 of 8 blocks per row
    assert layout.sum(-1).tolist() == [3] * 8
    assert layout[0].tolist()[:3] == [True] * 3 and layout[4].nonzero().flatten().tolist() == [3, 4, 5]
    assert layout[7].nonzero().flatten().tolist() == [5, 6, 7]


def test_oracle_layout_recalls_at_least_as_much_as_any_layout_of_the_same_size():
    q, k, _ = random_qkv(1, 1, 24, 4, seed=5)
    oracle = keep_top_blocks(block_attention_mass(q, k, 4), 0.5)
    best = attention_recall(q, k, oracle, 4)
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        other = keep_top_blocks(torch.randn(1, 1, 6, 6, generator=generator), 0.5)
        assert attention_recall(q, k, other, 4) <= best + 1e-12


def test_distillation_loss_is_the_kl_divergence():
    generator = torch.Generator().manual_seed(0)
    target = torch.softmax(torch.randn(2, 3, 5, generator=generator, dtype=F64), -1)
    scores = torch.randn(2, 3, 5, generator=generator, dtype=F64)
    expected = F.kl_div(scores.log_softmax(-1), target, reduction="none").sum(-1).mean()
    torch.testing.assert_close(distillation_loss(scores, target), expected)
    assert float(distillation_loss(target.log(), target)) == pytest.approx(0.0, abs=1e-12)
    causal_target = torch.softmax(
        torch.randn(4, 4, generator=generator, dtype=F64).masked_fill(
            torch.ones(4, 4, dtype=torch.bool).triu(1), float("-inf")
        ),
        -1,
    )
    loss = distillation_loss(torch.randn(4, 4, generator=generator, dtype=F64), causal_target, causal=True)
    assert torch.isfinite(loss) and loss >= 0


def test_training_lowers_the_loss_and_beats_the_untrained_predictor_on_held_out_data():
    task = BlockRetrievalTask()
    train = make_block_retrieval_batch(task, 32, generator=torch.Generator().manual_seed(1))
    test = make_block_retrieval_batch(task, 8, generator=torch.Generator().manual_seed(2))
    predictor = BlockPatternPredictor(task.dim, 8, seed=0)
    before = [attention_recall(test.q, test.k, predictor.layout(test.q, test.k, 32, s), 32) for s in (0.75, 0.875)]
    losses = train_block_predictor(predictor, train.q, train.k, task.block_size, steps=150)
    assert len(losses) == 150 and losses[-1] < 0.5 * losses[0]
    after = [attention_recall(test.q, test.k, predictor.layout(test.q, test.k, 32, s), 32) for s in (0.75, 0.875)]
    assert all(a > b + 0.2 for a, b in zip(after, before, strict=True)), (before, after)
    select = attention_recall(test.q, test.k, select_blocks(test.q, test.k, 32, 2), 32)
    assert after[1] > select + 0.2  # the distractor fools the raw means, not the learned projections


def test_training_is_deterministic_and_works_causally():
    q, k, _ = random_qkv(2, 2, 32, 6, dtype=torch.float32, seed=1)
    runs = []
    for _ in range(2):
        predictor = BlockPatternPredictor(6, 3, seed=4)
        runs.append(train_block_predictor(predictor, q, k, 4, steps=30, causal=True))
    assert runs[0] == runs[1] and runs[0][-1] < runs[0][0]


def test_predictor_parameters_and_dtype():
    predictor = BlockPatternPredictor(8, 3, seed=1)
    assert predictor.w_q.shape == predictor.w_k.shape == (8, 3)
    assert not torch.equal(predictor.w_q, predictor.w_k)
    assert torch.equal(BlockPatternPredictor(8, 3, seed=1).w_q, predictor.w_q)
    q, k, _ = random_qkv(1, 1, 16, 8)
    scores = predictor(q, k, 4)
    assert scores.dtype == F64 and scores.shape == (1, 1, 4, 4)
    scores.sum().backward()
    assert predictor.w_q.grad is not None


def test_selection_flops_count_the_matrix_products():
    q, k, _ = random_qkv(1, 1, 64, 16, n_k=96, dtype=torch.float32)
    predictor = BlockPatternPredictor(16, 4)
    with FlopCounterMode(display=False) as counter:
        predictor(q, k, 8)
    pooling = (64 + 96) * 16
    assert counter.get_total_flops() == selection_flops(64, 96, 16, 8, rank=4) - pooling
    with FlopCounterMode(display=False) as counter:
        select_blocks(q, k, 8, 2)
    assert counter.get_total_flops() == selection_flops(64, 96, 16, 8) - pooling


def _masked_sdpa(q, k, v, layout, block_size):
    mask = layout.repeat_interleave(block_size, -2).repeat_interleave(block_size, -1)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out.masked_fill(~mask.any(-1, keepdim=True), 0)  # no allowed key: 0, as FlexAttention gives


def test_layout_block_mask_holds_the_layout():
    layout = torch.rand(2, 3, 5, 4, generator=torch.Generator().manual_seed(0)) < 0.4
    block_mask = layout_block_mask(layout, 8)
    assert block_mask.shape == (2, 3, 40, 32)
    assert torch.equal(block_mask.to_dense().bool(), layout)
    assert torch.equal(layout_block_mask(layout[0, 0], 8).to_dense().bool()[0, 0], layout[0, 0])
    q, k, v = random_qkv(2, 3, 40, 8, n_k=32, dtype=torch.float32)
    with warnings.catch_warnings():  # uncompiled flex_attention warns that it is not the fused kernel
        warnings.simplefilter("ignore", UserWarning)
        out = flex_attention(q, k, v, block_mask=block_mask)  # reads the mask_mod only
    torch.testing.assert_close(out, _masked_sdpa(q, k, v, layout, 8))


@pytest.mark.skipif(
    flex_fallback_reason(*random_qkv(1, 1, 2, 2, dtype=torch.float32)) is not None,
    reason="torch cannot compile FlexAttention here (no C++ compiler?)",
)
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # torch's own import
def test_compiled_flex_attention_computes_the_layouts_blocks():
    layout = torch.rand(1, 2, 4, 4, generator=torch.Generator().manual_seed(1)) < 0.5
    layout |= torch.eye(4, dtype=torch.bool)
    q, k, v = random_qkv(1, 2, 64, 16, dtype=torch.float32, seed=2)
    out = torch.compile(flex_attention, dynamic=False)(q, k, v, block_mask=layout_block_mask(layout, 16))
    torch.testing.assert_close(out, _masked_sdpa(q, k, v, layout, 16), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: keep_top_blocks(torch.zeros(2, 2), 1.0), "sparsity"),
        (lambda: keep_top_blocks(torch.zeros(2, 2), -0.1), "sparsity"),
        (lambda: keep_top_blocks(torch.zeros(2, 2), True), "sparsity"),
        (lambda: keep_top_blocks(torch.zeros(2, 2), "0.5"), "sparsity"),
        (lambda: keep_top_blocks(torch.zeros(2, 3), 0.5, causal=True), "as many query as key blocks"),
        (lambda: BlockPatternPredictor(8, 0), "rank"),
        (lambda: BlockPatternPredictor(0, 2), "dim"),
        (lambda: BlockPatternPredictor(8, 4, identity=True), "rank == dim"),
        (lambda: BlockPatternPredictor(4, 2).layout(*random_qkv(1, 1, 8, 4)[:2], 2, 1.5), "sparsity"),
        (lambda: BlockPatternPredictor(4, 2)(*random_qkv(1, 1, 8, 3)[:2], 2), "head dimension 4"),
        (lambda: BlockPatternPredictor(4, 2)(*random_qkv(1, 1, 8, 4)[:2], 0), "block_size"),
        (lambda: attention_recall(*random_qkv(1, 1, 8, 4)[:2], torch.ones(3, 2, dtype=torch.bool), 4), "shape"),
        (
            lambda: attention_recall(
                *random_qkv(1, 1, 8, 4, n_k=6)[:2], torch.ones(2, 2, dtype=torch.bool), 4, causal=True
            ),
            "as many queries as keys",
        ),
        (lambda: window_layout(0, 3, 0.5), "q_blocks"),
        (lambda: selection_flops(8, 8, 4, 2, rank=0), "rank"),
        (lambda: layout_block_mask(torch.ones(2, 2, 2, 2, 2, dtype=torch.bool), 4), "shape"),
    ],
)
def test_bad_arguments_name_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_layout_that_is_not_bool_is_a_type_error():
    q, k, _ = random_qkv(1, 1, 8, 4)
    with pytest.raises(TypeError, match="bool"):
        attention_recall(q, k, torch.ones(2, 2), 4)
    with pytest.raises(TypeError, match="bool"):
        layout_block_mask(torch.ones(2, 2), 4)
