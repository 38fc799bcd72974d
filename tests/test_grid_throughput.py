"""benchmarks/grid_throughput.py: the summary it writes (medians, ratios, the failed-run guard, score agreement) and,
where a results file exists, the figures docs/engine.md quotes from it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from benchmarks import grid_throughput
from docs_fixture import docs_block

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "grid_throughput.json"


def _run(design: str, hogs: int, seconds: float, ok: bool = True, score: float = 60.0) -> dict:
    return {"design": design, "hogs": hogs, "seconds": seconds, "ok": ok, "finetune_partitions": 6,
            "overheads": [0.5, 1.5], "scores": {"m|t|0": score}, "counts": {"ok": 8, "failed": 0 if ok else 1}}


def test_the_summary_takes_medians_and_ratios_side_by_side():
    runs = [_run("previous", 0, 100), _run("new", 0, 80, score=61.0), _run("previous", 2, 350), _run("new", 2, 160),
            _run("previous", 0, 120), _run("new", 0, 90), _run("previous", 2, 330), _run("new", 2, 170)]
    s = grid_throughput.summarize(runs, "quick", 2, 2)
    assert s["all_steps_succeeded"]
    assert s["designs"]["previous"]["idle_seconds"] == 110 and s["designs"]["new"]["contended_seconds"] == 165
    assert s["designs"]["new"]["contended_over_idle"] == round(165 / 85, 2)
    assert s["previous_over_new_contended"] == round(340 / 165, 2)
    assert s["designs"]["new"]["finetune_partitions_per_hour_idle"] == round(6 * 3600 / 85, 1)
    assert s["designs"]["previous"]["per_step_overhead_seconds_median"] == 1.0
    assert s["score_abs_diff_previous_vs_new"]["max"] == 1.0
    assert "scores" not in s["runs"][0]


def test_a_failed_step_marks_the_file_and_its_run_is_left_out_of_the_figures():
    runs = [_run("previous", 0, 100), _run("new", 0, 10, ok=False), _run("new", 0, 90)]
    s = grid_throughput.summarize(runs, "quick", 2, 1)
    assert not s["all_steps_succeeded"]
    assert s["designs"]["new"]["idle_seconds"] == 90


@pytest.mark.skipif(not RESULTS.exists(), reason="no benchmarks/results/grid_throughput.json yet")
def test_the_docs_quote_the_results_file():
    data = json.loads(RESULTS.read_text())
    assert data["all_steps_succeeded"], "the results file holds a run with a failed step: rerun the benchmark"
    block = docs_block("engine.md", "grid_throughput", joined=False)
    for design in ("previous", "new"):
        for key in ("idle_seconds", "contended_seconds"):
            assert f"{data['designs'][design][key]:.1f}" in block, (design, key)
    for key in ("previous_over_new_idle", "previous_over_new_contended"):
        assert f"{data[key]:.2f}" in block, key
    for design in ("previous", "new"):
        entry = data["designs"][design]
        assert f"{entry['contended_over_idle']:.2f}" in block and \
            f"{entry['finetune_partitions_per_hour_contended']:.1f}" in block, design
    assert f"median of {data['designs']['new']['per_step_overhead_seconds_median']:.2f} s" in block
    assert f"largest difference {data['score_abs_diff_previous_vs_new']['max']:.2f} points" in block
    assert re.search(rf"\b{data['rounds']} round", block)
