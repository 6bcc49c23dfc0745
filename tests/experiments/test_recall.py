"""lcteach.experiments.recall: the associative-recall task, its model, training and the distance table."""

import fnmatch
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch

from lcteach.analysis import hop_counts
from lcteach.experiments import (
    REACH_CLASSES,
    SHIPPED_RESULTS,
    RecallModel,
    RecallTask,
    accuracy_by_distance,
    accuracy_by_reach,
    default_edges,
    default_settings,
    distance_bins,
    load_recall_results,
    main,
    make_recall_batch,
    reachable_distances,
    run_recall_experiment,
    train_recall,
)
from lcteach.masks import (
    causal_mask,
    evaluate_rows,
    full_mask,
    generate_random_blocks,
    generate_sliding_window,
    generate_symmetric_window,
    materialize_mask,
    recall_patterns,
)

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
            layers=(1, 2),
            edges=(1, 8, 16),
            eval_size=64,
            steps=5,
            dim=16,
            progress=False,
        )
        for _ in range(2)
    ]
    assert [r.layers for r in runs[0]] == [1, 2]
    for first, second in zip(*runs, strict=True):
        assert first.accuracy == second.accuracy and first.final_loss == second.final_loss


def test_full_attention_learns_above_chance():
    model, loss = train_recall(TINY, causal_mask, steps=150, batch=64, lr=5e-3, dim=32, progress=False)
    accuracy = accuracy_by_distance(model, _batch(size=400, seed=1), distance_bins(16, (1, 16)))
    assert accuracy[0] > 0.6, f"chance is 0.25, got {accuracy}"
    assert loss < 1.0, f"chance loss is ln 4 = 1.39, got {loss}"


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize(
    "make, step",
    [(lambda: generate_sliding_window(4), 3), (lambda: generate_symmetric_window(7), 3)],
    ids=["causal window 4", "symmetric window 7"],
)
def test_window_query_cannot_see_pairs_beyond_reach(layers, make, step):
    """Changing pairs at distance > layers * step (step: how far one layer reaches back) leaves the logits unchanged."""
    n = TINY.seq_len
    reach = layers * step
    data = _batch(size=8)
    torch.manual_seed(0)
    windowed = RecallModel(TINY, materialize_mask(make(), n), dim=16, layers=layers)
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
    patterns = recall_patterns(n, window=15, stride=4, block_size=8)
    bigbird = materialize_mask(patterns["bigbird"], n)[0, 0]
    drawn = materialize_mask(generate_random_blocks(n, 8, 1, seed=0), n)[0, 0, -1]  # the query's random block
    random_block = {n - 1 - j for j in drawn.nonzero().flatten().tolist()}
    expected = {
        "full": set(range(n)),
        "window_15": set(range(8)),
        "strided_4": set(range(0, n, 4)),
        "bigbird": {0, 1, 2, 3, n - 1} | random_block,  # window 7, global token 0, one random block
    }
    assert list(patterns) == list(expected)
    assert len(random_block) == 8  # one block of 8 keys
    for name, mask_mod in patterns.items():
        mask = materialize_mask(mask_mod, n)[0, 0]
        assert torch.equal(evaluate_rows(mask_mod, torch.arange(n), n), mask), f"{name}: the training mask differs"
        assert torch.equal(mask, mask.T) or name == "bigbird", f"{name} is not bidirectional"
        assert mask.diagonal().all()
        assert {n - 1 - j for j in mask[-1].nonzero().flatten().tolist()} == expected[name], name
    assert bigbird[:, 0].all() and bigbird[0].all(), "token 0 is global"
    assert not bigbird[:, -1].all(), "the query is not a global token: not every position reads it"


def test_reachable_distances_are_the_query_row_of_the_hop_counts():
    n = 32
    patterns = recall_patterns(n, window=15, stride=4, block_size=8)
    window = reachable_distances(patterns["window_15"], n, 2)
    assert window == [d <= 14 for d in range(1, n)]  # 7 per layer
    assert reachable_distances(patterns["strided_4"], n, 3) == [d % 4 == 0 for d in range(1, n)]  # never off the grid
    assert all(reachable_distances(patterns["bigbird"], n, 2))  # through the global token
    for name, mask_mod in patterns.items():
        hops = hop_counts(mask_mod, n, 3)[-1].flip(0)[1:]
        assert reachable_distances(mask_mod, n, 3) == (hops >= 0).tolist(), name


def test_accuracy_by_reach_splits_the_distances():
    from lcteach.experiments import RecallResult

    n = 16
    window = generate_symmetric_window(7)  # 3 keys each side: one hop d <= 3, two hops d <= 6
    accuracy = [1.0 if d <= 3 else 0.5 if d <= 6 else 0.0 for d in range(1, n)]
    result = RecallResult("window_7", 2, [(d, d + 1) for d in range(1, n)], accuracy, 1.0, 1.0)
    split = accuracy_by_reach(result, window, n)
    assert list(split) == list(REACH_CLASSES)
    assert split == {"one hop": (3, 1.0), "relayed": (3, 0.5), "no path": (9, 0.0)}
    one_layer = accuracy_by_reach(RecallResult("window_7", 1, result.bins, accuracy, 1.0, 1.0), window, n)
    assert one_layer["relayed"][0] == 0 and one_layer["relayed"][1] != one_layer["relayed"][1]  # none: nan
    with pytest.raises(ValueError, match="one bin per distance"):
        accuracy_by_reach(RecallResult("w", 1, [(1, n)], [0.5], 1.0, 1.0), window, n)


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
        (lambda: run_recall_experiment(TINY, {"full": full_mask}, layers=()), "at least one depth"),
        (lambda: run_recall_experiment(TINY, {"full": full_mask}, layers=(0,)), "layers must be an integer >= 1"),
        (lambda: reachable_distances(full_mask, 16, 0), "layers must be an integer >= 1"),
    ],
)
def test_bad_arguments_raise_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


REPO = Path(__file__).resolve().parents[2]
TINY_ARGS = ["--seq-len", "8", "--num-values", "4", "--steps", "2", "--eval-size", "64", "--layers", "1", "2"]


def test_python_dash_m_runs_with_nothing_on_stderr(tmp_path):
    """As the README says to run it: ``python -m lcteach.experiments.recall`` (runpy warns on stderr
    when the package has imported the module before it runs)."""
    out = tmp_path / "recall.json"
    command = [sys.executable, "-m", "lcteach.experiments.recall", "--out", str(out), *TINY_ARGS]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert json.loads(out.read_text())["task"]["seq_len"] == 8


def test_command_line_writes_json_and_nothing_to_stderr(tmp_path, capfd):
    out = tmp_path / "recall.json"
    assert main(["--out", str(out), *TINY_ARGS]) == 0
    captured = capfd.readouterr()
    assert captured.err == ""
    assert "window_31 L=2" in captured.out
    saved = json.loads(out.read_text())
    assert saved["task"] == {"seq_len": 8, "num_keys": 8, "num_values": 4}
    assert [(result["pattern"], result["layers"]) for result in saved["results"]] == [
        (pattern, layers) for pattern in ("full", "window_31", "strided_4", "bigbird") for layers in (1, 2)
    ]
    assert all(len(result["accuracy"]) == len(result["bins"]) for result in saved["results"])
    assert saved["settings"] == {
        "seq_len": 8,
        "num_values": 4,
        "layers": [1, 2],
        "steps": 2,
        "lr": 2e-3,
        "seed": 0,
        "eval_size": 64,
        "bin_width": 1,
    }
    assert saved["results"][0]["bins"] == [[d, d + 1] for d in range(1, 8)]


def test_loader_reads_back_what_the_command_wrote(tmp_path, capfd):
    out = tmp_path / "recall.json"
    main(["--out", str(out), *TINY_ARGS, "--bin-width", "3"])
    capfd.readouterr()
    saved = json.loads(out.read_text())
    loaded = load_recall_results(out)
    assert loaded.task == RecallTask(8, 8, 4) and loaded.chance == 0.25
    assert loaded.settings == saved["settings"] and loaded.settings["bin_width"] == 3
    assert [(r.pattern, r.layers) for r in loaded.results] == [(r["pattern"], r["layers"]) for r in saved["results"]]
    assert loaded.patterns == ["full", "window_31", "strided_4", "bigbird"] and loaded.depths == [1, 2]
    assert loaded.result("bigbird", 2) is loaded.results[-1]
    with pytest.raises(KeyError, match="no result for 'bigbird' with 3 layers"):
        loaded.result("bigbird", 3)
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
            '[{"pattern": "full", "layers": 1, "bins": [[1, 8]], "accuracy": [0.5, 0.5], "final_loss": 1, "seconds": 1}]}',
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
    patterns = list(recall_patterns(settings["seq_len"], seed=settings["seed"]))
    assert [(r.pattern, r.layers) for r in shipped.results] == [(p, d) for p in patterns for d in settings["layers"]]
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


def test_shipped_results_answer_one_hop_distances_and_nothing_without_a_path():
    """What Lecture 3 reads off the shipped file: every model answers its one-hop distances, and
    where no path exists it stays near chance (1 / 16) -- it cannot do better."""
    shipped = load_recall_results()
    patterns = recall_patterns(shipped.task.seq_len, seed=shipped.settings["seed"])
    for result in shipped.results:
        split = accuracy_by_reach(result, patterns[result.pattern], shipped.task.seq_len)
        assert split["one hop"][1] > 0.95, (result.pattern, result.layers, split)
        if split["no path"][0]:
            assert split["no path"][1] < 0.12, (result.pattern, result.layers, split)
