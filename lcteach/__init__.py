"""lcteach: reference implementations for the LCTeach long-context course.

The library is grouped by concept, one subpackage each: ``masks`` (FlexAttention mask_mods,
their evaluation and the catalog of named patterns), ``kernels``, ``analysis``, ``measure``,
``chunking``, ``experiments``, ``viz`` (pure plots), ``widgets``, ``bench`` and ``grading``.

The names lectures use most are available here too. They load on first use, so
``import lcteach`` is quick and loads neither torch, matplotlib nor ipywidgets:
``lcteach.dense_attention`` imports ``lcteach.kernels`` when it is first looked up.
"""

from __future__ import annotations

import importlib

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
        "materialize_mask",
        "evaluate_rows",
        "pattern_density",
        "pattern_flops",
    ),
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


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module 'lcteach' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
