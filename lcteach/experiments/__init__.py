"""Experiments that train tiny models in seconds: associative recall over sparse patterns and depths;
a block-retrieval task where the sparse pattern must follow the content."""

from lcteach.experiments.block_retrieval import BlockRetrievalBatch, BlockRetrievalTask, make_block_retrieval_batch
from lcteach.experiments.recall import (
    REACH_CLASSES,
    SHIPPED_RESULTS,
    RecallBatch,
    RecallModel,
    RecallResult,
    RecallResults,
    RecallTask,
    accuracy_by_distance,
    accuracy_by_reach,
    default_edges,
    default_settings,
    distance_bins,
    format_results,
    load_recall_results,
    main,
    make_recall_batch,
    reachable_distances,
    run_recall_experiment,
    train_recall,
)
