"""lcteach.experiments.recall: the associative-recall task, its model, training and the distance table."""

import fnmatch
import json
import tomllib
from pathlib import Path

import pytest
import torch

from lcteach.experiments import (
    SHIPPED_RESULTS,
    RecallModel,
    RecallTask,
    accuracy_by_distance,
    default_edges,
    default_settings,
    distance_bins,
    load_recall_results,
    main,
    make_recall_batch,
    run_recall_experiment,
    train_recall,
)
from lcteach.masks import causal_mask, evaluate_rows, generate_sliding_window, materialize_mask, recall_patterns

TINY = RecallTask(seq_len=16, num_keys=16, num_values=4)


def _batch(task=TINY, size=64, seed=0):
    return make_recall_batch(task, size, generator=torch.Generator().manual_seed(seed))


def test_batch_answers_and_distances_match_brute_force():
    task = RecallTask(seq_len=12, num_keys=20, num_values=5)
    data = _batch(task, 200)
    n = task.seq_len
    assert data.keys.shape == data.values.shape == (200, n)
    for keys, values, answer, distance in zip(
        data.keys.tolist(),
        data.values.tolist(),
        data.answers.tolist(),
        data.distances.tolist(),
    ):
        pairs = keys[:-1]
        assert len(set(pairs)) == n - 1 and max(pairs) < task.num_keys
        matches = [p for p, key in enumerate(pairs) if key == keys[-1]]
        assert len(matches) == 1
        assert answer == values[matches[0]] and distance == n - 1 - matches[0]
        assert values[-1] == task.num_values and max(values[:-1]) < task.num_values
    assert set(data.distances.tolist()) == set(range(1, n))


def test_same_seed_same_data_and_same_accuracies():
    first, second = _batch(seed=3), _batch(seed=3)
    for name in ("keys", "values", "answers", "distances"):
        assert torch.equal(getattr(first, name), getattr(second, name))
    assert not torch.equal(first.keys, _batch(seed=4).keys)
    runs = [
        run_recall_experiment(
            TINY,
            {"full": causal_mask},
            edges=(1, 8, 16),
            eval_size=64,
            steps=5,
            dim=16,
            progress=False,
        )
        for _ in range(2)
    ]
    assert runs[0][0].accuracy == runs[1][0].accuracy and runs[0][0].final_loss == runs[1][0].final_loss


def test_full_attention_learns_above_chance():
    model, loss = train_recall(TINY, causal_mask, steps=150, batch=64, dim=32, progress=False)
    accuracy = accuracy_by_distance(model, _batch(size=400, seed=1), distance_bins(16, (1, 16)))
    assert accuracy[0] > 0.6, f"chance is 0.25, got {accuracy}"
    assert loss < 1.0, f"chance loss is ln 4 = 1.39, got {loss}"


@pytest.mark.parametrize("layers", [1, 2])
def test_sliding_window_query_cannot_see_pairs_beyond_reach(layers):
    """Changing pairs at distance >= layers * (window - 1) + 1 leaves the logits unchanged."""
    window, n = 4, TINY.seq_len
    reach = layers * (window - 1)
    data = _batch(size=8)
    torch.manual_seed(0)
    windowed = RecallModel(
        TINY,
        materialize_mask(generate_sliding_window(window), n),
        dim=16,
        layers=layers,
    )
    full = RecallModel(TINY, materialize_mask(causal_mask, n), dim=16, layers=layers)
    full.load_state_dict({**windowed.state_dict(), "mask": full.mask})
    far = slice(0, n - 1 - reach)  # positions at distance > reach
    keys, values = data.keys.clone(), data.values.clone()
    keys[:, far] = (keys[:, far] + 1) % TINY.num_keys
    values[:, far] = (values[:, far] + 1) % TINY.num_values
    with torch.no_grad():
        assert torch.equal(windowed(data.keys, data.values), windowed(keys, values))
        assert not torch.allclose(full(data.keys, data.values), full(keys, values))


def test_pattern_query_rows_reach_the_documented_distances():
    n = 32
    patterns = recall_patterns(n, window=8, stride=4, block_size=8)
    expected = {
        "full": set(range(n)),
        "sliding_window_8": set(range(8)),
        "strided_4": set(range(0, n, 4)),
        "bigbird": set(range(n)),
    }
    assert list(patterns) == list(expected)
    for name, mask_mod in patterns.items():
        mask = materialize_mask(mask_mod, n)[0, 0]
        assert torch.equal(evaluate_rows(mask_mod, torch.arange(n), n), mask), f"{name}: the training mask differs"
        assert not mask.triu(1).any(), f"{name} is not causal"
        assert mask.diagonal().all()
        assert {n - 1 - j for j in mask[-1].nonzero().flatten().tolist()} == expected[name], name


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: RecallTask(seq_len=1), "seq_len must be >= 2"),
        (lambda: RecallTask(seq_len=10, num_keys=5), "num_keys must be >= seq_len - 1"),
        (lambda: RecallTask(num_values=0), "num_values must be an integer >= 1"),
        (lambda: _batch(size=0), "batch must be an integer >= 1"),
        (lambda: distance_bins(16, (0, 16)), "edges must rise strictly from 1"),
        (lambda: distance_bins(16, (1, 8, 8, 16)), "edges must rise strictly"),
        (
            lambda: RecallModel(TINY, materialize_mask(causal_mask, 16), dim=10, heads=3),
            "multiple of heads",
        ),
        (
            lambda: train_recall(TINY, causal_mask, steps=0),
            "steps must be an integer >= 1",
        ),
    ],
)
def test_bad_arguments_raise_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


REPO = Path(__file__).resolve().parents[2]
TINY_ARGS = ["--seq-len", "8", "--num-values", "4", "--steps", "2", "--eval-size", "64"]


def test_command_line_writes_json_and_nothing_to_stderr(tmp_path, capfd):
    out = tmp_path / "recall.json"
    assert main(["--out", str(out), *TINY_ARGS]) == 0
    captured = capfd.readouterr()
    assert captured.err == ""
    assert "sliding_window_16" in captured.out
    saved = json.loads(out.read_text())
    assert saved["task"] == {"seq_len": 8, "num_keys": 8, "num_values": 4}
    assert [result["pattern"] for result in saved["results"]] == [
        "full",
        "sliding_window_16",
        "strided_4",
        "bigbird",
    ]
    assert all(len(result["accuracy"]) == len(result["bins"]) for result in saved["results"])
    assert saved["settings"] == {"seq_len": 8, "num_values": 4, "steps": 2, "seed": 0, "eval_size": 64, "bin_width": 1}
    assert saved["results"][0]["bins"] == [[d, d + 1] for d in range(1, 8)]


def test_loader_reads_back_what_the_command_wrote(tmp_path, capfd):
    out = tmp_path / "recall.json"
    main(["--out", str(out), *TINY_ARGS, "--bin-width", "3"])
    capfd.readouterr()
    saved = json.loads(out.read_text())
    loaded = load_recall_results(out)
    assert loaded.task == RecallTask(8, 8, 4) and loaded.chance == 0.25
    assert loaded.settings == saved["settings"] and loaded.settings["bin_width"] == 3
    assert [r.pattern for r in loaded.results] == [r["pattern"] for r in saved["results"]]
    for result, raw in zip(loaded.results, saved["results"], strict=True):
        assert result.bins == [(1, 4), (4, 7), (7, 8)] == distance_bins(8, default_edges(8, 3))
        assert result.accuracy == raw["accuracy"] and result.final_loss == raw["final_loss"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("not json", "not a results file"),
        ('{"task": {"seq_len": 8, "num_keys": 8, "num_values": 4}, "results": []}', "not a results file"),
        ('{"task": {"seq_len": 8, "num_keys": 8, "num_values": 4}, "settings": {}, "results": []}', "holds no results"),
        (
            '{"task": {"seq_len": 8, "num_keys": 8, "num_values": 4}, "settings": {}, "results": '
            '[{"pattern": "full", "bins": [[1, 8]], "accuracy": [0.5, 0.5], "final_loss": 1, "seconds": 1}]}',
            "do not match",
        ),
    ],
)
def test_loader_rejects_files_that_are_not_results(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_recall_results(path)


def test_shipped_results_were_made_with_the_commands_current_defaults():
    """Regenerate with `python -m lcteach.experiments.recall --out lcteach/experiments/data/recall_results.json` when this fails."""
    shipped = load_recall_results()
    settings = default_settings()
    assert shipped.settings == settings, "the command's defaults changed since the shipped results were made"
    assert shipped.task == RecallTask(settings["seq_len"], settings["seq_len"], settings["num_values"])
    assert [r.pattern for r in shipped.results] == list(recall_patterns(settings["seq_len"], seed=settings["seed"]))
    bins = distance_bins(settings["seq_len"], default_edges(settings["seq_len"], settings["bin_width"]))
    for result in shipped.results:
        assert result.bins == bins
        assert all(0.0 <= a <= 1.0 for a in result.accuracy), result.pattern
        assert result.final_loss > 0 and result.seconds > 0


def test_shipped_results_are_package_data():
    """pyproject.toml ships the results file in the wheel, not only in a source checkout."""
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert any(fnmatch.fnmatch(SHIPPED_RESULTS, pattern) for pattern in package_data["lcteach.experiments"])
    assert (REPO / "lcteach" / "experiments" / SHIPPED_RESULTS).is_file()
