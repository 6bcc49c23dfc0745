"""Experiments that train tiny models in seconds: associative recall over sparse patterns."""

from lcteach.experiments.recall import (
    SHIPPED_RESULTS,
    RecallBatch,
    RecallModel,
    RecallResult,
    RecallResults,
    RecallTask,
    accuracy_by_distance,
    default_edges,
    default_settings,
    distance_bins,
    format_results,
    load_recall_results,
    main,
    make_recall_batch,
    run_recall_experiment,
    train_recall,
)
