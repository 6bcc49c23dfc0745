"""Associative recall: which sparse patterns, at which depth, fetch a fact from far back?

The task (``make_recall_batch``): a sequence holds ``seq_len - 1`` key-value pairs, one pair
per position (position p holds key token keys[p] and value token values[p]; the keys of a
sequence are distinct), then a query position that holds a key seen earlier and a blank
value. The answer is the value paired with that key. The *distance* is query position minus
the queried pair's position (1 = the pair just before the query); it is drawn uniformly from
1..seq_len-1, so every distance bin gets the same share of examples.

One pair per position (rather than a key token followed by a value token) makes the distance
an attention distance. A 1-layer model (``RecallModel``) answers from what the query row of
its mask reaches, so a pattern that masks distance d off cannot beat chance (1 / num_values)
at d. Deeper models may relay: the fact travels along a path of attended pairs, one hop per
layer (lcteach.analysis.hop_counts; ``reachable_distances`` gives the query's row). The
patterns (``recall_patterns``) are bidirectional, as the encoders BigBird and Longformer are,
and the query is an ordinary token (not global). Query row in one layer, query at n - 1:

- full: every distance;
- window_31: distances 0..15 (generate_symmetric_window(31): 15 keys on each side);
- strided_4: distances that are multiples of 4;
- bigbird: its window (distances 0..3), its random block and the global token 0 (distance
  n - 1). In two layers every pair is connected through the global token; in three, a
  global token can first read the query's key, then find the pair, then be read by the query.

``run_recall_experiment`` trains one model per (pattern, depth) and measures its accuracy
by distance; a path is a possibility, and the experiment measures whether training finds it.

Training is dense: the mask_mod is evaluated once on the (n, n) grid (lcteach.evaluate_rows) and passed to
``scaled_dot_product_attention`` as a bool mask, because FlexAttention has no CPU backward.
Everything is seeded: the same seed gives the same data, weights and accuracies on one machine.
``python -m lcteach.experiments.recall --out FILE.json`` runs the experiment and writes the table, by
default with one accuracy per distance; ``load_recall_results()`` reads such a file, by
default the one shipped in the package (lcteach/experiments/data/recall_results.json).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from lcteach.analysis.reachability import hop_counts
from lcteach.masks.catalog import recall_patterns
from lcteach.masks.evaluation import MaskMod, evaluate_rows
from lcteach.validation import check_nonnegative_int, check_positive_int


@dataclass(frozen=True)
class RecallTask:
    """Sizes of the recall task: ``seq_len`` positions (seq_len - 1 pairs and the query),
    ``num_keys`` key tokens (at least seq_len - 1: keys are distinct within a sequence),
    ``num_values`` value tokens (chance accuracy = 1 / num_values)."""

    seq_len: int = 64
    num_keys: int = 64
    num_values: int = 16

    def __post_init__(self):
        check_positive_int("num_values", self.num_values)
        if check_positive_int("seq_len", self.seq_len) < 2:
            raise ValueError(f"seq_len must be >= 2 (at least one pair and the query), got {self.seq_len}")
        if check_positive_int("num_keys", self.num_keys) < self.seq_len - 1:
            raise ValueError(
                f"num_keys must be >= seq_len - 1 = {self.seq_len - 1} (distinct keys per sequence), got {self.num_keys}"
            )


@dataclass(frozen=True)
class RecallBatch:
    """keys, values: int64 (batch, seq_len); the last position is the query (its value is the
    blank token ``num_values``). answers, distances: int64 (batch,)."""

    keys: torch.Tensor
    values: torch.Tensor
    answers: torch.Tensor
    distances: torch.Tensor


def make_recall_batch(task: RecallTask, batch: int, *, generator: torch.Generator) -> RecallBatch:
    """Draw ``batch`` recall sequences from ``generator``. O(batch * num_keys) time."""
    check_positive_int("batch", batch)
    n, pairs = task.seq_len, task.seq_len - 1
    keys = torch.rand(batch, task.num_keys, generator=generator).argsort(dim=-1)[:, :pairs]
    values = torch.randint(task.num_values, (batch, pairs), generator=generator)
    distances = torch.randint(1, n, (batch,), generator=generator)
    source = n - 1 - distances
    rows = torch.arange(batch)
    query = keys[rows, source]
    answers = values[rows, source]
    blank = torch.full((batch, 1), task.num_values)
    return RecallBatch(
        torch.cat([keys, query[:, None]], 1),
        torch.cat([values, blank], 1),
        answers,
        distances,
    )


class RecallModel(nn.Module):
    """Key + value embeddings, ``layers`` pre-norm attention layers with a fixed bool mask
    (1, 1, n, n) via scaled_dot_product_attention, and a linear readout of the query position.
    Input keys, values (batch, n); output logits (batch, num_values). O(layers * n^2 * dim)."""

    def __init__(
        self,
        task: RecallTask,
        mask: torch.Tensor,
        *,
        dim: int = 64,
        heads: int = 2,
        layers: int = 1,
    ):
        super().__init__()
        if check_positive_int("dim", dim) % check_positive_int("heads", heads):
            raise ValueError(f"dim must be a multiple of heads, got dim={dim}, heads={heads}")
        check_positive_int("layers", layers)
        self.heads = heads
        self.register_buffer("mask", mask)
        self.key_embedding = nn.Embedding(task.num_keys, dim)
        self.value_embedding = nn.Embedding(task.num_values + 1, dim)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(layers))
        self.qkv = nn.ModuleList(nn.Linear(dim, 3 * dim) for _ in range(layers))
        self.out = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        self.readout = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, task.num_values))

    def forward(self, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        x = self.key_embedding(keys) + self.value_embedding(values)
        batch, n, dim = x.shape
        last = len(self.norms) - 1
        for layer, (norm, qkv, out) in enumerate(zip(self.norms, self.qkv, self.out, strict=True)):
            # (batch, n, 3 * dim) -> three (batch, heads, n, dim / heads)
            q, k, v = qkv(norm(x)).view(batch, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
            mask = self.mask
            if layer == last:  # only the query row is read out: n times less attention work
                x, q, mask = x[:, -1:], q[:, :, -1:], mask[..., -1:, :]
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            x = x + out(attended.transpose(1, 2).reshape(batch, -1, dim))
        return self.readout(x[:, -1])


@dataclass(frozen=True)
class RecallResult:
    """Accuracy of one pattern at one depth (``layers``) by distance bin: bins[i] = (low, high),
    distances low..high-1."""

    pattern: str
    layers: int
    bins: list[tuple[int, int]]
    accuracy: list[float]
    final_loss: float
    seconds: float


def distance_bins(seq_len: int, edges: Sequence[int]) -> list[tuple[int, int]]:
    """Bins [edges[i], edges[i+1]) covering distances 1..seq_len-1; edges must rise from 1 to seq_len."""
    edges = list(edges)
    if len(edges) < 2 or edges[0] != 1 or edges[-1] != seq_len or any(a >= b for a, b in itertools.pairwise(edges)):
        raise ValueError(f"edges must rise strictly from 1 to seq_len = {seq_len}, got {edges}")
    return list(itertools.pairwise(edges))


def reachable_distances(mask_mod: MaskMod, seq_len: int, layers: int) -> list[bool]:
    """Whether a pair at distance d can reach the query (the last position) within ``layers``
    stacked layers of ``mask_mod``, for d = 1..seq_len-1 (entry d - 1). From
    lcteach.analysis.hop_counts: O(layers * seq_len^3)."""
    hops = hop_counts(mask_mod, check_positive_int("seq_len", seq_len), check_positive_int("layers", layers))
    query_row = hops[-1].flip(0)[1:]  # entry d - 1: the key d positions before the query
    return (query_row >= 0).tolist()


REACH_CLASSES = ("one hop", "relayed", "no path")


def accuracy_by_reach(result: RecallResult, mask_mod: MaskMod, seq_len: int) -> dict[str, tuple[int, float]]:
    """Split a result's distances by how the query can reach them with ``mask_mod`` at the
    result's depth: "one hop" (its own row of the mask allows them), "relayed" (only through
    other positions, in up to ``result.layers`` layers), "no path" (not within that depth).
    Returns {class: (how many distances, mean accuracy over them)}, the mean nan for none.
    ``result`` must hold one bin per distance (the command's default, bin_width 1)."""
    if result.bins != [(d, d + 1) for d in range(1, seq_len)]:
        raise ValueError(
            f"accuracy_by_reach needs one bin per distance 1..{seq_len - 1}, got bins {result.bins[:3]}..."
        )
    direct = reachable_distances(mask_mod, seq_len, 1)
    relayed = reachable_distances(mask_mod, seq_len, result.layers)
    classes = [
        "one hop" if one else "relayed" if deep else "no path" for one, deep in zip(direct, relayed, strict=True)
    ]
    summary = {}
    for name in REACH_CLASSES:
        mine = [accuracy for accuracy, kind in zip(result.accuracy, classes, strict=True) if kind == name]
        summary[name] = (len(mine), sum(mine) / len(mine) if mine else float("nan"))
    return summary


def accuracy_by_distance(model: RecallModel, data: RecallBatch, bins: Sequence[tuple[int, int]]) -> list[float]:
    """Fraction of correct answers among the examples of each distance bin (nan for an empty bin)."""
    with torch.no_grad():
        correct = (model(data.keys, data.values).argmax(-1) == data.answers).float()
    in_bin = [(data.distances >= low) & (data.distances < high) for low, high in bins]
    return [float(correct[chosen].mean()) if chosen.any() else float("nan") for chosen in in_bin]


def train_recall(
    task: RecallTask,
    mask_mod: MaskMod,
    *,
    steps: int = 1000,
    batch: int = 64,
    lr: float = 2e-3,
    dim: int = 64,
    heads: int = 2,
    layers: int = 1,
    seed: int = 0,
    progress: bool = True,
) -> tuple[RecallModel, float]:
    """Train a RecallModel with ``mask_mod`` for ``steps`` Adam steps on fresh batches drawn
    from ``seed``; returns (model, mean loss of the last 10% of steps). The global RNG is left
    untouched (weights are initialised under torch.random.fork_rng)."""
    check_positive_int("steps", steps)
    check_nonnegative_int("seed", seed)
    # One broadcast call of the mask_mod: create_mask's first (vmap) call costs seconds on CPU.
    mask = evaluate_rows(mask_mod, torch.arange(task.seq_len), task.seq_len)[None, None]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RecallModel(task, mask, dim=dim, heads=heads, layers=layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    name = getattr(mask_mod, "__name__", "pattern")
    for _ in tqdm(
        range(steps),
        desc=f"training {name}",
        disable=not progress,
        leave=False,
        file=sys.stdout,
    ):
        data = make_recall_batch(task, batch, generator=generator)
        loss = F.cross_entropy(model(data.keys, data.values), data.answers)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    tail = losses[-max(1, steps // 10) :]
    return model.eval(), sum(tail) / len(tail)


def run_recall_experiment(
    task: RecallTask = RecallTask(),
    patterns: dict[str, MaskMod] | None = None,
    *,
    layers: Sequence[int] = (1, 2, 3),
    edges: Sequence[int] = (1, 16, 32, 48, 64),
    eval_size: int = 2000,
    seed: int = 0,
    progress: bool = True,
    **train_kwargs,
) -> list[RecallResult]:
    """Train one model per pattern (default ``recall_patterns(task.seq_len)``) and per depth in
    ``layers`` and measure its accuracy by distance bin on ``eval_size`` held-out examples
    (drawn from seed + 1). Results are pattern-major: every depth of the first pattern first."""
    layers = [check_positive_int("layers", depth) for depth in layers]
    if not layers:
        raise ValueError("layers must list at least one depth")
    patterns = recall_patterns(task.seq_len, seed=seed) if patterns is None else patterns
    bins = distance_bins(task.seq_len, edges)
    data = make_recall_batch(
        task,
        check_positive_int("eval_size", eval_size),
        generator=torch.Generator().manual_seed(seed + 1),
    )
    results = []
    for (name, mask_mod), depth in itertools.product(patterns.items(), layers):
        start = time.perf_counter()
        model, loss = train_recall(task, mask_mod, layers=depth, seed=seed, progress=progress, **train_kwargs)
        accuracy = accuracy_by_distance(model, data, bins)
        results.append(RecallResult(name, depth, bins, accuracy, loss, time.perf_counter() - start))
    return results


def format_results(results: Sequence[RecallResult]) -> str:
    """A text table: one row per distance bin, one column per (pattern, depth), then the seconds."""
    names = [f"{result.pattern} L={result.layers}" for result in results]
    width = max(8, *(len(name) for name in names))
    rows = [" ".join(["distance".ljust(10)] + [name.rjust(width) for name in names])]
    for index, (low, high) in enumerate(results[0].bins):
        label = str(low) if high == low + 1 else f"{low}-{high - 1}"
        rows.append(" ".join([label.ljust(10)] + [f"{result.accuracy[index]:{width}.2f}" for result in results]))
    rows.append(" ".join(["seconds".ljust(10)] + [f"{result.seconds:{width}.1f}" for result in results]))
    return "\n".join(rows)


def default_edges(seq_len: int, bin_width: int) -> list[int]:
    """Bin edges of the command line: bins of ``bin_width`` distances from 1, the last one
    shorter where bin_width does not divide seq_len - 1. bin_width=1: one bin per distance."""
    check_positive_int("bin_width", bin_width)
    return [*range(1, seq_len, bin_width), seq_len]


# The results shipped with the package: `python -m lcteach.experiments.recall --out lcteach/experiments/data/recall_results.json`.
SHIPPED_RESULTS = "data/recall_results.json"


@dataclass(frozen=True)
class RecallResults:
    """A results file of ``python -m lcteach.experiments.recall --out FILE``: the task, the command-line
    ``settings`` it ran with (seq_len, num_values, layers, steps, lr, seed, eval_size, bin_width)
    and one RecallResult per (pattern, depth). ``chance`` is the accuracy of guessing: 1 / num_values."""

    task: RecallTask
    settings: dict[str, object]
    results: list[RecallResult]

    @property
    def chance(self) -> float:
        return 1.0 / self.task.num_values

    @property
    def patterns(self) -> list[str]:
        """The patterns, in the order of the file."""
        return list(dict.fromkeys(result.pattern for result in self.results))

    @property
    def depths(self) -> list[int]:
        """The depths (layers), in the order of the file."""
        return list(dict.fromkeys(result.layers for result in self.results))

    def result(self, pattern: str, layers: int) -> RecallResult:
        """The result of ``pattern`` at depth ``layers``; KeyError names what the file holds."""
        for result in self.results:
            if (result.pattern, result.layers) == (pattern, layers):
                return result
        raise KeyError(
            f"no result for {pattern!r} with {layers} layers; the file holds {self.patterns} at {self.depths}"
        )


def load_recall_results(path: str | os.PathLike | None = None) -> RecallResults:
    """Read a results file written by ``python -m lcteach.experiments.recall --out FILE``.

    ``path`` None reads the file shipped inside the package (lcteach/experiments/data/recall_results.json),
    made with the command's default settings, so lecture notebooks can show the full
    experiment without training for minutes. Raises ValueError naming what is missing or
    inconsistent in a file that is not such a results file.
    """
    if path is None:
        text = resources.files("lcteach.experiments").joinpath(SHIPPED_RESULTS).read_text()
        where = f"lcteach/experiments/{SHIPPED_RESULTS}"
    else:
        text, where = Path(path).read_text(), str(path)
    try:
        data = json.loads(text)
        task = RecallTask(**data["task"])
        settings = dict(data["settings"])
        results = [
            RecallResult(
                r["pattern"],
                int(r["layers"]),
                [tuple(b) for b in r["bins"]],
                list(r["accuracy"]),
                r["final_loss"],
                r["seconds"],
            )
            for r in data["results"]
        ]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(
            f"{where} is not a results file of `python -m lcteach.experiments.recall --out FILE` ({type(error).__name__}: {error})"
        ) from None
    if not results:
        raise ValueError(f"{where} holds no results")
    for result in results:
        if len(result.accuracy) != len(result.bins) or result.bins != results[0].bins:
            raise ValueError(f"{where}: pattern {result.pattern!r} has accuracies that do not match the shared bins")
    return RecallResults(task, settings, results)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lcteach.experiments.recall", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", help="write the results to this JSON file (lcteach.experiments.recall.load_recall_results reads it)"
    )
    parser.add_argument("--seq-len", type=int, default=RecallTask.seq_len)
    parser.add_argument("--num-values", type=int, default=RecallTask.num_values)
    parser.add_argument(
        "--layers", type=int, nargs="+", default=[1, 2, 3], help="the depths to train, one model per pattern and depth"
    )
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam's learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--eval-size", type=int, default=4000, help="held-out examples, about eval_size / (seq_len - 1) per distance"
    )
    parser.add_argument(
        "--bin-width", type=int, default=1, help="distances per accuracy bin (1: every distance on its own)"
    )
    return parser


def default_settings() -> dict[str, object]:
    """The settings the command runs with when given no option but --out."""
    settings = vars(_parser().parse_args([]))
    del settings["out"]
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    task = RecallTask(args.seq_len, args.seq_len, args.num_values)
    edges = default_edges(args.seq_len, args.bin_width)
    results = run_recall_experiment(
        task,
        layers=args.layers,
        edges=edges,
        eval_size=args.eval_size,
        steps=args.steps,
        lr=args.lr,
        seed=args.seed,
    )
    print(format_results(results))
    if args.out:
        settings = {name: value for name, value in vars(args).items() if name != "out"}
        with open(args.out, "w") as file:
            json.dump(
                {
                    "command": "python -m lcteach.experiments.recall",
                    "settings": settings,
                    "task": asdict(task),
                    "results": [asdict(result) for result in results],
                },
                file,
                indent=1,
            )
            file.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
