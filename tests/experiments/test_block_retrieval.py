"""lcteach.experiments.block_retrieval: the task is seeded, its needles and distractors sit where the
batch says, the exact attention follows the needles and the raw block means follow the distractors."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lcteach.experiments import BlockRetrievalTask, make_block_retrieval_batch
from lcteach.kernels import block_attention_mass, block_scores

FAST = settings(max_examples=15, deadline=None)


def draw(task=None, batch=4, heads=1, seed=0):
    return make_block_retrieval_batch(
        task or BlockRetrievalTask(), batch, heads, generator=torch.Generator().manual_seed(seed)
    )


def test_shapes_and_dtypes():
    data = draw(heads=2)
    assert data.q.shape == data.k.shape == data.v.shape == (4, 2, 512, 32)
    assert data.q.dtype == torch.float32
    assert data.targets.shape == data.distractors.shape == (4, 2, 16)
    assert data.distractors.dtype == torch.bool


def test_seeded_batches_repeat_and_differ():
    a, b, c = draw(seed=3), draw(seed=3), draw(seed=4)
    assert torch.equal(a.q, b.q) and torch.equal(a.k, b.k) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.q, c.q)


def test_the_task_seed_fixes_the_subspaces():
    content, u = BlockRetrievalTask().basis()
    torch.testing.assert_close(content @ content.T, torch.eye(8, dtype=torch.float64))
    torch.testing.assert_close(content @ u, torch.zeros(8, dtype=torch.float64))
    assert float(u.norm()) == pytest.approx(1.0)
    assert not torch.equal(BlockRetrievalTask(seed=1).basis()[1], u)


@FAST
@given(blocks=st.integers(4, 12), seed=st.integers(0, 99))
def test_targets_are_at_least_two_blocks_away(blocks, seed):
    task = BlockRetrievalTask(seq_len=8 * blocks, block_size=8)
    targets = draw(task, seed=seed).targets
    offset = (targets - torch.arange(blocks)) % blocks
    assert ((offset >= 2) & (offset <= blocks - 2)).all()


def test_needles_and_distractors_are_where_the_batch_says():
    task = BlockRetrievalTask(noise=0.0)
    data = draw(task)
    content, u = (x.float() for x in task.basis())
    keys = data.k.unflatten(-2, (task.blocks, task.block_size))  # (B, H, T, s, D)
    along_u = keys @ u
    expected_u = task.distractor_key * data.distractors[..., None].float().expand_as(along_u)
    torch.testing.assert_close(along_u, expected_u, atol=1e-5, rtol=0)
    code_norm = (keys @ content.T).norm(dim=-1)  # (B, H, T, s): the needle strength on needles, 0 elsewhere
    assert ((code_norm - task.needle_strength).abs() < 1e-4).sum(-1).eq(task.needles).all()
    # every query of block i carries the code of its target block t(i)
    queries = data.q.unflatten(-2, (task.blocks, task.block_size))
    needle_codes = (keys @ content.T).sum(-2) / (task.needles * task.needle_strength)  # (B, H, T, content_dim)
    wanted = torch.gather(needle_codes, -2, data.targets[..., None].expand(-1, -1, -1, task.content_dim))
    torch.testing.assert_close(
        queries @ content.T,
        task.needle_strength * wanted[..., None, :].expand(-1, -1, -1, task.block_size, -1),
        atol=1e-4,
        rtol=0,
    )


def test_attention_follows_the_needles_while_the_block_means_follow_the_distractors():
    data = draw(batch=8)
    mass = block_attention_mass(data.q, data.k, 32)
    hit = (mass.argmax(-1) == data.targets).float().mean()
    assert hit > 0.8  # the needed block gets the most attention
    means_pick = block_scores(data.q, data.k, 32).argmax(-1)
    fooled = torch.gather(data.distractors, -1, means_pick).float().mean()
    assert fooled > 0.8  # the mean scores' favourite is a distractor block


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seq_len": 100, "block_size": 32}, "block_size must divide seq_len"),
        ({"seq_len": 96, "block_size": 32}, "at least 4 blocks"),
        ({"content_dim": 32}, "content_dim"),
        ({"needles": 40}, "needles"),
        ({"distractor_share": 1.5}, "distractor_share"),
        ({"noise": -1.0}, "noise"),
    ],
)
def test_bad_tasks_name_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BlockRetrievalTask(**kwargs)


def test_bad_batch_sizes_name_the_problem():
    with pytest.raises(ValueError, match="batch"):
        make_block_retrieval_batch(BlockRetrievalTask(), 0, generator=torch.Generator())
