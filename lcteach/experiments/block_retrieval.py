"""A synthetic retrieval task where the pattern must follow the content, and mean scores mislead.

Queries and keys are cut into blocks. Every key block j holds a hidden **code** c_j (a random
unit vector in a small content subspace) on a few **needle** keys at random positions; every
query block i wants one far-away key block t(i), chosen at random, and all its queries carry
that block's code. So the attention a query block needs sits in one block that only the
content reveals: no fixed pattern can know where.

A **distractor** makes the raw block means misleading: one fixed direction u is added to every
query and, more weakly, to every key of a random share of the key blocks. At the level of a
single key it scores far less than a needle, so the exact attention still goes to the needles;
but it is on every key of its block, while a needle is on a few, so in the block *means*
(MoBA / Quest scores, ``select_blocks``) the distractor blocks win. A learned projection of the
means that ignores u (``BlockPatternPredictor``) recovers the needles.

The content subspace and u are fixed by the task's ``seed`` (one random rotation), so batches
drawn with different generators are new inputs of the same task: train on one, test on another.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lcteach.validation import check_blocks, check_positive_int


@dataclass(frozen=True)
class BlockRetrievalTask:
    """The task's shape and strengths (defaults: 16 blocks of 32, head dimension 32).

    Scores below are raw dot products; attention scales them by 1/sqrt(dim).
    ``needle_strength``: norm of the code on a needle key and on each query (a needle scores
    about its square). ``distractor_query`` / ``distractor_key``: the norms of u on every query
    and on every key of a distractor block (their product is the distractor's score).
    ``noise``: standard deviation of the isotropic noise on every coordinate.
    """

    seq_len: int = 512
    dim: int = 32
    block_size: int = 32
    content_dim: int = 8
    needles: int = 2
    needle_strength: float = 7.0
    distractor_query: float = 4.0
    distractor_key: float = 1.25
    distractor_share: float = 0.25
    noise: float = 0.5
    seed: int = 0

    def __post_init__(self):
        check_blocks(self.seq_len, self.block_size)
        check_positive_int("dim", self.dim)
        check_positive_int("content_dim", self.content_dim)
        check_positive_int("needles", self.needles)
        if self.content_dim + 1 > self.dim:
            raise ValueError(f"content_dim must be at most dim - 1 (u needs a direction), got {self.content_dim}")
        if self.needles > self.block_size:
            raise ValueError(f"needles must be at most block_size, got {self.needles} > {self.block_size}")
        if self.seq_len // self.block_size < 4:
            raise ValueError(f"the task needs at least 4 blocks (far targets), got {self.seq_len // self.block_size}")
        if not 0 <= self.distractor_share <= 1:
            raise ValueError(f"distractor_share must be in [0, 1], got {self.distractor_share}")
        for name in ("needle_strength", "distractor_query", "distractor_key", "noise"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def blocks(self) -> int:
        return self.seq_len // self.block_size

    def basis(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(content_dim, dim) orthonormal rows spanning the codes, and the (dim,) unit distractor u, orthogonal to them."""
        generator = torch.Generator().manual_seed(self.seed)
        rotation, _ = torch.linalg.qr(torch.randn(self.dim, self.dim, generator=generator, dtype=torch.float64))
        return rotation[: self.content_dim], rotation[self.content_dim]


@dataclass(frozen=True)
class BlockRetrievalBatch:
    """q, k, v (B, H, N, D) float32; ``targets`` (B, H, T): the key block each query block needs;
    ``distractors`` (B, H, T) bool: the key blocks that carry u."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    targets: torch.Tensor
    distractors: torch.Tensor


def make_block_retrieval_batch(
    task: BlockRetrievalTask, batch: int, heads: int = 1, *, generator: torch.Generator
) -> BlockRetrievalBatch:
    """Draw ``batch`` x ``heads`` independent sequences of ``task`` from ``generator``.

    Query block i's target t(i) is uniform over the blocks at least 2 away (|t - i| >= 2), so a
    window of 3 blocks around i never holds it. The values are standard normal. O(B H N D).
    """
    check_positive_int("batch", batch)
    check_positive_int("heads", heads)
    content, u = (x.float() for x in task.basis())
    lead, blocks, size = (batch, heads), task.blocks, task.block_size
    codes = torch.randn(*lead, blocks, task.content_dim, generator=generator)
    codes = (codes / codes.norm(dim=-1, keepdim=True)) @ content  # (B, H, T, D), unit vectors in the subspace
    # Targets: an offset of 2 .. T-2 blocks, added modulo T, lands at least 2 blocks away (circularly).
    offsets = torch.randint(2, blocks - 1, (*lead, blocks), generator=generator)
    targets = (torch.arange(blocks) + offsets) % blocks
    distractors = torch.rand(*lead, blocks, generator=generator) < task.distractor_share
    # Keys: noise; a few needle rows per block carry the block's code; distractor blocks carry u on every row.
    k = task.noise * torch.randn(*lead, blocks, size, task.dim, generator=generator)
    needle_rows = torch.rand(*lead, blocks, size, generator=generator).argsort(dim=-1)[..., : task.needles]
    needle = torch.zeros(*lead, blocks, size, dtype=torch.bool).scatter_(-1, needle_rows, True)
    k = k + task.needle_strength * needle[..., None] * codes[..., None, :]
    k = k + task.distractor_key * distractors[..., None, None] * u
    # Queries: noise + the target block's code + u, on every row of the query block.
    wanted = torch.gather(codes, -2, targets[..., None].expand(-1, -1, -1, task.dim))  # (B, H, T, D)
    q = task.noise * torch.randn(*lead, blocks, size, task.dim, generator=generator)
    q = q + task.needle_strength * wanted[..., None, :] + task.distractor_query * u
    v = torch.randn(*lead, task.seq_len, task.dim, generator=generator)
    return BlockRetrievalBatch(q.flatten(-3, -2), k.flatten(-3, -2), v, targets, distractors)
