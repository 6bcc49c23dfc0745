"""Benchmark sliding-window attention: every kernel of the course against dense SDPA.

    python -m lcteach.bench --out DIR [--ns 1024,2048,...] [--window 256] [--device cpu|cuda]

The report (a markdown table, checks and notes) is printed and written to DIR/results.md;
DIR/scaling.png holds log-log plots of time and memory against n. Progress goes to stdout.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import psutil
import torch

from lcteach.bench.harness import Settings, run_benchmark
from lcteach.bench.sliding_window import DEFAULT_NS, format_report, plot_benchmark, sliding_window_methods
from lcteach.validation import check_positive_int


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lcteach.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for results.md and scaling.png")
    parser.add_argument("--ns", type=_int_list, default=list(DEFAULT_NS), help="sequence lengths, e.g. 1024,2048")
    parser.add_argument("--window", type=int, default=256, help="keys per query, the query included (default 256)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--dim", type=int, default=64, help="head dimension")
    parser.add_argument(
        "--repeats", type=int, default=3, help="at least this many timed runs per measurement, after a warm-up"
    )
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parser.add_argument("--threads", type=int, default=cores, help=f"torch CPU threads (default: all {cores})")
    parser.add_argument(
        "--memory-limit",
        type=float,
        default=None,
        help="GiB a method may need; default 40%% of the free memory of the device",
    )
    parser.add_argument(
        "--time-limit", type=float, default=30.0, help="expected seconds per call above which an n is skipped"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    for name in ("window", "heads", "dim", "repeats", "threads"):
        try:
            check_positive_int(f"--{name}", getattr(args, name))
        except ValueError as error:
            parser.error(str(error))
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    device = torch.device(args.device)
    if args.memory_limit is None:
        free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else psutil.virtual_memory().available
        memory_limit = int(0.4 * free)
    else:
        memory_limit = int(args.memory_limit * 2**30)
    torch.set_num_threads(args.threads)
    settings = Settings(
        args.window,
        device,
        heads=args.heads,
        dim=args.dim,
        repeats=args.repeats,
        memory_limit=memory_limit,
        time_limit=args.time_limit,
    )
    results = run_benchmark(sliding_window_methods(settings), args.ns, settings)
    report = format_report(results, settings)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(report)
    plot_benchmark(results, settings).savefig(args.out / "scaling.png", dpi=110)
    print()
    print(report, end="")
    print(f"wrote {args.out / 'results.md'} and {args.out / 'scaling.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
