"""lcteach.measure: exponent fits, scaling reports, the dense memory formula and OOM advice."""

import functools
import math
import time
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import one_thread

from lcteach.kernels import dense_attention, tiled_attention
from lcteach.measure import (
    ScalingReport,
    best_seconds,
    dense_attention_memory,
    diagnose_oom,
    fit_exponent,
    format_bytes,
    profile_scaling,
)

FAST = settings(max_examples=30, deadline=None)
GiB = 1024**3


@FAST
@given(
    exponent=st.floats(-3, 3),
    constant=st.floats(1e-6, 1e6),
    sizes=st.lists(st.integers(1, 10**6), min_size=2, max_size=8, unique=True),
)
def test_fit_exponent_recovers_exact_power_laws(exponent, constant, sizes):
    values = [constant * n**exponent for n in sizes]
    assert fit_exponent(sizes, values) == pytest.approx(exponent, abs=1e-8)


def test_fit_exponent_on_noisy_data_is_the_least_squares_slope():
    sizes = np.array([128, 256, 512, 1024, 2048, 4096], dtype=float)
    noise = np.random.default_rng(0).uniform(0.8, 1.25, sizes.size)
    values = 3e-9 * sizes**2 * noise
    x, y = np.log(sizes), np.log(values)
    slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()  # closed form
    fitted = fit_exponent(sizes.tolist(), values.tolist())
    assert fitted == pytest.approx(slope, rel=1e-12)
    assert abs(fitted - 2) < 0.15


@pytest.mark.parametrize(
    ("sizes", "values", "message"),
    [
        ([10], [1.0], "at least two"),
        ([10, 20], [1.0], "at least two"),
        ([10, 20], [1.0, 0.0], "positive"),
        ([10, 20], [1.0, -2.0], "positive"),
        ([0, 20], [1.0, 2.0], "positive"),
        ([10, 20], [1.0, math.nan], "positive"),
        ([10, 10], [1.0, 2.0], "equal"),
    ],
)
def test_fit_exponent_rejects_bad_data_without_warnings(sizes, values, message):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy RuntimeWarning would reach a grader's stderr
        with pytest.raises(ValueError, match=message):
            fit_exponent(sizes, values)


def _one_break_splits(sizes, values):
    """The oracle: (total squared residuals, upper slope) of every split with parts of >= 3 points,
    each part fitted by numpy's lstsq on log-log axes."""
    x, y = np.log(np.asarray(sizes, dtype=float)), np.log(np.asarray(values, dtype=float))

    def fit(part):
        design = np.stack([x[part], np.ones_like(x[part])], axis=1)
        (slope, intercept), *_ = np.linalg.lstsq(design, y[part], rcond=None)
        return slope, float(((slope * x[part] + intercept - y[part]) ** 2).sum())

    return [(fit(slice(None, k))[1] + fit(slice(k, None))[1], fit(slice(k, None))[0]) for k in range(3, len(x) - 2)]


@FAST
@given(data=st.lists(st.tuples(st.floats(1.0, 1e3), st.floats(1e-3, 1e3)), min_size=6, max_size=12))
def test_fit_exponent_one_break_is_the_brute_force_least_squares(data):
    sizes = np.cumsum([step for step, _ in data]).tolist()
    values = [value for _, value in data]
    splits = _one_break_splits(sizes, values)
    totals = sorted(total for total, _ in splits)
    if len(totals) > 1 and totals[1] - totals[0] < 1e-6 * max(1.0, totals[0]):
        return  # a near-tie makes the winner a matter of rounding
    expected = min(splits, key=lambda split: split[0])[1]
    assert fit_exponent(sizes, values, breaks=1) == pytest.approx(expected, rel=1e-9, abs=1e-8)  # slopes reach 1e4


def test_fit_exponent_one_break_reads_the_upper_regime_of_a_cache_step():
    """Exact laws n^1.2 below n = 1000 and 0.4 n^2 above it: the upper slope is 2; one line is not."""
    sizes = [2.0**i for i in range(6, 15)]
    values = [1e-9 * n**1.2 if n < 1000 else 4e-10 * n**2.0 for n in sizes]
    assert fit_exponent(sizes, values, breaks=1) == pytest.approx(2.0, abs=1e-9)
    assert abs(fit_exponent(sizes, values) - 2.0) > 0.1


def test_fit_exponent_one_break_never_lets_a_part_have_two_points():
    """A flat lower regime of 2 points, then noisy n^2: a 2-point part would fit the flat part exactly
    and win; with parts of 3 points the answer is the brute force's, another slope."""
    sizes = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    noise = [1.0, 1.0, 1.1, 0.9, 1.05, 0.95, 1.1, 0.9]
    values = [40.0, 40.0] + [n**2.0 * e for n, e in zip(sizes[2:], noise[2:])]
    two_point_split = float(np.polyfit(np.log(sizes[2:]), np.log(values[2:]), 1)[0])
    fitted = fit_exponent(sizes, values, breaks=1)
    assert fitted == pytest.approx(min(_one_break_splits(sizes, values))[1], abs=1e-9)
    assert abs(fitted - two_point_split) > 0.05


@pytest.mark.parametrize(
    ("sizes", "values", "breaks", "message"),
    [
        ([1, 2, 3, 4, 5], [1.0] * 5, 1, "at least 6"),
        ([1, 2, 3, 4, 5, 6], [1.0] * 5, 1, "at least 6"),
        ([1, 2, 3, 4, 5, 6], [1.0] * 6, 2, "breaks must be 0"),
        ([1, 2, 3, 4, 5, 6], [1.0] * 6, True, "breaks must be 0"),
        ([1, 2, 3, 4, 5, 6], [1.0] * 6, -1, "breaks must be 0"),
        ([1, 3, 2, 4, 5, 6], [1.0] * 6, 1, "strictly increasing"),
        ([1, 2, 2, 4, 5, 6], [1.0] * 6, 1, "strictly increasing"),
        ([1, 2, 3, 4, 5, 6], [1.0, 1.0, 0.0, 1.0, 1.0, 1.0], 1, "positive"),
    ],
)
def test_fit_exponent_one_break_rejects_bad_arguments(sizes, values, breaks, message):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=message):
            fit_exponent(sizes, values, breaks=breaks)


def test_scaling_report_exponents_and_table():
    report = ScalingReport("toy", (100, 200, 400), (1e-3, 4e-3, 16e-3), (10_000, 20_000, 40_000))
    assert report.time_exponent == pytest.approx(2) and report.memory_exponent == pytest.approx(1)
    table = report.table()
    assert table.splitlines()[0] == "toy"
    for n, ms in ((100, "1.00"), (200, "4.00"), (400, "16.00")):
        assert any(line.split()[:2] == [str(n), ms] for line in table.splitlines())
    assert "n^2.00" in table and "n^1.00" in table


def test_table_of_a_single_length_has_no_fit():
    assert "fitted" not in ScalingReport("one", (64,), (0.1,), (4096,)).table()


def test_fit_from_fits_one_regime_only():
    """A cache step: time per pair doubles from n = 1024 on; the fit over all sizes mixes the two
    regimes and misses 2, the fit from n = 1024 on recovers it."""
    sizes = (256, 512, 1024, 2048, 4096)
    seconds = tuple(1e-9 * n**2 * (1 if n < 1024 else 2) for n in sizes)
    everything = ScalingReport("step", sizes, seconds, tuple(4 * n * n for n in sizes))
    regime = ScalingReport("step", sizes, seconds, everything.peak_bytes, fit_from=1024)
    assert everything.time_exponent > 2.2
    assert regime.time_exponent == pytest.approx(2) and regime.memory_exponent == pytest.approx(2)
    assert "fitted exponents (n >= 1,024): time ~ n^2.00" in regime.table()
    few = ScalingReport("step", sizes, seconds, everything.peak_bytes, fit_from=4096)
    assert "fitted" not in few.table()
    with pytest.raises(ValueError, match="fewer than two"):
        few.time_exponent  # noqa: B018


def test_best_seconds_warms_up_and_keeps_the_fastest_run():
    calls = []

    def slow_first(pause):
        calls.append(pause)
        if len(calls) == 1:
            time.sleep(0.05)  # a cold first run: must not be timed

    best = best_seconds(slow_first, 0.0, repeats=3, warmup=1)
    assert len(calls) == 4 and best < 0.04
    assert best_seconds(time.sleep, 0.01, repeats=2, warmup=0) >= 0.01
    assert best_seconds(time.sleep, 0.05, repeats=1, warmup=0, clock=time.thread_time) < 0.02  # sleeping is no CPU time
    for kwargs, message in (({"repeats": 0}, "repeats"), ({"warmup": -1}, "warmup")):
        with pytest.raises(ValueError, match=message):
            best_seconds(time.sleep, 0, **kwargs)


def test_profile_scaling_of_dense_attention_is_quadratic(capsys):
    sizes = (256, 512, 1024)
    with one_thread():
        report = profile_scaling(dense_attention, sizes, dim=32, repeats=5, progress=False)
    assert report.label == "dense_attention" and report.seq_lens == sizes
    assert report.peak_bytes == tuple(dense_attention_memory(n, dim=32) for n in sizes)
    assert 1.8 <= report.memory_exponent <= 2.1
    assert all(s > 0 for s in report.seconds)
    assert report.time_exponent > 1.3  # about 2; loose because the machine is shared and noisy
    assert capsys.readouterr().err == ""


def test_profile_scaling_times_with_the_clock_it_is_given():
    ticks = iter(range(1000))
    with one_thread():
        report = profile_scaling(
            dense_attention, (64, 128), dim=8, repeats=2, progress=False, clock=lambda: next(ticks)
        )
    assert report.seconds == (1, 1)  # each timed run spans one tick of the fake clock
    with one_thread():
        cpu = profile_scaling(dense_attention, (64, 128), dim=8, repeats=2, progress=False, clock=time.thread_time)
    assert all(s >= 0 for s in cpu.seconds)


def test_profile_scaling_of_tiled_attention_is_linear_in_memory():
    tiled = functools.partial(tiled_attention, block_q=128, block_k=128)
    with one_thread():
        report = profile_scaling(tiled, (256, 512, 1024), dim=32, repeats=1, label="tiled", progress=False)
    assert report.label == "tiled"
    assert report.memory_exponent < 1.3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"seq_lens": []}, "at least one"), ({"seq_lens": [64, 0]}, "sequence length"), ({"repeats": 0}, "repeats")],
)
def test_profile_scaling_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        profile_scaling(dense_attention, **{"seq_lens": [64], "progress": False, **kwargs})


def test_dense_attention_memory_closed_form():
    n, dim = 1024, 64
    assert dense_attention_memory(n, dim=dim) == 4 * (2 * n * n + n * dim + 2 * n)
    assert dense_attention_memory(n, 2 * n, dim=dim) == 4 * (2 * n * 2 * n + n * dim + 2 * n)
    assert dense_attention_memory(n, batch=2, heads=8) == 16 * dense_attention_memory(n)
    assert dense_attention_memory(n, dtype=torch.float64) == 2 * dense_attention_memory(n)
    assert dense_attention_memory(n, dtype=torch.bfloat16) * 2 == dense_attention_memory(n)
    assert 32 * GiB < dense_attention_memory(65_536) < 33 * GiB  # the docstring's example


def test_dense_attention_memory_rejects_bad_lengths():
    for args in ((0,), (8, 0), (8.0,)):
        with pytest.raises(ValueError):
            dense_attention_memory(*args)


def test_diagnose_oom_fits_exactly_at_the_needed_bytes():
    needed = dense_attention_memory(2048)
    fits = diagnose_oom(2048, needed)
    assert fits.fits and fits.needed_bytes == needed and "It fits." in str(fits)
    assert "tiled" not in fits.message
    too_small = diagnose_oom(2048, needed - 1)
    assert not too_small.fits and too_small.available_bytes == needed - 1


def test_diagnose_oom_recommends_tiled_attention_when_it_does_not_fit():
    diagnosis = diagnose_oom(65_536, 24 * GiB, heads=8)
    assert not diagnosis.fits and diagnosis.needed_bytes == dense_attention_memory(65_536, heads=8)
    assert "does not fit" in diagnosis.message
    assert "tiled" in diagnosis.message and "flash" in diagnosis.message
    assert "65,536" in diagnosis.message
    assert "bfloat16 halves" in diagnosis.message
    assert "bfloat16 halves" not in diagnose_oom(65_536, 1024, dtype=torch.bfloat16).message  # already halved


def test_diagnose_oom_training_counts_seven_matrices_per_head():
    n, dim = 4096, 64
    inference = diagnose_oom(n, GiB, heads=2)
    training = diagnose_oom(n, GiB, heads=2, training=True)
    assert inference.needed_bytes == dense_attention_memory(n, heads=2)
    assert training.needed_bytes == dense_attention_memory(n, heads=2, training=True)
    assert training.needed_bytes == 2 * (4 * (7 * n * n + 2 * n * dim + n) + n)
    assert training.needed_bytes - inference.needed_bytes > 2 * 5 * n * n * 4  # five more n x n buffers per head
    assert "7 of them" in training.message and "2 of them" in inference.message
    assert "backward" in diagnose_oom(n, 1024, training=True).message
    causal = diagnose_oom(n, GiB, heads=2, training=True, causal=True)
    assert causal.needed_bytes - training.needed_bytes == n * n  # the causal bool mask, one for all heads


def test_dense_attention_memory_training_closed_form():
    n, kv, dim = 1000, 1500, 32
    assert dense_attention_memory(n, kv, dim=dim, training=True) == 4 * (7 * n * kv + n * dim + kv * dim + n) + n
    assert (
        dense_attention_memory(n, kv, dim=dim, training=True, causal=True, heads=3)
        == 3 * (4 * (7 * n * kv + n * dim + kv * dim + n) + n) + n * kv
    )
    assert dense_attention_memory(n, causal=True) == dense_attention_memory(n)  # no_grad frees the mask at once


@pytest.mark.parametrize(
    ("nbytes", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (3 * 1024**2, "3.0 MiB"),
        (32 * GiB, "32.0 GiB"),
        (1024**5, "1024.0 TiB"),
    ],
)
def test_format_bytes(nbytes, text):
    assert format_bytes(nbytes) == text


@FAST
@given(
    sizes=st.lists(st.integers(1, 10**6), min_size=1, max_size=8, unique=True),
    exponent=st.floats(0, 3),
    constant=st.floats(1e-9, 1e-3),
)
def test_tokens_per_second_is_n_over_seconds(sizes, exponent, constant):
    seconds = tuple(constant * n**exponent for n in sizes)
    report = ScalingReport("power", tuple(sizes), seconds, tuple(4 * n for n in sizes))
    assert report.tokens_per_second == pytest.approx(tuple(n / s for n, s in zip(sizes, seconds)), rel=1e-12)
    if len(sizes) > 1:
        assert report.throughput_exponent == pytest.approx(1 - exponent, abs=1e-6)
        assert report.throughput_exponent == pytest.approx(1 - report.time_exponent, abs=1e-9)


def test_throughput_table_adds_a_column_and_keeps_the_default():
    report = ScalingReport("toy", (1000, 2000), (1e-3, 4e-3), (10_000, 20_000))
    plain, with_rate = report.table(), report.table(throughput=True)
    assert "tokens/s" not in plain
    assert with_rate.splitlines()[1].split()[-1] == "tokens/s"
    rows = [line.split() for line in with_rate.splitlines()[2:4]]
    assert rows[0][:2] == ["1000", "1.00"] and rows[0][-1] == "1,000,000"
    assert rows[1][:2] == ["2000", "4.00"] and rows[1][-1] == "500,000"
    assert plain.splitlines()[2].split() == rows[0][:-1]  # the other columns are unchanged
    assert report.table(throughput=True).splitlines()[-1] == plain.splitlines()[-1]  # the fitted exponents
    instant = ScalingReport("instant", (64,), (0.0,), (0,))
    assert instant.tokens_per_second == (math.inf,)


def test_profile_scaling_reports_the_tokens_per_second_and_the_linear_memory_of_banded_attention():
    """Timing claims live in ``make bench`` (a timed unit test flakes on shared cores); what is checked
    here is that the report's rate is its own timings' and that its peaks grow like n."""
    from lcteach.kernels import banded_attention

    def window(q, k, v):
        return banded_attention(q, k, v, 64)

    sizes = (1024, 4096)
    with one_thread():
        report = profile_scaling(window, sizes, dim=16, repeats=3, progress=False)
    assert report.tokens_per_second == tuple(n / s for n, s in zip(sizes, report.seconds))
    assert 3 < report.peak_bytes[1] / report.peak_bytes[0] < 5  # 4x the length, 4x the memory
