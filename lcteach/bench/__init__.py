"""Benchmarks: a harness that times and measures a list of methods, and the sliding-window suite.

python -m lcteach.bench --out DIR [--ns 1024,2048,...] [--window 256] [--device cpu|cuda]
"""

from lcteach.bench.harness import Measurement, Method, Settings, describe, ratio, run_benchmark
from lcteach.bench.sliding_window import (
    BASELINE,
    DEFAULT_NS,
    format_report,
    plot_benchmark,
    sliding_window_methods,
    window_layout,
)
