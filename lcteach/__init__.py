"""lcteach: reference implementations for the LCTeach long-context course.

The library is grouped by concept, one subpackage each: ``masks`` (FlexAttention mask_mods,
their evaluation and the catalog of named patterns), ``score_mods`` (FlexAttention score_mods:
ALiBi, soft-capping), ``kernels``, ``analysis``, ``measure``, ``chunking``, ``experiments``,
``viz`` (pure plots), ``widgets``, ``bench`` and ``grading``.

The names lectures use most are available here too. They load on first use, so
``import lcteach`` is quick and loads neither torch, matplotlib nor ipywidgets:
``lcteach.dense_attention`` imports ``lcteach.kernels`` when it is first looked up.

Importing lcteach also sets ``OMP_WAIT_POLICY=PASSIVE`` unless it is set already: torch's
OpenMP threads then sleep instead of spinning while they wait for work. The course runs
many small operations (tiled kernels, the memory tracker) on few shared cores, where
spinning threads slow everything down several times. OpenMP reads the variable once, when
torch loads it, so it takes effect only if lcteach is imported before torch: the lectures
start with ``import lcteach``. ``make`` sets it for every target anyway.
"""

from __future__ import annotations

import os

from lcteach.lazy import lazy_exports  # imports neither torch nor anything that does

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP, which reads it once

_API = {  # name -> the subpackage that defines it
    "lcteach.kernels": (
        "dense_attention",
        "init_softmax_state",
        "online_softmax_step",
        "finalize_softmax_state",
        "merge_attention",
        "tiled_attention",
        "banded_attention",
        "block_sparse_attention",
        "block_layout",
        "block_sparse_work",
        "flex_sparse_attention",
        "flex_block_mask",
        "flex_fallback_reason",
        "topk_attention",
        "ContentAdaptiveAttention",
        "select_blocks",
    ),
    "lcteach.masks": (
        "causal_mask",
        "generate_sliding_window",
        "generate_symmetric_window",
        "generate_strided",
        "generate_global",
        "generate_block_sparse",
        "generate_random_blocks",
        "generate_random_tokens",
        "generate_bigbird",
        "bigbird_layout",
        "generate_prefix_lm",
        "generate_document_mask",
        "document_offsets",
        "document_ids",
        "materialize_mask",
        "evaluate_grid",
        "evaluate_rows",
        "pattern_density",
        "pattern_flops",
    ),
    "lcteach.score_mods": ("generate_alibi", "generate_softcap", "alibi_slopes", "materialize_scores"),
    "lcteach.analysis": (
        "complexity_table",
        "format_complexity_table",
        "strided_cost",
        "longformer_cost",
        "bigbird_cost",
        "hop_counts",
        "minimal_layers_for_full_reach",
    ),
    "lcteach.measure": (
        "peak_memory",
        "track_peak_memory",
        "profile_scaling",
        "fit_exponent",
        "ScalingReport",
        "dense_attention_memory",
        "diagnose_oom",
        "format_bytes",
    ),
    "lcteach.chunking": ("ChunkedProcessor", "plan_chunks"),
    "lcteach.viz": ("plot_scaling", "plot_pattern", "plot_composition", "plot_hop_counts", "plot_complexity"),
}
_HOME = {name: package for package, names in _API.items() for name in names}
__all__ = sorted(_HOME)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _HOME)
