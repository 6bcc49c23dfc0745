"""Random patterns, drawn once from a seed: random key blocks (BigBird) and random tokens.

Positions past the drawn table are attended by no query and attend no key (False).
"""

from __future__ import annotations

import torch

from lcteach.masks.block_sparse import generate_block_sparse
from lcteach.masks.evaluation import MaskMod
from lcteach.masks.lookup import LookupTable
from lcteach.validation import check_blocks, check_fraction, check_nonnegative_int, check_positive_int


def _random_rows(
    rows: int, cols: int, per_row: int, generator: torch.Generator, exclude: torch.Tensor | None = None
) -> torch.Tensor:
    """Bool (rows, cols) with exactly ``per_row`` True per row, at distinct uniformly random columns
    among those the bool (rows, cols) ``exclude`` leaves False (each row must have ``per_row`` of them)."""
    keys = torch.rand(rows, cols, generator=generator)
    if exclude is not None:
        keys = keys.masked_fill(exclude, float("inf"))  # past every draw in [0, 1): excluded columns rank last
    ranks = keys.argsort(dim=-1)
    return torch.zeros(rows, cols, dtype=torch.bool).scatter_(-1, ranks[:, :per_row], True)


def random_rows(rows: int, cols: int, per_row: int, *, seed: int, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Bool (rows, cols) with exactly ``per_row`` True per row, at distinct columns drawn uniformly from
    ``seed`` (a generator of its own, never the global RNG) among those the bool (rows, cols) ``exclude``
    leaves False (all columns without it). The caller checks that every row has ``per_row`` free
    columns, naming its own arguments. O(rows * cols * log(cols)) time.
    """
    return _random_rows(rows, cols, per_row, _generator(seed), exclude)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(check_nonnegative_int("seed", seed))


def generate_random_blocks(seq_len: int, block_size: int, blocks_per_row: int, *, seed: int) -> MaskMod:
    """Each block of ``block_size`` queries attends ``blocks_per_row`` distinct key blocks drawn
    at random (BigBird's random attention). ``block_size`` must divide ``seq_len``; the
    (seq_len / block_size)^2 layout is drawn from ``seed`` (same seed, same mask) and the
    query's own block is not guaranteed. Pairs: seq_len * blocks_per_row * block_size.
    """
    num_blocks = check_blocks(seq_len, block_size)
    check_positive_int("blocks_per_row", blocks_per_row)
    if blocks_per_row > num_blocks:
        raise ValueError(f"blocks_per_row must be at most the {num_blocks} key blocks of a row, got {blocks_per_row}")
    layout = random_rows(num_blocks, num_blocks, blocks_per_row, seed=seed)
    random_blocks = generate_block_sparse(layout, block_size)
    random_blocks.__name__ = f"random_blocks_{blocks_per_row}x{block_size}_seed{seed}"
    return random_blocks


def generate_random_tokens(
    seq_len: int, *, seed: int, density: float | None = None, count: int | None = None
) -> MaskMod:
    """Token-level random pattern over ``seq_len`` positions, drawn from ``seed``; give exactly
    one of ``density`` (each pair allowed independently with that probability) or ``count``
    (each query attends exactly ``count`` distinct random keys). The query itself is not
    guaranteed. The table is a (seq_len, seq_len) bool matrix: O(seq_len^2) bytes, which is
    why BigBird draws random BLOCKS instead.
    """
    check_positive_int("seq_len", seq_len)
    if (density is None) == (count is None):
        raise ValueError(f"give exactly one of density or count, got density={density!r}, count={count!r}")
    generator = _generator(seed)
    if density is not None:
        drawn = torch.rand(seq_len, seq_len, generator=generator) < check_fraction("density", density)
        name = f"random_tokens_density{density:g}_seed{seed}"
    else:
        check_positive_int("count", count)
        if count > seq_len:
            raise ValueError(f"count must be at most seq_len = {seq_len} keys per row, got {count}")
        drawn = _random_rows(seq_len, seq_len, count, generator)
        name = f"random_tokens_{count}_seed{seed}"
    table = LookupTable(drawn)

    def random_tokens(b, h, q_idx, kv_idx):
        return table(q_idx, kv_idx)

    random_tokens.__name__ = name
    return random_tokens
