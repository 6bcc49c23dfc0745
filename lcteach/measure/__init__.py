"""Measuring tools: exact peak tensor memory, scaling exponents, out-of-memory diagnosis, units."""

from lcteach.measure.oom import Diagnosis, dense_attention_memory, diagnose_oom
from lcteach.measure.peak_memory import MemoryReport, peak_memory, track_peak_memory
from lcteach.measure.scaling import AttentionFn, ScalingReport, fit_exponent, profile_scaling
from lcteach.measure.units import format_bytes
