"""Measuring tools: exact peak tensor memory, best-of-k timing, scaling exponents, out-of-memory diagnosis, units.

The memory tracker and the units load at once (``peak_memory`` is also the name of its
module, so it must be bound here before anything imports that module); the scaling fit and
the out-of-memory diagnosis load on first use. The autograding sandbox holds only the tools
a student may use (``lcteach.grading.policy``), not the scaling fit they implement.
"""

from lcteach.lazy import lazy_exports
from lcteach.measure.peak_memory import MemoryReport, peak_memory, track_peak_memory
from lcteach.measure.units import format_bytes

_HOME = {
    **dict.fromkeys(("Diagnosis", "dense_attention_memory", "diagnose_oom"), "lcteach.measure.oom"),
    **dict.fromkeys(
        ("AttentionFn", "ScalingReport", "best_seconds", "fit_exponent", "profile_scaling"), "lcteach.measure.scaling"
    ),
}
__all__ = sorted([*_HOME, "MemoryReport", "peak_memory", "track_peak_memory", "format_bytes"])
__getattr__, __dir__ = lazy_exports(__name__, globals(), _HOME)
