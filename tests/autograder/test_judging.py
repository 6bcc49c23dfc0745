"""The judge's summary of a notebook: written into its metadata, read back by the grading report."""

import json

import nbformat
import pytest

from autograder.judging import METADATA_KEY, JudgeSummary, PartVerdict

SUMMARY = JudgeSummary(
    parts=(
        PartVerdict("dense_attention_test", "dense_attention", 2.0, 3.0, ("rows sum to 1", "hidden inputs")),
        PartVerdict("causal_mask_test", "causal_mask", 2.0, 2.0),
        PartVerdict("tiled_test", "tiled_attention", 0.0, 4.0, ("not handed to the grader",), "the kernel died"),
    ),
    findings=("cell solution_2, line 3: patches lcteach.grading",),
    limits=("memory limit", "the kernel died"),
)


def test_summary_survives_the_notebook_file():
    notebook = nbformat.v4.new_notebook()
    notebook.metadata[METADATA_KEY] = SUMMARY.to_metadata()
    read = nbformat.reads(nbformat.writes(notebook), as_version=4)
    assert JudgeSummary.from_metadata(read.metadata.get(METADATA_KEY)) == SUMMARY
    assert json.loads(json.dumps(SUMMARY.to_metadata())) == SUMMARY.to_metadata()


def test_failed_checks_name_their_part():
    assert SUMMARY.failed_checks == (
        "dense_attention: rows sum to 1",
        "dense_attention: hidden inputs",
        "tiled_attention: not handed to the grader",
    )


def test_combined_summaries_keep_each_limit_once():
    other = JudgeSummary(findings=("another finding",), limits=("the kernel died", "time limit of a graded call"))
    combined = JudgeSummary.combine([SUMMARY, other])
    assert combined.parts == SUMMARY.parts
    assert combined.findings == (*SUMMARY.findings, "another finding")
    assert combined.limits == ("memory limit", "the kernel died", "time limit of a graded call")
    assert JudgeSummary.combine([]) == JudgeSummary()


@pytest.mark.parametrize("entry", [None, "not a summary", [], 3, {}, {"parts": "x", "findings": {}, "limits": 1}])
def test_a_missing_or_malformed_entry_reads_as_empty(entry):
    assert JudgeSummary.from_metadata(entry) == JudgeSummary()


def test_malformed_parts_and_values_are_left_out():
    entry = {
        "parts": [
            "not a part",
            {"cell": "c1", "points": 1},  # no part name
            {"part": "strided", "cell": 7, "points": "2", "max_points": True, "failed": ["a", 5, None], "status": 1},
            {"part": "bigbird", "cell": "c3", "points": 1, "max_points": 2.5, "failed": "not a list"},
        ],
        "findings": ["kept", {"dropped": 1}],
        "limits": ["kept", None],
    }
    assert JudgeSummary.from_metadata(entry) == JudgeSummary(
        parts=(PartVerdict("", "strided", 0.0, 0.0, ("a",), None), PartVerdict("c3", "bigbird", 1.0, 2.5)),
        findings=("kept",),
        limits=("kept",),
    )
