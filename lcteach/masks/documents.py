"""Packed documents: sequences of varying lengths packed back to back into one, each attending only to itself.

Training packs documents of varying lengths into fixed-length rows so that no position is
padding. Attention must then stay inside each document: no token may read the end of the
previous, unrelated document. A packing is given by its document lengths; ``document_offsets``
turns them into the start of each document and ``document_ids`` into a document id per position,
which the mask_mod looks up (``LookupTable``: positions outside the packing belong to no document).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lcteach.masks.evaluation import MaskMod, mask_name
from lcteach.masks.lookup import LookupTable
from lcteach.validation import check_mask_mod, check_nonnegative_int, check_positive_int

_NAMED_LENGTHS = 8  # a mask of up to this many documents lists their lengths in its name


def _lengths(lengths: Sequence[int] | torch.Tensor) -> list[int]:
    if isinstance(lengths, torch.Tensor):
        if lengths.dim() != 1 or lengths.is_floating_point() or lengths.dtype == torch.bool:
            raise ValueError(
                f"lengths must be a 1-D integer tensor, got {lengths.dtype} of shape {tuple(lengths.shape)}"
            )
        lengths = lengths.tolist()
    if isinstance(lengths, (str, bytes)) or not isinstance(lengths, Sequence) or not lengths:
        raise ValueError(f"lengths must be a non-empty list of document lengths, got {lengths!r}")
    return [check_positive_int("each document length", length) for length in lengths]


def document_offsets(lengths: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """The offsets of documents of ``lengths`` packed back to back: int64 (D + 1,).

    Document d covers positions offsets[d] .. offsets[d + 1] - 1; offsets[0] = 0 and
    offsets[D] = N, the packed length. E.g. lengths [3, 2] give offsets [0, 3, 5].
    """
    return torch.tensor([0] + _lengths(lengths)).cumsum(0)


def document_ids(lengths: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """The document of each packed position: int64 (N,). E.g. lengths [3, 2] give [0, 0, 0, 1, 1]."""
    lengths = _lengths(lengths)
    return torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))


def random_document_lengths(seq_len: int, documents: int, *, seed: int) -> list[int]:
    """``documents`` lengths >= 1 that add up to ``seq_len``, drawn from ``seed``: the documents
    end at documents - 1 distinct random positions (a uniform random packing)."""
    check_positive_int("seq_len", seq_len)
    check_positive_int("documents", documents)
    if documents > seq_len:
        raise ValueError(f"documents must be at most seq_len = {seq_len} (each has a token or more), got {documents}")
    generator = torch.Generator().manual_seed(check_nonnegative_int("seed", seed))
    ends = (torch.randperm(seq_len - 1, generator=generator)[: documents - 1] + 1).sort().values.tolist()
    return [end - start for start, end in zip([0, *ends], [*ends, seq_len])]


def generate_document_mask(lengths: Sequence[int] | torch.Tensor, mask_mod: MaskMod | None = None) -> MaskMod:
    """Attention inside each packed document only, optionally with ``mask_mod`` inside each document.

    ``lengths``: the D >= 1 document lengths, packed back to back into N = sum(lengths)
    positions (``document_offsets``). Query i attends key j when both lie in the same
    document and ``mask_mod`` (if given) allows them in document coordinates: positions
    counted from their document's start, i - offsets[d] and j - offsets[d] (as attention-gym's
    generate_doc_mask_mod). Causal masks and sliding windows depend on i - j only, so
    ``and_masks(generate_document_mask(lengths), causal_mask)`` is the same pattern; patterns
    anchored at position 0 (prefix-LM, global tokens) need ``mask_mod=``, which restarts them in
    every document. Positions outside 0 .. N - 1 (negative ones from shifted positions, or the
    padding past N that kernels evaluate) belong to no document: False, never an IndexError.
    Pairs: sum of l_d^2 without a mask_mod (of l_d (l_d + 1) / 2 with causal_mask), at most
    N * max(lengths) instead of N^2: the longest document, not the row, sets the cost.
    """
    lengths = _lengths(lengths)
    offsets, ids = document_offsets(lengths), document_ids(lengths)
    document = LookupTable(ids, fill=-1)  # -1: no document
    start = LookupTable(offsets[ids], fill=0)  # the first position of each position's document
    if len(lengths) <= _NAMED_LENGTHS:
        name = "documents_" + "_".join(map(str, lengths))
    else:
        name = f"documents_{len(lengths)}_in_{len(ids)}"

    def same_document(q_idx, kv_idx):
        doc = document(q_idx)
        return (doc >= 0) & (doc == document(kv_idx))

    if mask_mod is None:

        def document_mask(b, h, q_idx, kv_idx):
            return same_document(q_idx, kv_idx)

        document_mask.__name__ = name
        return document_mask
    check_mask_mod(mask_mod)

    def document_mask_with(b, h, q_idx, kv_idx):
        inside = mask_mod(b, h, q_idx - start(q_idx), kv_idx - start(kv_idx))
        return same_document(q_idx, kv_idx) & inside

    document_mask_with.__name__ = f"{mask_name(mask_mod)}_in_{name}"
    return document_mask_with
