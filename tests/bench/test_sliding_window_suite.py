"""lcteach.bench: a tiny end-to-end run writes a well-formed table and plot."""

import os
import subprocess
import sys

import pytest
import torch
from matplotlib.image import imread

from lcteach.bench import window_layout
from lcteach.bench.__main__ import main
from lcteach.kernels import block_layout
from lcteach.masks import generate_sliding_window

METHODS = [
    "sdpa, dense bool mask",
    "sdpa, no mask",
    "tiled_attention",
    "banded_attention",
    "block_sparse_attention",
    "flex_sparse_attention",
    "flex_attention, direct",
]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """``python -m lcteach.bench`` at n = 256 and 512; a memory limit that only n = 256 of the masked SDPA fits."""
    out = tmp_path_factory.mktemp("benchmark")
    command = [sys.executable, "-m", "lcteach.bench", "--out", str(out), "--ns", "256,512", "--window", "64"]
    command += ["--repeats", "1", "--threads", "1", "--memory-limit", "0.001"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    return out, done


def table_rows(markdown):
    """The cells of the results table's body rows (the first table of the report)."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| n | method |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return lines[start], rows


def test_runs_cleanly_and_prints_progress_and_the_table(smoke_run):
    out, done = smoke_run
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "n=   256  banded_attention" in done.stdout
    assert "| 512 | banded_attention |" in done.stdout
    assert (out / "results.md").read_text() in done.stdout


def test_table_has_every_method_at_every_n(smoke_run):
    out, _ = smoke_run
    header, rows = table_rows((out / "results.md").read_text())
    assert all(len(row) == header.count("|") - 1 for row in rows)
    assert [(row[0], row[1]) for row in rows] == [(n, method) for n in ("256", "512") for method in METHODS]
    cells = {(row[0], row[1]): row for row in rows}
    for (n, method), (_, _, time_ms, memory, speed_up, _, _, note) in cells.items():
        if (n, method) == ("512", "sdpa, dense bool mask"):
            assert time_ms == "" and note.startswith("skipped: needs about")
            continue
        assert float(time_ms) > 0
        assert memory.endswith("iB") or note.startswith("memory n/a")
        assert speed_up.endswith("x") == (n == "256")  # no baseline at 512


def test_report_checks_the_targets(smoke_run):
    out, _ = smoke_run
    report = (out / "results.md").read_text()
    assert "## Checks" in report and "banded_attention peak memory grows as n^" in report


def test_plot_is_a_png_with_both_panels(smoke_run):
    out, _ = smoke_run
    image = imread(out / "scaling.png")
    height, width = image.shape[:2]
    assert width > 1.5 * height > 300  # two panels side by side


@pytest.mark.parametrize(("n", "window"), [(256, 64), (300, 64), (10, 3), (5, 8)])
def test_window_layout_is_the_windows_block_layout(n, window):
    expected = block_layout(generate_sliding_window(window), n, block_size=window)[0, 0]
    assert torch.equal(window_layout(n, window), expected)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [(["--ns", "0,5"], "positive integers"), (["--ns", "1k"], "comma-separated"), (["--window", "0"], "--window")],
)
def test_bad_arguments_exit_with_a_message(tmp_path, capsys, arguments, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path), *arguments])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
