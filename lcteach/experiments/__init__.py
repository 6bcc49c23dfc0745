"""Experiments that train tiny models in seconds: associative recall over sparse patterns and depths;
a block-retrieval task where the sparse pattern must follow the content.

The names load their module on first use, so ``python -m lcteach.experiments.recall`` runs a
module that the package has not imported already (runpy warns on stderr when it has).
"""

from lcteach.lazy import lazy_exports

_API = {
    "lcteach.experiments.block_retrieval": ("BlockRetrievalBatch", "BlockRetrievalTask", "make_block_retrieval_batch"),
    "lcteach.experiments.recall": (
        "REACH_CLASSES",
        "SHIPPED_RESULTS",
        "RecallBatch",
        "RecallModel",
        "RecallResult",
        "RecallResults",
        "RecallTask",
        "accuracy_by_distance",
        "accuracy_by_reach",
        "default_edges",
        "default_settings",
        "distance_bins",
        "format_results",
        "load_recall_results",
        "main",
        "make_recall_batch",
        "reachable_distances",
        "run_recall_experiment",
        "train_recall",
    ),
}
_HOME = {name: module for module, names in _API.items() for name in names}
__all__ = sorted(_HOME)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _HOME)
